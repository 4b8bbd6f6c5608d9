//! Timestamps: the day-file form written by hand, and the forms input may take.

use super::*;

/// Formats an instant the way day files do: `2020-07-26T22:21:20Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(20);
    push_iso(&mut out, t);
    out
}

/// Appends [`iso`]'s text of `t` to `out`. Written out by hand, digit by
/// digit: chrono's `format` re-parses its pattern on every call, and even
/// `format!` with padded fields was a tenth of parsing a line.
pub(super) fn push_iso(out: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let t = t.naive_utc();
    let year = match u32::try_from(t.year()) {
        Ok(year) if year <= 9999 => year,
        _ => return out.push_str(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    };
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let two = |out: &mut String, n: u32| {
        out.push(digit(n / 10));
        out.push(digit(n));
    };
    two(out, year / 100);
    two(out, year % 100);
    out.push('-');
    two(out, t.month());
    out.push('-');
    two(out, t.day());
    out.push('T');
    two(out, t.hour());
    out.push(':');
    two(out, t.minute());
    out.push(':');
    two(out, t.second());
    out.push('Z');
}

/// The second of the day a timestamp ending in `THH:MM:SSZ` names (as
/// [`push_iso`] writes it), read from those digits alone; None for other text.
pub(super) fn second_of_day(stamp: &str) -> Option<u32> {
    let b = stamp.as_bytes();
    let t = b.get(b.len().checked_sub(10)?..)?;
    if t[0] != b'T' || t[3] != b':' || t[6] != b':' || t[9] != b'Z' {
        return None;
    }
    let two = |at: usize| -> Option<u32> {
        let (h, l) = (t[at], t[at + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit())
            .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    Some(two(1)? * 3600 + two(4)? * 60 + two(7)?)
}

/// Exactly `YYYY-MM-DDTHH:MM:SSZ`, read without a format string; None for
/// anything else (which the general parsers then try).
pub(super) fn parse_day_file_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    Some(
        date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?
            .and_utc(),
    )
}

/// Parses RFC 2822 (`Sun, 26 Jul 2020 22:21:20 +0000`) or ISO 8601 / RFC 3339.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    // Day-file timestamps (`2020-07-26T22:21:20Z`) are by far the most common input.
    if let Some(t) = parse_day_file_timestamp(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}
