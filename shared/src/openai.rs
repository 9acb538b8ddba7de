//! Requests to an OpenAI-compatible API (`OPENAI_BASE_URL`, bearer `OPENAI_API_KEY`). Answers
//! come back raw — status, headers and body — because the caller decides about retries from all
//! three (`Retry-After`, `x-ratelimit-reset-*`, `insufficient_quota`).

use serde_json::Value;

use crate::config::OpenAiConfig;
use crate::fetch::{fetch, HttpRequest};

/// What the API answered, or `status: None` when it did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    pub status: Option<u16>,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Why there is no answer (connection error), without the URL.
    pub failure: Option<String>,
}

impl RawAnswer {
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

/// POSTs `body` to `{OPENAI_BASE_URL}/{path}`.
pub async fn post(config: &OpenAiConfig, path: &str, body: &Value) -> RawAnswer {
    let url = format!("{}/{}", config.base_url, path.trim_start_matches('/'));
    let request = HttpRequest::post_json(url, body.to_string()).bearer(config.api_key.expose());
    match fetch(request).await {
        Ok(answer) => RawAnswer {
            status: Some(answer.status),
            headers: answer.headers,
            body: answer.body,
            failure: None,
        },
        // An answer whose body could not be read counts as none, its headers kept.
        Err(error) => RawAnswer {
            status: None,
            headers: error.headers,
            body: String::new(),
            failure: Some(error.message),
        },
    }
}
