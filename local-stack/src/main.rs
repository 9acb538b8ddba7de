//! `local-stack`: runs TripSage Edge on one machine without Docker, on the Supabase CLI's ports.
//! For now: the API gateway with both edge functions behind `/functions/v1/<name>` (restarted
//! when their process dies), and with `--db-url` `/rest/v1` and the pg_net delivery worker for
//! that database.

mod functions;
mod gateway;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use functions::{read_specs, RunningFunction};
use gateway::{Gateway, Upstream};
use local_stack::rest::{ApiSettings, RestApi};
use local_stack::standins::StandIns;
use local_stack::{keys, pg_net_worker};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

const USAGE: &str = "\
usage: local-stack [--port PORT] [--project DIR] [--env-file FILE] [--deno PATH] [--db-url URL]
                   [--offline-apis]

  --port PORT      API gateway port on 127.0.0.1 (default 54321, as the Supabase CLI)
  --project DIR    the project root holding supabase/ (default: current directory)
  --env-file FILE  extra environment for the functions (default: supabase/functions/.env if present)
  --deno PATH      the Deno binary (default: node_modules/.bin/deno, then deno on PATH)
  --db-url URL     serve /rest/v1 over that database and deliver its pg_net requests
  --offline-apis   start local stand-ins for OpenAI, Resend and the calendar endpoint and point
                   the functions at them (wire-compatible, NOT semantic: embeddings are
                   hash-seeded vectors, chat replies are placeholders, nothing is delivered)";

struct Options {
    port: u16,
    project: PathBuf,
    env_file: Option<PathBuf>,
    deno: Option<PathBuf>,
    db_url: Option<String>,
    offline_apis: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        port: 54321,
        project: PathBuf::from("."),
        env_file: None,
        deno: None,
        db_url: None,
        offline_apis: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => options.port = value()?.parse().map_err(|_| "--port: not a port")?,
            "--project" => options.project = value()?.into(),
            "--env-file" => options.env_file = Some(value()?.into()),
            "--deno" => options.deno = Some(value()?.into()),
            "--db-url" => options.db_url = Some(value()?),
            "--offline-apis" => options.offline_apis = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("local-stack: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let supabase_dir = options.project.join("supabase");
    let specs = read_specs(&supabase_dir)?;
    let deno = options
        .deno
        .clone()
        .unwrap_or_else(|| default_deno(&options.project));
    let api_url = format!("http://127.0.0.1:{}", options.port);
    let mut env = function_env(&api_url, &supabase_dir, options.env_file.as_deref())?;
    let stand_ins = if options.offline_apis {
        let stand_ins = StandIns::start(0)
            .await
            .map_err(|error| format!("cannot start the offline API stand-ins: {error}"))?;
        env.extend(stand_ins.function_env());
        Some(stand_ins)
    } else {
        None
    };

    // Bind first: a busy port should fail before any process starts.
    let address = SocketAddr::from((IpAddr::V4(Ipv4Addr::LOCALHOST), options.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))?;

    let mut running = Vec::new();
    for spec in &specs {
        let function = RunningFunction::start(&deno, spec, &env).map_err(|error| {
            format!(
                "cannot start {} with {}: {error}",
                spec.name,
                deno.display()
            )
        })?;
        running.push(function);
    }
    for function in &mut running {
        if let Err(message) = function.wait_ready(Duration::from_secs(30)).await {
            stop_all(running).await;
            return Err(message);
        }
    }
    let upstreams = running
        .iter()
        .map(|f| {
            let upstream = Upstream {
                port: f.port,
                verify_jwt: f.verify_jwt,
            };
            (f.name.clone(), upstream)
        })
        .collect();
    let worker = options
        .db_url
        .clone()
        .map(|url| tokio::spawn(deliver_forever(url)));
    let rest = match &options.db_url {
        Some(url) => Some(RestApi::new(url, ApiSettings::read(&supabase_dir)?)?),
        None => None,
    };
    print_status(
        &api_url,
        options.db_url.as_deref(),
        stand_ins.as_ref(),
        &running,
    );

    // Each function is restarted on its port when its process dies, until the stack stops.
    let (stopping, shutdown) = watch::channel(false);
    let supervisors: Vec<_> = running
        .into_iter()
        .map(|function| tokio::spawn(function.supervise(shutdown.clone())))
        .collect();

    // The supervisors hear of the stop as soon as it is asked for (Ctrl-C also reaches the
    // functions directly, and those must not be restarted), or when the server ends otherwise.
    let server = axum::serve(listener, Gateway::new(upstreams).router(rest))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stopping.send(true);
        });
    let served = server.await.map_err(|error| error.to_string());
    println!("Stopping the local stack…");
    if let Some(worker) = worker {
        worker.abort();
    }
    for supervisor in supervisors {
        let _ = supervisor.await;
    }
    served
}

/// Runs the pg_net worker, connecting again a second after the database goes away.
async fn deliver_forever(db_url: String) {
    loop {
        if let Err(message) = pg_net_worker::run(&db_url).await {
            eprintln!("local-stack: {message}; retrying in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn stop_all(running: Vec<RunningFunction>) {
    for function in running {
        function.stop().await;
    }
}

async fn shutdown_signal() {
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn default_deno(project: &Path) -> PathBuf {
    let local = project.join("node_modules/.bin/deno");
    if local.exists() {
        local
    } else {
        PathBuf::from("deno")
    }
}

/// What a deployed function would get, pointed at this stack, then the env file's overrides.
fn function_env(
    api_url: &str,
    supabase_dir: &Path,
    env_file: Option<&Path>,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::from([
        ("SUPABASE_URL".to_owned(), api_url.to_owned()),
        ("SUPABASE_ANON_KEY".to_owned(), keys::role_key("anon")),
        (
            "SUPABASE_SERVICE_ROLE_KEY".to_owned(),
            keys::role_key("service_role"),
        ),
        ("WEBHOOK_SECRET".to_owned(), keys::WEBHOOK_SECRET.to_owned()),
    ]);
    let default_file = supabase_dir.join("functions/.env");
    let file = match env_file {
        Some(file) => Some(file.to_owned()),
        None => default_file.exists().then_some(default_file),
    };
    if let Some(file) = file {
        let text = std::fs::read_to_string(&file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        env.extend(parse_env_file(&text));
    }
    Ok(env)
}

/// `NAME=value` lines; `#` comments, blank lines and surrounding quotes as in dotenv files.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line
                .strip_prefix("export ")
                .unwrap_or(line)
                .split_once('=')?;
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_owned(), unquoted.to_owned()))
        })
        .collect()
}

fn print_status(
    api_url: &str,
    db_url: Option<&str>,
    stand_ins: Option<&StandIns>,
    running: &[RunningFunction],
) {
    println!("TripSage Edge local stack is running (local development credentials only).\n");
    println!("         API URL: {api_url}");
    if let Some(db_url) = db_url {
        println!("          DB URL: {db_url}  (pg_net requests delivered)");
    }
    if db_url.is_some() {
        println!("        REST URL: {api_url}/rest/v1");
    }
    println!("   Functions URL: {api_url}/functions/v1");
    println!("      JWT secret: {}", keys::JWT_SECRET);
    println!("        anon key: {}", keys::role_key("anon"));
    println!("service_role key: {}", keys::role_key("service_role"));
    println!("  webhook secret: {}\n", keys::WEBHOOK_SECRET);
    for function in running {
        let pid = function
            .pid()
            .map_or_else(|| "?".to_owned(), |pid| pid.to_string());
        println!(
            "  {:<14} {api_url}/functions/v1/{}  (Deno on 127.0.0.1:{}) pid {pid}",
            function.name, function.name, function.port
        );
    }
    if let Some(stand_ins) = stand_ins {
        let base = stand_ins.base_url();
        println!("\n  Offline API stand-ins on {base} (wire-compatible, NOT semantic):");
        println!(
            "    OpenAI {base}/openai/v1, Resend {base}/resend/emails, calendar {base}/calendar"
        );
        println!("    sent e-mails: {base}/_stand-ins/emails, calendar posts: {base}/_stand-ins/calendar");
    }
    println!("\nPress Ctrl-C to stop.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_like_dotenv() {
        let parsed = parse_env_file(
            "# comment\n\nOPENAI_API_KEY=sk-1\nexport EMAIL_FROM=\"Trips <t@x.io>\"\nAPP_URL='http://x'\nnot a pair\n",
        );
        assert_eq!(
            parsed,
            vec![
                ("OPENAI_API_KEY".to_owned(), "sk-1".to_owned()),
                ("EMAIL_FROM".to_owned(), "Trips <t@x.io>".to_owned()),
                ("APP_URL".to_owned(), "http://x".to_owned()),
            ]
        );
    }

    #[test]
    fn functions_get_the_stack_url_and_keys() {
        let env = function_env("http://127.0.0.1:9", Path::new("/nonexistent"), None).unwrap();
        assert_eq!(env["SUPABASE_URL"], "http://127.0.0.1:9");
        assert_eq!(env["WEBHOOK_SECRET"], keys::WEBHOOK_SECRET);
        assert!(env["SUPABASE_SERVICE_ROLE_KEY"].starts_with("eyJ"));
    }
}
