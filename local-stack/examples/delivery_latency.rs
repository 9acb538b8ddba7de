//! Measures webhook delivery latency on the local stack: from the commit of `select
//! test_webhook(…)` to a function receiving the request, through the pg_net worker, the gateway
//! and a Deno function. Prints p50, p90, p99 and max over N deliveries sent one at a time.
//!
//! `scripts/measure-delivery [N]` starts a throwaway database and runs this; by hand:
//! `cargo run -p local-stack --example delivery_latency -- DB_URL [N]` with the stack binary built
//! (`cargo build -p local-stack`).
//!
//! The receiving function stamps the time it got the request (`performance.timeOrigin +
//! performance.now()`, same machine clock) and answers it, and pg_net records that answer. The
//! commit time is taken when the autocommitted statement returns, just after the commit.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_postgres::NoTls;

const SINK: &str = r#"Deno.serve({ port: Number(Deno.env.get("PORT")) }, (request) => {
  const received = performance.timeOrigin + performance.now();
  return Response.json({ received, id: request.headers.get("webhook-id") });
});
"#;

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db_url = args.next().ok_or("usage: delivery_latency DB_URL [N]")?;
    let count: usize = args.next().map_or(Ok(200), |n| n.parse())?;

    let project = std::env::temp_dir().join(format!("delivery-latency-{}", std::process::id()));
    std::fs::create_dir_all(project.join("supabase/functions/sink"))?;
    std::fs::write(
        project.join("supabase/config.toml"),
        "[functions.sink]\nverify_jwt = false\n",
    )?;
    std::fs::write(project.join("supabase/functions/sink/index.ts"), SINK)?;

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let root = std::env::current_dir()?;
    let mut stack = Command::new(root.join("target/debug/local-stack"))
        .args([
            "--port",
            &port.to_string(),
            "--db-url",
            &db_url,
            "--project",
        ])
        .arg(&project)
        .arg("--deno")
        .arg(root.join("node_modules/.bin/deno"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(stack.stdout.take().ok_or("no stdout")?).lines();
    while let Some(line) = lines.next_line().await? {
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let (db, connection) = tokio_postgres::connect(&db_url, NoTls).await?;
    tokio::spawn(connection);
    let name = format!("latency_{}", std::process::id());
    let url = format!("http://127.0.0.1:{port}/functions/v1/sink");
    db.execute(
        "insert into webhook_configs (name, url, secret, events, is_active)
         values ($1, $2, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', array['test.webhook'], true)",
        &[&name, &url],
    )
    .await?;

    // A few unmeasured deliveries warm up connections and the function.
    let mut sent = Vec::with_capacity(count);
    for index in 0..count + 5 {
        let log: i64 = db
            .query_one("select test_webhook($1)", &[&name])
            .await?
            .get(0);
        let committed = now_ms();
        let request_id: i64 = db
            .query_one("select request_id from webhook_logs where id = $1", &[&log])
            .await?
            .get(0);
        if index >= 5 {
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
    // SIGTERM, so the stack stops its functions too.
    if let Some(pid) = stack.id() {
        Command::new("kill").arg(pid.to_string()).status().await?;
    }
    stack.wait().await?;
    let _ = std::fs::remove_dir_all(&project);

    latencies.sort_by(f64::total_cmp);
    println!(
        "commit → function receives the request, {} deliveries one at a time: \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies[latencies.len() - 1],
    );
    Ok(())
}
