//! Throughput of the unbounded streaming operators, driven by hand (no job): one million rows
//! (per side for the join) in batches of 8 192, times rising by 1 ms per row with a little
//! disorder, each batch followed by a watermark 16 ms behind it.
//!
//! - `exec/topn_insert_only`: the top 3 rows by value per key (10 000 keys) with row numbers,
//!   over insert-only input.
//! - `exec/topn_updating`: the same in the mode for updating input (every row kept).
//! - `exec/interval_join_inner`: an inner interval join on the key (100 000 keys), ±50 ms.
//! - `exec/dedup_keep_last`: the last row per key (10 000 keys) by arrival.
//! - `exec/over_rows_10`: `SUM(v)` over the 10 preceding rows per key (10 000 keys), in time
//!   order as the watermark passes.
//!
//! After criterion's runs, each case runs for a few more seconds outside criterion and reports
//! input rows per second and per CPU-second (user + system time of the whole process).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use criterion::{Criterion, SamplingMode, Throughput};
use rivulet::runtime::operator::{Operator, TwoInputOperator};
use rivulet::runtime::relational::dedup::{DedupOrder, DeduplicateOperator, DeduplicateSpec, Keep};
use rivulet::runtime::relational::interval_join::{IntervalJoinOperator, IntervalJoinSpec};
use rivulet::runtime::relational::over::{OverAggregateOperator, OverAggregateSpec, OverFrame};
use rivulet::runtime::relational::rank::{RankOperator, RankSpec, SortKey};
use rivulet::runtime::relational::{AggregateCall, AggregateKind, JoinType};
use rivulet::runtime::{ChangelogBatch, OperatorContext, Output, TaskError};
use support::process_cpu_time;

mod support;

/// Input rows per run (per side for the join).
const ROWS: usize = 1 << 20;
/// Rows per input batch.
const BATCH: usize = 8192;
/// How long each case runs for the rows-per-CPU-second report.
const REPORT_TIME: Duration = Duration::from_secs(3);

/// Counts and drops every output batch.
#[derive(Default)]
struct Discard {
    rows: usize,
}

impl Output<ChangelogBatch> for Discard {
    fn collect(&mut self, batch: ChangelogBatch) -> Result<(), TaskError> {
        self.rows += batch.num_rows();
        black_box(batch);
        Ok(())
    }

    fn emit_watermark(&mut self, _watermark: i64) -> Result<(), TaskError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        Ok(())
    }
}

fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}ts"), DataType::Int64, true),
        Field::new(format!("{prefix}v"), DataType::Int64, true),
    ]))
}

/// Batches of (key, time, value) with `keys` keys.
fn batches(schema: &SchemaRef, keys: i64, seed: u64) -> Vec<ChangelogBatch> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
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
            .expect("columns match the schema");
            ChangelogBatch::insert_only(data)
        })
        .collect()
}

struct Inputs {
    single: Vec<ChangelogBatch>,
    left: Vec<ChangelogBatch>,
    right: Vec<ChangelogBatch>,
}

#[derive(Clone, Copy)]
enum Case {
    TopN { insert_only: bool },
    IntervalJoin,
    DedupKeepLast,
    OverRows,
}

/// Runs a case once and returns the number of output rows.
fn run(inputs: &Inputs, case: Case) -> usize {
    let mut out = Discard::default();
    let ctx = OperatorContext::new("bench", 0, 1, 128);
    match case {
        Case::TopN { insert_only } => {
            let spec = RankSpec::new(schema(""), [0], [SortKey::desc(2)], 3)
                .with_rank_column(true)
                .with_insert_only_input(insert_only);
            let mut op = RankOperator::new(spec).expect("valid");
            op.open(&ctx).expect("opens");
            for batch in &inputs.single {
                op.process_batch(batch.clone(), &mut out)
                    .expect("processes");
            }
            op.finish(&mut out).expect("finishes");
        }
        Case::DedupKeepLast => {
            let spec = DeduplicateSpec::new(schema(""), [0], Keep::Last, DedupOrder::Arrival);
            let mut op = DeduplicateOperator::new(spec).expect("valid");
            op.open(&ctx).expect("opens");
            for batch in &inputs.single {
                op.process_batch(batch.clone(), &mut out)
                    .expect("processes");
            }
        }
        Case::OverRows => {
            let sum = AggregateCall::new(
                AggregateKind::Sum,
                [2],
                Field::new("total", DataType::Int64, true),
            );
            let frame = OverFrame::Rows {
                preceding: Some(10),
            };
            let spec = OverAggregateSpec::new(schema(""), [0], 1, frame, [sum]);
            let mut op = OverAggregateOperator::new(spec).expect("valid");
            op.open(&ctx).expect("opens");
            for (i, batch) in inputs.single.iter().enumerate() {
                op.process_batch(batch.clone(), &mut out)
                    .expect("processes");
                op.process_watermark(((i + 1) * BATCH) as i64 - 16, &mut out)
                    .expect("advances");
            }
            op.process_watermark(i64::MAX, &mut out).expect("ends");
        }
        Case::IntervalJoin => {
            let (left, right) = (schema("l"), schema("r"));
            let output = Arc::new(Schema::new(
                left.fields()
                    .iter()
                    .chain(right.fields().iter())
                    .cloned()
                    .collect::<Vec<_>>(),
            ));
            let spec = IntervalJoinSpec::new(JoinType::Inner, left, right, output)
                .with_keys([0], [0])
                .with_interval(1, 1, -50, 50);
            let mut op = IntervalJoinOperator::new(spec).expect("valid");
            op.open(&ctx).expect("opens");
            for (i, (l, r)) in inputs.left.iter().zip(&inputs.right).enumerate() {
                op.process_batch1(l.clone(), &mut out).expect("processes");
                op.process_batch2(r.clone(), &mut out).expect("processes");
                op.process_watermark(((i + 1) * BATCH) as i64 - 16, &mut out)
                    .expect("advances");
            }
            op.process_watermark(i64::MAX, &mut out).expect("ends");
        }
    }
    out.rows
}

fn main() {
    let inputs = Inputs {
        single: batches(&schema(""), 10_000, 7),
        left: batches(&schema("l"), 100_000, 11),
        right: batches(&schema("r"), 100_000, 13),
    };
    let cases = [
        (
            "exec/topn_insert_only",
            Case::TopN { insert_only: true },
            ROWS,
        ),
        (
            "exec/topn_updating",
            Case::TopN { insert_only: false },
            ROWS,
        ),
        ("exec/interval_join_inner", Case::IntervalJoin, 2 * ROWS),
        ("exec/dedup_keep_last", Case::DedupKeepLast, ROWS),
        ("exec/over_rows_10", Case::OverRows, ROWS),
    ];
    let mut criterion = Criterion::default().configure_from_args();
    for (name, case, rows) in cases {
        let mut group = criterion.benchmark_group(name);
        group
            .throughput(Throughput::Elements(rows as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("1m_rows", |b| b.iter(|| run(&inputs, case)));
        group.finish();
    }
    criterion.final_summary();
    // Only in a real benchmark run, not when `cargo test --benches` smoke-tests the file.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    eprintln!("\ninput rows per second and per CPU-second (at least {REPORT_TIME:?} per case):");
    for (name, case, rows_per_run) in cases {
        let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
            eprintln!("cannot read /proc/self/stat; no CPU-time report");
            return;
        };
        let mut runs = 0u32;
        let mut output = 0;
        while runs < 3 || started.elapsed() < REPORT_TIME {
            output = run(&inputs, case);
            runs += 1;
        }
        let wall = started.elapsed();
        let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
        let rows = f64::from(runs) * rows_per_run as f64;
        eprintln!(
            "{name}: {:>6.2} M rows/s, {:>6.2} M rows/CPU-s ({output} output rows per run, {runs} runs, {:.2} CPU-s over {:.2} s wall)",
            rows / wall.as_secs_f64() / 1e6,
            rows / cpu.as_secs_f64().max(0.01) / 1e6,
            cpu.as_secs_f64(),
            wall.as_secs_f64(),
        );
    }
}
