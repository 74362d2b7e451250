//! Checkpoint costs on a job with one million keys of `ValueState<i64>`.
//!
//! - `exec/checkpoint_throughput/{none,every_1s}`: the same keyed job (6 M records over 1 M keys,
//!   parallelism 1) without checkpoints and with a checkpoint every second, so the two medians
//!   give the throughput cost of checkpointing.
//!
//! After criterion's runs, the bench runs the pair interleaved five more times (A/B) and prints
//! the median of each, the checkpoint durations, state sizes and longest task pauses (the
//! capture at the barrier; serialization runs on a writer thread) the job reported, and the time
//! from a failure to the end of the recovered run.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use rivulet::runtime::checkpoint::{CheckpointConfig, RestartStrategy};
use rivulet::runtime::operator::keyed::{Collector, KeyedContext, KeyedProcessFunction};
use rivulet::runtime::state::ValueState;
use rivulet::runtime::{BoxError, JobResult, StreamEnv};

/// Records per run.
const N: i64 = 6_000_000;
/// Distinct keys, each with one `ValueState<i64>`.
const KEYS: i64 = 1_000_000;

/// Adds every value to its key's state.
#[derive(Clone)]
struct Accumulate {
    total: ValueState<i64>,
}

impl KeyedProcessFunction<i64, i64, i64> for Accumulate {
    fn process_element(
        &mut self,
        value: i64,
        ctx: &mut KeyedContext<'_, i64>,
        _out: &mut Collector<'_, i64>,
    ) -> Result<(), BoxError> {
        let sum = self.total.value(ctx)?.unwrap_or(0) + value;
        self.total.update(ctx, sum)?;
        Ok(())
    }
}

fn job(checkpoint: Option<Duration>, fail: Option<Arc<AtomicBool>>) -> JobResult {
    let mut env = StreamEnv::new().with_parallelism(1);
    if let Some(interval) = checkpoint {
        env = env
            .with_checkpointing(CheckpointConfig::every(interval))
            .with_restart_strategy(RestartStrategy::fixed_delay(1, Duration::ZERO));
    }
    env.from_sequence(0..N)
        .map(move |x| {
            if x == N * 3 / 4
                && let Some(armed) = &fail
                && armed.swap(false, Ordering::SeqCst)
            {
                panic!("injected failure");
            }
            x
        })
        .key_by(|x| x % KEYS)
        .process(Accumulate {
            total: ValueState::new("total"),
        })
        .for_each(|x| {
            black_box(x);
        });
    env.execute("checkpointed").expect("the job runs")
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("exec/checkpoint_throughput");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(N as u64));
    group.bench_function("none", |b| b.iter(|| job(None, None)));
    group.bench_function("every_1s", |b| {
        b.iter(|| job(Some(Duration::from_secs(1)), None))
    });
    group.finish();

    if std::env::args().any(|a| a == "--bench") {
        let (mut plain, mut checkpointed) = (Vec::new(), Vec::new());
        let mut stats = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            job(None, None);
            plain.push(start.elapsed());
            let start = Instant::now();
            let result = job(Some(Duration::from_secs(1)), None);
            checkpointed.push(start.elapsed());
            stats.extend(result.checkpoint_stats);
        }
        let (a, b) = (median(plain), median(checkpointed));
        eprintln!(
            "exec/checkpoint A/B x5: none {:.3}s ({:.1} M rec/s), every 1 s {:.3}s ({:.1} M rec/s): {:+.1}%",
            a.as_secs_f64(),
            N as f64 / a.as_secs_f64() / 1e6,
            b.as_secs_f64(),
            N as f64 / b.as_secs_f64() / 1e6,
            (b.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0
        );
        for s in &stats {
            eprintln!(
                "  checkpoint {}: {:.1} ms, {:.1} MB of state, longest task pause {:.1} ms",
                s.id,
                s.duration.as_secs_f64() * 1e3,
                s.state_bytes as f64 / 1e6,
                s.longest_pause.as_secs_f64() * 1e3
            );
        }
        // The injected failure's panic message is expected; keep the report readable.
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let start = Instant::now();
        let result = job(
            Some(Duration::from_millis(500)),
            Some(Arc::new(AtomicBool::new(true))),
        );
        std::panic::set_hook(quiet);
        eprintln!(
            "  with a failure at 3/4 and recovery: {:.3}s, {} restart(s), {} checkpoint(s)",
            start.elapsed().as_secs_f64(),
            result.restarts,
            result.checkpoints
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
