//! The functions' PostgREST client: the `postgrest` crate with the service role's key, and the
//! receipts that make a delivery's webhook-id idempotent (SPEC §5: the same webhook-id again is
//! answered `{"duplicate": true}`).

use postgrest::{Builder, Postgrest};
use serde_json::{json, Value};

use crate::config::SupabaseConfig;
use crate::error::EdgeError;
use crate::function::Outcome;
use crate::upstream::send_json;

const SERVICE: &str = "postgrest";

/// PostgREST as the service role (RLS bypassed: the functions act for the system).
pub struct ServiceRest {
    client: Postgrest,
}

impl ServiceRest {
    pub fn new(config: &SupabaseConfig) -> Self {
        let key = config.service_role_key.expose();
        let client = Postgrest::new(format!("{}/rest/v1", config.url))
            .insert_header("apikey", key)
            .insert_header("authorization", format!("Bearer {key}"));
        Self { client }
    }

    pub fn from(&self, table: &str) -> Builder {
        self.client.from(table)
    }

    pub fn rpc(&self, function: &str, arguments: &Value) -> Builder {
        self.client.rpc(function, arguments.to_string())
    }

    /// Sends a request built with [`Self::from`] or [`Self::rpc`]; its JSON answer.
    pub async fn execute(&self, request: Builder) -> Result<Value, EdgeError> {
        send_json(SERVICE, request.build()).await
    }

    /// Inserts `rows` (an object or an array), skipping those that conflict on the unique
    /// `on_conflict` columns; the rows actually inserted.
    pub async fn insert_new(
        &self,
        table: &str,
        on_conflict: &str,
        rows: &Value,
    ) -> Result<Vec<Value>, EdgeError> {
        // `insert` asks for the representation; ignore-duplicates keeps what is there.
        let request = self
            .from(table)
            .insert(rows.to_string())
            .on_conflict(on_conflict)
            .build()
            .header("prefer", "resolution=ignore-duplicates");
        match send_json(SERVICE, request).await? {
            Value::Array(rows) => Ok(rows),
            other => Err(unexpected(&other)),
        }
    }

    /// The rows of a request that answers an array.
    pub async fn rows(&self, request: Builder) -> Result<Vec<Value>, EdgeError> {
        match self.execute(request).await? {
            Value::Array(rows) => Ok(rows),
            other => Err(unexpected(&other)),
        }
    }
}

/// A 2xx answer of the wrong shape.
fn unexpected(value: &Value) -> EdgeError {
    EdgeError::Upstream {
        service: SERVICE,
        status: Some(200),
        retry_after_seconds: None,
        message: format!("expected an array of rows, got {}", kind(value)),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `webhook_receipts`: which deliveries `function` has completed.
pub struct Receipts<'a> {
    rest: &'a ServiceRest,
    function: &'static str,
}

impl<'a> Receipts<'a> {
    pub fn new(rest: &'a ServiceRest, function: &'static str) -> Self {
        Self { rest, function }
    }

    /// Whether this webhook-id was completed before.
    pub async fn seen(&self, webhook_id: &str) -> Result<bool, EdgeError> {
        let request = self
            .rest
            .from("webhook_receipts")
            .select("webhook_id")
            .eq("function_name", self.function)
            .eq("webhook_id", webhook_id);
        Ok(!self.rest.rows(request).await?.is_empty())
    }

    /// Records a completed delivery; recording it twice is harmless.
    pub async fn record(
        &self,
        webhook_id: &str,
        event: &str,
        outcome: &Outcome,
    ) -> Result<(), EdgeError> {
        let row = json!({
            "function_name": self.function,
            "webhook_id": webhook_id,
            "event": event,
            "outcome": outcome,
        });
        // The first outcome is the one to keep: ignore-duplicates, not a merge.
        self.rest
            .insert_new("webhook_receipts", "function_name,webhook_id", &row)
            .await
            .map(drop)
    }
}
