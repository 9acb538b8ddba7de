//! The pure core of batched OpenAI embeddings (`memory.generate.embedding`): which
//! memories go into which request, the request body, checking the answer, and what to do after a
//! failed request. No I/O, no clock, no randomness: the caller passes in the time left and the
//! jitter, and does the fetching and the writing.
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
//!
//! # Retries
//!
//! [`RetryPolicy::decide`] turns a failed request into [`RetryDecision`]: a 429 waits as long as
//! OpenAI says (`retry-after-ms`, `Retry-After`, else the later of the `x-ratelimit-reset-*`
//! headers), except an exhausted quota, which no wait fixes; 408, 5xx and no answer back off
//! exponentially with *equal jitter* (half the step fixed, half random), so a retry never comes
//! back at once yet a crowd of retries still spreads out; every other status is permanent. A wait
//! longer than the time left, or one attempt too many, gives up: the memories stay pending and
//! their lease expires.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::redact::{clip, without_key_shapes};
use shared::upstream::{self, Quote};
use shared::EdgeError;

/// The name errors from the embeddings API carry in [`EdgeError::Upstream`].
pub const SERVICE: &str = "openai";

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

/// The crate's error for a failed embeddings call (e.g. after [`RetryDecision::GiveUp`]).
pub fn upstream_error(
    status: Option<u16>,
    retry_after_seconds: Option<u64>,
    message: String,
) -> EdgeError {
    EdgeError::upstream(SERVICE, status, retry_after_seconds, message)
}

/// What to do after a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Send the same request again after this wait.
    RetryAfter { delay_ms: u64 },
    /// Stop; the memories stay pending. `quota`: the account's quota is exhausted, so no other
    /// request will succeed either. `retry_after_seconds`: the wait OpenAI asked for, when it
    /// named one, for the webhook answer's `Retry-After`.
    GiveUp {
        reason: String,
        quota: bool,
        retry_after_seconds: Option<u64>,
    },
}

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The backoff step of the first retry; it doubles with every attempt.
    pub base_delay_ms: u64,
    /// The largest backoff step.
    pub max_delay_ms: u64,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay_ms: 500,
            max_delay_ms: 8_000,
            max_attempts: 5,
        }
    }
}

/// [`RetryPolicy::decide`] with the default policy.
pub fn retry_decision(
    status: Option<u16>,
    headers: &[(String, String)],
    body: &str,
    attempt: u32,
    jitter: f64,
    remaining_budget_ms: u64,
) -> RetryDecision {
    RetryPolicy::default().decide(status, headers, body, attempt, jitter, remaining_budget_ms)
}

impl RetryPolicy {
    /// What to do after attempt number `attempt` (from 1) failed.
    ///
    /// `status` is `None` when there was no answer (timeout, connection error); `body` is then
    /// the transport error's text, if any. `headers` are the answer's (names are matched without
    /// regard to case). `jitter` is a random number in `[0, 1)`. `remaining_budget_ms` is how
    /// long the caller may still wait before the request's time budget runs out.
    pub fn decide(
        &self,
        status: Option<u16>,
        headers: &[(String, String)],
        body: &str,
        attempt: u32,
        jitter: f64,
        remaining_budget_ms: u64,
    ) -> RetryDecision {
        let failure = describe_failure(status, body);
        let (delay_ms, retry_after_seconds) = match status {
            Some(429) if is_quota_exhausted(body) => {
                return RetryDecision::GiveUp {
                    reason: format!("{failure} (quota exhausted)"),
                    quota: true,
                    retry_after_seconds: None,
                };
            }
            Some(429) => match rate_limit_wait_ms(headers) {
                Some(wait_ms) => (wait_ms, Some(wait_ms.div_ceil(1000))),
                None => (self.backoff_ms(attempt, jitter), None),
            },
            None | Some(408 | 500..=599) => (self.backoff_ms(attempt, jitter), None),
            Some(_) => {
                return RetryDecision::GiveUp {
                    reason: format!("{failure} (not retryable)"),
                    quota: false,
                    retry_after_seconds: None,
                };
            }
        };
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp {
                reason: format!("{failure}; gave up after {attempt} attempts"),
                quota: false,
                retry_after_seconds,
            };
        }
        if delay_ms > remaining_budget_ms {
            return RetryDecision::GiveUp {
                reason: format!(
                    "{failure}; retry would exceed the time budget \
                     ({delay_ms} ms to wait, {remaining_budget_ms} ms left)"
                ),
                quota: false,
                retry_after_seconds,
            };
        }
        RetryDecision::RetryAfter { delay_ms }
    }

    /// Exponential backoff with equal jitter: the step is `base × 2^(attempt−1)`, capped; the
    /// wait is half the step plus `jitter` times the other half.
    fn backoff_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let exponent = attempt.max(1) - 1;
        let step = 2u64
            .checked_pow(exponent)
            .and_then(|factor| self.base_delay_ms.checked_mul(factor))
            .map_or(self.max_delay_ms, |step| step.min(self.max_delay_ms));
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let half = step / 2;
        half + ((step - half) as f64 * jitter) as u64
    }
}

/// What went wrong, for logs and answers, without the service and status (the error's `Display`
/// puts those first): [`upstream::describe`] of the answer, or the transport's error text. A
/// refused key is named by its variable only: OpenAI's message quotes part of the key.
pub fn describe_failure(status: Option<u16>, body: &str) -> String {
    match status {
        Some(status @ (401 | 403)) => {
            format!(
                "{} (check OPENAI_API_KEY)",
                upstream::status_description(status)
            )
        }
        Some(status) => upstream::describe(status, body, Quote::Code),
        None if body.trim().is_empty() => "no answer".to_owned(),
        None => without_key_shapes(&clip(body.trim(), upstream::EXCERPT_LIMIT)),
    }
}

/// OpenAI's 429 for an account out of credit: `{"error":{"code":"insufficient_quota",…}}`.
fn is_quota_exhausted(body: &str) -> bool {
    let Ok(parsed) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let error = &parsed["error"];
    error["code"] == "insufficient_quota" || error["type"] == "insufficient_quota"
}

/// How long a 429 asks to wait: `retry-after-ms`, else `Retry-After` in seconds (an HTTP date is
/// ignored), else the later of `x-ratelimit-reset-requests` and `x-ratelimit-reset-tokens`.
fn rate_limit_wait_ms(headers: &[(String, String)]) -> Option<u64> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    if let Some(ms) = header("retry-after-ms").and_then(|value| parse_seconds(value, 1.0)) {
        return Some(ms);
    }
    if let Some(ms) = header("retry-after").and_then(|value| parse_seconds(value, 1000.0)) {
        return Some(ms);
    }
    let requests = header("x-ratelimit-reset-requests").and_then(parse_duration_ms);
    let tokens = header("x-ratelimit-reset-tokens").and_then(parse_duration_ms);
    requests.max(tokens)
}

/// A non-negative decimal number times `ms_per_unit`, rounded up to whole milliseconds.
fn parse_seconds(value: &str, ms_per_unit: f64) -> Option<u64> {
    let number: f64 = value.trim().parse().ok()?;
    (number.is_finite() && number >= 0.0).then(|| (number * ms_per_unit).ceil() as u64)
}

/// A duration as OpenAI's rate-limit headers write it (Go's format: `20ms`, `1s`, `6m0s`,
/// `1h2m3.5s`, `0.5s`), rounded up to whole milliseconds. Integer arithmetic in nanoseconds, so
/// `0.3s` is exactly 300 ms.
fn parse_duration_ms(value: &str) -> Option<u64> {
    const MAX_FRACTION_DIGITS: usize = 18;
    let mut rest = value.trim();
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_ns: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let whole_ns = if whole.is_empty() {
            0
        } else {
            whole.parse::<u128>().ok()?.checked_mul(unit_ns)?
        };
        let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
        let fraction_ns = if fraction.is_empty() {
            0
        } else {
            let scale = 10u128.pow(fraction.len() as u32);
            (fraction.parse::<u128>().ok()? * unit_ns).div_ceil(scale)
        };
        total_ns = total_ns.checked_add(whole_ns)?.checked_add(fraction_ns)?;
        rest = after;
    }
    Some(u64::try_from(total_ns.div_ceil(1_000_000)).unwrap_or(u64::MAX))
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

    // ---- retries ----

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for text-embedding-3-small","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    const QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    const PLENTY: u64 = 24 * 3_600_000;

    fn retry_after(delay_ms: u64) -> RetryDecision {
        RetryDecision::RetryAfter { delay_ms }
    }

    #[test]
    fn a_429_waits_as_long_as_openai_asks() {
        let decide = |pairs: &[(&str, &str)]| {
            retry_decision(Some(429), &headers(pairs), RATE_LIMITED, 1, 0.7, PLENTY)
        };
        assert_eq!(decide(&[("retry-after", "1")]), retry_after(1000));
        assert_eq!(decide(&[("Retry-After", "2")]), retry_after(2000));
        assert_eq!(
            decide(&[("retry-after-ms", "250"), ("retry-after", "1")]),
            retry_after(250)
        );
        assert_eq!(
            decide(&[
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-reset-tokens", "6m0s")
            ]),
            retry_after(360_000)
        );
        assert_eq!(
            decide(&[("x-ratelimit-reset-tokens", "20ms")]),
            retry_after(20)
        );
        assert_eq!(
            decide(&[("x-ratelimit-reset-requests", "1h2m3.5s")]),
            retry_after(3_723_500)
        );
        // Retry-After wins over the reset headers; an HTTP date falls through to them.
        assert_eq!(
            decide(&[("retry-after", "3"), ("x-ratelimit-reset-tokens", "6m0s")]),
            retry_after(3000)
        );
        assert_eq!(
            decide(&[
                ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("x-ratelimit-reset-tokens", "0.5s")
            ]),
            retry_after(500)
        );
    }

    #[test]
    fn a_429_without_a_wait_backs_off() {
        let decision = retry_decision(Some(429), &[], RATE_LIMITED, 2, 0.0, PLENTY);
        assert_eq!(decision, retry_after(500));
    }

    #[test]
    fn an_exhausted_quota_gives_up_at_once() {
        let decision = retry_decision(
            Some(429),
            &headers(&[("retry-after", "1")]),
            QUOTA,
            1,
            0.0,
            PLENTY,
        );
        let RetryDecision::GiveUp {
            reason,
            quota: true,
            retry_after_seconds: None,
        } = decision
        else {
            panic!("expected a quota give-up, got {decision:?}");
        };
        assert_eq!(reason, "rate limited: insufficient_quota (quota exhausted)");
    }

    #[test]
    fn server_errors_and_silence_back_off_with_equal_jitter() {
        // Attempt 3: a 2000 ms step, so between 1000 and 2000 ms.
        assert_eq!(
            retry_decision(Some(500), &[], "", 3, 0.0, PLENTY),
            retry_after(1000)
        );
        assert_eq!(
            retry_decision(Some(500), &[], "", 3, 1.0, PLENTY),
            retry_after(2000)
        );
        assert_eq!(
            retry_decision(Some(500), &[], "", 3, 0.999_999, PLENTY),
            retry_after(1999)
        );
        assert_eq!(
            retry_decision(Some(503), &[], "", 1, 0.0, PLENTY),
            retry_after(250)
        );
        assert_eq!(
            retry_decision(Some(408), &[], "", 2, 0.5, PLENTY),
            retry_after(750)
        );
        assert_eq!(
            retry_decision(None, &[], "connection reset", 4, 0.0, PLENTY),
            retry_after(2000)
        );
        assert_eq!(
            retry_decision(Some(502), &[], "", 1, f64::NAN, PLENTY),
            retry_after(250)
        );
    }

    #[test]
    fn the_backoff_step_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.decide(Some(500), &[], "", 5, 1.0, PLENTY),
            retry_after(8000)
        );
        assert_eq!(
            policy.decide(Some(500), &[], "", 6, 0.0, PLENTY),
            retry_after(4000)
        );
        assert_eq!(
            policy.decide(Some(500), &[], "", 99, 1.0, PLENTY),
            retry_after(8000)
        );
    }

    #[test]
    fn a_wait_beyond_the_budget_gives_up() {
        let decision = retry_decision(
            Some(429),
            &headers(&[("retry-after", "10")]),
            RATE_LIMITED,
            1,
            0.0,
            5_000,
        );
        let RetryDecision::GiveUp {
            reason,
            quota: false,
            retry_after_seconds: Some(10),
        } = decision
        else {
            panic!("expected a budget give-up, got {decision:?}");
        };
        assert!(
            reason.contains("retry would exceed the time budget"),
            "{reason}"
        );

        let decision = retry_decision(Some(500), &[], "", 3, 0.0, 999);
        assert!(matches!(
            decision,
            RetryDecision::GiveUp {
                quota: false,
                retry_after_seconds: None,
                ..
            }
        ));
        // Exactly the time left is still allowed.
        assert_eq!(
            retry_decision(Some(500), &[], "", 3, 0.0, 1000),
            retry_after(1000)
        );
    }

    #[test]
    fn attempts_are_capped() {
        assert_eq!(
            retry_decision(Some(500), &[], "", 4, 0.0, PLENTY),
            retry_after(2000)
        );
        let decision = retry_decision(Some(500), &[], "", 5, 0.0, PLENTY);
        let RetryDecision::GiveUp { reason, quota, .. } = decision else {
            panic!("expected a give-up after 5 attempts, got {decision:?}");
        };
        assert!(!quota);
        assert!(reason.contains("after 5 attempts"), "{reason}");
    }

    #[test]
    fn client_errors_are_permanent() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-...abcd.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        for status in [400, 401, 403, 404, 409, 413, 422] {
            let decision = retry_decision(Some(status), &[], body, 1, 0.0, PLENTY);
            let RetryDecision::GiveUp {
                reason,
                quota: false,
                retry_after_seconds: None,
            } = decision
            else {
                panic!("{status} should not be retried: {decision:?}");
            };
            let expected = match status {
                401 => "the credentials were refused (check OPENAI_API_KEY)".to_owned(),
                403 => "the request is forbidden with these credentials (check OPENAI_API_KEY)"
                    .to_owned(),
                _ => format!("{}: invalid_api_key", upstream::status_description(status)),
            };
            assert_eq!(reason, format!("{expected} (not retryable)"));
        }
    }

    #[test]
    fn give_up_reasons_are_short() {
        let page = "<html>".repeat(200);
        let decision = retry_decision(Some(400), &[], &page, 1, 0.0, PLENTY);
        let RetryDecision::GiveUp { reason, .. } = decision else {
            panic!("expected a give-up");
        };
        assert_eq!(
            reason, "the request was rejected as malformed (not retryable)",
            "a body that is not JSON is not quoted"
        );
        assert_eq!(
            describe_failure(None, ""),
            "no answer",
            "no answer and no transport text"
        );
        let transport = format!("connection reset {}", "x".repeat(500));
        assert!(describe_failure(None, &transport).chars().count() <= upstream::EXCERPT_LIMIT + 1);
    }

    #[test]
    fn rate_limit_durations_parse_like_go() {
        let cases = [
            ("20ms", Some(20)),
            ("1s", Some(1000)),
            ("6m0s", Some(360_000)),
            ("1h2m3.5s", Some(3_723_500)),
            ("0.5s", Some(500)),
            ("0.3s", Some(300)),
            ("1.5ms", Some(2)),
            ("250us", Some(1)),
            ("0s", Some(0)),
            ("0", Some(0)),
            (" 2s ", Some(2000)),
            ("", None),
            ("s", None),
            (".s", None),
            ("5", None),
            ("-1s", None),
            ("1x", None),
            ("1d", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration_ms(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_error_for_a_give_up_is_the_crates_upstream_error() {
        let error = upstream_error(Some(429), Some(10), "rate limited".into());
        assert_eq!(error.status(), 503);
        assert_eq!(error.to_string(), "openai answered 429: rate limited");
        assert_eq!(
            error.to_response("r").headers.get("retry-after"),
            Some("10")
        );
    }

    #[test]
    fn a_refused_key_is_not_quoted_back() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let described = describe_failure(Some(401), body);
        assert!(!described.contains("abcd"), "{described}");
        assert!(described.contains("OPENAI_API_KEY"), "{described}");
    }
}
