//! The I/O around the pure core: read the trip and the people through PostgREST, write
//! notifications, send the e-mail, post the calendar. Each step is safe to repeat, so a delivery
//! that failed half-way and is retried finishes without doing anything twice.

use crate::email::send_email;
use serde_json::{json, Value};
use shared::config::CalendarSyncConfig;
use shared::fetch::HttpRequest;
use shared::rest::ServiceRest;
use shared::upstream::{send, Quote};
use shared::{outcome, Capability, Delivery, EdgeConfig, EdgeError, Outcome};

use crate::calendar::{self, CalendarError};
use crate::events::{CalendarSync, Collaboration, TripEvent};
use crate::notifications::{self, Notification, Trip};

/// Handles one checked delivery (everything but `test.webhook`).
pub async fn handle(
    event: &TripEvent,
    delivery: &Delivery,
    config: &EdgeConfig,
) -> Result<Outcome, EdgeError> {
    let rest = ServiceRest::new(config.supabase()?);
    let handler = Handler {
        rest: &rest,
        config,
        delivery,
    };
    match event {
        // The commonest event, in bursts: its reads are one round trip.
        TripEvent::CollaboratorAdded(collaboration) => handler.invitation(collaboration).await,
        _ => match read_trip(&rest, event.trip_id()).await? {
            None => Ok(skipped("trip_not_found")),
            Some(trip) => handler.apply(event, &trip).await,
        },
    }
}

struct Handler<'a> {
    rest: &'a ServiceRest,
    config: &'a EdgeConfig,
    delivery: &'a Delivery,
}

impl Handler<'_> {
    fn webhook_id(&self) -> Option<&str> {
        self.delivery.webhook_id.as_deref()
    }

    /// Acts on what the database says now, not on what the payload says: a delivery may be
    /// stale (the row changed since the trigger fired) or, signed with a leaked secret, forged.
    /// What no longer holds is `skipped` with the reason.
    async fn apply(&self, event: &TripEvent, trip: &Trip) -> Result<Outcome, EdgeError> {
        let id = self.webhook_id();
        match event {
            TripEvent::CollaboratorAdded(collaboration) => self.invitation(collaboration).await,
            TripEvent::CollaboratorUpdated {
                collaboration,
                old_level,
            } => match notifications::level_change(trip, collaboration, old_level, id) {
                None => Ok(skipped("level_unchanged")),
                Some(notification) => match collaborator_level(self.rest, collaboration).await? {
                    None => Ok(skipped("not_a_collaborator")),
                    Some(level) if level != collaboration.permission_level => {
                        Ok(skipped("level_changed_since"))
                    }
                    Some(_) => self.notified(&notification).await,
                },
            },
            TripEvent::CollaboratorRemoved(collaboration) => {
                if collaborator_level(self.rest, collaboration)
                    .await?
                    .is_some()
                {
                    return Ok(skipped("still_a_collaborator"));
                }
                self.notified(&notifications::removal(trip, collaboration, id))
                    .await
            }
            TripEvent::BookingConfirmed(booking) => {
                self.notified(&notifications::booking(trip, booking, true, id))
                    .await
            }
            TripEvent::BookingCancelled(booking) => {
                self.notified(&notifications::booking(trip, booking, false, id))
                    .await
            }
            TripEvent::CalendarSync(sync) => self.sync_calendar(trip, sync).await,
        }
    }

    /// Inserts the notification unless this delivery inserted it already.
    async fn notify(&self, notification: &Notification) -> Result<bool, EdgeError> {
        let row = notification.row();
        let inserted = if notification.dedup_key.is_some() {
            self.rest
                .insert_new("notifications", "dedup_key", &row)
                .await?
        } else {
            let request = self.rest.from("notifications").insert(row.to_string());
            self.rest.rows(request).await?
        };
        Ok(!inserted.is_empty())
    }

    async fn notified(&self, notification: &Notification) -> Result<Outcome, EdgeError> {
        let inserted = self.notify(notification).await?;
        Ok(outcome([
            ("notification", json!(notification.kind)),
            ("notified", json!(inserted)),
        ]))
    }

    /// An invitation, from what `invitation_context` says now: the trip, the collaborator's
    /// current level (the one the invitation names), and both people's contact details.
    async fn invitation(&self, collaboration: &Collaboration) -> Result<Outcome, EdgeError> {
        let request = self.rest.rpc(
            "invitation_context",
            &json!({
                "p_trip_id": collaboration.trip_id,
                "p_user_id": collaboration.user_id,
                "p_added_by": collaboration.added_by,
            }),
        );
        let context = self.rest.execute(request).await?;
        let Some(trip) = trip_from_row(&context["trip"]) else {
            return Ok(skipped("trip_not_found"));
        };
        let Some(level) = context["permission_level"].as_str() else {
            return Ok(skipped("not_a_collaborator"));
        };
        let current = Collaboration {
            permission_level: level.to_owned(),
            ..collaboration.clone()
        };
        let people = People {
            inviter: contact_from_row(&context["inviter"]),
            invitee: contact_from_row(&context["invitee"]),
        };
        self.invite(&trip, &current, people).await
    }

    /// The invitation: the notification, then (when e-mail is configured) the e-mail. A retry
    /// after an e-mail failure finds the notification there and sends the e-mail with the same
    /// idempotency key, so the provider sends it at most once.
    async fn invite(
        &self,
        trip: &Trip,
        collaboration: &Collaboration,
        people: People,
    ) -> Result<Outcome, EdgeError> {
        let inviter_name = people
            .inviter
            .as_ref()
            .map_or("A fellow traveller", |contact| {
                contact.display_name.as_str()
            });
        let notification =
            notifications::invitation(trip, collaboration, inviter_name, self.webhook_id());
        let mut result = self.notified(&notification).await?;
        let email = if self.config.is_disabled(Capability::Email) {
            json!("disabled")
        } else {
            let email_config = self.config.email()?;
            match people.invitee {
                None => json!("no_address"),
                Some(contact) => {
                    let email = notifications::invitation_email(
                        &contact.email,
                        trip,
                        collaboration,
                        inviter_name,
                        self.config.app_url.as_deref(),
                    );
                    // Without a webhook-id (legacy signatures) one invitation per trip and user.
                    let delivery = self
                        .webhook_id()
                        .map_or_else(|| format!("trip-{}", trip.id), str::to_owned);
                    let key =
                        notifications::email_idempotency_key(&delivery, &collaboration.user_id);
                    let id = send_email(email_config, &email, &key).await?;
                    json!({ "sent": id })
                }
            }
        };
        result.insert("email".to_owned(), email);
        Ok(result)
    }

    /// The calendar of a member's trip. A payload that makes no valid document is a 400 whoever
    /// sent it; a valid one for someone who is no member of the trip is skipped.
    async fn sync_calendar(&self, trip: &Trip, sync: &CalendarSync) -> Result<Outcome, EdgeError> {
        let config = self.config.calendar_sync()?;
        let document =
            calendar::itinerary_calendar(&sync.trip, &sync.items, self.delivery.received_at)
                .map_err(|CalendarError { field, reason }| EdgeError::InvalidField {
                    field,
                    reason,
                })?;
        if !is_member(self.rest, trip, &sync.user_id).await? {
            return Ok(skipped("not_a_member"));
        }
        let message_id = match self.webhook_id() {
            Some(id) => format!("{id}-calendar"),
            None => format!(
                "calendar-{}-{}",
                sync.trip.trip_id, self.delivery.received_at
            ),
        };
        let status =
            post_calendar(config, &message_id, self.delivery.received_at, document).await?;
        Ok(outcome([(
            "calendar",
            json!({ "events": sync.items.len(), "status": status }),
        )]))
    }
}

/// POSTs the document to `CALENDAR_SYNC_URL`, signed with Standard Webhooks.
async fn post_calendar(
    config: &CalendarSyncConfig,
    message_id: &str,
    timestamp: i64,
    document: String,
) -> Result<u16, EdgeError> {
    let signature = config
        .secret
        .sign(message_id, timestamp, document.as_bytes());
    let request = HttpRequest {
        method: "POST",
        url: config.url.clone(),
        headers: vec![
            ("content-type", calendar::CONTENT_TYPE.to_owned()),
            ("webhook-id", message_id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ],
        body: Some(document),
    };
    let (status, _) = send("calendar", Quote::Code, request).await?;
    Ok(status)
}

fn skipped(reason: &str) -> Outcome {
    outcome([("skipped", json!(reason))])
}

/// The collaborator's level on the trip, if `collaboration.user_id` is one.
async fn collaborator_level(
    rest: &ServiceRest,
    collaboration: &Collaboration,
) -> Result<Option<String>, EdgeError> {
    let request = rest
        .from("trip_collaborators")
        .select("permission_level")
        .eq("trip_id", collaboration.trip_id.to_string())
        .eq("user_id", &collaboration.user_id);
    let rows = rest.rows(request).await?;
    Ok(rows
        .first()
        .and_then(|row| row.get("permission_level"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Whether `user_id` owns the trip or collaborates on it.
async fn is_member(rest: &ServiceRest, trip: &Trip, user_id: &str) -> Result<bool, EdgeError> {
    if trip.owner_id == user_id {
        return Ok(true);
    }
    let request = rest
        .from("trip_collaborators")
        .select("user_id")
        .eq("trip_id", trip.id.to_string())
        .eq("user_id", user_id);
    Ok(!rest.rows(request).await?.is_empty())
}

async fn read_trip(rest: &ServiceRest, trip_id: i64) -> Result<Option<Trip>, EdgeError> {
    let request = rest
        .from("trips")
        .select("id,name,destination,user_id")
        .eq("id", trip_id.to_string());
    let rows = rest.rows(request).await?;
    Ok(rows.first().and_then(trip_from_row))
}

/// A `trips` row with `id, name, destination, user_id`.
fn trip_from_row(row: &Value) -> Option<Trip> {
    let text = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or_default();
    Some(Trip {
        id: row.get("id")?.as_i64()?,
        name: text("name").to_owned(),
        destination: text("destination").to_owned(),
        owner_id: text("user_id").to_owned(),
    })
}

struct Contact {
    email: String,
    display_name: String,
}

/// Who sent an invitation and who receives it.
struct People {
    inviter: Option<Contact>,
    invitee: Option<Contact>,
}

/// A user's address and name as `get_user_contact()` gives them.
fn contact_from_row(row: &Value) -> Option<Contact> {
    let email = row.get("email")?.as_str()?.to_owned();
    let display_name = row
        .get("display_name")
        .and_then(Value::as_str)
        .unwrap_or(&email)
        .to_owned();
    Some(Contact {
        email,
        display_name,
    })
}
