//! [`LikeExpr`]: `x [NOT] [I]LIKE pattern`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{BooleanArray, Datum, RecordBatch};
use arrow::compute::kernels::comparison::{ilike, like, nilike, nlike};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

use super::{
    ColumnarValue, EvalContext, EvalError, ExprError, Operand, PhysicalExpr, PhysicalExprRef,
    kernel_result,
};
use crate::relational::ScalarValue;

/// `x [NOT] LIKE pattern` (`%` matches any run of characters, `_` one character, `\` escapes),
/// or `ILIKE`, which ignores case. A constant pattern stays a scalar, which Arrow's kernels
/// compile once per batch (and turn into a prefix, suffix or substring test when they can).
#[derive(Debug)]
pub struct LikeExpr {
    arg: PhysicalExprRef,
    pattern: PhysicalExprRef,
    negated: bool,
    case_insensitive: bool,
}

impl LikeExpr {
    /// `arg [NOT] [I]LIKE pattern`, both of one string type.
    pub fn try_new(
        arg: PhysicalExprRef,
        pattern: PhysicalExprRef,
        negated: bool,
        case_insensitive: bool,
    ) -> Result<Self, ExprError> {
        let expr = LikeExpr {
            arg,
            pattern,
            negated,
            case_insensitive,
        };
        let (t, pt) = (expr.arg.data_type(), expr.pattern.data_type());
        let string = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            )
        };
        if !string(&t) || !string(&pt) || (t != pt && t != DataType::Null && pt != DataType::Null) {
            return Err(ExprError::invalid(
                &expr,
                format!("LIKE needs a value and a pattern of one string type, got {t} and {pt}"),
            ));
        }
        Ok(expr)
    }
}

impl fmt::Display for LikeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = if self.negated { "NOT " } else { "" };
        let op = if self.case_insensitive {
            "ILIKE"
        } else {
            "LIKE"
        };
        write!(f, "{} {not}{op} {}", self.arg, self.pattern)
    }
}

impl PhysicalExpr for LikeExpr {
    fn data_type(&self) -> DataType {
        DataType::Boolean
    }

    fn nullable(&self) -> bool {
        self.arg.nullable() || self.pattern.nullable()
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let value = self.arg.evaluate(batch, ctx)?;
        let pattern = self.pattern.evaluate(batch, ctx)?;
        if value.data_type() == DataType::Null || pattern.data_type() == DataType::Null {
            return Ok(ColumnarValue::Scalar(ScalarValue::Null(DataType::Boolean)));
        }
        let kernel: fn(&dyn Datum, &dyn Datum) -> Result<BooleanArray, ArrowError> =
            match (self.negated, self.case_insensitive) {
                (false, false) => like,
                (false, true) => ilike,
                (true, false) => nlike,
                (true, true) => nilike,
            };
        let (v, p) = (Operand::new(&value), Operand::new(&pattern));
        let out = kernel(&v, &p).map_err(|e| EvalError::arrow(self, e))?;
        Ok(kernel_result(
            Arc::new(out),
            v.is_scalar() && p.is_scalar(),
            batch.num_rows(),
        ))
    }
}
