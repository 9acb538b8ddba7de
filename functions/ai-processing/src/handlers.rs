//! The I/O around the pure core: claim pending memories and store their vectors through
//! PostgREST, call the OpenAI-compatible API with retries inside the request's time budget, and
//! turn a user's chat message into a session memory and preference memories.

use serde_json::{json, Map, Value};
use shared::config::OpenAiConfig;
use shared::rest::ServiceRest;
use shared::{clock, outcome, Delivery, EdgeConfig, EdgeError, Handled, Outcome};

use crate::chat;
use crate::embeddings::{self, EmbeddingBatch, EmbeddingLimits, PendingMemory};
use crate::openai;

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
#[derive(Clone, Copy)]
enum Work {
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
                memory_ids: listed_ids(&delivery.payload, "memory_ids")?,
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

/// Either kind of work takes as long as the provider and the database take, so a delivery is
/// accepted at once (202) and the work runs after the answer: the sender, which waits for a whole
/// batch of webhooks, is not held. What the background work does not finish stays pending in the
/// database and is taken up by the next delivery or a sweep.
pub fn accept(event: AiEvent, config: &EdgeConfig) -> Handled {
    let config = config.clone();
    match event {
        AiEvent::Embeddings { memory_ids } => Handled::Accepted {
            outcome: outcome([("background", json!("embeddings"))]),
            background: Box::pin(
                async move { embed_memories(memory_ids.as_deref(), &config).await },
            ),
        },
        AiEvent::Chat { message_ids } => Handled::Accepted {
            outcome: outcome([
                ("background", json!("chat")),
                ("messages", json!(message_ids.len())),
            ]),
            background: Box::pin(async move { chat::remember(&message_ids, &config).await }),
        },
    }
}

/// Counts what one delivery did.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    embedded: usize,
    pub(crate) provider_calls: usize,
    skipped: usize,
}

/// The ids a payload lists under `field` (`memory_ids`, `message_ids`), if it lists any: positive
/// integers, or a 400 naming the field.
pub(crate) fn listed_ids(
    payload: &Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<i64>>, EdgeError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                id.as_i64()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| EdgeError::invalid_field(field, "expected positive integer ids"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(EdgeError::invalid_field(field, "expected an array of ids")),
    }
}

/// A claimed memory, with the hash of the content it was claimed with.
struct Claimed {
    memory: PendingMemory,
    content_hash: String,
}

async fn embed_memories(ids: Option<&[i64]>, config: &EdgeConfig) -> Result<Outcome, EdgeError> {
    let openai = config.openai()?;
    let rest = ServiceRest::new(config.supabase()?);
    let deadline = clock::now_ms() + TIME_BUDGET_MS;
    let limits = EmbeddingLimits {
        max_inputs: openai.embedding_max_inputs,
        ..EmbeddingLimits::default()
    };
    let mut progress = Progress::default();
    let mut failure = None;
    let mut out_of_time = false;
    // A round (claim, embed, store) is only begun when the longest one so far would still end
    // within the budget: the store at its end cannot be cut short without wasting the vectors,
    // and work past the edge runtime's wall-clock limit would be cut off mid-round.
    let mut longest_round_ms: f64 = 0.0;
    loop {
        let round_started = clock::now_ms();
        if round_started + longest_round_ms >= deadline {
            out_of_time = true;
            break;
        }
        let (lease, claimed) = claim(&rest, ids).await?;
        let Some(lease) = lease else { break };
        let memories: Vec<PendingMemory> = claimed.iter().map(|c| c.memory.clone()).collect();
        let plan = embeddings::plan_batches(&memories, &limits);
        progress.skipped += plan.skipped.len();
        let mut vectors = Vec::new();
        for batch in &plan.batches {
            if clock::now_ms() >= deadline {
                out_of_time = true;
                break;
            }
            match request_embeddings(openai, batch, deadline, &mut progress).await {
                Ok(batch_vectors) => vectors.extend(stored_rows(batch, batch_vectors, &claimed)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let expected = claimed.len() - plan.skipped.len();
        let stored = if vectors.is_empty() {
            0
        } else {
            match store(&rest, &lease, &openai.embedding_model, vectors).await {
                Ok(stored) => stored,
                Err(error) => {
                    // Give the work back before answering, so the retry finds it claimable.
                    let _ = release(&rest, &lease).await;
                    return Err(error);
                }
            }
        };
        progress.embedded += stored;
        // What was not stored goes back at once, so a retry need not wait for the lease. Blank
        // memories stay leased until it expires, so this loop does not claim them again.
        if failure.is_some() || stored < expected {
            release(&rest, &lease).await?;
            break;
        }
        longest_round_ms = longest_round_ms.max(clock::now_ms() - round_started);
    }
    let remaining = count_pending(&rest, ids).await?;
    // Out of time with work left: a new delivery carries on rather than waiting for the sweep.
    let out_of_time = out_of_time || clock::now_ms() >= deadline;
    if remaining > 0 && failure.is_none() && out_of_time && progress.embedded > 0 {
        let request = rest.rpc("enqueue_memory_embeddings", &json!({}));
        rest.execute(request).await?;
    }
    if let (0, Some(error)) = (progress.embedded, &failure) {
        // Refused for good (a refused key, a malformed request): logged as the provider's refusal;
        // the memories stay pending for the sweep.
        if error.is_permanent() {
            return Err(error.clone());
        }
        // Nothing embedded: logged as work pending, with the reason and the counts; the memories
        // were released for the next delivery or the sweep.
        let retry_after_seconds = match error {
            EdgeError::Upstream {
                retry_after_seconds,
                ..
            } => *retry_after_seconds,
            _ => None,
        };
        return Err(EdgeError::Pending {
            message: format!("0 memories embedded, {remaining} remain pending: {error}"),
            retry_after_seconds,
        });
    }
    Ok(outcome([
        ("embedded", json!(progress.embedded)),
        ("remaining", json!(remaining)),
        ("skipped", json!(progress.skipped)),
        ("provider_calls", json!(progress.provider_calls)),
    ]))
}

/// The rows `store_memory_embeddings` takes for one batch's vectors.
fn stored_rows(
    batch: &EmbeddingBatch,
    vectors: Vec<(i64, Vec<f32>)>,
    claimed: &[Claimed],
) -> Vec<Value> {
    vectors
        .into_iter()
        .zip(&batch.inputs)
        .filter_map(|((id, vector), input)| {
            let hash = &claimed.iter().find(|c| c.memory.id == id)?.content_hash;
            Some(json!({
                "id": id,
                "content_hash": hash,
                "embedding": vector_literal(&vector),
                "truncated": input.truncated,
            }))
        })
        .collect()
}

/// pgvector's text form, `[0.1,0.2,…]`: shortest round-trip digits, so the stored `real`s are
/// exactly the received ones, and cheaper for Postgres to read than a JSON array of numbers.
/// serde_json writes exactly that for finite `f32`s (every parsed component is finite), with
/// the float formatter the module already carries.
pub(crate) fn vector_literal(vector: &[f32]) -> String {
    serde_json::to_string(vector).unwrap_or_default()
}

/// One embeddings request, retried as the API asks within the time budget.
pub(crate) async fn request_embeddings(
    config: &OpenAiConfig,
    batch: &EmbeddingBatch,
    deadline: f64,
    progress: &mut Progress,
) -> Result<Vec<(i64, Vec<f32>)>, EdgeError> {
    let body = embeddings::request_body(&config.embedding_model, batch);
    let answer = openai::call(
        config,
        "embeddings",
        &body,
        deadline,
        &mut progress.provider_calls,
    )
    .await?;
    embeddings::parse_response(&answer, batch, DIMENSIONS)
}

async fn claim(
    rest: &ServiceRest,
    ids: Option<&[i64]>,
) -> Result<(Option<String>, Vec<Claimed>), EdgeError> {
    let request = rest.rpc(
        "claim_memory_embeddings",
        &json!({
            "p_memory_ids": ids,
            "p_limit": CLAIM_SIZE,
            "p_lease_seconds": LEASE_SECONDS,
        }),
    );
    // One JSON value: PostgREST caps the rows a function returns at max_rows.
    let answer = rest.execute(request).await?;
    let claimed: Vec<Claimed> = answer
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
    let lease = answer
        .get("lease_id")
        .and_then(Value::as_str)
        .filter(|_| !claimed.is_empty())
        .map(str::to_owned);
    Ok((lease, claimed))
}

/// A round's vectors, [`STORE_CHUNK`] per PostgREST round trip; how many were written.
async fn store(
    rest: &ServiceRest,
    lease: &str,
    model: &str,
    rows: Vec<Value>,
) -> Result<usize, EdgeError> {
    let mut stored = 0;
    for chunk in rows.chunks(STORE_CHUNK) {
        let request = rest.rpc(
            "store_memory_embeddings",
            &json!({ "p_lease_id": lease, "p_model": model, "p_embeddings": chunk }),
        );
        let written = rest.execute(request).await?;
        stored += written
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
    }
    Ok(stored)
}

async fn release(rest: &ServiceRest, lease: &str) -> Result<(), EdgeError> {
    let request = rest.rpc("release_memory_embeddings", &json!({ "p_lease_id": lease }));
    rest.execute(request).await.map(drop)
}

async fn count_pending(rest: &ServiceRest, ids: Option<&[i64]>) -> Result<u64, EdgeError> {
    let request = rest.rpc(
        "count_pending_memory_embeddings",
        &json!({ "p_memory_ids": ids }),
    );
    Ok(rest.execute(request).await?.as_u64().unwrap_or(0))
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
