//! The HTTP contract both functions share: CORS, `/health`, method and size limits,
//! signature verification, parsing the event envelope, and turning the handler's result or error
//! into a response and one log line.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Capability, EdgeConfig};
use crate::error::EdgeError;
use crate::http::{Body, IncomingRequest, OutgoingResponse, JSON_CONTENT_TYPE};
use crate::redact::clip;
use crate::rest::Receipt;
use crate::signature::{HEADER_ID, HEADER_LEGACY_SIGNATURE, HEADER_SIGNATURE, HEADER_TIMESTAMP};

/// Every function answers this event with 200 and does nothing else (SQL `test_webhook`).
pub const TEST_EVENT: &str = "test.webhook";
pub const HEADER_EVENT: &str = "x-webhook-event";
pub const HEADER_ATTEMPT: &str = "x-webhook-attempt";

/// Every request header the contract reads; the wasm seam copies only these.
pub const REQUEST_HEADERS: [&str; 7] = [
    HEADER_ID,
    HEADER_TIMESTAMP,
    HEADER_SIGNATURE,
    HEADER_LEGACY_SIGNATURE,
    HEADER_EVENT,
    HEADER_ATTEMPT,
    "content-length",
];

const CORS_HEADERS: [(&str, &str); 3] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, POST, OPTIONS"),
    (
        "access-control-allow-headers",
        "authorization, x-client-info, apikey, content-type, webhook-id, webhook-timestamp, \
         webhook-signature, x-webhook-event, x-webhook-attempt, x-webhook-signature",
    ),
];

/// The response header names and values that are the same on every response.
pub const RESPONSE_CONSTANTS: [&str; 9] = [
    CORS_HEADERS[0].0,
    CORS_HEADERS[0].1,
    CORS_HEADERS[1].0,
    CORS_HEADERS[1].1,
    CORS_HEADERS[2].0,
    CORS_HEADERS[2].1,
    "content-type",
    JSON_CONTENT_TYPE,
    "x-request-id",
];

/// A verified webhook delivery: the event and its JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event: String,
    pub webhook_id: Option<String>,
    pub attempt: Option<u32>,
    pub payload: Map<String, Value>,
    /// When it was verified, in Unix seconds: the handlers' clock (calendar stamps, signatures).
    pub received_at: i64,
}

/// Work a handler leaves to finish after its answer, so that a long job does not hold the sender
/// (pg_net waits for the slowest request of a batch before recording any of its answers). The
/// edge runtime keeps the worker alive for it (`EdgeRuntime.waitUntil`); what it ends with is
/// logged. It must leave nothing lost if the worker dies on the way: its state lives in the
/// database, leased, so that what it did not finish is taken up again.
pub type Background<O> = Pin<Box<dyn Future<Output = Result<O, EdgeError>>>>;

/// What a handler made of a delivery. The outcome `O` is the function's own type; it serialises
/// to a JSON object whose fields follow `ok`, `event` and `webhook_id` in the answer's body, and
/// it is what `webhook_receipts` and the background's log line record.
pub enum Handled<O> {
    /// Done: answered 200 with the outcome.
    Done(O),
    /// Accepted: answered 202 with the outcome at once, the rest of the work in `background`.
    Accepted {
        outcome: O,
        background: Background<O>,
    },
}

impl<O: fmt::Debug> fmt::Debug for Handled<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Done(outcome) => f.debug_tuple("Done").field(outcome).finish(),
            Self::Accepted { outcome, .. } => f
                .debug_struct("Accepted")
                .field("outcome", outcome)
                .finish_non_exhaustive(),
        }
    }
}

/// One edge function: its name, the settings it needs, and its event handler.
///
/// Handlers run on wasm's single thread, so their futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait EdgeFunction {
    const NAME: &'static str;
    /// Without these `/health` reports `degraded`.
    const REQUIRED: &'static [Capability];
    /// Reported by `/health`; `disabled` when wholly unset.
    const OPTIONAL: &'static [Capability];
    /// Whether deliveries are deduplicated by webhook-id. If so, [`serve`] answers a delivery
    /// whose webhook-id this function has completed before with 200 `"duplicate": true` without
    /// handling it, and records the webhook-id in `webhook_receipts` when a delivery's work is
    /// done: after the answer for a 200, after the background work for a 202. It reads and
    /// writes through PostgREST, so the function needs [`Capability::Supabase`].
    const DEDUPLICATED: bool;

    /// A delivery's event, checked: what [`EdgeFunction::handle`] acts on.
    type Event;
    /// What handling an event comes to: a struct or an enum of struct variants, serialised as
    /// the answer's extra fields (see [`Handled`]).
    type Outcome: Serialize + 'static;

    /// Checks a delivery before anything is read or written: an event this function handles
    /// (else [`EdgeError::UnsupportedEvent`]), a well-formed payload (else a 400 naming the
    /// field), and the settings the event needs (else 503 `not_configured`). Called for every
    /// event but [`TEST_EVENT`].
    fn parse(&self, delivery: &Delivery, config: &EdgeConfig) -> Result<Self::Event, EdgeError>;

    /// Acts on a checked event.
    async fn handle(
        &self,
        event: Self::Event,
        delivery: &Delivery,
        config: &EdgeConfig,
    ) -> Result<Handled<Self::Outcome>, EdgeError>;
}

/// Per-request facts from outside the pure core.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Unix seconds, for the signature's timestamp tolerance.
    pub now: i64,
    /// Correlates the response, the log line and a 500's body.
    pub request_id: String,
}

/// How many characters of a caller's text (path, method, event name, webhook-id) a log line or an
/// error message carries.
pub const CALLER_TEXT_LIMIT: usize = 200;

/// One line per request; never a secret, never a body, and at most [`CALLER_TEXT_LIMIT`]
/// characters of each field the caller chose.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLog {
    pub level: &'static str,
    pub function: &'static str,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub event: Option<String>,
    pub webhook_id: Option<String>,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RequestLog {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub struct Served {
    pub response: OutgoingResponse,
    pub log: RequestLog,
    /// Work to run after the response is sent, its outcome serialised: [`finish`] runs it.
    pub background: Option<Background<Value>>,
}

/// Answers one request. Never panics on any input; every failure becomes a response.
pub async fn serve<F: EdgeFunction>(
    function: &F,
    request: IncomingRequest,
    config: &EdgeConfig,
    context: &RequestContext,
) -> Served {
    let mut log = RequestLog {
        level: "info",
        function: F::NAME,
        request_id: context.request_id.clone(),
        method: clip(&request.method, CALLER_TEXT_LIMIT),
        path: clip(&request.path, CALLER_TEXT_LIMIT),
        event: None,
        webhook_id: None,
        status: 0,
        duration_ms: 0.0,
        error_code: None,
        error: None,
    };
    let mut background = None;
    let result = route(
        function,
        &request,
        config,
        context,
        &mut log,
        &mut background,
    )
    .await;
    let mut response = result.unwrap_or_else(|error| {
        // Upstream text has been described already; configured secrets go here, whatever put
        // them in.
        let error = error.redacted(|text| config.redact(text));
        log.level = if error.status() >= 500 {
            "error"
        } else {
            "warn"
        };
        log.error_code = Some(error.code());
        log.error = Some(error.to_string());
        error.to_response(&context.request_id)
    });
    for (name, value) in CORS_HEADERS {
        response.headers.set(name, value);
    }
    response
        .headers
        .set("x-request-id", context.request_id.as_str());
    log.status = response.status;
    Served {
        response,
        log,
        background,
    }
}

/// The log line of a delivery's background work, once it has ended.
#[derive(Debug, Clone, Serialize)]
pub struct BackgroundLog {
    pub level: &'static str,
    pub function: &'static str,
    /// The request that accepted the work.
    pub request_id: String,
    pub event: Option<String>,
    pub webhook_id: Option<String>,
    pub background: &'static str,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackgroundLog {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs a delivery's background work to its end and describes how it ended, redacted as a
/// response is; `duration_ms` is left for the caller, which has the clock.
pub async fn finish(
    background: Background<Value>,
    config: &EdgeConfig,
    accepted: &RequestLog,
) -> BackgroundLog {
    let mut log = BackgroundLog {
        level: "info",
        function: accepted.function,
        request_id: accepted.request_id.clone(),
        event: accepted.event.clone(),
        webhook_id: accepted.webhook_id.clone(),
        background: "done",
        duration_ms: 0.0,
        outcome: None,
        error_code: None,
        error: None,
    };
    match background.await {
        Ok(outcome) => log.outcome = Some(outcome),
        Err(error) => {
            let error = error.redacted(|text| config.redact(text));
            log.level = "error";
            log.background = "failed";
            log.error_code = Some(error.code());
            log.error = Some(error.to_string());
        }
    }
    log
}

async fn route<F: EdgeFunction>(
    function: &F,
    request: &IncomingRequest,
    config: &EdgeConfig,
    context: &RequestContext,
    log: &mut RequestLog,
    background: &mut Option<Background<Value>>,
) -> Result<OutgoingResponse, EdgeError> {
    let is_health = request.path.trim_end_matches('/').ends_with("/health");
    match (request.method.as_str(), is_health) {
        ("OPTIONS", _) => Ok(OutgoingResponse::empty(204)),
        ("GET" | "HEAD", true) => Ok(health::<F>(config)),
        (_, true) => Err(EdgeError::MethodNotAllowed {
            allow: "GET, OPTIONS",
        }),
        ("POST", false) => {
            // Its own function (see `deliver`): `/health` and `OPTIONS` do not compile it.
            let delivering: Pin<Box<dyn Future<Output = _> + '_>> =
                Box::pin(deliver(function, request, config, context, log, background));
            delivering.await
        }
        (_, false) => Err(EdgeError::MethodNotAllowed {
            allow: "POST, OPTIONS",
        }),
    }
}

async fn deliver<F: EdgeFunction>(
    function: &F,
    request: &IncomingRequest,
    config: &EdgeConfig,
    context: &RequestContext,
    log: &mut RequestLog,
    background: &mut Option<Background<Value>>,
) -> Result<OutgoingResponse, EdgeError> {
    let Body::Bytes(body) = &request.body else {
        return Err(EdgeError::PayloadTooLarge);
    };
    let verified = config
        .webhook_verifier()?
        .verify(&request.headers, body, context.now)?;
    log.webhook_id = verified
        .webhook_id
        .as_deref()
        .map(|id| clip(id, CALLER_TEXT_LIMIT));
    let (event, attempt) = read_envelope(request, body)?;
    log.event = Some(clip(&event, CALLER_TEXT_LIMIT));

    if event == TEST_EVENT {
        let outcome = Tested { function: F::NAME };
        return Ok(accepted(
            200,
            &event,
            verified.webhook_id.as_deref(),
            &outcome,
        ));
    }
    let delivery = Delivery {
        event,
        webhook_id: verified.webhook_id,
        attempt,
        payload: parse_payload(body)?,
        received_at: context.now,
    };
    let event = function.parse(&delivery, config)?;
    let receipt = match (F::DEDUPLICATED, &delivery.webhook_id) {
        (true, Some(webhook_id)) => {
            let receipt = Receipt::new(config.supabase()?, F::NAME, webhook_id, &delivery.event);
            if receipt.seen().await? {
                let outcome = Duplicate { duplicate: true };
                return Ok(accepted(200, &delivery.event, Some(webhook_id), &outcome));
            }
            Some(receipt)
        }
        _ => None,
    };
    // Behind a `dyn` future the handlers' code is not inlined here: V8 compiles a wasm function
    // on its first call, and `test.webhook` needs none of the handlers.
    let handling: Handling<'_, F::Outcome> = Box::pin(function.handle(event, &delivery, config));
    let (status, outcome) = match handling.await? {
        Handled::Done(outcome) => {
            if let Some(receipt) = &receipt {
                receipt.record(&outcome).await?;
            }
            (200, outcome)
        }
        Handled::Accepted {
            outcome,
            background: work,
        } => {
            *background = Some(Box::pin(async move {
                let outcome = work.await?;
                if let Some(receipt) = receipt {
                    receipt.record(&outcome).await?;
                }
                outcome_value(&outcome)
            }));
            (202, outcome)
        }
    };
    Ok(accepted(
        status,
        &delivery.event,
        delivery.webhook_id.as_deref(),
        &outcome,
    ))
}

/// A handler's future, boxed.
type Handling<'a, O> = Pin<Box<dyn Future<Output = Result<Handled<O>, EdgeError>> + 'a>>;

/// `test.webhook`'s outcome: which function answered.
#[derive(Serialize)]
struct Tested {
    function: &'static str,
}

/// The outcome of a delivery completed before.
#[derive(Serialize)]
struct Duplicate {
    duplicate: bool,
}

/// An outcome as the JSON object it serialises to.
pub(crate) fn outcome_value(outcome: &impl Serialize) -> Result<Value, EdgeError> {
    serde_json::to_value(outcome)
        .map_err(|error| EdgeError::Internal(format!("the outcome did not serialise: {error}")))
}

fn accepted(
    status: u16,
    event: &str,
    webhook_id: Option<&str>,
    outcome: &impl Serialize,
) -> OutgoingResponse {
    OutgoingResponse::json(
        status,
        &Accepted {
            ok: true,
            event,
            webhook_id,
            outcome,
        },
    )
}

/// The 200 (or 202) body: `ok`, the event and its webhook id, then the handler's outcome fields.
#[derive(Serialize)]
struct Accepted<'a, O> {
    ok: bool,
    event: &'a str,
    webhook_id: Option<&'a str>,
    #[serde(flatten)]
    outcome: &'a O,
}

/// The envelope: a JSON object whose `event` agrees with `X-Webhook-Event` (either may be absent,
/// not both), and the delivery attempt. Only `event` is taken from the body: the payload is parsed
/// into a tree only for events a handler takes.
fn read_envelope(
    request: &IncomingRequest,
    body: &[u8],
) -> Result<(String, Option<u32>), EdgeError> {
    let event = match serde_json::from_slice(body) {
        Ok(Envelope(Some(event))) => event,
        Ok(Envelope(None)) => return Err(not_an_object()),
        // An array fails here too, its elements left unread; the syntax error, if any, says more.
        Err(_) => {
            return Err(match serde_json::from_slice::<IgnoredAny>(body) {
                Err(syntax) => EdgeError::InvalidJson(syntax.to_string()),
                Ok(_) => not_an_object(),
            })
        }
    };
    let body_event = match &event {
        Value::Null => None,
        Value::String(event) if !event.trim().is_empty() => Some(event.as_str()),
        _ => {
            return Err(EdgeError::invalid_field(
                "event",
                "must be a non-empty string",
            ))
        }
    };
    let header_event = request
        .headers
        .get(HEADER_EVENT)
        .map(str::trim)
        .filter(|event| !event.is_empty());
    let event = match (body_event, header_event) {
        (Some(body), Some(header)) if body != header => {
            return Err(EdgeError::invalid_field(
                "event",
                &format!("the body says `{body}` but X-Webhook-Event says `{header}`"),
            ))
        }
        (Some(event), _) | (None, Some(event)) => event.to_owned(),
        (None, None) => return Err(EdgeError::MissingField("event".to_owned())),
    };
    let attempt = match request.headers.get(HEADER_ATTEMPT) {
        None => None,
        Some(text) => Some(text.trim().parse().map_err(|_| {
            EdgeError::invalid_field("X-Webhook-Attempt", "must be a positive integer")
        })?),
    };
    Ok((event, attempt))
}

/// A body [`read_envelope`] accepted, as the handlers' payload.
fn parse_payload(body: &[u8]) -> Result<Map<String, Value>, EdgeError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(payload)) => Ok(payload),
        Ok(_) => Err(not_an_object()),
        Err(error) => Err(EdgeError::InvalidJson(error.to_string())),
    }
}

fn not_an_object() -> EdgeError {
    EdgeError::InvalidJson("expected a JSON object".to_owned())
}

/// A payload's `event` (`null` when it has none), every other member skipped unbuilt; `None`
/// when the payload is not an object.
struct Envelope(Option<Value>);

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EnvelopeVisitor)
    }
}

/// Takes an object, and answers `None` for anything else rather than refusing it: serde's own
/// refusal (`invalid_type`) would link float formatting into the module, about 14 KB.
struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_unit<E>(self) -> Result<Envelope, E> {
        Ok(Envelope(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Envelope, E> {
        Ok(Envelope(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Envelope, E> {
        Ok(Envelope(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Envelope, E> {
        Ok(Envelope(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Envelope, E> {
        Ok(Envelope(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<Envelope, E> {
        Ok(Envelope(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Envelope, A::Error> {
        Ok(Envelope(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Envelope, A::Error> {
        let mut event = Value::Null;
        // As in a parsed object, the last of repeated `event` members counts.
        while let Some(IsEvent(is_event)) = members.next_key()? {
            if is_event {
                event = members.next_value()?;
            } else {
                members.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Envelope(Some(event)))
    }
}

/// Whether an object key is `event`, decided without copying the key.
struct IsEvent(bool);

impl<'de> Deserialize<'de> for IsEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = IsEvent;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<IsEvent, E> {
                Ok(IsEvent(key == "event"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

fn health<F: EdgeFunction>(config: &EdgeConfig) -> OutgoingResponse {
    let mut checks = Vec::new();
    let mut missing: Vec<&'static str> = Vec::new();
    for (capability, required) in F::REQUIRED
        .iter()
        .map(|c| (*c, true))
        .chain(F::OPTIONAL.iter().map(|c| (*c, false)))
    {
        let check = match config.problem(capability) {
            None => "ok".to_owned(),
            Some(_) if !required && config.is_disabled(capability) => "disabled".to_owned(),
            Some(problem) => {
                missing.extend(problem.variables());
                problem.to_string()
            }
        };
        checks.push((capability.name(), check));
    }
    let status = if missing.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    OutgoingResponse::json(
        200,
        &Health {
            status,
            function: F::NAME,
            version: env!("CARGO_PKG_VERSION"),
            checks: Checks(checks),
            missing,
        },
    )
}

/// The `/health` body, written straight from these fields: the first request of a worker is
/// often a health check, and every function it runs is compiled then.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    function: &'static str,
    version: &'static str,
    checks: Checks,
    missing: Vec<&'static str>,
}

/// Capability name → `ok`, `disabled` or what is wrong, as a JSON object.
struct Checks(Vec<(&'static str, String)>);

impl Serialize for Checks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, check)| (name, check)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::signature::{WebhookSecret, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    use serde_json::json;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_700_000_000;

    /// Handles `echo.event` and refuses everything else, like a real function.
    struct EchoFunction;

    impl EdgeFunction for EchoFunction {
        const NAME: &'static str = "echo";
        const REQUIRED: &'static [Capability] =
            &[Capability::WebhookSignatures, Capability::Supabase];
        const OPTIONAL: &'static [Capability] = &[Capability::Email];
        const DEDUPLICATED: bool = false;
        type Event = &'static str;
        type Outcome = Value;

        fn parse(
            &self,
            delivery: &Delivery,
            config: &EdgeConfig,
        ) -> Result<Self::Event, EdgeError> {
            let event = match delivery.event.as_str() {
                "echo.event" => "echo.event",
                "echo.later" => "echo.later",
                other => return Err(EdgeError::UnsupportedEvent(other.to_owned())),
            };
            config.supabase()?;
            Ok(event)
        }

        async fn handle(
            &self,
            event: Self::Event,
            delivery: &Delivery,
            config: &EdgeConfig,
        ) -> Result<Handled<Value>, EdgeError> {
            match event {
                "echo.event" => Ok(Handled::Done(json!({ "echoed": delivery.payload }))),
                // Accepted at once, finished later; `fail` makes the later part fail with the
                // service role key in its message.
                _ => {
                    let fail = delivery.payload.contains_key("fail");
                    let key = config.supabase()?.service_role_key.expose().to_owned();
                    Ok(Handled::Accepted {
                        outcome: json!({ "background": "echo" }),
                        background: Box::pin(async move {
                            if fail {
                                Err(EdgeError::Internal(format!("gave up holding {key}")))
                            } else {
                                Ok(json!({ "finished": true }))
                            }
                        }),
                    })
                }
            }
        }
    }

    fn config(pairs: &[(&str, &str)]) -> EdgeConfig {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EdgeConfig::from_env(|name| env.get(name).cloned())
    }

    fn full_config() -> EdgeConfig {
        config(&[
            ("WEBHOOK_SECRET", SECRET),
            ("SUPABASE_URL", "http://127.0.0.1:54321"),
            ("SUPABASE_SERVICE_ROLE_KEY", "service-role-value"),
        ])
    }

    fn signed(body: &str) -> IncomingRequest {
        let signature = WebhookSecret::parse(SECRET)
            .unwrap()
            .sign("msg_1", NOW, body.as_bytes());
        IncomingRequest::new("POST", "/echo")
            .with_header(HEADER_ID, "msg_1")
            .with_header(HEADER_TIMESTAMP, &NOW.to_string())
            .with_header(HEADER_SIGNATURE, &signature)
            .with_body(body)
    }

    fn serve_with(request: IncomingRequest, config: &EdgeConfig) -> Served {
        let context = RequestContext {
            now: NOW,
            request_id: "req-1".to_owned(),
        };
        futures::executor::block_on(serve(&EchoFunction, request, config, &context))
    }

    fn error_code(served: &Served) -> String {
        served.response.json_body().unwrap()["error"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn options_is_204_with_cors_everywhere() {
        let served = serve_with(
            IncomingRequest::new("OPTIONS", "/echo/anything"),
            &config(&[]),
        );
        assert_eq!(served.response.status, 204);
        assert!(served.response.body.is_empty());
        assert_eq!(
            served.response.headers.get("access-control-allow-origin"),
            Some("*")
        );
        let error = serve_with(IncomingRequest::new("DELETE", "/echo"), &config(&[]));
        assert_eq!(
            error.response.headers.get("access-control-allow-origin"),
            Some("*")
        );
        assert_eq!(error.response.headers.get("x-request-id"), Some("req-1"));
    }

    #[test]
    fn common_responses_carry_only_constant_headers_but_the_request_id() {
        for request in [
            IncomingRequest::new("OPTIONS", "/echo"),
            IncomingRequest::new("GET", "/echo/health"),
            IncomingRequest::new("POST", "/echo").with_body("{}"),
        ] {
            let served = serve_with(request, &full_config());
            for (name, value) in served.response.headers.iter() {
                assert!(RESPONSE_CONSTANTS.contains(&name), "{name}");
                assert!(
                    name == "x-request-id" || RESPONSE_CONSTANTS.contains(&value),
                    "{name}: {value}"
                );
            }
        }
    }

    #[test]
    fn health_is_healthy_when_required_config_is_there() {
        let served = serve_with(IncomingRequest::new("GET", "/echo/health"), &full_config());
        assert_eq!(served.response.status, 200);
        let body = served.response.json_body().unwrap();
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["function"], "echo");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["checks"]["supabase"], "ok");
        assert_eq!(body["checks"]["email"], "disabled");
    }

    #[test]
    fn health_names_missing_config_when_degraded() {
        let served = serve_with(
            IncomingRequest::new("GET", "/echo/health/"),
            &config(&[("WEBHOOK_SECRET", SECRET), ("RESEND_API_KEY", "re_x")]),
        );
        let body = served.response.json_body().unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(
            body["missing"],
            json!(["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "EMAIL_FROM"])
        );
        assert_eq!(body["checks"]["email"], "missing EMAIL_FROM");
        assert!(!served.response.body.windows(4).any(|w| w == b"re_x"));
    }

    #[test]
    fn wrong_methods_get_405_with_allow() {
        for (method, path, allow) in [
            ("GET", "/echo", "POST, OPTIONS"),
            ("PUT", "/echo", "POST, OPTIONS"),
            ("POST", "/echo/health", "GET, OPTIONS"),
        ] {
            let served = serve_with(IncomingRequest::new(method, path), &full_config());
            assert_eq!(served.response.status, 405, "{method} {path}");
            assert_eq!(served.response.headers.get("allow"), Some(allow));
        }
    }

    #[test]
    fn signed_test_webhook_is_200_without_calling_the_handler() {
        // EchoFunction would refuse `test.webhook`; the shared contract answers it.
        let served = serve_with(signed(r#"{"event":"test.webhook"}"#), &full_config());
        assert_eq!(served.response.status, 200);
        let body = served.response.json_body().unwrap();
        assert_eq!(
            body,
            json!({"ok": true, "event": "test.webhook", "webhook_id": "msg_1", "function": "echo"})
        );
        assert_eq!(served.log.event.as_deref(), Some("test.webhook"));
        assert_eq!(served.log.webhook_id.as_deref(), Some("msg_1"));
        assert_eq!(served.log.status, 200);
    }

    #[test]
    fn handler_results_are_merged_into_the_body() {
        let served = serve_with(signed(r#"{"event":"echo.event","n":1}"#), &full_config());
        let body = served.response.json_body().unwrap();
        assert_eq!(body["ok"], true);
        assert_eq!(body["echoed"]["n"], 1);
    }

    #[test]
    fn unsigned_or_tampered_requests_get_401() {
        let unsigned =
            IncomingRequest::new("POST", "/echo").with_body(r#"{"event":"test.webhook"}"#);
        let served = serve_with(unsigned, &full_config());
        assert_eq!(served.response.status, 401);
        assert_eq!(error_code(&served), "missing_signature_header");

        let mut tampered = signed(r#"{"event":"test.webhook"}"#);
        tampered.body = Body::Bytes(br#"{"event":"test.webhooK"}"#.to_vec());
        let served = serve_with(tampered, &full_config());
        assert_eq!(served.response.status, 401);
        assert_eq!(error_code(&served), "invalid_signature");
        assert_eq!(served.log.level, "warn");
    }

    #[test]
    fn oversized_body_gets_413_before_anything_else() {
        let request = IncomingRequest::new("POST", "/echo").with_body(vec![b'x'; 2 << 20]);
        let served = serve_with(request, &config(&[]));
        assert_eq!(served.response.status, 413);
    }

    #[test]
    fn missing_webhook_secret_is_503_not_configured() {
        let served = serve_with(signed(r#"{"event":"test.webhook"}"#), &config(&[]));
        assert_eq!(served.response.status, 503);
        assert_eq!(error_code(&served), "not_configured");
        let message = served.response.json_body().unwrap()["error"]["message"].clone();
        assert!(message.as_str().unwrap().contains("WEBHOOK_SECRET"));
    }

    #[test]
    fn missing_handler_config_is_503_and_names_it() {
        let served = serve_with(
            signed(r#"{"event":"echo.event"}"#),
            &config(&[("WEBHOOK_SECRET", SECRET)]),
        );
        assert_eq!(served.response.status, 503);
        assert_eq!(error_code(&served), "not_configured");
        assert_eq!(served.log.level, "error");
    }

    #[test]
    fn bad_bodies_get_400_naming_the_problem() {
        let cases = [
            ("not json", "invalid_json", None),
            ("[1,2]", "invalid_json", None),
            (r#"{"trip_id":1}"#, "missing_field", Some("event")),
            (r#"{"event":42}"#, "invalid_field", Some("event")),
            (r#"{"event":""}"#, "invalid_field", Some("event")),
        ];
        for (body, code, field) in cases {
            let served = serve_with(signed(body), &full_config());
            assert_eq!(served.response.status, 400, "{body}");
            let error = &served.response.json_body().unwrap()["error"];
            assert_eq!(error["code"], code, "{body}");
            assert_eq!(error["field"].as_str(), field, "{body}");
        }
    }

    #[test]
    fn the_envelope_reads_event_as_a_parsed_object_would() {
        let message = |body: &str| {
            let served = serve_with(signed(body), &full_config());
            let error = served.response.json_body().unwrap()["error"].clone();
            (
                served.response.status,
                error["message"].as_str().map(str::to_owned),
            )
        };
        let not_object = "request body is not valid JSON: expected a JSON object";
        assert_eq!(message("[1,2]"), (400, Some(not_object.to_owned())));
        assert_eq!(
            message(r#""test.webhook""#),
            (400, Some(not_object.to_owned()))
        );
        let (status, syntax) = message(r#"[1,"#);
        assert_eq!(status, 400);
        assert!(syntax.unwrap().contains("EOF while parsing"));
        let (status, trailing) = message(r#"{"event":"test.webhook"} {}"#);
        assert_eq!(status, 400);
        assert!(trailing.unwrap().contains("trailing characters"));
        // An escaped key is the same key; of repeated members the last counts.
        assert_eq!(message(r#"{"\u0065vent":"test.webhook"}"#), (200, None));
        assert_eq!(
            message(r#"{"event":"echo.event","data":{"event":[]},"event":"test.webhook"}"#),
            (200, None)
        );
        // Members the envelope skips are still checked as JSON.
        let (status, nested) = message(r#"{"event":"test.webhook","data":[1,}"#);
        assert_eq!(status, 400);
        assert!(nested
            .unwrap()
            .starts_with("request body is not valid JSON"));
    }

    #[test]
    fn event_header_and_body_must_agree() {
        let agreeing =
            signed(r#"{"event":"test.webhook"}"#).with_header(HEADER_EVENT, "test.webhook");
        assert_eq!(serve_with(agreeing, &full_config()).response.status, 200);
        let header_only = signed(r#"{"trip_id":"t"}"#).with_header(HEADER_EVENT, "test.webhook");
        assert_eq!(serve_with(header_only, &full_config()).response.status, 200);
        let disagreeing =
            signed(r#"{"event":"test.webhook"}"#).with_header(HEADER_EVENT, "echo.event");
        let served = serve_with(disagreeing, &full_config());
        assert_eq!(served.response.status, 400);
        assert_eq!(
            served.response.json_body().unwrap()["error"]["field"],
            "event"
        );
    }

    #[test]
    fn attempt_header_is_parsed_or_refused() {
        let bad = signed(r#"{"event":"test.webhook"}"#).with_header(HEADER_ATTEMPT, "first");
        let served = serve_with(bad, &full_config());
        assert_eq!(served.response.status, 400);
        assert_eq!(
            served.response.json_body().unwrap()["error"]["field"],
            "X-Webhook-Attempt"
        );
    }

    #[test]
    fn unknown_events_get_422() {
        let served = serve_with(signed(r#"{"event":"trip.deleted"}"#), &full_config());
        assert_eq!(served.response.status, 422);
        assert_eq!(error_code(&served), "unsupported_event");
    }

    #[test]
    fn log_line_is_json_without_secrets_or_body() {
        let served = serve_with(
            signed(r#"{"event":"echo.event","private":"passport-123"}"#),
            &full_config(),
        );
        let line = served.log.to_json();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["function"], "echo");
        assert_eq!(parsed["event"], "echo.event");
        assert_eq!(parsed["webhook_id"], "msg_1");
        assert_eq!(parsed["status"], 200);
        for secret in ["MfKQ9r8G", "service-role-value", "passport-123"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }

    #[test]
    fn accepted_work_answers_202_and_finishes_after_the_answer() {
        let config = full_config();
        let served = serve_with(signed(r#"{"event":"echo.later"}"#), &config);
        assert_eq!(served.response.status, 202);
        let body: Value = serde_json::from_slice(&served.response.body).unwrap();
        assert_eq!(
            (&body["ok"], &body["background"]),
            (&json!(true), &json!("echo"))
        );
        let background = served.background.expect("work left for later");
        let log = futures::executor::block_on(finish(background, &config, &served.log));
        assert_eq!((log.level, log.background), ("info", "done"));
        assert_eq!(log.outcome.unwrap()["finished"], true);
        assert_eq!(log.request_id, "req-1");
        assert_eq!(log.event.as_deref(), Some("echo.later"));

        let served = serve_with(signed(r#"{"event":"echo.later","fail":1}"#), &config);
        assert_eq!(served.response.status, 202, "the failure comes later");
        let log =
            futures::executor::block_on(finish(served.background.unwrap(), &config, &served.log));
        assert_eq!((log.level, log.background), ("error", "failed"));
        let line = log.to_json();
        assert!(line.contains("gave up holding"), "{line}");
        assert!(!line.contains("service-role-value"), "redacted: {line}");

        let served = serve_with(signed(r#"{"event":"echo.event"}"#), &config);
        assert_eq!(served.response.status, 200);
        assert!(served.background.is_none());
    }
}
