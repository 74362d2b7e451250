//! The unbounded streaming operators against plain-Rust references on random input: Top-N and
//! deduplication changelogs consolidate after every batch to the reference result of the input
//! so far; OVER aggregation and the interval join equal a direct per-row computation and a
//! nested loop over the rows that were not late; late rows are counted; event-time state is
//! empty after the final watermark; and a snapshot restored into one or two fresh operators
//! (split by key group) continues exactly like an uninterrupted run.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::compute::kernels::cmp::lt_eq;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use proptest::prelude::*;
use rivulet_runtime::exchange::{ArrowKeySelector, BatchKeySelector};
use rivulet_runtime::keys::subtask_for_key_group;
use rivulet_runtime::operator::OperatorState;
use rivulet_runtime::operator::testing::RecordingOutput;
use rivulet_runtime::relational::dedup::{DedupOrder, DeduplicateOperator, DeduplicateSpec, Keep};
use rivulet_runtime::relational::interval_join::{IntervalJoinOperator, IntervalJoinSpec};
use rivulet_runtime::relational::over::{OverAggregateOperator, OverAggregateSpec, OverFrame};
use rivulet_runtime::relational::rank::{RankOperator, RankSpec, SortKey};
use rivulet_runtime::relational::{
    AggregateCall, AggregateKind, ColumnarValue, EvalContext, EvalError, JoinType, PhysicalExpr,
};
use rivulet_runtime::source::RecordBatchSource;
use rivulet_runtime::{
    ChangelogBatch, Operator, OperatorContext, Output, RowKind, StreamEnv, TaskError,
    TwoInputOperator,
};

type Row = Vec<Option<i64>>;
type Change = (RowKind, Row);

const MAX_PARALLELISM: u16 = 128;

/// A schema of nullable columns, `BIGINT` unless listed in `timestamps`.
fn schema(names: &[&str], timestamps: &[usize]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let data_type = if timestamps.contains(&i) {
                    DataType::Timestamp(TimeUnit::Millisecond, None)
                } else {
                    DataType::Int64
                };
                Field::new(*n, data_type, true)
            })
            .collect::<Vec<_>>(),
    ))
}

fn batch(schema: &SchemaRef, rows: &[Change]) -> ChangelogBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, f)| {
            let values = rows.iter().map(|(_, r)| r[c]);
            match f.data_type() {
                DataType::Int64 => Arc::new(Int64Array::from_iter(values)) as ArrayRef,
                _ => Arc::new(TimestampMillisecondArray::from_iter(values)) as ArrayRef,
            }
        })
        .collect();
    let data = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let kinds: Vec<RowKind> = rows.iter().map(|(k, _)| *k).collect();
    ChangelogBatch::from_kinds(data, &kinds).unwrap()
}

fn inserts(rows: &[Row]) -> Vec<Change> {
    rows.iter().map(|r| (RowKind::Insert, r.clone())).collect()
}

fn rows_of(batch: &ChangelogBatch) -> Vec<Change> {
    let data = batch.data();
    let columns: Vec<ArrayRef> = data
        .columns()
        .iter()
        .map(|c| arrow::compute::cast(c, &DataType::Int64).unwrap())
        .collect();
    (0..data.num_rows())
        .map(|i| {
            let row = columns
                .iter()
                .map(|c| {
                    let c = c.as_primitive::<Int64Type>();
                    c.is_valid(i).then(|| c.value(i))
                })
                .collect();
            (batch.row_kind(i), row)
        })
        .collect()
}

fn collected(out: &RecordingOutput<ChangelogBatch>) -> Vec<Change> {
    out.batches.iter().flat_map(rows_of).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn context(subtask: usize, parallelism: usize) -> OperatorContext {
    OperatorContext::new("op", subtask, parallelism, MAX_PARALLELISM)
}

/// A consolidated changelog: the count of each row, which must never go negative.
#[derive(Default)]
struct Consolidated(BTreeMap<Row, i64>);

impl Consolidated {
    fn apply(&mut self, changes: &[Change]) -> Result<(), TestCaseError> {
        for (kind, row) in changes {
            let count = self.0.entry(row.clone()).or_default();
            *count += if kind.is_accumulate() { 1 } else { -1 };
            prop_assert!(
                *count >= 0,
                "{kind} {row:?} retracts a row that was not emitted"
            );
        }
        self.0.retain(|_, c| *c != 0);
        Ok(())
    }

    fn rows(&self) -> Vec<Row> {
        self.0
            .iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row.clone(), *count as usize))
            .collect()
    }
}

/// Splits rows among `parallelism` subtasks by the key group of `key_columns`, as the hash
/// exchange does.
fn route(
    schema: &SchemaRef,
    key_columns: &[usize],
    rows: &[Change],
    parallelism: usize,
) -> Vec<Vec<Change>> {
    let mut groups = Vec::new();
    ArrowKeySelector::new(key_columns.to_vec())
        .key_groups(&batch(schema, rows), MAX_PARALLELISM, &mut groups)
        .unwrap();
    let mut parts = vec![Vec::new(); parallelism];
    for (row, group) in rows.iter().zip(groups) {
        parts[subtask_for_key_group(MAX_PARALLELISM, parallelism, group)].push(row.clone());
    }
    parts
}

fn value(max: i64) -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 4 => (0..max).prop_map(Some)]
}

/// Cuts `items` into consecutive batches of the given sizes (1..=7), cycling through them.
fn split<T: Clone>(items: &[T], sizes: &[usize]) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut s = 0;
    while at < items.len() {
        let n = sizes[s % sizes.len()].clamp(1, 7);
        out.push(items[at..(at + n).min(items.len())].to_vec());
        at += n;
        s += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Top-N
// ---------------------------------------------------------------------------------------------

/// One generated Top-N case.
#[derive(Debug, Clone)]
struct RankCase {
    descending: bool,
    nulls_first: bool,
    start: u64,
    n: u64,
    rank_column: bool,
    insert_only: bool,
}

fn rank_schema() -> SchemaRef {
    schema(&["k", "v", "w"], &[])
}

fn rank_operator(case: &RankCase) -> RankOperator {
    let order = SortKey {
        column: 1,
        descending: case.descending,
        nulls_first: case.nulls_first,
    };
    let spec = RankSpec::new(rank_schema(), [0], [order, SortKey::asc(2)], case.n)
        .with_start(case.start)
        .with_rank_column(case.rank_column)
        .with_insert_only_input(case.insert_only);
    RankOperator::new(spec).unwrap()
}

/// Turns raw operations (insert a row, or retract the i-th live row) into batches of changes.
fn rank_input(raw: &[(bool, u8, Row)], insert_only: bool, sizes: &[usize]) -> Vec<Vec<Change>> {
    let mut live: Vec<Row> = Vec::new();
    let mut changes = Vec::new();
    for (retract, pick, row) in raw {
        if *retract && !insert_only && !live.is_empty() {
            let row = live.remove(*pick as usize % live.len());
            let kind = if pick % 2 == 0 {
                RowKind::Delete
            } else {
                RowKind::UpdateBefore
            };
            changes.push((kind, row));
        } else {
            live.push(row.clone());
            let kind = if pick % 3 == 0 {
                RowKind::UpdateAfter
            } else {
                RowKind::Insert
            };
            changes.push((
                if insert_only { RowKind::Insert } else { kind },
                row.clone(),
            ));
        }
    }
    split(&changes, sizes)
}

/// The reference: per partition, live rows in arrival order (a retraction removes the latest
/// equal row), stably sorted by the order, numbered, and cut to `start..=n`.
fn rank_reference(case: &RankCase, changes: &[Change]) -> Vec<Row> {
    let mut live: Vec<Row> = Vec::new();
    for (kind, row) in changes {
        if kind.is_accumulate() {
            live.push(row.clone());
        } else if let Some(at) = live.iter().rposition(|r| r == row) {
            live.remove(at);
        }
    }
    let mut partitions: BTreeMap<Option<i64>, Vec<Row>> = BTreeMap::new();
    for row in live {
        partitions.entry(row[0]).or_default().push(row);
    }
    let compare = |a: &Option<i64>, b: &Option<i64>, descending: bool, nulls_first: bool| {
        use std::cmp::Ordering::*;
        match (a, b) {
            (None, None) => Equal,
            (None, Some(_)) => {
                if nulls_first {
                    Less
                } else {
                    Greater
                }
            }
            (Some(_), None) => {
                if nulls_first {
                    Greater
                } else {
                    Less
                }
            }
            (Some(x), Some(y)) if descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
        }
    };
    let mut result = Vec::new();
    for (_, mut rows) in partitions {
        rows.sort_by(|a, b| {
            compare(&a[1], &b[1], case.descending, case.nulls_first)
                .then(compare(&a[2], &b[2], false, false))
        });
        for (i, mut row) in rows.into_iter().enumerate() {
            let rank = i as u64 + 1;
            if rank >= case.start && rank <= case.n {
                if case.rank_column {
                    row.push(Some(rank as i64));
                }
                result.push(row);
            }
        }
    }
    sorted(result)
}

fn rank_case() -> impl Strategy<Value = RankCase> {
    (
        any::<bool>(),
        any::<bool>(),
        1u64..4,
        0u64..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(descending, nulls_first, start, extra, rank_column, insert_only)| RankCase {
                descending,
                nulls_first,
                start,
                n: start + extra,
                rank_column,
                insert_only,
            },
        )
}

fn raw_rank_rows() -> impl Strategy<Value = Vec<(bool, u8, Row)>> {
    prop::collection::vec(
        (
            prop::bool::weighted(0.3),
            any::<u8>(),
            prop::collection::vec(value(4), 3),
        ),
        0..40,
    )
}

fn feed_one<O>(op: &mut O, schema: &SchemaRef, rows: &[Change]) -> Vec<Change>
where
    O: Operator<In = ChangelogBatch, Out = ChangelogBatch>,
{
    let mut out = RecordingOutput::default();
    op.process_batch(batch(schema, rows), &mut out).unwrap();
    collected(&out)
}

/// Runs `make()` uninterrupted over `batches` and, from a snapshot taken after `at` batches,
/// in `parallelism` restored subtasks fed by key group of `key_columns`: each later batch
/// must produce the same changes. Watermarks are given per batch (after it) when `watermarks`.
fn check_one_input_restore<O>(
    make: impl Fn() -> O,
    schema: &SchemaRef,
    key_columns: &[usize],
    batches: &[Vec<Change>],
    watermarks: Option<&[i64]>,
    at: usize,
    parallelism: usize,
) -> Result<(), TestCaseError>
where
    O: Operator<In = ChangelogBatch, Out = ChangelogBatch>,
{
    let step = |op: &mut O, rows: &[Change], watermark: Option<i64>| -> Vec<Change> {
        let mut out = RecordingOutput::default();
        if !rows.is_empty() {
            op.process_batch(batch(schema, rows), &mut out).unwrap();
        }
        if let Some(w) = watermark {
            op.process_watermark(w, &mut out).unwrap();
        }
        collected(&out)
    };
    let watermark = |i: usize| watermarks.map(|w| w[i]);
    let mut whole = make();
    whole.open(&context(0, 1)).unwrap();
    let mut first = make();
    first.open(&context(0, 1)).unwrap();
    for (i, rows) in batches[..at].iter().enumerate() {
        prop_assert_eq!(
            sorted(step(&mut whole, rows, watermark(i))),
            sorted(step(&mut first, rows, watermark(i)))
        );
    }
    let state: OperatorState = first.snapshot_state(1).unwrap();
    let mut restored: Vec<O> = (0..parallelism)
        .map(|subtask| {
            let mut op = make();
            op.open(&context(subtask, parallelism)).unwrap();
            op.restore_state(&state).unwrap();
            op
        })
        .collect();
    for (i, rows) in batches.iter().enumerate().skip(at) {
        let expected = sorted(step(&mut whole, rows, watermark(i)));
        let mut found = Vec::new();
        for (op, part) in restored
            .iter_mut()
            .zip(route(schema, key_columns, rows, parallelism))
        {
            found.extend(step(op, &part, watermark(i)));
        }
        prop_assert_eq!(expected, sorted(found));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn top_n_consolidates_to_the_top_rows_so_far(
        case in rank_case(),
        raw in raw_rank_rows(),
        sizes in prop::collection::vec(1usize..=7, 1..8),
    ) {
        let schema = rank_schema();
        let mut op = rank_operator(&case);
        op.open(&context(0, 1)).unwrap();
        let mut output = Consolidated::default();
        let mut input = Vec::new();
        for rows in rank_input(&raw, case.insert_only, &sizes) {
            input.extend(rows.iter().cloned());
            let changes = feed_one(&mut op, &schema, &rows);
            if case.insert_only || !case.rank_column {
                // Rows without a rank only enter and leave; with one, numbers change in pairs.
                let well_kinded = changes.iter().all(|(k, _)| {
                    case.rank_column || matches!(k, RowKind::Insert | RowKind::Delete)
                });
                prop_assert!(well_kinded);
            }
            output.apply(&changes)?;
            prop_assert_eq!(output.rows(), rank_reference(&case, &input));
        }
        if case.insert_only {
            // Only the rows that can still be ranked are kept.
            prop_assert!(op.row_count() <= op.partition_count() * case.n as usize);
        }
    }

    #[test]
    fn top_n_restores_from_a_snapshot(
        case in rank_case(),
        raw in raw_rank_rows(),
        sizes in prop::collection::vec(1usize..=7, 1..8),
        at in 0usize..8,
        parallelism in 1usize..=2,
    ) {
        let batches = rank_input(&raw, case.insert_only, &sizes);
        let at = at.min(batches.len());
        check_one_input_restore(
            || rank_operator(&case),
            &rank_schema(),
            &[0],
            &batches,
            None,
            at,
            parallelism,
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// Interval join
// ---------------------------------------------------------------------------------------------

/// `column a <= column b` over the joined row.
#[derive(Debug)]
struct LessOrEqual(usize, usize);

impl fmt::Display for LessOrEqual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} <= #{}", self.0, self.1)
    }
}

impl PhysicalExpr for LessOrEqual {
    fn data_type(&self) -> DataType {
        DataType::Boolean
    }

    fn nullable(&self) -> bool {
        true
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        _ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let result = lt_eq(batch.column(self.0), batch.column(self.1))
            .map_err(|e| EvalError::arrow(self, e))?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

/// One step of a two-input event-time run.
#[derive(Debug, Clone)]
enum JoinStep {
    /// A batch of rows of the left (true) or right side.
    Rows(bool, Vec<Row>),
    /// A watermark.
    Watermark(i64),
}

#[derive(Debug, Clone, Copy)]
struct JoinCase {
    join_type: JoinType,
    lower: i64,
    upper: i64,
    filtered: bool,
}

/// Left rows are (k, ts: TIMESTAMP(3), a), right rows (k, ts: BIGINT, b).
fn join_schemas() -> (SchemaRef, SchemaRef, SchemaRef) {
    let left = schema(&["lk", "lt", "a"], &[1]);
    let right = schema(&["rk", "rt", "b"], &[]);
    let output = schema(&["lk", "lt", "a", "rk", "rt", "b"], &[1]);
    (left, right, output)
}

fn join_operator(case: JoinCase) -> IntervalJoinOperator {
    let (left, right, output) = join_schemas();
    let mut spec = IntervalJoinSpec::new(case.join_type, left, right, output)
        .with_keys([0], [0])
        .with_interval(1, 1, case.lower, case.upper);
    if case.filtered {
        spec = spec.with_filter(Arc::new(LessOrEqual(2, 5)));
    }
    IntervalJoinOperator::new(spec).unwrap()
}

/// Generates steps: rows with times drawn around a slowly rising clock, and watermarks that
/// usually respect a bound of 4 ms behind the largest time seen but sometimes jump ahead
/// (making later rows late).
fn join_steps() -> impl Strategy<Value = Vec<JoinStep>> {
    let row = (value(3), 0i64..12, value(4));
    let step = prop_oneof![
        3 => (any::<bool>(), prop::collection::vec(row, 1..=7)).prop_map(|(left, rows)| (0u8, left, rows)),
        1 => Just((1u8, false, Vec::new())),
        1 => Just((2u8, false, Vec::new())),
    ];
    prop::collection::vec(step, 0..24).prop_map(|raw| {
        let mut clock = 0i64;
        let mut max_seen = i64::MIN;
        let mut watermark = i64::MIN;
        let mut steps = Vec::new();
        for (what, left, rows) in raw {
            match what {
                0 => {
                    let rows: Vec<Row> = rows
                        .into_iter()
                        .map(|(k, jitter, x)| {
                            let t = clock + jitter - 4;
                            max_seen = max_seen.max(t);
                            vec![k, Some(t), x]
                        })
                        .collect();
                    clock += 2;
                    steps.push(JoinStep::Rows(left, rows));
                }
                1 if max_seen > i64::MIN => {
                    watermark = watermark.max(max_seen - 8);
                    steps.push(JoinStep::Watermark(watermark));
                }
                2 if max_seen > i64::MIN => {
                    watermark = watermark.max(max_seen);
                    steps.push(JoinStep::Watermark(watermark));
                }
                _ => {}
            }
        }
        steps
    })
}

fn join_case() -> impl Strategy<Value = JoinCase> {
    (
        prop::sample::select(vec![
            JoinType::Inner,
            JoinType::Left,
            JoinType::Right,
            JoinType::Full,
        ]),
        -6i64..4,
        0i64..6,
        any::<bool>(),
    )
        .prop_map(|(join_type, lower, width, filtered)| JoinCase {
            join_type,
            lower,
            upper: lower + width,
            filtered,
        })
}

/// The reference after each step, as a nested loop: every pair of non-late rows that
/// matches, plus the rows of preserved sides without match that can no longer match (a null
/// key, or the watermark reached their expiry). Also returns the number of late rows.
fn join_reference(case: JoinCase, steps: &[JoinStep]) -> (Vec<Row>, u64) {
    let mut watermark = i64::MIN;
    let (mut left, mut right): (Vec<Row>, Vec<Row>) = (Vec::new(), Vec::new());
    let mut late = 0;
    for step in steps {
        match step {
            JoinStep::Rows(is_left, rows) => {
                for row in rows {
                    if row[1].unwrap() <= watermark {
                        late += 1;
                    } else if *is_left {
                        left.push(row.clone());
                    } else {
                        right.push(row.clone());
                    }
                }
            }
            JoinStep::Watermark(w) => watermark = watermark.max(*w),
        }
    }
    let matches = |l: &Row, r: &Row| {
        let (lt, rt) = (l[1].unwrap(), r[1].unwrap());
        l[0].is_some()
            && l[0] == r[0]
            && rt + case.lower <= lt
            && lt <= rt + case.upper
            && (!case.filtered || matches!((l[2], r[2]), (Some(a), Some(b)) if a <= b))
    };
    let mut result = Vec::new();
    for l in &left {
        for r in &right {
            if matches(l, r) {
                result.push([l.clone(), r.clone()].concat());
            }
        }
    }
    let nulls: Row = vec![None; 3];
    let pads_left = matches!(case.join_type, JoinType::Left | JoinType::Full);
    let pads_right = matches!(case.join_type, JoinType::Right | JoinType::Full);
    if pads_left {
        for l in &left {
            let expired = l[0].is_none() || l[1].unwrap() - case.lower <= watermark;
            if expired && !right.iter().any(|r| matches(l, r)) {
                result.push([l.clone(), nulls.clone()].concat());
            }
        }
    }
    if pads_right {
        for r in &right {
            let expired = r[0].is_none() || r[1].unwrap() + case.upper <= watermark;
            if expired && !left.iter().any(|l| matches(l, r)) {
                result.push([nulls.clone(), r.clone()].concat());
            }
        }
    }
    (sorted(result), late)
}

fn join_step(op: &mut IntervalJoinOperator, step: &JoinStep) -> Result<Vec<Change>, TaskError> {
    let (left, right, _) = join_schemas();
    let mut out = RecordingOutput::default();
    match step {
        JoinStep::Rows(true, rows) => op.process_batch1(batch(&left, &inserts(rows)), &mut out)?,
        JoinStep::Rows(false, rows) => {
            op.process_batch2(batch(&right, &inserts(rows)), &mut out)?
        }
        JoinStep::Watermark(w) => op.process_watermark(*w, &mut out)?,
    }
    Ok(collected(&out))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn interval_join_equals_a_nested_loop_over_timely_rows(case in join_case(), steps in join_steps()) {
        let mut op = join_operator(case);
        let ctx = context(0, 1);
        op.open(&ctx).unwrap();
        let mut output = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let changes = join_step(&mut op, step).unwrap();
            prop_assert!(changes.iter().all(|(k, _)| *k == RowKind::Insert));
            output.extend(changes.into_iter().map(|(_, row)| row));
            let (expected, late) = join_reference(case, &steps[..=i]);
            prop_assert_eq!(sorted(output.clone()), expected);
            prop_assert_eq!(ctx.late_records_dropped(), late);
        }
        let mut all = steps.clone();
        all.push(JoinStep::Watermark(i64::MAX));
        output.extend(join_step(&mut op, &JoinStep::Watermark(i64::MAX)).unwrap().into_iter().map(|(_, r)| r));
        prop_assert_eq!(sorted(output), join_reference(case, &all).0);
        prop_assert_eq!(op.kept_rows(), 0);
    }

    #[test]
    fn interval_join_restores_from_a_snapshot(
        case in join_case(),
        steps in join_steps(),
        at in 0usize..24,
        parallelism in 1usize..=2,
    ) {
        let (left, right, _) = join_schemas();
        let at = at.min(steps.len());
        let mut whole = join_operator(case);
        whole.open(&context(0, 1)).unwrap();
        let mut first = join_operator(case);
        first.open(&context(0, 1)).unwrap();
        for step in &steps[..at] {
            prop_assert_eq!(
                sorted(join_step(&mut whole, step).unwrap()),
                sorted(join_step(&mut first, step).unwrap())
            );
        }
        let state = first.snapshot_state(1).unwrap();
        let mut restored: Vec<IntervalJoinOperator> = (0..parallelism)
            .map(|subtask| {
                let mut op = join_operator(case);
                op.open(&context(subtask, parallelism)).unwrap();
                op.restore_state(&state).unwrap();
                op
            })
            .collect();
        let mut rest = steps[at..].to_vec();
        rest.push(JoinStep::Watermark(i64::MAX));
        for step in &rest {
            let expected = sorted(join_step(&mut whole, step).unwrap());
            let mut found = Vec::new();
            for (subtask, op) in restored.iter_mut().enumerate() {
                let part = match step {
                    JoinStep::Rows(is_left, rows) => {
                        let schema = if *is_left { &left } else { &right };
                        let parts = route(schema, &[0], &inserts(rows), parallelism);
                        let rows: Vec<Row> = parts[subtask].iter().map(|(_, r)| r.clone()).collect();
                        if rows.is_empty() {
                            continue;
                        }
                        JoinStep::Rows(*is_left, rows)
                    }
                    watermark => watermark.clone(),
                };
                found.extend(join_step(op, &part).unwrap());
            }
            prop_assert_eq!(expected, sorted(found));
        }
        prop_assert!(restored.iter().all(|op| op.kept_rows() == 0));
    }
}

#[test]
fn interval_join_rejects_updates_and_bad_specs() {
    let (left, right, output) = join_schemas();
    let mut op = join_operator(JoinCase {
        join_type: JoinType::Inner,
        lower: 0,
        upper: 1,
        filtered: false,
    });
    op.open(&context(0, 1)).unwrap();
    let mut out = RecordingOutput::default();
    let update = batch(&left, &[(RowKind::Delete, vec![Some(1), Some(1), Some(1)])]);
    let err = op.process_batch1(update, &mut out).unwrap_err();
    assert!(format!("{err:?}").contains("UpdatingInput"), "{err:?}");

    let empty = IntervalJoinSpec::new(JoinType::Inner, left.clone(), right.clone(), output.clone())
        .with_keys([0], [0])
        .with_interval(1, 1, 5, 1);
    let err = IntervalJoinOperator::new(empty).unwrap_err();
    assert!(err.to_string().contains("lower_ms <= upper_ms"), "{err}");
    let not_time =
        IntervalJoinSpec::new(JoinType::Inner, left.clone(), right.clone(), output.clone())
            .with_keys([0], [0])
            .with_interval(1, 1, 0, 1);
    assert!(IntervalJoinOperator::new(not_time).is_ok());
    let semi = IntervalJoinSpec::new(JoinType::Semi, left, right, output).with_interval(1, 1, 0, 1);
    assert!(IntervalJoinOperator::new(semi).is_err());
}

#[test]
fn interval_join_holds_its_output_watermark_back_by_the_interval() {
    for (lower, upper, delay) in [(-5, 2, 5), (1, 7, 7), (2, 3, 3), (-4, -1, 4)] {
        let mut op = join_operator(JoinCase {
            join_type: JoinType::Full,
            lower,
            upper,
            filtered: false,
        });
        op.open(&context(0, 1)).unwrap();
        let mut out = RecordingOutput::default();
        op.process_watermark(100, &mut out).unwrap();
        op.process_watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(out.watermarks, vec![100 - delay, i64::MAX]);
    }
}

// ---------------------------------------------------------------------------------------------
// Deduplication
// ---------------------------------------------------------------------------------------------

/// Rows are (k, ts: TIMESTAMP(3), v).
fn dedup_schema() -> SchemaRef {
    schema(&["k", "ts", "v"], &[1])
}

fn dedup_operator(keep: Keep, event_time: bool) -> DeduplicateOperator {
    let order = if event_time {
        DedupOrder::EventTime(1)
    } else {
        DedupOrder::Arrival
    };
    DeduplicateOperator::new(DeduplicateSpec::new(dedup_schema(), [0], keep, order)).unwrap()
}

/// The reference: per key, the row chosen from `rows` in arrival order.
fn dedup_reference(keep: Keep, event_time: bool, rows: &[Row]) -> Vec<Row> {
    let mut kept: BTreeMap<Option<i64>, Row> = BTreeMap::new();
    for row in rows {
        match kept.get(&row[0]) {
            None => {
                kept.insert(row[0], row.clone());
            }
            Some(old) => {
                let replace = match (keep, event_time) {
                    (Keep::First, false) => false,
                    (Keep::Last, false) => true,
                    (Keep::First, true) => row[1] < old[1],
                    (Keep::Last, true) => row[1] >= old[1],
                };
                if replace {
                    kept.insert(row[0], row.clone());
                }
            }
        }
    }
    sorted(kept.into_values().collect())
}

fn dedup_rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (value(4), 0i64..6, value(3)).prop_map(|(k, t, v)| vec![k, Some(t), v]),
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deduplication_consolidates_to_the_chosen_row_per_key(
        first in any::<bool>(),
        event_time in any::<bool>(),
        rows in dedup_rows(),
        sizes in prop::collection::vec(1usize..=7, 1..8),
    ) {
        let keep = if first { Keep::First } else { Keep::Last };
        let schema = dedup_schema();
        let mut op = dedup_operator(keep, event_time);
        op.open(&context(0, 1)).unwrap();
        let mut output = Consolidated::default();
        let mut seen = Vec::new();
        for part in split(&rows, &sizes) {
            seen.extend(part.iter().cloned());
            let changes = feed_one(&mut op, &schema, &inserts(&part));
            if first && !event_time {
                prop_assert!(changes.iter().all(|(k, _)| *k == RowKind::Insert));
            }
            output.apply(&changes)?;
            prop_assert_eq!(output.rows(), dedup_reference(keep, event_time, &seen));
        }
    }

    #[test]
    fn deduplication_restores_from_a_snapshot(
        first in any::<bool>(),
        event_time in any::<bool>(),
        rows in dedup_rows(),
        sizes in prop::collection::vec(1usize..=7, 1..8),
        at in 0usize..8,
        parallelism in 1usize..=2,
    ) {
        let keep = if first { Keep::First } else { Keep::Last };
        let batches: Vec<Vec<Change>> = split(&rows, &sizes).iter().map(|b| inserts(b)).collect();
        let at = at.min(batches.len());
        check_one_input_restore(
            || dedup_operator(keep, event_time),
            &dedup_schema(),
            &[0],
            &batches,
            None,
            at,
            parallelism,
        )?;
    }
}

fn dedup_on_watermark() -> DeduplicateOperator {
    let spec = DeduplicateSpec::new(dedup_schema(), [0], Keep::First, DedupOrder::EventTime(1))
        .with_insert_only_on_watermark(true);
    DeduplicateOperator::new(spec).unwrap()
}

/// The reference of insert-only keep-first: per key, the earliest timely row (first arrival
/// among equal times), emitted once the watermark reached it; and the number of late rows.
fn dedup_on_watermark_reference(steps: &[JoinStep]) -> (Vec<Row>, u64) {
    let mut watermark = i64::MIN;
    let mut timely = Vec::new();
    let mut late = 0;
    for step in steps {
        match step {
            JoinStep::Rows(_, rows) => {
                for row in rows {
                    if row[1].unwrap() <= watermark {
                        late += 1;
                    } else {
                        timely.push(row.clone());
                    }
                }
            }
            JoinStep::Watermark(w) => watermark = watermark.max(*w),
        }
    }
    let chosen = dedup_reference(Keep::First, true, &timely);
    let emitted = chosen
        .into_iter()
        .filter(|r| r[1].unwrap() <= watermark)
        .collect();
    (emitted, late)
}

fn dedup_step(op: &mut DeduplicateOperator, step: &JoinStep) -> Vec<Change> {
    let mut out = RecordingOutput::default();
    match step {
        JoinStep::Rows(_, rows) => op
            .process_batch(batch(&dedup_schema(), &inserts(rows)), &mut out)
            .unwrap(),
        JoinStep::Watermark(w) => op.process_watermark(*w, &mut out).unwrap(),
    }
    collected(&out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn keep_first_on_the_watermark_is_insert_only_and_final(steps in join_steps()) {
        let mut op = dedup_on_watermark();
        let ctx = context(0, 1);
        op.open(&ctx).unwrap();
        let mut all = steps.clone();
        all.push(JoinStep::Watermark(i64::MAX));
        let mut output = Vec::new();
        for (i, step) in all.iter().enumerate() {
            let changes = dedup_step(&mut op, step);
            prop_assert!(changes.iter().all(|(k, _)| *k == RowKind::Insert));
            output.extend(changes.into_iter().map(|(_, row)| row));
            let (expected, late) = dedup_on_watermark_reference(&all[..=i]);
            prop_assert_eq!(sorted(output.clone()), expected);
            prop_assert_eq!(ctx.late_records_dropped(), late);
        }
        prop_assert_eq!(op.waiting_rows(), 0);
    }

    #[test]
    fn keep_first_on_the_watermark_restores_from_a_snapshot(
        steps in join_steps(),
        at in 0usize..24,
        parallelism in 1usize..=2,
    ) {
        let mut batches = Vec::new();
        let mut watermarks = Vec::new();
        for step in &steps {
            match step {
                JoinStep::Rows(_, rows) => {
                    batches.push(inserts(rows));
                    watermarks.push(i64::MIN);
                }
                JoinStep::Watermark(w) => {
                    batches.push(Vec::new());
                    watermarks.push(*w);
                }
            }
        }
        batches.push(Vec::new());
        watermarks.push(i64::MAX);
        let at = at.min(batches.len() - 1);
        check_one_input_restore(
            dedup_on_watermark,
            &dedup_schema(),
            &[0],
            &batches,
            Some(&watermarks),
            at,
            parallelism,
        )?;
    }
}

#[test]
fn deduplication_rejects_updates() {
    let mut op = dedup_operator(Keep::Last, true);
    op.open(&context(0, 1)).unwrap();
    let mut out = RecordingOutput::default();
    let update = batch(
        &dedup_schema(),
        &[(RowKind::UpdateBefore, vec![Some(1), Some(1), None])],
    );
    let err = op.process_batch(update, &mut out).unwrap_err();
    assert!(format!("{err:?}").contains("UpdatingInput"), "{err:?}");
    let last_on_watermark =
        DeduplicateSpec::new(dedup_schema(), [0], Keep::Last, DedupOrder::EventTime(1))
            .with_insert_only_on_watermark(true);
    assert!(DeduplicateOperator::new(last_on_watermark).is_err());
}

// ---------------------------------------------------------------------------------------------
// OVER aggregation
// ---------------------------------------------------------------------------------------------

/// Rows are (k, ts: TIMESTAMP(3), v); outputs add COUNT(*), SUM(v), MIN(v), MAX(v).
fn over_operator(frame: OverFrame) -> OverAggregateOperator {
    let out = |name: &str, nullable: bool| Field::new(name, DataType::Int64, nullable);
    let aggregates = [
        AggregateCall::new(AggregateKind::CountStar, [], out("n", false)),
        AggregateCall::new(AggregateKind::Sum, [2], out("total", true)),
        AggregateCall::new(AggregateKind::Min, [2], out("low", true)),
        AggregateCall::new(AggregateKind::Max, [2], out("high", true)),
    ];
    let spec = OverAggregateSpec::new(dedup_schema(), [0], 1, frame, aggregates);
    OverAggregateOperator::new(spec).unwrap()
}

fn over_frame() -> impl Strategy<Value = OverFrame> {
    prop_oneof![
        prop::option::of(0u64..4).prop_map(|preceding| OverFrame::Rows { preceding }),
        prop::option::of(0i64..6).prop_map(|preceding_ms| OverFrame::Range { preceding_ms }),
    ]
}

/// The reference: each timely row with its aggregates over its frame among the timely rows of
/// its partition, and whether the watermark has reached it; plus the number of late rows.
fn over_reference(frame: OverFrame, steps: &[JoinStep]) -> (Vec<Row>, u64) {
    let mut watermark = i64::MIN;
    let mut timely: Vec<Row> = Vec::new();
    let mut late = 0;
    for step in steps {
        match step {
            JoinStep::Rows(_, rows) => {
                for row in rows {
                    if row[1].unwrap() <= watermark {
                        late += 1;
                    } else {
                        timely.push(row.clone());
                    }
                }
            }
            JoinStep::Watermark(w) => watermark = watermark.max(*w),
        }
    }
    // Stable sort: equal times keep arrival order.
    let mut ordered = timely.clone();
    ordered.sort_by_key(|r| r[1]);
    let mut result = Vec::new();
    for (i, row) in ordered.iter().enumerate() {
        let t = row[1].unwrap();
        if t > watermark {
            continue;
        }
        let partition: Vec<(usize, &Row)> = ordered
            .iter()
            .enumerate()
            .filter(|(_, r)| r[0] == row[0])
            .collect();
        let in_frame: Vec<&Row> = match frame {
            OverFrame::Rows { preceding } => {
                let at = partition.iter().position(|(j, _)| *j == i).unwrap();
                let from = preceding.map_or(0, |p| at.saturating_sub(p as usize));
                partition[from..=at].iter().map(|(_, r)| *r).collect()
            }
            OverFrame::Range { preceding_ms } => partition
                .iter()
                .map(|(_, r)| *r)
                .filter(|r| {
                    let rt = r[1].unwrap();
                    rt <= t && preceding_ms.is_none_or(|ms| rt >= t - ms)
                })
                .collect(),
        };
        let values: Vec<i64> = in_frame.iter().filter_map(|r| r[2]).collect();
        let mut out = row.clone();
        out.push(Some(in_frame.len() as i64));
        out.push((!values.is_empty()).then(|| values.iter().sum()));
        out.push(values.iter().min().copied());
        out.push(values.iter().max().copied());
        result.push(out);
    }
    (sorted(result), late)
}

fn over_step(op: &mut OverAggregateOperator, step: &JoinStep) -> Vec<Change> {
    let mut out = RecordingOutput::default();
    match step {
        JoinStep::Rows(_, rows) => op
            .process_batch(batch(&dedup_schema(), &inserts(rows)), &mut out)
            .unwrap(),
        JoinStep::Watermark(w) => op.process_watermark(*w, &mut out).unwrap(),
    }
    collected(&out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn over_aggregation_equals_a_per_row_computation(frame in over_frame(), steps in join_steps()) {
        let mut op = over_operator(frame);
        let ctx = context(0, 1);
        op.open(&ctx).unwrap();
        let mut output = Vec::new();
        let mut all = steps.clone();
        all.push(JoinStep::Watermark(i64::MAX));
        for (i, step) in all.iter().enumerate() {
            let changes = over_step(&mut op, step);
            prop_assert!(changes.iter().all(|(k, _)| *k == RowKind::Insert));
            output.extend(changes.into_iter().map(|(_, row)| row));
            let (expected, late) = over_reference(frame, &all[..=i]);
            prop_assert_eq!(sorted(output.clone()), expected);
            prop_assert_eq!(ctx.late_records_dropped(), late);
        }
        prop_assert_eq!(op.pending_rows(), 0);
        prop_assert_eq!(op.partition_count(), 0);
    }

    #[test]
    fn over_aggregation_restores_from_a_snapshot(
        frame in over_frame(),
        steps in join_steps(),
        at in 0usize..24,
        parallelism in 1usize..=2,
    ) {
        let mut batches = Vec::new();
        let mut watermarks = Vec::new();
        for step in &steps {
            match step {
                JoinStep::Rows(_, rows) => {
                    batches.push(inserts(rows));
                    watermarks.push(i64::MIN);
                }
                JoinStep::Watermark(w) => {
                    batches.push(Vec::new());
                    watermarks.push(*w);
                }
            }
        }
        batches.push(Vec::new());
        watermarks.push(i64::MAX);
        let at = at.min(batches.len() - 1);
        check_one_input_restore(
            || over_operator(frame),
            &dedup_schema(),
            &[0],
            &batches,
            Some(&watermarks),
            at,
            parallelism,
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// In a job: hash exchange, parallel subtasks, watermarks from upstream, end of input
// ---------------------------------------------------------------------------------------------

/// Emits, after each batch, a watermark `bound` behind the largest time of `column` seen.
struct BoundedWatermarks {
    column: usize,
    bound: i64,
    max: i64,
}

impl Operator for BoundedWatermarks {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        let times = batch.data().column(self.column).as_primitive::<Int64Type>();
        self.max = times.values().iter().copied().fold(self.max, i64::max);
        out.collect(batch)?;
        if self.max > i64::MIN {
            out.emit_watermark(self.max - self.bound)?;
        }
        Ok(())
    }
}

/// Deterministic rows (k, ts, v): keys 0..5, times rising with a jitter of at most 3 ms, and
/// distinct values.
fn job_rows(count: i64, seed: i64) -> Vec<Row> {
    (0..count)
        .map(|i| {
            let mix = (i * 7919 + seed * 104_729) % 1009;
            vec![Some(mix % 5), Some(i * 2 - mix % 4), Some(i * 10 + seed)]
        })
        .collect()
}

fn job_batches(schema: &SchemaRef, rows: &[Row]) -> Vec<RecordBatch> {
    rows.chunks(5)
        .map(|chunk| batch(schema, &inserts(chunk)).into_data())
        .collect()
}

fn flink_row(kind: RowKind, row: &Row) -> String {
    let values: Vec<String> = row
        .iter()
        .map(|v| v.map_or("null".to_owned(), |x| x.to_string()))
        .collect();
    format!("{kind}[{}]", values.join(", "))
}

#[test]
fn interval_join_in_a_parallel_job_equals_the_nested_loop() {
    let left = schema(&["lk", "lt", "a"], &[]);
    let right = schema(&["rk", "rt", "b"], &[]);
    let output = schema(&["lk", "lt", "a", "rk", "rt", "b"], &[]);
    let (left_rows, right_rows) = (job_rows(120, 1), job_rows(120, 2));
    let case = JoinCase {
        join_type: JoinType::Full,
        lower: -3,
        upper: 2,
        filtered: false,
    };
    let steps = [
        JoinStep::Rows(true, left_rows.clone()),
        JoinStep::Rows(false, right_rows.clone()),
        JoinStep::Watermark(i64::MAX),
    ];
    let expected: Vec<String> = join_reference(case, &steps)
        .0
        .iter()
        .map(|row| flink_row(RowKind::Insert, row))
        .collect();
    let padded = expected.iter().filter(|r| r.contains("null")).count();
    assert!(padded > 0 && padded < expected.len(), "{expected:?}");

    let env = StreamEnv::new()
        .with_parallelism(2)
        .with_max_parallelism(MAX_PARALLELISM);
    let side = |schema: &SchemaRef, rows: &[Row]| {
        env.from_source(RecordBatchSource::new(job_batches(schema, rows)))
            .transform("Watermarks", || BoundedWatermarks {
                column: 1,
                bound: 4,
                max: i64::MIN,
            })
            .partition_by_key(ArrowKeySelector::new([0]))
    };
    let (l, r) = (side(&left, &left_rows), side(&right, &right_rows));
    let spec = IntervalJoinSpec::new(JoinType::Full, left, right, output)
        .with_keys([0], [0])
        .with_interval(1, 1, case.lower, case.upper);
    let joined = l
        .transform_two_input(&r, "IntervalJoin", move || {
            IntervalJoinOperator::new(spec.clone()).expect("a valid join")
        })
        .collect_table();
    let result = env.execute("interval join").expect("the job runs");
    assert_eq!(sorted(joined.take_changelog()), sorted(expected));
    let stats = result.operator("IntervalJoin").expect("the join ran");
    assert_eq!(stats.late_records_dropped, 0);
}

#[test]
fn top_n_in_a_parallel_job_consolidates_to_the_reference() {
    let input = schema(&["k", "v", "w"], &[]);
    let rows: Vec<Row> = job_rows(150, 3)
        .into_iter()
        .map(|r| vec![r[0], r[2], Some(0)])
        .collect();
    let case = RankCase {
        descending: true,
        nulls_first: true,
        start: 1,
        n: 2,
        rank_column: true,
        insert_only: true,
    };
    let env = StreamEnv::new()
        .with_parallelism(2)
        .with_max_parallelism(MAX_PARALLELISM);
    let changes = env
        .from_source(RecordBatchSource::new(job_batches(&input, &rows)))
        .partition_by_key(ArrowKeySelector::new([0]))
        .transform("Rank", {
            let case = case.clone();
            move || rank_operator(&case)
        })
        .collect_table();
    env.execute("top-n").expect("the job runs");
    // Consolidate the printed changelog: +I/+U add a row, -U/-D remove it.
    let mut live: BTreeMap<String, i64> = BTreeMap::new();
    for line in changes.take_changelog() {
        let (kind, row) = line.split_at(2);
        let count = live.entry(row.to_owned()).or_default();
        *count += if kind.starts_with('+') { 1 } else { -1 };
        assert!(*count >= 0, "{line} retracts a row that was not emitted");
    }
    live.retain(|_, c| *c != 0);
    let found: Vec<String> = live.into_keys().collect();
    let expected: Vec<String> = rank_reference(&case, &inserts(&rows))
        .iter()
        .map(|row| flink_row(RowKind::Insert, row)[2..].to_owned())
        .collect();
    assert_eq!(sorted(found), sorted(expected));
}
