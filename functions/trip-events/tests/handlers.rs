//! trip-events natively, end to end through its real I/O: requests exactly as the database's
//! triggers queued them (headers, signature and body from pg_net's queue), PostgREST served by the
//! local stack's `/rest/v1` over the TripSage test database, and Resend and a calendar receiver
//! served by the local stack's stand-ins.
//!
//! `./scripts/test` sets TRIPSAGE_TEST_DB_URL; by hand: `scripts/db start &&
//! TRIPSAGE_TEST_DB_URL=$(scripts/db url) cargo test -p trip-events --test handlers`.
#![cfg(not(target_arch = "wasm32"))]

use icalendar::{Calendar, CalendarComponent, Component};
use local_stack::keys;
use local_stack::testing::TestStack;
use serde_json::{json, Value};
use shared::{EdgeConfig, IncomingRequest, RequestContext};
use trip_events::TripEvents;

/// The shared test stack (`/rest/v1`, the stand-ins, a connection for fixtures) with what
/// trip-events' tests add to it.
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

    /// The configuration a deployed trip-events would have, pointed at this stack.
    fn config(&self, with: &[&str]) -> EdgeConfig {
        self.config_with(with, &[])
    }

    /// [`Stack::config`] with some variables set otherwise.
    fn config_with(&self, with: &[&str], overrides: &[(&str, &str)]) -> EdgeConfig {
        let mut env = self.0.function_env();
        env.insert("APP_URL".into(), "https://trips.example.com".into());
        for (name, value) in self.stand_ins.function_env() {
            let wanted = (with.contains(&"email")
                && matches!(
                    name.as_str(),
                    "RESEND_API_KEY" | "EMAIL_API_URL" | "EMAIL_FROM"
                ))
                || (with.contains(&"calendar") && name.starts_with("CALENDAR_SYNC_"));
            if wanted {
                env.insert(name, value);
            }
        }
        for (name, value) in overrides {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        EdgeConfig::from_env(|name| env.get(name).cloned())
    }

    async fn trip(&self, owner: &str, name: &str) -> i64 {
        self.db
            .query_one(
                "insert into trips (user_id, name, destination, start_date, end_date)
                 values ($1::text::uuid, $2, 'Lisbon, Portugal', '2027-06-01', '2027-06-07')
                 returning id",
                &[&owner, &name],
            )
            .await
            .expect("create a trip")
            .get(0)
    }

    async fn sql(&self, statement: &str) {
        self.db
            .batch_execute(statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }

    /// The newest request the database queued for `event` about `trip_id`, as pg_net would send
    /// it to trip-events.
    async fn queued(&self, event: &str, trip_id: i64) -> IncomingRequest {
        let queued = self
            .0
            .queued("trip_events", event, &json!({ "trip_id": trip_id }))
            .await;
        let mut request = IncomingRequest::new("POST", "/trip-events").with_body(queued.body);
        for (name, value) in &queued.headers {
            request = request.with_header(name, value);
        }
        request
    }

    async fn notifications(&self, user: &str) -> Vec<(String, String, Value)> {
        let rows = self
            .db
            .query(
                "select type, message, metadata from notifications
                 where user_id = $1::text::uuid order by id",
                &[&user],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    fn emails_to(&self, user_email_suffix: &str) -> Vec<Value> {
        self.stand_ins
            .emails()
            .into_iter()
            .filter(|sent| {
                sent["email"]["to"][0]
                    .as_str()
                    .is_some_and(|to| to.ends_with(user_email_suffix))
            })
            .collect()
    }
}

fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(since.unwrap().as_secs()).unwrap()
}

/// A provider that answers every request with `status` and the whole request echoed back (its
/// headers, the key among them, and its body): as JSON in every field a description might read,
/// or as plain text.
async fn echoing_provider(status: u16, as_json: bool) -> String {
    let echo = move |headers: axum::http::HeaderMap, body: String| async move {
        let mut echo: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap_or_default()))
            .collect();
        echo.push_str(&body);
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        if as_json {
            let body = json!({ "message": echo, "name": echo, "error": { "message": echo, "code": echo } });
            (
                status,
                [("content-type", "application/json")],
                body.to_string(),
            )
        } else {
            (status, [("content-type", "text/plain")], echo)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(echo)).await });
    url
}

/// A delivery of `body` signed with the stack's webhook secret, as a forger holding it would send.
fn signed(webhook_id: &str, body: &Value) -> IncomingRequest {
    let secret = shared::WebhookSecret::parse(keys::WEBHOOK_SECRET).unwrap();
    let body = body.to_string();
    let timestamp = now();
    IncomingRequest::new("POST", "/trip-events")
        .with_header("webhook-id", webhook_id)
        .with_header("webhook-timestamp", &timestamp.to_string())
        .with_header(
            "webhook-signature",
            &secret.sign(webhook_id, timestamp, body.as_bytes()),
        )
        .with_body(body)
}

/// Runs the function's whole pipeline on `request`: status and JSON body.
async fn deliver(config: &EdgeConfig, request: IncomingRequest) -> (u16, Value) {
    let context = RequestContext {
        now: now(),
        request_id: "test".into(),
    };
    let served = shared::serve(&TripEvents, request, config, &context).await;
    let body = serde_json::from_slice(&served.response.body).unwrap_or(Value::Null);
    (served.response.status, body)
}

#[tokio::test]
async fn an_invitation_notifies_and_emails_once_per_delivery() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", Some("Grace Hopper")).await;
    let friend = stack.user("friend-a@example.com", None).await;
    let trip = stack.trip(&owner, "Tiles & tascas").await;
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by, permission_level)
             values ({trip}, '{friend}', '{owner}', 'edit')"
        ))
        .await;
    let config = stack.config(&["email"]);
    let request = stack.queued("trip.collaborator.added", trip).await;

    let (status, body) = deliver(&config, request.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notified"], true);
    assert!(body["email"]["sent"].is_string(), "{body}");
    let notifications = stack.notifications(&friend).await;
    assert_eq!(notifications.len(), 1);
    let (kind, message, metadata) = &notifications[0];
    assert_eq!(kind, "trip_collaboration_invite");
    assert_eq!(
        message,
        "Grace Hopper invited you to collaborate on \"Tiles & tascas\" (Lisbon, Portugal) with edit access."
    );
    assert_eq!(
        metadata,
        &json!({"trip_id": trip, "trip_name": "Tiles & tascas", "destination": "Lisbon, Portugal",
                "permission_level": "edit", "added_by": owner})
    );
    let emails = stack.emails_to("friend-a@example.com");
    assert_eq!(emails.len(), 1);
    let webhook_id = body["webhook_id"].as_str().unwrap();
    assert_eq!(
        emails[0]["idempotency_key"],
        format!("trip-invite/{webhook_id}/{friend}")
    );
    let email = &emails[0]["email"];
    assert_eq!(
        email["subject"],
        "Grace Hopper invited you to \"Tiles & tascas\""
    );
    assert!(email["html"]
        .as_str()
        .unwrap()
        .contains(&format!("https://trips.example.com/trips/{trip}")));
    assert!(email["html"]
        .as_str()
        .unwrap()
        .contains("Tiles &amp; tascas"));

    // The same delivery again: answered as a duplicate, nothing new.
    let (status, body) = deliver(&config, request).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    assert_eq!(stack.notifications(&friend).await.len(), 1);
    assert_eq!(stack.emails_to("friend-a@example.com").len(), 1);
}

#[tokio::test]
async fn an_email_failure_is_retried_without_a_second_notification_or_email() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", None).await;
    let friend = stack.user("friend-b@example.com", None).await;
    let trip = stack.trip(&owner, "Retry trip").await;
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by)
             values ({trip}, '{friend}', '{owner}')"
        ))
        .await;
    let config = stack.config(&["email"]);
    let request = stack.queued("trip.collaborator.added", trip).await;
    stack.stand_ins.fail_next_emails(2);
    for attempt in 1..=2 {
        let (status, body) = deliver(&config, request.clone()).await;
        assert_eq!(status, 502, "attempt {attempt}: {body}");
        assert_eq!(body["error"]["code"], "upstream_error");
    }
    let (status, body) = deliver(&config, request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["notified"], false,
        "the notification came from the first attempt"
    );
    assert_eq!(stack.notifications(&friend).await.len(), 1);
    assert_eq!(stack.emails_to("friend-b@example.com").len(), 1);
}

#[tokio::test]
async fn level_changes_removals_and_bookings_notify_the_right_people() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", None).await;
    let friend = stack.user("friend-c@example.com", None).await;
    let trip = stack.trip(&owner, "Porto").await;
    let config = stack.config(&[]);
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by)
             values ({trip}, '{friend}', '{owner}');
             update trip_collaborators set permission_level = 'admin'
             where trip_id = {trip} and user_id = '{friend}'"
        ))
        .await;
    let (status, body) =
        deliver(&config, stack.queued("trip.collaborator.added", trip).await).await;
    assert_eq!(
        (status, &body["email"]),
        (200, &json!("disabled")),
        "{body}"
    );
    let (status, body) = deliver(
        &config,
        stack.queued("trip.collaborator.updated", trip).await,
    )
    .await;
    assert_eq!((status, &body["notified"]), (200, &json!(true)), "{body}");
    stack
        .sql(&format!(
            "delete from trip_collaborators where trip_id = {trip} and user_id = '{friend}';
             insert into flights (trip_id, airline, flight_number, origin, destination,
                                  departure_date, price, booking_status)
             values ({trip}, 'TP', 'TP1', 'LHR', 'OPO', '2027-06-01', 99, 'booked')"
        ))
        .await;
    let (status, _) = deliver(
        &config,
        stack.queued("trip.collaborator.removed", trip).await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = deliver(&config, stack.queued("booking.confirmed", trip).await).await;
    assert_eq!(status, 200, "{body}");

    let kinds = |rows: Vec<(String, String, Value)>| -> Vec<String> {
        rows.into_iter().map(|(kind, _, _)| kind).collect()
    };
    assert_eq!(
        kinds(stack.notifications(&friend).await),
        [
            "trip_collaboration_invite",
            "trip_collaboration_updated",
            "trip_collaboration_removed"
        ]
    );
    let owner_notes = stack.notifications(&owner).await;
    assert_eq!(kinds(owner_notes.clone()), ["booking_confirmed"]);
    assert_eq!(
        owner_notes[0].1,
        "Your flight booking for \"Porto\" (Lisbon, Portugal) is confirmed."
    );
}

#[tokio::test]
async fn same_level_updates_and_missing_trips_do_nothing() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", None).await;
    let friend = stack.user("friend-d@example.com", None).await;
    let trip = stack.trip(&owner, "Gone soon").await;
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by)
             values ({trip}, '{friend}', '{owner}')"
        ))
        .await;
    let request = stack.queued("trip.collaborator.added", trip).await;
    let config = stack.config(&[]);

    // A hand-made update whose level did not change (the trigger never sends one).
    let body = json!({
        "event": "trip.collaborator.updated", "trip_id": trip, "user_id": friend,
        "added_by": owner, "permission_level": "view", "old_permission_level": "view",
    })
    .to_string();
    let secret = shared::WebhookSecret::parse(keys::WEBHOOK_SECRET).unwrap();
    let timestamp = now();
    let same_level = IncomingRequest::new("POST", "/trip-events")
        .with_header("webhook-id", &format!("msg_same_{trip}"))
        .with_header("webhook-timestamp", &timestamp.to_string())
        .with_header(
            "webhook-signature",
            &secret.sign(&format!("msg_same_{trip}"), timestamp, body.as_bytes()),
        )
        .with_body(body);
    let (status, answer) = deliver(&config, same_level).await;
    assert_eq!(
        (status, &answer["skipped"]),
        (200, &json!("level_unchanged"))
    );

    stack
        .sql(&format!("delete from trips where id = {trip}"))
        .await;
    let (status, answer) = deliver(&config, request).await;
    assert_eq!(
        (status, &answer["skipped"]),
        (200, &json!("trip_not_found"))
    );
    assert!(stack.notifications(&friend).await.is_empty());
}

#[tokio::test]
async fn calendar_sync_posts_a_signed_icalendar_document() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", None).await;
    let trip = stack.trip(&owner, "Calendar, trip; with \\ marks").await;
    stack
        .sql(&format!(
            "insert into itinerary_items (trip_id, title, description, item_type, location,
                                          start_time, end_time)
             values ({trip}, 'Tram 28', 'Line 28,\nfrom Martim Moniz', 'activity', 'Lisboa',
                     '2027-06-02 10:00+01', '2027-06-02 11:30+01'),
                    ({trip}, 'Pastéis de Belém', null, 'meal', null, null, null);
             select set_config('request.jwt.claims', '{{\"sub\": \"{owner}\", \"role\": \"authenticated\"}}', false);
             select sync_to_calendar('{owner}', {trip});
             select set_config('request.jwt.claims', '', false);"
        ))
        .await;
    let request = stack.queued("calendar.sync.request", trip).await;

    let (status, body) = deliver(&stack.config(&[]), request.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("not_configured"))
    );

    let (status, body) = deliver(&stack.config(&["calendar"]), request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["calendar"]["events"], 2);
    let posts = stack.stand_ins.calendar_posts();
    assert_eq!(
        posts.len(),
        1,
        "the stand-in verified the signature and kept the post"
    );
    let calendar: Calendar = posts[0].body.parse().expect("a valid iCalendar document");
    let events: Vec<_> = calendar
        .components
        .iter()
        .filter_map(|component| match component {
            CalendarComponent::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].get_summary(), Some("Tram 28"));
    assert_eq!(
        events[0].get_description(),
        Some("Line 28,\nfrom Martim Moniz")
    );
    assert_eq!(events[1].get_summary(), Some("Pastéis de Belém"));
    assert!(posts[0].body.contains("DTSTART:20270602T090000Z\r\n"));
}

#[tokio::test]
async fn the_event_catalog_routes_here_exactly_the_events_handled() {
    let stack = Stack::start().await;
    let handled = trip_events::events::events()
        .map(|event| event.to_string())
        .collect();
    assert_eq!(stack.catalog_events("trip-events").await, handled);
}

#[tokio::test]
async fn providers_that_echo_the_key_and_the_request_are_never_quoted() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", Some("Ada Echo")).await;
    let friend = stack.user("friend-echo@example.com", None).await;
    let trip = stack.trip(&owner, "Echo chamber").await;
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by)
             values ({trip}, '{friend}', '{owner}');
             insert into itinerary_items (trip_id, title, item_type, start_time)
             values ({trip}, 'Secret garden tour', 'activity', '2027-06-02 10:00+01');
             select set_config('request.jwt.claims', '{{\"sub\": \"{owner}\", \"role\": \"authenticated\"}}', false);
             select sync_to_calendar('{owner}', {trip});
             select set_config('request.jwt.claims', '', false);"
        ))
        .await;
    let invitation = stack.queued("trip.collaborator.added", trip).await;
    let calendar = stack.queued("calendar.sync.request", trip).await;
    // Letters only, so not key-shaped: it is removed because it is configured.
    let key = "re_only_letters_make_this_provider_key";
    let context = RequestContext {
        now: now(),
        request_id: "echo".into(),
    };
    let cases = [
        (
            "email",
            403,
            true,
            424,
            "email answered 403: the request is forbidden with these credentials",
        ),
        (
            "email",
            422,
            true,
            424,
            "email answered 422: the request could not be processed",
        ),
        ("email", 500, false, 502, "email answered 500: server error"),
        (
            "calendar",
            500,
            true,
            502,
            "calendar answered 500: server error",
        ),
        (
            "calendar",
            400,
            false,
            424,
            "calendar answered 400: the request was rejected as malformed",
        ),
    ];
    for (service, upstream_status, as_json, status, message) in cases {
        let url = echoing_provider(upstream_status, as_json).await;
        let (config, request, echoed) = if service == "email" {
            let config = stack.config_with(
                &["email"],
                &[("EMAIL_API_URL", &url), ("RESEND_API_KEY", key)],
            );
            (
                config,
                invitation.clone(),
                ["invited you", "friend-echo@example.com", key],
            )
        } else {
            let config = stack.config_with(&["calendar"], &[("CALENDAR_SYNC_URL", &url)]);
            (
                config,
                calendar.clone(),
                ["VCALENDAR", "Secret garden tour", "Echo chamber"],
            )
        };
        let served = shared::serve(&TripEvents, request, &config, &context).await;
        let body = String::from_utf8(served.response.body.clone()).unwrap();
        let log = served.log.to_json();
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let case = format!("{service} {upstream_status}");
        assert_eq!(served.response.status, status, "{case}: {body}");
        assert_eq!(parsed["error"]["message"], message, "{case}");
        assert_eq!(served.log.error.as_deref(), Some(message), "{case}");
        for text in echoed
            .iter()
            .chain(&["webhook-signature", "authorization", "Bearer"])
        {
            assert!(
                !body.contains(text),
                "{case}: {text} in the response {body}"
            );
            assert!(!log.contains(text), "{case}: {text} in the log line {log}");
        }
    }
}

#[tokio::test]
async fn stale_and_forged_deliveries_act_on_what_the_database_says() {
    let stack = Stack::start().await;
    let owner = stack.user("owner@example.com", Some("Owner")).await;
    let member = stack.user("member-f@example.com", None).await;
    let outsider = stack.user("outsider-f@example.com", None).await;
    let trip = stack.trip(&owner, "Trust the rows").await;
    let config = stack.config(&["email", "calendar"]);
    let collaboration = |event: &str, user: &str, level: &str| {
        json!({ "event": event, "trip_id": trip, "user_id": user, "added_by": owner,
                "permission_level": level, "old_permission_level": "view" })
    };

    // Stale: the collaborator was removed before the invitation was delivered.
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by, permission_level)
             values ({trip}, '{member}', '{owner}', 'view')"
        ))
        .await;
    let stale = stack.queued("trip.collaborator.added", trip).await;
    stack
        .sql(&format!(
            "delete from trip_collaborators where trip_id = {trip} and user_id = '{member}'"
        ))
        .await;
    let (status, body) = deliver(&config, stale).await;
    assert_eq!(
        (status, &body["skipped"]),
        (200, &json!("not_a_collaborator")),
        "{body}"
    );

    // Forged: an invitation for someone who is not on the trip, a removal of someone who still
    // is, a calendar for someone who is no member.
    let forged = signed(
        &format!("msg_forged_add_{trip}"),
        &collaboration("trip.collaborator.added", &outsider, "admin"),
    );
    let (status, body) = deliver(&config, forged).await;
    assert_eq!(
        (status, &body["skipped"]),
        (200, &json!("not_a_collaborator")),
        "{body}"
    );
    stack
        .sql(&format!(
            "insert into trip_collaborators (trip_id, user_id, added_by, permission_level)
             values ({trip}, '{member}', '{owner}', 'view')"
        ))
        .await;
    let forged = signed(
        &format!("msg_forged_remove_{trip}"),
        &collaboration("trip.collaborator.removed", &member, "view"),
    );
    let (status, body) = deliver(&config, forged).await;
    assert_eq!(
        (status, &body["skipped"]),
        (200, &json!("still_a_collaborator")),
        "{body}"
    );
    let forged = signed(
        &format!("msg_forged_update_{trip}"),
        &collaboration("trip.collaborator.updated", &member, "admin"),
    );
    let (status, body) = deliver(&config, forged).await;
    assert_eq!(
        (status, &body["skipped"]),
        (200, &json!("level_changed_since")),
        "{body}"
    );
    let forged_calendar = json!({
        "event": "calendar.sync.request", "user_id": outsider, "trip_id": trip,
        "calendar_service": "ics", "trip_name": "Trust the rows", "destination": "Lisbon",
        "start_date": "2027-06-01", "end_date": "2027-06-07",
        "items": [{ "id": 1, "title": "Forged", "item_type": "activity",
                    "start_time": "2027-06-02T10:00:00+01:00",
                    "updated_at": "2027-05-01T00:00:00Z" }],
    });
    let (status, body) = deliver(
        &config,
        signed(&format!("msg_forged_cal_{trip}"), &forged_calendar),
    )
    .await;
    assert_eq!(
        (status, &body["skipped"]),
        (200, &json!("not_a_member")),
        "{body}"
    );
    assert!(stack
        .stand_ins
        .calendar_posts()
        .iter()
        .all(|post| !post.body.contains("Forged")));
    assert!(stack.notifications(&outsider).await.is_empty());
    assert!(stack.emails_to("outsider-f@example.com").is_empty());

    // An invitation whose payload claims more than the row gives names the row's level.
    let inflated = signed(
        &format!("msg_inflated_{trip}"),
        &collaboration("trip.collaborator.added", &member, "admin"),
    );
    let (status, body) = deliver(&config, inflated).await;
    assert_eq!(status, 200, "{body}");
    let notifications = stack.notifications(&member).await;
    assert_eq!(
        notifications.len(),
        1,
        "only the invitation: the removal and update were skipped"
    );
    assert_eq!(notifications[0].2["permission_level"], "view");
    assert!(
        notifications[0].1.ends_with("with view access."),
        "{}",
        notifications[0].1
    );
}
