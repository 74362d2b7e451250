//! [`OverAggregateOperator`]: event-time OVER aggregation, Flink's `OverAggregate` node
//! (`agg(..) OVER (PARTITION BY .. ORDER BY ts ROWS|RANGE BETWEEN .. PRECEDING AND CURRENT ROW)`).
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{AsArray, Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Int64Type, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::over::{OverAggregateOperator, OverAggregateSpec, OverFrame};
//! use rivulet_runtime::relational::{AggregateCall, AggregateKind};
//! use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext};
//!
//! let input = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Int64, false),
//!     Field::new("ts", DataType::Int64, false),
//!     Field::new("amount", DataType::Int64, false),
//! ]));
//! // The sum of each user's last two amounts.
//! let sum = AggregateCall::new(AggregateKind::Sum, [2], Field::new("last_two", DataType::Int64, true));
//! let spec = OverAggregateSpec::new(Arc::clone(&input), [0], 1, OverFrame::Rows { preceding: Some(1) }, [sum]);
//! let mut over = OverAggregateOperator::new(spec)?;
//! over.open(&OperatorContext::new("over", 0, 1, 128)).unwrap();
//! let mut out = RecordingOutput::default();
//! let rows = RecordBatch::try_new(
//!     Arc::clone(&input),
//!     vec![
//!         Arc::new(Int64Array::from(vec![1, 1, 1])),
//!         Arc::new(Int64Array::from(vec![30, 10, 20])),
//!         Arc::new(Int64Array::from(vec![3, 1, 2])),
//!     ],
//! )?;
//! over.process_batch(ChangelogBatch::insert_only(rows), &mut out).unwrap();
//! assert!(out.batches.is_empty()); // rows wait for the watermark
//! over.process_watermark(30, &mut out).unwrap();
//! let sums = out.batches[0].data().column(3).as_primitive::<Int64Type>();
//! assert_eq!(sums.values(), &[1, 3, 5]); // in time order: 1, 1+2, 2+3
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{interleave, take};
use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::aggregate::{
    AccumulatorError, AccumulatorState, AggregateCall, AggregateError, AggregateKind,
    GroupsAccumulator, create_accumulator,
};
use super::join::rows::FixedHashMap;
use super::stream_op::{
    RowCodec, RowKeys, StreamOpError, arrow_err, check_input, check_insert_only, check_output,
    check_time_column, field_at, fields_of, key_group_of, read_rows, time_values, write_rows,
};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};

const OPERATOR: &str = "OverAggregate";

/// The rows an OVER aggregate sees for each row: from some point before it up to the current
/// row, in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN preceding PRECEDING AND CURRENT ROW`: the current row and the `preceding`
    /// rows before it (all of them when `None`, `UNBOUNDED PRECEDING`). Rows with equal times
    /// are ordered by arrival.
    Rows {
        /// How many earlier rows; `None` for all.
        preceding: Option<u64>,
    },
    /// `RANGE BETWEEN preceding_ms PRECEDING AND CURRENT ROW`: the rows whose time lies in
    /// `[ts - preceding_ms, ts]`, including every peer with the current row's time (all
    /// earlier rows when `None`).
    Range {
        /// How far back in milliseconds; `None` for all.
        preceding_ms: Option<i64>,
    },
}

/// What an [`OverAggregateOperator`] computes.
#[derive(Debug, Clone)]
pub struct OverAggregateSpec {
    /// Positions of the partition columns in the input (empty: one partition at parallelism 1).
    pub partition_columns: Vec<usize>,
    /// The event-time column rows are ordered by, ascending (`Timestamp(Millisecond)` or
    /// `Int64` ms).
    pub time_column: usize,
    /// The frame every aggregate shares.
    pub frame: OverFrame,
    /// The aggregates: `COUNT`, `COUNT(*)`, `SUM`, `AVG`, `MIN`, `MAX` (also `DISTINCT` and
    /// `FILTER`); user functions are rejected.
    pub aggregates: Vec<AggregateCall>,
    /// The schema of the input.
    pub input_schema: SchemaRef,
    /// The output schema: the input's columns, then one per aggregate.
    pub output_schema: SchemaRef,
}

impl OverAggregateSpec {
    /// The `aggregates` over `frame` per partition, ordered by `time_column`; the output schema
    /// is the input's columns followed by the aggregates' output fields.
    pub fn new(
        input_schema: SchemaRef,
        partition_columns: impl IntoIterator<Item = usize>,
        time_column: usize,
        frame: OverFrame,
        aggregates: impl IntoIterator<Item = AggregateCall>,
    ) -> Self {
        let aggregates: Vec<AggregateCall> = aggregates.into_iter().collect();
        let mut fields: Vec<Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(aggregates.iter().map(|a| a.output.clone()));
        OverAggregateSpec {
            partition_columns: partition_columns.into_iter().collect(),
            time_column,
            frame,
            aggregates,
            output_schema: Arc::new(Schema::new(fields)),
            input_schema,
        }
    }

    /// Sets the output schema (names and nullability as the planner decided them).
    pub fn with_output_schema(mut self, output_schema: SchemaRef) -> Self {
        self.output_schema = output_schema;
        self
    }
}

/// A row in Arrow row format with its partition key: `(key, row)`.
type KeyedRow = (Box<[u8]>, Box<[u8]>);

/// Where one partition stands while a watermark's rows are processed; indices into the
/// decoded batch of frame and ready rows.
struct Cursor {
    group: u32,
    /// The oldest row still accumulated.
    head: usize,
    /// The next row to process.
    next: usize,
    /// One past the partition's last row.
    end: usize,
}

/// One partition's aggregation state.
#[derive(Debug)]
struct Partition {
    key_group: KeyGroup,
    /// The accumulators' group index of this partition.
    group: u32,
    /// The rows in the accumulators that a bounded frame will retract, oldest first, with
    /// their times. Empty for unbounded frames.
    frame: VecDeque<(i64, Box<[u8]>)>,
    /// The time of the last row processed.
    last_time: Option<i64>,
}

/// A partition's part of a checkpoint, beside its frame rows.
#[derive(Serialize, Deserialize)]
struct PartitionState {
    /// The partition key in the runtime's canonical key encoding.
    key: Vec<u8>,
    last_time: Option<i64>,
    accumulators: Vec<AccumulatorState>,
}

/// One key group's part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    watermark: i64,
    /// The waiting rows with their arrival numbers, as Arrow IPC.
    pending: Vec<u8>,
    /// The frame rows of all partitions, oldest first per partition, with their times, as
    /// Arrow IPC.
    frames: Vec<u8>,
    partitions: Vec<PartitionState>,
}

/// Event-time OVER aggregation over an insert-only stream, as Flink's `OverAggregate`.
///
/// Rows wait until the watermark reaches their time; then each partition's rows are processed
/// in time order (equal times by arrival) and each row is emitted once, insert-only, with one
/// extra column per aggregate computed over its frame. A `RANGE` frame includes all rows with
/// the current row's time, so those peers get equal results. Rows at or behind the watermark
/// when they arrive are late: dropped and counted with
/// [`OperatorContext::count_late_records`].
///
/// The partition columns should be the columns the hash exchange in front of it keys by.
///
/// # State
///
/// - The waiting rows in Arrow row format, by (time, arrival number), with their partition
///   key; removed when the watermark processes them.
/// - Per partition (canonical key encoding): the aggregates' accumulators and, for bounded
///   frames, the rows in them that will be retracted as the frame slides (at most `preceding +
///   1` rows for `ROWS`, the rows of the last `preceding_ms` for `RANGE`). A `RANGE` frame's
///   partition is removed once the watermark passes its last row's time plus `preceding_ms`
///   (every future row's frame starts after it); other partitions stay until the maximum
///   watermark (the end of input) clears all state.
///
/// Checkpoints hold one blob per key group: waiting and frame rows as Arrow IPC, accumulators
/// with postcard, and the watermark.
pub struct OverAggregateOperator {
    spec: OverAggregateSpec,
    keys: RowKeys,
    codec: RowCodec,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Waiting rows: (time, arrival) -> (partition key, row).
    pending: BTreeMap<(i64, u64), KeyedRow>,
    partitions: FixedHashMap<Box<[u8]>, Partition>,
    free_groups: Vec<u32>,
    group_capacity: u32,
    watermark: i64,
    next_seq: u64,
    ctx: OperatorContext,
    max_parallelism: u16,
    owned: KeyGroupRange,
}

impl std::fmt::Debug for OverAggregateOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverAggregateOperator")
            .field("partition_columns", &self.spec.partition_columns)
            .field("frame", &self.spec.frame)
            .field("pending", &self.pending.len())
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl OverAggregateOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When a column does not exist or has an unsupported type, an aggregate is a user
    /// function or does not accept its arguments, or the output schema is not the input's
    /// columns followed by the aggregates.
    pub fn new(spec: OverAggregateSpec) -> Result<Self, StreamOpError> {
        let input = Arc::clone(&spec.input_schema);
        let keys = RowKeys::new(OPERATOR, "partition", &input, &spec.partition_columns)?;
        check_time_column(OPERATOR, "time", &input, spec.time_column)?;
        if let OverFrame::Range {
            preceding_ms: Some(ms),
        } = spec.frame
            && ms < 0
        {
            return Err(StreamOpError::InvalidSpec {
                operator: OPERATOR,
                reason: format!("a RANGE frame of {ms} ms PRECEDING is negative; give 0 or more"),
            });
        }
        let mut accumulators = Vec::new();
        for call in &spec.aggregates {
            let label = format!("{}(..) AS {}", call.kind, call.output.name());
            if matches!(call.kind, AggregateKind::User(_)) {
                return Err(StreamOpError::InvalidSpec {
                    operator: OPERATOR,
                    reason: format!(
                        "aggregate {label} is a user function; OVER windows take COUNT, SUM, AVG, MIN and MAX"
                    ),
                });
            }
            let mut arg_types = Vec::new();
            for &column in &call.args {
                arg_types.push(
                    field_at(OPERATOR, &label, &input, column)?
                        .data_type()
                        .clone(),
                );
            }
            if let Some(column) = call.filter {
                let filter = field_at(OPERATOR, &label, &input, column)?;
                if filter.data_type() != &arrow::datatypes::DataType::Boolean {
                    return Err(StreamOpError::Aggregate {
                        operator: OPERATOR,
                        source: AggregateError::FilterNotBoolean {
                            aggregate: label,
                            data_type: filter.data_type().clone(),
                        },
                    });
                }
            }
            accumulators.push(
                create_accumulator(call, &label, &arg_types).map_err(|source| {
                    StreamOpError::Aggregate {
                        operator: OPERATOR,
                        source,
                    }
                })?,
            );
        }
        let mut produced = fields_of(&input);
        produced.extend(
            spec.aggregates
                .iter()
                .map(|a| (a.output.name().clone(), a.output.data_type().clone())),
        );
        check_output(
            OPERATOR,
            &produced,
            &spec.output_schema,
            "list the input columns, then one column per aggregate",
        )?;
        Ok(OverAggregateOperator {
            codec: RowCodec::new(OPERATOR, &input)?,
            spec,
            keys,
            accumulators,
            pending: BTreeMap::new(),
            partitions: FixedHashMap::default(),
            free_groups: Vec::new(),
            group_capacity: 0,
            watermark: i64::MIN,
            next_seq: 0,
            ctx: OperatorContext::new(OPERATOR, 0, 1, DEFAULT_MAX_PARALLELISM),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The rows waiting for the watermark.
    pub fn pending_rows(&self) -> usize {
        self.pending.len()
    }

    /// The partitions with aggregation state.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Buffers the timely rows of a batch.
    fn buffer(&mut self, batch: &ChangelogBatch) -> Result<(), StreamOpError> {
        let data = batch.data();
        if data.num_rows() == 0 {
            return Ok(());
        }
        check_insert_only(OPERATOR, batch)?;
        check_input(
            OPERATOR,
            &self.spec.input_schema,
            data,
            0..self.spec.input_schema.fields().len(),
        )?;
        let times = time_values(OPERATOR, data, self.spec.time_column)?;
        self.keys.encode(data)?;
        let rows = self.codec.encode(data)?;
        let mut late = 0;
        for (i, &time) in times.iter().enumerate() {
            if time <= self.watermark {
                late += 1;
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.insert(
                (time, seq),
                (self.keys.key(i).into(), rows.row(i).as_ref().into()),
            );
        }
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        Ok(())
    }

    /// A fresh accumulator group.
    fn new_group(&mut self) -> u32 {
        if let Some(group) = self.free_groups.pop() {
            return group;
        }
        let group = self.group_capacity;
        self.group_capacity += 1;
        for accumulator in &mut self.accumulators {
            accumulator.resize(self.group_capacity as usize);
        }
        group
    }

    /// Folds the rows `indices` of `columns` into (sign 1) or out of (sign -1) their `groups`.
    fn update(
        &mut self,
        columns: &[ArrayRef],
        indices: &[u32],
        groups: &[u32],
        sign: i8,
    ) -> Result<(), StreamOpError> {
        if indices.is_empty() {
            return Ok(());
        }
        let take_indices = UInt32Array::from(indices.to_vec());
        let gather = |column: usize| {
            take(columns[column].as_ref(), &take_indices, None)
                .map_err(arrow_err(OPERATOR, "gathering aggregate arguments"))
        };
        for (call, accumulator) in self.spec.aggregates.iter().zip(&mut self.accumulators) {
            let args = call
                .args
                .iter()
                .map(|&c| gather(c))
                .collect::<Result<Vec<_>, _>>()?;
            let signs: Vec<i8> = match call.filter {
                None => vec![sign; indices.len()],
                Some(column) => {
                    let filter = gather(column)?;
                    let filter = filter.as_boolean();
                    (0..indices.len())
                        .map(|row| {
                            if filter.is_valid(row) && filter.value(row) {
                                sign
                            } else {
                                0
                            }
                        })
                        .collect()
                }
            };
            accumulator
                .update(&args, groups, &signs)
                .map_err(|e| StreamOpError::Aggregate {
                    operator: OPERATOR,
                    source: match e {
                        AccumulatorError::Failed(error) => error,
                        AccumulatorError::UnknownValue { .. } => AggregateError::State {
                            key_group: 0,
                            reason: "a frame row retracted a value never accumulated".to_owned(),
                        },
                    },
                })?;
        }
        Ok(())
    }

    /// Processes the waiting rows up to `watermark` and returns the output rows.
    ///
    /// Batch-at-a-time: the frame rows and ready rows of every touched partition are decoded
    /// into one batch, then processed in rounds; each round takes the next row (or, for
    /// `RANGE`, the next run of peers) of every partition that has one, so a round costs one
    /// accumulate, one retract and one evaluate call for all those partitions together.
    fn advance(&mut self, watermark: i64) -> Result<Option<ChangelogBatch>, StreamOpError> {
        if watermark <= self.watermark {
            return Ok(None);
        }
        self.watermark = watermark;
        let rest = match watermark.checked_add(1) {
            Some(next) => self.pending.split_off(&(next, 0)),
            None => BTreeMap::new(),
        };
        let ready = std::mem::replace(&mut self.pending, rest);
        let output = if ready.is_empty() {
            None
        } else {
            Some(self.process_ready(ready)?)
        };
        self.expire(watermark);
        Ok(output)
    }

    /// Runs ready rows, in (time, arrival) order, through their partitions' frames.
    fn process_ready(
        &mut self,
        ready: BTreeMap<(i64, u64), KeyedRow>,
    ) -> Result<ChangelogBatch, StreamOpError> {
        // Per partition, its ready rows in order.
        let mut order: Vec<Box<[u8]>> = Vec::new();
        let mut by_partition: FixedHashMap<Box<[u8]>, Vec<Box<[u8]>>> = FixedHashMap::default();
        for (_, (key, row)) in ready {
            match by_partition.get_mut(&key) {
                Some(rows) => rows.push(row),
                None => {
                    order.push(key.clone());
                    by_partition.insert(key, vec![row]);
                }
            }
        }
        // One batch: per partition its frame rows, then its ready rows.
        let mut cursors: Vec<Cursor> = Vec::with_capacity(order.len());
        let mut all_rows: Vec<Box<[u8]>> = Vec::new();
        for key in &order {
            if !self.partitions.contains_key(key) {
                let group = self.new_group();
                let key_group = key_group_of(key, self.max_parallelism);
                self.partitions.insert(
                    key.clone(),
                    Partition {
                        key_group,
                        group,
                        frame: VecDeque::new(),
                        last_time: None,
                    },
                );
            }
            let Some(partition) = self.partitions.get_mut(key) else {
                continue;
            };
            let start = all_rows.len();
            all_rows.extend(partition.frame.drain(..).map(|(_, row)| row));
            let next = all_rows.len();
            all_rows.extend(by_partition.remove(key).unwrap_or_default());
            cursors.push(Cursor {
                group: partition.group,
                head: start,
                next,
                end: all_rows.len(),
            });
        }
        let columns = self.codec.decode(all_rows.iter().map(|r| &r[..]))?;
        let data = RecordBatch::try_new(Arc::clone(self.codec.schema()), columns)
            .map_err(arrow_err(OPERATOR, "decoding frame rows"))?;
        let times = time_values(OPERATOR, &data, self.spec.time_column)?;
        let columns = data.columns().to_vec();

        let range = matches!(self.spec.frame, OverFrame::Range { .. });
        let mut emitted: Vec<u32> = Vec::new();
        let mut rounds: Vec<Vec<ArrayRef>> = vec![Vec::new(); self.accumulators.len()];
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let (mut add, mut add_groups) = (Vec::new(), Vec::new());
        let (mut retract, mut retract_groups) = (Vec::new(), Vec::new());
        let mut active: Vec<usize> = (0..cursors.len()).collect();
        while !active.is_empty() {
            add.clear();
            add_groups.clear();
            retract.clear();
            retract_groups.clear();
            let mut runs = Vec::with_capacity(active.len());
            for &c in &active {
                let cursor = &mut cursors[c];
                let first = cursor.next;
                let mut end = first + 1;
                if range {
                    while end < cursor.end && times[end] == times[first] {
                        end += 1;
                    }
                }
                add.extend(first as u32..end as u32);
                add_groups.extend(std::iter::repeat_n(cursor.group, end - first));
                let retract_to = match self.spec.frame {
                    OverFrame::Rows { preceding: Some(p) } => {
                        let keep = usize::try_from(p).unwrap_or(usize::MAX).saturating_add(1);
                        end.saturating_sub(keep).max(cursor.head)
                    }
                    OverFrame::Range {
                        preceding_ms: Some(ms),
                    } => {
                        let from = times[first].saturating_sub(ms);
                        let mut to = cursor.head;
                        while to < end && times[to] < from {
                            to += 1;
                        }
                        to
                    }
                    _ => cursor.head,
                };
                retract.extend(cursor.head as u32..retract_to as u32);
                retract_groups.extend(std::iter::repeat_n(cursor.group, retract_to - cursor.head));
                cursor.head = retract_to;
                cursor.next = end;
                runs.push((first, end));
            }
            self.update(&columns, &add, &add_groups, 1)?;
            self.update(&columns, &retract, &retract_groups, -1)?;
            let groups: Vec<u32> = active.iter().map(|&c| cursors[c].group).collect();
            let round = rounds.first().map_or(0, Vec::len);
            for (a, accumulator) in self.accumulators.iter().enumerate() {
                let values =
                    accumulator
                        .evaluate(&groups)
                        .map_err(|source| StreamOpError::Aggregate {
                            operator: OPERATOR,
                            source,
                        })?;
                rounds[a].push(values);
            }
            for (position, &(first, end)) in runs.iter().enumerate() {
                for row in first..end {
                    emitted.push(row as u32);
                    picks.push((round, position));
                }
            }
            active.retain(|&c| cursors[c].next < cursors[c].end);
        }

        // The output: the emitted input rows and, per aggregate, the value of their round.
        let emitted = UInt32Array::from(emitted);
        let mut output = Vec::with_capacity(self.spec.output_schema.fields().len());
        for column in &columns {
            output.push(
                take(column.as_ref(), &emitted, None)
                    .map_err(arrow_err(OPERATOR, "gathering output rows"))?,
            );
        }
        for parts in &rounds {
            let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            output.push(
                interleave(&parts, &picks)
                    .map_err(arrow_err(OPERATOR, "assembling aggregate results"))?,
            );
        }
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            output,
            &RecordBatchOptions::new().with_row_count(Some(picks.len())),
        )
        .map_err(arrow_err(OPERATOR, "assembling an output batch"))?;

        // Keep what bounded frames will retract; note each partition's last time.
        let bounded = match self.spec.frame {
            OverFrame::Rows { preceding } => preceding.is_some(),
            OverFrame::Range { preceding_ms } => preceding_ms.is_some(),
        };
        let mut all_rows: Vec<Option<Box<[u8]>>> = all_rows.into_iter().map(Some).collect();
        for (key, cursor) in order.iter().zip(&cursors) {
            let Some(partition) = self.partitions.get_mut(key) else {
                continue;
            };
            partition.last_time = Some(times[cursor.end - 1]);
            if bounded {
                partition.frame = (cursor.head..cursor.end)
                    .filter_map(|i| all_rows[i].take().map(|row| (times[i], row)))
                    .collect();
            }
        }
        Ok(ChangelogBatch::insert_only(data))
    }

    /// Drops the state no future row can use.
    fn expire(&mut self, watermark: i64) {
        let mut gone = Vec::new();
        for (key, partition) in &self.partitions {
            let expired = watermark == i64::MAX
                || match (self.spec.frame, partition.last_time) {
                    (
                        OverFrame::Range {
                            preceding_ms: Some(ms),
                        },
                        Some(last),
                    ) => last.saturating_add(ms) <= watermark,
                    _ => false,
                };
            if expired {
                gone.push(key.clone());
            }
        }
        for key in gone {
            if let Some(partition) = self.partitions.remove(&key) {
                for accumulator in &mut self.accumulators {
                    accumulator.reset(partition.group);
                }
                self.free_groups.push(partition.group);
            }
        }
    }

    fn snapshot(&self) -> Result<OperatorState, StreamOpError> {
        #[derive(Default)]
        struct Parts<'a> {
            pending: Vec<&'a [u8]>,
            seqs: Vec<i64>,
            frames: Vec<&'a [u8]>,
            partitions: Vec<PartitionState>,
        }
        let mut by_key_group: BTreeMap<KeyGroup, Parts<'_>> = BTreeMap::new();
        for (&(_, seq), (key, row)) in &self.pending {
            let parts = by_key_group
                .entry(key_group_of(key, self.max_parallelism))
                .or_default();
            parts.pending.push(row);
            parts.seqs.push(seq as i64);
        }
        for (key, partition) in &self.partitions {
            let fail = |reason: String| StreamOpError::State {
                operator: OPERATOR,
                key_group: partition.key_group,
                reason,
            };
            let parts = by_key_group.entry(partition.key_group).or_default();
            parts
                .frames
                .extend(partition.frame.iter().map(|(_, r)| &r[..]));
            parts.partitions.push(PartitionState {
                key: key.to_vec(),
                last_time: partition.last_time,
                accumulators: self
                    .accumulators
                    .iter()
                    .map(|a| a.save(partition.group))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?,
            });
        }
        let mut state = OperatorState::default();
        for (key_group, parts) in by_key_group {
            let schema = self.codec.schema();
            let pending = write_rows(
                OPERATOR,
                key_group,
                schema,
                self.codec.decode(parts.pending)?,
                vec![("__arrival", parts.seqs)],
            )?;
            let frames = write_rows(
                OPERATOR,
                key_group,
                schema,
                self.codec.decode(parts.frames)?,
                Vec::new(),
            )?;
            let blob = postcard::to_allocvec(&KeyGroupState {
                watermark: self.watermark,
                pending,
                frames,
                partitions: parts.partitions,
            })
            .map_err(|e| StreamOpError::State {
                operator: OPERATOR,
                key_group,
                reason: e.to_string(),
            })?;
            state.keyed.insert(key_group, blob);
        }
        state.operator =
            postcard::to_allocvec(&self.watermark).map_err(|e| StreamOpError::State {
                operator: OPERATOR,
                key_group: 0,
                reason: e.to_string(),
            })?;
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
            let fail = |reason: String| StreamOpError::State {
                operator: OPERATOR,
                key_group,
                reason,
            };
            let saved: KeyGroupState =
                postcard::from_bytes(blob).map_err(|e| fail(e.to_string()))?;
            self.watermark = self.watermark.max(saved.watermark);
            let schema = Arc::clone(self.codec.schema());
            let (pending, seqs) = read_rows(OPERATOR, key_group, &schema, &saved.pending, 1)?;
            let times = time_values(OPERATOR, &pending, self.spec.time_column)?;
            self.keys.encode(&pending)?;
            let rows = self.codec.encode(&pending)?;
            for (i, &seq) in seqs[0].iter().enumerate() {
                self.pending.insert(
                    (times[i], seq as u64),
                    (self.keys.key(i).into(), rows.row(i).as_ref().into()),
                );
                self.next_seq = self.next_seq.max(seq as u64 + 1);
            }
            for partition in saved.partitions {
                if partition.accumulators.len() != self.accumulators.len() {
                    return Err(fail(format!(
                        "{} accumulators saved, {} expected",
                        partition.accumulators.len(),
                        self.accumulators.len()
                    )));
                }
                let group = self.new_group();
                for (accumulator, saved) in self.accumulators.iter_mut().zip(partition.accumulators)
                {
                    accumulator.load(group, saved).map_err(fail)?;
                }
                self.partitions.insert(
                    partition.key.into(),
                    Partition {
                        key_group,
                        group,
                        frame: VecDeque::new(),
                        last_time: partition.last_time,
                    },
                );
            }
            let (frames, _) = read_rows(OPERATOR, key_group, &schema, &saved.frames, 0)?;
            let times = time_values(OPERATOR, &frames, self.spec.time_column)?;
            self.keys.encode(&frames)?;
            let rows = self.codec.encode(&frames)?;
            for i in 0..frames.num_rows() {
                let partition = self
                    .partitions
                    .get_mut(self.keys.key(i))
                    .ok_or_else(|| fail("a frame row without its partition".to_owned()))?;
                partition
                    .frame
                    .push_back((times[i], rows.row(i).as_ref().into()));
            }
        }
        Ok(())
    }
}

impl Operator for OverAggregateOperator {
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
        _out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        Ok(self.buffer(&batch)?)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if let Some(batch) = self.advance(watermark)? {
            out.collect(batch)?;
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
