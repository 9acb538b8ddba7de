//! Embedding throughput on the local stack: N memories inserted in one statement, embedded by
//! ai-processing (in wasm, behind the gateway) against the OpenAI stand-in answering each call in
//! 50 ms. Prints the wall time from the commit to the last vector stored and the provider calls.
//!
//! `scripts/measure-embeddings [N] [batched|one-per-call]` builds what it needs, starts a
//! throwaway database and runs this; `one-per-call` sets `EMBEDDING_MAX_INPUTS=1`, the baseline
//! of one request per memory. By hand: `cargo run -p local-stack --example embedding_throughput --
//! DB_URL N MODE` with the stack and the wasm built. The last line printed is the same figures
//! as JSON, for `scripts/bench`.

mod stack;

use std::time::{Duration, Instant};

use serde_json::json;
use stack::{
    create_user, embedded_memories, insert_memories, set_provider_latency, Failure, Stack,
};
use tokio_postgres::NoTls;

const USAGE: &str = "usage: embedding_throughput DB_URL N batched|one-per-call";
const PROVIDER_LATENCY_MS: u64 = 50;
/// Vectors per statement when measuring the database alone, as ai-processing stores them.
const STORE_CHUNK: i64 = 100;

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
    let env_arg = env_file
        .to_str()
        .ok_or("a temporary path that is not UTF-8")?;
    let stack = Stack::start(&root, &db_url, &["--env-file", env_arg, "--offline-apis"]).await?;
    let stand_ins = stack.stand_ins()?.to_owned();
    set_provider_latency(&stand_ins, PROVIDER_LATENCY_MS).await?;

    let (db, connection) = tokio_postgres::connect(&db_url, NoTls).await?;
    tokio::spawn(connection);
    stack
        .point_webhook(&db, "ai_processing", "ai-processing")
        .await?;
    let user = create_user(&db).await?;
    let earlier_logs: i64 = db
        .query_one("select coalesce(max(id), 0) from webhook_logs", &[])
        .await?
        .get(0);
    insert_memories(&db, &user, count).await?;
    let committed = Instant::now();
    let deadline = committed + Duration::from_secs(3600);
    loop {
        let done = embedded_memories(&db, &user).await?;
        if done == i64::from(count) {
            break;
        }
        // A dead-lettered delivery leaves its memories to the half-hourly sweep: stop now.
        if let Some(row) = db
            .query_opt(
                "select error_message from webhook_logs
                 where id > $1 and webhook_name = 'ai_processing' and status = 'dead' limit 1",
                &[&earlier_logs],
            )
            .await?
        {
            let error: Option<String> = row.get(0);
            return Err(
                format!("{done} of {count} embedded, then a delivery died: {error:?}").into(),
            );
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} of {count} embedded after an hour").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = committed.elapsed().as_secs_f64();
    let requests: serde_json::Value = reqwest::Client::new()
        .get(format!("{stand_ins}/_stand-ins/requests"))
        .send()
        .await?
        .json()
        .await?;
    let calls = requests["requests"]["/openai/v1/embeddings"]
        .as_u64()
        .unwrap_or(0);
    let retries: i64 = db
        .query_one(
            "select count(*) from webhook_logs
             where id > $1 and webhook_name = 'ai_processing' and status = 'retried'",
            &[&earlier_logs],
        )
        .await?
        .get(0);
    let store_floor = database_alone(&db, &user).await?;
    let serial = calls as f64 * PROVIDER_LATENCY_MS as f64 / 1000.0;
    println!(
        "{count} memories, {mode} (EMBEDDING_MAX_INPUTS={max_inputs}), provider answering in \
         {PROVIDER_LATENCY_MS} ms: {calls} provider calls, {elapsed:.1} s from commit to the last \
         vector stored (the calls' latency alone, one after another: {serial:.1} s); \
         {retries} deliveries retried; the database alone stores the same vectors, \
         {STORE_CHUNK} per statement into an empty table with the same index, in \
         {store_floor:.1} s"
    );

    let figures = json!({
        "memories": count, "max_inputs": max_inputs, "provider_latency_ms": PROVIDER_LATENCY_MS,
        "calls": calls, "wall_s": elapsed, "retries": retries,
        "store_floor_s": store_floor, "store_chunk": STORE_CHUNK,
    });
    println!("{figures}");
    stack.stop().await?;
    let _ = std::fs::remove_file(&env_file);
    Ok(())
}

/// The database's share: the vectors just stored, inserted again `STORE_CHUNK` per statement,
/// one statement after another, into an empty table with the same HNSW index as
/// `memories` (copying the index definition), so each is a new TOAST value and a new index entry
/// as when ai-processing stores it, in an index that grows from empty as it did here. (Writing
/// them back into `memories` would measure less: HNSW finds a vector's own earlier version at
/// once; a temporary table would measure more, its index cached in the small `temp_buffers`.)
/// Returns the seconds it took.
async fn database_alone(db: &tokio_postgres::Client, user: &str) -> Result<f64, Failure> {
    let ids: Vec<i64> = db
        .query(
            "select id from memories where user_id = $1::text::uuid order by id",
            &[&user],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let index: String = db
        .query_one(
            "select pg_get_indexdef('public.memories_embedding_hnsw_idx'::regclass)",
            &[],
        )
        .await?
        .get(0);
    let copy = index
        .replacen("memories_embedding_hnsw_idx", "store_floor_hnsw_idx", 1)
        .replacen("public.memories", "public.store_floor", 1);
    db.batch_execute(&format!(
        "create table public.store_floor (id bigint, embedding extensions.vector(1536)); {copy}"
    ))
    .await?;
    let insert = db
        .prepare(
            "insert into public.store_floor
             select id, embedding::text::extensions.vector from memories where id = any($1)",
        )
        .await?;
    let started = Instant::now();
    for chunk in ids.chunks(STORE_CHUNK as usize) {
        db.execute(&insert, &[&chunk]).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    db.batch_execute("drop table public.store_floor").await?;
    Ok(seconds)
}
