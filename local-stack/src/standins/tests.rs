//! The stand-ins' inner workings; their HTTP behaviour is tested in `tests/standins.rs`.

use super::*;

#[test]
fn standard_webhooks_test_vector_verifies() {
    // The Standard Webhooks reference libraries' own test vector.
    let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let body = br#"{"test": 2432232314}"#;
    let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let verify = |signatures: &str, now: i64| {
        verify_standard_webhook(&key, id, "1614265330", signatures, body, now)
    };
    assert_eq!(verify(signature, 1_614_265_330), Ok(1_614_265_330));
    assert_eq!(
        verify(&format!("v1,bm90IGl0 {signature}"), 1_614_265_330),
        Ok(1_614_265_330),
        "any entry may match"
    );
    assert_eq!(
        verify("v1,bm90IGl0", 1_614_265_330),
        Err(CalendarRefusal::InvalidSignature)
    );
    assert_eq!(
        verify(&signature.replace("v1,", "v2,"), 1_614_265_330),
        Err(CalendarRefusal::InvalidSignature)
    );
    assert_eq!(
        verify(signature, 1_614_265_330 + 301),
        Err(CalendarRefusal::TimestampOutOfTolerance)
    );
}

#[test]
fn idempotency_keys_expire_after_24_hours() {
    let mut outbox = Outbox::default();
    let start = Instant::now();
    let email = json!({ "subject": "a" });
    let other = json!({ "subject": "b" });
    let id = |id: &str| {
        let id = id.to_owned();
        move || id
    };
    let sent = outbox.send(Some("k"), email.clone(), id("first"), start);
    assert_eq!(sent.unwrap(), "first");
    let later = start + Duration::from_secs(23 * 3600);
    let replayed = outbox.send(Some("k"), email.clone(), id("unused"), later);
    assert_eq!(replayed.unwrap(), "first");
    let conflict = outbox.send(Some("k"), other.clone(), id("unused"), later);
    assert_eq!(conflict.unwrap_err().status, StatusCode::CONFLICT);
    let next_day = start + IDEMPOTENCY_WINDOW;
    let fresh = outbox.send(Some("k"), other, id("second"), next_day);
    assert_eq!(fresh.unwrap(), "second");
    assert_eq!(outbox.accepted.len(), 2);
}

#[test]
fn minimal_instances_satisfy_their_schemas() {
    let schema = json!({
        "type": "object",
        "properties": {
            "preferences": { "type": "array", "items": { "$ref": "#/$defs/preference" } },
            "pair": { "type": "array", "minItems": 2, "items": { "type": "integer" } },
            "kind": { "enum": ["travel", "food"] },
            "version": { "const": 2 },
            "confidence": { "type": "number", "minimum": 0.5, "maximum": 1 },
            "count": { "type": "integer", "exclusiveMinimum": 3 },
            "below": { "type": "integer", "maximum": -2 },
            "note": { "type": ["string", "null"] },
            "code": { "type": "string", "minLength": 3 },
            "when": { "type": "string", "format": "date" },
            "either": { "anyOf": [{ "type": "boolean" }, { "type": "string" }] },
            "both": { "allOf": [
                { "type": "object", "properties": { "a": {"type": "string"} }, "required": ["a"] },
                { "type": "object", "properties": { "b": {"type": "integer"} }, "required": ["b"] }
            ] },
            "optional": { "type": "string" }
        },
        "required": ["preferences", "pair", "kind", "version", "confidence", "count",
                     "below", "note", "code", "when", "either", "both"],
        "$defs": { "preference": { "type": "object", "properties": {}, "required": [] } }
    });
    assert_eq!(
        minimal_instance(&schema, &schema, 0),
        json!({
            "preferences": [], "pair": [0, 0], "kind": "travel", "version": 2,
            "confidence": 0.5, "count": 4, "below": -2, "note": "", "code": "aaa",
            "when": "1970-01-01", "either": false, "both": { "a": "", "b": 0 }
        })
    );
}

#[test]
fn recursive_schemas_end() {
    let schema = json!({
        "type": "object",
        "properties": { "next": { "$ref": "#" } },
        "required": ["next"]
    });
    let instance = minimal_instance(&schema, &schema, 0);
    let mut depth = 0;
    let mut node = &instance;
    while let Some(next) = node.get("next") {
        depth += 1;
        node = next;
    }
    assert!(depth <= MAX_SCHEMA_DEPTH, "{depth}");
}

#[test]
fn shortened_embeddings_are_the_renormalised_prefix() {
    let full = embedding_vector("text-embedding-3-small", "Lisbon", 1536);
    let short = embedding_vector("text-embedding-3-small", "Lisbon", 256);
    let prefix_norm = full[..256].iter().map(|v| v * v).sum::<f32>().sqrt();
    for (s, f) in short.iter().zip(&full[..256]) {
        assert!((s - f / prefix_norm).abs() < 1e-6);
    }
}

#[test]
fn tokens_are_estimated_as_a_quarter_of_the_characters_rounded_up() {
    assert_eq!(estimate_tokens("abcd"), 1);
    assert_eq!(estimate_tokens("abcde"), 2);
    assert_eq!(estimate_tokens("ééééé"), 2, "characters, not bytes");
}

#[test]
fn addresses_in_both_resend_forms_are_accepted() {
    assert!(is_email_address("trips@localhost"));
    assert!(is_email_address("TripSage (local) <trips@localhost>"));
    assert!(!is_email_address("TripSage"));
    assert!(!is_email_address("a b@c"));
    assert!(!is_email_address("Name <>"));
}
