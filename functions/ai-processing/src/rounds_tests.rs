//! The rounds against in-memory memories, a scripted embeddings API and a clock that moves only
//! when the API or the store spend time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use futures::executor::block_on;

use super::*;
use crate::test_doubles::{Answer, TestApi, TestClock};

const DIMENSIONS: usize = 4;
const BUDGET_MS: f64 = 120_000.0;

/// A memory: its content, the lease it is under, whether it has its vector.
struct Row {
    content: String,
    lease: Option<String>,
    embedded: bool,
}

/// Memories in a map: pending until a vector is stored; `claim` leases up to `claim_size` of the
/// unleased ones.
struct TestMemories<'a> {
    clock: &'a TestClock,
    claim_size: usize,
    store_ms: f64,
    fail_store: bool,
    rows: RefCell<BTreeMap<i64, Row>>,
    leases: Cell<usize>,
    claims: Cell<usize>,
    released: RefCell<Vec<String>>,
    enqueued: Cell<usize>,
}

impl<'a> TestMemories<'a> {
    fn new(clock: &'a TestClock, contents: &[&str]) -> Self {
        let rows = contents
            .iter()
            .enumerate()
            .map(|(k, content)| {
                let row = Row {
                    content: content.to_string(),
                    lease: None,
                    embedded: false,
                };
                (k as i64 + 1, row)
            })
            .collect();
        Self {
            clock,
            claim_size: 2048,
            store_ms: 0.0,
            fail_store: false,
            rows: RefCell::new(rows),
            leases: Cell::new(0),
            claims: Cell::new(0),
            released: RefCell::new(Vec::new()),
            enqueued: Cell::new(0),
        }
    }

    fn many(clock: &'a TestClock, count: usize) -> Self {
        let contents: Vec<String> = (0..count).map(|k| format!("memory {k}")).collect();
        let borrowed: Vec<&str> = contents.iter().map(String::as_str).collect();
        Self::new(clock, &borrowed)
    }

    fn embedded(&self) -> usize {
        self.rows
            .borrow()
            .values()
            .filter(|row| row.embedded)
            .count()
    }

    fn leased(&self) -> usize {
        self.rows
            .borrow()
            .values()
            .filter(|row| row.lease.is_some())
            .count()
    }
}

impl Memories for TestMemories<'_> {
    async fn claim(&self, _: Option<&[i64]>) -> Result<Option<Claim>, EdgeError> {
        self.claims.set(self.claims.get() + 1);
        self.leases.set(self.leases.get() + 1);
        let lease = format!("lease-{}", self.leases.get());
        let mut rows = self.rows.borrow_mut();
        let memories: Vec<Claimed> = rows
            .iter_mut()
            .filter(|(_, row)| !row.embedded && row.lease.is_none())
            .take(self.claim_size)
            .map(|(id, row)| {
                row.lease = Some(lease.clone());
                Claimed {
                    memory: PendingMemory {
                        id: *id,
                        content: row.content.clone(),
                    },
                    content_hash: format!("hash-{id}"),
                }
            })
            .collect();
        Ok((!memories.is_empty()).then_some(Claim { lease, memories }))
    }

    async fn store(&self, lease: &str, vectors: Vec<Embedded>) -> Result<usize, EdgeError> {
        self.clock.spend(self.store_ms);
        if self.fail_store {
            return Err(EdgeError::upstream(
                "postgrest",
                Some(500),
                None,
                "server error",
            ));
        }
        let mut rows = self.rows.borrow_mut();
        let mut stored = 0;
        for vector in vectors {
            assert_eq!(vector.content_hash, format!("hash-{}", vector.memory_id));
            assert_eq!(vector.vector.len(), DIMENSIONS);
            let row = rows.get_mut(&vector.memory_id).unwrap();
            // As `store_memory_embeddings`: written only under the lease, which it ends.
            if row.lease.as_deref() == Some(lease) {
                row.lease = None;
                row.embedded = true;
                stored += 1;
            }
        }
        Ok(stored)
    }

    async fn release(&self, lease: &str) -> Result<(), EdgeError> {
        self.released.borrow_mut().push(lease.to_owned());
        for row in self.rows.borrow_mut().values_mut() {
            if row.lease.as_deref() == Some(lease) {
                row.lease = None;
            }
        }
        Ok(())
    }

    async fn count_pending(&self, _: Option<&[i64]>) -> Result<u64, EdgeError> {
        let rows = self.rows.borrow();
        Ok(rows
            .values()
            .filter(|row| !row.embedded && !row.content.trim().is_empty())
            .count() as u64)
    }

    async fn enqueue_more(&self) -> Result<(), EdgeError> {
        self.enqueued.set(self.enqueued.get() + 1);
        Ok(())
    }
}

fn rounds(max_inputs: usize) -> Rounds<'static> {
    Rounds {
        ids: None,
        model: "text-embedding-3-small",
        limits: EmbeddingLimits {
            max_inputs,
            ..EmbeddingLimits::default()
        },
        dimensions: DIMENSIONS,
        budget_ms: BUDGET_MS,
    }
}

fn rate_limited(retry_after_seconds: Option<u64>) -> EdgeError {
    EdgeError::upstream(
        "openai",
        Some(429),
        retry_after_seconds,
        "rate limited: rate_limit_exceeded; gave up after 5 attempts",
    )
}

#[test]
fn everything_pending_is_embedded_and_the_blank_skipped() {
    let clock = TestClock::default();
    let memories = TestMemories::new(&clock, &["ryokans", "  ", "trains"]);
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let report = block_on(run(&rounds(2048), &memories, &api, &clock)).unwrap();
    assert_eq!(
        report,
        Report {
            embedded: 2,
            remaining: 0,
            skipped: 1,
            provider_calls: 1
        }
    );
    assert_eq!(*api.inputs.borrow(), [2], "the blank one is not sent");
    // The second claim finds only the blank memory, still leased by the first: none.
    assert_eq!(memories.claims.get(), 2);
    assert_eq!(memories.enqueued.get(), 0);
}

#[test]
fn a_claim_is_embedded_in_as_many_requests_as_the_input_limit_needs() {
    let clock = TestClock::default();
    let memories = TestMemories::many(&clock, 5);
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let report = block_on(run(&rounds(2), &memories, &api, &clock)).unwrap();
    assert_eq!((report.embedded, report.provider_calls), (5, 3));
    assert_eq!(*api.inputs.borrow(), [2, 2, 1]);
}

#[test]
fn out_of_budget_the_rounds_stop_before_one_that_cannot_fit_and_ask_for_more() {
    let clock = TestClock::default();
    let mut memories = TestMemories::many(&clock, 10_000);
    memories.claim_size = 2048;
    // Each round: 45 s for the provider, 5 s to store. After two rounds (100 s), a third would end
    // at 150 s, past the 120 s budget: it is not begun.
    memories.store_ms = 5_000.0;
    let slow = || Answer::Vectors {
        dimensions: DIMENSIONS,
        ms: 45_000.0,
    };
    let api = TestApi::new(&clock, DIMENSIONS, vec![slow(), slow(), slow()]);
    let report = block_on(run(&rounds(2048), &memories, &api, &clock)).unwrap();
    assert_eq!(memories.claims.get(), 2, "no third claim");
    assert_eq!(report.embedded, 4096);
    assert_eq!(report.remaining, 10_000 - 4096);
    assert_eq!(memories.enqueued.get(), 1, "another delivery carries on");
    assert_eq!(memories.leased(), 0, "nothing is left leased");
}

#[test]
fn a_failure_after_some_work_keeps_what_was_stored_and_releases_the_rest() {
    let clock = TestClock::default();
    let memories = TestMemories::many(&clock, 5);
    let api = TestApi::new(
        &clock,
        DIMENSIONS,
        vec![
            Answer::Vectors {
                dimensions: DIMENSIONS,
                ms: 10.0,
            },
            Answer::Fails(rate_limited(Some(20))),
        ],
    );
    let report = block_on(run(&rounds(2), &memories, &api, &clock)).unwrap();
    assert_eq!((report.embedded, report.remaining), (2, 3));
    assert_eq!(*memories.released.borrow(), ["lease-1"]);
    assert_eq!(memories.leased(), 0, "released for the next delivery");
    assert_eq!(memories.claims.get(), 1, "no round after a failure");
    assert_eq!(
        memories.enqueued.get(),
        0,
        "a failure waits for a retry or the sweep"
    );
}

#[test]
fn nothing_embedded_is_work_pending_with_the_wait_the_provider_asked_for() {
    let clock = TestClock::default();
    let memories = TestMemories::many(&clock, 3);
    let api = TestApi::new(
        &clock,
        DIMENSIONS,
        vec![Answer::Fails(rate_limited(Some(20)))],
    );
    let error = block_on(run(&rounds(2048), &memories, &api, &clock)).unwrap_err();
    assert_eq!(
        error,
        EdgeError::Pending {
            message: "0 memories embedded, 3 remain pending: openai answered 429: rate limited: \
                      rate_limit_exceeded; gave up after 5 attempts"
                .into(),
            retry_after_seconds: Some(20),
        }
    );
    assert_eq!(memories.leased(), 0);
    assert_eq!(memories.embedded(), 0);
}

#[test]
fn a_refusal_is_returned_as_it_came() {
    let clock = TestClock::default();
    let memories = TestMemories::many(&clock, 3);
    let refused = EdgeError::upstream(
        "openai",
        Some(401),
        None,
        "the credentials were refused (check OPENAI_API_KEY) (not retryable)",
    );
    let api = TestApi::new(&clock, DIMENSIONS, vec![Answer::Fails(refused.clone())]);
    let error = block_on(run(&rounds(2048), &memories, &api, &clock)).unwrap_err();
    assert_eq!(error, refused);
    assert_eq!(error.status(), 424);
    assert_eq!(*memories.released.borrow(), ["lease-1"]);
}

#[test]
fn vectors_of_the_wrong_dimension_store_nothing_and_leave_the_work_pending() {
    let clock = TestClock::default();
    let memories = TestMemories::many(&clock, 3);
    let api = TestApi::new(
        &clock,
        DIMENSIONS,
        vec![Answer::Vectors {
            dimensions: DIMENSIONS - 1,
            ms: 0.0,
        }],
    );
    let error = block_on(run(&rounds(2048), &memories, &api, &clock)).unwrap_err();
    let EdgeError::Pending { message, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        message.starts_with("0 memories embedded, 3 remain pending"),
        "{message}"
    );
    assert!(
        message.contains("the vector has 3 dimensions, expected 4"),
        "{message}"
    );
    assert_eq!((memories.embedded(), memories.leased()), (0, 0));
}

#[test]
fn a_failed_store_gives_the_lease_back_before_failing() {
    let clock = TestClock::default();
    let mut memories = TestMemories::many(&clock, 3);
    memories.fail_store = true;
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let error = block_on(run(&rounds(2048), &memories, &api, &clock)).unwrap_err();
    assert_eq!(error.status(), 502, "{error}");
    assert_eq!(*memories.released.borrow(), ["lease-1"]);
    assert_eq!(memories.leased(), 0);
}
