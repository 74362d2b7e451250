//! [`ExprCalcOperator`]: a fused filter and projection of physical expressions.
//!
//! The relational counterpart of [`CalcOperator`](crate::operator::calc::CalcOperator): the
//! predicate and the output columns are [`PhysicalExpr`](super::PhysicalExpr)s, and rows that
//! fail under [`BadDataPolicy::Skip`](super::BadDataPolicy::Skip) are dropped before output.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{FilterBuilder, filter_record_batch};
use arrow::datatypes::SchemaRef;

use super::expr::{EvalContext, PhysicalExprRef, evaluate_to_array};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::operator::{Operator, Output};

/// Filters rows by a predicate (null counts as false), then computes the output columns.
#[derive(Clone)]
pub struct ExprCalcOperator {
    predicate: Option<PhysicalExprRef>,
    projection: Option<Vec<PhysicalExprRef>>,
    output_schema: SchemaRef,
    ctx: EvalContext,
}

impl fmt::Debug for ExprCalcOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let projection = self
            .projection
            .as_ref()
            .map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>());
        f.debug_struct("ExprCalcOperator")
            .field(
                "predicate",
                &self.predicate.as_ref().map(ToString::to_string),
            )
            .field("projection", &projection)
            .finish()
    }
}

impl ExprCalcOperator {
    /// A Calc producing `output_schema`: rows where `predicate` holds, with the columns
    /// `projection` computes (the input columns unchanged when `None`).
    pub fn new(
        predicate: Option<PhysicalExprRef>,
        projection: Option<Vec<PhysicalExprRef>>,
        output_schema: SchemaRef,
        ctx: EvalContext,
    ) -> Self {
        ExprCalcOperator {
            predicate,
            projection,
            output_schema,
            ctx,
        }
    }

    /// Filters and projects one batch; `None` when no row is left.
    pub fn evaluate(
        &mut self,
        batch: &ChangelogBatch,
    ) -> Result<Option<ChangelogBatch>, TaskError> {
        let mut batch = batch.clone();
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        if let Some(predicate) = &self.predicate {
            let mask = evaluate_to_array(predicate.as_ref(), batch.data(), &mut self.ctx)?;
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| format!("the predicate `{predicate}` did not produce booleans"))?
                .clone();
            let mask = drop_failed(mask, self.ctx.take_failed_rows());
            batch = match filter_changelog(&batch, &mask)? {
                Some(b) => b,
                None => return Ok(None),
            };
        }
        let Some(projection) = &self.projection else {
            return Ok(Some(batch));
        };
        let rows = batch.num_rows();
        let columns = projection
            .iter()
            .map(|e| evaluate_to_array(e.as_ref(), batch.data(), &mut self.ctx))
            .collect::<Result<Vec<_>, _>>()?;
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let out = batch.with_data(data)?;
        let failed = self.ctx.take_failed_rows();
        if failed.is_empty() {
            return Ok(Some(out));
        }
        let keep = drop_failed(BooleanArray::from(vec![true; rows]), failed);
        filter_changelog(&out, &keep)
    }
}

/// `mask` with the rows in `failed` set to false.
fn drop_failed(mask: BooleanArray, failed: Vec<usize>) -> BooleanArray {
    if failed.is_empty() {
        return mask;
    }
    let mut values: Vec<bool> = (0..mask.len())
        .map(|i| mask.is_valid(i) && mask.value(i))
        .collect();
    for row in failed {
        if let Some(v) = values.get_mut(row) {
            *v = false;
        }
    }
    BooleanArray::from(values)
}

/// The rows of `batch` where `mask` is true, with their row kinds; `None` when none is.
pub fn filter_changelog(
    batch: &ChangelogBatch,
    mask: &BooleanArray,
) -> Result<Option<ChangelogBatch>, TaskError> {
    let kept = mask.true_count();
    if kept == 0 {
        return Ok(None);
    }
    if kept == batch.num_rows() && mask.null_count() == 0 {
        return Ok(Some(batch.clone()));
    }
    let mask = if mask.null_count() > 0 {
        arrow::compute::prep_null_mask_filter(mask)
    } else {
        mask.clone()
    };
    let data = filter_record_batch(batch.data(), &mask)?;
    match batch.row_kinds() {
        None => Ok(Some(ChangelogBatch::insert_only(data))),
        Some(kinds) => {
            let filter = FilterBuilder::new(&mask).build();
            let kinds = filter.filter(kinds)?;
            let kinds = kinds
                .as_any()
                .downcast_ref::<arrow::array::Int8Array>()
                .expect("row kinds are Int8")
                .clone();
            Ok(Some(ChangelogBatch::with_row_kinds(data, kinds)?))
        }
    }
}

impl Operator for ExprCalcOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        match self.evaluate(&batch)? {
            Some(result) => out.collect(result),
            None => Ok(()),
        }
    }
}
