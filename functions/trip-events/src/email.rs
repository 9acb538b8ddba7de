//! Sending e-mail through a Resend-compatible API (`POST {EMAIL_API_URL}` with a bearer key and an
//! `Idempotency-Key`, so a retried delivery never sends a second message).

use serde_json::{json, Value};

use shared::config::EmailConfig;
use shared::fetch::HttpRequest;
use shared::upstream::{send_json, Quote};
use shared::EdgeError;

/// One message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Sends `email`; the provider's message id. The same `idempotency_key` within the provider's
/// window (24 h for Resend) returns the first message's id instead of sending again.
pub async fn send_email(
    config: &EmailConfig,
    email: &Email,
    idempotency_key: &str,
) -> Result<String, EdgeError> {
    let body = json!({
        "from": config.from,
        "to": [email.to],
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
    });
    let request = HttpRequest::post_json(&config.api_url, body.to_string())
        .bearer(config.api_key.expose())
        .header("idempotency-key", idempotency_key);
    let answer = send_json("email", Quote::Code, request).await?;
    answer
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| EdgeError::upstream("email", Some(200), None, "no message id in the answer"))
}
