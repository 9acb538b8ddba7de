//! Configuration from the environment. Missing or malformed settings are recorded per
//! capability, reported by `/health`, and turned into 503 `not_configured` by whoever needs them;
//! they never crash the function and never fall back to fake data.

use std::fmt;

use crate::error::EdgeError;
use crate::redact;
use crate::signature::{WebhookSecret, WebhookVerifier, DEFAULT_TOLERANCE_SECONDS};

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
pub const DEFAULT_EMBEDDING_MAX_INPUTS: usize = 2048;
/// Chat-model calls per user and minute before ai-processing falls back to its rules.
pub const DEFAULT_CHAT_MODEL_CALLS_PER_MINUTE: u32 = 20;
pub const DEFAULT_EMAIL_API_URL: &str = "https://api.resend.com/emails";

/// A credential. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// What a function can do, each needing its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    WebhookSignatures,
    Supabase,
    OpenAi,
    Email,
    CalendarSync,
}

impl Capability {
    /// The name used in `/health` checks.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebhookSignatures => "webhook_signatures",
            Self::Supabase => "supabase",
            Self::OpenAi => "openai",
            Self::Email => "email",
            Self::CalendarSync => "calendar_sync",
        }
    }

    /// The variables that enable it (besides optional ones with defaults).
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Self::WebhookSignatures => &["WEBHOOK_SECRET"],
            Self::Supabase => &["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"],
            Self::OpenAi => &["OPENAI_API_KEY"],
            Self::Email => &["RESEND_API_KEY", "EMAIL_FROM"],
            Self::CalendarSync => &["CALENDAR_SYNC_URL", "CALENDAR_SYNC_SECRET"],
        }
    }

    pub const ALL: [Capability; 5] = [
        Self::WebhookSignatures,
        Self::Supabase,
        Self::OpenAi,
        Self::Email,
        Self::CalendarSync,
    ];
}

/// Why a capability is unavailable. Names variables, never their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    Missing(Vec<&'static str>),
    Invalid {
        variable: &'static str,
        reason: String,
    },
}

impl ConfigProblem {
    pub fn variables(&self) -> Vec<&'static str> {
        match self {
            Self::Missing(variables) => variables.clone(),
            Self::Invalid { variable, .. } => vec![variable],
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(variables) => write!(f, "missing {}", variables.join(", ")),
            Self::Invalid { variable, reason } => write!(f, "invalid {variable}: {reason}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    pub url: String,
    pub service_role_key: Secret,
}

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub api_key: Secret,
    pub base_url: String,
    pub embedding_model: String,
    pub chat_model: Option<String>,
    /// Inputs per embeddings request: OpenAI takes 2048; some compatible servers take fewer.
    pub embedding_max_inputs: usize,
    /// `CHAT_MODEL_CALLS_PER_MINUTE`: the chat model is asked about at most this many of one
    /// user's messages per minute; the others are read by the rules. 0 leaves it to the rules.
    pub chat_model_calls_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub api_key: Secret,
    pub api_url: String,
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct CalendarSyncConfig {
    pub url: String,
    pub secret: WebhookSecret,
}

type Setting<T> = Result<T, ConfigProblem>;

/// Every setting the functions read, read once per request from the environment.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    webhook: Setting<WebhookVerifier>,
    supabase: Setting<SupabaseConfig>,
    openai: Setting<OpenAiConfig>,
    email: Setting<EmailConfig>,
    calendar_sync: Setting<CalendarSyncConfig>,
    pub app_url: Option<String>,
    /// Every secret value configured, for [`EdgeConfig::redact`].
    secrets: Vec<Secret>,
}

/// The variables that hold secrets. Their values, and each part of them (the keys of a
/// `SUPABASE_SECRET_KEYS` object, each `whsec_` secret of a list and its base64 body), are
/// removed from any text a function writes.
pub const SECRET_VARIABLES: [&str; 6] = [
    "WEBHOOK_SECRET",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_SECRET_KEYS",
    "OPENAI_API_KEY",
    "RESEND_API_KEY",
    "CALENDAR_SYNC_SECRET",
];

/// Shorter values are not searched for: they would cut ordinary words.
const MIN_REDACTED_SECRET: usize = 8;

/// The values of [`SECRET_VARIABLES`] and their parts. Order does not matter: where one contains
/// another, replacing either first leaves nothing of the inner one and breaks the outer.
fn secret_values(env: &Env) -> Vec<Secret> {
    let mut values = Vec::new();
    for name in SECRET_VARIABLES {
        let Some(value) = env.get(name) else { continue };
        if let Ok(serde_json::Value::Object(keys)) = serde_json::from_str(&value) {
            values.extend(
                keys.values()
                    .filter_map(|key| key.as_str())
                    .map(str::to_owned),
            );
        }
        for part in value.split([' ', ',']) {
            values.extend(part.strip_prefix("whsec_").map(str::to_owned));
            values.push(part.to_owned());
        }
        values.push(value);
    }
    values
        .into_iter()
        .filter(|value| value.len() >= MIN_REDACTED_SECRET)
        .map(Secret)
        .collect()
}

impl EdgeConfig {
    /// Reads the settings through `lookup` (an environment); empty values count as unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = Env(&lookup);
        Self {
            webhook: webhook_setting(&env),
            supabase: supabase_setting(&env),
            openai: openai_setting(&env),
            email: email_setting(&env),
            calendar_sync: calendar_setting(&env),
            app_url: env.get("APP_URL"),
            secrets: secret_values(&env),
        }
    }

    /// `text` without any configured secret value or anything shaped like a key or token.
    pub fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        redact::without_secrets(text, &secrets)
    }

    pub fn webhook_verifier(&self) -> Result<&WebhookVerifier, EdgeError> {
        available(Capability::WebhookSignatures, &self.webhook)
    }

    pub fn supabase(&self) -> Result<&SupabaseConfig, EdgeError> {
        available(Capability::Supabase, &self.supabase)
    }

    pub fn openai(&self) -> Result<&OpenAiConfig, EdgeError> {
        available(Capability::OpenAi, &self.openai)
    }

    pub fn email(&self) -> Result<&EmailConfig, EdgeError> {
        available(Capability::Email, &self.email)
    }

    pub fn calendar_sync(&self) -> Result<&CalendarSyncConfig, EdgeError> {
        available(Capability::CalendarSync, &self.calendar_sync)
    }

    /// Whether an optional capability is switched off: none of its variables is set. Half set
    /// is not disabled but misconfigured.
    pub fn is_disabled(&self, capability: Capability) -> bool {
        matches!(
            self.problem(capability),
            Some(ConfigProblem::Missing(variables))
                if variables.len() == capability.variables().len()
        )
    }

    /// `None` when the capability is ready, else what stops it.
    pub fn problem(&self, capability: Capability) -> Option<&ConfigProblem> {
        match capability {
            Capability::WebhookSignatures => self.webhook.as_ref().err(),
            Capability::Supabase => self.supabase.as_ref().err(),
            Capability::OpenAi => self.openai.as_ref().err(),
            Capability::Email => self.email.as_ref().err(),
            Capability::CalendarSync => self.calendar_sync.as_ref().err(),
        }
    }
}

fn available<T>(capability: Capability, setting: &Setting<T>) -> Result<&T, EdgeError> {
    setting
        .as_ref()
        .map_err(|problem| EdgeError::NotConfigured {
            capability,
            problem: problem.clone(),
        })
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// All of `names`, or the list of those missing.
    fn all<const N: usize>(&self, names: [&'static str; N]) -> Setting<[String; N]> {
        let values = names.map(|name| self.get(name));
        let missing: Vec<&'static str> = names
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        if missing.is_empty() {
            Ok(values.map(Option::unwrap_or_default))
        } else {
            Err(ConfigProblem::Missing(missing))
        }
    }
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigProblem {
    ConfigProblem::Invalid {
        variable,
        reason: reason.into(),
    }
}

fn webhook_setting(env: &Env) -> Setting<WebhookVerifier> {
    let [secrets] = env.all(["WEBHOOK_SECRET"])?;
    let secrets = WebhookVerifier::parse_secrets(&secrets)
        .map_err(|error| invalid("WEBHOOK_SECRET", error.to_string()))?;
    let tolerance = match env.get("WEBHOOK_TOLERANCE_SECONDS") {
        None => DEFAULT_TOLERANCE_SECONDS,
        Some(text) => text
            .parse::<u32>()
            .map(i64::from)
            .map_err(|_| invalid("WEBHOOK_TOLERANCE_SECONDS", "not a whole number of seconds"))?,
    };
    let allow_legacy = match env.get("WEBHOOK_ALLOW_LEGACY").as_deref() {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(_) => return Err(invalid("WEBHOOK_ALLOW_LEGACY", "expected true or false")),
    };
    Ok(WebhookVerifier::new(secrets)
        .with_tolerance_seconds(tolerance)
        .with_legacy(allow_legacy))
}

fn supabase_setting(env: &Env) -> Setting<SupabaseConfig> {
    let url = env.get("SUPABASE_URL");
    let key = match env.get("SUPABASE_SERVICE_ROLE_KEY") {
        Some(key) => Some(key),
        None => env
            .get("SUPABASE_SECRET_KEYS")
            .map(|keys| default_secret_key(&keys))
            .transpose()?,
    };
    match (url, key) {
        (Some(url), Some(key)) => Ok(SupabaseConfig {
            url: checked_url("SUPABASE_URL", url)?,
            service_role_key: Secret::new(key),
        }),
        (url, key) => Err(ConfigProblem::Missing(
            [
                url.is_none().then_some("SUPABASE_URL"),
                key.is_none().then_some("SUPABASE_SERVICE_ROLE_KEY"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        )),
    }
}

/// `SUPABASE_SECRET_KEYS` is a JSON object of named keys; functions use `default`.
fn default_secret_key(json: &str) -> Setting<String> {
    let keys: serde_json::Value = serde_json::from_str(json)
        .map_err(|_| invalid("SUPABASE_SECRET_KEYS", "not a JSON object"))?;
    keys.get("default")
        .and_then(serde_json::Value::as_str)
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid("SUPABASE_SECRET_KEYS", "has no \"default\" key"))
}

fn openai_setting(env: &Env) -> Setting<OpenAiConfig> {
    let [api_key] = env.all(["OPENAI_API_KEY"])?;
    let base_url = env
        .get("OPENAI_BASE_URL")
        .unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_owned());
    Ok(OpenAiConfig {
        api_key: Secret::new(api_key),
        base_url: checked_url("OPENAI_BASE_URL", base_url)?,
        embedding_model: env
            .get("EMBEDDING_MODEL")
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_owned()),
        chat_model: env.get("CHAT_MODEL"),
        embedding_max_inputs: whole_number(
            env,
            "EMBEDDING_MAX_INPUTS",
            1..=DEFAULT_EMBEDDING_MAX_INPUTS,
            DEFAULT_EMBEDDING_MAX_INPUTS,
        )?,
        chat_model_calls_per_minute: whole_number(
            env,
            "CHAT_MODEL_CALLS_PER_MINUTE",
            0..=100_000,
            DEFAULT_CHAT_MODEL_CALLS_PER_MINUTE,
        )?,
    })
}

/// A whole number within `range`, or `default` when the variable is not set.
fn whole_number<T>(
    env: &Env,
    variable: &'static str,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Setting<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(text) = env.get(variable) else {
        return Ok(default);
    };
    text.trim()
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            invalid(
                variable,
                format!(
                    "expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

fn email_setting(env: &Env) -> Setting<EmailConfig> {
    let [api_key, from] = env.all(["RESEND_API_KEY", "EMAIL_FROM"])?;
    let api_url = env
        .get("EMAIL_API_URL")
        .unwrap_or_else(|| DEFAULT_EMAIL_API_URL.to_owned());
    Ok(EmailConfig {
        api_key: Secret::new(api_key),
        api_url: checked_url("EMAIL_API_URL", api_url)?,
        from,
    })
}

fn calendar_setting(env: &Env) -> Setting<CalendarSyncConfig> {
    let [url, secret] = env.all(["CALENDAR_SYNC_URL", "CALENDAR_SYNC_SECRET"])?;
    let secret = WebhookSecret::parse(&secret)
        .map_err(|error| invalid("CALENDAR_SYNC_SECRET", error.to_string()))?;
    Ok(CalendarSyncConfig {
        url: checked_url("CALENDAR_SYNC_URL", url)?,
        secret,
    })
}

/// An `http(s)://` URL without a trailing slash.
fn checked_url(variable: &'static str, url: String) -> Setting<String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(variable, "expected an http:// or https:// URL"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(pairs: &[(&str, &str)]) -> EdgeConfig {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EdgeConfig::from_env(|name| env.get(name).cloned())
    }

    #[test]
    fn empty_environment_names_every_missing_variable() {
        let config = config(&[]);
        for capability in Capability::ALL {
            assert_eq!(
                config.problem(capability),
                Some(&ConfigProblem::Missing(capability.variables().to_vec())),
                "{capability:?}"
            );
        }
        assert_eq!(
            config.problem(Capability::WebhookSignatures),
            Some(&ConfigProblem::Missing(vec!["WEBHOOK_SECRET"]))
        );
        assert_eq!(
            config.problem(Capability::Supabase),
            Some(&ConfigProblem::Missing(vec![
                "SUPABASE_URL",
                "SUPABASE_SERVICE_ROLE_KEY"
            ]))
        );
        assert_eq!(
            config.problem(Capability::Email),
            Some(&ConfigProblem::Missing(vec![
                "RESEND_API_KEY",
                "EMAIL_FROM"
            ]))
        );
        assert!(matches!(
            config.supabase(),
            Err(EdgeError::NotConfigured {
                capability: Capability::Supabase,
                ..
            })
        ));
    }

    #[test]
    fn complete_environment_is_ready_with_defaults() {
        let config = config(&[
            ("WEBHOOK_SECRET", SECRET),
            ("SUPABASE_URL", "http://127.0.0.1:54321/"),
            ("SUPABASE_SERVICE_ROLE_KEY", "service-key"),
            ("OPENAI_API_KEY", "sk-test"),
            ("RESEND_API_KEY", "re_test"),
            ("EMAIL_FROM", "TripSage <trips@example.com>"),
            ("CALENDAR_SYNC_URL", "http://127.0.0.1:9000/ics"),
            ("CALENDAR_SYNC_SECRET", SECRET),
        ]);
        assert_eq!(config.supabase().unwrap().url, "http://127.0.0.1:54321");
        let openai = config.openai().unwrap();
        assert_eq!(openai.base_url, DEFAULT_OPENAI_BASE_URL);
        assert_eq!(openai.embedding_model, DEFAULT_EMBEDDING_MODEL);
        assert_eq!(openai.embedding_max_inputs, DEFAULT_EMBEDDING_MAX_INPUTS);
        assert_eq!(
            openai.chat_model_calls_per_minute,
            DEFAULT_CHAT_MODEL_CALLS_PER_MINUTE
        );
        assert_eq!(config.email().unwrap().api_url, DEFAULT_EMAIL_API_URL);
        assert!(config.calendar_sync().is_ok());
        assert!(config.webhook_verifier().is_ok());
    }

    #[test]
    fn every_configured_secret_and_its_parts_are_redacted() {
        let config = config(&[
            (
                "WEBHOOK_SECRET",
                "whsec_b2xkc2VjcmV0b2xk whsec_bmV3c2VjcmV0bmV3",
            ),
            (
                "SUPABASE_SECRET_KEYS",
                r#"{"default":"sb_secret_onlyletters"}"#,
            ),
            ("RESEND_API_KEY", "re_lettersonlykey"),
            ("OPENAI_API_KEY", "short"),
        ]);
        let text = "echo b2xkc2VjcmV0b2xk, whsec_bmV3c2VjcmV0bmV3, sb_secret_onlyletters, \
                    re_lettersonlykey and short";
        assert_eq!(
            config.redact(text),
            "echo [redacted], whsec_[redacted], [redacted], [redacted] and short"
        );
    }

    #[test]
    fn service_role_key_may_come_from_secret_keys_json() {
        let config = config(&[
            ("SUPABASE_URL", "http://localhost"),
            ("SUPABASE_SECRET_KEYS", r#"{"default":"sb_secret_abc"}"#),
        ]);
        assert_eq!(
            config.supabase().unwrap().service_role_key.expose(),
            "sb_secret_abc"
        );
        let bad = self::config(&[
            ("SUPABASE_URL", "http://localhost"),
            ("SUPABASE_SECRET_KEYS", r#"{"other":"x"}"#),
        ]);
        assert!(matches!(
            bad.problem(Capability::Supabase),
            Some(ConfigProblem::Invalid {
                variable: "SUPABASE_SECRET_KEYS",
                ..
            })
        ));
    }

    #[test]
    fn malformed_values_are_invalid_not_fatal() {
        let config = config(&[
            ("WEBHOOK_SECRET", "whsec_???"),
            ("SUPABASE_URL", "localhost:54321"),
            ("SUPABASE_SERVICE_ROLE_KEY", "k"),
        ]);
        assert!(matches!(
            config.problem(Capability::WebhookSignatures),
            Some(ConfigProblem::Invalid {
                variable: "WEBHOOK_SECRET",
                ..
            })
        ));
        assert!(matches!(
            config.problem(Capability::Supabase),
            Some(ConfigProblem::Invalid {
                variable: "SUPABASE_URL",
                ..
            })
        ));
        for (name, value) in [
            ("WEBHOOK_TOLERANCE_SECONDS", "-5"),
            ("WEBHOOK_ALLOW_LEGACY", "yes please"),
        ] {
            let config = self::config(&[("WEBHOOK_SECRET", SECRET), (name, value)]);
            assert_eq!(
                config
                    .problem(Capability::WebhookSignatures)
                    .unwrap()
                    .variables(),
                vec![name]
            );
        }
    }

    #[test]
    fn blank_values_count_as_unset() {
        let config = config(&[("WEBHOOK_SECRET", "   ")]);
        assert_eq!(
            config.problem(Capability::WebhookSignatures),
            Some(&ConfigProblem::Missing(vec!["WEBHOOK_SECRET"]))
        );
    }

    #[test]
    fn debug_output_hides_every_credential() {
        let config = config(&[
            ("WEBHOOK_SECRET", SECRET),
            ("SUPABASE_URL", "http://localhost"),
            ("SUPABASE_SERVICE_ROLE_KEY", "service-role-value"),
            ("OPENAI_API_KEY", "sk-openai-value"),
            ("RESEND_API_KEY", "re_resend_value"),
            ("EMAIL_FROM", "a@b.c"),
        ]);
        let debug = format!("{config:?}");
        for secret in [
            "MfKQ9r8G",
            "service-role-value",
            "sk-openai-value",
            "re_resend_value",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
    }

    #[test]
    fn embedding_max_inputs_is_between_1_and_2048() {
        let with = |value: &str| {
            config(&[
                ("OPENAI_API_KEY", "sk-test"),
                ("EMBEDDING_MAX_INPUTS", value),
            ])
        };
        assert_eq!(with("16").openai().unwrap().embedding_max_inputs, 16);
        for bad in ["0", "2049", "many"] {
            let problem = with(bad).problem(Capability::OpenAi).cloned();
            assert!(
                matches!(
                    problem,
                    Some(ConfigProblem::Invalid {
                        variable: "EMBEDDING_MAX_INPUTS",
                        ..
                    })
                ),
                "{bad}: {problem:?}"
            );
        }
    }

    #[test]
    fn chat_model_calls_per_minute_is_a_whole_number_and_may_be_zero() {
        let with = |value: &str| {
            config(&[
                ("OPENAI_API_KEY", "sk-test"),
                ("CHAT_MODEL_CALLS_PER_MINUTE", value),
            ])
        };
        assert_eq!(with(" 0 ").openai().unwrap().chat_model_calls_per_minute, 0);
        assert_eq!(with("5").openai().unwrap().chat_model_calls_per_minute, 5);
        for bad in ["-1", "ten", "100001"] {
            let problem = with(bad).problem(Capability::OpenAi).cloned();
            assert_eq!(
                problem.map(|problem| problem.to_string()),
                Some(
                    "invalid CHAT_MODEL_CALLS_PER_MINUTE: expected a whole number from 0 to 100000"
                        .to_owned()
                ),
                "{bad}"
            );
        }
    }
}
