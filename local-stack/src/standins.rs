//! Local stand-ins for the external APIs the edge functions call: OpenAI (embeddings and chat
//! completions), Resend (send e-mail) and the calendar-sync receiver. They serve offline
//! development (`scripts/start --offline-apis`) and tests.
//!
//! Each speaks its real service's documented wire format: paths, bearer-key authentication,
//! request validation, status codes, error bodies, response shapes, and the headers clients read.
//!
//! **None of them is semantic.** An embedding is a pseudo-random unit vector seeded by SHA-256 of
//! the model and the text: the same text always gets the same vector, but the distance between two
//! vectors says nothing about their texts. A chat reply is the smallest JSON value valid against
//! the requested schema, `{}`, or a fixed sentence saying it comes from this stand-in. E-mails and
//! calendar documents are recorded, never delivered. Every response carries
//! `x-stand-in: not-semantic`.
//!
//! What was "sent" can be read back with [`StandIns::emails`] and [`StandIns::calendar_posts`], or
//! with `curl {base}/_stand-ins/emails` and `curl {base}/_stand-ins/calendar`.
//!
//! Token counts are an approximation, one token per four characters (rounded up); OpenAI's limits
//! (8192 tokens per input, 300 000 per request) are enforced against that estimate.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The only key the OpenAI stand-in accepts.
pub const OPENAI_API_KEY: &str = "sk-local-stand-in-not-a-real-key";
/// The only key the Resend stand-in accepts.
pub const RESEND_API_KEY: &str = "re_local_stand_in_not_a_real_key";
/// The chat model [`StandIns::function_env`] names; the stand-in accepts any model name for chat.
pub const CHAT_MODEL: &str = "gpt-4o-mini";
pub const EMAIL_FROM: &str = "TripSage (local) <trips@localhost>";
/// The calendar receiver's Standard Webhooks key; `CALENDAR_SYNC_SECRET` is `whsec_` + its base64.
const CALENDAR_KEY: &[u8] = b"tripsage-local-calendar-stand-in-key";

const EMBEDDINGS_PATH: &str = "/openai/v1/embeddings";
const CHAT_PATH: &str = "/openai/v1/chat/completions";
const EMAILS_PATH: &str = "/resend/emails";
const CALENDAR_PATH: &str = "/calendar";
const INSPECT_EMAILS_PATH: &str = "/_stand-ins/emails";
const INSPECT_CALENDAR_PATH: &str = "/_stand-ins/calendar";
/// `POST {"count": n, "to": address}`: the next n e-mail sends (to that address, if given) fail,
/// for retry tests through the whole stack.
const FAIL_EMAILS_PATH: &str = "/_stand-ins/emails/fail-next";
/// `GET`: how many requests each path has had.
const INSPECT_REQUESTS_PATH: &str = "/_stand-ins/requests";
/// `POST` an [`OpenAiBehaviour`] as JSON.
const EMBEDDINGS_BEHAVIOUR_PATH: &str = "/_stand-ins/openai/embeddings/behaviour";
const CHAT_BEHAVIOUR_PATH: &str = "/_stand-ins/openai/chat/behaviour";

/// Embedding batches of 2048 inputs are larger than axum's default 2 MB body limit.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const INSPECTION_NOTE: &str =
    "Recorded by the TripSage local stand-ins: nothing was delivered, and the content is not semantic.";

/// Serves the stand-ins on loopback until dropped.
pub struct StandIns {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl StandIns {
    /// Binds `127.0.0.1:port` (0 = any free port) and serves in a spawned tokio task.
    pub async fn start(port: u16) -> std::io::Result<StandIns> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new(address));
        let app = router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the API stand-ins stopped serving: {error}");
            }
        });
        Ok(StandIns {
            address,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The environment that points the functions at these stand-ins. `EMBEDDING_MODEL` is left
    /// unset, so the functions use their default, and so is `CHAT_MODEL`: the chat stand-in's
    /// replies are placeholders, so preference extraction uses its deterministic rules offline.
    /// Set `CHAT_MODEL` (e.g. to [`CHAT_MODEL`]) to exercise the chat path against it.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let base = self.base_url();
        [
            ("OPENAI_BASE_URL", format!("{base}/openai/v1")),
            ("OPENAI_API_KEY", OPENAI_API_KEY.to_owned()),
            ("RESEND_API_KEY", RESEND_API_KEY.to_owned()),
            ("EMAIL_API_URL", format!("{base}{EMAILS_PATH}")),
            ("EMAIL_FROM", EMAIL_FROM.to_owned()),
            ("CALENDAR_SYNC_URL", format!("{base}{CALENDAR_PATH}")),
            ("CALENDAR_SYNC_SECRET", calendar_sync_secret()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The accepted e-mails in order, each `{"id", "idempotency_key", "email": <request body>}`.
    /// An idempotent replay is not recorded again.
    pub fn emails(&self) -> Vec<Value> {
        self.shared.records().outbox.accepted.clone()
    }

    /// The accepted calendar documents in order.
    pub fn calendar_posts(&self) -> Vec<CalendarPost> {
        self.shared.records().calendar.clone()
    }

    /// Makes the next `count` e-mail sends fail as Resend does on its side (500
    /// `internal_server_error`), after authentication and validation, recording nothing.
    pub fn fail_next_emails(&self, count: usize) {
        let mut records = self.shared.records();
        records.email_failures = count;
        records.failing_recipient = None;
    }

    /// Changes how the embeddings endpoint answers from now on.
    pub fn set_embeddings_behaviour(&self, behaviour: OpenAiBehaviour) {
        self.shared.records().embeddings = behaviour;
    }

    /// Changes how the chat completions endpoint answers from now on.
    pub fn set_chat_behaviour(&self, behaviour: OpenAiBehaviour) {
        self.shared.records().chat = behaviour;
    }

    /// How many requests, accepted or refused, arrived for `path` (e.g. `/resend/emails`).
    pub fn request_count(&self, path: &str) -> usize {
        self.shared
            .records()
            .requests
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl fmt::Debug for StandIns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIns")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// How an OpenAI stand-in endpoint misbehaves, for tests of a caller's retries and checks. Set
/// for embeddings with [`StandIns::set_embeddings_behaviour`] or
/// `POST /_stand-ins/openai/embeddings/behaviour`, for chat completions with
/// [`StandIns::set_chat_behaviour`] or `POST /_stand-ins/openai/chat/behaviour`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OpenAiBehaviour {
    /// Answer this many of the next requests with OpenAI's 429 `rate_limit_exceeded`.
    pub rate_limit_next: usize,
    /// The `Retry-After` those 429s carry (none: only `x-ratelimit-reset-requests`).
    pub retry_after_seconds: Option<u64>,
    /// Answer this many of the next requests with a 500.
    pub server_error_next: usize,
    /// Answer every request with 429 `insufficient_quota`.
    pub out_of_quota: bool,
    /// Answer with vectors of this many dimensions, whatever the model's (embeddings only).
    pub dimensions: Option<usize>,
    /// Wait this long before each answer, as a remote API would.
    pub latency_ms: u64,
}

/// One calendar document the receiver accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarPost {
    pub webhook_id: String,
    pub webhook_timestamp: i64,
    pub content_type: String,
    pub body: String,
}

fn calendar_sync_secret() -> String {
    format!("whsec_{}", BASE64.encode(CALENDAR_KEY))
}

struct Shared {
    /// Makes generated ids differ between runs.
    id_seed: [u8; 32],
    ids_issued: AtomicU64,
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    requests: HashMap<String, usize>,
    outbox: Outbox,
    calendar: Vec<CalendarPost>,
    /// How many of the next e-mail sends fail with Resend's 500 (tests of retries), and to whom
    /// (`None`: any recipient).
    email_failures: usize,
    failing_recipient: Option<String>,
    embeddings: OpenAiBehaviour,
    chat: OpenAiBehaviour,
}

impl Shared {
    fn new(address: SocketAddr) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id_seed = Sha256::new()
            .chain_update(nanos.to_le_bytes())
            .chain_update(std::process::id().to_le_bytes())
            .chain_update(address.port().to_le_bytes())
            .finalize()
            .into();
        Self {
            id_seed,
            ids_issued: AtomicU64::new(0),
            records: Mutex::new(Records::default()),
        }
    }

    /// A handler that panicked cannot leave the records half-written, so a poisoned lock is used.
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unique_bytes(&self) -> [u8; 16] {
        let n = self.ids_issued.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(self.id_seed)
            .chain_update(n.to_le_bytes())
            .finalize();
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes
    }

    fn hex_id(&self) -> String {
        self.unique_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A version-4-shaped UUID, as Resend's e-mail ids are.
    fn uuid(&self) -> String {
        let mut bytes = self.unique_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(EMBEDDINGS_PATH, post(embeddings))
        .route(CHAT_PATH, post(chat_completions))
        .route(EMAILS_PATH, post(send_email))
        .route(CALENDAR_PATH, post(receive_calendar))
        .route(INSPECT_EMAILS_PATH, get(inspect_emails))
        .route(INSPECT_CALENDAR_PATH, get(inspect_calendar))
        .route(FAIL_EMAILS_PATH, post(fail_emails))
        .route(EMBEDDINGS_BEHAVIOUR_PATH, post(embeddings_behaviour))
        .route(CHAT_BEHAVIOUR_PATH, post(chat_behaviour))
        .route(INSPECT_REQUESTS_PATH, get(inspect_requests))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            count_and_mark,
        ))
        // Outermost: a browser's preflight is answered before it is counted as a request.
        .layer(middleware::from_fn(crate::cors::cors))
        .with_state(shared)
}

/// Counts the request for [`StandIns::request_count`] and marks the answer as not semantic.
async fn count_and_mark(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    *shared
        .records()
        .requests
        .entry(request.uri().path().to_owned())
        .or_default() += 1;
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        HeaderName::from_static("x-stand-in"),
        HeaderValue::from_static("not-semantic"),
    );
    response
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix("/openai") {
        let message = format!("Invalid URL ({} {rest})", request.method());
        return OpenAiError::NotFound(message).into_response();
    }
    if path.starts_with("/resend") {
        return ResendError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested endpoint does not exist.",
        )
        .into_response();
    }
    let message = format!(
        "The stand-ins serve {EMBEDDINGS_PATH}, {CHAT_PATH}, {EMAILS_PATH}, {CALENDAR_PATH}, \
         {INSPECT_EMAILS_PATH} and {INSPECT_CALENDAR_PATH}."
    );
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "code": "not_found", "message": message } })),
    )
        .into_response()
}

async fn inspect_emails(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let emails = shared.records().outbox.accepted.clone();
    Json(json!({ "note": INSPECTION_NOTE, "emails": emails }))
}

async fn fail_emails(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let count = body
        .get("count")
        .and_then(Value::as_u64)
        .and_then(|count| usize::try_from(count).ok());
    let to = body.get("to").and_then(Value::as_str).map(str::to_owned);
    match count {
        Some(count) => {
            let mut records = shared.records();
            records.email_failures = count;
            records.failing_recipient.clone_from(&to);
            Json(json!({ "failing_next": count, "to": to })).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "code": "invalid_body",
                                    "message": "expected {\"count\": n, \"to\": optional address}" } })),
        )
            .into_response(),
    }
}

async fn inspect_requests(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let requests = shared.records().requests.clone();
    Json(json!({ "note": INSPECTION_NOTE, "requests": requests }))
}

async fn embeddings_behaviour(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    set_behaviour(&body, &mut shared.records().embeddings)
}

async fn chat_behaviour(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    set_behaviour(&body, &mut shared.records().chat)
}

/// Sets an endpoint's behaviour from a request body; the behaviour now in force.
fn set_behaviour(body: &[u8], slot: &mut OpenAiBehaviour) -> Response {
    match serde_json::from_slice::<OpenAiBehaviour>(body) {
        Ok(behaviour) => {
            *slot = behaviour.clone();
            Json(json!({ "behaviour": behaviour })).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "code": "invalid_body", "message": error.to_string() } })),
        )
            .into_response(),
    }
}

async fn inspect_calendar(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let posts = shared.records().calendar.clone();
    Json(json!({ "note": INSPECTION_NOTE, "posts": posts }))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// One token per four characters, rounded up: the documented approximation, not a tokenizer.
fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

// ---------------------------------------------------------------------------------------------
// OpenAI

const MAX_EMBEDDING_INPUTS: usize = 2048;
const MAX_TOKENS_PER_INPUT: usize = 8192;
const MAX_TOKENS_PER_REQUEST: usize = 300_000;
/// What each chat message costs beyond its content in OpenAI's own counting guide.
const TOKENS_PER_MESSAGE: usize = 4;
const CHAT_ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
const PLAIN_REPLY: &str = "This reply comes from the TripSage local stand-in for the OpenAI API. \
    No model read your messages; the text carries no meaning.";
/// Bounds the schema walk, so a recursive `$ref` cannot recurse forever.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Bounds `minItems` / `minLength`, so a hostile schema cannot exhaust memory.
const MAX_GENERATED_LENGTH: u64 = 1024;

struct EmbeddingModel {
    name: &'static str,
    dimensions: usize,
    /// Whether the model accepts the `dimensions` parameter.
    shortenable: bool,
}

const EMBEDDING_MODELS: [EmbeddingModel; 3] = [
    EmbeddingModel {
        name: "text-embedding-3-small",
        dimensions: 1536,
        shortenable: true,
    },
    EmbeddingModel {
        name: "text-embedding-3-large",
        dimensions: 3072,
        shortenable: true,
    },
    EmbeddingModel {
        name: "text-embedding-ada-002",
        dimensions: 1536,
        shortenable: false,
    },
];

/// A refusal in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, PartialEq)]
enum OpenAiError {
    MissingKey,
    /// The message never repeats the key that was sent.
    IncorrectKey,
    ModelNotFound(String),
    NotFound(String),
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
}

impl OpenAiError {
    fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
            code,
        }
    }

    fn missing(param: &str) -> Self {
        Self::invalid(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    fn invalid_type(param: &str, expected: &str) -> Self {
        Self::invalid(
            format!("Invalid type for '{param}': expected {expected}."),
            Some(param),
            Some("invalid_type"),
        )
    }

    fn invalid_value(param: &str, value: &Value, supported: &str) -> Self {
        Self::invalid(
            format!("Invalid value: {value}. Supported values are: {supported}."),
            Some(param),
            Some("invalid_value"),
        )
    }

    fn unparseable_body() -> Self {
        Self::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON.)",
            None,
            None,
        )
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let (status, message, param, code) = match self {
            Self::MissingKey => (
                StatusCode::UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    .to_owned(),
                None,
                None,
            ),
            Self::IncorrectKey => (
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided. The local stand-in accepts only the OPENAI_API_KEY \
                 that StandIns::function_env gives."
                    .to_owned(),
                None,
                Some("invalid_api_key"),
            ),
            Self::ModelNotFound(model) => (
                StatusCode::NOT_FOUND,
                format!("The model `{model}` does not exist or you do not have access to it."),
                None,
                Some("model_not_found"),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message, None, None),
            Self::InvalidRequest {
                message,
                param,
                code,
            } => (StatusCode::BAD_REQUEST, message, param, code),
        };
        let body = json!({
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        });
        (status, Json(body)).into_response()
    }
}

fn authorize_openai(headers: &HeaderMap) -> Result<(), OpenAiError> {
    match bearer_token(headers) {
        None => Err(OpenAiError::MissingKey),
        Some(OPENAI_API_KEY) => Ok(()),
        Some(_) => Err(OpenAiError::IncorrectKey),
    }
}

fn openai_request(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, OpenAiError> {
    authorize_openai(headers)?;
    match serde_json::from_slice(body) {
        Ok(Value::Object(request)) => Ok(request),
        _ => Err(OpenAiError::unparseable_body()),
    }
}

/// Adds the headers OpenAI sends with every answer. The rate limit is never reached here.
fn openai_response(
    shared: &Shared,
    started: Instant,
    result: Result<Value, OpenAiError>,
) -> Response {
    let mut response = match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    };
    let processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let headers = response.headers_mut();
    if let Ok(request_id) = HeaderValue::from_str(&format!("req_{}", shared.hex_id())) {
        headers.insert("x-request-id", request_id);
    }
    headers.insert("openai-processing-ms", HeaderValue::from(processing_ms));
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from(10_000_u32));
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(9_999_u32),
    );
    headers.insert(
        "x-ratelimit-reset-requests",
        HeaderValue::from_static("6ms"),
    );
    response
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request = match openai_request(&headers, &body) {
        Ok(request) => request,
        Err(error) => return openai_response(&shared, started, Err(error)),
    };
    let behaviour = match misbehave(&shared, |records| &mut records.embeddings).await {
        Ok(behaviour) => behaviour,
        Err(throttle) => return throttle.into_response(),
    };
    let result = embed(&request).map(|mut answer| {
        if let Some(dimensions) = behaviour.dimensions {
            resize_embeddings(&mut answer, dimensions);
        }
        answer
    });
    openai_response(&shared, started, result)
}

/// Waits and fails as the endpoint's [`OpenAiBehaviour`] (chosen by `of`) says; the behaviour
/// when the request is to be answered.
async fn misbehave(
    shared: &Shared,
    of: impl Fn(&mut Records) -> &mut OpenAiBehaviour,
) -> Result<OpenAiBehaviour, Throttle> {
    let (throttle, behaviour) = {
        let mut records = shared.records();
        let behaviour = of(&mut records);
        let throttle = if behaviour.out_of_quota {
            Some(Throttle::Quota)
        } else if behaviour.rate_limit_next > 0 {
            behaviour.rate_limit_next -= 1;
            Some(Throttle::RateLimit(behaviour.retry_after_seconds))
        } else if behaviour.server_error_next > 0 {
            behaviour.server_error_next -= 1;
            Some(Throttle::ServerError)
        } else {
            None
        };
        (throttle, behaviour.clone())
    };
    if behaviour.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
    }
    match throttle {
        Some(throttle) => Err(throttle),
        None => Ok(behaviour),
    }
}

/// The failures [`OpenAiBehaviour`] asks for, in OpenAI's wire format.
enum Throttle {
    RateLimit(Option<u64>),
    ServerError,
    Quota,
}

impl IntoResponse for Throttle {
    fn into_response(self) -> Response {
        let (status, message, kind, code) = match &self {
            Self::RateLimit(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests (local stand-in). Please try again later.",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            Self::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            Self::Quota => (
                StatusCode::TOO_MANY_REQUESTS,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        };
        let body = json!({
            "error": { "message": message, "type": kind, "param": null, "code": code }
        });
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimit(retry_after) = self {
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-remaining-requests", HeaderValue::from(0_u32));
            headers.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
            if let Some(seconds) = retry_after {
                headers.insert("retry-after", HeaderValue::from(seconds));
            }
        }
        response
    }
}

/// Cuts or pads every float vector of an embeddings answer to `dimensions`.
fn resize_embeddings(answer: &mut Value, dimensions: usize) {
    let Some(data) = answer.get_mut("data").and_then(Value::as_array_mut) else {
        return;
    };
    for item in data {
        if let Some(vector) = item.get_mut("embedding").and_then(Value::as_array_mut) {
            vector.resize(dimensions, json!(0.0));
        }
    }
}

fn required_model(request: &Map<String, Value>) -> Result<&str, OpenAiError> {
    match request.get("model") {
        Some(Value::String(model)) if !model.is_empty() => Ok(model),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(OpenAiError::invalid(
            "you must provide a model parameter",
            None,
            None,
        )),
        Some(_) => Err(OpenAiError::invalid_type("model", "a string")),
    }
}

/// The Embeddings API's answer to a request body.
fn embed(request: &Map<String, Value>) -> Result<Value, OpenAiError> {
    let model_name = required_model(request)?;
    let inputs = embedding_inputs(request.get("input"))?;
    let model = EMBEDDING_MODELS
        .iter()
        .find(|model| model.name == model_name)
        .ok_or_else(|| OpenAiError::ModelNotFound(model_name.to_owned()))?;
    let dimensions = embedding_dimensions(model, request.get("dimensions"))?;
    let as_base64 = match request.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(format) if format == "float" => false,
        Some(format) if format == "base64" => true,
        Some(other) => {
            return Err(OpenAiError::invalid_value(
                "encoding_format",
                other,
                "'float' and 'base64'",
            ))
        }
    };
    let mut total_tokens = 0;
    for (index, input) in inputs.iter().enumerate() {
        let tokens = estimate_tokens(input);
        if tokens > MAX_TOKENS_PER_INPUT {
            return Err(OpenAiError::invalid(
                format!(
                    "Invalid 'input[{index}]': maximum input length is {MAX_TOKENS_PER_INPUT} \
                     tokens (the local stand-in estimates {tokens})."
                ),
                Some("input"),
                Some("invalid_value"),
            ));
        }
        total_tokens += tokens;
    }
    if total_tokens > MAX_TOKENS_PER_REQUEST {
        return Err(OpenAiError::invalid(
            format!(
                "Requested {total_tokens} tokens, max {MAX_TOKENS_PER_REQUEST} tokens per request"
            ),
            None,
            Some("max_tokens_per_request"),
        ));
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_vector(model.name, input, dimensions);
            let embedding = if as_base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::String(BASE64.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model.name,
        "usage": { "prompt_tokens": total_tokens, "total_tokens": total_tokens },
    }))
}

fn embedding_inputs(input: Option<&Value>) -> Result<Vec<&str>, OpenAiError> {
    let items: Vec<&Value> = match input {
        None | Some(Value::Null) => return Err(OpenAiError::missing("input")),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
    };
    let invalid_input = || {
        OpenAiError::invalid(
            "'$.input' is invalid. Please check the API reference: \
             https://platform.openai.com/docs/api-reference.",
            None,
            None,
        )
    };
    if items.is_empty() {
        return Err(invalid_input());
    }
    if items.len() > MAX_EMBEDDING_INPUTS {
        return Err(OpenAiError::invalid(
            format!(
                "Invalid 'input': array too long. Expected an array with maximum length \
                 {MAX_EMBEDDING_INPUTS}, but got an array with length {} instead.",
                items.len()
            ),
            Some("input"),
            Some("array_above_max_length"),
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) if text.is_empty() => Err(invalid_input()),
            Value::String(text) => Ok(text.as_str()),
            Value::Number(_) | Value::Array(_) => Err(OpenAiError::invalid(
                "The local stand-in accepts only text inputs, not token arrays.",
                Some("input"),
                Some("invalid_type"),
            )),
            _ => Err(OpenAiError::invalid_type(
                "input",
                "a string or an array of strings",
            )),
        })
        .collect()
}

fn embedding_dimensions(
    model: &EmbeddingModel,
    value: Option<&Value>,
) -> Result<usize, OpenAiError> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(model.dimensions);
    };
    if !model.shortenable {
        return Err(OpenAiError::invalid(
            "This model does not support specifying dimensions.",
            Some("dimensions"),
            None,
        ));
    }
    let Some(requested) = value.as_i64() else {
        return Err(OpenAiError::invalid_type("dimensions", "an integer"));
    };
    match usize::try_from(requested) {
        Ok(dimensions) if (1..=model.dimensions).contains(&dimensions) => Ok(dimensions),
        Ok(dimensions) if dimensions > model.dimensions => Err(OpenAiError::invalid(
            format!(
                "Invalid 'dimensions': integer above maximum value. Expected a value <= {}, but \
                 got {requested} instead.",
                model.dimensions
            ),
            Some("dimensions"),
            Some("integer_above_max_value"),
        )),
        _ => Err(OpenAiError::invalid(
            format!(
                "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but \
                 got {requested} instead."
            ),
            Some("dimensions"),
            Some("integer_below_min_value"),
        )),
    }
}

/// A deterministic, L2-normalised pseudo-random vector for `(model, text)`: SHA-256 in counter
/// mode, each 32-bit word mapped to [-1, 1]. Shorter vectors are the renormalised prefix of the
/// full one, as OpenAI's shortened embeddings are. Not semantic.
fn embedding_vector(model: &str, text: &str, dimensions: usize) -> Vec<f32> {
    let seed = Sha256::new()
        .chain_update(model)
        .chain_update([0_u8])
        .chain_update(text)
        .finalize();
    let mut values: Vec<f64> = Vec::with_capacity(dimensions);
    let mut block: u32 = 0;
    while values.len() < dimensions {
        let digest = Sha256::new()
            .chain_update(seed)
            .chain_update(block.to_le_bytes())
            .finalize();
        for word in digest.chunks_exact(4) {
            let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            values.push(f64::from(word) / f64::from(u32::MAX) * 2.0 - 1.0);
        }
        block += 1;
    }
    values.truncate(dimensions);
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    values.iter().map(|v| (v / norm) as f32).collect()
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request = match openai_request(&headers, &body) {
        Ok(request) => request,
        Err(error) => return openai_response(&shared, started, Err(error)),
    };
    if let Err(throttle) = misbehave(&shared, |records| &mut records.chat).await {
        return throttle.into_response();
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-{}", shared.hex_id());
    openai_response(&shared, started, chat_completion(&request, &id, created))
}

enum ReplyFormat<'a> {
    Text,
    JsonObject,
    /// The schema, when the request gave one.
    JsonSchema(Option<&'a Value>),
}

/// The Chat Completions API's answer to a request body.
fn chat_completion(
    request: &Map<String, Value>,
    id: &str,
    created: u64,
) -> Result<Value, OpenAiError> {
    let model = required_model(request)?;
    let messages = match request.get("messages") {
        None | Some(Value::Null) => return Err(OpenAiError::missing("messages")),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(OpenAiError::invalid_type("messages", "an array")),
    };
    if messages.is_empty() {
        return Err(OpenAiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got \
             an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let mut prompt_tokens = 0;
    let mut mentions_json = false;
    for (index, message) in messages.iter().enumerate() {
        let role_param = format!("messages[{index}].role");
        match message.get("role") {
            None | Some(Value::Null) => return Err(OpenAiError::missing(&role_param)),
            Some(Value::String(role)) if CHAT_ROLES.contains(&role.as_str()) => {}
            Some(other) => {
                return Err(OpenAiError::invalid_value(
                    &role_param,
                    other,
                    "'system', 'developer', 'user', 'assistant', 'tool', and 'function'",
                ))
            }
        }
        let text = message_text(message.get("content"));
        prompt_tokens += estimate_tokens(&text) + TOKENS_PER_MESSAGE;
        mentions_json |= text.to_ascii_lowercase().contains("json");
    }
    if request.get("stream") == Some(&Value::Bool(true)) {
        return Err(OpenAiError::invalid(
            "The local stand-in does not stream; send the request without \"stream\": true.",
            Some("stream"),
            Some("unsupported_value"),
        ));
    }
    let content = match reply_format(request.get("response_format"))? {
        ReplyFormat::Text => PLAIN_REPLY.to_owned(),
        ReplyFormat::JsonObject if !mentions_json => {
            return Err(OpenAiError::invalid(
                "'messages' must contain the word 'json' in some form, to use 'response_format' \
                 of type 'json_object'.",
                Some("messages"),
                None,
            ))
        }
        ReplyFormat::JsonObject | ReplyFormat::JsonSchema(None) => "{}".to_owned(),
        ReplyFormat::JsonSchema(Some(schema)) => minimal_instance(schema, schema, 0).to_string(),
    };
    let completion_tokens = estimate_tokens(&content);
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_local_stand_in",
    }))
}

/// A message's text: a string, or the `text` of its content parts.
fn message_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn reply_format(format: Option<&Value>) -> Result<ReplyFormat<'_>, OpenAiError> {
    let Some(format) = format.filter(|format| !format.is_null()) else {
        return Ok(ReplyFormat::Text);
    };
    let kind = format.get("type");
    match kind.and_then(Value::as_str) {
        None if kind.is_none() => Err(OpenAiError::missing("response_format.type")),
        Some("text") => Ok(ReplyFormat::Text),
        Some("json_object") => Ok(ReplyFormat::JsonObject),
        Some("json_schema") => {
            let Some(json_schema) = format.get("json_schema").filter(|s| s.is_object()) else {
                return Err(OpenAiError::missing("response_format.json_schema"));
            };
            if !json_schema.get("name").is_some_and(Value::is_string) {
                return Err(OpenAiError::missing("response_format.json_schema.name"));
            }
            Ok(ReplyFormat::JsonSchema(json_schema.get("schema")))
        }
        _ => Err(OpenAiError::invalid_value(
            "response_format.type",
            kind.unwrap_or(&Value::Null),
            "'json_object', 'json_schema', and 'text'",
        )),
    }
}

/// The smallest value valid against a JSON Schema, as far as OpenAI's structured outputs use
/// schemas: `const`, first `enum` value, `$ref` into the root, first `anyOf`/`oneOf` branch,
/// merged `allOf`, objects with their required properties, arrays of `minItems` items, strings
/// of `minLength` (or a fixed value for a `format`), numbers within their bounds. `pattern` is not
/// honoured.
fn minimal_instance(schema: &Value, root: &Value, depth: usize) -> Value {
    let Some(schema) = schema.as_object().filter(|_| depth <= MAX_SCHEMA_DEPTH) else {
        return Value::Null;
    };
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema.get("enum").and_then(first_item) {
        return first.clone();
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let resolved = match target {
            "#" => Some(root),
            _ => target
                .strip_prefix('#')
                .and_then(|pointer| root.pointer(pointer)),
        };
        return resolved.map_or(Value::Null, |s| minimal_instance(s, root, depth + 1));
    }
    if let Some(branch) = ["anyOf", "oneOf"]
        .iter()
        .find_map(|key| schema.get(*key).and_then(first_item))
    {
        return minimal_instance(branch, root, depth + 1);
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            match minimal_instance(part, root, depth + 1) {
                Value::Object(fields) => merged.extend(fields),
                other => return other,
            }
        }
        return Value::Object(merged);
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str),
        _ if schema.contains_key("properties") => Some("object"),
        _ => None,
    };
    let length = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(MAX_GENERATED_LENGTH)
    };
    match kind {
        Some("object") => {
            let properties = schema.get("properties");
            let required = schema.get("required").and_then(Value::as_array);
            let fields = required
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|name| {
                    let property = properties
                        .and_then(|p| p.get(name))
                        .unwrap_or(&Value::Bool(true));
                    (name.to_owned(), minimal_instance(property, root, depth + 1))
                })
                .collect();
            Value::Object(fields)
        }
        Some("array") => {
            let item = schema.get("items").unwrap_or(&Value::Bool(true));
            let item = minimal_instance(item, root, depth + 1);
            Value::Array(vec![item; length("minItems") as usize])
        }
        Some("string") => match schema
            .get("format")
            .and_then(Value::as_str)
            .and_then(format_example)
        {
            Some(example) => Value::from(example),
            None => Value::from("a".repeat(length("minLength") as usize)),
        },
        Some("integer") => Value::from(bounded(schema, true) as i64),
        Some("number") => Value::from(bounded(schema, false)),
        Some("boolean") => Value::Bool(false),
        _ => Value::Null,
    }
}

fn first_item(value: &Value) -> Option<&Value> {
    value.as_array().and_then(|items| items.first())
}

fn format_example(format: &str) -> Option<&'static str> {
    Some(match format {
        "date-time" => "1970-01-01T00:00:00Z",
        "date" => "1970-01-01",
        "time" => "00:00:00Z",
        "duration" => "P0D",
        "email" => "stand-in@localhost",
        "hostname" => "localhost",
        "ipv4" => "127.0.0.1",
        "ipv6" => "::1",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "uri" => "http://localhost/",
        _ => return None,
    })
}

/// How far inside an exclusive bound a generated number is put.
const NUMBER_STEP: f64 = 1e-6;

/// Zero, moved into `[minimum, maximum]` (exclusive bounds honoured; whole for integers).
fn bounded(schema: &Map<String, Value>, integer: bool) -> f64 {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let step = if integer { 1.0 } else { NUMBER_STEP };
    let lowest = match (bound("minimum"), bound("exclusiveMinimum")) {
        (Some(min), _) if integer => Some(min.ceil()),
        (Some(min), _) => Some(min),
        (None, Some(min)) if integer => Some(min.floor() + 1.0),
        (None, Some(min)) => Some(min + step),
        (None, None) => None,
    };
    let highest = match (bound("maximum"), bound("exclusiveMaximum")) {
        (Some(max), _) if integer => Some(max.floor()),
        (Some(max), _) => Some(max),
        (None, Some(max)) if integer => Some(max.ceil() - 1.0),
        (None, Some(max)) => Some(max - step),
        (None, None) => None,
    };
    match (lowest, highest) {
        (Some(low), _) if low > 0.0 => low,
        (_, Some(high)) if high < 0.0 => high,
        _ => 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// Resend

const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 256;
const MAX_RECIPIENTS: usize = 50;

/// A refusal in Resend's shape: `{"statusCode","name","message"}`.
#[derive(Debug, PartialEq)]
struct ResendError {
    status: StatusCode,
    name: &'static str,
    message: String,
}

impl ResendError {
    fn new(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            name,
            message: message.into(),
        }
    }

    fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            format!("Missing `{field}` field."),
        )
    }

    fn invalid_address(field: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!(
                "Invalid `{field}` field. The email address needs to follow the \
                 `email@example.com` or `Name <email@example.com>` format."
            ),
        )
    }

    fn invalid_field(field: &str, expected: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!("Invalid `{field}` field: expected {expected}."),
        )
    }
}

impl IntoResponse for ResendError {
    fn into_response(self) -> Response {
        let body = json!({
            "statusCode": self.status.as_u16(),
            "name": self.name,
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

/// Accepted e-mails and the idempotency keys seen in the last 24 hours.
#[derive(Default)]
struct Outbox {
    accepted: Vec<Value>,
    by_idempotency_key: HashMap<String, KeyedSend>,
}

struct KeyedSend {
    email: Value,
    id: String,
    at: Instant,
}

impl Outbox {
    /// Records `email` and answers its id; with a key seen within 24 hours, answers the first
    /// send's id without recording again, or refuses a different e-mail under the same key.
    fn send(
        &mut self,
        idempotency_key: Option<&str>,
        email: Value,
        new_id: impl FnOnce() -> String,
        now: Instant,
    ) -> Result<String, ResendError> {
        if let Some(earlier) = idempotency_key
            .and_then(|key| self.by_idempotency_key.get(key))
            .filter(|earlier| now.duration_since(earlier.at) < IDEMPOTENCY_WINDOW)
        {
            return if earlier.email == email {
                Ok(earlier.id.clone())
            } else {
                Err(ResendError::new(
                    StatusCode::CONFLICT,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload.",
                ))
            };
        }
        let id = new_id();
        if let Some(key) = idempotency_key {
            let keyed = KeyedSend {
                email: email.clone(),
                id: id.clone(),
                at: now,
            };
            self.by_idempotency_key.insert(key.to_owned(), keyed);
        }
        self.accepted.push(json!({
            "id": id,
            "idempotency_key": idempotency_key,
            "email": email,
        }));
        Ok(id)
    }
}

async fn send_email(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept_email(&shared, &headers, &body) {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(error) => error.into_response(),
    }
}

fn accept_email(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<String, ResendError> {
    match bearer_token(headers) {
        None => {
            return Err(ResendError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "Missing API key in the authorization header.",
            ))
        }
        Some(RESEND_API_KEY) => {}
        Some(_) => {
            return Err(ResendError::new(
                StatusCode::FORBIDDEN,
                "invalid_api_key",
                "API key is invalid.",
            ))
        }
    }
    let idempotency_key = idempotency_key(headers)?;
    let email = validated_email(body)?;
    let mut records = shared.records();
    let to_failing_recipient =
        records
            .failing_recipient
            .as_ref()
            .is_none_or(|recipient| match &email["to"] {
                Value::String(to) => to == recipient,
                Value::Array(to) => to.iter().any(|address| address == recipient.as_str()),
                _ => false,
            });
    if records.email_failures > 0 && to_failing_recipient {
        records.email_failures -= 1;
        return Err(ResendError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "An unexpected error occurred.",
        ));
    }
    records
        .outbox
        .send(idempotency_key, email, || shared.uuid(), Instant::now())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ResendError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.chars().count()) => Ok(Some(key)),
        _ => Err(ResendError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "The key must be between 1-256 chars.",
        )),
    }
}

/// The request body when it is a sendable e-mail, checked as Resend checks it.
fn validated_email(body: &[u8]) -> Result<Value, ResendError> {
    let Ok(Value::Object(email)) = serde_json::from_slice::<Value>(body) else {
        return Err(ResendError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "The request body is not a valid JSON object.",
        ));
    };
    let given = |field: &str| {
        email
            .get(field)
            .filter(|value| !matches!(value, Value::Null))
            .filter(|value| value.as_str() != Some(""))
            .filter(|value| !value.as_array().is_some_and(Vec::is_empty))
    };
    let (Some(from), Some(to), Some(_)) = (given("from"), given("to"), given("subject")) else {
        let field = ["from", "to", "subject"]
            .into_iter()
            .find(|field| given(field).is_none())
            .unwrap_or("from");
        return Err(ResendError::missing_field(field));
    };
    if given("html").is_none() && given("text").is_none() {
        return Err(ResendError::missing_field("html` or `text"));
    }
    if !from.as_str().is_some_and(is_email_address) {
        return Err(ResendError::invalid_address("from"));
    }
    let recipients: Vec<&Value> = match to {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    if recipients.len() > MAX_RECIPIENTS {
        return Err(ResendError::invalid_field("to", "at most 50 recipients"));
    }
    if !recipients
        .iter()
        .all(|recipient| recipient.as_str().is_some_and(is_email_address))
    {
        return Err(ResendError::invalid_address("to"));
    }
    for field in ["subject", "html", "text"] {
        if email.get(field).is_some_and(|value| !value.is_string()) {
            return Err(ResendError::invalid_field(field, "a string"));
        }
    }
    Ok(Value::Object(email))
}

/// `local@domain` or `Name <local@domain>`; deliverability is not checked.
fn is_email_address(text: &str) -> bool {
    let address = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => text,
    };
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}

// ---------------------------------------------------------------------------------------------
// Calendar receiver

/// The Standard Webhooks default: timestamps further than this from now are refused.
const SIGNATURE_TOLERANCE_SECONDS: u64 = 300;

/// Why the calendar receiver refused a delivery.
#[derive(Debug, PartialEq, Eq)]
enum CalendarRefusal {
    MissingHeader(&'static str),
    InvalidTimestamp,
    TimestampOutOfTolerance,
    InvalidSignature,
    NotCalendarMediaType,
    NotICalendar,
}

impl IntoResponse for CalendarRefusal {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::MissingHeader(name) => (
                StatusCode::UNAUTHORIZED,
                "missing_header",
                format!("the `{name}` header is missing"),
            ),
            Self::InvalidTimestamp => (
                StatusCode::UNAUTHORIZED,
                "invalid_timestamp",
                "`webhook-timestamp` is not a Unix time in seconds".to_owned(),
            ),
            Self::TimestampOutOfTolerance => (
                StatusCode::UNAUTHORIZED,
                "timestamp_out_of_tolerance",
                format!(
                    "`webhook-timestamp` is more than {SIGNATURE_TOLERANCE_SECONDS} s from now"
                ),
            ),
            Self::InvalidSignature => (
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "no `webhook-signature` entry matches the body under CALENDAR_SYNC_SECRET"
                    .to_owned(),
            ),
            Self::NotCalendarMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be sent as `text/calendar`".to_owned(),
            ),
            Self::NotICalendar => (
                StatusCode::BAD_REQUEST,
                "not_icalendar",
                "the body is not an iCalendar document (BEGIN:VCALENDAR … END:VCALENDAR)"
                    .to_owned(),
            ),
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

async fn receive_calendar(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match calendar_post(&headers, &body, now) {
        Ok(post) => {
            shared.records().calendar.push(post);
            Json(json!({ "received": true })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks a delivery (signature first, so nothing about an unsigned body is revealed) and turns
/// it into the record kept.
fn calendar_post(
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<CalendarPost, CalendarRefusal> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(CalendarRefusal::MissingHeader(name))
    };
    let webhook_id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let webhook_timestamp =
        verify_standard_webhook(CALENDAR_KEY, webhook_id, timestamp, signatures, body, now)?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("text/calendar") {
        return Err(CalendarRefusal::NotCalendarMediaType);
    }
    let text = std::str::from_utf8(body).map_err(|_| CalendarRefusal::NotICalendar)?;
    if !(text.starts_with("BEGIN:VCALENDAR") && text.trim_end().ends_with("END:VCALENDAR")) {
        return Err(CalendarRefusal::NotICalendar);
    }
    Ok(CalendarPost {
        webhook_id: webhook_id.to_owned(),
        webhook_timestamp,
        content_type: content_type.to_owned(),
        body: text.to_owned(),
    })
}

/// Verifies a Standard Webhooks v1 signature: some space-separated `v1,<base64>` entry of
/// `signatures` is the HMAC-SHA256 of `{id}.{timestamp}.{body}` under `key`, and the timestamp is
/// within tolerance of `now` (Unix seconds). Every entry is compared, in constant time.
fn verify_standard_webhook(
    key: &[u8],
    webhook_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<i64, CalendarRefusal> {
    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| CalendarRefusal::InvalidTimestamp)?;
    if now.abs_diff(sent_at) > SIGNATURE_TOLERANCE_SECONDS {
        return Err(CalendarRefusal::TimestampOutOfTolerance);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| CalendarRefusal::InvalidSignature)?;
    for part in [
        webhook_id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        body,
    ] {
        mac.update(part);
    }
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| BASE64.decode(signature).ok())
        .fold(false, |matched, signature| {
            mac.clone().verify_slice(&signature).is_ok() | matched
        });
    if matched {
        Ok(sent_at)
    } else {
        Err(CalendarRefusal::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector_verifies() {
        // The Standard Webhooks reference libraries' own test vector.
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let verify = |signatures: &str, now: i64| {
            verify_standard_webhook(&key, id, "1614265330", signatures, body, now)
        };
        assert_eq!(verify(signature, 1_614_265_330), Ok(1_614_265_330));
        assert_eq!(
            verify(&format!("v1,bm90IGl0 {signature}"), 1_614_265_330),
            Ok(1_614_265_330),
            "any entry may match"
        );
        assert_eq!(
            verify("v1,bm90IGl0", 1_614_265_330),
            Err(CalendarRefusal::InvalidSignature)
        );
        assert_eq!(
            verify(&signature.replace("v1,", "v2,"), 1_614_265_330),
            Err(CalendarRefusal::InvalidSignature)
        );
        assert_eq!(
            verify(signature, 1_614_265_330 + 301),
            Err(CalendarRefusal::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn idempotency_keys_expire_after_24_hours() {
        let mut outbox = Outbox::default();
        let start = Instant::now();
        let email = json!({ "subject": "a" });
        let other = json!({ "subject": "b" });
        let id = |id: &str| {
            let id = id.to_owned();
            move || id
        };
        let sent = outbox.send(Some("k"), email.clone(), id("first"), start);
        assert_eq!(sent.unwrap(), "first");
        let later = start + Duration::from_secs(23 * 3600);
        let replayed = outbox.send(Some("k"), email.clone(), id("unused"), later);
        assert_eq!(replayed.unwrap(), "first");
        let conflict = outbox.send(Some("k"), other.clone(), id("unused"), later);
        assert_eq!(conflict.unwrap_err().status, StatusCode::CONFLICT);
        let next_day = start + IDEMPOTENCY_WINDOW;
        let fresh = outbox.send(Some("k"), other, id("second"), next_day);
        assert_eq!(fresh.unwrap(), "second");
        assert_eq!(outbox.accepted.len(), 2);
    }

    #[test]
    fn minimal_instances_satisfy_their_schemas() {
        let schema = json!({
            "type": "object",
            "properties": {
                "preferences": { "type": "array", "items": { "$ref": "#/$defs/preference" } },
                "pair": { "type": "array", "minItems": 2, "items": { "type": "integer" } },
                "kind": { "enum": ["travel", "food"] },
                "version": { "const": 2 },
                "confidence": { "type": "number", "minimum": 0.5, "maximum": 1 },
                "count": { "type": "integer", "exclusiveMinimum": 3 },
                "below": { "type": "integer", "maximum": -2 },
                "note": { "type": ["string", "null"] },
                "code": { "type": "string", "minLength": 3 },
                "when": { "type": "string", "format": "date" },
                "either": { "anyOf": [{ "type": "boolean" }, { "type": "string" }] },
                "both": { "allOf": [
                    { "type": "object", "properties": { "a": {"type": "string"} }, "required": ["a"] },
                    { "type": "object", "properties": { "b": {"type": "integer"} }, "required": ["b"] }
                ] },
                "optional": { "type": "string" }
            },
            "required": ["preferences", "pair", "kind", "version", "confidence", "count",
                         "below", "note", "code", "when", "either", "both"],
            "$defs": { "preference": { "type": "object", "properties": {}, "required": [] } }
        });
        assert_eq!(
            minimal_instance(&schema, &schema, 0),
            json!({
                "preferences": [], "pair": [0, 0], "kind": "travel", "version": 2,
                "confidence": 0.5, "count": 4, "below": -2, "note": "", "code": "aaa",
                "when": "1970-01-01", "either": false, "both": { "a": "", "b": 0 }
            })
        );
    }

    #[test]
    fn recursive_schemas_end() {
        let schema = json!({
            "type": "object",
            "properties": { "next": { "$ref": "#" } },
            "required": ["next"]
        });
        let instance = minimal_instance(&schema, &schema, 0);
        let mut depth = 0;
        let mut node = &instance;
        while let Some(next) = node.get("next") {
            depth += 1;
            node = next;
        }
        assert!(depth <= MAX_SCHEMA_DEPTH, "{depth}");
    }

    #[test]
    fn shortened_embeddings_are_the_renormalised_prefix() {
        let full = embedding_vector("text-embedding-3-small", "Lisbon", 1536);
        let short = embedding_vector("text-embedding-3-small", "Lisbon", 256);
        let prefix_norm = full[..256].iter().map(|v| v * v).sum::<f32>().sqrt();
        for (s, f) in short.iter().zip(&full[..256]) {
            assert!((s - f / prefix_norm).abs() < 1e-6);
        }
    }

    #[test]
    fn tokens_are_estimated_as_a_quarter_of_the_characters_rounded_up() {
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("ééééé"), 2, "characters, not bytes");
    }

    #[test]
    fn addresses_in_both_resend_forms_are_accepted() {
        assert!(is_email_address("trips@localhost"));
        assert!(is_email_address("TripSage (local) <trips@localhost>"));
        assert!(!is_email_address("TripSage"));
        assert!(!is_email_address("a b@c"));
        assert!(!is_email_address("Name <>"));
    }
}
