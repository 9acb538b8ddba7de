//! A burst on the local stack (with `--offline-apis`, so invitation e-mails go to the Resend
//! stand-in): N collaborators added to one trip in one `insert … select` statement, one
//! transaction. Each row's trigger queues one trip-events delivery; the pg_net worker sends them
//! after the commit. Measures, from the commit (the autocommitted statement returning):
//!
//! - until every collaborator's invitation is in `notifications`;
//! - until every delivery has a `succeeded` attempt in `webhook_logs` (the pg_cron collector that
//!   reads pg_net's answers runs every 5 seconds, so this lags the notifications by up to 5 s);
//!
//! then waits two more seconds for stragglers and counts what was lost (collaborators without an
//! invitation or an e-mail), duplicated (invitations beyond one per user, trip and type; e-mails
//! beyond one per recipient in `/_stand-ins/emails`), retried and dead-lettered. Exits with an
//! error if anything was lost, duplicated or dead. The last line printed is the figures as JSON.
//!
//! By hand, with the stack and the wasm built: `cargo run -p local-stack --example burst --
//! DB_URL [N]`; `scripts/bench` runs it with N = 1000.

mod stack;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::{create_trip, create_user, Failure, Stack};
use tokio_postgres::NoTls;

const USAGE: &str = "usage: burst DB_URL [N]";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let db_url = args.next().ok_or(USAGE)?;
    let count: i64 = args.next().map_or(Ok(1000), |n| n.parse())?;
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
    db.execute(
        "insert into auth.users (id, email, role, aud)
         select gen_random_uuid(), format('%s-%s@example.com', $1::text, n),
                'authenticated', 'authenticated'
         from generate_series(1, $2::int8) n",
        &[&tag, &count],
    )
    .await?;

    let added = db
        .execute(
            "insert into trip_collaborators (trip_id, user_id, added_by)
             select $1, id, $2::text::uuid from auth.users where email like $3 || '-%'",
            &[&trip, &owner, &tag],
        )
        .await?;
    let committed = Instant::now();
    if added != count as u64 {
        return Err(format!("added {added} collaborators, not {count}").into());
    }

    let notified_query = db
        .prepare(
            "select count(distinct user_id) from notifications
             where type = 'trip_collaboration_invite' and (metadata ->> 'trip_id')::bigint = $1",
        )
        .await?;
    let succeeded_query = db
        .prepare(
            "select count(distinct webhook_id) filter (where status = 'succeeded'),
                    count(*) filter (where status = 'dead')
             from webhook_logs
             where event_type = 'trip.collaborator.added' and (payload ->> 'trip_id')::bigint = $1",
        )
        .await?;
    let (mut notified_after, mut succeeded_after) = (None, None);
    while notified_after.is_none() || succeeded_after.is_none() {
        if committed.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        if notified_after.is_none() {
            let notified: i64 = db.query_one(&notified_query, &[&trip]).await?.get(0);
            if notified == count {
                notified_after = Some(committed.elapsed());
            }
        }
        if succeeded_after.is_none() {
            let row = db.query_one(&succeeded_query, &[&trip]).await?;
            let (succeeded, dead): (i64, i64) = (row.get(0), row.get(1));
            if succeeded == count {
                succeeded_after = Some(committed.elapsed());
            }
            if dead > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

    let seconds = |after: Option<Duration>| after.map(|after| after.as_secs_f64());
    let took = |after: Option<Duration>| match after {
        Some(after) => format!("{:.2} s", after.as_secs_f64()),
        None => "never".to_owned(),
    };
    let lost = (count - notified) + (count - emailed);
    let duplicates = duplicate_notifications + duplicate_emails;
    let figures = json!({
        "collaborators": count,
        "notified": notified, "emailed": emailed, "delivered": delivered,
        "lost": lost, "duplicates": duplicates, "retries": retries, "dead": dead,
        "notified_s": seconds(notified_after), "drained_s": seconds(succeeded_after),
    });
    println!(
        "{count} collaborators added in one transaction: {notified} notified, {emailed} e-mailed, \
         {delivered} deliveries succeeded ({retries} retries, {dead} dead); lost {lost}, \
         duplicates {duplicates}; all notified after {}, all deliveries succeeded after {}",
        took(notified_after),
        took(succeeded_after),
    );
    println!("{figures}");
    if lost > 0 || duplicates > 0 || dead > 0 || succeeded_after.is_none() {
        return Err("the burst lost, duplicated or failed deliveries".into());
    }
    Ok(())
}
