//! The pure core of batched OpenAI embeddings (`memory.generate.embedding`): which
//! memories go into which request, the request body, and checking the answer. No I/O: the caller
//! sends the requests (through [`crate::openai`], which retries them) and writes the vectors.
//!
//! # Tokens
//!
//! The tokens of a text are estimated by its UTF-8 byte length. OpenAI's embedding models use
//! byte-level BPE tokenizers, where every token covers at least one byte, so the byte length is an
//! upper bound and a planned request is never rejected for its size, without shipping a tokenizer
//! to the edge. The price is a few more, smaller requests for long texts.
//!
//! - An input longer than [`EmbeddingLimits::max_input_tokens`] bytes is cut at the last UTF-8
//!   character boundary at or below the limit and marked [`EmbeddingInput::truncated`]: its start
//!   is still worth searching by.
//! - Content that is empty or only whitespace cannot be embedded (OpenAI rejects empty input, and
//!   a vector of blank text means nothing). It goes into [`BatchPlan::skipped`] with a
//!   [`SkipReason`], never into a request: the caller logs it and leaves the memory out.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::EdgeError;

use crate::openai::upstream_error;

/// A memory waiting for its embedding, as the claim RPC returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PendingMemory {
    pub id: i64,
    pub content: String,
}

/// OpenAI's limits for one embeddings request, in estimated tokens (bytes, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingLimits {
    /// Inputs per request.
    pub max_inputs: usize,
    /// Tokens summed over all inputs of a request.
    pub max_request_tokens: usize,
    /// Tokens of one input.
    pub max_input_tokens: usize,
}

impl Default for EmbeddingLimits {
    fn default() -> Self {
        Self {
            max_inputs: 2048,
            max_request_tokens: 300_000,
            max_input_tokens: 8192,
        }
    }
}

/// One input as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingInput {
    pub memory_id: i64,
    /// The memory's content, cut to the input limit if it was longer.
    pub text: String,
    pub truncated: bool,
}

/// One request's inputs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddingBatch {
    pub inputs: Vec<EmbeddingInput>,
}

impl EmbeddingBatch {
    /// The memories of this request, in order.
    pub fn memory_ids(&self) -> Vec<i64> {
        self.inputs.iter().map(|input| input.memory_id).collect()
    }

    /// The request's size in estimated tokens.
    pub fn estimated_tokens(&self) -> usize {
        self.inputs.iter().map(|input| input.text.len()).sum()
    }
}

/// Why a memory was left out of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The text to send is empty or whitespace only.
    BlankContent,
}

impl SkipReason {
    /// A stable name for logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::BlankContent => "blank_content",
        }
    }
}

/// A memory that cannot be embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedMemory {
    pub memory_id: i64,
    pub reason: SkipReason,
}

/// The requests for a set of memories, and the memories no request can embed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    pub batches: Vec<EmbeddingBatch>,
    pub skipped: Vec<SkippedMemory>,
}

/// Splits memories into as few requests as the limits allow, in the given order.
///
/// Filling each request until the next input would break a limit is optimal for requests that
/// keep the order. Limits of zero are treated as one, and no input is longer than a whole
/// request may be.
pub fn plan_batches(memories: &[PendingMemory], limits: &EmbeddingLimits) -> BatchPlan {
    let max_inputs = limits.max_inputs.max(1);
    let max_request_tokens = limits.max_request_tokens.max(1);
    let max_input_tokens = limits.max_input_tokens.clamp(1, max_request_tokens);

    let mut plan = BatchPlan::default();
    let mut current = EmbeddingBatch::default();
    let mut current_tokens = 0;
    for memory in memories {
        let text = truncate_at_char_boundary(&memory.content, max_input_tokens);
        if text.trim().is_empty() {
            plan.skipped.push(SkippedMemory {
                memory_id: memory.id,
                reason: SkipReason::BlankContent,
            });
            continue;
        }
        let tokens = text.len();
        let full =
            current.inputs.len() == max_inputs || current_tokens + tokens > max_request_tokens;
        if full && !current.inputs.is_empty() {
            plan.batches.push(std::mem::take(&mut current));
            current_tokens = 0;
        }
        current_tokens += tokens;
        current.inputs.push(EmbeddingInput {
            memory_id: memory.id,
            text: text.to_owned(),
            truncated: text.len() < memory.content.len(),
        });
    }
    if !current.inputs.is_empty() {
        plan.batches.push(current);
    }
    plan
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character boundary.
fn truncate_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The JSON body for one batch.
pub fn request_body(model: &str, batch: &EmbeddingBatch) -> Value {
    let input: Vec<&str> = batch.inputs.iter().map(|i| i.text.as_str()).collect();
    json!({ "model": model, "input": input, "encoding_format": "float" })
}

/// Parses and checks a 2xx embeddings answer for `batch`: one vector per input, in the batch's
/// order, as `(memory_id, vector)`.
///
/// `data` must have exactly one entry per input, each with `object` `"embedding"` and an `index`
/// in range and unique (the answer is ordered by `index`, not by position, which OpenAI does not
/// promise to keep), and every vector must have `dimensions` finite `f32`s, as a JSON array or as
/// base64 little-endian `f32`s (`encoding_format: "base64"`). Any violation rejects the whole
/// answer: nothing from it may be stored.
pub fn parse_response(
    body: &Value,
    batch: &EmbeddingBatch,
    dimensions: usize,
) -> Result<Vec<(i64, Vec<f32>)>, EdgeError> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| rejected("`data` is missing or not an array".to_owned()))?;
    if data.len() != batch.inputs.len() {
        return Err(rejected(format!(
            "`data` has {} entries for {} inputs",
            data.len(),
            batch.inputs.len()
        )));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; data.len()];
    for (position, entry) in data.iter().enumerate() {
        let object = entry.get("object").and_then(Value::as_str);
        if object != Some("embedding") {
            return Err(rejected(format!(
                "data[{position}].object is {object:?}, not \"embedding\""
            )));
        }
        let index = entry
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|index| usize::try_from(index).ok())
            .ok_or_else(|| {
                rejected(format!(
                    "data[{position}].index is missing or not a whole number"
                ))
            })?;
        let slot = vectors.get_mut(index).ok_or_else(|| {
            rejected(format!(
                "data[{position}].index {index} is out of range for {} inputs",
                batch.inputs.len()
            ))
        })?;
        if slot.is_some() {
            return Err(rejected(format!(
                "index {index} appears more than once in `data`"
            )));
        }
        let vector = parse_vector(entry.get("embedding"), dimensions)
            .map_err(|reason| rejected(format!("data[{position}] (index {index}): {reason}")))?;
        *slot = Some(vector);
    }
    batch
        .inputs
        .iter()
        .zip(vectors)
        .enumerate()
        .map(|(index, (input, vector))| {
            vector
                .map(|vector| (input.memory_id, vector))
                .ok_or_else(|| rejected(format!("no embedding for index {index}")))
        })
        .collect()
}

/// One embedding, as a JSON array of numbers or as base64 little-endian `f32`s.
fn parse_vector(embedding: Option<&Value>, dimensions: usize) -> Result<Vec<f32>, String> {
    let vector = match embedding {
        Some(Value::Array(components)) => {
            if components.len() != dimensions {
                return Err(format!(
                    "the vector has {} dimensions, expected {dimensions}",
                    components.len()
                ));
            }
            components
                .iter()
                .enumerate()
                .map(|(k, component)| {
                    // Narrowing to f32 is the storage type; a too-large f64 becomes infinite.
                    component
                        .as_f64()
                        .map(|number| number as f32)
                        .ok_or_else(|| format!("component {k} is not a number"))
                })
                .collect::<Result<Vec<f32>, String>>()?
        }
        Some(Value::String(encoded)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| format!("the vector is not valid base64: {error}"))?;
            if bytes.len() != dimensions * 4 {
                return Err(format!(
                    "the vector has {} bytes, expected {} ({dimensions} f32s)",
                    bytes.len(),
                    dimensions * 4
                ));
            }
            bytes
                .chunks_exact(4)
                .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
                .collect()
        }
        _ => return Err("`embedding` is missing or neither an array nor a string".to_owned()),
    };
    match vector.iter().position(|component| !component.is_finite()) {
        Some(k) => Err(format!("component {k} is not a finite f32")),
        None => Ok(vector),
    }
}

/// A 2xx answer that cannot be used.
fn rejected(reason: String) -> EdgeError {
    upstream_error(
        Some(200),
        None,
        format!("embeddings answer rejected: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memories(count: usize, bytes: usize) -> Vec<PendingMemory> {
        (0..count)
            .map(|i| PendingMemory {
                id: i as i64 + 1,
                content: "x".repeat(bytes),
            })
            .collect()
    }

    fn memory(id: i64, content: &str) -> PendingMemory {
        PendingMemory {
            id,
            content: content.to_owned(),
        }
    }

    fn sizes(plan: &BatchPlan) -> Vec<usize> {
        plan.batches
            .iter()
            .map(|batch| batch.inputs.len())
            .collect()
    }

    // ---- batching ----

    #[test]
    fn five_thousand_short_memories_make_three_requests_in_order() {
        let pending = memories(5000, 40);
        let plan = plan_batches(&pending, &EmbeddingLimits::default());
        assert_eq!(sizes(&plan), [2048, 2048, 904]);
        let ids: Vec<i64> = plan.batches.iter().flat_map(|b| b.memory_ids()).collect();
        let expected: Vec<i64> = pending.iter().map(|m| m.id).collect();
        assert_eq!(ids, expected);
        assert!(plan.skipped.is_empty());
        assert!(plan
            .batches
            .iter()
            .flat_map(|b| &b.inputs)
            .all(|input| !input.truncated));
    }

    #[test]
    fn long_inputs_split_on_the_token_budget_before_the_input_count() {
        let plan = plan_batches(&memories(100, 8000), &EmbeddingLimits::default());
        assert_eq!(sizes(&plan), [37, 37, 26]);
        assert!(plan
            .batches
            .iter()
            .all(|batch| batch.estimated_tokens() <= 300_000));
    }

    #[test]
    fn an_input_exactly_at_the_limits_is_sent_whole() {
        let limits = EmbeddingLimits {
            max_inputs: 2,
            max_request_tokens: 16_384,
            max_input_tokens: 8192,
        };
        let plan = plan_batches(&memories(3, 8192), &limits);
        assert_eq!(sizes(&plan), [2, 1]);
        assert_eq!(plan.batches[0].estimated_tokens(), 16_384);
        assert!(plan.batches[0].inputs.iter().all(|input| !input.truncated));

        let plan = plan_batches(&memories(2048, 1), &EmbeddingLimits::default());
        assert_eq!(sizes(&plan), [2048]);
    }

    #[test]
    fn one_byte_over_the_input_limit_is_truncated() {
        let plan = plan_batches(&memories(1, 8193), &EmbeddingLimits::default());
        let input = &plan.batches[0].inputs[0];
        assert_eq!(input.text.len(), 8192);
        assert!(input.truncated);
    }

    #[test]
    fn long_multibyte_text_is_cut_at_a_character_boundary() {
        let limits = EmbeddingLimits::default();
        // Two-byte characters: the boundary falls exactly on the limit.
        let two = plan_batches(&[memory(1, &"é".repeat(5000))], &limits);
        assert_eq!(two.batches[0].inputs[0].text, "é".repeat(4096));
        // Three-byte characters: 8192 is inside the 2731st, so 2730 remain.
        let three = plan_batches(&[memory(2, &"€".repeat(3000))], &limits);
        assert_eq!(three.batches[0].inputs[0].text, "€".repeat(2730));
        assert_eq!(three.batches[0].inputs[0].text.len(), 8190);
        // Four-byte characters after one ASCII byte.
        let four = plan_batches(&[memory(3, &format!("a{}", "😀".repeat(3000)))], &limits);
        let text = &four.batches[0].inputs[0].text;
        assert_eq!(text, &format!("a{}", "😀".repeat(2047)));
        assert_eq!(text.len(), 8189);
        assert!(four.batches[0].inputs[0].truncated);
    }

    #[test]
    fn blank_content_is_skipped_and_reported() {
        let pending = [
            memory(1, "Prefers window seats"),
            memory(2, ""),
            memory(3, "  \n\t "),
            memory(4, "Vegetarian"),
        ];
        let plan = plan_batches(&pending, &EmbeddingLimits::default());
        assert_eq!(plan.batches.len(), 1);
        assert_eq!(plan.batches[0].memory_ids(), [1, 4]);
        assert_eq!(
            plan.skipped,
            [
                SkippedMemory {
                    memory_id: 2,
                    reason: SkipReason::BlankContent
                },
                SkippedMemory {
                    memory_id: 3,
                    reason: SkipReason::BlankContent
                },
            ]
        );
        assert_eq!(SkipReason::BlankContent.code(), "blank_content");

        let only_blank = plan_batches(&[memory(5, " ")], &EmbeddingLimits::default());
        assert!(only_blank.batches.is_empty());
        assert_eq!(only_blank.skipped.len(), 1);
        assert_eq!(
            plan_batches(&[], &EmbeddingLimits::default()),
            BatchPlan::default()
        );
    }

    #[test]
    fn an_input_never_exceeds_a_whole_request() {
        let limits = EmbeddingLimits {
            max_inputs: 10,
            max_request_tokens: 100,
            max_input_tokens: 8192,
        };
        let plan = plan_batches(&memories(3, 150), &limits);
        assert_eq!(sizes(&plan), [1, 1, 1]);
        assert!(plan.batches.iter().all(|b| b.estimated_tokens() == 100));
    }

    #[test]
    fn the_request_body_lists_the_texts_in_order() {
        let plan = plan_batches(
            &[memory(7, "Loves Lisbon"), memory(9, "Hates red-eyes")],
            &EmbeddingLimits::default(),
        );
        assert_eq!(
            request_body("text-embedding-3-small", &plan.batches[0]),
            json!({
                "model": "text-embedding-3-small",
                "input": ["Loves Lisbon", "Hates red-eyes"],
                "encoding_format": "float",
            })
        );
    }

    // ---- parsing ----

    const DIMENSIONS: usize = 1536;

    fn batch_of(ids: &[i64]) -> EmbeddingBatch {
        EmbeddingBatch {
            inputs: ids
                .iter()
                .map(|&memory_id| EmbeddingInput {
                    memory_id,
                    text: format!("memory {memory_id}"),
                    truncated: false,
                })
                .collect(),
        }
    }

    fn vector(seed: f32, dimensions: usize) -> Vec<f32> {
        (0..dimensions).map(|k| seed + k as f32 * 1e-4).collect()
    }

    fn entry(index: usize, embedding: Value) -> Value {
        json!({ "object": "embedding", "index": index, "embedding": embedding })
    }

    fn answer(data: Vec<Value>) -> Value {
        json!({
            "object": "list",
            "data": data,
            "model": "text-embedding-3-small",
            "usage": { "prompt_tokens": 8, "total_tokens": 8 },
        })
    }

    fn rejection(result: Result<Vec<(i64, Vec<f32>)>, EdgeError>) -> String {
        match result {
            Err(
                error @ EdgeError::Upstream {
                    service: "openai",
                    status: Some(200),
                    retry_after_seconds: None,
                    ..
                },
            ) => {
                assert_eq!(error.status(), 502);
                error.to_string()
            }
            other => panic!("expected a rejected answer, got {other:?}"),
        }
    }

    #[test]
    fn vectors_are_ordered_by_index_not_by_position() {
        let batch = batch_of(&[10, 20, 30]);
        let body = answer(vec![
            entry(2, json!(vector(0.3, DIMENSIONS))),
            entry(0, json!(vector(0.1, DIMENSIONS))),
            entry(1, json!(vector(0.2, DIMENSIONS))),
        ]);
        let vectors = parse_response(&body, &batch, DIMENSIONS).unwrap();
        assert_eq!(
            vectors,
            [
                (10, vector(0.1, DIMENSIONS)),
                (20, vector(0.2, DIMENSIONS)),
                (30, vector(0.3, DIMENSIONS)),
            ]
        );
    }

    #[test]
    fn a_broken_answer_is_rejected_whole() {
        let batch = batch_of(&[1, 2, 3]);
        let good = |index| entry(index, json!(vector(0.5, DIMENSIONS)));
        let mut with_string = vector(0.5, DIMENSIONS)
            .into_iter()
            .map(|x| json!(x))
            .collect::<Vec<_>>();
        with_string[7] = json!("0.1");
        let mut with_null = with_string.clone();
        with_null[7] = Value::Null;
        let mut too_large = vector(0.5, DIMENSIONS)
            .into_iter()
            .map(|x| json!(x))
            .collect::<Vec<_>>();
        too_large[0] = json!(1e39);
        let mut nan = vector(0.5, DIMENSIONS);
        nan[3] = f32::NAN;
        let nan_base64 = base64::engine::general_purpose::STANDARD.encode(
            nan.iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        );

        let cases: Vec<(&str, Value, &str)> = vec![
            ("no data", json!({ "object": "list" }), "`data` is missing"),
            (
                "too few",
                answer(vec![good(0), good(1)]),
                "2 entries for 3 inputs",
            ),
            (
                "too many",
                answer(vec![good(0), good(1), good(2), good(3)]),
                "4 entries for 3 inputs",
            ),
            (
                "missing index",
                answer(vec![
                    good(0),
                    json!({ "object": "embedding", "embedding": vector(0.5, DIMENSIONS) }),
                    good(2),
                ]),
                "data[1].index is missing",
            ),
            (
                "index out of range",
                answer(vec![good(0), good(1), good(3)]),
                "index 3 is out of range",
            ),
            (
                "duplicate index",
                answer(vec![good(0), good(1), good(1)]),
                "index 1 appears more than once",
            ),
            (
                "wrong object",
                answer(vec![
                    good(0),
                    good(1),
                    json!({ "object": "list", "index": 2, "embedding": vector(0.5, DIMENSIONS) }),
                ]),
                "data[2].object",
            ),
            (
                "1535 dimensions",
                answer(vec![good(0), entry(1, json!(vector(0.5, 1535))), good(2)]),
                "1535 dimensions, expected 1536",
            ),
            (
                "1537 dimensions",
                answer(vec![good(0), good(1), entry(2, json!(vector(0.5, 1537)))]),
                "1537 dimensions, expected 1536",
            ),
            (
                "string component",
                answer(vec![good(0), good(1), entry(2, json!(with_string))]),
                "component 7 is not a number",
            ),
            (
                "null component",
                answer(vec![good(0), good(1), entry(2, json!(with_null))]),
                "component 7 is not a number",
            ),
            (
                "beyond f32",
                answer(vec![good(0), good(1), entry(2, json!(too_large))]),
                "component 0 is not a finite f32",
            ),
            (
                "NaN",
                answer(vec![good(0), good(1), entry(2, json!(nan_base64))]),
                "component 3 is not a finite f32",
            ),
            (
                "no embedding",
                answer(vec![
                    good(0),
                    good(1),
                    json!({ "object": "embedding", "index": 2 }),
                ]),
                "`embedding` is missing",
            ),
        ];
        for (name, body, expected) in cases {
            let message = rejection(parse_response(&body, &batch, DIMENSIONS));
            assert!(
                message.contains(expected),
                "{name}: `{message}` lacks `{expected}`"
            );
        }
    }

    #[test]
    fn base64_vectors_decode_to_the_same_floats() {
        let floats = [0.25f32, -1.5, 3.0e-7, 0.0, -0.0078125, 1.0];
        let bytes: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let batch = batch_of(&[42, 43]);
        let body = answer(vec![
            entry(1, json!(floats.to_vec())),
            entry(0, json!(encoded)),
        ]);
        let vectors = parse_response(&body, &batch, floats.len()).unwrap();
        assert_eq!(vectors, [(42, floats.to_vec()), (43, floats.to_vec())]);

        let short = base64::engine::general_purpose::STANDARD.encode(&bytes[..20]);
        let body = answer(vec![entry(0, json!(encoded)), entry(1, json!(short))]);
        let message = rejection(parse_response(&body, &batch, floats.len()));
        assert!(message.contains("20 bytes, expected 24"), "{message}");

        let body = answer(vec![
            entry(0, json!(encoded)),
            entry(1, json!("not base64!")),
        ]);
        let message = rejection(parse_response(&body, &batch, floats.len()));
        assert!(message.contains("not valid base64"), "{message}");
    }
}
