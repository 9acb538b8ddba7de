//! Property tests of ai-processing's payload parsers: the embedding and chat payloads as the
//! triggers send them, broken in generated ways (20,000 cases). With OpenAI configured but not
//! Supabase, a payload that parses reaches the configuration check (503 `not_configured`);
//! everything else is 400 or 422, never 500.
#![cfg(not(target_arch = "wasm32"))]

use ai_processing::AiProcessing;
use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::fuzz::{self, SECRET};
use shared::{serve, EdgeConfig};

fn valid_payloads() -> Vec<Value> {
    let chat = |event: &str| {
        json!({
            "event": event, "message_id": 41, "user_id": "0b9a7c1e-5d7b-4f4e-9a51-0d1c2b3a4f50",
            "session_id": "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c", "role": "user",
            "content": "We love quiet beaches and want to stay under $200 a night",
        })
    };
    vec![
        json!({ "event": "memory.generate.embedding", "memory_ids": [1, 2, 3] }),
        json!({ "event": "memory.generate.embedding", "source": "sweep" }),
        json!({ "event": "chat.message.process", "message_ids": [41, 42] }),
        chat("chat.message.process"),
        chat("chat.message.created"),
    ]
}

fn broken_delivery() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(valid_payloads())
        .prop_flat_map(|payload| {
            fuzz::broken_payload(payload.as_object().unwrap().clone()).prop_map(Value::Object)
        })
        .prop_flat_map(fuzz::body_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn broken_payloads_are_refused_before_anything_is_done(body in broken_delivery()) {
        let config = EdgeConfig::from_env(|name| match name {
            "WEBHOOK_SECRET" => Some(SECRET.to_owned()),
            "OPENAI_API_KEY" => Some("sk-fuzz".to_owned()),
            _ => None,
        });
        let request = fuzz::signed_request("/ai-processing", "msg_fuzz", &body);
        let served = block_on(serve(&AiProcessing, request, &config, &fuzz::context()));
        let status = served.response.status;
        let answer = served.response.json_body().expect("a JSON answer");
        let code = answer["error"]["code"].as_str().unwrap_or_default();
        match status {
            503 => prop_assert_eq!(code, "not_configured"),
            400 => prop_assert!(
                code == "invalid_json" || answer["error"]["field"].is_string(),
                "{answer} for {}", fuzz::shown(&body)
            ),
            422 => prop_assert_eq!(code, "unsupported_event"),
            _ => prop_assert!(false, "{status} {answer} for {}", fuzz::shown(&body)),
        }
    }
}
