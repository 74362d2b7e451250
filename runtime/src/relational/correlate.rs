//! [`CorrelateOperator`]: joins each row with the rows a table function produces for it.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int8Array, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{concat, take};
use arrow::datatypes::SchemaRef;

use super::expr::{EvalContext, EvalError, PhysicalExprRef, evaluate_to_array};
use super::function::TableUdf;
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::operator::{Operator, Output};

/// A lateral join with a table function: inner (rows producing nothing vanish) or left outer
/// (they are kept once, with nulls for the function's columns). Each output row keeps its input
/// row's row kind.
#[derive(Clone)]
pub struct CorrelateOperator {
    function: Arc<dyn TableUdf>,
    args: Vec<PhysicalExprRef>,
    left_outer: bool,
    output_schema: SchemaRef,
    ctx: EvalContext,
}

impl fmt::Debug for CorrelateOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelateOperator")
            .field("function", &self.function.name())
            .field("left_outer", &self.left_outer)
            .finish()
    }
}

impl CorrelateOperator {
    /// Applies `function` to `args` of every row; the output is the input's columns followed by
    /// the function's, as `output_schema` describes.
    pub fn new(
        function: Arc<dyn TableUdf>,
        args: Vec<PhysicalExprRef>,
        left_outer: bool,
        output_schema: SchemaRef,
        ctx: EvalContext,
    ) -> Self {
        CorrelateOperator {
            function,
            args,
            left_outer,
            output_schema,
            ctx,
        }
    }
}

impl Operator for CorrelateOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let args = self
            .args
            .iter()
            .map(|a| evaluate_to_array(a.as_ref(), batch.data(), &mut self.ctx))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut indices, mut produced) =
            self.function
                .invoke(&args, rows)
                .map_err(|source| EvalError::Udf {
                    function: self.function.name().to_owned(),
                    source,
                })?;
        let input_width = batch.data().num_columns();
        let function_fields = &self.output_schema.fields()[input_width..];
        if produced.len() != function_fields.len() {
            return Err(format!(
                "table function {:?} returned {} columns but declared {}",
                self.function.name(),
                produced.len(),
                function_fields.len()
            )
            .into());
        }
        if self.left_outer {
            // Rows that produced nothing get one row of nulls.
            let mut hit = vec![false; rows];
            for &i in indices.values() {
                hit[i as usize] = true;
            }
            let missing: Vec<u32> = (0..rows as u32).filter(|&i| !hit[i as usize]).collect();
            if !missing.is_empty() {
                let mut all: Vec<(u32, Option<usize>)> = indices
                    .values()
                    .iter()
                    .enumerate()
                    .map(|(pos, &i)| (i, Some(pos)))
                    .chain(missing.iter().map(|&i| (i, None)))
                    .collect();
                all.sort_by_key(|(i, pos)| (*i, pos.is_none()));
                let padded: Vec<ArrayRef> = produced
                    .iter()
                    .zip(function_fields)
                    .map(|(column, field)| {
                        let nulls = new_null_array(field.data_type(), 1);
                        let combined = concat(&[column.as_ref(), nulls.as_ref()])?;
                        let null_row = column.len() as u32;
                        let picks = UInt32Array::from_iter_values(
                            all.iter()
                                .map(|(_, pos)| pos.map_or(null_row, |p| p as u32)),
                        );
                        take(&combined, &picks, None)
                    })
                    .collect::<Result<_, _>>()?;
                indices = UInt32Array::from_iter_values(all.iter().map(|(i, _)| *i));
                produced = padded;
            }
        }
        if indices.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = batch
            .data()
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<_, _>>()?;
        columns.extend(produced);
        let data = RecordBatch::try_new(Arc::clone(&self.output_schema), columns)?;
        let result = match batch.row_kinds() {
            None => ChangelogBatch::insert_only(data),
            Some(kinds) => {
                let kinds = take(kinds, &indices, None)?;
                let kinds = kinds
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .expect("row kinds are Int8")
                    .clone();
                ChangelogBatch::with_row_kinds(data, kinds)?
            }
        };
        out.collect(result)
    }
}
