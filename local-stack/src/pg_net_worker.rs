//! The delivery worker of the pg_net stand-in (`local-stack/postgres/pg_net`): it does what real
//! pg_net's background worker does. Requests committed to `net.http_request_queue` are taken off
//! the queue, sent over HTTP in parallel (up to a bound), and each answer, timeout or connection
//! error is written to `net._http_response` with pg_net's columns and messages.
//!
//! The queue's insert trigger notifies `pg_net_request_queued`; PostgreSQL delivers that only on
//! commit, so the worker wakes when a request becomes visible and never sees a rolled-back one.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel the queue's insert trigger notifies.
const CHANNEL: &str = "pg_net_request_queued";
/// How often the queue is read without a notification, in case one was missed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One request as pg_net queued it.
#[derive(Debug)]
pub struct QueuedRequest {
    pub id: i64,
    pub method: String,
    pub url: String,
    pub headers: Value,
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
    pub timed_out: bool,
    pub error_msg: Option<String>,
}

impl RecordedResponse {
    fn failure(timed_out: bool, message: String) -> Self {
        Self {
            status_code: None,
            content_type: None,
            headers: None,
            content: None,
            timed_out,
            error_msg: Some(message),
        }
    }
}

/// Sends one request and describes the outcome as pg_net would.
pub async fn send(
    client: &Client<HttpConnector, Body>,
    request: &QueuedRequest,
) -> RecordedResponse {
    let timeout = Duration::from_millis(u64::try_from(request.timeout_milliseconds).unwrap_or(0));
    let built = build_request(request);
    let http_request = match built {
        Ok(http_request) => http_request,
        Err(message) => return RecordedResponse::failure(false, message),
    };
    let exchange = async {
        let response = client
            .request(http_request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((parts, bytes))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => RecordedResponse::failure(
            true,
            format!("Timeout of {} ms reached", request.timeout_milliseconds),
        ),
        Ok(Err(message)) => {
            RecordedResponse::failure(false, format!("Couldn't connect to server: {message}"))
        }
        Ok(Ok((parts, bytes))) => {
            let mut headers = Map::new();
            for (name, value) in &parts.headers {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
            RecordedResponse {
                status_code: Some(i32::from(parts.status.as_u16())),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                headers: Some(Value::Object(headers)),
                content: Some(String::from_utf8_lossy(&bytes).into_owned()),
                timed_out: false,
                error_msg: None,
            }
        }
    }
}

fn build_request(request: &QueuedRequest) -> Result<Request<Body>, String> {
    let method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("unsupported method {}", request.method))?;
    let mut builder = Request::builder().method(method).uri(&request.url);
    if let Some(headers) = request.headers.as_object() {
        for (name, value) in headers {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
            builder = builder.header(name, value);
        }
    }
    let body = request
        .body
        .clone()
        .map(Body::from)
        .unwrap_or_else(Body::empty);
    builder
        .body(body)
        .map_err(|e| format!("invalid request: {e}"))
}

/// Runs the worker until the database connection ends: takes what is already queued at once, then
/// wakes on each committed request (or every `SWEEP_EVERY`, or when a slot frees up while a
/// backlog is waiting) and sends up to `parallelism` requests at a time.
pub async fn run(database_url: &str, parallelism: usize) -> Result<(), String> {
    let url = format!(
        "{database_url}{}application_name=pg_net%20worker",
        if database_url.contains('?') { "&" } else { "?" }
    );
    let (db, mut connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(|e| format!("pg_net worker cannot connect: {}", describe(&e)))?;
    let wake = Arc::new(Notify::new());
    let on_notification = wake.clone();
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let connection_task = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => on_notification.notify_one(),
                Ok(_) => {}
                Err(error) => return Err(describe(&error)),
            }
        }
        Ok(())
    });
    db.batch_execute(&format!("listen {CHANNEL}"))
        .await
        .map_err(|e| format!("pg_net worker cannot listen: {}", describe(&e)))?;

    let db = Arc::new(db);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let slots = Arc::new(Semaphore::new(parallelism.max(1)));
    loop {
        if connection_task.is_finished() {
            return match connection_task.await {
                Ok(Ok(())) => Err("the database closed the pg_net worker's connection".into()),
                Ok(Err(message)) => Err(format!("pg_net worker lost the database: {message}")),
                Err(panic) => Err(format!("pg_net worker connection task failed: {panic}")),
            };
        }
        let free = slots.available_permits();
        if free > 0 {
            let requests = take_queued(&db, free).await?;
            // A full batch may have left requests behind (a burst, or what was queued while the
            // worker was disconnected): each of its deliveries wakes the loop when done, so the
            // rest go out as slots free up rather than one batch per sweep.
            let backlog = requests.len() == free;
            for request in requests {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| e.to_string())?;
                let (db, client) = (db.clone(), client.clone());
                let wake = backlog.then(|| wake.clone());
                tokio::spawn(async move {
                    let response = send(&client, &request).await;
                    if let Err(error) = record(&db, request.id, &response).await {
                        eprintln!(
                            "pg_net worker: cannot record request {}: {error}",
                            request.id
                        );
                    }
                    drop(permit);
                    if let Some(wake) = wake {
                        wake.notify_one();
                    }
                });
            }
        }
        let _ = tokio::time::timeout(SWEEP_EVERY, wake.notified()).await;
    }
}

/// Takes up to `limit` requests off the queue, oldest first, as pg_net does.
async fn take_queued(
    db: &tokio_postgres::Client,
    limit: usize,
) -> Result<Vec<QueuedRequest>, String> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db
        .query(
            "delete from net.http_request_queue
             where id in (select id from net.http_request_queue order by id
                          limit $1 for update skip locked)
             returning id, method::text, url, headers, body, timeout_milliseconds",
            &[&limit],
        )
        .await
        .map_err(|e| format!("pg_net worker cannot read the queue: {}", describe(&e)))?;
    let mut requests: Vec<QueuedRequest> = rows
        .iter()
        .map(|row| QueuedRequest {
            id: row.get(0),
            method: row.get(1),
            url: row.get(2),
            headers: row.get::<_, Option<Value>>(3).unwrap_or(Value::Null),
            body: row.get(4),
            timeout_milliseconds: row.get(5),
        })
        .collect();
    requests.sort_by_key(|request| request.id);
    Ok(requests)
}

async fn record(
    db: &tokio_postgres::Client,
    id: i64,
    response: &RecordedResponse,
) -> Result<(), String> {
    db.execute(
        "insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
         values ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &id,
            &response.status_code,
            &response.content_type,
            &response.headers,
            &response.content,
            &response.timed_out,
            &response.error_msg,
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| describe(&e))
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
