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

const DATE_SHAPE: &str = "must be a date like 2027-05-01";
const TIMESTAMP_SHAPE: &str =
    "must be a timestamp like 2027-05-01T09:30:00+00:00 (fractional seconds and Z allowed)";
const NO_SUCH_DAY: &str = "names a day that does not exist";
const BAD_TIME_OF_DAY: &str = "has a time of day out of range";
const BAD_OFFSET: &str = "has a UTC offset out of range";
const OUT_OF_RANGE: &str = "is outside the years 0000-9999 in UTC";

/// A `YYYY-MM-DD` date as days since 1970-01-01.
fn parse_date(text: &str) -> Result<i64, &'static str> {
    let mut cursor = Cursor::new(text);
    let date = cursor.date().ok_or(DATE_SHAPE)?;
    if !cursor.at_end() {
        return Err(DATE_SHAPE);
    }
    date.days().ok_or(NO_SUCH_DAY)
}

/// An RFC 3339 timestamp (see the module docs) as Unix seconds, fractional seconds dropped.
fn parse_timestamp(text: &str) -> Result<i64, &'static str> {
    let mut cursor = Cursor::new(text);
    let date = cursor.date().ok_or(TIMESTAMP_SHAPE)?;
    cursor
        .eat(|b| matches!(b, b'T' | b't' | b' '))
        .ok_or(TIMESTAMP_SHAPE)?;
    let (hour, minute, second) = cursor.time().ok_or(TIMESTAMP_SHAPE)?;
    if cursor.eat(|b| b == b'.').is_some() {
        cursor.eat(|b| b.is_ascii_digit()).ok_or(TIMESTAMP_SHAPE)?;
        while cursor.eat(|b| b.is_ascii_digit()).is_some() {}
    }
    let offset = match cursor.eat(|b| matches!(b, b'Z' | b'z' | b'+' | b'-')) {
        Some(b'Z' | b'z') => 0,
        Some(sign) => {
            let hours = cursor.number(2).ok_or(TIMESTAMP_SHAPE)?;
            cursor.eat(|b| b == b':').ok_or(TIMESTAMP_SHAPE)?;
            let minutes = cursor.number(2).ok_or(TIMESTAMP_SHAPE)?;
            // Postgres adds seconds for offsets that have them (historic local mean times).
            let seconds = match cursor.eat(|b| b == b':') {
                Some(_) => cursor.number(2).ok_or(TIMESTAMP_SHAPE)?,
                None => 0,
            };
            if hours > 23 || minutes > 59 || seconds > 59 {
                return Err(BAD_OFFSET);
            }
            let magnitude = hours * 3_600 + minutes * 60 + seconds;
            if sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        None => return Err(TIMESTAMP_SHAPE),
    };
    if !cursor.at_end() {
        return Err(TIMESTAMP_SHAPE);
    }
    let days = date.days().ok_or(NO_SUCH_DAY)?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(BAD_TIME_OF_DAY);
    }
    Ok(days * SECONDS_PER_DAY + hour * 3_600 + minute * 60 + second - offset)
}

/// A timestamp as Unix seconds and as the iCalendar UTC DATE-TIME it is written as.
fn parse_utc(text: &str) -> Result<(i64, String), &'static str> {
    let seconds = parse_timestamp(text)?;
    let utc = format_utc(seconds).ok_or(OUT_OF_RANGE)?;
    Ok((seconds, utc))
}

/// Unix seconds as an iCalendar UTC DATE-TIME, `YYYYMMDDTHHMMSSZ`; `None` outside years 0–9999.
fn format_utc(seconds: i64) -> Option<String> {
    let date = format_date(seconds.div_euclid(SECONDS_PER_DAY))?;
    let time = seconds.rem_euclid(SECONDS_PER_DAY);
    Some(format!(
        "{date}T{:02}{:02}{:02}Z",
        time / 3_600,
        time / 60 % 60,
        time % 60
    ))
}

/// Days since 1970-01-01 as an iCalendar DATE, `YYYYMMDD`; `None` outside years 0–9999.
fn format_date(days: i64) -> Option<String> {
    let date = CivilDate::from_days(days);
    (0..=9999)
        .contains(&date.year)
        .then(|| format!("{:04}{:02}{:02}", date.year, date.month, date.day))
}

/// A proleptic Gregorian date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CivilDate {
    year: i64,
    month: i64,
    day: i64,
}

impl CivilDate {
    /// Days since 1970-01-01, or `None` when the day does not exist (e.g. 2027-02-29).
    /// Howard Hinnant's `days_from_civil`, on eras of 400 years.
    fn days(self) -> Option<i64> {
        let Self { year, month, day } = self;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        Some(era * 146_097 + day_of_era - 719_468)
    }

    /// The inverse of [`CivilDate::days`] (Hinnant's `civil_from_days`).
    fn from_days(days: i64) -> Self {
        let days = days + 719_468;
        let era = days.div_euclid(146_097);
        let day_of_era = days - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153; // March is 0
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self { year, month, day }
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads fixed-width ASCII fields; any other byte (or a short input) is `None`.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// The next byte, consumed only if `accept` takes it.
    fn eat(&mut self, accept: impl Fn(u8) -> bool) -> Option<u8> {
        let byte = *self.bytes.get(self.pos).filter(|&&b| accept(b))?;
        self.pos += 1;
        Some(byte)
    }

    /// Exactly `width` decimal digits.
    fn number(&mut self, width: usize) -> Option<i64> {
        let digits = self.bytes.get(self.pos..self.pos + width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.pos += width;
        Some(
            digits
                .iter()
                .fold(0, |value, digit| value * 10 + i64::from(digit - b'0')),
        )
    }

    /// `YYYY-MM-DD`, not yet checked to be a real day.
    fn date(&mut self) -> Option<CivilDate> {
        let year = self.number(4)?;
        self.eat(|b| b == b'-')?;
        let month = self.number(2)?;
        self.eat(|b| b == b'-')?;
        let day = self.number(2)?;
        Some(CivilDate { year, month, day })
    }

    /// `HH:MM:SS`, not yet range-checked.
    fn time(&mut self) -> Option<(i64, i64, i64)> {
        let hour = self.number(2)?;
        self.eat(|b| b == b':')?;
        let minute = self.number(2)?;
        self.eat(|b| b == b':')?;
        let second = self.number(2)?;
        Some((hour, minute, second))
    }
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;
