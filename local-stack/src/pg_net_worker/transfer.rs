//! One batch of requests sent concurrently with libcurl, the library real pg_net is built on, so
//! the bytes on the wire, redirects, https and the error texts are libcurl's own.
//!
//! A libcurl multi handle cannot move between threads, so it lives on a thread of its own for the
//! worker's lifetime (connections are kept alive from one batch to the next, as in pg_net) and
//! batches reach it over a channel.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use curl::easy::{Easy2, Handler, List, WriteError};
use curl::multi::{Easy2Handle, Multi};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::{QueuedRequest, RecordedResponse, USER_AGENT};

/// How long one wait for socket activity lasts before libcurl's timers are run again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

type Job = (Vec<QueuedRequest>, oneshot::Sender<Vec<RecordedResponse>>);

/// The handle to the thread that owns the libcurl multi handle.
pub struct Transfers {
    jobs: mpsc::Sender<Job>,
}

impl Transfers {
    /// Starts the transfer thread; it ends when the handle is dropped.
    pub fn start() -> Result<Self, String> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("pg_net transfers".into())
            .spawn(move || {
                let multi = Multi::new();
                for (requests, reply) in queue {
                    let _ = reply.send(send_all(&multi, requests));
                }
            })
            .map_err(|e| format!("pg_net worker cannot start its transfer thread: {e}"))?;
        Ok(Self { jobs })
    }

    /// Sends every request of the batch at once and returns their outcomes, in the batch's
    /// order, when the last one has finished or timed out.
    pub async fn send(
        &self,
        requests: Vec<QueuedRequest>,
    ) -> Result<Vec<RecordedResponse>, String> {
        let (reply, outcomes) = oneshot::channel();
        self.jobs
            .send((requests, reply))
            .map_err(|_| "the pg_net transfer thread has stopped".to_string())?;
        outcomes
            .await
            .map_err(|_| "the pg_net transfer thread has stopped".to_string())
    }
}

/// What libcurl hands back while a transfer runs: the body, and the header lines of the first
/// response (pg_net reads headers with `curl_easy_nextheader` for request 0, so after a redirect
/// the recorded headers are the redirect's while the status and body are the final answer's).
#[derive(Default)]
struct Collector {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    /// Final (non-1xx) responses whose status line has been seen.
    responses: usize,
    /// Whether the header block being read belongs to an interim 1xx response.
    interim: bool,
}

impl Handler for Collector {
    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.body.extend_from_slice(data);
        Ok(data.len())
    }

    fn header(&mut self, data: &[u8]) -> bool {
        let line = String::from_utf8_lossy(data);
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(status_line) = line.strip_prefix("HTTP/") {
            let code = status_line.split_whitespace().nth(1).unwrap_or("");
            self.interim = code.starts_with('1');
            if !self.interim {
                self.responses += 1;
            }
        } else if let Some((name, value)) = line.split_once(':') {
            if self.responses == 1 && !self.interim {
                self.headers
                    .push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
            }
        }
        true
    }
}

fn send_all(multi: &Multi, requests: Vec<QueuedRequest>) -> Vec<RecordedResponse> {
    let mut outcomes: Vec<Option<RecordedResponse>> = requests.iter().map(|_| None).collect();
    let mut running: Vec<Option<Easy2Handle<Collector>>> = Vec::with_capacity(requests.len());
    for (token, request) in requests.iter().enumerate() {
        let added = prepare(request).and_then(|easy| {
            let mut handle = multi.add2(easy).map_err(|e| e.to_string())?;
            handle.set_token(token).map_err(|e| e.to_string())?;
            Ok(handle)
        });
        match added {
            Ok(handle) => running.push(Some(handle)),
            Err(message) => {
                outcomes[token] = Some(RecordedResponse::failure(message));
                running.push(None);
            }
        }
    }
    while running.iter().any(Option::is_some) {
        if let Err(error) = multi.perform() {
            let message = error.description().to_owned();
            for (token, handle) in running.iter_mut().enumerate() {
                if let Some(handle) = handle.take() {
                    let _ = multi.remove2(handle);
                    outcomes[token] = Some(RecordedResponse::failure(message.clone()));
                }
            }
            break;
        }
        let mut finished = Vec::new();
        multi.messages(|message| {
            let Ok(token) = message.token() else { return };
            if let Some(handle) = running.get(token).and_then(Option::as_ref) {
                if let Some(result) = message.result_for2(handle) {
                    finished.push((token, result));
                }
            }
        });
        for (token, result) in finished {
            let Some(handle) = running[token].take() else {
                continue;
            };
            outcomes[token] = Some(match multi.remove2(handle) {
                Ok(mut easy) => describe(&mut easy, result, &requests[token]),
                Err(error) => RecordedResponse::failure(error.description().to_owned()),
            });
        }
        if running.iter().any(Option::is_some) {
            let _ = multi.wait(&mut [], POLL_INTERVAL);
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| RecordedResponse::failure("not sent".into())))
        .collect()
}

/// An easy handle set up as pg_net sets one up for a queued request.
fn prepare(request: &QueuedRequest) -> Result<Easy2<Collector>, String> {
    let fail = |error: curl::Error| error.description().to_owned();
    let mut easy = Easy2::new(Collector::default());
    easy.url(&request.url).map_err(fail)?;
    // The body goes to libcurl as a C string, so it ends at the first NUL byte.
    let body = request
        .body
        .as_deref()
        .map(|bytes| bytes.split(|byte| *byte == 0).next().unwrap_or_default());
    match (request.method.to_ascii_uppercase().as_str(), body) {
        ("GET", Some(body)) => {
            easy.post_fields_copy(body).map_err(fail)?;
            easy.custom_request("GET").map_err(fail)?;
        }
        ("GET", None) => {}
        ("POST", Some(body)) => easy.post_fields_copy(body).map_err(fail)?,
        ("POST", None) => {
            easy.post(true).map_err(fail)?;
            easy.post_field_size(0).map_err(fail)?;
        }
        ("DELETE", body) => {
            easy.custom_request("DELETE").map_err(fail)?;
            if let Some(body) = body {
                easy.post_fields_copy(body).map_err(fail)?;
            }
        }
        (other, _) => return Err(format!("Unsupported request method {other}")),
    }
    let mut headers = List::new();
    for line in &request.headers {
        headers.append(line).map_err(fail)?;
    }
    headers
        .append(&format!("User-Agent: {USER_AGENT}"))
        .map_err(fail)?;
    easy.http_headers(headers).map_err(fail)?;
    let timeout = u64::try_from(request.timeout_milliseconds).unwrap_or(0);
    easy.timeout(Duration::from_millis(timeout)).map_err(fail)?;
    easy.follow_location(true).map_err(fail)?;
    Ok(easy)
}

fn describe(
    easy: &mut Easy2<Collector>,
    result: Result<(), curl::Error>,
    request: &QueuedRequest,
) -> RecordedResponse {
    if let Err(error) = result {
        return RecordedResponse::failure(if error.is_operation_timedout() {
            timeout_message(easy, request.timeout_milliseconds)
        } else {
            error.description().to_owned()
        });
    }
    let status_code = easy
        .response_code()
        .ok()
        .and_then(|code| i32::try_from(code).ok());
    let content_type = easy.content_type().ok().flatten().map(str::to_owned);
    let collected = easy.get_mut();
    let mut headers = Map::new();
    for (name, value) in collected.headers.drain(..) {
        headers.insert(name, Value::String(value));
    }
    // pg_net stores the body as a C string: it ends at the first NUL byte, and nothing is NULL.
    // (Bytes that are not UTF-8 are stored as they came by pg_net; PostgreSQL refuses them from a
    // client, so here they become U+FFFD.)
    let body = collected
        .body
        .split(|byte| *byte == 0)
        .next()
        .unwrap_or_default();
    let content = (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned());
    RecordedResponse {
        status_code,
        content_type,
        headers: Some(Value::Object(headers)),
        content,
        timed_out: Some(false),
        error_msg: None,
    }
}

/// pg_net's timeout text: where the time went, from libcurl's timings, in milliseconds.
fn timeout_message(easy: &Easy2<Collector>, timeout_milliseconds: i32) -> String {
    let seconds = |timing: Result<Duration, curl::Error>| {
        timing.map(|duration| duration.as_secs_f64()).unwrap_or(0.0)
    };
    let timings = Timings {
        name_lookup: seconds(easy.namelookup_time()),
        connect: seconds(easy.connect_time()),
        app_connect: seconds(easy.appconnect_time()),
        pre_transfer: seconds(easy.pretransfer_time()),
        total: seconds(easy.total_time()),
    };
    let (dns, handshake, http) = timings.split();
    format!(
        "Timeout of {timeout_milliseconds} ms reached. Total time: {:.6} ms (DNS time: {:.6} ms, \
         TCP/SSL handshake time: {:.6} ms, HTTP Request/Response time: {:.6} ms)",
        timings.total * 1000.0,
        dns * 1000.0,
        handshake * 1000.0,
        http * 1000.0,
    )
}

/// libcurl's cumulative timings of one transfer, in seconds from its start (0 for a step that
/// never happened).
struct Timings {
    name_lookup: f64,
    connect: f64,
    app_connect: f64,
    pre_transfer: f64,
    total: f64,
}

impl Timings {
    /// Seconds spent resolving, in the TCP and TLS handshakes, and in the HTTP exchange. The step
    /// the timeout cut short gets the rest of the total.
    fn split(&self) -> (f64, f64, f64) {
        if self.name_lookup == 0.0 && self.connect == 0.0 {
            (self.total, 0.0, 0.0)
        } else if self.pre_transfer == 0.0 {
            (self.name_lookup, self.total - self.name_lookup, 0.0)
        } else {
            let tls = if self.app_connect > 0.0 {
                self.app_connect - self.connect
            } else {
                0.0
            };
            (
                self.name_lookup,
                self.connect - self.name_lookup + tls,
                self.total - self.pre_transfer,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_a_timeout_cut_short_gets_the_rest_of_the_total() {
        let resolving = Timings {
            name_lookup: 0.0,
            connect: 0.0,
            app_connect: 0.0,
            pre_transfer: 0.0,
            total: 0.5,
        };
        assert_eq!(resolving.split(), (0.5, 0.0, 0.0));
        let connecting = Timings {
            name_lookup: 0.1,
            connect: 0.0,
            app_connect: 0.0,
            pre_transfer: 0.0,
            total: 0.5,
        };
        assert_eq!(connecting.split(), (0.1, 0.4, 0.0));
        let waiting = Timings {
            name_lookup: 0.125,
            connect: 0.25,
            app_connect: 0.375,
            pre_transfer: 0.375,
            total: 1.0,
        };
        assert_eq!(waiting.split(), (0.125, 0.25, 0.625));
    }
}
