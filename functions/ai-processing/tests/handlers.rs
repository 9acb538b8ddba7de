//! ai-processing natively, end to end through its real I/O: requests exactly as the database's
//! triggers queued them, PostgREST served by the local stack's `/rest/v1` over the TripSage test
//! database, and the OpenAI-compatible stand-in (which can be told to rate-limit, to answer with
//! the wrong dimension, or to take its time).
//!
//! `./scripts/test` sets TRIPSAGE_TEST_DB_URL; by hand: `scripts/db start &&
//! TRIPSAGE_TEST_DB_URL=$(scripts/db url) cargo test -p ai-processing --test handlers`.
#![cfg(not(target_arch = "wasm32"))]

use ai_processing::AiProcessing;
use local_stack::standins::{OpenAiBehaviour, OPENAI_API_KEY};
use local_stack::testing::TestStack;
use serde_json::{json, Value};
use shared::{EdgeConfig, IncomingRequest, RequestContext};

const EMBEDDINGS: &str = "/openai/v1/embeddings";

/// The shared test stack (`/rest/v1`, the stand-ins, a connection for fixtures) with what
/// ai-processing's tests add to it.
struct Stack(TestStack);

impl std::ops::Deref for Stack {
    type Target = TestStack;

    fn deref(&self) -> &TestStack {
        &self.0
    }
}

impl Stack {
    async fn start() -> Self {
        Self(TestStack::start().await)
    }

    /// ai-processing's configuration; `with_key: false` leaves OPENAI_API_KEY out.
    fn config(&self, with_key: bool) -> EdgeConfig {
        self.config_with(with_key, &[])
    }

    fn config_with(&self, with_key: bool, extra: &[(&str, &str)]) -> EdgeConfig {
        let mut env = self.0.function_env();
        for (name, value) in self.stand_ins.function_env() {
            let wanted = match name.as_str() {
                "OPENAI_API_KEY" => with_key,
                "OPENAI_BASE_URL" => true,
                _ => false,
            };
            if wanted {
                env.insert(name, value);
            }
        }
        for (name, value) in extra {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        EdgeConfig::from_env(|name| env.get(name).cloned())
    }

    async fn user(&self) -> String {
        self.0.user("@example.com", None).await
    }

    /// `count` memories of a new user, inserted in one statement; their ids.
    async fn memories(&self, count: i32) -> (String, Vec<i64>) {
        let user = self.user().await;
        let rows = self
            .db
            .query(
                "insert into memories (user_id, content, memory_type)
                 select $1::text::uuid, format('Memory %s of %s: likes quiet ryokans', n, $1), 'trip_history'
                 from generate_series(1, $2) n
                 returning id",
                &[&user, &count],
            )
            .await
            .expect("insert memories");
        (user, rows.iter().map(|row| row.get(0)).collect())
    }

    /// The newest request the database queued to ai-processing for `event` whose payload
    /// contains `fragment`.
    async fn queued(&self, event: &str, fragment: &Value) -> IncomingRequest {
        let queued = self.0.queued("ai_processing", event, fragment).await;
        let mut request = IncomingRequest::new("POST", "/ai-processing").with_body(queued.body);
        for (name, value) in &queued.headers {
            request = request.with_header(name, value);
        }
        request
    }

    /// A new user's chat message, and the chat.message.process request the trigger queued for it.
    async fn user_message(&self, content: &str) -> (String, i64, IncomingRequest) {
        let user = self.user().await;
        let (request, ids) = self.chat_statement(&[(&user, 1)], content).await;
        (user, ids[0], request)
    }

    /// One statement inserting, for each `(user, n)`, n user messages (`content` numbered) and one
    /// assistant message in a new session of that user; the chat.message.process the trigger
    /// queued, and the user messages' ids.
    async fn chat_statement(
        &self,
        users: &[(&str, i32)],
        content: &str,
    ) -> (IncomingRequest, Vec<i64>) {
        let users_json = json!(users
            .iter()
            .map(|(user, n)| json!({ "user_id": user, "n": n }))
            .collect::<Vec<_>>());
        let rows = self
            .db
            .query(
                "with wanted as (
                   select * from jsonb_to_recordset($1::text::jsonb) as w(user_id uuid, n integer)),
                 sessions as (
                   insert into chat_sessions (user_id) select user_id from wanted
                   returning id, user_id)
                 insert into chat_messages (session_id, role, content)
                 select s.id, m.role, case when w.n = 1 and m.role = 'user' then $2::text
                                           else format('%s (%s)', $2::text, m.n) end
                 from sessions s join wanted w using (user_id)
                 cross join lateral (
                   select 'user' as role, n from generate_series(1, w.n) n
                   union all select 'assistant', 0) m
                 returning id, role",
                &[&users_json.to_string(), &content],
            )
            .await
            .expect("insert chat messages");
        let mut ids: Vec<i64> = rows
            .iter()
            .filter(|row| row.get::<_, String>(1) == "user")
            .map(|row| row.get(0))
            .collect();
        ids.sort_unstable();
        let request = self
            .queued("chat.message.process", &json!({ "message_ids": ids }))
            .await;
        (request, ids)
    }

    /// Forgets that ai-processing completed `request`, as if it had stopped before recording it
    /// (only this delivery's receipt: the tests run side by side).
    async fn lose_receipt(&self, request: &IncomingRequest) {
        let webhook_id = request.headers.get("webhook-id").expect("a webhook-id");
        let deleted = self
            .db
            .execute(
                "delete from webhook_receipts
                 where function_name = 'ai-processing' and webhook_id = $1",
                &[&webhook_id],
            )
            .await
            .unwrap();
        assert_eq!(deleted, 1, "the delivery had a receipt");
    }

    fn chat_calls(&self) -> usize {
        self.stand_ins.request_count("/openai/v1/chat/completions")
    }

    async fn count(&self, sql: &str, ids: &[i64]) -> i64 {
        self.db.query_one(sql, &[&ids]).await.unwrap().get(0)
    }

    async fn embedded(&self, ids: &[i64]) -> i64 {
        self.db
            .query_one(
                "select count(*) from memories where id = any($1) and embedding is not null",
                &[&ids],
            )
            .await
            .unwrap()
            .get(0)
    }

    fn provider_calls(&self) -> usize {
        self.stand_ins.request_count(EMBEDDINGS)
    }
}

fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(since.unwrap().as_secs()).unwrap()
}

fn context() -> RequestContext {
    RequestContext {
        now: now(),
        request_id: "test".into(),
    }
}

/// The answer's status and body. For a delivery accepted for later (202), its background work is
/// run to its end, and its outcome (or its error, as an error body) stands for the body.
async fn deliver(config: &EdgeConfig, request: IncomingRequest) -> (u16, Value) {
    let served = shared::serve(&AiProcessing, request, config, &context()).await;
    let body = serde_json::from_slice(&served.response.body).unwrap_or(Value::Null);
    let status = served.response.status;
    let Some(background) = served.background else {
        return (status, body);
    };
    assert_eq!(status, 202, "{body}");
    assert!(
        matches!(body["background"].as_str(), Some("embeddings" | "chat")),
        "{body}"
    );
    let log = shared::finish(background, config, &served.log).await;
    let body = match log.outcome {
        Some(outcome) => outcome,
        None => json!({ "error": { "code": log.error_code, "message": log.error } }),
    };
    (status, body)
}

/// What the provider answers for `texts`, asked directly.
async fn provider_vectors(base_url: &str, texts: &[String]) -> Vec<Vec<f32>> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{base_url}{EMBEDDINGS}"))
        .bearer_auth(OPENAI_API_KEY)
        .json(&json!({ "model": "text-embedding-3-small", "input": texts }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn parse_vector(text: &str) -> Vec<f32> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn five_hundred_memories_in_one_statement_take_one_provider_call() {
    let stack = Stack::start().await;
    let (_, ids) = stack.memories(500).await;
    let request = stack
        .queued(
            "memory.generate.embedding",
            &json!({ "memory_ids": [ids[0]] }),
        )
        .await;
    let (status, body) = deliver(&stack.config(true), request.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["embedded"], 500);
    assert_eq!(body["remaining"], 0);
    assert_eq!(stack.provider_calls(), 1, "ceil(500 / 2048) calls");
    assert_eq!(stack.embedded(&ids).await, 500);

    // Every stored vector is exactly what the provider returned for that memory's content.
    let rows = stack
        .db
        .query(
            "select content, embedding::text, metadata from memories where id = any($1) order by id",
            &[&ids],
        )
        .await
        .unwrap();
    let texts: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    let expected = provider_vectors(&stack.stand_ins.base_url(), &texts).await;
    for (row, expected) in rows.iter().zip(&expected) {
        assert_eq!(&parse_vector(row.get(1)), expected);
        let metadata: Value = row.get(2);
        assert_eq!(metadata["embedding_model"], "text-embedding-3-small");
    }

    // The same delivery again: its receipt makes it a duplicate.
    let calls = stack.provider_calls();
    let (status, body) = deliver(&stack.config(true), request.clone()).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)), "{body}");
    // And with the receipt lost: nothing is pending, nothing is asked of the provider.
    stack.lose_receipt(&request).await;
    let (status, body) = deliver(&stack.config(true), request).await;
    assert_eq!((status, &body["embedded"]), (202, &json!(0)), "{body}");
    assert_eq!(stack.provider_calls(), calls);
}

#[tokio::test]
async fn the_delivery_is_answered_before_anything_is_embedded() {
    let stack = Stack::start().await;
    let (_, ids) = stack.memories(50).await;
    let request = stack
        .queued(
            "memory.generate.embedding",
            &json!({ "memory_ids": [ids[0]] }),
        )
        .await;
    let config = stack.config(true);
    let served = shared::serve(&AiProcessing, request, &config, &context()).await;
    assert_eq!(served.response.status, 202);
    assert_eq!((stack.provider_calls(), stack.embedded(&ids).await), (0, 0));
    let background = served
        .background
        .expect("the embedding is left for after the answer");
    let log = shared::finish(background, &config, &served.log).await;
    assert_eq!(log.outcome.unwrap()["embedded"], 50);
    assert_eq!(stack.embedded(&ids).await, 50);
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let stack = Stack::start().await;
    let (_, ids) = stack.memories(20).await;
    stack.stand_ins.set_embeddings_behaviour(OpenAiBehaviour {
        rate_limit_next: 2,
        retry_after_seconds: Some(1),
        ..OpenAiBehaviour::default()
    });
    let request = stack
        .queued(
            "memory.generate.embedding",
            &json!({ "memory_ids": [ids[0]] }),
        )
        .await;
    let started = std::time::Instant::now();
    let (status, body) = deliver(&stack.config(true), request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["embedded"], 20);
    assert_eq!(body["provider_calls"], 3);
    assert!(
        started.elapsed().as_millis() >= 2000,
        "Retry-After: 1 was honoured twice"
    );
    assert_eq!(stack.embedded(&ids).await, 20);
}

#[tokio::test]
async fn a_wrong_dimension_writes_nothing_and_leaves_the_work_pending() {
    let stack = Stack::start().await;
    let (_, ids) = stack.memories(10).await;
    stack.stand_ins.set_embeddings_behaviour(OpenAiBehaviour {
        dimensions: Some(1535),
        ..OpenAiBehaviour::default()
    });
    let request = stack
        .queued(
            "memory.generate.embedding",
            &json!({ "memory_ids": [ids[0]] }),
        )
        .await;
    let (status, body) = deliver(&stack.config(true), request.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (202, &json!("work_pending")),
        "accepted, then given up in the background: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("1535"), "{message}");
    assert!(message.contains("10 remain pending"), "{message}");
    assert_eq!(stack.embedded(&ids).await, 0);
    let leased: i64 = stack
        .db
        .query_one(
            "select count(*) from memories where id = any($1) and embedding_lease_id is not null",
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leased, 0, "released, so a retry can claim them at once");

    stack
        .stand_ins
        .set_embeddings_behaviour(OpenAiBehaviour::default());
    let (status, body) = deliver(&stack.config(true), request).await;
    assert_eq!((status, &body["embedded"]), (202, &json!(10)), "{body}");
}

#[tokio::test]
async fn without_a_key_nothing_is_touched() {
    let stack = Stack::start().await;
    let (_, ids) = stack.memories(3).await;
    let request = stack
        .queued(
            "memory.generate.embedding",
            &json!({ "memory_ids": [ids[0]] }),
        )
        .await;
    let (status, body) = deliver(&stack.config(false), request).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("not_configured"))
    );
    let untouched: i64 = stack
        .db
        .query_one(
            "select count(*) from memories where id = any($1)
               and embedding is null and embedding_lease_id is null and updated_at = created_at",
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(untouched, 3);
    assert_eq!(stack.provider_calls(), 0);
}

#[tokio::test]
async fn a_cheap_hostel_message_becomes_preferences_and_a_session_memory() {
    let stack = Stack::start().await;
    let (user, message_id, request) = stack
        .user_message("I am looking for a cheap hostel near the old town.")
        .await;
    let (status, body) = deliver(&stack.config(true), request.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (
            &body["messages"],
            &body["session_memories"],
            &body["extracted_by"]
        ),
        (
            &json!(1),
            &json!(1),
            &json!({ "chat_model": 0, "rules": 1 })
        ),
        "{body}"
    );
    assert!(body.get("chat_model_capped").is_none(), "{body}");

    let preferences = stack
        .db
        .query(
            "select metadata ->> 'category', metadata ->> 'preference'
             from memories where user_id = $1::text::uuid and memory_type = 'user_preference'
             order by 1, 2",
            &[&user],
        )
        .await
        .unwrap();
    let found: Vec<(String, String)> = preferences
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(
        found.contains(&("budget".into(), "budget travel".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("accommodation".into(), "hostel".into())),
        "{found:?}"
    );
    assert_eq!(body["preferences"], json!(found.len()));
    let session: (String, bool) = stack
        .db
        .query_one(
            "select content, embedding is not null from session_memories
             where source_message_id = $1",
            &[&message_id],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(
        session,
        (
            "I am looking for a cheap hostel near the old town.".to_owned(),
            true
        )
    );

    // Delivered again: a duplicate, nothing more.
    let (status, body) = deliver(&stack.config(true), request).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    let sessions = stack
        .count(
            "select count(*) from session_memories where source_message_id = any($1)",
            &[message_id],
        )
        .await;
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn five_hundred_messages_in_one_statement_are_one_delivery_and_one_embeddings_call() {
    let stack = Stack::start().await;
    let (ada, bob, cy) = (stack.user().await, stack.user().await, stack.user().await);
    let (request, ids) = stack
        .chat_statement(
            &[(&ada, 200), (&bob, 250), (&cy, 50)],
            "We want a cheap hostel by the beach",
        )
        .await;
    assert_eq!(ids.len(), 500);
    let deliveries = stack
        .count(
            "select count(*) from webhook_logs
             where event_type = 'chat.message.process' and payload -> 'message_ids' @> to_jsonb($1::bigint[])",
            &ids[..1],
        )
        .await;
    assert_eq!(deliveries, 1, "one delivery for the statement");

    let (status, body) = deliver(&stack.config(true), request.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (
            &body["messages"],
            &body["session_memories"],
            &body["provider_calls"]
        ),
        (&json!(500), &json!(500), &json!(1)),
        "{body}"
    );
    assert_eq!(
        stack.provider_calls(),
        1,
        "ceil(500 / 2048) embeddings calls"
    );
    let embedded = stack
        .count(
            "select count(*) from session_memories
             where source_message_id = any($1) and embedding is not null",
            &ids,
        )
        .await;
    // Stored 100 at a time: the 500 vectors together are over /rest/v1's 8 MiB body limit.
    assert_eq!(embedded, 500);
    // Each user's repeated preference is one memory, reinforced by the latest message.
    let preferences = stack
        .count(
            "select count(*) from memories m
             where memory_type = 'user_preference' and metadata ->> 'preference' = 'hostel'
               and (metadata ->> 'message_id')::bigint = any($1)",
            &ids,
        )
        .await;
    assert_eq!(preferences, 3, "one hostel preference per user");

    // The receipt lost (the function stopped after storing): the same delivery finds every
    // message processed and asks the provider nothing.
    stack.lose_receipt(&request).await;
    let (status, body) = deliver(&stack.config(true), request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (
            &body["session_memories"],
            &body["already_processed"],
            &body["preferences"]
        ),
        (&json!(0), &json!(500), &json!(0)),
        "{body}"
    );
    assert_eq!(stack.provider_calls(), 1);
}

#[tokio::test]
async fn a_chat_delivery_that_fails_after_its_answer_is_finished_by_the_sweep() {
    let stack = Stack::start().await;
    let ada = stack.user().await;
    let (request, ids) = stack
        .chat_statement(&[(&ada, 3)], "Quiet beaches, please")
        .await;
    stack.stand_ins.set_embeddings_behaviour(OpenAiBehaviour {
        out_of_quota: true,
        ..OpenAiBehaviour::default()
    });
    let (status, body) = deliver(&stack.config(true), request).await;
    stack
        .stand_ins
        .set_embeddings_behaviour(OpenAiBehaviour::default());
    assert_eq!(status, 202, "accepted before the provider is asked: {body}");
    assert_eq!(
        body["error"]["code"],
        json!("upstream_unavailable"),
        "the background work logs the provider's refusal: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("insufficient_quota")),
        "{body}"
    );
    let remembered = "select count(*) from session_memories
                      where source_message_id = any($1) and embedding is not null";
    assert_eq!(stack.count(remembered, &ids).await, 0, "nothing stored");

    // Five minutes on, the sweep (pg_cron's process-chat-messages) names them again.
    stack
        .db
        .execute(
            "update chat_messages set created_at = now() - interval '6 minutes' where id = any($1)",
            &[&ids],
        )
        .await
        .unwrap();
    let swept: i32 = stack
        .db
        .query_one("select enqueue_chat_messages()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(swept >= 3, "{swept}");
    let request = stack
        .queued(
            "chat.message.process",
            &json!({ "reason": "sweep", "message_ids": ids }),
        )
        .await;
    let (status, body) = deliver(&stack.config(true), request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(stack.count(remembered, &ids).await, 3, "{body}");
    let pending: Value = stack
        .db
        .query_one("select pending_chat_messages($1)::text::jsonb", &[&ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        (&pending["messages"], &pending["already_processed"]),
        (&json!([]), &json!(3)),
        "the next sweep leaves them alone"
    );
}

#[tokio::test]
async fn with_chat_model_preferences_come_from_a_json_schema_completion() {
    let stack = Stack::start().await;
    let (_, _, request) = stack.user_message("Somewhere warm in March, please.").await;
    let config = stack.config_with(true, &[("CHAT_MODEL", "gpt-4o-mini")]);
    let (status, body) = deliver(&config, request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["extracted_by"], json!({ "chat_model": 1, "rules": 0 }));
    assert_eq!(
        stack.chat_calls(),
        1,
        "the stand-in accepted the strict json_schema request"
    );
    // The stand-in answers the smallest instance of the schema: no preferences.
    assert_eq!(body["preferences"], json!(0));
    assert_eq!(body["session_memories"], json!(1));
}

#[tokio::test]
async fn a_rate_limited_chat_model_is_waited_out_like_the_embeddings() {
    let stack = Stack::start().await;
    let (_, message_id, request) = stack.user_message("A quiet ryokan in Kyoto").await;
    stack.stand_ins.set_chat_behaviour(OpenAiBehaviour {
        rate_limit_next: 1,
        retry_after_seconds: Some(1),
        server_error_next: 1,
        ..OpenAiBehaviour::default()
    });
    let config = stack.config_with(true, &[("CHAT_MODEL", "gpt-4o-mini")]);
    let (status, body) = deliver(&config, request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (&body["extracted_by"], &body["session_memories"]),
        (&json!({ "chat_model": 1, "rules": 0 }), &json!(1)),
        "{body}"
    );
    assert_eq!(stack.chat_calls(), 3, "a 429, a 500, then the answer");
    let by: String = stack
        .db
        .query_one(
            "select metadata ->> 'extracted_by' from session_memories where source_message_id = $1",
            &[&message_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by, "chat_model");

    // An exhausted quota is not waited for: the work fails at once and is left for the sweep.
    let (_, message_id, request) = stack.user_message("Somewhere warm").await;
    stack.stand_ins.set_chat_behaviour(OpenAiBehaviour {
        out_of_quota: true,
        ..OpenAiBehaviour::default()
    });
    let calls = stack.chat_calls();
    let (_, body) = deliver(&config, request).await;
    assert_eq!(stack.chat_calls(), calls + 1, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("quota exhausted")),
        "{body}"
    );
    assert_eq!(
        stack
            .count(
                "select count(*) from session_memories where source_message_id = any($1)",
                &[message_id],
            )
            .await,
        0
    );
}

#[tokio::test]
async fn chat_model_calls_are_capped_per_user_per_minute_and_the_rest_use_the_rules() {
    let stack = Stack::start().await;
    let (ada, bob) = (stack.user().await, stack.user().await);
    let config = stack.config_with(
        true,
        &[
            ("CHAT_MODEL", "gpt-4o-mini"),
            ("CHAT_MODEL_CALLS_PER_MINUTE", "2"),
        ],
    );
    let window = |user: String| {
        let db = &stack.db;
        async move {
            let row = db
                .query_one(
                    "select window_start::text, calls from chat_model_calls
                     where user_id = $1::text::uuid",
                    &[&user],
                )
                .await
                .unwrap();
            (row.get::<_, String>(0), row.get::<_, i32>(1))
        }
    };

    let (request, ids) = stack
        .chat_statement(&[(&ada, 5), (&bob, 1)], "A cheap hostel, please")
        .await;
    let (status, body) = deliver(&config, request).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(stack.chat_calls(), 3, "two of ada's five, bob's one");
    assert_eq!(body["extracted_by"], json!({ "chat_model": 3, "rules": 3 }));
    assert_eq!(
        body["chat_model_capped"],
        json!({ "messages": 3, "calls_per_user_per_minute": 2 }),
        "the answer, which webhook_logs keeps, says the cap was reached"
    );
    let by_rules = stack
        .count(
            "select count(*) from session_memories
             where source_message_id = any($1) and metadata ->> 'extracted_by' = 'rules'",
            &ids,
        )
        .await;
    assert_eq!(by_rules, 3);
    let (first_window, calls) = window(ada.clone()).await;
    assert_eq!(calls, 2);

    // Another statement of ada's: within the same minute the model is not asked again.
    let (request, _) = stack.chat_statement(&[(&ada, 2)], "Quiet beaches").await;
    let (status, body) = deliver(&config, request).await;
    assert_eq!(status, 202, "{body}");
    let (second_window, calls) = window(ada).await;
    let expected = if second_window == first_window { 0 } else { 2 };
    assert_eq!(
        body["extracted_by"]["chat_model"],
        json!(expected),
        "{first_window} → {second_window}: {body}"
    );
    assert_eq!(
        calls, 2,
        "the new minute counts from zero, up to the cap again"
    );
    assert_eq!(stack.chat_calls(), 3 + expected);
}

#[tokio::test]
async fn the_event_catalog_routes_here_exactly_the_events_handled() {
    let stack = TestStack::start().await;
    let handled = ai_processing::events()
        .map(|event| event.to_string())
        .collect();
    assert_eq!(stack.catalog_events("ai-processing").await, handled);
}
