//! [`DeduplicateOperator`]: keeps one row per key, Flink's `Deduplicate` node
//! (`ROW_NUMBER() OVER (PARTITION BY key ORDER BY time ASC|DESC) = 1`).
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::dedup::{DedupOrder, DeduplicateOperator, DeduplicateSpec, Keep};
//! use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext, RowKind};
//!
//! let input = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Int64, false),
//!     Field::new("page", DataType::Int64, false),
//! ]));
//! // The latest page each user visited.
//! let spec = DeduplicateSpec::new(Arc::clone(&input), [0], Keep::Last, DedupOrder::Arrival);
//! let mut dedup = DeduplicateOperator::new(spec)?;
//! dedup.open(&OperatorContext::new("dedup", 0, 1, 128)).unwrap();
//! let mut out = RecordingOutput::default();
//! let visits = RecordBatch::try_new(
//!     Arc::clone(&input),
//!     vec![Arc::new(Int64Array::from(vec![1, 1])), Arc::new(Int64Array::from(vec![10, 20]))],
//! )?;
//! dedup.process_batch(ChangelogBatch::insert_only(visits), &mut out).unwrap();
//! // +I[1, 10], -U[1, 10], +U[1, 20]
//! let kinds: Vec<RowKind> = (0..3).map(|i| out.batches[0].row_kind(i)).collect();
//! assert_eq!(kinds, [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter]);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::join::rows::FixedHashMap;
use super::stream_op::{
    RowCodec, RowKeys, StreamOpError, check_input, check_insert_only, check_output,
    check_time_column, fields_of, key_group_of, output_batch, read_rows, time_values, write_rows,
};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};

const OPERATOR: &str = "Deduplicate";

/// Which row of a key a [`DeduplicateOperator`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first row in the order (`ORDER BY time ASC`).
    First,
    /// The last row in the order (`ORDER BY time DESC`).
    Last,
}

/// What "first" and "last" are measured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupOrder {
    /// The order in which rows arrive (processing time).
    Arrival,
    /// The event-time column at this position (`Timestamp(Millisecond)` or `Int64` ms); rows
    /// with equal times are ordered by arrival.
    EventTime(usize),
}

/// What a [`DeduplicateOperator`] computes.
#[derive(Debug, Clone)]
pub struct DeduplicateSpec {
    /// Positions of the key columns in the input.
    pub key_columns: Vec<usize>,
    /// The first or the last row per key.
    pub keep: Keep,
    /// What orders the rows of a key.
    pub order: DedupOrder,
    /// The schema of the input.
    pub input_schema: SchemaRef,
    /// The output schema: the input's columns.
    pub output_schema: SchemaRef,
}

impl DeduplicateSpec {
    /// Keeps the `keep` row per `key_columns` in `order`; the output schema is the input's.
    pub fn new(
        input_schema: SchemaRef,
        key_columns: impl IntoIterator<Item = usize>,
        keep: Keep,
        order: DedupOrder,
    ) -> Self {
        DeduplicateSpec {
            key_columns: key_columns.into_iter().collect(),
            keep,
            order,
            output_schema: Arc::clone(&input_schema),
            input_schema,
        }
    }

    /// Sets the output schema (names and nullability as the planner decided them).
    pub fn with_output_schema(mut self, output_schema: SchemaRef) -> Self {
        self.output_schema = output_schema;
        self
    }
}

/// The row kept for a key.
#[derive(Debug)]
struct Kept {
    key_group: KeyGroup,
    time: i64,
    row: Box<[u8]>,
}

/// Deduplication of an insert-only stream, as Flink's `Deduplicate`: per key, the first or the
/// last row by arrival or by an event-time column.
///
/// What it emits for each input row, in order:
///
/// - the first row of a key: `+I`;
/// - keep first by arrival: nothing more, so the output is insert-only (Flink's proctime
///   keep-first);
/// - keep last by arrival: `-U` the kept row, `+U` the new one;
/// - keep first by event time: `-U`/`+U` when a row with a strictly smaller time arrives after
///   the kept one (out of order), else nothing;
/// - keep last by event time: `-U`/`+U` when a row with an equal or larger time arrives (equal
///   times keep the last arrival), else nothing.
///
/// A replacement equal to the kept row emits nothing. The consolidated output always holds,
/// per key, the row chosen from the input so far. Event-time deduplication here emits at once
/// and so produces updates (Flink's rowtime deduplication without mini-batch); it drops no rows
/// as late. Null key values group together.
///
/// # State
///
/// Per key (its canonical encoding): the kept row in Arrow row format and its time. Keys are
/// never removed (as in Flink without state TTL). Checkpoints hold one blob per key group: the
/// kept rows as Arrow IPC.
pub struct DeduplicateOperator {
    spec: DeduplicateSpec,
    keys: RowKeys,
    codec: RowCodec,
    kept: FixedHashMap<Box<[u8]>, Kept>,
    max_parallelism: u16,
    owned: KeyGroupRange,
}

impl std::fmt::Debug for DeduplicateOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeduplicateOperator")
            .field("key_columns", &self.spec.key_columns)
            .field("keep", &self.spec.keep)
            .field("order", &self.spec.order)
            .field("keys", &self.kept.len())
            .finish()
    }
}

impl DeduplicateOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When a key column does not exist or cannot be a key, the time column is not a
    /// millisecond timestamp or `BIGINT`, or the output schema is not the input's.
    pub fn new(spec: DeduplicateSpec) -> Result<Self, StreamOpError> {
        let keys = RowKeys::new(OPERATOR, "key", &spec.input_schema, &spec.key_columns)?;
        if let DedupOrder::EventTime(column) = spec.order {
            check_time_column(OPERATOR, "time", &spec.input_schema, column)?;
        }
        check_output(
            OPERATOR,
            &fields_of(&spec.input_schema),
            &spec.output_schema,
            "list the input columns",
        )?;
        Ok(DeduplicateOperator {
            codec: RowCodec::new(OPERATOR, &spec.input_schema)?,
            spec,
            keys,
            kept: FixedHashMap::default(),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The number of keys in state.
    pub fn key_count(&self) -> usize {
        self.kept.len()
    }

    fn process(&mut self, batch: &ChangelogBatch) -> Result<Option<ChangelogBatch>, StreamOpError> {
        let data = batch.data();
        if data.num_rows() == 0 {
            return Ok(None);
        }
        check_insert_only(OPERATOR, batch)?;
        check_input(
            OPERATOR,
            &self.spec.input_schema,
            data,
            0..self.spec.input_schema.fields().len(),
        )?;
        self.keys.encode(data)?;
        let rows = self.codec.encode(data)?;
        let times = match self.spec.order {
            DedupOrder::EventTime(column) => Some(time_values(OPERATOR, data, column)?),
            DedupOrder::Arrival => None,
        };
        let mut kinds = Vec::new();
        let mut out: Vec<Box<[u8]>> = Vec::new();
        for i in 0..data.num_rows() {
            let key = self.keys.key(i);
            let row = rows.row(i);
            let time = times.as_ref().map_or(0, |t| t[i]);
            match self.kept.get_mut(key) {
                None => {
                    let key_group = key_group_of(key, self.max_parallelism);
                    self.kept.insert(
                        key.into(),
                        Kept {
                            key_group,
                            time,
                            row: row.as_ref().into(),
                        },
                    );
                    kinds.push(RowKind::Insert);
                    out.push(row.as_ref().into());
                }
                Some(kept) => {
                    let replace = match (self.spec.keep, self.spec.order) {
                        (Keep::First, DedupOrder::Arrival) => false,
                        (Keep::Last, DedupOrder::Arrival) => true,
                        (Keep::First, DedupOrder::EventTime(_)) => time < kept.time,
                        (Keep::Last, DedupOrder::EventTime(_)) => time >= kept.time,
                    };
                    if !replace {
                        continue;
                    }
                    kept.time = time;
                    if *kept.row == *row.as_ref() {
                        continue;
                    }
                    let old = std::mem::replace(&mut kept.row, row.as_ref().into());
                    kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
                    out.extend([old, row.as_ref().into()]);
                }
            }
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let columns = self.codec.decode(out.iter().map(|r| &r[..]))?;
        output_batch(OPERATOR, &self.spec.output_schema, columns, &kinds).map(Some)
    }

    fn snapshot(&self) -> Result<OperatorState, StreamOpError> {
        let mut by_key_group: BTreeMap<KeyGroup, Vec<&[u8]>> = BTreeMap::new();
        for kept in self.kept.values() {
            by_key_group
                .entry(kept.key_group)
                .or_default()
                .push(&kept.row);
        }
        let mut state = OperatorState::default();
        for (key_group, rows) in by_key_group {
            let columns = self.codec.decode(rows)?;
            let blob = write_rows(
                OPERATOR,
                key_group,
                self.codec.schema(),
                columns,
                Vec::new(),
            )?;
            state.keyed.insert(key_group, blob);
        }
        Ok(state)
    }

    fn restore(&mut self, state: &OperatorState) -> Result<(), StreamOpError> {
        for (&key_group, blob) in &state.keyed {
            if !self.owned.contains(key_group) {
                continue;
            }
            let (data, _) = read_rows(OPERATOR, key_group, self.codec.schema(), blob, 0)?;
            self.keys.encode(&data)?;
            let rows = self.codec.encode(&data)?;
            let times = match self.spec.order {
                DedupOrder::EventTime(column) => Some(time_values(OPERATOR, &data, column)?),
                DedupOrder::Arrival => None,
            };
            for i in 0..data.num_rows() {
                self.kept.insert(
                    self.keys.key(i).into(),
                    Kept {
                        key_group,
                        time: times.as_ref().map_or(0, |t| t[i]),
                        row: rows.row(i).as_ref().into(),
                    },
                );
            }
        }
        Ok(())
    }
}

impl Operator for DeduplicateOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = ctx.key_group_range();
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        match self.process(&batch)? {
            Some(changes) => out.collect(changes),
            None => Ok(()),
        }
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(self.snapshot()?)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.restore(state)?)
    }
}
