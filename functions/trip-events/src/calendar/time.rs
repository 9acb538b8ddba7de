//! The times of a calendar: RFC 3339 timestamps and dates read (what Postgres'
//! `to_jsonb(timestamptz)` prints), and written as iCalendar's UTC forms. Proleptic Gregorian
//! arithmetic in whole seconds, no clock.

use super::SECONDS_PER_DAY;

pub(super) const DATE_SHAPE: &str = "must be a date like 2027-05-01";
pub(super) const TIMESTAMP_SHAPE: &str =
    "must be a timestamp like 2027-05-01T09:30:00+00:00 (fractional seconds and Z allowed)";
pub(super) const NO_SUCH_DAY: &str = "names a day that does not exist";
pub(super) const BAD_TIME_OF_DAY: &str = "has a time of day out of range";
pub(super) const BAD_OFFSET: &str = "has a UTC offset out of range";
pub(super) const OUT_OF_RANGE: &str = "is outside the years 0000-9999 in UTC";

/// A `YYYY-MM-DD` date as days since 1970-01-01.
pub(super) fn parse_date(text: &str) -> Result<i64, &'static str> {
    let mut cursor = Cursor::new(text);
    let date = cursor.date().ok_or(DATE_SHAPE)?;
    if !cursor.at_end() {
        return Err(DATE_SHAPE);
    }
    date.days().ok_or(NO_SUCH_DAY)
}

/// An RFC 3339 timestamp (see the module docs) as Unix seconds, fractional seconds dropped.
pub(super) fn parse_timestamp(text: &str) -> Result<i64, &'static str> {
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
pub(super) fn parse_utc(text: &str) -> Result<(i64, String), &'static str> {
    let seconds = parse_timestamp(text)?;
    let utc = format_utc(seconds).ok_or(OUT_OF_RANGE)?;
    Ok((seconds, utc))
}

/// Unix seconds as an iCalendar UTC DATE-TIME, `YYYYMMDDTHHMMSSZ`; `None` outside years 0–9999.
pub(super) fn format_utc(seconds: i64) -> Option<String> {
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
pub(super) fn format_date(days: i64) -> Option<String> {
    let date = CivilDate::from_days(days);
    (0..=9999)
        .contains(&date.year)
        .then(|| format!("{:04}{:02}{:02}", date.year, date.month, date.day))
}

/// A proleptic Gregorian date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CivilDate {
    year: i64,
    month: i64,
    day: i64,
}

impl CivilDate {
    /// Days since 1970-01-01, or `None` when the day does not exist (e.g. 2027-02-29).
    /// Howard Hinnant's `days_from_civil`, on eras of 400 years.
    pub(super) fn days(self) -> Option<i64> {
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
    pub(super) fn from_days(days: i64) -> Self {
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

pub(super) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads fixed-width ASCII fields; any other byte (or a short input) is `None`.
pub(super) struct Cursor<'a> {
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
