//! The OpenAI-compatible API (`OPENAI_BASE_URL`, bearer `OPENAI_API_KEY`), for embeddings and
//! chat completions alike: [`call`] sends a request and retries it as the API asks, within the
//! caller's time budget, and turns a failure into the crate's [`EdgeError::Upstream`].
//!
//! [`RetryPolicy::decide`] turns a failed request into [`RetryDecision`]: a 429 waits as long as
//! OpenAI says (`retry-after-ms`, `Retry-After`, else the later of the `x-ratelimit-reset-*`
//! headers), except an exhausted quota, which no wait fixes; 408, 5xx and no answer back off
//! exponentially with *equal jitter* (half the step fixed, half random), so a retry never comes
//! back at once yet a crowd of retries still spreads out; every other status is permanent. A wait
//! longer than the time left, or one attempt too many, gives up with the crate's
//! [`EdgeError::Upstream`], and the caller leaves its work pending.

use serde_json::Value;
use shared::config::OpenAiConfig;
use shared::fetch::{fetch, HttpRequest};
use shared::redact::{clip, without_key_shapes};
use shared::upstream::{self, Quote};
use shared::EdgeError;

use crate::clock::{Clock, SystemClock};

/// The name errors from the API carry in [`EdgeError::Upstream`].
pub const SERVICE: &str = "openai";

/// What the API answered, or `status: None` when it did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    pub status: Option<u16>,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Why there is no answer (connection error), without the URL.
    pub failure: Option<String>,
}

/// Sends one request to the API and brings back whatever came back.
#[allow(async_fn_in_trait)]
pub trait Transport {
    async fn post(&self, path: &str, body: &str) -> RawAnswer;
}

/// The API over HTTP: `POST {OPENAI_BASE_URL}/{path}` with the key as bearer.
pub struct Http<'a>(pub &'a OpenAiConfig);

impl Transport for Http<'_> {
    async fn post(&self, path: &str, body: &str) -> RawAnswer {
        let config = self.0;
        let url = format!("{}/{}", config.base_url, path.trim_start_matches('/'));
        let request = HttpRequest::post_json(url, body.to_owned()).bearer(config.api_key.expose());
        match fetch(request).await {
            Ok(answer) => RawAnswer {
                status: Some(answer.status),
                headers: answer.headers,
                body: answer.body,
                failure: None,
            },
            // An answer whose body could not be read counts as none, its headers kept.
            Err(error) => RawAnswer {
                status: None,
                headers: error.headers,
                body: String::new(),
                failure: Some(error.message),
            },
        }
    }
}

/// [`call_with`] over HTTP and the runtime's clock.
pub async fn call(
    config: &OpenAiConfig,
    path: &str,
    body: &Value,
    deadline: f64,
    calls: &mut usize,
) -> Result<Value, EdgeError> {
    call_with(&Http(config), &SystemClock, path, body, deadline, calls).await
}

/// POSTs `body` to `path` until the API answers 2xx, waiting and retrying as [`RetryPolicy`]
/// says until `deadline` (ms, on `clock`); the answer's JSON. `calls` counts the requests sent.
pub async fn call_with(
    transport: &impl Transport,
    clock: &impl Clock,
    path: &str,
    body: &Value,
    deadline: f64,
    calls: &mut usize,
) -> Result<Value, EdgeError> {
    let body = body.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        *calls += 1;
        let answer = transport.post(path, &body).await;
        if let Some(200..=299) = answer.status {
            return serde_json::from_str(&answer.body).map_err(|error| {
                upstream_error(
                    answer.status,
                    None,
                    format!("the {path} answer is not JSON: {error}"),
                )
            });
        }
        let remaining_ms = (deadline - clock.now_ms()).max(0.0) as u64;
        let detail = answer.failure.as_deref().unwrap_or(&answer.body);
        let decision = RetryPolicy::default().decide(
            answer.status,
            &answer.headers,
            detail,
            attempt,
            clock.jitter(),
            remaining_ms,
        );
        match decision {
            RetryDecision::RetryAfter { delay_ms } => clock.sleep_ms(delay_ms).await,
            RetryDecision::GiveUp {
                reason,
                retry_after_seconds,
                ..
            } => return Err(upstream_error(answer.status, retry_after_seconds, reason)),
        }
    }
}

/// The crate's error for a failed call (e.g. after [`RetryDecision::GiveUp`]).
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
    /// Stop; the caller's work stays pending. `quota`: the account's quota is exhausted, so no other
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
#[path = "openai_tests.rs"]
mod tests;
