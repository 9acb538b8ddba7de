//! Our verifier against the Standard Webhooks reference library for Rust: what it signs we
//! accept, and what we sign it accepts.
#![cfg(not(target_arch = "wasm32"))]

use shared::http::Headers;
use shared::signature::{SignatureError, WebhookSecret, WebhookVerifier};
use standardwebhooks::Webhook;

const SECRET: &str = "whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==";
const NOW: i64 = 1_764_000_000;

fn headers(id: &str, timestamp: i64, signature: &str) -> Headers {
    Headers::from_pairs([
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string().as_str()),
        ("webhook-signature", signature),
    ])
}

fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(WebhookVerifier::parse_secrets(SECRET).unwrap())
}

#[test]
fn accepts_what_the_reference_library_signs() {
    let reference = Webhook::new(SECRET).unwrap();
    for body in [
        r#"{"event":"test.webhook"}"#,
        r#"{"event":"trip.collaborator.added","trip_id":42,"data":{"name":"Zürich 🏔"}}"#,
        "",
    ] {
        let signature = reference.sign("msg_ref", NOW, body.as_bytes()).unwrap();
        let verified = verifier()
            .verify(&headers("msg_ref", NOW, &signature), body.as_bytes(), NOW)
            .unwrap();
        assert_eq!(verified.webhook_id.as_deref(), Some("msg_ref"));

        let mut tampered = body.as_bytes().to_vec();
        tampered.push(b' ');
        assert_eq!(
            verifier().verify(&headers("msg_ref", NOW, &signature), &tampered, NOW),
            Err(SignatureError::NoMatchingSignature)
        );
        assert!(matches!(
            verifier().verify(
                &headers("msg_ref", NOW, &signature),
                body.as_bytes(),
                NOW + 600
            ),
            Err(SignatureError::TimestampTooOld { .. })
        ));
    }
}

#[test]
fn the_reference_library_accepts_what_we_sign() {
    let body = br#"{"event":"calendar.sync.request"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign("msg_ours", now, body);
    let mut map = http::HeaderMap::new();
    map.insert("webhook-id", "msg_ours".parse().unwrap());
    map.insert("webhook-timestamp", now.to_string().parse().unwrap());
    map.insert("webhook-signature", signature.parse().unwrap());
    Webhook::new(SECRET).unwrap().verify(body, &map).unwrap();
}
