//! The OpenAI stand-in: embeddings and chat completions, their errors in OpenAI's shape, and
//! the misbehaviour tests ask for.

use super::*;

pub(super) const MAX_EMBEDDING_INPUTS: usize = 2048;
pub(super) const MAX_TOKENS_PER_INPUT: usize = 8192;
pub(super) const MAX_TOKENS_PER_REQUEST: usize = 300_000;
/// What each chat message costs beyond its content in OpenAI's own counting guide.
pub(super) const TOKENS_PER_MESSAGE: usize = 4;
pub(super) const CHAT_ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
pub(super) const PLAIN_REPLY: &str =
    "This reply comes from the TripSage local stand-in for the OpenAI API. \
    No model read your messages; the text carries no meaning.";

pub(super) struct EmbeddingModel {
    name: &'static str,
    dimensions: usize,
    /// Whether the model accepts the `dimensions` parameter.
    shortenable: bool,
}

pub(super) const EMBEDDING_MODELS: [EmbeddingModel; 3] = [
    EmbeddingModel {
        name: "text-embedding-3-small",
        dimensions: 1536,
        shortenable: true,
    },
    EmbeddingModel {
        name: "text-embedding-3-large",
        dimensions: 3072,
        shortenable: true,
    },
    EmbeddingModel {
        name: "text-embedding-ada-002",
        dimensions: 1536,
        shortenable: false,
    },
];

/// A refusal in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, PartialEq)]
pub(super) enum OpenAiError {
    MissingKey,
    /// The message never repeats the key that was sent.
    IncorrectKey,
    ModelNotFound(String),
    NotFound(String),
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
}

impl OpenAiError {
    fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
            code,
        }
    }

    fn missing(param: &str) -> Self {
        Self::invalid(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    fn invalid_type(param: &str, expected: &str) -> Self {
        Self::invalid(
            format!("Invalid type for '{param}': expected {expected}."),
            Some(param),
            Some("invalid_type"),
        )
    }

    fn invalid_value(param: &str, value: &Value, supported: &str) -> Self {
        Self::invalid(
            format!("Invalid value: {value}. Supported values are: {supported}."),
            Some(param),
            Some("invalid_value"),
        )
    }

    fn unparseable_body() -> Self {
        Self::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON.)",
            None,
            None,
        )
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let (status, message, param, code) = match self {
            Self::MissingKey => (
                StatusCode::UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    .to_owned(),
                None,
                None,
            ),
            Self::IncorrectKey => (
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided. The local stand-in accepts only the OPENAI_API_KEY \
                 that StandIns::function_env gives."
                    .to_owned(),
                None,
                Some("invalid_api_key"),
            ),
            Self::ModelNotFound(model) => (
                StatusCode::NOT_FOUND,
                format!("The model `{model}` does not exist or you do not have access to it."),
                None,
                Some("model_not_found"),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message, None, None),
            Self::InvalidRequest {
                message,
                param,
                code,
            } => (StatusCode::BAD_REQUEST, message, param, code),
        };
        let body = json!({
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        });
        (status, Json(body)).into_response()
    }
}

pub(super) fn authorize_openai(headers: &HeaderMap) -> Result<(), OpenAiError> {
    match bearer_token(headers) {
        None => Err(OpenAiError::MissingKey),
        Some(OPENAI_API_KEY) => Ok(()),
        Some(_) => Err(OpenAiError::IncorrectKey),
    }
}

pub(super) fn openai_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, OpenAiError> {
    authorize_openai(headers)?;
    match serde_json::from_slice(body) {
        Ok(Value::Object(request)) => Ok(request),
        _ => Err(OpenAiError::unparseable_body()),
    }
}

/// Adds the headers OpenAI sends with every answer. The rate limit is never reached here.
pub(super) fn openai_response(
    shared: &Shared,
    started: Instant,
    result: Result<Value, OpenAiError>,
) -> Response {
    let mut response = match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    };
    let processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let headers = response.headers_mut();
    if let Ok(request_id) = HeaderValue::from_str(&format!("req_{}", shared.hex_id())) {
        headers.insert("x-request-id", request_id);
    }
    headers.insert("openai-processing-ms", HeaderValue::from(processing_ms));
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from(10_000_u32));
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(9_999_u32),
    );
    headers.insert(
        "x-ratelimit-reset-requests",
        HeaderValue::from_static("6ms"),
    );
    response
}

pub(super) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let (request, behaviour) = match admit(&shared, &headers, &body, started, |records| {
        &mut records.embeddings
    })
    .await
    {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let result = embed(&request).map(|mut answer| {
        if let Some(dimensions) = behaviour.dimensions {
            resize_embeddings(&mut answer, dimensions);
        }
        answer
    });
    openai_response(&shared, started, result)
}

/// A request as OpenAI takes it in: the key and the body checked, then the endpoint's
/// misbehaviour (chosen by `of`); the request and the behaviour, or the answer refusing it.
async fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    started: Instant,
    of: impl Fn(&mut Records) -> &mut OpenAiBehaviour,
) -> Result<(Map<String, Value>, OpenAiBehaviour), Response> {
    let request = openai_request(headers, body)
        .map_err(|error| openai_response(shared, started, Err(error)))?;
    let behaviour = misbehave(shared, of)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((request, behaviour))
}

/// Waits and fails as the endpoint's [`OpenAiBehaviour`] (chosen by `of`) says; the behaviour
/// when the request is to be answered.
pub(super) async fn misbehave(
    shared: &Shared,
    of: impl Fn(&mut Records) -> &mut OpenAiBehaviour,
) -> Result<OpenAiBehaviour, Throttle> {
    let (throttle, behaviour) = {
        let mut records = shared.records();
        let behaviour = of(&mut records);
        let throttle = if behaviour.out_of_quota {
            Some(Throttle::Quota)
        } else if behaviour.rate_limit_next > 0 {
            behaviour.rate_limit_next -= 1;
            Some(Throttle::RateLimit(behaviour.retry_after_seconds))
        } else if behaviour.server_error_next > 0 {
            behaviour.server_error_next -= 1;
            Some(Throttle::ServerError)
        } else {
            None
        };
        (throttle, behaviour.clone())
    };
    if behaviour.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
    }
    match throttle {
        Some(throttle) => Err(throttle),
        None => Ok(behaviour),
    }
}

/// The failures [`OpenAiBehaviour`] asks for, in OpenAI's wire format.
pub(super) enum Throttle {
    RateLimit(Option<u64>),
    ServerError,
    Quota,
}

impl IntoResponse for Throttle {
    fn into_response(self) -> Response {
        let (status, message, kind, code) = match &self {
            Self::RateLimit(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests (local stand-in). Please try again later.",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            Self::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            Self::Quota => (
                StatusCode::TOO_MANY_REQUESTS,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        };
        let body = json!({
            "error": { "message": message, "type": kind, "param": null, "code": code }
        });
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimit(retry_after) = self {
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-remaining-requests", HeaderValue::from(0_u32));
            headers.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
            if let Some(seconds) = retry_after {
                headers.insert("retry-after", HeaderValue::from(seconds));
            }
        }
        response
    }
}

/// Cuts or pads every float vector of an embeddings answer to `dimensions`.
pub(super) fn resize_embeddings(answer: &mut Value, dimensions: usize) {
    let Some(data) = answer.get_mut("data").and_then(Value::as_array_mut) else {
        return;
    };
    for item in data {
        if let Some(vector) = item.get_mut("embedding").and_then(Value::as_array_mut) {
            vector.resize(dimensions, json!(0.0));
        }
    }
}

pub(super) fn required_model(request: &Map<String, Value>) -> Result<&str, OpenAiError> {
    match request.get("model") {
        Some(Value::String(model)) if !model.is_empty() => Ok(model),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(OpenAiError::invalid(
            "you must provide a model parameter",
            None,
            None,
        )),
        Some(_) => Err(OpenAiError::invalid_type("model", "a string")),
    }
}

/// The Embeddings API's answer to a request body.
pub(super) fn embed(request: &Map<String, Value>) -> Result<Value, OpenAiError> {
    let model_name = required_model(request)?;
    let inputs = embedding_inputs(request.get("input"))?;
    let model = EMBEDDING_MODELS
        .iter()
        .find(|model| model.name == model_name)
        .ok_or_else(|| OpenAiError::ModelNotFound(model_name.to_owned()))?;
    let dimensions = embedding_dimensions(model, request.get("dimensions"))?;
    let as_base64 = match request.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(format) if format == "float" => false,
        Some(format) if format == "base64" => true,
        Some(other) => {
            return Err(OpenAiError::invalid_value(
                "encoding_format",
                other,
                "'float' and 'base64'",
            ))
        }
    };
    let mut total_tokens = 0;
    for (index, input) in inputs.iter().enumerate() {
        let tokens = estimate_tokens(input);
        if tokens > MAX_TOKENS_PER_INPUT {
            return Err(OpenAiError::invalid(
                format!(
                    "Invalid 'input[{index}]': maximum input length is {MAX_TOKENS_PER_INPUT} \
                     tokens (the local stand-in estimates {tokens})."
                ),
                Some("input"),
                Some("invalid_value"),
            ));
        }
        total_tokens += tokens;
    }
    if total_tokens > MAX_TOKENS_PER_REQUEST {
        return Err(OpenAiError::invalid(
            format!(
                "Requested {total_tokens} tokens, max {MAX_TOKENS_PER_REQUEST} tokens per request"
            ),
            None,
            Some("max_tokens_per_request"),
        ));
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_vector(model.name, input, dimensions);
            let embedding = if as_base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::String(BASE64.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model.name,
        "usage": { "prompt_tokens": total_tokens, "total_tokens": total_tokens },
    }))
}

pub(super) fn embedding_inputs(input: Option<&Value>) -> Result<Vec<&str>, OpenAiError> {
    let items: Vec<&Value> = match input {
        None | Some(Value::Null) => return Err(OpenAiError::missing("input")),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
    };
    let invalid_input = || {
        OpenAiError::invalid(
            "'$.input' is invalid. Please check the API reference: \
             https://platform.openai.com/docs/api-reference.",
            None,
            None,
        )
    };
    if items.is_empty() {
        return Err(invalid_input());
    }
    if items.len() > MAX_EMBEDDING_INPUTS {
        return Err(OpenAiError::invalid(
            format!(
                "Invalid 'input': array too long. Expected an array with maximum length \
                 {MAX_EMBEDDING_INPUTS}, but got an array with length {} instead.",
                items.len()
            ),
            Some("input"),
            Some("array_above_max_length"),
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) if text.is_empty() => Err(invalid_input()),
            Value::String(text) => Ok(text.as_str()),
            Value::Number(_) | Value::Array(_) => Err(OpenAiError::invalid(
                "The local stand-in accepts only text inputs, not token arrays.",
                Some("input"),
                Some("invalid_type"),
            )),
            _ => Err(OpenAiError::invalid_type(
                "input",
                "a string or an array of strings",
            )),
        })
        .collect()
}

pub(super) fn embedding_dimensions(
    model: &EmbeddingModel,
    value: Option<&Value>,
) -> Result<usize, OpenAiError> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(model.dimensions);
    };
    if !model.shortenable {
        return Err(OpenAiError::invalid(
            "This model does not support specifying dimensions.",
            Some("dimensions"),
            None,
        ));
    }
    let Some(requested) = value.as_i64() else {
        return Err(OpenAiError::invalid_type("dimensions", "an integer"));
    };
    match usize::try_from(requested) {
        Ok(dimensions) if (1..=model.dimensions).contains(&dimensions) => Ok(dimensions),
        Ok(dimensions) if dimensions > model.dimensions => Err(OpenAiError::invalid(
            format!(
                "Invalid 'dimensions': integer above maximum value. Expected a value <= {}, but \
                 got {requested} instead.",
                model.dimensions
            ),
            Some("dimensions"),
            Some("integer_above_max_value"),
        )),
        _ => Err(OpenAiError::invalid(
            format!(
                "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but \
                 got {requested} instead."
            ),
            Some("dimensions"),
            Some("integer_below_min_value"),
        )),
    }
}

/// A deterministic, L2-normalised pseudo-random vector for `(model, text)`: SHA-256 in counter
/// mode, each 32-bit word mapped to [-1, 1]. Shorter vectors are the renormalised prefix of the
/// full one, as OpenAI's shortened embeddings are. Not semantic.
pub(super) fn embedding_vector(model: &str, text: &str, dimensions: usize) -> Vec<f32> {
    let seed = Sha256::new()
        .chain_update(model)
        .chain_update([0_u8])
        .chain_update(text)
        .finalize();
    let mut values: Vec<f64> = Vec::with_capacity(dimensions);
    let mut block: u32 = 0;
    while values.len() < dimensions {
        let digest = Sha256::new()
            .chain_update(seed)
            .chain_update(block.to_le_bytes())
            .finalize();
        for word in digest.chunks_exact(4) {
            let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            values.push(f64::from(word) / f64::from(u32::MAX) * 2.0 - 1.0);
        }
        block += 1;
    }
    values.truncate(dimensions);
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    values.iter().map(|v| (v / norm) as f32).collect()
}

pub(super) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request = match admit(&shared, &headers, &body, started, |records| {
        &mut records.chat
    })
    .await
    {
        Ok((request, _)) => request,
        Err(refused) => return refused,
    };
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-{}", shared.hex_id());
    openai_response(&shared, started, chat_completion(&request, &id, created))
}

pub(super) enum ReplyFormat<'a> {
    Text,
    JsonObject,
    /// The schema, when the request gave one.
    JsonSchema(Option<&'a Value>),
}

/// The Chat Completions API's answer to a request body.
pub(super) fn chat_completion(
    request: &Map<String, Value>,
    id: &str,
    created: u64,
) -> Result<Value, OpenAiError> {
    let model = required_model(request)?;
    let messages = match request.get("messages") {
        None | Some(Value::Null) => return Err(OpenAiError::missing("messages")),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(OpenAiError::invalid_type("messages", "an array")),
    };
    if messages.is_empty() {
        return Err(OpenAiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got \
             an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let mut prompt_tokens = 0;
    let mut mentions_json = false;
    for (index, message) in messages.iter().enumerate() {
        let role_param = format!("messages[{index}].role");
        match message.get("role") {
            None | Some(Value::Null) => return Err(OpenAiError::missing(&role_param)),
            Some(Value::String(role)) if CHAT_ROLES.contains(&role.as_str()) => {}
            Some(other) => {
                return Err(OpenAiError::invalid_value(
                    &role_param,
                    other,
                    "'system', 'developer', 'user', 'assistant', 'tool', and 'function'",
                ))
            }
        }
        let text = message_text(message.get("content"));
        prompt_tokens += estimate_tokens(&text) + TOKENS_PER_MESSAGE;
        mentions_json |= text.to_ascii_lowercase().contains("json");
    }
    if request.get("stream") == Some(&Value::Bool(true)) {
        return Err(OpenAiError::invalid(
            "The local stand-in does not stream; send the request without \"stream\": true.",
            Some("stream"),
            Some("unsupported_value"),
        ));
    }
    let content = match reply_format(request.get("response_format"))? {
        ReplyFormat::Text => PLAIN_REPLY.to_owned(),
        ReplyFormat::JsonObject if !mentions_json => {
            return Err(OpenAiError::invalid(
                "'messages' must contain the word 'json' in some form, to use 'response_format' \
                 of type 'json_object'.",
                Some("messages"),
                None,
            ))
        }
        ReplyFormat::JsonObject | ReplyFormat::JsonSchema(None) => "{}".to_owned(),
        ReplyFormat::JsonSchema(Some(schema)) => minimal_instance(schema, schema, 0).to_string(),
    };
    let completion_tokens = estimate_tokens(&content);
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_local_stand_in",
    }))
}

/// A message's text: a string, or the `text` of its content parts.
pub(super) fn message_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(super) fn reply_format(format: Option<&Value>) -> Result<ReplyFormat<'_>, OpenAiError> {
    let Some(format) = format.filter(|format| !format.is_null()) else {
        return Ok(ReplyFormat::Text);
    };
    let kind = format.get("type");
    match kind.and_then(Value::as_str) {
        None if kind.is_none() => Err(OpenAiError::missing("response_format.type")),
        Some("text") => Ok(ReplyFormat::Text),
        Some("json_object") => Ok(ReplyFormat::JsonObject),
        Some("json_schema") => {
            let Some(json_schema) = format.get("json_schema").filter(|s| s.is_object()) else {
                return Err(OpenAiError::missing("response_format.json_schema"));
            };
            if !json_schema.get("name").is_some_and(Value::is_string) {
                return Err(OpenAiError::missing("response_format.json_schema.name"));
            }
            Ok(ReplyFormat::JsonSchema(json_schema.get("schema")))
        }
        _ => Err(OpenAiError::invalid_value(
            "response_format.type",
            kind.unwrap_or(&Value::Null),
            "'json_object', 'json_schema', and 'text'",
        )),
    }
}
