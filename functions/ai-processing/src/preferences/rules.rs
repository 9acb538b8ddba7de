//! The deterministic rules: what they find in a message, and with what confidence.
//!
//! # How the rules read a message
//!
//! - **Words.** The message is lowercased (Unicode-aware) and split into words at every
//!   character that is not alphanumeric, so punctuation and hyphens split words (`5-star` is
//!   `5 star`, `b&b` is `b b`). Apostrophes are dropped inside a word (`don't` is `dont`), and
//!   combining accents (U+0300–U+036F) stay part of their word.
//! - **Clauses.** `. , ; : ! ? ( )`, dashes, line breaks and the words `but`, `however`,
//!   `although`, `though`, `whereas` end a clause. A cue never spans clauses, and negation and
//!   intent only reach within their clause.
//! - **Cues** match whole consecutive words. The last word of a cue also matches its plural:
//!   the cue plus `s`, or plus `es` when the cue ends in `s`, `x`, `z`, `ch` or `sh` (`hotels`,
//!   `buses`, `beaches`). Nothing else: `budgetary` is not `budget`, `business` is not `bus`,
//!   `trail` is not `rail`, `carpet` is not `car`, `hotelier` is not `hotel`. Irregular plurals
//!   (`galleries`) are cues of their own. A few cues mean something else after a given word
//!   (`cable car`, `ski lift`, `big budget`) and are skipped there.
//! - **Negation.** A cue is dropped when a negating word or phrase (`no`, `not`, `never`,
//!   `don't`, `without`, `avoid`, `hate`, `rather than`, `instead of`, …) starts within the
//!   [`NEGATION_WINDOW`] words before it, in the same clause: "no hostels", "not a hotel", "I
//!   don't want luxury", "I don't really want a luxury hotel". `don't mind`, `no problem`, `not
//!   only`, `not just` do not negate. A dropped cue is not a preference at all (no "anti"
//!   preferences are recorded).
//! - **Confidence.** [`STRONG_CONFIDENCE`] (0.9) when the clause states a firm preference or need
//!   within [`INTENT_WINDOW`] words before the cue ("I prefer", "I love", "I always", "must",
//!   "need", "only", …) or right after it ("… are a must", "… is essential"); [`MILD_CONFIDENCE`]
//!   (0.75) for a wish or a habit ("I'd like", "I want", "we enjoy", "usually", "I travel …");
//!   [`PLAIN_CONFIDENCE`] (0.6) for a plain mention.
//! - Each `(category, preference)` appears once, with its highest confidence, and the output
//!   is ordered by category (declaration order), then preference.

use std::collections::BTreeMap;
use std::ops::Range;

use super::cues::{
    Rule, CLAUSE_WORDS, MILD_INTENTS, NEGATIONS, NEGATION_CANCELLERS, RULES, STRONG_INTENTS,
    STRONG_POSTFIX_INTENTS,
};
use super::{Preference, PreferenceCategory};

/// How many words before a cue a negation may start and still apply to it.
pub const NEGATION_WINDOW: usize = 4;
/// How many words before a cue an intent phrase ("I prefer") may start and still apply to it.
pub const INTENT_WINDOW: usize = 6;
/// How many words after a cue a postfix intent ("… is a must") may start.
pub const POSTFIX_INTENT_WINDOW: usize = 4;

pub const STRONG_CONFIDENCE: f64 = 0.9;
pub const MILD_CONFIDENCE: f64 = 0.75;
pub const PLAIN_CONFIDENCE: f64 = 0.6;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    clause: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || ('\u{300}'..='\u{36f}').contains(&c)
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2bc}')
}

fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | ';' | ':' | '!' | '?' | '(' | ')' | '\n' | '\r' | '¿' | '¡' | '–' | '—' | '…'
    )
}

/// The message's words, lowercased, each with the index of its clause.
fn words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut clause = 0;
    let mut current = String::new();
    for c in text.chars() {
        if is_word_char(c) {
            current.extend(c.to_lowercase());
        } else if is_apostrophe(c) {
            // Inside a word ("don't") it joins; at a word's edge it is a quote and vanishes.
        } else {
            end_word(&mut current, &mut clause, &mut words);
            if is_clause_break(c) {
                clause += 1;
            }
        }
    }
    end_word(&mut current, &mut clause, &mut words);
    words
}

fn end_word(current: &mut String, clause: &mut usize, words: &mut Vec<Word>) {
    if current.is_empty() {
        return;
    }
    let text = std::mem::take(current);
    if CLAUSE_WORDS.contains(&text.as_str()) {
        *clause += 1;
    } else {
        words.push(Word {
            text,
            clause: *clause,
        });
    }
}

/// A cue or phrase as words (its clause indices are irrelevant).
fn phrase_words(phrase: &str) -> Vec<String> {
    words(phrase).into_iter().map(|word| word.text).collect()
}

fn matches_with_plural(word: &str, cue: &str) -> bool {
    let Some(suffix) = word.strip_prefix(cue) else {
        return false;
    };
    match suffix {
        "" | "s" => true,
        "es" => ["s", "x", "z", "ch", "sh"]
            .iter()
            .any(|ending| cue.ends_with(ending)),
        _ => false,
    }
}

/// Whether `phrase` occurs at `start`, within one clause. `plural` lets its last word be plural.
fn phrase_at(words: &[Word], start: usize, phrase: &[String], plural: bool) -> bool {
    let Some(candidate) = words.get(start..start + phrase.len()) else {
        return false;
    };
    if phrase.is_empty() || candidate.iter().any(|w| w.clause != candidate[0].clause) {
        return false;
    }
    let last = phrase.len() - 1;
    candidate.iter().zip(phrase).enumerate().all(|(i, (w, p))| {
        if plural && i == last {
            matches_with_plural(&w.text, p)
        } else {
            w.text == *p
        }
    })
}

/// Whether one of `phrases` starts at an index in `range` and lies within `clause`, ending
/// before `end` when given.
fn any_phrase_in(
    words: &[Word],
    range: Range<usize>,
    end: Option<usize>,
    clause: usize,
    phrases: &[Vec<String>],
    accept: impl Fn(usize, &[String]) -> bool,
) -> bool {
    range.into_iter().any(|start| {
        words.get(start).is_some_and(|w| w.clause == clause)
            && phrases.iter().any(|phrase| {
                end.is_none_or(|end| start + phrase.len() <= end)
                    && phrase_at(words, start, phrase, false)
                    && accept(start, phrase)
            })
    })
}

struct Cues {
    negations: Vec<Vec<String>>,
    strong: Vec<Vec<String>>,
    strong_postfix: Vec<Vec<String>>,
    mild: Vec<Vec<String>>,
}

impl Cues {
    fn new() -> Self {
        let all = |list: &[&str]| list.iter().map(|p| phrase_words(p)).collect();
        Self {
            negations: all(NEGATIONS),
            strong: all(STRONG_INTENTS),
            strong_postfix: all(STRONG_POSTFIX_INTENTS),
            mild: all(MILD_INTENTS),
        }
    }

    fn is_negated(&self, words: &[Word], start: usize) -> bool {
        let clause = words[start].clause;
        let range = start.saturating_sub(NEGATION_WINDOW)..start;
        any_phrase_in(
            words,
            range,
            Some(start),
            clause,
            &self.negations,
            |at, phrase| {
                words
                    .get(at + phrase.len())
                    .is_none_or(|next| !NEGATION_CANCELLERS.contains(&next.text.as_str()))
            },
        )
    }

    fn confidence(&self, words: &[Word], start: usize, len: usize) -> f64 {
        let clause = words[start].clause;
        let before = start.saturating_sub(INTENT_WINDOW)..start;
        let after = start + len..start + len + POSTFIX_INTENT_WINDOW;
        let found = |range: Range<usize>, end: Option<usize>, phrases: &[Vec<String>]| {
            any_phrase_in(words, range, end, clause, phrases, |_, _| true)
        };
        if found(before.clone(), Some(start), &self.strong)
            || found(after, None, &self.strong_postfix)
        {
            STRONG_CONFIDENCE
        } else if found(before, Some(start), &self.mild) {
            MILD_CONFIDENCE
        } else {
            PLAIN_CONFIDENCE
        }
    }
}

/// Deterministic extraction, used when no chat model is configured. See the module
/// documentation for how cues, plurals, negation and confidence work.
pub fn extract_by_rules(message: &str) -> Vec<Preference> {
    let words = words(message);
    let cues = Cues::new();
    // The cues by their first word, so that each word of the message is looked up, not
    // compared with every cue.
    let mut by_first_word: BTreeMap<String, Vec<(&Rule, Vec<String>)>> = BTreeMap::new();
    for rule in RULES {
        for cue in rule.cues {
            let cue = phrase_words(cue);
            if let Some(first) = cue.first() {
                by_first_word
                    .entry(first.clone())
                    .or_default()
                    .push((rule, cue));
            }
        }
    }
    let mut found: BTreeMap<(PreferenceCategory, &'static str), f64> = BTreeMap::new();
    for (start, word) in words.iter().enumerate() {
        // A one-word cue may match in its plural form.
        let singulars = [
            Some(word.text.as_str()),
            word.text.strip_suffix('s'),
            word.text.strip_suffix("es"),
        ];
        let candidates = singulars
            .into_iter()
            .flatten()
            .filter_map(|key| by_first_word.get(key))
            .flatten();
        for (rule, cue) in candidates {
            let after_excluded_word = start.checked_sub(1).is_some_and(|before| {
                words[before].clause == word.clause
                    && rule.not_after.contains(&words[before].text.as_str())
            });
            if !phrase_at(&words, start, cue, true)
                || after_excluded_word
                || cues.is_negated(&words, start)
            {
                continue;
            }
            let confidence = cues.confidence(&words, start, cue.len());
            let best = found
                .entry((rule.category, rule.preference))
                .or_insert(confidence);
            *best = best.max(confidence);
        }
    }
    found
        .into_iter()
        .map(|((category, preference), confidence)| Preference {
            category,
            preference: preference.to_owned(),
            confidence,
        })
        .collect()
}
