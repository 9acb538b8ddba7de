//! `/rest/v1`: a PostgREST-compatible API over the local database, for what the functions and
//! supabase-js use. Each request runs in one transaction as PostgREST runs it: connected as
//! `authenticator`, the role set to the JWT's (`anon` without a user) as `SET LOCAL ROLE` would, the
//! claims in `request.jwt.claims`, so RLS applies exactly as on a hosted project. Statements are
//! prepared once per pooled connection.
//!
//! [`query`] parses the URL, [`sql`] builds the statement, [`auth`] says who calls, [`prefer`]
//! reads `Prefer`, [`catalog`] looks up keys and signatures; this module does the HTTP and the
//! database I/O around them.

mod auth;
mod catalog;
pub mod error;
mod prefer;
mod query;
mod sql;

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use crate::keys;
use auth::{authenticate, Caller};
use catalog::{function_signatures, primary_key};
use error::ApiError;
use prefer::Preferences;
use query::QueryPlan;
use sql::{Relation, Statement, Upsert};

pub const PREFIX: &str = "/rest/v1";
/// The login role and password the local platform (`local-stack/postgres/platform.sql`) gives
/// PostgREST.
const AUTHENTICATOR: (&str, &str) = ("authenticator", "postgres");
const SINGLE_OBJECT: &str = "application/vnd.pgrst.object+json";
const POOL_SIZE: usize = 16;
/// Prepared statements a pooled connection keeps before it starts afresh.
const STATEMENT_CACHE_SIZE: usize = 256;

/// What `supabase/config.toml`'s `[api]` section says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiSettings {
    #[serde(default = "default_schemas")]
    pub schemas: Vec<String>,
    #[serde(default = "default_search_path")]
    pub extra_search_path: Vec<String>,
    pub max_rows: Option<u64>,
}

fn default_schemas() -> Vec<String> {
    vec!["public".into(), "graphql_public".into()]
}

fn default_search_path() -> Vec<String> {
    vec!["public".into(), "extensions".into()]
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            schemas: default_schemas(),
            extra_search_path: default_search_path(),
            max_rows: Some(1000),
        }
    }
}

impl ApiSettings {
    /// The `[api]` section of `<supabase_dir>/config.toml`, with the Supabase CLI's defaults.
    pub fn read(supabase_dir: &Path) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct ConfigToml {
            api: Option<ApiSettings>,
        }
        let path = supabase_dir.join("config.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let config: ConfigToml =
            toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(config.api.unwrap_or_default())
    }
}

/// The `/rest/v1` service: a connection pool and the API settings.
#[derive(Clone)]
pub struct RestApi {
    pool: Pool,
    settings: Arc<ApiSettings>,
}

impl RestApi {
    /// Connects (lazily) to the database of `db_url` as `authenticator`.
    pub fn new(db_url: &str, settings: ApiSettings) -> Result<Self, String> {
        let mut config: tokio_postgres::Config = db_url
            .parse()
            .map_err(|error| format!("bad database URL: {error}"))?;
        config
            .user(AUTHENTICATOR.0)
            .password(AUTHENTICATOR.1)
            .application_name("postgrest (local stack)");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(Self {
            pool,
            settings: Arc::new(settings),
        })
    }

    /// Serves `/rest/v1/*`.
    pub fn router(self) -> Router {
        Router::new()
            .route(&format!("{PREFIX}/{{*path}}"), axum::routing::any(serve))
            .with_state(self)
            .layer(axum::middleware::from_fn(crate::cors::cors))
    }
}

/// The largest request body `/rest/v1` reads. A larger one is refused with 413 before it is read,
/// in the shape of the API gateway that refuses it in front of PostgREST on a hosted project.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

async fn serve(State(api): State<RestApi>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let message = "Request size limit exceeded";
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(serde_json::json!({ "message": message })),
            )
                .into_response();
        }
    };
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let incoming = Incoming {
        method: parts.method.clone(),
        path: path.trim_start_matches('/'),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body,
    };
    match api.handle(&incoming).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The parts of an HTTP request the API reads.
struct Incoming<'a> {
    method: Method,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    body: Bytes,
}

/// What a statement produced.
struct Outcome {
    total: Option<i64>,
    rows: i64,
    /// JSON text of the result, when the statement returns rows.
    body: Option<String>,
}

/// What the response should say besides the outcome.
struct Shape {
    status: StatusCode,
    /// `Accept: application/vnd.pgrst.object+json`.
    single: bool,
    /// Whether the body is sent at all (`return=minimal`, `HEAD`, void functions).
    with_body: bool,
    offset: u64,
    preference_applied: Option<String>,
}

/// A text parameter whose type the statement decides: Postgres parses it with that type's input
/// function, as PostgREST's `unknown`-typed parameters are.
#[derive(Debug)]
struct TextParam(Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

impl RestApi {
    async fn handle(&self, request: &Incoming<'_>) -> Result<Response, ApiError> {
        let caller = authenticate(request.headers, request.query, keys::unix_now())?;
        let reading = matches!(request.method, Method::GET | Method::HEAD);
        let schema = self.schema(request.headers, reading)?;
        let preferences = Preferences::parse(request.headers);
        let single = request
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains(SINGLE_OBJECT));
        if !reading {
            check_content_type(request.headers, &request.body)?;
        }

        let mut client = self
            .pool
            .get()
            .await
            .map_err(|_| ApiError::database_unavailable())?;
        let signed_in = caller.is_signed_in();
        let database = |error: tokio_postgres::Error| ApiError::from_database(&error, signed_in);
        // PostgREST reads in read-only transactions, so a GET never writes (25006 → 405).
        let transaction = client
            .build_transaction()
            .read_only(reading)
            .start()
            .await
            .map_err(database)?;
        self.become_caller(&transaction, &caller, request)
            .await
            .map_err(database)?;

        let (statement, shape) = match request.path.strip_prefix("rpc/") {
            Some(function) => {
                let relation = Relation {
                    schema: &schema,
                    name: function,
                };
                self.plan_call(&transaction, relation, request, single, signed_in)
                    .await?
            }
            None => {
                let relation = Relation {
                    schema: &schema,
                    name: request.path,
                };
                if request.path.is_empty() || request.path.contains('/') {
                    return Err(ApiError::table_not_found(&schema, request.path));
                }
                let plan = table_plan(request)?;
                let statement = self
                    .plan_table(
                        &transaction,
                        relation,
                        request,
                        &plan,
                        &preferences,
                        signed_in,
                    )
                    .await?;
                (statement, table_shape(request, &plan, &preferences, single))
            }
        };

        let outcome = run(&transaction, &statement).await.map_err(|error| {
            let error = ApiError::from_database(&error, signed_in);
            if error.code == "42P01" {
                ApiError::table_not_found(&schema, request.path)
            } else {
                error
            }
        })?;
        if shape.single && statement.returns_rows && outcome.rows != 1 {
            // PostgREST undoes the mutation when the single row it promised is not there.
            transaction.rollback().await.map_err(database)?;
            return Err(ApiError::not_single(outcome.rows));
        }
        transaction.commit().await.map_err(database)?;
        // Each statement is prepared once per connection (PostgREST prepares its statements
        // too); a caller sending ever new queries cannot grow a connection's cache past this.
        if client.statement_cache.size() > STATEMENT_CACHE_SIZE {
            client.statement_cache.clear();
        }
        Ok(respond(outcome, &shape))
    }

    fn schema(&self, headers: &HeaderMap, reading: bool) -> Result<String, ApiError> {
        let profile = if reading {
            "accept-profile"
        } else {
            "content-profile"
        };
        let exposed = &self.settings.schemas;
        match headers.get(profile).map(|v| v.to_str().unwrap_or_default()) {
            None => Ok(exposed.first().cloned().unwrap_or_else(|| "public".into())),
            Some(schema) if exposed.iter().any(|s| s == schema) => Ok(schema.to_owned()),
            Some(schema) => Err(ApiError::schema_not_exposed(schema, exposed)),
        }
    }

    /// The role and the request settings PostgREST gives every transaction, in one statement as
    /// PostgREST sets them (`set_config('role', …, true)` is `SET LOCAL ROLE`).
    async fn become_caller(
        &self,
        transaction: &Transaction<'_>,
        caller: &Caller,
        request: &Incoming<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        let search_path = self
            .settings
            .extra_search_path
            .iter()
            .map(|schema| sql::ident(schema))
            .collect::<Vec<_>>()
            .join(", ");
        let path = format!("{PREFIX}/{}", request.path);
        let settings = transaction
            .prepare_cached(
                "SELECT set_config('role', $1, true), \
                        set_config('request.jwt.claims', $2, true), \
                        set_config('search_path', $3, true), \
                        set_config('request.method', $4, true), \
                        set_config('request.path', $5, true)",
            )
            .await?;
        transaction
            .execute(
                &settings,
                &[
                    &caller.role,
                    &caller.claims.to_string(),
                    &search_path,
                    &request.method.as_str(),
                    &path,
                ],
            )
            .await?;
        Ok(())
    }

    async fn plan_table(
        &self,
        transaction: &Transaction<'_>,
        relation: Relation<'_>,
        request: &Incoming<'_>,
        plan: &QueryPlan,
        preferences: &Preferences,
        signed_in: bool,
    ) -> Result<Statement, ApiError> {
        let max_rows = self.settings.max_rows;
        let representation = preferences.representation;
        match request.method {
            Method::GET | Method::HEAD => {
                Ok(sql::read(relation, plan, preferences.count, max_rows))
            }
            Method::POST => {
                let rows = json_rows(&request.body)?;
                let columns = match &plan.columns {
                    Some(columns) => columns.clone(),
                    None => keys_of(&rows),
                };
                if columns.is_empty() {
                    return Err(ApiError::invalid_body(
                        "the body names no columns to insert",
                    ));
                }
                let upsert = match preferences.resolution {
                    None => None,
                    Some(resolution) => {
                        let conflict_columns = match &plan.on_conflict {
                            Some(columns) => columns.clone(),
                            None => primary_key(transaction, relation)
                                .await
                                .map_err(|error| ApiError::from_database(&error, signed_in))?,
                        };
                        Some(Upsert {
                            resolution,
                            conflict_columns,
                        })
                    }
                };
                let rows = Value::Array(rows).to_string();
                Ok(sql::insert(
                    relation,
                    plan,
                    &columns,
                    rows,
                    upsert.as_ref(),
                    representation,
                ))
            }
            Method::PATCH => {
                reject_paging(plan)?;
                let Value::Object(values) = json_body(&request.body)? else {
                    return Err(ApiError::invalid_body("expected a JSON object"));
                };
                let columns: Vec<String> = match &plan.columns {
                    Some(columns) => columns.clone(),
                    None => values.keys().cloned().collect(),
                };
                if columns.is_empty() {
                    return Err(ApiError::invalid_body(
                        "the body names no columns to update",
                    ));
                }
                Ok(sql::update(
                    relation,
                    plan,
                    &columns,
                    Value::Object(values).to_string(),
                    representation,
                ))
            }
            Method::DELETE => {
                reject_paging(plan)?;
                Ok(sql::delete(relation, plan, representation))
            }
            _ => Err(method_not_allowed(&request.method)),
        }
    }

    async fn plan_call(
        &self,
        transaction: &Transaction<'_>,
        function: Relation<'_>,
        request: &Incoming<'_>,
        single: bool,
        signed_in: bool,
    ) -> Result<(Statement, Shape), ApiError> {
        let signatures = function_signatures(transaction, function)
            .await
            .map_err(|error| ApiError::from_database(&error, signed_in))?;
        let argument_names: Vec<String> = signatures
            .iter()
            .flat_map(|s| s.arguments.iter().map(|(name, _)| name.clone()))
            .collect();
        let plan = QueryPlan::parse(request.query, &argument_names)?;
        let arguments = match request.method {
            Method::POST if request.body.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Method::POST => match json_body(&request.body)? {
                Value::Object(arguments) => arguments,
                _ => {
                    return Err(ApiError::invalid_body(
                        "expected a JSON object of arguments",
                    ))
                }
            },
            Method::GET | Method::HEAD => plan
                .arguments
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect(),
            _ => return Err(method_not_allowed(&request.method)),
        };
        let given: Vec<String> = arguments.keys().cloned().collect();
        let signature = signatures
            .iter()
            .find(|signature| signature.accepts(&given))
            .ok_or_else(|| ApiError::function_not_found(function.schema, function.name, &given))?;
        let statement = sql::call(
            function,
            signature,
            &given,
            Value::Object(arguments).to_string(),
            &plan,
            self.settings.max_rows,
        );
        let shape = Shape {
            status: if signature.returns_void {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::OK
            },
            single: single && signature.returns_rows,
            with_body: !signature.returns_void && request.method != Method::HEAD,
            offset: plan.offset.unwrap_or(0),
            preference_applied: None,
        };
        let composite = signature.returns_rows && !signature.returns_set;
        Ok((
            statement,
            Shape {
                single: shape.single || composite,
                ..shape
            },
        ))
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "PGRST117".into(),
        message: format!("Unsupported HTTP method: {method}"),
        details: None,
        hint: None,
    }
}

fn reject_paging(plan: &QueryPlan) -> Result<(), ApiError> {
    if plan.limit.is_some() || plan.offset.is_some() {
        return Err(ApiError::parse(
            "\"limit and offset are not supported on PATCH and DELETE by the local stack\"".into(),
            "filter the rows to change instead".into(),
        ));
    }
    Ok(())
}

/// The query string's plan, with an HTTP `Range: items` header (what the `postgrest` crate sends
/// for `limit`, `range` and counts) as `offset`/`limit` where the query string sets none.
fn table_plan(request: &Incoming<'_>) -> Result<QueryPlan, ApiError> {
    let mut plan = QueryPlan::parse(request.query, &[])?;
    let range = request
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| matches!(request.method, Method::GET | Method::HEAD));
    if let Some(range) = range {
        let bad = || ApiError::range_not_satisfiable(range);
        let (first, last) = range
            .trim_start_matches("items=")
            .split_once('-')
            .ok_or_else(bad)?;
        let first: u64 = first.trim().parse().map_err(|_| bad())?;
        let last: Option<u64> = match last.trim() {
            "" => None,
            last => Some(last.parse().map_err(|_| bad())?),
        };
        if last.is_some_and(|last| last < first) {
            return Err(bad());
        }
        plan.offset = plan.offset.or(Some(first));
        plan.limit = plan.limit.or(last.map(|last| last - first + 1));
    }
    Ok(plan)
}

fn table_shape(
    request: &Incoming<'_>,
    plan: &QueryPlan,
    preferences: &Preferences,
    single: bool,
) -> Shape {
    let plan_offset = plan.offset.unwrap_or(0);
    let (status, with_body, mutation) = match request.method {
        Method::GET => (StatusCode::OK, true, false),
        Method::HEAD => (StatusCode::OK, false, false),
        Method::POST => (StatusCode::CREATED, preferences.representation, true),
        _ if preferences.representation => (StatusCode::OK, true, true),
        _ => (StatusCode::NO_CONTENT, false, true),
    };
    Shape {
        status,
        single: single && (with_body || !mutation),
        with_body,
        offset: plan_offset,
        preference_applied: preferences.applied(mutation),
    }
}

fn check_content_type(headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let json = content_type.starts_with("application/json")
        || content_type.starts_with("application/vnd.pgrst");
    if json || body.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(content_type))
    }
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::invalid_body(error.to_string()))
}

/// An insert body: one object or an array of objects.
fn json_rows(body: &Bytes) -> Result<Vec<Value>, ApiError> {
    let rows = match json_body(body)? {
        Value::Array(rows) => rows,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(ApiError::invalid_body(
                "expected an object or an array of objects",
            ))
        }
    };
    if rows.iter().all(Value::is_object) {
        Ok(rows)
    } else {
        Err(ApiError::invalid_body(
            "every element must be a JSON object",
        ))
    }
}

/// The keys of all objects, in order of first appearance (what supabase-js sends as `columns`).
fn keys_of(rows: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for key in rows.iter().filter_map(Value::as_object).flat_map(Map::keys) {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}

async fn run(
    transaction: &Transaction<'_>,
    statement: &Statement,
) -> Result<Outcome, tokio_postgres::Error> {
    let params: Vec<TextParam> = statement.params.iter().cloned().map(TextParam).collect();
    let params: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let prepared = transaction.prepare_cached(&statement.sql).await?;
    if !statement.returns_rows {
        let rows = transaction.execute(&prepared, &params).await?;
        return Ok(Outcome {
            total: None,
            rows: i64::try_from(rows).unwrap_or(i64::MAX),
            body: None,
        });
    }
    let row = transaction.query_one(&prepared, &params).await?;
    Ok(Outcome {
        total: row.get(0),
        rows: row.get(1),
        body: row.get(2),
    })
}

fn respond(outcome: Outcome, shape: &Shape) -> Response {
    let mut status = shape.status;
    let range = if outcome.rows == 0 {
        "*".to_owned()
    } else {
        let first = shape.offset;
        let last = first + u64::try_from(outcome.rows).unwrap_or(0) - 1;
        format!("{first}-{last}")
    };
    let total = outcome.total.map_or("*".to_owned(), |t| t.to_string());
    if let Some(total) = outcome.total {
        let end = shape.offset + u64::try_from(outcome.rows).unwrap_or(0);
        if status == StatusCode::OK && (shape.offset > 0 || i64::try_from(end).unwrap_or(0) < total)
        {
            status = StatusCode::PARTIAL_CONTENT;
        }
    }
    let body = match (shape.with_body, outcome.body) {
        (false, _) => String::new(),
        (true, Some(body)) if shape.single => first_element(&body),
        (true, Some(body)) => body,
        (true, None) => "null".to_owned(),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    let content_type = if shape.single {
        "application/vnd.pgrst.object+json; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("{range}/{total}")) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    if let Some(applied) = shape
        .preference_applied
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert("preference-applied", applied);
    }
    response
}

/// The one object of a JSON array (`null` when empty, for a composite function returning none).
fn first_element(array: &str) -> String {
    match serde_json::from_str::<Value>(array) {
        Ok(Value::Array(mut items)) if !items.is_empty() => items.swap_remove(0).to_string(),
        Ok(Value::Array(_)) => "null".to_owned(),
        _ => array.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::sql::Resolution;
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_jwt_decides_the_role() {
        let now = 1_800_000_000;
        let anon = keys::role_key("anon");
        let service = keys::role_key("service_role");
        let caller = authenticate(&headers(&[("apikey", &anon)]), "", now).unwrap();
        assert_eq!(caller.role, "anon");
        let bearer = format!("Bearer {service}");
        let caller = authenticate(
            &headers(&[("apikey", &anon), ("authorization", &bearer)]),
            "",
            now,
        )
        .unwrap();
        assert_eq!(caller.role, "service_role");
        let user = keys::user_key("8b0c…", "a@example.com", now);
        let caller = authenticate(
            &headers(&[("authorization", &format!("Bearer {user}"))]),
            "",
            now,
        )
        .unwrap();
        assert_eq!(caller.role, "authenticated");
        assert_eq!(caller.claims["sub"], "8b0c…");
        let caller = authenticate(&HeaderMap::new(), &format!("apikey={anon}"), now).unwrap();
        assert_eq!(caller.role, "anon");
    }

    #[test]
    fn missing_bad_and_expired_keys_are_401() {
        let now = 1_800_000_000;
        let error = authenticate(&HeaderMap::new(), "", now).unwrap_err();
        assert_eq!(
            (error.status, error.message.as_str()),
            (StatusCode::UNAUTHORIZED, "No API key found in request")
        );
        let forged = format!("{}x", keys::role_key("service_role"));
        let error = authenticate(&headers(&[("apikey", &forged)]), "", now).unwrap_err();
        assert_eq!(
            (error.status, error.code.as_str()),
            (StatusCode::UNAUTHORIZED, "PGRST301")
        );
        let expired = keys::user_key("u", "a@example.com", now - 7200);
        let error = authenticate(&headers(&[("apikey", &expired)]), "", now).unwrap_err();
        assert_eq!(error.code, "PGRST303");
    }

    #[test]
    fn prefer_headers_combine() {
        let preferences = Preferences::parse(&headers(&[
            ("prefer", "return=representation,count=exact"),
            ("prefer", "resolution=merge-duplicates"),
        ]));
        assert!(preferences.representation && preferences.count);
        assert_eq!(preferences.resolution, Some(Resolution::MergeDuplicates));
        assert_eq!(
            preferences.applied(true).as_deref(),
            Some("return=representation, resolution=merge-duplicates, count=exact")
        );
    }

    #[test]
    fn insert_columns_are_the_union_of_keys() {
        let rows = json_rows(&Bytes::from_static(br#"[{"a":1,"b":2},{"c":3,"a":4}]"#)).unwrap();
        assert_eq!(keys_of(&rows), vec!["a", "b", "c"]);
        assert!(json_rows(&Bytes::from_static(b"[1]")).is_err());
        assert!(json_rows(&Bytes::from_static(b"nope")).is_err());
    }

    #[test]
    fn content_range_and_partial_content() {
        let shape = Shape {
            status: StatusCode::OK,
            single: false,
            with_body: true,
            offset: 10,
            preference_applied: None,
        };
        let outcome = Outcome {
            total: Some(100),
            rows: 5,
            body: Some("[]".into()),
        };
        let response = respond(outcome, &shape);
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "10-14/100");
        let shape = Shape { offset: 0, ..shape };
        let outcome = Outcome {
            total: None,
            rows: 0,
            body: Some("[]".into()),
        };
        let response = respond(outcome, &shape);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "*/*");
    }
}
