//! Benchmark only: the Standard Webhooks verification the functions run on every delivery, as a
//! single export, so `bench/signature.ts` can time it in wasm without adding exports to the
//! production modules. `examples/native.rs` times the same function natively.

use shared::http::Headers;
use shared::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use shared::WebhookVerifier;
use wasm_bindgen::prelude::wasm_bindgen;

/// Verifies one delivery as a function does: parses `WEBHOOK_SECRET`, then checks the headers
/// against the body at `now` (Unix seconds). True when the signature is valid.
#[wasm_bindgen]
pub fn verify_delivery(
    secrets: &str,
    webhook_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: f64,
) -> bool {
    let Ok(secrets) = WebhookVerifier::parse_secrets(secrets) else {
        return false;
    };
    let headers = Headers::from_pairs([
        (HEADER_ID, webhook_id),
        (HEADER_TIMESTAMP, timestamp),
        (HEADER_SIGNATURE, signature),
    ]);
    WebhookVerifier::new(secrets)
        .verify(&headers, body, now as i64)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::WebhookSecret;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn accepts_a_valid_signature_and_refuses_a_changed_body() {
        let body = b"{\"event\":\"test.webhook\"}";
        let signature = WebhookSecret::parse(SECRET)
            .unwrap()
            .sign("msg_1", 1_800_000_000, body);
        let verify =
            |body: &[u8]| verify_delivery(SECRET, "msg_1", "1800000000", &signature, body, 1.8e9);
        assert!(verify(body));
        assert!(!verify(b"{\"event\":\"test.webhooK\"}"));
    }
}
