//! End-to-end tests of the DataStream API on the parallel executor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rivulet_runtime::operator::keyed::{Collector, KeyedContext, KeyedProcessFunction};
use rivulet_runtime::source::{Source, SourcePoll, SourceReader};
use rivulet_runtime::state::{
    AggregateFunction, AggregatingState, ListState, MapState, ReducingState, ValueState,
};
use rivulet_runtime::{BoxError, JobError, Records, SinkFunction, StreamEnv};

fn final_counts(pairs: Vec<(String, u64)>) -> BTreeMap<String, u64> {
    let mut finals = BTreeMap::new();
    for (word, n) in pairs {
        let e = finals.entry(word).or_insert(0);
        *e = n.max(*e);
    }
    finals
}

/// What `pipeline` observed: stateless output, final sums per key, all rolling sums.
type PipelineOutput = (Vec<(u8, u32)>, BTreeMap<u8, u64>, Vec<(u8, u64)>);

/// Runs a map / filter / flat-map / keyed-sum pipeline and returns (stateless output sorted,
/// final sums per key, the sorted multiset of all rolling sums).
fn pipeline(input: &[(u8, u32)], parallelism: usize, batch_size: usize) -> PipelineOutput {
    let env = StreamEnv::new()
        .with_parallelism(parallelism)
        .with_batch_size(batch_size);
    let stateless = env
        .from_vec(input.to_vec())
        .filter(|(_, v)| v % 3 != 0)
        .flat_map(|(k, v)| vec![(k, v), (k.wrapping_add(1), v / 2)])
        .map(|(k, v)| (k % 17, v));
    let stateless_out = stateless.collect();
    let sums = stateless
        .map(|(k, _)| (k, 1u64))
        .key_by(|(k, _)| *k)
        .sum(|(_, n)| n)
        .collect();
    env.execute("pipeline").unwrap();
    let mut sums = sums.take();
    sums.sort();
    let mut finals = BTreeMap::new();
    for (k, n) in &sums {
        let e = finals.entry(*k).or_insert(0);
        *e = (*n).max(*e);
    }
    (stateless_out.take_sorted(), finals, sums)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Parallelism 1 and parallelism N give the same results on random input.
    #[test]
    fn parallelism_one_equals_parallelism_n(
        input in prop::collection::vec((any::<u8>(), any::<u32>()), 0..600),
        parallelism in 2usize..5,
        batch_size in 1usize..64,
    ) {
        let one = pipeline(&input, 1, 1024);
        let many = pipeline(&input, parallelism, batch_size);
        prop_assert_eq!(one, many);
    }
}

#[test]
fn word_count_is_the_same_at_any_parallelism() {
    let text: Vec<String> = (0..500)
        .map(|i| format!("w{} w{} w{}", i % 7, i % 11, i % 3))
        .collect();
    let run = |p: usize| {
        let env = StreamEnv::new().with_parallelism(p);
        let counts = env
            .from_vec(text.clone())
            .flat_map(|l| {
                l.split(' ')
                    .map(|w| (w.to_owned(), 1u64))
                    .collect::<Vec<_>>()
            })
            .key_by(|(w, _)| w.clone())
            .sum(|(_, n)| n)
            .collect();
        env.execute("wc").unwrap();
        final_counts(counts.take())
    };
    let one = run(1);
    assert_eq!(one["w0"], 500 / 7 + 1 + 500 / 11 + 1 + 500 / 3 + 1);
    assert_eq!(one, run(3));
}

/// Exercises every kind of keyed state from one keyed process function.
#[derive(Clone)]
struct AllStates {
    count: ValueState<u64>,
    history: ListState<i64>,
    by_parity: MapState<bool, u32>,
    max: ReducingState<i64>,
    mean: AggregatingState<i64, Mean>,
}

#[derive(Clone)]
struct Mean;

impl AggregateFunction<i64> for Mean {
    type Acc = (i64, u64);
    type Out = f64;

    fn create_accumulator(&self) -> (i64, u64) {
        (0, 0)
    }

    fn add(&self, acc: &mut (i64, u64), value: i64) {
        acc.0 += value;
        acc.1 += 1;
    }

    fn get_result(&self, acc: &(i64, u64)) -> f64 {
        acc.0 as f64 / acc.1 as f64
    }

    fn merge(&self, a: &mut (i64, u64), b: (i64, u64)) {
        a.0 += b.0;
        a.1 += b.1;
    }
}

type Summary = (String, u64, Vec<i64>, u32, i64, String);

impl KeyedProcessFunction<String, (String, i64), Summary> for AllStates {
    fn process_element(
        &mut self,
        (key, value): (String, i64),
        ctx: &mut KeyedContext<'_, String>,
        out: &mut Collector<'_, Summary>,
    ) -> Result<(), BoxError> {
        assert_eq!(ctx.current_key(), &key);
        let n = self.count.value(ctx)?.unwrap_or(0) + 1;
        self.count.update(ctx, n)?;
        self.history.add(ctx, value)?;
        let even = value % 2 == 0;
        let seen = self.by_parity.get(ctx, &even)?.unwrap_or(0);
        self.by_parity.put(ctx, even, seen + 1)?;
        self.max.add(ctx, value)?;
        self.mean.add(ctx, value)?;
        let mut history = self.history.get(ctx)?;
        history.sort();
        out.collect((
            key,
            n,
            history,
            self.by_parity.get(ctx, &true)?.unwrap_or(0),
            self.max.get(ctx)?.unwrap_or(i64::MIN),
            format!("{:.2}", self.mean.get(ctx)?.unwrap_or(0.0)),
        ));
        Ok(())
    }
}

#[test]
fn keyed_state_of_every_kind_is_scoped_to_its_key() {
    let input: Vec<(String, i64)> = (0..60).map(|i| (format!("k{}", i % 4), i)).collect();
    let env = StreamEnv::new().with_parallelism(3);
    let out = env
        .from_vec(input.clone())
        .key_by(|(k, _)| k.clone())
        .process(AllStates {
            count: ValueState::new("count"),
            history: ListState::new("history"),
            by_parity: MapState::new("by-parity"),
            max: ReducingState::new("max", |a: &i64, b: &i64| *a.max(b)),
            mean: AggregatingState::new("mean", Mean),
        })
        .collect();
    env.execute("all states").unwrap();
    let results = out.take();
    assert_eq!(results.len(), 60);
    // The last summary of each key (count 15) sees exactly that key's 15 values.
    for k in 0..4i64 {
        let key = format!("k{k}");
        let last = results
            .iter()
            .find(|r| r.0 == key && r.1 == 15)
            .expect("a final summary per key");
        let values: Vec<i64> = (0..60).filter(|i| i % 4 == k).collect();
        assert_eq!(last.2, values);
        assert_eq!(
            last.3 as usize,
            values.iter().filter(|v| *v % 2 == 0).count()
        );
        assert_eq!(last.4, *values.iter().max().unwrap());
        let mean = values.iter().sum::<i64>() as f64 / 15.0;
        assert_eq!(last.5, format!("{mean:.2}"));
    }
}

#[test]
fn a_failing_operator_fails_the_job_naming_it() {
    let env = StreamEnv::new().with_parallelism(2);
    let _ = env
        .from_sequence(0..10_000)
        .map(|x| x + 1)
        .key_by(|x| x % 10)
        .process(FailAt(5_000))
        .name("Fragile")
        .collect();
    match env.execute("failing") {
        Err(JobError::OperatorFailed {
            operator, source, ..
        }) => {
            assert_eq!(operator, "Fragile");
            assert!(source.to_string().contains("5000"), "{source}");
        }
        other => panic!("expected an operator failure, got {other:?}"),
    }
}

#[derive(Clone)]
struct FailAt(i64);

impl KeyedProcessFunction<i64, i64, i64> for FailAt {
    fn process_element(
        &mut self,
        value: i64,
        _ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, i64>,
    ) -> Result<(), BoxError> {
        if value == self.0 {
            return Err(format!("cannot handle {value}").into());
        }
        out.collect(value);
        Ok(())
    }
}

#[test]
fn a_panicking_operator_fails_the_job_naming_it_and_subtask() {
    let env = StreamEnv::new().with_parallelism(2);
    env.from_sequence(0..1000)
        .map(|x| if x == 999 { panic!("boom at {x}") } else { x })
        .name("Exploding map")
        .for_each(|_| {});
    let err = env.execute("panicking").unwrap_err();
    match &err {
        JobError::OperatorPanicked {
            operator,
            subtask,
            parallelism,
            message,
        } => {
            assert_eq!(operator, "Exploding map");
            assert_eq!(*parallelism, 2);
            assert_eq!(*subtask, 1, "999 is in the second half of the sequence");
            assert!(message.contains("boom at 999"));
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("\"Exploding map\" (subtask 1 of 2) panicked")
    );
}

#[test]
fn invalid_parallelism_is_a_graph_error() {
    let env = StreamEnv::new().with_max_parallelism(8);
    env.from_sequence(0..10).set_parallelism(9).for_each(|_| {});
    let err = env.execute("too wide").unwrap_err();
    assert!(
        err.to_string().contains("parallelism 9"),
        "unexpected message: {err}"
    );
}

#[test]
fn job_graph_shows_chains_and_exchanges() {
    let env = StreamEnv::new().with_parallelism(2);
    env.from_sequence(0..10)
        .map(|x| x * 2)
        .filter(|x| x % 3 == 0)
        .key_by(|x| *x)
        .reduce(|a, b| a + b)
        .set_parallelism(3)
        .print();
    let graph = env.job_graph("chains").unwrap();
    let text = graph.to_string();
    assert_eq!(
        text,
        "job \"chains\": 3 tasks, 7 subtasks, max parallelism 128\n\
         \x20 task 0 [parallelism 2]: Source: sequence -> Map -> Filter\n\
         \x20 task 1 [parallelism 3]: Reduce\n\
         \x20   <- task 0 via HASH\n\
         \x20 task 2 [parallelism 2]: Sink: print\n\
         \x20   <- task 1 via REBALANCE\n"
    );
    let dot = graph.to_dot();
    assert!(dot.contains("n0 -> n1 [label=\"CHAIN\"]"));
    assert!(dot.contains("[label=\"HASH\"]"));
    // Without chaining every operator is a task of its own.
    let env = StreamEnv::new()
        .with_parallelism(1)
        .disable_operator_chaining();
    env.from_sequence(0..10).map(|x| x).for_each(|_| {});
    assert_eq!(env.job_graph("unchained").unwrap().vertices().len(), 3);
}

#[test]
fn union_and_connect_combine_streams() {
    let env = StreamEnv::new().with_parallelism(2);
    let a = env.from_vec(vec![1i64, 2, 3]);
    let b = env.from_vec(vec![10i64, 20]);
    let c = env.from_sequence(100..102);
    let all = a.union([b, c]).map(|x| x + 1).collect();
    let words = env.from_vec(vec!["x".to_owned(), "yy".to_owned()]);
    let co = env
        .from_vec(vec![7i64])
        .connect(&words)
        .map(|n| n, |w| w.len() as i64)
        .collect();
    env.execute("combine").unwrap();
    assert_eq!(all.take_sorted(), vec![2, 3, 4, 11, 21, 101, 102]);
    assert_eq!(co.take_sorted(), vec![1, 2, 7]);
}

#[test]
fn streams_of_two_environments_cannot_be_combined() {
    let env = StreamEnv::new().with_parallelism(1);
    let other = StreamEnv::new().with_parallelism(1);
    let a = env.from_vec(vec![1i64]);
    let b = other.from_vec(vec![2i64]);
    a.union([b]).for_each(|_| {});
    let err = env.execute("foreign").unwrap_err();
    assert!(
        err.to_string().contains("two different StreamEnvs"),
        "{err}"
    );
}

/// A source that never ends: emits increasing numbers, a batch per poll.
#[derive(Clone)]
struct Endless {
    produced: Arc<AtomicU64>,
}

struct EndlessReader {
    next: u64,
    produced: Arc<AtomicU64>,
}

impl Source for Endless {
    type Batch = Records<u64>;
    type Split = u64;
    type Reader = EndlessReader;

    fn splits(&self, _parallelism: usize) -> Result<Vec<u64>, BoxError> {
        Ok(vec![0])
    }

    fn create_reader(&self, split: u64) -> Result<EndlessReader, BoxError> {
        Ok(EndlessReader {
            next: split,
            produced: Arc::clone(&self.produced),
        })
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
}

impl SourceReader for EndlessReader {
    type Batch = Records<u64>;
    type Split = u64;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<Records<u64>>, BoxError> {
        let batch: Vec<u64> = (self.next..self.next + max_records as u64).collect();
        self.next += max_records as u64;
        self.produced
            .fetch_add(max_records as u64, Ordering::SeqCst);
        Ok(SourcePoll::Ready(Records::from(batch)))
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

/// A sink that takes one batch per permit the test hands out.
#[derive(Clone)]
struct GatedSink {
    permits: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
    consumed: Arc<AtomicU64>,
}

impl SinkFunction<u64> for GatedSink {
    fn write_batch(&mut self, batch: Records<u64>) -> Result<(), BoxError> {
        self.permits.lock().unwrap().recv()?;
        self.consumed
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn backpressure_bounds_the_records_in_flight() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let (permit, permits) = std::sync::mpsc::channel();
    let batch_size = 16usize;
    let capacity = 2usize;
    let env = StreamEnv::new()
        .with_parallelism(1)
        .with_batch_size(batch_size)
        .with_channel_capacity(capacity);
    env.from_source(Endless {
        produced: Arc::clone(&produced),
    })
    .map(|x| x + 1)
    .rebalance()
    .map(|x| x * 2)
    .sink(GatedSink {
        permits: Arc::new(std::sync::Mutex::new(permits)),
        consumed: Arc::clone(&consumed),
    })
    .start_new_chain();
    let graph = env.job_graph("gated").unwrap();
    // Source+map, then map, then the sink: two channels between three tasks.
    assert_eq!(graph.vertices().len(), 3);
    let channels = graph.edges().len();
    let handle = env.execute_async("gated").unwrap();
    // In flight: at most `capacity` batches per channel, one batch being written by each
    // producing task, and one batch held by each consuming task.
    let bound = (channels * capacity + 2 * channels + 1) * batch_size;
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..100 {
        let before = consumed.load(Ordering::SeqCst);
        permit.send(()).unwrap();
        // Wait until the sink took the batch; the source refills the pipeline meanwhile.
        while consumed.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "the sink stopped consuming");
            std::thread::yield_now();
        }
        let in_flight = produced.load(Ordering::SeqCst) - consumed.load(Ordering::SeqCst);
        assert!(
            in_flight as usize <= bound,
            "{in_flight} records in flight, more than {bound}"
        );
    }
    // The source ran ahead of the sink as far as the channels allow, and no further.
    assert!(produced.load(Ordering::SeqCst) > consumed.load(Ordering::SeqCst));
    drop(permit);
    rt.block_on(handle.cancel());
}

/// Counts live operator instances; the count falls back when the operators are dropped.
#[derive(Clone)]
struct Tracked {
    token: Arc<()>,
    calls: Arc<AtomicU64>,
}

#[test]
fn cancel_stops_every_operator_before_it_returns() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let produced = Arc::new(AtomicU64::new(0));
    let tracked = Tracked {
        token: Arc::new(()),
        calls: Arc::new(AtomicU64::new(0)),
    };
    let env = StreamEnv::new().with_parallelism(2);
    let t = tracked.clone();
    env.from_source(Endless {
        produced: Arc::clone(&produced),
    })
    .map(move |x| {
        let _alive = &t.token;
        t.calls.fetch_add(1, Ordering::SeqCst);
        x
    })
    .key_by(|x| x % 5)
    .reduce(|a, b| a.max(b))
    .for_each(|_| {});
    // The test and the job's prototype of the map closure hold the token; running subtasks add
    // one clone each.
    let idle_count = Arc::strong_count(&tracked.token);
    let handle = env.execute_async("endless").unwrap();
    // Let the job make progress (no sleep: wait until records flowed).
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracked.calls.load(Ordering::SeqCst) < 10_000 {
        assert!(Instant::now() < deadline, "the job made no progress");
        std::thread::yield_now();
    }
    rt.block_on(handle.cancel());
    let calls = tracked.calls.load(Ordering::SeqCst);
    // Every operator instance (and with it every subtask's clone of the map closure) is gone.
    assert_eq!(Arc::strong_count(&tracked.token), idle_count);
    assert_eq!(tracked.calls.load(Ordering::SeqCst), calls);
    assert!(handle.is_finished());
    match rt.block_on(handle.wait()) {
        Err(JobError::Cancelled { job }) => assert_eq!(job, "endless"),
        other => panic!("expected a cancelled job, got {other:?}"),
    }
}

/// Emits one record, then stays idle forever.
#[derive(Clone)]
struct OneThenIdle;

struct OneThenIdleReader {
    sent: bool,
}

impl Source for OneThenIdle {
    type Batch = Records<String>;
    type Split = bool;
    type Reader = OneThenIdleReader;

    fn splits(&self, _parallelism: usize) -> Result<Vec<bool>, BoxError> {
        Ok(vec![false])
    }

    fn create_reader(&self, sent: bool) -> Result<OneThenIdleReader, BoxError> {
        Ok(OneThenIdleReader { sent })
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
}

impl SourceReader for OneThenIdleReader {
    type Batch = Records<String>;
    type Split = bool;

    fn poll(&mut self, _max: usize) -> Result<SourcePoll<Records<String>>, BoxError> {
        if self.sent {
            return Ok(SourcePoll::Idle);
        }
        self.sent = true;
        Ok(SourcePoll::Ready(Records::from(vec!["hello".to_owned()])))
    }

    fn snapshot(&self) -> bool {
        self.sent
    }
}

#[test]
fn the_buffer_timeout_delivers_a_lone_record() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let env = StreamEnv::new()
        .with_parallelism(2)
        .with_buffer_timeout(Duration::from_millis(20));
    let seen = env
        .from_source(OneThenIdle)
        .map(|s| s.to_uppercase())
        .rebalance()
        .map(|s| s + "!")
        .collect();
    let handle = env.execute_async("lone record").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the record never reached the sink"
        );
        std::thread::yield_now();
    }
    assert!(!handle.is_finished(), "the source is idle, not finished");
    rt.block_on(handle.cancel());
    assert_eq!(seen.take(), vec!["HELLO!".to_owned()]);
}

#[test]
fn live_metrics_and_the_job_result_count_records() {
    let env = StreamEnv::new().with_parallelism(2);
    env.from_sequence(0..1000)
        .filter(|x| x % 2 == 0)
        .for_each(|_| {});
    let result = env.execute("metrics").unwrap();
    let filter = result.operator("Filter").unwrap();
    assert_eq!((filter.records_in, filter.records_out), (1000, 500));
    assert_eq!(result.operator("Sink: for_each").unwrap().records_in, 500);
    let stop = Arc::new(AtomicBool::new(false));
    assert!(!stop.load(Ordering::Relaxed));
}
