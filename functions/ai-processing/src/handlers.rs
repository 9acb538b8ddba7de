//! ai-processing's events, checked and accepted, and the real ports of their work: the memories'
//! leases and the chat messages through PostgREST's RPCs, and the OpenAI-compatible embeddings
//! and chat-completions APIs.

use serde::Serialize;
use serde_json::{json, Map, Value};
use shared::config::OpenAiConfig;
use shared::rest::ServiceRest;
use shared::{Delivery, EdgeConfig, EdgeError, Fields, Handled};

use crate::chat::{
    self, ChatModel, ChatPorts, ChatStore, Pending, PendingMessage, Remembered, Stored,
};
use crate::clock::SystemClock;
use crate::embeddings::{EmbeddingLimits, PendingMemory};
use crate::openai;
use crate::preferences::{self, Preference};
use crate::rounds::{self, Claim, Claimed, Embedded, EmbeddingsApi, Memories, Report, Rounds};

/// `memories.embedding` is `vector(1536)`; any other length is refused before anything is written.
pub const DIMENSIONS: usize = 1536;
/// How many memories one claim takes: one embeddings request's worth.
const CLAIM_SIZE: usize = 2048;
/// How long claimed memories are ours before another invocation may take them.
const LEASE_SECONDS: u32 = 120;
/// How long one delivery's background work may spend, retries included: under the hosted edge
/// runtime's wall-clock limit for a worker (150 s on the free plan), so that it ends by itself and
/// hands what is left to a new delivery.
pub(crate) const TIME_BUDGET_MS: f64 = 120_000.0;
/// Vectors per store call. Writing a vector also inserts it into the HNSW index, which is nearly
/// all of a store's time: 7–9 ms per vector measured on a busy 2-core machine with 4,000 vectors
/// indexed, more as the index grows. Hosted PostgREST runs statements under an 8 s
/// `statement_timeout`, which 500 per call came close to and, under load, passed (the whole
/// claim was then retried). 100 keep a store around a second.
pub(crate) const STORE_CHUNK: usize = 100;

/// The work an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    Embeddings,
    Chat,
}

/// Every event ai-processing handles and the work it asks for: the one place an event name is
/// written. The database's `event_catalog` routes exactly these here (its tests compare the two).
/// `chat.message.created` is not emitted by the triggers (a user's message comes once, as
/// `chat.message.process`) but is still accepted under the original name.
const ROUTES: &[(&str, Work)] = &[
    ("memory.generate.embedding", Work::Embeddings),
    ("chat.message.process", Work::Chat),
    ("chat.message.created", Work::Chat),
];

/// Every event ai-processing handles.
pub fn events() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|(event, _)| *event)
}

/// A checked delivery: what it asks for, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiEvent {
    /// The memories to embed; none named (the sweep): whatever is pending.
    Embeddings { memory_ids: Option<Vec<i64>> },
    /// The chat messages to remember.
    Chat { message_ids: Vec<i64> },
}

impl AiEvent {
    /// The event of a delivery, its ids checked, and the settings its work needs: without a key
    /// nothing is read or touched (503 `not_configured`).
    pub fn parse(delivery: &Delivery, config: &EdgeConfig) -> Result<Self, EdgeError> {
        let event = delivery.event.as_str();
        let (_, work) = ROUTES
            .iter()
            .find(|(name, _)| *name == event)
            .ok_or_else(|| EdgeError::UnsupportedEvent(event.to_owned()))?;
        let parsed = match work {
            Work::Embeddings => Self::Embeddings {
                memory_ids: Fields::new(&delivery.payload).optional_ids("memory_ids")?,
            },
            Work::Chat => Self::Chat {
                message_ids: chat::message_ids(&delivery.payload)?,
            },
        };
        config.openai()?;
        config.supabase()?;
        Ok(parsed)
    }
}

/// What a delivery came to: the fields of its answer after `ok`, `event` and `webhook_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AiOutcome {
    /// The answer: the work runs after it; a chat delivery says how many messages it names.
    Accepted {
        background: Work,
        #[serde(skip_serializing_if = "Option::is_none")]
        messages: Option<usize>,
    },
    /// How the embedding rounds ended.
    Embedded(Report),
    /// How a chat delivery's work ended.
    Remembered(Remembered),
}

/// Either kind of work takes as long as the provider and the database take, so a delivery is
/// accepted at once (202) and the work runs after the answer: the sender, which waits for a whole
/// batch of webhooks, is not held. What the background work does not finish stays pending in the
/// database and is taken up by the next delivery or a sweep.
pub fn accept(event: AiEvent, config: &EdgeConfig) -> Handled<AiOutcome> {
    let config = config.clone();
    match event {
        AiEvent::Embeddings { memory_ids } => Handled::Accepted {
            outcome: AiOutcome::Accepted {
                background: Work::Embeddings,
                messages: None,
            },
            background: Box::pin(async move {
                embed_memories(memory_ids.as_deref(), &config)
                    .await
                    .map(AiOutcome::Embedded)
            }),
        },
        AiEvent::Chat { message_ids } => Handled::Accepted {
            outcome: AiOutcome::Accepted {
                background: Work::Chat,
                messages: Some(message_ids.len()),
            },
            background: Box::pin(async move {
                remember_messages(&message_ids, &config)
                    .await
                    .map(AiOutcome::Remembered)
            }),
        },
    }
}

async fn embed_memories(ids: Option<&[i64]>, config: &EdgeConfig) -> Result<Report, EdgeError> {
    let openai = config.openai()?;
    let rest = ServiceRest::new(config.supabase()?);
    let rounds = Rounds {
        ids,
        model: &openai.embedding_model,
        limits: EmbeddingLimits {
            max_inputs: openai.embedding_max_inputs,
            ..EmbeddingLimits::default()
        },
        dimensions: DIMENSIONS,
        budget_ms: TIME_BUDGET_MS,
    };
    let memories = RestMemories {
        rest: &rest,
        model: &openai.embedding_model,
    };
    rounds::run(&rounds, &memories, &OpenAiEmbeddings(openai), &SystemClock).await
}

/// A chat delivery's work with the real ports.
async fn remember_messages(ids: &[i64], config: &EdgeConfig) -> Result<Remembered, EdgeError> {
    let openai = config.openai()?;
    let rest = ServiceRest::new(config.supabase()?);
    let model = openai.chat_model.as_deref().map(|model| OpenAiChat {
        config: openai,
        model,
    });
    let ports = ChatPorts {
        store: &RestChat(&rest),
        model: model.as_ref(),
        embeddings: &OpenAiEmbeddings(openai),
        clock: &SystemClock,
    };
    chat::remember(&ports, openai, ids).await
}

/// pgvector's text form, `[0.1,0.2,…]`: shortest round-trip digits, so the stored `real`s are
/// exactly the received ones, and cheaper for Postgres to read than a JSON array of numbers.
/// serde_json writes exactly that for finite `f32`s (every parsed component is finite), with
/// the float formatter the module already carries.
pub(crate) fn vector_literal(vector: &[f32]) -> String {
    serde_json::to_string(vector).unwrap_or_default()
}

/// The embeddings API of `OPENAI_BASE_URL`.
struct OpenAiEmbeddings<'a>(&'a OpenAiConfig);

impl EmbeddingsApi for OpenAiEmbeddings<'_> {
    async fn embeddings(
        &self,
        body: &Value,
        deadline: f64,
        calls: &mut usize,
    ) -> Result<Value, EdgeError> {
        openai::call(self.0, "embeddings", body, deadline, calls).await
    }
}

/// The chat model of `OPENAI_BASE_URL`: one chat completion with a strict JSON-schema answer.
struct OpenAiChat<'a> {
    config: &'a OpenAiConfig,
    model: &'a str,
}

impl ChatModel for OpenAiChat<'_> {
    async fn preferences(
        &self,
        message: &str,
        deadline: f64,
    ) -> Result<Vec<Preference>, EdgeError> {
        let body = json!({
            "model": self.model,
            "messages": preferences::chat_messages(message),
            "response_format": preferences::response_format(),
        });
        let mut calls = 0;
        let answer =
            openai::call(self.config, "chat/completions", &body, deadline, &mut calls).await?;
        preferences::parse_chat_response(&answer)
    }
}

/// The chat messages through PostgREST's RPCs.
struct RestChat<'a>(&'a ServiceRest);

impl ChatStore for RestChat<'_> {
    async fn pending(&self, ids: &[i64]) -> Result<Pending, EdgeError> {
        let request = self
            .0
            .rpc("pending_chat_messages", &json!({ "p_message_ids": ids }));
        let pending = self.0.execute(request).await?;
        Ok(Pending {
            messages: pending["messages"]
                .as_array()
                .map(|rows| rows.iter().filter_map(PendingMessage::from_row).collect())
                .unwrap_or_default(),
            already_processed: pending["already_processed"].as_u64().unwrap_or(0),
        })
    }

    async fn reserve_chat_model_calls(
        &self,
        wanted: &Map<String, Value>,
        per_minute: u32,
    ) -> Result<Map<String, Value>, EdgeError> {
        let request = self.0.rpc(
            "reserve_chat_model_calls",
            &json!({ "p_wanted": wanted, "p_per_minute": per_minute }),
        );
        match self.0.execute(request).await? {
            Value::Object(granted) => Ok(granted),
            _ => Ok(Map::new()),
        }
    }

    async fn store(&self, rows: &[Value]) -> Result<Stored, EdgeError> {
        let request = self
            .0
            .rpc("store_chat_memories", &json!({ "p_memories": rows }));
        let stored = self.0.execute(request).await?;
        Ok(Stored {
            session_memories: stored["session_memories"].as_u64().unwrap_or(0),
            preferences: stored["preferences"].as_u64().unwrap_or(0),
        })
    }
}

/// The memories through PostgREST's RPCs (`claim_memory_embeddings` and the rest).
struct RestMemories<'a> {
    rest: &'a ServiceRest,
    model: &'a str,
}

impl Memories for RestMemories<'_> {
    async fn claim(&self, ids: Option<&[i64]>) -> Result<Option<Claim>, EdgeError> {
        let request = self.rest.rpc(
            "claim_memory_embeddings",
            &json!({
                "p_memory_ids": ids,
                "p_limit": CLAIM_SIZE,
                "p_lease_seconds": LEASE_SECONDS,
            }),
        );
        // One JSON value: PostgREST caps the rows a function returns at max_rows.
        let answer = self.rest.execute(request).await?;
        let memories: Vec<Claimed> = answer
            .get("memories")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| {
                        Some(Claimed {
                            memory: PendingMemory {
                                id: row.get("id")?.as_i64()?,
                                content: row.get("content")?.as_str()?.to_owned(),
                            },
                            content_hash: row.get("content_hash")?.as_str()?.to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let lease = answer.get("lease_id").and_then(Value::as_str);
        Ok(match lease {
            Some(lease) if !memories.is_empty() => Some(Claim {
                lease: lease.to_owned(),
                memories,
            }),
            _ => None,
        })
    }

    /// [`STORE_CHUNK`] vectors per PostgREST round trip.
    async fn store(&self, lease: &str, vectors: Vec<Embedded>) -> Result<usize, EdgeError> {
        let rows: Vec<Value> = vectors
            .iter()
            .map(|vector| {
                json!({
                    "id": vector.memory_id,
                    "content_hash": vector.content_hash,
                    "embedding": vector_literal(&vector.vector),
                    "truncated": vector.truncated,
                })
            })
            .collect();
        let mut stored = 0;
        for chunk in rows.chunks(STORE_CHUNK) {
            let request = self.rest.rpc(
                "store_memory_embeddings",
                &json!({ "p_lease_id": lease, "p_model": self.model, "p_embeddings": chunk }),
            );
            let written = self.rest.execute(request).await?;
            stored += written
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
        }
        Ok(stored)
    }

    async fn release(&self, lease: &str) -> Result<(), EdgeError> {
        let request = self
            .rest
            .rpc("release_memory_embeddings", &json!({ "p_lease_id": lease }));
        self.rest.execute(request).await.map(drop)
    }

    async fn count_pending(&self, ids: Option<&[i64]>) -> Result<u64, EdgeError> {
        let request = self.rest.rpc(
            "count_pending_memory_embeddings",
            &json!({ "p_memory_ids": ids }),
        );
        Ok(self.rest.execute(request).await?.as_u64().unwrap_or(0))
    }

    async fn enqueue_more(&self) -> Result<(), EdgeError> {
        let request = self.rest.rpc("enqueue_memory_embeddings", &json!({}));
        self.rest.execute(request).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::vector_literal;

    #[test]
    fn components_round_trip_in_pgvectors_text_form() {
        let vector = [0.1_f32, -0.0123, 1e-7, 3.0, f32::MIN_POSITIVE];
        let literal = vector_literal(&vector);
        assert!(
            literal.starts_with('[') && literal.ends_with(']'),
            "{literal}"
        );
        let parsed: Vec<f32> = literal[1..literal.len() - 1]
            .split(',')
            .map(|text| text.parse().unwrap())
            .collect();
        assert_eq!(parsed, vector);
        assert_eq!(vector_literal(&[0.5, 2.0]), "[0.5,2.0]");
    }

    #[test]
    fn every_listed_event_is_handled_and_no_other() {
        use shared::{Delivery, EdgeConfig, EdgeError};
        let unconfigured = EdgeConfig::from_env(|_| None);
        let outcome = |event: &str| {
            let delivery = Delivery {
                event: event.to_owned(),
                webhook_id: None,
                attempt: None,
                payload: serde_json::Map::new(),
                received_at: 0,
            };
            super::AiEvent::parse(&delivery, &unconfigured)
        };
        for event in super::events() {
            assert!(
                !matches!(outcome(event), Err(EdgeError::UnsupportedEvent(_))),
                "{event} is listed but not handled"
            );
        }
        assert!(matches!(
            outcome("trip.collaborator.added"),
            Err(EdgeError::UnsupportedEvent(_))
        ));
    }
}
