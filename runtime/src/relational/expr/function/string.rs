//! String functions.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::error::ArrowError;

use super::{Failures, PatternCache, ScalarFunction};

/// `array` as a `Utf8` array.
pub(super) fn utf8(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == &DataType::Utf8 {
        Ok(Arc::clone(array))
    } else {
        cast(array, &DataType::Utf8)
    }
}

/// `array` as an `Int64` array.
pub(super) fn int64(array: &ArrayRef) -> Result<Int64Array, ArrowError> {
    Ok(cast(array, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

pub(super) fn map(func: ScalarFunction, array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let array = utf8(array)?;
    let strings = array.as_string::<i32>().iter();
    let out: StringArray = match func {
        ScalarFunction::Upper => strings.map(|v| v.map(str::to_uppercase)).collect(),
        ScalarFunction::Lower => strings.map(|v| v.map(str::to_lowercase)).collect(),
        ScalarFunction::Trim => strings.map(|v| v.map(|s| s.trim_matches(' '))).collect(),
        ScalarFunction::LTrim => strings
            .map(|v| v.map(|s| s.trim_start_matches(' ')))
            .collect(),
        _ => strings
            .map(|v| v.map(|s| s.trim_end_matches(' ')))
            .collect(),
    };
    Ok(Arc::new(out))
}

/// The characters of `text` at 0-based character positions `skip..skip + take`, borrowed.
fn char_slice(text: &str, skip: usize, take: usize) -> &str {
    let mut bounds = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()));
    let Some(start) = bounds.nth(skip) else {
        return "";
    };
    let end = match take.checked_sub(1) {
        None => start,
        Some(more) => bounds.nth(more).unwrap_or(text.len()),
    };
    &text[start..end]
}

pub(super) fn char_length(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let array = utf8(array)?;
    let out: Int32Array = array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(|s| s.chars().count() as i32))
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn substring(args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let s = utf8(&args[0])?;
    let s = s.as_string::<i32>();
    let start = int64(&args[1])?;
    let length = args.get(2).map(int64).transpose()?;
    let out: StringArray = (0..s.len())
        .map(|row| {
            if s.is_null(row)
                || start.is_null(row)
                || length.as_ref().is_some_and(|l| l.is_null(row))
            {
                return None;
            }
            let text = s.value(row);
            let begin = start.value(row);
            // Characters at 1-based positions [begin, end).
            let end = match &length {
                Some(l) if l.value(row) < 0 => return Some(""),
                Some(l) => begin.saturating_add(l.value(row)),
                None => i64::MAX,
            };
            let from = begin.max(1);
            if end <= from {
                return Some("");
            }
            let skip = usize::try_from(from - 1).unwrap_or(usize::MAX);
            let take = usize::try_from(end - from).unwrap_or(usize::MAX);
            Some(char_slice(text, skip, take))
        })
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn concat(args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let strings = args.iter().map(utf8).collect::<Result<Vec<_>, _>>()?;
    let strings: Vec<&StringArray> = strings.iter().map(|a| a.as_string::<i32>()).collect();
    let rows = strings.first().map_or(0, |a| a.len());
    let out: StringArray = (0..rows)
        .map(|row| {
            let mut text = String::new();
            for s in &strings {
                if s.is_null(row) {
                    return None;
                }
                text.push_str(s.value(row));
            }
            Some(text)
        })
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn regexp_extract(
    args: &[ArrayRef],
    cache: &PatternCache,
    failures: &mut Failures,
) -> Result<ArrayRef, ArrowError> {
    let s = utf8(&args[0])?;
    let s = s.as_string::<i32>();
    let pattern = utf8(&args[1])?;
    let pattern = pattern.as_string::<i32>();
    let group = args.get(2).map(int64).transpose()?;
    // The previous row's compiled pattern; the cache is asked only when the pattern changes.
    let mut current: Option<(&str, Result<regex::Regex, String>)> = None;
    let mut out = Vec::with_capacity(s.len());
    for row in 0..s.len() {
        let group_null = group.as_ref().is_some_and(|g| g.is_null(row));
        if s.is_null(row) || pattern.is_null(row) || group_null {
            out.push(None);
            continue;
        }
        let p = pattern.value(row);
        let compiled = match current.take() {
            Some((q, compiled)) if q == p => compiled,
            _ => cache.regex(p),
        };
        let found = match &compiled {
            Ok(regex) => {
                let group = usize::try_from(group.as_ref().map_or(0, |g| g.value(row))).ok();
                group.and_then(|group| {
                    let captures = regex.captures(s.value(row))?;
                    captures.get(group).map(|m| m.as_str())
                })
            }
            Err(message) => {
                failures.push((row, message.clone()));
                None
            }
        };
        out.push(found);
        current = Some((p, compiled));
    }
    Ok(Arc::new(StringArray::from(out)))
}

pub(super) fn split_index(args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let s = utf8(&args[0])?;
    let s = s.as_string::<i32>();
    let delimiter = utf8(&args[1])?;
    let delimiter = delimiter.as_string::<i32>();
    let index = int64(&args[2])?;
    let out: StringArray = (0..s.len())
        .map(|row| {
            if s.is_null(row) || delimiter.is_null(row) || index.is_null(row) {
                return None;
            }
            let index = usize::try_from(index.value(row)).ok()?;
            let (text, delimiter) = (s.value(row), delimiter.value(row));
            if delimiter.is_empty() {
                return (index == 0).then_some(text);
            }
            text.split(delimiter).nth(index)
        })
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn replace(args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let arrays = args.iter().map(utf8).collect::<Result<Vec<_>, _>>()?;
    let [s, from, to] = [0, 1, 2].map(|i| arrays[i].as_string::<i32>());
    let out: StringArray = (0..s.len())
        .map(|row| {
            if s.is_null(row) || from.is_null(row) || to.is_null(row) {
                return None;
            }
            Some(s.value(row).replace(from.value(row), to.value(row)))
        })
        .collect();
    Ok(Arc::new(out))
}

pub(super) fn position(args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let needle = utf8(&args[0])?;
    let needle = needle.as_string::<i32>();
    let s = utf8(&args[1])?;
    let s = s.as_string::<i32>();
    let out: Int32Array = (0..s.len())
        .map(|row| {
            if s.is_null(row) || needle.is_null(row) {
                return None;
            }
            let text = s.value(row);
            Some(match text.find(needle.value(row)) {
                Some(byte) => text[..byte].chars().count() as i32 + 1,
                None => 0,
            })
        })
        .collect();
    Ok(Arc::new(out))
}
