//! [`SortLimitOperator`]: ordering, offset and fetch of a bounded input.
//!
//! The input is consolidated first (a retraction cancels an earlier accumulation of the same
//! row), so an updating but bounded input sorts its final rows.

use std::fmt;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;

use super::changelog::consolidate;
use super::expr::{EvalContext, PhysicalExprRef, evaluate_to_array};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::operator::{Operator, Output};

/// One sort key.
#[derive(Clone)]
pub struct SortKey {
    /// What to sort by.
    pub expr: PhysicalExprRef,
    /// Ascending or descending.
    pub ascending: bool,
    /// Nulls before other values.
    pub nulls_first: bool,
}

impl fmt::Debug for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.expr,
            if self.ascending { "ASC" } else { "DESC" }
        )
    }
}

/// Collects its whole input, then emits it sorted by `keys` (in arrival order without keys),
/// skipping `skip` rows and keeping `fetch`. Runs at parallelism 1.
#[derive(Debug, Clone)]
pub struct SortLimitOperator {
    keys: Vec<SortKey>,
    skip: usize,
    fetch: Option<usize>,
    schema: SchemaRef,
    batch_size: usize,
    ctx: EvalContext,
    buffered: Vec<ChangelogBatch>,
}

impl SortLimitOperator {
    /// A sort by `keys` of rows of `schema`, then `skip` and `fetch`.
    pub fn new(
        keys: Vec<SortKey>,
        skip: usize,
        fetch: Option<usize>,
        schema: SchemaRef,
        ctx: EvalContext,
    ) -> Self {
        SortLimitOperator {
            keys,
            skip,
            fetch,
            schema,
            batch_size: 8192,
            ctx,
            buffered: Vec::new(),
        }
    }

    fn consolidated(&mut self) -> Result<RecordBatch, TaskError> {
        let batches = std::mem::take(&mut self.buffered);
        Ok(consolidate(&self.schema, &batches)?)
    }
}

impl Operator for SortLimitOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if batch.num_rows() > 0 {
            self.buffered.push(batch);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Output<ChangelogBatch>) -> Result<(), TaskError> {
        let all = self.consolidated()?;
        let limit = self.fetch.map(|f| f + self.skip);
        let sorted = if self.keys.is_empty() {
            all
        } else {
            let columns = self
                .keys
                .iter()
                .map(|k| {
                    Ok(SortColumn {
                        values: evaluate_to_array(k.expr.as_ref(), &all, &mut self.ctx)?,
                        options: Some(SortOptions {
                            descending: !k.ascending,
                            nulls_first: k.nulls_first,
                        }),
                    })
                })
                .collect::<Result<Vec<_>, TaskError>>()?;
            let indices = lexsort_to_indices(&columns, limit)?;
            take_record_batch(&all, &indices)?
        };
        let start = self.skip.min(sorted.num_rows());
        let end = limit.map_or(sorted.num_rows(), |l| l.min(sorted.num_rows()));
        let mut offset = start;
        while offset < end {
            let len = self.batch_size.min(end - offset);
            out.collect(ChangelogBatch::insert_only(sorted.slice(offset, len)))?;
            offset += len;
        }
        Ok(())
    }
}

/// Emits the first `fetch` rows after skipping `skip`, as they arrive, for insert-only input.
#[derive(Debug, Clone)]
pub struct StreamingLimitOperator {
    skip: usize,
    fetch: Option<usize>,
    seen: usize,
}

impl StreamingLimitOperator {
    /// Skips `skip` rows, then passes `fetch` rows (all when `None`).
    pub fn new(skip: usize, fetch: Option<usize>) -> Self {
        StreamingLimitOperator {
            skip,
            fetch,
            seen: 0,
        }
    }
}

impl Operator for StreamingLimitOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        let rows = batch.num_rows();
        let end = self.fetch.map_or(usize::MAX, |f| self.skip + f);
        let from = self.skip.saturating_sub(self.seen).min(rows);
        let to = end.saturating_sub(self.seen).min(rows);
        self.seen += rows;
        if from < to {
            let indices = UInt32Array::from_iter_values(from as u32..to as u32);
            out.collect(batch.take(&indices)?)?;
        }
        Ok(())
    }
}
