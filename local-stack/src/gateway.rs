//! The API gateway on `127.0.0.1:54321`: `/functions/v1/<name>/…` is passed to that function's
//! process with the path the function sees on Supabase (`/<name>/…`), after checking the caller's
//! JWT when the function has `verify_jwt` on, as Supabase's gateway does; `/rest/v1/…` goes to
//! the PostgREST-compatible API when the stack has a database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::json;

use local_stack::keys;
use local_stack::rest::RestApi;

const FUNCTIONS_PREFIX: &str = "/functions/v1/";

/// The largest request head (request line and headers) the gateway takes; a larger one is
/// answered 431 before anything is forwarded.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// Connections to the functions kept open for reuse: at most this many idle per function, each
/// closed after [`IDLE_CONNECTION_TIMEOUT`] unused, so a burst leaves no file descriptors behind.
const MAX_IDLE_CONNECTIONS: usize = 8;
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that describe one connection, not the message, and so are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Where a function runs and whether its callers need a JWT.
#[derive(Debug, Clone, Copy)]
pub struct Upstream {
    pub port: u16,
    pub verify_jwt: bool,
}

#[derive(Clone)]
pub struct Gateway {
    /// Function name → its process.
    functions: Arc<BTreeMap<String, Upstream>>,
    client: Client<HttpConnector, Body>,
}

impl Gateway {
    pub fn new(functions: BTreeMap<String, Upstream>) -> Self {
        Self {
            functions: Arc::new(functions),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
                .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .build_http(),
        }
    }

    pub fn router(self, rest: Option<RestApi>) -> Router {
        let functions = Router::new().fallback(route).with_state(self);
        let router = match rest {
            Some(rest) => rest.router().merge(functions),
            None => functions,
        };
        router.layer(middleware::from_fn(limit_head))
    }
}

/// 431 for a request head over [`MAX_REQUEST_HEAD_BYTES`], counted as on the wire.
async fn limit_head(request: Request, next: Next) -> Response {
    let line = request.method().as_str().len() + request.uri().to_string().len() + 11;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if line + headers > MAX_REQUEST_HEAD_BYTES {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_head_too_large",
            &format!("the request line and headers exceed {MAX_REQUEST_HEAD_BYTES} bytes"),
        );
    }
    next.run(request).await
}

async fn route(State(gateway): State<Gateway>, request: Request) -> Response {
    let Some(target) = function_target(request.uri()) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no route for this path");
    };
    let Some(function) = gateway.functions.get(target.name).copied() else {
        return error(
            StatusCode::NOT_FOUND,
            "function_not_found",
            &format!("no function named `{}`", target.name),
        );
    };
    if function.verify_jwt {
        if let Some(refusal) = jwt_refusal(request.headers(), keys::unix_now()) {
            // Supabase's gateway answers in this shape, not in the functions' error shape.
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "code": 401, "message": refusal })),
            )
                .into_response();
        }
    }
    let upstream = format!(
        "http://127.0.0.1:{}{}",
        function.port, target.path_and_query
    );
    forward(&gateway.client, request, &upstream).await
}

/// Why a caller without a valid `Authorization: Bearer <JWT>` is refused, if they are.
fn jwt_refusal(headers: &HeaderMap, now: i64) -> Option<&'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some("Missing authorization header");
    };
    let token = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    match token.map(|token| keys::verify_jwt(token.trim(), now)) {
        Some(Ok(_)) => None,
        _ => Some("Invalid JWT"),
    }
}

struct FunctionTarget<'a> {
    name: &'a str,
    /// `/<name>/rest?query`, the path the function sees on Supabase.
    path_and_query: String,
}

fn function_target(uri: &Uri) -> Option<FunctionTarget<'_>> {
    let rest = uri.path().strip_prefix(FUNCTIONS_PREFIX)?;
    let name = rest.split('/').next().filter(|name| !name.is_empty())?;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(FunctionTarget {
        name,
        path_and_query: format!("/{rest}{query}"),
    })
}

async fn forward(
    client: &Client<HttpConnector, Body>,
    request: Request,
    upstream: &str,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(uri) = upstream.parse::<Uri>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the path is not a valid URI",
        );
    };
    parts.uri = uri;
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    parts.headers.remove(header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(failure) => error(
            StatusCode::BAD_GATEWAY,
            "function_unreachable",
            &format!("the function did not answer: {failure}"),
        ),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response();
    response.headers_mut().insert(
        "x-served-by",
        HeaderValue::from_static("tripsage-local-stack"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Option<(String, String)> {
        let uri: Uri = uri.parse().unwrap();
        function_target(&uri).map(|t| (t.name.to_owned(), t.path_and_query))
    }

    #[test]
    fn function_paths_map_to_what_supabase_passes_the_function() {
        assert_eq!(
            target("/functions/v1/trip-events"),
            Some(("trip-events".into(), "/trip-events".into()))
        );
        assert_eq!(
            target("/functions/v1/trip-events/health?verbose=1"),
            Some(("trip-events".into(), "/trip-events/health?verbose=1".into()))
        );
        assert_eq!(target("/functions/v1/"), None);
        assert_eq!(target("/rest/v1/trips"), None);
    }

    #[test]
    fn verify_jwt_wants_a_bearer_token_signed_with_the_local_secret() {
        let now = 1_800_000_000;
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(
            jwt_refusal(&HeaderMap::new(), now),
            Some("Missing authorization header")
        );
        let anon = keys::role_key("anon");
        assert_eq!(jwt_refusal(&with(&format!("Bearer {anon}")), now), None);
        assert_eq!(jwt_refusal(&with(&anon), now), Some("Invalid JWT"));
        assert_eq!(
            jwt_refusal(&with(&format!("Bearer {anon}x")), now),
            Some("Invalid JWT")
        );
        assert_eq!(
            jwt_refusal(&with(&format!("Bearer {anon}")), 2_000_000_000),
            Some("Invalid JWT"),
            "expired"
        );
    }
}
