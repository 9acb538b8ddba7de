//! Plain HTTP values the handlers are written against; the wasm seam converts JS `Request` and
//! `Response` to and from these, so everything else is testable natively.

/// Largest request body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The `content-type` of every JSON response.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Header names are stored lowercased; lookups ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut headers = Self::new();
        for (name, value) in pairs {
            headers.append(name, value);
        }
        headers
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        // Stored names are lowercase, and so are the names the code asks for: compare bytes first.
        self.0
            .iter()
            .find(|(key, _)| key == name || key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Replaces every value of `name` with this one.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        self.append(name, value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    /// The body exceeded [`MAX_BODY_BYTES`]; reading stopped there.
    TooLarge,
}

impl Body {
    pub fn empty() -> Self {
        Self::Bytes(Vec::new())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    pub method: String,
    /// The URL path, e.g. `/trip-events/health`.
    pub path: String,
    pub headers: Headers,
    pub body: Body,
}

impl IncomingRequest {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            headers: Headers::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(name, value);
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let bytes = body.into();
        self.body = if bytes.len() > MAX_BODY_BYTES {
            Body::TooLarge
        } else {
            Body::Bytes(bytes)
        };
        self
    }

    /// True when the declared `Content-Length` already rules the body out.
    pub fn declares_too_large_body(headers: &Headers) -> bool {
        headers
            .get("content-length")
            .and_then(|length| length.trim().parse::<u64>().ok())
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    }
}

/// The path of an absolute URL as a `Request` carries it: `http://host:1/a/b?x#y` → `/a/b`.
pub fn url_path(url: &str) -> &str {
    // A byte search rather than `str::find("://")`, whose substring searcher is a large function
    // to compile on a worker's first request.
    let scheme_end = url
        .as_bytes()
        .windows(3)
        .position(|window| window == b"://");
    let after_scheme = scheme_end.map_or(url, |at| &url[at + 3..]);
    let from_path = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |at| &after_scheme[at..]);
    let path = &from_path[..from_path.find(['?', '#']).unwrap_or(from_path.len())];
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl OutgoingResponse {
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let mut response = Self::empty(status);
        response.headers.set("content-type", JSON_CONTENT_TYPE);
        // Plain data with string keys always serialises.
        response.body = serde_json::to_vec(value).unwrap_or_default();
        response
    }

    /// The body parsed as JSON (tests and logs).
    pub fn json_body(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case_and_set_replaces() {
        let mut headers = Headers::from_pairs([("Webhook-ID", "a"), ("X-Other", "b")]);
        assert_eq!(headers.get("webhook-id"), Some("a"));
        assert_eq!(headers.get("WEBHOOK-ID"), Some("a"));
        headers.set("webhook-id", "c");
        assert_eq!(headers.get("Webhook-Id"), Some("c"));
        assert_eq!(headers.iter().count(), 2);
    }

    #[test]
    fn the_path_is_read_from_the_url() {
        let path = |url| url_path(url);
        assert_eq!(
            path("http://127.0.0.1:54321/functions/v1/trip-events/sub?x=1"),
            "/functions/v1/trip-events/sub"
        );
        assert_eq!(
            path("https://x.supabase.co/trip-events/health#top"),
            "/trip-events/health"
        );
        assert_eq!(path("http://localhost:8000"), "/");
        assert_eq!(path("http://localhost:8000?q=/a"), "/");
        assert_eq!(path("http://h/a%20b/"), "/a%20b/");
    }

    #[test]
    fn bodies_over_the_limit_are_marked() {
        let at_limit = IncomingRequest::new("post", "/").with_body(vec![b' '; MAX_BODY_BYTES]);
        assert!(matches!(at_limit.body, Body::Bytes(ref b) if b.len() == MAX_BODY_BYTES));
        assert_eq!(at_limit.method, "POST");
        let over = IncomingRequest::new("POST", "/").with_body(vec![b' '; MAX_BODY_BYTES + 1]);
        assert_eq!(over.body, Body::TooLarge);
    }

    #[test]
    fn content_length_is_checked_before_reading() {
        let declared = |value: &str| {
            IncomingRequest::declares_too_large_body(&Headers::from_pairs([(
                "content-length",
                value,
            )]))
        };
        assert!(declared("1048577"));
        assert!(!declared("1048576"));
        assert!(!declared("not a number"));
        assert!(!IncomingRequest::declares_too_large_body(&Headers::new()));
    }
}
