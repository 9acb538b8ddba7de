//! The shared core running as wasm in headless Chromium: signature verification and the
//! conversion between JS `Request`/`Response` and the plain Rust types.
#![cfg(target_arch = "wasm32")]

use js_sys::Uint8Array;
use shared::http::{Body, Headers, OutgoingResponse, MAX_BODY_BYTES};
use shared::signature::{SignatureError, WebhookSecret, WebhookVerifier};
use shared::wasm::JsStrings;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{Request, RequestInit};

wasm_bindgen_test_configure!(run_in_browser);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str = r#"{"test": 2432232314}"#;

fn post(url: &str, body: &JsValue, headers: &[(&str, &str)]) -> Request {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(body);
    let request = Request::new_with_str_and_init(url, &init).unwrap();
    for (name, value) in headers {
        request.headers().set(name, value).unwrap();
    }
    request
}

#[wasm_bindgen_test]
fn verifies_the_standard_webhooks_vector_as_wasm() {
    let verifier = WebhookVerifier::new(vec![WebhookSecret::parse(SECRET).unwrap()]);
    let headers = Headers::from_pairs([
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ]);
    assert!(verifier
        .verify(&headers, BODY.as_bytes(), 1_614_265_330)
        .is_ok());
    assert_eq!(
        verifier.verify(&headers, b"{\"test\": 2432232315}", 1_614_265_330),
        Err(SignatureError::NoMatchingSignature)
    );
    assert!(matches!(
        verifier.verify(&headers, BODY.as_bytes(), 1_614_265_330 + 600),
        Err(SignatureError::TimestampTooOld { .. })
    ));
}

#[wasm_bindgen_test]
fn signs_with_the_clock_from_js() {
    // The clock on wasm comes from JS; SystemTime would panic here.
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let headers = Headers::from_pairs([
        ("webhook-id", "msg_now"),
        ("webhook-timestamp", now.to_string().as_str()),
        (
            "webhook-signature",
            secret.sign("msg_now", now, b"{}").as_str(),
        ),
    ]);
    let verified = WebhookVerifier::new(vec![secret])
        .verify(&headers, b"{}", now)
        .unwrap();
    assert_eq!(verified.timestamp, Some(now));
}

#[wasm_bindgen_test]
async fn converts_a_js_request() {
    let request = post(
        "http://127.0.0.1:54321/functions/v1/trip-events/sub?x=1",
        &JsValue::from_str(BODY),
        &[("Webhook-Id", "msg_1"), ("X-Webhook-Event", "test.webhook")],
    );
    let incoming = shared::wasm::read_request(&request, &JsStrings::default())
        .await
        .unwrap();
    assert_eq!(incoming.method, "POST");
    assert_eq!(incoming.path, "/functions/v1/trip-events/sub");
    assert_eq!(incoming.headers.get("webhook-id"), Some("msg_1"));
    assert_eq!(
        incoming.headers.get("x-webhook-event"),
        Some("test.webhook")
    );
    assert_eq!(incoming.body, Body::Bytes(BODY.as_bytes().to_vec()));
}

#[wasm_bindgen_test]
async fn keeps_body_bytes_exact() {
    // Bytes that are not UTF-8 must reach the verifier unchanged.
    let bytes: Vec<u8> = (0..=255).collect();
    let request = post(
        "http://localhost/f",
        &Uint8Array::from(bytes.as_slice()).into(),
        &[],
    );
    let incoming = shared::wasm::read_request(&request, &JsStrings::default())
        .await
        .unwrap();
    assert_eq!(incoming.body, Body::Bytes(bytes));
}

#[wasm_bindgen_test]
async fn stops_reading_an_oversized_body() {
    let big = vec![b'a'; MAX_BODY_BYTES + 1];
    let request = post(
        "http://localhost/f",
        &Uint8Array::from(big.as_slice()).into(),
        &[],
    );
    let incoming = shared::wasm::read_request(&request, &JsStrings::default())
        .await
        .unwrap();
    assert_eq!(incoming.body, Body::TooLarge);

    let exact = vec![b'a'; MAX_BODY_BYTES];
    let request = post(
        "http://localhost/f",
        &Uint8Array::from(exact.as_slice()).into(),
        &[],
    );
    let incoming = shared::wasm::read_request(&request, &JsStrings::default())
        .await
        .unwrap();
    assert!(matches!(incoming.body, Body::Bytes(ref b) if b.len() == MAX_BODY_BYTES));
}

#[wasm_bindgen_test]
async fn converts_a_response() {
    let mut plain = OutgoingResponse::json(422, &serde_json::json!({"error": {"code": "x"}}));
    plain.headers.set("allow", "POST, OPTIONS");
    let response = shared::wasm::write_response(&plain, &JsStrings::default()).unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers().get("allow").unwrap().as_deref(),
        Some("POST, OPTIONS")
    );
    let text = JsFuture::from(response.text().unwrap()).await.unwrap();
    assert_eq!(text.as_string().unwrap(), r#"{"error":{"code":"x"}}"#);

    let empty =
        shared::wasm::write_response(&OutgoingResponse::empty(204), &JsStrings::default()).unwrap();
    assert_eq!(empty.status(), 204);
    assert!(empty.body().is_none());
}
