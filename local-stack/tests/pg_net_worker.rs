//! The pg_net worker against the test database (TRIPSAGE_TEST_DB_URL, set by ./scripts/test),
//! pinned to what pg_net 0.19.5 itself does with the same requests: answers recorded column by
//! column as pg_net records them, libcurl's error texts, batches committed when their slowest
//! request ends, `pg_net.batch_size` and `pg_net.ttl`, rolled-back requests never sent, a backlog
//! sent once a worker connects.
//!
//! The tests share one database, and a worker takes whatever is queued, so they take turns.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use local_stack::pg_net_worker;
use serde_json::Value;
use support::database_url;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

mod support;

static ONE_WORKER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One request as the receiver read it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A receiver over raw TCP, so that header names go out exactly as written here:
/// - `/echo…` answers 200 with the request as JSON, `X-Mixed-Case`, and `X-Twice` twice;
/// - `/empty` answers 200 with no body; `/nul` a body with a NUL byte in it;
/// - `/redirect/<code>` answers `<code>` with `Location: /echo/after`;
/// - `/slow/<ms>` answers after that long; `/hold` after 300 ms, counting how many it holds at once.
#[derive(Default)]
struct Receiver {
    seen: Mutex<Vec<Received>>,
    holding: AtomicUsize,
    most_held: AtomicUsize,
}

impl Receiver {
    async fn start() -> (Arc<Self>, String) {
        let receiver = Arc::new(Self::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let serving = receiver.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let receiver = serving.clone();
                tokio::spawn(async move { receiver.serve(stream).await });
            }
        });
        (receiver, format!("http://{address}"))
    }

    fn seen(&self, path: &str) -> Vec<Received> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|r| r.path == path).cloned().collect()
    }

    async fn serve(&self, stream: tokio::net::TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        while let Some(request) = read_request(&mut read).await {
            self.seen.lock().unwrap().push(request.clone());
            let response = self.answer(&request).await;
            if write.write_all(&response).await.is_err() {
                return;
            }
        }
    }

    async fn answer(&self, request: &Received) -> Vec<u8> {
        let path = request.path.as_str();
        if path.starts_with("/echo") {
            let echoed = serde_json::json!({
                "method": request.method,
                "headers": request.headers,
                "body": String::from_utf8_lossy(&request.body),
            });
            let extra = "Content-Type: application/json\r\nX-Mixed-Case: a\r\nX-Twice: first\r\nX-Twice: second\r\n";
            return response(200, extra, echoed.to_string().as_bytes());
        }
        if let Some(code) = path.strip_prefix("/redirect/") {
            let extra = "Location: /echo/after\r\nX-From-Redirect: 1\r\n";
            return response(code.parse().unwrap(), extra, b"moved");
        }
        if let Some(ms) = path.strip_prefix("/slow/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            return response(200, "", b"late");
        }
        match path {
            "/empty" => response(200, "X-Empty: yes\r\n", b""),
            "/nul" => response(200, "Content-Type: application/octet-stream\r\n", b"ab\0cd"),
            "/hold" => {
                let now = self.holding.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_held.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.holding.fetch_sub(1, Ordering::SeqCst);
                response(200, "", b"held")
            }
            _ => response(404, "", b"no"),
        }
    }
}

fn response(status: u16, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 {status} Whatever\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> Option<Received> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        read.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
        at,
    })
}

async fn connect() -> tokio_postgres::Client {
    let (db, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    db
}

/// A worker on its own connection; `settings` are GUCs for it, as `-c name=value` options.
fn start_worker(settings: &[(&str, &str)]) -> JoinHandle<Result<(), String>> {
    let mut url = database_url();
    if !settings.is_empty() {
        let options: Vec<String> = settings
            .iter()
            .map(|(name, value)| format!("-c {name}={}", value.replace(' ', "\\ ")))
            .collect();
        // Percent-encoded: the URL parser does not read `+` as a space.
        let options = form_urlencoded::byte_serialize(options.join(" ").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let separator = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{separator}options={options}");
    }
    tokio::spawn(async move { pg_net_worker::run(&url).await })
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
            started.elapsed() < Duration::from_secs(30),
            "the worker recorded only {done} of {} requests",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn queue(db: &tokio_postgres::Client, call: &str) -> i64 {
    db.query_one(&format!("select {call}"), &[])
        .await
        .unwrap_or_else(|e| panic!("{call}: {e}"))
        .get(0)
}

/// One row of net._http_response.
#[derive(Debug)]
struct Answer {
    status_code: Option<i32>,
    content_type: Option<String>,
    headers: Option<Value>,
    content: Option<String>,
    timed_out: Option<bool>,
    error_msg: Option<String>,
    created: std::time::SystemTime,
}

async fn answer(db: &tokio_postgres::Client, id: i64) -> Answer {
    let row = db
        .query_one(
            "select status_code, content_type, headers, content, timed_out, error_msg, created
             from net._http_response where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    Answer {
        status_code: row.get(0),
        content_type: row.get(1),
        headers: row.get(2),
        content: row.get(3),
        timed_out: row.get(4),
        error_msg: row.get(5),
        created: row.get(6),
    }
}

#[tokio::test]
async fn answers_are_recorded_as_pg_net_records_them() {
    let _turn = ONE_WORKER_AT_A_TIME.lock().await;
    let (receiver, base) = Receiver::start().await;
    let db = connect().await;
    let worker = start_worker(&[]);

    let post = queue(
        &db,
        &format!(
            "net.http_post('{base}/echo/post', '{{\"n\": 1}}'::jsonb,
               headers := '{{\"Content-Type\": \"application/json\", \"X-Given-Case\": \"g\"}}'::jsonb)"
        ),
    )
    .await;
    let get = queue(&db, &format!("net.http_get('{base}/echo/get')")).await;
    let delete = queue(&db, &format!("net.http_delete('{base}/echo/delete')")).await;
    let empty = queue(&db, &format!("net.http_get('{base}/empty')")).await;
    let nul = queue(&db, &format!("net.http_get('{base}/nul')")).await;
    let found = queue(
        &db,
        &format!("net.http_post('{base}/redirect/302', '{{\"r\": 1}}'::jsonb)"),
    )
    .await;
    let temporary = queue(
        &db,
        &format!("net.http_post('{base}/redirect/307', '{{\"r\": 2}}'::jsonb)"),
    )
    .await;
    let slow = queue(
        &db,
        &format!("net.http_get('{base}/slow/3000', timeout_milliseconds := 500)"),
    )
    .await;
    let refused = queue(&db, "net.http_get('http://127.0.0.1:9/x')").await;
    let unresolved = queue(&db, "net.http_get('http://no-such-host.invalid/x')").await;
    let not_tls = queue(
        &db,
        &format!(
            "net.http_get('{}/echo/tls')",
            base.replace("http://", "https://")
        ),
    )
    .await;
    db.batch_execute("begin").await.unwrap();
    let rolled_back = queue(&db, &format!("net.http_get('{base}/echo/rolled-back')")).await;
    db.batch_execute("rollback").await.unwrap();

    let ids = [
        post, get, delete, empty, nul, found, temporary, slow, refused, unresolved, not_tls,
    ];
    wait_for_responses(&db, &ids).await;

    // What was sent: the given headers as given, libcurl's Accept, pg_net's User-Agent.
    let sent = &receiver.seen("/echo/post")[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.body, b"{\"n\": 1}");
    let names: Vec<&str> = sent.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"X-Given-Case"), "{names:?}");
    assert_eq!(sent.header("user-agent"), Some("pg_net/0.19.5"));
    assert_eq!(sent.header("accept"), Some("*/*"));
    assert_eq!(receiver.seen("/echo/get")[0].method, "GET");
    assert_eq!(receiver.seen("/echo/delete")[0].method, "DELETE");

    // An answer: status, content type, body, header names as sent with a repeated one's last
    // value, timed_out false.
    let posted = answer(&db, post).await;
    assert_eq!(posted.status_code, Some(200));
    assert_eq!(posted.content_type.as_deref(), Some("application/json"));
    assert_eq!(posted.timed_out, Some(false));
    assert_eq!(posted.error_msg, None);
    let headers = posted.headers.unwrap();
    assert_eq!(headers["X-Mixed-Case"], "a");
    assert_eq!(headers["X-Twice"], "second");
    assert!(headers.get("x-mixed-case").is_none());
    let echoed: Value = serde_json::from_str(posted.content.as_deref().unwrap()).unwrap();
    assert_eq!(echoed["body"], "{\"n\": 1}");

    let empty = answer(&db, empty).await;
    assert_eq!(
        (empty.status_code, empty.content, empty.content_type),
        (Some(200), None, None),
        "an empty body is NULL, and so is a missing content type"
    );
    assert_eq!(answer(&db, nul).await.content.as_deref(), Some("ab"));

    // Redirects are followed: a 302 to a POST becomes a body-less GET with the same headers, a
    // 307 keeps the POST; status and body are the final answer's, headers the first response's.
    let after = receiver.seen("/echo/after");
    let methods: BTreeSet<&str> = after.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, BTreeSet::from(["GET", "POST"]), "{after:?}");
    let get_after = after.iter().find(|r| r.method == "GET").unwrap();
    assert!(get_after.body.is_empty());
    assert_eq!(get_after.header("content-type"), Some("application/json"));
    let post_after = after.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post_after.body, b"{\"r\": 2}");
    for id in [found, temporary] {
        let redirected = answer(&db, id).await;
        assert_eq!(redirected.status_code, Some(200));
        assert_eq!(redirected.content_type.as_deref(), Some("application/json"));
        let headers = redirected.headers.unwrap();
        assert_eq!(headers["Location"], "/echo/after");
        assert_eq!(headers["X-From-Redirect"], "1");
    }

    // Failures: only error_msg, in libcurl's (and pg_net's) words; timed_out NULL.
    let slow = answer(&db, slow).await;
    let message = slow.error_msg.unwrap();
    assert!(
        message.starts_with("Timeout of 500 ms reached. Total time: ")
            && message.contains(" ms (DNS time: ")
            && message.contains(" ms, TCP/SSL handshake time: ")
            && message.ends_with(" ms)"),
        "{message}"
    );
    assert_eq!((slow.status_code, slow.timed_out), (None, None));
    for (id, text) in [
        (refused, "Couldn't connect to server"),
        (unresolved, "Couldn't resolve host name"),
        (not_tls, "SSL connect error"),
    ] {
        let failed = answer(&db, id).await;
        assert_eq!(failed.error_msg.as_deref(), Some(text));
        assert_eq!(
            (failed.status_code, failed.headers, failed.timed_out),
            (None, None, None)
        );
    }

    let leftover: i64 = db
        .query_one(
            "select count(*) from net.http_request_queue where id = any($1)",
            &[&ids.as_slice()],
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
    assert!(receiver.seen("/echo/rolled-back").is_empty());
    assert!(!worker.is_finished(), "the worker keeps running");
    worker.abort();
}

#[tokio::test]
async fn a_batch_is_answered_when_its_slowest_request_ends() {
    let _turn = ONE_WORKER_AT_A_TIME.lock().await;
    let (receiver, base) = Receiver::start().await;
    let db = connect().await;
    let worker = start_worker(&[]);

    db.batch_execute("begin").await.unwrap();
    let slow = queue(&db, &format!("net.http_get('{base}/slow/1500')")).await;
    let fast = queue(&db, &format!("net.http_get('{base}/echo/fast')")).await;
    db.batch_execute("commit").await.unwrap();
    let committed = Instant::now();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = queue(&db, &format!("net.http_get('{base}/echo/later')")).await;

    let started = Instant::now();
    wait_for_responses(&db, &[fast]).await;
    let fast_visible = committed.elapsed();
    let slow_visible = answer(&db, slow).await;
    assert!(
        fast_visible >= Duration::from_millis(1400),
        "the fast answer became visible at +{fast_visible:?}, before its batch's slowest request ended"
    );
    assert_eq!(
        slow_visible.status_code,
        Some(200),
        "both answers commit together"
    );
    let fast = answer(&db, fast).await;
    assert_eq!(
        fast.created, slow_visible.created,
        "created is the batch's start"
    );

    wait_for_responses(&db, &[later]).await;
    let sent_slow = receiver.seen("/slow/1500")[0].at;
    let sent_later = receiver.seen("/echo/later")[0].at;
    assert!(
        sent_later.duration_since(sent_slow) >= Duration::from_millis(1400),
        "a request committed during a batch waits for the next one (sent {:?} after the slow one)",
        sent_later.duration_since(sent_slow)
    );
    assert!(answer(&db, later).await.created > fast.created);
    assert!(started.elapsed() < Duration::from_secs(10));
    worker.abort();
}

#[tokio::test]
async fn batch_size_bounds_a_batch_and_old_answers_go_after_the_ttl() {
    let _turn = ONE_WORKER_AT_A_TIME.lock().await;
    let (receiver, base) = Receiver::start().await;
    let db = connect().await;
    // What earlier tests queued and no worker sent (their triggers post to the seeded webhooks)
    // would share the first batches with this test's requests.
    db.batch_execute(
        "delete from net.http_request_queue;
         delete from net._http_response where id in (-1, -2);
         insert into net._http_response (id, status_code, created)
         values (-1, 200, now() - interval '3 hours'), (-2, 200, now() - interval '1 hour')",
    )
    .await
    .unwrap();
    let worker = start_worker(&[("pg_net.batch_size", "4"), ("pg_net.ttl", "2 hours")]);

    db.batch_execute("begin").await.unwrap();
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(queue(&db, &format!("net.http_post('{base}/hold', '{{}}'::jsonb)")).await);
    }
    db.batch_execute("commit").await.unwrap();
    wait_for_responses(&db, &held).await;
    let batches: i64 = db
        .query_one(
            "select count(distinct created) from net._http_response
             where id = any($1) and status_code = 200",
            &[&held],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 3, "twelve requests in batches of four");
    assert_eq!(receiver.most_held.load(Ordering::SeqCst), 4);

    let kept: Vec<i64> = db
        .query(
            "select id from net._http_response where id in (-1, -2)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        kept,
        [-2],
        "the answer older than pg_net.ttl is deleted, the younger kept"
    );
    db.batch_execute("delete from net._http_response where id = -2")
        .await
        .unwrap();
    worker.abort();
}

#[tokio::test]
async fn a_backlog_queued_while_no_worker_runs_goes_out_when_one_connects() {
    let _turn = ONE_WORKER_AT_A_TIME.lock().await;
    let (receiver, base) = Receiver::start().await;
    let db = connect().await;
    let mut backlog = Vec::new();
    for _ in 0..60 {
        backlog.push(queue(&db, &format!("net.http_get('{base}/echo/backlog')")).await);
    }
    let worker = start_worker(&[]);
    wait_for_responses(&db, &backlog).await;
    assert_eq!(receiver.seen("/echo/backlog").len(), 60);
    worker.abort();
}
