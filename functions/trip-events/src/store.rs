//! [`TripStore`] through PostgREST, as the service role.

use serde_json::{json, Value};
use shared::rest::ServiceRest;
use shared::EdgeError;

use crate::events::Collaboration;
use crate::notifications::{Notification, Trip};
use crate::ports::{Contact, InvitationContext, TripStore};

pub struct RestStore(pub ServiceRest);

impl TripStore for RestStore {
    async fn trip(&self, trip_id: i64) -> Result<Option<Trip>, EdgeError> {
        let request = self
            .0
            .from("trips")
            .select("id,name,destination,user_id")
            .eq("id", trip_id.to_string());
        let rows = self.0.rows(request).await?;
        Ok(rows.first().and_then(trip_from_row))
    }

    async fn collaborator_level(
        &self,
        trip_id: i64,
        user_id: &str,
    ) -> Result<Option<String>, EdgeError> {
        let request = self
            .0
            .from("trip_collaborators")
            .select("permission_level")
            .eq("trip_id", trip_id.to_string())
            .eq("user_id", user_id);
        let rows = self.0.rows(request).await?;
        Ok(rows
            .first()
            .and_then(|row| row.get("permission_level"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    async fn invitation_context(
        &self,
        collaboration: &Collaboration,
    ) -> Result<InvitationContext, EdgeError> {
        let request = self.0.rpc(
            "invitation_context",
            &json!({
                "p_trip_id": collaboration.trip_id,
                "p_user_id": collaboration.user_id,
                "p_added_by": collaboration.added_by,
            }),
        );
        let context = self.0.execute(request).await?;
        Ok(InvitationContext {
            trip: trip_from_row(&context["trip"]),
            permission_level: context["permission_level"].as_str().map(str::to_owned),
            inviter: contact_from_row(&context["inviter"]),
            invitee: contact_from_row(&context["invitee"]),
        })
    }

    async fn insert_notification(&self, notification: &Notification) -> Result<bool, EdgeError> {
        let row = notification.row();
        let inserted = if notification.dedup_key.is_some() {
            self.0
                .insert_new("notifications", "dedup_key", &row)
                .await?
        } else {
            let request = self.0.from("notifications").insert(row.to_string());
            self.0.rows(request).await?
        };
        Ok(!inserted.is_empty())
    }
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

/// A `get_user_contact()` row; the name falls back to the address.
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
