//! What a window computes: a [`ProcessWindowFunction`] over all of a window's records, or an
//! incremental reduce or [`AggregateFunction`] with one accumulator per key and window.

use std::marker::PhantomData;

use crate::batch::Data;
use crate::error::BoxError;
use crate::operator::keyed::Collector;
use crate::state::{AggregateFunction, StateValue};

/// A function over all records of one key and window, as Flink's `ProcessWindowFunction`. Cloned
/// for every subtask. Its results carry the window's
/// [`max_timestamp`](super::Window::max_timestamp) as their timestamp.
///
/// ```
/// use rivulet_runtime::BoxError;
/// use rivulet_runtime::operator::keyed::Collector;
/// use rivulet_runtime::window::{ProcessWindowFunction, TimeWindow};
///
/// /// Emits (key, window start, window end, number of records).
/// #[derive(Clone)]
/// struct CountPerWindow;
///
/// impl ProcessWindowFunction<String, (String, i64), TimeWindow> for CountPerWindow {
///     type Out = (String, i64, i64, usize);
///     fn process(
///         &mut self,
///         key: &String,
///         window: &TimeWindow,
///         records: Vec<(String, i64)>,
///         out: &mut Collector<'_, Self::Out>,
///     ) -> Result<(), BoxError> {
///         out.collect((key.clone(), window.start, window.end, records.len()));
///         Ok(())
///     }
/// }
/// ```
pub trait ProcessWindowFunction<K, T, W>: Send + 'static {
    /// The records it emits.
    type Out: Data;

    /// Called when the window of `key` fires, with its records in arrival order.
    fn process(
        &mut self,
        key: &K,
        window: &W,
        records: Vec<T>,
        out: &mut Collector<'_, Self::Out>,
    ) -> Result<(), BoxError>;
}

/// The window contents an operator keeps per key and window, and how it emits them.
pub(crate) trait WindowContents<K, T, W>: Send + 'static {
    /// What is kept in state.
    type Acc: StateValue;
    /// What is emitted.
    type Out: Data;

    /// The contents of a window holding only `value`.
    fn create(&self, value: T) -> Self::Acc;

    /// Adds a record.
    fn add(&self, acc: &mut Self::Acc, value: T);

    /// Merges the contents of two windows (session windows).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);

    /// Emits the result of the window; `purge` says the contents are dropped afterwards, so
    /// they may be taken.
    fn emit(
        &mut self,
        key: &K,
        window: &W,
        acc: &mut Self::Acc,
        purge: bool,
        out: &mut Collector<'_, Self::Out>,
    ) -> Result<(), BoxError>;
}

/// Incremental reduce: the contents are the reduction so far.
#[derive(Clone)]
pub(crate) struct ReduceContents<T, R> {
    pub(crate) reduce: R,
    pub(crate) _types: PhantomData<fn(T)>,
}

impl<K, T, W, R> WindowContents<K, T, W> for ReduceContents<T, R>
where
    T: Data,
    R: Fn(T, T) -> T + Send + 'static,
{
    type Acc = Option<T>;
    type Out = T;

    fn create(&self, value: T) -> Option<T> {
        Some(value)
    }

    fn add(&self, acc: &mut Option<T>, value: T) {
        *acc = Some(match acc.take() {
            Some(prev) => (self.reduce)(prev, value),
            None => value,
        });
    }

    fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(other) = other {
            *acc = Some(match acc.take() {
                Some(prev) => (self.reduce)(prev, other),
                None => other,
            });
        }
    }

    fn emit(
        &mut self,
        _: &K,
        _: &W,
        acc: &mut Option<T>,
        purge: bool,
        out: &mut Collector<'_, T>,
    ) -> Result<(), BoxError> {
        let value = if purge { acc.take() } else { acc.clone() };
        if let Some(value) = value {
            out.collect(value);
        }
        Ok(())
    }
}

/// Incremental aggregation with an [`AggregateFunction`].
#[derive(Clone)]
pub(crate) struct AggregateContents<T, A> {
    pub(crate) function: A,
    pub(crate) _types: PhantomData<fn(T)>,
}

impl<K, T, W, A> WindowContents<K, T, W> for AggregateContents<T, A>
where
    T: 'static,
    A: AggregateFunction<T> + Send + 'static,
    A::Out: Data,
{
    type Acc = A::Acc;
    type Out = A::Out;

    fn create(&self, value: T) -> A::Acc {
        let mut acc = self.function.create_accumulator();
        self.function.add(&mut acc, value);
        acc
    }

    fn add(&self, acc: &mut A::Acc, value: T) {
        self.function.add(acc, value);
    }

    fn merge(&self, acc: &mut A::Acc, other: A::Acc) {
        self.function.merge(acc, other);
    }

    fn emit(
        &mut self,
        _: &K,
        _: &W,
        acc: &mut A::Acc,
        _purge: bool,
        out: &mut Collector<'_, A::Out>,
    ) -> Result<(), BoxError> {
        out.collect(self.function.get_result(acc));
        Ok(())
    }
}

/// Incremental aggregation whose result is handed to a [`ProcessWindowFunction`] with the key
/// and window.
#[derive(Clone)]
pub(crate) struct AggregateWindowContents<T, A, P> {
    pub(crate) aggregate: AggregateContents<T, A>,
    pub(crate) function: P,
}

impl<K, T, W, A, P> WindowContents<K, T, W> for AggregateWindowContents<T, A, P>
where
    T: 'static,
    A: AggregateFunction<T> + Send + 'static,
    A::Out: Data,
    P: ProcessWindowFunction<K, A::Out, W>,
{
    type Acc = A::Acc;
    type Out = P::Out;

    fn create(&self, value: T) -> A::Acc {
        <AggregateContents<T, A> as WindowContents<K, T, W>>::create(&self.aggregate, value)
    }

    fn add(&self, acc: &mut A::Acc, value: T) {
        self.aggregate.function.add(acc, value);
    }

    fn merge(&self, acc: &mut A::Acc, other: A::Acc) {
        self.aggregate.function.merge(acc, other);
    }

    fn emit(
        &mut self,
        key: &K,
        window: &W,
        acc: &mut A::Acc,
        _purge: bool,
        out: &mut Collector<'_, P::Out>,
    ) -> Result<(), BoxError> {
        let result = self.aggregate.function.get_result(acc);
        self.function.process(key, window, vec![result], out)
    }
}

/// All records of the window, for a [`ProcessWindowFunction`].
#[derive(Clone)]
pub(crate) struct ProcessContents<P> {
    pub(crate) function: P,
}

impl<K, T, W, P> WindowContents<K, T, W> for ProcessContents<P>
where
    T: Data,
    P: ProcessWindowFunction<K, T, W>,
{
    type Acc = Vec<T>;
    type Out = P::Out;

    fn create(&self, value: T) -> Vec<T> {
        vec![value]
    }

    fn add(&self, acc: &mut Vec<T>, value: T) {
        acc.push(value);
    }

    fn merge(&self, acc: &mut Vec<T>, other: Vec<T>) {
        acc.extend(other);
    }

    fn emit(
        &mut self,
        key: &K,
        window: &W,
        acc: &mut Vec<T>,
        purge: bool,
        out: &mut Collector<'_, P::Out>,
    ) -> Result<(), BoxError> {
        let records = if purge {
            std::mem::take(acc)
        } else {
            acc.clone()
        };
        self.function.process(key, window, records, out)
    }
}
