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
use serde::{Deserialize, Serialize};

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
    /// Keep-first by event time only: hold each key's candidate until the watermark passes its
    /// time and emit it then, once, so the output is insert-only (Flink's
    /// `outputInsertOnly=[true]`); rows at or behind the watermark are late and dropped.
    /// Default: false (emit at once, with updates).
    pub insert_only_on_watermark: bool,
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
            insert_only_on_watermark: false,
            output_schema: Arc::clone(&input_schema),
            input_schema,
        }
    }

    /// Sets the output schema (names and nullability as the planner decided them).
    pub fn with_output_schema(mut self, output_schema: SchemaRef) -> Self {
        self.output_schema = output_schema;
        self
    }

    /// Keep-first by event time: emit each key's row once the watermark passes it, insert-only.
    /// Default: false.
    pub fn with_insert_only_on_watermark(mut self, on_watermark: bool) -> Self {
        self.insert_only_on_watermark = on_watermark;
        self
    }
}

/// The row kept for a key.
#[derive(Debug)]
struct Kept {
    key_group: KeyGroup,
    time: i64,
    /// Arrival number: orders the candidates waiting for the watermark.
    seq: u64,
    /// Whether the row was emitted (always, unless it waits for the watermark).
    emitted: bool,
    row: Box<[u8]>,
}

/// One key group's part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    watermark: i64,
    /// The kept rows with their arrival numbers and emitted flags, as Arrow IPC.
    rows: Vec<u8>,
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
/// per key, the row chosen from the input so far. Emitting at once, event-time deduplication
/// produces updates (Flink's rowtime deduplication) and drops no rows as late.
///
/// With [`DeduplicateSpec::insert_only_on_watermark`] (keep first by event time only), a key's
/// earliest row waits until the watermark reaches its time and is then emitted once as `+I`:
/// no later row that is not late can be earlier. Rows at or behind the watermark are dropped
/// and counted with [`OperatorContext::count_late_records`]. Null key values group together.
///
/// # State
///
/// Per key (its canonical encoding): the kept row in Arrow row format, its time, arrival number
/// and whether it was emitted; with `insert_only_on_watermark` also an index of the rows
/// waiting for the watermark by (time, arrival). Keys are never removed (as in Flink without
/// state TTL). Checkpoints hold one blob per key group: the kept rows as Arrow IPC and the
/// watermark.
pub struct DeduplicateOperator {
    spec: DeduplicateSpec,
    keys: RowKeys,
    codec: RowCodec,
    kept: FixedHashMap<Box<[u8]>, Kept>,
    /// Candidates waiting for the watermark: (time, arrival) -> key.
    waiting: BTreeMap<(i64, u64), Box<[u8]>>,
    watermark: i64,
    next_seq: u64,
    ctx: OperatorContext,
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
    /// millisecond timestamp or `BIGINT`, the output schema is not the input's, or
    /// `insert_only_on_watermark` is asked for anything but keep-first by event time.
    pub fn new(spec: DeduplicateSpec) -> Result<Self, StreamOpError> {
        let keys = RowKeys::new(OPERATOR, "key", &spec.input_schema, &spec.key_columns)?;
        if let DedupOrder::EventTime(column) = spec.order {
            check_time_column(OPERATOR, "time", &spec.input_schema, column)?;
        }
        if spec.insert_only_on_watermark
            && !(spec.keep == Keep::First && matches!(spec.order, DedupOrder::EventTime(_)))
        {
            return Err(StreamOpError::InvalidSpec {
                operator: OPERATOR,
                reason: format!(
                    "insert-only output on the watermark needs keep-first by event time, not {:?} by {:?}; the last row of a key is never final",
                    spec.keep, spec.order
                ),
            });
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
            waiting: BTreeMap::new(),
            watermark: i64::MIN,
            next_seq: 0,
            ctx: OperatorContext::new(OPERATOR, 0, 1, DEFAULT_MAX_PARALLELISM),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The number of keys in state.
    pub fn key_count(&self) -> usize {
        self.kept.len()
    }

    /// The number of rows waiting for the watermark.
    pub fn waiting_rows(&self) -> usize {
        self.waiting.len()
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
        let on_watermark = self.spec.insert_only_on_watermark;
        let mut late = 0;
        let mut kinds = Vec::new();
        let mut out: Vec<Box<[u8]>> = Vec::new();
        for i in 0..data.num_rows() {
            let key = self.keys.key(i);
            let row = rows.row(i);
            let time = times.as_ref().map_or(0, |t| t[i]);
            if on_watermark && time <= self.watermark {
                late += 1;
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            match self.kept.get_mut(key) {
                None => {
                    let key_group = key_group_of(key, self.max_parallelism);
                    self.kept.insert(
                        key.into(),
                        Kept {
                            key_group,
                            time,
                            seq,
                            emitted: !on_watermark,
                            row: row.as_ref().into(),
                        },
                    );
                    if on_watermark {
                        self.waiting.insert((time, seq), key.into());
                    } else {
                        kinds.push(RowKind::Insert);
                        out.push(row.as_ref().into());
                    }
                }
                Some(kept) => {
                    let replace = match (self.spec.keep, self.spec.order) {
                        (Keep::First, DedupOrder::Arrival) => false,
                        (Keep::Last, DedupOrder::Arrival) => true,
                        (Keep::First, DedupOrder::EventTime(_)) => time < kept.time,
                        (Keep::Last, DedupOrder::EventTime(_)) => time >= kept.time,
                    };
                    if !replace || kept.emitted && on_watermark {
                        continue;
                    }
                    if on_watermark {
                        self.waiting.remove(&(kept.time, kept.seq));
                        self.waiting.insert((time, seq), key.into());
                    }
                    kept.time = time;
                    kept.seq = seq;
                    if *kept.row == *row.as_ref() {
                        continue;
                    }
                    let old = std::mem::replace(&mut kept.row, row.as_ref().into());
                    if !on_watermark {
                        kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
                        out.extend([old, row.as_ref().into()]);
                    }
                }
            }
        }
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        self.output(&kinds, &out)
    }

    fn output(
        &self,
        kinds: &[RowKind],
        rows: &[Box<[u8]>],
    ) -> Result<Option<ChangelogBatch>, StreamOpError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let columns = self.codec.decode(rows.iter().map(|r| &r[..]))?;
        output_batch(OPERATOR, &self.spec.output_schema, columns, kinds).map(Some)
    }

    /// Emits the waiting rows the watermark has passed.
    fn advance(&mut self, watermark: i64) -> Result<Option<ChangelogBatch>, StreamOpError> {
        if watermark <= self.watermark {
            return Ok(None);
        }
        self.watermark = watermark;
        let mut out: Vec<Box<[u8]>> = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > watermark {
                break;
            }
            let key = entry.remove();
            if let Some(kept) = self.kept.get_mut(&key) {
                kept.emitted = true;
                out.push(kept.row.clone());
            }
        }
        let kinds = vec![RowKind::Insert; out.len()];
        self.output(&kinds, &out)
    }

    fn snapshot(&self) -> Result<OperatorState, StreamOpError> {
        type Rows<'a> = (Vec<&'a [u8]>, Vec<i64>, Vec<i64>);
        let mut by_key_group: BTreeMap<KeyGroup, Rows<'_>> = BTreeMap::new();
        for kept in self.kept.values() {
            let entry = by_key_group.entry(kept.key_group).or_default();
            entry.0.push(&kept.row);
            entry.1.push(kept.seq as i64);
            entry.2.push(i64::from(kept.emitted));
        }
        let fail = |key_group: KeyGroup| {
            move |e: postcard::Error| StreamOpError::State {
                operator: OPERATOR,
                key_group,
                reason: e.to_string(),
            }
        };
        let mut state = OperatorState {
            operator: postcard::to_allocvec(&self.watermark).map_err(fail(0))?,
            ..OperatorState::default()
        };
        for (key_group, (rows, seqs, emitted)) in by_key_group {
            let columns = self.codec.decode(rows)?;
            let rows = write_rows(
                OPERATOR,
                key_group,
                self.codec.schema(),
                columns,
                vec![("__arrival", seqs), ("__emitted", emitted)],
            )?;
            let blob = postcard::to_allocvec(&KeyGroupState {
                watermark: self.watermark,
                rows,
            })
            .map_err(fail(key_group))?;
            state.keyed.insert(key_group, blob);
        }
        Ok(state)
    }

    fn restore(&mut self, state: &OperatorState) -> Result<(), StreamOpError> {
        if let Ok(watermark) = postcard::from_bytes::<i64>(&state.operator) {
            self.watermark = self.watermark.max(watermark);
        }
        for (&key_group, blob) in &state.keyed {
            if !self.owned.contains(key_group) {
                continue;
            }
            let saved: KeyGroupState =
                postcard::from_bytes(blob).map_err(|e| StreamOpError::State {
                    operator: OPERATOR,
                    key_group,
                    reason: e.to_string(),
                })?;
            self.watermark = self.watermark.max(saved.watermark);
            let (data, extras) =
                read_rows(OPERATOR, key_group, self.codec.schema(), &saved.rows, 2)?;
            self.keys.encode(&data)?;
            let rows = self.codec.encode(&data)?;
            let times = match self.spec.order {
                DedupOrder::EventTime(column) => Some(time_values(OPERATOR, &data, column)?),
                DedupOrder::Arrival => None,
            };
            for i in 0..data.num_rows() {
                let key = self.keys.key(i);
                let (seq, emitted) = (extras[0][i] as u64, extras[1][i] != 0);
                let time = times.as_ref().map_or(0, |t| t[i]);
                if !emitted {
                    self.waiting.insert((time, seq), key.into());
                }
                self.next_seq = self.next_seq.max(seq + 1);
                self.kept.insert(
                    key.into(),
                    Kept {
                        key_group,
                        time,
                        seq,
                        emitted,
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
        self.ctx = ctx.clone();
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

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if let Some(rows) = self.advance(watermark)? {
            out.collect(rows)?;
        }
        out.emit_watermark(watermark)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(self.snapshot()?)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.restore(state)?)
    }
}
