//! What the handlers need from outside: the database (read through PostgREST), the e-mail
//! provider and the calendar endpoint. The real implementations are `store::RestStore`,
//! `email::ResendMailer` and `calendar_endpoint::SignedCalendar`; the handlers' tests use
//! in-memory ones.

use shared::EdgeError;

use crate::email::Email;
use crate::events::Collaboration;
use crate::notifications::{Notification, Trip};

/// A user's address and name as `get_user_contact()` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub email: String,
    pub display_name: String,
}

/// What `invitation_context()` says now about an invitation: the trip, the collaborator's
/// current level, and both people's contact details. `None` where there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvitationContext {
    pub trip: Option<Trip>,
    pub permission_level: Option<String>,
    pub inviter: Option<Contact>,
    pub invitee: Option<Contact>,
}

/// The TripSage database, as trip-events reads and writes it.
#[allow(async_fn_in_trait)]
pub trait TripStore {
    /// The trip, if it still exists.
    async fn trip(&self, trip_id: i64) -> Result<Option<Trip>, EdgeError>;
    /// The user's level on the trip, if the user collaborates on it.
    async fn collaborator_level(
        &self,
        trip_id: i64,
        user_id: &str,
    ) -> Result<Option<String>, EdgeError>;
    /// The invitation's context, in one round trip.
    async fn invitation_context(
        &self,
        collaboration: &Collaboration,
    ) -> Result<InvitationContext, EdgeError>;
    /// Inserts the notification unless one with its `dedup_key` is there; whether it did.
    async fn insert_notification(&self, notification: &Notification) -> Result<bool, EdgeError>;
}

/// The e-mail provider.
#[allow(async_fn_in_trait)]
pub trait Mailer {
    /// Sends `email`; the provider's message id. The same `idempotency_key` again answers the
    /// first message's id instead of sending another.
    async fn send(&self, email: &Email, idempotency_key: &str) -> Result<String, EdgeError>;
}

/// The endpoint itineraries are synced to.
#[allow(async_fn_in_trait)]
pub trait CalendarEndpoint {
    /// Posts the iCalendar `document` as message `message_id` at `timestamp`; the answer's status.
    async fn post(
        &self,
        message_id: &str,
        timestamp: i64,
        document: String,
    ) -> Result<u16, EdgeError>;
}
