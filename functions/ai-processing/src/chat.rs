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
use shared::{EdgeError, Fields};

use crate::clock::Clock;
use crate::embeddings::{self, EmbeddingLimits, PendingMemory};
use crate::handlers::{vector_literal, DIMENSIONS, STORE_CHUNK, TIME_BUDGET_MS};
use crate::preferences::{self, Preference};
use crate::rounds::{self, EmbeddingsApi};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    pub message_id: i64,
    pub session_id: String,
    pub user_id: String,
    pub content: String,
}

impl PendingMessage {
    pub fn from_row(row: &Value) -> Option<Self> {
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

/// What `pending_chat_messages` says of a delivery's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// The users' messages still without a session memory, in id order.
    pub messages: Vec<PendingMessage>,
    /// How many of the named messages have one already.
    pub already_processed: u64,
}

/// What one `store_chat_memories` call wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    pub session_memories: u64,
    pub preferences: u64,
}

/// The chat messages and their session memories in the database.
#[allow(async_fn_in_trait)]
pub trait ChatStore {
    async fn pending(&self, ids: &[i64]) -> Result<Pending, EdgeError>;
    /// Takes up to `wanted[user]` chat-model calls of each user's `per_minute` for this minute;
    /// how many each user was granted.
    async fn reserve_chat_model_calls(
        &self,
        wanted: &Map<String, Value>,
        per_minute: u32,
    ) -> Result<Map<String, Value>, EdgeError>;
    /// Stores session memories (with their preferences) in one transaction; a message that has
    /// one already is left as it is.
    async fn store(&self, rows: &[Value]) -> Result<Stored, EdgeError>;
}

/// The chat model: a message's travel preferences.
#[allow(async_fn_in_trait)]
pub trait ChatModel {
    /// Asked, and retried as the API asks, until `deadline` (ms).
    async fn preferences(&self, message: &str, deadline: f64)
        -> Result<Vec<Preference>, EdgeError>;
}

/// The ports of a chat delivery's work.
pub struct ChatPorts<'a, S, M, E, C> {
    pub store: &'a S,
    /// `None` without `CHAT_MODEL`: the rules read every message.
    pub model: Option<&'a M>,
    pub embeddings: &'a E,
    pub clock: &'a C,
}

/// The work of a chat delivery, after its answer: each pending message's preferences (the chat
/// model for as many as its user's calls allow, the rules for the rest), its session memory
/// embedded, and both stored. What it does not finish (a provider failure, a worker that died)
/// leaves messages without a session memory, which the sweep (`enqueue_chat_messages`) sends
/// again.
pub async fn remember<S: ChatStore, M: ChatModel, E: EmbeddingsApi, C: Clock>(
    ports: &ChatPorts<'_, S, M, E, C>,
    openai: &OpenAiConfig,
    ids: &[i64],
) -> Result<Remembered, EdgeError> {
    let Pending {
        messages,
        already_processed,
    } = ports.store.pending(ids).await?;
    let readers = match ports.model {
        Some(_) if !messages.is_empty() && openai.chat_model_calls_per_minute > 0 => {
            let wanted = wanted_calls(&messages);
            let granted = ports
                .store
                .reserve_chat_model_calls(&wanted, openai.chat_model_calls_per_minute)
                .await?;
            assign_readers(&messages, &granted)
        }
        _ => vec![Reader::Rules; messages.len()],
    };
    // One budget for the chat model's and the embeddings' retries.
    let deadline = ports.clock.now_ms() + TIME_BUDGET_MS;
    let found = read_preferences(ports.model, &messages, &readers, deadline).await?;

    let mut provider_calls = 0;
    let texts: Vec<(String, bool)> = messages
        .iter()
        .map(|m| {
            preferences::session_memory_text(&m.content, preferences::SESSION_MEMORY_MAX_BYTES)
        })
        .collect();
    let vectors = embed_texts(
        ports.embeddings,
        openai,
        &messages,
        &texts,
        deadline,
        &mut provider_calls,
    )
    .await?;

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
    let mut stored = Stored::default();
    for chunk in rows.chunks(STORE_CHUNK) {
        let chunk = ports.store.store(chunk).await?;
        stored.session_memories += chunk.session_memories;
        stored.preferences += chunk.preferences;
    }

    let by = |wanted: Reader| readers.iter().filter(|r| **r == wanted).count();
    let chat_model_calls = by(Reader::ChatModel);
    // Over the per-user cap: said in the outcome, which the background's log line keeps.
    let capped = messages.len() - chat_model_calls;
    Ok(Remembered {
        messages: ids.len(),
        session_memories: stored.session_memories,
        already_processed,
        preferences: stored.preferences,
        extracted_by: ExtractedBy {
            chat_model: chat_model_calls,
            rules: by(Reader::Rules),
        },
        provider_calls,
        chat_model_capped: (ports.model.is_some() && capped > 0).then_some(Capped {
            messages: capped,
            calls_per_user_per_minute: openai.chat_model_calls_per_minute,
        }),
    })
}

/// Each message's preferences, by its reader; chat-model requests run [`CHAT_CONCURRENCY`] at a
/// time, the answers kept in order.
async fn read_preferences(
    model: Option<&impl ChatModel>,
    messages: &[PendingMessage],
    readers: &[Reader],
    deadline: f64,
) -> Result<Vec<Vec<Preference>>, EdgeError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(messages.iter().zip(readers))
        .map(|(message, reader)| async move {
            match (reader, model) {
                (Reader::ChatModel, Some(model)) => {
                    model.preferences(&message.content, deadline).await
                }
                _ => Ok(preferences::extract_by_rules(&message.content)),
            }
        })
        .buffered(CHAT_CONCURRENCY)
        .try_collect()
        .await
}

/// The session memories' vectors in pgvector's text form with their message ids, in id order;
/// blank ones have none.
async fn embed_texts(
    api: &impl EmbeddingsApi,
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
        let model = &openai.embedding_model;
        for (id, vector) in
            rounds::embed(api, model, DIMENSIONS, batch, deadline, provider_calls).await?
        {
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

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
