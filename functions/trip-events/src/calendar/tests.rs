//! The tests of the calendar: the document, and the times it reads and writes.

use super::*;

fn trip() -> CalendarTrip {
    CalendarTrip {
        trip_id: 42,
        name: "Lisbon, Porto; & back".to_owned(),
        destination: "Portugal".to_owned(),
        start_date: "2027-05-01".to_owned(),
        end_date: "2027-05-09".to_owned(),
    }
}

fn item(id: i64, start: Option<&str>, end: Option<&str>) -> CalendarItem {
    CalendarItem {
        id,
        title: format!("Item {id}"),
        description: None,
        item_type: "activity".to_owned(),
        location: None,
        start_time: start.map(str::to_owned),
        end_time: end.map(str::to_owned),
        updated_at: "2027-04-01T12:00:00+00:00".to_owned(),
    }
}

/// 2027-04-15T10:00:00Z
const GENERATED_AT: i64 = 1_807_783_200;

fn calendar(items: &[CalendarItem]) -> Result<String, CalendarError> {
    itinerary_calendar(&trip(), items, GENERATED_AT)
}

fn utc(timestamp: &str) -> Result<String, &'static str> {
    parse_timestamp(timestamp).map(|seconds| format_utc(seconds).unwrap())
}

/// The unfolded content lines of one VEVENT (by index) in a generated document.
fn event_lines(doc: &str, index: usize) -> Vec<String> {
    let unfolded = doc.replace("\r\n ", "");
    let events: Vec<&str> = unfolded.split("BEGIN:VEVENT\r\n").skip(1).collect();
    let event = events[index].split("END:VEVENT").next().unwrap();
    event
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn field_error(result: Result<String, CalendarError>) -> String {
    result.expect_err("expected a CalendarError").field
}

#[test]
fn content_type_is_utf8_text_calendar() {
    assert_eq!(CONTENT_TYPE, "text/calendar; charset=utf-8");
}

#[test]
fn escapes_text_values() {
    assert_eq!(escape_text("plain text: ok"), "plain text: ok");
    assert_eq!(
        escape_text(r"C:\temp; a, b"),
        r"C:\\temp\; a\, b",
        "backslash, semicolon and comma are escaped; colon is not"
    );
    assert_eq!(escape_text("a\nb\r\nc\rd"), r"a\nb\nc\nd");
    assert_eq!(escape_text("\r\n\r\n"), r"\n\n");
    assert_eq!(
        escape_text("\n\r"),
        r"\n\n",
        "LF then CR is two line breaks"
    );
    assert_eq!(
        escape_text(r"\n"),
        r"\\n",
        "a literal backslash-n stays literal"
    );
    assert_eq!(
        escape_text("tab\tbell\u{7}nul\u{0}del\u{7f}c1\u{85}esc\u{1b}end"),
        "tab\tbellnuldelc1escend"
    );
    assert_eq!(escape_text("Café, 東京; 🚆"), r"Café\, 東京\; 🚆");
}

fn folded(line: &str) -> String {
    let mut out = String::new();
    fold_into(&mut out, line);
    out
}

#[test]
fn folds_at_75_octets() {
    let exactly = "a".repeat(75);
    assert_eq!(folded(&exactly), format!("{exactly}\r\n"));

    let one_over = "b".repeat(76);
    assert_eq!(folded(&one_over), format!("{}\r\n b\r\n", "b".repeat(75)));

    // 75 + 74 + 74 + 1 octets.
    let long = "c".repeat(224);
    assert_eq!(
        folded(&long),
        format!(
            "{}\r\n {}\r\n {}\r\n c\r\n",
            "c".repeat(75),
            "c".repeat(74),
            "c".repeat(74)
        )
    );
    assert_eq!(folded(""), "\r\n");
}

#[test]
fn never_splits_a_utf8_character_when_folding() {
    // "é" (2 octets) would straddle octets 75-76: the first line stops at 74.
    let line = format!("{}é{}", "x".repeat(74), "y".repeat(3));
    assert_eq!(folded(&line), format!("{}\r\n éyyy\r\n", "x".repeat(74)));

    // A 4-octet character at octets 74-77 of the first line.
    let line = format!("{}🚆z", "x".repeat(73));
    assert_eq!(folded(&line), format!("{}\r\n 🚆z\r\n", "x".repeat(73)));

    // On a continuation line (74 octets after the space): "東" (3 octets) at 73-75.
    let line = format!("{}{}東", "x".repeat(75), "y".repeat(72));
    assert_eq!(
        folded(&line),
        format!("{}\r\n {}\r\n 東\r\n", "x".repeat(75), "y".repeat(72))
    );
}

#[test]
fn folded_lines_are_short_whole_utf8_and_unfold_to_the_original() {
    let mixed = "Ünïcödé 東京 🚆 trip, ".repeat(40);
    for offset in 0..4 {
        let line = format!("{}{mixed}", "p".repeat(offset));
        let out = folded(&line);
        assert!(out.ends_with("\r\n"));
        let physical: Vec<&str> = out.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(physical.len() > 10);
        for (n, piece) in physical.iter().enumerate() {
            assert!(piece.len() <= 75, "line {n} has {} octets", piece.len());
            assert_eq!(n > 0, piece.starts_with(' '));
            assert!(!piece.contains(['\r', '\n']));
        }
        assert_eq!(out.trim_end_matches("\r\n").replace("\r\n ", ""), line);
    }
}

#[test]
fn converts_offsets_to_utc() {
    let cases = [
        ("2027-05-01T09:30:00+00:00", "20270501T093000Z"),
        ("2027-05-01T09:30:00Z", "20270501T093000Z"),
        ("2027-05-01T09:30:00z", "20270501T093000Z"),
        ("2027-05-01 09:30:00+00:00", "20270501T093000Z"),
        ("2027-05-01T09:30:00.123456+02:00", "20270501T073000Z"),
        ("2027-05-01T09:30:59.999999+00:00", "20270501T093059Z"),
        ("2027-05-01T09:30:00-07:00", "20270501T163000Z"),
        ("2027-05-01T09:30:00+05:45", "20270501T034500Z"),
        // Across midnight, both ways.
        ("2027-05-10T00:15:00+01:00", "20270509T231500Z"),
        ("2027-05-10T23:15:00-01:00", "20270511T001500Z"),
        // Across a month end.
        ("2027-05-01T01:00:00+05:30", "20270430T193000Z"),
        ("2027-04-30T22:00:00-03:00", "20270501T010000Z"),
        // Across a year end.
        ("2026-12-31T23:30:00-01:00", "20270101T003000Z"),
        ("2027-01-01T00:00:00+14:00", "20261231T100000Z"),
        // Leap days: 2028 is a leap year, 2027 and 2100 are not, 2000 is.
        ("2028-02-29T23:00:00-02:00", "20280301T010000Z"),
        ("2028-03-01T00:30:00+01:00", "20280229T233000Z"),
        ("2027-03-01T00:30:00+01:00", "20270228T233000Z"),
        ("2100-03-01T00:00:00+00:01", "21000228T235900Z"),
        ("2000-03-01T00:00:00+00:01", "20000229T235900Z"),
        // Postgres prints offsets with seconds for historic local mean time.
        ("1900-01-01T00:00:00+00:53:28", "18991231T230632Z"),
        ("1970-01-01T00:00:00+00:00", "19700101T000000Z"),
        ("1969-12-31T23:59:59+00:00", "19691231T235959Z"),
        ("9999-12-31T23:59:59+00:00", "99991231T235959Z"),
    ];
    for (input, expected) in cases {
        assert_eq!(utc(input).as_deref(), Ok(expected), "{input}");
    }
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(parse_timestamp("2027-04-15T10:00:00Z"), Ok(GENERATED_AT));
}

#[test]
fn rejects_malformed_timestamps() {
    let cases = [
        ("", TIMESTAMP_SHAPE),
        ("2027-05-01", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30+00:00", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00.+00:00", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00+2:00", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00+0200", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00+02", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00+00:00 BC", TIMESTAMP_SHAPE),
        ("2027-05-01T09:30:00Z ", TIMESTAMP_SHAPE),
        (" 2027-05-01T09:30:00Z", TIMESTAMP_SHAPE),
        ("2027-05-01X09:30:00Z", TIMESTAMP_SHAPE),
        ("27-05-01T09:30:00Z", TIMESTAMP_SHAPE),
        ("12027-05-01T09:30:00Z", TIMESTAMP_SHAPE),
        ("+2027-05-01T09:30:00Z", TIMESTAMP_SHAPE),
        ("2027-5-01T09:30:00Z", TIMESTAMP_SHAPE),
        ("２０２７-05-01T09:30:00Z", TIMESTAMP_SHAPE),
        ("infinity", TIMESTAMP_SHAPE),
        ("1715000000", TIMESTAMP_SHAPE),
        ("2027-02-29T09:30:00Z", NO_SUCH_DAY),
        ("2100-02-29T09:30:00Z", NO_SUCH_DAY),
        ("2027-04-31T09:30:00Z", NO_SUCH_DAY),
        ("2027-13-01T09:30:00Z", NO_SUCH_DAY),
        ("2027-00-10T09:30:00Z", NO_SUCH_DAY),
        ("2027-05-00T09:30:00Z", NO_SUCH_DAY),
        ("2027-05-01T24:00:00Z", BAD_TIME_OF_DAY),
        ("2027-05-01T09:60:00Z", BAD_TIME_OF_DAY),
        ("2027-05-01T09:30:60Z", BAD_TIME_OF_DAY),
        ("2027-05-01T09:30:00+24:00", BAD_OFFSET),
        ("2027-05-01T09:30:00+02:60", BAD_OFFSET),
    ];
    for (input, reason) in cases {
        assert_eq!(parse_timestamp(input), Err(reason), "{input:?}");
    }
    // Well-formed, but not writable as a four-digit year in UTC.
    assert_eq!(utc_in_range("0000-01-01T00:00:00+00:01"), None);
    assert_eq!(utc_in_range("9999-12-31T23:59:59-00:01"), None);
    assert_eq!(
        utc_in_range("0000-01-01T00:00:00+00:00").as_deref(),
        Some("00000101T000000Z")
    );
}

fn utc_in_range(timestamp: &str) -> Option<String> {
    format_utc(parse_timestamp(timestamp).unwrap())
}

#[test]
fn dates_round_trip_through_day_numbers() {
    for days in -800_000..800_000 {
        let date = CivilDate::from_days(days);
        assert_eq!(date.days(), Some(days), "{date:?}");
    }
    assert_eq!(parse_date("1970-01-01"), Ok(0));
    assert_eq!(parse_date("2000-02-29"), Ok(11_016));
    assert_eq!(parse_date("2027-5-01"), Err(DATE_SHAPE));
    assert_eq!(parse_date("2027-05-01T00:00:00Z"), Err(DATE_SHAPE));
    assert_eq!(parse_date("2027-02-29"), Err(NO_SUCH_DAY));
}

#[test]
fn writes_the_whole_document() {
    let items = [
        CalendarItem {
            id: 7,
            title: "Dinner, Alfama; fado".to_owned(),
            description: Some("Table for 2\nBring cash".to_owned()),
            item_type: "meal".to_owned(),
            location: Some("Rua de São Miguel 12".to_owned()),
            start_time: Some("2027-05-01T21:30:00+01:00".to_owned()),
            end_time: Some("2027-05-02T00:15:00+01:00".to_owned()),
            updated_at: "2027-04-01T12:00:00.5+00:00".to_owned(),
        },
        CalendarItem {
            description: Some(String::new()),
            ..item(8, None, None)
        },
    ];
    let doc = calendar(&items).unwrap();
    assert_eq!(
        doc,
        concat!(
            "BEGIN:VCALENDAR\r\n",
            "VERSION:2.0\r\n",
            "PRODID:-//TripSage//TripSage Edge//EN\r\n",
            "CALSCALE:GREGORIAN\r\n",
            "METHOD:PUBLISH\r\n",
            "X-WR-CALNAME:Lisbon\\, Porto\\; & back\r\n",
            "X-WR-CALDESC:Portugal (2027-05-01 to 2027-05-09)\r\n",
            "BEGIN:VEVENT\r\n",
            "UID:itinerary-item-7-trip-42@tripsage\r\n",
            "DTSTAMP:20270415T100000Z\r\n",
            "DTSTART:20270501T203000Z\r\n",
            "DTEND:20270501T231500Z\r\n",
            "SUMMARY:Dinner\\, Alfama\\; fado\r\n",
            "DESCRIPTION:Table for 2\\nBring cash\r\n",
            "LOCATION:Rua de São Miguel 12\r\n",
            "CATEGORIES:meal\r\n",
            "LAST-MODIFIED:20270401T120000Z\r\n",
            "SEQUENCE:228744000\r\n",
            "END:VEVENT\r\n",
            "BEGIN:VEVENT\r\n",
            "UID:itinerary-item-8-trip-42@tripsage\r\n",
            "DTSTAMP:20270415T100000Z\r\n",
            "DTSTART;VALUE=DATE:20270501\r\n",
            "DTEND;VALUE=DATE:20270502\r\n",
            "SUMMARY:Item 8\r\n",
            "CATEGORIES:activity\r\n",
            "LAST-MODIFIED:20270401T120000Z\r\n",
            "SEQUENCE:228744000\r\n",
            "END:VEVENT\r\n",
            "END:VCALENDAR\r\n",
        )
    );
}

#[test]
fn an_empty_itinerary_is_a_calendar_without_events() {
    let doc = calendar(&[]).unwrap();
    assert!(doc.starts_with("BEGIN:VCALENDAR\r\n"));
    assert!(doc.ends_with(concat!(
        "METHOD:PUBLISH\r\n",
        "X-WR-CALNAME:Lisbon\\, Porto\\; & back\r\n",
        "X-WR-CALDESC:Portugal (2027-05-01 to 2027-05-09)\r\n",
        "END:VCALENDAR\r\n",
    )));
    assert!(!doc.contains("VEVENT"));
}

#[test]
fn every_line_of_a_long_document_is_crlf_terminated_and_short() {
    let mut long = item(1, Some("2027-05-01T09:00:00Z"), None);
    long.title = "Überlandfahrt nach Sintra, Cascais; Cabo da Roca 🚆 ".repeat(8);
    long.description = Some("Zeile eins\nzweite Zeile, 東京 \\ ok\r\n".repeat(10));
    let doc = calendar(&[long]).unwrap();
    assert!(doc.ends_with("END:VCALENDAR\r\n"));
    let lines: Vec<&str> = doc.strip_suffix("\r\n").unwrap().split("\r\n").collect();
    for line in lines {
        assert!(line.len() <= 75, "{line:?}");
        assert!(!line.contains(['\r', '\n']), "{line:?}");
    }
}

#[test]
fn all_day_items_fall_on_the_trip_start_date() {
    for (start_date, dtstart, dtend) in [
        ("2027-05-01", "20270501", "20270502"),
        ("2027-04-30", "20270430", "20270501"),
        ("2027-12-31", "20271231", "20280101"),
        ("2028-02-28", "20280228", "20280229"),
        ("2028-02-29", "20280229", "20280301"),
        ("2027-02-28", "20270228", "20270301"),
    ] {
        let trip = CalendarTrip {
            start_date: start_date.to_owned(),
            end_date: "2028-12-31".to_owned(),
            ..trip()
        };
        let doc = itinerary_calendar(&trip, &[item(1, None, None)], GENERATED_AT).unwrap();
        let lines = event_lines(&doc, 0);
        assert!(
            lines.contains(&format!("DTSTART;VALUE=DATE:{dtstart}")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&format!("DTEND;VALUE=DATE:{dtend}")),
            "{lines:?}"
        );
    }
}

#[test]
fn an_item_without_start_time_is_all_day_even_with_an_end_time() {
    let doc = calendar(&[item(1, None, Some("2027-05-03T10:00:00Z"))]).unwrap();
    let lines = event_lines(&doc, 0);
    assert!(lines.contains(&"DTSTART;VALUE=DATE:20270501".to_owned()));
    assert!(lines.contains(&"DTEND;VALUE=DATE:20270502".to_owned()));
}

#[test]
fn an_item_with_only_a_start_time_has_no_dtend() {
    let doc = calendar(&[item(1, Some("2027-05-01T09:30:00+02:00"), None)]).unwrap();
    let lines = event_lines(&doc, 0);
    assert!(lines.contains(&"DTSTART:20270501T073000Z".to_owned()));
    assert!(!lines.iter().any(|l| l.starts_with("DTEND")), "{lines:?}");
}

#[test]
fn an_item_that_ends_when_it_starts_has_no_dtend() {
    // Same instant written with two offsets: DTEND must be later than DTSTART, so it is left out.
    let doc = calendar(&[item(
        1,
        Some("2027-05-01T09:30:00+02:00"),
        Some("2027-05-01T07:30:00.9Z"),
    )])
    .unwrap();
    let lines = event_lines(&doc, 0);
    assert!(lines.contains(&"DTSTART:20270501T073000Z".to_owned()));
    assert!(!lines.iter().any(|l| l.starts_with("DTEND")), "{lines:?}");
}

#[test]
fn sequence_grows_with_updated_at() {
    let sequence_of = |updated_at: &str| {
        let item = CalendarItem {
            updated_at: updated_at.to_owned(),
            ..item(1, None, None)
        };
        let doc = calendar(&[item]).unwrap();
        let line = event_lines(&doc, 0)
            .into_iter()
            .find(|l| l.starts_with("SEQUENCE:"))
            .unwrap();
        line["SEQUENCE:".len()..].parse::<i64>().unwrap()
    };
    let first = sequence_of("2027-04-01T12:00:00+00:00");
    let edited = sequence_of("2027-04-01T12:00:01+00:00");
    let much_later = sequence_of("2080-01-01T00:00:00+00:00");
    assert!(first < edited && edited < much_later);
    assert_eq!(sequence_of("2020-01-01T00:00:00Z"), 0);
    assert_eq!(sequence_of("2019-06-01T00:00:00Z"), 0, "never negative");
    assert_eq!(
        sequence_of("2200-01-01T00:00:00Z"),
        i64::from(i32::MAX),
        "saturates at the RFC's INTEGER maximum"
    );
}

#[test]
fn the_uid_is_stable_across_syncs_and_updates() {
    let before = calendar(&[item(5, Some("2027-05-01T09:00:00Z"), None)]).unwrap();
    let mut edited = item(5, Some("2027-05-02T10:00:00Z"), None);
    edited.title = "Renamed".to_owned();
    edited.updated_at = "2027-04-20T08:00:00Z".to_owned();
    let after = itinerary_calendar(&trip(), &[edited], GENERATED_AT + 3_600).unwrap();
    let uid = "UID:itinerary-item-5-trip-42@tripsage".to_owned();
    assert!(event_lines(&before, 0).contains(&uid));
    assert!(event_lines(&after, 0).contains(&uid));
}

#[test]
fn invalid_items_name_the_field() {
    let good = || {
        item(
            1,
            Some("2027-05-01T09:00:00Z"),
            Some("2027-05-01T10:00:00Z"),
        )
    };
    let cases = [
        (
            vec![good(), item(2, Some("2027-05-01 9:00"), None)],
            "items[1].start_time",
        ),
        (
            vec![good(), item(2, None, None), item(3, None, Some("tomorrow"))],
            "items[2].end_time",
        ),
        (
            vec![item(
                1,
                Some("2027-05-01T09:00:00Z"),
                Some("2027-05-01T10:59:59+02:00"),
            )],
            "items[0].end_time",
        ),
        (
            vec![CalendarItem {
                updated_at: "2027-04-31T00:00:00Z".to_owned(),
                ..good()
            }],
            "items[0].updated_at",
        ),
        (vec![good(), good()], "items[1].id"),
        (
            vec![item(1, Some("9999-12-31T23:30:00-01:00"), None)],
            "items[0].start_time",
        ),
    ];
    for (items, field) in cases {
        assert_eq!(field_error(calendar(&items)), field);
    }

    let error = calendar(&[item(
        1,
        Some("2027-05-01T09:00:00Z"),
        Some("2027-05-01T08:59:59Z"),
    )])
    .unwrap_err();
    assert_eq!(
        error,
        CalendarError {
            field: "items[0].end_time".to_owned(),
            reason: "is before start_time".to_owned(),
        }
    );
    assert_eq!(error.to_string(), "items[0].end_time is before start_time");
    assert_eq!(
        calendar(&[good(), good()]).unwrap_err().reason,
        "repeats items[0].id"
    );
}

#[test]
fn invalid_trip_dates_name_the_field() {
    let with_dates = |start: &str, end: &str| CalendarTrip {
        start_date: start.to_owned(),
        end_date: end.to_owned(),
        ..trip()
    };
    let cases = [
        (with_dates("2027-5-1", "2027-05-09"), "start_date"),
        (with_dates("", "2027-05-09"), "start_date"),
        (with_dates("2027-02-29", "2027-05-09"), "start_date"),
        (with_dates("9999-12-31", "9999-12-31"), "start_date"),
        (with_dates("2027-05-01", "2027-05-01T00:00:00Z"), "end_date"),
        (with_dates("2027-05-01", "2027-06-31"), "end_date"),
        (with_dates("2027-05-01", "infinity"), "end_date"),
        (with_dates("2027-05-02", "2027-05-01"), "end_date"),
    ];
    for (trip, field) in cases {
        // Trip dates are checked even when no item is all-day.
        assert_eq!(
            field_error(itinerary_calendar(&trip, &[], GENERATED_AT)),
            field,
            "{trip:?}"
        );
    }
    assert!(itinerary_calendar(&with_dates("2027-05-01", "2027-05-01"), &[], GENERATED_AT).is_ok());
}

#[test]
fn generated_at_must_be_writable() {
    for generated_at in [i64::MIN, -62_167_219_201, 253_402_300_800, i64::MAX] {
        assert_eq!(
            field_error(itinerary_calendar(&trip(), &[], generated_at)),
            "generated_at"
        );
    }
    for generated_at in [-62_167_219_200, 0, 253_402_300_799] {
        assert!(itinerary_calendar(&trip(), &[], generated_at).is_ok());
    }
}

/// Reads the document back with an independent parser (the `icalendar` crate).
#[cfg(not(target_arch = "wasm32"))]
mod parsed_back {
    use super::*;
    use icalendar::{CalendarDateTime, Component, DatePerhapsTime, EventLike};

    fn rfc3339(value: Option<DatePerhapsTime>) -> Option<String> {
        match value? {
            DatePerhapsTime::DateTime(CalendarDateTime::Utc(at)) => Some(at.to_rfc3339()),
            DatePerhapsTime::Date(day) => Some(day.to_string()),
            other => panic!("not a UTC time or a date: {other:?}"),
        }
    }

    #[test]
    fn an_independent_parser_reads_back_every_event() {
        let awkward = "Café \"Ñ\", 東京; C:\\dir\\n ok: yes\nline two\n\n\tthree 🚆\\";
        let long = "Tagesausflug nach Sintra, Cascais & Cabo da Roca; Ärger? Nein! ".repeat(5);
        let items = vec![
            CalendarItem {
                id: 11,
                title: awkward.to_owned(),
                description: Some(long.clone()),
                item_type: "transport".to_owned(),
                location: Some("Estação do Rossio, Lisboa; Gate \\3\\".to_owned()),
                start_time: Some("2027-05-02T08:45:00.250+01:00".to_owned()),
                end_time: Some("2027-05-02T19:30:00+01:00".to_owned()),
                updated_at: "2027-04-10T08:00:00+00:00".to_owned(),
            },
            CalendarItem {
                id: 12,
                title: long.clone(),
                description: Some(awkward.to_owned()),
                item_type: "accommodation".to_owned(),
                location: None,
                start_time: Some("2027-05-04T23:30:00-05:00".to_owned()),
                end_time: None,
                updated_at: "2027-04-11T08:00:00Z".to_owned(),
            },
            CalendarItem {
                id: 13,
                title: "Pack, then rest".to_owned(),
                description: Some("Windows\r\nand old Mac\rline breaks".to_owned()),
                item_type: "other".to_owned(),
                location: Some(awkward.to_owned()),
                start_time: None,
                end_time: None,
                updated_at: "2027-04-12T08:00:00Z".to_owned(),
            },
        ];
        let doc = calendar(&items).unwrap();
        assert!(doc.contains("\r\n "), "the long texts are folded");
        let parsed: icalendar::Calendar = doc.parse().unwrap();

        let unfolded = icalendar::parser::unfold(&doc);
        let calendar_lines = icalendar::parser::read_calendar(&unfolded)
            .unwrap()
            .properties;
        let value = |name: &str| {
            calendar_lines
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.val.as_str().to_owned())
        };
        assert_eq!(value("VERSION").as_deref(), Some("2.0"));
        assert_eq!(value("PRODID").as_deref(), Some(PRODID));
        assert_eq!(value("METHOD").as_deref(), Some("PUBLISH"));
        assert_eq!(value("X-WR-CALNAME").as_deref(), Some(trip().name.as_str()));

        let events: Vec<&icalendar::Event> = parsed.events().collect();
        assert_eq!(events.len(), items.len());
        for (event, item) in events.iter().zip(&items) {
            let uid = format!("itinerary-item-{}-trip-42@tripsage", item.id);
            assert_eq!(event.get_uid(), Some(uid.as_str()));
            assert_eq!(event.get_summary(), Some(item.title.as_str()));
            // Every line break is a newline once read back.
            let description = item
                .description
                .as_ref()
                .map(|d| d.replace("\r\n", "\n").replace('\r', "\n"));
            assert_eq!(event.get_description(), description.as_deref());
            assert_eq!(event.get_location(), item.location.as_deref());
            assert_eq!(event.get_categories(), Some(vec![item.item_type.clone()]));
            assert_eq!(
                event.get_timestamp().map(|at| at.to_rfc3339()).as_deref(),
                Some("2027-04-15T10:00:00+00:00")
            );
            assert_eq!(
                event.get_last_modified().map(|at| at.timestamp()),
                parse_timestamp(&item.updated_at).ok()
            );
        }
        let sequences: Vec<Option<u32>> = events.iter().map(|e| e.get_sequence()).collect();
        assert!(sequences.iter().all(Option::is_some), "{sequences:?}");
        assert!(
            sequences.windows(2).all(|pair| pair[0] < pair[1]),
            "later updates, higher SEQUENCE: {sequences:?}"
        );
        assert_eq!(
            rfc3339(events[0].get_start()).as_deref(),
            Some("2027-05-02T07:45:00+00:00")
        );
        assert_eq!(
            rfc3339(events[0].get_end()).as_deref(),
            Some("2027-05-02T18:30:00+00:00")
        );
        assert_eq!(
            rfc3339(events[1].get_start()).as_deref(),
            Some("2027-05-05T04:30:00+00:00")
        );
        assert_eq!(events[1].get_end(), None);
        assert_eq!(
            rfc3339(events[2].get_start()).as_deref(),
            Some("2027-05-01")
        );
        assert_eq!(rfc3339(events[2].get_end()).as_deref(), Some("2027-05-02"));
    }
}
