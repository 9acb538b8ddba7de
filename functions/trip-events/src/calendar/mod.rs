//! A trip's itinerary as an RFC 5545 iCalendar document (`calendar.sync.request`).
//!
//! Pure: no I/O and no clock — the caller passes the generation time. Every time is written in
//! UTC (`YYYYMMDDTHHMMSSZ`), so the document needs no `VTIMEZONE`.
//!
//! Choices the RFC leaves open:
//! - `UID` is `itinerary-item-<id>-trip-<trip_id>@tripsage`, the same on every sync, so a
//!   subscribed calendar updates an event in place instead of duplicating it.
//! - `SEQUENCE` is the item's `updated_at` in whole seconds since 2020-01-01T00:00:00Z: it grows
//!   with every edit made at least a second after the previous one, needs no stored counter, and
//!   fits the RFC's 32-bit INTEGER until 2088 (0 before 2020; saturates after 2088).
//! - An item with only `start_time` gets no `DTEND`: RFC 5545 §3.6.1 says such an event ends
//!   when it starts, which is what the itinerary knows. The same holds when `end_time` equals
//!   `start_time`, because `DTEND` must be later than `DTSTART` (§3.8.2.2).
//! - An item without `start_time` is an all-day event on the trip's `start_date`; its `end_time`,
//!   if any, is still validated but not shown.
//! - An empty `description` or `location` is written as absent; an empty `item_type` writes no
//!   `CATEGORIES`.
//! - Timestamps are read as RFC 3339 (what Postgres' `to_jsonb(timestamptz)` prints):
//!   `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM[:SS])`, with `T` or a space between date and
//!   time. Fractional seconds are dropped, not rounded.

use std::collections::BTreeMap;
use std::fmt;

/// The MIME type to send the document with.
pub const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

const PRODID: &str = "-//TripSage//TripSage Edge//EN";

/// RFC 5545 §3.1: content lines longer than this many octets are folded.
const MAX_LINE_OCTETS: usize = 75;

/// 2020-01-01T00:00:00Z in Unix seconds: the zero of `SEQUENCE`.
const SEQUENCE_EPOCH: i64 = 1_577_836_800;

const SECONDS_PER_DAY: i64 = 86_400;

/// The trip a calendar is for (from the `calendar.sync.request` payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarTrip {
    pub trip_id: i64,
    pub name: String,
    pub destination: String,
    /// `YYYY-MM-DD`
    pub start_date: String,
    pub end_date: String,
}

/// One itinerary item. Timestamps are as Postgres' `to_jsonb(timestamptz)` prints them, e.g.
/// `2027-05-01T09:30:00+00:00`, `2027-05-01T09:30:00.123456+02:00`, or with `Z`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarItem {
    pub id: i64,
    pub title: String,
    pub description: Option<String>,
    pub item_type: String,
    pub location: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub updated_at: String,
}

/// Why a calendar could not be built: which input field is bad and why (the caller turns it into
/// a 400 naming the field, e.g. `items[3].start_time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarError {
    pub field: String,
    pub reason: String,
}

impl CalendarError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for CalendarError {}

/// The iCalendar document (CRLF line endings, folded), `generated_at` in Unix seconds (DTSTAMP).
pub fn itinerary_calendar(
    trip: &CalendarTrip,
    items: &[CalendarItem],
    generated_at: i64,
) -> Result<String, CalendarError> {
    let trip_start =
        parse_date(&trip.start_date).map_err(|reason| CalendarError::new("start_date", reason))?;
    let trip_end =
        parse_date(&trip.end_date).map_err(|reason| CalendarError::new("end_date", reason))?;
    if trip_end < trip_start {
        return Err(CalendarError::new("end_date", "is before start_date"));
    }
    let all_day_start =
        format_date(trip_start).ok_or_else(|| CalendarError::new("start_date", OUT_OF_RANGE))?;
    let all_day_end = format_date(trip_start + 1)
        .ok_or_else(|| CalendarError::new("start_date", OUT_OF_RANGE))?;
    let dtstamp =
        format_utc(generated_at).ok_or_else(|| CalendarError::new("generated_at", OUT_OF_RANGE))?;

    let mut seen_ids = BTreeMap::new();
    let mut doc = ContentLines::default();
    doc.line("BEGIN:VCALENDAR");
    doc.line("VERSION:2.0");
    doc.property("PRODID", PRODID);
    doc.line("CALSCALE:GREGORIAN");
    doc.line("METHOD:PUBLISH");
    doc.text("X-WR-CALNAME", &trip.name);
    doc.text(
        "X-WR-CALDESC",
        &format!(
            "{} ({} to {})",
            trip.destination, trip.start_date, trip.end_date
        ),
    );

    for (index, item) in items.iter().enumerate() {
        let field = |name: &str| format!("items[{index}].{name}");
        if let Some(first) = seen_ids.insert(item.id, index) {
            return Err(CalendarError::new(
                field("id"),
                format!("repeats items[{first}].id"),
            ));
        }
        let timestamp = |name: &str, text: &str| {
            parse_utc(text).map_err(|reason| CalendarError::new(field(name), reason))
        };
        let start = item
            .start_time
            .as_deref()
            .map(|text| timestamp("start_time", text))
            .transpose()?;
        let end = item
            .end_time
            .as_deref()
            .map(|text| timestamp("end_time", text))
            .transpose()?;
        let (updated_seconds, last_modified) = timestamp("updated_at", &item.updated_at)?;

        doc.line("BEGIN:VEVENT");
        doc.property(
            "UID",
            &format!("itinerary-item-{}-trip-{}@tripsage", item.id, trip.trip_id),
        );
        doc.property("DTSTAMP", &dtstamp);
        match start {
            Some((start_seconds, start_utc)) => {
                doc.property("DTSTART", &start_utc);
                match end {
                    Some((end_seconds, _)) if end_seconds < start_seconds => {
                        return Err(CalendarError::new(
                            field("end_time"),
                            "is before start_time",
                        ));
                    }
                    Some((end_seconds, end_utc)) if end_seconds > start_seconds => {
                        doc.property("DTEND", &end_utc);
                    }
                    // Ends when it starts: RFC 5545 §3.6.1 says that without DTEND.
                    _ => {}
                }
            }
            None => {
                doc.property("DTSTART;VALUE=DATE", &all_day_start);
                doc.property("DTEND;VALUE=DATE", &all_day_end);
            }
        }
        doc.text("SUMMARY", &item.title);
        if let Some(description) = item.description.as_deref().filter(|d| !d.is_empty()) {
            doc.text("DESCRIPTION", description);
        }
        if let Some(location) = item.location.as_deref().filter(|l| !l.is_empty()) {
            doc.text("LOCATION", location);
        }
        if !item.item_type.is_empty() {
            doc.text("CATEGORIES", &item.item_type);
        }
        doc.property("LAST-MODIFIED", &last_modified);
        doc.property("SEQUENCE", &sequence(updated_seconds).to_string());
        doc.line("END:VEVENT");
    }

    doc.line("END:VCALENDAR");
    Ok(doc.out)
}

/// `SEQUENCE` for an item last updated at `updated_at` (Unix seconds); see the module docs.
fn sequence(updated_at: i64) -> i32 {
    i32::try_from(updated_at.saturating_sub(SEQUENCE_EPOCH).max(0)).unwrap_or(i32::MAX)
}

/// A document being written: each content line folded and ended with CRLF.
#[derive(Default)]
struct ContentLines {
    out: String,
}

impl ContentLines {
    fn line(&mut self, line: &str) {
        fold_into(&mut self.out, line);
    }

    /// A property whose value is already in its iCalendar form.
    fn property(&mut self, name: &str, value: &str) {
        self.line(&format!("{name}:{value}"));
    }

    /// A property of value type TEXT.
    fn text(&mut self, name: &str, value: &str) {
        self.property(name, &escape_text(value));
    }
}

/// Escapes a TEXT value (RFC 5545 §3.3.11). Every line break becomes `\n`; other control
/// characters (which the RFC does not allow in TEXT) are dropped, tab is kept.
fn escape_text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\r' => {
                chars.next_if_eq(&'\n');
                escaped.push_str("\\n");
            }
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push('\t'),
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// Appends `line` folded to at most 75 octets per physical line (RFC 5545 §3.1), each ended with
/// CRLF; a continuation line starts with one space, and no UTF-8 character is split.
fn fold_into(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = MAX_LINE_OCTETS;
    while rest.len() > limit {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space of a continuation line counts towards its 75 octets.
        limit = MAX_LINE_OCTETS - 1;
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

mod time;

use time::*;

#[cfg(test)]
mod tests;
