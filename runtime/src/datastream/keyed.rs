//! Keyed streams and connected streams.

use std::marker::PhantomData;
use std::ops::AddAssign;
use std::sync::Arc;

use super::DataStream;
use crate::batch::Data;
use crate::operator::co::{
    CoMapOperator, CoProcessFunction, CoProcessOperator, KeyedCoProcessFunction,
    KeyedCoProcessOperator,
};
use crate::operator::keyed::{KeyedProcessFunction, KeyedProcessOperator, ReduceOperator};

/// A stream partitioned by key: keyed operators see one key at a time, with state per key.
///
/// Made by [`DataStream::key_by`].
pub struct KeyedStream<T, K, F> {
    pub(crate) stream: DataStream<T>,
    pub(crate) key_of: F,
    _key: PhantomData<fn() -> K>,
}

impl<T, K, F> KeyedStream<T, K, F>
where
    T: Data,
    K: Data,
    F: Fn(&T) -> K + Clone + Send + 'static,
{
    pub(super) fn new(stream: DataStream<T>, key_of: F) -> Self {
        KeyedStream {
            stream,
            key_of,
            _key: PhantomData,
        }
    }

    /// A rolling reduce: for every record, combines it with the key's reduction so far and emits
    /// the result (the first record of a key is emitted as it is).
    ///
    /// ```
    /// use rivulet_runtime::StreamEnv;
    ///
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let maxima = env
    ///     .from_vec(vec![("a".to_owned(), 3), ("a".to_owned(), 1), ("b".to_owned(), 2)])
    ///     .key_by(|(k, _)| k.clone())
    ///     .reduce(|acc, next| if next.1 > acc.1 { next } else { acc })
    ///     .collect();
    /// env.execute("max").unwrap();
    /// assert_eq!(
    ///     maxima.take_sorted(),
    ///     vec![("a".to_owned(), 3), ("a".to_owned(), 3), ("b".to_owned(), 2)]
    /// );
    /// ```
    pub fn reduce<R>(&self, reduce: R) -> DataStream<T>
    where
        R: FnMut(T, T) -> T + Clone + Send + 'static,
    {
        let key_of = self.key_of.clone();
        self.stream.transform("Reduce", move || {
            ReduceOperator::new(key_of.clone(), reduce.clone())
        })
    }

    /// A rolling sum of the field `field` selects, per key; the other fields keep the values of
    /// the key's first record.
    ///
    /// ```
    /// use rivulet_runtime::StreamEnv;
    ///
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let sums = env
    ///     .from_vec(vec![("a".to_owned(), 1u64), ("a".to_owned(), 2)])
    ///     .key_by(|(k, _)| k.clone())
    ///     .sum(|pair| &mut pair.1)
    ///     .collect();
    /// env.execute("sum").unwrap();
    /// assert_eq!(sums.take(), vec![("a".to_owned(), 1), ("a".to_owned(), 3)]);
    /// ```
    pub fn sum<N, A>(&self, field: A) -> DataStream<T>
    where
        N: AddAssign + Copy,
        A: Fn(&mut T) -> &mut N + Clone + Send + 'static,
    {
        self.reduce(move |mut acc, mut next| {
            let add = *field(&mut next);
            *field(&mut acc) += add;
            acc
        })
        .name("Sum")
    }

    /// A rolling minimum of the field `field` selects, per key.
    pub fn min<N, A>(&self, field: A) -> DataStream<T>
    where
        N: PartialOrd + Copy,
        A: Fn(&mut T) -> &mut N + Clone + Send + 'static,
    {
        self.reduce(move |mut acc, mut next| {
            let candidate = *field(&mut next);
            let slot = field(&mut acc);
            if candidate < *slot {
                *slot = candidate;
            }
            acc
        })
        .name("Min")
    }

    /// A rolling maximum of the field `field` selects, per key.
    pub fn max<N, A>(&self, field: A) -> DataStream<T>
    where
        N: PartialOrd + Copy,
        A: Fn(&mut T) -> &mut N + Clone + Send + 'static,
    {
        self.reduce(move |mut acc, mut next| {
            let candidate = *field(&mut next);
            let slot = field(&mut acc);
            if candidate > *slot {
                *slot = candidate;
            }
            acc
        })
        .name("Max")
    }

    /// Applies a keyed process function, cloned per subtask.
    pub fn process<O, P>(&self, function: P) -> DataStream<O>
    where
        O: Data,
        P: KeyedProcessFunction<K, T, O> + Clone,
    {
        let key_of = self.key_of.clone();
        self.stream.transform("KeyedProcess", move || {
            KeyedProcessOperator::new(key_of.clone(), function.clone())
        })
    }

    /// Connects with another stream keyed by the same key type: a keyed co-process function then
    /// sees the records of both for one key, with shared state.
    pub fn connect<U, G>(&self, other: &KeyedStream<U, K, G>) -> KeyedConnectedStreams<T, U, K>
    where
        U: Data,
        F: Sync,
        G: Fn(&U) -> K + Clone + Send + Sync + 'static,
    {
        KeyedConnectedStreams {
            first: self.stream.clone(),
            second: other.stream.clone(),
            key1: Arc::new(self.key_of.clone()),
            key2: Arc::new(other.key_of.clone()),
        }
    }

    /// The underlying (hash-partitioned) stream, for custom keyed operators.
    pub fn into_stream(self) -> DataStream<T> {
        self.stream
    }
}

/// Two streams joined for a two-input operator. Made by [`DataStream::connect`].
pub struct ConnectedStreams<A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    pub(super) fn new(first: DataStream<A>, second: DataStream<B>) -> Self {
        ConnectedStreams { first, second }
    }

    /// Maps both inputs to one output type.
    ///
    /// ```
    /// use rivulet_runtime::StreamEnv;
    ///
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let numbers = env.from_vec(vec![1i64, 2]);
    /// let words = env.from_vec(vec!["three".to_owned()]);
    /// let lengths = numbers.connect(&words).map(|n| n, |w| w.len() as i64).collect();
    /// env.execute("co-map").unwrap();
    /// assert_eq!(lengths.take_sorted(), vec![1, 2, 5]);
    /// ```
    pub fn map<O, F1, F2>(&self, first: F1, second: F2) -> DataStream<O>
    where
        O: Data,
        F1: FnMut(A) -> O + Clone + Send + 'static,
        F2: FnMut(B) -> O + Clone + Send + 'static,
    {
        self.first
            .transform_two_input(&self.second, "CoMap", move || CoMapOperator {
                first: first.clone(),
                second: second.clone(),
                _types: PhantomData,
            })
    }

    /// Applies a co-process function, cloned per subtask.
    pub fn process<O, P>(&self, function: P) -> DataStream<O>
    where
        O: Data,
        P: CoProcessFunction<A, B, O> + Clone,
    {
        self.first
            .transform_two_input(&self.second, "CoProcess", move || CoProcessOperator {
                function: function.clone(),
                _types: PhantomData,
            })
    }
}

/// Two keyed streams connected on the same key type. Made by [`KeyedStream::connect`].
pub struct KeyedConnectedStreams<A, B, K> {
    first: DataStream<A>,
    second: DataStream<B>,
    key1: Arc<dyn Fn(&A) -> K + Send + Sync>,
    key2: Arc<dyn Fn(&B) -> K + Send + Sync>,
}

impl<A: Data, B: Data, K: Data> KeyedConnectedStreams<A, B, K> {
    /// Applies a keyed co-process function, cloned per subtask.
    ///
    /// ```
    /// use rivulet_runtime::operator::co::KeyedCoProcessFunction;
    /// use rivulet_runtime::operator::keyed::{Collector, KeyedContext};
    /// use rivulet_runtime::state::ValueState;
    /// use rivulet_runtime::{BoxError, StreamEnv};
    ///
    /// /// Enriches orders (user, amount) with the user's latest name (user, name).
    /// #[derive(Clone)]
    /// struct Enrich { name: ValueState<String> }
    ///
    /// impl KeyedCoProcessFunction<u32, (u32, u64), (u32, String), (String, u64)> for Enrich {
    ///     fn process_element1(&mut self, order: (u32, u64), ctx: &mut KeyedContext<'_, u32>,
    ///                         out: &mut Collector<'_, (String, u64)>) -> Result<(), BoxError> {
    ///         let name = self.name.value(ctx)?.unwrap_or_else(|| "?".to_owned());
    ///         out.collect((name, order.1));
    ///         Ok(())
    ///     }
    ///     fn process_element2(&mut self, user: (u32, String), ctx: &mut KeyedContext<'_, u32>,
    ///                         _out: &mut Collector<'_, (String, u64)>) -> Result<(), BoxError> {
    ///         self.name.update(ctx, user.1)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let env = StreamEnv::new().with_parallelism(2);
    /// let orders = env.from_vec(vec![(1u32, 10u64)]).key_by(|o| o.0);
    /// let users = env.from_vec(vec![(1u32, "ada".to_owned())]).key_by(|u| u.0);
    /// let enriched = orders
    ///     .connect(&users)
    ///     .process(Enrich { name: ValueState::new("name") })
    ///     .collect();
    /// env.execute("enrich").unwrap();
    /// assert_eq!(enriched.take().len(), 1);
    /// ```
    pub fn process<O, P>(&self, function: P) -> DataStream<O>
    where
        O: Data,
        P: KeyedCoProcessFunction<K, A, B, O> + Clone,
    {
        let (key1, key2) = (Arc::clone(&self.key1), Arc::clone(&self.key2));
        self.first
            .transform_two_input(&self.second, "KeyedCoProcess", move || {
                let (k1, k2) = (Arc::clone(&key1), Arc::clone(&key2));
                KeyedCoProcessOperator {
                    key1: Box::new(move |a: &A| k1(a)),
                    key2: Box::new(move |b: &B| k2(b)),
                    function: function.clone(),
                    state: None,
                    timers: Default::default(),
                    scratch: Vec::new(),
                    _types: PhantomData,
                }
            })
    }
}
