//! Keyed operators: functions that see one key at a time, with state scoped to that key.
//!
//! Records arrive through a hash exchange, so every record of a key reaches the same subtask.
//! The operator recomputes the key, encodes it canonically, and points the keyed state backend
//! at it before calling the user function.

use std::marker::PhantomData;

use serde::Serialize;

use super::OperatorState;
use super::{Operator, OperatorContext, Output, Snapshot};
use crate::batch::{Data, NO_TIMESTAMP, Records};
use crate::error::{BoxError, TaskError};
use crate::keys::key_group_of;
use crate::state::{KeyedStateAccess, KeyedStateBackend, ValueState};
use crate::time::{TimeDomain, TimerKey, Timers};

/// Where a keyed function's results go; records inherit the input record's timestamp.
pub struct Collector<'a, O> {
    out: &'a mut Records<O>,
    timestamp: Option<i64>,
}

impl<'a, O> Collector<'a, O> {
    /// A collector appending to `out` with `timestamp` (for tests of user functions).
    pub fn new(out: &'a mut Records<O>, timestamp: Option<i64>) -> Self {
        Collector { out, timestamp }
    }

    /// Emits a record with the current input record's timestamp, if it has one.
    pub fn collect(&mut self, value: O) {
        match self.timestamp {
            Some(ts) => self.out.push_with_timestamp(value, ts),
            None => self.out.push(value),
        }
    }

    /// Emits a record with an explicit timestamp.
    pub fn collect_with_timestamp(&mut self, value: O, timestamp: i64) {
        self.out.push_with_timestamp(value, timestamp);
    }
}

/// What a keyed function can see and touch while it processes one record: the key, the record's
/// timestamp, and the state of that key.
///
/// State handles ([`ValueState`], [`ListState`](crate::state::ListState), ...) take the context
/// as their first argument.
pub struct KeyedContext<'a, K> {
    key: &'a K,
    timestamp: Option<i64>,
    backend: &'a mut KeyedStateBackend,
    operator: &'a OperatorContext,
    timers: &'a mut Timers<K>,
}

impl<'a, K> KeyedContext<'a, K> {
    pub(crate) fn new(
        key: &'a K,
        timestamp: Option<i64>,
        backend: &'a mut KeyedStateBackend,
        operator: &'a OperatorContext,
        timers: &'a mut Timers<K>,
    ) -> Self {
        KeyedContext {
            key,
            timestamp,
            backend,
            operator,
            timers,
        }
    }

    /// The key of the record being processed.
    pub fn current_key(&self) -> &K {
        self.key
    }

    /// The record's event-time timestamp, when it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Facts about the subtask.
    pub fn operator(&self) -> &OperatorContext {
        self.operator
    }

    /// The operator's current event time: the last watermark it received.
    pub fn current_watermark(&self) -> i64 {
        self.timers.watermark
    }

    /// The current processing time in milliseconds.
    pub fn current_processing_time(&self) -> i64 {
        self.operator.processing_time()
    }

    fn timer(&self, time: i64) -> TimerKey {
        TimerKey {
            time,
            key_group: self.backend.current_key_group().unwrap_or(0),
            key: self.backend.current_key().into(),
            namespace: self.backend.current_namespace().into(),
        }
    }
}

impl<K: Data> KeyedContext<'_, K> {
    /// Asks for [`on_timer`](KeyedProcessFunction::on_timer) to be called for the current key once
    /// the watermark reaches `time`. A timer is registered once per key and time; a time at or
    /// below the current watermark fires with the next watermark.
    pub fn register_event_time_timer(&mut self, time: i64) {
        let timer = self.timer(time);
        self.timers.event.register(timer, self.key);
    }

    /// Removes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        let timer = self.timer(time);
        self.timers.event.delete(&timer);
    }

    /// Asks for [`on_timer`](KeyedProcessFunction::on_timer) to be called for the current key once
    /// processing time reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        let timer = self.timer(time);
        self.timers.processing.register(timer, self.key);
    }

    /// Removes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        let timer = self.timer(time);
        self.timers.processing.delete(&timer);
    }
}

impl<K> KeyedStateAccess for KeyedContext<'_, K> {
    fn state_backend(&mut self) -> &mut KeyedStateBackend {
        self.backend
    }
}

/// A function over a keyed stream with keyed state: Flink's `KeyedProcessFunction`.
///
/// It is cloned for every subtask (and again on restart), so keep per-subtask data in state or
/// in fields initialised in `open`.
///
/// ```
/// use rivulet_runtime::operator::keyed::{Collector, KeyedContext, KeyedProcessFunction};
/// use rivulet_runtime::state::ValueState;
/// use rivulet_runtime::{BoxError, StreamEnv};
///
/// /// Emits each word with how often it was seen so far.
/// #[derive(Clone)]
/// struct RunningCount { count: ValueState<u64> }
///
/// impl KeyedProcessFunction<String, String, (String, u64)> for RunningCount {
///     fn process_element(
///         &mut self,
///         word: String,
///         ctx: &mut KeyedContext<'_, String>,
///         out: &mut Collector<'_, (String, u64)>,
///     ) -> Result<(), BoxError> {
///         let n = self.count.value(ctx)?.unwrap_or(0) + 1;
///         self.count.update(ctx, n)?;
///         out.collect((word, n));
///         Ok(())
///     }
/// }
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let counts = env
///     .from_vec(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
///     .key_by(|w| w.clone())
///     .process(RunningCount { count: ValueState::new("count") })
///     .collect();
/// env.execute("running count").unwrap();
/// assert_eq!(
///     counts.take_sorted(),
///     vec![("a".to_owned(), 1), ("a".to_owned(), 2), ("b".to_owned(), 1)]
/// );
/// ```
pub trait KeyedProcessFunction<K, I, O>: Send + 'static {
    /// Called once on the subtask's thread before the first record.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Processes one record of the current key.
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;

    /// A timer of the current key fired at `timestamp`. Records emitted here carry the timer's
    /// time as their timestamp. The default does nothing.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_, K>,
        _out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Encodes keys and points the state backend at them.
struct KeyContext<T, K, F> {
    key_of: F,
    scratch: Vec<u8>,
    max_parallelism: u16,
    backend: Option<KeyedStateBackend>,
    _types: PhantomData<fn(&T) -> K>,
}

impl<T, K: Serialize, F: Fn(&T) -> K> KeyContext<T, K, F> {
    fn new(key_of: F) -> Self {
        KeyContext {
            key_of,
            scratch: Vec::new(),
            max_parallelism: 1,
            backend: None,
            _types: PhantomData,
        }
    }

    fn open(&mut self, ctx: &OperatorContext) {
        let range = ctx.key_group_range();
        self.max_parallelism = ctx.max_parallelism;
        self.backend = Some(KeyedStateBackend::new(
            range.start(),
            range.end().saturating_sub(1),
        ));
    }

    /// Computes the key of `value` and makes it the backend's current key.
    fn set_current(&mut self, value: &T) -> Result<(K, &mut KeyedStateBackend), BoxError> {
        let key = (self.key_of)(value);
        let key_group = key_group_of(&key, self.max_parallelism, &mut self.scratch)?;
        let backend = self
            .backend
            .as_mut()
            .ok_or("a keyed operator processed a record before it was opened")?;
        backend.set_current_key(&self.scratch, key_group);
        Ok((key, backend))
    }
}

/// Runs a [`KeyedProcessFunction`].
///
/// # State
/// Whatever the function declares, per key (and namespace), in the subtask's key groups; it is
/// kept until the function clears it or its TTL expires. Timers are kept per key group until they
/// fire or are deleted; both are snapshotted per key group.
pub(crate) struct KeyedProcessOperator<T, K, O, F, P> {
    keys: KeyContext<T, K, F>,
    function: P,
    ctx: Option<OperatorContext>,
    timers: Timers<K>,
    _out: PhantomData<fn() -> O>,
}

impl<T, K: Serialize, O, F: Fn(&T) -> K, P> KeyedProcessOperator<T, K, O, F, P> {
    pub(crate) fn new(key_of: F, function: P) -> Self {
        KeyedProcessOperator {
            keys: KeyContext::new(key_of),
            function,
            ctx: None,
            timers: Timers::default(),
            _out: PhantomData,
        }
    }
}

impl<T, K, O, F, P> KeyedProcessOperator<T, K, O, F, P>
where
    T: Data,
    K: Data,
    O: Data,
    F: Fn(&T) -> K + Send + 'static,
    P: KeyedProcessFunction<K, T, O>,
{
    /// Fires every timer of `domain` due at `limit`.
    fn fire(&mut self, domain: TimeDomain, limit: i64) -> Result<Records<O>, TaskError> {
        let operator = self.ctx.as_ref().ok_or(NOT_OPENED)?;
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        let function = &mut self.function;
        Ok(fire_timers(
            domain,
            limit,
            backend,
            operator,
            &mut self.timers,
            |time, ctx, out| function.on_timer(time, domain, ctx, out),
        )?)
    }
}

/// Fires every timer of `domain` due at `limit`, in time order (including timers that firing
/// registers), with the backend pointed at each timer's key and namespace.
pub(crate) fn fire_timers<K: Data, O>(
    domain: TimeDomain,
    limit: i64,
    backend: &mut KeyedStateBackend,
    operator: &OperatorContext,
    timers: &mut Timers<K>,
    mut on_timer: impl FnMut(
        i64,
        &mut KeyedContext<'_, K>,
        &mut Collector<'_, O>,
    ) -> Result<(), BoxError>,
) -> Result<Records<O>, BoxError> {
    let mut results = Records::new();
    loop {
        let queue = match domain {
            TimeDomain::EventTime => &mut timers.event,
            TimeDomain::ProcessingTime => &mut timers.processing,
        };
        let Some((timer, key)) = queue.pop_due(limit) else {
            break;
        };
        backend.set_current_key(&timer.key, timer.key_group);
        backend.set_current_namespace(&timer.namespace);
        let mut ctx = KeyedContext::new(&key, Some(timer.time), backend, operator, timers);
        let mut out = Collector::new(&mut results, Some(timer.time));
        on_timer(timer.time, &mut ctx, &mut out)?;
    }
    backend.set_current_namespace(&[]);
    Ok(results)
}

const NOT_OPENED: &str = "a keyed operator was used before it was opened";

impl<T, K, O, F, P> Operator for KeyedProcessOperator<T, K, O, F, P>
where
    T: Data,
    K: Data,
    O: Data,
    F: Fn(&T) -> K + Send + 'static,
    P: KeyedProcessFunction<K, T, O>,
{
    type In = Records<T>;
    type Out = Records<O>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.keys.open(ctx);
        self.ctx = Some(ctx.clone());
        Ok(self.function.open(ctx)?)
    }

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let operator = self.ctx.as_ref().ok_or(NOT_OPENED)?;
        let mut results = Records::new();
        let (values, timestamps) = batch.into_parts();
        for (i, value) in values.into_iter().enumerate() {
            let timestamp = timestamps.get(i).copied().filter(|t| *t != NO_TIMESTAMP);
            let (key, backend) = self.keys.set_current(&value)?;
            let mut ctx = KeyedContext::new(&key, timestamp, backend, operator, &mut self.timers);
            let mut collector = Collector {
                out: &mut results,
                timestamp,
            };
            self.function
                .process_element(value, &mut ctx, &mut collector)?;
        }
        if results.is_empty() {
            return Ok(());
        }
        out.collect(results)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        self.timers.watermark = watermark;
        let results = self.fire(TimeDomain::EventTime, watermark)?;
        if !results.is_empty() {
            out.collect(results)?;
        }
        out.emit_watermark(watermark)
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let results = self.fire(TimeDomain::ProcessingTime, now_ms)?;
        if results.is_empty() {
            return Ok(());
        }
        out.collect(results)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        snapshot_keyed(backend, Some(&self.timers))
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<Snapshot, TaskError> {
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        snapshot_keyed_async(backend, Some(&self.timers))
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        restore_keyed(backend, Some(&mut self.timers), state)
    }
}

/// Captures keyed state and timers, one blob per key group the backend owns.
pub(crate) fn snapshot_keyed<K: Data>(
    backend: &mut KeyedStateBackend,
    timers: Option<&Timers<K>>,
) -> Result<OperatorState, TaskError> {
    let mut state = OperatorState::default();
    for key_group in backend.key_group_range() {
        let blob = (
            backend.snapshot_key_group(key_group)?,
            match timers {
                Some(t) => t.event.snapshot_key_group(key_group)?,
                None => Vec::new(),
            },
            match timers {
                Some(t) => t.processing.snapshot_key_group(key_group)?,
                None => Vec::new(),
            },
        );
        state.keyed.insert(key_group, postcard::to_stdvec(&blob)?);
    }
    Ok(state)
}

/// As [`snapshot_keyed`], but only captures the keyed state (copy-on-write) at the barrier and
/// leaves its serialization to the returned closure; the timers, few next to the state, are
/// serialized at once.
pub(crate) fn snapshot_keyed_async<K: Data>(
    backend: &mut KeyedStateBackend,
    timers: Option<&Timers<K>>,
) -> Result<Snapshot, TaskError> {
    let mut timer_blobs = Vec::new();
    for key_group in backend.key_group_range() {
        timer_blobs.push(match timers {
            Some(t) => (
                t.event.snapshot_key_group(key_group)?,
                t.processing.snapshot_key_group(key_group)?,
            ),
            None => (Vec::new(), Vec::new()),
        });
    }
    let capture = backend.capture();
    Ok(Snapshot::Deferred(Box::new(move || {
        let mut state = OperatorState::default();
        for (key_group, (event, processing)) in capture.key_group_range().zip(timer_blobs) {
            let blob = (capture.snapshot_key_group(key_group)?, event, processing);
            state.keyed.insert(key_group, postcard::to_stdvec(&blob)?);
        }
        Ok(state)
    })))
}

/// Restores what [`snapshot_keyed`] captured, for the key groups the backend owns.
pub(crate) fn restore_keyed<K: Data>(
    backend: &mut KeyedStateBackend,
    mut timers: Option<&mut Timers<K>>,
    state: &OperatorState,
) -> Result<(), TaskError> {
    let range = backend.key_group_range();
    for (&key_group, bytes) in &state.keyed {
        if !range.contains(&key_group) {
            continue;
        }
        let (keyed, event, processing): (Vec<u8>, Vec<u8>, Vec<u8>) = postcard::from_bytes(bytes)?;
        backend.restore_key_group(key_group, &keyed)?;
        if let Some(timers) = timers.as_mut() {
            if !event.is_empty() {
                timers.event.restore_key_group(key_group, &event)?;
            }
            if !processing.is_empty() {
                timers
                    .processing
                    .restore_key_group(key_group, &processing)?;
            }
        }
    }
    Ok(())
}

/// A rolling reduce per key: emits the reduced value after every record.
///
/// # State
/// One value per key: the reduction so far. Kept for the lifetime of the job.
pub(crate) struct ReduceOperator<T, K, F, R> {
    keys: KeyContext<T, K, F>,
    reduce: R,
    state: ValueState<Option<T>>,
}

impl<T: Data, K: Serialize, F: Fn(&T) -> K, R> ReduceOperator<T, K, F, R> {
    pub(crate) fn new(key_of: F, reduce: R) -> Self {
        ReduceOperator {
            keys: KeyContext::new(key_of),
            reduce,
            state: ValueState::new("reduce"),
        }
    }
}

impl<T, K, F, R> Operator for ReduceOperator<T, K, F, R>
where
    T: Data,
    K: Serialize + Send + 'static,
    F: Fn(&T) -> K + Send + 'static,
    R: FnMut(T, T) -> T + Send + 'static,
{
    type In = Records<T>;
    type Out = Records<T>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.keys.open(ctx);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Records<T>>,
    ) -> Result<(), TaskError> {
        let reduce = &mut self.reduce;
        let state = &self.state;
        let has_timestamps = batch.has_timestamps();
        let (values, timestamps) = batch.into_parts();
        let mut reduced = Vec::with_capacity(values.len());
        for value in values {
            let (_, backend) = self.keys.set_current(&value)?;
            let result = state.modify(
                backend,
                || None,
                |slot| {
                    let next = match slot.take() {
                        Some(acc) => reduce(acc, value),
                        None => value,
                    };
                    *slot = Some(next.clone());
                    next
                },
            )?;
            reduced.push(result);
        }
        let results = if has_timestamps {
            Records::with_timestamps(reduced, timestamps)
        } else {
            Records::from(reduced)
        };
        out.collect(results)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        snapshot_keyed::<()>(backend, None)
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<Snapshot, TaskError> {
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        snapshot_keyed_async::<()>(backend, None)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        let backend = self.keys.backend.as_mut().ok_or(NOT_OPENED)?;
        restore_keyed::<()>(backend, None, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::testing::RecordingOutput;

    /// Counts records per key and emits the count when an event-time timer 10 ms after the
    /// record fires.
    #[derive(Clone)]
    struct CountLater {
        count: ValueState<u64>,
    }

    impl KeyedProcessFunction<String, (String, i64), (String, u64, i64)> for CountLater {
        fn process_element(
            &mut self,
            value: (String, i64),
            ctx: &mut KeyedContext<'_, String>,
            _out: &mut Collector<'_, (String, u64, i64)>,
        ) -> Result<(), BoxError> {
            let n = self.count.value(ctx)?.unwrap_or(0) + 1;
            self.count.update(ctx, n)?;
            ctx.register_event_time_timer(value.1 + 10);
            Ok(())
        }

        fn on_timer(
            &mut self,
            timestamp: i64,
            domain: TimeDomain,
            ctx: &mut KeyedContext<'_, String>,
            out: &mut Collector<'_, (String, u64, i64)>,
        ) -> Result<(), BoxError> {
            assert_eq!(domain, TimeDomain::EventTime);
            let n = self.count.value(ctx)?.unwrap_or(0);
            out.collect((ctx.current_key().clone(), n, timestamp));
            Ok(())
        }
    }

    fn operator() -> impl Operator<In = Records<(String, i64)>, Out = Records<(String, u64, i64)>> {
        KeyedProcessOperator::new(
            |r: &(String, i64)| r.0.clone(),
            CountLater {
                count: ValueState::new("count"),
            },
        )
    }

    fn fired(out: &RecordingOutput<Records<(String, u64, i64)>>) -> Vec<(String, u64, i64)> {
        let mut all: Vec<_> = out
            .batches
            .iter()
            .flat_map(|b| b.values().to_vec())
            .collect();
        all.sort();
        all
    }

    #[test]
    fn timers_fire_from_the_watermark_in_time_order() {
        let mut op = operator();
        let mut out = RecordingOutput::default();
        op.open(&OperatorContext::new("count later", 0, 1, 128))
            .unwrap();
        let input = vec![
            ("a".to_owned(), 5),
            ("b".to_owned(), 1),
            ("a".to_owned(), 5),
        ];
        op.process_batch(Records::from(input), &mut out).unwrap();
        op.process_watermark(11, &mut out).unwrap();
        assert_eq!(fired(&out), vec![("b".to_owned(), 1, 11)]);
        op.process_watermark(20, &mut out).unwrap();
        // The duplicate registration of (a, 15) fired once.
        assert_eq!(
            fired(&out),
            vec![("a".to_owned(), 2, 15), ("b".to_owned(), 1, 11)]
        );
        assert_eq!(out.watermarks, vec![11, 20]);
    }

    #[test]
    fn timers_survive_snapshot_and_restore_at_another_parallelism() {
        let mut op = operator();
        let mut out = RecordingOutput::default();
        op.open(&OperatorContext::new("count later", 0, 1, 128))
            .unwrap();
        let input: Vec<(String, i64)> = (0..40).map(|i| (format!("k{}", i % 8), i)).collect();
        op.process_batch(Records::from(input), &mut out).unwrap();
        let snapshot = op.snapshot_state(1).unwrap();
        // Restore into two subtasks that split the key groups; together they fire every timer
        // with the state they need.
        let mut restored = Vec::new();
        for subtask in 0..2 {
            let mut op = operator();
            let mut out = RecordingOutput::default();
            op.open(&OperatorContext::new("count later", subtask, 2, 128))
                .unwrap();
            op.restore_state(&snapshot).unwrap();
            op.process_watermark(i64::MAX, &mut out).unwrap();
            restored.extend(fired(&out));
        }
        restored.sort();
        let mut uninterrupted = operator();
        let mut expected = RecordingOutput::default();
        uninterrupted
            .open(&OperatorContext::new("count later", 0, 1, 128))
            .unwrap();
        let input: Vec<(String, i64)> = (0..40).map(|i| (format!("k{}", i % 8), i)).collect();
        uninterrupted
            .process_batch(Records::from(input), &mut expected)
            .unwrap();
        uninterrupted
            .process_watermark(i64::MAX, &mut expected)
            .unwrap();
        assert_eq!(restored.len(), 40);
        assert_eq!(restored, fired(&expected));
    }
}
