//! Webhook signatures: Standard Webhooks v1, and the legacy TripSage hex signature
//! behind `WEBHOOK_ALLOW_LEGACY`.
//!
//! Everything here is pure: the clock is an argument, so the same code runs natively and as wasm
//! (where `SystemTime` panics).

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::http::Headers;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The original TripSage sender's header: lowercase hex HMAC-SHA256 of the body, no timestamp.
pub const HEADER_LEGACY_SIGNATURE: &str = "x-webhook-signature";
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

const SECRET_PREFIX: &str = "whsec_";
const SIGNATURE_VERSION: &str = "v1";
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A symmetric signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// HMAC keyed once, on the first MAC: every MAC starts from a copy of this state instead of
    /// hashing the key's pads again, and a worker that only answers `/health` never keys it.
    keyed: OnceLock<HmacSha256>,
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for WebhookSecret {}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (or bare base64, as the Standard Webhooks libraries also accept).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self::from_key(key))
    }

    pub fn from_key(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            keyed: OnceLock::new(),
        }
    }

    /// The `webhook-signature` entry for one message: `v1,<base64 HMAC-SHA256>`.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.standard_mac(webhook_id, &timestamp.to_string(), body);
        format!("{SIGNATURE_VERSION},{}", BASE64.encode(mac))
    }

    /// The legacy `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the body alone.
    pub fn sign_legacy(&self, body: &[u8]) -> String {
        to_hex(&self.mac(&[body]))
    }

    fn standard_mac(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> [u8; MAC_LEN] {
        self.mac(&[
            webhook_id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body,
        ])
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut mac = self
            .keyed
            .get_or_init(|| {
                // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
                HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
            })
            .clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    Empty,
    NotBase64,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the secret is empty"),
            Self::NotBase64 => f.write_str("the secret is not whsec_ followed by base64"),
        }
    }
}

impl std::error::Error for SecretError {}

/// Why a delivery's signature was refused. Every variant answers 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeader(&'static str),
    InvalidHeader(&'static str),
    TimestampTooOld { age_seconds: i64 },
    TimestampInFuture { ahead_seconds: i64 },
    NoMatchingSignature,
    LegacySignatureNotAllowed,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature_header",
            Self::InvalidHeader(_) => "invalid_signature_header",
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::NoMatchingSignature => "invalid_signature",
            Self::LegacySignatureNotAllowed => "legacy_signature_not_allowed",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader(name) => write!(f, "the {name} header is missing"),
            Self::InvalidHeader(name) => write!(f, "the {name} header is malformed"),
            Self::TimestampTooOld { age_seconds } => write!(
                f,
                "webhook-timestamp is {age_seconds} s old, outside the allowed tolerance"
            ),
            Self::TimestampInFuture { ahead_seconds } => write!(
                f,
                "webhook-timestamp is {ahead_seconds} s in the future, outside the allowed tolerance"
            ),
            Self::NoMatchingSignature => f.write_str("no signature matches the payload"),
            Self::LegacySignatureNotAllowed => f.write_str(
                "X-Webhook-Signature is accepted only when WEBHOOK_ALLOW_LEGACY=true; \
                 send Standard Webhooks headers",
            ),
        }
    }
}

impl std::error::Error for SignatureError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    StandardWebhooks,
    Legacy,
}

/// What a valid signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    /// Signed under Standard Webhooks; only informational under the legacy scheme.
    pub webhook_id: Option<String>,
    pub timestamp: Option<i64>,
    pub scheme: SignatureScheme,
}

/// Checks deliveries against one or more secrets (several during a rotation).
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secrets: Vec<WebhookSecret>,
    tolerance_seconds: i64,
    allow_legacy: bool,
}

impl WebhookVerifier {
    pub fn new(secrets: Vec<WebhookSecret>) -> Self {
        Self {
            secrets,
            tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
            allow_legacy: false,
        }
    }

    /// Parses `WEBHOOK_SECRET`: one or more space-separated secrets.
    pub fn parse_secrets(text: &str) -> Result<Vec<WebhookSecret>, SecretError> {
        let secrets = text
            .split_whitespace()
            .map(WebhookSecret::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(secrets)
    }

    pub fn with_tolerance_seconds(mut self, seconds: i64) -> Self {
        self.tolerance_seconds = seconds;
        self
    }

    pub fn with_legacy(mut self, allow: bool) -> Self {
        self.allow_legacy = allow;
        self
    }

    /// Verifies a delivery on its raw body bytes; `now` is Unix seconds.
    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedDelivery, SignatureError> {
        if let Some(signatures) = headers.get(HEADER_SIGNATURE) {
            return self.verify_standard(headers, signatures, body, now);
        }
        match headers.get(HEADER_LEGACY_SIGNATURE) {
            Some(_) if !self.allow_legacy => Err(SignatureError::LegacySignatureNotAllowed),
            Some(signature) => self.verify_legacy(headers, signature, body),
            None => Err(SignatureError::MissingHeader(HEADER_SIGNATURE)),
        }
    }

    fn verify_standard(
        &self,
        headers: &Headers,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedDelivery, SignatureError> {
        let webhook_id = required_header(headers, HEADER_ID)?;
        // A '.' in the id would make `{id}.{timestamp}.{body}` ambiguous.
        if webhook_id.contains('.') {
            return Err(SignatureError::InvalidHeader(HEADER_ID));
        }
        let timestamp_text = required_header(headers, HEADER_TIMESTAMP)?;
        let timestamp = parse_timestamp(timestamp_text)?;
        self.check_tolerance(timestamp, now)?;

        let candidates: Vec<[u8; MAC_LEN]> = signatures
            .split_whitespace()
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == SIGNATURE_VERSION)
            .filter_map(|(_, encoded)| BASE64.decode(encoded).ok()?.try_into().ok())
            .collect();
        if candidates.is_empty() {
            return Err(SignatureError::InvalidHeader(HEADER_SIGNATURE));
        }
        let expected: Vec<[u8; MAC_LEN]> = self
            .secrets
            .iter()
            .map(|secret| secret.standard_mac(webhook_id, timestamp_text, body))
            .collect();
        if !any_equal(&expected, &candidates) {
            return Err(SignatureError::NoMatchingSignature);
        }
        Ok(VerifiedDelivery {
            webhook_id: Some(webhook_id.to_owned()),
            timestamp: Some(timestamp),
            scheme: SignatureScheme::StandardWebhooks,
        })
    }

    fn verify_legacy(
        &self,
        headers: &Headers,
        signature: &str,
        body: &[u8],
    ) -> Result<VerifiedDelivery, SignatureError> {
        let candidate: [u8; MAC_LEN] = from_hex(signature.trim())
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SignatureError::InvalidHeader(HEADER_LEGACY_SIGNATURE))?;
        let expected: Vec<[u8; MAC_LEN]> = self
            .secrets
            .iter()
            .map(|secret| secret.mac(&[body]))
            .collect();
        if !any_equal(&expected, &[candidate]) {
            return Err(SignatureError::NoMatchingSignature);
        }
        Ok(VerifiedDelivery {
            webhook_id: headers
                .get(HEADER_ID)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            timestamp: None,
            scheme: SignatureScheme::Legacy,
        })
    }

    fn check_tolerance(&self, timestamp: i64, now: i64) -> Result<(), SignatureError> {
        let age = now.saturating_sub(timestamp);
        if age > self.tolerance_seconds {
            return Err(SignatureError::TimestampTooOld { age_seconds: age });
        }
        if -age > self.tolerance_seconds {
            return Err(SignatureError::TimestampInFuture {
                ahead_seconds: -age,
            });
        }
        Ok(())
    }
}

fn required_header<'a>(
    headers: &'a Headers,
    name: &'static str,
) -> Result<&'a str, SignatureError> {
    match headers.get(name).map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(SignatureError::MissingHeader(name)),
    }
}

fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::InvalidHeader(HEADER_TIMESTAMP));
    }
    text.parse()
        .map_err(|_| SignatureError::InvalidHeader(HEADER_TIMESTAMP))
}

/// True when any expected MAC equals any candidate; every pair is compared, whatever matches,
/// so the time taken says nothing about which bytes were right.
fn any_equal(expected: &[[u8; MAC_LEN]], candidates: &[[u8; MAC_LEN]]) -> bool {
    let mut found = Choice::from(0);
    for mac in expected {
        for candidate in candidates {
            found |= mac.ct_eq(candidate);
        }
    }
    found.into()
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // The vector of the standard-webhooks Rust library's own tests.
    const LIB_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const LIB_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const LIB_TIMESTAMP: i64 = 1_649_367_553;
    const LIB_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const LIB_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret(text: &str) -> WebhookSecret {
        WebhookSecret::parse(text).unwrap()
    }

    fn headers(id: &str, timestamp: &str, signature: &str) -> Headers {
        Headers::from_pairs([
            (HEADER_ID, id),
            (HEADER_TIMESTAMP, timestamp),
            (HEADER_SIGNATURE, signature),
        ])
    }

    fn spec_headers() -> Headers {
        headers(SPEC_ID, &SPEC_TIMESTAMP.to_string(), SPEC_SIGNATURE)
    }

    fn verifier(secrets: &[&str]) -> WebhookVerifier {
        WebhookVerifier::new(secrets.iter().map(|text| secret(text)).collect())
    }

    #[test]
    fn signs_the_spec_and_library_vectors() {
        assert_eq!(
            secret(SPEC_SECRET).sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        assert_eq!(
            secret(LIB_SECRET).sign(LIB_ID, LIB_TIMESTAMP, LIB_BODY),
            LIB_SIGNATURE
        );
    }

    #[test]
    fn verifies_the_spec_vector() {
        let verified = verifier(&[SPEC_SECRET])
            .verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP)
            .unwrap();
        assert_eq!(verified.webhook_id.as_deref(), Some(SPEC_ID));
        assert_eq!(verified.timestamp, Some(SPEC_TIMESTAMP));
        assert_eq!(verified.scheme, SignatureScheme::StandardWebhooks);
    }

    #[test]
    fn accepts_a_secret_without_its_prefix() {
        let bare = SPEC_SECRET.trim_start_matches(SECRET_PREFIX);
        assert!(verifier(&[bare])
            .verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP)
            .is_ok());
    }

    #[test]
    fn rejects_tampered_body_id_and_timestamp() {
        let verifier = verifier(&[SPEC_SECRET]);
        let tampered_body = br#"{"test": 2432232315}"#;
        assert_eq!(
            verifier.verify(&spec_headers(), tampered_body, SPEC_TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        let other_id = headers("msg_other", &SPEC_TIMESTAMP.to_string(), SPEC_SIGNATURE);
        assert_eq!(
            verifier.verify(&other_id, SPEC_BODY, SPEC_TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        let other_time = (SPEC_TIMESTAMP + 1).to_string();
        assert_eq!(
            verifier.verify(
                &headers(SPEC_ID, &other_time, SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TIMESTAMP
            ),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn rejects_the_wrong_secret() {
        assert_eq!(
            verifier(&[LIB_SECRET]).verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_listed_signature_may_match() {
        let list = format!(
            "v1a,bm90IGVkMjU1MTk= v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {SPEC_SIGNATURE}"
        );
        let headers = headers(SPEC_ID, &SPEC_TIMESTAMP.to_string(), &list);
        assert!(verifier(&[SPEC_SECRET])
            .verify(&headers, SPEC_BODY, SPEC_TIMESTAMP)
            .is_ok());
    }

    #[test]
    fn any_configured_secret_may_match_during_rotation() {
        let secrets =
            WebhookVerifier::parse_secrets(&format!("{LIB_SECRET}  {SPEC_SECRET}")).unwrap();
        assert_eq!(secrets.len(), 2);
        let rotating = WebhookVerifier::new(secrets);
        assert!(rotating
            .verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP)
            .is_ok());
        let lib_headers = headers(LIB_ID, &LIB_TIMESTAMP.to_string(), LIB_SIGNATURE);
        assert!(rotating
            .verify(&lib_headers, LIB_BODY, LIB_TIMESTAMP)
            .is_ok());
    }

    #[test]
    fn tolerance_holds_in_both_directions_up_to_the_edge() {
        let verifier = verifier(&[SPEC_SECRET]);
        let edge = DEFAULT_TOLERANCE_SECONDS;
        for now in [SPEC_TIMESTAMP - edge, SPEC_TIMESTAMP + edge] {
            assert!(
                verifier.verify(&spec_headers(), SPEC_BODY, now).is_ok(),
                "now={now}"
            );
        }
        assert_eq!(
            verifier.verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + edge + 1),
            Err(SignatureError::TimestampTooOld {
                age_seconds: edge + 1
            })
        );
        assert_eq!(
            verifier.verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP - edge - 1),
            Err(SignatureError::TimestampInFuture {
                ahead_seconds: edge + 1
            })
        );
        let ten_minutes_later = SPEC_TIMESTAMP + 600;
        assert!(matches!(
            verifier.verify(&spec_headers(), SPEC_BODY, ten_minutes_later),
            Err(SignatureError::TimestampTooOld { .. })
        ));
    }

    #[test]
    fn tolerance_is_configurable() {
        let strict = verifier(&[SPEC_SECRET]).with_tolerance_seconds(5);
        assert!(strict
            .verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + 5)
            .is_ok());
        assert!(strict
            .verify(&spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + 6)
            .is_err());
    }

    #[test]
    fn names_the_missing_or_malformed_header() {
        let verifier = verifier(&[SPEC_SECRET]);
        let ts = SPEC_TIMESTAMP.to_string();
        let cases = [
            (
                Headers::new(),
                SignatureError::MissingHeader(HEADER_SIGNATURE),
            ),
            (
                Headers::from_pairs([
                    (HEADER_SIGNATURE, SPEC_SIGNATURE),
                    (HEADER_TIMESTAMP, ts.as_str()),
                ]),
                SignatureError::MissingHeader(HEADER_ID),
            ),
            (
                Headers::from_pairs([(HEADER_SIGNATURE, SPEC_SIGNATURE), (HEADER_ID, SPEC_ID)]),
                SignatureError::MissingHeader(HEADER_TIMESTAMP),
            ),
            (
                headers(SPEC_ID, "16142653.30", SPEC_SIGNATURE),
                SignatureError::InvalidHeader(HEADER_TIMESTAMP),
            ),
            (
                headers(SPEC_ID, "-1614265330", SPEC_SIGNATURE),
                SignatureError::InvalidHeader(HEADER_TIMESTAMP),
            ),
            (
                headers("msg.1", &ts, SPEC_SIGNATURE),
                SignatureError::InvalidHeader(HEADER_ID),
            ),
            (
                headers(SPEC_ID, &ts, "v1,"),
                SignatureError::InvalidHeader(HEADER_SIGNATURE),
            ),
            (
                headers(SPEC_ID, &ts, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
                SignatureError::InvalidHeader(HEADER_SIGNATURE),
            ),
            (
                headers(
                    SPEC_ID,
                    &ts,
                    "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                ),
                SignatureError::InvalidHeader(HEADER_SIGNATURE),
            ),
            (
                headers(SPEC_ID, &ts, "v1,c2hvcnQ="),
                SignatureError::InvalidHeader(HEADER_SIGNATURE),
            ),
            (
                headers(SPEC_ID, &ts, "v1,!!!not base64!!!"),
                SignatureError::InvalidHeader(HEADER_SIGNATURE),
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                verifier.verify(&headers, SPEC_BODY, SPEC_TIMESTAMP),
                Err(expected)
            );
        }
    }

    #[test]
    fn malformed_headers_never_panic() {
        let verifier = verifier(&[SPEC_SECRET]);
        let awkward = [
            "",
            " ",
            ",",
            ",,,",
            "v1",
            "v1,",
            "v1,=",
            "v1,====",
            "v1,\u{0}",
            "\u{feff}v1,x",
            "é,ü",
            "99999999999999999999999999",
            "-0",
            "0x10",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
        ];
        for id in awkward {
            for timestamp in awkward {
                for signature in awkward {
                    let _ =
                        verifier.verify(&headers(id, timestamp, signature), SPEC_BODY, i64::MAX);
                    let _ =
                        verifier.verify(&headers(id, timestamp, signature), SPEC_BODY, i64::MIN);
                }
            }
            let legacy = Headers::from_pairs([(HEADER_LEGACY_SIGNATURE, id)]);
            let _ = verifier
                .clone()
                .with_legacy(true)
                .verify(&legacy, SPEC_BODY, 0);
        }
        let huge = "9".repeat(10_000);
        assert_eq!(
            verifier.verify(&headers(SPEC_ID, &huge, SPEC_SIGNATURE), SPEC_BODY, 0),
            Err(SignatureError::InvalidHeader(HEADER_TIMESTAMP))
        );
    }

    #[test]
    fn legacy_signature_only_when_allowed() {
        let secret = secret(SPEC_SECRET);
        let signature = secret.sign_legacy(SPEC_BODY);
        assert_eq!(signature.len(), 64);
        assert!(signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let legacy = Headers::from_pairs([(HEADER_LEGACY_SIGNATURE, signature.as_str())]);

        let strict = WebhookVerifier::new(vec![secret.clone()]);
        assert_eq!(
            strict.verify(&legacy, SPEC_BODY, 0),
            Err(SignatureError::LegacySignatureNotAllowed)
        );
        let lenient = strict.with_legacy(true);
        let verified = lenient.verify(&legacy, SPEC_BODY, 0).unwrap();
        assert_eq!(verified.scheme, SignatureScheme::Legacy);
        assert_eq!(verified.timestamp, None);
        assert_eq!(
            lenient.verify(&legacy, b"{}", 0),
            Err(SignatureError::NoMatchingSignature)
        );
        let not_hex = Headers::from_pairs([(HEADER_LEGACY_SIGNATURE, "zz")]);
        assert_eq!(
            lenient.verify(&not_hex, SPEC_BODY, 0),
            Err(SignatureError::InvalidHeader(HEADER_LEGACY_SIGNATURE))
        );
    }

    #[test]
    fn legacy_signature_is_plain_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        let secret = WebhookSecret::from_key(b"Jefe".to_vec());
        assert_eq!(
            secret.sign_legacy(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_headers_win_over_legacy_ones() {
        let mut both = spec_headers();
        both.append(HEADER_LEGACY_SIGNATURE, "00");
        let verified = verifier(&[SPEC_SECRET])
            .with_legacy(true)
            .verify(&both, SPEC_BODY, SPEC_TIMESTAMP)
            .unwrap();
        assert_eq!(verified.scheme, SignatureScheme::StandardWebhooks);
    }

    #[test]
    fn secrets_parse_and_stay_redacted() {
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::Empty));
        assert_eq!(WebhookSecret::parse(""), Err(SecretError::Empty));
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            WebhookVerifier::parse_secrets("  "),
            Err(SecretError::Empty)
        );
        let debug = format!("{:?}", verifier(&[SPEC_SECRET]));
        assert!(debug.contains("[REDACTED]"));
        assert!(!debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!debug.contains("49, 242")); // the key's first bytes as a byte list
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(from_hex("000fABff"), Some(vec![0x00, 0x0f, 0xab, 0xff]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("é1"), None);
    }
}
