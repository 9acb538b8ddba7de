//! CORS for the local stack's HTTP services, as Supabase's API answers it, so browsers
//! (supabase-js in a page, the functions' wasm in a test page) may call them.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// CORS as Supabase's API answers it, so browsers (supabase-js, wasm in a page) may call it:
/// preflights are answered here, every answer allows any origin and exposes `Content-Range`.
pub async fn cors(request: Request, next: Next) -> Response {
    const ALLOW_METHODS: &str = "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD";
    const EXPOSE: &str = "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, \
                          Location, Preference-Applied, Range-Unit";
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::OK.into_response();
        let allow_headers = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| {
                HeaderValue::from_static(
                    "authorization, apikey, content-type, prefer, range, accept, \
                     accept-profile, content-profile, x-client-info",
                )
            });
        let headers = preflight.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        preflight
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE),
    );
    response
}
