//! Join throughput: how fast the relational join operator probes, driven by hand (no job).
//!
//! - `exec/table_join_probe`: batch mode, an inner join of one million probe (left) rows against
//!   a build (right) side of 100 000 distinct `Int64` keys, half of the probe keys matching; the
//!   time covers buffering, building, probing and gathering the output with `take`.
//! - `exec/table_join_streaming`: the same join in streaming mode, the build side first, then
//!   the probe rows joined batch by batch against the kept state.
//!
//! After criterion's runs, each case runs for a few more seconds outside criterion and reports
//! probe rows per second and per CPU-second (user + system time of the whole process, read from
//! `/proc/self/stat`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use criterion::{Criterion, SamplingMode, Throughput};
use rivulet::runtime::relational::{JoinMode, JoinOperator, JoinSpec, JoinType};
use rivulet::runtime::{ChangelogBatch, OperatorContext, Output, TaskError, TwoInputOperator};
use support::process_cpu_time;

mod support;

/// Probe (left) rows per run.
const PROBE_ROWS: usize = 1_000_000;
/// Build (right) rows, one per distinct key.
const BUILD_ROWS: usize = 100_000;
/// Rows per input batch.
const BATCH_ROWS: usize = 8192;
/// How long each case runs for the rows-per-CPU-second report (CPU time has 10 ms ticks).
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

struct Input {
    left: SchemaRef,
    right: SchemaRef,
    output: SchemaRef,
    probe: Vec<ChangelogBatch>,
    build: Vec<ChangelogBatch>,
}

fn batches(
    schema: &SchemaRef,
    rows: usize,
    mut column: impl FnMut(usize) -> (i64, i64),
) -> Vec<ChangelogBatch> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let (keys, values): (Vec<i64>, Vec<i64>) = (start..rows.min(start + BATCH_ROWS))
                .map(&mut column)
                .unzip();
            let data = RecordBatch::try_new(
                Arc::clone(schema),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Int64Array::from(values)),
                ],
            )
            .expect("columns match the schema");
            ChangelogBatch::insert_only(data)
        })
        .collect()
}

fn input() -> Input {
    let field = |name: &str| Field::new(name, DataType::Int64, false);
    let left = Arc::new(Schema::new(vec![field("key"), field("amount")]));
    let right = Arc::new(Schema::new(vec![field("id"), field("price")]));
    let output = Arc::new(Schema::new(vec![
        field("key"),
        field("amount"),
        field("id"),
        field("price"),
    ]));
    let mut state = 0x5eed_u64;
    let probe = batches(&left, PROBE_ROWS, |i| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Keys 0..2 * BUILD_ROWS: about half find a match.
        (((state >> 33) % (2 * BUILD_ROWS as u64)) as i64, i as i64)
    });
    let build = batches(&right, BUILD_ROWS, |i| (i as i64, (i % 97) as i64));
    Input {
        left,
        right,
        output,
        probe,
        build,
    }
}

/// Runs the join once and returns the number of output rows.
fn run(input: &Input, mode: JoinMode) -> usize {
    let spec = JoinSpec::new(
        JoinType::Inner,
        Arc::clone(&input.left),
        Arc::clone(&input.right),
        Arc::clone(&input.output),
    )
    .with_keys([0], [0])
    .with_mode(mode);
    let mut join = JoinOperator::new(spec).expect("a valid join");
    join.open(&OperatorContext::new("join", 0, 1, 128))
        .expect("opens");
    let mut out = Discard::default();
    for batch in &input.build {
        join.process_batch2(batch.clone(), &mut out)
            .expect("builds");
    }
    for batch in &input.probe {
        join.process_batch1(batch.clone(), &mut out)
            .expect("probes");
    }
    join.finish(&mut out).expect("finishes");
    out.rows
}

const CASES: [(&str, JoinMode); 2] = [
    ("exec/table_join_probe", JoinMode::Batch),
    ("exec/table_join_streaming", JoinMode::Streaming),
];

fn main() {
    let input = input();
    // Both modes produce the same join.
    assert_eq!(
        run(&input, JoinMode::Batch),
        run(&input, JoinMode::Streaming)
    );
    let mut criterion = Criterion::default().configure_from_args();
    for (name, mode) in CASES {
        let mut group = criterion.benchmark_group(name);
        group
            .throughput(Throughput::Elements(PROBE_ROWS as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("inner_1m_x_100k", |b| b.iter(|| run(&input, mode)));
        group.finish();
    }
    criterion.final_summary();
    // Only in a real benchmark run, not when `cargo test --benches` smoke-tests the file.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    eprintln!(
        "\nprobe rows per second and per CPU-second (repeated runs of {PROBE_ROWS} probe rows against {BUILD_ROWS} build rows, at least {REPORT_TIME:?} per case):"
    );
    for (name, mode) in CASES {
        let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
            eprintln!("cannot read /proc/self/stat; no CPU-time report");
            return;
        };
        let mut runs = 0u32;
        let mut output = 0;
        while runs < 3 || started.elapsed() < REPORT_TIME {
            output = run(&input, mode);
            runs += 1;
        }
        let wall = started.elapsed();
        let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
        let rows = f64::from(runs) * PROBE_ROWS as f64;
        eprintln!(
            "{name}: {:>7.1} M probe rows/s, {:>7.1} M probe rows/CPU-s ({output} output rows per run, {runs} runs, {:.2} CPU-s over {:.2} s wall)",
            rows / wall.as_secs_f64() / 1e6,
            rows / cpu.as_secs_f64().max(0.01) / 1e6,
            cpu.as_secs_f64(),
            wall.as_secs_f64(),
        );
    }
}
