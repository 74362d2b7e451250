//! [`CastExpr`]: `CAST` and `TRY_CAST`.

use std::fmt;

use arrow::array::{Array, RecordBatch};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::DataType;

use super::{ColumnarValue, EvalContext, EvalError, ExprError, PhysicalExpr, PhysicalExprRef};
use crate::relational::ScalarValue;

/// `CAST(x AS type)`, or `TRY_CAST`.
///
/// A value that does not convert (`'abc'` to `INT`, `300` to `TINYINT`) is bad data for its row
/// under `CAST`, and silently null under `TRY_CAST`.
#[derive(Debug)]
pub struct CastExpr {
    arg: PhysicalExprRef,
    to: DataType,
    try_cast: bool,
}

impl CastExpr {
    /// `CAST(arg AS to)` (`try_cast`: `TRY_CAST`), or why Arrow cannot convert the types.
    pub fn try_new(arg: PhysicalExprRef, to: DataType, try_cast: bool) -> Result<Self, ExprError> {
        let from = arg.data_type();
        if !can_cast_types(&from, &to) {
            return Err(ExprError::invalid(
                format!("CAST({arg} AS {to})"),
                format!("cannot cast {from} to {to}"),
            ));
        }
        Ok(CastExpr { arg, to, try_cast })
    }
}

impl fmt::Display for CastExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.try_cast { "TRY_CAST" } else { "CAST" };
        write!(f, "{name}({} AS {})", self.arg, self.to)
    }
}

const SAFE: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: arrow::util::display::FormatOptions::new(),
};

impl PhysicalExpr for CastExpr {
    fn data_type(&self) -> DataType {
        self.to.clone()
    }

    fn nullable(&self) -> bool {
        self.arg.nullable() || self.try_cast || !lossless_cast(&self.arg.data_type(), &self.to)
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let value = self.arg.evaluate(batch, ctx)?;
        if value.data_type() == self.to {
            return Ok(value);
        }
        match value {
            ColumnarValue::Scalar(v) => {
                let out = cast_with_options(&v.to_array(1), &self.to, &SAFE)
                    .map_err(|e| EvalError::arrow(self, e))?;
                if out.is_null(0) && !v.is_null() && !self.try_cast {
                    // A constant that does not convert fails on every row.
                    for row in 0..batch.num_rows() {
                        ctx.row_failed(self, row, format!("cannot cast {v} to {}", self.to))?;
                    }
                }
                Ok(super::kernel_result(out, true, batch.num_rows()))
            }
            ColumnarValue::Array(input) => {
                let out = cast_with_options(&input, &self.to, &SAFE)
                    .map_err(|e| EvalError::arrow(self, e))?;
                if !self.try_cast && out.null_count() > input.null_count() {
                    for row in 0..input.len() {
                        if out.is_null(row) && input.is_valid(row) {
                            let shown = ScalarValue::try_from_array(&input, row)
                                .map(|v| v.to_string())
                                .unwrap_or_else(|_| "the value".to_owned());
                            ctx.row_failed(
                                self,
                                row,
                                format!("cannot cast {shown} to {}", self.to),
                            )?;
                        }
                    }
                }
                Ok(ColumnarValue::Array(out))
            }
        }
    }
}

/// Whether every value of `from` converts to `to` without failing.
///
/// ```
/// use arrow::datatypes::DataType;
/// use rivulet_runtime::relational::expr::lossless_cast;
///
/// assert!(lossless_cast(&DataType::Int32, &DataType::Int64));
/// assert!(!lossless_cast(&DataType::Utf8, &DataType::Int32));
/// ```
pub fn lossless_cast(from: &DataType, to: &DataType) -> bool {
    if from == to || *from == DataType::Null {
        return true;
    }
    match (from, to) {
        (f, t) if f.is_integer() && t.is_floating() => true,
        (f, DataType::Decimal128(p, s)) if f.is_integer() => {
            integer_digits(f).is_some_and(|d| d as i16 + (*s).max(0) as i16 <= *p as i16)
        }
        (f, t) if f.is_integer() && t.is_integer() => {
            let widening = integer_rank(f) < integer_rank(t);
            match (f.is_signed_integer(), t.is_signed_integer()) {
                (true, true) | (false, false) => integer_rank(f) <= integer_rank(t),
                (false, true) => widening,
                (true, false) => false,
            }
        }
        (DataType::Float32, DataType::Float64) => true,
        (DataType::Decimal128(_, _), DataType::Float64) => true,
        (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) => {
            s2 >= s1 && (*p1 as i16 - *s1 as i16) <= (*p2 as i16 - *s2 as i16)
        }
        (_, DataType::Utf8) => true,
        (DataType::Date32, DataType::Timestamp(_, _)) => true,
        _ => false,
    }
}

/// The decimal digits an integer type needs.
pub(crate) fn integer_digits(t: &DataType) -> Option<u8> {
    Some(match t {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::Int64 => 19,
        DataType::UInt64 => 20,
        _ => return None,
    })
}

fn integer_rank(t: &DataType) -> u8 {
    match t {
        DataType::Int8 | DataType::UInt8 => 1,
        DataType::Int16 | DataType::UInt16 => 2,
        DataType::Int32 | DataType::UInt32 => 3,
        _ => 4,
    }
}
