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

mod calendar;
mod openai;
mod resend;
mod schema;

use calendar::*;
use openai::*;
use resend::*;
use schema::*;

#[cfg(test)]
mod tests;
