//! Relational-operator throughput: the group aggregation of the table plane, driven by hand on
//! one thread (no job, no channels), so the numbers are the operator's own.
//!
//! - `exec/table_group_by_1k_keys`: `SELECT k, COUNT(*), SUM(amount) GROUP BY k` over rows
//!   whose `k: BIGINT` takes 1 000 values;
//! - `exec/table_group_by_1m_keys`: the same with 1 000 000 values of `k`.
//!
//! Each runs in both emit modes, `changelog` (streaming: after every batch, `+I` or `-U`/`+U`
//! for each group the batch touched) and `final` (bounded: insert-only results at the end),
//! and once more in changelog mode with `MAX(amount)` added (`changelog_max`), whose
//! retractable state is a per-group multiset of values.
//! After criterion's runs, each case runs a few more seconds outside criterion and reports rows
//! per CPU-second (user + system time of the process, from `/proc/self/stat`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rivulet::runtime::relational::{
    AggregateCall, AggregateKind, EmitMode, GroupAggregateOperator, GroupAggregateSpec,
};
use rivulet::runtime::{ChangelogBatch, Operator, OperatorContext, Output, TaskError};
use support::process_cpu_time;

mod support;

/// Rows per run.
const N: usize = 2_000_000;
/// Rows per input batch.
const BATCH_ROWS: usize = 8192;
/// The variants of each case: name, emit mode, and whether `MAX(amount)` is computed too.
const MODES: [(&str, EmitMode, bool); 3] = [
    ("changelog", EmitMode::Changelog, false),
    ("final", EmitMode::Final, false),
    ("changelog_max", EmitMode::Changelog, true),
];
/// How long each case runs for the rows-per-CPU-second report (CPU time has 10 ms ticks).
const REPORT_TIME: Duration = Duration::from_secs(3);

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("amount", DataType::Int64, false),
    ]))
}

/// [`N`] rows of `(k, amount)` with `k` uniform over `keys` values, in batches.
fn input(keys: u64) -> Vec<ChangelogBatch> {
    let schema = input_schema();
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    (0..N)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let rows = BATCH_ROWS.min(N - start);
            let k: Int64Array = (0..rows).map(|_| (next() % keys) as i64).collect();
            let amount: Int64Array = (0..rows).map(|_| (next() % 1000) as i64).collect();
            let data =
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(amount)])
                    .expect("columns match the schema");
            ChangelogBatch::insert_only(data)
        })
        .collect()
}

fn operator(emit: EmitMode, with_max: bool) -> GroupAggregateOperator {
    let int = |name: &str, nullable| Field::new(name, DataType::Int64, nullable);
    let mut aggregates = vec![
        AggregateCall::new(AggregateKind::CountStar, [], int("n", false)),
        AggregateCall::new(AggregateKind::Sum, [1], int("total", true)),
    ];
    if with_max {
        aggregates.push(AggregateCall::new(
            AggregateKind::Max,
            [1],
            int("largest", true),
        ));
    }
    let mut fields = vec![int("k", false)];
    fields.extend(aggregates.iter().map(|a| a.output.clone()));
    let output = Schema::new(fields);
    let spec = GroupAggregateSpec {
        group_columns: vec![0],
        aggregates,
        input_schema: input_schema(),
        output_schema: Arc::new(output),
        emit,
    };
    GroupAggregateOperator::new(spec).expect("a valid aggregation")
}

/// Counts and drops what the operator emits.
#[derive(Default)]
struct Discard(usize);

impl Output<ChangelogBatch> for Discard {
    fn collect(&mut self, batch: ChangelogBatch) -> Result<(), TaskError> {
        self.0 += batch.num_rows();
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

fn run(emit: EmitMode, with_max: bool, input: &[ChangelogBatch]) -> usize {
    let mut op = operator(emit, with_max);
    let mut out = Discard::default();
    op.open(&OperatorContext::new("GroupAggregate", 0, 1, 128))
        .expect("opens");
    for batch in input {
        op.process_batch(batch.clone(), &mut out)
            .expect("aggregates");
    }
    op.finish(&mut out).expect("finishes");
    out.0
}

/// A benchmark case: its group name and its input.
type Case = (&'static str, Vec<ChangelogBatch>);

fn cases() -> Vec<Case> {
    vec![
        ("exec/table_group_by_1k_keys", input(1_000)),
        ("exec/table_group_by_1m_keys", input(1_000_000)),
    ]
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    for (name, input) in cases {
        let mut group = c.benchmark_group(*name);
        group
            .throughput(Throughput::Elements(N as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5));
        for (mode, emit, with_max) in MODES {
            group.bench_with_input(BenchmarkId::from_parameter(mode), &emit, |b, &emit| {
                b.iter(|| run(emit, with_max, input))
            });
        }
        group.finish();
    }
}

fn report(cases: &[Case]) {
    eprintln!(
        "\nrows per CPU-second (repeated runs of {N} rows, at least {REPORT_TIME:?} per case):"
    );
    for (name, input) in cases {
        for (mode, emit, with_max) in MODES {
            let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
                eprintln!("cannot read /proc/self/stat; no CPU-time report");
                return;
            };
            let mut runs = 0u32;
            let mut emitted = 0;
            while runs < 2 || started.elapsed() < REPORT_TIME {
                emitted = run(emit, with_max, input);
                runs += 1;
            }
            let wall = started.elapsed();
            let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
            let rows = f64::from(runs) * N as f64;
            eprintln!(
                "{name}/{mode}: {:>6.1} M rows/CPU-s, {:>6.1} M rows/s ({emitted} rows emitted per run, {runs} runs, {:.2} CPU-s)",
                rows / cpu.as_secs_f64().max(0.01) / 1e6,
                rows / wall.as_secs_f64() / 1e6,
                cpu.as_secs_f64(),
            );
        }
    }
}

fn main() {
    let cases = cases();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &cases);
    criterion.final_summary();
    // Only in a real benchmark run, not when `cargo test --benches` smoke-tests the file.
    if std::env::args().any(|a| a == "--bench") {
        report(&cases);
    }
}
