//! Calls to the services behind the functions (PostgREST, e-mail, calendar), and the one place
//! their answers become values or [`EdgeError::Upstream`]: status, `Retry-After`, and a short
//! message from the body (never the request, so never a key).

use serde_json::Value;

use crate::error::EdgeError;
use crate::fetch::{fetch, HttpRequest};

/// How much of an upstream error body goes into the message.
const MESSAGE_LIMIT: usize = 300;

/// Sends `request`; a 2xx answer's JSON body (`Value::Null` when empty), else the upstream error.
pub async fn send_json(service: &'static str, request: HttpRequest) -> Result<Value, EdgeError> {
    let (status, text) = send(service, request).await?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|error| EdgeError::Upstream {
        service,
        status: Some(status),
        retry_after_seconds: None,
        message: format!("{service} answered {status} with a body that is not JSON: {error}"),
    })
}

/// Sends `request`; a 2xx answer's status and body text, else the upstream error.
pub async fn send(service: &'static str, request: HttpRequest) -> Result<(u16, String), EdgeError> {
    let answer = fetch(request).await.map_err(|error| match error.status {
        None => EdgeError::Upstream {
            service,
            status: None,
            retry_after_seconds: None,
            message: format!("{service} could not be reached: {}", error.message),
        },
        Some(status) => EdgeError::Upstream {
            service,
            status: Some(status),
            retry_after_seconds: error.header("retry-after").and_then(parse_retry_after),
            message: format!("{service} answer could not be read: {}", error.message),
        },
    })?;
    let status = answer.status;
    if !(200..300).contains(&status) {
        return Err(EdgeError::Upstream {
            service,
            status: Some(status),
            retry_after_seconds: answer.header("retry-after").and_then(parse_retry_after),
            message: format!(
                "{service} answered {status}: {}",
                error_summary(&answer.body)
            ),
        });
    }
    Ok((status, answer.body))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these services).
pub fn parse_retry_after(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

/// The error body's `message` (PostgREST, Resend, OpenAI all have one), else the body, shortened.
fn error_summary(text: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let message = parsed
        .as_ref()
        .and_then(|body| {
            body.get("message")
                .or_else(|| body.get("error").and_then(|e| e.get("message")))
                .and_then(Value::as_str)
        })
        .unwrap_or(text);
    let mut summary: String = message.chars().take(MESSAGE_LIMIT).collect();
    if message.chars().count() > MESSAGE_LIMIT {
        summary.push('…');
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_summarised_by_their_message() {
        assert_eq!(
            error_summary(r#"{"code":"23505","message":"duplicate key","details":null}"#),
            "duplicate key"
        );
        assert_eq!(
            error_summary(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
            "Rate limit reached"
        );
        assert_eq!(error_summary("Bad Gateway"), "Bad Gateway");
        let long = "x".repeat(400);
        assert_eq!(error_summary(&long).chars().count(), MESSAGE_LIMIT + 1);
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        assert_eq!(parse_retry_after(" 30 "), Some(30));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
