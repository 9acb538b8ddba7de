//! A chat delivery's work over in-memory ports: the messages in a vector, the chat model and the
//! embeddings API scripted, the clock moved by hand.

use std::cell::RefCell;
use std::collections::VecDeque;

use futures::executor::block_on;
use shared::config::Secret;

use super::*;
use crate::preferences::PreferenceCategory;
use crate::test_doubles::{Answer, TestApi, TestClock};

fn message(id: i64, user: &str) -> PendingMessage {
    PendingMessage {
        message_id: id,
        session_id: "s".into(),
        user_id: user.into(),
        content: "a cheap hostel".into(),
    }
}

#[test]
fn the_first_granted_messages_of_each_user_go_to_the_chat_model() {
    let messages = [
        message(1, "ada"),
        message(2, "bob"),
        message(3, "ada"),
        message(4, "ada"),
        message(5, "cy"),
    ];
    assert_eq!(
        Value::Object(wanted_calls(&messages)),
        json!({ "ada": 3, "bob": 1, "cy": 1 })
    );
    let granted = json!({ "ada": 2, "bob": 0 }).as_object().unwrap().clone();
    assert_eq!(
        assign_readers(&messages, &granted),
        [
            Reader::ChatModel,
            Reader::Rules,
            Reader::ChatModel,
            Reader::Rules,
            Reader::Rules
        ]
    );
}

#[test]
fn message_ids_come_as_a_list_or_as_one_message() {
    let payload = |value: Value| value.as_object().unwrap().clone();
    assert_eq!(
        message_ids(&payload(json!({ "message_ids": [3, 1] }))).unwrap(),
        [3, 1]
    );
    let one = json!({
        "message_id": 7,
        "session_id": "0b7c1a4e-2f3d-4c5b-8a9e-1f2d3c4b5a69",
        "user_id": "0b7c1a4e-2f3d-4c5b-8a9e-1f2d3c4b5a69",
        "role": "user",
    });
    assert_eq!(message_ids(&payload(one)).unwrap(), [7]);
    for (bad, field) in [
        (json!({ "message_ids": [0] }), "message_ids"),
        (json!({ "message_ids": "1,2" }), "message_ids"),
        (json!({ "message_ids": [1.5] }), "message_ids"),
        (json!({}), "message_id"),
    ] {
        let error = message_ids(&payload(bad.clone())).unwrap_err();
        assert_eq!(error.field(), Some(field), "{bad}");
    }
}

/// The messages in the database: pending until a session memory is stored for them; each user
/// has `per_minute` chat-model calls in all (the test's one minute).
#[derive(Default)]
struct MemoryChat {
    messages: Vec<PendingMessage>,
    already_processed: u64,
    fail_store: bool,
    reservations: RefCell<Vec<Value>>,
    granted: RefCell<Map<String, Value>>,
    /// Each store call's rows.
    stored: RefCell<Vec<Vec<Value>>>,
}

impl MemoryChat {
    fn new(messages: Vec<PendingMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    fn rows(&self) -> Vec<Value> {
        self.stored.borrow().iter().flatten().cloned().collect()
    }
}

impl ChatStore for MemoryChat {
    async fn pending(&self, ids: &[i64]) -> Result<Pending, EdgeError> {
        let stored: Vec<i64> = self
            .rows()
            .iter()
            .filter_map(|row| row["source_message_id"].as_i64())
            .collect();
        Ok(Pending {
            messages: self
                .messages
                .iter()
                .filter(|m| ids.contains(&m.message_id) && !stored.contains(&m.message_id))
                .cloned()
                .collect(),
            already_processed: self.already_processed,
        })
    }

    async fn reserve_chat_model_calls(
        &self,
        wanted: &Map<String, Value>,
        per_minute: u32,
    ) -> Result<Map<String, Value>, EdgeError> {
        self.reservations
            .borrow_mut()
            .push(Value::Object(wanted.clone()));
        let mut granted = self.granted.borrow_mut();
        let mut now = Map::new();
        for (user, calls) in wanted {
            let used = calls_of(&granted, user);
            let more = calls.as_u64().unwrap().min(u64::from(per_minute) - used);
            granted.insert(user.clone(), json!(used + more));
            now.insert(user.clone(), json!(more));
        }
        Ok(now)
    }

    async fn store(&self, rows: &[Value]) -> Result<Stored, EdgeError> {
        if self.fail_store {
            return Err(EdgeError::upstream(
                "postgrest",
                Some(503),
                None,
                "unavailable",
            ));
        }
        self.stored.borrow_mut().push(rows.to_vec());
        let preferences = rows
            .iter()
            .map(|row| row["metadata"]["preferences"].as_array().unwrap().len() as u64)
            .sum();
        Ok(Stored {
            session_memories: rows.len() as u64,
            preferences,
        })
    }
}

/// The chat model: fails with the errors queued, else finds one `budget` preference per message.
#[derive(Default)]
struct TestModel {
    failures: RefCell<VecDeque<EdgeError>>,
    asked: RefCell<Vec<String>>,
    deadlines: RefCell<Vec<f64>>,
}

impl ChatModel for TestModel {
    async fn preferences(
        &self,
        message: &str,
        deadline: f64,
    ) -> Result<Vec<Preference>, EdgeError> {
        self.asked.borrow_mut().push(message.to_owned());
        self.deadlines.borrow_mut().push(deadline);
        if let Some(error) = self.failures.borrow_mut().pop_front() {
            return Err(error);
        }
        Ok(vec![Preference {
            category: PreferenceCategory::Budget,
            preference: "luxury".into(),
            confidence: 0.9,
        }])
    }
}

fn openai(calls_per_minute: u32) -> OpenAiConfig {
    OpenAiConfig {
        api_key: Secret::new("sk-test"),
        base_url: "http://127.0.0.1:1".into(),
        embedding_model: "text-embedding-3-small".into(),
        chat_model: Some("gpt-4o-mini".into()),
        embedding_max_inputs: 2048,
        chat_model_calls_per_minute: calls_per_minute,
    }
}

fn said(id: i64, user: &str, content: &str) -> PendingMessage {
    PendingMessage {
        content: content.into(),
        ..message(id, user)
    }
}

/// Runs a delivery's work for `ids`; `model` is `None` as without `CHAT_MODEL`.
fn run(
    store: &MemoryChat,
    model: Option<&TestModel>,
    api: &TestApi<'_>,
    clock: &TestClock,
    openai: &OpenAiConfig,
    ids: &[i64],
) -> Result<Remembered, EdgeError> {
    let ports = ChatPorts {
        store,
        model,
        embeddings: api,
        clock,
    };
    block_on(remember(&ports, openai, ids))
}

#[test]
fn without_a_chat_model_the_rules_read_every_message_and_blank_ones_get_no_vector() {
    let clock = TestClock::default();
    let store = MemoryChat {
        already_processed: 1,
        ..MemoryChat::new(vec![
            said(1, "ada", "a cheap hostel please"),
            said(2, "ada", "   "),
            said(3, "bob", "somewhere warm"),
        ])
    };
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let remembered = run(&store, None, &api, &clock, &openai(10), &[1, 2, 3, 4]).unwrap();
    assert_eq!(
        remembered,
        Remembered {
            messages: 4,
            session_memories: 3,
            already_processed: 1,
            preferences: 2,
            extracted_by: ExtractedBy {
                chat_model: 0,
                rules: 3
            },
            provider_calls: 1,
            chat_model_capped: None,
        }
    );
    assert_eq!(*api.inputs.borrow(), [2], "the blank message is not sent");
    assert!(store.reservations.borrow().is_empty());
    let rows = store.rows();
    let vector = rows[0]["embedding"].as_str().unwrap();
    assert_eq!(vector.matches("0.5").count(), DIMENSIONS);
    assert_eq!(rows[0]["metadata"]["extracted_by"], "rules");
    assert_eq!(
        rows[0]["metadata"]["preferences"],
        json!([
            {"category": "budget", "preference": "budget travel", "confidence": 0.6},
            {"category": "accommodation", "preference": "hostel", "confidence": 0.6},
        ])
    );
    assert_eq!(
        (
            &rows[1]["embedding"],
            &rows[1]["metadata"]["embedding_model"]
        ),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        rows[2]["metadata"]["embedding_model"],
        "text-embedding-3-small"
    );
}

#[test]
fn the_chat_model_reads_as_many_of_each_users_messages_as_the_minute_allows() {
    let clock = TestClock::default();
    clock.spend(1_000.0);
    let messages = vec![
        said(1, "ada", "first"),
        said(2, "bob", "second"),
        said(3, "ada", "third"),
        said(4, "ada", "fourth"),
    ];
    let store = MemoryChat::new(messages);
    let (model, api) = (
        TestModel::default(),
        TestApi::new(&clock, DIMENSIONS, vec![]),
    );
    let remembered = run(
        &store,
        Some(&model),
        &api,
        &clock,
        &openai(1),
        &[1, 2, 3, 4],
    )
    .unwrap();
    assert_eq!(*store.reservations.borrow(), [json!({"ada": 3, "bob": 1})]);
    assert_eq!(*model.asked.borrow(), ["first", "second"]);
    // The chat model and the embeddings share one budget from the start of the work.
    assert_eq!(*model.deadlines.borrow(), [121_000.0, 121_000.0]);
    assert_eq!(
        (remembered.extracted_by, remembered.chat_model_capped),
        (
            ExtractedBy {
                chat_model: 2,
                rules: 2
            },
            Some(Capped {
                messages: 2,
                calls_per_user_per_minute: 1
            })
        )
    );
    let readers: Vec<Value> = store
        .rows()
        .iter()
        .map(|row| row["metadata"]["extracted_by"].clone())
        .collect();
    assert_eq!(readers, ["chat_model", "chat_model", "rules", "rules"]);
}

#[test]
fn with_no_calls_a_minute_the_chat_model_is_not_asked_nor_reserved() {
    let clock = TestClock::default();
    let store = MemoryChat::new(vec![said(1, "ada", "first")]);
    let (model, api) = (
        TestModel::default(),
        TestApi::new(&clock, DIMENSIONS, vec![]),
    );
    let remembered = run(&store, Some(&model), &api, &clock, &openai(0), &[1]).unwrap();
    assert!(model.asked.borrow().is_empty());
    assert!(store.reservations.borrow().is_empty());
    assert_eq!(
        remembered.chat_model_capped,
        Some(Capped {
            messages: 1,
            calls_per_user_per_minute: 0
        })
    );
}

#[test]
fn session_memories_are_stored_a_hundred_per_call() {
    let clock = TestClock::default();
    let messages: Vec<PendingMessage> = (1..=250).map(|id| said(id, "ada", "a trip")).collect();
    let ids: Vec<i64> = (1..=250).collect();
    let store = MemoryChat::new(messages);
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let remembered = run(&store, None, &api, &clock, &openai(0), &ids).unwrap();
    let calls: Vec<usize> = store.stored.borrow().iter().map(Vec::len).collect();
    assert_eq!(calls, [100, 100, 50]);
    assert_eq!(
        (remembered.session_memories, remembered.provider_calls),
        (250, 1)
    );
}

#[test]
fn a_provider_failure_stores_nothing_and_the_next_delivery_does_it_all() {
    let clock = TestClock::default();
    let store = MemoryChat::new(vec![said(1, "ada", "first"), said(2, "bob", "second")]);
    let model = TestModel::default();
    let unavailable = || EdgeError::upstream("openai", Some(503), None, "unavailable");
    model.failures.borrow_mut().push_back(unavailable());
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let error = run(&store, Some(&model), &api, &clock, &openai(5), &[1, 2]).unwrap_err();
    assert_eq!(error.to_string(), unavailable().to_string());
    assert!(store.rows().is_empty());
    assert!(
        api.inputs.borrow().is_empty(),
        "nothing embedded after the failure"
    );

    let failing = TestApi::new(&clock, DIMENSIONS, vec![Answer::Fails(unavailable())]);
    run(&store, Some(&model), &failing, &clock, &openai(5), &[1, 2]).unwrap_err();
    assert!(store.rows().is_empty());

    let remembered = run(&store, Some(&model), &api, &clock, &openai(5), &[1, 2]).unwrap();
    assert_eq!(remembered.session_memories, 2);
    let again = run(&store, Some(&model), &api, &clock, &openai(5), &[1, 2]).unwrap();
    assert_eq!(again.session_memories, 0, "nothing is pending any more");
}

#[test]
fn a_failed_store_is_an_error_not_a_count() {
    let clock = TestClock::default();
    let store = MemoryChat {
        fail_store: true,
        ..MemoryChat::new(vec![said(1, "ada", "first")])
    };
    let api = TestApi::new(&clock, DIMENSIONS, vec![]);
    let error = run(&store, None, &api, &clock, &openai(0), &[1]).unwrap_err();
    assert_eq!(error.status(), 503);
    assert_eq!(*api.inputs.borrow(), [1], "embedded, then the store failed");
    assert!(store.rows().is_empty());
}
