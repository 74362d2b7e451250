//! Window TVF operator throughput, driven by hand (no job): one million rows of 1 000 keys, times
//! rising by 1 ms per row (so 1 000 rows per second of event time), in batches of 8 192 rows,
//! each followed by a watermark 2 s behind the largest time.
//!
//! - `exec/table_window_tumble`: `COUNT(*)`, `SUM(v)` per key and 1 s tumbling window.
//! - `exec/table_window_hop`: the same over 5 s windows sliding by 1 s (five windows per row).
//! - `exec/table_window_hop_two_phase`: the hop through the local half (a partial row per key and
//!   window per batch) and the global half.
//! - `exec/table_window_rank`: the top 3 rows by `v` per key and 1 s tumbling window, after
//!   the window TVF.
//!
//! After criterion's runs, each case runs for a few more seconds outside criterion and reports
//! input rows per second and per CPU-second (user + system time of the whole process).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::{Criterion, SamplingMode, Throughput};
use rivulet::runtime::operator::Operator;
use rivulet::runtime::relational::window::{RankSortKey, WindowColumns};
use rivulet::runtime::relational::{
    AggregateCall, AggregateKind, LocalWindowAggregateOperator, WindowAggregateOperator,
    WindowAggregateSpec, WindowAssignOperator, WindowRankOperator, WindowRankSpec, WindowTvf,
};
use rivulet::runtime::{ChangelogBatch, OperatorContext, Output, TaskError};
use support::process_cpu_time;

mod support;

/// Input rows per run.
const ROWS: usize = 1_000_000;
/// Distinct keys.
const KEYS: u64 = 1_000;
/// Rows per input batch.
const BATCH_ROWS: usize = 8192;
/// How far the watermark trails the largest time.
const OUT_OF_ORDERNESS: i64 = 2_000;
/// How long each case runs for the rows-per-CPU-second report.
const REPORT_TIME: Duration = Duration::from_secs(3);

/// Counts and drops every output batch.
#[derive(Default)]
struct Discard {
    rows: usize,
    batches: Vec<ChangelogBatch>,
    keep: bool,
}

impl Output<ChangelogBatch> for Discard {
    fn collect(&mut self, batch: ChangelogBatch) -> Result<(), TaskError> {
        self.rows += batch.num_rows();
        if self.keep {
            self.batches.push(batch);
        } else {
            black_box(batch);
        }
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

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// The input batches and the watermark after each.
fn input() -> Vec<(ChangelogBatch, i64)> {
    let mut state = 0x5eed_u64;
    (0..ROWS)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let rows = start..ROWS.min(start + BATCH_ROWS);
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for _ in rows.clone() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                keys.push(((state >> 33) % KEYS) as i64);
                values.push(((state >> 13) % 1000) as i64);
            }
            let times: Vec<i64> = rows.map(|i| i as i64).collect();
            let watermark = times.last().copied().unwrap_or(0) - OUT_OF_ORDERNESS;
            let data = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Int64Array::from(values)),
                    Arc::new(TimestampMillisecondArray::from(times)),
                ],
            )
            .expect("columns match the schema");
            (ChangelogBatch::insert_only(data), watermark)
        })
        .collect()
}

fn aggregate_spec(window: WindowTvf) -> WindowAggregateSpec {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let count = Field::new("n", DataType::Int64, false);
    let sum = Field::new("total", DataType::Int64, true);
    WindowAggregateSpec {
        time_column: 2,
        window,
        group_columns: vec![0],
        aggregates: vec![
            AggregateCall::new(AggregateKind::CountStar, [], count.clone()),
            AggregateCall::new(AggregateKind::Sum, [1], sum.clone()),
        ],
        input_schema: schema(),
        output_schema: Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts.clone(), false),
            Field::new("window_time", ts, false),
            count,
            sum,
        ])),
    }
}

/// Feeds every batch and watermark through `op`, then ends the input.
fn drive<O>(op: &mut O, input: &[(ChangelogBatch, i64)], out: &mut Discard)
where
    O: Operator<In = ChangelogBatch, Out = ChangelogBatch>,
{
    op.open(&OperatorContext::new("window", 0, 1, 128))
        .expect("opens");
    for (batch, watermark) in input {
        op.process_batch(batch.clone(), out).expect("processes");
        op.process_watermark(*watermark, out).expect("fires");
    }
    op.process_watermark(i64::MAX, out).expect("fires");
    op.finish(out).expect("finishes");
}

#[derive(Clone, Copy)]
enum Case {
    Aggregate(WindowTvf),
    TwoPhase(WindowTvf),
    Rank,
}

/// Runs a case once and returns the number of output rows.
fn run(input: &[(ChangelogBatch, i64)], case: Case) -> usize {
    let mut out = Discard::default();
    match case {
        Case::Aggregate(window) => {
            let mut op = WindowAggregateOperator::new(aggregate_spec(window)).expect("valid");
            drive(&mut op, input, &mut out);
        }
        Case::TwoPhase(window) => {
            let mut local =
                LocalWindowAggregateOperator::new(aggregate_spec(window)).expect("valid");
            let mut global =
                WindowAggregateOperator::global(aggregate_spec(window)).expect("valid");
            let ctx = OperatorContext::new("window", 0, 1, 128);
            local.open(&ctx).expect("opens");
            global.open(&ctx).expect("opens");
            let mut partials = Discard {
                keep: true,
                ..Discard::default()
            };
            for (batch, watermark) in input {
                local
                    .process_batch(batch.clone(), &mut partials)
                    .expect("pre-aggregates");
                for partial in partials.batches.drain(..) {
                    global.process_batch(partial, &mut out).expect("merges");
                }
                global
                    .process_watermark(*watermark, &mut out)
                    .expect("fires");
            }
            global.process_watermark(i64::MAX, &mut out).expect("fires");
        }
        Case::Rank => {
            let tumble = WindowTvf::tumble(1_000).expect("valid");
            let mut assign = WindowAssignOperator::new(schema(), 2, tumble).expect("valid");
            let windowed = Arc::clone(assign.output_schema());
            let spec = WindowRankSpec::top_n(
                windowed,
                WindowColumns::new(3, 4),
                [0],
                [RankSortKey::desc(1)],
                3,
            );
            let mut rank = WindowRankOperator::new(spec).expect("valid");
            rank.open(&OperatorContext::new("rank", 0, 1, 128))
                .expect("opens");
            let mut windowed = Discard {
                keep: true,
                ..Discard::default()
            };
            for (batch, watermark) in input {
                assign
                    .process_batch(batch.clone(), &mut windowed)
                    .expect("assigns");
                for batch in windowed.batches.drain(..) {
                    rank.process_batch(batch, &mut out).expect("buffers");
                }
                rank.process_watermark(*watermark, &mut out).expect("fires");
            }
            rank.process_watermark(i64::MAX, &mut out).expect("fires");
        }
    }
    out.rows
}

fn main() {
    let input = input();
    let tumble = WindowTvf::tumble(1_000).expect("valid");
    let hop = WindowTvf::hop(1_000, 5_000).expect("valid");
    let cases = [
        ("exec/table_window_tumble", Case::Aggregate(tumble)),
        ("exec/table_window_hop", Case::Aggregate(hop)),
        ("exec/table_window_hop_two_phase", Case::TwoPhase(hop)),
        ("exec/table_window_rank", Case::Rank),
    ];
    // Both forms of the hop aggregate give the same number of rows.
    assert_eq!(
        run(&input, Case::Aggregate(hop)),
        run(&input, Case::TwoPhase(hop))
    );
    let mut criterion = Criterion::default().configure_from_args();
    for (name, case) in cases {
        let mut group = criterion.benchmark_group(name);
        group
            .throughput(Throughput::Elements(ROWS as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("1m_rows_1k_keys", |b| b.iter(|| run(&input, case)));
        group.finish();
    }
    criterion.final_summary();
    // Only in a real benchmark run, not when `cargo test --benches` smoke-tests the file.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    eprintln!(
        "\ninput rows per second and per CPU-second (repeated runs of {ROWS} rows, at least {REPORT_TIME:?} per case):"
    );
    for (name, case) in cases {
        let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
            eprintln!("cannot read /proc/self/stat; no CPU-time report");
            return;
        };
        let mut runs = 0u32;
        let mut output = 0;
        while runs < 3 || started.elapsed() < REPORT_TIME {
            output = run(&input, case);
            runs += 1;
        }
        let wall = started.elapsed();
        let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
        let rows = f64::from(runs) * ROWS as f64;
        eprintln!(
            "{name}: {:>6.2} M rows/s, {:>6.2} M rows/CPU-s ({output} output rows per run, {runs} runs, {:.2} CPU-s over {:.2} s wall)",
            rows / wall.as_secs_f64() / 1e6,
            rows / cpu.as_secs_f64().max(0.01) / 1e6,
            cpu.as_secs_f64(),
            wall.as_secs_f64(),
        );
    }
}
