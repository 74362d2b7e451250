//! [`WindowAggregateOperator`]: aggregation per key and window over a window TVF.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, RecordBatch, RecordBatchOptions,
    UInt32Array, new_empty_array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};

use super::slots::WindowSlots;
use super::{
    WindowError, WindowTvf, check_columns, check_insert_only, check_time_column, time_values,
};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::keys::{
    DEFAULT_MAX_PARALLELISM, EncodedKeys, KeyGroup, KeyGroupRange, encode_arrow_keys,
    hash_key_bytes,
};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};
use crate::relational::aggregate::accumulator::{
    AccumulatorError, AccumulatorState, GroupsAccumulator, create_accumulator,
};
use crate::relational::aggregate::operator::{KeyValues, label};
use crate::relational::aggregate::{AggregateCall, AggregateError};

/// At most this many rows per output batch.
const OUTPUT_BATCH_ROWS: usize = 8192;

const OPERATOR: &str = "a window aggregate";

/// What a [`WindowAggregateOperator`] computes.
#[derive(Debug, Clone)]
pub struct WindowAggregateSpec {
    /// Position of the event-time column (`Timestamp(Millisecond, _)` or `Int64` ms).
    pub time_column: usize,
    /// The windows rows are aggregated in.
    pub window: WindowTvf,
    /// Positions of the group-key columns, besides the window. Empty to aggregate all rows of a
    /// window together.
    pub group_columns: Vec<usize>,
    /// The aggregates, in output order.
    pub aggregates: Vec<AggregateCall>,
    /// The schema of the input batches.
    pub input_schema: SchemaRef,
    /// The output: the group columns, then `window_start`, `window_end` and `window_time` (all
    /// `Timestamp(Millisecond, _)`), then one column per aggregate.
    pub output_schema: SchemaRef,
}

/// Flink's window aggregation (`GROUP BY window_start, window_end, keys` over a window TVF):
/// one final, insert-only row per key and window, emitted when the watermark passes the
/// window's end.
///
/// Output rows hold the group columns, `window_start`, `window_end`, `window_time` (`end - 1`)
/// and the aggregates. Built-in aggregates are the vectorised ones of
/// [`GroupAggregateOperator`](crate::relational::GroupAggregateOperator): per batch, each row
/// is mapped to the slot of each of its (key, window) pairs, then every aggregate folds the
/// batch in one typed loop. A `HOP` row feeds `size / slide` slots, a `CUMULATE` row every
/// growing window that contains it.
///
/// Session windows merge per key: a row opens `[t, t + gap)`, and every session of its key it
/// overlaps or touches merges with it into one, accumulators included. `DISTINCT` aggregates
/// cannot merge and are refused for sessions.
///
/// A row is late when the first of its windows to fire already fired (for sessions: when its
/// own window `[t, t + gap)` already ended and it merges with no open session): it is dropped
/// and counted. Updates are refused. The group columns should be the hash exchange's key, in
/// the same order; without group columns, run it at parallelism 1.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{AsArray, Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
/// use rivulet_runtime::operator::testing::RecordingOutput;
/// use rivulet_runtime::relational::{
///     AggregateCall, AggregateKind, WindowAggregateOperator, WindowAggregateSpec, WindowTvf,
/// };
/// use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext};
///
/// // Clicks per user and 10 ms tumbling window.
/// let input = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::Int64, false),
///     Field::new("ts", DataType::Int64, false),
/// ]));
/// let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
/// let clicks = Field::new("clicks", DataType::Int64, false);
/// let spec = WindowAggregateSpec {
///     time_column: 1,
///     window: WindowTvf::tumble(10)?,
///     group_columns: vec![0],
///     aggregates: vec![AggregateCall::new(AggregateKind::CountStar, [], clicks.clone())],
///     input_schema: Arc::clone(&input),
///     output_schema: Arc::new(Schema::new(vec![
///         Field::new("user", DataType::Int64, false),
///         Field::new("window_start", ts.clone(), false),
///         Field::new("window_end", ts.clone(), false),
///         Field::new("window_time", ts, false),
///         clicks,
///     ])),
/// };
/// let mut op = WindowAggregateOperator::new(spec)?;
/// op.open(&OperatorContext::new("clicks", 0, 1, 128)).unwrap();
/// let mut out = RecordingOutput::default();
/// let batch = RecordBatch::try_new(
///     input,
///     vec![Arc::new(Int64Array::from(vec![7, 7, 7])), Arc::new(Int64Array::from(vec![1, 4, 12]))],
/// )?;
/// op.process_batch(ChangelogBatch::insert_only(batch), &mut out).unwrap();
/// op.process_watermark(9, &mut out).unwrap(); // [0, 10) fires
/// let fired = out.batches[0].data();
/// assert_eq!(fired.column(4).as_primitive::<Int64Type>().value(0), 2);
/// assert_eq!(op.window_count(), 1); // [10, 20) is still open
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// # State
///
/// Per (key, window): each aggregate's accumulator, in columnar per-slot vectors, and the
/// key's values in Arrow's row format. An index of the live windows ordered by end says which
/// fire at a watermark; a window's state is removed when it fires, and a key's with its last
/// window. Checkpoints write one blob per key group (the keys as an Arrow IPC stream, the
/// windows and accumulators with postcard), so they restore at another parallelism; the
/// current watermark is kept as operator state so restored subtasks keep dropping late rows.
pub struct WindowAggregateOperator {
    spec: WindowAggregateSpec,
    labels: Vec<String>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    slots: WindowSlots,
    /// How key values are stored and rebuilt; `None` without group columns.
    keys: Option<KeyValues>,
    /// The time zone of the window columns of the output.
    time_zone: Option<Arc<str>>,
    /// For the global half of a two-phase aggregation: the schema of the partial rows it reads.
    partials: Option<SchemaRef>,
    watermark: i64,
    ctx: OperatorContext,
    max_parallelism: u16,
    owned: KeyGroupRange,
    scratch: Scratch,
}

/// Buffers reused from batch to batch.
#[derive(Default)]
struct Scratch {
    encoded: EncodedKeys,
    /// Per input row: its key id.
    key_ids: Vec<u32>,
    /// Keys the current batch created.
    new_keys: Vec<u32>,
    /// Per (row, window) pair to accumulate: the input row and the slot.
    rows: Vec<u32>,
    slots: Vec<u32>,
    windows: Vec<(i64, i64)>,
    signs: Vec<i8>,
    /// Sessions merged into another during this batch: merged slot -> slot it went into.
    forwarded: hashbrown::HashMap<u32, u32>,
}

/// One key group's part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    /// The key values as an Arrow IPC stream, one row per key; empty without group columns.
    keys: Vec<u8>,
    windows: Vec<WindowState>,
}

#[derive(Serialize, Deserialize)]
struct WindowState {
    /// The key's row in `keys`.
    key: u32,
    start: i64,
    end: i64,
    accumulators: Vec<AccumulatorState>,
}

impl std::fmt::Debug for WindowAggregateOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowAggregateOperator")
            .field("window", &self.spec.window)
            .field("group_columns", &self.spec.group_columns)
            .field("aggregates", &self.labels)
            .field("windows", &self.slots.len())
            .finish()
    }
}

impl WindowAggregateOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When the window's durations are invalid, a column position is out of range, the time
    /// column is not a millisecond timestamp or `Int64`, a group column cannot be a key, an
    /// aggregate does not accept its arguments (or is `DISTINCT` over sessions), or the output
    /// schema differs from what the aggregation produces.
    pub fn new(spec: WindowAggregateSpec) -> Result<Self, WindowError> {
        spec.window.validate()?;
        let input = Arc::clone(&spec.input_schema);
        check_time_column(&input, "time", spec.time_column)?;
        let field = |role: &dyn Fn() -> String, column: usize| {
            super::column_field(&input, &role(), column).map(|f| Arc::new(f.clone()))
        };
        let mut key_fields = Vec::new();
        for &column in &spec.group_columns {
            key_fields.push(field(&|| "group".to_owned(), column)?);
        }
        let keys = if key_fields.is_empty() {
            None
        } else {
            Some(KeyValues::new(&key_fields)?)
        };
        let mut labels = Vec::new();
        let mut accumulators = Vec::new();
        for call in &spec.aggregates {
            let label = label(call, &input);
            if call.distinct && spec.window.is_merging() {
                return Err(WindowError::DistinctSession { aggregate: label });
            }
            let mut arg_types = Vec::new();
            for &column in &call.args {
                arg_types.push(
                    field(&|| format!("argument of {label}"), column)?
                        .data_type()
                        .clone(),
                );
            }
            if let Some(column) = call.filter {
                let filter = field(&|| format!("filter of {label}"), column)?;
                if filter.data_type() != &DataType::Boolean {
                    return Err(AggregateError::FilterNotBoolean {
                        aggregate: label,
                        data_type: filter.data_type().clone(),
                    }
                    .into());
                }
            }
            accumulators.push(create_accumulator(call, &label, &arg_types)?);
            labels.push(label);
        }

        // Group columns, three window columns (any time zone), aggregates.
        let declared = spec.output_schema.fields();
        let mut produced: Vec<(String, Option<DataType>)> = key_fields
            .iter()
            .map(|f| (f.name().clone(), Some(f.data_type().clone())))
            .collect();
        produced
            .extend(["window_start", "window_end", "window_time"].map(|n| (n.to_owned(), None)));
        produced.extend(
            spec.aggregates
                .iter()
                .map(|c| (c.output.name().clone(), Some(c.output.data_type().clone()))),
        );
        for position in 0..produced.len().max(declared.len()) {
            let expected = produced.get(position);
            let found = declared.get(position).map(|f| f.data_type());
            let fits = match (expected, found) {
                (Some((_, Some(t))), Some(found)) => t == found,
                (Some((_, None)), Some(found)) => {
                    matches!(found, DataType::Timestamp(TimeUnit::Millisecond, _))
                }
                _ => false,
            };
            if !fits {
                return Err(WindowError::OutputSchema {
                    operator: OPERATOR,
                    position,
                    expected: expected.map_or("nothing".to_owned(), |(n, t)| match t {
                        Some(t) => format!("{n}: {t}"),
                        None => format!("{n}: Timestamp(Millisecond, _)"),
                    }),
                    found: declared.get(position).map_or("nothing".to_owned(), |f| {
                        format!("{}: {}", f.name(), f.data_type())
                    }),
                    hint: "list the group columns, window_start, window_end, window_time, then the aggregates",
                });
            }
        }
        let time_zone = match declared[key_fields.len()].data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        Ok(WindowAggregateOperator {
            spec,
            labels,
            accumulators,
            slots: WindowSlots::default(),
            keys,
            time_zone,
            partials: None,
            watermark: i64::MIN,
            ctx: OperatorContext::new("window aggregate", 0, 1, DEFAULT_MAX_PARALLELISM),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
            scratch: Scratch::default(),
        })
    }

    /// The number of (key, window) pairs in state.
    pub fn window_count(&self) -> usize {
        self.slots.len()
    }

    /// The number of distinct keys in state.
    pub fn key_count(&self) -> usize {
        self.slots.keys.len()
    }

    /// Accumulates one input batch.
    fn process(&mut self, batch: &ChangelogBatch) -> Result<(), WindowError> {
        check_insert_only(batch, OPERATOR)?;
        let data = batch.data();
        if data.num_rows() == 0 {
            return Ok(());
        }
        if self.partials.is_some() {
            return self.merge_partials(data);
        }
        self.check_input(data)?;
        let times = time_values(data, "time", self.spec.time_column)?;
        let group_columns = self.spec.group_columns.clone();
        self.assign_keys(data, &group_columns)?;
        self.scratch.rows.clear();
        self.scratch.slots.clear();
        self.scratch.forwarded.clear();
        let late = if self.spec.window.is_merging() {
            self.assign_sessions(&times)?
        } else {
            self.assign_windows(&times)
        };
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        for k in 0..self.scratch.new_keys.len() {
            self.slots.remove_key_if_unused(self.scratch.new_keys[k]);
        }
        self.ensure_capacity();
        let result = self.accumulate(data);
        self.slots.release();
        result
    }

    /// The global half of a two-phase aggregation of `spec`: it reads the partial rows of a
    /// [`LocalWindowAggregateOperator`] built from the same spec, merges them per key and
    /// window, and emits what [`WindowAggregateOperator::new`] would over the raw rows.
    ///
    /// # Errors
    ///
    /// As [`LocalWindowAggregateOperator::new`].
    pub fn global(spec: WindowAggregateSpec) -> Result<Self, WindowError> {
        let local = LocalWindowAggregateOperator::new(spec.clone())?;
        let mut global = WindowAggregateOperator::new(spec)?;
        global.partials = Some(Arc::clone(local.partial_schema()));
        Ok(global)
    }

    /// Merges partial rows: group columns, window start and end, one accumulator state each.
    fn merge_partials(&mut self, data: &RecordBatch) -> Result<(), WindowError> {
        let Some(schema) = self.partials.clone() else {
            return Ok(());
        };
        check_columns(data, &schema, OPERATOR)?;
        let groups = self.spec.group_columns.len();
        let group_columns: Vec<usize> = (0..groups).collect();
        self.assign_keys(data, &group_columns)?;
        let starts = time_values(data, "window start", groups)?;
        let ends = time_values(data, "window end", groups + 1)?;
        let states: Vec<&BinaryArray> = (0..self.accumulators.len())
            .map(|i| data.column(groups + 2 + i).as_binary::<i32>())
            .collect();
        let mut late = 0;
        let mut result = Ok(());
        for (row, (&start, &end)) in starts.iter().zip(ends.iter()).enumerate() {
            if end.saturating_sub(1) <= self.watermark {
                late += 1;
                continue;
            }
            let slot = self
                .slots
                .find_or_create(self.scratch.key_ids[row], start, end);
            self.ensure_capacity();
            for (i, accumulator) in self.accumulators.iter_mut().enumerate() {
                let merged = postcard::from_bytes(states[i].value(row))
                    .map_err(|e| e.to_string())
                    .and_then(|state| accumulator.merge_state(slot, state));
                if let Err(reason) = merged {
                    result = Err(AggregateError::User {
                        aggregate: self.labels[i].clone(),
                        source: format!("cannot merge a partial aggregate: {reason}").into(),
                    }
                    .into());
                }
            }
            if result.is_err() {
                break;
            }
        }
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        for k in 0..self.scratch.new_keys.len() {
            self.slots.remove_key_if_unused(self.scratch.new_keys[k]);
        }
        result
    }

    /// Every window's partial row, then an empty state: what the local half emits.
    fn drain_partials(&mut self, schema: &SchemaRef) -> Result<Vec<ChangelogBatch>, WindowError> {
        let live: Vec<u32> = self.slots.live_slots().collect();
        let mut batches = Vec::new();
        for chunk in live.chunks(OUTPUT_BATCH_ROWS) {
            let mut columns = self.key_columns(chunk)?;
            let tz = &self.time_zone;
            let windows: Vec<(i64, i64)> = chunk.iter().map(|&s| self.slots.window(s)).collect();
            columns.push(super::timestamp_column(
                windows.iter().map(|w| w.0),
                tz.clone(),
            ));
            columns.push(super::timestamp_column(
                windows.iter().map(|w| w.1),
                tz.clone(),
            ));
            for (accumulator, label) in self.accumulators.iter().zip(&self.labels) {
                let mut states = BinaryBuilder::new();
                for &slot in chunk {
                    let state = accumulator
                        .save(slot)
                        .and_then(|state| postcard::to_allocvec(&state).map_err(|e| e.to_string()))
                        .map_err(|reason| AggregateError::User {
                            aggregate: label.clone(),
                            source: format!("cannot write a partial aggregate: {reason}").into(),
                        })?;
                    states.append_value(state);
                }
                columns.push(Arc::new(states.finish()));
            }
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            let data = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
                .map_err(WindowError::arrow("assembling partial aggregates"))?;
            batches.push(ChangelogBatch::insert_only(data));
        }
        for slot in live {
            for accumulator in &mut self.accumulators {
                accumulator.reset(slot);
            }
            self.slots.remove(slot, false);
        }
        Ok(batches)
    }

    /// Checks that the columns the aggregation reads have the types of the input schema.
    fn check_input(&self, data: &RecordBatch) -> Result<(), WindowError> {
        let schema = data.schema_ref();
        let used = self
            .spec
            .group_columns
            .iter()
            .chain(std::iter::once(&self.spec.time_column))
            .chain(
                self.spec
                    .aggregates
                    .iter()
                    .flat_map(|c| c.args.iter().chain(c.filter.iter())),
            );
        for &column in used {
            let expected = self.spec.input_schema.field(column).data_type();
            let found = schema.fields().get(column).map(|f| f.data_type());
            if found != Some(expected) {
                return Err(WindowError::InputType {
                    operator: OPERATOR,
                    column,
                    expected: expected.clone(),
                    found: found.cloned(),
                });
            }
        }
        Ok(())
    }

    /// Maps every row to its key id, creating new keys.
    fn assign_keys(
        &mut self,
        data: &RecordBatch,
        group_columns: &[usize],
    ) -> Result<(), WindowError> {
        let rows = data.num_rows();
        let s = &mut self.scratch;
        s.key_ids.clear();
        s.new_keys.clear();
        let Some(keys) = &self.keys else {
            let (key, new) = self.slots.keys.find_or_insert(hash_key_bytes(&[]), &[]);
            s.key_ids.resize(rows, key);
            if new {
                s.new_keys.push(key);
            }
            return Ok(());
        };
        let columns: Vec<ArrayRef> = group_columns
            .iter()
            .map(|&c| Arc::clone(data.column(c)))
            .collect();
        encode_arrow_keys(&columns, &mut s.encoded)?;
        let mut new_rows = Vec::new();
        for (row, key) in s.encoded.iter().enumerate() {
            let (id, new) = self.slots.keys.find_or_insert(hash_key_bytes(key), key);
            s.key_ids.push(id);
            if new {
                s.new_keys.push(id);
                new_rows.push(row as u32);
            }
        }
        if !new_rows.is_empty() {
            let indices = UInt32Array::from(new_rows.clone());
            let firsts = columns
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(WindowError::arrow("gathering new group keys"))?;
            let encoded = keys
                .converter
                .convert_columns(&firsts)
                .map_err(WindowError::arrow("encoding new group keys"))?;
            for (i, &row) in new_rows.iter().enumerate() {
                self.slots
                    .keys
                    .set_row(s.key_ids[row as usize], encoded.row(i).as_ref());
            }
        }
        Ok(())
    }

    /// Maps each row to the slots of its windows; returns the number of late rows.
    fn assign_windows(&mut self, times: &[i64]) -> u64 {
        let window = self.spec.window;
        let s = &mut self.scratch;
        let mut late = 0;
        for (row, &time) in times.iter().enumerate() {
            if window.first_end(time).saturating_sub(1) <= self.watermark {
                late += 1;
                continue;
            }
            s.windows.clear();
            window.assign(time, &mut s.windows);
            let key = s.key_ids[row];
            for &(start, end) in &s.windows {
                s.rows.push(row as u32);
                s.slots.push(self.slots.find_or_create(key, start, end));
            }
        }
        late
    }

    /// Maps each row to its session, merging sessions it bridges; returns the number of late
    /// rows.
    fn assign_sessions(&mut self, times: &[i64]) -> Result<u64, WindowError> {
        let WindowTvf::Session { gap } = self.spec.window else {
            return Ok(0);
        };
        let mut late = 0;
        let mut touching = Vec::new();
        for (row, &time) in times.iter().enumerate() {
            let key = self.scratch.key_ids[row];
            let (mut start, mut end) = (time, time.saturating_add(gap));
            touching.clear();
            touching.extend(self.slots.slots_of(key).iter().copied().filter(|&slot| {
                let (s, e) = self.slots.window(slot);
                s <= end && e >= start
            }));
            let slot = match touching.split_first() {
                None => {
                    if end.saturating_sub(1) <= self.watermark {
                        late += 1;
                        continue;
                    }
                    self.slots.create(key, start, end)
                }
                Some((&into, others)) => {
                    self.ensure_capacity();
                    for &slot in std::iter::once(&into).chain(others) {
                        let (s, e) = self.slots.window(slot);
                        start = start.min(s);
                        end = end.max(e);
                    }
                    for &from in others {
                        for (accumulator, label) in self.accumulators.iter_mut().zip(&self.labels) {
                            accumulator.merge(into, from).map_err(|reason| {
                                AggregateError::User {
                                    aggregate: label.clone(),
                                    source: reason.into(),
                                }
                            })?;
                        }
                        self.slots.remove(from, true);
                        self.scratch.forwarded.insert(from, into);
                    }
                    self.slots.set_window(into, start, end);
                    into
                }
            };
            self.scratch.rows.push(row as u32);
            self.scratch.slots.push(slot);
        }
        // Rows assigned to a session that later merged into another go to that one.
        let forwarded = &self.scratch.forwarded;
        if !forwarded.is_empty() {
            for slot in &mut self.scratch.slots {
                while let Some(&into) = forwarded.get(slot) {
                    *slot = into;
                }
            }
        }
        Ok(late)
    }

    /// Grows the accumulators to the slot table's capacity.
    fn ensure_capacity(&mut self) {
        let capacity = self.slots.capacity();
        for accumulator in &mut self.accumulators {
            accumulator.resize(capacity);
        }
    }

    /// Folds the (row, slot) pairs of the batch into the accumulators.
    fn accumulate(&mut self, data: &RecordBatch) -> Result<(), WindowError> {
        let s = &mut self.scratch;
        if s.rows.is_empty() {
            return Ok(());
        }
        let identity = s.rows.len() == data.num_rows()
            && s.rows.iter().enumerate().all(|(i, &row)| row as usize == i);
        let indices = (!identity).then(|| UInt32Array::from(s.rows.clone()));
        let column = |c: usize| -> Result<ArrayRef, WindowError> {
            match &indices {
                None => Ok(Arc::clone(data.column(c))),
                Some(indices) => take(data.column(c), indices, None)
                    .map_err(WindowError::arrow("gathering aggregate arguments")),
            }
        };
        for (i, call) in self.spec.aggregates.iter().enumerate() {
            let args = call
                .args
                .iter()
                .map(|&c| column(c))
                .collect::<Result<Vec<_>, _>>()?;
            s.signs.clear();
            match call.filter {
                None => s.signs.resize(s.rows.len(), 1),
                Some(c) => {
                    let filter = data.column(c).as_boolean();
                    s.signs.extend(s.rows.iter().map(|&row| {
                        let row = row as usize;
                        i8::from(filter.is_valid(row) && filter.value(row))
                    }));
                }
            }
            self.accumulators[i]
                .update(&args, &s.slots, &s.signs)
                .map_err(|error| match error {
                    AccumulatorError::Failed(error) => error,
                    AccumulatorError::UnknownValue { .. } => AggregateError::RetractedUnknownRow {
                        group: self.labels[i].clone(),
                    },
                })?;
        }
        Ok(())
    }

    /// Emits and purges every window the watermark `watermark` closes.
    fn fire(&mut self, watermark: i64) -> Result<Vec<ChangelogBatch>, WindowError> {
        let due = self.slots.due(watermark);
        let mut batches = Vec::with_capacity(due.len().div_ceil(OUTPUT_BATCH_ROWS));
        for chunk in due.chunks(OUTPUT_BATCH_ROWS) {
            let mut columns = self.key_columns(chunk)?;
            let windows: Vec<(i64, i64)> = chunk.iter().map(|&s| self.slots.window(s)).collect();
            let tz = &self.time_zone;
            columns.push(super::timestamp_column(
                windows.iter().map(|w| w.0),
                tz.clone(),
            ));
            columns.push(super::timestamp_column(
                windows.iter().map(|w| w.1),
                tz.clone(),
            ));
            columns.push(super::timestamp_column(
                windows.iter().map(|w| w.1.saturating_sub(1)),
                tz.clone(),
            ));
            for accumulator in &self.accumulators {
                columns.push(accumulator.evaluate(chunk)?);
            }
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            let data = RecordBatch::try_new_with_options(
                Arc::clone(&self.spec.output_schema),
                columns,
                &options,
            )
            .map_err(WindowError::arrow("assembling window results"))?;
            batches.push(ChangelogBatch::insert_only(data));
        }
        for slot in due {
            for accumulator in &mut self.accumulators {
                accumulator.reset(slot);
            }
            self.slots.remove(slot, false);
        }
        Ok(batches)
    }

    /// The key columns of the keys of `slots`.
    fn key_columns(&self, slots: &[u32]) -> Result<Vec<ArrayRef>, WindowError> {
        let Some(keys) = &self.keys else {
            return Ok(Vec::new());
        };
        if slots.is_empty() {
            return Ok(keys
                .schema
                .fields()
                .iter()
                .map(|f| new_empty_array(f.data_type()))
                .collect());
        }
        let rows = slots
            .iter()
            .map(|&slot| keys.parser.parse(self.slots.keys.row(self.slots.key(slot))));
        keys.converter
            .convert_rows(rows)
            .map_err(WindowError::arrow("decoding group keys"))
    }

    /// Every window's state, one blob per key group.
    fn snapshot(&self) -> Result<OperatorState, WindowError> {
        let mut by_key_group: std::collections::BTreeMap<KeyGroup, Vec<u32>> = Default::default();
        for slot in self.slots.live_slots() {
            by_key_group
                .entry(self.slots.key_group(slot, self.max_parallelism))
                .or_default()
                .push(slot);
        }
        let mut state = OperatorState {
            operator: self.watermark.to_le_bytes().to_vec(),
            ..OperatorState::default()
        };
        for (key_group, slots) in by_key_group {
            let fail = |reason: String| WindowError::State { key_group, reason };
            // One row per distinct key, in order of first use.
            let mut key_rows: hashbrown::HashMap<u32, usize> = hashbrown::HashMap::new();
            let mut key_slot: Vec<u32> = Vec::new();
            let mut windows = Vec::with_capacity(slots.len());
            for &slot in &slots {
                let at = *key_rows.entry(self.slots.key(slot)).or_insert_with(|| {
                    key_slot.push(slot);
                    key_slot.len() - 1
                });
                let (start, end) = self.slots.window(slot);
                let accumulators = self
                    .accumulators
                    .iter()
                    .map(|a| a.save(slot))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                windows.push(WindowState {
                    key: at as u32,
                    start,
                    end,
                    accumulators,
                });
            }
            let keys = match &self.keys {
                None => Vec::new(),
                Some(keys) => {
                    let batch = RecordBatch::try_new(
                        Arc::clone(&keys.schema),
                        self.key_columns(&key_slot)?,
                    )
                    .map_err(WindowError::arrow("writing group keys"))?;
                    let mut bytes = Vec::new();
                    let mut writer = StreamWriter::try_new(&mut bytes, &keys.schema)
                        .map_err(WindowError::arrow("writing group keys"))?;
                    writer
                        .write(&batch)
                        .and_then(|()| writer.finish())
                        .map_err(WindowError::arrow("writing group keys"))?;
                    drop(writer);
                    bytes
                }
            };
            let blob = postcard::to_allocvec(&KeyGroupState { keys, windows })
                .map_err(|e| fail(e.to_string()))?;
            state.keyed.insert(key_group, blob);
        }
        Ok(state)
    }

    /// Restores the windows of the owned key groups.
    fn restore(&mut self, state: &OperatorState) -> Result<(), WindowError> {
        if let Ok(bytes) = <[u8; 8]>::try_from(state.operator.as_slice()) {
            self.watermark = self.watermark.max(i64::from_le_bytes(bytes));
        }
        for (&key_group, blob) in &state.keyed {
            if !self.owned.contains(key_group) {
                continue;
            }
            let fail = |reason: String| WindowError::State { key_group, reason };
            let saved: KeyGroupState =
                postcard::from_bytes(blob).map_err(|e| fail(e.to_string()))?;
            let mut key_ids = Vec::new();
            match &self.keys {
                None => {
                    let (key, _) = self.slots.keys.find_or_insert(hash_key_bytes(&[]), &[]);
                    key_ids.push(key);
                }
                Some(keys) => {
                    let mut reader = StreamReader::try_new(&saved.keys[..], None)
                        .map_err(|e| fail(e.to_string()))?;
                    let batch = reader
                        .next()
                        .ok_or_else(|| fail("no key columns".to_owned()))?
                        .map_err(|e| fail(e.to_string()))?;
                    let mut encoded = EncodedKeys::new();
                    encode_arrow_keys(batch.columns(), &mut encoded)?;
                    let rows = keys
                        .converter
                        .convert_columns(batch.columns())
                        .map_err(|e| fail(e.to_string()))?;
                    for (i, key) in encoded.iter().enumerate() {
                        let (id, _) = self.slots.keys.find_or_insert(hash_key_bytes(key), key);
                        self.slots.keys.set_row(id, rows.row(i).as_ref());
                        key_ids.push(id);
                    }
                }
            }
            for window in saved.windows {
                let key = *key_ids
                    .get(window.key as usize)
                    .ok_or_else(|| fail(format!("window of unknown key {}", window.key)))?;
                if window.accumulators.len() != self.accumulators.len() {
                    return Err(fail(format!(
                        "{} accumulators saved, {} expected",
                        window.accumulators.len(),
                        self.accumulators.len()
                    )));
                }
                let slot = if self.spec.window.is_merging() {
                    self.slots.create(key, window.start, window.end)
                } else {
                    self.slots.find_or_create(key, window.start, window.end)
                };
                self.ensure_capacity();
                for (accumulator, saved) in self.accumulators.iter_mut().zip(window.accumulators) {
                    accumulator.load(slot, saved).map_err(fail)?;
                }
            }
        }
        Ok(())
    }
}

impl Operator for WindowAggregateOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = ctx.key_group_range();
        self.ctx = ctx.clone();
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        Ok(self.process(&batch)?)
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

    /// Event time ends with the input: every window left fires.
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

/// The local half of a two-phase window aggregation (Flink's `LocalWindowAggregate`): folds
/// each input batch per key and window, and emits one partial row per key and window the batch
/// touched. [`WindowAggregateOperator::global`], built from the same spec behind a hash
/// exchange on the group columns, merges the partials into the final rows.
///
/// Pre-aggregating before the exchange cuts the rows shuffled when keys repeat within a batch,
/// and more so for `HOP` and `CUMULATE`, whose rows feed several windows. Partial rows hold the
/// group columns, `window_start`, `window_end` (`Timestamp(Millisecond, _)`), then one `Binary`
/// column per aggregate with its accumulator state (postcard). Late rows are dropped and
/// counted here. Sessions (whose windows are only known per key) and `DISTINCT` aggregates
/// (whose states cannot merge) take the one-phase [`WindowAggregateOperator`].
///
/// # State
///
/// None between batches: every batch's partials are emitted at its end; only the current
/// watermark is kept (as operator state) to recognise late rows.
pub struct LocalWindowAggregateOperator {
    inner: WindowAggregateOperator,
    partial_schema: SchemaRef,
}

impl std::fmt::Debug for LocalWindowAggregateOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWindowAggregateOperator")
            .field("inner", &self.inner)
            .finish()
    }
}

impl LocalWindowAggregateOperator {
    /// The local half of aggregating `spec`.
    ///
    /// # Errors
    ///
    /// As [`WindowAggregateOperator::new`], and when the window is a session or an aggregate
    /// is `DISTINCT`.
    pub fn new(spec: WindowAggregateSpec) -> Result<Self, WindowError> {
        if spec.window.is_merging() {
            return Err(WindowError::SessionNotSupported {
                operator: "two-phase window aggregation",
            });
        }
        let inner = WindowAggregateOperator::new(spec)?;
        let distinct = inner.spec.aggregates.iter().zip(&inner.labels);
        if let Some((_, label)) = distinct.clone().find(|(call, _)| call.distinct) {
            return Err(WindowError::DistinctTwoPhase {
                aggregate: label.clone(),
            });
        }
        let output = &inner.spec.output_schema;
        let groups = inner.spec.group_columns.len();
        let mut fields: Vec<Field> = output.fields()[..groups + 2]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            inner
                .spec
                .aggregates
                .iter()
                .map(|call| Field::new(call.output.name(), DataType::Binary, false)),
        );
        Ok(LocalWindowAggregateOperator {
            inner,
            partial_schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The schema of the partial rows: group columns, `window_start`, `window_end`, then one
    /// `Binary` accumulator state per aggregate.
    pub fn partial_schema(&self) -> &SchemaRef {
        &self.partial_schema
    }
}

impl Operator for LocalWindowAggregateOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.inner.open(ctx)
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        self.inner.process(&batch)?;
        for partial in self.inner.drain_partials(&self.partial_schema)? {
            out.collect(partial)?;
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        self.inner.watermark = self.inner.watermark.max(watermark);
        out.emit_watermark(watermark)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState {
            keyed: Default::default(),
            operator: self.inner.watermark.to_le_bytes().to_vec(),
        })
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.inner.restore(state)?)
    }
}
