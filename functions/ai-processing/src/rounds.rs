//! The rounds of one embedding delivery: claim pending memories, embed them, store the vectors,
//! again until nothing is left, the next round would not fit in the time budget, or something
//! fails. It decides; the database's leases ([`Memories`]), the embeddings API ([`EmbeddingsApi`])
//! and the clock are ports, so every decision is tested here without either.
//!
//! - A round is begun only when the longest one so far would still end within the budget: its
//!   store cannot be cut short without wasting the vectors, and work past the edge runtime's
//!   wall-clock limit would be cut off mid-round.
//! - What a round did not store goes back at once ([`Memories::release`]), so a retry need not
//!   wait for the lease; blank memories stay leased until it runs out, so the rounds do not claim
//!   them again.
//! - Out of time with work left (and something done), another delivery is asked for
//!   ([`Memories::enqueue_more`]) rather than waiting for the sweep.
//! - Nothing embedded because of a failure: the provider's refusal as it came (a refused key, a
//!   malformed request), else [`EdgeError::Pending`] with the counts and the wait it asked for.

use serde::Serialize;
use serde_json::Value;
use shared::EdgeError;

use crate::clock::Clock;
use crate::embeddings::{self, EmbeddingBatch, EmbeddingLimits, PendingMemory};

/// A claimed memory, with the hash of the content it was claimed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub memory: PendingMemory,
    pub content_hash: String,
}

/// Memories claimed under one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub lease: String,
    pub memories: Vec<Claimed>,
}

/// A vector to store for the content it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub memory_id: i64,
    pub content_hash: String,
    pub vector: Vec<f32>,
    pub truncated: bool,
}

/// The memories in the database and their leases.
#[allow(async_fn_in_trait)]
pub trait Memories {
    /// Leases pending memories (among `ids`, when given); `None` when none is pending.
    async fn claim(&self, ids: Option<&[i64]>) -> Result<Option<Claim>, EdgeError>;
    /// Writes the vectors still under `lease` with unchanged content; how many were written.
    async fn store(&self, lease: &str, vectors: Vec<Embedded>) -> Result<usize, EdgeError>;
    /// Gives the lease's memories back.
    async fn release(&self, lease: &str) -> Result<(), EdgeError>;
    /// How many are still pending (among `ids`, when given).
    async fn count_pending(&self, ids: Option<&[i64]>) -> Result<u64, EdgeError>;
    /// Asks for another delivery to carry on.
    async fn enqueue_more(&self) -> Result<(), EdgeError>;
}

/// The embeddings API: one request's answer, retried as the API asks until `deadline`.
#[allow(async_fn_in_trait)]
pub trait EmbeddingsApi {
    async fn embeddings(
        &self,
        body: &Value,
        deadline: f64,
        calls: &mut usize,
    ) -> Result<Value, EdgeError>;
}

/// What the rounds are given.
#[derive(Debug, Clone, Copy)]
pub struct Rounds<'a> {
    pub ids: Option<&'a [i64]>,
    pub model: &'a str,
    pub limits: EmbeddingLimits,
    pub dimensions: usize,
    pub budget_ms: f64,
}

/// What the rounds did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub embedded: usize,
    pub remaining: u64,
    pub skipped: usize,
    pub provider_calls: usize,
}

pub async fn run(
    rounds: &Rounds<'_>,
    memories: &impl Memories,
    api: &impl EmbeddingsApi,
    clock: &impl Clock,
) -> Result<Report, EdgeError> {
    let deadline = clock.now_ms() + rounds.budget_ms;
    let mut report = Report::default();
    let mut failure = None;
    let mut out_of_time = false;
    let mut longest_round_ms: f64 = 0.0;
    loop {
        let round_started = clock.now_ms();
        if round_started + longest_round_ms >= deadline {
            out_of_time = true;
            break;
        }
        let Some(claim) = memories.claim(rounds.ids).await? else {
            break;
        };
        let pending: Vec<PendingMemory> = claim.memories.iter().map(|c| c.memory.clone()).collect();
        let plan = embeddings::plan_batches(&pending, &rounds.limits);
        report.skipped += plan.skipped.len();
        let mut vectors = Vec::new();
        for batch in &plan.batches {
            if clock.now_ms() >= deadline {
                out_of_time = true;
                break;
            }
            let calls = &mut report.provider_calls;
            match embed(api, rounds.model, rounds.dimensions, batch, deadline, calls).await {
                Ok(batch_vectors) => {
                    vectors.extend(embedded(batch, batch_vectors, &claim.memories));
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let expected = claim.memories.len() - plan.skipped.len();
        let stored = if vectors.is_empty() {
            0
        } else {
            match memories.store(&claim.lease, vectors).await {
                Ok(stored) => stored,
                Err(error) => {
                    // Give the work back before answering, so the retry finds it claimable.
                    let _ = memories.release(&claim.lease).await;
                    return Err(error);
                }
            }
        };
        report.embedded += stored;
        if failure.is_some() || stored < expected {
            memories.release(&claim.lease).await?;
            break;
        }
        longest_round_ms = longest_round_ms.max(clock.now_ms() - round_started);
    }
    report.remaining = memories.count_pending(rounds.ids).await?;
    let out_of_time = out_of_time || clock.now_ms() >= deadline;
    if report.remaining > 0 && failure.is_none() && out_of_time && report.embedded > 0 {
        memories.enqueue_more().await?;
    }
    match (report.embedded, failure) {
        (0, Some(error)) if error.is_permanent() => Err(error),
        (0, Some(error)) => {
            let retry_after_seconds = match &error {
                EdgeError::Upstream {
                    retry_after_seconds,
                    ..
                } => *retry_after_seconds,
                _ => None,
            };
            Err(EdgeError::Pending {
                message: format!(
                    "0 memories embedded, {} remain pending: {error}",
                    report.remaining
                ),
                retry_after_seconds,
            })
        }
        _ => Ok(report),
    }
}

/// One batch's vectors from `model`, checked against the batch and `dimensions`.
pub(crate) async fn embed(
    api: &impl EmbeddingsApi,
    model: &str,
    dimensions: usize,
    batch: &EmbeddingBatch,
    deadline: f64,
    calls: &mut usize,
) -> Result<Vec<(i64, Vec<f32>)>, EdgeError> {
    let body = embeddings::request_body(model, batch);
    let answer = api.embeddings(&body, deadline, calls).await?;
    embeddings::parse_response(&answer, batch, dimensions)
}

/// A batch's vectors with the content hashes they were claimed under.
fn embedded(
    batch: &EmbeddingBatch,
    vectors: Vec<(i64, Vec<f32>)>,
    claimed: &[Claimed],
) -> Vec<Embedded> {
    vectors
        .into_iter()
        .zip(&batch.inputs)
        .filter_map(|((memory_id, vector), input)| {
            let claimed = claimed.iter().find(|c| c.memory.id == memory_id)?;
            Some(Embedded {
                memory_id,
                content_hash: claimed.content_hash.clone(),
                vector,
                truncated: input.truncated,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "rounds_tests.rs"]
mod tests;
