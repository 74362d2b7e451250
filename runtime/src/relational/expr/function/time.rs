//! `EXTRACT`, `DATE_FORMAT`, `TO_TIMESTAMP`, `TO_DATE`.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMillisecondType};
use arrow::error::ArrowError;
use chrono::NaiveDateTime;

use super::string::utf8;
use super::{DatePart, Failures, PatternCache};
use crate::relational::expr::temporal::{
    date_to_datetime, extract as extract_part, parse_date, parse_timestamp, timestamp_to_datetime,
};

/// The date-times of a date or timestamp array.
fn datetimes(array: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>, ArrowError> {
    Ok(match array.data_type() {
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| v.and_then(date_to_datetime))
            .collect(),
        DataType::Null => vec![None; array.len()],
        _ => {
            let ms = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            ms.as_primitive::<TimestampMillisecondType>()
                .iter()
                .map(|v| v.and_then(timestamp_to_datetime))
                .collect()
        }
    })
}

pub(super) fn extract(part: DatePart, array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let out: Int64Array = datetimes(array)?
        .iter()
        .map(|t| t.as_ref().map(|t| extract_part(part, t)))
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn date_format(
    args: &[ArrayRef],
    cache: &PatternCache,
    failures: &mut Failures,
) -> Result<ArrayRef, ArrowError> {
    let times = datetimes(&args[0])?;
    let pattern = utf8(&args[1])?;
    let pattern = pattern.as_string::<i32>();
    let out: StringArray = times
        .iter()
        .enumerate()
        .map(|(row, t)| {
            let t = t.as_ref()?;
            if pattern.is_null(row) {
                return None;
            }
            let format = match cache.format(pattern.value(row)) {
                Ok(format) => format,
                Err(message) => {
                    failures.push((row, message));
                    return None;
                }
            };
            let mut text = String::new();
            match write!(text, "{}", t.format(&format)) {
                Ok(()) => Some(text),
                Err(_) => {
                    failures.push((row, format!("cannot format with {:?}", pattern.value(row))));
                    None
                }
            }
        })
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn to_timestamp(
    array: &ArrayRef,
    failures: &mut Failures,
) -> Result<ArrayRef, ArrowError> {
    let s = utf8(array)?;
    let out: TimestampMillisecondArray = s
        .as_string::<i32>()
        .iter()
        .enumerate()
        .map(|(row, v)| {
            let parsed = parse_timestamp(v?);
            if parsed.is_none() {
                failures.push((
                    row,
                    format!(
                        "cannot parse {:?} as a timestamp (yyyy-MM-dd HH:mm:ss[.SSS])",
                        v?
                    ),
                ));
            }
            parsed
        })
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn to_date(array: &ArrayRef, failures: &mut Failures) -> Result<ArrayRef, ArrowError> {
    let s = utf8(array)?;
    let out: Date32Array = s
        .as_string::<i32>()
        .iter()
        .enumerate()
        .map(|(row, v)| {
            let parsed = parse_date(v?);
            if parsed.is_none() {
                failures.push((row, format!("cannot parse {:?} as a date (yyyy-MM-dd)", v?)));
            }
            parsed
        })
        .collect();
    Ok(Arc::new(out))
}
