//! The `handle` export as the Deno shim calls it, running as wasm in headless Chromium.
#![cfg(target_arch = "wasm32")]

use shared::wasm::test_support::{env, json, signed_request};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const URL: &str = "http://127.0.0.1:54321/ai-processing";

#[wasm_bindgen_test]
async fn answers_a_signed_test_webhook() {
    let request = signed_request(URL, SECRET, "msg_wasm_1", r#"{"event":"test.webhook"}"#);
    let response = ai_processing::handle(request, env(&[("WEBHOOK_SECRET", SECRET)]))
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["webhook_id"], "msg_wasm_1");
    assert_eq!(body["function"], "ai-processing");
}

#[wasm_bindgen_test]
async fn refuses_a_wrong_secret_and_unknown_events() {
    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let forged = signed_request(URL, other, "msg_wasm_2", r#"{"event":"test.webhook"}"#);
    let (status, body) = json(
        ai_processing::handle(forged, env(&[("WEBHOOK_SECRET", SECRET)]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_signature");

    let unknown = signed_request(URL, SECRET, "msg_wasm_3", r#"{"event":"nothing.here"}"#);
    let (status, body) = json(
        ai_processing::handle(unknown, env(&[("WEBHOOK_SECRET", SECRET)]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "unsupported_event");
}
