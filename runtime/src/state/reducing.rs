//! [`ReducingState`]: one value per key and namespace, combined with a reduce function.

use std::any::type_name;
use std::fmt;
use std::sync::Arc;

use super::backend::StateHandle;
use super::table::{StateKind, TableSpec};
use super::{KeyedStateAccess, StateError, StateTtlConfig, StateValue};

/// The reduce function of a [`ReducingState`].
pub type ReduceFn<V> = Arc<dyn Fn(&V, &V) -> V + Send + Sync>;

/// A value per key (and namespace) that every added value is reduced into, as Flink's
/// `ReducingState`.
///
/// ```
/// use rivulet_runtime::state::{KeyedStateBackend, ReducingState};
///
/// let mut backend = KeyedStateBackend::new(0, 127);
/// let max = ReducingState::new("max-temperature", |a: &i32, b: &i32| *a.max(b));
/// backend.set_current_key(b"sensor-1", 2);
/// for t in [18, 23, 21] {
///     max.add(&mut backend, t)?;
/// }
/// assert_eq!(max.get(&mut backend)?, Some(23));
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct ReducingState<V> {
    handle: StateHandle,
    reduce: ReduceFn<V>,
}

impl<V: StateValue> ReducingState<V> {
    /// A reducing state named `name` that combines values with `reduce`.
    pub fn new(name: &str, reduce: impl Fn(&V, &V) -> V + Send + Sync + 'static) -> Self {
        Self {
            handle: StateHandle::new(name),
            reduce: Arc::new(reduce),
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

    fn spec() -> TableSpec<V> {
        TableSpec {
            kind: StateKind::Reducing,
            description: format!("ReducingState<{}>", type_name::<V>()),
            purge_inner: None,
        }
    }

    /// Registers the state with the backend without accessing it, decoding restored entries.
    pub fn register<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        self.handle.register(ctx.state_backend(), Self::spec)
    }

    /// Reduces `value` into the current key's value (or stores it if there is none).
    #[inline]
    pub fn add<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        value: V,
    ) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let reduce = &self.reduce;
        table.upsert(cursor, value, |v| v, |acc, v| *acc = reduce(acc, &v));
        Ok(())
    }

    /// The current key's reduced value, if any.
    pub fn get<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<Option<V>, StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        Ok(table.get(cursor).map(|v| v.clone()))
    }

    /// Removes the current key's value.
    pub fn clear<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.remove(cursor);
        Ok(())
    }

    /// Reduces the current key's values in the `sources` namespaces into namespace `target`
    /// and removes them, as when session windows merge.
    pub fn merge_namespaces<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        target: &[u8],
        sources: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> Result<(), StateError> {
        let reduce = &self.reduce;
        self.handle.merge_namespaces(
            ctx.state_backend(),
            Self::spec,
            target,
            sources,
            |acc: &mut V, v| *acc = reduce(acc, &v),
        )
    }
}

impl<V> Clone for ReducingState<V> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            reduce: Arc::clone(&self.reduce),
        }
    }
}

impl<V> fmt::Debug for ReducingState<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReducingState")
            .field("name", &self.handle.name())
            .field("type", &type_name::<V>())
            .field("ttl", &self.handle.ttl())
            .finish_non_exhaustive()
    }
}
