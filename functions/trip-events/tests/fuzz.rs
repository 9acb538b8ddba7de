//! Property tests of trip-events' payload parsers: every event's payload as the triggers send it,
//! broken in generated ways (20,000 cases), and calendar requests with generated dates and times
//! (20,000 cases). Whatever arrives is answered 400, 422 or, for a valid payload without
//! configuration, 503 — never 500 — and the calendar builder never panics.
#![cfg(not(target_arch = "wasm32"))]

use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shared::fuzz::{self, NOW, SECRET};
use shared::{serve, EdgeConfig};
use trip_events::calendar::itinerary_calendar;
use trip_events::events::TripEvent;
use trip_events::TripEvents;

const ADA: &str = "0b9a7c1e-5d7b-4f4e-9a51-0d1c2b3a4f50";
const BOB: &str = "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c";

fn collaborator(event: &str) -> Value {
    json!({
        "event": event, "operation": "INSERT", "trip_id": 7, "user_id": ADA, "added_by": BOB,
        "permission_level": "edit", "old_permission_level": "view",
    })
}

fn calendar_request() -> Value {
    json!({
        "event": "calendar.sync.request", "user_id": ADA, "trip_id": 7, "trip_name": "Rome",
        "destination": "Rome, Italy", "start_date": "2027-05-01", "end_date": "2027-05-08",
        "items": [
            {"id": 1, "title": "Flight", "description": null, "item_type": "flight",
             "location": "FCO", "start_time": "2027-05-01T08:00:00+00:00",
             "end_time": "2027-05-01T10:30:00+00:00", "updated_at": "2027-04-01T10:00:00+00:00"},
            {"id": 2, "title": "Colosseum", "description": "Tickets, gate B", "item_type": "activity",
             "location": null, "start_time": null, "end_time": null,
             "updated_at": "2027-04-02T10:00:00Z"},
        ],
    })
}

/// Each event with a payload the database would send for it.
fn valid_payloads() -> Vec<(&'static str, Value)> {
    let booking = |event: &str, kind: &str| {
        json!({
            "event": event, "trip_id": 7, "booking_type": kind, "booking_id": 3,
            "new_status": "cancelled",
        })
    };
    vec![
        (
            "trip.collaborator.added",
            collaborator("trip.collaborator.added"),
        ),
        (
            "trip.collaborator.updated",
            collaborator("trip.collaborator.updated"),
        ),
        (
            "trip.collaborator.removed",
            collaborator("trip.collaborator.removed"),
        ),
        (
            "booking.confirmed",
            booking("booking.confirmed", "accommodations"),
        ),
        (
            "booking.flights.cancelled",
            booking("booking.flights.cancelled", "flights"),
        ),
        (
            "booking.accommodations.cancelled",
            booking("booking.accommodations.cancelled", "accommodations"),
        ),
        ("calendar.sync.request", calendar_request()),
    ]
}

fn broken_delivery() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(valid_payloads())
        .prop_flat_map(|(_, payload)| {
            fuzz::broken_payload(payload.as_object().unwrap().clone()).prop_map(Value::Object)
        })
        .prop_flat_map(fuzz::body_bytes)
}

/// A date, a date-time in any offset, or any other text.
fn when() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        3 => "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?",
        1 => fuzz::text(),
    ]
}

/// A calendar request that parses, with generated dates and times everywhere.
fn calendar_payload() -> impl Strategy<Value = Map<String, Value>> {
    let optional = || prop::option::weighted(0.8, when());
    let item = (1..=i64::MAX, optional(), optional(), when(), fuzz::text()).prop_map(
        |(id, start, end, updated, title)| {
            json!({"id": id, "title": title, "item_type": "activity", "start_time": start,
                   "end_time": end, "updated_at": updated})
        },
    );
    (when(), when(), prop::collection::vec(item, 0..4)).prop_map(|(start, end, items)| {
        let mut payload = calendar_request().as_object().unwrap().clone();
        payload.insert("start_date".into(), start.into());
        payload.insert("end_date".into(), end.into());
        payload.insert("items".into(), Value::Array(items));
        payload
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// Without Supabase configured, a payload gets 503 `not_configured` only if it parses;
    /// everything else is 400 naming a field or the JSON, or 422.
    #[test]
    fn broken_payloads_are_refused_before_anything_is_done(body in broken_delivery()) {
        let config = EdgeConfig::from_env(|name| (name == "WEBHOOK_SECRET").then(|| SECRET.to_owned()));
        let request = fuzz::signed_request("/trip-events", "msg_fuzz", &body);
        let served = block_on(serve(&TripEvents, request, &config, &fuzz::context()));
        let status = served.response.status;
        let answer = served.response.json_body().expect("a JSON answer");
        let code = answer["error"]["code"].as_str().unwrap_or_default();
        let parsed = serde_json::from_slice::<Map<String, Value>>(&body).ok().and_then(|payload| {
            let event = payload.get("event")?.as_str()?.to_owned();
            Some(TripEvent::parse(&event, &payload).is_ok())
        });
        match status {
            503 => prop_assert!(code == "not_configured" && parsed == Some(true), "{answer}"),
            400 => prop_assert!(
                code == "invalid_json" || answer["error"]["field"].is_string(),
                "{answer} for {}", fuzz::shown(&body)
            ),
            422 => prop_assert_eq!(code, "unsupported_event"),
            _ => prop_assert!(false, "{status} {answer} for {}", fuzz::shown(&body)),
        }
    }

    /// Generated dates and times give a calendar or an error naming the field; a calendar's
    /// lines are CRLF-terminated and at most 75 octets.
    #[test]
    fn calendar_dates_and_times_never_break_the_builder(payload in calendar_payload()) {
        let parsed = TripEvent::parse("calendar.sync.request", &payload);
        let Ok(TripEvent::CalendarSync(sync)) = parsed else {
            return Err(TestCaseError::fail(format!("{parsed:?}")));
        };
        match itinerary_calendar(&sync.trip, &sync.items, NOW) {
            Ok(document) => {
                prop_assert!(document.ends_with("\r\n"));
                for line in document.split_terminator("\r\n") {
                    prop_assert!(line.len() <= 75 && !line.contains('\n'), "{line:?}");
                }
            }
            Err(error) => prop_assert!(!error.field.is_empty() && !error.reason.is_empty()),
        }
    }
}
