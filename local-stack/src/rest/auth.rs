//! Who is calling: the role and claims of the request's JWT (`Authorization: Bearer`, else
//! `apikey`), refused in PostgREST's words when missing, forged or out of date.

use axum::http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use super::error::ApiError;
use crate::keys::{self, JwtError};

/// Who is asking: the role to switch to and the claims RLS policies read.
#[derive(Debug)]
pub(super) struct Caller {
    pub(super) role: String,
    pub(super) claims: Value,
}

impl Caller {
    pub(super) fn is_signed_in(&self) -> bool {
        self.role != "anon"
    }
}

/// The caller's role and claims from `Authorization: Bearer <jwt>`, else the `apikey` header or
/// query parameter, as Supabase's gateway and PostgREST decide them.
pub(super) fn authenticate(headers: &HeaderMap, query: &str, now: i64) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let apikey = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "apikey")
                .map(|(_, value)| value.into_owned())
        });
    let Some(token) = bearer.or(apikey) else {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "PGRST301".into(),
            message: "No API key found in request".into(),
            details: None,
            hint: Some("No `apikey` request header or url param was found.".into()),
        });
    };
    let claims = keys::verify_jwt(token.trim(), now).map_err(|error| match error {
        JwtError::Expired => ApiError::jwt_time("JWT expired"),
        JwtError::NotYetValid => ApiError::jwt_time("JWT not yet valid"),
        JwtError::IssuedInFuture => ApiError::jwt_time("JWT issued at future"),
        JwtError::BadSignature => ApiError::invalid_jwt("JWSError JWSInvalidSignature"),
        JwtError::Malformed => ApiError::invalid_jwt("JWSError (CompactDecodeError Invalid JWT)"),
    })?;
    let role = claims
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("anon")
        .to_owned();
    Ok(Caller { role, claims })
}
