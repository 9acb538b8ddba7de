//! The tests of the preferences: the rules, the cue data, the chat model's answer, the session
//! memory's text.

use serde_json::{json, Value};
use shared::EdgeError;

use super::cues::RULES;
use super::PreferenceCategory::{
    Accessibility, Accommodation, Activity, Budget, Cuisine, Destination, Pace, Transport,
};
use super::*;

fn extracted(message: &str) -> Vec<(PreferenceCategory, String)> {
    extract_by_rules(message)
        .into_iter()
        .map(|p| (p.category, p.preference))
        .collect()
}

fn has(message: &str, category: PreferenceCategory, preference: &str) -> bool {
    extracted(message)
        .iter()
        .any(|(c, p)| *c == category && p == preference)
}

fn confidence(message: &str, category: PreferenceCategory, preference: &str) -> f64 {
    extract_by_rules(message)
        .into_iter()
        .find(|p| p.category == category && p.preference == preference)
        .unwrap_or_else(|| panic!("{message:?} has no {preference}"))
        .confidence
}

fn owned(list: &[(PreferenceCategory, &str)]) -> Vec<(PreferenceCategory, String)> {
    list.iter().map(|(c, p)| (*c, (*p).to_owned())).collect()
}

#[test]
fn a_cheap_hostel_is_budget_travel_in_a_hostel() {
    assert_eq!(
        extracted("Looking for a cheap hostel in Lisbon"),
        owned(&[(Budget, "budget travel"), (Accommodation, "hostel")])
    );
}

#[test]
fn the_original_tripsage_cues_still_work() {
    assert_eq!(
        extracted("I travel on a budget"),
        owned(&[(Budget, "budget travel")])
    );
    assert_eq!(
        extracted("Book me a hotel"),
        owned(&[(Accommodation, "hotel")])
    );
    assert_eq!(extracted("I love to travel"), owned(&[]));
}

#[test]
fn cues_match_whole_words_only() {
    for message in [
        "The budgetary committee met",
        "I am travelling for business",
        "We walked the trail",
        "The carpet was red",
        "The hotelier was kind",
        "A cartoon about a busker",
    ] {
        let found = extracted(message);
        assert!(
            !found.iter().any(|(_, p)| {
                [
                    "budget travel",
                    "bus travel",
                    "train travel",
                    "car travel",
                    "hotel",
                ]
                .contains(&p.as_str())
            }),
            "{message:?} gave {found:?}"
        );
    }
    assert!(has("We walked the trail", Activity, "hiking"));
}

#[test]
fn plurals_match_with_s_or_es() {
    assert!(has("Any hotels near the station?", Accommodation, "hotel"));
    assert!(has(
        "Are there buses to the airport?",
        Transport,
        "bus travel"
    ));
    assert!(has("Sandy beaches please", Activity, "beaches"));
    assert!(has("Museums all day", Activity, "museums"));
    // "es" only after s, x, z, ch, sh: "cares" is not a car.
    assert!(!has("She cares a lot", Transport, "car travel"));
    assert!(!has("Hotelses", Accommodation, "hotel"));
}

#[test]
fn punctuation_splits_words_and_multi_word_cues_need_consecutive_words() {
    assert!(has("A five-star stay", Budget, "luxury travel"));
    assert!(has("a 5-star resort", Budget, "luxury travel"));
    assert!(has(
        "A B&B in the Cotswolds",
        Accommodation,
        "bed and breakfast"
    ));
    assert!(has(
        "A bed and breakfast",
        Accommodation,
        "bed and breakfast"
    ));
    assert!(has("We want to do a road trip", Transport, "car travel"));
    assert!(has("I want to see as much as possible", Pace, "fast pace"));
    assert!(has(
        "Vegan & gluten-free, please",
        Cuisine,
        "gluten-free food"
    ));
    assert!(has("Lots of street-food", Cuisine, "street food"));
    // Not consecutive, or split by a clause break: no match.
    assert!(!has(
        "A bed, and breakfast",
        Accommodation,
        "bed and breakfast"
    ));
    assert!(!has("On the road. Trip planning", Transport, "car travel"));
    assert!(!has("The street has good food", Cuisine, "street food"));
}

#[test]
fn cues_that_mean_something_else_after_a_word_are_skipped() {
    assert!(!has("We took the cable car", Transport, "car travel"));
    assert!(!has(
        "The ski lift was closed",
        Accessibility,
        "elevator access"
    ));
    assert!(!has("We have a big budget", Budget, "budget travel"));
    assert_eq!(
        extracted("A mid-range budget"),
        owned(&[(Budget, "mid-range travel")])
    );
}

#[test]
fn negated_cues_are_not_preferences() {
    assert_eq!(extracted("No hostels please"), owned(&[]));
    assert_eq!(extracted("I don't want luxury"), owned(&[]));
    assert_eq!(extracted("I don’t want luxury"), owned(&[]));
    assert_eq!(extracted("Not a hotel"), owned(&[]));
    assert_eq!(extracted("I don't really want a luxury place"), owned(&[]));
    assert_eq!(extracted("We never fly"), owned(&[]));
    assert_eq!(
        extracted("A hostel rather than a hotel"),
        owned(&[(Budget, "budget travel"), (Accommodation, "hostel")])
    );
}

#[test]
fn negation_stays_within_its_window_and_clause() {
    assert_eq!(
        extracted("No hostels, I prefer a hotel"),
        owned(&[(Accommodation, "hotel")])
    );
    assert_eq!(
        extracted("I don't want luxury but a hotel is fine"),
        owned(&[(Accommodation, "hotel")])
    );
    // The negation starts four words before the cue: inside the window; five: outside.
    assert!(!has("No ticket for the museums", Activity, "museums"));
    assert!(has("No ticket for the big museums", Activity, "museums"));
    assert!(has("I don't mind hostels", Accommodation, "hostel"));
    assert!(has("No problem with camping", Accommodation, "camping"));
}

#[test]
fn a_negated_mention_does_not_hide_a_positive_one() {
    assert!(has(
        "No hostels in Paris. In Berlin a hostel is fine",
        Accommodation,
        "hostel"
    ));
}

#[test]
fn stronger_wording_raises_confidence() {
    assert_eq!(
        confidence("A hotel", Accommodation, "hotel"),
        PLAIN_CONFIDENCE
    );
    assert_eq!(
        confidence("I'd like a hotel", Accommodation, "hotel"),
        MILD_CONFIDENCE
    );
    assert_eq!(
        confidence("I prefer a hotel", Accommodation, "hotel"),
        STRONG_CONFIDENCE
    );
    assert_eq!(
        confidence("I always stay in hostels", Accommodation, "hostel"),
        STRONG_CONFIDENCE
    );
    assert_eq!(
        confidence(
            "We need wheelchair access",
            Accessibility,
            "wheelchair access"
        ),
        STRONG_CONFIDENCE
    );
    assert_eq!(
        confidence("Vegetarian food is a must", Cuisine, "vegetarian food"),
        STRONG_CONFIDENCE
    );
    assert_eq!(
        confidence("I travel on a budget", Budget, "budget travel"),
        MILD_CONFIDENCE
    );
    // Intent does not reach into another clause.
    assert_eq!(
        confidence("I love Rome. A hotel", Accommodation, "hotel"),
        PLAIN_CONFIDENCE
    );
}

#[test]
fn each_preference_once_with_its_highest_confidence_in_a_fixed_order() {
    let preferences = extract_by_rules(
        "Museums! A hotel. I love hiking. Cheap flights. I prefer a hotel. Hotels, hotels.",
    );
    let keys: Vec<_> = preferences
        .iter()
        .map(|p| (p.category, p.preference.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (Budget, "budget travel"),
            (Accommodation, "hotel"),
            (Transport, "air travel"),
            (Activity, "hiking"),
            (Activity, "museums"),
        ]
    );
    assert_eq!(preferences[1].confidence, STRONG_CONFIDENCE);
    assert_eq!(
        extract_by_rules("Hotels, hotels. I prefer a hotel. Cheap flights. Museums, hiking"),
        extract_by_rules("Hiking and museums, cheap flights, I prefer a hotel")
    );
}

#[test]
fn non_ascii_text_does_not_break_matching() {
    assert_eq!(
        extracted("Ich möchte ein günstiges Hotel, kein Café, keine Straße"),
        owned(&[(Accommodation, "hotel")])
    );
    assert_eq!(
        extracted("¿Dónde hay un hostal? Prefiero el HOTEL y la playa"),
        owned(&[(Accommodation, "hotel")])
    );
    assert!(has("Café-hopping, then MUSEUMS 🎨", Activity, "museums"));
    assert!(has("İstanbul: cheap eats", Budget, "budget travel"));
    // A combining accent stays inside its word.
    assert!(!has("hote\u{301}l", Accommodation, "hotel"));
    assert_eq!(extracted(""), owned(&[]));
}

#[test]
fn every_category_has_rules() {
    for category in PreferenceCategory::ALL {
        assert!(
            RULES.iter().any(|rule| rule.category == category),
            "{category:?}"
        );
    }
    let samples = [
        ("vegetarian", Cuisine, "vegetarian food"),
        ("halal", Cuisine, "halal food"),
        ("fine dining", Cuisine, "fine dining"),
        ("local cuisine", Cuisine, "local cuisine"),
        ("by train", Transport, "train travel"),
        ("by rail", Transport, "train travel"),
        ("cycling", Transport, "cycling"),
        ("step-free", Accessibility, "step-free access"),
        ("an elevator", Accessibility, "elevator access"),
        ("limited mobility", Accessibility, "reduced mobility"),
        ("hard of hearing", Accessibility, "hearing accessibility"),
        ("visually impaired", Accessibility, "visual accessibility"),
        ("laid-back", Pace, "relaxed pace"),
        ("a packed schedule", Pace, "fast pace"),
        ("nightlife", Activity, "nightlife"),
        ("historical sites", Activity, "history"),
        ("a food tour", Activity, "food tours"),
        ("an airbnb", Accommodation, "apartment"),
        ("a guesthouse", Accommodation, "guesthouse"),
        ("off the beaten path", Destination, "off the beaten path"),
    ];
    for (message, category, preference) in samples {
        assert!(has(message, category, preference), "{message:?}");
    }
    for rule in RULES {
        for cue in rule.cues {
            assert!(
                has(cue, rule.category, rule.preference),
                "cue {cue:?} does not match itself"
            );
        }
    }
}

#[test]
fn categories_round_trip_through_their_names() {
    for category in PreferenceCategory::ALL {
        assert_eq!(PreferenceCategory::parse(category.as_str()), Some(category));
        assert_eq!(
            serde_json::to_value(category).unwrap(),
            json!(category.as_str())
        );
    }
    assert_eq!(PreferenceCategory::parse(" Budget "), Some(Budget));
    assert_eq!(PreferenceCategory::parse("weather"), None);
}

fn assert_strict_objects(schema: &Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object")) {
                assert_eq!(map["additionalProperties"], json!(false), "{schema}");
                let mut properties: Vec<&String> =
                    map["properties"].as_object().unwrap().keys().collect();
                let mut required: Vec<&str> = map["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect();
                properties.sort();
                required.sort_unstable();
                assert_eq!(properties, required, "{schema}");
            }
            map.values().for_each(assert_strict_objects);
        }
        Value::Array(items) => items.iter().for_each(assert_strict_objects),
        _ => {}
    }
}

#[test]
fn response_format_is_a_strict_json_schema() {
    let format = response_format();
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "travel_preferences");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(schema["type"], "object");
    assert_strict_objects(schema);
    let item = &schema["properties"]["preferences"]["items"];
    let categories: Vec<&str> = item["properties"]["category"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = PreferenceCategory::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(categories, expected);
    assert_eq!(item["properties"]["confidence"]["type"], "number");
}

#[test]
fn chat_messages_explain_the_task_then_carry_the_message() {
    let messages = chat_messages("I love hostels");
    assert_eq!(messages.as_array().unwrap().len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let prompt = messages[0]["content"].as_str().unwrap();
    for category in PreferenceCategory::ALL {
        assert!(prompt.contains(category.as_str()), "{category:?}");
    }
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": "I love hostels"})
    );
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": { "role": "assistant", "content": content, "refusal": null }
        }]
    })
}

fn upstream_message(error: EdgeError) -> String {
    match error {
        EdgeError::Upstream {
            service: "openai",
            status: Some(200),
            retry_after_seconds: None,
            message,
        } => message,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn a_good_answer_gives_normalised_sorted_preferences() {
    let content = json!({"preferences": [
        {"category": "cuisine", "preference": "  Vegetarian\n  Food ", "confidence": 0.9},
        {"category": "budget", "preference": "budget travel", "confidence": 1},
        {"category": "cuisine", "preference": "vegetarian food", "confidence": 0.5},
    ]})
    .to_string();
    assert_eq!(
        parse_chat_response(&completion(&content)).unwrap(),
        vec![
            Preference {
                category: Budget,
                preference: "budget travel".into(),
                confidence: 1.0
            },
            Preference {
                category: Cuisine,
                preference: "vegetarian food".into(),
                confidence: 0.9
            },
        ]
    );
    let none = completion(r#"{"preferences": []}"#);
    assert_eq!(parse_chat_response(&none).unwrap(), vec![]);
}

#[test]
fn a_refusal_is_no_preferences() {
    let refusal = json!({"choices": [{
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}
    }]});
    assert_eq!(parse_chat_response(&refusal).unwrap(), vec![]);
    let filtered = json!({"choices": [{
        "finish_reason": "content_filter",
        "message": {"role": "assistant", "content": null}
    }]});
    assert_eq!(parse_chat_response(&filtered).unwrap(), vec![]);
}

#[test]
fn an_answer_of_the_wrong_shape_is_an_upstream_error() {
    let cases = [
        (json!({}), "no choices"),
        (json!({"choices": []}), "no choices"),
        (
            json!({"choices": [{"finish_reason": "stop"}]}),
            "no message",
        ),
        (
            json!({"choices": [{"message": {"role": "assistant", "content": null}}]}),
            "no content",
        ),
        (completion(r#"{"preferences": [{"categ"#), "not JSON"),
        (completion("not json at all"), "not JSON"),
        (completion(r#"{"prefs": []}"#), "no `preferences` list"),
        (completion(r#"[1, 2]"#), "no `preferences` list"),
    ];
    for (body, expected) in cases {
        let error = parse_chat_response(&body).unwrap_err();
        assert_eq!(
            error.status(),
            502,
            "an unusable answer may be better next time"
        );
        let message = upstream_message(error);
        assert!(message.contains(expected), "{body}: {message}");
    }
}

#[test]
fn bad_entries_are_dropped_and_the_rest_kept() {
    let content = json!({"preferences": [
        {"category": "weather", "preference": "sunny", "confidence": 0.9},
        {"category": "budget", "preference": "luxury travel", "confidence": 1.5},
        {"category": "budget", "preference": "budget travel", "confidence": -0.1},
        {"category": "pace", "preference": "   ", "confidence": 0.8},
        {"category": "pace", "preference": "fast pace", "confidence": "high"},
        {"category": "pace", "preference": 7, "confidence": 0.8},
        "hotel",
        {"category": "activity", "preference": "museums", "confidence": 0.0},
        {"category": "transport", "preference": "train travel", "confidence": 0.7, "extra": 1},
    ]})
    .to_string();
    let kept: Vec<_> = parse_chat_response(&completion(&content))
        .unwrap()
        .into_iter()
        .map(|p| (p.category, p.preference, p.confidence))
        .collect();
    assert_eq!(
        kept,
        vec![
            (Transport, "train travel".to_owned(), 0.7),
            (Activity, "museums".to_owned(), 0.0),
        ]
    );
}

#[test]
fn long_answers_are_limited() {
    let long = "x".repeat(150) + "é";
    let entries: Vec<Value> = (0..30)
        .map(|i| {
            json!({"category": "activity", "preference": format!("activity {i:02} {long}"),
                   "confidence": f64::from(i) / 100.0})
        })
        .collect();
    let content = json!({ "preferences": entries }).to_string();
    let preferences = parse_chat_response(&completion(&content)).unwrap();
    assert_eq!(preferences.len(), MAX_MODEL_PREFERENCES);
    assert!(preferences
        .iter()
        .all(|p| p.preference.chars().count() == MAX_PREFERENCE_CHARS));
    // The most confident are kept, in (category, preference) order.
    assert!(preferences[0].preference.starts_with("activity 10 "));
    assert!(preferences[19].preference.starts_with("activity 29 "));
}

#[test]
fn normalised_preferences_are_trimmed_lowercase_single_spaced() {
    assert_eq!(
        normalise_preference("  Street\tFOOD  Tours "),
        Some("street food tours".to_owned())
    );
    assert_eq!(normalise_preference("ÉCOLE"), Some("école".to_owned()));
    assert_eq!(normalise_preference(" \n "), None);
}

#[test]
fn short_messages_are_kept_whole_in_session_memory() {
    assert_eq!(
        session_memory_text("I love hostels", SESSION_MEMORY_MAX_BYTES),
        ("I love hostels".to_owned(), false)
    );
    let exact = "a".repeat(SESSION_MEMORY_MAX_BYTES);
    assert_eq!(
        session_memory_text(&exact, SESSION_MEMORY_MAX_BYTES),
        (exact.clone(), false)
    );
}

#[test]
fn long_messages_are_shortened_at_a_char_boundary_with_the_marker() {
    let long = "é".repeat(SESSION_MEMORY_MAX_BYTES);
    let (text, truncated) = session_memory_text(&long, SESSION_MEMORY_MAX_BYTES);
    assert!(truncated);
    assert!(text.len() <= SESSION_MEMORY_MAX_BYTES);
    assert!(text.ends_with(TRUNCATION_MARKER));
    assert!(long.starts_with(text.trim_end_matches(TRUNCATION_MARKER)));
    // 8192 - 3 bytes of marker = 8189 bytes; two-byte chars fit 4094 times.
    assert_eq!(text.chars().count(), 4094 + 1);

    for max in 0..12 {
        let message = "a😀b€c";
        let (text, truncated) = session_memory_text(message, max);
        assert!(text.len() <= max, "{max}: {text:?}");
        assert_eq!(truncated, message.len() > max);
        let kept = text.trim_end_matches(TRUNCATION_MARKER);
        assert!(message.starts_with(kept), "{max}: {text:?}");
        if truncated && max >= TRUNCATION_MARKER.len() {
            assert!(text.ends_with(TRUNCATION_MARKER));
        }
    }
    assert_eq!(
        session_memory_text("hello world", 9),
        ("hello…".to_owned(), true)
    );
}
