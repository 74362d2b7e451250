//! [`AggregatingState`] and the [`AggregateFunction`] it folds inputs with.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;

use super::backend::StateHandle;
use super::table::{StateKind, TableSpec};
use super::{KeyedStateAccess, StateError, StateTtlConfig, StateValue};

/// An incremental aggregation, as Flink's `AggregateFunction`: inputs are added to an
/// accumulator, accumulators merge, and a result is read from an accumulator.
///
/// ```
/// use rivulet_runtime::state::AggregateFunction;
///
/// /// The mean of `f64` inputs.
/// #[derive(Clone)]
/// struct Mean;
///
/// impl AggregateFunction<f64> for Mean {
///     type Acc = (f64, u64);
///     type Out = f64;
///     fn create_accumulator(&self) -> (f64, u64) { (0.0, 0) }
///     fn add(&self, acc: &mut (f64, u64), value: f64) { acc.0 += value; acc.1 += 1; }
///     fn get_result(&self, acc: &(f64, u64)) -> f64 { acc.0 / acc.1 as f64 }
///     fn merge(&self, acc: &mut (f64, u64), other: (f64, u64)) { acc.0 += other.0; acc.1 += other.1; }
/// }
///
/// let mut acc = Mean.create_accumulator();
/// Mean.add(&mut acc, 1.0);
/// Mean.add(&mut acc, 3.0);
/// assert_eq!(Mean.get_result(&acc), 2.0);
/// ```
pub trait AggregateFunction<IN> {
    /// The accumulator kept in state.
    type Acc: StateValue;
    /// The aggregation's result.
    type Out;
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Adds one input to an accumulator.
    fn add(&self, acc: &mut Self::Acc, value: IN);
    /// The result of an accumulator.
    fn get_result(&self, acc: &Self::Acc) -> Self::Out;
    /// Merges `other` into `acc` (e.g. when session windows merge).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
}

/// An accumulator per key (and namespace) that inputs are aggregated into with an
/// [`AggregateFunction`], as Flink's `AggregatingState`.
///
/// ```
/// use rivulet_runtime::state::{AggregateFunction, AggregatingState, KeyedStateBackend};
///
/// #[derive(Clone)]
/// struct Count;
/// impl AggregateFunction<&'static str> for Count {
///     type Acc = u64;
///     type Out = u64;
///     fn create_accumulator(&self) -> u64 { 0 }
///     fn add(&self, acc: &mut u64, _: &'static str) { *acc += 1 }
///     fn get_result(&self, acc: &u64) -> u64 { *acc }
///     fn merge(&self, acc: &mut u64, other: u64) { *acc += other }
/// }
///
/// let mut backend = KeyedStateBackend::new(0, 127);
/// let words = AggregatingState::new("words", Count);
/// backend.set_current_key(b"doc-1", 0);
/// words.add(&mut backend, "hello")?;
/// words.add(&mut backend, "world")?;
/// assert_eq!(words.get(&mut backend)?, Some(2));
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct AggregatingState<IN, F> {
    handle: StateHandle,
    function: F,
    _input: PhantomData<fn(IN)>,
}

impl<IN, F: AggregateFunction<IN>> AggregatingState<IN, F> {
    /// An aggregating state named `name` that aggregates with `function`.
    pub fn new(name: &str, function: F) -> Self {
        Self {
            handle: StateHandle::new(name),
            function,
            _input: PhantomData,
        }
    }

    /// Lets entries expire. Default: no TTL.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.handle.set_ttl(ttl);
        self
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// The aggregate function.
    pub fn function(&self) -> &F {
        &self.function
    }

    fn spec() -> TableSpec<F::Acc> {
        TableSpec {
            kind: StateKind::Aggregating,
            description: format!("AggregatingState<accumulator = {}>", type_name::<F::Acc>()),
            purge_inner: None,
        }
    }

    /// Registers the state with the backend without accessing it, decoding restored entries.
    pub fn register<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        self.handle.register(ctx.state_backend(), Self::spec)
    }

    /// Adds `value` to the current key's accumulator (creating it if there is none).
    #[inline]
    pub fn add<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        value: IN,
    ) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let function = &self.function;
        table.upsert(
            cursor,
            value,
            |v| {
                let mut acc = function.create_accumulator();
                function.add(&mut acc, v);
                acc
            },
            |acc, v| function.add(acc, v),
        );
        Ok(())
    }

    /// The result of the current key's accumulator, if there is one.
    pub fn get<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
    ) -> Result<Option<F::Out>, StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        Ok(table.get(cursor).map(|acc| self.function.get_result(acc)))
    }

    /// Removes the current key's accumulator.
    pub fn clear<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.remove(cursor);
        Ok(())
    }

    /// Merges the current key's accumulators in the `sources` namespaces into namespace
    /// `target` and removes them, as when session windows merge.
    pub fn merge_namespaces<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        target: &[u8],
        sources: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> Result<(), StateError> {
        let function = &self.function;
        self.handle.merge_namespaces(
            ctx.state_backend(),
            Self::spec,
            target,
            sources,
            |acc: &mut F::Acc, other| function.merge(acc, other),
        )
    }
}

impl<IN, F: Clone> Clone for AggregatingState<IN, F> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            function: self.function.clone(),
            _input: PhantomData,
        }
    }
}

impl<IN, F> fmt::Debug for AggregatingState<IN, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregatingState")
            .field("name", &self.handle.name())
            .field("function", &type_name::<F>())
            .field("ttl", &self.handle.ttl())
            .finish()
    }
}
