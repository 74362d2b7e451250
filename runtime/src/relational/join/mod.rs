//! The regular join: both inputs kept in state, joined on equal keys, in streaming mode with
//! retraction (Flink's `Join` node) or, over bounded inputs, as a vectorised hash join.
//!
//! A [`JoinOperator`] is built from a [`JoinSpec`]: the [`JoinType`], the equality key columns of
//! each side, an optional extra filter over the joined row, the schemas and the [`JoinMode`].
//!
//! - **Streaming**: each input row joins with the rows of the other side kept in state and the
//!   result is emitted at once. New joined rows are emitted as `+I` and withdrawn ones as `-D`
//!   (Flink's convention for a join whose output has no unique key: updates become retractions,
//!   never `-U`/`+U` pairs). Outer joins emit a null-padded row for a row without match, withdraw
//!   it (`-D`) when the first match arrives and emit it again (`+I`) when the last match goes.
//!   Semi joins emit a left row when it gains its first match and withdraw it when it loses the
//!   last; anti joins do the opposite. The consolidated changelog after any prefix of the input
//!   equals the batch join of that prefix.
//! - **Batch**: both inputs are buffered; at the end of input the right side is built into a hash
//!   table over its encoded keys and the left side probes it. Matches become index arrays and the
//!   output is gathered with Arrow's `take`, so nothing is materialised per row. The output is
//!   insert-only and final.
//!
//! Keys use the runtime's canonical key encoding (the bytes the hash exchange routes by), so a
//! row's state lives in the key group the exchange sent it to. A null in any key column never
//! matches unless [`JoinSpec::null_equals_null`] is set; such rows are still padded by outer
//! joins. With no key columns every row of one side meets every row of the other (a cross join,
//! optionally with a filter); its state sits in the key group of the empty key, so the planner
//! runs such a join at parallelism 1 or broadcasts one side.
//!
//! See also [`set_op`](super::set_op), the INTERSECT / EXCEPT operator built on the same pieces.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::join::{JoinMode, JoinOperator, JoinSpec, JoinType};
//! use rivulet_runtime::{ChangelogBatch, OperatorContext, RowKind, TwoInputOperator};
//!
//! let orders = Arc::new(Schema::new(vec![Field::new("user", DataType::Int64, false)]));
//! let users = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("name", DataType::Utf8, false),
//! ]));
//! let output = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Int64, false),
//!     Field::new("id", DataType::Int64, true),
//!     Field::new("name", DataType::Utf8, true),
//! ]));
//! let spec = JoinSpec::new(JoinType::Left, orders.clone(), users.clone(), output)
//!     .with_keys([0], [0])
//!     .with_mode(JoinMode::Streaming);
//! let mut join = JoinOperator::new(spec)?;
//! join.open(&OperatorContext::new("join", 0, 1, 128)).unwrap();
//!
//! let mut out = RecordingOutput::default();
//! let order = RecordBatch::try_new(orders, vec![Arc::new(Int64Array::from(vec![7]))])?;
//! join.process_batch1(ChangelogBatch::insert_only(order), &mut out).unwrap();
//! let user = RecordBatch::try_new(
//!     users,
//!     vec![Arc::new(Int64Array::from(vec![7])), Arc::new(StringArray::from(vec!["ada"]))],
//! )?;
//! join.process_batch2(ChangelogBatch::insert_only(user), &mut out).unwrap();
//!
//! // First the order alone, padded with nulls; then the padded row is withdrawn and the
//! // joined row emitted.
//! assert_eq!(out.batches[0].row_kind(0), RowKind::Insert);
//! assert_eq!(out.batches[1].row_kind(0), RowKind::Delete);
//! assert_eq!(out.batches[1].row_kind(1), RowKind::Insert);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

mod hash;
pub(crate) mod rows;
mod streaming;

use std::sync::Arc;

use arrow::array::new_empty_array;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::RowConverter;

use self::rows::{FixedHashMap, KeyEncoder, row_converter};
use self::streaming::KeyRows;
use super::expr::{EvalContext, EvalError, PhysicalExprRef};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::keys::{
    DEFAULT_MAX_PARALLELISM, EncodedKeys, KeyError, KeyGroup, KeyGroupRange, encode_arrow_keys,
};
use crate::operator::{OperatorContext, OperatorState, Output, TwoInputOperator};

/// Which rows a join returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinType {
    /// Pairs of matching rows.
    Inner,
    /// Pairs of matching rows, and each left row without match padded with nulls.
    Left,
    /// Pairs of matching rows, and each right row without match padded with nulls.
    Right,
    /// Pairs of matching rows, and the rows of either side without match padded with nulls.
    Full,
    /// The left rows that have at least one match (`IN` / `EXISTS`).
    Semi,
    /// The left rows that have no match (`NOT IN` / `NOT EXISTS`).
    Anti,
}

impl JoinType {
    /// Whether the output holds only the left columns.
    pub fn is_left_only(self) -> bool {
        matches!(self, JoinType::Semi | JoinType::Anti)
    }

    /// Whether rows of `side` without match are padded with nulls.
    fn preserves(self, side: JoinSide) -> bool {
        match side {
            JoinSide::Left => matches!(self, JoinType::Left | JoinType::Full),
            JoinSide::Right => matches!(self, JoinType::Right | JoinType::Full),
        }
    }
}

/// When a join emits its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JoinMode {
    /// Emit changes as rows arrive (Flink's regular streaming join): the output is a retract
    /// changelog of `+I` and `-D` rows.
    #[default]
    Streaming,
    /// Both inputs are bounded: buffer them and emit the final, insert-only result when both
    /// have ended.
    Batch,
}

/// One input of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinSide {
    Left,
    Right,
}

impl JoinSide {
    fn other(self) -> JoinSide {
        match self {
            JoinSide::Left => JoinSide::Right,
            JoinSide::Right => JoinSide::Left,
        }
    }
}

/// What a [`JoinOperator`] computes.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// Which rows the join returns.
    pub join_type: JoinType,
    /// The equality key columns of the left input, pairwise with `right_keys`. Empty for a cross
    /// join (optionally with a filter).
    pub left_keys: Vec<usize>,
    /// The equality key columns of the right input; each has the Arrow type of its left partner.
    pub right_keys: Vec<usize>,
    /// Whether a null key equals a null key (`IS NOT DISTINCT FROM`). When false, a row with a
    /// null in any key column never matches.
    pub null_equals_null: bool,
    /// An extra condition over the joined row (the left columns followed by the right ones). A
    /// pair matches only when it is true; matches of outer, semi and anti joins are counted with
    /// it applied.
    pub filter: Option<PhysicalExprRef>,
    /// The schema of the left input.
    pub left_schema: SchemaRef,
    /// The schema of the right input.
    pub right_schema: SchemaRef,
    /// The output schema: the left fields followed by the right ones (the padded side nullable),
    /// or only the left fields for semi and anti joins.
    pub output_schema: SchemaRef,
    /// Streaming or batch.
    pub mode: JoinMode,
    /// Evaluates the filter under the environment's bad-data policy; a row whose filter fails
    /// under the null or skip policy does not match.
    pub eval: EvalContext,
}

impl JoinSpec {
    /// A join of `join_type` without keys, filter or null-equality, in streaming mode; add keys
    /// with [`JoinSpec::with_keys`].
    pub fn new(
        join_type: JoinType,
        left_schema: SchemaRef,
        right_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Self {
        JoinSpec {
            join_type,
            left_keys: Vec::new(),
            right_keys: Vec::new(),
            null_equals_null: false,
            filter: None,
            left_schema,
            right_schema,
            output_schema,
            mode: JoinMode::Streaming,
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

    /// Sets the mode. Default: [`JoinMode::Streaming`].
    pub fn with_mode(mut self, mode: JoinMode) -> Self {
        self.mode = mode;
        self
    }

    /// Lets null keys match each other. Default: false.
    pub fn with_null_equals_null(mut self, null_equals_null: bool) -> Self {
        self.null_equals_null = null_equals_null;
        self
    }

    /// Sets how the filter treats bad data. Default: [`EvalContext::default`] (fail).
    pub fn with_eval(mut self, eval: EvalContext) -> Self {
        self.eval = eval;
        self
    }
}

/// Why a join or set operation could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The two sides have different numbers of key columns.
    #[error(
        "the join has {left} left key columns but {right} right key columns; give one right key column per left key column"
    )]
    KeyCountMismatch {
        /// Left key columns.
        left: usize,
        /// Right key columns.
        right: usize,
    },
    /// A key column index is beyond its input's columns.
    #[error(
        "join key column {column} does not exist: the {side} input has {columns} columns; use an index below {columns}"
    )]
    KeyColumnOutOfRange {
        /// `"left"` or `"right"`.
        side: &'static str,
        /// The requested index.
        column: usize,
        /// How many columns the input has.
        columns: usize,
    },
    /// A pair of key columns has different types.
    #[error(
        "join key {position} compares left column {left_column:?} of type {left_type} with right column {right_column:?} of type {right_type}; cast one of them so both have the same type"
    )]
    KeyTypeMismatch {
        /// The pair's position among the keys.
        position: usize,
        /// The left column's name.
        left_column: String,
        /// Its type.
        left_type: DataType,
        /// The right column's name.
        right_column: String,
        /// Its type.
        right_type: DataType,
    },
    /// The output schema does not have the columns the join produces.
    #[error(
        "a {join_type:?} join of these inputs produces {expected} columns but the output schema has {found}; give the left fields followed by the right ones (only the left ones for semi and anti joins)"
    )]
    OutputSchemaMismatch {
        /// The join type.
        join_type: JoinType,
        /// The number of columns produced.
        expected: usize,
        /// The number of columns in the given output schema.
        found: usize,
    },
    /// A column that outer joins pad with nulls is not nullable in the output schema.
    #[error(
        "output column {column:?} is not nullable, but a {join_type:?} join pads it with nulls; mark it nullable in the output schema"
    )]
    PaddedColumnNotNullable {
        /// The join type.
        join_type: JoinType,
        /// The column's name.
        column: String,
    },
    /// An input batch lacks a key column.
    #[error(
        "an input batch has {columns} columns but key column {column} was expected; the input does not match the schema the join was planned with"
    )]
    BatchColumnMissing {
        /// The key column.
        column: usize,
        /// The batch's columns.
        columns: usize,
    },
    /// A key could not be encoded (e.g. a key column type without a key encoding).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The filter failed.
    #[error("the join filter failed: {0}")]
    Filter(#[from] EvalError),
    /// The filter returned something other than booleans.
    #[error("the join filter returns {found} values; give a boolean condition")]
    FilterNotBoolean {
        /// The filter's type.
        found: DataType,
    },
    /// An Arrow kernel failed.
    #[error("arrow failed while {action}: {source}")]
    Arrow {
        /// What the operator was doing.
        action: &'static str,
        /// The kernel's error.
        #[source]
        source: ArrowError,
    },
    /// A state snapshot could not be read.
    #[error(
        "the state of key group {key_group} cannot be read: {message}; restore from a checkpoint taken by the same operator"
    )]
    CorruptState {
        /// The key group.
        key_group: KeyGroup,
        /// What is wrong.
        message: String,
    },
}

impl JoinError {
    fn arrow(action: &'static str) -> impl FnOnce(ArrowError) -> JoinError {
        move |source| JoinError::Arrow { action, source }
    }
}

/// Checks that every column type can be a key of the canonical key encoding.
pub(crate) fn check_key_types(types: &[DataType]) -> Result<(), JoinError> {
    if types.is_empty() {
        return Ok(());
    }
    let columns: Vec<_> = types.iter().map(new_empty_array).collect();
    encode_arrow_keys(&columns, &mut EncodedKeys::new())?;
    Ok(())
}

/// One input of a join: how its keys and rows are encoded, and what is kept of it.
struct SideState {
    schema: SchemaRef,
    keys: KeyEncoder,
    /// The row format of all the input's columns, in which rows are kept.
    converter: RowConverter,
    /// Streaming: the kept rows, by encoded join key.
    table: FixedHashMap<Box<[u8]>, KeyRows>,
    /// Batch: the buffered input.
    buffered: Vec<ChangelogBatch>,
}

impl SideState {
    fn new(schema: &SchemaRef, keys: &[usize]) -> Result<Self, JoinError> {
        Ok(SideState {
            schema: Arc::clone(schema),
            keys: KeyEncoder::new(keys.to_vec()),
            converter: row_converter(schema)?,
            table: FixedHashMap::default(),
            buffered: Vec::new(),
        })
    }
}

/// The regular join of two changelog streams on equal keys; see the [module](self) docs.
///
/// Input 1 is the left side, input 2 the right side. Both inputs must be hash-partitioned by
/// their key columns (an `ArrowKeySelector` over `left_keys` / `right_keys`).
///
/// # State
///
/// Streaming: every live row of both inputs, as a multiset per join key: for each distinct row
/// (in Arrow row format) its count and its number of matches on the other side (what outer, semi
/// and anti joins need to know when a row gains its first or loses its last match). A row is
/// dropped when its count falls to zero and a key when its last row goes; nothing else expires,
/// as in Flink without state TTL. Snapshots hold one blob per key group with both sides' rows and
/// counters as Arrow IPC, so they restore at another parallelism.
///
/// Batch: the buffered input batches until both inputs end; snapshots split them by key group.
pub struct JoinOperator {
    join_type: JoinType,
    mode: JoinMode,
    null_equals_null: bool,
    filter: Option<PhysicalExprRef>,
    eval: EvalContext,
    output_schema: SchemaRef,
    /// The schema the filter is evaluated on: left fields followed by right fields.
    pair_schema: SchemaRef,
    left: SideState,
    right: SideState,
    max_parallelism: u16,
    owned: Option<KeyGroupRange>,
}

impl std::fmt::Debug for JoinOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinOperator")
            .field("join_type", &self.join_type)
            .field("mode", &self.mode)
            .field("left_keys", &self.left.keys)
            .field("right_keys", &self.right.keys)
            .field("filter", &self.filter.as_ref().map(|f| f.to_string()))
            .finish_non_exhaustive()
    }
}

impl JoinOperator {
    /// Checks `spec` and builds the operator.
    ///
    /// # Errors
    ///
    /// When the key columns do not pair up (count, range, type), a key type has no key encoding,
    /// or the output schema has the wrong number of columns.
    pub fn new(spec: JoinSpec) -> Result<Self, JoinError> {
        let JoinSpec {
            join_type,
            left_keys,
            right_keys,
            null_equals_null,
            filter,
            left_schema,
            right_schema,
            output_schema,
            mode,
            eval,
        } = spec;
        if left_keys.len() != right_keys.len() {
            return Err(JoinError::KeyCountMismatch {
                left: left_keys.len(),
                right: right_keys.len(),
            });
        }
        for (side, keys, schema) in [
            ("left", &left_keys, &left_schema),
            ("right", &right_keys, &right_schema),
        ] {
            if let Some(&column) = keys.iter().find(|&&c| c >= schema.fields().len()) {
                return Err(JoinError::KeyColumnOutOfRange {
                    side,
                    column,
                    columns: schema.fields().len(),
                });
            }
        }
        let mut key_types = Vec::with_capacity(left_keys.len());
        for (position, (&l, &r)) in left_keys.iter().zip(&right_keys).enumerate() {
            let (lf, rf) = (left_schema.field(l), right_schema.field(r));
            if lf.data_type() != rf.data_type() {
                return Err(JoinError::KeyTypeMismatch {
                    position,
                    left_column: lf.name().clone(),
                    left_type: lf.data_type().clone(),
                    right_column: rf.name().clone(),
                    right_type: rf.data_type().clone(),
                });
            }
            key_types.push(lf.data_type().clone());
        }
        check_key_types(&key_types)?;
        let expected = if join_type.is_left_only() {
            left_schema.fields().len()
        } else {
            left_schema.fields().len() + right_schema.fields().len()
        };
        if output_schema.fields().len() != expected {
            return Err(JoinError::OutputSchemaMismatch {
                join_type,
                expected,
                found: output_schema.fields().len(),
            });
        }
        let left_width = left_schema.fields().len();
        for (position, field) in output_schema.fields().iter().enumerate() {
            let side = if position < left_width {
                JoinSide::Left
            } else {
                JoinSide::Right
            };
            let padded = !join_type.is_left_only() && join_type.preserves(side.other());
            if padded && !field.is_nullable() {
                return Err(JoinError::PaddedColumnNotNullable {
                    join_type,
                    column: field.name().clone(),
                });
            }
        }
        let pair_schema = Arc::new(Schema::new(
            left_schema
                .fields()
                .iter()
                .chain(right_schema.fields().iter())
                .cloned()
                .collect::<Vec<_>>(),
        ));
        Ok(JoinOperator {
            join_type,
            mode,
            null_equals_null,
            filter,
            eval,
            output_schema,
            pair_schema,
            left: SideState::new(&left_schema, &left_keys)?,
            right: SideState::new(&right_schema, &right_keys)?,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: None,
        })
    }

    /// The join type.
    pub fn join_type(&self) -> JoinType {
        self.join_type
    }

    /// The mode.
    pub fn mode(&self) -> JoinMode {
        self.mode
    }

    fn process(
        &mut self,
        side: JoinSide,
        batch: ChangelogBatch,
    ) -> Result<Option<ChangelogBatch>, JoinError> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        match self.mode {
            JoinMode::Streaming => self.process_streaming(side, batch),
            JoinMode::Batch => {
                match side {
                    JoinSide::Left => self.left.buffered.push(batch),
                    JoinSide::Right => self.right.buffered.push(batch),
                }
                Ok(None)
            }
        }
    }

    fn owns(&self, key_group: KeyGroup) -> bool {
        self.owned.is_none_or(|range| range.contains(key_group))
    }
}

impl TwoInputOperator for JoinOperator {
    type In1 = ChangelogBatch;
    type In2 = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = Some(ctx.key_group_range());
        Ok(())
    }

    fn process_batch1(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if let Some(result) = self.process(JoinSide::Left, batch)? {
            out.collect(result)?;
        }
        Ok(())
    }

    fn process_batch2(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if let Some(result) = self.process(JoinSide::Right, batch)? {
            out.collect(result)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Output<ChangelogBatch>) -> Result<(), TaskError> {
        if self.mode == JoinMode::Batch {
            for batch in self.finish_batch()? {
                out.collect(batch)?;
            }
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        let keyed = match self.mode {
            JoinMode::Streaming => self.snapshot_streaming()?,
            JoinMode::Batch => self.snapshot_buffered()?,
        };
        Ok(OperatorState {
            keyed,
            operator: Vec::new(),
        })
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        for (&key_group, blob) in &state.keyed {
            if !self.owns(key_group) {
                continue;
            }
            match self.mode {
                JoinMode::Streaming => self.restore_streaming(key_group, blob)?,
                JoinMode::Batch => self.restore_buffered(key_group, blob)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
    use arrow::datatypes::{Field, Int64Type};

    use super::*;
    use crate::batch::arrow::RowKind;
    use crate::operator::testing::RecordingOutput;

    fn schema(names: &[&str]) -> SchemaRef {
        Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Int64, true))
                .collect::<Vec<_>>(),
        ))
    }

    fn rows(schema: &SchemaRef, kind: RowKind, keys: &[Option<i64>]) -> ChangelogBatch {
        let data = RecordBatch::try_new(
            Arc::clone(schema),
            vec![Arc::new(Int64Array::from(keys.to_vec()))],
        )
        .unwrap();
        ChangelogBatch::from_kinds(data, &vec![kind; keys.len()]).unwrap()
    }

    /// Every emitted row as `(kind, first column)`.
    fn changes(out: &RecordingOutput<ChangelogBatch>) -> Vec<(RowKind, Option<i64>)> {
        out.batches
            .iter()
            .flat_map(|b| {
                let column = b.data().column(0).as_primitive::<Int64Type>().clone();
                (0..b.num_rows())
                    .map(move |i| (b.row_kind(i), column.is_valid(i).then(|| column.value(i))))
            })
            .collect()
    }

    fn join(join_type: JoinType) -> (JoinOperator, SchemaRef, SchemaRef) {
        let (left, right) = (schema(&["a"]), schema(&["b"]));
        let output = if join_type.is_left_only() {
            Arc::clone(&left)
        } else {
            schema(&["a", "b"])
        };
        let spec = JoinSpec::new(join_type, Arc::clone(&left), Arc::clone(&right), output)
            .with_keys([0], [0]);
        let mut op = JoinOperator::new(spec).unwrap();
        op.open(&OperatorContext::new("join", 0, 1, 128)).unwrap();
        (op, left, right)
    }

    #[test]
    fn semi_join_emits_on_the_first_match_and_retracts_on_the_last() {
        let (mut op, left, right) = join(JoinType::Semi);
        let mut out = RecordingOutput::default();
        op.process_batch1(rows(&left, RowKind::Insert, &[Some(1), None]), &mut out)
            .unwrap();
        op.process_batch2(rows(&right, RowKind::Insert, &[Some(1), Some(1)]), &mut out)
            .unwrap();
        op.process_batch2(rows(&right, RowKind::Delete, &[Some(1)]), &mut out)
            .unwrap();
        op.process_batch2(rows(&right, RowKind::UpdateBefore, &[Some(1)]), &mut out)
            .unwrap();
        assert_eq!(
            changes(&out),
            [(RowKind::Insert, Some(1)), (RowKind::Delete, Some(1))]
        );
    }

    #[test]
    fn anti_join_keeps_null_keys_and_ignores_unknown_retractions() {
        let (mut op, left, right) = join(JoinType::Anti);
        let mut out = RecordingOutput::default();
        op.process_batch1(rows(&left, RowKind::Delete, &[Some(3)]), &mut out)
            .unwrap();
        op.process_batch1(rows(&left, RowKind::Insert, &[None, Some(2)]), &mut out)
            .unwrap();
        op.process_batch2(rows(&right, RowKind::Insert, &[None, Some(2)]), &mut out)
            .unwrap();
        assert_eq!(
            changes(&out),
            [
                (RowKind::Insert, None),
                (RowKind::Insert, Some(2)),
                (RowKind::Delete, Some(2))
            ]
        );
    }

    #[test]
    fn full_join_pads_both_sides() {
        let (mut op, left, right) = join(JoinType::Full);
        let mut out = RecordingOutput::default();
        op.process_batch2(rows(&right, RowKind::Insert, &[Some(5)]), &mut out)
            .unwrap();
        op.process_batch1(rows(&left, RowKind::Insert, &[Some(5)]), &mut out)
            .unwrap();
        op.process_batch1(rows(&left, RowKind::Delete, &[Some(5)]), &mut out)
            .unwrap();
        // (null, 5), then -(null, 5) +(5, 5), then -(5, 5) +(null, 5).
        assert_eq!(
            changes(&out),
            [
                (RowKind::Insert, None),
                (RowKind::Delete, None),
                (RowKind::Insert, Some(5)),
                (RowKind::Delete, Some(5)),
                (RowKind::Insert, None),
            ]
        );
    }
}
