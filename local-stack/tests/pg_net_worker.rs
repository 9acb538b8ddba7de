//! The pg_net worker against the test database (TRIPSAGE_TEST_DB_URL, set by ./scripts/test):
//! committed requests are sent and their outcomes recorded in net._http_response as pg_net
//! records them; rolled-back requests are never sent; the timeout is honoured; a backlog queued
//! while no worker was connected goes out in full when one connects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use local_stack::pg_net_worker;
use support::database_url;
use tokio_postgres::NoTls;

mod support;

/// Requests in flight at the receiver's /hold now, and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// A receiver: /ok echoes the body and a header, /busy answers 503, /slow takes 3 s, /hold takes
/// 300 ms and counts how many are held at once.
async fn receiver(in_flight: Arc<InFlight>) -> String {
    let app = Router::new()
        .route(
            "/hold",
            post(move || async move {
                let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
                in_flight.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                in_flight.now.fetch_sub(1, Ordering::SeqCst);
                "held"
            }),
        )
        .route(
            "/ok",
            post(|headers: HeaderMap, body: String| async move {
                let marker = headers
                    .get("x-marker")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                (
                    [("content-type", "application/json")],
                    format!("{{\"echo\":{body},\"marker\":\"{marker}\"}}"),
                )
            }),
        )
        .route(
            "/busy",
            post(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "7")],
                    "busy",
                )
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// Waits until the worker has recorded an outcome for each of `ids` in net._http_response.
async fn wait_for_responses(db: &tokio_postgres::Client, ids: &[i64]) {
    let started = Instant::now();
    loop {
        let done: i64 = db
            .query_one(
                "select count(*) from net._http_response where id = any($1)",
                &[&ids],
            )
            .await
            .unwrap()
            .get(0);
        if done == ids.len() as i64 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the worker recorded only {done} of {} requests",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn committed_requests_are_sent_and_recorded_as_pg_net_records_them() {
    let in_flight = Arc::new(InFlight::default());
    let base = receiver(in_flight.clone()).await;
    let url = database_url();
    let (db, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    let worker_url = url.clone();
    let worker = tokio::spawn(async move { pg_net_worker::run(&worker_url, 4).await });

    let queue = |path: &str, timeout: i32| {
        format!(
            "select net.http_post('{base}{path}', '{{\"n\": 1}}'::jsonb,
               headers := '{{\"Content-Type\": \"application/json\", \"X-Marker\": \"m-{path}\"}}'::jsonb,
               timeout_milliseconds := {timeout})"
        )
    };
    let id = |row: tokio_postgres::Row| row.get::<_, i64>(0);
    let ok = id(db.query_one(&queue("/ok", 5000), &[]).await.unwrap());
    let busy = id(db.query_one(&queue("/busy", 5000), &[]).await.unwrap());
    let slow = id(db.query_one(&queue("/slow", 500), &[]).await.unwrap());
    let refused = id(db
        .query_one(
            "select net.http_post('http://127.0.0.1:9/x', '{}'::jsonb)",
            &[],
        )
        .await
        .unwrap());
    db.batch_execute("begin").await.unwrap();
    let rolled_back = id(db.query_one(&queue("/ok", 5000), &[]).await.unwrap());
    db.batch_execute("rollback").await.unwrap();

    let ids = vec![ok, busy, slow, refused];
    wait_for_responses(&db, &ids).await;

    let row = |id: i64| {
        let db = &db;
        async move {
            db.query_one(
                "select status_code, content_type, headers ->> 'retry-after', content, timed_out, error_msg
                 from net._http_response where id = $1",
                &[&id],
            )
            .await
            .unwrap()
        }
    };
    let answered = row(ok).await;
    assert_eq!(answered.get::<_, Option<i32>>(0), Some(200));
    assert_eq!(
        answered.get::<_, Option<String>>(1).as_deref(),
        Some("application/json")
    );
    assert_eq!(
        answered.get::<_, Option<String>>(3).as_deref(),
        Some("{\"echo\":{\"n\": 1},\"marker\":\"m-/ok\"}"),
        "the exact queued body and headers reach the receiver"
    );
    assert!(!answered.get::<_, bool>(4));

    let busy = row(busy).await;
    assert_eq!(busy.get::<_, Option<i32>>(0), Some(503));
    assert_eq!(
        busy.get::<_, Option<String>>(2).as_deref(),
        Some("7"),
        "response headers are kept"
    );

    let slow = row(slow).await;
    assert_eq!(slow.get::<_, Option<i32>>(0), None);
    assert!(slow.get::<_, bool>(4), "timed_out after 500 ms");
    assert_eq!(
        slow.get::<_, Option<String>>(5).as_deref(),
        Some("Timeout of 500 ms reached")
    );

    let refused = row(refused).await;
    assert!(!refused.get::<_, bool>(4));
    assert!(refused
        .get::<_, Option<String>>(5)
        .is_some_and(|m| m.starts_with("Couldn't connect")));

    let leftover: i64 = db
        .query_one(
            "select count(*) from net.http_request_queue where id = any($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftover, 0, "sent requests leave the queue");
    let ghost: i64 = db
        .query_one(
            "select count(*) from net._http_response where id = $1",
            &[&rolled_back],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ghost, 0, "a rolled-back request is never sent");
    // Parallelism: twelve requests that each take 300 ms, through a worker allowed four at once.
    db.batch_execute("begin").await.unwrap();
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(id(db.query_one(&queue("/hold", 5000), &[]).await.unwrap()));
    }
    db.batch_execute("commit").await.unwrap();
    wait_for_responses(&db, &held).await;
    let answered: i64 = db
        .query_one(
            "select count(*) from net._http_response where id = any($1) and status_code = 200",
            &[&held],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(answered, 12, "every held request is answered 200");
    assert_eq!(
        in_flight.most.load(Ordering::SeqCst),
        4,
        "the worker sends in parallel, up to its bound"
    );

    assert!(!worker.is_finished(), "the worker keeps running");
    worker.abort();
    let _ = worker.await;

    // A backlog queued while no worker is connected (the database restarted, the stack was down)
    // is sent in full once one connects, slot after slot, not one batch per one-second sweep
    // (which would take 30 s here, longer than wait_for_responses allows).
    let mut backlog = Vec::new();
    for _ in 0..60 {
        backlog.push(id(db.query_one(&queue("/ok", 5000), &[]).await.unwrap()));
    }
    let worker = tokio::spawn(async move { pg_net_worker::run(&url, 2).await });
    wait_for_responses(&db, &backlog).await;
    let answered: i64 = db
        .query_one(
            "select count(*) from net._http_response where id = any($1) and status_code = 200",
            &[&backlog],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(answered, 60, "every request of the backlog is answered 200");
    worker.abort();
}
