//! The `handle` export as the Deno shim calls it, running as wasm in headless Chromium.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn handle_export_keeps_the_shared_contract() {
    shared::wasm::test_support::check_handle_export("ai-processing", ai_processing::handle).await;
}
