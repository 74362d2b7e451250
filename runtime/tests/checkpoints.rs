//! Checkpoints and recovery: a job that fails and restarts from its latest checkpoint gives the
//! same results as one that never failed, with nothing lost and nothing duplicated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use rivulet_runtime::StreamEnv;
use rivulet_runtime::checkpoint::{
    CheckpointConfig, CheckpointingMode, RestartStrategy, SavepointRestore,
};

mod common;

use common::{CheckpointWatch, GatedSource};

/// The numbers `0..total`, gated on a first checkpoint (see [`GatedSource`]).
fn numbers(total: u64, gate: &Arc<AtomicBool>) -> GatedSource<u64> {
    GatedSource::new(total, Arc::clone(gate), |i| i)
}

/// Where a run fails: the map once at each of `map_at`, the source once at `source_at`.
#[derive(Clone, Default)]
struct Failures {
    map_at: Vec<u64>,
    source_at: Option<u64>,
    /// Makes the map slow and its input channels short, behind a rebalance: the channels into
    /// it are backlogged, and the sources backpressured.
    slow: bool,
}

/// Runs the counting job with the given failures; returns the sorted output, the number of
/// restarts and of completed checkpoints.
fn run_with(
    total: u64,
    parallelism: usize,
    failures: Failures,
    config: impl FnOnce(CheckpointConfig) -> CheckpointConfig,
) -> (Vec<(u64, u64)>, u32, u64) {
    let (output, result) = run_job(total, parallelism, failures, config);
    (output, result.restarts, result.checkpoints)
}

/// Checks that every key's counts arrived in increasing order, then sorts them.
fn in_key_order(output: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut last = std::collections::BTreeMap::new();
    for (key, count) in &output {
        let previous = last.insert(*key, *count).unwrap_or(0);
        assert!(
            *count > previous,
            "key {key}: count {count} arrived after {previous}"
        );
    }
    let mut output = output;
    output.sort_unstable();
    output
}

/// Runs the counting job; returns the sorted output (checked for per-key order) and the job's
/// result.
fn run_job(
    total: u64,
    parallelism: usize,
    failures: Failures,
    config: impl FnOnce(CheckpointConfig) -> CheckpointConfig,
) -> (Vec<(u64, u64)>, rivulet_runtime::JobResult) {
    let checkpointed = Arc::new(AtomicBool::new(false));
    let mut env = StreamEnv::new()
        .with_parallelism(parallelism)
        .with_buffer_timeout(Duration::from_millis(1))
        .with_checkpointing(config(CheckpointConfig::every(Duration::from_millis(5))))
        .with_restart_strategy(RestartStrategy::fixed_delay(5, Duration::ZERO));
    if failures.slow {
        env = env.with_channel_capacity(2);
    }
    let numbers = env.from_source(GatedSource {
        fail_at: failures
            .source_at
            .map(|at| (at, Arc::new(AtomicBool::new(true)))),
        ..numbers(total, &checkpointed)
    });
    numbers.sink(CheckpointWatch(Arc::clone(&checkpointed)));
    // An empty input whose subtasks finish at once: a restore must cope with finished sources.
    let mut numbers = numbers.union([env.from_vec(Vec::<u64>::new())]);
    if failures.slow {
        numbers = numbers.rebalance();
    }
    let slow = failures.slow;
    let armed: Arc<Vec<(u64, AtomicBool)>> = Arc::new(
        failures
            .map_at
            .iter()
            .map(|at| (*at, AtomicBool::new(true)))
            .collect(),
    );
    let counts = numbers
        .map(move |x| {
            if slow {
                std::thread::sleep(Duration::from_micros(20));
            }
            for (at, live) in armed.iter() {
                if x == *at && live.swap(false, Ordering::SeqCst) {
                    panic!("injected failure at {x}");
                }
            }
            (x % 7, 1u64)
        })
        .key_by(|(k, _)| *k)
        .sum(|(_, n)| n)
        .collect();
    let result = env.execute("counting").unwrap();
    (in_key_order(counts.take()), result)
}

/// Runs the counting job; `fail_at` makes the map fail once at that record.
fn run(
    total: u64,
    parallelism: usize,
    fail_at: Option<u64>,
    directory: Option<std::path::PathBuf>,
) -> (Vec<(u64, u64)>, u32, u64) {
    let failures = Failures {
        map_at: fail_at.into_iter().collect(),
        ..Failures::default()
    };
    run_with(total, parallelism, failures, |c| match directory {
        Some(dir) => c.with_directory(dir),
        None => c,
    })
}

fn expected(total: u64) -> Vec<(u64, u64)> {
    let mut all = Vec::new();
    for k in 0..7 {
        let n = (0..total).filter(|x| x % 7 == k).count() as u64;
        all.extend((1..=n).map(|c| (k, c)));
    }
    all.sort();
    all
}

#[test]
fn a_restored_job_equals_an_uninterrupted_one() {
    let total = 4_000;
    let (uninterrupted, restarts, _) = run(total, 2, None, None);
    assert_eq!(restarts, 0);
    assert_eq!(uninterrupted, expected(total));
    let (restored, restarts, checkpoints) = run(total, 2, Some(3_900), None);
    assert_eq!(restarts, 1);
    assert!(checkpoints >= 1);
    assert!(
        restored == uninterrupted,
        "restored run: {} records, uninterrupted: {}",
        restored.len(),
        uninterrupted.len()
    );
}

#[test]
fn checkpoints_in_a_directory_restore_the_job() {
    let dir = std::env::temp_dir().join(format!("rivulet-ckpt-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let total = 3_000;
    let (restored, restarts, _) = run(total, 2, Some(2_990), Some(dir.clone()));
    assert_eq!(restarts, 1);
    assert!(restored == expected(total), "{} records", restored.len());
    let complete: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("_metadata").is_file())
        .collect();
    assert!(
        !complete.is_empty() && complete.len() <= 2,
        "retained {}",
        complete.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_restart_strategy_the_failure_fails_the_job() {
    let env = StreamEnv::new()
        .with_parallelism(1)
        .with_checkpointing(CheckpointConfig::every(Duration::from_millis(5)));
    env.from_sequence(0..100)
        .map(|x| if x == 50 { panic!("boom") } else { x })
        .for_each(|_| {});
    assert!(env.execute("no restarts").is_err());
}

#[test]
fn a_new_job_resumes_from_the_latest_checkpoint_in_its_directory() {
    let dir = std::env::temp_dir().join(format!("rivulet-resume-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let total = 2_000u64;
    let job = |resume: bool, gate: Arc<AtomicBool>, emitted: Arc<AtomicU64>| {
        let mut checkpoints =
            CheckpointConfig::every(Duration::from_millis(5)).with_directory(dir.clone());
        if resume {
            checkpoints = checkpoints.resume_from_latest();
        }
        let env = StreamEnv::new()
            .with_parallelism(2)
            .with_buffer_timeout(Duration::from_millis(1))
            .with_checkpointing(checkpoints);
        let counts = env
            .from_source(GatedSource {
                emitted,
                ..numbers(total, &gate)
            })
            .map(|x| (x % 7, 1u64))
            .key_by(|(k, _)| *k)
            .sum(|(_, n)| n)
            .collect();
        (env, counts)
    };
    // The first run reads half of the input (its gate never opens) and is stopped once a
    // checkpoint covering every key completed.
    let (env, first) = job(false, Arc::new(AtomicBool::new(false)), Arc::default());
    let handle = env.execute_async("first run").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        seen.extend(first.take());
        let mut keys: Vec<u64> = seen.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() == 7 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint completed"
        );
        std::thread::yield_now();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(handle.cancel());
    seen.extend(first.take());
    // The second run resumes: the sources continue from their checkpointed positions and the
    // counts from their checkpointed values.
    let emitted = Arc::new(AtomicU64::new(0));
    let (env, second) = job(true, Arc::new(AtomicBool::new(true)), Arc::clone(&emitted));
    env.execute("second run").unwrap();
    let emitted = emitted.load(Ordering::SeqCst);
    assert!(
        emitted < total,
        "the second run read all {emitted} records again"
    );
    // The restored sink first publishes the checkpoint's pre-committed output (which the first
    // run may have published too: the collect handle of another run cannot deduplicate it, a
    // file sink's idempotent commits do), then the counts after it. Together the two runs
    // published every count, and the second run none twice.
    let mut second = second.take_sorted();
    let before = second.len();
    second.dedup();
    assert_eq!(
        second.len(),
        before,
        "the second run published a count twice"
    );
    seen.extend(second);
    seen.sort_unstable();
    seen.dedup();
    assert!(seen == expected(total), "{} distinct counts", seen.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_failures_in_operators_and_sources_are_all_recovered() {
    let total = 4_000;
    for parallelism in [1, 2] {
        let failures = Failures {
            map_at: vec![2_500, 3_100, 3_900],
            source_at: Some(2_800),
            ..Failures::default()
        };
        let (restored, restarts, _) = run_with(total, parallelism, failures, |c| c);
        assert_eq!(restarts, 4, "parallelism {parallelism}");
        assert!(
            restored == expected(total),
            "parallelism {parallelism}: {} records",
            restored.len()
        );
    }
}

#[test]
fn at_least_once_mode_loses_nothing() {
    let total = 4_000;
    let failures = Failures {
        map_at: vec![3_000],
        ..Failures::default()
    };
    let (restored, restarts, _) = run_with(total, 2, failures, |c| {
        c.with_mode(CheckpointingMode::AtLeastOnce)
    });
    assert_eq!(restarts, 1);
    // Every count appears at least once; some may appear twice.
    let mut distinct = restored.clone();
    distinct.dedup();
    let expected = expected(total);
    assert!(
        expected.iter().all(|e| distinct.binary_search(e).is_ok()),
        "a count is missing"
    );
}

#[test]
fn a_savepoint_taken_at_parallelism_two_restores_at_three() {
    let dir = std::env::temp_dir().join(format!("rivulet-savepoint-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let total = 3_000u64;
    let job = |parallelism: usize, gate: bool, restore: Option<SavepointRestore>| {
        let mut env = StreamEnv::new()
            .with_parallelism(parallelism)
            .with_buffer_timeout(Duration::from_millis(1));
        if let Some(restore) = restore {
            env = env.with_savepoint_restore(restore);
        }
        let emitted = Arc::new(AtomicU64::new(0));
        let counts = env
            .from_source(GatedSource {
                emitted: Arc::clone(&emitted),
                ..numbers(total, &Arc::new(AtomicBool::new(gate)))
            })
            .uid("numbers")
            .map(|x| (x % 7, 1u64))
            .uid("pairs")
            .key_by(|(k, _)| *k)
            .sum(|(_, n)| n)
            .uid("counts")
            .collect();
        (env, counts, emitted)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Parallelism 2, half of the input: stop with a savepoint once every key was counted.
    let (env, first, _) = job(2, false, None);
    let handle = env.execute_async("before").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        seen.extend(first.take());
        let mut keys: Vec<u64> = seen.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() == 7 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::yield_now();
    }
    let savepoint = rt.block_on(handle.stop_with_savepoint(&dir)).unwrap();
    assert!(savepoint.join("_metadata").is_file());
    seen.extend(first.take());
    // Parallelism 3 from the savepoint, the whole input.
    let (env, second, emitted) = job(3, true, Some(SavepointRestore::from(&savepoint)));
    env.execute("after").unwrap();
    assert!(emitted.load(Ordering::SeqCst) < total);
    let second = second.take_sorted();
    assert!(
        second.iter().all(|(_, n)| *n >= 2),
        "a count restarted from scratch"
    );
    seen.extend(second);
    seen.sort_unstable();
    seen.dedup();
    assert!(seen == expected(total), "{} distinct counts", seen.len());
    // A savepoint with state of an operator the job lacks fails unless allowed.
    let env = StreamEnv::new()
        .with_parallelism(1)
        .with_savepoint_restore(SavepointRestore::from(&savepoint));
    env.from_sequence(0..10).uid("numbers").for_each(|_| {});
    let error = env.execute("changed job").unwrap_err();
    assert!(error.to_string().contains("\"pairs\""), "{error}");
    let env = StreamEnv::new()
        .with_parallelism(1)
        .with_savepoint_restore(SavepointRestore::from(&savepoint).allow_non_restored_state());
    env.from_source(numbers(total, &Arc::new(AtomicBool::new(true))))
        .uid("numbers")
        .for_each(|_| {});
    env.execute("changed job, allowed").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Wherever the failure strikes, the restored job's output equals the uninterrupted one.
    #[test]
    fn any_failure_point_restores_exactly_once(
        fail_at in 0u64..2_000,
        parallelism in 1usize..4,
    ) {
        let total = 2_000;
        let (restored, restarts, _) = run(total, parallelism, Some(fail_at), None);
        prop_assert_eq!(restarts, 1);
        prop_assert!(restored == expected(total), "{} records", restored.len());
    }
}

/// A savepoint asked of a job that already ended fails at once with the reason, instead of
/// waiting for barriers no task will see.
#[test]
fn a_savepoint_of_an_ended_job_fails_instead_of_waiting() {
    let env = StreamEnv::new().with_parallelism(1);
    let out = env.from_vec(vec![1u64, 2, 3]).collect();
    let handle = env.execute_async("short").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the job does not end");
        std::thread::sleep(Duration::from_millis(1));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("rivulet-ended-{}", std::process::id()));
    let result = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), handle.trigger_savepoint(&dir)).await
        })
        .expect("the savepoint answers instead of hanging");
    let err = result.expect_err("no savepoint of an ended job");
    assert!(err.to_string().contains("ended"), "{err}");
    assert_eq!(out.take_sorted(), vec![1, 2, 3]);
}

#[test]
fn several_failures_are_recovered_with_unaligned_checkpoints() {
    let total = 4_000;
    for parallelism in [1, 3] {
        let failures = Failures {
            map_at: vec![2_500, 3_100, 3_900],
            source_at: Some(2_800),
            ..Failures::default()
        };
        let (restored, restarts, _) =
            run_with(total, parallelism, failures, |c| c.with_unaligned(true));
        // At parallelism 3 two failures in different subtasks may strike in one attempt.
        assert!((2..=4).contains(&restarts), "parallelism {parallelism}");
        assert!(
            restored == expected(total),
            "parallelism {parallelism}: {} records",
            restored.len()
        );
    }
}

/// Behind a slow operator with short input channels the barriers overtake the backlog: the
/// checkpoints store it as in-flight data, and a restore replays it exactly once.
#[test]
fn unaligned_barriers_overtake_a_backlog_which_a_restore_replays() {
    let total = 4_000;
    let failures = Failures {
        map_at: vec![3_000, 3_600],
        slow: true,
        ..Failures::default()
    };
    let (restored, result) = run_job(total, 2, failures, |c| c.with_unaligned(true));
    assert_eq!(result.restarts, 2);
    assert!(restored == expected(total), "{} records", restored.len());
    let in_flight: u64 = result
        .checkpoint_stats
        .iter()
        .map(|s| s.in_flight_bytes)
        .sum();
    assert!(
        in_flight > 0,
        "no checkpoint stored in-flight data: {:?}",
        result.checkpoint_stats
    );
}

/// With an aligned-checkpoint timeout, an alignment that takes longer switches the checkpoint
/// to unaligned at that task, and recovery stays exactly-once.
#[test]
fn the_aligned_checkpoint_timeout_switches_to_unaligned() {
    let total = 4_000;
    let failures = Failures {
        map_at: vec![3_200],
        slow: true,
        ..Failures::default()
    };
    // Every task with several open inputs holds one while the others' barriers come: with a
    // timeout of a nanosecond, each such alignment switches.
    let (restored, result) = run_job(total, 2, failures, |c| {
        c.with_aligned_checkpoint_timeout(Duration::from_nanos(1))
    });
    assert_eq!(result.restarts, 1);
    assert!(restored == expected(total), "{} records", restored.len());
    assert!(
        result.checkpoint_stats.iter().any(|s| s.unaligned),
        "no checkpoint switched to unaligned: {:?}",
        result.checkpoint_stats
    );
    // Without the timeout, every checkpoint stays aligned and stores no in-flight data.
    let failures = Failures {
        slow: true,
        ..Failures::default()
    };
    let (output, result) = run_job(total, 2, failures, |c| c);
    assert!(output == expected(total));
    assert!(
        result
            .checkpoint_stats
            .iter()
            .all(|s| !s.unaligned && s.in_flight_bytes == 0),
        "{:?}",
        result.checkpoint_stats
    );
}

/// Several checkpoints in progress at once, aligned and unaligned: recovery stays exactly-once.
#[test]
fn concurrent_checkpoints_restore_exactly_once() {
    let total = 4_000;
    for unaligned in [false, true] {
        let failures = Failures {
            map_at: vec![2_700, 3_500],
            slow: true,
            ..Failures::default()
        };
        let (restored, result) = run_job(total, 2, failures, |c| {
            c.with_max_concurrent_checkpoints(3)
                .with_unaligned(unaligned)
        });
        assert_eq!(result.restarts, 2, "unaligned: {unaligned}");
        assert!(
            restored == expected(total),
            "unaligned {unaligned}: {} records",
            restored.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Unaligned: wherever the failure strikes, the restored job's output equals the
    /// uninterrupted one as a multiset, and every key's counts arrive in order.
    #[test]
    fn any_failure_point_restores_exactly_once_unaligned(
        fail_at in 0u64..2_000,
        parallelism in 1usize..4,
        slow in any::<bool>(),
    ) {
        let total = 2_000;
        let failures = Failures {
            map_at: vec![fail_at],
            slow,
            ..Failures::default()
        };
        let (restored, restarts, _) =
            run_with(total, parallelism, failures, |c| c.with_unaligned(true));
        prop_assert_eq!(restarts, 1);
        prop_assert!(restored == expected(total), "{} records", restored.len());
    }
}
