//! The `handle` export as the Deno shim calls it, running as wasm in headless Chromium.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn handle_export_keeps_the_shared_contract() {
    shared::wasm::test_support::check_handle_export("ai-processing", |request, env| {
        ai_processing::Handler::new(env).handle(request)
    })
    .await;
}

/// The local OpenAI stand-in's key.
const OPENAI_KEY: &str = "sk-local-stand-in-not-a-real-key";

/// A whole embedding event through the wasm build, its I/O going out through the browser's
/// fetch: `scripts/test` serves `/rest/v1` and the OpenAI stand-in, and inserts the memories.
#[wasm_bindgen_test]
async fn memories_are_embedded_through_postgrest_and_openai_from_wasm() {
    use shared::wasm::test_support::{
        edge_runtime, env, json, response, settle, signed_request,
        LOCAL_SERVICE_ROLE_KEY as SERVICE_ROLE_KEY, TEST_SECRET as SECRET,
    };

    // Compile-time values: the test runs in a browser, which has no environment.
    let Some(rest_url) = option_env!("TRIPSAGE_WASM_REST_URL") else {
        panic!("TRIPSAGE_WASM_REST_URL is not set: run ./scripts/test, which serves /rest/v1 for this test");
    };
    let Some(stand_ins) = option_env!("TRIPSAGE_WASM_STAND_INS_URL") else {
        panic!("TRIPSAGE_WASM_STAND_INS_URL is not set: run ./scripts/test, which serves the OpenAI stand-in");
    };
    let Some(memories) = option_env!("TRIPSAGE_WASM_MEMORIES") else {
        panic!(
            "TRIPSAGE_WASM_MEMORIES (comma-separated memory ids) is not set: run ./scripts/test"
        );
    };
    let openai_url = format!("{stand_ins}/openai/v1");
    let env = env(&[
        ("SUPABASE_URL", rest_url),
        ("SUPABASE_SERVICE_ROLE_KEY", SERVICE_ROLE_KEY),
        ("WEBHOOK_SECRET", SECRET),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("OPENAI_BASE_URL", &openai_url),
    ]);
    let count = memories.split(',').count();
    let body = format!(r#"{{"event":"memory.generate.embedding","memory_ids":[{memories}]}}"#);
    let webhook_id = format!("msg_wasm_embed_{}", js_sys::Date::now() as u64);
    let request = signed_request(
        "http://127.0.0.1:54321/ai-processing",
        SECRET,
        &webhook_id,
        &body,
    );
    // Accepted at once; the embedding is handed to the edge runtime's `waitUntil`.
    let kept = edge_runtime();
    let promise = ai_processing::Handler::new(env).handle(request);
    let (status, answer) = json(response(promise).await.expect("handle")).await;
    assert_eq!(
        (status, &answer["background"]),
        (202, &serde_json::json!("embeddings")),
        "{answer}"
    );
    assert_eq!(settle(&kept).await, 1, "one piece of work for waitUntil");

    let rows: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{rest_url}/rest/v1/memories?select=id,metadata&id=in.({memories})&embedding=not.is.null"
        ))
        .header("apikey", SERVICE_ROLE_KEY)
        .header("authorization", format!("Bearer {SERVICE_ROLE_KEY}"))
        .send()
        .await
        .expect("read back through /rest/v1")
        .json()
        .await
        .expect("JSON rows");
    assert_eq!(rows.as_array().map(Vec::len), Some(count), "{rows}");
    assert_eq!(
        rows[0]["metadata"]["embedding_model"],
        "text-embedding-3-small"
    );
}
