//! The delivery worker of the pg_net stand-in (`local-stack/postgres/pg_net`), delivering as
//! pg_net 0.19.5's background worker does. Each round is one transaction: answers older than
//! `pg_net.ttl` are deleted, up to `pg_net.batch_size` requests are taken off
//! `net.http_request_queue` (oldest first) and sent at once, and their answers are written to
//! `net._http_response` when the slowest has finished, then committed together. So an answer is
//! visible only when its whole batch is done, `created` is the batch's start, and requests
//! committed meanwhile wait for the next batch. After a round the worker rests up to a second (less
//! if woken) and goes again while rounds find work.
//!
//! These behaviours, the libcurl error texts and the recorded columns were fixed by running
//! pg_net 0.19.5, built from source against PostgreSQL 15 with libcurl 7.88, beside this worker
//! on the same requests: `timed_out` is false for an answer and NULL for a failure, an empty body
//! is NULL, header names are kept as the server sent them (a repeated header keeps its last
//! value), and after a redirect the headers are the first response's while the status, content
//! type and body are the final one's.
//!
//! The queue's insert trigger notifies `pg_net_request_queued`; PostgreSQL delivers that only on
//! commit, so the worker wakes when a request becomes visible and never sees a rolled-back one.
//! If the worker dies mid-batch, its transaction rolls back: the batch is back on the queue and is
//! sent again, as with pg_net.

mod transfer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

use transfer::Transfers;

/// The channel the queue's insert trigger notifies.
const CHANNEL: &str = "pg_net_request_queued";
/// How long the worker rests after a round that found work, unless woken first.
const REST_AFTER_ROUND: Duration = Duration::from_secs(1);
/// What every request carries as its User-Agent.
pub const USER_AGENT: &str = "pg_net/0.19.5";
/// `pg_net.batch_size` and `pg_net.ttl` when they are not set.
const DEFAULT_BATCH_SIZE: i32 = 200;
const DEFAULT_TTL: &str = "6 hours";

/// One request as pg_net queued it, its headers as `name: value` lines.
#[derive(Debug)]
pub struct QueuedRequest {
    pub id: i64,
    pub method: String,
    pub url: String,
    pub headers: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub timeout_milliseconds: i32,
}

/// What pg_net records for a request in `net._http_response`.
#[derive(Debug, PartialEq)]
pub struct RecordedResponse {
    pub status_code: Option<i32>,
    pub content_type: Option<String>,
    pub headers: Option<Value>,
    pub content: Option<String>,
    pub timed_out: Option<bool>,
    pub error_msg: Option<String>,
}

impl RecordedResponse {
    fn failure(message: String) -> Self {
        Self {
            status_code: None,
            content_type: None,
            headers: None,
            content: None,
            timed_out: None,
            error_msg: Some(message),
        }
    }
}

/// Runs the worker until the database connection ends. `pg_net.batch_size` and `pg_net.ttl` are
/// read at the start of every round, so a configuration reload applies to the next batch.
pub async fn run(database_url: &str) -> Result<(), String> {
    let url = format!(
        "{database_url}{}application_name=pg_net%20worker",
        if database_url.contains('?') { "&" } else { "?" }
    );
    let (mut db, mut connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(|e| format!("pg_net worker cannot connect: {}", describe(&e)))?;
    // A wake is remembered until the worker looks at the queue (`should_wake`), and also ends a
    // rest early (`latch`), as pg_net's shared flag and latch do.
    let should_wake = Arc::new(AtomicBool::new(true));
    let latch = Arc::new(Notify::new());
    let (on_wake, on_latch) = (should_wake.clone(), latch.clone());
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let mut connection_task = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    on_wake.store(true, Ordering::SeqCst);
                    on_latch.notify_one();
                }
                Ok(_) => {}
                Err(error) => return Err(describe(&error)),
            }
        }
        Ok(())
    });
    db.batch_execute(&format!("listen {CHANNEL}"))
        .await
        .map_err(|e| format!("pg_net worker cannot listen: {}", describe(&e)))?;

    let transfers = Transfers::start()?;
    loop {
        if !should_wake.swap(false, Ordering::SeqCst) {
            // Asleep until a commit wakes it, or until the database goes away.
            tokio::select! {
                () = latch.notified() => continue,
                ended = &mut connection_task => return Err(match ended {
                    Ok(Ok(())) => "the database closed the pg_net worker's connection".into(),
                    Ok(Err(message)) => format!("pg_net worker lost the database: {message}"),
                    Err(panic) => format!("pg_net worker connection task failed: {panic}"),
                }),
            }
        }
        loop {
            let worked = round(&mut db, &transfers).await?;
            let _ = tokio::time::timeout(REST_AFTER_ROUND, latch.notified()).await;
            if !worked {
                break;
            }
        }
    }
}

/// One round in one transaction: expired answers deleted, one batch sent and recorded. Whether it
/// found anything to do.
async fn round(db: &mut tokio_postgres::Client, transfers: &Transfers) -> Result<bool, String> {
    let failed = |what: &'static str| {
        move |e: tokio_postgres::Error| format!("pg_net worker cannot {what}: {}", describe(&e))
    };
    let tx = db.transaction().await.map_err(failed("begin"))?;
    let settings = tx
        .query_one(
            "select coalesce(nullif(current_setting('pg_net.batch_size', true), ''), $1)::int,
                    coalesce(nullif(current_setting('pg_net.ttl', true), ''), $2)",
            &[&DEFAULT_BATCH_SIZE.to_string(), &DEFAULT_TTL],
        )
        .await
        .map_err(failed("read pg_net.batch_size and pg_net.ttl"))?;
    let batch_size = i64::from(settings.get::<_, i32>(0));
    let ttl: String = settings.get(1);
    let expired = tx
        .execute(
            "delete from net._http_response
             where ctid in (select ctid from net._http_response
                            where created < now() - $1::text::interval
                            order by created limit $2)",
            &[&ttl, &batch_size],
        )
        .await
        .map_err(failed("delete expired answers"))?;
    let rows = tx
        .query(
            "delete from net.http_request_queue
             where id in (select id from net.http_request_queue order by id limit $1)
             returning id, method::text, url, timeout_milliseconds, body,
                       array(select key || ': ' || value from jsonb_each_text(headers)
                             where value is not null)",
            &[&batch_size],
        )
        .await
        .map_err(failed("read the queue"))?;
    let mut requests: Vec<QueuedRequest> = rows
        .iter()
        .map(|row| QueuedRequest {
            id: row.get(0),
            method: row.get(1),
            url: row.get(2),
            timeout_milliseconds: row.get(3),
            body: row.get(4),
            headers: row.get(5),
        })
        .collect();
    requests.sort_by_key(|request| request.id);
    let worked = expired > 0 || !requests.is_empty();
    if !requests.is_empty() {
        let ids: Vec<i64> = requests.iter().map(|request| request.id).collect();
        let outcomes = transfers.send(requests).await?;
        record(&tx, &ids, &outcomes)
            .await
            .map_err(failed("record answers"))?;
    }
    tx.commit().await.map_err(failed("commit a batch"))?;
    Ok(worked)
}

/// Writes a batch's outcomes in one statement of the batch's transaction.
async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    ids: &[i64],
    outcomes: &[RecordedResponse],
) -> Result<(), tokio_postgres::Error> {
    let status_codes: Vec<Option<i32>> = outcomes.iter().map(|o| o.status_code).collect();
    let text =
        |pick: fn(&RecordedResponse) -> Option<&str>| outcomes.iter().map(pick).collect::<Vec<_>>();
    let content_types = text(|o| o.content_type.as_deref());
    let contents = text(|o| o.content.as_deref());
    let errors = text(|o| o.error_msg.as_deref());
    let headers: Vec<Option<&Value>> = outcomes.iter().map(|o| o.headers.as_ref()).collect();
    let timed_out: Vec<Option<bool>> = outcomes.iter().map(|o| o.timed_out).collect();
    tx.execute(
        "insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
         select * from unnest($1::bigint[], $2::int[], $3::text[], $4::jsonb[], $5::text[], $6::bool[], $7::text[])",
        &[&ids, &status_codes, &content_types, &headers, &contents, &timed_out, &errors],
    )
    .await
    .map(|_| ())
}

/// The error with its causes: tokio-postgres' own message leaves out the server's ("db error",
/// "error connecting to server").
fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
