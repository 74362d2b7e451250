//! INTERSECT and EXCEPT, with or without ALL, over two changelog streams of the same schema.
//!
//! Multiset semantics: for each distinct row the operator keeps how often it is in the left
//! input (`l`) and in the right one (`r`), and the row is in the output
//!
//! | operation       | times                    |
//! |-----------------|--------------------------|
//! | `INTERSECT ALL` | `min(l, r)`              |
//! | `INTERSECT`     | 1 if `l > 0 && r > 0`    |
//! | `EXCEPT ALL`    | `max(l - r, 0)`          |
//! | `EXCEPT`        | 1 if `l > 0 && r == 0`   |
//!
//! Rows are compared as `IS NOT DISTINCT FROM`: nulls equal nulls. In streaming mode every input
//! row that changes a row's output multiplicity emits the difference at once, as `+I` or `-D`
//! rows; in batch mode the final rows are emitted, insert-only, when both inputs end.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::join::JoinMode;
//! use rivulet_runtime::relational::set_op::{SetOpOperator, SetOpType};
//! use rivulet_runtime::{ChangelogBatch, OperatorContext, TwoInputOperator};
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
//! let batch = |values: Vec<i64>| {
//!     let data = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]);
//!     ChangelogBatch::insert_only(data.unwrap())
//! };
//! let mut except = SetOpOperator::new(SetOpType::Except, true, schema.clone(), JoinMode::Batch)?;
//! except.open(&OperatorContext::new("except all", 0, 1, 128)).unwrap();
//! let mut out = RecordingOutput::default();
//! except.process_batch1(batch(vec![1, 1, 2]), &mut out).unwrap();
//! except.process_batch2(batch(vec![1]), &mut out).unwrap();
//! except.finish(&mut out).unwrap();
//! let column = out.batches[0].data().column(0);
//! let mut rows = column.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
//! rows.sort();
//! // {1, 1, 2} EXCEPT ALL {1}: one 1 is left, in no particular order with the 2.
//! assert_eq!(rows, [1, 2]);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;

use super::join::rows::{
    FixedHashMap, KeyEncoder, RowGather, changelog_batch, decode_state, encode_state,
    key_group_of_key, row_converter, state_schema,
};
use super::join::{JoinError, JoinMode, check_key_types};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange};
use crate::operator::{OperatorContext, OperatorState, Output, TwoInputOperator};

/// The set operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOpType {
    /// Rows in both inputs.
    Intersect,
    /// Rows of the left input that are not in the right one.
    Except,
}

/// The counters of a snapshot's rows.
const COUNTERS: [&str; 2] = ["__left", "__right"];

/// One distinct row: its Arrow row format and how often it is in each input.
#[derive(Debug)]
struct Counted {
    key_group: KeyGroup,
    row: Box<[u8]>,
    left: u64,
    right: u64,
}

/// INTERSECT / EXCEPT \[ALL\] of two changelog streams; see the [module](self) docs.
///
/// Input 1 is the left input, input 2 the right one. Both must be hash-partitioned by all their
/// columns (an `ArrowKeySelector` over every column).
///
/// # State
///
/// For each distinct row (keyed by the canonical key encoding of all its columns, which is what
/// the exchange routes by) its Arrow row format and its count in either input. A row is dropped
/// when both counts are zero. Snapshots hold one Arrow IPC blob per key group.
pub struct SetOpOperator {
    kind: SetOpType,
    all: bool,
    mode: JoinMode,
    schema: SchemaRef,
    keys: KeyEncoder,
    converter: RowConverter,
    rows: FixedHashMap<Box<[u8]>, Counted>,
    max_parallelism: u16,
    owned: Option<KeyGroupRange>,
}

impl std::fmt::Debug for SetOpOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetOpOperator")
            .field("kind", &self.kind)
            .field("all", &self.all)
            .field("mode", &self.mode)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl SetOpOperator {
    /// `kind` (with `ALL` when `all`) over two inputs of `schema`.
    ///
    /// # Errors
    ///
    /// When a column's type cannot be part of a key (see
    /// [`encode_arrow_keys`](crate::keys::encode_arrow_keys)) or has no Arrow row format.
    pub fn new(
        kind: SetOpType,
        all: bool,
        schema: SchemaRef,
        mode: JoinMode,
    ) -> Result<Self, JoinError> {
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        check_key_types(&types)?;
        Ok(SetOpOperator {
            kind,
            all,
            mode,
            keys: KeyEncoder::new((0..types.len()).collect()),
            converter: row_converter(&schema)?,
            schema,
            rows: FixedHashMap::default(),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: None,
        })
    }

    /// How often a row with these counts is in the output.
    fn multiplicity(&self, left: u64, right: u64) -> u64 {
        match (self.kind, self.all) {
            (SetOpType::Intersect, true) => left.min(right),
            (SetOpType::Intersect, false) => u64::from(left > 0 && right > 0),
            (SetOpType::Except, true) => left.saturating_sub(right),
            (SetOpType::Except, false) => u64::from(left > 0 && right == 0),
        }
    }

    /// Counts the rows of `batch` for one input; in streaming mode returns the output changes.
    fn process(
        &mut self,
        is_left: bool,
        batch: ChangelogBatch,
    ) -> Result<Option<ChangelogBatch>, JoinError> {
        let columns = batch.data().columns();
        self.keys.encode(columns)?;
        let encoded =
            self.converter
                .convert_columns(columns)
                .map_err(|source| JoinError::Arrow {
                    action: "encoding input rows",
                    source,
                })?;
        let streaming = self.mode == JoinMode::Streaming;
        let mut gather = RowGather::default();
        let mut kinds = Vec::new();
        for i in 0..batch.num_rows() {
            let key = self.keys.key(i);
            let accumulate = batch.row_kind(i).is_accumulate();
            if !accumulate && !self.rows.contains_key(key) {
                // A retraction of a row that is not there.
                continue;
            }
            let max_parallelism = self.max_parallelism;
            let counted = self.rows.entry_ref(key).or_insert_with(|| Counted {
                key_group: key_group_of_key(key, max_parallelism),
                row: encoded.row(i).data().into(),
                left: 0,
                right: 0,
            });
            let (left, right) = (counted.left, counted.right);
            let count = if is_left {
                &mut counted.left
            } else {
                &mut counted.right
            };
            if accumulate {
                *count += 1;
            } else if *count == 0 {
                continue;
            } else {
                *count -= 1;
            }
            let (new_left, new_right) = (counted.left, counted.right);
            if streaming {
                let before = self.multiplicity(left, right);
                let after = self.multiplicity(new_left, new_right);
                let counted = &self.rows[key];
                if after > before {
                    gather.push(&counted.row, after - before);
                    kinds.extend(std::iter::repeat_n(
                        RowKind::Insert,
                        (after - before) as usize,
                    ));
                } else if before > after {
                    gather.push(&counted.row, before - after);
                    kinds.extend(std::iter::repeat_n(
                        RowKind::Delete,
                        (before - after) as usize,
                    ));
                }
            }
            if new_left == 0 && new_right == 0 {
                self.rows.remove(key);
            }
        }
        self.output(gather, &kinds)
    }

    fn output(
        &self,
        mut gather: RowGather,
        kinds: &[RowKind],
    ) -> Result<Option<ChangelogBatch>, JoinError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let columns = gather
            .finish(&self.converter, self.schema.fields())
            .map_err(|source| JoinError::Arrow {
                action: "decoding output rows",
                source,
            })?;
        changelog_batch(&self.schema, columns, kinds).map(Some)
    }

    fn owns(&self, key_group: KeyGroup) -> bool {
        self.owned.is_none_or(|range| range.contains(key_group))
    }
}

impl TwoInputOperator for SetOpOperator {
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
        if let Some(changes) = self.process(true, batch)? {
            out.collect(changes)?;
        }
        Ok(())
    }

    fn process_batch2(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if let Some(changes) = self.process(false, batch)? {
            out.collect(changes)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Output<ChangelogBatch>) -> Result<(), TaskError> {
        if self.mode != JoinMode::Batch {
            return Ok(());
        }
        let mut gather = RowGather::default();
        let mut rows = 0;
        for counted in self.rows.values() {
            let times = self.multiplicity(counted.left, counted.right);
            if times > 0 {
                gather.push(&counted.row, times);
                rows += times as usize;
            }
        }
        if let Some(batch) = self.output(gather, &vec![RowKind::Insert; rows])? {
            out.collect(batch)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        let mut by_group: BTreeMap<KeyGroup, Vec<&Counted>> = BTreeMap::new();
        for counted in self.rows.values() {
            by_group.entry(counted.key_group).or_default().push(counted);
        }
        let schema = state_schema(&self.schema, &COUNTERS);
        let mut keyed = BTreeMap::new();
        for (key_group, rows) in by_group {
            let mut gather = RowGather::default();
            for counted in &rows {
                gather.push(&counted.row, 1);
            }
            let mut blob = Vec::new();
            gather
                .finish(&self.converter, self.schema.fields())
                .and_then(|columns| {
                    let left = rows.iter().map(|c| c.left).collect();
                    let right = rows.iter().map(|c| c.right).collect();
                    encode_state(&schema, columns, vec![left, right], &mut blob)
                })
                .map_err(|source| JoinError::Arrow {
                    action: "writing the set-operation state",
                    source,
                })?;
            keyed.insert(key_group, blob);
        }
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
            let corrupt = |message: String| JoinError::CorruptState { key_group, message };
            let (columns, counters) =
                decode_state(blob, COUNTERS.len()).map_err(|e| corrupt(e.to_string()))?;
            self.keys.encode(&columns)?;
            let encoded = self
                .converter
                .convert_columns(&columns)
                .map_err(|e| corrupt(e.to_string()))?;
            for (i, (&left, &right)) in counters[0].iter().zip(&counters[1]).enumerate() {
                let key = self.keys.key(i);
                let counted = self.rows.entry_ref(key).or_insert_with(|| Counted {
                    key_group,
                    row: encoded.row(i).data().into(),
                    left: 0,
                    right: 0,
                });
                counted.left += left;
                counted.right += right;
            }
        }
        Ok(())
    }
}
