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
}
