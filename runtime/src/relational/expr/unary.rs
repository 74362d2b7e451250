//! One-operand expressions: `NOT`, negation, `IS NULL`, `IS NOT NULL`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::compute::kernels::{boolean, numeric};
use arrow::datatypes::DataType;

use super::binary::as_boolean;
use super::{
    ColumnarValue, EvalContext, EvalError, ExprError, PhysicalExpr, PhysicalExprRef, kernel_result,
    with_nulls_at,
};
use crate::relational::ScalarValue;

/// `NOT x`, three-valued: `NOT NULL` is null.
#[derive(Debug)]
pub struct NotExpr {
    arg: PhysicalExprRef,
}

impl NotExpr {
    /// `NOT arg`, for a boolean `arg`.
    pub fn try_new(arg: PhysicalExprRef) -> Result<Self, ExprError> {
        match arg.data_type() {
            DataType::Boolean | DataType::Null => Ok(NotExpr { arg }),
            other => Err(ExprError::invalid(
                format!("NOT {arg}"),
                format!("NOT needs a BOOLEAN, got {other}"),
            )),
        }
    }
}

impl fmt::Display for NotExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NOT {}", self.arg)
    }
}

impl PhysicalExpr for NotExpr {
    fn data_type(&self) -> DataType {
        DataType::Boolean
    }

    fn nullable(&self) -> bool {
        self.arg.nullable()
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let value = self.arg.evaluate(batch, ctx)?;
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let len = if scalar { 1 } else { batch.num_rows() };
        let input = as_boolean(&value, len, self)?;
        let out = boolean::not(&input).map_err(|e| EvalError::arrow(self, e))?;
        Ok(kernel_result(Arc::new(out), scalar, batch.num_rows()))
    }
}

/// `-x` for numbers and intervals; negating the smallest integer is bad data for the row.
#[derive(Debug)]
pub struct NegativeExpr {
    arg: PhysicalExprRef,
}

impl NegativeExpr {
    /// `-arg`, for a signed number or an interval.
    pub fn try_new(arg: PhysicalExprRef) -> Result<Self, ExprError> {
        let t = arg.data_type();
        let ok = (t.is_numeric() && !t.is_unsigned_integer())
            || matches!(
                t,
                DataType::Duration(_) | DataType::Interval(_) | DataType::Null
            );
        if ok {
            Ok(NegativeExpr { arg })
        } else {
            Err(ExprError::invalid(
                format!("-{arg}"),
                format!("cannot negate a value of type {t}"),
            ))
        }
    }
}

impl fmt::Display for NegativeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-{}", self.arg)
    }
}

impl PhysicalExpr for NegativeExpr {
    fn data_type(&self) -> DataType {
        self.arg.data_type()
    }

    fn nullable(&self) -> bool {
        self.arg.nullable() || self.arg.data_type().is_integer()
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let value = self.arg.evaluate(batch, ctx)?;
        if value.data_type() == DataType::Null {
            return Ok(value);
        }
        let rows = batch.num_rows();
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let input = value.into_array(if scalar { 1 } else { rows });
        match numeric::neg(&input) {
            Ok(out) => Ok(kernel_result(out, scalar, rows)),
            Err(_) => {
                let input = if scalar {
                    super::repeat_first(&input, rows)
                } else {
                    input
                };
                let mut bad = Vec::new();
                for row in 0..rows {
                    if input.is_valid(row)
                        && let Err(e) = numeric::neg(&input.slice(row, 1))
                    {
                        ctx.row_failed(self, row, format!("overflow: {e}"))?;
                        bad.push(row);
                    }
                }
                let out = numeric::neg(&with_nulls_at(&input, &bad))
                    .map_err(|e| EvalError::arrow(self, e))?;
                Ok(ColumnarValue::Array(out))
            }
        }
    }
}

/// `x IS NULL` (`negated`: `x IS NOT NULL`); never null.
#[derive(Debug)]
struct NullTest {
    arg: PhysicalExprRef,
    negated: bool,
}

impl NullTest {
    fn evaluate(
        &self,
        expr: &dyn fmt::Display,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        Ok(match self.arg.evaluate(batch, ctx)? {
            ColumnarValue::Scalar(v) => {
                ColumnarValue::Scalar(ScalarValue::Boolean(v.is_null() != self.negated))
            }
            ColumnarValue::Array(a) => {
                let out = if self.negated {
                    boolean::is_not_null(&a)
                } else {
                    boolean::is_null(&a)
                };
                ColumnarValue::Array(Arc::new(out.map_err(|e| EvalError::arrow(expr, e))?))
            }
        })
    }
}

macro_rules! null_test {
    ($name:ident, $negated:expr, $suffix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name(NullTest);

        impl $name {
            /// The test of `arg`.
            pub fn new(arg: PhysicalExprRef) -> Self {
                $name(NullTest {
                    arg,
                    negated: $negated,
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0.arg, $suffix)
            }
        }

        impl PhysicalExpr for $name {
            fn data_type(&self) -> DataType {
                DataType::Boolean
            }

            fn nullable(&self) -> bool {
                false
            }

            fn evaluate(
                &self,
                batch: &RecordBatch,
                ctx: &mut EvalContext,
            ) -> Result<ColumnarValue, EvalError> {
                self.0.evaluate(self, batch, ctx)
            }
        }
    };
}

null_test!(IsNullExpr, false, "IS NULL", "`x IS NULL`; never null.");
null_test!(
    IsNotNullExpr,
    true,
    "IS NOT NULL",
    "`x IS NOT NULL`; never null."
);
