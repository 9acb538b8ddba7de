//! Latency on the local stack, measured over the real main-command binary and a database built
//! from the migrations. Two measurements, each over N events sent one at a time:
//!
//! - `delivery`: from the commit of `select test_webhook(…)` to a Deno function receiving the
//!   request (pg_net worker → gateway → Deno). The function stamps the arrival time
//!   (`performance.timeOrigin + performance.now()`, same machine clock) into its answer.
//! - `notification`: from the commit of `insert into trip_collaborators` to the invitation row
//!   being visible in `notifications` (trigger → worker → gateway → trip-events in wasm →
//!   `/rest/v1` → Postgres), polled every 0.5 ms on another connection.
//! - `notification-while-embedding`: the same, first with nothing else going on, then while
//!   ai-processing embeds `MEMORIES` memories (one statement's worth, the OpenAI stand-in answering
//!   in 50 ms) through the same pg_net worker: the events of both phases, side by side. Only
//!   events committed before the last vector was stored count for the second phase.
//!
//! `scripts/measure-latency delivery|notification [N]` builds what it needs, starts a throwaway
//! database and runs this; by hand, with the stack and the wasm built:
//! `cargo run -p local-stack --example latency -- MODE DB_URL [N]`.
//! Commit times are taken when the autocommitted statement returns, just after the commit.
//! The last line printed is the same figures as JSON, for `scripts/bench`.

mod stack;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use stack::{
    create_trip, create_user, embedded_memories, insert_memories, percentile, set_provider_latency,
    Failure, Stack,
};
use tokio_postgres::{Client, NoTls};

const USAGE: &str =
    "usage: latency delivery|notification DB_URL [N] | notification-while-embedding DB_URL N MEMORIES";
/// How long the OpenAI stand-in takes per embeddings call while notifications are measured.
const PROVIDER_LATENCY_MS: u64 = 50;
const SINK: &str = r#"Deno.serve({ port: Number(Deno.env.get("PORT")) }, (request) => {
  const received = performance.timeOrigin + performance.now();
  return Response.json({ received, id: request.headers.get("webhook-id") });
});
"#;
/// Unmeasured events first, to warm connections and the functions.
const WARM_UP: usize = 5;

fn now_ms() -> f64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or(USAGE)?;
    let db_url = args.next().ok_or(USAGE)?;
    let count: usize = args.next().map_or(Ok(200), |n| n.parse())?;
    let (db, connection) = tokio_postgres::connect(&db_url, NoTls).await?;
    tokio::spawn(connection);
    if mode == "notification-while-embedding" {
        let memories: i32 = args.next().ok_or(USAGE)?.parse()?;
        return notification_while_embedding(&db, &db_url, count, memories).await;
    }
    let (what, latencies) = match mode.as_str() {
        "delivery" => (
            "commit → function receives the request",
            delivery(&db, &db_url, count).await?,
        ),
        "notification" => (
            "commit of a collaborator insert → notification visible",
            notification(&db, &db_url, count).await?,
        ),
        _ => return Err(USAGE.into()),
    };
    let figures = summary(latencies);
    println!(
        "{what}, {} events one at a time: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        figures["events"],
        figures["p50_ms"].as_f64().unwrap_or_default(),
        figures["p90_ms"].as_f64().unwrap_or_default(),
        figures["p99_ms"].as_f64().unwrap_or_default(),
        figures["max_ms"].as_f64().unwrap_or_default(),
    );
    println!("{figures}");
    Ok(())
}

/// Count, p50, p90, p99 and max of `latencies`, in milliseconds.
fn summary(mut latencies: Vec<f64>) -> serde_json::Value {
    latencies.sort_by(f64::total_cmp);
    let Some(max) = latencies.last().copied() else {
        return json!({ "events": 0 });
    };
    json!({
        "events": latencies.len(),
        "p50_ms": percentile(&latencies, 50.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": max,
    })
}

async fn delivery(db: &Client, db_url: &str, count: usize) -> Result<Vec<f64>, Failure> {
    let project = std::env::temp_dir().join(format!("latency-sink-{}", std::process::id()));
    std::fs::create_dir_all(project.join("supabase/functions/sink"))?;
    std::fs::write(
        project.join("supabase/config.toml"),
        "[functions.sink]\nverify_jwt = false\n",
    )?;
    std::fs::write(project.join("supabase/functions/sink/index.ts"), SINK)?;
    let stack = Stack::start(&project, db_url, &[]).await?;
    let name = format!("latency_{}", std::process::id());
    let url = stack.function_url("sink");
    db.execute(
        "insert into webhook_configs (name, url, secret, events, is_active)
         values ($1, $2, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', array['test.webhook'], true)",
        &[&name, &url],
    )
    .await?;

    let mut sent = Vec::with_capacity(count);
    for index in 0..count + WARM_UP {
        let log: i64 = db
            .query_one("select test_webhook($1)", &[&name])
            .await?
            .get(0);
        let committed = now_ms();
        let request_id: i64 = db
            .query_one("select request_id from webhook_logs where id = $1", &[&log])
            .await?
            .get(0);
        if index >= WARM_UP {
            sent.push((request_id, committed));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::with_capacity(count);
    for (request_id, committed) in &sent {
        let received = loop {
            let row = db
                .query_opt(
                    "select (content::jsonb ->> 'received')::float8 from net._http_response
                     where id = $1 and status_code = 200",
                    &[request_id],
                )
                .await?;
            match row {
                Some(row) => break row.get::<_, f64>(0),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        latencies.push(received - committed);
    }
    db.execute("delete from webhook_configs where name = $1", &[&name])
        .await?;
    stack.stop().await?;
    let _ = std::fs::remove_dir_all(&project);
    Ok(latencies)
}

async fn notification(db: &Client, db_url: &str, count: usize) -> Result<Vec<f64>, Failure> {
    let root: PathBuf = std::env::current_dir()?;
    let stack = Stack::start(&root, db_url, &[]).await?;
    stack
        .point_webhook(db, "trip_events", "trip-events")
        .await?;
    let measured = Notifications::new(db, db_url).await?;
    let latencies = measured.measure(db, count + WARM_UP).await?;
    restore_webhooks(db).await?;
    stack.stop().await?;
    Ok(latencies
        .into_iter()
        .skip(WARM_UP)
        .map(|(_, latency)| latency)
        .collect())
}

async fn notification_while_embedding(
    db: &Client,
    db_url: &str,
    count: usize,
    memories: i32,
) -> Result<(), Failure> {
    let root: PathBuf = std::env::current_dir()?;
    let stack = Stack::start(&root, db_url, &["--offline-apis"]).await?;
    set_provider_latency(stack.stand_ins()?, PROVIDER_LATENCY_MS).await?;
    stack
        .point_webhook(db, "trip_events", "trip-events")
        .await?;
    stack
        .point_webhook(db, "ai_processing", "ai-processing")
        .await?;
    let measured = Notifications::new(db, db_url).await?;
    let idle: Vec<f64> = measured
        .measure(db, count + WARM_UP)
        .await?
        .into_iter()
        .skip(WARM_UP)
        .map(|(_, latency)| latency)
        .collect();

    let user = create_user(db).await?;
    insert_memories(db, &user, memories).await?;
    let started = Instant::now();
    // When the last vector was stored, watched on a connection of its own.
    let (watcher, connection) = tokio_postgres::connect(db_url, NoTls).await?;
    tokio::spawn(connection);
    let watching = tokio::spawn(async move {
        loop {
            if embedded_memories(&watcher, &user).await? >= i64::from(memories) {
                return Ok::<_, tokio_postgres::Error>(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let loaded = measured.measure(db, count).await?;
    let embedded_at = watching.await??;
    let while_embedding: Vec<f64> = loaded
        .into_iter()
        .filter(|(committed, _)| *committed < embedded_at)
        .map(|(_, latency)| latency)
        .collect();
    restore_webhooks(db).await?;
    stack.stop().await?;

    let idle = summary(idle);
    let busy = summary(while_embedding);
    let embedding_s = embedded_at.duration_since(started).as_secs_f64();
    for (phase, figures) in [("idle", &idle), ("while embedding", &busy)] {
        println!(
            "{phase}: {} notifications, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            figures["events"],
            figures["p50_ms"].as_f64().unwrap_or_default(),
            figures["p99_ms"].as_f64().unwrap_or_default(),
            figures["max_ms"].as_f64().unwrap_or_default(),
        );
    }
    println!("{memories} memories embedded in {embedding_s:.1} s");
    println!(
        "{}",
        json!({
            "idle": idle, "while_embedding": busy,
            "memories": memories, "embedding_s": embedding_s,
        })
    );
    Ok(())
}

/// Collaborator inserts, one at a time, each timed from its commit to its invitation.
struct Notifications {
    owner: String,
    trip: i64,
    poller: Client,
    visible: tokio_postgres::Statement,
}

impl Notifications {
    async fn new(db: &Client, db_url: &str) -> Result<Self, Failure> {
        let owner = create_user(db).await?;
        let trip = create_trip(db, &owner, "Latency").await?;
        let (poller, connection) = tokio_postgres::connect(db_url, NoTls).await?;
        tokio::spawn(connection);
        let visible = poller
            .prepare("select exists (select 1 from notifications where user_id = $1::text::uuid)")
            .await?;
        Ok(Self {
            owner,
            trip,
            poller,
            visible,
        })
    }

    /// `count` events: when each was committed, and its latency in milliseconds.
    async fn measure(&self, db: &Client, count: usize) -> Result<Vec<(Instant, f64)>, Failure> {
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let friend = create_user(db).await?;
            db.execute(
                "insert into trip_collaborators (trip_id, user_id, added_by)
                 values ($1, $2::text::uuid, $3::text::uuid)",
                &[&self.trip, &friend, &self.owner],
            )
            .await?;
            let committed = Instant::now();
            let deadline = committed + Duration::from_secs(30);
            while !self
                .poller
                .query_one(&self.visible, &[&friend])
                .await?
                .get::<_, bool>(0)
            {
                if Instant::now() > deadline {
                    return Err(format!("no notification for {friend} within 30 s").into());
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            latencies.push((committed, committed.elapsed().as_secs_f64() * 1000.0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(latencies)
    }
}

/// The seeded webhooks' URLs, as the seed has them.
async fn restore_webhooks(db: &Client) -> Result<(), Failure> {
    db.execute(
        "update webhook_configs set url = 'http://127.0.0.1:54321/functions/v1/' || replace(name, '_', '-')
         where name in ('trip_events', 'ai_processing')",
        &[],
    )
    .await?;
    Ok(())
}
