//! What the measuring examples share: the main command's server on a free port, a user to act
//! as, memories to embed, the provider's latency, percentiles. Each example uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_postgres::Client;

pub type Failure = Box<dyn std::error::Error>;

/// The `local-stack` binary on a free port, stopped with SIGTERM so its functions stop too.
pub struct Stack {
    child: Child,
    port: u16,
    stand_ins: Option<String>,
}

impl Stack {
    /// Starts the server for `project` (run from the repository root) and waits until it is ready.
    pub async fn start(project: &Path, db_url: &str, extra: &[&str]) -> Result<Self, Failure> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let root = std::env::current_dir()?;
        let mut child = Command::new(local_stack_binary()?)
            .args(["--port", &port.to_string(), "--db-url", db_url, "--project"])
            .arg(project)
            .arg("--deno")
            .arg(root.join("node_modules/.bin/deno"))
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
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
        Ok(Self {
            child,
            port,
            stand_ins,
        })
    }

    pub fn function_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/functions/v1/{name}", self.port)
    }

    /// The stand-ins' base URL, when started with `--offline-apis`.
    pub fn stand_ins(&self) -> Result<&str, Failure> {
        Ok(self
            .stand_ins
            .as_deref()
            .ok_or("the stack printed no stand-ins URL (no --offline-apis?)")?)
    }

    /// Points a webhook of the seed (which names the default port) at this server's function.
    pub async fn point_webhook(
        &self,
        db: &Client,
        webhook: &str,
        function: &str,
    ) -> Result<(), Failure> {
        db.execute(
            "update webhook_configs set url = $1 where name = $2",
            &[&self.function_url(function), &webhook],
        )
        .await?;
        Ok(())
    }

    pub async fn stop(mut self) -> Result<(), Failure> {
        if let Some(pid) = self.child.id() {
            Command::new("kill").arg(pid.to_string()).status().await?;
        }
        self.child.wait().await?;
        Ok(())
    }
}

/// The `local-stack` binary built with the same profile as this example
/// (`target/<profile>/examples/<example>` → `target/<profile>/local-stack`).
fn local_stack_binary() -> Result<std::path::PathBuf, Failure> {
    let example = std::env::current_exe()?;
    let binary = example
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("local-stack"))
        .ok_or("cannot tell where this example was built")?;
    if !binary.exists() {
        return Err(format!("{} is not built", binary.display()).into());
    }
    Ok(binary)
}

/// A new `auth.users` row with a unique e-mail address; returns its id.
pub async fn create_user(db: &Client) -> Result<String, Failure> {
    let row = db
        .query_one(
            "insert into auth.users (id, email, role, aud)
             values (gen_random_uuid(), gen_random_uuid() || '@example.com',
                     'authenticated', 'authenticated')
             returning id::text",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// A trip owned by `owner`; returns its id.
pub async fn create_trip(db: &Client, owner: &str, name: &str) -> Result<i64, Failure> {
    let row = db
        .query_one(
            "insert into trips (user_id, name, destination, start_date, end_date)
             values ($1::text::uuid, $2, 'Lisbon', '2027-06-01', '2027-06-07')
             returning id",
            &[&owner, &name],
        )
        .await?;
    Ok(row.get(0))
}

/// `count` memories of `user` inserted in one statement (one delivery to ai-processing).
pub async fn insert_memories(db: &Client, user: &str, count: i32) -> Result<(), Failure> {
    db.execute(
        "insert into memories (user_id, content, memory_type)
         select $1::text::uuid,
                format('Memory %s: enjoys slow mornings, local markets and trains between cities', n),
                'trip_history'
         from generate_series(1, $2) n",
        &[&user, &count],
    )
    .await?;
    Ok(())
}

/// How many of `user`'s memories have a vector.
pub async fn embedded_memories(db: &Client, user: &str) -> Result<i64, tokio_postgres::Error> {
    let row = db
        .query_one(
            "select count(*) from memories
             where user_id = $1::text::uuid and embedding is not null",
            &[&user],
        )
        .await?;
    Ok(row.get(0))
}

/// Makes the OpenAI stand-in at `stand_ins` take `latency_ms` to answer each embeddings call.
pub async fn set_provider_latency(stand_ins: &str, latency_ms: u64) -> Result<(), Failure> {
    reqwest::Client::new()
        .post(format!(
            "{stand_ins}/_stand-ins/openai/embeddings/behaviour"
        ))
        .body(format!(r#"{{"latency_ms": {latency_ms}}}"#))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
