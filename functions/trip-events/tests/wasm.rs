//! The `handle` export as the Deno shim calls it, running as wasm in headless Chromium.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn handle_export_keeps_the_shared_contract() {
    shared::wasm::test_support::check_handle_export("trip-events", |request, env| {
        trip_events::Handler::new(env).handle(request)
    })
    .await;
}

/// A whole event through the wasm build, with its I/O going out through the browser's fetch:
/// `scripts/test` serves the local stack's `/rest/v1` over the test database and creates a user
/// and a trip for it.
#[wasm_bindgen_test]
async fn a_collaborator_removal_is_handled_through_postgrest_from_wasm() {
    use shared::wasm::test_support::{
        env, json, response, signed_request, LOCAL_SERVICE_ROLE_KEY as SERVICE_ROLE_KEY,
        TEST_SECRET as SECRET,
    };

    // Compile-time values: the test runs in a browser, which has no environment.
    let Some(rest_url) = option_env!("TRIPSAGE_WASM_REST_URL") else {
        panic!("TRIPSAGE_WASM_REST_URL is not set: run ./scripts/test, which serves /rest/v1 for this test");
    };
    let Some(fixture) = option_env!("TRIPSAGE_WASM_FIXTURE") else {
        panic!("TRIPSAGE_WASM_FIXTURE (\"<user id> <trip id>\") is not set: run ./scripts/test");
    };
    let (user, trip) = fixture.split_once(' ').expect("<user id> <trip id>");
    let env = env(&[
        ("SUPABASE_URL", rest_url),
        ("SUPABASE_SERVICE_ROLE_KEY", SERVICE_ROLE_KEY),
        ("WEBHOOK_SECRET", SECRET),
    ]);
    let webhook_id = format!("msg_wasm_{}", js_sys::Date::now() as u64);
    let body = format!(
        r#"{{"event":"trip.collaborator.removed","trip_id":{trip},"user_id":"{user}","added_by":"{user}","permission_level":"view"}}"#
    );
    let handler = trip_events::Handler::new(env);
    let deliver = || {
        let request = signed_request(
            "http://127.0.0.1:54321/trip-events",
            SECRET,
            &webhook_id,
            &body,
        );
        response(handler.handle(request))
    };

    let (status, answer) = json(deliver().await.expect("handle")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["notification"], "trip_collaboration_removed");
    assert_eq!(answer["notified"], true);
    let (status, again) = json(deliver().await.expect("handle")).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &serde_json::json!(true))
    );

    let dedup_key = format!("{webhook_id}:{user}:trip_collaboration_removed");
    let rows: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{rest_url}/rest/v1/notifications?select=type,metadata&dedup_key=eq.{dedup_key}"
        ))
        .header("apikey", SERVICE_ROLE_KEY)
        .header("authorization", format!("Bearer {SERVICE_ROLE_KEY}"))
        .send()
        .await
        .expect("read back through /rest/v1")
        .json()
        .await
        .expect("JSON rows");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["metadata"]["trip_id"].to_string(), trip);
}
