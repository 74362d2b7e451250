//! [`ValueState`]: one value per key and namespace.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;

use super::backend::StateHandle;
use super::table::{StateKind, TableSpec};
use super::{KeyedStateAccess, StateError, StateTtlConfig, StateValue};

/// One value per key (and namespace), as Flink's `ValueState`.
///
/// Create it without a backend, keep it as a field of the user function and pass the operator
/// context on each access; the state is registered under its name on first use.
///
/// ```
/// use rivulet_runtime::state::{KeyedStateBackend, ValueState};
///
/// let mut backend = KeyedStateBackend::new(0, 127);
/// let count = ValueState::<u64>::new("count");
/// backend.set_current_key(b"alice", 1);
/// assert_eq!(count.value(&mut backend)?, None);
/// count.update(&mut backend, 41)?;
/// count.modify(&mut backend, || 0, |c| *c += 1)?;
/// assert_eq!(count.value(&mut backend)?, Some(42));
/// count.clear(&mut backend)?;
/// assert_eq!(count.value(&mut backend)?, None);
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct ValueState<V> {
    handle: StateHandle,
    _value: PhantomData<fn() -> V>,
}

impl<V: StateValue> ValueState<V> {
    /// A value state named `name`; the name identifies it in snapshots.
    pub fn new(name: &str) -> Self {
        Self {
            handle: StateHandle::new(name),
            _value: PhantomData,
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

    /// The TTL configuration, if any.
    pub fn ttl(&self) -> Option<StateTtlConfig> {
        self.handle.ttl()
    }

    fn spec() -> TableSpec<V> {
        TableSpec {
            kind: StateKind::Value,
            description: format!("ValueState<{}>", type_name::<V>()),
            purge_inner: None,
        }
    }

    /// Registers the state with the backend without accessing it, decoding restored entries
    /// (e.g. in an operator's `open`, before iterating over the state's entries).
    pub fn register<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        self.handle.register(ctx.state_backend(), Self::spec)
    }

    /// The value for the current key and namespace, if set and not expired.
    #[inline]
    pub fn value<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
    ) -> Result<Option<V>, StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        Ok(table.get(cursor).map(|v| v.clone()))
    }

    /// Sets the value for the current key and namespace.
    #[inline]
    pub fn update<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        value: V,
    ) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.upsert(cursor, value, |v| v, |slot, v| *slot = v);
        Ok(())
    }

    /// Changes the value in place with one lookup, starting from `default()` if it is absent
    /// or expired; returns what `f` returns. Counts as a write for TTL.
    #[inline]
    pub fn modify<C: KeyedStateAccess + ?Sized, R>(
        &self,
        ctx: &mut C,
        default: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R, StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let value = table.upsert(cursor, (), |()| default(), |_, ()| {});
        Ok(f(value))
    }

    /// Removes the value for the current key and namespace.
    pub fn clear<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.remove(cursor);
        Ok(())
    }
}

impl<V> Clone for ValueState<V> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _value: PhantomData,
        }
    }
}

impl<V> fmt::Debug for ValueState<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueState")
            .field("name", &self.handle.name())
            .field("type", &type_name::<V>())
            .field("ttl", &self.handle.ttl())
            .finish()
    }
}
