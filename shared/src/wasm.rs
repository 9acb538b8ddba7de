//! The seam between JavaScript and Rust. A [`Worker`] is made once per edge-runtime worker from
//! its environment (which is fixed for the worker's life); for every request it converts the
//! shim's `Request` into plain Rust values, runs [`serve`], logs, and converts the result back into
//! a `Response`. Nothing else touches JS types.
//!
//! Each crossing costs, so the request is read with one `get` per header the contract reads (not
//! by iterating every header), a body of declared length with one `arrayBuffer()`, header names
//! and constant values cross as JS strings made once per worker, and the log line is written from
//! a microtask: `console.log` called from a wasm frame costs several times what it costs from
//! JavaScript.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::{Function, Promise, Reflect, Uint8Array};
use serde_json::Value as JsonValue;
use wasm_bindgen::prelude::{wasm_bindgen, Closure};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{ReadableStreamDefaultReader, Response, ResponseInit};

// What [`export_handler!`] expands to names these.
pub use web_sys::Request;

use crate::config::EdgeConfig;
use crate::function::{
    finish, serve, Background, EdgeFunction, RequestContext, RequestLog, REQUEST_HEADERS,
    RESPONSE_CONSTANTS,
};
use crate::http::{url_path, Body, Headers, IncomingRequest, OutgoingResponse, MAX_BODY_BYTES};
use crate::signature::{HEADER_LEGACY_SIGNATURE, HEADER_SIGNATURE};

/// One function configured for one worker.
pub struct Worker<F> {
    function: F,
    config: EdgeConfig,
    console: JsValue,
    console_log: Function,
    strings: JsStrings,
    /// `EdgeRuntime` and its `waitUntil`, which keeps the worker alive for background work: on
    /// the hosted edge runtime. Elsewhere (plain Deno, a browser) it does nothing and the work
    /// simply runs on.
    edge_runtime: JsValue,
    wait_until: Function,
    /// Request ids: this worker's random prefix and a count, unique without asking JS each time.
    id_prefix: u32,
    requests: Cell<u32>,
}

impl<F: EdgeFunction + 'static> Worker<F> {
    /// `env` is the shim's `Deno.env.toObject()`.
    pub fn new(function: F, env: &JsValue) -> Self {
        let config = EdgeConfig::from_env(|name| env_var(env, name));
        let console = Reflect::get(&js_sys::global(), &"console".into()).unwrap_or_default();
        let console_log = method_of(&console, "log");
        let edge_runtime =
            Reflect::get(&js_sys::global(), &"EdgeRuntime".into()).unwrap_or_default();
        let wait_until = method_of(&edge_runtime, "waitUntil");
        Self {
            function,
            config,
            console,
            console_log,
            edge_runtime,
            wait_until,
            strings: JsStrings::default(),
            id_prefix: (js_sys::Math::random() * f64::from(u32::MAX)) as u32,
            requests: Cell::new(0),
        }
    }

    fn new_request_id(&self) -> String {
        let count = self.requests.get().wrapping_add(1);
        self.requests.set(count);
        // Sixteen hex digits, written without `format!`: core's formatting machinery would be
        // compiled on a worker's first request just for this.
        let mut id = String::with_capacity(16);
        for word in [self.id_prefix, count] {
            for shift in (0..32).step_by(4).rev() {
                id.push(char::from(
                    b"0123456789abcdef"[(word >> shift) as usize & 0xf],
                ));
            }
        }
        id
    }

    /// Answers a request whose body has been read: its `Response` when serving needs no I/O
    /// (refusals, `/health`, `test.webhook`), else a promise of it.
    fn answer(
        self: &Rc<Self>,
        incoming: IncomingRequest,
        started: f64,
    ) -> Result<JsValue, JsValue> {
        let worker = Rc::clone(self);
        let mut answering = Box::pin(async move { worker.serve(incoming, started).await });
        let mut context = Context::from_waker(Waker::noop());
        match answering.as_mut().poll(&mut context) {
            Poll::Ready(response) => response.map(JsValue::from),
            // Polled again from the task, which registers a real waker before anything can
            // resolve.
            Poll::Pending => {
                Ok(future_to_promise(async move { answering.await.map(JsValue::from) }).into())
            }
        }
    }

    async fn serve(
        self: &Rc<Self>,
        incoming: IncomingRequest,
        started: f64,
    ) -> Result<Response, JsValue> {
        let context = RequestContext {
            now: (started / 1000.0).floor() as i64,
            request_id: self.new_request_id(),
        };
        let mut served = serve(&self.function, incoming, &self.config, &context).await;
        served.log.duration_ms = elapsed_ms(started);
        let line = JsValue::from(served.log.to_json());
        queue_microtask(self.console_log.bind1(&self.console, &line).unchecked_ref());
        if let Some(background) = served.background.take() {
            self.run_in_background(background, served.log.clone());
        }
        write_response(&served.response, &self.strings)
    }

    /// Runs a delivery's background work after its answer, under `EdgeRuntime.waitUntil` where
    /// there is one, and logs how it ended.
    fn run_in_background(self: &Rc<Self>, background: Background<JsonValue>, accepted: RequestLog) {
        let worker = Rc::clone(self);
        let started = js_sys::Date::now();
        let running = future_to_promise(async move {
            let mut log = finish(background, &worker.config, &accepted).await;
            log.duration_ms = elapsed_ms(started);
            let line = JsValue::from(log.to_json());
            // Never a rejection: without `waitUntil` nothing would handle it.
            let _ = worker.console_log.call1(&worker.console, &line);
            Ok(JsValue::UNDEFINED)
        });
        let _ = self.wait_until.call1(&self.edge_runtime, &running);
    }
}

/// Milliseconds since `started` (a `Date.now()`), to the microsecond.
fn elapsed_ms(started: f64) -> f64 {
    ((js_sys::Date::now() - started) * 1000.0).round() / 1000.0
}

/// What the shim's `Handler` holds: the worker, and the callback that takes a request's body
/// once `arrayBuffer()` has read it.
pub struct Seam<F> {
    worker: Rc<Worker<F>>,
    /// Owned by JavaScript, so a read still pending when the `Handler` is dropped can finish.
    on_body: Function,
    /// `Promise.prototype.then`, looked up once.
    then: Function,
}

impl<F: EdgeFunction + 'static> Seam<F> {
    pub fn new(function: F, env: &JsValue) -> Self {
        let worker = Rc::new(Worker::new(function, env));
        let on_body = {
            let worker = Rc::clone(&worker);
            let on_body: Closure<dyn FnMut(Request, JsValue, JsValue) -> Result<JsValue, JsValue>> =
                Closure::new(move |request: Request, started: JsValue, buffer: JsValue| {
                    let started = started.as_f64().unwrap_or_else(js_sys::Date::now);
                    let body = checked(Uint8Array::new(&buffer).to_vec());
                    worker.answer(read_head(&request, body, &worker.strings)?, started)
                });
            on_body.into_js_value().unchecked_into()
        };
        let then = method_of(&Promise::resolve(&JsValue::NULL), "then");
        Self {
            worker,
            on_body,
            then,
        }
    }

    /// Answers one request: its `Response`, or a promise of it.
    pub fn handle(&self, request: Request) -> Result<JsValue, JsValue> {
        let started = js_sys::Date::now();
        if !request.method().eq_ignore_ascii_case("POST") {
            let head = read_head(&request, Body::empty(), &self.worker.strings)?;
            return self.worker.answer(head, started);
        }
        let headers: HeaderList = request.headers().unchecked_into();
        let length = self
            .worker
            .strings
            .with("content-length", |name| headers.get(name))?;
        match length.as_deref().map(declared_length) {
            Some(Some(length)) if length <= MAX_BODY_BYTES as u64 => {
                // Read whole, then served from the callback: no future is needed for the body.
                let bound = self
                    .on_body
                    .bind2(&JsValue::NULL, &request, &started.into());
                let read = request.array_buffer()?;
                self.then.call1(&read, &bound)
            }
            Some(Some(_)) => {
                let head = read_head(&request, Body::TooLarge, &self.worker.strings)?;
                self.worker.answer(head, started)
            }
            // No usable length: read chunk by chunk, stopping at the limit.
            Some(None) | None => {
                let worker = Rc::clone(&self.worker);
                Ok(future_to_promise(async move {
                    let incoming = read_request(&request, &worker.strings).await?;
                    worker.answer(incoming, started)
                })
                .into())
            }
        }
    }
}

/// Exports `$function` (a unit struct implementing [`EdgeFunction`]) to JavaScript as the class
/// `Handler`: `new Handler(Deno.env.toObject())` once per worker, then
/// `handler.handle(request)` for every request.
#[macro_export]
macro_rules! export_handler {
    ($function:ident) => {
        /// The function as its Deno shim sees it: configured once from the worker's
        /// environment, then called for every request.
        #[::wasm_bindgen::prelude::wasm_bindgen]
        pub struct Handler($crate::wasm::Seam<$function>);

        #[::wasm_bindgen::prelude::wasm_bindgen]
        impl Handler {
            #[wasm_bindgen(constructor)]
            pub fn new(env: ::wasm_bindgen::JsValue) -> Handler {
                Handler($crate::wasm::Seam::new($function, &env))
            }

            /// The `Response` to `request`, or a promise of it.
            pub fn handle(
                &self,
                request: $crate::wasm::Request,
            ) -> ::std::result::Result<::wasm_bindgen::JsValue, ::wasm_bindgen::JsValue> {
                self.0.handle(request)
            }
        }
    };
}

/// `Content-Length` as a number of bytes; `None` when it is not one.
fn declared_length(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Converts a JS `Request`: the headers the contract reads and, for a POST, at most
/// [`MAX_BODY_BYTES`] of its body (read chunk by chunk).
pub async fn read_request(
    request: &Request,
    strings: &JsStrings,
) -> Result<IncomingRequest, JsValue> {
    let incoming = read_head(request, Body::empty(), strings)?;
    if incoming.method != "POST" {
        return Ok(incoming);
    }
    let body = if IncomingRequest::declares_too_large_body(&incoming.headers) {
        Body::TooLarge
    } else {
        read_stream(request).await?
    };
    Ok(IncomingRequest { body, ..incoming })
}

/// Method, path and the headers the contract reads, with `body`.
fn read_head(
    request: &Request,
    body: Body,
    strings: &JsStrings,
) -> Result<IncomingRequest, JsValue> {
    let js_headers: HeaderList = request.headers().unchecked_into();
    let mut headers = Headers::new();
    for name in REQUEST_HEADERS {
        // The legacy signature is looked at only when there is no Standard Webhooks one.
        if name == HEADER_LEGACY_SIGNATURE && headers.get(HEADER_SIGNATURE).is_some() {
            continue;
        }
        if let Some(value) = strings.with(name, |name| js_headers.get(name))? {
            headers.append(name, value);
        }
    }
    Ok(IncomingRequest {
        method: request.method().to_ascii_uppercase(),
        path: url_path(&request.url()).to_owned(),
        headers,
        body,
    })
}

fn checked(bytes: Vec<u8>) -> Body {
    if bytes.len() > MAX_BODY_BYTES {
        Body::TooLarge
    } else {
        Body::Bytes(bytes)
    }
}

/// A body of unknown length, chunk by chunk, abandoned as soon as it passes the limit.
async fn read_stream(request: &Request) -> Result<Body, JsValue> {
    let Some(stream) = request.body() else {
        return Ok(Body::empty());
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
pub fn write_response(
    response: &OutgoingResponse,
    strings: &JsStrings,
) -> Result<Response, JsValue> {
    let init = ResponseInit::new();
    init.set_status(response.status);
    // Headers appended to the new response, not given in `init`: Deno converts an init's
    // `Headers` as a sequence, which costs several times the appends.
    let js_response = match std::str::from_utf8(&response.body) {
        // 204 and friends must not have a body at all, not even an empty one.
        _ if response.body.is_empty() => Response::new_with_opt_str_and_init(None, &init),
        // Bodies are JSON: as a string they cross cheaper than as bytes.
        Ok(text) => Response::new_with_opt_str_and_init(Some(text), &init),
        Err(_) => {
            let bytes = Uint8Array::from(response.body.as_slice());
            Response::new_with_opt_buffer_source_and_init(Some(&bytes), &init)
        }
    }?;
    let headers: HeaderList = js_response.headers().unchecked_into();
    for (name, value) in response.headers.iter() {
        strings.with(name, |name| {
            strings.with(value, |value| headers.append(name, value))
        })?;
    }
    Ok(js_response)
}

/// JS copies of the strings that cross on every request (the header names the contract reads
/// and writes, the constant header values), made once per worker: each then crosses as a
/// reference rather than as bytes decoded anew.
pub struct JsStrings(Vec<(&'static str, JsValue)>);

impl Default for JsStrings {
    fn default() -> Self {
        Self(
            REQUEST_HEADERS
                .into_iter()
                .chain(RESPONSE_CONSTANTS)
                .map(|text| (text, JsValue::from_str(text)))
                .collect(),
        )
    }
}

impl JsStrings {
    /// Calls `use_string` with `text` as a JS string.
    fn with<T>(&self, text: &str, use_string: impl FnOnce(&JsValue) -> T) -> T {
        match self.0.iter().find(|(known, _)| *known == text) {
            Some((_, value)) => use_string(value),
            None => use_string(&JsValue::from_str(text)),
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// A `Headers` whose names and values are passed as JS strings.
    #[wasm_bindgen(js_name = Headers)]
    type HeaderList;

    #[wasm_bindgen(method, catch)]
    fn get(this: &HeaderList, name: &JsValue) -> Result<Option<String>, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn append(this: &HeaderList, name: &JsValue, value: &JsValue) -> Result<(), JsValue>;

    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &Function);
}

/// `object[name]` as a function, looked up once; a function doing nothing when there is none.
fn method_of(object: &JsValue, name: &str) -> Function {
    Reflect::get(object, &name.into())
        .ok()
        .and_then(|method| method.dyn_into().ok())
        .unwrap_or_else(|| Function::new_no_args(""))
}

fn env_var(env: &JsValue, name: &str) -> Option<String> {
    if !env.is_object() {
        return None;
    }
    Reflect::get(env, &JsValue::from_str(name))
        .ok()?
        .as_string()
}

/// Builders for wasm tests of a function's `handle` export.
#[cfg(feature = "test-support")]
pub mod test_support {
    use js_sys::{Object, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Request, RequestInit, Response};

    use crate::signature::WebhookSecret;

    /// Installs an `EdgeRuntime` whose `waitUntil` keeps what it is given, as the hosted edge
    /// runtime's does, for a `Handler` made afterwards; [`settle`] waits for what it kept.
    pub fn edge_runtime() -> std::rc::Rc<std::cell::RefCell<Vec<Promise>>> {
        use wasm_bindgen::closure::Closure;
        let kept = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let keep = std::rc::Rc::clone(&kept);
        let wait_until: Closure<dyn FnMut(JsValue)> = Closure::new(move |promise: JsValue| {
            keep.borrow_mut().push(promise.unchecked_into::<Promise>());
        });
        let runtime = Object::new();
        Reflect::set(&runtime, &"waitUntil".into(), &wait_until.into_js_value()).unwrap();
        Reflect::set(&js_sys::global(), &"EdgeRuntime".into(), &runtime).unwrap();
        kept
    }

    /// Waits for every promise `waitUntil` has kept so far; how many there were.
    pub async fn settle(kept: &std::cell::RefCell<Vec<Promise>>) -> usize {
        let promises: Vec<Promise> = kept.borrow_mut().drain(..).collect();
        for promise in &promises {
            JsFuture::from(promise.clone())
                .await
                .expect("background work settles");
        }
        promises.len()
    }

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

    /// What an exported `Handler`'s `handle` answered (a `Response` or a promise of one), as a
    /// `Response`.
    pub async fn response(answer: Result<JsValue, JsValue>) -> Result<Response, JsValue> {
        Ok(JsFuture::from(Promise::resolve(&answer?))
            .await?
            .unchecked_into())
    }

    /// The contract every function's exported `Handler` keeps, checked as wasm: a signed
    /// `test.webhook` is answered, a wrong secret and an unknown event are refused. `handle`
    /// is `|request, env| Handler::new(env).handle(request)`.
    pub async fn check_handle_export(
        function: &str,
        handle: impl Fn(Request, JsValue) -> Result<JsValue, JsValue>,
    ) {
        const SECRET: &str = TEST_SECRET;
        const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let url = format!("http://127.0.0.1:54321/{function}");
        let call = |secret: &str, id: &str, body: &str| {
            let request = signed_request(&url, secret, id, body);
            response(handle(request, env(&[("WEBHOOK_SECRET", SECRET)])))
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
