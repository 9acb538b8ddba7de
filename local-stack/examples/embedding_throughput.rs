//! Embedding throughput on the local stack: N memories inserted in one statement, embedded by
//! ai-processing (in wasm, behind the gateway) against the OpenAI stand-in answering each call in
//! 50 ms. Prints the wall time from the commit to the last vector stored and the provider calls.
//!
//! `scripts/measure-embeddings [N] [batched|one-per-call]` builds what it needs, starts a
//! throwaway database and runs this; `one-per-call` sets `EMBEDDING_MAX_INPUTS=1`, the baseline
//! of one request per memory. By hand: `cargo run -p local-stack --example embedding_throughput --
//! DB_URL N MODE` with the stack and the wasm built.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_postgres::NoTls;

type Failure = Box<dyn std::error::Error>;

const USAGE: &str = "usage: embedding_throughput DB_URL N batched|one-per-call";
const PROVIDER_LATENCY_MS: u64 = 50;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let db_url = args.next().ok_or(USAGE)?;
    let count: i32 = args.next().ok_or(USAGE)?.parse()?;
    let mode = args.next().ok_or(USAGE)?;
    let env_file = std::env::temp_dir().join(format!("embedding-env-{}", std::process::id()));
    let max_inputs = match mode.as_str() {
        "batched" => 2048,
        "one-per-call" => 1,
        _ => return Err(USAGE.into()),
    };
    std::fs::write(&env_file, format!("EMBEDDING_MAX_INPUTS={max_inputs}\n"))?;

    let root = std::env::current_dir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut stack = Command::new(root.join("target/debug/local-stack"))
        .args(["--port", &port.to_string(), "--db-url", &db_url])
        .arg("--env-file")
        .arg(&env_file)
        .arg("--offline-apis")
        .arg("--deno")
        .arg(root.join("node_modules/.bin/deno"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(stack.stdout.take().ok_or("no stdout")?).lines();
    let mut stand_ins = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.split("stand-ins on ").nth(1) {
            stand_ins = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let stand_ins = stand_ins.ok_or("the stack printed no stand-ins URL")?;
    let http = reqwest::Client::new();
    http.post(format!(
        "{stand_ins}/_stand-ins/openai/embeddings/behaviour"
    ))
    .body(format!(r#"{{"latency_ms": {PROVIDER_LATENCY_MS}}}"#))
    .send()
    .await?
    .error_for_status()?;

    let (db, connection) = tokio_postgres::connect(&db_url, NoTls).await?;
    tokio::spawn(connection);
    db.execute(
        "update webhook_configs set url = $1 where name = 'ai_processing'",
        &[&format!(
            "http://127.0.0.1:{port}/functions/v1/ai-processing"
        )],
    )
    .await?;
    let user: String = db
        .query_one(
            "insert into auth.users (id, email, role, aud)
             values (gen_random_uuid(), gen_random_uuid() || '@example.com',
                     'authenticated', 'authenticated')
             returning id::text",
            &[],
        )
        .await?
        .get(0);
    db.execute(
        "insert into memories (user_id, content, memory_type)
         select $1::text::uuid,
                format('Memory %s: enjoys slow mornings, local markets and trains between cities', n),
                'trip_history'
         from generate_series(1, $2) n",
        &[&user, &count],
    )
    .await?;
    let committed = Instant::now();
    let deadline = committed + Duration::from_secs(3600);
    loop {
        let done: i64 = db
            .query_one(
                "select count(*) from memories
                 where user_id = $1::text::uuid and embedding is not null",
                &[&user],
            )
            .await?
            .get(0);
        if done == i64::from(count) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} of {count} embedded after an hour").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = committed.elapsed().as_secs_f64();
    let requests: serde_json::Value = http
        .get(format!("{stand_ins}/_stand-ins/requests"))
        .send()
        .await?
        .json()
        .await?;
    let calls = requests["requests"]["/openai/v1/embeddings"]
        .as_u64()
        .unwrap_or(0);
    let serial = calls as f64 * PROVIDER_LATENCY_MS as f64 / 1000.0;
    println!(
        "{count} memories, {mode} (EMBEDDING_MAX_INPUTS={max_inputs}), provider answering in \
         {PROVIDER_LATENCY_MS} ms: {calls} provider calls, {elapsed:.1} s from commit to the last \
         vector stored (the calls' latency alone, one after another: {serial:.1} s)"
    );

    if let Some(pid) = stack.id() {
        Command::new("kill").arg(pid.to_string()).status().await?;
    }
    stack.wait().await?;
    let _ = std::fs::remove_file(&env_file);
    Ok(())
}
