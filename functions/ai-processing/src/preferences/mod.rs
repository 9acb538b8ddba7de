//! Travel preferences in a user's chat message (`chat.message.process`): found by deterministic
//! `rules` (cue phrases from `cues`) when no chat model is configured, or by the
//! `chat_model` (its request and the parsing of its answer); and the `session_memories` text.
//!
//! Pure: no I/O. The handler sends the request and stores the result.

use serde::Serialize;

mod chat_model;
mod cues;
mod rules;

pub use chat_model::{
    chat_messages, normalise_preference, parse_chat_response, response_format,
    MAX_MODEL_PREFERENCES, MAX_PREFERENCE_CHARS,
};
pub use rules::{
    extract_by_rules, INTENT_WINDOW, MILD_CONFIDENCE, NEGATION_WINDOW, PLAIN_CONFIDENCE,
    POSTFIX_INTENT_WINDOW, STRONG_CONFIDENCE,
};

/// The `session_memories.content` limit (`check (length(content) <= 8192)`). Counting bytes is
/// stricter than Postgres's character count, so text within it always passes the check.
pub const SESSION_MEMORY_MAX_BYTES: usize = 8192;
/// Ends a session memory that had to be shortened.
pub const TRUNCATION_MARKER: &str = "…";

/// What a preference is about. The order is the output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PreferenceCategory {
    Budget,
    Accommodation,
    Pace,
    Cuisine,
    Transport,
    Accessibility,
    Activity,
    Destination,
}

impl PreferenceCategory {
    pub const ALL: [Self; 8] = [
        Self::Budget,
        Self::Accommodation,
        Self::Pace,
        Self::Cuisine,
        Self::Transport,
        Self::Accessibility,
        Self::Activity,
        Self::Destination,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Budget => "budget",
            Self::Accommodation => "accommodation",
            Self::Pace => "pace",
            Self::Cuisine => "cuisine",
            Self::Transport => "transport",
            Self::Accessibility => "accessibility",
            Self::Activity => "activity",
            Self::Destination => "destination",
        }
    }

    /// The category named exactly as [`Self::as_str`] writes it (surrounding spaces and ASCII
    /// case ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|category| category.as_str().eq_ignore_ascii_case(s))
    }
}

/// One travel preference: `preference` is normalised (lowercase, single spaces), `confidence`
/// is within `0..=1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preference {
    pub category: PreferenceCategory,
    pub preference: String,
    pub confidence: f64,
}

/// The `session_memories.content` for a message: the message itself when it fits in
/// `max_bytes` (use [`SESSION_MEMORY_MAX_BYTES`]); otherwise its longest prefix that ends at a
/// character boundary and leaves room for [`TRUNCATION_MARKER`], followed by the marker. The
/// flag says whether it was shortened, so the caller can record that.
pub fn session_memory_text(message: &str, max_bytes: usize) -> (String, bool) {
    if message.len() <= max_bytes {
        return (message.to_owned(), false);
    }
    let Some(room) = max_bytes.checked_sub(TRUNCATION_MARKER.len()) else {
        // Too small for the marker: the longest prefix that fits.
        return (
            message[..floor_char_boundary(message, max_bytes)].to_owned(),
            true,
        );
    };
    let prefix = message[..floor_char_boundary(message, room)].trim_end();
    (format!("{prefix}{TRUNCATION_MARKER}"), true)
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    (0..=index.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
