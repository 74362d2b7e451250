//! [`InListExpr`]: `x [NOT] IN (v1, v2, ..)`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::kernels::{boolean, cmp};
use arrow::datatypes::DataType;

use super::binary::as_boolean;
use super::{
    ColumnarValue, EvalContext, EvalError, ExprError, Operand, PhysicalExpr, PhysicalExprRef,
    kernel_result, repeat_first,
};

/// `x [NOT] IN (v1, v2, ..)`, three-valued: true when `x` equals an item, else null when `x` or
/// an item is null, else false (`3 IN (1, NULL)` is null). All items have `x`'s type (the planner
/// inserts casts); a null-typed item fits any type. Constant items stay scalars.
#[derive(Debug)]
pub struct InListExpr {
    arg: PhysicalExprRef,
    list: Vec<PhysicalExprRef>,
    negated: bool,
}

impl InListExpr {
    /// `arg [NOT] IN (list..)`.
    pub fn try_new(
        arg: PhysicalExprRef,
        list: Vec<PhysicalExprRef>,
        negated: bool,
    ) -> Result<Self, ExprError> {
        let expr = InListExpr { arg, list, negated };
        let t = expr.arg.data_type();
        for item in &expr.list {
            let it = item.data_type();
            if it != t && it != DataType::Null && t != DataType::Null {
                return Err(ExprError::invalid(
                    &expr,
                    format!(
                        "cannot compare {t} with the item {item} of {it}; cast them to one type"
                    ),
                ));
            }
        }
        Ok(expr)
    }
}

impl fmt::Display for InListExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}IN (",
            self.arg,
            if self.negated { "NOT " } else { "" }
        )?;
        for (i, item) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        f.write_str(")")
    }
}

impl PhysicalExpr for InListExpr {
    fn data_type(&self) -> DataType {
        DataType::Boolean
    }

    fn nullable(&self) -> bool {
        self.arg.nullable() || self.list.iter().any(|i| i.nullable())
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let rows = batch.num_rows();
        let value = self.arg.evaluate(batch, ctx)?;
        let mut all_scalar = matches!(value, ColumnarValue::Scalar(_));
        let x = Operand::new(&value);
        let null_type = value.data_type() == DataType::Null;
        let mut found: Option<BooleanArray> = None;
        for item in &self.list {
            let item = item.evaluate(batch, ctx)?;
            all_scalar &= matches!(item, ColumnarValue::Scalar(_));
            let len = if all_scalar { 1 } else { rows };
            let eq = if null_type || item.data_type() == DataType::Null {
                BooleanArray::new_null(len)
            } else {
                cmp::eq(&x, &Operand::new(&item)).map_err(|e| EvalError::arrow(self, e))?
            };
            found = Some(match found {
                None => eq,
                Some(acc) => {
                    let acc = grow(acc, eq.len(), self)?;
                    let eq = grow(eq, acc.len(), self)?;
                    boolean::or_kleene(&acc, &eq).map_err(|e| EvalError::arrow(self, e))?
                }
            });
        }
        let len = if all_scalar { 1 } else { rows };
        let found = match found {
            Some(f) => f,
            // `x IN ()` is false.
            None => BooleanArray::from(vec![false; len]),
        };
        let out = if self.negated {
            boolean::not(&found).map_err(|e| EvalError::arrow(self, e))?
        } else {
            found
        };
        Ok(kernel_result(Arc::new(out), all_scalar, rows))
    }
}

/// `array`, repeated to `len` rows when it is a one-row (scalar) result.
fn grow(array: BooleanArray, len: usize, expr: &InListExpr) -> Result<BooleanArray, EvalError> {
    if array.len() == len || array.len() != 1 {
        return Ok(array);
    }
    let repeated = repeat_first(&(Arc::new(array) as ArrayRef), len);
    as_boolean(&ColumnarValue::Array(repeated), len, expr)
}
