//! [`CaseExpr`]: `CASE WHEN .. THEN .. ELSE .. END`.

use std::fmt;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{cast, interleave, take_record_batch};
use arrow::datatypes::DataType;

use super::{ColumnarValue, EvalContext, EvalError, ExprError, PhysicalExpr, PhysicalExprRef};

/// `CASE WHEN c1 THEN v1 .. ELSE e END`: the value of the first branch whose condition is true
/// (a null condition is not true), else `e`, else null.
///
/// Each condition is evaluated only on the rows no earlier branch took, and each value only on
/// the rows that take its branch, so `CASE WHEN b <> 0 THEN a / b END` never divides by zero.
/// All values have one type (the planner inserts casts); a null-typed value fits any type.
#[derive(Debug)]
pub struct CaseExpr {
    branches: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    otherwise: Option<PhysicalExprRef>,
    data_type: DataType,
}

impl CaseExpr {
    /// `CASE WHEN .. THEN ..` for `(condition, value)` branches and an optional `ELSE` value.
    pub fn try_new(
        branches: Vec<(PhysicalExprRef, PhysicalExprRef)>,
        otherwise: Option<PhysicalExprRef>,
    ) -> Result<Self, ExprError> {
        let mut data_type = DataType::Null;
        let mut expr = CaseExpr {
            branches,
            otherwise,
            data_type: DataType::Null,
        };
        if expr.branches.is_empty() {
            return Err(ExprError::invalid(
                &expr,
                "CASE needs at least one WHEN branch",
            ));
        }
        for (condition, _) in &expr.branches {
            let t = condition.data_type();
            if !matches!(t, DataType::Boolean | DataType::Null) {
                return Err(ExprError::invalid(
                    &expr,
                    format!("the condition {condition} has type {t}, not BOOLEAN"),
                ));
            }
        }
        let values = expr
            .branches
            .iter()
            .map(|(_, v)| v)
            .chain(expr.otherwise.as_ref());
        for value in values {
            let t = value.data_type();
            if t == DataType::Null {
                continue;
            }
            if data_type == DataType::Null {
                data_type = t;
            } else if data_type != t {
                return Err(ExprError::invalid(
                    &expr,
                    format!("branches have types {data_type} and {t}; cast them to one type"),
                ));
            }
        }
        expr.data_type = data_type;
        Ok(expr)
    }
}

impl fmt::Display for CaseExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CASE")?;
        for (c, v) in &self.branches {
            write!(f, " WHEN {c} THEN {v}")?;
        }
        if let Some(e) = &self.otherwise {
            write!(f, " ELSE {e}")?;
        }
        f.write_str(" END")
    }
}

fn indices(rows: &[usize]) -> UInt32Array {
    rows.iter().map(|r| *r as u32).collect()
}

/// The rows `rows` of `batch` (all of it when `rows` covers every row).
fn subset(batch: &RecordBatch, rows: &[usize]) -> Result<RecordBatch, arrow::error::ArrowError> {
    if rows.len() == batch.num_rows() {
        Ok(batch.clone())
    } else {
        take_record_batch(batch, &indices(rows))
    }
}

impl CaseExpr {
    /// Evaluates `value` on the rows `rows` (positions in `batch`) of the operator's batch.
    fn evaluate_on(
        &self,
        value: &PhysicalExprRef,
        batch: &RecordBatch,
        rows: &[usize],
        ctx: &mut EvalContext,
    ) -> Result<ArrayRef, EvalError> {
        let sub = subset(batch, rows).map_err(|e| EvalError::arrow(self, e))?;
        let out = ctx.within_rows(rows, |ctx| value.evaluate(&sub, ctx))?;
        let out = out.into_array(rows.len());
        if out.data_type() != &self.data_type {
            return cast(&out, &self.data_type).map_err(|e| EvalError::arrow(self, e));
        }
        Ok(out)
    }
}

impl PhysicalExpr for CaseExpr {
    fn data_type(&self) -> DataType {
        self.data_type.clone()
    }

    fn nullable(&self) -> bool {
        self.otherwise.is_none()
            || self
                .branches
                .iter()
                .map(|(_, v)| v)
                .chain(self.otherwise.as_ref())
                .any(|v| v.nullable())
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let rows = batch.num_rows();
        // Row r of the result is row picks[r].1 of pieces[picks[r].0]; piece 0 is a null.
        let mut pieces: Vec<ArrayRef> = vec![new_null_array(&self.data_type, 1)];
        let mut picks = vec![(0usize, 0usize); rows];
        let mut remaining: Vec<usize> = (0..rows).collect();
        let mut place = |pieces: &mut Vec<ArrayRef>, piece: ArrayRef, rows: &[usize]| {
            for (k, r) in rows.iter().enumerate() {
                picks[*r] = (pieces.len(), k);
            }
            pieces.push(piece);
        };
        for (condition, value) in &self.branches {
            if remaining.is_empty() {
                break;
            }
            let sub = subset(batch, &remaining).map_err(|e| EvalError::arrow(self, e))?;
            let holds = ctx.within_rows(&remaining, |ctx| condition.evaluate(&sub, ctx))?;
            let holds = super::binary::as_boolean(
                &ColumnarValue::Array(holds.into_array(remaining.len())),
                remaining.len(),
                self,
            )?;
            let mut taken = Vec::new();
            let mut rest = Vec::new();
            for (i, row) in remaining.iter().enumerate() {
                if holds.is_valid(i) && holds.value(i) {
                    taken.push(*row);
                } else {
                    rest.push(*row);
                }
            }
            remaining = rest;
            if taken.is_empty() {
                continue;
            }
            let piece = self.evaluate_on(value, batch, &taken, ctx)?;
            place(&mut pieces, piece, &taken);
        }
        if let Some(otherwise) = &self.otherwise
            && !remaining.is_empty()
        {
            let piece = self.evaluate_on(otherwise, batch, &remaining, ctx)?;
            place(&mut pieces, piece, &remaining);
        }
        if pieces.len() == 2 && picks.iter().all(|(p, _)| *p == 1) {
            return Ok(ColumnarValue::Array(pieces.pop().expect("two pieces")));
        }
        let refs: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
        let out = interleave(&refs, &picks).map_err(|e| EvalError::arrow(self, e))?;
        Ok(ColumnarValue::Array(out))
    }
}
