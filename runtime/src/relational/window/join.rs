//! [`WindowJoinOperator`]: the join of two windowed inputs within each window.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::buffer::WindowBuffer;
use super::{WindowColumns, WindowError, check_columns, check_insert_only};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroupRange};
use crate::operator::{OperatorContext, OperatorState, Output, TwoInputOperator};
use crate::relational::expr::{EvalContext, PhysicalExprRef};
use crate::relational::join::rows::{put_section, take_section};
use crate::relational::join::{JoinMode, JoinOperator, JoinSpec, JoinType};

const OPERATOR: &str = "a window join";

/// What a [`WindowJoinOperator`] computes.
#[derive(Debug, Clone)]
pub struct WindowJoinSpec {
    /// Which rows the join returns.
    pub join_type: JoinType,
    /// The equality key columns of the left input, pairwise with `right_keys`.
    pub left_keys: Vec<usize>,
    /// The equality key columns of the right input.
    pub right_keys: Vec<usize>,
    /// Where the left input's window columns are.
    pub left_window: WindowColumns,
    /// Where the right input's window columns are; of the same types as the left ones.
    pub right_window: WindowColumns,
    /// An extra condition over the joined row (left columns, then right ones).
    pub filter: Option<PhysicalExprRef>,
    /// The schema of the left input.
    pub left_schema: SchemaRef,
    /// The schema of the right input.
    pub right_schema: SchemaRef,
    /// The left fields followed by the right ones (the padded side nullable), or only the left
    /// fields for semi and anti joins.
    pub output_schema: SchemaRef,
    /// Evaluates the filter under the environment's bad-data policy.
    pub eval: EvalContext,
}

impl WindowJoinSpec {
    /// A window join of `join_type` on the window columns of each side, without keys or
    /// filter; add keys with [`WindowJoinSpec::with_keys`].
    pub fn new(
        join_type: JoinType,
        left_schema: SchemaRef,
        left_window: WindowColumns,
        right_schema: SchemaRef,
        right_window: WindowColumns,
        output_schema: SchemaRef,
    ) -> Self {
        WindowJoinSpec {
            join_type,
            left_keys: Vec::new(),
            right_keys: Vec::new(),
            left_window,
            right_window,
            filter: None,
            left_schema,
            right_schema,
            output_schema,
            eval: EvalContext::default(),
        }
    }

    /// Joins on `left[i] == right[i]` for each pair of key columns.
    pub fn with_keys(
        mut self,
        left: impl IntoIterator<Item = usize>,
        right: impl IntoIterator<Item = usize>,
    ) -> Self {
        self.left_keys = left.into_iter().collect();
        self.right_keys = right.into_iter().collect();
        self
    }

    /// Adds a condition over the joined row.
    pub fn with_filter(mut self, filter: PhysicalExprRef) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets how the filter treats bad data. Default: [`EvalContext::default`] (fail).
    pub fn with_eval(mut self, eval: EvalContext) -> Self {
        self.eval = eval;
        self
    }
}

/// Flink's window join: two windowed inputs joined within each window. Rows join only when their
/// `window_start` and `window_end` are equal and their keys are equal (a null key never
/// matches), and the optional filter holds.
///
/// Both sides are buffered until the watermark (the minimum over both inputs) passes a window's
/// end; then the window's rows are joined and the result emitted once, insert-only, outer rows
/// padded with nulls, and the window is purged. Inner, left, right, full, semi and anti joins
/// are supported, with the row semantics of [`JoinOperator`]'s batch mode, which does the
/// joining: the window bounds join as two more key columns. Rows whose window already fired are
/// dropped and counted. Input 1 is the left side; both inputs must be hash-partitioned by their
/// key columns.
///
/// # State
///
/// Every row of both inputs in open windows, kept as the Arrow batches they arrived in, grouped
/// by window end; the rows of fired windows are joined and dropped. Checkpoints write one blob
/// per key group of the join keys, with each side's rows as an Arrow IPC stream.
pub struct WindowJoinOperator {
    /// Batch-mode join on keys plus window bounds, run on the rows of each firing.
    join: JoinOperator,
    left: WindowBuffer,
    right: WindowBuffer,
    left_schema: SchemaRef,
    right_schema: SchemaRef,
    watermark: i64,
    ctx: OperatorContext,
    max_parallelism: u16,
    owned: KeyGroupRange,
}

impl std::fmt::Debug for WindowJoinOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowJoinOperator")
            .field("join", &self.join)
            .field("left_rows", &self.left.len())
            .field("right_rows", &self.right.len())
            .finish()
    }
}

impl WindowJoinOperator {
    /// Checks `spec` and builds the operator.
    ///
    /// # Errors
    ///
    /// When a window column is missing or not a millisecond time, the keys do not pair up
    /// (count, range, type; window columns included), a key type has no key encoding, or the
    /// output schema does not fit the join type.
    pub fn new(spec: WindowJoinSpec) -> Result<Self, WindowError> {
        spec.left_window.check(&spec.left_schema)?;
        spec.right_window.check(&spec.right_schema)?;
        if spec.left_keys.len() != spec.right_keys.len() {
            return Err(WindowError::JoinColumnCount {
                what: "key columns",
                left: spec.left_keys.len(),
                right: spec.right_keys.len(),
            });
        }
        let with_window = |keys: &[usize], window: WindowColumns| {
            keys.iter()
                .copied()
                .chain([window.start, window.end])
                .collect::<Vec<_>>()
        };
        let mut join = JoinSpec::new(
            spec.join_type,
            Arc::clone(&spec.left_schema),
            Arc::clone(&spec.right_schema),
            spec.output_schema,
        )
        .with_keys(
            with_window(&spec.left_keys, spec.left_window),
            with_window(&spec.right_keys, spec.right_window),
        )
        .with_mode(JoinMode::Batch)
        .with_eval(spec.eval);
        if let Some(filter) = spec.filter {
            join = join.with_filter(filter);
        }
        let join = JoinOperator::new(join)?;
        Ok(WindowJoinOperator {
            join,
            left: WindowBuffer::new(
                Arc::clone(&spec.left_schema),
                spec.left_window,
                spec.left_keys,
            ),
            right: WindowBuffer::new(
                Arc::clone(&spec.right_schema),
                spec.right_window,
                spec.right_keys,
            ),
            left_schema: spec.left_schema,
            right_schema: spec.right_schema,
            watermark: i64::MIN,
            ctx: OperatorContext::new("window join", 0, 1, DEFAULT_MAX_PARALLELISM),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The number of rows of both inputs buffered in open windows.
    pub fn buffered_rows(&self) -> usize {
        self.left.len() + self.right.len()
    }

    fn process(&mut self, left: bool, batch: &ChangelogBatch) -> Result<(), WindowError> {
        check_insert_only(batch, OPERATOR)?;
        let (buffer, schema) = if left {
            (&mut self.left, &self.left_schema)
        } else {
            (&mut self.right, &self.right_schema)
        };
        check_columns(batch.data(), schema, OPERATOR)?;
        let late = buffer.insert(batch.data(), self.watermark)?;
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        Ok(())
    }

    /// Joins the rows of the windows fired at `watermark`.
    fn fire(&mut self, watermark: i64) -> Result<Vec<ChangelogBatch>, TaskError> {
        let left = self.left.take_due(watermark)?;
        let right = self.right.take_due(watermark)?;
        if left.is_none() && right.is_none() {
            return Ok(Vec::new());
        }
        let mut collected = Collected::default();
        if let Some(left) = left {
            self.join
                .process_batch1(ChangelogBatch::insert_only(left), &mut collected)?;
        }
        if let Some(right) = right {
            self.join
                .process_batch2(ChangelogBatch::insert_only(right), &mut collected)?;
        }
        self.join.finish(&mut collected)?;
        Ok(collected.0)
    }

    fn snapshot(&self) -> Result<OperatorState, WindowError> {
        let mut left = self.left.snapshot(self.max_parallelism)?;
        let mut right = self.right.snapshot(self.max_parallelism)?;
        let mut keyed = BTreeMap::new();
        let key_groups: std::collections::BTreeSet<_> =
            left.keys().chain(right.keys()).copied().collect();
        for key_group in key_groups {
            let mut blob = Vec::new();
            put_section(&mut blob, &left.remove(&key_group).unwrap_or_default());
            put_section(&mut blob, &right.remove(&key_group).unwrap_or_default());
            keyed.insert(key_group, blob);
        }
        Ok(OperatorState {
            keyed,
            operator: self.watermark.to_le_bytes().to_vec(),
        })
    }

    fn restore(&mut self, state: &OperatorState) -> Result<(), WindowError> {
        if let Ok(bytes) = <[u8; 8]>::try_from(state.operator.as_slice()) {
            self.watermark = self.watermark.max(i64::from_le_bytes(bytes));
        }
        for (&key_group, blob) in &state.keyed {
            if !self.owned.contains(key_group) {
                continue;
            }
            let mut rest = blob.as_slice();
            for buffer in [&mut self.left, &mut self.right] {
                let section = take_section(&mut rest).ok_or_else(|| WindowError::State {
                    key_group,
                    reason: "a side's rows are missing".to_owned(),
                })?;
                if !section.is_empty() {
                    buffer.restore(key_group, section)?;
                }
            }
        }
        Ok(())
    }
}

/// Collects what the inner batch join emits.
#[derive(Default)]
struct Collected(Vec<ChangelogBatch>);

impl Output<ChangelogBatch> for Collected {
    fn collect(&mut self, batch: ChangelogBatch) -> Result<(), TaskError> {
        self.0.push(batch);
        Ok(())
    }

    fn emit_watermark(&mut self, _watermark: i64) -> Result<(), TaskError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl TwoInputOperator for WindowJoinOperator {
    type In1 = ChangelogBatch;
    type In2 = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = ctx.key_group_range();
        self.ctx = ctx.clone();
        Ok(())
    }

    fn process_batch1(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        Ok(self.process(true, &batch)?)
    }

    fn process_batch2(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        Ok(self.process(false, &batch)?)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        self.watermark = self.watermark.max(watermark);
        for batch in self.fire(self.watermark)? {
            out.collect(batch)?;
        }
        out.emit_watermark(watermark)
    }

    /// Event time ends with both inputs: every window left fires.
    fn finish(&mut self, out: &mut dyn Output<ChangelogBatch>) -> Result<(), TaskError> {
        self.watermark = i64::MAX;
        for batch in self.fire(i64::MAX)? {
            out.collect(batch)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(self.snapshot()?)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.restore(state)?)
    }
}
