//! Window operator throughput: `exec/window_tumbling_count` and `exec/window_session`.
//!
//! One million records over 1000 keys, parallelism 1, timestamps increasing. Prints records/s.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rivulet::runtime::state::AggregateFunction;
use rivulet::runtime::time::WatermarkStrategy;
use rivulet::runtime::window::{EventTimeSessionWindows, TumblingEventTimeWindows};
use rivulet::runtime::{DataStream, StreamEnv};
use support::process_cpu_time;

mod support;

const RECORDS: u64 = 1_000_000;
const KEYS: u64 = 1_000;

/// (key, timestamp in ms)
type Event = (u32, i64);

/// Counts records.
#[derive(Clone)]
struct Count;

impl AggregateFunction<Event> for Count {
    type Acc = u64;
    type Out = u64;
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, _: Event) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

fn source(env: &StreamEnv, timestamp: fn(u64) -> i64) -> DataStream<Event> {
    env.from_generator(RECORDS, move |i| ((i % KEYS) as u32, timestamp(i)))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|e: &Event, _| e.1),
        )
}

fn run(build: impl Fn(&StreamEnv)) -> Duration {
    let env = StreamEnv::new().with_parallelism(1);
    build(&env);
    let start = Instant::now();
    env.execute("bench").unwrap();
    start.elapsed()
}

fn tumbling(env: &StreamEnv) {
    // One record per millisecond: about 17 one-minute windows per key.
    source(env, |i| i as i64)
        .key_by(|e| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
        .aggregate(Count)
        .for_each(|n| {
            black_box(n);
        });
}

fn sessions(env: &StreamEnv) {
    // Each key sees a record every second; a one-minute pause every 100k records ends every
    // key's session, so each key has ten sessions and most records extend (merge) one.
    source(env, |i| i as i64 + (i / 100_000) as i64 * 60_000)
        .key_by(|e| e.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(5)))
        .aggregate(Count)
        .for_each(|n| {
            black_box(n);
        });
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("exec");
    group.sample_size(10);
    for (name, build) in [
        ("window_tumbling_count", tumbling as fn(&StreamEnv)),
        ("window_session", sessions as fn(&StreamEnv)),
    ] {
        let once = run(build);
        println!(
            "exec/{name}: {:.2} M records/s (one run, {once:?})",
            RECORDS as f64 / once.as_secs_f64() / 1e6
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(build)).sum())
        });
    }
    group.finish();
    if std::env::args().any(|a| a == "--bench") {
        for (name, build) in [
            ("window_tumbling_count", tumbling as fn(&StreamEnv)),
            ("window_session", sessions as fn(&StreamEnv)),
        ] {
            let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
                return;
            };
            let mut runs = 0u32;
            while runs < 3 || started.elapsed() < Duration::from_secs(2) {
                run(build);
                runs += 1;
            }
            let wall = started.elapsed();
            let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
            let records = f64::from(runs) * RECORDS as f64;
            eprintln!(
                "exec/{name}: {:.1} M records/s, {:.1} M records/CPU-s ({runs} runs)",
                records / wall.as_secs_f64() / 1e6,
                records / cpu.as_secs_f64().max(0.01) / 1e6
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
