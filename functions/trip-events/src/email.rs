//! Sending e-mail through a Resend-compatible API (`POST {EMAIL_API_URL}` with a bearer key and an
//! `Idempotency-Key`, so a retried delivery never sends a second message).

use serde_json::{json, Value};

use shared::fetch::HttpRequest;
use shared::upstream::{send_json, Quote};
use shared::{EdgeConfig, EdgeError};

use crate::ports::Mailer;

/// One message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// [`Mailer`] through the configured provider (`EMAIL_API_URL`, `EMAIL_API_KEY`, `EMAIL_FROM`).
pub struct ResendMailer<'a>(pub &'a EdgeConfig);

impl Mailer for ResendMailer<'_> {
    /// Within the provider's window (24 h for Resend) the same key answers the first message's id.
    async fn send(&self, email: &Email, idempotency_key: &str) -> Result<String, EdgeError> {
        let config = self.0.email()?;
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
            .ok_or_else(|| {
                EdgeError::upstream("email", Some(200), None, "no message id in the answer")
            })
    }
}
