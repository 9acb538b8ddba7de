//! The local stack's well-known development credentials, the same as the Supabase CLI's: an
//! HS256 JWT secret and the `anon` and `service_role` keys signed with it. Local use only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
/// The webhook secret `supabase/seed.sql` configures for local deliveries.
pub const WEBHOOK_SECRET: &str = "whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==";
/// The Supabase CLI's demo keys expire in 2032.
const DEMO_EXPIRY: i64 = 1_983_812_996;

/// A JWT for `role`, as the Supabase CLI prints for `anon` and `service_role`.
pub fn role_key(role: &str) -> String {
    // Claims in the CLI's order, so the keys come out byte for byte as the CLI's.
    let role = serde_json::Value::from(role);
    sign_jwt(&format!(
        r#"{{"iss":"supabase-demo","role":{role},"exp":{DEMO_EXPIRY}}}"#
    ))
}

/// An access token for a signed-in user, with the claims GoTrue puts in one, valid for an hour
/// from `now` (Unix seconds).
pub fn user_key(user_id: &str, email: &str, now: i64) -> String {
    let claims = serde_json::json!({
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "sub": user_id,
        "email": email,
        "role": "authenticated",
        "aal": "aal1",
        "session_id": user_id,
        "is_anonymous": false,
    });
    sign_jwt(&claims.to_string())
}

fn sign_jwt(claims: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let signing_input = format!("{header}.{payload}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Now in Unix seconds, the clock JWT expiry is checked against.
pub fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Why a JWT was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    BadSignature,
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `iat` is ahead.
    IssuedInFuture,
}

/// The clock skew PostgREST allows on `exp`, `nbf` and `iat`.
pub const JWT_CLOCK_SKEW_SECONDS: i64 = 30;

/// Checks an HS256 JWT against the local secret (the signature, then `exp`, `nbf` and `iat`
/// against `now` in Unix seconds, each with PostgREST's [`JWT_CLOCK_SKEW_SECONDS`]) and returns
/// its claims. Like PostgREST without `jwt-aud`, `aud` is not checked.
pub fn verify_jwt(token: &str, now: i64) -> Result<serde_json::Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode_json = |part: &str| -> Result<serde_json::Value, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
    };
    if decode_json(header)?["alg"] != "HS256" {
        return Err(JwtError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;
    let claims = decode_json(payload)?;
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or(JwtError::Malformed),
    };
    if time("exp")?.is_some_and(|exp| now - JWT_CLOCK_SKEW_SECONDS >= exp) {
        return Err(JwtError::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now + JWT_CLOCK_SKEW_SECONDS) {
        return Err(JwtError::NotYetValid);
    }
    if time("iat")?.is_some_and(|iat| iat > now + JWT_CLOCK_SKEW_SECONDS) {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_supabase_clis_demo_keys() {
        assert_eq!(
            role_key("anon"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
        );
    }

    #[test]
    fn keys_are_hs256_jwts_for_their_role() {
        let key = role_key("service_role");
        let parts: Vec<&str> = key.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["role"], "service_role");
        let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .unwrap();
    }

    #[test]
    fn jwts_verify_only_when_signed_with_the_local_secret_and_unexpired() {
        let now = 1_800_000_000;
        let claims = verify_jwt(&role_key("anon"), now).unwrap();
        assert_eq!(claims["role"], "anon");
        // PostgREST's 30 s of clock skew on each time claim.
        assert!(verify_jwt(&role_key("anon"), DEMO_EXPIRY + 29).is_ok());
        assert_eq!(
            verify_jwt(&role_key("anon"), DEMO_EXPIRY + 30),
            Err(JwtError::Expired)
        );
        let later =
            |claim: &str, at: i64| sign_jwt(&format!(r#"{{"role":"anon","{claim}":{at}}}"#));
        assert!(verify_jwt(&later("nbf", now + 30), now).is_ok());
        assert_eq!(
            verify_jwt(&later("nbf", now + 31), now),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            verify_jwt(&later("iat", now + 31), now),
            Err(JwtError::IssuedInFuture)
        );
        assert_eq!(
            verify_jwt(&sign_jwt(r#"{"role":"anon","nbf":"later"}"#), now),
            Err(JwtError::Malformed)
        );
        assert_eq!(
            verify_jwt(&sign_jwt(r#"{"role":"anon","exp":"soon"}"#), now),
            Err(JwtError::Malformed)
        );

        let key = role_key("anon");
        let (signed, _) = key.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(verify_jwt(&forged, now), Err(JwtError::BadSignature));
        let swapped_claims = format!(
            "{}.{}.{}",
            key.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(r#"{"role":"service_role","exp":1983812996}"#),
            key.rsplit('.').next().unwrap()
        );
        assert_eq!(
            verify_jwt(&swapped_claims, now),
            Err(JwtError::BadSignature)
        );
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            key.split('.').nth(1).unwrap()
        );
        assert_eq!(verify_jwt(&unsigned, now), Err(JwtError::Malformed));
        assert_eq!(verify_jwt("not a jwt", now), Err(JwtError::Malformed));
    }
}
