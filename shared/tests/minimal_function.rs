//! The function of README's "Writing another function", served: the recipe compiles, answers as
//! the contract says, and is the same text as the README's (the test at the end compares them).

// recipe:start
use serde::Serialize;
use shared::{Capability, Delivery, EdgeConfig, EdgeError, EdgeFunction, Fields, Handled};

/// Counts a trip's views: `trip.viewed` with the trip's id.
pub struct TripViews;

/// What a view comes to: the answer's fields after `ok`, `event` and `webhook_id`.
#[derive(Serialize)]
pub struct Viewed {
    viewed: i64,
}

impl EdgeFunction for TripViews {
    const NAME: &'static str = "trip-views";
    const REQUIRED: &'static [Capability] = &[Capability::WebhookSignatures];
    const OPTIONAL: &'static [Capability] = &[];
    const DEDUPLICATED: bool = false;
    type Event = i64;
    type Outcome = Viewed;

    fn parse(&self, delivery: &Delivery, _: &EdgeConfig) -> Result<i64, EdgeError> {
        match delivery.event.as_str() {
            "trip.viewed" => Fields::new(&delivery.payload).id("trip_id"),
            other => Err(EdgeError::UnsupportedEvent(other.to_owned())),
        }
    }

    async fn handle(
        &self,
        trip_id: i64,
        _: &Delivery,
        _: &EdgeConfig,
    ) -> Result<Handled<Viewed>, EdgeError> {
        Ok(Handled::Done(Viewed { viewed: trip_id }))
    }
}

#[cfg(target_arch = "wasm32")]
shared::export_handler!(TripViews);
// recipe:end

// Natively: the wasm tests run in a browser, where the export above is what counts.
#[cfg(not(target_arch = "wasm32"))]
mod served {
    use super::*;
    use serde_json::{json, Value};
    use shared::{serve, IncomingRequest, RequestContext, WebhookSecret};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_700_000_000;

    fn answer(body: &str) -> (u16, Value) {
        let signature = WebhookSecret::parse(SECRET)
            .unwrap()
            .sign("msg_1", NOW, body.as_bytes());
        let request = IncomingRequest::new("POST", "/trip-views")
            .with_header("webhook-id", "msg_1")
            .with_header("webhook-timestamp", &NOW.to_string())
            .with_header("webhook-signature", &signature)
            .with_body(body);
        let config =
            EdgeConfig::from_env(|name| (name == "WEBHOOK_SECRET").then(|| SECRET.to_owned()));
        let context = RequestContext {
            now: NOW,
            request_id: "req-1".into(),
        };
        let served = futures::executor::block_on(serve(&TripViews, request, &config, &context));
        let body = served.response.json_body().unwrap();
        (served.response.status, body)
    }

    #[test]
    fn the_minimal_function_answers_as_the_contract_says() {
        let (status, body) = answer(r#"{"event":"trip.viewed","trip_id":7}"#);
        assert_eq!(
            (status, &body["ok"], &body["viewed"]),
            (200, &json!(true), &json!(7))
        );
        assert_eq!(body["webhook_id"], "msg_1");

        let (status, body) = answer(r#"{"event":"trip.viewed","trip_id":"7"}"#);
        assert_eq!((status, &body["error"]["field"]), (400, &json!("trip_id")));
        let (status, body) = answer(r#"{"event":"trip.viewed"}"#);
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!("missing_field"))
        );
        let (status, body) = answer(r#"{"event":"trip.deleted","trip_id":7}"#);
        assert_eq!(
            (status, &body["error"]["code"]),
            (422, &json!("unsupported_event"))
        );
        let (status, body) = answer(r#"{"event":"test.webhook"}"#);
        assert_eq!((status, &body["function"]), (200, &json!("trip-views")));
    }

    #[test]
    fn the_readme_shows_this_recipe() {
        let this = include_str!("minimal_function.rs");
        let recipe = this
            .split("// recipe:start\n")
            .nth(1)
            .and_then(|rest| rest.split("// recipe:end").next())
            .expect("the recipe's markers");
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("```rust\n{recipe}```")),
            "README.md's \"Writing another function\" must show exactly the recipe of {}",
            file!()
        );
    }
}
