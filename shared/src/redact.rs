//! Text that came from outside (an upstream's error body, a caller's event name) made fit for a
//! response, a log line and `webhook_logs`: shortened, with secrets and anything shaped like a key
//! or token removed. Pure.

use crate::payload::is_uuid;

/// What replaces a removed secret or key-shaped word.
pub const REDACTED: &str = "[redacted]";

/// A word at least this long, with letters and digits, is taken for a key or token.
const KEY_SHAPED_LENGTH: usize = 20;

/// At most `limit` characters of `text`, with `…` when something was cut.
pub fn clip(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `text` with every occurrence of each of `secrets` replaced by [`REDACTED`] (empty values are
/// ignored), then [`without_key_shapes`].
pub fn without_secrets<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        let secret = secret.as_ref();
        if !secret.is_empty() && text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    without_key_shapes(&text)
}

/// `text` with what looks like a credential replaced by [`REDACTED`]: the word after `Bearer` or
/// `Basic`, and any word of [`KEY_SHAPED_LENGTH`] or more characters from the alphabets keys and
/// tokens use (letters, digits, `-`, `_`, `+`, `/`, `=`) that mixes letters and digits, a UUID
/// excepted. Words are split at every other character, so a JWT's three parts go one by one.
pub fn without_key_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut credential_next = false;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        if !word.is_empty() {
            if credential_next || is_key_shaped(word) {
                out.push_str(REDACTED);
            } else {
                out.push_str(word);
            }
            credential_next =
                word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic");
        }
        let Some(separator) = after.chars().next() else {
            break;
        };
        if !separator.is_whitespace() {
            credential_next = false;
        }
        out.push(separator);
        rest = &after[separator.len_utf8()..];
    }
    out
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/' | '=')
}

fn is_key_shaped(word: &str) -> bool {
    word.len() >= KEY_SHAPED_LENGTH
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
        && !is_uuid(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_tokens_are_removed_and_words_kept() {
        let cases = [
            (
                "Invalid API key: sk-proj-4f9Qa81ZmT0xLwPq7Yb2 given",
                "Invalid API key: [redacted] given",
            ),
            (
                "Authorization: Bearer abc.def",
                "Authorization: Bearer [redacted].def",
            ),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIzNDU2",
                "token [redacted].[redacted].[redacted]",
            ),
            (
                "insert or update on table \"notifications\" violates foreign key constraint \
                 \"notifications_user_id_fkey\"",
                "insert or update on table \"notifications\" violates foreign key constraint \
                 \"notifications_user_id_fkey\"",
            ),
            (
                "Key (user_id)=(0b5c2f3e-8d41-4a8e-9c3b-2f1e5d6a7b8c) is not present",
                "Key (user_id)=(0b5c2f3e-8d41-4a8e-9c3b-2f1e5d6a7b8c) is not present",
            ),
            (
                "rate limit reached for gpt-4o-mini in org-123",
                "rate limit reached for gpt-4o-mini in org-123",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(without_key_shapes(text), expected, "{text}");
        }
    }

    #[test]
    fn configured_secrets_go_whatever_their_shape() {
        assert_eq!(
            without_secrets(
                "the key was hunter2hunter2, really",
                &["hunter2hunter2", ""]
            ),
            "the key was [redacted], really"
        );
    }

    #[test]
    fn clipping_counts_characters() {
        assert_eq!(clip("héllo", 3), "hél…");
        assert_eq!(clip("héllo", 5), "héllo");
    }
}
