//! Calls to the services behind the functions (PostgREST, e-mail, calendar), and the one place
//! their answers become values or [`EdgeError::Upstream`]: status, `Retry-After`, and a
//! description that never carries a provider's text unfiltered (see [`describe`]).

use serde_json::Value;

use crate::error::EdgeError;
use crate::fetch::{fetch, HttpRequest};
use crate::redact::{clip, without_key_shapes};

/// How many characters of an upstream's own message a description quotes.
pub const EXCERPT_LIMIT: usize = 160;

/// What of an error body a description may quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// The body's `message`: for PostgREST, whose messages are the database's and name our own
    /// tables, constraints and values.
    Message,
    /// Only a machine-readable error code (`error.code`, `error.type`, `name`, `code`): for third
    /// parties, whose messages may echo the key or the request.
    Code,
}

/// Sends `request`; a 2xx answer's JSON body (`Value::Null` when empty), else the upstream error.
pub async fn send_json(
    service: &'static str,
    quote: Quote,
    request: HttpRequest,
) -> Result<Value, EdgeError> {
    let (status, text) = send(service, quote, request).await?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|error| {
        EdgeError::upstream(
            service,
            Some(status),
            None,
            format!("the body is not JSON ({error})"),
        )
    })
}

/// Sends `request`; a 2xx answer's status and body text, else the upstream error.
pub async fn send(
    service: &'static str,
    quote: Quote,
    request: HttpRequest,
) -> Result<(u16, String), EdgeError> {
    let answer = fetch(request).await.map_err(|error| match error.status {
        None => EdgeError::upstream(service, None, None, error.message),
        Some(status) => EdgeError::upstream(
            service,
            Some(status),
            error.header("retry-after").and_then(parse_retry_after),
            format!("the answer could not be read ({})", error.message),
        ),
    })?;
    let status = answer.status;
    if !(200..300).contains(&status) {
        return Err(EdgeError::upstream(
            service,
            Some(status),
            answer.header("retry-after").and_then(parse_retry_after),
            describe(status, &answer.body, quote),
        ));
    }
    Ok((status, answer.body))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these services).
pub fn parse_retry_after(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

/// What an error answer means: the fixed [`status_description`], then what `quote` allows of a
/// JSON body, at most [`EXCERPT_LIMIT`] characters with anything key-shaped removed. Nothing of a
/// body that is not JSON (it may echo the request), nor of a 401 or 403 (providers quote the
/// refused key).
pub fn describe(status: u16, body: &str, quote: Quote) -> String {
    let description = status_description(status);
    if matches!(status, 401 | 403) {
        return description.to_owned();
    }
    let Ok(body) = serde_json::from_str::<Value>(body) else {
        return description.to_owned();
    };
    let excerpt = match quote {
        Quote::Message => message_of(&body),
        Quote::Code => code_of(&body),
    };
    match excerpt {
        Some(excerpt) => format!(
            "{description}: {}",
            without_key_shapes(&clip(excerpt, EXCERPT_LIMIT))
        ),
        None => description.to_owned(),
    }
}

/// The fixed part of [`describe`].
pub fn status_description(status: u16) -> &'static str {
    match status {
        400..=499 => match status {
            400 => "the request was rejected as malformed",
            401 => "the credentials were refused",
            403 => "the request is forbidden with these credentials",
            404 => "not found",
            408 => "the request timed out",
            409 => "conflict",
            413 => "the request is too large",
            422 => "the request could not be processed",
            429 => "rate limited",
            _ => "the request was rejected",
        },
        502..=504 => "unavailable",
        500..=599 => "server error",
        _ => "unexpected status",
    }
}

/// `message`, or `error.message`.
fn message_of(body: &Value) -> Option<&str> {
    body.get("message")
        .or_else(|| body.get("error").and_then(|e| e.get("message")))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|message| !message.is_empty())
}

/// The first of `error.code`, `error.type`, `name`, `code`, `error` that is an identifier
/// (letters, digits, `_`, `.`, `-`; at most 64): OpenAI's `insufficient_quota`, Resend's
/// `validation_error`.
fn code_of(body: &Value) -> Option<&str> {
    let error = body.get("error");
    [
        error.and_then(|e| e.get("code")),
        error.and_then(|e| e.get("type")),
        body.get("name"),
        body.get("code"),
        error,
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .find(|code| {
        (1..=64).contains(&code.len())
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_described_by_status_and_their_message() {
        let body = r#"{"code":"23503","message":"insert or update on table \"notifications\" violates foreign key constraint \"notifications_user_id_fkey\"","details":null}"#;
        assert_eq!(
            describe(409, body, Quote::Message),
            "conflict: insert or update on table \"notifications\" violates foreign key \
             constraint \"notifications_user_id_fkey\""
        );
        let long = format!(r#"{{"message":"{}"}}"#, "x ".repeat(200));
        assert_eq!(
            describe(500, &long, Quote::Message).chars().count(),
            "server error: ".len() + EXCERPT_LIMIT + 1
        );
    }

    #[test]
    fn providers_are_described_by_status_and_their_error_code() {
        let openai = r#"{"error":{"message":"Rate limit reached for org-abc","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            describe(429, openai, Quote::Code),
            "rate limited: rate_limit_exceeded"
        );
        let resend = r#"{"statusCode":422,"message":"Invalid `to` field: alice@example.com","name":"validation_error"}"#;
        assert_eq!(
            describe(422, resend, Quote::Code),
            "the request could not be processed: validation_error"
        );
        assert_eq!(
            describe(502, "<html>Bad Gateway</html>", Quote::Code),
            "unavailable"
        );
        assert_eq!(
            describe(500, r#"{"message":"no code here"}"#, Quote::Code),
            "server error"
        );
    }

    #[test]
    fn a_provider_echoing_the_key_or_the_request_is_not_quoted() {
        let key = "re_8Hq2Lk4Zt9Wm3Nx7Pv5Rb1Cd";
        let refused =
            format!(r#"{{"message":"API key {key} is invalid","name":"restricted_api_key"}}"#);
        for quote in [Quote::Message, Quote::Code] {
            assert_eq!(
                describe(403, &refused, quote),
                "the request is forbidden with these credentials"
            );
        }
        let echoed = format!(r#"{{"message":"cannot use key {key} here"}}"#);
        assert_eq!(
            describe(422, &echoed, Quote::Message),
            "the request could not be processed: cannot use key [redacted] here"
        );
        let document = "BEGIN:VCALENDAR\r\nSUMMARY:Kyoto with Alice\r\nEND:VCALENDAR";
        assert_eq!(
            describe(500, &format!("cannot parse {document}"), Quote::Code),
            "server error"
        );
        let echoed = format!(r#"{{"error":"{document}","message":"{document}"}}"#);
        assert_eq!(describe(500, &echoed, Quote::Code), "server error");
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        assert_eq!(parse_retry_after(" 30 "), Some(30));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
