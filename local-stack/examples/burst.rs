//! A burst on the local stack (with `--offline-apis`, so invitation e-mails go to the Resend
//! stand-in): N collaborators added to one trip, either
//!
//! - `statement`: in one `insert … select` statement, one transaction (one wake of the pg_net
//!   worker, which then takes the queue `pg_net.batch_size` at a time with its rest between), or
//! - `clients K`: as N transactions of one insert each, from K concurrent connections.
//!
//! Each row's trigger queues one trip-events delivery; the pg_net worker sends them after the
//! commit. Measures, from the first insert's start (for `statement`, its commit):
//!
//! - until every collaborator's invitation is in `notifications`;
//! - until every delivery has a `succeeded` attempt in `webhook_logs` (the pg_cron collector reads
//!   pg_net's answers every second, so this lags the notifications by up to a second);
//! - the CPU time of the database, Deno (the functions) and the `local-stack` server (gateway,
//!   `/rest/v1`, stand-ins) over the burst, per delivery;
//!
//! then waits two more seconds for stragglers and counts what was lost (collaborators without an
//! invitation or an e-mail), duplicated (invitations beyond one per user, trip and type; e-mails
//! beyond one per recipient in `/_stand-ins/emails`), retried and dead-lettered. It polls only the
//! rows written since it began (by id), every 20 ms, so that watching costs the database little.
//! Exits with an error if anything was lost, duplicated or dead. The last line printed is the
//! figures as JSON.
//!
//! By hand, with the stack and the wasm built: `cargo run -p local-stack --example burst --
//! DB_URL [N [statement | clients K]]`; `scripts/bench` runs both with N = 1000 and K = 8, and the
//! statement again with `pg_net.batch_size` 1000 (set in the URL's `options`, which the stack's
//! worker connects with).

mod stack;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::{create_trip, create_user, Failure, Stack};
use tokio_postgres::NoTls;

const USAGE: &str = "usage: burst DB_URL [N [statement | clients K]]";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);
/// The processes whose CPU time is counted, by the name the kernel gives them.
const PROCESSES: [&str; 3] = ["postgres", "deno", "local-stack"];

/// How the collaborators are added.
enum Shape {
    Statement,
    Clients(usize),
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let db_url = args.next().ok_or(USAGE)?;
    let count: i64 = args.next().map_or(Ok(1000), |n| n.parse())?;
    let shape = match args.next().as_deref() {
        None | Some("statement") => Shape::Statement,
        Some("clients") => Shape::Clients(args.next().ok_or(USAGE)?.parse()?),
        Some(_) => return Err(USAGE.into()),
    };
    let root = std::env::current_dir()?;
    let stack = Stack::start(&root, &db_url, &["--offline-apis"]).await?;
    let (db, connection) = tokio_postgres::connect(&db_url, NoTls).await?;
    tokio::spawn(connection);
    stack
        .point_webhook(&db, "trip_events", "trip-events")
        .await?;
    let owner = create_user(&db).await?;
    let trip = create_trip(&db, &owner, "Burst").await?;
    let tag = format!("burst-{}-{trip}", std::process::id());
    let users: Vec<String> = db
        .query(
            "insert into auth.users (id, email, role, aud)
             select gen_random_uuid(), format('%s-%s@example.com', $1::text, n),
                    'authenticated', 'authenticated'
             from generate_series(1, $2::int8) n
             returning id::text",
            &[&tag, &count],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Only rows written from here on are looked at.
    let marks = db
        .query_one(
            "select (select coalesce(max(id), 0) from notifications),
                    (select coalesce(max(id), 0) from webhook_logs)",
            &[],
        )
        .await?;
    let (notifications_mark, logs_mark): (i64, i64) = (marks.get(0), marks.get(1));
    // The worker's batch size as this URL sets it (pg_net.batch_size in its options), if at all.
    let batch_size: Option<String> = db
        .query_one("select current_setting('pg_net.batch_size', true)", &[])
        .await?
        .get(0);
    let batch_size: i64 = batch_size.and_then(|n| n.parse().ok()).unwrap_or(200);
    let cpu_before = cpu_seconds();

    let (started, described) = match shape {
        Shape::Statement => {
            let added = db
                .execute(
                    "insert into trip_collaborators (trip_id, user_id, added_by)
                     select $1, id, $2::text::uuid from auth.users where email like $3 || '-%'",
                    &[&trip, &owner, &tag],
                )
                .await?;
            if added != count as u64 {
                return Err(format!("added {added} collaborators, not {count}").into());
            }
            (Instant::now(), "in one transaction".to_owned())
        }
        Shape::Clients(clients) => {
            let started = Instant::now();
            add_from_clients(&db_url, trip, &owner, &users, clients).await?;
            (
                started,
                format!(
                    "as {count} transactions from {clients} clients (all committed after {:.2} s)",
                    started.elapsed().as_secs_f64()
                ),
            )
        }
    };
    let committed = started;

    let notified_query = db
        .prepare(
            "select count(distinct user_id) from notifications
             where id > $2 and type = 'trip_collaboration_invite'
               and (metadata ->> 'trip_id')::bigint = $1",
        )
        .await?;
    let succeeded_query = db
        .prepare(
            "select count(distinct webhook_id) filter (where status = 'succeeded'),
                    count(*) filter (where status = 'dead')
             from webhook_logs
             where id > $2 and event_type = 'trip.collaborator.added'
               and (payload ->> 'trip_id')::bigint = $1",
        )
        .await?;
    let (mut notified_after, mut succeeded_after) = (None, None);
    while notified_after.is_none() || succeeded_after.is_none() {
        if committed.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        if notified_after.is_none() {
            let notified: i64 = db
                .query_one(&notified_query, &[&trip, &notifications_mark])
                .await?
                .get(0);
            if notified == count {
                notified_after = Some(committed.elapsed());
            }
        }
        if succeeded_after.is_none() {
            let row = db.query_one(&succeeded_query, &[&trip, &logs_mark]).await?;
            let (succeeded, dead): (i64, i64) = (row.get(0), row.get(1));
            if succeeded == count {
                succeeded_after = Some(committed.elapsed());
            }
            if dead > 0 {
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let cpu_after = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let row = db
        .query_one(
            "select count(distinct user_id), count(*) - count(distinct (user_id, type))
             from notifications where (metadata ->> 'trip_id')::bigint = $1",
            &[&trip],
        )
        .await?;
    let (notified, duplicate_notifications): (i64, i64) = (row.get(0), row.get(1));
    let row = db
        .query_one(
            "select count(distinct webhook_id) filter (where status = 'succeeded'),
                    count(*) - count(distinct webhook_id),
                    count(*) filter (where status = 'dead')
             from webhook_logs
             where event_type = 'trip.collaborator.added' and (payload ->> 'trip_id')::bigint = $1",
            &[&trip],
        )
        .await?;
    let (delivered, retries, dead): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));

    let inbox: Value = reqwest::get(format!("{}/_stand-ins/emails", stack.stand_ins()?))
        .await?
        .json()
        .await?;
    let mut emails_per_recipient: HashMap<String, i64> = HashMap::new();
    let recipients = inbox["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|sent| sent["email"]["to"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .filter(|to| to.starts_with(&format!("{tag}-")));
    for to in recipients {
        *emails_per_recipient.entry(to.to_owned()).or_default() += 1;
    }
    let emailed = emails_per_recipient.len() as i64;
    let duplicate_emails: i64 = emails_per_recipient.values().map(|n| n - 1).sum();
    stack.stop().await?;

    let cpu_ms: Vec<(&str, f64)> = PROCESSES
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|(name, (before, after))| (*name, (after - before) * 1000.0 / count as f64))
        .collect();
    let seconds = |after: Option<Duration>| after.map(|after| after.as_secs_f64());
    let took = |after: Option<Duration>| match after {
        Some(after) => format!("{:.2} s", after.as_secs_f64()),
        None => "never".to_owned(),
    };
    let lost = (count - notified) + (count - emailed);
    let duplicates = duplicate_notifications + duplicate_emails;
    let figures = json!({
        "collaborators": count, "added": described, "batch_size": batch_size,
        "notified": notified, "emailed": emailed, "delivered": delivered,
        "lost": lost, "duplicates": duplicates, "retries": retries, "dead": dead,
        "notified_s": seconds(notified_after), "drained_s": seconds(succeeded_after),
        "per_second": succeeded_after.map(|after| count as f64 / after.as_secs_f64()),
        "cpu_ms_per_delivery": cpu_ms.iter().map(|(name, ms)| (name.to_string(), json!(ms)))
            .collect::<serde_json::Map<_, _>>(),
    });
    println!(
        "{count} collaborators added {described}: {notified} notified, {emailed} e-mailed, \
         {delivered} deliveries succeeded ({retries} retries, {dead} dead); lost {lost}, \
         duplicates {duplicates}; all notified after {}, all deliveries succeeded after {}; \
         CPU per delivery: {}",
        took(notified_after),
        took(succeeded_after),
        cpu_ms
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.2} ms"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    println!("{figures}");
    if lost > 0 || duplicates > 0 || dead > 0 || succeeded_after.is_none() {
        return Err("the burst lost, duplicated or failed deliveries".into());
    }
    Ok(())
}

/// `users` added as collaborators one transaction each, from `clients` connections at once.
async fn add_from_clients(
    db_url: &str,
    trip: i64,
    owner: &str,
    users: &[String],
    clients: usize,
) -> Result<(), Failure> {
    let mut tasks = Vec::new();
    for share in users.chunks(users.len().div_ceil(clients.max(1))) {
        let (client, connection) = tokio_postgres::connect(db_url, NoTls).await?;
        tokio::spawn(connection);
        let share = share.to_vec();
        let owner = owner.to_owned();
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare(
                    "insert into trip_collaborators (trip_id, user_id, added_by)
                     values ($1, $2::text::uuid, $3::text::uuid)",
                )
                .await?;
            for user in &share {
                client.execute(&insert, &[&trip, user, &owner]).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// CPU seconds (user and system) used so far by the processes named in [`PROCESSES`], summed by
/// name, from `/proc/<pid>/stat`. Processes that ended are not counted.
fn cpu_seconds() -> [f64; 3] {
    // USER_HZ is 100 on Linux.
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut totals = [0.0; 3];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let Some(slot) = PROCESSES.iter().position(|wanted| *wanted == name) else {
            continue;
        };
        // After the name: state, ppid, … ; utime and stime are the 12th and 13th of those.
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .map(|both| both.iter().filter_map(|f| f.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        totals[slot] += ticks / TICKS_PER_SECOND;
    }
    totals
}
