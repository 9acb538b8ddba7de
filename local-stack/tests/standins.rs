//! The API stand-ins over real loopback HTTP: each answers in its service's wire format, refuses
//! what the service refuses, and records what was "sent".

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_stack::standins::{StandIns, OPENAI_API_KEY, RESEND_API_KEY};
use serde_json::{json, Value};

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

async fn post_json(url: &str, key: Option<&str>, body: &Value) -> Reply {
    let authorization = key.map(|key| format!("Bearer {key}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    send(Method::POST, url, &headers, body.to_string()).await
}

async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], Bytes::new()).await
}

fn env_value(stand_ins: &StandIns, name: &str) -> String {
    stand_ins
        .function_env()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("{name} is not in function_env"))
}

mod environment {
    use super::*;

    #[tokio::test]
    async fn function_env_points_every_api_at_the_stand_ins() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let base = stand_ins.base_url();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        let env = stand_ins.function_env();
        let names: Vec<&str> = env.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "OPENAI_BASE_URL",
                "OPENAI_API_KEY",
                "RESEND_API_KEY",
                "EMAIL_API_URL",
                "EMAIL_FROM",
                "CALENDAR_SYNC_URL",
                "CALENDAR_SYNC_SECRET"
            ]
        );
        assert_eq!(
            env_value(&stand_ins, "OPENAI_BASE_URL"),
            format!("{base}/openai/v1")
        );
        assert_eq!(
            env_value(&stand_ins, "EMAIL_API_URL"),
            format!("{base}/resend/emails")
        );
        assert_eq!(
            env_value(&stand_ins, "CALENDAR_SYNC_URL"),
            format!("{base}/calendar")
        );
        assert_eq!(
            env_value(&stand_ins, "EMAIL_FROM"),
            "TripSage (local) <trips@localhost>"
        );
        let secret = env_value(&stand_ins, "CALENDAR_SYNC_SECRET");
        assert!(secret.starts_with("whsec_"));
        assert!(shared::WebhookSecret::parse(&secret).is_ok());
    }

    #[tokio::test]
    async fn unknown_paths_get_404_in_the_services_shapes_and_are_counted() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let base = stand_ins.base_url();
        let openai = post_json(
            &format!("{base}/openai/v1/moderations"),
            Some(OPENAI_API_KEY),
            &json!({}),
        )
        .await;
        assert_eq!(openai.status, StatusCode::NOT_FOUND);
        assert_eq!(openai.json()["error"]["type"], "invalid_request_error");
        let resend = get(&format!("{base}/resend/domains")).await;
        assert_eq!(resend.status, StatusCode::NOT_FOUND);
        assert_eq!(resend.json()["name"], "not_found");
        assert_eq!(resend.header("x-stand-in"), Some("not-semantic"));
        assert_eq!(stand_ins.request_count("/openai/v1/moderations"), 1);
        assert_eq!(stand_ins.request_count("/resend/domains"), 1);
        assert_eq!(stand_ins.request_count("/resend/emails"), 0);
    }
}

mod embeddings {
    use super::*;

    async fn embed(stand_ins: &StandIns, body: &Value) -> Reply {
        let url = format!("{}/embeddings", env_value(stand_ins, "OPENAI_BASE_URL"));
        post_json(&url, Some(OPENAI_API_KEY), body).await
    }

    fn vector(item: &Value) -> Vec<f32> {
        item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    fn norm(vector: &[f32]) -> f32 {
        vector.iter().map(|v| v * v).sum::<f32>().sqrt()
    }

    #[tokio::test]
    async fn answers_one_unit_vector_per_input_in_order() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let reply = embed(
            &stand_ins,
            &json!({ "model": "text-embedding-3-small", "input": ["Lisbon", "Kyoto", "Lisbon"] }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let body = reply.json();
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "text-embedding-3-small");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        for (index, item) in data.iter().enumerate() {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], index);
            let vector = vector(item);
            assert_eq!(vector.len(), 1536);
            assert!((norm(&vector) - 1.0).abs() < 1e-4, "{}", norm(&vector));
        }
        assert_eq!(vector(&data[0]), vector(&data[2]), "same text, same vector");
        assert_ne!(vector(&data[0]), vector(&data[1]));
        // ceil(6/4) + ceil(5/4) + ceil(6/4)
        assert_eq!(
            body["usage"],
            json!({ "prompt_tokens": 6, "total_tokens": 6 })
        );
        for header in [
            "x-request-id",
            "openai-processing-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ] {
            assert!(reply.header(header).is_some(), "{header} is missing");
        }
        assert!(reply.header("x-request-id").unwrap().starts_with("req_"));
        assert_eq!(reply.header("x-stand-in"), Some("not-semantic"));
        assert_eq!(stand_ins.request_count("/openai/v1/embeddings"), 1);
    }

    #[tokio::test]
    async fn vectors_are_stable_across_requests_and_differ_between_models() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let first = embed(
            &stand_ins,
            &json!({ "model": "text-embedding-3-small", "input": "Porto" }),
        )
        .await;
        let again = embed(
            &stand_ins,
            &json!({ "model": "text-embedding-3-small", "input": "Porto" }),
        )
        .await;
        assert_eq!(
            vector(&first.json()["data"][0]),
            vector(&again.json()["data"][0])
        );
        assert_ne!(first.header("x-request-id"), again.header("x-request-id"));

        let large = embed(
            &stand_ins,
            &json!({ "model": "text-embedding-3-large", "input": "Porto" }),
        )
        .await;
        let large = vector(&large.json()["data"][0]);
        assert_eq!(large.len(), 3072);
        assert_ne!(large[..1536], vector(&first.json()["data"][0])[..]);
    }

    #[tokio::test]
    async fn base64_encoding_carries_the_same_little_endian_floats() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let request = |format: &str| json!({ "model": "text-embedding-3-small", "input": ["Oslo", "Rome"], "encoding_format": format });
        let floats = embed(&stand_ins, &request("float")).await.json();
        let encoded = embed(&stand_ins, &request("base64")).await.json();
        for index in 0..2 {
            let bytes = BASE64
                .decode(encoded["data"][index]["embedding"].as_str().unwrap())
                .unwrap();
            let decoded: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(decoded, vector(&floats["data"][index]));
        }
    }

    #[tokio::test]
    async fn dimensions_shorten_the_vector_up_to_the_native_size() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let short = embed(
            &stand_ins,
            &json!({ "model": "text-embedding-3-small", "input": "Oslo", "dimensions": 256 }),
        )
        .await;
        assert_eq!(short.status, StatusCode::OK);
        let short = vector(&short.json()["data"][0]);
        assert_eq!(short.len(), 256);
        assert!((norm(&short) - 1.0).abs() < 1e-4);

        let too_many = embed(
            &stand_ins,
            &json!({ "model": "text-embedding-3-small", "input": "Oslo", "dimensions": 1537 }),
        )
        .await;
        assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
        assert_eq!(too_many.json()["error"]["param"], "dimensions");
        assert_eq!(too_many.json()["error"]["type"], "invalid_request_error");
    }

    #[tokio::test]
    async fn a_missing_or_wrong_key_is_refused_without_echoing_it() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let url = format!("{}/openai/v1/embeddings", stand_ins.base_url());
        let body = json!({ "model": "text-embedding-3-small", "input": "Oslo" });

        let missing = post_json(&url, None, &body).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
        assert_eq!(missing.json()["error"]["type"], "invalid_request_error");

        let wrong_key = "sk-someone-elses-real-key-1234";
        let wrong = post_json(&url, Some(wrong_key), &body).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let error = &wrong.json()["error"];
        assert_eq!(error["code"], "invalid_api_key");
        assert_eq!(error["param"], Value::Null);
        assert!(error["message"]
            .as_str()
            .unwrap()
            .starts_with("Incorrect API key provided"));
        let text = String::from_utf8_lossy(&wrong.body);
        assert!(
            !text.contains(wrong_key) && !text.contains("1234"),
            "{text}"
        );
        assert_eq!(stand_ins.request_count("/openai/v1/embeddings"), 2);
    }

    #[tokio::test]
    async fn invalid_inputs_are_refused_with_400() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let model = "text-embedding-3-small";
        let too_many: Vec<String> = (0..2049).map(|i| format!("text {i}")).collect();
        let too_long = "x".repeat(8192 * 4 + 1);
        // Each refused request, and the parameter OpenAI names in its error.
        let cases = [
            (json!({ "model": model, "input": too_many }), json!("input")),
            (json!({ "model": model, "input": "" }), Value::Null),
            (json!({ "model": model, "input": [] }), Value::Null),
            (
                json!({ "model": model, "input": ["fine", ""] }),
                Value::Null,
            ),
            (
                json!({ "model": model, "input": [[1, 2, 3]] }),
                json!("input"),
            ),
            (json!({ "model": model, "input": too_long }), json!("input")),
            (json!({ "model": model }), json!("input")),
            (json!({ "input": "no model" }), Value::Null),
            (
                json!({ "model": model, "input": "x", "encoding_format": "hex" }),
                json!("encoding_format"),
            ),
        ];
        for (case, param) in &cases {
            let reply = embed(&stand_ins, case).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
            let error = &reply.json()["error"];
            assert_eq!(error["type"], "invalid_request_error", "{case}");
            assert_eq!(&error["param"], param, "{case}");
        }
        assert_eq!(
            stand_ins.request_count("/openai/v1/embeddings"),
            cases.len()
        );
        let exactly_2048: Vec<&str> = vec!["x"; 2048];
        let reply = embed(
            &stand_ins,
            &json!({ "model": model, "input": exactly_2048 }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["data"].as_array().unwrap().len(), 2048);

        let url = format!("{}/openai/v1/embeddings", stand_ins.base_url());
        let headers = [("authorization", format!("Bearer {OPENAI_API_KEY}"))];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let malformed = send(Method::POST, &url, &headers, "{not json").await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.json()["error"]["type"], "invalid_request_error");

        let unknown = embed(
            &stand_ins,
            &json!({ "model": "no-such-model", "input": "x" }),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(unknown.json()["error"]["code"], "model_not_found");
    }
}

mod chat {
    use super::*;

    async fn complete(stand_ins: &StandIns, body: &Value) -> Reply {
        let url = format!(
            "{}/chat/completions",
            env_value(stand_ins, "OPENAI_BASE_URL")
        );
        post_json(&url, Some(OPENAI_API_KEY), body).await
    }

    fn content(reply: &Reply) -> String {
        reply.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn json_schema_replies_parse_and_carry_the_required_keys() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let schema = json!({
            "type": "object",
            "properties": {
                "preferences": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "category": { "type": "string", "enum": ["accommodation", "food"] },
                            "preference": { "type": "string" },
                            "confidence": { "type": "number", "minimum": 0, "maximum": 1 }
                        },
                        "required": ["category", "preference", "confidence"],
                        "additionalProperties": false
                    }
                },
                "summary": { "type": "object", "properties": { "tone": { "const": "neutral" } }, "required": ["tone"] }
            },
            "required": ["preferences", "summary"],
            "additionalProperties": false
        });
        let reply = complete(
            &stand_ins,
            &json!({
                "model": "gpt-4o-mini",
                "messages": [
                    { "role": "system", "content": "Extract travel preferences." },
                    { "role": "user", "content": "I love boutique hotels." }
                ],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": { "name": "preferences", "schema": schema, "strict": true }
                }
            }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let body = reply.json();
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-4o-mini");
        assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["refusal"], Value::Null);
        let usage = &body["usage"];
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );
        let instance: Value = serde_json::from_str(&content(&reply)).unwrap();
        assert_eq!(
            instance,
            json!({ "preferences": [], "summary": { "tone": "neutral" } })
        );
        assert!(reply.header("x-request-id").is_some());
    }

    #[tokio::test]
    async fn json_object_and_plain_replies() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let json_object = complete(
            &stand_ins,
            &json!({
                "model": "gpt-4o-mini",
                "messages": [{ "role": "user", "content": "Answer in JSON." }],
                "response_format": { "type": "json_object" }
            }),
        )
        .await;
        assert_eq!(json_object.status, StatusCode::OK);
        assert_eq!(content(&json_object), "{}");

        let plain = complete(
            &stand_ins,
            &json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "Hi" }] }),
        )
        .await;
        assert_eq!(plain.status, StatusCode::OK);
        assert!(content(&plain).contains("stand-in"), "{}", content(&plain));
    }

    #[tokio::test]
    async fn told_to_misbehave_it_answers_as_openai_does_when_throttled() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let told = post_json(
            &format!("{}/_stand-ins/openai/chat/behaviour", stand_ins.base_url()),
            None,
            &json!({ "rate_limit_next": 1, "retry_after_seconds": 2, "server_error_next": 1 }),
        )
        .await;
        assert_eq!(told.status, StatusCode::OK);
        let request =
            json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "Hi" }] });
        let limited = complete(&stand_ins, &request).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.header("retry-after"), Some("2"));
        assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");
        let failed = complete(&stand_ins, &request).await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.json()["error"]["type"], "server_error");
        assert_eq!(complete(&stand_ins, &request).await.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn requests_openai_refuses_are_refused() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let cases = [
            json!({ "model": "gpt-4o-mini" }),
            json!({ "model": "gpt-4o-mini", "messages": [] }),
            json!({ "model": "gpt-4o-mini", "messages": [{ "content": "no role" }] }),
            json!({
                "model": "gpt-4o-mini",
                "messages": [{ "role": "user", "content": "no mention of the format" }],
                "response_format": { "type": "json_object" }
            }),
            json!({
                "model": "gpt-4o-mini",
                "messages": [{ "role": "user", "content": "x" }],
                "response_format": { "type": "json_schema", "json_schema": { "schema": {} } }
            }),
        ];
        for case in &cases {
            let reply = complete(&stand_ins, case).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
            assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
        }
        let url = format!("{}/openai/v1/chat/completions", stand_ins.base_url());
        let unauthorised = post_json(
            &url,
            Some("sk-wrong"),
            &json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "x" }] }),
        )
        .await;
        assert_eq!(unauthorised.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unauthorised.json()["error"]["code"], "invalid_api_key");
    }
}

mod resend {
    use super::*;

    fn email(subject: &str) -> Value {
        json!({
            "from": "TripSage (local) <trips@localhost>",
            "to": ["ana@example.com"],
            "subject": subject,
            "html": "<p>You were invited.</p>"
        })
    }

    async fn send_email(
        stand_ins: &StandIns,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> Reply {
        let url = env_value(stand_ins, "EMAIL_API_URL");
        let authorization = format!("Bearer {RESEND_API_KEY}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key", key));
        }
        send(Method::POST, &url, &headers, body.to_string()).await
    }

    fn is_uuid(id: &str) -> bool {
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
    }

    #[tokio::test]
    async fn an_accepted_email_is_recorded_and_inspectable() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let reply = send_email(&stand_ins, None, &email("Invitation")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let id = reply.json()["id"].as_str().unwrap().to_owned();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(reply.header("x-stand-in"), Some("not-semantic"));

        let emails = stand_ins.emails();
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0]["id"], id);
        assert_eq!(emails[0]["idempotency_key"], Value::Null);
        assert_eq!(emails[0]["email"], email("Invitation"));

        let second = send_email(&stand_ins, None, &email("Second")).await;
        assert_ne!(second.json()["id"], id);
        let inspected = get(&format!("{}/_stand-ins/emails", stand_ins.base_url())).await;
        assert_eq!(inspected.status, StatusCode::OK);
        let listed = inspected.json()["emails"].clone();
        assert_eq!(listed, json!(stand_ins.emails()));
        assert_eq!(listed[1]["email"]["subject"], "Second");
    }

    #[tokio::test]
    async fn incomplete_emails_and_bad_keys_are_refused_in_resends_shape() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let mut no_subject = email("x");
        no_subject.as_object_mut().unwrap().remove("subject");
        let reply = send_email(&stand_ins, None, &no_subject).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        let error = reply.json();
        assert_eq!(error["statusCode"], 422);
        assert_eq!(error["name"], "missing_required_field");
        assert!(error["message"].as_str().unwrap().contains("subject"));

        let mut no_content = email("x");
        no_content.as_object_mut().unwrap().remove("html");
        let reply = send_email(&stand_ins, None, &no_content).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

        let bad_from = json!({ "from": "TripSage", "to": "a@b.c", "subject": "x", "text": "x" });
        let reply = send_email(&stand_ins, None, &bad_from).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.json()["name"], "validation_error");

        let url = env_value(&stand_ins, "EMAIL_API_URL");
        let missing_key = post_json(&url, None, &email("x")).await;
        assert_eq!(missing_key.status, StatusCode::UNAUTHORIZED);
        assert_eq!(missing_key.json()["name"], "missing_api_key");
        let wrong_key = post_json(&url, Some("re_wrong"), &email("x")).await;
        assert_eq!(wrong_key.status, StatusCode::FORBIDDEN);
        assert_eq!(wrong_key.json()["name"], "invalid_api_key");

        let key = "k".repeat(257);
        let long_key = send_email(&stand_ins, Some(&key), &email("x")).await;
        assert_eq!(long_key.status, StatusCode::BAD_REQUEST);
        assert_eq!(long_key.json()["name"], "invalid_idempotency_key");

        assert!(stand_ins.emails().is_empty());
        assert_eq!(stand_ins.request_count("/resend/emails"), 6);
    }

    #[tokio::test]
    async fn a_replay_under_the_same_key_returns_the_same_id_and_is_recorded_once() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let key = "webhook-msg_1:user-7";
        let first = send_email(&stand_ins, Some(key), &email("Invitation")).await;
        let replay = send_email(&stand_ins, Some(key), &email("Invitation")).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(replay.status, StatusCode::OK);
        assert_eq!(first.json()["id"], replay.json()["id"]);
        let emails = stand_ins.emails();
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0]["idempotency_key"], key);
        assert_eq!(stand_ins.request_count("/resend/emails"), 2);

        let other_key = send_email(&stand_ins, Some("another"), &email("Invitation")).await;
        assert_ne!(other_key.json()["id"], first.json()["id"]);
        assert_eq!(stand_ins.emails().len(), 2);
    }

    #[tokio::test]
    async fn reusing_a_key_for_a_different_email_conflicts() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let first = send_email(&stand_ins, Some("k1"), &email("Invitation")).await;
        assert_eq!(first.status, StatusCode::OK);
        let conflict = send_email(&stand_ins, Some("k1"), &email("Something else")).await;
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        let error = conflict.json();
        assert_eq!(error["statusCode"], 409);
        assert_eq!(error["name"], "invalid_idempotent_request");
        assert_eq!(stand_ins.emails().len(), 1);
    }
}

mod calendar {
    use super::*;

    const ICS: &str =
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//TripSage//EN\r\nEND:VCALENDAR\r\n";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Posts `body` signed, as the trip-events function does, with `secret`.
    async fn deliver(
        stand_ins: &StandIns,
        secret: &str,
        timestamp: i64,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let secret = shared::WebhookSecret::parse(secret).unwrap();
        let signature = secret.sign("msg_cal_1", timestamp, body.as_bytes());
        let timestamp = timestamp.to_string();
        let headers = [
            ("content-type", content_type),
            ("webhook-id", "msg_cal_1"),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        let url = env_value(stand_ins, "CALENDAR_SYNC_URL");
        send(Method::POST, &url, &headers, body.to_owned()).await
    }

    #[tokio::test]
    async fn a_signed_icalendar_document_is_accepted_and_inspectable() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let secret = env_value(&stand_ins, "CALENDAR_SYNC_SECRET");
        let sent_at = now();
        let reply = deliver(
            &stand_ins,
            &secret,
            sent_at,
            "text/calendar; charset=utf-8",
            ICS,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json(), json!({ "received": true }));

        let posts = stand_ins.calendar_posts();
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].webhook_id, "msg_cal_1");
        assert_eq!(posts[0].webhook_timestamp, sent_at);
        assert_eq!(posts[0].content_type, "text/calendar; charset=utf-8");
        assert_eq!(posts[0].body, ICS);

        let inspected = get(&format!("{}/_stand-ins/calendar", stand_ins.base_url())).await;
        assert_eq!(inspected.status, StatusCode::OK);
        let listed = &inspected.json()["posts"];
        assert_eq!(listed[0]["webhook_id"], "msg_cal_1");
        assert_eq!(listed[0]["body"], ICS);
    }

    #[tokio::test]
    async fn wrong_missing_or_stale_signatures_are_refused_with_401() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let secret = env_value(&stand_ins, "CALENDAR_SYNC_SECRET");
        let other_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let wrong = deliver(&stand_ins, other_secret, now(), "text/calendar", ICS).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.json()["error"]["code"], "invalid_signature");

        let stale = deliver(&stand_ins, &secret, now() - 600, "text/calendar", ICS).await;
        assert_eq!(stale.status, StatusCode::UNAUTHORIZED);

        let url = env_value(&stand_ins, "CALENDAR_SYNC_URL");
        let unsigned = send(
            Method::POST,
            &url,
            &[("content-type", "text/calendar")],
            ICS,
        )
        .await;
        assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unsigned.json()["error"]["code"], "missing_header");

        assert!(stand_ins.calendar_posts().is_empty());
        assert_eq!(stand_ins.request_count("/calendar"), 3);
    }

    #[tokio::test]
    async fn a_signed_body_that_is_not_icalendar_is_refused() {
        let stand_ins = StandIns::start(0).await.unwrap();
        let secret = env_value(&stand_ins, "CALENDAR_SYNC_SECRET");
        let not_ics = deliver(&stand_ins, &secret, now(), "text/calendar", "{\"trip\":1}").await;
        assert_eq!(not_ics.status, StatusCode::BAD_REQUEST);
        assert_eq!(not_ics.json()["error"]["code"], "not_icalendar");

        let as_json = deliver(&stand_ins, &secret, now(), "application/json", ICS).await;
        assert_eq!(as_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(stand_ins.calendar_posts().is_empty());
    }
}
