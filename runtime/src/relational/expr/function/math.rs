//! Numeric functions.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type};
use arrow::error::ArrowError;

use super::string::int64;
use super::{Failures, ScalarFunction};
use crate::relational::expr::decimal::{fits, pow10};

const OVERFLOW: &str = "overflow: the result does not fit the argument's type";

/// Applies `f` to integers widened to `BIGINT` and narrows the result back to the argument's
/// type; a result that does not fit (or that `f` rejects) is a failure.
fn integers(
    array: &ArrayRef,
    failures: &mut Failures,
    f: impl Fn(usize, i64) -> Option<i64>,
) -> Result<ArrayRef, ArrowError> {
    let wide = int64(array)?;
    let mut out = Vec::with_capacity(wide.len());
    for (row, v) in wide.iter().enumerate() {
        out.push(match v.map(|v| f(row, v)) {
            Some(None) => {
                failures.push((row, OVERFLOW.to_owned()));
                None
            }
            Some(v) => v,
            None => None,
        });
    }
    let out: ArrayRef = Arc::new(Int64Array::from(out));
    let narrow = cast(&out, array.data_type())?;
    for row in 0..out.len() {
        if out.is_valid(row) && narrow.is_null(row) {
            failures.push((row, OVERFLOW.to_owned()));
        }
    }
    Ok(narrow)
}

/// Applies `f` to the unscaled values of a decimal array, keeping its precision and scale; a
/// result with too many digits (or that `f` rejects) is a failure.
fn decimals(
    array: &ArrayRef,
    failures: &mut Failures,
    f: impl Fn(usize, i128, i8) -> Option<i128>,
) -> Result<ArrayRef, ArrowError> {
    let a = array.as_primitive::<Decimal128Type>();
    let (precision, scale) = (a.precision(), a.scale());
    let mut out = Vec::with_capacity(a.len());
    for (row, v) in a.iter().enumerate() {
        out.push(match v.map(|v| f(row, v, scale)) {
            Some(Some(v)) if fits(v, precision) => Some(v),
            Some(_) => {
                failures.push((row, OVERFLOW.to_owned()));
                None
            }
            None => None,
        });
    }
    Ok(Arc::new(
        Decimal128Array::from(out).with_precision_and_scale(precision, scale)?,
    ))
}

/// Applies `f` to floats widened to `DOUBLE`, narrowing back to the argument's type.
fn floats(array: &ArrayRef, f: impl Fn(usize, f64) -> f64) -> Result<ArrayRef, ArrowError> {
    let wide = cast(array, &DataType::Float64)?;
    let out: Float64Array = wide
        .as_primitive::<Float64Type>()
        .iter()
        .enumerate()
        .map(|(row, v)| v.map(|v| f(row, v)))
        .collect();
    cast(&(Arc::new(out) as ArrayRef), array.data_type())
}

pub(super) fn abs(array: &ArrayRef, failures: &mut Failures) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Decimal128(_, _) => decimals(array, failures, |_, v, _| v.checked_abs()),
        t if t.is_floating() => floats(array, |_, v| v.abs()),
        t if t.is_integer() => integers(array, failures, |_, v| v.checked_abs()),
        _ => Ok(Arc::clone(array)),
    }
}

pub(super) fn ceil_floor(
    array: &ArrayRef,
    ceil: bool,
    failures: &mut Failures,
) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Decimal128(_, s) if *s > 0 => decimals(array, failures, |_, v, s| {
            let unit = pow10(s as u32)?;
            let floor = |v: i128| v.div_euclid(unit).checked_mul(unit);
            if ceil {
                floor(v.checked_neg()?)?.checked_neg()
            } else {
                floor(v)
            }
        }),
        t if t.is_floating() => floats(array, |_, v| if ceil { v.ceil() } else { v.floor() }),
        _ => Ok(Arc::clone(array)),
    }
}

/// `v / unit` rounded half away from zero, times `unit`.
fn round_to(v: i128, unit: i128) -> Option<i128> {
    let q = v / unit;
    let r = v % unit;
    let q = if r.unsigned_abs() * 2 >= unit.unsigned_abs() {
        q + v.signum()
    } else {
        q
    };
    q.checked_mul(unit)
}

pub(super) fn round(args: &[ArrayRef], failures: &mut Failures) -> Result<ArrayRef, ArrowError> {
    let array = &args[0];
    let digits = args.get(1).map(int64).transpose()?;
    let digits_at = |row: usize| -> Option<i64> {
        match &digits {
            None => Some(0),
            Some(d) if d.is_null(row) => None,
            Some(d) => Some(d.value(row)),
        }
    };
    let nulls: Vec<usize> = (0..array.len())
        .filter(|r| digits_at(*r).is_none())
        .collect();
    let out = match array.data_type() {
        DataType::Decimal128(_, _) => decimals(array, failures, |row, v, s| {
            let d = digits_at(row).unwrap_or(0);
            if d >= s as i64 {
                return Some(v);
            }
            match u32::try_from(s as i64 - d).ok().and_then(pow10) {
                Some(unit) => round_to(v, unit),
                None => Some(0),
            }
        })?,
        t if t.is_floating() => floats(array, |row, v| {
            let d = digits_at(row).unwrap_or(0).clamp(-400, 400) as i32;
            let unit = 10f64.powi(d);
            if !unit.is_finite() || unit == 0.0 {
                return if unit == 0.0 { 0.0 } else { v };
            }
            (v * unit).round() / unit
        })?,
        t if t.is_integer() => integers(array, failures, |row, v| {
            let d = digits_at(row).unwrap_or(0);
            if d >= 0 {
                return Some(v);
            }
            match u32::try_from(-d).ok().and_then(|e| 10i64.checked_pow(e)) {
                Some(unit) => i64::try_from(round_to(v as i128, unit as i128)?).ok(),
                None => Some(0),
            }
        })?,
        _ => Arc::clone(array),
    };
    Ok(crate::relational::expr::with_nulls_at(&out, &nulls))
}

pub(super) fn sign(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let mut ignored = Failures::new();
    match array.data_type() {
        DataType::Decimal128(_, _) => {
            let a = array.as_primitive::<Decimal128Type>();
            let unit = pow10(a.scale().max(0) as u32).unwrap_or(1);
            let out = a.unary::<_, Decimal128Type>(|v| v.signum() * unit);
            Ok(Arc::new(
                out.with_precision_and_scale(a.precision(), a.scale())?,
            ))
        }
        t if t.is_floating() => floats(array, |_, v| {
            if v == 0.0 || v.is_nan() {
                v
            } else {
                v.signum()
            }
        }),
        t if t.is_integer() => integers(array, &mut ignored, |_, v| Some(v.signum())),
        _ => Ok(Arc::clone(array)),
    }
}

pub(super) fn float(func: ScalarFunction, args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let x = cast(&args[0], &DataType::Float64)?;
    let x = x.as_primitive::<Float64Type>();
    let out: Float64Array = match func {
        ScalarFunction::Power => {
            let y = cast(&args[1], &DataType::Float64)?;
            arrow::compute::binary(x, y.as_primitive::<Float64Type>(), f64::powf)?
        }
        ScalarFunction::Sqrt => x.unary(f64::sqrt),
        ScalarFunction::Ln => x.unary(f64::ln),
        ScalarFunction::Log10 => x.unary(f64::log10),
        _ => x.unary(f64::exp),
    };
    Ok(Arc::new(out))
}
