//! Ports for the unit tests: a clock that moves only when something spends time on it, and a
//! scripted embeddings API.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use serde_json::{json, Value};
use shared::EdgeError;

use crate::clock::Clock;
use crate::rounds::EmbeddingsApi;

/// A clock that moves when something spends time on it.
#[derive(Default)]
pub struct TestClock {
    now: Cell<f64>,
}

impl TestClock {
    pub fn spend(&self, ms: f64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> f64 {
        self.now.get()
    }
    fn jitter(&self) -> f64 {
        0.5
    }
    async fn sleep_ms(&self, ms: u64) {
        self.spend(ms as f64);
    }
}

/// What one embeddings request meets.
pub enum Answer {
    /// Vectors of this many dimensions, after this many ms.
    Vectors {
        dimensions: usize,
        ms: f64,
    },
    Fails(EdgeError),
}

/// Answers from a script, then (when it runs out) good vectors at once. Each vector is all 0.5.
pub struct TestApi<'a> {
    clock: &'a TestClock,
    /// The vectors' length once the script has run out.
    dimensions: usize,
    script: RefCell<VecDeque<Answer>>,
    /// The inputs of each request.
    pub inputs: RefCell<Vec<usize>>,
}

impl<'a> TestApi<'a> {
    pub fn new(clock: &'a TestClock, dimensions: usize, script: Vec<Answer>) -> Self {
        Self {
            clock,
            dimensions,
            script: RefCell::new(script.into()),
            inputs: RefCell::new(Vec::new()),
        }
    }
}

impl EmbeddingsApi for TestApi<'_> {
    async fn embeddings(
        &self,
        body: &Value,
        _: f64,
        calls: &mut usize,
    ) -> Result<Value, EdgeError> {
        *calls += 1;
        let inputs = body["input"].as_array().unwrap().len();
        self.inputs.borrow_mut().push(inputs);
        let (dimensions, ms) = match self.script.borrow_mut().pop_front() {
            None => (self.dimensions, 0.0),
            Some(Answer::Vectors { dimensions, ms }) => (dimensions, ms),
            Some(Answer::Fails(error)) => return Err(error),
        };
        self.clock.spend(ms);
        let data: Vec<Value> = (0..inputs)
            .map(|index| {
                json!({ "object": "embedding", "index": index, "embedding": vec![0.5; dimensions] })
            })
            .collect();
        Ok(json!({ "object": "list", "data": data }))
    }
}
