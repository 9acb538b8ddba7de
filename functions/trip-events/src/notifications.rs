//! What trip-events tells people: the `notifications` rows and the invitation e-mail.
//! Pure: the handlers fetch the trip and the people, these functions decide the words.

use crate::email::Email;
use serde_json::{json, Value};

use crate::events::{Booking, Collaboration};

/// The trip as the handlers read it from `trips`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    pub id: i64,
    pub name: String,
    pub destination: String,
    pub owner_id: String,
}

/// One `notifications` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub user_id: String,
    pub kind: &'static str,
    pub title: String,
    pub message: String,
    pub metadata: Value,
    /// `<webhook-id>:<user_id>:<type>`: the same delivery never notifies twice.
    pub dedup_key: Option<String>,
}

impl Notification {
    fn new(
        user_id: &str,
        kind: &'static str,
        title: String,
        message: String,
        metadata: Value,
        webhook_id: Option<&str>,
    ) -> Self {
        Self {
            user_id: user_id.to_owned(),
            kind,
            title,
            message,
            metadata,
            dedup_key: webhook_id.map(|id| format!("{id}:{user_id}:{kind}")),
        }
    }

    /// The row PostgREST inserts.
    pub fn row(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "type": self.kind,
            "title": self.title,
            "message": self.message,
            "metadata": self.metadata,
            "dedup_key": self.dedup_key,
        })
    }
}

fn collaboration_metadata(trip: &Trip, collaboration: &Collaboration) -> Value {
    json!({
        "trip_id": trip.id,
        "trip_name": trip.name,
        "destination": trip.destination,
        "permission_level": collaboration.permission_level,
        "added_by": collaboration.added_by,
    })
}

/// `trip.collaborator.added` → `trip_collaboration_invite` to the collaborator.
pub fn invitation(
    trip: &Trip,
    collaboration: &Collaboration,
    inviter: &str,
    webhook_id: Option<&str>,
) -> Notification {
    Notification::new(
        &collaboration.user_id,
        "trip_collaboration_invite",
        format!("Trip invitation: {}", trip.name),
        format!(
            "{inviter} invited you to collaborate on \"{}\" ({}) with {} access.",
            trip.name, trip.destination, collaboration.permission_level
        ),
        collaboration_metadata(trip, collaboration),
        webhook_id,
    )
}

/// `trip.collaborator.updated` → `trip_collaboration_updated`, or nothing when the level is the
/// same.
pub fn level_change(
    trip: &Trip,
    collaboration: &Collaboration,
    old_level: &str,
    webhook_id: Option<&str>,
) -> Option<Notification> {
    if old_level == collaboration.permission_level {
        return None;
    }
    let mut metadata = collaboration_metadata(trip, collaboration);
    metadata["old_permission_level"] = json!(old_level);
    Some(Notification::new(
        &collaboration.user_id,
        "trip_collaboration_updated",
        format!("Trip access changed: {}", trip.name),
        format!(
            "Your access to \"{}\" ({}) changed from {old_level} to {}.",
            trip.name, trip.destination, collaboration.permission_level
        ),
        metadata,
        webhook_id,
    ))
}

/// `trip.collaborator.removed` → `trip_collaboration_removed`.
pub fn removal(
    trip: &Trip,
    collaboration: &Collaboration,
    webhook_id: Option<&str>,
) -> Notification {
    Notification::new(
        &collaboration.user_id,
        "trip_collaboration_removed",
        format!("Removed from trip: {}", trip.name),
        format!(
            "You no longer have access to \"{}\" ({}).",
            trip.name, trip.destination
        ),
        collaboration_metadata(trip, collaboration),
        webhook_id,
    )
}

/// `booking.confirmed` / `booking.<table>.cancelled` → `booking_confirmed` / `booking_cancelled`
/// to the trip's owner.
pub fn booking(
    trip: &Trip,
    booking: &Booking,
    confirmed: bool,
    webhook_id: Option<&str>,
) -> Notification {
    let (kind, headline, verb) = if confirmed {
        ("booking_confirmed", "Booking confirmed", "is confirmed")
    } else {
        ("booking_cancelled", "Booking cancelled", "was cancelled")
    };
    Notification::new(
        &trip.owner_id,
        kind,
        format!("{headline}: {}", trip.name),
        format!(
            "Your {} booking for \"{}\" ({}) {verb}.",
            booking.kind.noun(),
            trip.name,
            trip.destination
        ),
        json!({
            "trip_id": trip.id,
            "trip_name": trip.name,
            "destination": trip.destination,
            "booking_type": booking.kind.table(),
            "booking_id": booking.booking_id,
            "status": booking.status,
        }),
        webhook_id,
    )
}

/// The invitation e-mail; the link is `{APP_URL}/trips/{id}` when `APP_URL` is set.
pub fn invitation_email(
    to: &str,
    trip: &Trip,
    collaboration: &Collaboration,
    inviter: &str,
    app_url: Option<&str>,
) -> Email {
    let link = app_url.map(|url| format!("{}/trips/{}", url.trim_end_matches('/'), trip.id));
    let level = &collaboration.permission_level;
    let mut text = format!(
        "{inviter} invited you to collaborate on \"{}\", a trip to {}, with {level} access.\n",
        trip.name, trip.destination
    );
    let mut html = format!(
        "<p>{} invited you to collaborate on <strong>{}</strong>, a trip to {}, with {} access.</p>",
        escape_html(inviter),
        escape_html(&trip.name),
        escape_html(&trip.destination),
        escape_html(level)
    );
    if let Some(link) = &link {
        text.push_str(&format!("\nOpen the trip: {link}\n"));
        html.push_str(&format!(
            "<p><a href=\"{0}\">Open the trip</a></p>",
            escape_html(link)
        ));
    }
    Email {
        to: to.to_owned(),
        subject: format!("{inviter} invited you to \"{}\"", trip.name),
        text,
        html,
    }
}

/// The provider's idempotency key for one delivery's e-mail to one user.
pub fn email_idempotency_key(webhook_id: &str, user_id: &str) -> String {
    format!("trip-invite/{webhook_id}/{user_id}")
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::BookingKind;

    fn trip() -> Trip {
        Trip {
            id: 42,
            name: "Rome <in> spring".into(),
            destination: "Rome, Italy".into(),
            owner_id: "owner".into(),
        }
    }

    fn collaboration(level: &str) -> Collaboration {
        Collaboration {
            trip_id: 42,
            user_id: "ada".into(),
            added_by: "owner".into(),
            permission_level: level.into(),
        }
    }

    #[test]
    fn an_invitation_names_trip_destination_inviter_and_level() {
        let n = invitation(&trip(), &collaboration("edit"), "Grace", Some("msg_1"));
        assert_eq!(n.kind, "trip_collaboration_invite");
        assert_eq!(n.user_id, "ada");
        assert_eq!(
            n.message,
            "Grace invited you to collaborate on \"Rome <in> spring\" (Rome, Italy) with edit access."
        );
        assert_eq!(
            n.metadata,
            json!({"trip_id": 42, "trip_name": "Rome <in> spring", "destination": "Rome, Italy",
                   "permission_level": "edit", "added_by": "owner"})
        );
        assert_eq!(
            n.dedup_key.as_deref(),
            Some("msg_1:ada:trip_collaboration_invite")
        );
        assert_eq!(n.row()["type"], "trip_collaboration_invite");
    }

    #[test]
    fn an_unchanged_level_notifies_nobody() {
        assert_eq!(
            level_change(&trip(), &collaboration("edit"), "edit", None),
            None
        );
        let n = level_change(&trip(), &collaboration("admin"), "view", None).unwrap();
        assert_eq!(n.metadata["old_permission_level"], "view");
        assert!(n.message.contains("from view to admin"));
        assert_eq!(n.dedup_key, None);
    }

    #[test]
    fn bookings_go_to_the_owner() {
        let booking = Booking {
            trip_id: 42,
            kind: BookingKind::Accommodation,
            booking_id: 9,
            status: "cancelled".into(),
        };
        let n = super::booking(&trip(), &booking, false, Some("msg_2"));
        assert_eq!((n.user_id.as_str(), n.kind), ("owner", "booking_cancelled"));
        assert_eq!(
            n.message,
            "Your accommodation booking for \"Rome <in> spring\" (Rome, Italy) was cancelled."
        );
        assert_eq!(n.metadata["booking_type"], "accommodations");
    }

    #[test]
    fn the_invitation_email_escapes_html_and_links_the_trip() {
        let email = invitation_email(
            "ada@example.com",
            &trip(),
            &collaboration("view"),
            "Grace & co",
            Some("https://app.example.com/"),
        );
        assert_eq!(
            email.subject,
            "Grace & co invited you to \"Rome <in> spring\""
        );
        assert!(email.html.contains("Grace &amp; co invited you"));
        assert!(email
            .html
            .contains("<strong>Rome &lt;in&gt; spring</strong>"));
        assert!(email
            .html
            .contains("<a href=\"https://app.example.com/trips/42\">Open the trip</a>"));
        assert!(email
            .text
            .contains("Open the trip: https://app.example.com/trips/42"));
        let no_link = invitation_email("a@b.c", &trip(), &collaboration("view"), "G", None);
        assert!(!no_link.text.contains("http"));
        assert_eq!(
            email_idempotency_key("msg_1", "ada"),
            "trip-invite/msg_1/ada"
        );
    }
}
