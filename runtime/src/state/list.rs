//! [`ListState`]: a list of values per key and namespace.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;

use super::backend::StateHandle;
use super::table::{StateKind, TableSpec};
use super::{KeyedStateAccess, StateError, StateTtlConfig, StateValue};

/// A list of values per key (and namespace), as Flink's `ListState`. An empty list and an
/// absent one are the same.
///
/// ```
/// use rivulet_runtime::state::{KeyedStateBackend, ListState};
///
/// let mut backend = KeyedStateBackend::new(0, 127);
/// let events = ListState::<u32>::new("events");
/// backend.set_current_key(b"sensor-1", 5);
/// events.add(&mut backend, 1)?;
/// events.add_all(&mut backend, [2, 3])?;
/// assert_eq!(events.get(&mut backend)?, vec![1, 2, 3]);
/// events.update(&mut backend, vec![9])?;
/// assert_eq!(events.get(&mut backend)?, vec![9]);
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct ListState<V> {
    handle: StateHandle,
    _value: PhantomData<fn() -> V>,
}

impl<V: StateValue> ListState<V> {
    /// A list state named `name`; the name identifies it in snapshots.
    pub fn new(name: &str) -> Self {
        Self {
            handle: StateHandle::new(name),
            _value: PhantomData,
        }
    }

    /// Lets whole lists expire (the TTL stamp is per list). Default: no TTL.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.handle.set_ttl(ttl);
        self
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    fn spec() -> TableSpec<Vec<V>> {
        TableSpec {
            kind: StateKind::List,
            description: format!("ListState<{}>", type_name::<V>()),
            purge_inner: None,
        }
    }

    /// Registers the state with the backend without accessing it, decoding restored entries.
    pub fn register<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        self.handle.register(ctx.state_backend(), Self::spec)
    }

    /// Appends `value` to the current key's list.
    #[inline]
    pub fn add<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        value: V,
    ) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.upsert(cursor, value, |v| vec![v], |list, v| list.push(v));
        Ok(())
    }

    /// Appends all `values` to the current key's list.
    pub fn add_all<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        values: impl IntoIterator<Item = V>,
    ) -> Result<(), StateError> {
        let values: Vec<V> = values.into_iter().collect();
        if values.is_empty() {
            return Ok(());
        }
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.upsert(cursor, values, |v| v, |list, v| list.extend(v));
        Ok(())
    }

    /// The current key's list (empty if absent or expired).
    pub fn get<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<Vec<V>, StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        Ok(table
            .get(cursor)
            .map(|list| list.clone())
            .unwrap_or_default())
    }

    /// Replaces the current key's list; an empty `values` clears it.
    pub fn update<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        values: Vec<V>,
    ) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        if values.is_empty() {
            table.remove(cursor);
        } else {
            table.upsert(cursor, values, |v| v, |list, v| *list = v);
        }
        Ok(())
    }

    /// Removes the current key's list.
    pub fn clear<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.remove(cursor);
        Ok(())
    }

    /// Appends the current key's lists in the `sources` namespaces (in order) to its list in
    /// namespace `target` and removes them, as when session windows merge.
    pub fn merge_namespaces<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        target: &[u8],
        sources: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> Result<(), StateError> {
        self.handle.merge_namespaces(
            ctx.state_backend(),
            Self::spec,
            target,
            sources,
            |list: &mut Vec<V>, more| list.extend(more),
        )
    }
}

impl<V> Clone for ListState<V> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _value: PhantomData,
        }
    }
}

impl<V> fmt::Debug for ListState<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListState")
            .field("name", &self.handle.name())
            .field("type", &type_name::<V>())
            .field("ttl", &self.handle.ttl())
            .finish()
    }
}
