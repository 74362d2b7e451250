//! Date and time kernels: calendar fields, Java-style formats, parsing, date arithmetic.
//!
//! Dates are days since 1970-01-01 and timestamps milliseconds since the epoch, read as UTC
//! wall-clock time (the runtime's `TIMESTAMP(3)` has no time zone).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array};
use arrow::datatypes::{DataType, Date32Type, DurationMillisecondType};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::EvalError;
use super::function::DatePart;

const MS_PER_DAY: i64 = 86_400_000;

/// `date ± duration`: the date moved by whole days (a duration rounds down to days).
pub(crate) fn date_plus_duration(
    dates: &ArrayRef,
    durations: &ArrayRef,
    negate: bool,
    mut on_fail: impl FnMut(usize, String) -> Result<(), EvalError>,
) -> Result<ArrayRef, EvalError> {
    let d = dates.as_primitive::<Date32Type>();
    let ms = durations.as_primitive::<DurationMillisecondType>();
    let mut out = Vec::with_capacity(d.len());
    for row in 0..d.len() {
        if d.is_null(row) || ms.is_null(row) {
            out.push(None);
            continue;
        }
        let days = ms.value(row).div_euclid(MS_PER_DAY);
        let days = if negate {
            days.checked_neg()
        } else {
            Some(days)
        };
        match days
            .and_then(|days| (d.value(row) as i64).checked_add(days))
            .and_then(|v| i32::try_from(v).ok())
        {
            Some(v) => out.push(Some(v)),
            None => {
                on_fail(row, "date out of range".to_owned())?;
                out.push(None);
            }
        }
    }
    Ok(Arc::new(Date32Array::from(out)))
}

/// The date-time of a date (at midnight).
pub(crate) fn date_to_datetime(days: i32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::Duration::days(days as i64))?
        .and_hms_opt(0, 0, 0)
}

/// The date-time of a millisecond timestamp.
pub(crate) fn timestamp_to_datetime(ms: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(ms).map(|d| d.naive_utc())
}

/// The `part` of a date-time, as `EXTRACT` returns it.
pub(crate) fn extract(part: DatePart, t: &NaiveDateTime) -> i64 {
    match part {
        DatePart::Year => t.year() as i64,
        DatePart::Quarter => (t.month0() / 3 + 1) as i64,
        DatePart::Month => t.month() as i64,
        DatePart::Day => t.day() as i64,
        DatePart::DayOfWeek => t.weekday().number_from_sunday() as i64,
        DatePart::DayOfYear => t.ordinal() as i64,
        DatePart::Hour => t.hour() as i64,
        DatePart::Minute => t.minute() as i64,
        DatePart::Second => t.second() as i64,
    }
}

/// Translates a Java `DateTimeFormatter`-style pattern (`yyyy-MM-dd HH:mm:ss.SSS`) into a
/// chrono format string. Supported letters: `yyyy`, `yy`, `MM`, `M`, `dd`, `d`, `HH`, `H`,
/// `hh`, `mm`, `ss`, `SSS`, `a`, `EEE`, `MMM`, `DDD`; text in single quotes is literal.
pub(crate) fn java_pattern_to_chrono(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is one quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                push_literal(&mut out, chars[j]);
                j += 1;
            }
            if j == i + 1 {
                out.push('\'');
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            _ => {
                return Err(format!(
                    "unsupported date format letters {:?} in {pattern:?}",
                    c.to_string().repeat(run)
                ));
            }
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// Parses `yyyy-MM-dd HH:mm:ss[.SSS]` (or with a `T`), or a bare date at midnight, to
/// milliseconds since the epoch.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    parse_date(text)
        .and_then(date_to_datetime)
        .map(|t| t.and_utc().timestamp_millis())
}

/// Parses `yyyy-MM-dd` to days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// Whether `t` is a type `EXTRACT` and `DATE_FORMAT` read.
pub(crate) fn is_datetime(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Timestamp(_, _))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_java_patterns() {
        assert_eq!(
            java_pattern_to_chrono("yyyy-MM-dd HH:mm:ss.SSS").unwrap(),
            "%Y-%m-%d %H:%M:%S.%3f"
        );
        assert_eq!(
            java_pattern_to_chrono("yyyy'T'HH 100%").unwrap(),
            "%YT%H 100%%"
        );
        assert!(java_pattern_to_chrono("yyyy QQ").is_err());
    }

    #[test]
    fn parses_timestamps_and_dates() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Some(1_500));
        assert_eq!(parse_timestamp("1970-01-02T00:00:00"), Some(MS_PER_DAY));
        assert_eq!(parse_timestamp("1970-01-02"), Some(MS_PER_DAY));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_date("1970-02-01"), Some(31));
        assert_eq!(parse_date("1970-13-01"), None);
    }
}
