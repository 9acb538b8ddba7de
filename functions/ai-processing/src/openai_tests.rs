//! The tests of `openai.rs`.

use super::*;
use serde_json::json;

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
        RetryPolicy::default().decide(Some(429), &headers(pairs), RATE_LIMITED, 1, 0.7, PLENTY)
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
    let decision = RetryPolicy::default().decide(Some(429), &[], RATE_LIMITED, 2, 0.0, PLENTY);
    assert_eq!(decision, retry_after(500));
}

#[test]
fn an_exhausted_quota_gives_up_at_once() {
    let decision = RetryPolicy::default().decide(
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
        RetryPolicy::default().decide(Some(500), &[], "", 3, 0.0, PLENTY),
        retry_after(1000)
    );
    assert_eq!(
        RetryPolicy::default().decide(Some(500), &[], "", 3, 1.0, PLENTY),
        retry_after(2000)
    );
    assert_eq!(
        RetryPolicy::default().decide(Some(500), &[], "", 3, 0.999_999, PLENTY),
        retry_after(1999)
    );
    assert_eq!(
        RetryPolicy::default().decide(Some(503), &[], "", 1, 0.0, PLENTY),
        retry_after(250)
    );
    assert_eq!(
        RetryPolicy::default().decide(Some(408), &[], "", 2, 0.5, PLENTY),
        retry_after(750)
    );
    assert_eq!(
        RetryPolicy::default().decide(None, &[], "connection reset", 4, 0.0, PLENTY),
        retry_after(2000)
    );
    assert_eq!(
        RetryPolicy::default().decide(Some(502), &[], "", 1, f64::NAN, PLENTY),
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
    let decision = RetryPolicy::default().decide(
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

    let decision = RetryPolicy::default().decide(Some(500), &[], "", 3, 0.0, 999);
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
        RetryPolicy::default().decide(Some(500), &[], "", 3, 0.0, 1000),
        retry_after(1000)
    );
}

#[test]
fn attempts_are_capped() {
    assert_eq!(
        RetryPolicy::default().decide(Some(500), &[], "", 4, 0.0, PLENTY),
        retry_after(2000)
    );
    let decision = RetryPolicy::default().decide(Some(500), &[], "", 5, 0.0, PLENTY);
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
        let decision = RetryPolicy::default().decide(Some(status), &[], body, 1, 0.0, PLENTY);
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
            403 => {
                "the request is forbidden with these credentials (check OPENAI_API_KEY)".to_owned()
            }
            _ => format!("{}: invalid_api_key", upstream::status_description(status)),
        };
        assert_eq!(reason, format!("{expected} (not retryable)"));
    }
}

#[test]
fn give_up_reasons_are_short() {
    let page = "<html>".repeat(200);
    let decision = RetryPolicy::default().decide(Some(400), &[], &page, 1, 0.0, PLENTY);
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

/// A scripted answer: status (0: none, the connection refused), headers, body.
type ScriptedAnswer = (u16, &'static [(&'static str, &'static str)], &'static str);

/// Answers from a script, one per request, on a clock that only moves when slept on.
struct Scripted {
    answers: std::cell::RefCell<std::collections::VecDeque<RawAnswer>>,
    now: std::cell::Cell<f64>,
    slept: std::cell::RefCell<Vec<u64>>,
}

impl Scripted {
    fn new(answers: Vec<ScriptedAnswer>) -> Self {
        let answers = answers
            .into_iter()
            .map(|(status, pairs, body)| RawAnswer {
                status: (status != 0).then_some(status),
                headers: headers(pairs),
                body: body.to_owned(),
                failure: (status == 0).then(|| "connection refused".to_owned()),
            })
            .collect();
        Self {
            answers: std::cell::RefCell::new(answers),
            now: std::cell::Cell::new(0.0),
            slept: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn call(&self, budget_ms: f64) -> (Result<Value, EdgeError>, usize) {
        let mut calls = 0;
        let body = json!({ "input": ["x"] });
        let result = futures::executor::block_on(call_with(
            self,
            self,
            "embeddings",
            &body,
            budget_ms,
            &mut calls,
        ));
        (result, calls)
    }
}

impl Transport for Scripted {
    async fn post(&self, _: &str, _: &str) -> RawAnswer {
        self.answers
            .borrow_mut()
            .pop_front()
            .expect("an answer left")
    }
}

impl Clock for Scripted {
    fn now_ms(&self) -> f64 {
        self.now.get()
    }
    fn jitter(&self) -> f64 {
        0.5
    }
    async fn sleep_ms(&self, ms: u64) {
        self.slept.borrow_mut().push(ms);
        self.now.set(self.now.get() + ms as f64);
    }
}

#[test]
fn a_rate_limit_is_waited_out_then_the_answer_used() {
    let api = Scripted::new(vec![
        (429, &[("retry-after", "2")], RATE_LIMITED),
        (500, &[], "{}"),
        (0, &[], ""),
        (200, &[], r#"{"data": []}"#),
    ]);
    let (result, calls) = api.call(PLENTY as f64);
    assert_eq!(result.unwrap(), json!({ "data": [] }));
    assert_eq!(calls, 4);
    // Retry-After: 2; then the back-off of attempts 2 and 3 (steps of 1000 and 2000 ms, half
    // fixed, half jitter, here 0.5).
    assert_eq!(*api.slept.borrow(), [2000, 750, 1500]);
}

#[test]
fn a_wait_past_the_deadline_gives_up_with_the_wait_for_the_sender() {
    let api = Scripted::new(vec![(429, &[("retry-after", "30")], RATE_LIMITED)]);
    let (result, calls) = api.call(10_000.0);
    let error = result.unwrap_err();
    assert_eq!(calls, 1);
    assert!(api.slept.borrow().is_empty());
    assert_eq!(error.status(), 503);
    assert_eq!(
        error.to_response("r").headers.get("retry-after"),
        Some("30")
    );
    assert!(
        error.to_string().starts_with(
            "openai answered 429: rate limited: rate_limit_exceeded; retry would exceed"
        ),
        "{error}"
    );
}

#[test]
fn a_refusal_is_not_retried() {
    let api = Scripted::new(vec![(401, &[], r#"{"error":{"code":"invalid_api_key"}}"#)]);
    let (result, calls) = api.call(PLENTY as f64);
    let error = result.unwrap_err();
    assert_eq!((calls, error.status()), (1, 424));
    assert_eq!(
        error.to_string(),
        "openai answered 401: the credentials were refused (check OPENAI_API_KEY) (not retryable)"
    );
}

#[test]
fn five_failed_attempts_give_up_saying_what_the_last_one_met() {
    let five = |answer: ScriptedAnswer| Scripted::new(vec![answer; 5]);
    let (result, calls) = five((500, &[], "<html>")).call(PLENTY as f64);
    let error = result.unwrap_err();
    assert_eq!(
        (calls, error.status(), error.code()),
        (5, 502, "upstream_error")
    );
    assert_eq!(
        error.to_string(),
        "openai answered 500: server error; gave up after 5 attempts"
    );

    let (result, _) = five((0, &[], "")).call(PLENTY as f64);
    let error = result.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (503, "upstream_unavailable")
    );
    assert_eq!(
        error.to_string(),
        "openai could not be reached: connection refused; gave up after 5 attempts"
    );
}

#[test]
fn an_answer_that_is_not_json_is_an_upstream_error() {
    let api = Scripted::new(vec![(200, &[], "<html>")]);
    let (result, _) = api.call(PLENTY as f64);
    let error = result.unwrap_err();
    assert_eq!(error.status(), 502);
    assert!(
        error
            .to_string()
            .starts_with("openai answered 200: the embeddings answer is not JSON"),
        "{error}"
    );
}

#[test]
fn a_refused_key_is_not_quoted_back() {
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let described = describe_failure(Some(401), body);
    assert!(!described.contains("abcd"), "{described}");
    assert!(described.contains("OPENAI_API_KEY"), "{described}");
}
