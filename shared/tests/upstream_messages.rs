//! The exact message of every kind of upstream failure, for each service the functions call
//! through `shared::upstream` (PostgREST, e-mail, calendar), as the answer's body and the request's
//! log line carry it: the service and status said once, then what the service may be quoted for.
//! The services are a loopback server answering what each case needs.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use shared::fetch::HttpRequest;
use shared::upstream::{send, Quote};
use shared::{
    Capability, Delivery, EdgeConfig, EdgeError, EdgeFunction, Handled, IncomingRequest,
    RequestContext, WebhookSecret,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_700_000_000;

/// Answers each connection with the next of `answers` (raw HTTP/1.1), then closes it.
fn serve_answers(answers: Vec<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            let _ = stream.read_exact(&mut body);
            let Some(answer) = answers.lock().unwrap().next() else {
                return;
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

fn answer(status: &str, headers: &[&str], body: &str) -> String {
    let mut text = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    text
}

/// A function whose one event calls `url` as `service` would be called.
struct Caller {
    service: &'static str,
    quote: Quote,
    url: String,
}

impl EdgeFunction for Caller {
    const NAME: &'static str = "caller";
    const REQUIRED: &'static [Capability] = &[Capability::WebhookSignatures];
    const OPTIONAL: &'static [Capability] = &[];
    const DEDUPLICATED: bool = false;
    type Event = ();
    type Outcome = Value;

    fn parse(&self, _: &Delivery, _: &EdgeConfig) -> Result<(), EdgeError> {
        Ok(())
    }

    async fn handle(
        &self,
        _: (),
        _: &Delivery,
        _: &EdgeConfig,
    ) -> Result<Handled<Value>, EdgeError> {
        let request = HttpRequest::post_json(format!("{}/call?key=k", self.url), "{}".into());
        send(self.service, self.quote, request).await?;
        Ok(Handled::Done(json!({})))
    }
}

/// The status, the body's error and the log line's error when `service` at `url` is called.
async fn failure(service: &'static str, quote: Quote, url: String) -> (u16, Value, Value) {
    let body = r#"{"event":"call.service"}"#;
    let signature = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign("msg_1", NOW, body.as_bytes());
    let request = IncomingRequest::new("POST", "/caller")
        .with_header("webhook-id", "msg_1")
        .with_header("webhook-timestamp", &NOW.to_string())
        .with_header("webhook-signature", &signature)
        .with_body(body);
    let config = EdgeConfig::from_env(|name| (name == "WEBHOOK_SECRET").then(|| SECRET.to_owned()));
    let context = RequestContext {
        now: NOW,
        request_id: "req-1".into(),
    };
    let caller = Caller {
        service,
        quote,
        url,
    };
    let served = shared::serve(&caller, request, &config, &context).await;
    let log: Value = serde_json::from_str(&served.log.to_json()).unwrap();
    let body = served.response.json_body().unwrap();
    (
        served.response.status,
        body["error"].clone(),
        json!({ "code": log["error_code"], "message": log["error"] }),
    )
}

/// What a failure is answered with: status, error code, message.
type Expected = (u16, &'static str, &'static str);

/// Each case: what the service answers, then for PostgREST (its message quoted) and for a third
/// party (its code only): the status, the error code and the message.
#[tokio::test]
async fn every_upstream_failure_reads_the_same_in_the_answer_and_the_log() {
    let postgrest_conflict = r#"{"code":"23505","details":null,"hint":null,"message":"duplicate key value violates unique constraint \"notifications_dedup_key_key\""}"#;
    let resend_invalid = r#"{"statusCode":422,"name":"validation_error","message":"Invalid `to` field: sk_live_4f9d8a7c6b5e4d3c2b1a"}"#;
    let cases: Vec<(&str, String, [Expected; 2])> = vec![
        (
            "a 4xx",
            answer("409 Conflict", &["content-type: application/json"], postgrest_conflict),
            [
                (
                    424,
                    "upstream_rejected",
                    r#"postgrest answered 409: conflict: duplicate key value violates unique constraint "notifications_dedup_key_key""#,
                ),
                (424, "upstream_rejected", "email answered 409: conflict: 23505"),
            ],
        ),
        (
            "a 422 that echoes a key",
            answer("422 Unprocessable Entity", &[], resend_invalid),
            [
                (
                    424,
                    "upstream_rejected",
                    "postgrest answered 422: the request could not be processed: Invalid `to` field: [redacted]",
                ),
                (
                    424,
                    "upstream_rejected",
                    "email answered 422: the request could not be processed: validation_error",
                ),
            ],
        ),
        (
            "a 5xx that is not JSON",
            answer("500 Internal Server Error", &[], "<html>oops for key=k</html>"),
            [
                (502, "upstream_error", "postgrest answered 500: server error"),
                (502, "upstream_error", "email answered 500: server error"),
            ],
        ),
        (
            "a 429",
            answer("429 Too Many Requests", &["retry-after: 7"], r#"{"message":"slow down"}"#),
            [
                (503, "upstream_unavailable", "postgrest answered 429: rate limited: slow down"),
                (503, "upstream_unavailable", "email answered 429: rate limited"),
            ],
        ),
        (
            "a 503",
            answer("503 Service Unavailable", &[], ""),
            [
                (503, "upstream_unavailable", "postgrest answered 503: unavailable"),
                (503, "upstream_unavailable", "email answered 503: unavailable"),
            ],
        ),
    ];
    for (case, raw, expected) in cases {
        for ((service, quote), (status, code, message)) in
            [("postgrest", Quote::Message), ("email", Quote::Code)]
                .into_iter()
                .zip(expected)
        {
            let url = serve_answers(vec![raw.clone()]);
            let (got_status, error, log) = failure(service, quote, url).await;
            let want = json!({ "code": code, "message": message });
            assert_eq!(got_status, status, "{case} from {service}");
            assert_eq!(
                json!({ "code": error["code"], "message": error["message"] }),
                want,
                "{case} from {service}: the answer"
            );
            assert_eq!(log, want, "{case} from {service}: the log line");
        }
    }
}

#[tokio::test]
async fn an_unreachable_or_unreadable_service_is_named_once_and_its_url_left_out() {
    // Nothing listens on a port just freed.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let (status, error, log) = failure("calendar", Quote::Code, closed.clone()).await;
    assert_eq!(
        (status, &error["code"]),
        (503, &json!("upstream_unavailable"))
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("calendar could not be reached: error sending request for url (<url>)"),
        "{message}"
    );
    assert!(
        !message.contains(&closed) && !message.contains("key=k"),
        "{message}"
    );
    assert_eq!(log["message"], error["message"]);

    // An answer cut short: 5 of the 100 bytes it announced.
    let cut =
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100\r\n\r\n{\"a\":".to_owned();
    let (status, error, log) = failure("calendar", Quote::Code, serve_answers(vec![cut])).await;
    assert_eq!((status, &error["code"]), (502, &json!("upstream_error")));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("calendar answered 200: the answer could not be read ("),
        "{message}"
    );
    assert_eq!(message.matches("calendar").count(), 1, "{message}");
    assert_eq!(log["message"], error["message"]);
}
