//! The calendar receiver: iCalendar documents accepted when signed as Standard Webhooks.

use super::*;

/// The Standard Webhooks default: timestamps further than this from now are refused.
pub(super) const SIGNATURE_TOLERANCE_SECONDS: u64 = 300;

/// Why the calendar receiver refused a delivery.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CalendarRefusal {
    MissingHeader(&'static str),
    InvalidTimestamp,
    TimestampOutOfTolerance,
    InvalidSignature,
    NotCalendarMediaType,
    NotICalendar,
}

impl IntoResponse for CalendarRefusal {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::MissingHeader(name) => (
                StatusCode::UNAUTHORIZED,
                "missing_header",
                format!("the `{name}` header is missing"),
            ),
            Self::InvalidTimestamp => (
                StatusCode::UNAUTHORIZED,
                "invalid_timestamp",
                "`webhook-timestamp` is not a Unix time in seconds".to_owned(),
            ),
            Self::TimestampOutOfTolerance => (
                StatusCode::UNAUTHORIZED,
                "timestamp_out_of_tolerance",
                format!(
                    "`webhook-timestamp` is more than {SIGNATURE_TOLERANCE_SECONDS} s from now"
                ),
            ),
            Self::InvalidSignature => (
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "no `webhook-signature` entry matches the body under CALENDAR_SYNC_SECRET"
                    .to_owned(),
            ),
            Self::NotCalendarMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be sent as `text/calendar`".to_owned(),
            ),
            Self::NotICalendar => (
                StatusCode::BAD_REQUEST,
                "not_icalendar",
                "the body is not an iCalendar document (BEGIN:VCALENDAR … END:VCALENDAR)"
                    .to_owned(),
            ),
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

pub(super) async fn receive_calendar(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match calendar_post(&headers, &body, now) {
        Ok(post) => {
            shared.records().calendar.push(post);
            Json(json!({ "received": true })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks a delivery (signature first, so nothing about an unsigned body is revealed) and turns
/// it into the record kept.
pub(super) fn calendar_post(
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<CalendarPost, CalendarRefusal> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(CalendarRefusal::MissingHeader(name))
    };
    let webhook_id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let webhook_timestamp =
        verify_standard_webhook(CALENDAR_KEY, webhook_id, timestamp, signatures, body, now)?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("text/calendar") {
        return Err(CalendarRefusal::NotCalendarMediaType);
    }
    let text = std::str::from_utf8(body).map_err(|_| CalendarRefusal::NotICalendar)?;
    if !(text.starts_with("BEGIN:VCALENDAR") && text.trim_end().ends_with("END:VCALENDAR")) {
        return Err(CalendarRefusal::NotICalendar);
    }
    Ok(CalendarPost {
        webhook_id: webhook_id.to_owned(),
        webhook_timestamp,
        content_type: content_type.to_owned(),
        body: text.to_owned(),
    })
}

/// Verifies a Standard Webhooks v1 signature: some space-separated `v1,<base64>` entry of
/// `signatures` is the HMAC-SHA256 of `{id}.{timestamp}.{body}` under `key`, and the timestamp is
/// within tolerance of `now` (Unix seconds). Every entry is compared, in constant time.
pub(super) fn verify_standard_webhook(
    key: &[u8],
    webhook_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<i64, CalendarRefusal> {
    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| CalendarRefusal::InvalidTimestamp)?;
    if now.abs_diff(sent_at) > SIGNATURE_TOLERANCE_SECONDS {
        return Err(CalendarRefusal::TimestampOutOfTolerance);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| CalendarRefusal::InvalidSignature)?;
    for part in [
        webhook_id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        body,
    ] {
        mac.update(part);
    }
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| BASE64.decode(signature).ok())
        .fold(false, |matched, signature| {
            mac.clone().verify_slice(&signature).is_ok() | matched
        });
    if matched {
        Ok(sent_at)
    } else {
        Err(CalendarRefusal::InvalidSignature)
    }
}
