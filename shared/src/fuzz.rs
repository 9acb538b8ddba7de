//! Generated inputs for the property tests of the signature and payload parsers (feature `fuzz`,
//! native only): arbitrary JSON, a valid payload broken in every way a sender could break it, and
//! requests signed as the database signs them, so the parsers behind the signature are reached.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::function::RequestContext;
use crate::http::IncomingRequest;
use crate::signature::{WebhookSecret, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

/// The secret of `seed.sql` and the local stack.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The clock of every generated request.
pub const NOW: i64 = 1_700_000_000;

/// Text a sender might put anywhere: short words, digits, UUID-shaped, control and non-ASCII
/// characters, and now and then something long.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z._-]{0,12}",
        2 => "[0-9-]{0,20}",
        1 => "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        2 => any::<String>(),
        1 => "\\PC{0,8}".prop_map(|s| s.repeat(500)),
    ]
}

/// Any JSON value, numbers at the edges of i64, u64 and f64 included.
pub fn json() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(0)),
        Just(Value::from(-1)),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number,
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// One way to break a field of a valid payload.
#[derive(Debug, Clone)]
enum Change {
    Remove,
    Replace(Value),
    /// Applied to the field's value when it is an array or object: break an element too.
    Nested(usize, Value),
}

/// `valid`, with some of its fields removed, retyped or broken one level down, and some extra
/// fields added.
pub fn broken_payload(valid: Map<String, Value>) -> impl Strategy<Value = Map<String, Value>> {
    let keys: Vec<String> = valid.keys().cloned().collect();
    let change = prop_oneof![
        1 => Just(Change::Remove),
        3 => json().prop_map(Change::Replace),
        1 => (any::<usize>(), json()).prop_map(|(at, value)| Change::Nested(at, value)),
    ];
    let changes = prop::collection::vec((0..keys.len().max(1), change), 0..4);
    let extra = prop::collection::btree_map(text(), json(), 0..3);
    (changes, extra).prop_map(move |(changes, extra)| {
        let mut payload = valid.clone();
        for (index, change) in changes {
            let Some(key) = keys.get(index) else { continue };
            match change {
                Change::Remove => {
                    payload.remove(key);
                }
                Change::Replace(value) => {
                    payload.insert(key.clone(), value);
                }
                Change::Nested(at, value) => {
                    if let Some(field) = payload.get_mut(key) {
                        break_inside(field, at, value);
                    }
                }
            }
        }
        for (key, value) in extra {
            payload.entry(key).or_insert(value);
        }
        payload
    })
}

fn break_inside(field: &mut Value, at: usize, value: Value) {
    match field {
        Value::Array(items) if !items.is_empty() => {
            let index = at % items.len();
            match &mut items[index] {
                Value::Object(item) if !item.is_empty() => {
                    let key = item.keys().nth(at % item.len()).cloned();
                    if let Some(key) = key {
                        item.insert(key, value);
                    }
                }
                other => *other = value,
            }
        }
        Value::Object(object) if !object.is_empty() => {
            let key = object.keys().nth(at % object.len()).cloned();
            if let Some(key) = key {
                object.insert(key, value);
            }
        }
        other => *other = value,
    }
}

/// The bytes a sender might post for `payload`: the JSON itself, cut short, or replaced by
/// arbitrary bytes.
pub fn body_bytes(payload: Value) -> impl Strategy<Value = Vec<u8>> {
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let length = json.len();
    prop_oneof![
        6 => Just(json.clone()),
        2 => (0..=length).prop_map(move |cut| json[..cut].to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A POST of `body` signed with [`SECRET`] at [`NOW`], as the database's sender signs it.
pub fn signed_request(path: &str, webhook_id: &str, body: &[u8]) -> IncomingRequest {
    let secret = WebhookSecret::parse(SECRET).expect("the test secret parses");
    IncomingRequest::new("POST", path)
        .with_header("content-type", "application/json")
        .with_header(HEADER_ID, webhook_id)
        .with_header(HEADER_TIMESTAMP, &NOW.to_string())
        .with_header(HEADER_SIGNATURE, &secret.sign(webhook_id, NOW, body))
        .with_body(body.to_vec())
}

/// The context of every generated request.
pub fn context() -> RequestContext {
    RequestContext {
        now: NOW,
        request_id: "fuzz".to_owned(),
    }
}

/// The start of a body, for failure messages.
pub fn shown(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}
