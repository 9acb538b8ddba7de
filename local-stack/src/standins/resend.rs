//! The Resend stand-in: e-mails checked and recorded, idempotency keys honoured, failures on
//! request.

use super::*;

pub(super) const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
pub(super) const MAX_IDEMPOTENCY_KEY_CHARS: usize = 256;
pub(super) const MAX_RECIPIENTS: usize = 50;

/// A refusal in Resend's shape: `{"statusCode","name","message"}`.
#[derive(Debug, PartialEq)]
pub(super) struct ResendError {
    pub(super) status: StatusCode,
    name: &'static str,
    message: String,
}

impl ResendError {
    pub(super) fn new(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            name,
            message: message.into(),
        }
    }

    fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            format!("Missing `{field}` field."),
        )
    }

    fn invalid_address(field: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!(
                "Invalid `{field}` field. The email address needs to follow the \
                 `email@example.com` or `Name <email@example.com>` format."
            ),
        )
    }

    fn invalid_field(field: &str, expected: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!("Invalid `{field}` field: expected {expected}."),
        )
    }
}

impl IntoResponse for ResendError {
    fn into_response(self) -> Response {
        let body = json!({
            "statusCode": self.status.as_u16(),
            "name": self.name,
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

/// Accepted e-mails and the idempotency keys seen in the last 24 hours.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) accepted: Vec<Value>,
    by_idempotency_key: HashMap<String, KeyedSend>,
}

pub(super) struct KeyedSend {
    email: Value,
    id: String,
    at: Instant,
}

impl Outbox {
    /// Records `email` and answers its id; with a key seen within 24 hours, answers the first
    /// send's id without recording again, or refuses a different e-mail under the same key.
    pub(super) fn send(
        &mut self,
        idempotency_key: Option<&str>,
        email: Value,
        new_id: impl FnOnce() -> String,
        now: Instant,
    ) -> Result<String, ResendError> {
        if let Some(earlier) = idempotency_key
            .and_then(|key| self.by_idempotency_key.get(key))
            .filter(|earlier| now.duration_since(earlier.at) < IDEMPOTENCY_WINDOW)
        {
            return if earlier.email == email {
                Ok(earlier.id.clone())
            } else {
                Err(ResendError::new(
                    StatusCode::CONFLICT,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload.",
                ))
            };
        }
        let id = new_id();
        if let Some(key) = idempotency_key {
            let keyed = KeyedSend {
                email: email.clone(),
                id: id.clone(),
                at: now,
            };
            self.by_idempotency_key.insert(key.to_owned(), keyed);
        }
        self.accepted.push(json!({
            "id": id,
            "idempotency_key": idempotency_key,
            "email": email,
        }));
        Ok(id)
    }
}

pub(super) async fn send_email(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept_email(&shared, &headers, &body) {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(error) => error.into_response(),
    }
}

pub(super) fn accept_email(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, ResendError> {
    match bearer_token(headers) {
        None => {
            return Err(ResendError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "Missing API key in the authorization header.",
            ))
        }
        Some(RESEND_API_KEY) => {}
        Some(_) => {
            return Err(ResendError::new(
                StatusCode::FORBIDDEN,
                "invalid_api_key",
                "API key is invalid.",
            ))
        }
    }
    let idempotency_key = idempotency_key(headers)?;
    let email = validated_email(body)?;
    let mut records = shared.records();
    let to_failing_recipient =
        records
            .failing_recipient
            .as_ref()
            .is_none_or(|recipient| match &email["to"] {
                Value::String(to) => to == recipient,
                Value::Array(to) => to.iter().any(|address| address == recipient.as_str()),
                _ => false,
            });
    if records.email_failures > 0 && to_failing_recipient {
        records.email_failures -= 1;
        return Err(ResendError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "An unexpected error occurred.",
        ));
    }
    records
        .outbox
        .send(idempotency_key, email, || shared.uuid(), Instant::now())
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ResendError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.chars().count()) => Ok(Some(key)),
        _ => Err(ResendError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "The key must be between 1-256 chars.",
        )),
    }
}

/// The request body when it is a sendable e-mail, checked as Resend checks it.
pub(super) fn validated_email(body: &[u8]) -> Result<Value, ResendError> {
    let Ok(Value::Object(email)) = serde_json::from_slice::<Value>(body) else {
        return Err(ResendError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "The request body is not a valid JSON object.",
        ));
    };
    let given = |field: &str| {
        email
            .get(field)
            .filter(|value| !matches!(value, Value::Null))
            .filter(|value| value.as_str() != Some(""))
            .filter(|value| !value.as_array().is_some_and(Vec::is_empty))
    };
    let (Some(from), Some(to), Some(_)) = (given("from"), given("to"), given("subject")) else {
        let field = ["from", "to", "subject"]
            .into_iter()
            .find(|field| given(field).is_none())
            .unwrap_or("from");
        return Err(ResendError::missing_field(field));
    };
    if given("html").is_none() && given("text").is_none() {
        return Err(ResendError::missing_field("html` or `text"));
    }
    if !from.as_str().is_some_and(is_email_address) {
        return Err(ResendError::invalid_address("from"));
    }
    let recipients: Vec<&Value> = match to {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    if recipients.len() > MAX_RECIPIENTS {
        return Err(ResendError::invalid_field("to", "at most 50 recipients"));
    }
    if !recipients
        .iter()
        .all(|recipient| recipient.as_str().is_some_and(is_email_address))
    {
        return Err(ResendError::invalid_address("to"));
    }
    for field in ["subject", "html", "text"] {
        if email.get(field).is_some_and(|value| !value.is_string()) {
            return Err(ResendError::invalid_field(field, "a string"));
        }
    }
    Ok(Value::Object(email))
}

/// `local@domain` or `Name <local@domain>`; deliverability is not checked.
pub(super) fn is_email_address(text: &str) -> bool {
    let address = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => text,
    };
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}
