//! Runtime throughput: how fast one million records cross a job, typed and Arrow, at
//! parallelism 1 and 2.
//!
//! - `exec/runtime_source_only`: a sequence source into a discarding sink (the baseline);
//! - `exec/runtime_chain`: source -> map -> filter -> sink, one chained task per subtask;
//! - `exec/runtime_keyed_reduce`: source -> map -> key_by -> rolling sum -> sink (hash exchange);
//! - `exec/runtime_arrow_calc`: Arrow batches -> Calc (filter + projection) -> Arrow hash
//!   exchange -> a discarding operator.
//!
//! After criterion's runs, each case runs for a few more seconds outside criterion and reports
//! records per second and records per CPU-second (user + system time of the whole process, read
//! from `/proc/self/stat`), which shows what the extra threads of parallelism 2 cost.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::compute::kernels::{cmp::gt, numeric::mul};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rivulet::runtime::exchange::ArrowKeySelector;
use rivulet::runtime::operator::calc::{CalcOperator, Projection};
use rivulet::runtime::source::RecordBatchSource;
use rivulet::runtime::{ChangelogBatch, Operator, Output, Records, StreamEnv, TaskError};
use support::process_cpu_time;

mod support;

/// Records per job run.
const N: i64 = 1_000_000;
/// Rows per pre-built Arrow batch.
const ARROW_BATCH_ROWS: usize = 8192;
/// Distinct keys of the keyed cases.
const KEYS: i64 = 1000;
const PARALLELISMS: [usize; 2] = [1, 2];
/// How long each case runs for the records-per-CPU-second report (CPU time has 10 ms ticks).
const REPORT_TIME: Duration = Duration::from_secs(2);

fn source_only(parallelism: usize) {
    let env = StreamEnv::new().with_parallelism(parallelism);
    env.from_sequence(0..N).for_each(|x| {
        black_box(x);
    });
    env.execute("source only").expect("the job runs");
}

fn chain(parallelism: usize) {
    let env = StreamEnv::new().with_parallelism(parallelism);
    env.from_sequence(0..N)
        .map(|x| x.wrapping_mul(3))
        .filter(|x| x % 2 == 0)
        .for_each(|x| {
            black_box(x);
        });
    env.execute("chain").expect("the job runs");
}

fn keyed_reduce(parallelism: usize) {
    let env = StreamEnv::new().with_parallelism(parallelism);
    env.from_sequence(0..N)
        .map(|i| (i % KEYS, 1i64))
        .key_by(|r| r.0)
        .sum(|r| &mut r.1)
        .for_each(|r| {
            black_box(r);
        });
    env.execute("keyed reduce").expect("the job runs");
}

/// One million `(user: Utf8, amount: Int64)` rows in batches of [`ARROW_BATCH_ROWS`].
fn arrow_input() -> Arc<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let mut state = 0x5eed_u64;
    let batches = (0..N as usize)
        .step_by(ARROW_BATCH_ROWS)
        .map(|start| {
            let rows = ARROW_BATCH_ROWS.min(N as usize - start);
            let users: Vec<String> = (start..start + rows)
                .map(|i| format!("user-{}", i as i64 % KEYS))
                .collect();
            let amounts: Vec<i64> = (0..rows)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 33) % 1000) as i64
                })
                .collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(users)),
                    Arc::new(Int64Array::from(amounts)),
                ],
            )
            .expect("columns match the schema")
        })
        .collect();
    Arc::new(batches)
}

/// Drops every batch: the end of the Arrow pipeline.
struct Discard;

impl Operator for Discard {
    type In = ChangelogBatch;
    type Out = Records<()>;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<Records<()>>,
    ) -> Result<(), TaskError> {
        black_box(batch);
        Ok(())
    }
}

fn arrow_calc(parallelism: usize, input: &[RecordBatch]) {
    let output = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("doubled", DataType::Int64, false),
    ]));
    let calc = CalcOperator::new(output)
        .with_filter(|b| gt(b.column(1), &Int64Array::new_scalar(500)))
        .with_projection([
            Projection::column(0),
            Projection::computed(|b| mul(b.column(1), &Int64Array::new_scalar(2))),
        ]);
    let env = StreamEnv::new().with_parallelism(parallelism);
    env.from_source(RecordBatchSource::new(input.iter().cloned()))
        .transform("Calc", move || calc.clone())
        .partition_by_key(ArrowKeySelector::new([0]))
        .transform("Discard", || Discard);
    env.execute("arrow calc").expect("the job runs");
}

/// A benchmark case: its group name and one job run at a parallelism.
type Case = (&'static str, Box<dyn Fn(usize)>);

fn cases() -> Vec<Case> {
    let input = arrow_input();
    vec![
        ("exec/runtime_source_only", Box::new(source_only)),
        ("exec/runtime_chain", Box::new(chain)),
        ("exec/runtime_keyed_reduce", Box::new(keyed_reduce)),
        (
            "exec/runtime_arrow_calc",
            Box::new(move |p| arrow_calc(p, &input)),
        ),
    ]
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    for (name, run) in cases {
        let mut group = c.benchmark_group(*name);
        group
            .throughput(Throughput::Elements(N as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for parallelism in PARALLELISMS {
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("p{parallelism}")),
                &parallelism,
                |b, &p| b.iter(|| run(p)),
            );
        }
        group.finish();
    }
}

fn report(cases: &[Case]) {
    eprintln!(
        "\nrecords per second and per CPU-second (repeated runs of {N} records, at least {REPORT_TIME:?} per case):"
    );
    for (name, run) in cases {
        for parallelism in PARALLELISMS {
            let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
                eprintln!("cannot read /proc/self/stat; no CPU-time report");
                return;
            };
            let mut runs = 0u32;
            while runs < 3 || started.elapsed() < REPORT_TIME {
                run(parallelism);
                runs += 1;
            }
            let wall = started.elapsed();
            let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
            let records = f64::from(runs) * N as f64;
            eprintln!(
                "{name}/p{parallelism}: {:>7.1} M records/s, {:>7.1} M records/CPU-s ({runs} runs, {:.2} CPU-s over {:.2} s wall)",
                records / wall.as_secs_f64() / 1e6,
                records / cpu.as_secs_f64().max(0.01) / 1e6,
                cpu.as_secs_f64(),
                wall.as_secs_f64(),
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
