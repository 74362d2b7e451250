//! [`ScalarUdfExpr`]: a call of a user's [`ScalarUdf`].

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;

use super::{ColumnarValue, EvalContext, EvalError, ExprError, PhysicalExpr, PhysicalExprRef};
use crate::relational::ScalarUdf;

/// A call of a scalar user function on whole arrays. The function's result is checked: it must
/// have one value per row and the type its `return_type` declared.
#[derive(Debug)]
pub struct ScalarUdfExpr {
    udf: Arc<dyn ScalarUdf>,
    args: Vec<PhysicalExprRef>,
    data_type: DataType,
}

impl ScalarUdfExpr {
    /// `udf(args..)`, typed by the function's `return_type`.
    pub fn try_new(udf: Arc<dyn ScalarUdf>, args: Vec<PhysicalExprRef>) -> Result<Self, ExprError> {
        let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
        let mut expr = ScalarUdfExpr {
            udf,
            args,
            data_type: DataType::Null,
        };
        expr.data_type = expr
            .udf
            .return_type(&types)
            .map_err(|message| ExprError::invalid(&expr, message))?;
        Ok(expr)
    }
}

impl fmt::Display for ScalarUdfExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.udf.name())?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str(")")
    }
}

impl PhysicalExpr for ScalarUdfExpr {
    fn data_type(&self) -> DataType {
        self.data_type.clone()
    }

    fn nullable(&self) -> bool {
        true
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let rows = batch.num_rows();
        let args = self
            .args
            .iter()
            .map(|a| Ok(a.evaluate(batch, ctx)?.into_array(rows)))
            .collect::<Result<Vec<_>, EvalError>>()?;
        let out = self
            .udf
            .invoke(&args, rows)
            .map_err(|source| EvalError::Udf {
                function: self.udf.name().to_owned(),
                source,
            })?;
        let wrong = if out.len() != rows {
            Some(format!("returned {} values for {rows} rows", out.len()))
        } else if out.data_type() != &self.data_type {
            Some(format!(
                "returned {} values but declared {}",
                out.data_type(),
                self.data_type
            ))
        } else {
            None
        };
        match wrong {
            Some(message) => Err(EvalError::Udf {
                function: self.udf.name().to_owned(),
                source: message.into(),
            }),
            None => Ok(ColumnarValue::Array(out)),
        }
    }
}
