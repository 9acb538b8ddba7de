//! Outgoing HTTP, the functions' one boundary to the services behind them: a plain request
//! value, sent with the runtime's `fetch` in wasm and with reqwest natively (tests, tools). Both
//! answer the same plain value, so everything above this module is the same code on both.

/// A request to PostgREST, OpenAI, the e-mail API or a calendar endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

impl HttpRequest {
    /// A POST of a JSON document.
    pub fn post_json(url: impl Into<String>, body: String) -> Self {
        Self {
            method: "POST",
            url: url.into(),
            headers: vec![("content-type", "application/json".to_owned())],
            body: Some(body),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
}

/// What the service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Why there is no answer (refused, reset, unreadable), without the URL, which may carry query
/// values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub message: String,
    /// The status, when the answer began but its body could not be read.
    pub status: Option<u16>,
    /// That answer's headers (lowercase names); empty when there was no answer.
    pub headers: Vec<(String, String)>,
}

impl FetchError {
    /// `message` with each of `urls` (as given, and as the client normalised it) cut out.
    fn new(mut message: String, urls: &[&str]) -> Self {
        for url in urls.iter().filter(|url| !url.is_empty()) {
            message = message.replace(url, "<url>");
        }
        Self {
            message,
            status: None,
            headers: Vec::new(),
        }
    }

    /// The body of an answer that began could not be read.
    fn unread(self, status: u16, headers: Vec<(String, String)>) -> Self {
        Self {
            status: Some(status),
            headers,
            ..self
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Sends `request` and reads the whole answer.
pub async fn fetch(request: HttpRequest) -> Result<HttpAnswer, FetchError> {
    transport::send(request).await
}

#[cfg(target_arch = "wasm32")]
mod transport {
    use js_sys::Promise;
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Request, RequestInit, Response};

    use super::{FetchError, HttpAnswer, HttpRequest};

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = fetch)]
        fn global_fetch(request: &Request) -> Promise;
    }

    fn text(error: &JsValue) -> String {
        error
            .dyn_ref::<js_sys::Error>()
            .map(|error| String::from(error.message()))
            .or_else(|| error.as_string())
            .unwrap_or_else(|| "the request failed".to_owned())
    }

    pub async fn send(request: HttpRequest) -> Result<HttpAnswer, FetchError> {
        let init = RequestInit::new();
        init.set_method(request.method);
        if let Some(body) = &request.body {
            init.set_body(&JsValue::from_str(body));
        }
        let js_request = Request::new_with_str_and_init(&request.url, &init)
            .map_err(|error| FetchError::new(text(&error), &[&request.url]))?;
        let normalised = js_request.url();
        let failed = |error: JsValue| FetchError::new(text(&error), &[&request.url, &normalised]);
        for (name, value) in &request.headers {
            js_request.headers().set(name, value).map_err(failed)?;
        }
        let response: Response = JsFuture::from(global_fetch(&js_request))
            .await
            .map_err(failed)?
            .unchecked_into();
        let status = response.status();
        let mut headers = Vec::new();
        if let Ok(Some(entries)) = js_sys::try_iter(&response.headers()) {
            for entry in entries.flatten() {
                let pair: js_sys::Array = entry.unchecked_into();
                if let (Some(name), Some(value)) =
                    (pair.get(0).as_string(), pair.get(1).as_string())
                {
                    headers.push((name.to_ascii_lowercase(), value));
                }
            }
        }
        let body = match response.text() {
            Ok(promise) => JsFuture::from(promise).await,
            Err(error) => Err(error),
        }
        .map_err(|e| failed(e).unread(status, headers.clone()))?
        .as_string()
        .unwrap_or_default();
        Ok(HttpAnswer {
            status,
            headers,
            body,
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod transport {
    use std::sync::OnceLock;

    use super::{FetchError, HttpAnswer, HttpRequest};

    fn client() -> &'static reqwest::Client {
        static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
        CLIENT.get_or_init(reqwest::Client::new)
    }

    pub async fn send(request: HttpRequest) -> Result<HttpAnswer, FetchError> {
        let failed = |error: reqwest::Error| {
            let normalised = error.url().map(|url| url.to_string()).unwrap_or_default();
            FetchError::new(error.to_string(), &[&request.url, &normalised])
        };
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|error| FetchError::new(error.to_string(), &[]))?;
        let mut builder = client().request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let body = match response.text().await {
            Ok(body) => body,
            Err(error) => return Err(failed(error).unread(status, headers)),
        };
        Ok(HttpAnswer {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_as_the_services_expect() {
        let request = HttpRequest::post_json("http://x/v1/embeddings", "{}".to_owned())
            .bearer("sk-1")
            .header("idempotency-key", "k");
        assert_eq!(request.method, "POST");
        assert_eq!(request.body.as_deref(), Some("{}"));
        assert_eq!(
            request.headers,
            vec![
                ("content-type", "application/json".to_owned()),
                ("authorization", "Bearer sk-1".to_owned()),
                ("idempotency-key", "k".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_never_carry_the_url() {
        let url = "http://127.0.0.1:9/rest/v1/trips?id=eq.secret";
        let error = FetchError::new(
            format!("error sending request for url ({url}): connection refused"),
            &[url],
        );
        assert_eq!(
            error.message,
            "error sending request for url (<url>): connection refused"
        );
    }

    #[test]
    fn answer_headers_are_found_whatever_the_case() {
        let answer = HttpAnswer {
            status: 429,
            headers: vec![("retry-after".to_owned(), "2".to_owned())],
            body: String::new(),
        };
        assert_eq!(answer.header("Retry-After"), Some("2"));
        assert_eq!(answer.header("x-other"), None);
    }
}
