//! The functions' PostgREST client: requests built as PostgREST reads them (filters in the
//! query, `Prefer` for what to return and how to resolve conflicts), sent with the service
//! role's key; and the receipts that make a delivery's webhook-id idempotent (the same
//! webhook-id again is answered `{"duplicate": true}`).

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::SupabaseConfig;
use crate::error::EdgeError;
use crate::fetch::HttpRequest;
use crate::function::outcome_value;
use crate::upstream::{send_json, Quote};

const SERVICE: &str = "postgrest";

/// PostgREST as the service role (RLS bypassed: the functions act for the system).
pub struct ServiceRest {
    base_url: String,
    key: String,
}

/// One PostgREST request being built: `from(table)` or `rpc(function)`, then filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    method: &'static str,
    url: String,
    query: Vec<(String, String)>,
    prefer: Vec<&'static str>,
    body: Option<String>,
    key: String,
}

impl Builder {
    /// The columns to return (`select=`).
    pub fn select(mut self, columns: &str) -> Self {
        self.query.push(("select".to_owned(), columns.to_owned()));
        self
    }

    /// Rows whose `column` equals `value`.
    pub fn eq(mut self, column: &str, value: impl AsRef<str>) -> Self {
        self.query
            .push((column.to_owned(), format!("eq.{}", value.as_ref())));
        self
    }

    /// Inserts `rows` (a JSON object or array), answering the inserted rows.
    pub fn insert(mut self, rows: String) -> Self {
        self.method = "POST";
        self.body = Some(rows);
        self.prefer.push("return=representation");
        self
    }

    /// The unique columns an insert's conflicts are resolved on.
    pub fn on_conflict(mut self, columns: &str) -> Self {
        self.query
            .push(("on_conflict".to_owned(), columns.to_owned()));
        self
    }

    /// Rows that conflict are left as they are.
    pub fn ignore_duplicates(mut self) -> Self {
        self.prefer.push("resolution=ignore-duplicates");
        self
    }

    pub fn build(self) -> HttpRequest {
        let mut url = self.url;
        for (index, (name, value)) in self.query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.push_str(&form_encode(name));
            url.push('=');
            url.push_str(&form_encode(value));
        }
        let mut request = HttpRequest {
            method: self.method,
            url,
            headers: vec![("apikey", self.key.clone())],
            body: self.body,
        }
        .bearer(&self.key);
        if request.method != "GET" {
            request = request.header("content-type", "application/json");
        }
        if !self.prefer.is_empty() {
            request = request.header("prefer", self.prefer.join(","));
        }
        request
    }
}

/// `application/x-www-form-urlencoded` encoding of one query name or value.
fn form_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                encoded.push(char::from(byte));
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

impl ServiceRest {
    pub fn new(config: &SupabaseConfig) -> Self {
        Self {
            base_url: format!("{}/rest/v1", config.url),
            key: config.service_role_key.expose().to_owned(),
        }
    }

    fn builder(&self, method: &'static str, path: &str) -> Builder {
        Builder {
            method,
            url: format!("{}/{path}", self.base_url),
            query: Vec::new(),
            prefer: Vec::new(),
            body: None,
            key: self.key.clone(),
        }
    }

    pub fn from(&self, table: &str) -> Builder {
        self.builder("GET", table)
    }

    pub fn rpc(&self, function: &str, arguments: &Value) -> Builder {
        let mut builder = self.builder("POST", &format!("rpc/{function}"));
        builder.body = Some(arguments.to_string());
        builder
    }

    /// Sends a request built with [`Self::from`] or [`Self::rpc`]; its JSON answer.
    pub async fn execute(&self, request: Builder) -> Result<Value, EdgeError> {
        send_json(SERVICE, Quote::Message, request.build()).await
    }

    /// Inserts `rows` (an object or an array), skipping those that conflict on the unique
    /// `on_conflict` columns; the rows actually inserted.
    pub async fn insert_new(
        &self,
        table: &str,
        on_conflict: &str,
        rows: &Value,
    ) -> Result<Vec<Value>, EdgeError> {
        let request = self
            .from(table)
            .insert(rows.to_string())
            .on_conflict(on_conflict)
            .ignore_duplicates();
        self.rows(request).await
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
    EdgeError::upstream(
        SERVICE,
        Some(200),
        None,
        format!("expected an array of rows, got {}", kind(value)),
    )
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

/// One delivery's row in `webhook_receipts`, which lists the deliveries each function has
/// completed.
pub struct Receipt {
    rest: ServiceRest,
    function: &'static str,
    webhook_id: String,
    event: String,
}

impl Receipt {
    pub fn new(
        config: &SupabaseConfig,
        function: &'static str,
        webhook_id: &str,
        event: &str,
    ) -> Self {
        Self {
            rest: ServiceRest::new(config),
            function,
            webhook_id: webhook_id.to_owned(),
            event: event.to_owned(),
        }
    }

    /// Whether the delivery was completed before.
    pub async fn seen(&self) -> Result<bool, EdgeError> {
        let request = self
            .rest
            .from("webhook_receipts")
            .select("webhook_id")
            .eq("function_name", self.function)
            .eq("webhook_id", &self.webhook_id);
        Ok(!self.rest.rows(request).await?.is_empty())
    }

    /// Records the delivery as completed with `outcome`; recording it twice is harmless.
    pub async fn record(&self, outcome: &impl Serialize) -> Result<(), EdgeError> {
        let row = json!({
            "function_name": self.function,
            "webhook_id": self.webhook_id,
            "event": self.event,
            "outcome": outcome_value(outcome)?,
        });
        // The first outcome is the one to keep: ignore-duplicates, not a merge.
        self.rest
            .insert_new("webhook_receipts", "function_name,webhook_id", &row)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn rest() -> ServiceRest {
        ServiceRest::new(&SupabaseConfig {
            url: "http://127.0.0.1:54321".to_owned(),
            service_role_key: Secret::new("service-key"),
        })
    }

    #[test]
    fn selects_put_filters_in_the_query() {
        let request = rest()
            .from("trips")
            .select("id,name")
            .eq("id", "42")
            .eq("name", "a b&c")
            .build();
        assert_eq!(request.method, "GET");
        assert_eq!(
            request.url,
            "http://127.0.0.1:54321/rest/v1/trips?select=id%2Cname&id=eq.42&name=eq.a+b%26c"
        );
        assert_eq!(request.body, None);
        assert!(request
            .headers
            .contains(&("apikey", "service-key".to_owned())));
        assert!(request
            .headers
            .contains(&("authorization", "Bearer service-key".to_owned())));
        assert!(!request.headers.iter().any(|(name, _)| *name == "prefer"));
    }

    #[test]
    fn inserts_ask_for_the_rows_and_may_ignore_duplicates() {
        let request = rest()
            .from("notifications")
            .insert("[]".to_owned())
            .on_conflict("dedup_key")
            .ignore_duplicates()
            .build();
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.url,
            "http://127.0.0.1:54321/rest/v1/notifications?on_conflict=dedup_key"
        );
        assert_eq!(request.body.as_deref(), Some("[]"));
        assert!(request
            .headers
            .contains(&("content-type", "application/json".to_owned())));
        assert!(request.headers.contains(&(
            "prefer",
            "return=representation,resolution=ignore-duplicates".to_owned()
        )));
    }

    #[test]
    fn rpcs_post_their_arguments() {
        let request = rest()
            .rpc("get_user_contact", &json!({"p_user_id": "u"}))
            .build();
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.url,
            "http://127.0.0.1:54321/rest/v1/rpc/get_user_contact"
        );
        assert_eq!(request.body.as_deref(), Some(r#"{"p_user_id":"u"}"#));
    }
}
