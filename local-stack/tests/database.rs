//! Cross-checks between the database and the Rust side, against a database built from
//! `supabase/migrations` + `supabase/seed.sql`: a request that a trigger queued in pg_net
//! verifies with the `shared` verifier, on the exact bytes pg_net will send, and so does its
//! retry (same webhook-id, fresh timestamp).
//!
//! `./scripts/test` starts a throwaway database and sets TRIPSAGE_TEST_DB_URL; by hand:
//! `scripts/db start && TRIPSAGE_TEST_DB_URL=$(scripts/db url) cargo test -p local-stack --test database`.

use local_stack::keys;
use serde_json::Value;
use shared::http::Headers;
use shared::signature::{SignatureScheme, WebhookVerifier};
use support::database_url;
use tokio_postgres::{Client, GenericClient, NoTls};

mod support;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==";

async fn connect() -> Client {
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to TRIPSAGE_TEST_DB_URL: {error}"));
    tokio::spawn(connection);
    client
}

/// One request as it sits in pg_net's queue, with the attempt that queued it.
struct QueuedRequest {
    method: String,
    url: String,
    headers: Headers,
    body: Vec<u8>,
    payload_text: String,
    webhook_id: String,
    attempt: i32,
    request_id: i64,
    log_id: i64,
}

async fn queued_requests(db: &impl GenericClient, event: &str, trip_id: i64) -> Vec<QueuedRequest> {
    let rows = db
        .query(
            "select q.method::text, q.url, q.headers, q.body, l.payload::text, l.webhook_id,
                    l.attempt_count, q.id, l.id
             from public.webhook_logs l
             join net.http_request_queue q on q.id = l.request_id
             where l.event_type = $1 and (l.payload ->> 'trip_id')::bigint = $2
             order by l.id",
            &[&event, &trip_id],
        )
        .await
        .expect("read the queued requests");
    rows.iter()
        .map(|row| {
            let headers: Value = row.get(2);
            let headers = headers.as_object().expect("headers are a JSON object");
            QueuedRequest {
                method: row.get(0),
                url: row.get(1),
                headers: Headers::from_pairs(
                    headers.iter().map(|(name, value)| {
                        (name.as_str(), value.as_str().expect("string header"))
                    }),
                ),
                body: row.get(3),
                payload_text: row.get(4),
                webhook_id: row.get(5),
                attempt: row.get(6),
                request_id: row.get(7),
                log_id: row.get(8),
            }
        })
        .collect()
}

fn verifier(secrets: &str) -> WebhookVerifier {
    WebhookVerifier::new(WebhookVerifier::parse_secrets(secrets).expect("valid secrets"))
}

/// Checks one queued request the way trip-events will: signature over the raw body bytes, id and
/// timestamp, and the body's `event` naming the same event as the header.
fn assert_signed(request: &QueuedRequest, event: &str, attempt: i32) -> i64 {
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "http://127.0.0.1:54321/functions/v1/trip-events"
    );
    assert_eq!(request.attempt, attempt);
    assert_eq!(
        request.headers.get("X-Webhook-Attempt"),
        Some(attempt.to_string().as_str())
    );
    assert_eq!(request.headers.get("X-Webhook-Event"), Some(event));
    assert_eq!(
        request.headers.get("Content-Type"),
        Some("application/json")
    );
    assert_eq!(
        request.body,
        request.payload_text.as_bytes(),
        "pg_net sends the signed text"
    );

    // Both secrets of a rotation sign, so a receiver holding either one accepts.
    for secrets in [SECRET, OLD_SECRET] {
        let delivery = verifier(secrets)
            .verify(&request.headers, &request.body, keys::unix_now())
            .unwrap_or_else(|error| panic!("signature under {secrets:.12}…: {error}"));
        assert_eq!(delivery.scheme, SignatureScheme::StandardWebhooks);
        assert_eq!(
            delivery.webhook_id.as_deref(),
            Some(request.webhook_id.as_str())
        );
        assert_eq!(
            delivery.timestamp.map(|t| t.to_string()).as_deref(),
            request.headers.get("webhook-timestamp")
        );
    }
    assert!(
        verifier("whsec_dW5yZWxhdGVkLXNlY3JldC1mb3ItdGVzdHM=")
            .verify(&request.headers, &request.body, keys::unix_now())
            .is_err(),
        "an unrelated secret must not verify"
    );

    // The legacy header signs the body alone, under the first secret.
    let mut legacy = Headers::new();
    for name in [
        "X-Webhook-Signature",
        "X-Webhook-Timestamp",
        "X-Webhook-Event",
    ] {
        legacy.set(name, request.headers.get(name).expect("legacy header"));
    }
    let delivery = verifier(SECRET)
        .with_legacy(true)
        .verify(&legacy, &request.body, keys::unix_now())
        .expect("legacy signature");
    assert_eq!(delivery.scheme, SignatureScheme::Legacy);

    let body: Value = serde_json::from_slice(&request.body).expect("the body is JSON");
    assert_eq!(body["event"], event);
    request
        .headers
        .get("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn trigger_queues_a_request_the_shared_verifier_accepts_and_its_retry_too() {
    let mut client = connect().await;
    let db = client.transaction().await.expect("begin");
    let owner = "6f1b0c5e-0000-4000-8000-000000000001";
    let friend = "6f1b0c5e-0000-4000-8000-000000000002";
    db.execute(
        "insert into auth.users (id, email) values ($1::text::uuid, 'owner@example.com'),
                                                   ($2::text::uuid, 'friend@example.com')",
        &[&owner, &friend],
    )
    .await
    .expect("users");
    db.execute(
        "update public.webhook_configs set secret = $1 || ' ' || $2 where name = 'trip_events'",
        &[&SECRET, &OLD_SECRET],
    )
    .await
    .expect("rotate the trip_events secret");
    let trip_id: i64 = db
        .query_one(
            "insert into public.trips (user_id, name, start_date, end_date, destination)
             values ($1::text::uuid, 'Lisboa \"em maio\" ☀', '2027-05-01', '2027-05-08', 'Lisbon')
             returning id",
            &[&owner],
        )
        .await
        .expect("trip")
        .get(0);
    db.execute(
        "insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
         values ($1, $2::text::uuid, $3::text::uuid, 'edit')",
        &[&trip_id, &friend, &owner],
    )
    .await
    .expect("collaborator");

    let first = queued_requests(&db, "trip.collaborator.added", trip_id).await;
    assert_eq!(first.len(), 1, "one request queued for the insert");
    let first = &first[0];
    let first_timestamp = assert_signed(first, "trip.collaborator.added", 1);
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["trip_id"], trip_id);
    assert_eq!(body["user_id"], friend);
    assert_eq!(body["added_by"], owner);
    assert_eq!(body["permission_level"], "edit");
    assert_eq!(body["operation"], "INSERT");

    // pg_net answers 503 with Retry-After; the collector schedules a retry, and once it is due
    // sends the same delivery again.
    db.execute(
        "insert into net._http_response (id, status_code, content_type, headers, content, timed_out)
         values ($1, 503, 'application/json', '{\"Retry-After\": \"2\"}', '{\"error\":\"busy\"}', false)",
        &[&first.request_id],
    )
    .await
    .expect("pg_net's answer");
    db.query_one("select public.process_webhook_responses()", &[])
        .await
        .expect("collect");
    let scheduled = db
        .query_one(
            "select status, response_status, next_attempt_at - completed_at >= interval '2 seconds'
             from public.webhook_logs where id = $1",
            &[&first.log_id],
        )
        .await
        .unwrap();
    assert_eq!(scheduled.get::<_, String>(0), "retry_scheduled");
    assert_eq!(scheduled.get::<_, Option<i32>>(1), Some(503));
    assert!(scheduled.get::<_, bool>(2), "Retry-After: 2 is honoured");

    db.execute(
        "update public.webhook_logs set next_attempt_at = clock_timestamp() where id = $1",
        &[&first.log_id],
    )
    .await
    .unwrap();
    db.query_one("select public.process_webhook_responses()", &[])
        .await
        .expect("resend");

    let attempts = queued_requests(&db, "trip.collaborator.added", trip_id).await;
    assert_eq!(attempts.len(), 2, "the retry is queued as a second request");
    let retry = &attempts[1];
    let retry_timestamp = assert_signed(retry, "trip.collaborator.added", 2);
    assert_eq!(
        retry.webhook_id, first.webhook_id,
        "a retry keeps its webhook-id"
    );
    assert_eq!(retry.body, first.body, "a retry sends the same bytes");
    assert!(retry_timestamp >= first_timestamp);
    assert_ne!(retry.request_id, first.request_id);

    db.rollback().await.unwrap();
}

/// The functions choose a status; the database's `webhook_response_is_retryable` decides from it
/// alone whether the delivery is tried again. Every kind of error, through the real SQL: what a
/// retry may cure is retried, what it cannot is dead-lettered at once.
#[tokio::test]
async fn every_error_status_gets_the_retry_decision_it_means() {
    use shared::config::{Capability, ConfigProblem};
    use shared::signature::SignatureError;
    use shared::EdgeError;

    let upstream = |status| EdgeError::upstream("postgrest", status, None, "x");
    let cases: Vec<(EdgeError, bool)> = vec![
        (EdgeError::MethodNotAllowed { allow: "POST" }, false),
        (EdgeError::PayloadTooLarge, false),
        (
            EdgeError::NotConfigured {
                capability: Capability::Email,
                problem: ConfigProblem::Missing(vec!["RESEND_API_KEY"]),
            },
            true,
        ),
        (
            EdgeError::Signature(SignatureError::NoMatchingSignature),
            false,
        ),
        (EdgeError::InvalidJson("eof".into()), false),
        (EdgeError::MissingField("event".into()), false),
        (EdgeError::invalid_field("trip_id", "not a number"), false),
        (EdgeError::UnsupportedEvent("x.y".into()), false),
        // The upstream refused the request itself: no retry can cure it.
        (upstream(Some(400)), false),
        (upstream(Some(401)), false),
        (upstream(Some(403)), false),
        (upstream(Some(404)), false),
        (upstream(Some(409)), false),
        (upstream(Some(422)), false),
        // Transient: down, rate-limited, slow, unreachable, or an answer we could not use.
        (upstream(Some(408)), true),
        (upstream(Some(429)), true),
        (upstream(Some(500)), true),
        (upstream(Some(503)), true),
        (upstream(None), true),
        (upstream(Some(200)), true),
        (
            EdgeError::Pending {
                message: "0 done".into(),
                retry_after_seconds: Some(2),
            },
            true,
        ),
        (EdgeError::Internal("bug".into()), true),
    ];
    let client = connect().await;
    for (error, retried) in cases {
        let status = i32::from(error.status());
        let row = client
            .query_one(
                "select public.webhook_response_is_retryable($1, false, null)",
                &[&status],
            )
            .await
            .expect("webhook_response_is_retryable");
        let decided: bool = row.get(0);
        assert_eq!(decided, retried, "{error:?} answers {status}");
    }
}
