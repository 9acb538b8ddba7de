//! What trip-events does with a checked event, over its ports ([`TripStore`], [`Mailer`],
//! [`CalendarEndpoint`]). Each step is safe to repeat, so a delivery that failed half-way and is
//! retried finishes without doing anything twice.

use serde::Serialize;
use shared::rest::ServiceRest;
use shared::{Capability, Delivery, EdgeConfig, EdgeError};

use crate::calendar::{self, CalendarError};
use crate::calendar_endpoint::SignedCalendar;
use crate::email::ResendMailer;
use crate::events::{CalendarSync, Collaboration, TripEvent};
use crate::notifications::{self, Notification, Trip};
use crate::ports::{CalendarEndpoint, Contact, Mailer, TripStore};
use crate::store::RestStore;

/// What a delivery came to: the fields of its answer after `ok`, `event` and `webhook_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TripOutcome {
    /// Nothing done: what the database says now no longer calls for it.
    Skipped { skipped: Skip },
    /// A notification of `notification`'s kind; `notified` is false when this delivery had
    /// inserted it before. An invitation says what became of its e-mail.
    Notified {
        notification: &'static str,
        notified: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<EmailSent>,
    },
    /// The itinerary posted to the calendar endpoint.
    Calendar { calendar: CalendarPosted },
}

/// Why a delivery was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    TripNotFound,
    LevelUnchanged,
    NotACollaborator,
    LevelChangedSince,
    StillACollaborator,
    NotAMember,
}

/// What became of an invitation's e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailSent {
    /// E-mail is not configured.
    Disabled,
    /// The invitee has no address.
    NoAddress,
    /// Sent (or sent before with the same idempotency key): the provider's message id.
    Sent(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CalendarPosted {
    pub events: usize,
    pub status: u16,
}

/// Handles one checked delivery (everything but `test.webhook`) with the real ports.
pub async fn handle(
    event: &TripEvent,
    delivery: &Delivery,
    config: &EdgeConfig,
) -> Result<TripOutcome, EdgeError> {
    let store = RestStore(ServiceRest::new(config.supabase()?));
    let mailer = ResendMailer(config);
    let handler = Handler {
        store: &store,
        mailer: (!config.is_disabled(Capability::Email)).then_some(&mailer),
        calendar: &SignedCalendar(config),
        app_url: config.app_url.as_deref(),
        delivery,
    };
    handler.handle(event).await
}

/// One delivery's handling: the ports it acts through and what it knows of the delivery.
pub struct Handler<'a, S, M, C> {
    pub store: &'a S,
    /// `None` when e-mail is disabled.
    pub mailer: Option<&'a M>,
    pub calendar: &'a C,
    /// The app's base URL, for links in e-mail.
    pub app_url: Option<&'a str>,
    pub delivery: &'a Delivery,
}

impl<S: TripStore, M: Mailer, C: CalendarEndpoint> Handler<'_, S, M, C> {
    pub async fn handle(&self, event: &TripEvent) -> Result<TripOutcome, EdgeError> {
        match event {
            // The commonest event, in bursts: its reads are one round trip.
            TripEvent::CollaboratorAdded(collaboration) => self.invitation(collaboration).await,
            _ => match self.store.trip(event.trip_id()).await? {
                None => Ok(skipped(Skip::TripNotFound)),
                Some(trip) => self.apply(event, &trip).await,
            },
        }
    }

    fn webhook_id(&self) -> Option<&str> {
        self.delivery.webhook_id.as_deref()
    }

    /// Acts on what the database says now, not on what the payload says: a delivery may be
    /// stale (the row changed since the trigger fired) or, signed with a leaked secret, forged.
    /// What no longer holds is skipped with the reason.
    async fn apply(&self, event: &TripEvent, trip: &Trip) -> Result<TripOutcome, EdgeError> {
        let id = self.webhook_id();
        match event {
            TripEvent::CollaboratorAdded(collaboration) => self.invitation(collaboration).await,
            TripEvent::CollaboratorUpdated {
                collaboration,
                old_level,
            } => match notifications::level_change(trip, collaboration, old_level, id) {
                None => Ok(skipped(Skip::LevelUnchanged)),
                Some(notification) => match self.level_of(collaboration).await? {
                    None => Ok(skipped(Skip::NotACollaborator)),
                    Some(level) if level != collaboration.permission_level => {
                        Ok(skipped(Skip::LevelChangedSince))
                    }
                    Some(_) => self.notified(&notification, None).await,
                },
            },
            TripEvent::CollaboratorRemoved(collaboration) => {
                if self.level_of(collaboration).await?.is_some() {
                    return Ok(skipped(Skip::StillACollaborator));
                }
                let notification = notifications::removal(trip, collaboration, id);
                self.notified(&notification, None).await
            }
            TripEvent::BookingConfirmed(booking) => {
                let notification = notifications::booking(trip, booking, true, id);
                self.notified(&notification, None).await
            }
            TripEvent::BookingCancelled(booking) => {
                let notification = notifications::booking(trip, booking, false, id);
                self.notified(&notification, None).await
            }
            TripEvent::CalendarSync(sync) => self.sync_calendar(trip, sync).await,
        }
    }

    async fn level_of(&self, collaboration: &Collaboration) -> Result<Option<String>, EdgeError> {
        self.store
            .collaborator_level(collaboration.trip_id, &collaboration.user_id)
            .await
    }

    /// Inserts the notification unless this delivery inserted it already.
    async fn notified(
        &self,
        notification: &Notification,
        email: Option<EmailSent>,
    ) -> Result<TripOutcome, EdgeError> {
        Ok(TripOutcome::Notified {
            notification: notification.kind,
            notified: self.store.insert_notification(notification).await?,
            email,
        })
    }

    /// An invitation, from what the database says now: the trip, the collaborator's current
    /// level (the one the invitation names), and both people's contact details. The
    /// notification comes first, then (when e-mail is configured) the e-mail: a retry after an
    /// e-mail failure finds the notification there and sends the e-mail with the same
    /// idempotency key, so the provider sends it at most once.
    async fn invitation(&self, collaboration: &Collaboration) -> Result<TripOutcome, EdgeError> {
        let context = self.store.invitation_context(collaboration).await?;
        let Some(trip) = context.trip else {
            return Ok(skipped(Skip::TripNotFound));
        };
        let Some(level) = context.permission_level else {
            return Ok(skipped(Skip::NotACollaborator));
        };
        let current = Collaboration {
            permission_level: level,
            ..collaboration.clone()
        };
        let inviter = context
            .inviter
            .as_ref()
            .map_or("A fellow traveller", |contact| {
                contact.display_name.as_str()
            });
        let notification = notifications::invitation(&trip, &current, inviter, self.webhook_id());
        let inserted = self.store.insert_notification(&notification).await?;
        let email = match (self.mailer, context.invitee) {
            (None, _) => EmailSent::Disabled,
            (Some(_), None) => EmailSent::NoAddress,
            (Some(mailer), Some(invitee)) => EmailSent::Sent(
                self.invite(mailer, &invitee, &trip, &current, inviter)
                    .await?,
            ),
        };
        Ok(TripOutcome::Notified {
            notification: notification.kind,
            notified: inserted,
            email: Some(email),
        })
    }

    async fn invite(
        &self,
        mailer: &M,
        invitee: &Contact,
        trip: &Trip,
        collaboration: &Collaboration,
        inviter: &str,
    ) -> Result<String, EdgeError> {
        let email = notifications::invitation_email(
            &invitee.email,
            trip,
            collaboration,
            inviter,
            self.app_url,
        );
        // Without a webhook-id (legacy signatures) one invitation per trip and user.
        let delivery = self
            .webhook_id()
            .map_or_else(|| format!("trip-{}", trip.id), str::to_owned);
        let key = notifications::email_idempotency_key(&delivery, &collaboration.user_id);
        mailer.send(&email, &key).await
    }

    /// The calendar of a member's trip. A payload that makes no valid document is a 400 whoever
    /// sent it; a valid one for someone who is no member of the trip is skipped.
    async fn sync_calendar(
        &self,
        trip: &Trip,
        sync: &CalendarSync,
    ) -> Result<TripOutcome, EdgeError> {
        let received_at = self.delivery.received_at;
        let document = calendar::itinerary_calendar(&sync.trip, &sync.items, received_at)
            .map_err(|CalendarError { field, reason }| EdgeError::InvalidField { field, reason })?;
        let member = trip.owner_id == sync.user_id
            || self
                .store
                .collaborator_level(trip.id, &sync.user_id)
                .await?
                .is_some();
        if !member {
            return Ok(skipped(Skip::NotAMember));
        }
        let message_id = match self.webhook_id() {
            Some(id) => format!("{id}-calendar"),
            None => format!("calendar-{}-{received_at}", sync.trip.trip_id),
        };
        let status = self
            .calendar
            .post(&message_id, received_at, document)
            .await?;
        Ok(TripOutcome::Calendar {
            calendar: CalendarPosted {
                events: sync.items.len(),
                status,
            },
        })
    }
}

fn skipped(skip: Skip) -> TripOutcome {
    TripOutcome::Skipped { skipped: skip }
}

#[cfg(test)]
#[path = "handlers_tests.rs"]
mod tests;
