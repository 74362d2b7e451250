//! Two-input operators over typed records: co-map, co-process and keyed co-process.

use std::marker::PhantomData;

use super::keyed::{Collector, KeyedContext, fire_timers};
use super::{OperatorContext, Output, TwoInputOperator};
use crate::batch::{Data, NO_TIMESTAMP, Records};
use crate::error::{BoxError, TaskError};
use crate::keys::key_group_of;
use crate::state::KeyedStateBackend;
use crate::time::{TimeDomain, Timers};

/// Maps both inputs of connected streams to one output type.
pub(crate) struct CoMapOperator<A, B, O, F1, F2> {
    pub(crate) first: F1,
    pub(crate) second: F2,
    pub(crate) _types: PhantomData<fn(A, B) -> O>,
}

impl<A, B, O, F1, F2> TwoInputOperator for CoMapOperator<A, B, O, F1, F2>
where
    A: Data,
    B: Data,
    O: Data,
    F1: FnMut(A) -> O + Send + 'static,
    F2: FnMut(B) -> O + Send + 'static,
{
    type In1 = Records<A>;
    type In2 = Records<B>;
    type Out = Records<O>;

    fn process_batch1(
        &mut self,
        batch: Records<A>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        out.collect(batch.map(&mut self.first))
    }

    fn process_batch2(
        &mut self,
        batch: Records<B>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        out.collect(batch.map(&mut self.second))
    }
}

/// A function over two connected streams: Flink's `CoProcessFunction`.
///
/// ```
/// use rivulet_runtime::operator::co::CoProcessFunction;
/// use rivulet_runtime::operator::keyed::Collector;
/// use rivulet_runtime::{BoxError, StreamEnv};
///
/// /// Tags numbers and words with where they came from.
/// #[derive(Clone)]
/// struct Tag;
///
/// impl CoProcessFunction<i64, String, String> for Tag {
///     fn process_element1(&mut self, n: i64, out: &mut Collector<'_, String>) -> Result<(), BoxError> {
///         out.collect(format!("number {n}"));
///         Ok(())
///     }
///     fn process_element2(&mut self, w: String, out: &mut Collector<'_, String>) -> Result<(), BoxError> {
///         out.collect(format!("word {w}"));
///         Ok(())
///     }
/// }
///
/// let env = StreamEnv::new().with_parallelism(1);
/// let numbers = env.from_vec(vec![1i64]);
/// let words = env.from_vec(vec!["x".to_owned()]);
/// let tagged = numbers.connect(&words).process(Tag).collect();
/// env.execute("tag").unwrap();
/// assert_eq!(tagged.take_sorted(), vec!["number 1".to_owned(), "word x".to_owned()]);
/// ```
pub trait CoProcessFunction<A, B, O>: Send + 'static {
    /// Called once on the subtask's thread before the first record.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Processes a record of the first input.
    fn process_element1(&mut self, value: A, out: &mut Collector<'_, O>) -> Result<(), BoxError>;

    /// Processes a record of the second input.
    fn process_element2(&mut self, value: B, out: &mut Collector<'_, O>) -> Result<(), BoxError>;
}

fn each_with_timestamp<T>(
    batch: Records<T>,
    mut f: impl FnMut(T, Option<i64>) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let (values, timestamps) = batch.into_parts();
    for (i, value) in values.into_iter().enumerate() {
        let ts = timestamps.get(i).copied().filter(|t| *t != NO_TIMESTAMP);
        f(value, ts)?;
    }
    Ok(())
}

fn emit<O: Data>(results: Records<O>, out: &mut dyn Output<Records<O>>) -> Result<(), TaskError> {
    if results.is_empty() {
        Ok(())
    } else {
        out.collect(results)
    }
}

/// Runs a [`CoProcessFunction`].
pub(crate) struct CoProcessOperator<A, B, O, P> {
    pub(crate) function: P,
    pub(crate) _types: PhantomData<fn(A, B) -> O>,
}

impl<A: Data, B: Data, O: Data, P: CoProcessFunction<A, B, O>> TwoInputOperator
    for CoProcessOperator<A, B, O, P>
{
    type In1 = Records<A>;
    type In2 = Records<B>;
    type Out = Records<O>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        Ok(self.function.open(ctx)?)
    }

    fn process_batch1(
        &mut self,
        batch: Records<A>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let mut results = Records::new();
        let function = &mut self.function;
        each_with_timestamp(batch, |value, ts| {
            function.process_element1(value, &mut Collector::new(&mut results, ts))
        })?;
        emit(results, out)
    }

    fn process_batch2(
        &mut self,
        batch: Records<B>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let mut results = Records::new();
        let function = &mut self.function;
        each_with_timestamp(batch, |value, ts| {
            function.process_element2(value, &mut Collector::new(&mut results, ts))
        })?;
        emit(results, out)
    }
}

/// A function over two keyed streams connected on the same key type, with keyed state shared by
/// both inputs: Flink's `KeyedCoProcessFunction`.
pub trait KeyedCoProcessFunction<K, A, B, O>: Send + 'static {
    /// Called once on the subtask's thread before the first record.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Processes a record of the first input.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;

    /// Processes a record of the second input.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;

    /// A timer of the current key fired. The default does nothing.
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

/// Runs a [`KeyedCoProcessFunction`].
///
/// # State
/// Whatever the function declares, per key, shared by both inputs.
pub(crate) struct KeyedCoProcessOperator<K, A, B, O, P> {
    pub(crate) key1: Box<dyn Fn(&A) -> K + Send>,
    pub(crate) key2: Box<dyn Fn(&B) -> K + Send>,
    pub(crate) function: P,
    pub(crate) state: Option<(KeyedStateBackend, OperatorContext)>,
    pub(crate) timers: Timers<K>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) _types: PhantomData<fn() -> O>,
}

impl<K, A, B, O, P> KeyedCoProcessOperator<K, A, B, O, P>
where
    K: Data,
    P: KeyedCoProcessFunction<K, A, B, O>,
{
    /// Fires every timer of `domain` due at `limit`, in time order.
    fn fire(&mut self, domain: TimeDomain, limit: i64) -> Result<Records<O>, BoxError> {
        let (backend, operator) = self
            .state
            .as_mut()
            .ok_or("a keyed operator was used before it was opened")?;
        let function = &mut self.function;
        fire_timers(
            domain,
            limit,
            backend,
            operator,
            &mut self.timers,
            |time, ctx, out| function.on_timer(time, domain, ctx, out),
        )
    }

    fn run<T>(
        &mut self,
        batch: Records<T>,
        key_of: impl Fn(&Self, &T) -> K,
        mut call: impl FnMut(
            &mut P,
            T,
            &mut KeyedContext<'_, K>,
            &mut Collector<'_, O>,
        ) -> Result<(), BoxError>,
    ) -> Result<Records<O>, BoxError> {
        let mut results = Records::new();
        let (values, timestamps) = batch.into_parts();
        for (i, value) in values.into_iter().enumerate() {
            let timestamp = timestamps.get(i).copied().filter(|t| *t != NO_TIMESTAMP);
            let key = key_of(self, &value);
            let (backend, operator) = self
                .state
                .as_mut()
                .ok_or("a keyed operator processed a record before it was opened")?;
            let key_group = key_group_of(&key, operator.max_parallelism, &mut self.scratch)?;
            backend.set_current_key(&self.scratch, key_group);
            let mut ctx = KeyedContext::new(&key, timestamp, backend, operator, &mut self.timers);
            call(
                &mut self.function,
                value,
                &mut ctx,
                &mut Collector::new(&mut results, timestamp),
            )?;
        }
        Ok(results)
    }
}

impl<K, A, B, O, P> TwoInputOperator for KeyedCoProcessOperator<K, A, B, O, P>
where
    K: Data,
    A: Data,
    B: Data,
    O: Data,
    P: KeyedCoProcessFunction<K, A, B, O>,
{
    type In1 = Records<A>;
    type In2 = Records<B>;
    type Out = Records<O>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        let range = ctx.key_group_range();
        let backend = KeyedStateBackend::new(range.start(), range.end().saturating_sub(1));
        self.state = Some((backend, ctx.clone()));
        Ok(self.function.open(ctx)?)
    }

    fn process_batch1(
        &mut self,
        batch: Records<A>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let results = self.run(
            batch,
            |op, v| (op.key1)(v),
            |f, v, ctx, out| f.process_element1(v, ctx, out),
        )?;
        emit(results, out)
    }

    fn process_batch2(
        &mut self,
        batch: Records<B>,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let results = self.run(
            batch,
            |op, v| (op.key2)(v),
            |f, v, ctx, out| f.process_element2(v, ctx, out),
        )?;
        emit(results, out)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        self.timers.watermark = watermark;
        let results = self.fire(TimeDomain::EventTime, watermark)?;
        emit(results, out)?;
        out.emit_watermark(watermark)
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        out: &mut dyn Output<Records<O>>,
    ) -> Result<(), TaskError> {
        let results = self.fire(TimeDomain::ProcessingTime, now_ms)?;
        emit(results, out)
    }
}
