//! What the native tests of the functions and of the stack share: the test database's URL,
//! `/rest/v1` on a free port over it, a superuser connection for fixtures, the API stand-ins, and
//! the requests the database queued for a webhook, exactly as pg_net would send them.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use crate::keys;
use crate::rest::{ApiSettings, RestApi};
use crate::standins::StandIns;

/// The test database's URL: `./scripts/test` starts a throwaway database and sets it.
pub fn database_url() -> String {
    std::env::var("TRIPSAGE_TEST_DB_URL").unwrap_or_else(|_| {
        panic!(
            "TRIPSAGE_TEST_DB_URL is not set: these tests need the TripSage database. \
             Run ./scripts/test, or `scripts/db start` and then \
             TRIPSAGE_TEST_DB_URL=$(scripts/db url) cargo test --workspace --features database-tests"
        )
    })
}

/// A request as the database queued it: its headers and body bytes.
pub struct QueuedRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct TestStack {
    /// The database owner, for fixtures and checks.
    pub db: Client,
    /// `http://127.0.0.1:PORT`, serving `/rest/v1`.
    pub rest_url: String,
    pub stand_ins: StandIns,
}

impl TestStack {
    pub async fn start() -> Self {
        let url = database_url();
        let api = RestApi::new(&url, ApiSettings::default()).expect("the REST API starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let rest_url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, api.router()).await });
        let (db, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to TRIPSAGE_TEST_DB_URL: {error}"));
        tokio::spawn(connection);
        let stand_ins = StandIns::start(0).await.expect("stand-ins start");
        Self {
            db,
            rest_url,
            stand_ins,
        }
    }

    /// The events the database's `event_catalog` routes to a function, emitted or not.
    pub async fn catalog_events(&self, function_name: &str) -> std::collections::BTreeSet<String> {
        self.db
            .query(
                "select event_type from public.event_catalog where function_name = $1",
                &[&function_name],
            )
            .await
            .expect("the event catalog is readable")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// What every deployed function gets, pointed at this stack (no external APIs).
    pub fn function_env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("SUPABASE_URL".into(), self.rest_url.clone()),
            (
                "SUPABASE_SERVICE_ROLE_KEY".into(),
                keys::role_key("service_role"),
            ),
            ("WEBHOOK_SECRET".into(), keys::WEBHOOK_SECRET.into()),
        ])
    }

    /// A new row in `auth.users` (a unique address ending in `email`); its id.
    pub async fn user(&self, email: &str, full_name: Option<&str>) -> String {
        let meta = full_name.map(|name| serde_json::json!({ "full_name": name }));
        self.db
            .query_one(
                "insert into auth.users (id, email, role, aud, raw_user_meta_data)
                 values (gen_random_uuid(), gen_random_uuid() || '-' || $1, 'authenticated',
                         'authenticated', $2)
                 returning id::text",
                &[&email, &meta],
            )
            .await
            .expect("create a user")
            .get(0)
    }

    /// The newest request the database queued for `webhook` and `event` whose payload contains
    /// `fragment`.
    pub async fn queued(&self, webhook: &str, event: &str, fragment: &Value) -> QueuedRequest {
        let row = self
            .db
            .query_one(
                "select q.headers, q.body
                 from webhook_logs l join net.http_request_queue q on q.id = l.request_id
                 where l.webhook_name = $1 and l.event_type = $2 and l.payload @> $3
                 order by l.id desc limit 1",
                &[&webhook, &event, fragment],
            )
            .await
            .unwrap_or_else(|error| panic!("no queued {event} with {fragment}: {error}"));
        let headers: Value = row.get(0);
        let headers = headers
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        QueuedRequest {
            headers,
            body: row.get(1),
        }
    }
}
