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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_postgres::{Client, NoTls};

type Failure = Box<dyn std::error::Error>;

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The main command's server on a free port, stopped with SIGTERM so its functions stop too.
struct Stack {
    child: Child,
    port: u16,
}

impl Stack {
    async fn start(project: &Path, db_url: &str, extra: &[&str]) -> Result<Self, Failure> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let root = std::env::current_dir()?;
        let mut child = Command::new(root.join("target/debug/local-stack"))
            .args(["--port", &port.to_string(), "--db-url", db_url, "--project"])
            .arg(project)
            .arg("--deno")
            .arg(root.join("node_modules/.bin/deno"))
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        while let Some(line) = lines.next_line().await? {
            if line.contains("Press Ctrl-C") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, port })
    }

    async fn stop(mut self) -> Result<(), Failure> {
        if let Some(pid) = self.child.id() {
            Command::new("kill").arg(pid.to_string()).status().await?;
        }
        self.child.wait().await?;
        Ok(())
    }
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
    println!(
        "{what}, {} events one at a time: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies[latencies.len() - 1],
    );
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
    let url = format!("http://127.0.0.1:{}/functions/v1/sink", stack.port);
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
    // The seed points trip_events at the default port.
    db.execute(
        "update webhook_configs set url = $1 where name = 'trip_events'",
        &[&format!(
            "http://127.0.0.1:{}/functions/v1/trip-events",
            stack.port
        )],
    )
    .await?;
    let new_user = "insert into auth.users (id, email, role, aud)
                    values (gen_random_uuid(), gen_random_uuid() || '@example.com',
                            'authenticated', 'authenticated')
                    returning id::text";
    let owner: String = db.query_one(new_user, &[]).await?.get(0);
    let trip: i64 = db
        .query_one(
            "insert into trips (user_id, name, destination, start_date, end_date)
             values ($1::text::uuid, 'Latency', 'Lisbon', '2027-06-01', '2027-06-07')
             returning id",
            &[&owner],
        )
        .await?
        .get(0);
    let (poller, connection) = tokio_postgres::connect(db_url, NoTls).await?;
    tokio::spawn(connection);
    let visible = poller
        .prepare("select exists (select 1 from notifications where user_id = $1::text::uuid)")
        .await?;

    let mut latencies = Vec::with_capacity(count);
    for index in 0..count + WARM_UP {
        let friend: String = db.query_one(new_user, &[]).await?.get(0);
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
