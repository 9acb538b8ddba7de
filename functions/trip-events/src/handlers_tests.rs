//! The handlers' decisions over in-memory ports: what is read, written, sent and posted, and what
//! a repeated delivery does, with no database and no network.

use std::cell::RefCell;
use std::collections::VecDeque;

use futures::executor::block_on;
use serde_json::{json, Map};
use shared::{Delivery, EdgeError};

use super::*;
use crate::calendar::{CalendarItem, CalendarTrip};
use crate::email::Email;
use crate::events::{Booking, BookingKind};
use crate::ports::InvitationContext;

const ADA: &str = "0b9a7c1e-5d7b-4f4e-9a51-0d1c2b3a4f50";
const BOB: &str = "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c";
const CY: &str = "5c4b3a29-1807-4f6e-9d5c-4b3a29180706";
const NOW: i64 = 1_800_000_000;

/// The database: trips, collaborators (trip, user, level), contacts, and the notifications
/// inserted, with the unique `dedup_key` the table has.
#[derive(Default)]
struct MemoryStore {
    trips: Vec<Trip>,
    collaborators: Vec<(i64, &'static str, &'static str)>,
    contacts: Vec<(&'static str, Contact)>,
    notifications: RefCell<Vec<Notification>>,
}

impl MemoryStore {
    /// Trip 7, Rome, owned by Ada; Bob edits it; Ada and Bob have addresses.
    fn rome() -> Self {
        Self {
            trips: vec![Trip {
                id: 7,
                name: "Rome".into(),
                destination: "Rome, Italy".into(),
                owner_id: ADA.into(),
            }],
            collaborators: vec![(7, BOB, "edit")],
            contacts: vec![
                (ADA, contact("ada@example.com", "Ada")),
                (BOB, contact("bob@example.com", "Bob")),
            ],
            ..Self::default()
        }
    }

    fn contact(&self, user_id: &str) -> Option<Contact> {
        self.contacts
            .iter()
            .find(|(id, _)| *id == user_id)
            .map(|(_, contact)| contact.clone())
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.notifications.borrow().iter().map(|n| n.kind).collect()
    }
}

fn contact(email: &str, name: &str) -> Contact {
    Contact {
        email: email.into(),
        display_name: name.into(),
    }
}

impl TripStore for MemoryStore {
    async fn trip(&self, trip_id: i64) -> Result<Option<Trip>, EdgeError> {
        Ok(self.trips.iter().find(|trip| trip.id == trip_id).cloned())
    }

    async fn collaborator_level(
        &self,
        trip_id: i64,
        user_id: &str,
    ) -> Result<Option<String>, EdgeError> {
        Ok(self
            .collaborators
            .iter()
            .find(|(trip, user, _)| *trip == trip_id && *user == user_id)
            .map(|(_, _, level)| (*level).to_owned()))
    }

    async fn invitation_context(
        &self,
        collaboration: &Collaboration,
    ) -> Result<InvitationContext, EdgeError> {
        Ok(InvitationContext {
            trip: self.trip(collaboration.trip_id).await?,
            permission_level: self
                .collaborator_level(collaboration.trip_id, &collaboration.user_id)
                .await?,
            inviter: self.contact(&collaboration.added_by),
            invitee: self.contact(&collaboration.user_id),
        })
    }

    async fn insert_notification(&self, notification: &Notification) -> Result<bool, EdgeError> {
        let mut rows = self.notifications.borrow_mut();
        let taken = notification.dedup_key.is_some()
            && rows
                .iter()
                .any(|row| row.dedup_key == notification.dedup_key);
        if !taken {
            rows.push(notification.clone());
        }
        Ok(!taken)
    }
}

/// The e-mail provider: fails with the errors queued, else sends once per idempotency key
/// (answering the first message's id for a key it has seen), as Resend does.
#[derive(Default)]
struct Outbox {
    failures: RefCell<VecDeque<EdgeError>>,
    attempts: RefCell<Vec<String>>,
    sent: RefCell<Vec<(String, Email)>>,
}

impl Mailer for Outbox {
    async fn send(&self, email: &Email, idempotency_key: &str) -> Result<String, EdgeError> {
        self.attempts.borrow_mut().push(idempotency_key.to_owned());
        if let Some(error) = self.failures.borrow_mut().pop_front() {
            return Err(error);
        }
        let mut sent = self.sent.borrow_mut();
        let index = match sent.iter().position(|(key, _)| key == idempotency_key) {
            Some(index) => index,
            None => {
                sent.push((idempotency_key.to_owned(), email.clone()));
                sent.len() - 1
            }
        };
        Ok(format!("email_{}", index + 1))
    }
}

/// The calendar endpoint: records each post and answers `status`.
struct Inbox {
    status: u16,
    posts: RefCell<Vec<(String, i64, String)>>,
}

impl Default for Inbox {
    fn default() -> Self {
        Self {
            status: 204,
            posts: RefCell::default(),
        }
    }
}

impl CalendarEndpoint for Inbox {
    async fn post(
        &self,
        message_id: &str,
        timestamp: i64,
        document: String,
    ) -> Result<u16, EdgeError> {
        self.posts
            .borrow_mut()
            .push((message_id.to_owned(), timestamp, document));
        Ok(self.status)
    }
}

fn delivery(webhook_id: Option<&str>) -> Delivery {
    Delivery {
        event: String::new(),
        webhook_id: webhook_id.map(str::to_owned),
        attempt: None,
        payload: Map::new(),
        received_at: NOW,
    }
}

/// Handles `event` as delivery `webhook_id`, with e-mail enabled unless `mailer` is `None`.
fn run(
    store: &MemoryStore,
    mailer: Option<&Outbox>,
    calendar: &Inbox,
    webhook_id: Option<&str>,
    event: &TripEvent,
) -> Result<TripOutcome, EdgeError> {
    let delivery = delivery(webhook_id);
    let handler = Handler {
        store,
        mailer,
        calendar,
        app_url: Some("https://app.example.com/"),
        delivery: &delivery,
    };
    block_on(handler.handle(event))
}

fn collaboration(user_id: &str, level: &str) -> Collaboration {
    Collaboration {
        trip_id: 7,
        user_id: user_id.into(),
        added_by: ADA.into(),
        permission_level: level.into(),
    }
}

fn invited(user_id: &str, level: &str) -> TripEvent {
    TripEvent::CollaboratorAdded(collaboration(user_id, level))
}

fn notified(kind: &'static str, notified: bool, email: Option<EmailSent>) -> TripOutcome {
    TripOutcome::Notified {
        notification: kind,
        notified,
        email,
    }
}

fn sent(id: &str) -> Option<EmailSent> {
    Some(EmailSent::Sent(id.into()))
}

#[test]
fn an_invitation_notifies_then_sends_one_email_keyed_by_the_delivery() {
    let (store, outbox, inbox) = (MemoryStore::rome(), Outbox::default(), Inbox::default());
    let outcome = run(
        &store,
        Some(&outbox),
        &inbox,
        Some("msg_1"),
        &invited(BOB, "view"),
    );
    assert_eq!(
        outcome.unwrap(),
        notified("trip_collaboration_invite", true, sent("email_1"))
    );

    let rows = store.notifications.borrow();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].user_id, BOB);
    assert_eq!(
        rows[0].dedup_key.as_deref(),
        Some(format!("msg_1:{BOB}:trip_collaboration_invite").as_str())
    );
    let sent = outbox.sent.borrow();
    let (key, email) = &sent[0];
    assert_eq!(key, &format!("trip-invite/msg_1/{BOB}"));
    assert_eq!(email.to, "bob@example.com");
    assert_eq!(email.subject, "Ada invited you to \"Rome\"");
    // The level the database holds now, not the payload's; the link from APP_URL.
    assert!(email.text.contains("with edit access"), "{}", email.text);
    assert!(
        email.text.contains("https://app.example.com/trips/7"),
        "{}",
        email.text
    );
}

#[test]
fn a_redelivery_after_an_email_failure_sends_it_once_and_notifies_once() {
    let (store, outbox, inbox) = (MemoryStore::rome(), Outbox::default(), Inbox::default());
    outbox.failures.borrow_mut().push_back(EdgeError::upstream(
        "email",
        Some(503),
        None,
        "unavailable",
    ));
    let event = invited(BOB, "edit");
    let error = run(&store, Some(&outbox), &inbox, Some("msg_1"), &event).unwrap_err();
    assert_eq!(error.status(), 503);
    assert_eq!(store.kinds(), ["trip_collaboration_invite"]);

    let again = run(&store, Some(&outbox), &inbox, Some("msg_1"), &event).unwrap();
    assert_eq!(
        again,
        notified("trip_collaboration_invite", false, sent("email_1"))
    );
    let third = run(&store, Some(&outbox), &inbox, Some("msg_1"), &event).unwrap();
    assert_eq!(third, again);
    assert_eq!(store.notifications.borrow().len(), 1);
    assert_eq!(outbox.sent.borrow().len(), 1);
    let key = format!("trip-invite/msg_1/{BOB}");
    assert_eq!(*outbox.attempts.borrow(), [key.clone(), key.clone(), key]);
}

#[test]
fn without_email_or_an_address_the_invitation_is_only_a_notification() {
    let (store, outbox, inbox) = (MemoryStore::rome(), Outbox::default(), Inbox::default());
    let outcome = run(&store, None, &inbox, Some("msg_1"), &invited(BOB, "edit"));
    assert_eq!(
        outcome.unwrap(),
        notified("trip_collaboration_invite", true, Some(EmailSent::Disabled))
    );

    let mut store = MemoryStore::rome();
    store.collaborators.push((7, CY, "view"));
    let outcome = run(
        &store,
        Some(&outbox),
        &inbox,
        Some("msg_2"),
        &invited(CY, "view"),
    );
    assert_eq!(
        outcome.unwrap(),
        notified(
            "trip_collaboration_invite",
            true,
            Some(EmailSent::NoAddress)
        )
    );
    assert!(outbox.attempts.borrow().is_empty());
}

#[test]
fn without_a_webhook_id_one_email_per_trip_and_user() {
    let (store, outbox, inbox) = (MemoryStore::rome(), Outbox::default(), Inbox::default());
    let event = invited(BOB, "edit");
    run(&store, Some(&outbox), &inbox, None, &event).unwrap();
    run(&store, Some(&outbox), &inbox, None, &event).unwrap();
    // Nothing to deduplicate the rows by; the provider's key still holds the e-mail to one.
    assert_eq!(store.notifications.borrow().len(), 2);
    assert!(store.notifications.borrow()[0].dedup_key.is_none());
    assert_eq!(outbox.sent.borrow().len(), 1);
    assert_eq!(
        outbox.sent.borrow()[0].0,
        format!("trip-invite/trip-7/{BOB}")
    );
}

#[test]
fn what_no_longer_holds_is_skipped_and_nothing_is_written() {
    let updated = |old: &str, new: &str| TripEvent::CollaboratorUpdated {
        collaboration: collaboration(BOB, new),
        old_level: old.into(),
    };
    let booking = TripEvent::BookingConfirmed(Booking {
        trip_id: 8,
        kind: BookingKind::Flight,
        booking_id: 3,
        status: "confirmed".into(),
    });
    let cases = [
        (invited(CY, "view"), Skip::NotACollaborator),
        (
            TripEvent::CollaboratorAdded(Collaboration {
                trip_id: 8,
                ..collaboration(BOB, "edit")
            }),
            Skip::TripNotFound,
        ),
        (booking, Skip::TripNotFound),
        (updated("edit", "edit"), Skip::LevelUnchanged),
        (updated("edit", "admin"), Skip::LevelChangedSince),
        (
            TripEvent::CollaboratorUpdated {
                collaboration: collaboration(CY, "edit"),
                old_level: "view".into(),
            },
            Skip::NotACollaborator,
        ),
        (
            TripEvent::CollaboratorRemoved(collaboration(BOB, "edit")),
            Skip::StillACollaborator,
        ),
    ];
    for (event, skip) in cases {
        let (store, outbox, inbox) = (MemoryStore::rome(), Outbox::default(), Inbox::default());
        let outcome = run(&store, Some(&outbox), &inbox, Some("msg_1"), &event);
        assert_eq!(
            outcome.unwrap(),
            TripOutcome::Skipped { skipped: skip },
            "{event:?}"
        );
        assert!(store.notifications.borrow().is_empty(), "{event:?}");
        assert!(outbox.attempts.borrow().is_empty(), "{event:?}");
    }
}

#[test]
fn level_changes_removals_and_bookings_notify_once_per_delivery() {
    let events = [
        TripEvent::CollaboratorUpdated {
            collaboration: collaboration(BOB, "edit"),
            old_level: "view".into(),
        },
        TripEvent::CollaboratorRemoved(collaboration(CY, "view")),
        TripEvent::BookingConfirmed(Booking {
            trip_id: 7,
            kind: BookingKind::Flight,
            booking_id: 3,
            status: "confirmed".into(),
        }),
        TripEvent::BookingCancelled(Booking {
            trip_id: 7,
            kind: BookingKind::Accommodation,
            booking_id: 4,
            status: "cancelled".into(),
        }),
    ];
    let kinds = [
        "trip_collaboration_updated",
        "trip_collaboration_removed",
        "booking_confirmed",
        "booking_cancelled",
    ];
    let (store, inbox) = (MemoryStore::rome(), Inbox::default());
    for (event, kind) in events.iter().zip(kinds) {
        let first = run(&store, None, &inbox, Some("msg_1"), event).unwrap();
        assert_eq!(first, notified(kind, true, None));
        let again = run(&store, None, &inbox, Some("msg_1"), event).unwrap();
        assert_eq!(again, notified(kind, false, None));
    }
    assert_eq!(store.kinds(), kinds);
    // A booking tells the trip's owner; the others the collaborator.
    let users: Vec<String> = store
        .notifications
        .borrow()
        .iter()
        .map(|n| n.user_id.clone())
        .collect();
    assert_eq!(users, [BOB, CY, ADA, ADA]);
}

const START: &str = "2027-05-02T09:00:00+00:00";

fn calendar_sync(user_id: &str, start_time: &str) -> TripEvent {
    TripEvent::CalendarSync(CalendarSync {
        user_id: user_id.into(),
        trip: CalendarTrip {
            trip_id: 7,
            name: "Rome".into(),
            destination: "Rome, Italy".into(),
            start_date: "2027-05-01".into(),
            end_date: "2027-05-08".into(),
        },
        items: vec![CalendarItem {
            id: 1,
            title: "Colosseum".into(),
            description: None,
            item_type: "activity".into(),
            location: Some("Colosseum".into()),
            start_time: Some(start_time.into()),
            end_time: Some("2027-05-02T11:00:00+00:00".into()),
            updated_at: "2026-11-25T10:00:00+00:00".into(),
        }],
    })
}

#[test]
fn a_members_itinerary_is_posted_as_the_deliverys_message() {
    for (user, webhook_id, message_id) in [
        (ADA, Some("msg_1"), "msg_1-calendar".to_owned()),
        (BOB, None, format!("calendar-7-{NOW}")),
    ] {
        let (store, inbox) = (MemoryStore::rome(), Inbox::default());
        let outcome = run(
            &store,
            None,
            &inbox,
            webhook_id,
            &calendar_sync(user, START),
        );
        assert_eq!(
            outcome.unwrap(),
            TripOutcome::Calendar {
                calendar: CalendarPosted {
                    events: 1,
                    status: 204
                }
            }
        );
        let posts = inbox.posts.borrow();
        let (id, timestamp, document) = &posts[0];
        assert_eq!((id, *timestamp), (&message_id, NOW));
        assert!(document.starts_with("BEGIN:VCALENDAR"), "{document}");
        assert!(document.contains("SUMMARY:Colosseum"), "{document}");
    }
}

#[test]
fn an_itinerary_is_posted_only_for_a_member_and_only_when_it_makes_a_document() {
    let (store, inbox) = (MemoryStore::rome(), Inbox::default());
    let outcome = run(
        &store,
        None,
        &inbox,
        Some("msg_1"),
        &calendar_sync(CY, START),
    );
    assert_eq!(
        outcome.unwrap(),
        TripOutcome::Skipped {
            skipped: Skip::NotAMember
        }
    );

    let error = run(
        &store,
        None,
        &inbox,
        Some("msg_1"),
        &calendar_sync(ADA, "tomorrow"),
    )
    .unwrap_err();
    assert_eq!(
        (error.status(), error.field()),
        (400, Some("items[0].start_time"))
    );
    assert!(inbox.posts.borrow().is_empty());
}

#[test]
fn outcomes_serialise_to_the_answers_fields() {
    let cases = [
        (
            TripOutcome::Skipped {
                skipped: Skip::LevelChangedSince,
            },
            json!({"skipped": "level_changed_since"}),
        ),
        (
            notified("booking_confirmed", false, None),
            json!({"notification": "booking_confirmed", "notified": false}),
        ),
        (
            notified("trip_collaboration_invite", true, sent("re_1")),
            json!({"notification": "trip_collaboration_invite", "notified": true, "email": {"sent": "re_1"}}),
        ),
        (
            notified(
                "trip_collaboration_invite",
                true,
                Some(EmailSent::NoAddress),
            ),
            json!({"notification": "trip_collaboration_invite", "notified": true, "email": "no_address"}),
        ),
        (
            TripOutcome::Calendar {
                calendar: CalendarPosted {
                    events: 2,
                    status: 200,
                },
            },
            json!({"calendar": {"events": 2, "status": 200}}),
        ),
    ];
    for (outcome, wire) in cases {
        assert_eq!(serde_json::to_value(&outcome).unwrap(), wire);
    }
}
