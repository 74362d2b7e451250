//! [`IntervalJoinOperator`]: the event-time interval join, Flink's `IntervalJoin` node
//! (`l JOIN r ON l.k = r.k AND l.ts BETWEEN r.ts + lower AND r.ts + upper`).
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::interval_join::{IntervalJoinOperator, IntervalJoinSpec};
//! use rivulet_runtime::relational::JoinType;
//! use rivulet_runtime::{ChangelogBatch, OperatorContext, TwoInputOperator};
//!
//! let side = |k: &str, t: &str| {
//!     Arc::new(Schema::new(vec![
//!         Field::new(k, DataType::Int64, false),
//!         Field::new(t, DataType::Int64, false),
//!     ]))
//! };
//! let (orders, shipments) = (side("order", "ordered"), side("shipped_order", "shipped"));
//! let output = Arc::new(Schema::new(vec![
//!     Field::new("order", DataType::Int64, true),
//!     Field::new("ordered", DataType::Int64, true),
//!     Field::new("shipped_order", DataType::Int64, true),
//!     Field::new("shipped", DataType::Int64, true),
//! ]));
//! // Orders shipped within 10 ms: shipped - 10 <= ordered <= shipped.
//! let spec = IntervalJoinSpec::new(JoinType::Left, orders.clone(), shipments.clone(), output)
//!     .with_keys([0], [0])
//!     .with_interval(1, 1, -10, 0);
//! let mut join = IntervalJoinOperator::new(spec)?;
//! join.open(&OperatorContext::new("join", 0, 1, 128)).unwrap();
//! let rows = |schema: &Arc<Schema>, k: i64, t: i64| {
//!     let columns = vec![
//!         Arc::new(Int64Array::from(vec![k])) as _,
//!         Arc::new(Int64Array::from(vec![t])) as _,
//!     ];
//!     ChangelogBatch::insert_only(RecordBatch::try_new(schema.clone(), columns).unwrap())
//! };
//! let mut out = RecordingOutput::default();
//! join.process_batch1(rows(&orders, 1, 100), &mut out).unwrap();
//! join.process_batch1(rows(&orders, 2, 100), &mut out).unwrap();
//! join.process_batch2(rows(&shipments, 1, 105), &mut out).unwrap();
//! assert_eq!(out.batches.len(), 1); // order 1 joined at once
//! // Once event time passes 110, order 2 can no longer find a shipment: padded with nulls.
//! join.process_watermark(110, &mut out).unwrap();
//! assert_eq!(out.batches.len(), 2);
//! assert_eq!(out.batches[1].data().column(2).null_count(), 1);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use super::expr::{EvalContext, PhysicalExprRef, evaluate_to_array};
use super::join::JoinType;
use super::join::rows::{FixedHashMap, RowGather};
use super::stream_op::{
    RowCodec, RowKeys, StreamOpError, arrow_err, check_input, check_insert_only, check_output,
    check_time_column, fields_of, key_group_of, read_rows, time_values, write_rows,
};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange};
use crate::operator::{OperatorContext, OperatorState, Output, TwoInputOperator};

const OPERATOR: &str = "IntervalJoin";

/// What an [`IntervalJoinOperator`] computes.
#[derive(Debug, Clone)]
pub struct IntervalJoinSpec {
    /// Inner, left, right or full outer.
    pub join_type: JoinType,
    /// The equality key columns of the left input, pairwise with `right_keys`. A null in a key
    /// column never matches.
    pub left_keys: Vec<usize>,
    /// The equality key columns of the right input.
    pub right_keys: Vec<usize>,
    /// The left input's event-time column (`Timestamp(Millisecond)` or `Int64` ms).
    pub left_time: usize,
    /// The right input's event-time column.
    pub right_time: usize,
    /// The interval: a pair matches when `right.ts + lower_ms <= left.ts <= right.ts + upper_ms`.
    pub lower_ms: i64,
    /// The upper bound of the interval; see `lower_ms`.
    pub upper_ms: i64,
    /// An extra condition over the joined row (the left columns followed by the right ones).
    pub filter: Option<PhysicalExprRef>,
    /// Evaluates the filter under the environment's bad-data policy.
    pub eval: EvalContext,
    /// The schema of the left input.
    pub left_schema: SchemaRef,
    /// The schema of the right input.
    pub right_schema: SchemaRef,
    /// The output schema: the left fields followed by the right ones; the side an outer join
    /// pads must be nullable.
    pub output_schema: SchemaRef,
}

impl IntervalJoinSpec {
    /// A join of `join_type` without keys or filter, over time columns 0 of both sides with the
    /// interval `[0, 0]` (equal times); set them with [`IntervalJoinSpec::with_keys`] and
    /// [`IntervalJoinSpec::with_interval`].
    pub fn new(
        join_type: JoinType,
        left_schema: SchemaRef,
        right_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Self {
        IntervalJoinSpec {
            join_type,
            left_keys: Vec::new(),
            right_keys: Vec::new(),
            left_time: 0,
            right_time: 0,
            lower_ms: 0,
            upper_ms: 0,
            filter: None,
            eval: EvalContext::default(),
            left_schema,
            right_schema,
            output_schema,
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

    /// The time columns and the interval: `right.ts + lower_ms <= left.ts <= right.ts +
    /// upper_ms`. Default: columns 0, `[0, 0]`.
    pub fn with_interval(
        mut self,
        left_time: usize,
        right_time: usize,
        lower_ms: i64,
        upper_ms: i64,
    ) -> Self {
        self.left_time = left_time;
        self.right_time = right_time;
        self.lower_ms = lower_ms;
        self.upper_ms = upper_ms;
        self
    }

    /// Adds a condition over the joined row. Default: none.
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

/// One input of the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// A kept row.
#[derive(Debug)]
struct Kept {
    row: Box<[u8]>,
    matched: bool,
}

/// The kept rows of one side and join key, by time and arrival number.
#[derive(Debug, Default)]
struct KeyRows {
    rows: BTreeMap<(i64, u64), Kept>,
}

/// A kept row's join key and time.
type KeyAndTime = (Box<[u8]>, i64);

/// What one side keeps.
#[derive(Debug)]
struct SideState {
    schema: SchemaRef,
    keys: RowKeys,
    time: usize,
    codec: RowCodec,
    /// Whether rows of this side without match are padded with nulls.
    preserved: bool,
    table: FixedHashMap<Box<[u8]>, KeyRows>,
    /// When each kept row expires: (expiry time, arrival number) -> (join key, row time).
    expiry: BTreeMap<(i64, u64), KeyAndTime>,
}

impl SideState {
    fn new(
        schema: &SchemaRef,
        keys: &[usize],
        time: usize,
        role: &'static str,
        preserved: bool,
    ) -> Result<Self, StreamOpError> {
        check_time_column(OPERATOR, role, schema, time)?;
        Ok(SideState {
            schema: Arc::clone(schema),
            keys: RowKeys::new(OPERATOR, "join key", schema, keys)?,
            time,
            codec: RowCodec::new(OPERATOR, schema)?,
            preserved,
            table: FixedHashMap::default(),
            expiry: BTreeMap::new(),
        })
    }
}

/// The event-time interval join of two insert-only streams, as Flink's `IntervalJoin`.
///
/// Input 1 is the left side, input 2 the right side; both must be hash-partitioned by their key
/// columns. A left row `l` and a right row `r` with equal keys (a null key never matches) join
/// when `r.ts + lower_ms <= l.ts <= r.ts + upper_ms` and the optional filter holds. Each input
/// row is joined against the other side's kept rows as it arrives and the pairs are emitted at
/// once, insert-only. Rows at or behind the watermark when they arrive are late: they are
/// dropped and counted with [`OperatorContext::count_late_records`].
///
/// A left row can match no future right row once the watermark reaches `l.ts - lower_ms`, a
/// right row none once it reaches `r.ts + upper_ms`: the row then leaves the state and, in an
/// outer join that preserves its side and if it never matched, is emitted padded with nulls
/// (also insert-only). Output rows then carry times up to `max(upper_ms, -lower_ms, 0)` behind
/// the input watermark, so the operator holds its output watermark back by that much (the
/// maximum watermark, the end of input, passes unchanged).
///
/// Both bounds are inclusive; the planner turns a strict bound (`l.ts < r.ts + 10`) into an
/// inclusive one by one millisecond (`upper_ms = 9`).
///
/// # State
///
/// Per side and join key (its canonical encoding): the rows that can still match, in Arrow row
/// format, ordered by (time, arrival number), each with whether it matched; and per side an
/// index by expiry time, which the watermark pops. Nothing outlives its expiry, so the state
/// is empty after the maximum watermark. Checkpoints hold one blob per key group with both
/// sides' rows as Arrow IPC (with arrival numbers and match flags) and the watermark.
pub struct IntervalJoinOperator {
    join_type: JoinType,
    lower: i64,
    upper: i64,
    filter: Option<PhysicalExprRef>,
    eval: EvalContext,
    output_schema: SchemaRef,
    left: SideState,
    right: SideState,
    watermark: i64,
    next_seq: u64,
    ctx: OperatorContext,
    max_parallelism: u16,
    owned: KeyGroupRange,
}

impl std::fmt::Debug for IntervalJoinOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalJoinOperator")
            .field("join_type", &self.join_type)
            .field("interval", &(self.lower..=self.upper))
            .field("watermark", &self.watermark)
            .field("left_rows", &self.left.expiry.len())
            .field("right_rows", &self.right.expiry.len())
            .finish()
    }
}

/// One key group's part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    watermark: i64,
    left: Vec<u8>,
    right: Vec<u8>,
}

impl IntervalJoinOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When the join type is semi or anti, the key column counts or types differ, a key or time
    /// column does not exist or has an unsupported type, `lower_ms > upper_ms`, or the output
    /// schema is not the left fields followed by the right ones (the padded side nullable).
    pub fn new(spec: IntervalJoinSpec) -> Result<Self, StreamOpError> {
        let invalid = |reason: String| StreamOpError::InvalidSpec {
            operator: OPERATOR,
            reason,
        };
        let (left_preserved, right_preserved) = match spec.join_type {
            JoinType::Inner => (false, false),
            JoinType::Left => (true, false),
            JoinType::Right => (false, true),
            JoinType::Full => (true, true),
            other => {
                return Err(invalid(format!(
                    "an interval join is inner, left, right or full, not {other:?}; plan a regular join instead"
                )));
            }
        };
        if spec.left_keys.len() != spec.right_keys.len() {
            return Err(invalid(format!(
                "{} left key columns but {} right key columns; give one right key column per left key column",
                spec.left_keys.len(),
                spec.right_keys.len()
            )));
        }
        if spec.lower_ms > spec.upper_ms {
            return Err(invalid(format!(
                "the interval [{}, {}] ms is empty; give lower_ms <= upper_ms",
                spec.lower_ms, spec.upper_ms
            )));
        }
        let left = SideState::new(
            &spec.left_schema,
            &spec.left_keys,
            spec.left_time,
            "left time",
            left_preserved,
        )?;
        let right = SideState::new(
            &spec.right_schema,
            &spec.right_keys,
            spec.right_time,
            "right time",
            right_preserved,
        )?;
        for (position, (&l, &r)) in spec.left_keys.iter().zip(&spec.right_keys).enumerate() {
            let (lf, rf) = (spec.left_schema.field(l), spec.right_schema.field(r));
            if lf.data_type() != rf.data_type() {
                return Err(invalid(format!(
                    "join key {position} compares left column {:?} of type {} with right column {:?} of type {}; cast one so both have the same type",
                    lf.name(),
                    lf.data_type(),
                    rf.name(),
                    rf.data_type()
                )));
            }
        }
        let mut produced = fields_of(&spec.left_schema);
        produced.extend(fields_of(&spec.right_schema));
        check_output(
            OPERATOR,
            &produced,
            &spec.output_schema,
            "list the left fields, then the right ones",
        )?;
        let left_width = spec.left_schema.fields().len();
        for (position, field) in spec.output_schema.fields().iter().enumerate() {
            let padded = if position < left_width {
                right_preserved
            } else {
                left_preserved
            };
            if padded && !field.is_nullable() {
                return Err(invalid(format!(
                    "output column {:?} is not nullable, but a {:?} join pads it with nulls; mark it nullable",
                    field.name(),
                    spec.join_type
                )));
            }
        }
        Ok(IntervalJoinOperator {
            join_type: spec.join_type,
            lower: spec.lower_ms,
            upper: spec.upper_ms,
            filter: spec.filter,
            eval: spec.eval,
            output_schema: spec.output_schema,
            left,
            right,
            watermark: i64::MIN,
            next_seq: 0,
            ctx: OperatorContext::new(OPERATOR, 0, 1, DEFAULT_MAX_PARALLELISM),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The number of rows kept, over both sides.
    pub fn kept_rows(&self) -> usize {
        self.left.expiry.len() + self.right.expiry.len()
    }

    /// The current watermark (the minimum over both inputs).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// How far the output watermark trails the input one.
    fn output_delay(&self) -> i64 {
        self.upper.max(self.lower.saturating_neg()).max(0)
    }

    /// When a row of `side` at `time` can match no future row of the other side.
    fn expires_at(&self, side: Side, time: i64) -> i64 {
        match side {
            Side::Left => time.saturating_sub(self.lower),
            Side::Right => time.saturating_add(self.upper),
        }
    }

    /// The times of the other side's rows a row of `side` at `time` matches.
    fn partner_times(&self, side: Side, time: i64) -> (i64, i64) {
        match side {
            // r.ts in [l.ts - upper, l.ts - lower]
            Side::Left => (
                time.saturating_sub(self.upper),
                time.saturating_sub(self.lower),
            ),
            // l.ts in [r.ts + lower, r.ts + upper]
            Side::Right => (
                time.saturating_add(self.lower),
                time.saturating_add(self.upper),
            ),
        }
    }

    fn sides(&mut self, side: Side) -> (&mut SideState, &mut SideState) {
        match side {
            Side::Left => (&mut self.left, &mut self.right),
            Side::Right => (&mut self.right, &mut self.left),
        }
    }

    /// Joins one batch of `side` against the other side's state and keeps its rows.
    fn process(
        &mut self,
        side: Side,
        batch: &ChangelogBatch,
    ) -> Result<Vec<ChangelogBatch>, StreamOpError> {
        let data = batch.data();
        if data.num_rows() == 0 {
            return Ok(Vec::new());
        }
        check_insert_only(OPERATOR, batch)?;
        let watermark = self.watermark;
        let times;
        {
            let (this, _) = self.sides(side);
            check_input(OPERATOR, &this.schema, data, 0..this.schema.fields().len())?;
            times = time_values(OPERATOR, data, this.time)?;
            this.keys.encode(data)?;
        }
        let expiry: Vec<i64> = times.iter().map(|&t| self.expires_at(side, t)).collect();
        let ranges: Vec<(i64, i64)> = times.iter().map(|&t| self.partner_times(side, t)).collect();
        let (this, other) = self.sides(side);
        let rows = this.codec.encode(data)?;

        // Candidate pairs: (input row, other side's kept row).
        let mut late = 0u64;
        let mut live = vec![false; data.num_rows()];
        let mut candidates: Vec<(u32, i64, u64)> = Vec::new();
        let mut this_gather = RowGather::default();
        let mut other_gather = RowGather::default();
        for i in 0..data.num_rows() {
            if times[i] <= watermark {
                late += 1;
                continue;
            }
            live[i] = true;
            if this.keys.has_null(i) {
                continue;
            }
            let Some(kept) = other.table.get(this.keys.key(i)) else {
                continue;
            };
            let (from, to) = ranges[i];
            for (&(t, seq), row) in kept.rows.range((from, 0)..=(to, u64::MAX)) {
                candidates.push((i as u32, t, seq));
                this_gather.push(rows.row(i).as_ref(), 1);
                other_gather.push(&row.row, 1);
            }
        }
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        let (this, other) = match side {
            Side::Left => (&mut self.left, &mut self.right),
            Side::Right => (&mut self.right, &mut self.left),
        };
        let mut outputs = Vec::new();
        let mut matched = vec![false; data.num_rows()];
        if !candidates.is_empty() {
            let this_columns = this_gather
                .finish(this.codec_converter(), this.schema.fields())
                .map_err(arrow_err(OPERATOR, "decoding rows"))?;
            let other_columns = other_gather
                .finish(other.codec_converter(), other.schema.fields())
                .map_err(arrow_err(OPERATOR, "decoding kept rows"))?;
            let columns = match side {
                Side::Left => [this_columns, other_columns].concat(),
                Side::Right => [other_columns, this_columns].concat(),
            };
            let options = RecordBatchOptions::new().with_row_count(Some(candidates.len()));
            let pairs = RecordBatch::try_new_with_options(
                Arc::clone(&self.output_schema),
                columns,
                &options,
            )
            .map_err(arrow_err(OPERATOR, "assembling joined rows"))?;
            let (pairs, keep) = match &self.filter {
                None => (pairs, None),
                Some(filter) => {
                    let result = evaluate_to_array(filter.as_ref(), &pairs, &mut self.eval)
                        .map_err(|source| StreamOpError::Filter {
                            operator: OPERATOR,
                            source,
                        })?;
                    self.eval.take_failed_rows();
                    let result =
                        result
                            .as_boolean_opt()
                            .ok_or_else(|| StreamOpError::FilterNotBoolean {
                                operator: OPERATOR,
                                found: result.data_type().clone(),
                            })?;
                    // A null (or a row that failed under the skip policy) does not match.
                    let keep = match result.nulls() {
                        Some(_) => arrow::compute::prep_null_mask_filter(result),
                        None => result.clone(),
                    };
                    let kept = filter_record_batch(&pairs, &keep)
                        .map_err(arrow_err(OPERATOR, "filtering joined rows"))?;
                    (kept, Some(keep))
                }
            };
            for (c, &(i, t, seq)) in candidates.iter().enumerate() {
                if keep.as_ref().is_some_and(|k| !k.value(c)) {
                    continue;
                }
                matched[i as usize] = true;
                if let Some(kept) = other.table.get_mut(this.keys.key(i as usize))
                    && let Some(row) = kept.rows.get_mut(&(t, seq))
                {
                    row.matched = true;
                }
            }
            if pairs.num_rows() > 0 {
                outputs.push(ChangelogBatch::insert_only(pairs));
            }
        }

        // Keep the rows that can still match; pad those that never can.
        let mut padded = RowGather::default();
        for i in 0..data.num_rows() {
            if !live[i] {
                continue;
            }
            let can_match_later = !this.keys.has_null(i) && expiry[i] > watermark;
            if can_match_later {
                let seq = self.next_seq;
                self.next_seq += 1;
                let key = this.keys.key(i);
                let kept = match this.table.get_mut(key) {
                    Some(kept) => kept,
                    None => this.table.entry(key.into()).or_default(),
                };
                kept.rows.insert(
                    (times[i], seq),
                    Kept {
                        row: rows.row(i).as_ref().into(),
                        matched: matched[i],
                    },
                );
                this.expiry.insert((expiry[i], seq), (key.into(), times[i]));
            } else if this.preserved && !matched[i] {
                padded.push(rows.row(i).as_ref(), 1);
            }
        }
        if padded.len() > 0 {
            outputs.push(self.padded_batch(side, &mut padded)?);
        }
        Ok(outputs)
    }

    /// Output rows of `side`'s gathered rows, the other side null.
    fn padded_batch(
        &self,
        side: Side,
        gather: &mut RowGather,
    ) -> Result<ChangelogBatch, StreamOpError> {
        let rows = gather.len();
        let (this, other) = match side {
            Side::Left => (&self.left, &self.right),
            Side::Right => (&self.right, &self.left),
        };
        let this_columns = gather
            .finish(this.codec_converter(), this.schema.fields())
            .map_err(arrow_err(OPERATOR, "decoding rows"))?;
        let nulls: Vec<ArrayRef> = other
            .schema
            .fields()
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), rows))
            .collect();
        let columns = match side {
            Side::Left => [this_columns, nulls].concat(),
            Side::Right => [nulls, this_columns].concat(),
        };
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let data =
            RecordBatch::try_new_with_options(Arc::clone(&self.output_schema), columns, &options)
                .map_err(arrow_err(OPERATOR, "assembling padded rows"))?;
        Ok(ChangelogBatch::insert_only(data))
    }

    /// Advances event time: drops the rows that can no longer match and pads the unmatched
    /// ones of preserved sides.
    fn advance(&mut self, watermark: i64) -> Result<Vec<ChangelogBatch>, StreamOpError> {
        if watermark <= self.watermark {
            return Ok(Vec::new());
        }
        self.watermark = watermark;
        let mut outputs = Vec::new();
        for side in [Side::Left, Side::Right] {
            let (this, _) = self.sides(side);
            let mut padded = RowGather::default();
            while let Some(entry) = this.expiry.first_entry() {
                if entry.key().0 > watermark {
                    break;
                }
                let ((_, seq), (key, time)) = entry.remove_entry();
                let Some(kept) = this.table.get_mut(&key) else {
                    continue;
                };
                if let Some(row) = kept.rows.remove(&(time, seq))
                    && this.preserved
                    && !row.matched
                {
                    padded.push(&row.row, 1);
                }
                if kept.rows.is_empty() {
                    this.table.remove(&key);
                }
            }
            if padded.len() > 0 {
                outputs.push(self.padded_batch(side, &mut padded)?);
            }
        }
        Ok(outputs)
    }

    /// Both sides' kept rows, one blob per key group.
    fn snapshot(&self) -> Result<OperatorState, StreamOpError> {
        type Rows<'a> = (Vec<&'a [u8]>, Vec<i64>, Vec<i64>);
        let mut by_key_group: BTreeMap<KeyGroup, [Rows<'_>; 2]> = BTreeMap::new();
        for (s, side) in [&self.left, &self.right].into_iter().enumerate() {
            for (key, kept) in &side.table {
                let key_group = key_group_of(key, self.max_parallelism);
                let entry = by_key_group.entry(key_group).or_default();
                for (&(_, seq), row) in &kept.rows {
                    entry[s].0.push(&row.row);
                    entry[s].1.push(seq as i64);
                    entry[s].2.push(i64::from(row.matched));
                }
            }
        }
        let mut state = OperatorState {
            operator: postcard::to_allocvec(&self.watermark).map_err(|e| StreamOpError::State {
                operator: OPERATOR,
                key_group: 0,
                reason: e.to_string(),
            })?,
            ..OperatorState::default()
        };
        for (key_group, [left, right]) in by_key_group {
            let write = |side: &SideState, (rows, seqs, matched): Rows<'_>| {
                let columns = side.codec.decode(rows)?;
                write_rows(
                    OPERATOR,
                    key_group,
                    &side.schema,
                    columns,
                    vec![("__arrival", seqs), ("__matched", matched)],
                )
            };
            let blob = KeyGroupState {
                watermark: self.watermark,
                left: write(&self.left, left)?,
                right: write(&self.right, right)?,
            };
            let bytes = postcard::to_allocvec(&blob).map_err(|e| StreamOpError::State {
                operator: OPERATOR,
                key_group,
                reason: e.to_string(),
            })?;
            state.keyed.insert(key_group, bytes);
        }
        Ok(state)
    }

    /// Restores the rows of the owned key groups and the latest watermark among them.
    fn restore(&mut self, state: &OperatorState) -> Result<(), StreamOpError> {
        if !state.operator.is_empty()
            && let Ok(watermark) = postcard::from_bytes::<i64>(&state.operator)
        {
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
            for (side, bytes) in [(Side::Left, saved.left), (Side::Right, saved.right)] {
                let (lower, upper) = (self.lower, self.upper);
                let (this, _) = self.sides(side);
                let (data, extras) = read_rows(OPERATOR, key_group, &this.schema, &bytes, 2)?;
                let times = time_values(OPERATOR, &data, this.time)?;
                this.keys.encode(&data)?;
                let rows = this.codec.encode(&data)?;
                let mut max_seq = None;
                for i in 0..data.num_rows() {
                    let (seq, matched) = (extras[0][i] as u64, extras[1][i] != 0);
                    let key = this.keys.key(i);
                    let expires = match side {
                        Side::Left => times[i].saturating_sub(lower),
                        Side::Right => times[i].saturating_add(upper),
                    };
                    this.table.entry(key.into()).or_default().rows.insert(
                        (times[i], seq),
                        Kept {
                            row: rows.row(i).as_ref().into(),
                            matched,
                        },
                    );
                    this.expiry.insert((expires, seq), (key.into(), times[i]));
                    max_seq = max_seq.max(Some(seq));
                }
                if let Some(seq) = max_seq {
                    self.next_seq = self.next_seq.max(seq + 1);
                }
            }
        }
        Ok(())
    }
}

impl SideState {
    fn codec_converter(&self) -> &arrow::row::RowConverter {
        self.codec.converter()
    }
}

impl TwoInputOperator for IntervalJoinOperator {
    type In1 = ChangelogBatch;
    type In2 = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.ctx = ctx.clone();
        self.max_parallelism = ctx.max_parallelism();
        self.owned = ctx.key_group_range();
        Ok(())
    }

    fn process_batch1(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        for output in self.process(Side::Left, &batch)? {
            out.collect(output)?;
        }
        Ok(())
    }

    fn process_batch2(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        for output in self.process(Side::Right, &batch)? {
            out.collect(output)?;
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        for output in self.advance(watermark)? {
            out.collect(output)?;
        }
        let delayed = if watermark == i64::MAX {
            watermark
        } else {
            watermark.saturating_sub(self.output_delay())
        };
        out.emit_watermark(delayed)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(self.snapshot()?)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.restore(state)?)
    }
}
