//! `trip-events`: collaboration and booking notifications, e-mail, and calendar sync for TripSage.
//! Events arrive as signed webhooks from Postgres.

pub mod calendar;
mod calendar_endpoint;
pub mod email;
pub mod events;
pub mod handlers;
pub mod notifications;
pub mod ports;
mod store;

use events::TripEvent;
use handlers::TripOutcome;
use shared::{Capability, Delivery, EdgeConfig, EdgeError, EdgeFunction, Handled};

pub struct TripEvents;

impl EdgeFunction for TripEvents {
    const NAME: &'static str = "trip-events";
    const REQUIRED: &'static [Capability] = &[Capability::WebhookSignatures, Capability::Supabase];
    const OPTIONAL: &'static [Capability] = &[Capability::Email, Capability::CalendarSync];
    const DEDUPLICATED: bool = true;
    type Event = TripEvent;
    type Outcome = TripOutcome;

    fn parse(&self, delivery: &Delivery, config: &EdgeConfig) -> Result<TripEvent, EdgeError> {
        let event = TripEvent::parse(&delivery.event, &delivery.payload)?;
        if let TripEvent::CalendarSync(_) = event {
            config.calendar_sync()?;
        }
        config.supabase()?;
        Ok(event)
    }

    async fn handle(
        &self,
        event: TripEvent,
        delivery: &Delivery,
        config: &EdgeConfig,
    ) -> Result<Handled<TripOutcome>, EdgeError> {
        handlers::handle(&event, delivery, config)
            .await
            .map(Handled::Done)
    }
}

#[cfg(target_arch = "wasm32")]
shared::export_handler!(TripEvents);
