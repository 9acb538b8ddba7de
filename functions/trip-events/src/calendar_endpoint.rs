//! [`CalendarEndpoint`]: `POST {CALENDAR_SYNC_URL}`, signed with Standard Webhooks.

use shared::fetch::HttpRequest;
use shared::upstream::{send, Quote};
use shared::{EdgeConfig, EdgeError};

use crate::calendar;
use crate::ports::CalendarEndpoint;

pub struct SignedCalendar<'a>(pub &'a EdgeConfig);

impl CalendarEndpoint for SignedCalendar<'_> {
    async fn post(
        &self,
        message_id: &str,
        timestamp: i64,
        document: String,
    ) -> Result<u16, EdgeError> {
        let config = self.0.calendar_sync()?;
        let signature = config
            .secret
            .sign(message_id, timestamp, document.as_bytes());
        let request = HttpRequest {
            method: "POST",
            url: config.url.clone(),
            headers: vec![
                ("content-type", calendar::CONTENT_TYPE.to_owned()),
                ("webhook-id", message_id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ],
            body: Some(document),
        };
        let (status, _) = send("calendar", Quote::Code, request).await?;
        Ok(status)
    }
}
