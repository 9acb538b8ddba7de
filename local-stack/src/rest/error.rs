//! PostgREST's error body (`code`, `message`, `details`, `hint`) and its status for each error:
//! its own `PGRSTxxx` errors and, for database errors, the mapping of the SQLSTATE it documents.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: None,
            hint: None,
        }
    }

    fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// PGRST100: the query string does not parse.
    pub fn parse(message: String, details: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "PGRST100", message).with_details(details)
    }

    /// PGRST102: the body is not the JSON the request needs.
    pub fn invalid_body(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "PGRST102", "Empty or invalid json")
            .with_details(details)
    }

    /// PGRST103: a `Range` header that names no valid range.
    pub fn range_not_satisfiable(range: &str) -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "PGRST103",
            "Requested range not satisfiable",
        )
        .with_details(format!("invalid range `{range}`"))
    }

    /// PGRST106: `Accept-Profile` / `Content-Profile` names a schema that is not exposed.
    pub fn schema_not_exposed(schema: &str, exposed: &[String]) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST106",
            format!("Invalid schema: {schema}"),
        )
        .with_hint(format!(
            "Only the following schemas are exposed: {}",
            exposed.join(", ")
        ))
    }

    /// PGRST107: a body in a media type other than JSON.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PGRST107",
            format!("None of these media types are available: {content_type}"),
        )
    }

    /// PGRST116: `Accept: application/vnd.pgrst.object+json` but not exactly one row.
    pub fn not_single(rows: i64) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
        )
        .with_details(format!("The result contains {rows} rows"))
    }

    /// PGRST202: no function of that name takes those arguments.
    pub fn function_not_found(schema: &str, name: &str, arguments: &[String]) -> Self {
        let arguments = arguments.join(", ");
        Self::new(
            StatusCode::NOT_FOUND,
            "PGRST202",
            format!("Could not find the function {schema}.{name}({arguments}) in the schema cache"),
        )
        .with_hint("No function matches the given name and argument names.")
    }

    /// PGRST205: no such table or view.
    pub fn table_not_found(schema: &str, table: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "PGRST205",
            format!("Could not find the table '{schema}.{table}' in the schema cache"),
        )
    }

    /// PGRST301: the JWT is malformed or not signed with the project's secret.
    pub fn invalid_jwt(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "PGRST301", message)
    }

    /// PGRST303: the JWT's `exp` has passed, or its `nbf` or `iat` is ahead.
    pub fn jwt_time(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "PGRST303", message)
    }

    /// PGRST000: the database could not be reached.
    pub fn database_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            "Could not connect to the database",
        )
    }

    /// An error raised by Postgres, with PostgREST's status for its SQLSTATE. `authenticated`
    /// tells a permission error of a signed-in role (403) from one of `anon` (401).
    pub fn from_database(error: &tokio_postgres::Error, authenticated: bool) -> Self {
        let Some(db) = error.as_db_error() else {
            return Self::database_unavailable();
        };
        let code = db.code().code();
        Self {
            status: status_for_sqlstate(code, authenticated),
            code: code.to_owned(),
            message: db.message().to_owned(),
            details: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
        }
    }
}

/// PostgREST's documented SQLSTATE → HTTP status table.
pub fn status_for_sqlstate(code: &str, authenticated: bool) -> StatusCode {
    let class = code.get(..2).unwrap_or_default();
    match (code, class) {
        ("42501", _) if authenticated => StatusCode::FORBIDDEN,
        ("42501", _) => StatusCode::UNAUTHORIZED,
        ("23503" | "23505", _) => StatusCode::CONFLICT,
        ("25006", _) => StatusCode::METHOD_NOT_ALLOWED,
        ("42883" | "42P01", _) => StatusCode::NOT_FOUND,
        ("42P17", _) => StatusCode::INTERNAL_SERVER_ERROR,
        ("P0001", _) => StatusCode::BAD_REQUEST,
        (_, "08" | "53") => StatusCode::SERVICE_UNAVAILABLE,
        (_, "0L" | "0P" | "28") => StatusCode::FORBIDDEN,
        (_, "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58")
        | (_, "F0" | "HV" | "P0" | "XX") => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_postgrest_statuses() {
        let cases = [
            ("23505", true, 409),
            ("23503", true, 409),
            ("42501", true, 403),
            ("42501", false, 401),
            ("42P01", true, 404),
            ("42883", true, 404),
            ("P0001", true, 400),
            ("22P02", true, 400),
            ("23502", true, 400),
            ("57014", true, 500),
            ("08006", true, 503),
            ("25006", true, 405),
            ("28000", true, 403),
        ];
        for (code, authenticated, status) in cases {
            assert_eq!(
                status_for_sqlstate(code, authenticated).as_u16(),
                status,
                "{code}"
            );
        }
    }
}
