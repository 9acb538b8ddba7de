//! The one error type of the edge functions, and the one place that maps errors to HTTP.
//!
//! Whether a delivery is tried again is the sender's decision, made from the status alone by the
//! database's `webhook_response_is_retryable` (timeouts, connection errors, 408, 429 and 5xx are
//! retried; any other answer is dead-lettered at once). So the status chosen here says it:
//! a failure that another attempt may cure gets a 5xx, one that no retry can cure (a bad
//! request, a bad signature, an upstream that refused the request itself) a 4xx.

use std::fmt;

use serde_json::json;

use crate::config::{Capability, ConfigProblem};
use crate::function::CALLER_TEXT_LIMIT;
use crate::http::OutgoingResponse;
use crate::redact::clip;
use crate::signature::SignatureError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    MethodNotAllowed {
        allow: &'static str,
    },
    PayloadTooLarge,
    NotConfigured {
        capability: Capability,
        problem: ConfigProblem,
    },
    Signature(SignatureError),
    InvalidJson(String),
    MissingField(String),
    InvalidField {
        field: String,
        reason: String,
    },
    UnsupportedEvent(String),
    /// PostgREST, OpenAI, e-mail or calendar failed. `status` is the upstream's; `None` when it
    /// could not be reached (refused, reset, timed out). `message` describes the failure without
    /// the service and status, which `Display` puts in front; see [`EdgeError::upstream`].
    Upstream {
        service: &'static str,
        status: Option<u16>,
        retry_after_seconds: Option<u64>,
        message: String,
    },
    /// Nothing could be done this time; the work stays pending and the sender should retry.
    Pending {
        message: String,
        retry_after_seconds: Option<u64>,
    },
    /// A bug: the details go to the log, the caller gets a correlation id.
    Internal(String),
}

impl EdgeError {
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge => 413,
            Self::NotConfigured { .. } => 503,
            Self::Signature(_) => 401,
            Self::InvalidJson(_) | Self::MissingField(_) | Self::InvalidField { .. } => 400,
            Self::UnsupportedEvent(_) => 422,
            Self::Upstream { .. } if self.is_permanent() => 424,
            Self::Upstream { .. } if self.is_unavailable() => 503,
            Self::Upstream { .. } => 502,
            Self::Pending { .. } => 503,
            Self::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotConfigured { .. } => "not_configured",
            Self::Signature(error) => error.code(),
            Self::InvalidJson(_) => "invalid_json",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::UnsupportedEvent(_) => "unsupported_event",
            Self::Upstream { .. } if self.is_permanent() => "upstream_rejected",
            Self::Upstream { .. } if self.is_unavailable() => "upstream_unavailable",
            Self::Upstream { .. } => "upstream_error",
            Self::Pending { .. } => "work_pending",
            Self::Internal(_) => "internal_error",
        }
    }

    /// An upstream failure; `message` says what went wrong, without the service and status.
    pub fn upstream(
        service: &'static str,
        status: Option<u16>,
        retry_after_seconds: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        Self::Upstream {
            service,
            status,
            retry_after_seconds,
            message: message.into(),
        }
    }

    /// An upstream that refused the request itself (a 4xx other than 408 and 429: a foreign key
    /// that no longer exists, a refused key, a malformed request): the same request will be
    /// refused again, so the delivery is dead-lettered at once (424) with this reason.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Upstream {
                status: Some(status @ 400..=499),
                ..
            } if !matches!(status, 408 | 429)
        )
    }

    /// The same error with `redact` applied to the text that came from outside (upstream
    /// descriptions, pending reasons, a bug's details).
    pub fn redacted(self, redact: impl Fn(&str) -> String) -> Self {
        match self {
            Self::Upstream {
                service,
                status,
                retry_after_seconds,
                message,
            } => Self::Upstream {
                service,
                status,
                retry_after_seconds,
                message: redact(&message),
            },
            Self::Pending {
                message,
                retry_after_seconds,
            } => Self::Pending {
                message: redact(&message),
                retry_after_seconds,
            },
            Self::Internal(details) => Self::Internal(redact(&details)),
            other => other,
        }
    }

    /// A 400 about `field`.
    pub fn invalid_field(field: &str, reason: &str) -> Self {
        Self::InvalidField {
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The field a 400 is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::MissingField(field) | Self::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Rate-limited, down, or not reachable: worth waiting for (503), unlike an upstream that
    /// answered with an error of its own (502).
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Upstream {
                status: None | Some(429 | 502 | 503 | 504),
                ..
            } | Self::Upstream {
                retry_after_seconds: Some(_),
                ..
            }
        )
    }

    /// The response for this error. `correlation_id` ties a 500 to its log line.
    pub fn to_response(&self, correlation_id: &str) -> OutgoingResponse {
        let mut error = json!({ "code": self.code(), "message": self.public_message() });
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        if let Self::Internal(_) = self {
            error["correlation_id"] = json!(correlation_id);
        }
        let mut response = OutgoingResponse::json(self.status(), &json!({ "error": error }));
        match self {
            Self::MethodNotAllowed { allow } => response.headers.set("allow", *allow),
            Self::Upstream {
                retry_after_seconds: Some(seconds),
                ..
            }
            | Self::Pending {
                retry_after_seconds: Some(seconds),
                ..
            } => response.headers.set("retry-after", seconds.to_string()),
            _ => {}
        }
        response
    }

    /// What the caller may read: everything but a bug's details.
    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => {
                "internal error; the function's log has the details under this correlation id"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MethodNotAllowed { allow } => write!(f, "method not allowed; use {allow}"),
            Self::PayloadTooLarge => f.write_str("request body exceeds 1 MiB"),
            Self::NotConfigured {
                capability,
                problem,
            } => write!(f, "{} is not configured: {problem}", capability.name()),
            Self::Signature(error) => write!(f, "webhook signature rejected: {error}"),
            Self::InvalidJson(reason) => write!(f, "request body is not valid JSON: {reason}"),
            Self::MissingField(field) => write!(f, "required field `{field}` is missing"),
            Self::InvalidField { field, reason } => {
                write!(f, "field `{field}` is invalid: {reason}")
            }
            Self::UnsupportedEvent(event) => write!(
                f,
                "event `{}` is not handled by this function",
                clip(event, CALLER_TEXT_LIMIT)
            ),
            Self::Upstream {
                service,
                status,
                message,
                ..
            } => match status {
                Some(status) => write!(f, "{service} answered {status}: {message}"),
                None => write!(f, "{service} could not be reached: {message}"),
            },
            Self::Pending { message, .. } => f.write_str(message),
            Self::Internal(details) => write!(f, "internal error: {details}"),
        }
    }
}

impl std::error::Error for EdgeError {}

impl From<SignatureError> for EdgeError {
    fn from(error: SignatureError) -> Self {
        Self::Signature(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: Option<u16>, retry_after_seconds: Option<u64>) -> EdgeError {
        EdgeError::Upstream {
            service: "openai",
            status,
            retry_after_seconds,
            message: "x".into(),
        }
    }

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases = [
            (
                EdgeError::MethodNotAllowed { allow: "POST" },
                405,
                "method_not_allowed",
            ),
            (EdgeError::PayloadTooLarge, 413, "payload_too_large"),
            (
                EdgeError::Signature(SignatureError::NoMatchingSignature),
                401,
                "invalid_signature",
            ),
            (EdgeError::InvalidJson("eof".into()), 400, "invalid_json"),
            (
                EdgeError::MissingField("event".into()),
                400,
                "missing_field",
            ),
            (
                EdgeError::UnsupportedEvent("x.y".into()),
                422,
                "unsupported_event",
            ),
            (upstream(Some(500), None), 502, "upstream_error"),
            (upstream(Some(422), None), 424, "upstream_rejected"),
            (upstream(Some(409), None), 424, "upstream_rejected"),
            (upstream(Some(401), None), 424, "upstream_rejected"),
            (upstream(Some(408), None), 502, "upstream_error"),
            (upstream(Some(200), None), 502, "upstream_error"),
            (upstream(None, None), 503, "upstream_unavailable"),
            (upstream(Some(504), None), 503, "upstream_unavailable"),
            (upstream(Some(429), Some(3)), 503, "upstream_unavailable"),
            (EdgeError::Internal("bug".into()), 500, "internal_error"),
            (
                EdgeError::Pending {
                    message: "0 done, 3 remain".into(),
                    retry_after_seconds: Some(2),
                },
                503,
                "work_pending",
            ),
            (
                EdgeError::NotConfigured {
                    capability: Capability::OpenAi,
                    problem: ConfigProblem::Missing(vec!["OPENAI_API_KEY"]),
                },
                503,
                "not_configured",
            ),
        ];
        for (error, status, code) in cases {
            let response = error.to_response("req-1");
            assert_eq!(response.status, status, "{error}");
            let body = response.json_body().unwrap();
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn headers_carry_allow_and_retry_after() {
        let response = EdgeError::MethodNotAllowed {
            allow: "POST, OPTIONS",
        }
        .to_response("r");
        assert_eq!(response.headers.get("allow"), Some("POST, OPTIONS"));
        let response = upstream(Some(429), Some(7)).to_response("r");
        assert_eq!(response.headers.get("retry-after"), Some("7"));
    }

    #[test]
    fn bugs_keep_their_details_out_of_the_response() {
        let response =
            EdgeError::Internal("index out of range in parser".into()).to_response("corr-9");
        let body = response.json_body().unwrap();
        assert_eq!(body["error"]["correlation_id"], "corr-9");
        assert!(!String::from_utf8(response.body).unwrap().contains("parser"));
    }

    #[test]
    fn bad_request_names_the_field() {
        let body = EdgeError::MissingField("event".into())
            .to_response("r")
            .json_body()
            .unwrap();
        assert_eq!(body["error"]["field"], "event");
        assert!(body["error"]["message"].as_str().unwrap().contains("event"));
    }

    #[test]
    fn the_service_and_status_are_said_once() {
        let error = EdgeError::upstream("postgrest", Some(409), None, "conflict: duplicate key");
        assert_eq!(
            error.to_string(),
            "postgrest answered 409: conflict: duplicate key"
        );
        let error = EdgeError::upstream("email", None, None, "connection refused");
        assert_eq!(
            error.to_string(),
            "email could not be reached: connection refused"
        );
    }

    #[test]
    fn redaction_reaches_every_outside_text() {
        let echoed = "key s3cret echoed";
        for error in [
            EdgeError::upstream("email", Some(500), None, echoed),
            EdgeError::Pending {
                message: echoed.into(),
                retry_after_seconds: None,
            },
            EdgeError::Internal(echoed.into()),
        ] {
            let redacted = error.redacted(|text| text.replace("s3cret", "[redacted]"));
            assert!(
                redacted.to_string().contains("key [redacted] echoed"),
                "{redacted}"
            );
        }
    }

    #[test]
    fn a_caller_sized_event_name_is_clipped() {
        let message = EdgeError::UnsupportedEvent("x".repeat(100_000)).to_string();
        assert!(
            message.len() < CALLER_TEXT_LIMIT + 100,
            "{} bytes",
            message.len()
        );
    }
}
