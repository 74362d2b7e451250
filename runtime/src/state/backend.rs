//! The in-memory keyed state backend of one keyed operator subtask.

use std::any::Any;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::table::{CapturedTable, Cursor, ErasedTable, Table, TableSpec, hash_key};
use super::{KeyGroup, StateError, StateTtlConfig, StateValue};

/// Version of the per-key-group snapshot format written by
/// [`KeyedStateBackend::snapshot_key_group`].
const SNAPSHOT_VERSION: u32 = 1;

/// Gives each backend a distinct id, so a state handle can tell whether its cached slot
/// belongs to the backend it is used with.
static NEXT_BACKEND_ID: AtomicU64 = AtomicU64::new(1);

/// Builds the snapshot of one key group from each table's (name, entry count, bytes) and the
/// restored bytes of states not registered yet.
fn encode_key_group(
    key_group: KeyGroup,
    tables: Vec<(String, u64, Vec<u8>)>,
    pending: &BTreeMap<String, BTreeMap<KeyGroup, PendingGroup>>,
) -> Result<Vec<u8>, StateError> {
    let mut tables: Vec<TableSnapshot> = tables
        .into_iter()
        .filter(|(_, entries, _)| *entries > 0)
        .map(|(name, entries, bytes)| TableSnapshot {
            name,
            entries,
            bytes,
        })
        .collect();
    for (name, groups) in pending {
        if let Some(pending) = groups.get(&key_group) {
            tables.push(TableSnapshot {
                name: name.clone(),
                entries: pending.entries,
                bytes: pending.bytes.clone(),
            });
        }
    }
    tables.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let snapshot = KeyGroupSnapshot {
        version: SNAPSHOT_VERSION,
        key_group,
        tables,
    };
    postcard::to_allocvec(&snapshot).map_err(|source| StateError::Serialize {
        state: "*".to_owned(),
        key_group,
        source,
    })
}

/// The keyed state of a backend captured at a checkpoint barrier (see
/// [`KeyedStateBackend::capture`]), serialized afterwards, possibly on another thread.
pub struct BackendCapture {
    start: KeyGroup,
    end: KeyGroup,
    tables: Vec<Box<dyn CapturedTable>>,
    pending: BTreeMap<String, BTreeMap<KeyGroup, PendingGroup>>,
}

impl BackendCapture {
    /// The key groups captured.
    pub fn key_group_range(&self) -> RangeInclusive<KeyGroup> {
        self.start..=self.end
    }

    /// Serializes key group `key_group` as it was when captured; the bytes are those
    /// [`KeyedStateBackend::snapshot_key_group`] would have returned then.
    pub fn snapshot_key_group(&self, key_group: KeyGroup) -> Result<Vec<u8>, StateError> {
        if !(self.start..=self.end).contains(&key_group) {
            return Err(StateError::KeyGroupNotOwned {
                key_group,
                start: self.start,
                end: self.end,
            });
        }
        let group = usize::from(key_group - self.start);
        let mut tables = Vec::new();
        for table in &self.tables {
            let (entries, bytes) = table.snapshot_group(group, key_group)?;
            tables.push((table.name().to_owned(), entries, bytes));
        }
        encode_key_group(key_group, tables, &self.pending)
    }
}

impl fmt::Debug for BackendCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendCapture")
            .field("key_groups", &(self.start..=self.end))
            .field("tables", &self.tables.len())
            .finish()
    }
}

/// Access to the keyed state backend, implemented by operator contexts so user functions can
/// pass their context straight to state handles.
///
/// ```
/// use rivulet_runtime::state::{KeyedStateAccess, KeyedStateBackend, ValueState};
///
/// struct Context { state: KeyedStateBackend }
/// impl KeyedStateAccess for Context {
///     fn state_backend(&mut self) -> &mut KeyedStateBackend { &mut self.state }
/// }
///
/// let mut ctx = Context { state: KeyedStateBackend::new(0, 127) };
/// ctx.state.set_current_key(b"alice", 7);
/// let count = ValueState::<u64>::new("count");
/// count.update(&mut ctx, 1)?;
/// assert_eq!(count.value(&mut ctx)?, Some(1));
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub trait KeyedStateAccess {
    /// The backend holding the keyed state of the current operator subtask.
    fn state_backend(&mut self) -> &mut KeyedStateBackend;
}

impl KeyedStateAccess for KeyedStateBackend {
    fn state_backend(&mut self) -> &mut KeyedStateBackend {
        self
    }
}

/// Snapshot bytes of one table in one key group, restored before the table was registered.
struct PendingGroup {
    entries: u64,
    bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct KeyGroupSnapshot {
    version: u32,
    key_group: KeyGroup,
    tables: Vec<TableSnapshot>,
}

#[derive(Serialize, Deserialize)]
struct TableSnapshot {
    name: String,
    entries: u64,
    bytes: Vec<u8>,
}

/// The keyed state of one keyed operator subtask, held in memory as live Rust values.
///
/// The subtask owns the key groups `start..=end`. Before processing a record the operator calls
/// [`set_current_key`](Self::set_current_key) (and, for windows,
/// [`set_current_namespace`](Self::set_current_namespace)) and, per batch,
/// [`set_current_time`](Self::set_current_time); state handles such as
/// [`ValueState`](super::ValueState) then read and write the entry of that key and namespace.
/// States are registered by name the first time a handle uses them.
///
/// Entries are kept per key group and serialized only by
/// [`snapshot_key_group`](Self::snapshot_key_group); [`restore_key_group`](Self::restore_key_group)
/// accepts any key group the backend owns, so a savepoint can be restored at another
/// parallelism. Restored state of a name not registered yet is kept as bytes and decoded when a
/// handle registers it.
///
/// ```
/// use rivulet_runtime::state::{KeyedStateBackend, ListState};
///
/// let mut backend = KeyedStateBackend::new(0, 127);
/// let seen = ListState::<String>::new("seen");
/// backend.set_current_key(b"k1", 3);
/// seen.add(&mut backend, "a".to_owned())?;
///
/// let snapshot = backend.snapshot_key_group(3)?;
/// let mut restored = KeyedStateBackend::new(0, 63);
/// restored.restore_key_group(3, &snapshot)?;
/// restored.set_current_key(b"k1", 3);
/// assert_eq!(seen.get(&mut restored)?, vec!["a".to_owned()]);
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct KeyedStateBackend {
    id: u64,
    start: KeyGroup,
    end: KeyGroup,
    /// Current key followed by the current namespace, the lookup key of every access.
    key_ns: Vec<u8>,
    key_len: u32,
    namespace: Vec<u8>,
    /// The hash of `key_ns`, computed on the first access after the key or namespace changed.
    hash: u64,
    hash_valid: bool,
    /// The current key group, once a key has been set.
    key_group: Option<KeyGroup>,
    /// `key_group - start`, or `usize::MAX` if no key is set or the key group is not owned.
    group: usize,
    now: i64,
    tables: Vec<Box<dyn ErasedTable>>,
    /// Restored, not yet registered: state name -> key group -> bytes.
    pending: BTreeMap<String, BTreeMap<KeyGroup, PendingGroup>>,
}

impl KeyedStateBackend {
    /// A backend for the subtask owning key groups `key_group_start..=key_group_end_inclusive`.
    ///
    /// # Panics
    /// If `key_group_end_inclusive < key_group_start` (a bug in the caller's key group
    /// assignment).
    pub fn new(key_group_start: KeyGroup, key_group_end_inclusive: KeyGroup) -> Self {
        assert!(
            key_group_start <= key_group_end_inclusive,
            "empty key group range {key_group_start}..={key_group_end_inclusive}"
        );
        Self {
            id: NEXT_BACKEND_ID.fetch_add(1, Ordering::Relaxed),
            start: key_group_start,
            end: key_group_end_inclusive,
            key_ns: Vec::new(),
            key_len: 0,
            namespace: Vec::new(),
            hash: hash_key(&[]),
            hash_valid: true,
            key_group: None,
            group: usize::MAX,
            now: 0,
            tables: Vec::new(),
            pending: BTreeMap::new(),
        }
    }

    /// The key groups this backend owns.
    pub fn key_group_range(&self) -> RangeInclusive<KeyGroup> {
        self.start..=self.end
    }

    fn group_count(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    fn group_index(&self, key_group: KeyGroup) -> Result<usize, StateError> {
        if self.key_group_range().contains(&key_group) {
            Ok(usize::from(key_group - self.start))
        } else {
            Err(StateError::KeyGroupNotOwned {
                key_group,
                start: self.start,
                end: self.end,
            })
        }
    }

    /// Sets the key (its canonical encoding) and key group that following state accesses use.
    /// Accessing state under a key group this backend does not own is an error.
    #[inline]
    pub fn set_current_key(&mut self, key: &[u8], key_group: KeyGroup) {
        self.key_ns.clear();
        self.key_ns.extend_from_slice(key);
        self.key_ns.extend_from_slice(&self.namespace);
        self.key_len = key.len() as u32;
        self.hash_valid = false;
        self.key_group = Some(key_group);
        self.group = self.group_index(key_group).unwrap_or(usize::MAX);
    }

    /// The current key's encoding (empty if no key was set).
    pub fn current_key(&self) -> &[u8] {
        &self.key_ns[..self.key_len as usize]
    }

    /// The current key group, if a key was set.
    pub fn current_key_group(&self) -> Option<KeyGroup> {
        self.key_group
    }

    /// Sets the namespace (e.g. an encoded window) that following state accesses use.
    /// Default: the empty namespace.
    #[inline]
    pub fn set_current_namespace(&mut self, namespace: &[u8]) {
        self.namespace.clear();
        self.namespace.extend_from_slice(namespace);
        self.key_ns.truncate(self.key_len as usize);
        self.key_ns.extend_from_slice(namespace);
        self.hash_valid = false;
    }

    /// The current namespace.
    pub fn current_namespace(&self) -> &[u8] {
        &self.namespace
    }

    /// Sets the processing time (ms) that TTL is measured against. Default: 0.
    #[inline]
    pub fn set_current_time(&mut self, now_ms: i64) {
        self.now = now_ms;
    }

    /// The processing time TTL is measured against.
    pub fn current_time(&self) -> i64 {
        self.now
    }

    /// Number of entries (key and namespace pairs, per state) held, including restored ones of
    /// states not registered yet and expired ones not yet cleaned up.
    pub fn total_entries(&self) -> usize {
        let registered: usize = self.tables.iter().map(|t| t.len()).sum();
        let pending: u64 = self
            .pending
            .values()
            .flat_map(|groups| groups.values())
            .map(|g| g.entries)
            .sum();
        registered + pending as usize
    }

    /// Names of the registered states, in registration order.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|t| t.name())
    }

    /// Removes every expired entry of every registered state; returns how many were removed.
    pub fn cleanup_expired(&mut self) -> usize {
        let now = self.now;
        self.tables.iter_mut().map(|t| t.cleanup_expired(now)).sum()
    }

    /// Removes the entries of the current key and namespace from every registered state, e.g.
    /// when a window fires and is purged.
    pub fn clear_current(&mut self) -> Result<(), StateError> {
        let group = self.current_group("*")?;
        self.ensure_hash();
        for table in &mut self.tables {
            table.remove_raw(group, self.hash, &self.key_ns);
        }
        Ok(())
    }

    /// Removes every entry in `namespace`, for all keys and all registered states; returns how
    /// many were removed. This scans all entries.
    pub fn clear_namespace(&mut self, namespace: &[u8]) -> usize {
        self.tables
            .iter_mut()
            .map(|t| t.remove_namespace(namespace))
            .sum()
    }

    /// Calls `f(key_group, key, namespace)` for every live entry of the state `state`, key group
    /// by key group.
    ///
    /// Restored state is only visible once registered: if `state` was restored but no handle
    /// has used it yet, call `register` on its handle first (e.g. in the operator's `open`).
    pub fn for_each_entry(
        &self,
        state: &str,
        mut f: impl FnMut(KeyGroup, &[u8], &[u8]),
    ) -> Result<(), StateError> {
        let table = self.registered(state)?;
        for (group, key_group) in self.key_group_range().enumerate() {
            table.for_each_entry(group, self.now, &mut |key, ns| f(key_group, key, ns));
        }
        Ok(())
    }

    /// Calls `f(key, namespace)` for every live entry of the state `state` in the current key
    /// group.
    pub fn for_each_entry_in_current_key_group(
        &self,
        state: &str,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        let table = self.registered(state)?;
        let group = self.current_group(state)?;
        table.for_each_entry(group, self.now, &mut f);
        Ok(())
    }

    /// The keys (with their key groups) that have a live entry of the state `state` in
    /// `namespace`, in no particular order.
    pub fn keys_in_namespace(
        &self,
        state: &str,
        namespace: &[u8],
    ) -> Result<Vec<(KeyGroup, Vec<u8>)>, StateError> {
        let mut keys = Vec::new();
        self.for_each_entry(state, |key_group, key, ns| {
            if ns == namespace {
                keys.push((key_group, key.to_vec()));
            }
        })?;
        Ok(keys)
    }

    fn registered(&self, state: &str) -> Result<&dyn ErasedTable, StateError> {
        if let Some(table) = self.tables.iter().find(|t| t.name() == state) {
            return Ok(&**table);
        }
        if self.pending.contains_key(state) {
            Err(StateError::NotRegistered {
                state: state.to_owned(),
            })
        } else {
            Err(StateError::UnknownState {
                state: state.to_owned(),
            })
        }
    }

    fn current_group(&self, state: &str) -> Result<usize, StateError> {
        if self.group != usize::MAX {
            return Ok(self.group);
        }
        match self.key_group {
            None => Err(StateError::NoCurrentKey {
                state: state.to_owned(),
            }),
            Some(key_group) => Err(StateError::KeyGroupNotOwned {
                key_group,
                start: self.start,
                end: self.end,
            }),
        }
    }

    /// Serializes the live entries of key group `key_group` of every state, including TTL
    /// timestamps; expired entries are dropped, not written.
    pub fn snapshot_key_group(&mut self, key_group: KeyGroup) -> Result<Vec<u8>, StateError> {
        let group = self.group_index(key_group)?;
        let mut tables = Vec::new();
        for table in &mut self.tables {
            let (entries, bytes) = table.snapshot_group(group, key_group, self.now)?;
            tables.push((table.name().to_owned(), entries, bytes));
        }
        encode_key_group(key_group, tables, &self.pending)
    }

    /// Captures every state as it is now, for [`BackendCapture::snapshot_key_group`] to
    /// serialize later, on any thread, while this backend goes on changing. The capture is a
    /// copy of the live values (no encoding, no sorting), the cheap part of a snapshot.
    pub fn capture(&mut self) -> BackendCapture {
        let now = self.now;
        BackendCapture {
            start: self.start,
            end: self.end,
            tables: self.tables.iter_mut().map(|t| t.capture(now)).collect(),
            pending: self
                .pending
                .iter()
                .map(|(name, groups)| {
                    let groups = groups
                        .iter()
                        .map(|(kg, p)| {
                            (
                                *kg,
                                PendingGroup {
                                    entries: p.entries,
                                    bytes: p.bytes.clone(),
                                },
                            )
                        })
                        .collect();
                    (name.clone(), groups)
                })
                .collect(),
        }
    }

    /// Restores key group `key_group` from bytes written by
    /// [`snapshot_key_group`](Self::snapshot_key_group), possibly by a backend with another key
    /// group range. Entries replace existing entries with the same key and namespace. States not
    /// registered yet are decoded when their handle first registers them.
    pub fn restore_key_group(
        &mut self,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let group = self.group_index(key_group)?;
        let snapshot: KeyGroupSnapshot =
            postcard::from_bytes(bytes).map_err(|source| StateError::CorruptSnapshot {
                key_group,
                reason: source.to_string(),
            })?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(StateError::CorruptSnapshot {
                key_group,
                reason: format!(
                    "unsupported snapshot version {} (expected {SNAPSHOT_VERSION})",
                    snapshot.version
                ),
            });
        }
        if snapshot.key_group != key_group {
            return Err(StateError::CorruptSnapshot {
                key_group,
                reason: format!("the bytes hold key group {}", snapshot.key_group),
            });
        }
        for table in snapshot.tables {
            match self.tables.iter_mut().find(|t| t.name() == table.name) {
                Some(registered) => registered.restore_group(group, key_group, &table.bytes)?,
                None => {
                    self.pending.entry(table.name).or_default().insert(
                        key_group,
                        PendingGroup {
                            entries: table.entries,
                            bytes: table.bytes,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Finds or registers the table `name` for entries of type `S`, restoring pending bytes of
    /// that name into it; returns its slot.
    fn register<S: StateValue>(
        &mut self,
        name: &str,
        ttl: Option<StateTtlConfig>,
        spec: TableSpec<S>,
    ) -> Result<usize, StateError> {
        if let Some(slot) = self.tables.iter().position(|t| t.name() == name) {
            let table = &*self.tables[slot];
            let same_type = (table as &dyn Any).is::<Table<S>>();
            if table.kind() != spec.kind || !same_type {
                return Err(StateError::TypeMismatch {
                    state: name.to_owned(),
                    registered: table.description().to_owned(),
                    requested: spec.description,
                });
            }
            return Ok(slot);
        }
        let mut table = Table::new(
            name,
            spec,
            ttl.map(StateTtlConfig::to_ttl),
            self.group_count(),
        );
        if let Some(groups) = self.pending.remove(name) {
            for (&key_group, pending) in &groups {
                let restored = self
                    .group_index(key_group)
                    .and_then(|group| table.restore_group(group, key_group, &pending.bytes));
                if let Err(err) = restored {
                    // Keep the bytes, so the state is not silently lost.
                    self.pending.insert(name.to_owned(), groups);
                    return Err(err);
                }
            }
        }
        self.tables.push(Box::new(table));
        Ok(self.tables.len() - 1)
    }

    /// Hashes the current key and namespace if they changed since the last access.
    #[inline]
    fn ensure_hash(&mut self) {
        if !self.hash_valid {
            self.hash = hash_key(&self.key_ns);
            self.hash_valid = true;
        }
    }

    /// The typed table in `slot` and a cursor on the current key and namespace.
    #[inline]
    fn access<S: StateValue>(
        &mut self,
        slot: usize,
        state: &str,
    ) -> Result<(&mut Table<S>, Cursor<'_>), StateError> {
        let group = self.current_group(state)?;
        self.ensure_hash();
        let cursor = Cursor {
            group,
            hash: self.hash,
            key_ns: &self.key_ns,
            key_len: self.key_len,
            now: self.now,
        };
        let table = self
            .tables
            .get_mut(slot)
            .and_then(|t| (&mut **t as &mut dyn Any).downcast_mut::<Table<S>>())
            .ok_or_else(|| StateError::Internal(format!("state slot {slot} has another type")))?;
        Ok((table, cursor))
    }

    /// Runs `f` with the current namespace temporarily set to `namespace`.
    pub(crate) fn with_namespace<R>(
        &mut self,
        namespace: &[u8],
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let saved = std::mem::take(&mut self.namespace);
        self.set_current_namespace(namespace);
        let result = f(self);
        self.set_current_namespace(&saved);
        result
    }
}

impl fmt::Debug for KeyedStateBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedStateBackend")
            .field("key_groups", &self.key_group_range())
            .field("states", &self.state_names().collect::<Vec<_>>())
            .field("entries", &self.total_entries())
            .field("current_time", &self.now)
            .finish()
    }
}

/// The part every state handle shares: its name, TTL and the slot it resolved to in the last
/// backend it was used with.
#[derive(Debug)]
pub(crate) struct StateHandle {
    name: Arc<str>,
    ttl: Option<StateTtlConfig>,
    /// `(backend id, slot)` of the last resolution.
    slot: Cell<Option<(u64, u32)>>,
}

impl Clone for StateHandle {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            ttl: self.ttl,
            slot: Cell::new(None),
        }
    }
}

impl StateHandle {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            ttl: None,
            slot: Cell::new(None),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn set_ttl(&mut self, ttl: StateTtlConfig) {
        self.ttl = Some(ttl);
    }

    pub(crate) fn ttl(&self) -> Option<StateTtlConfig> {
        self.ttl
    }

    #[inline]
    fn slot<S: StateValue>(
        &self,
        backend: &mut KeyedStateBackend,
        spec: impl FnOnce() -> TableSpec<S>,
    ) -> Result<usize, StateError> {
        if let Some((id, slot)) = self.slot.get()
            && id == backend.id
        {
            return Ok(slot as usize);
        }
        let slot = backend.register(&self.name, self.ttl, spec())?;
        self.slot.set(Some((backend.id, slot as u32)));
        Ok(slot)
    }

    /// Registers the table (restoring pending bytes) without accessing an entry.
    pub(crate) fn register<S: StateValue>(
        &self,
        backend: &mut KeyedStateBackend,
        spec: impl FnOnce() -> TableSpec<S>,
    ) -> Result<(), StateError> {
        self.slot(backend, spec).map(|_| ())
    }

    /// The typed table and a cursor on the current key and namespace.
    #[inline]
    pub(crate) fn access<'b, S: StateValue>(
        &self,
        backend: &'b mut KeyedStateBackend,
        spec: impl FnOnce() -> TableSpec<S>,
    ) -> Result<(&'b mut Table<S>, Cursor<'b>), StateError> {
        let slot = self.slot(backend, spec)?;
        backend.access(slot, &self.name)
    }

    /// Moves the entries of the current key in the `sources` namespaces into namespace
    /// `target`, combining values with `merge(existing, incoming)` (target first, then the
    /// sources in order). A source equal to `target` is skipped.
    pub(crate) fn merge_namespaces<S: StateValue>(
        &self,
        backend: &mut KeyedStateBackend,
        spec: impl Fn() -> TableSpec<S>,
        target: &[u8],
        sources: impl IntoIterator<Item = impl AsRef<[u8]>>,
        merge: impl Fn(&mut S, S),
    ) -> Result<(), StateError> {
        let mut merged: Option<S> = None;
        for source in sources {
            let source = source.as_ref();
            if source == target {
                continue;
            }
            let taken = backend.with_namespace(source, |b| {
                let (table, cursor) = self.access(b, &spec)?;
                Ok::<_, StateError>(table.remove(cursor))
            })?;
            match (&mut merged, taken) {
                (_, None) => {}
                (None, Some(value)) => merged = Some(value),
                (Some(acc), Some(value)) => merge(acc, value),
            }
        }
        if let Some(value) = merged {
            backend.with_namespace(target, |b| {
                let (table, cursor) = self.access(b, &spec)?;
                table.upsert(cursor, value, |v| v, &merge);
                Ok::<_, StateError>(())
            })?;
        }
        Ok(())
    }
}
