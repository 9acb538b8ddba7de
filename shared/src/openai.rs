//! Requests to an OpenAI-compatible API (`OPENAI_BASE_URL`, bearer `OPENAI_API_KEY`). Answers
//! come back raw — status, headers and body — because the caller decides about retries from all
//! three (`Retry-After`, `x-ratelimit-reset-*`, `insufficient_quota`).

use serde_json::Value;

use crate::config::OpenAiConfig;
use crate::upstream::without_url;

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
    let request = reqwest::Client::new()
        .post(url)
        .bearer_auth(config.api_key.expose())
        .header("content-type", "application/json")
        .body(body.to_string());
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return RawAnswer {
                status: None,
                headers: Vec::new(),
                body: String::new(),
                failure: Some(without_url(&error)),
            }
        }
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    match response.text().await {
        Ok(body) => RawAnswer {
            status: Some(status),
            headers,
            body,
            failure: None,
        },
        Err(error) => RawAnswer {
            status: None,
            headers,
            body: String::new(),
            failure: Some(without_url(&error)),
        },
    }
}
