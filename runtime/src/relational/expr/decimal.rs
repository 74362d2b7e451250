//! Decimal kernels: arithmetic at a declared result precision and scale, with overflow and
//! division by zero reported per row.

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use arrow::datatypes::Decimal128Type;

use super::EvalError;
use super::binary::BinaryOperator;

/// The largest decimal precision.
pub(crate) const MAX_PRECISION: u8 = 38;

/// `10^exp`, when it fits.
pub(crate) fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// `value` at scale `from` moved to scale `to`, rounding half away from zero when digits go.
pub(crate) fn rescale(value: i128, from: i8, to: i8) -> Option<i128> {
    if to >= from {
        value.checked_mul(pow10((to - from) as u32)?)
    } else {
        Some(div_round(value, pow10((from - to) as u32)?))
    }
}

/// `a / b` rounded half away from zero (`b > 0`).
fn div_round(a: i128, b: i128) -> i128 {
    let (q, r) = (a / b, a % b);
    if r.unsigned_abs() * 2 >= b.unsigned_abs() {
        q + a.signum() * b.signum()
    } else {
        q
    }
}

/// Whether `value` has at most `precision` digits.
pub(crate) fn fits(value: i128, precision: u8) -> bool {
    pow10(precision as u32).is_none_or(|limit| value.unsigned_abs() < limit.unsigned_abs())
}

/// `left op right` for decimal arrays, as a `DECIMAL(precision, scale)`. A failing row is
/// passed to `on_fail` (which returns the error under the fail policy) and becomes null.
pub(crate) fn arithmetic(
    op: BinaryOperator,
    left: &ArrayRef,
    right: &ArrayRef,
    (precision, scale): (u8, i8),
    mut on_fail: impl FnMut(usize, String) -> Result<(), EvalError>,
) -> Result<Decimal128Array, EvalError> {
    let (l, r) = (
        left.as_primitive::<Decimal128Type>(),
        right.as_primitive::<Decimal128Type>(),
    );
    let (s1, s2) = (l.scale(), r.scale());
    let mut out = Vec::with_capacity(l.len());
    for row in 0..l.len() {
        if l.is_null(row) || r.is_null(row) {
            out.push(None);
            continue;
        }
        let (a, b) = (l.value(row), r.value(row));
        let result = match op {
            BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Modulo => {
                let common = s1.max(s2);
                let (a, b) = (rescale(a, s1, common), rescale(b, s2, common));
                match (a, b, op) {
                    (Some(a), Some(b), BinaryOperator::Plus) => a.checked_add(b),
                    (Some(a), Some(b), BinaryOperator::Minus) => a.checked_sub(b),
                    (Some(_), Some(0), _) => {
                        on_fail(row, "division by zero".to_owned())?;
                        out.push(None);
                        continue;
                    }
                    (Some(a), Some(b), _) => a.checked_rem(b),
                    _ => None,
                }
                .and_then(|v| rescale(v, common, scale))
            }
            BinaryOperator::Multiply => a.checked_mul(b).and_then(|v| rescale(v, s1 + s2, scale)),
            _ => {
                if b == 0 {
                    on_fail(row, "division by zero".to_owned())?;
                    out.push(None);
                    continue;
                }
                // a / 10^s1 / (b / 10^s2) at scale `scale`, with one more digit for rounding.
                let exp = scale as i32 - s1 as i32 + s2 as i32 + 1;
                let q10 = if exp >= 0 {
                    pow10(exp as u32)
                        .and_then(|m| a.checked_mul(m))
                        .map(|n| n / b)
                } else {
                    pow10((-exp) as u32)
                        .and_then(|m| b.checked_mul(m))
                        .map(|d| a / d)
                };
                q10.map(|q| div_round(q, 10))
            }
        };
        match result {
            Some(v) if fits(v, precision) => out.push(Some(v)),
            _ => {
                on_fail(
                    row,
                    format!(
                        "decimal overflow: the result does not fit DECIMAL({precision}, {scale})"
                    ),
                )?;
                out.push(None);
            }
        }
    }
    Ok(Decimal128Array::from(out)
        .with_precision_and_scale(precision, scale)
        .expect("result precision and scale are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescales_with_rounding() {
        assert_eq!(rescale(12345, 2, 1), Some(1235));
        assert_eq!(rescale(-12345, 2, 1), Some(-1235));
        assert_eq!(rescale(12344, 2, 1), Some(1234));
        assert_eq!(rescale(12, 0, 3), Some(12000));
        assert!(fits(99_999, 5));
        assert!(!fits(100_000, 5));
    }
}
