//! The seam between JavaScript and Rust: converts the shim's `Request` and environment into plain
//! Rust values, runs [`serve`], logs, and converts the result back into a `Response`. Nothing else
//! touches JS types.

use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, Request, Response, ResponseInit, Url};

use crate::config::EdgeConfig;
use crate::function::{serve, EdgeFunction, RequestContext};
use crate::http::{Body, Headers, IncomingRequest, OutgoingResponse, MAX_BODY_BYTES};

/// Handles one request for `function`; `env` is the shim's `Deno.env.toObject()`.
pub async fn handle_request<F: EdgeFunction>(
    function: &F,
    request: Request,
    env: JsValue,
) -> Result<Response, JsValue> {
    let started = js_sys::Date::now();
    let incoming = read_request(&request).await?;
    let config = EdgeConfig::from_env(|name| env_var(&env, name));
    let context = RequestContext {
        now: (started / 1000.0).floor() as i64,
        request_id: new_request_id(),
    };
    let mut served = serve(function, incoming, &config, &context).await;
    served.log.duration_ms = ((js_sys::Date::now() - started) * 1000.0).round() / 1000.0;
    web_sys::console::log_1(&served.log.to_json().into());
    write_response(&served.response)
}

/// Converts a JS `Request`, reading at most [`MAX_BODY_BYTES`] of its body.
pub async fn read_request(request: &Request) -> Result<IncomingRequest, JsValue> {
    let path = Url::new(&request.url())?.pathname();
    let headers = read_headers(&request.headers())?;
    let body = if IncomingRequest::declares_too_large_body(&headers) {
        Body::TooLarge
    } else {
        read_body(request).await?
    };
    Ok(IncomingRequest {
        method: request.method().to_ascii_uppercase(),
        path,
        headers,
        body,
    })
}

fn read_headers(js_headers: &web_sys::Headers) -> Result<Headers, JsValue> {
    let mut headers = Headers::new();
    let entries = js_sys::try_iter(js_headers)?
        .ok_or_else(|| JsValue::from_str("Headers is not iterable"))?;
    for entry in entries {
        let pair: Array = entry?.unchecked_into();
        let name = pair.get(0).as_string().unwrap_or_default();
        let value = pair.get(1).as_string().unwrap_or_default();
        headers.append(&name, value);
    }
    Ok(headers)
}

async fn read_body(request: &Request) -> Result<Body, JsValue> {
    let Some(stream) = request.body() else {
        return Ok(Body::Bytes(Vec::new()));
    };
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await?;
        if Reflect::get(&chunk, &"done".into())?.is_truthy() {
            return Ok(Body::Bytes(bytes));
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())?.unchecked_into();
        if bytes.len() + value.length() as usize > MAX_BODY_BYTES {
            // Stop reading: the rest of an oversized body is never buffered.
            let _ = JsFuture::from(reader.cancel()).await;
            return Ok(Body::TooLarge);
        }
        bytes.extend_from_slice(&value.to_vec());
    }
}

/// Converts a plain response into a JS `Response`.
pub fn write_response(response: &OutgoingResponse) -> Result<Response, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in response.headers.iter() {
        headers.append(name, value)?;
    }
    let init = ResponseInit::new();
    init.set_status(response.status);
    init.set_headers(&headers);
    if response.body.is_empty() {
        // 204 and friends must not have a body at all, not even an empty one.
        Response::new_with_opt_str_and_init(None, &init)
    } else {
        let body = Uint8Array::from(response.body.as_slice());
        Response::new_with_opt_buffer_source_and_init(Some(&body), &init)
    }
}

fn env_var(env: &JsValue, name: &str) -> Option<String> {
    if !env.is_object() {
        return None;
    }
    Reflect::get(env, &JsValue::from_str(name))
        .ok()?
        .as_string()
}

fn new_request_id() -> String {
    let part = || (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    format!("{:08x}{:08x}", part(), part())
}

/// Builders for wasm tests of a function's `handle` export.
#[cfg(feature = "test-support")]
pub mod test_support {
    use js_sys::{Object, Reflect};
    use wasm_bindgen::JsValue;
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Request, RequestInit, Response};

    use crate::signature::WebhookSecret;

    /// The Supabase CLI's well-known local service-role key, which the local stack accepts.
    pub const LOCAL_SERVICE_ROLE_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU";
    /// The webhook secret the functions' wasm tests sign with.
    pub const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A POST signed with Standard Webhooks at the current JS time.
    pub fn signed_request(url: &str, secret: &str, webhook_id: &str, body: &str) -> Request {
        let now = (js_sys::Date::now() / 1000.0) as i64;
        let signature = WebhookSecret::parse(secret).expect("test secret").sign(
            webhook_id,
            now,
            body.as_bytes(),
        );
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(body));
        let request = Request::new_with_str_and_init(url, &init).expect("request");
        let headers = request.headers();
        for (name, value) in [
            ("webhook-id", webhook_id),
            ("webhook-timestamp", &now.to_string()),
            ("webhook-signature", &signature),
            ("content-type", "application/json"),
        ] {
            headers.set(name, value).expect("header");
        }
        request
    }

    /// An environment object like the shim's `Deno.env.toObject()`.
    pub fn env(pairs: &[(&str, &str)]) -> JsValue {
        let env = Object::new();
        for (name, value) in pairs {
            Reflect::set(&env, &(*name).into(), &(*value).into()).expect("env");
        }
        env.into()
    }

    /// The contract every function's `handle` export keeps, checked as wasm: a signed
    /// `test.webhook` is answered, a wrong secret and an unknown event are refused.
    pub async fn check_handle_export<F, Fut>(function: &str, handle: F)
    where
        F: Fn(Request, JsValue) -> Fut,
        Fut: std::future::Future<Output = Result<Response, JsValue>>,
    {
        const SECRET: &str = TEST_SECRET;
        const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let url = format!("http://127.0.0.1:54321/{function}");
        let call = |secret: &str, id: &str, body: &str| {
            let request = signed_request(&url, secret, id, body);
            handle(request, env(&[("WEBHOOK_SECRET", SECRET)]))
        };

        let response = call(SECRET, "msg_wasm_1", r#"{"event":"test.webhook"}"#).await;
        let (status, body) = json(response.expect("handle")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], true);
        assert_eq!(body["webhook_id"], "msg_wasm_1");
        assert_eq!(body["function"], function);

        let forged = call(OTHER_SECRET, "msg_wasm_2", r#"{"event":"test.webhook"}"#).await;
        let (status, body) = json(forged.expect("handle")).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "invalid_signature");

        let unknown = call(SECRET, "msg_wasm_3", r#"{"event":"nothing.here"}"#).await;
        let (status, body) = json(unknown.expect("handle")).await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["code"], "unsupported_event");
    }

    /// Status and JSON body of a response.
    pub async fn json(response: Response) -> (u16, serde_json::Value) {
        let text = JsFuture::from(response.text().expect("text"))
            .await
            .expect("body")
            .as_string()
            .unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (response.status(), value)
    }
}
