//! `ai-processing`: embeddings for `memories` and travel-preference extraction from chat for
//! TripSage. Events arrive as signed webhooks from Postgres.

mod chat;
pub mod clock;
pub mod embeddings;
mod handlers;
pub mod openai;
mod rounds;
#[cfg(test)]
mod test_doubles;

pub use handlers::{events, AiEvent, AiOutcome};
pub mod preferences;

use shared::{Capability, Delivery, EdgeConfig, EdgeError, EdgeFunction, Handled};

pub struct AiProcessing;

impl EdgeFunction for AiProcessing {
    const NAME: &'static str = "ai-processing";
    const REQUIRED: &'static [Capability] = &[
        Capability::WebhookSignatures,
        Capability::Supabase,
        Capability::OpenAi,
    ];
    const OPTIONAL: &'static [Capability] = &[];
    const DEDUPLICATED: bool = true;
    type Event = AiEvent;
    type Outcome = AiOutcome;

    fn parse(&self, delivery: &Delivery, config: &EdgeConfig) -> Result<AiEvent, EdgeError> {
        AiEvent::parse(delivery, config)
    }

    async fn handle(
        &self,
        event: AiEvent,
        _: &Delivery,
        config: &EdgeConfig,
    ) -> Result<Handled<AiOutcome>, EdgeError> {
        Ok(handlers::accept(event, config))
    }
}

#[cfg(target_arch = "wasm32")]
shared::export_handler!(AiProcessing);
