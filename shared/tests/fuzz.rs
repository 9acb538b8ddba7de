//! Property tests of the signature-header and envelope parsers: generated headers and bodies,
//! 60,000 + 20,000 cases. Whatever arrives, the answer is one of the documented statuses and
//! nothing panics; a signature is accepted only when it is right.
#![cfg(not(target_arch = "wasm32"))]

use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::fuzz::{self, NOW, SECRET};
use shared::http::Headers;
use shared::signature::{
    WebhookVerifier, HEADER_ID, HEADER_LEGACY_SIGNATURE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use shared::{
    serve, Capability, Delivery, EdgeConfig, EdgeError, EdgeFunction, Handled, WebhookSecret,
};

fn verifier(allow_legacy: bool) -> WebhookVerifier {
    let secrets = WebhookVerifier::parse_secrets(SECRET).expect("the test secret parses");
    WebhookVerifier::new(secrets).with_legacy(allow_legacy)
}

/// What a `webhook-signature` header might hold: well-formed entries with wrong MACs, entries of
/// other versions, base64 of other lengths, separators out of place, or anything at all.
fn signature_header() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        "v1,[A-Za-z0-9+/]{43}=",
        "v[0-9a],[A-Za-z0-9+/=]{0,60}",
        "v1,[A-Za-z0-9+/=,]{0,50}",
        fuzz::text(),
    ];
    prop::collection::vec(entry, 0..4).prop_map(|entries| entries.join(" "))
}

fn timestamp_header() -> impl Strategy<Value = String> {
    prop_oneof![
        (NOW - 600..NOW + 600).prop_map(|t| t.to_string()),
        "[0-9]{0,25}",
        fuzz::text(),
    ]
}

fn header_value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.85, fuzz::text())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60_000, ..ProptestConfig::default() })]

    /// Arbitrary `webhook-*` and legacy headers over arbitrary bodies are refused, never
    /// accepted and never a panic: a forged signature would have to guess HMAC-SHA256.
    #[test]
    fn made_up_signature_headers_are_refused(
        id in header_value(),
        timestamp in prop::option::weighted(0.9, timestamp_header()),
        signature in prop::option::weighted(0.9, signature_header()),
        legacy in prop::option::weighted(0.2, "[0-9a-f]{64}|[0-9a-fA-F]{0,70}"),
        allow_legacy in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut headers = Headers::new();
        for (name, value) in [
            (HEADER_ID, id),
            (HEADER_TIMESTAMP, timestamp),
            (HEADER_SIGNATURE, signature),
            (HEADER_LEGACY_SIGNATURE, legacy),
        ] {
            if let Some(value) = value {
                headers.append(name, value);
            }
        }
        let result = verifier(allow_legacy).verify(&headers, &body, NOW);
        prop_assert!(result.is_err(), "accepted {headers:?}");
        prop_assert_eq!(EdgeError::from(result.unwrap_err()).status(), 401);
    }

    /// A correctly signed delivery verifies, and changing any one byte of its body or its
    /// signature, or its id, makes it fail.
    #[test]
    fn only_the_signed_bytes_verify(
        id in "[A-Za-z0-9_-]{1,40}",
        age in -300_i64..=300,
        body in prop::collection::vec(any::<u8>(), 1..512),
        flip in any::<prop::sample::Index>(),
        bit in 0_u8..8,
        target in 0_u8..3,
    ) {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let timestamp = NOW - age;
        let signature = secret.sign(&id, timestamp, &body);
        let headers_for = |id: &str, signature: &str| {
            Headers::from_pairs([
                (HEADER_ID, id),
                (HEADER_TIMESTAMP, timestamp.to_string().as_str()),
                (HEADER_SIGNATURE, signature),
            ])
        };
        let verified = verifier(false).verify(&headers_for(&id, &signature), &body, NOW);
        prop_assert_eq!(verified.map(|v| v.webhook_id), Ok(Some(id.clone())));

        let (mut id, mut signature, mut body) = (id, signature, body);
        match target {
            0 => {
                let at = flip.index(body.len());
                body[at] ^= 1 << bit;
            }
            1 => {
                // Past "v1,": a change in the base64 of the MAC.
                let mut bytes = signature.into_bytes();
                let at = 3 + flip.index(bytes.len() - 3);
                bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
                signature = String::from_utf8(bytes).unwrap();
            }
            _ => id.push('x'),
        }
        prop_assert!(verifier(false).verify(&headers_for(&id, &signature), &body, NOW).is_err());
    }
}

/// Handles `echo.event` only, as the functions handle their own events.
struct Echo;

impl EdgeFunction for Echo {
    const NAME: &'static str = "echo";
    const REQUIRED: &'static [Capability] = &[Capability::WebhookSignatures];
    const OPTIONAL: &'static [Capability] = &[];
    const DEDUPLICATED: bool = false;
    type Event = ();
    type Outcome = Value;

    fn parse(&self, delivery: &Delivery, _: &EdgeConfig) -> Result<(), EdgeError> {
        match delivery.event.as_str() {
            "echo.event" => Ok(()),
            other => Err(EdgeError::UnsupportedEvent(other.to_owned())),
        }
    }

    async fn handle(
        &self,
        _: (),
        _: &Delivery,
        _: &EdgeConfig,
    ) -> Result<Handled<Value>, EdgeError> {
        Ok(Handled::Done(json!({})))
    }
}

fn envelope() -> impl Strategy<Value = Value> {
    let valid = json!({ "event": "echo.event", "record": { "id": 1 } });
    prop_oneof![
        3 => fuzz::broken_payload(valid.as_object().unwrap().clone()).prop_map(Value::Object),
        1 => fuzz::json(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// Any signed body, with any `X-Webhook-Event` and `X-Webhook-Attempt`, is answered 200,
    /// 400 or 422 with an error naming what is wrong; never 500.
    #[test]
    fn signed_bodies_get_a_documented_answer(
        body in envelope().prop_flat_map(fuzz::body_bytes),
        event_header in prop::option::weighted(0.2, prop_oneof![Just("echo.event".to_owned()), fuzz::text()]),
        attempt in prop::option::weighted(0.2, prop_oneof!["[0-9]{1,3}".prop_map(String::from), fuzz::text()]),
    ) {
        let mut request = fuzz::signed_request("/echo", "msg_fuzz", &body);
        if let Some(event) = &event_header {
            request = request.with_header("x-webhook-event", event);
        }
        if let Some(attempt) = &attempt {
            request = request.with_header("x-webhook-attempt", attempt);
        }
        let config = EdgeConfig::from_env(|name| (name == "WEBHOOK_SECRET").then(|| SECRET.to_owned()));
        let served = block_on(serve(&Echo, request, &config, &fuzz::context()));
        let status = served.response.status;
        prop_assert!([200, 400, 422].contains(&status), "{status} for {}", fuzz::shown(&body));
        let answer = served.response.json_body().expect("a JSON answer");
        if status != 200 {
            let code = answer["error"]["code"].as_str().unwrap_or_default();
            prop_assert!(!code.is_empty() && code != "internal_error", "{answer}");
        }
    }
}
