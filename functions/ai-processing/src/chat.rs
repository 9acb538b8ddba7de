//! Chat messages → preferences and session memories. One delivery names the users' messages one
//! statement wrote; their content is read from the database, which also says which of them
//! already have a session memory. The chat model (when `CHAT_MODEL` is set) is asked about at most
//! `CHAT_MODEL_CALLS_PER_MINUTE` of one user's messages per minute, the rest are read by the
//! rules; all session memories are embedded together (one embeddings request per 2048) and
//! stored with their preferences, 100 messages per transaction. The delivery is answered 202 at
//! once and this work runs after the answer.

use serde::Serialize;
use serde_json::{json, Map, Value};
use shared::config::OpenAiConfig;
use shared::rest::ServiceRest;
use shared::{clock, EdgeConfig, EdgeError, Fields};

use crate::embeddings::{self, EmbeddingLimits, PendingMemory};
use crate::handlers::{request_embeddings, vector_literal, STORE_CHUNK, TIME_BUDGET_MS};
use crate::openai;
use crate::preferences::{self, Preference};

/// Chat-model requests in flight at once for one delivery.
const CHAT_CONCURRENCY: usize = 8;

/// The messages a delivery names: `message_ids` (what the trigger sends, for a whole statement),
/// or one message's fields (`chat.message.created`, and deliveries queued before the trigger
/// became statement-level), checked as they were then.
pub(crate) fn message_ids(payload: &Map<String, Value>) -> Result<Vec<i64>, EdgeError> {
    let fields = Fields::new(payload);
    match fields.optional_ids("message_ids")? {
        Some(ids) => Ok(ids),
        None => one_message(fields).map(|id| vec![id]),
    }
}

/// The id of a delivery for one message, whose other fields must be well formed too.
fn one_message(fields: Fields<'_>) -> Result<i64, EdgeError> {
    let message_id = fields.id("message_id")?;
    fields.optional_text("content")?;
    fields.uuid("session_id")?;
    fields.uuid("user_id")?;
    fields.text("role")?;
    Ok(message_id)
}

/// How a chat delivery's work ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remembered {
    /// The messages the delivery named.
    pub messages: usize,
    pub session_memories: u64,
    /// Named messages that had a session memory already.
    pub already_processed: u64,
    pub preferences: u64,
    pub extracted_by: ExtractedBy,
    pub provider_calls: usize,
    /// Messages the rules read because their users were over the chat model's cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_model_capped: Option<Capped>,
}

/// How many messages each reader read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExtractedBy {
    pub chat_model: usize,
    pub rules: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capped {
    pub messages: usize,
    pub calls_per_user_per_minute: u32,
}

/// A user's message without a session memory, as `pending_chat_messages` returns it.
#[derive(Debug, Clone)]
struct PendingMessage {
    message_id: i64,
    session_id: String,
    user_id: String,
    content: String,
}

impl PendingMessage {
    fn from_row(row: &Value) -> Option<Self> {
        let text = |name: &str| row.get(name)?.as_str().map(str::to_owned);
        Some(Self {
            message_id: row.get("message_id")?.as_i64()?,
            session_id: text("session_id")?,
            user_id: text("user_id")?,
            content: text("content")?,
        })
    }
}

/// Who reads a message's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    ChatModel,
    Rules,
}

impl Reader {
    fn as_str(self) -> &'static str {
        match self {
            Self::ChatModel => "chat_model",
            Self::Rules => "rules",
        }
    }
}

/// How many of each user's messages would go to the chat model: `{"<user id>": n}`, as
/// `reserve_chat_model_calls` takes it and answers.
fn wanted_calls(messages: &[PendingMessage]) -> Map<String, Value> {
    let mut wanted = Map::new();
    for message in messages {
        let so_far = calls_of(&wanted, &message.user_id);
        wanted.insert(message.user_id.clone(), json!(so_far + 1));
    }
    wanted
}

fn calls_of(calls: &Map<String, Value>, user_id: &str) -> u64 {
    calls.get(user_id).and_then(Value::as_u64).unwrap_or(0)
}

/// The reader of each message (in order): the chat model for the first `granted[user]` of a
/// user's messages, the rules for the rest.
fn assign_readers(messages: &[PendingMessage], granted: &Map<String, Value>) -> Vec<Reader> {
    let mut left = granted.clone();
    messages
        .iter()
        .map(|message| match calls_of(&left, &message.user_id) {
            0 => Reader::Rules,
            calls => {
                left.insert(message.user_id.clone(), json!(calls - 1));
                Reader::ChatModel
            }
        })
        .collect()
}

/// The work of a chat delivery, after its answer. What it does not finish (a provider failure, a
/// worker that died) leaves messages without a session memory, which the sweep
/// (`enqueue_chat_messages`) sends again.
pub(crate) async fn remember(ids: &[i64], config: &EdgeConfig) -> Result<Remembered, EdgeError> {
    let openai = config.openai()?;
    let rest = ServiceRest::new(config.supabase()?);
    remember_messages(&rest, openai, ids).await
}

async fn remember_messages(
    rest: &ServiceRest,
    openai: &OpenAiConfig,
    ids: &[i64],
) -> Result<Remembered, EdgeError> {
    let request = rest.rpc("pending_chat_messages", &json!({ "p_message_ids": ids }));
    let pending = rest.execute(request).await?;
    let messages: Vec<PendingMessage> = pending["messages"]
        .as_array()
        .map(|rows| rows.iter().filter_map(PendingMessage::from_row).collect())
        .unwrap_or_default();
    let readers = match &openai.chat_model {
        Some(_) if !messages.is_empty() => {
            let granted = reserve_chat_model_calls(rest, openai, &messages).await?;
            assign_readers(&messages, &granted)
        }
        _ => vec![Reader::Rules; messages.len()],
    };
    // One budget for the chat model's and the embeddings' retries.
    let deadline = clock::now_ms() + TIME_BUDGET_MS;
    let found = read_preferences(openai, &messages, &readers, deadline).await?;

    let mut provider_calls = 0;
    let texts: Vec<(String, bool)> = messages
        .iter()
        .map(|m| {
            preferences::session_memory_text(&m.content, preferences::SESSION_MEMORY_MAX_BYTES)
        })
        .collect();
    let vectors = embed_texts(openai, &messages, &texts, deadline, &mut provider_calls).await?;

    let rows: Vec<Value> = messages
        .iter()
        .zip(&texts)
        .zip(readers.iter().zip(&found))
        .map(|((message, (text, truncated)), (reader, found))| {
            let embedding = vectors
                .binary_search_by_key(&message.message_id, |(id, _)| *id)
                .ok()
                .map(|at| &vectors[at].1);
            json!({
                "session_id": message.session_id,
                "user_id": message.user_id,
                "content": text,
                "embedding": embedding,
                "source_message_id": message.message_id,
                "metadata": {
                    "message_id": message.message_id,
                    "truncated": truncated,
                    "preferences": found.iter().map(preference_json).collect::<Vec<_>>(),
                    "extracted_by": reader.as_str(),
                    "embedding_model": embedding.map(|_| &openai.embedding_model),
                },
            })
        })
        .collect();
    // In calls of STORE_CHUNK: a row carries its vector (about 17 KB as text), and a request
    // body over 8 MiB is refused by the API gateway. What a failed call leaves unstored has no
    // session memory, so a retry or the sweep reads it again.
    let (mut session_memories, mut preferences) = (0, 0);
    for chunk in rows.chunks(STORE_CHUNK) {
        let request = rest.rpc("store_chat_memories", &json!({ "p_memories": chunk }));
        let stored = rest.execute(request).await?;
        session_memories += stored["session_memories"].as_u64().unwrap_or(0);
        preferences += stored["preferences"].as_u64().unwrap_or(0);
    }

    let by = |wanted: Reader| readers.iter().filter(|r| **r == wanted).count();
    let chat_model_calls = by(Reader::ChatModel);
    // Over the per-user cap: said in the outcome, which the background's log line keeps.
    let capped = messages.len() - chat_model_calls;
    Ok(Remembered {
        messages: ids.len(),
        session_memories,
        already_processed: pending["already_processed"].as_u64().unwrap_or(0),
        preferences,
        extracted_by: ExtractedBy {
            chat_model: chat_model_calls,
            rules: by(Reader::Rules),
        },
        provider_calls,
        chat_model_capped: (openai.chat_model.is_some() && capped > 0).then_some(Capped {
            messages: capped,
            calls_per_user_per_minute: openai.chat_model_calls_per_minute,
        }),
    })
}

/// How many chat-model calls each user of `messages` may have now (`reserve_chat_model_calls`
/// counts them per user and minute in the database, across deliveries).
async fn reserve_chat_model_calls(
    rest: &ServiceRest,
    openai: &OpenAiConfig,
    messages: &[PendingMessage],
) -> Result<Map<String, Value>, EdgeError> {
    if openai.chat_model_calls_per_minute == 0 {
        return Ok(Map::new());
    }
    let request = rest.rpc(
        "reserve_chat_model_calls",
        &json!({
            "p_wanted": wanted_calls(messages),
            "p_per_minute": openai.chat_model_calls_per_minute,
        }),
    );
    match rest.execute(request).await? {
        Value::Object(granted) => Ok(granted),
        _ => Ok(Map::new()),
    }
}

/// Each message's preferences, by its reader; chat-model requests run [`CHAT_CONCURRENCY`] at a
/// time, the answers kept in order.
async fn read_preferences(
    openai: &OpenAiConfig,
    messages: &[PendingMessage],
    readers: &[Reader],
    deadline: f64,
) -> Result<Vec<Vec<Preference>>, EdgeError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let model = openai.chat_model.as_deref().unwrap_or_default();
    stream::iter(messages.iter().zip(readers))
        .map(|(message, reader)| async move {
            match reader {
                Reader::ChatModel => {
                    ask_chat_model(openai, model, &message.content, deadline).await
                }
                Reader::Rules => Ok(preferences::extract_by_rules(&message.content)),
            }
        })
        .buffered(CHAT_CONCURRENCY)
        .try_collect()
        .await
}

/// The session memories' vectors in pgvector's text form with their message ids, in id order;
/// blank ones have none.
async fn embed_texts(
    openai: &OpenAiConfig,
    messages: &[PendingMessage],
    texts: &[(String, bool)],
    deadline: f64,
    provider_calls: &mut usize,
) -> Result<Vec<(i64, String)>, EdgeError> {
    let memories: Vec<PendingMemory> = messages
        .iter()
        .zip(texts)
        .map(|(message, (text, _))| PendingMemory {
            id: message.message_id,
            content: text.clone(),
        })
        .collect();
    let limits = EmbeddingLimits {
        max_inputs: openai.embedding_max_inputs,
        ..EmbeddingLimits::default()
    };
    let mut vectors = Vec::with_capacity(memories.len());
    for batch in &embeddings::plan_batches(&memories, &limits).batches {
        for (id, vector) in request_embeddings(openai, batch, deadline, provider_calls).await? {
            vectors.push((id, vector_literal(&vector)));
        }
    }
    vectors.sort_unstable_by_key(|(id, _)| *id);
    Ok(vectors)
}

fn preference_json(preference: &Preference) -> Value {
    json!({
        "category": preference.category.as_str(),
        "preference": preference.preference,
        "confidence": preference.confidence,
    })
}

/// One chat completion with a strict JSON-schema answer, retried as the API asks.
async fn ask_chat_model(
    config: &OpenAiConfig,
    model: &str,
    message: &str,
    deadline: f64,
) -> Result<Vec<Preference>, EdgeError> {
    let body = json!({
        "model": model,
        "messages": preferences::chat_messages(message),
        "response_format": preferences::response_format(),
    });
    let mut calls = 0;
    let answer = openai::call(config, "chat/completions", &body, deadline, &mut calls).await?;
    preferences::parse_chat_response(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64, user: &str) -> PendingMessage {
        PendingMessage {
            message_id: id,
            session_id: "s".into(),
            user_id: user.into(),
            content: "a cheap hostel".into(),
        }
    }

    #[test]
    fn the_first_granted_messages_of_each_user_go_to_the_chat_model() {
        let messages = [
            message(1, "ada"),
            message(2, "bob"),
            message(3, "ada"),
            message(4, "ada"),
            message(5, "cy"),
        ];
        assert_eq!(
            Value::Object(wanted_calls(&messages)),
            json!({ "ada": 3, "bob": 1, "cy": 1 })
        );
        let granted = json!({ "ada": 2, "bob": 0 }).as_object().unwrap().clone();
        assert_eq!(
            assign_readers(&messages, &granted),
            [
                Reader::ChatModel,
                Reader::Rules,
                Reader::ChatModel,
                Reader::Rules,
                Reader::Rules
            ]
        );
    }

    #[test]
    fn message_ids_come_as_a_list_or_as_one_message() {
        let payload = |value: Value| value.as_object().unwrap().clone();
        assert_eq!(
            message_ids(&payload(json!({ "message_ids": [3, 1] }))).unwrap(),
            [3, 1]
        );
        let one = json!({
            "message_id": 7,
            "session_id": "0b7c1a4e-2f3d-4c5b-8a9e-1f2d3c4b5a69",
            "user_id": "0b7c1a4e-2f3d-4c5b-8a9e-1f2d3c4b5a69",
            "role": "user",
        });
        assert_eq!(message_ids(&payload(one)).unwrap(), [7]);
        for (bad, field) in [
            (json!({ "message_ids": [0] }), "message_ids"),
            (json!({ "message_ids": "1,2" }), "message_ids"),
            (json!({ "message_ids": [1.5] }), "message_ids"),
            (json!({}), "message_id"),
        ] {
            let error = message_ids(&payload(bad.clone())).unwrap_err();
            assert_eq!(error.field(), Some(field), "{bad}");
        }
    }
}
