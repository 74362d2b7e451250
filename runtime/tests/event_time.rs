//! Event time end to end: per-split watermarks, the minimum over inputs, idleness, timers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rivulet_runtime::operator::keyed::{Collector, KeyedContext, KeyedProcessFunction};
use rivulet_runtime::source::{Source, SourcePoll, SourceReader};
use rivulet_runtime::state::AggregateFunction;
use rivulet_runtime::time::{ManualClock, TimeDomain, WatermarkStrategy};
use rivulet_runtime::window::TumblingEventTimeWindows;
use rivulet_runtime::{BoxError, Records, StreamEnv};

/// Emits, for every record, its timestamp and the watermark the operator had when it arrived.
#[derive(Clone)]
struct SeenAt;

impl KeyedProcessFunction<u8, (u8, i64), (i64, i64)> for SeenAt {
    fn process_element(
        &mut self,
        _value: (u8, i64),
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, (i64, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((ctx.timestamp().unwrap_or(i64::MIN), ctx.current_watermark()));
        Ok(())
    }
}

/// Records `(split, index)` from several splits; split `s` stamps record `i` with `i * scale[s]`.
#[derive(Clone)]
struct Splits {
    records_per_split: i64,
    scales: Vec<i64>,
}

struct SplitReader {
    split: (usize, i64),
    end: i64,
    scale: i64,
}

impl Source for Splits {
    type Batch = Records<(u8, i64)>;
    type Split = (usize, i64);
    type Reader = SplitReader;

    fn splits(&self, _parallelism: usize) -> Result<Vec<(usize, i64)>, BoxError> {
        Ok((0..self.scales.len()).map(|s| (s, 0)).collect())
    }

    fn create_reader(&self, split: (usize, i64)) -> Result<SplitReader, BoxError> {
        Ok(SplitReader {
            split,
            end: self.records_per_split,
            scale: self.scales[split.0],
        })
    }
}

impl SourceReader for SplitReader {
    type Batch = Records<(u8, i64)>;
    type Split = (usize, i64);

    fn poll(&mut self, _max: usize) -> Result<SourcePoll<Self::Batch>, BoxError> {
        let (split, next) = self.split;
        if next >= self.end {
            return Ok(SourcePoll::Finished);
        }
        // Small batches, so the splits interleave.
        let to = (next + 7).min(self.end);
        self.split.1 = to;
        let values: Vec<(u8, i64)> = (next..to).map(|i| (split as u8, i * self.scale)).collect();
        Ok(SourcePoll::Ready(Records::from(values)))
    }

    fn snapshot(&self) -> (usize, i64) {
        self.split
    }
}

fn assert_nothing_late(seen: &[(i64, i64)], expected: usize) {
    assert_eq!(seen.len(), expected);
    let late: Vec<_> = seen.iter().filter(|(ts, wm)| ts <= wm).collect();
    assert!(late.is_empty(), "records behind the watermark: {late:?}");
    assert!(
        seen.iter().any(|(_, wm)| *wm > i64::MIN),
        "the watermark never advanced during the job"
    );
}

#[test]
fn a_subtask_watermark_is_the_minimum_over_its_splits() {
    // One subtask reads a fast split (timestamps x1000) and a slow one (x1): if the fast split
    // decided the watermark, the slow split's records would arrive behind it.
    let env = StreamEnv::new().with_parallelism(1);
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|r: &(u8, i64), _| r.1);
    let seen = env
        .from_source_with_watermarks(
            Splits {
                records_per_split: 3_000,
                scales: vec![1_000, 1],
            },
            strategy,
        )
        .key_by(|_| 0u8)
        .process(SeenAt)
        .collect();
    env.execute("splits").unwrap();
    assert_nothing_late(&seen.take(), 6_000);
}

#[test]
fn an_operator_watermark_is_the_minimum_over_its_inputs() {
    // Two source subtasks (one split each) feed one keyed subtask through a hash exchange.
    let env = StreamEnv::new().with_parallelism(2);
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|r: &(u8, i64), _| r.1);
    let fast = env.from_source_with_watermarks(
        Splits {
            records_per_split: 3_000,
            scales: vec![1_000],
        },
        strategy.clone(),
    );
    let slow = env.from_source_with_watermarks(
        Splits {
            records_per_split: 3_000,
            scales: vec![1],
        },
        strategy,
    );
    let seen = fast
        .union([slow])
        .key_by(|_| 0u8)
        .process(SeenAt)
        .set_parallelism(1)
        .collect();
    env.execute("inputs").unwrap();
    assert_nothing_late(&seen.take(), 6_000);
}

/// Fires an event-time timer 100 ms after each record.
#[derive(Clone)]
struct FireAfter;

impl KeyedProcessFunction<u8, (u8, i64), (u8, i64)> for FireAfter {
    fn process_element(
        &mut self,
        value: (u8, i64),
        ctx: &mut KeyedContext<'_, u8>,
        _out: &mut Collector<'_, (u8, i64)>,
    ) -> Result<(), BoxError> {
        ctx.register_event_time_timer(value.1 + 100);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, (u8, i64)>,
    ) -> Result<(), BoxError> {
        assert_eq!(domain, TimeDomain::EventTime);
        out.collect((*ctx.current_key(), timestamp));
        Ok(())
    }
}

/// A source that never ends: `count` records with timestamps 0, 1, ..., then idles forever.
#[derive(Clone)]
struct ThenIdle {
    count: i64,
    emitted: Arc<AtomicU64>,
}

struct ThenIdleReader {
    next: i64,
    count: i64,
    emitted: Arc<AtomicU64>,
}

impl Source for ThenIdle {
    type Batch = Records<(u8, i64)>;
    type Split = i64;
    type Reader = ThenIdleReader;

    fn splits(&self, _parallelism: usize) -> Result<Vec<i64>, BoxError> {
        Ok(vec![0])
    }

    fn create_reader(&self, next: i64) -> Result<ThenIdleReader, BoxError> {
        Ok(ThenIdleReader {
            next,
            count: self.count,
            emitted: Arc::clone(&self.emitted),
        })
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
}

impl SourceReader for ThenIdleReader {
    type Batch = Records<(u8, i64)>;
    type Split = i64;

    fn poll(&mut self, max: usize) -> Result<SourcePoll<Self::Batch>, BoxError> {
        if self.next >= self.count {
            return Ok(SourcePoll::Idle);
        }
        let to = (self.next + max as i64).min(self.count);
        let values: Vec<(u8, i64)> = (self.next..to).map(|i| ((i % 3) as u8, i)).collect();
        self.emitted
            .fetch_add(values.len() as u64, Ordering::SeqCst);
        self.next = to;
        Ok(SourcePoll::Ready(Records::from(values)))
    }

    fn snapshot(&self) -> i64 {
        self.next
    }
}

#[test]
fn an_idle_input_stops_holding_back_the_watermark() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = ManualClock::new(1_000_000);
    let env = StreamEnv::new()
        .with_parallelism(1)
        .with_buffer_timeout(Duration::from_millis(5))
        .with_clock(clock.clone());
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|r: &(u8, i64), _| r.1)
        .with_idleness(Duration::from_secs(10));
    let active_emitted = Arc::new(AtomicU64::new(0));
    let silent_emitted = Arc::new(AtomicU64::new(0));
    // The active input produces 1000 records and then idles; the silent one never produces.
    let active = env.from_source_with_watermarks(
        ThenIdle {
            count: 1_000,
            emitted: Arc::clone(&active_emitted),
        },
        strategy.clone(),
    );
    let silent = env.from_source_with_watermarks(
        ThenIdle {
            count: 0,
            emitted: Arc::clone(&silent_emitted),
        },
        strategy,
    );
    let fired = active
        .union([silent])
        .key_by(|r| r.0)
        .process(FireAfter)
        .collect();
    let handle = env.execute_async("idleness").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while active_emitted.load(Ordering::SeqCst) < 1_000 {
        assert!(Instant::now() < deadline, "the active source stalled");
        std::thread::yield_now();
    }
    // The silent input has no watermark, so nothing can fire while the clock stands still.
    assert!(fired.is_empty());
    // Past the idleness timeout both inputs are idle: the silent one no longer holds the
    // watermark at its start, and the active one's watermark (998) reaches the timers.
    clock.advance(10_000);
    while fired.len() < 899 {
        assert!(
            Instant::now() < deadline,
            "only {} timers fired",
            fired.len()
        );
        std::thread::yield_now();
    }
    rt.block_on(handle.cancel());
    let mut fired = fired.take();
    fired.sort();
    // Exactly the timers at or below the watermark 998 (the largest timestamp 999 minus one):
    // those of records 0..=898.
    let mut expected: Vec<(u8, i64)> = (0..899).map(|i| ((i % 3) as u8, i + 100)).collect();
    expected.sort();
    assert_eq!(fired, expected);
    assert_eq!(silent_emitted.load(Ordering::SeqCst), 0);
}

/// Counts records per key and window.
#[derive(Clone)]
struct Count;

impl AggregateFunction<(u8, i64)> for Count {
    type Acc = u64;
    type Out = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, acc: &mut u64, _value: (u8, i64)) {
        *acc += 1;
    }

    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }

    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

#[test]
fn an_idle_input_does_not_stall_windows() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = ManualClock::new(5_000_000);
    let env = StreamEnv::new()
        .with_parallelism(1)
        .with_buffer_timeout(Duration::from_millis(5))
        .with_clock(clock.clone());
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|r: &(u8, i64), _| r.1)
        .with_idleness(Duration::from_secs(10));
    let active_emitted = Arc::new(AtomicU64::new(0));
    let active = env.from_source_with_watermarks(
        ThenIdle {
            count: 1_000,
            emitted: Arc::clone(&active_emitted),
        },
        strategy.clone(),
    );
    let silent = env.from_source_with_watermarks(
        ThenIdle {
            count: 0,
            emitted: Arc::default(),
        },
        strategy,
    );
    let counts = active
        .union([silent])
        .key_by(|r| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .aggregate(Count)
        .collect();
    let handle = env.execute_async("idle windows").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while active_emitted.load(Ordering::SeqCst) < 1_000 {
        assert!(Instant::now() < deadline, "the active source stalled");
        std::thread::yield_now();
    }
    // Held back by the silent input, no window can close yet.
    assert!(counts.is_empty());
    clock.advance(10_000);
    // The windows up to the watermark 998 close: [0, 100) ... [800, 900), three keys each.
    while counts.len() < 27 {
        assert!(
            Instant::now() < deadline,
            "only {} windows fired",
            counts.len()
        );
        std::thread::yield_now();
    }
    rt.block_on(handle.cancel());
    let counts = counts.take();
    assert_eq!(counts.len(), 27);
    assert_eq!(counts.iter().sum::<u64>(), 900);
}
