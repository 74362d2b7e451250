//! [`MapState`]: a map of user keys to values per key and namespace.

use std::any::type_name;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::backend::StateHandle;
use super::table::{StateKind, TableSpec};
use super::ttl::Ttl;
use super::{KeyedStateAccess, StateError, StateTtlConfig, StateValue};

/// The stored form of one map: user key -> (value, last-access timestamp). A fixed hasher
/// keeps iteration order, and so snapshot bytes, deterministic.
type UserMap<K, V> = HashMap<K, (V, i64), Xxh3DefaultBuilder>;

fn purge_expired<K: Eq + Hash, V>(map: &mut UserMap<K, V>, ttl: Ttl, now: i64) -> bool {
    map.retain(|_, (_, stamp)| !ttl.is_expired(*stamp, now));
    map.is_empty()
}

/// A map from user keys to values per key (and namespace), as Flink's `MapState`. With a TTL,
/// every user key expires on its own.
///
/// ```
/// use rivulet_runtime::state::{KeyedStateBackend, MapState};
///
/// let mut backend = KeyedStateBackend::new(0, 127);
/// let clicks = MapState::<String, u64>::new("clicks-per-page");
/// backend.set_current_key(b"alice", 12);
/// clicks.put(&mut backend, "home".to_owned(), 3)?;
/// assert_eq!(clicks.get(&mut backend, "home")?, Some(3));
/// assert!(clicks.contains(&mut backend, "home")?);
/// assert_eq!(clicks.remove(&mut backend, "home")?, Some(3));
/// assert!(clicks.is_empty(&mut backend)?);
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct MapState<K, V> {
    handle: StateHandle,
    _entries: PhantomData<fn() -> (K, V)>,
}

impl<K, V> MapState<K, V>
where
    K: StateValue + Eq + Hash,
    V: StateValue,
{
    /// A map state named `name`; the name identifies it in snapshots.
    pub fn new(name: &str) -> Self {
        Self {
            handle: StateHandle::new(name),
            _entries: PhantomData,
        }
    }

    /// Lets user keys expire. Default: no TTL.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.handle.set_ttl(ttl);
        self
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    fn spec() -> TableSpec<UserMap<K, V>> {
        TableSpec {
            kind: StateKind::Map,
            description: format!("MapState<{}, {}>", type_name::<K>(), type_name::<V>()),
            purge_inner: Some(purge_expired::<K, V>),
        }
    }

    /// Registers the state with the backend without accessing it, decoding restored entries.
    pub fn register<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        self.handle.register(ctx.state_backend(), Self::spec)
    }

    /// Runs `f` on the live value of `key`, removing it if expired.
    fn with_live<C, Q, R>(
        &self,
        ctx: &mut C,
        key: &Q,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, StateError>
    where
        C: KeyedStateAccess + ?Sized,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let Some(ttl) = table.ttl() else {
            return Ok(table
                .get(cursor)
                .and_then(|map| map.get(key))
                .map(|(v, _)| f(v)));
        };
        let Some(map) = table.get(cursor) else {
            return Ok(None);
        };
        let Some((value, stamp)) = map.get_mut(key) else {
            return Ok(None);
        };
        if !ttl.is_expired(*stamp, cursor.now) {
            if ttl.refresh_on_read {
                *stamp = cursor.now;
            }
            return Ok(Some(f(value)));
        }
        map.remove(key);
        if map.is_empty() {
            table.remove(cursor);
        }
        Ok(None)
    }

    /// The value of user key `key` under the current key, if present and not expired.
    #[inline]
    pub fn get<C, Q>(&self, ctx: &mut C, key: &Q) -> Result<Option<V>, StateError>
    where
        C: KeyedStateAccess + ?Sized,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_live(ctx, key, V::clone)
    }

    /// Whether user key `key` is present (and not expired) under the current key.
    pub fn contains<C, Q>(&self, ctx: &mut C, key: &Q) -> Result<bool, StateError>
    where
        C: KeyedStateAccess + ?Sized,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.with_live(ctx, key, |_| ())?.is_some())
    }

    /// Sets user key `key` to `value` under the current key.
    #[inline]
    pub fn put<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
        key: K,
        value: V,
    ) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let now = cursor.now;
        table.upsert(
            cursor,
            (key, value),
            |(key, value)| {
                let mut map = UserMap::default();
                map.insert(key, (value, now));
                map
            },
            |map, (key, value)| {
                map.insert(key, (value, now));
            },
        );
        Ok(())
    }

    /// Removes user key `key` under the current key, returning its value unless absent or
    /// expired.
    pub fn remove<C, Q>(&self, ctx: &mut C, key: &Q) -> Result<Option<V>, StateError>
    where
        C: KeyedStateAccess + ?Sized,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let ttl = table.ttl();
        let Some(map) = table.get(cursor) else {
            return Ok(None);
        };
        let removed = map.remove(key);
        if map.is_empty() {
            table.remove(cursor);
        }
        Ok(removed
            .filter(|(_, stamp)| !ttl.is_some_and(|ttl| ttl.is_expired(*stamp, cursor.now)))
            .map(|(value, _)| value))
    }

    /// Runs `f` on the live map of the current key after dropping its expired user keys
    /// (refreshing the others under `OnReadAndWrite`); `None` if there is no live entry.
    fn with_live_map<C: KeyedStateAccess + ?Sized, R>(
        &self,
        ctx: &mut C,
        f: impl FnOnce(&UserMap<K, V>) -> R,
    ) -> Result<Option<R>, StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        let ttl = table.ttl();
        let Some(map) = table.get(cursor) else {
            return Ok(None);
        };
        if let Some(ttl) = ttl {
            purge_expired(map, ttl, cursor.now);
            if ttl.refresh_on_read {
                map.values_mut().for_each(|(_, stamp)| *stamp = cursor.now);
            }
            if map.is_empty() {
                table.remove(cursor);
                return Ok(None);
            }
        }
        Ok(Some(f(map)))
    }

    /// All (user key, value) pairs under the current key, in no particular order.
    pub fn entries<C: KeyedStateAccess + ?Sized>(
        &self,
        ctx: &mut C,
    ) -> Result<Vec<(K, V)>, StateError> {
        let entries = self.with_live_map(ctx, |map| {
            map.iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect()
        })?;
        Ok(entries.unwrap_or_default())
    }

    /// All user keys under the current key, in no particular order.
    pub fn keys<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<Vec<K>, StateError> {
        let keys = self.with_live_map(ctx, |map| map.keys().cloned().collect())?;
        Ok(keys.unwrap_or_default())
    }

    /// All values under the current key, in no particular order.
    pub fn values<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<Vec<V>, StateError> {
        let values =
            self.with_live_map(ctx, |map| map.values().map(|(v, _)| v.clone()).collect())?;
        Ok(values.unwrap_or_default())
    }

    /// Whether the current key has no (live) user keys.
    pub fn is_empty<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<bool, StateError> {
        Ok(self.with_live_map(ctx, UserMap::is_empty)?.unwrap_or(true))
    }

    /// Removes the whole map of the current key.
    pub fn clear<C: KeyedStateAccess + ?Sized>(&self, ctx: &mut C) -> Result<(), StateError> {
        let (table, cursor) = self.handle.access(ctx.state_backend(), Self::spec)?;
        table.remove(cursor);
        Ok(())
    }
}

impl<K, V> Clone for MapState<K, V> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _entries: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for MapState<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapState")
            .field("name", &self.handle.name())
            .field("key_type", &type_name::<K>())
            .field("value_type", &type_name::<V>())
            .field("ttl", &self.handle.ttl())
            .finish()
    }
}
