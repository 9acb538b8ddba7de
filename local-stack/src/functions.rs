//! The edge functions of `supabase/config.toml`, each running its real Deno shim in its own
//! process on a loopback port, as `supabase functions serve` runs them in workers. A process that
//! dies is started again on the same port, as the edge runtime starts a new worker.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// How long a restarted function waits before its first restart, and at most after quick deaths.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(250);
const LONGEST_RESTART_DELAY: Duration = Duration::from_secs(8);
/// A process that ran this long is restarted after the first delay again, not a longer one.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// What `supabase/config.toml` says about one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub name: String,
    /// The shim, resolved against the `supabase/` directory.
    pub entrypoint: PathBuf,
    /// Whether callers need a valid JWT (Supabase's default: yes).
    pub verify_jwt: bool,
}

#[derive(Deserialize)]
struct ConfigToml {
    #[serde(default)]
    functions: BTreeMap<String, FunctionToml>,
}

#[derive(Deserialize)]
struct FunctionToml {
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    entrypoint: Option<String>,
    #[serde(default = "enabled_by_default")]
    verify_jwt: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// The enabled functions of `<supabase_dir>/config.toml`, in name order.
pub fn read_specs(supabase_dir: &Path) -> Result<Vec<FunctionSpec>, String> {
    let path = supabase_dir.join("config.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let config: ConfigToml =
        toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(config
        .functions
        .into_iter()
        .filter(|(_, function)| function.enabled)
        .map(|(name, function)| {
            let entrypoint = match function.entrypoint {
                Some(entrypoint) => supabase_dir.join(entrypoint),
                None => supabase_dir.join("functions").join(&name).join("index.ts"),
            };
            FunctionSpec {
                name,
                entrypoint,
                verify_jwt: function.verify_jwt,
            }
        })
        .collect())
}

/// A function's Deno process, and what it takes to start it again.
pub struct RunningFunction {
    pub name: String,
    pub port: u16,
    pub verify_jwt: bool,
    deno: PathBuf,
    spec: FunctionSpec,
    env: BTreeMap<String, String>,
    child: Child,
}

impl RunningFunction {
    /// Starts the shim with `env` (and nothing else of ours) on a free loopback port.
    pub fn start(
        deno: &Path,
        spec: &FunctionSpec,
        env: &BTreeMap<String, String>,
    ) -> io::Result<Self> {
        let port = free_port()?;
        let child = spawn(deno, spec, env, port)?;
        Ok(Self {
            name: spec.name.clone(),
            port,
            verify_jwt: spec.verify_jwt,
            deno: deno.to_owned(),
            spec: spec.clone(),
            env: env.clone(),
            child,
        })
    }

    /// The process id of the current Deno process (none once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until the function accepts connections, failing if its process ends first.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("{} exited during start-up ({status})", self.name));
            }
            if TcpStream::connect(address).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not listen within {timeout:?}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Asks the process to stop, then kills it if it has not within two seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            send_sigterm(pid);
            if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// Keeps the function running until `shutdown` changes (or its sender is dropped), then
    /// stops it. A process that exits in the meantime is started again on the same port, so the
    /// gateway's route stays valid; quick successive deaths wait longer each time.
    pub async fn supervise(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut delay = FIRST_RESTART_DELAY;
        let mut started = Instant::now();
        loop {
            let status = tokio::select! {
                status = self.child.wait() => status,
                _ = shutdown.changed() => {
                    self.stop().await;
                    return;
                }
            };
            if shutdown.has_changed().unwrap_or(true) {
                return;
            }
            let reason = match status {
                Ok(status) => status.to_string(),
                Err(error) => error.to_string(),
            };
            if started.elapsed() >= STABLE_RUN {
                delay = FIRST_RESTART_DELAY;
            }
            println!("[{}] exited ({reason}); restarting in {delay:?}", self.name);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
                delay = (delay * 2).min(LONGEST_RESTART_DELAY);
                match spawn(&self.deno, &self.spec, &self.env, self.port) {
                    Ok(child) => {
                        self.child = child;
                        break;
                    }
                    Err(error) => eprintln!(
                        "[{}] cannot restart: {error}; trying again in {delay:?}",
                        self.name
                    ),
                }
            }
            started = Instant::now();
            let pid = self
                .pid()
                .map_or_else(|| "?".to_owned(), |pid| pid.to_string());
            println!(
                "[{}] restarted, pid {pid} on 127.0.0.1:{}",
                self.name, self.port
            );
        }
    }
}

/// Starts the shim of `spec` with `env` (and nothing else of ours) on `port`.
fn spawn(
    deno: &Path,
    spec: &FunctionSpec,
    env: &BTreeMap<String, String>,
    port: u16,
) -> io::Result<Child> {
    let directory = spec.entrypoint.parent().unwrap_or(Path::new("."));
    let mut command = Command::new(deno);
    command
        .arg("run")
        .arg("--quiet")
        .arg("--no-prompt")
        .arg("--allow-net")
        .arg("--allow-env")
        .arg(format!("--allow-read={}", directory.display()))
        .arg(&spec.entrypoint)
        .env_clear()
        .envs(inherited_basics())
        .envs(env)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    stop_with_parent(&mut command);
    let mut child = command.spawn()?;
    prefix_output(&spec.name, child.stdout.take());
    prefix_output(&spec.name, child.stderr.take());
    Ok(child)
}

/// What Deno itself needs from our environment (its cache lives under HOME).
fn inherited_basics() -> impl Iterator<Item = (String, String)> {
    ["PATH", "HOME", "DENO_DIR", "TMPDIR"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Copies a child's output lines to ours, each prefixed with the function's name.
fn prefix_output(name: &str, stream: Option<impl AsyncRead + Unpin + Send + 'static>) {
    let Some(stream) = stream else { return };
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            println!("[{name}] {line}");
        }
    });
}

#[allow(unsafe_code)]
fn send_sigterm(pid: i32) {
    // SAFETY: kill(2) with a pid we spawned and still own; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Makes the kernel stop the child when this process dies, even by SIGKILL, so no function
/// outlives the stack.
#[allow(unsafe_code)]
fn stop_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_enabled_functions_and_their_entrypoints() {
        let dir = std::env::temp_dir().join(format!("local-stack-specs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            r#"
project_id = "x"
[functions.b-fn]
entrypoint = "./functions/b-fn/main.ts"
[functions.a-fn]
verify_jwt = false
[functions.off]
enabled = false
"#,
        )
        .unwrap();
        let specs = read_specs(&dir).unwrap();
        assert_eq!(
            specs,
            vec![
                FunctionSpec {
                    name: "a-fn".into(),
                    entrypoint: dir.join("functions/a-fn/index.ts"),
                    verify_jwt: false,
                },
                FunctionSpec {
                    name: "b-fn".into(),
                    entrypoint: dir.join("./functions/b-fn/main.ts"),
                    verify_jwt: true,
                },
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_projects_config_lists_both_functions() {
        let supabase = Path::new(env!("CARGO_MANIFEST_DIR")).join("../supabase");
        let names: Vec<String> = read_specs(&supabase)
            .unwrap()
            .into_iter()
            .map(|spec| spec.name)
            .collect();
        assert_eq!(names, ["ai-processing", "trip-events"]);
    }
}
