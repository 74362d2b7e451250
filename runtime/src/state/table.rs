//! The storage under every keyed state: one hash table per key group, mapping
//! `encoded key ++ encoded namespace` to a live Rust value and its last-access timestamp.
//!
//! [`Table<S>`] is typed by what one entry stores (`V` for a value or reducing state, `Vec<V>`
//! for a list, a hash map for a map state, the accumulator for an aggregating state). The
//! backend holds tables type-erased as [`ErasedTable`] and downcasts once a handle has been
//! resolved.

use std::any::Any;
use std::fmt;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::ttl::{Ttl, expired};
use super::{KeyGroup, StateError, StateValue};

/// Seed for hashing encoded keys inside tables. It differs from the seed used to assign key
/// groups, so that the keys of one key group still spread over all buckets.
const TABLE_HASH_SEED: u64 = 0x7269_7675_6c65_7431;

/// Hashes encoded key (and namespace) bytes for table lookups.
#[inline]
pub(crate) fn hash_key(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, TABLE_HASH_SEED)
}

/// The kind of a registered state; a name can only be registered with one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateKind {
    Value,
    List,
    Map,
    Reducing,
    Aggregating,
}

/// Removes the expired parts inside one entry's value (the user keys of a map state) and says
/// whether the value is now empty.
pub(crate) type PurgeInner<S> = fn(&mut S, Ttl, i64) -> bool;

/// What a handle asks for when it registers a table.
pub(crate) struct TableSpec<S> {
    pub(crate) kind: StateKind,
    /// Human-readable type, e.g. `ValueState<u64>`, for error messages.
    pub(crate) description: String,
    pub(crate) purge_inner: Option<PurgeInner<S>>,
}

/// One stored entry.
#[derive(Clone)]
pub(crate) struct Entry<S> {
    /// Encoded key followed by encoded namespace.
    pub(crate) key_ns: Box<[u8]>,
    /// Length of the key prefix of `key_ns`.
    pub(crate) key_len: u32,
    /// Processing time of the last access that refreshes TTL.
    pub(crate) stamp: i64,
    pub(crate) value: S,
}

impl<S> Entry<S> {
    fn namespace(&self) -> &[u8] {
        self.key_ns.get(self.key_len as usize..).unwrap_or_default()
    }

    fn key(&self) -> &[u8] {
        self.key_ns.get(..self.key_len as usize).unwrap_or_default()
    }
}

/// Where one access goes: the current key group (as an index into the table's groups), the
/// current `key ++ namespace` bytes, their hash and the current processing time.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    pub(crate) group: usize,
    pub(crate) hash: u64,
    pub(crate) key_ns: &'a [u8],
    pub(crate) key_len: u32,
    pub(crate) now: i64,
}

/// A typed keyed-state table.
pub(crate) struct Table<S> {
    name: String,
    kind: StateKind,
    description: String,
    ttl: Option<Ttl>,
    purge_inner: Option<PurgeInner<S>>,
    groups: Vec<HashTable<Entry<S>>>,
}

impl<S: StateValue> Table<S> {
    pub(crate) fn new(name: &str, spec: TableSpec<S>, ttl: Option<Ttl>, groups: usize) -> Self {
        Self {
            name: name.to_owned(),
            kind: spec.kind,
            description: spec.description,
            ttl,
            purge_inner: spec.purge_inner,
            groups: (0..groups).map(|_| HashTable::new()).collect(),
        }
    }

    /// The table's TTL, if any.
    pub(crate) fn ttl(&self) -> Option<Ttl> {
        self.ttl
    }

    /// The live value of the current entry, or `None` if absent or expired (an expired entry
    /// is removed). Refreshes the timestamp under [`OnReadAndWrite`](super::TtlUpdateType).
    #[inline]
    pub(crate) fn get(&mut self, c: Cursor<'_>) -> Option<&mut S> {
        let group = &mut self.groups[c.group];
        let mut entry = group.find_entry(c.hash, |e| *e.key_ns == *c.key_ns).ok()?;
        if let Some(ttl) = self.ttl {
            if ttl.is_expired(entry.get().stamp, c.now) {
                entry.remove();
                return None;
            }
            if ttl.refresh_on_read {
                entry.get_mut().stamp = c.now;
            }
        }
        Some(&mut entry.into_mut().value)
    }

    /// Writes the current entry with one hash lookup: `update(existing, input)` if it is live,
    /// otherwise stores `insert(input)` (an expired entry is replaced). Sets the timestamp.
    #[inline]
    pub(crate) fn upsert<T>(
        &mut self,
        c: Cursor<'_>,
        input: T,
        insert: impl FnOnce(T) -> S,
        update: impl FnOnce(&mut S, T),
    ) -> &mut S {
        let ttl = self.ttl;
        let group = &mut self.groups[c.group];
        let slot = match group.entry(c.hash, |e| *e.key_ns == *c.key_ns, |e| hash_key(&e.key_ns)) {
            TableEntry::Occupied(occupied) => {
                let entry = occupied.into_mut();
                if expired(ttl, entry.stamp, c.now) {
                    entry.value = insert(input);
                } else {
                    update(&mut entry.value, input);
                }
                entry.stamp = c.now;
                entry
            }
            TableEntry::Vacant(vacant) => vacant
                .insert(Entry {
                    key_ns: c.key_ns.into(),
                    key_len: c.key_len,
                    stamp: c.now,
                    value: insert(input),
                })
                .into_mut(),
        };
        &mut slot.value
    }

    /// Removes the current entry, returning its value unless it had expired.
    #[inline]
    pub(crate) fn remove(&mut self, c: Cursor<'_>) -> Option<S> {
        let group = &mut self.groups[c.group];
        let entry = group.find_entry(c.hash, |e| *e.key_ns == *c.key_ns).ok()?;
        let (entry, _) = entry.remove();
        (!expired(self.ttl, entry.stamp, c.now)).then_some(entry.value)
    }

    /// Drops expired entries (and expired parts of entries) of one group; returns how many
    /// entries were removed.
    fn purge_group(&mut self, group: usize, now: i64) -> usize {
        let Some(ttl) = self.ttl else { return 0 };
        let purge_inner = self.purge_inner;
        let Some(group) = self.groups.get_mut(group) else {
            return 0;
        };
        let before = group.len();
        group.retain(|e| {
            if ttl.is_expired(e.stamp, now) {
                return false;
            }
            match purge_inner {
                Some(purge) => !purge(&mut e.value, ttl, now),
                None => true,
            }
        });
        before - group.len()
    }
}

/// A table with its value type erased, as kept by the backend.
pub(crate) trait ErasedTable: Any + Send {
    fn name(&self) -> &str;
    fn kind(&self) -> StateKind;
    fn description(&self) -> &str;
    /// Entries held, including expired ones not yet cleaned up.
    fn len(&self) -> usize;
    /// Serializes the live entries of one group (dropping expired ones first); returns the
    /// entry count and the bytes.
    fn snapshot_group(
        &mut self,
        group: usize,
        key_group: KeyGroup,
        now: i64,
    ) -> Result<(u64, Vec<u8>), StateError>;
    /// Captures every group as it is now (expired entries dropped first): an immutable copy of
    /// the live values, serialized later on another thread while the table goes on changing.
    fn capture(&mut self, now: i64) -> Box<dyn CapturedTable>;
    /// Inserts the entries of a snapshot of one group, replacing entries with the same key.
    fn restore_group(
        &mut self,
        group: usize,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), StateError>;
    /// Removes all expired entries; returns how many.
    fn cleanup_expired(&mut self, now: i64) -> usize;
    /// Calls `f(key, namespace)` for every live entry of one group.
    fn for_each_entry(&self, group: usize, now: i64, f: &mut dyn FnMut(&[u8], &[u8]));
    /// Removes one entry; returns whether it existed.
    fn remove_raw(&mut self, group: usize, hash: u64, key_ns: &[u8]) -> bool;
    /// Removes every entry in namespace `ns`, in all groups; returns how many.
    fn remove_namespace(&mut self, ns: &[u8]) -> usize;
}

impl<S: StateValue> ErasedTable for Table<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> StateKind {
        self.kind
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn len(&self) -> usize {
        self.groups.iter().map(HashTable::len).sum()
    }

    fn snapshot_group(
        &mut self,
        group: usize,
        key_group: KeyGroup,
        now: i64,
    ) -> Result<(u64, Vec<u8>), StateError> {
        self.purge_group(group, now);
        match self.groups.get(group) {
            Some(entries) => encode_group(&self.name, entries, key_group),
            None => Ok((0, Vec::new())),
        }
    }

    fn capture(&mut self, now: i64) -> Box<dyn CapturedTable> {
        for group in 0..self.groups.len() {
            self.purge_group(group, now);
        }
        Box::new(Captured {
            name: self.name.clone(),
            groups: self.groups.clone(),
        })
    }

    fn restore_group(
        &mut self,
        group: usize,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let rows: Vec<(Vec<u8>, u32, i64, S)> =
            postcard::from_bytes(bytes).map_err(|source| StateError::Deserialize {
                state: self.name.clone(),
                key_group,
                source,
            })?;
        let Some(entries) = self.groups.get_mut(group) else {
            return Err(StateError::Internal(format!(
                "restoring state {:?}: no group {group} for key group {key_group}",
                self.name
            )));
        };
        entries.reserve(rows.len(), |e| hash_key(&e.key_ns));
        for (key_ns, key_len, stamp, value) in rows {
            if key_len as usize > key_ns.len() {
                return Err(StateError::CorruptSnapshot {
                    key_group,
                    reason: format!(
                        "state {:?} has an entry whose key is longer than its key and namespace",
                        self.name
                    ),
                });
            }
            let entry = Entry {
                key_ns: key_ns.into_boxed_slice(),
                key_len,
                stamp,
                value,
            };
            let hash = hash_key(&entry.key_ns);
            match entries.entry(hash, |e| e.key_ns == entry.key_ns, |e| hash_key(&e.key_ns)) {
                TableEntry::Occupied(mut occupied) => *occupied.get_mut() = entry,
                TableEntry::Vacant(vacant) => {
                    vacant.insert(entry);
                }
            }
        }
        Ok(())
    }

    fn cleanup_expired(&mut self, now: i64) -> usize {
        (0..self.groups.len())
            .map(|group| self.purge_group(group, now))
            .sum()
    }

    fn for_each_entry(&self, group: usize, now: i64, f: &mut dyn FnMut(&[u8], &[u8])) {
        let Some(entries) = self.groups.get(group) else {
            return;
        };
        for e in entries {
            if !expired(self.ttl, e.stamp, now) {
                f(e.key(), e.namespace());
            }
        }
    }

    fn remove_raw(&mut self, group: usize, hash: u64, key_ns: &[u8]) -> bool {
        let Some(entries) = self.groups.get_mut(group) else {
            return false;
        };
        match entries.find_entry(hash, |e| *e.key_ns == *key_ns) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    fn remove_namespace(&mut self, ns: &[u8]) -> usize {
        let mut removed = 0;
        for entries in &mut self.groups {
            let before = entries.len();
            entries.retain(|e| e.namespace() != ns);
            removed += before - entries.len();
        }
        removed
    }
}

/// Serializes the entries of one group, sorted by key so that equal state gives equal bytes;
/// returns the entry count and the bytes.
fn encode_group<S: StateValue>(
    name: &str,
    entries: &HashTable<Entry<S>>,
    key_group: KeyGroup,
) -> Result<(u64, Vec<u8>), StateError> {
    let mut rows: Vec<(&[u8], u32, i64, &S)> = entries
        .iter()
        .map(|e| (&*e.key_ns, e.key_len, e.stamp, &e.value))
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let bytes = postcard::to_allocvec(&rows).map_err(|source| StateError::Serialize {
        state: name.to_owned(),
        key_group,
        source,
    })?;
    Ok((rows.len() as u64, bytes))
}

/// A table captured at a checkpoint barrier, serialized later on another thread.
pub(crate) trait CapturedTable: Send {
    fn name(&self) -> &str;
    /// Serializes one group; returns the entry count and the bytes.
    fn snapshot_group(
        &self,
        group: usize,
        key_group: KeyGroup,
    ) -> Result<(u64, Vec<u8>), StateError>;
}

struct Captured<S> {
    name: String,
    groups: Vec<HashTable<Entry<S>>>,
}

impl<S: StateValue> CapturedTable for Captured<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot_group(
        &self,
        group: usize,
        key_group: KeyGroup,
    ) -> Result<(u64, Vec<u8>), StateError> {
        match self.groups.get(group) {
            Some(entries) => encode_group(&self.name, entries, key_group),
            None => Ok((0, Vec::new())),
        }
    }
}

impl<S> fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("type", &self.description)
            .field("ttl", &self.ttl)
            .field(
                "entries",
                &self.groups.iter().map(HashTable::len).sum::<usize>(),
            )
            .finish()
    }
}
