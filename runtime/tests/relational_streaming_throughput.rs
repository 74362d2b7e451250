//! Rough single-threaded throughput of the unbounded streaming operators, printed, never
//! asserted. Ignored by default; run with optimisations:
//!
//! ```text
//! cargo test -p rivulet-runtime --test relational_streaming_throughput \
//!     --config 'profile.dev.package.rivulet-runtime.opt-level=3' -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rivulet_runtime::operator::testing::RecordingOutput;
use rivulet_runtime::relational::dedup::{DedupOrder, DeduplicateOperator, DeduplicateSpec, Keep};
use rivulet_runtime::relational::interval_join::{IntervalJoinOperator, IntervalJoinSpec};
use rivulet_runtime::relational::over::{OverAggregateOperator, OverAggregateSpec, OverFrame};
use rivulet_runtime::relational::rank::{RankOperator, RankSpec, SortKey};
use rivulet_runtime::relational::{AggregateCall, AggregateKind, JoinType};
use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext, TwoInputOperator};

const ROWS: usize = 1 << 20;
const BATCH: usize = 8192;

fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}ts"), DataType::Int64, true),
        Field::new(format!("{prefix}v"), DataType::Int64, true),
    ]))
}

/// Batches of (key, time, value): `keys` keys, times rising by one per row (minus a small
/// shuffle), pseudo-random values.
fn batches(schema: &SchemaRef, keys: i64, seed: u64) -> Vec<ChangelogBatch> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as i64
    };
    (0..ROWS / BATCH)
        .map(|b| {
            let base = (b * BATCH) as i64;
            let (mut k, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..BATCH as i64 {
                k.push(next() % keys);
                t.push(base + i - next() % 8);
                v.push(next() % 1000);
            }
            let data = RecordBatch::try_new(
                Arc::clone(schema),
                vec![
                    Arc::new(Int64Array::from(k)),
                    Arc::new(Int64Array::from(t)),
                    Arc::new(Int64Array::from(v)),
                ],
            )
            .unwrap();
            ChangelogBatch::insert_only(data)
        })
        .collect()
}

fn report(name: &str, rows: usize, started: Instant, out: &RecordingOutput<ChangelogBatch>) {
    let seconds = started.elapsed().as_secs_f64();
    let emitted: usize = out.batches.iter().map(|b| b.num_rows()).sum();
    println!(
        "{name:<44} {:>6.2} M rows/s ({rows} rows in, {emitted} out, {seconds:.2} s)",
        rows as f64 / seconds / 1e6
    );
}

fn run_one<O: Operator<In = ChangelogBatch, Out = ChangelogBatch>>(
    name: &str,
    mut op: O,
    input: &[ChangelogBatch],
    watermarks: bool,
) {
    op.open(&OperatorContext::new(name, 0, 1, 128)).unwrap();
    let mut out = RecordingOutput::default();
    let started = Instant::now();
    for (i, batch) in input.iter().enumerate() {
        op.process_batch(batch.clone(), &mut out).unwrap();
        if watermarks {
            op.process_watermark(((i + 1) * BATCH) as i64 - 16, &mut out)
                .unwrap();
        }
    }
    op.process_watermark(i64::MAX, &mut out).unwrap();
    report(name, ROWS, started, &out);
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn throughput() {
    let input = schema("");
    let data = batches(&input, 10_000, 7);

    for (name, insert_only) in [
        ("Top-3 per key, 10k keys, insert-only", true),
        ("Top-3 per key, 10k keys, updating mode", false),
    ] {
        let spec = RankSpec::new(Arc::clone(&input), [0], [SortKey::desc(2)], 3)
            .with_rank_column(true)
            .with_insert_only_input(insert_only);
        run_one(name, RankOperator::new(spec).unwrap(), &data, false);
    }
    for (name, keep, order) in [
        (
            "Dedup keep-first by arrival, 10k keys",
            Keep::First,
            DedupOrder::Arrival,
        ),
        (
            "Dedup keep-last by arrival, 10k keys",
            Keep::Last,
            DedupOrder::Arrival,
        ),
        (
            "Dedup keep-first by event time, 10k keys",
            Keep::First,
            DedupOrder::EventTime(1),
        ),
    ] {
        let spec = DeduplicateSpec::new(Arc::clone(&input), [0], keep, order);
        run_one(name, DeduplicateOperator::new(spec).unwrap(), &data, false);
    }
    let sum = |name: &str| {
        AggregateCall::new(
            AggregateKind::Sum,
            [2],
            Field::new(name, DataType::Int64, true),
        )
    };
    let max = AggregateCall::new(
        AggregateKind::Max,
        [2],
        Field::new("high", DataType::Int64, true),
    );
    for (name, frame) in [
        (
            "OVER ROWS 10 PRECEDING, SUM+MAX, 10k keys",
            OverFrame::Rows {
                preceding: Some(10),
            },
        ),
        (
            "OVER RANGE 1000 ms PRECEDING, SUM+MAX",
            OverFrame::Range {
                preceding_ms: Some(1000),
            },
        ),
    ] {
        let spec = OverAggregateSpec::new(
            Arc::clone(&input),
            [0],
            1,
            frame,
            [sum("total"), max.clone()],
        );
        run_one(name, OverAggregateOperator::new(spec).unwrap(), &data, true);
    }

    let (left, right) = (schema("l"), schema("r"));
    let output = Arc::new(Schema::new(
        left.fields()
            .iter()
            .chain(right.fields().iter())
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let left_data = batches(&left, 100_000, 11);
    let right_data = batches(&right, 100_000, 13);
    for join_type in [JoinType::Inner, JoinType::Full] {
        let spec = IntervalJoinSpec::new(
            join_type,
            Arc::clone(&left),
            Arc::clone(&right),
            Arc::clone(&output),
        )
        .with_keys([0], [0])
        .with_interval(1, 1, -50, 50);
        let mut op = IntervalJoinOperator::new(spec).unwrap();
        op.open(&OperatorContext::new("join", 0, 1, 128)).unwrap();
        let mut out = RecordingOutput::default();
        let started = Instant::now();
        for (i, (l, r)) in left_data.iter().zip(&right_data).enumerate() {
            op.process_batch1(l.clone(), &mut out).unwrap();
            op.process_batch2(r.clone(), &mut out).unwrap();
            op.process_watermark(((i + 1) * BATCH) as i64 - 16, &mut out)
                .unwrap();
        }
        op.process_watermark(i64::MAX, &mut out).unwrap();
        report(
            &format!("Interval join {join_type:?}, +-50 ms, 100k keys"),
            2 * ROWS,
            started,
            &out,
        );
    }
}
