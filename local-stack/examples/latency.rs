//! Latency on the local stack, measured over the real main-command binary and a database built
//! from the migrations. Two measurements, each over N events sent one at a time:
//!
//! - `delivery`: from the commit of `select test_webhook(…)` to a Deno function receiving the
//!   request (pg_net worker → gateway → Deno). The function stamps the arrival time
//!   (`performance.timeOrigin + performance.now()`, same machine clock) into its answer.
//! - `notification`: from the commit of `insert into trip_collaborators` to the invitation row
//!   being visible in `notifications` (trigger → worker → gateway → trip-events in wasm →
//!   `/rest/v1` → Postgres), polled every 0.5 ms on another connection.
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
use stack::{create_trip, create_user, percentile, Failure, Stack};
use tokio_postgres::{Client, NoTls};

const USAGE: &str = "usage: latency delivery|notification DB_URL [N]";
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
    let (what, mut latencies) = match mode.as_str() {
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
    latencies.sort_by(f64::total_cmp);
    let events = latencies.len();
    let p50 = percentile(&latencies, 50.0);
    let p90 = percentile(&latencies, 90.0);
    let p99 = percentile(&latencies, 99.0);
    let max = latencies[events - 1];
    println!(
        "{what}, {events} events one at a time: p50 {p50:.1} ms, p90 {p90:.1} ms, \
         p99 {p99:.1} ms, max {max:.1} ms"
    );
    let figures = json!({
        "events": events, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
    });
    println!("{figures}");
    Ok(())
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
    let owner = create_user(db).await?;
    let trip = create_trip(db, &owner, "Latency").await?;
    let (poller, connection) = tokio_postgres::connect(db_url, NoTls).await?;
    tokio::spawn(connection);
    let visible = poller
        .prepare("select exists (select 1 from notifications where user_id = $1::text::uuid)")
        .await?;

    let mut latencies = Vec::with_capacity(count);
    for index in 0..count + WARM_UP {
        let friend = create_user(db).await?;
        db.execute(
            "insert into trip_collaborators (trip_id, user_id, added_by)
             values ($1, $2::text::uuid, $3::text::uuid)",
            &[&trip, &friend, &owner],
        )
        .await?;
        let committed = Instant::now();
        let deadline = committed + Duration::from_secs(30);
        while !poller
            .query_one(&visible, &[&friend])
            .await?
            .get::<_, bool>(0)
        {
            if Instant::now() > deadline {
                return Err(format!("no notification for {friend} within 30 s").into());
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        if index >= WARM_UP {
            latencies.push(committed.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.execute(
        "update webhook_configs set url = 'http://127.0.0.1:54321/functions/v1/trip-events'
         where name = 'trip_events'",
        &[],
    )
    .await?;
    stack.stop().await?;
    Ok(latencies)
}
