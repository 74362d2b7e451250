//! The window operators of the relational plane against plain-Rust references: random rows
//! (null keys, timestamps out of order within a bound, some rows later than that), random batch
//! splits and watermarks that respect the bound. Each operator's output, the watermark it was
//! emitted at, and its count of late rows must equal a straightforward per-window computation;
//! a snapshot restored into fresh operators (at parallelism 1 and 2) must continue exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::compute::kernels::cmp::lt_eq;
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use proptest::prelude::*;
use rivulet_runtime::exchange::{ArrowKeySelector, BatchKeySelector};
use rivulet_runtime::keys::subtask_for_key_group;
use rivulet_runtime::operator::OperatorState;
use rivulet_runtime::operator::testing::RecordingOutput;
use rivulet_runtime::relational::window::{RankSortKey, WindowColumns};
use rivulet_runtime::relational::{
    AggregateCall, AggregateKind, ColumnarValue, EvalContext, EvalError, JoinType,
    LocalWindowAggregateOperator, PhysicalExpr, WindowAggregateOperator, WindowAggregateSpec,
    WindowAssignOperator, WindowError, WindowJoinOperator, WindowJoinSpec, WindowRankOperator,
    WindowRankSpec, WindowTvf,
};
use rivulet_runtime::source::RecordBatchSource;
use rivulet_runtime::{
    ChangelogBatch, Operator, OperatorContext, Output, Records, RowKind, StreamEnv, TaskError,
    TwoInputOperator,
};

const MAX_PARALLELISM: u16 = 128;

/// Rows arrive at most this far behind the largest time seen, unless generated late.
const BOUND: i64 = 6;

/// An input row: key, value, event time.
type Row = (Option<i64>, Option<i64>, i64);

/// An output cell.
type Cell = Option<i64>;

/// One input event: rows of one side (true = left, the only side of one-input operators), or
/// a watermark.
#[derive(Debug, Clone)]
enum Step {
    Rows(bool, Vec<Row>),
    Watermark(i64),
}

/// Raw rows: key, value, time advance, delay within the bound, whether the row is late.
type RawRow = (Option<i64>, Option<i64>, i64, i64, bool);

fn raw_steps() -> impl Strategy<Value = (i64, Vec<(bool, Vec<RawRow>, bool)>)> {
    let key = prop_oneof![1 => Just(None), 5 => (0i64..3).prop_map(Some)];
    let value = prop_oneof![1 => Just(None), 5 => (-5i64..6).prop_map(Some)];
    let row = (key, value, 0i64..4, 0..=BOUND, prop::bool::weighted(0.1));
    let batch = (
        any::<bool>(),
        prop::collection::vec(row, 1..8),
        prop::bool::weighted(0.6),
    );
    (-60i64..60, prop::collection::vec(batch, 1..16))
}

/// Turns raw rows into timed steps: a clock that advances, rows up to `BOUND` behind it (late
/// ones further), and after a batch maybe the bounded-out-of-orderness watermark.
fn steps((start, raw): (i64, Vec<(bool, Vec<RawRow>, bool)>)) -> Vec<Step> {
    let mut clock = start;
    let mut max_time = i64::MIN;
    let mut watermark = i64::MIN;
    let mut steps = Vec::new();
    for (left, rows, emit) in raw {
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(k, v, advance, delay, late)| {
                clock += advance;
                let time = clock - delay - if late { BOUND + 3 } else { 0 };
                max_time = max_time.max(time);
                (k, v, time)
            })
            .collect();
        steps.push(Step::Rows(left, rows));
        if emit && max_time - BOUND - 1 > watermark {
            watermark = max_time - BOUND - 1;
            steps.push(Step::Watermark(watermark));
        }
    }
    steps
}

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

fn batch(rows: &[Row]) -> ChangelogBatch {
    let data = RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.2),
            )),
        ],
    )
    .unwrap();
    ChangelogBatch::insert_only(data)
}

fn cells(batch: &ChangelogBatch) -> Vec<Vec<Cell>> {
    assert!(batch.is_insert_only(), "window operators emit inserts only");
    let data = batch.data();
    (0..data.num_rows())
        .map(|i| {
            data.columns()
                .iter()
                .map(|c| {
                    if c.is_null(i) {
                        return None;
                    }
                    Some(match c.data_type() {
                        DataType::Int64 => c.as_primitive::<Int64Type>().value(i),
                        DataType::Timestamp(..) => {
                            c.as_primitive::<TimestampMillisecondType>().value(i)
                        }
                        other => panic!("no test cell for {other}"),
                    })
                })
                .collect()
        })
        .collect()
}

/// Output rows, each tagged with the number of watermarks seen before it was emitted
/// (`usize::MAX` for the end of input).
type Tagged = Vec<(usize, Vec<Cell>)>;

fn sorted(mut rows: Tagged) -> Tagged {
    rows.sort();
    rows
}

fn context(subtask: usize, parallelism: usize) -> OperatorContext {
    OperatorContext::new("window", subtask, parallelism, MAX_PARALLELISM)
}

/// Every window of `tvf` containing `t`, found by scanning the candidate starts one by one.
fn windows_of(tvf: WindowTvf, t: i64) -> Vec<(i64, i64)> {
    let aligned = |start: i64, offset: i64, unit: i64| (start - offset).rem_euclid(unit) == 0;
    let mut windows = Vec::new();
    match tvf {
        WindowTvf::Tumble { size, offset } => {
            windows.extend(
                (t - size + 1..=t)
                    .filter(|&s| aligned(s, offset, size))
                    .map(|s| (s, s + size)),
            );
        }
        WindowTvf::Hop {
            slide,
            size,
            offset,
        } => {
            windows.extend(
                (t - size + 1..=t)
                    .filter(|&s| aligned(s, offset, slide))
                    .map(|s| (s, s + size)),
            );
        }
        WindowTvf::Cumulate {
            step,
            max_size,
            offset,
        } => {
            for start in (t - max_size + 1..=t).filter(|&s| aligned(s, offset, max_size)) {
                for k in 1..=max_size / step {
                    if start + k * step > t {
                        windows.push((start, start + k * step));
                    }
                }
            }
        }
        WindowTvf::Session { .. } => unreachable!("sessions have their own reference"),
    }
    windows
}

/// A row is late when the first of its windows to fire has fired (Flink drops the whole row).
fn is_late(tvf: WindowTvf, t: i64, watermark: i64) -> bool {
    windows_of(tvf, t).iter().map(|w| w.1).min().unwrap() - 1 <= watermark
}

fn tvfs() -> impl Strategy<Value = WindowTvf> {
    prop_oneof![
        (1i64..12, -5i64..5).prop_map(|(size, offset)| WindowTvf::Tumble { size, offset }),
        (1i64..5, 1i64..4, -5i64..5).prop_map(|(slide, k, offset)| WindowTvf::Hop {
            slide,
            size: slide * k,
            offset
        }),
        (1i64..5, 1i64..4, -5i64..5).prop_map(|(step, k, offset)| WindowTvf::Cumulate {
            step,
            max_size: step * k,
            offset
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Window aggregation

/// `k, window_start, window_end, window_time, COUNT(*), SUM(v), MIN(v), MAX(v), COUNT(v)`.
fn aggregate_operator(tvf: WindowTvf, keyed: bool) -> WindowAggregateOperator {
    WindowAggregateOperator::new(aggregate_spec(tvf, keyed)).unwrap()
}

fn aggregate_spec(tvf: WindowTvf, keyed: bool) -> WindowAggregateSpec {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields = Vec::new();
    if keyed {
        fields.push(Field::new("k", DataType::Int64, true));
    }
    for name in ["window_start", "window_end", "window_time"] {
        fields.push(Field::new(name, ts.clone(), false));
    }
    let int = |name: &str, nullable| Field::new(name, DataType::Int64, nullable);
    fields.extend([
        int("rows", false),
        int("total", true),
        int("low", true),
        int("high", true),
        int("values", false),
    ]);
    WindowAggregateSpec {
        time_column: 2,
        window: tvf,
        group_columns: if keyed { vec![0] } else { vec![] },
        aggregates: vec![
            AggregateCall::new(AggregateKind::CountStar, [], int("rows", false)),
            AggregateCall::new(AggregateKind::Sum, [1], int("total", true)),
            AggregateCall::new(AggregateKind::Min, [1], int("low", true)),
            AggregateCall::new(AggregateKind::Max, [1], int("high", true)),
            AggregateCall::new(AggregateKind::Count, [1], int("values", false)),
        ],
        input_schema: input_schema(),
        output_schema: Arc::new(Schema::new(fields)),
    }
}

/// The aggregate row of a key's window over `values`.
fn aggregate_row(key: Option<Cell>, (start, end): (i64, i64), values: &[Cell]) -> Vec<Cell> {
    let present: Vec<i64> = values.iter().flatten().copied().collect();
    let mut row: Vec<Cell> = key.into_iter().collect();
    row.extend([
        Some(start),
        Some(end),
        Some(end - 1),
        Some(values.len() as i64),
    ]);
    row.push((!present.is_empty()).then(|| present.iter().sum()));
    row.push(present.iter().min().copied());
    row.push(present.iter().max().copied());
    row.push(Some(present.len() as i64));
    row
}

/// The reference of a non-merging window aggregate: which rows are late, then per key and
/// window the aggregates, emitted at the first watermark reaching the window's end.
fn reference_aggregate(tvf: WindowTvf, keyed: bool, steps: &[Step]) -> (Tagged, u64) {
    let mut watermark = i64::MIN;
    let mut watermarks = Vec::new();
    let mut late = 0;
    // (key, or none without group columns; window) -> values
    type Windows = BTreeMap<(Option<Cell>, (i64, i64)), Vec<Cell>>;
    let mut windows = Windows::new();
    for step in steps {
        match step {
            Step::Rows(_, rows) => {
                for &(k, v, t) in rows {
                    if is_late(tvf, t, watermark) {
                        late += 1;
                        continue;
                    }
                    for window in windows_of(tvf, t) {
                        windows
                            .entry((keyed.then_some(k), window))
                            .or_default()
                            .push(v);
                    }
                }
            }
            Step::Watermark(w) => {
                watermark = *w;
                watermarks.push(*w);
            }
        }
    }
    let fired_at = |end: i64| {
        watermarks
            .iter()
            .position(|&w| end - 1 <= w)
            .map_or(usize::MAX, |i| i + 1)
    };
    let rows = windows
        .iter()
        .map(|((k, window), values)| (fired_at(window.1), aggregate_row(*k, *window, values)))
        .collect();
    (sorted(rows), late)
}

/// Runs a one-input operator over `steps`, then the end of input (maximum watermark, finish).
fn run<O>(
    op: &mut O,
    steps: &[Step],
    seen: &mut usize,
    feed: impl Fn(&[Row]) -> ChangelogBatch,
) -> Tagged
where
    O: Operator<In = ChangelogBatch, Out = ChangelogBatch>,
{
    let mut rows = Vec::new();
    for step in steps {
        let mut out = RecordingOutput::default();
        match step {
            Step::Rows(_, batch_rows) => op.process_batch(feed(batch_rows), &mut out).unwrap(),
            Step::Watermark(w) => {
                *seen += 1;
                op.process_watermark(*w, &mut out).unwrap();
                assert_eq!(
                    out.watermarks,
                    [*w],
                    "the watermark is forwarded after results"
                );
            }
        }
        rows.extend(out.batches.iter().flat_map(cells).map(|r| (*seen, r)));
    }
    rows
}

fn end_of_input<O>(op: &mut O) -> Tagged
where
    O: Operator<In = ChangelogBatch, Out = ChangelogBatch>,
{
    let mut out = RecordingOutput::default();
    op.process_watermark(i64::MAX, &mut out).unwrap();
    op.finish(&mut out).unwrap();
    out.batches
        .iter()
        .flat_map(cells)
        .map(|r| (usize::MAX, r))
        .collect()
}

/// Routes rows to the subtasks of `parallelism` by the key column, as the hash exchange does.
fn route(rows: &[Row], parallelism: usize) -> Vec<Vec<Row>> {
    let mut groups = Vec::new();
    ArrowKeySelector::new(vec![0])
        .key_groups(&batch(rows), MAX_PARALLELISM, &mut groups)
        .unwrap();
    let mut parts = vec![Vec::new(); parallelism];
    for (row, group) in rows.iter().zip(groups) {
        parts[subtask_for_key_group(MAX_PARALLELISM, parallelism, group)].push(*row);
    }
    parts
}

/// Runs `make()` over all steps uninterrupted, and again with a snapshot after `split` steps
/// restored into `parallelism` fresh subtasks fed by key group; everything emitted after the
/// split (with the watermark it came at) and the late count must be the same.
fn check_restore<O>(
    make: impl Fn() -> O,
    steps: &[Step],
    split: usize,
    parallelism: usize,
    feed: impl Fn(&[Row]) -> ChangelogBatch + Copy,
) -> Result<(), TestCaseError>
where
    O: Operator<In = ChangelogBatch, Out = ChangelogBatch>,
{
    let (mut whole, mut first) = (make(), make());
    let (whole_ctx, first_ctx) = (context(0, 1), context(0, 1));
    whole.open(&whole_ctx).unwrap();
    first.open(&first_ctx).unwrap();
    let (mut a, mut b) = (0, 0);
    let before = run(&mut first, &steps[..split], &mut b, feed);
    prop_assert_eq!(
        sorted(run(&mut whole, &steps[..split], &mut a, feed)),
        sorted(before)
    );
    let state: OperatorState = first.snapshot_state(1).unwrap();
    let mut expected = run(&mut whole, &steps[split..], &mut a, feed);
    expected.extend(end_of_input(&mut whole));

    let contexts: Vec<OperatorContext> =
        (0..parallelism).map(|s| context(s, parallelism)).collect();
    let mut restored: Vec<O> = contexts
        .iter()
        .map(|ctx| {
            let mut op = make();
            op.open(ctx).unwrap();
            op.restore_state(&state).unwrap();
            op
        })
        .collect();
    let mut found = Vec::new();
    let mut seen = vec![b; parallelism];
    for step in &steps[split..] {
        let parts: Vec<Step> = match step {
            Step::Rows(left, rows) => route(rows, parallelism)
                .into_iter()
                .map(|part| Step::Rows(*left, part))
                .collect(),
            Step::Watermark(_) => vec![step.clone(); parallelism],
        };
        for ((op, part), seen) in restored.iter_mut().zip(parts).zip(&mut seen) {
            if matches!(&part, Step::Rows(_, rows) if rows.is_empty()) {
                continue;
            }
            found.extend(run(op, std::slice::from_ref(&part), seen, feed));
        }
    }
    for op in &mut restored {
        found.extend(end_of_input(op));
    }
    prop_assert_eq!(sorted(expected), sorted(found));
    let late_after: u64 = contexts.iter().map(|c| c.late_records_dropped()).sum();
    prop_assert_eq!(
        whole_ctx.late_records_dropped(),
        first_ctx.late_records_dropped() + late_after
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn window_aggregate_equals_per_window_reference(
        raw in raw_steps(), tvf in tvfs(), keyed in any::<bool>()
    ) {
        let steps = steps(raw);
        let (expected, late) = reference_aggregate(tvf, keyed, &steps);
        let mut op = aggregate_operator(tvf, keyed);
        let ctx = context(0, 1);
        op.open(&ctx).unwrap();
        let mut seen = 0;
        let mut found = run(&mut op, &steps, &mut seen, batch);
        found.extend(end_of_input(&mut op));
        prop_assert_eq!(sorted(found), expected);
        prop_assert_eq!(ctx.late_records_dropped(), late);
        prop_assert_eq!(op.window_count(), 0);
        prop_assert_eq!(op.key_count(), 0);
    }

    #[test]
    fn window_aggregate_restores_at_another_parallelism(
        raw in raw_steps(), tvf in tvfs(), split in any::<prop::sample::Index>(),
        parallelism in 1usize..=2,
    ) {
        let steps = steps(raw);
        let split = split.index(steps.len() + 1);
        check_restore(|| aggregate_operator(tvf, true), &steps, split, parallelism, batch)?;
    }
}

/// The subtask of each row of `batch` by its column 0, as the hash exchange routes it.
fn route_batch(batch: &ChangelogBatch, parallelism: usize) -> Vec<ChangelogBatch> {
    let mut groups = Vec::new();
    ArrowKeySelector::new(vec![0])
        .key_groups(batch, MAX_PARALLELISM, &mut groups)
        .unwrap();
    (0..parallelism)
        .map(|subtask| {
            let rows: Vec<u32> = (0..batch.num_rows() as u32)
                .filter(|&row| {
                    subtask_for_key_group(MAX_PARALLELISM, parallelism, groups[row as usize])
                        == subtask
                })
                .collect();
            batch.take(&rows.into()).unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn two_phase_window_aggregate_equals_the_reference(
        raw in raw_steps(), tvf in tvfs(), keyed in any::<bool>(), parallelism in 1usize..=2,
    ) {
        let steps = steps(raw);
        let parallelism = if keyed { parallelism } else { 1 };
        let (expected, late) = reference_aggregate(tvf, keyed, &steps);
        let spec = aggregate_spec(tvf, keyed);
        let mut local = LocalWindowAggregateOperator::new(spec.clone()).unwrap();
        let local_ctx = context(0, 1);
        local.open(&local_ctx).unwrap();
        let mut globals: Vec<WindowAggregateOperator> = (0..parallelism)
            .map(|subtask| {
                let mut global = WindowAggregateOperator::global(spec.clone()).unwrap();
                global.open(&context(subtask, parallelism)).unwrap();
                global
            })
            .collect();
        let mut found = Vec::new();
        let mut seen = 0;
        for step in &steps {
            let mut partials = RecordingOutput::default();
            match step {
                Step::Rows(_, rows) => local.process_batch(batch(rows), &mut partials).unwrap(),
                Step::Watermark(w) => {
                    local.process_watermark(*w, &mut partials).unwrap();
                    prop_assert!(partials.batches.is_empty());
                }
            }
            for partial in &partials.batches {
                for (global, part) in globals.iter_mut().zip(route_batch(partial, parallelism)) {
                    global.process_batch(part, &mut RecordingOutput::default()).unwrap();
                }
            }
            if let Step::Watermark(w) = step {
                seen += 1;
                for global in &mut globals {
                    let mut out = RecordingOutput::default();
                    global.process_watermark(*w, &mut out).unwrap();
                    found.extend(out.batches.iter().flat_map(cells).map(|r| (seen, r)));
                }
            }
        }
        for global in &mut globals {
            found.extend(end_of_input(global));
            prop_assert_eq!(global.window_count(), 0);
        }
        prop_assert_eq!(sorted(found), expected);
        prop_assert_eq!(local_ctx.late_records_dropped(), late);
    }
}

// ---------------------------------------------------------------------------------------------
// Session windows

fn session_operator(gap: i64) -> WindowAggregateOperator {
    aggregate_operator(WindowTvf::session(gap).unwrap(), true)
}

/// A session being built by the reference: its bounds and values.
struct Session {
    start: i64,
    end: i64,
    values: Vec<Cell>,
}

/// The reference of session aggregation, simulated row by row: a row opens `[t, t + gap)` and
/// merges with every open session of its key it overlaps or touches; it is late when it
/// merges with none and its own window already ended. Sessions fire at the first watermark
/// reaching their end.
fn reference_sessions(gap: i64, steps: &[Step]) -> (Tagged, u64) {
    let mut open: BTreeMap<Cell, Vec<Session>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut late = 0;
    let mut watermark = i64::MIN;
    let mut seen = 0;
    let mut fire = |open: &mut BTreeMap<Cell, Vec<Session>>, watermark: i64, tag: usize| {
        for (k, sessions) in open.iter_mut() {
            sessions.retain(|s| {
                if s.end - 1 <= watermark {
                    out.push((tag, aggregate_row(Some(*k), (s.start, s.end), &s.values)));
                    false
                } else {
                    true
                }
            });
        }
    };
    for step in steps {
        match step {
            Step::Rows(_, rows) => {
                for &(k, v, t) in rows {
                    let sessions = open.entry(k).or_default();
                    let mut merged = Session {
                        start: t,
                        end: t + gap,
                        values: vec![v],
                    };
                    let (touching, apart): (Vec<Session>, Vec<Session>) = sessions
                        .drain(..)
                        .partition(|s| s.start <= merged.end && s.end >= merged.start);
                    *sessions = apart;
                    if touching.is_empty() && merged.end - 1 <= watermark {
                        late += 1;
                        continue;
                    }
                    for s in touching {
                        merged.start = merged.start.min(s.start);
                        merged.end = merged.end.max(s.end);
                        merged.values.extend(s.values);
                    }
                    sessions.push(merged);
                }
            }
            Step::Watermark(w) => {
                seen += 1;
                watermark = *w;
                fire(&mut open, watermark, seen);
            }
        }
    }
    fire(&mut open, i64::MAX, usize::MAX);
    (sorted(out), late)
}

/// Sessions of a whole input at once: per key, sorted times split where the next time is more
/// than `gap` after the previous one.
fn offline_sessions(gap: i64, rows: &[Row]) -> Vec<Vec<Cell>> {
    let mut by_key: BTreeMap<Cell, Vec<(i64, Cell)>> = BTreeMap::new();
    for &(k, v, t) in rows {
        by_key.entry(k).or_default().push((t, v));
    }
    let mut out = Vec::new();
    for (k, mut rows) in by_key {
        rows.sort();
        let mut i = 0;
        while i < rows.len() {
            let mut j = i + 1;
            while j < rows.len() && rows[j].0 <= rows[j - 1].0 + gap {
                j += 1;
            }
            let values: Vec<Cell> = rows[i..j].iter().map(|r| r.1).collect();
            out.push(aggregate_row(
                Some(k),
                (rows[i].0, rows[j - 1].0 + gap),
                &values,
            ));
            i = j;
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn session_aggregate_equals_simulated_sessions(raw in raw_steps(), gap in 1i64..8) {
        let steps = steps(raw);
        let (expected, late) = reference_sessions(gap, &steps);
        let mut op = session_operator(gap);
        let ctx = context(0, 1);
        op.open(&ctx).unwrap();
        let mut seen = 0;
        let mut found = run(&mut op, &steps, &mut seen, batch);
        found.extend(end_of_input(&mut op));
        prop_assert_eq!(sorted(found), expected);
        prop_assert_eq!(ctx.late_records_dropped(), late);
        prop_assert_eq!(op.window_count(), 0);
        prop_assert_eq!(op.key_count(), 0);
    }

    #[test]
    fn sessions_without_watermarks_equal_offline_gaps(raw in raw_steps(), gap in 1i64..8) {
        let steps: Vec<Step> = steps(raw)
            .into_iter()
            .filter(|s| matches!(s, Step::Rows(..)))
            .collect();
        let rows: Vec<Row> = steps
            .iter()
            .flat_map(|s| match s {
                Step::Rows(_, rows) => rows.clone(),
                Step::Watermark(_) => Vec::new(),
            })
            .collect();
        let mut op = session_operator(gap);
        op.open(&context(0, 1)).unwrap();
        let mut seen = 0;
        let mut found = run(&mut op, &steps, &mut seen, batch);
        found.extend(end_of_input(&mut op));
        let mut found: Vec<Vec<Cell>> = found.into_iter().map(|(_, r)| r).collect();
        found.sort();
        prop_assert_eq!(found, offline_sessions(gap, &rows));
    }

    #[test]
    fn session_aggregate_restores_at_another_parallelism(
        raw in raw_steps(), gap in 1i64..8, split in any::<prop::sample::Index>(),
        parallelism in 1usize..=2,
    ) {
        let steps = steps(raw);
        let split = split.index(steps.len() + 1);
        check_restore(|| session_operator(gap), &steps, split, parallelism, batch)?;
    }
}

#[test]
fn a_row_bridging_two_sessions_merges_them() {
    let mut op = session_operator(10);
    op.open(&context(0, 1)).unwrap();
    let mut out = RecordingOutput::default();
    op.process_batch(
        batch(&[(Some(1), Some(1), 0), (Some(1), Some(2), 25)]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.window_count(), 2);
    // 12 opens [12, 22) between [0, 10) and [25, 35); 15 bridges [12, 22) and [25, 35); 5
    // bridges [0, 10) and what is now [12, 35).
    op.process_batch(
        batch(&[
            (Some(1), Some(4), 12),
            (Some(1), Some(8), 15),
            (Some(1), Some(16), 5),
        ]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.window_count(), 1);
    op.process_watermark(33, &mut out).unwrap();
    assert!(out.batches.is_empty());
    op.process_watermark(34, &mut out).unwrap();
    let rows: Vec<Vec<Cell>> = out.batches.iter().flat_map(cells).collect();
    let values = [Some(1), Some(2), Some(4), Some(8), Some(16)];
    assert_eq!(rows, [aggregate_row(Some(Some(1)), (0, 35), &values)]);
    assert_eq!(op.window_count(), 0);
}

#[test]
fn distinct_over_sessions_and_updates_are_refused() {
    let int = Field::new("n", DataType::Int64, false);
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let spec = WindowAggregateSpec {
        time_column: 2,
        window: WindowTvf::session(5).unwrap(),
        group_columns: vec![],
        aggregates: vec![AggregateCall::new(AggregateKind::Count, [1], int.clone()).distinct()],
        input_schema: input_schema(),
        output_schema: Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts.clone(), false),
            Field::new("window_time", ts, false),
            int,
        ])),
    };
    let error = WindowAggregateOperator::new(spec).unwrap_err();
    assert!(
        matches!(error, WindowError::DistinctSession { .. }),
        "{error}"
    );

    let mut op = aggregate_operator(WindowTvf::tumble(5).unwrap(), true);
    op.open(&context(0, 1)).unwrap();
    let retraction = ChangelogBatch::from_kinds(
        batch(&[(Some(1), Some(1), 3)]).into_data(),
        &[RowKind::Delete],
    )
    .unwrap();
    let error = op
        .process_batch(retraction, &mut RecordingOutput::default())
        .unwrap_err();
    let message = message_of(error);
    assert!(message.contains("insert-only"), "{message}");
}

fn message_of(error: TaskError) -> String {
    match error {
        TaskError::User(error) => error.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_null_time_is_an_error_naming_the_column() {
    let schema = Arc::new(Schema::new(vec![Field::new("at", DataType::Int64, true)]));
    let mut op =
        WindowAssignOperator::new(Arc::clone(&schema), 0, WindowTvf::tumble(5).unwrap()).unwrap();
    let data = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
    )
    .unwrap();
    let error: TaskError = op
        .process_batch(
            ChangelogBatch::insert_only(data),
            &mut RecordingOutput::default(),
        )
        .unwrap_err();
    let message = message_of(error);
    assert!(
        message.contains("\"at\"") && message.contains("row 1"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// The window TVF

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn window_tvf_appends_every_window_of_every_row(raw in raw_steps(), tvf in tvfs()) {
        let rows: Vec<Row> = steps(raw)
            .into_iter()
            .flat_map(|s| match s {
                Step::Rows(_, rows) => rows,
                Step::Watermark(_) => Vec::new(),
            })
            .collect();
        let mut op = WindowAssignOperator::new(input_schema(), 2, tvf).unwrap();
        let mut out = RecordingOutput::default();
        op.process_batch(batch(&rows), &mut out).unwrap();
        let mut found: Vec<Vec<Cell>> = out.batches.iter().flat_map(cells).collect();
        found.sort();
        let mut expected: Vec<Vec<Cell>> = rows
            .iter()
            .flat_map(|&(k, v, t)| {
                windows_of(tvf, t)
                    .into_iter()
                    .map(move |(s, e)| vec![k, v, Some(t), Some(s), Some(e), Some(e - 1)])
            })
            .collect();
        expected.sort();
        prop_assert_eq!(found, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Window Top-N and deduplication

/// Rows with their windows appended by the window TVF.
fn windowed(tvf: WindowTvf, rows: &[Row]) -> ChangelogBatch {
    let mut op = WindowAssignOperator::new(input_schema(), 2, tvf).unwrap();
    let mut out = RecordingOutput::default();
    op.process_batch(batch(rows), &mut out).unwrap();
    out.batches.pop().unwrap()
}

fn windowed_schema(tvf: WindowTvf) -> SchemaRef {
    Arc::clone(
        WindowAssignOperator::new(input_schema(), 2, tvf)
            .unwrap()
            .output_schema(),
    )
}

/// What a Top-N ranks by.
#[derive(Debug, Clone, Copy)]
enum Ranking {
    /// `v` descending, nulls last or first.
    ValueDesc { nulls_first: bool },
    /// Deduplication on time: keep the first or the last row.
    Dedup { keep_last: bool },
}

fn rank_operator(tvf: WindowTvf, ranking: Ranking, n: usize) -> WindowRankOperator {
    let window = WindowColumns::new(3, 4);
    let spec = match ranking {
        Ranking::ValueDesc { nulls_first } => {
            let mut key = RankSortKey::desc(1);
            key.nulls_first = nulls_first;
            WindowRankSpec::top_n(windowed_schema(tvf), window, [0], [key], n)
        }
        Ranking::Dedup { keep_last } => {
            WindowRankSpec::deduplicate(windowed_schema(tvf), window, [0], 2, keep_last)
        }
    };
    WindowRankOperator::new(spec.with_row_number("rn")).unwrap()
}

/// The reference Top-N: per key and window the accepted rows in arrival order, stably sorted,
/// the first `n` with their row numbers.
fn reference_rank(tvf: WindowTvf, ranking: Ranking, n: usize, steps: &[Step]) -> (Tagged, u64) {
    let mut watermark = i64::MIN;
    let mut watermarks = Vec::new();
    let mut late = 0;
    let mut windows: BTreeMap<(Cell, (i64, i64)), Vec<Row>> = BTreeMap::new();
    for step in steps {
        match step {
            Step::Rows(_, rows) => {
                for &(k, v, t) in rows {
                    for window in windows_of(tvf, t) {
                        if window.1 - 1 <= watermark {
                            late += 1;
                        } else {
                            windows.entry((k, window)).or_default().push((k, v, t));
                        }
                    }
                }
            }
            Step::Watermark(w) => {
                watermark = *w;
                watermarks.push(*w);
            }
        }
    }
    let mut out = Vec::new();
    for ((_, (start, end)), mut rows) in windows {
        let n = match ranking {
            Ranking::ValueDesc { nulls_first } => {
                // Descending, nulls where asked; the stable sort keeps arrival order on ties.
                rows.sort_by_key(|r| (r.1.is_none() != nulls_first, std::cmp::Reverse(r.1)));
                n
            }
            Ranking::Dedup { keep_last: false } => {
                rows.sort_by_key(|r| r.2);
                1
            }
            Ranking::Dedup { keep_last: true } => {
                rows.reverse();
                rows.sort_by_key(|r| std::cmp::Reverse(r.2));
                1
            }
        };
        let tag = watermarks
            .iter()
            .position(|&w| end - 1 <= w)
            .map_or(usize::MAX, |i| i + 1);
        for (i, &(k, v, t)) in rows.iter().take(n).enumerate() {
            out.push((
                tag,
                vec![
                    k,
                    v,
                    Some(t),
                    Some(start),
                    Some(end),
                    Some(end - 1),
                    Some(i as i64 + 1),
                ],
            ));
        }
    }
    (sorted(out), late)
}

fn rankings() -> impl Strategy<Value = Ranking> {
    prop_oneof![
        any::<bool>().prop_map(|nulls_first| Ranking::ValueDesc { nulls_first }),
        any::<bool>().prop_map(|keep_last| Ranking::Dedup { keep_last }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn window_rank_equals_per_window_sort(
        raw in raw_steps(), tvf in tvfs(), ranking in rankings(), n in 1usize..4,
    ) {
        let steps = steps(raw);
        let (expected, late) = reference_rank(tvf, ranking, n, &steps);
        let mut op = rank_operator(tvf, ranking, n);
        let ctx = context(0, 1);
        op.open(&ctx).unwrap();
        let mut seen = 0;
        let mut found = run(&mut op, &steps, &mut seen, |rows| windowed(tvf, rows));
        found.extend(end_of_input(&mut op));
        prop_assert_eq!(sorted(found), expected);
        prop_assert_eq!(ctx.late_records_dropped(), late);
        prop_assert_eq!(op.buffered_rows(), 0);
    }

    #[test]
    fn window_rank_restores_at_another_parallelism(
        raw in raw_steps(), tvf in tvfs(), ranking in rankings(), n in 1usize..4,
        split in any::<prop::sample::Index>(), parallelism in 1usize..=2,
    ) {
        let steps = steps(raw);
        let split = split.index(steps.len() + 1);
        check_restore(
            || rank_operator(tvf, ranking, n),
            &steps,
            split,
            parallelism,
            |rows| windowed(tvf, rows),
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// Window join

const JOIN_TYPES: [JoinType; 6] = [
    JoinType::Inner,
    JoinType::Left,
    JoinType::Right,
    JoinType::Full,
    JoinType::Semi,
    JoinType::Anti,
];

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

fn join_operator(tvf: WindowTvf, join_type: JoinType, filtered: bool) -> WindowJoinOperator {
    let side = windowed_schema(tvf);
    let output = if join_type.is_left_only() {
        Arc::clone(&side)
    } else {
        let nullable = |f: &Arc<Field>| f.as_ref().clone().with_nullable(true);
        Arc::new(Schema::new(
            side.fields()
                .iter()
                .chain(side.fields().iter())
                .map(nullable)
                .collect::<Vec<_>>(),
        ))
    };
    let window = WindowColumns::new(3, 4);
    let mut spec = WindowJoinSpec::new(join_type, Arc::clone(&side), window, side, window, output)
        .with_keys([0], [0]);
    if filtered {
        spec = spec.with_filter(Arc::new(LessOrEqual(1, 7)));
    }
    WindowJoinOperator::new(spec).unwrap()
}

/// The reference window join: per window, a nested loop over the accepted rows of both sides.
fn reference_join(
    tvf: WindowTvf,
    join_type: JoinType,
    filtered: bool,
    steps: &[Step],
) -> (Tagged, u64) {
    let mut watermark = i64::MIN;
    let mut watermarks = Vec::new();
    let mut late = 0;
    let mut windows: BTreeMap<(i64, i64), [Vec<Row>; 2]> = BTreeMap::new();
    for step in steps {
        match step {
            Step::Rows(left, rows) => {
                for &row in rows {
                    for window in windows_of(tvf, row.2) {
                        if window.1 - 1 <= watermark {
                            late += 1;
                        } else {
                            windows.entry(window).or_default()[usize::from(!*left)].push(row);
                        }
                    }
                }
            }
            Step::Watermark(w) => {
                watermark = *w;
                watermarks.push(*w);
            }
        }
    }
    let matches = |l: &Row, r: &Row| {
        let keys = matches!((l.0, r.0), (Some(a), Some(b)) if a == b);
        keys && (!filtered || matches!((l.1, r.1), (Some(v), Some(w)) if v <= w))
    };
    let mut out = Vec::new();
    for ((start, end), [left, right]) in windows {
        let tag = watermarks
            .iter()
            .position(|&w| end - 1 <= w)
            .map_or(usize::MAX, |i| i + 1);
        let cells = |r: Option<&Row>| match r {
            Some(&(k, v, t)) => vec![k, v, Some(t), Some(start), Some(end), Some(end - 1)],
            None => vec![None; 6],
        };
        for l in &left {
            let mut any = false;
            for r in &right {
                if matches(l, r) {
                    any = true;
                    if !join_type.is_left_only() {
                        out.push((tag, [cells(Some(l)), cells(Some(r))].concat()));
                    }
                }
            }
            match join_type {
                JoinType::Semi if any => out.push((tag, cells(Some(l)))),
                JoinType::Anti if !any => out.push((tag, cells(Some(l)))),
                JoinType::Left | JoinType::Full if !any => {
                    out.push((tag, [cells(Some(l)), cells(None)].concat()))
                }
                _ => {}
            }
        }
        if matches!(join_type, JoinType::Right | JoinType::Full) {
            for r in &right {
                if !left.iter().any(|l| matches(l, r)) {
                    out.push((tag, [cells(None), cells(Some(r))].concat()));
                }
            }
        }
    }
    (sorted(out), late)
}

/// Runs a window join over `steps`, then the end of input.
fn run_join(
    op: &mut WindowJoinOperator,
    tvf: WindowTvf,
    steps: &[Step],
    seen: &mut usize,
) -> Tagged {
    let mut rows = Vec::new();
    for step in steps {
        let mut out = RecordingOutput::default();
        match step {
            Step::Rows(true, part) => op.process_batch1(windowed(tvf, part), &mut out).unwrap(),
            Step::Rows(false, part) => op.process_batch2(windowed(tvf, part), &mut out).unwrap(),
            Step::Watermark(w) => {
                *seen += 1;
                op.process_watermark(*w, &mut out).unwrap();
            }
        }
        rows.extend(out.batches.iter().flat_map(cells).map(|r| (*seen, r)));
    }
    rows
}

fn end_join(op: &mut WindowJoinOperator) -> Tagged {
    let mut out = RecordingOutput::default();
    op.process_watermark(i64::MAX, &mut out).unwrap();
    op.finish(&mut out).unwrap();
    out.batches
        .iter()
        .flat_map(cells)
        .map(|r| (usize::MAX, r))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn window_join_equals_nested_loop_per_window(
        raw in raw_steps(), tvf in tvfs(), filtered in any::<bool>(),
    ) {
        let steps = steps(raw);
        for join_type in JOIN_TYPES {
            let (expected, late) = reference_join(tvf, join_type, filtered, &steps);
            let mut op = join_operator(tvf, join_type, filtered);
            let ctx = context(0, 1);
            op.open(&ctx).unwrap();
            let mut seen = 0;
            let mut found = run_join(&mut op, tvf, &steps, &mut seen);
            found.extend(end_join(&mut op));
            prop_assert_eq!(sorted(found), expected, "{:?}", join_type);
            prop_assert_eq!(ctx.late_records_dropped(), late);
            prop_assert_eq!(op.buffered_rows(), 0);
        }
    }

    #[test]
    fn window_join_restores_at_another_parallelism(
        raw in raw_steps(), tvf in tvfs(), split in any::<prop::sample::Index>(),
        parallelism in 1usize..=2,
    ) {
        let steps = steps(raw);
        let split = split.index(steps.len() + 1);
        for join_type in [JoinType::Full, JoinType::Anti] {
            let make = || join_operator(tvf, join_type, false);
            let mut whole = make();
            let mut first = make();
            whole.open(&context(0, 1)).unwrap();
            first.open(&context(0, 1)).unwrap();
            let (mut a, mut b) = (0, 0);
            run_join(&mut whole, tvf, &steps[..split], &mut a);
            run_join(&mut first, tvf, &steps[..split], &mut b);
            let state = first.snapshot_state(1).unwrap();
            let mut expected = run_join(&mut whole, tvf, &steps[split..], &mut a);
            expected.extend(end_join(&mut whole));
            let mut found = Vec::new();
            let mut restored: Vec<WindowJoinOperator> = (0..parallelism)
                .map(|subtask| {
                    let mut op = make();
                    op.open(&context(subtask, parallelism)).unwrap();
                    op.restore_state(&state).unwrap();
                    op
                })
                .collect();
            for step in &steps[split..] {
                let parts: Vec<Step> = match step {
                    Step::Rows(left, rows) => route(rows, parallelism)
                        .into_iter()
                        .map(|part| Step::Rows(*left, part))
                        .collect(),
                    Step::Watermark(_) => vec![step.clone(); parallelism],
                };
                for (op, part) in restored.iter_mut().zip(parts) {
                    if matches!(&part, Step::Rows(_, rows) if rows.is_empty()) {
                        continue;
                    }
                    let mut seen = b;
                    found.extend(run_join(op, tvf, std::slice::from_ref(&part), &mut seen));
                }
                if matches!(step, Step::Watermark(_)) {
                    b += 1;
                }
            }
            for op in &mut restored {
                found.extend(end_join(op));
            }
            prop_assert_eq!(sorted(expected), sorted(found), "{:?}", join_type);
        }
    }
}

#[test]
fn window_columns_of_another_type_are_refused() {
    let error =
        WindowAssignOperator::new(input_schema(), 1, WindowTvf::session(3).unwrap()).unwrap_err();
    assert!(matches!(error, WindowError::SessionNotSupported { .. }));
    let schema = Arc::new(Schema::new(vec![Field::new("at", DataType::Utf8, false)]));
    let error = WindowAssignOperator::new(schema, 0, WindowTvf::tumble(3).unwrap()).unwrap_err();
    assert!(
        matches!(error, WindowError::TimeColumnType { .. }),
        "{error}"
    );
    let error = WindowRankOperator::new(WindowRankSpec::top_n(
        windowed_schema(WindowTvf::tumble(3).unwrap()),
        WindowColumns::new(3, 4),
        [0],
        [RankSortKey::asc(1)],
        0,
    ))
    .unwrap_err();
    assert!(matches!(error, WindowError::ZeroRank));
}

// ---------------------------------------------------------------------------------------------
// In a running job

/// Turns output rows into typed records.
struct ToRecords;

impl Operator for ToRecords {
    type In = ChangelogBatch;
    type Out = Records<Vec<Cell>>;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<Records<Vec<Cell>>>,
    ) -> Result<(), TaskError> {
        out.collect(Records::from(cells(&batch)))
    }
}

/// Deterministic rows: a few keys (one null), times spread over a few windows.
fn job_input() -> Vec<Vec<Row>> {
    let mut n = 0i64;
    [40usize, 1, 200, 0, 77]
        .into_iter()
        .map(|rows| {
            (0..rows)
                .map(|_| {
                    n += 1;
                    let x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                    let key = (!x.is_multiple_of(5)).then_some((x % 7) as i64);
                    let value = (!x.is_multiple_of(11)).then_some((x % 13) as i64 - 6);
                    (key, value, (x % 300) as i64 - 100)
                })
                .collect()
        })
        .collect()
}

#[test]
fn one_and_two_phase_window_aggregates_run_in_a_job_at_parallelism_2() {
    let tvf = WindowTvf::hop(10, 30).unwrap();
    let input = job_input();
    let steps: Vec<Step> = input
        .iter()
        .map(|rows| Step::Rows(true, rows.clone()))
        .collect();
    let (expected, late) = reference_aggregate(tvf, true, &steps);
    assert_eq!(late, 0);
    let mut expected: Vec<Vec<Cell>> = expected.into_iter().map(|(_, row)| row).collect();
    expected.sort();
    for two_phase in [false, true] {
        let env = StreamEnv::new()
            .with_parallelism(2)
            .with_max_parallelism(MAX_PARALLELISM);
        let batches: Vec<RecordBatch> = input.iter().map(|rows| batch(rows).into_data()).collect();
        let source = env.from_source(RecordBatchSource::new(batches));
        let rows = if two_phase {
            source
                .transform("LocalWindowAggregate", move || {
                    LocalWindowAggregateOperator::new(aggregate_spec(tvf, true)).unwrap()
                })
                .partition_by_key(ArrowKeySelector::new([0]))
                .transform("GlobalWindowAggregate", move || {
                    WindowAggregateOperator::global(aggregate_spec(tvf, true)).unwrap()
                })
        } else {
            source
                .partition_by_key(ArrowKeySelector::new([0]))
                .transform("WindowAggregate", move || aggregate_operator(tvf, true))
        }
        .transform("ToRecords", || ToRecords)
        .collect();
        env.execute("window aggregate").expect("the job runs");
        let mut found = rows.take();
        found.sort();
        assert_eq!(found, expected, "two phase: {two_phase}");
    }
}
