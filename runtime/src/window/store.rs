//! The window operator's live state: window slots and session lists in hash tables per key
//! group, and the time-ordered index of wake-up times that fires them.
//!
//! The operator keeps its state here as live Rust values, looked up with the key hash it already
//! computed for the key group, and writes it into a keyed state backend only when it snapshots
//! (see `WindowOperator::snapshot_key_group`), so checkpoints keep the keyed-state format.

use std::collections::BTreeSet;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use serde::{Deserialize, Serialize};

use super::Window;
use super::trigger::{TimeDomain, TimerChange};
use crate::keys::KeyGroup;
use crate::state::StateError;

/// The state of one key and window: the key itself (to call the window function with), the
/// contents, the trigger's registered wake-up times and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WindowSlot<K, A> {
    pub(crate) key: K,
    pub(crate) contents: Option<A>,
    pub(crate) timers: Vec<(TimeDomain, i64)>,
    pub(crate) trigger_state: i64,
}

/// The live sessions of one key (merging assigners), sorted by window. Each session's state
/// stays in the namespace of its state window (the first window it grew from), so extending or
/// merging sessions moves no state but the merged-away sessions' (Flink's `MergingWindowSet`).
///
/// Each session also remembers the window its cleanup entry in the window index was made for
/// (`indexed`): the session's window at that time. A session only grows, so that entry comes
/// due no later than the session's own cleanup time; extending a session leaves the entry where
/// it is, and when it comes due it is moved to the session's current window (see
/// `WindowOperator::on_timer`). So a record that extends a session touches the index only when
/// a trigger registered other times. `indexed` is not snapshotted: restored sessions get index
/// entries at their windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sessions<W> {
    pub(crate) windows: Vec<W>,
    pub(crate) state_windows: Vec<W>,
    #[serde(skip, default = "Vec::new")]
    pub(crate) indexed: Vec<W>,
}

impl<W> Default for Sessions<W> {
    fn default() -> Self {
        Sessions {
            windows: Vec::new(),
            state_windows: Vec::new(),
            indexed: Vec::new(),
        }
    }
}

/// A session: its window, its state window and the window its cleanup entry was made for.
pub(crate) type Session<W> = (W, W, W);

impl<W: Window> Sessions<W> {
    /// One session whose cleanup entry is made for its window.
    pub(crate) fn one(window: W) -> Self {
        Sessions {
            windows: vec![window.clone()],
            state_windows: vec![window.clone()],
            indexed: vec![window],
        }
    }

    pub(crate) fn insert(&mut self, (window, state_window, indexed): Session<W>) {
        let at = self.windows.partition_point(|w| *w < window);
        self.windows.insert(at, window);
        self.state_windows.insert(at, state_window);
        self.indexed.insert(at, indexed);
    }

    pub(crate) fn remove(&mut self, i: usize) -> Session<W> {
        (
            self.windows.remove(i),
            self.state_windows.remove(i),
            self.indexed.remove(i),
        )
    }

    pub(crate) fn state_window_of(&self, window: &W) -> Option<&W> {
        let i = self.windows.binary_search(window).ok()?;
        self.state_windows.get(i)
    }
}

/// Mixes `a` with an odd constant so that every bit of the result depends on every bit of `a`.
/// Key hashes of one key group share their remainder modulo the maximum parallelism; mixing
/// spreads them over all buckets of a group's table again.
#[inline]
fn fold_mix(a: u64) -> u64 {
    let product = u128::from(a) * 0x9e37_79b9_7f4a_7c15_u128;
    (product as u64) ^ ((product >> 64) as u64)
}

/// The table hash of a session list, from its key's hash.
#[inline]
pub(crate) fn sessions_hash(key_hash: u64) -> u64 {
    fold_mix(key_hash ^ 0x5e55_1075)
}

/// The table hash of a window slot, from its key's hash and its state window's
/// [`namespace_hash`].
#[inline]
pub(crate) fn slot_hash(key_hash: u64, namespace_hash: u64) -> u64 {
    fold_mix(key_hash ^ namespace_hash.rotate_left(32))
}

/// Hashes a window's namespace encoding; `scratch` is cleared and reused.
pub(crate) fn namespace_hash<W: Window>(window: &W, scratch: &mut Vec<u8>) -> u64 {
    scratch.clear();
    window.encode_namespace(scratch);
    xxhash_rust::xxh3::xxh3_64(scratch)
}

/// The state of one key and window, with what finds it: the key's encoding and the state
/// window.
pub(crate) struct SlotEntry<K, A, W> {
    hash: u64,
    pub(crate) key: Arc<[u8]>,
    pub(crate) window: W,
    pub(crate) slot: WindowSlot<K, A>,
}

/// The session list of one key.
pub(crate) struct SessionEntry<W> {
    hash: u64,
    pub(crate) key: Arc<[u8]>,
    pub(crate) sessions: Sessions<W>,
}

/// The window state of one key group.
pub(crate) struct GroupState<K, A, W> {
    slots: HashTable<SlotEntry<K, A, W>>,
    sessions: HashTable<SessionEntry<W>>,
}

impl<K, A, W: Window> GroupState<K, A, W> {
    fn new() -> Self {
        GroupState {
            slots: HashTable::new(),
            sessions: HashTable::new(),
        }
    }

    /// The slot of `key` in `window`, whose hash is `hash`.
    #[inline]
    pub(crate) fn slot(
        &mut self,
        hash: u64,
        key: &[u8],
        window: &W,
    ) -> Option<&mut SlotEntry<K, A, W>> {
        self.slots
            .find_mut(hash, |e| e.window == *window && *e.key == *key)
    }

    /// The slot of `key` in `window`, made by `create` if absent; says whether it was made.
    #[inline]
    pub(crate) fn slot_or_insert(
        &mut self,
        hash: u64,
        key: &[u8],
        window: &W,
        create: impl FnOnce() -> WindowSlot<K, A>,
    ) -> (&mut SlotEntry<K, A, W>, bool) {
        match self
            .slots
            .entry(hash, |e| e.window == *window && *e.key == *key, |e| e.hash)
        {
            Entry::Occupied(occupied) => (occupied.into_mut(), false),
            Entry::Vacant(vacant) => {
                let entry = vacant.insert(SlotEntry {
                    hash,
                    key: key.into(),
                    window: window.clone(),
                    slot: create(),
                });
                (entry.into_mut(), true)
            }
        }
    }

    /// Removes the slot of `key` in `window`.
    pub(crate) fn remove_slot(
        &mut self,
        hash: u64,
        key: &[u8],
        window: &W,
    ) -> Option<SlotEntry<K, A, W>> {
        let entry = self
            .slots
            .find_entry(hash, |e| e.window == *window && *e.key == *key)
            .ok()?;
        Some(entry.remove().0)
    }

    /// Stores a slot (restore), replacing one of the same key and window.
    pub(crate) fn put_slot(
        &mut self,
        hash: u64,
        key: Arc<[u8]>,
        window: W,
        slot: WindowSlot<K, A>,
    ) {
        let entry = SlotEntry {
            hash,
            key,
            window,
            slot,
        };
        match self.slots.entry(
            hash,
            |e| e.window == entry.window && e.key == entry.key,
            |e| e.hash,
        ) {
            Entry::Occupied(mut occupied) => *occupied.get_mut() = entry,
            Entry::Vacant(vacant) => {
                vacant.insert(entry);
            }
        }
    }

    /// The session list of `key`, whose [`sessions_hash`] is `hash`.
    #[inline]
    pub(crate) fn sessions(&mut self, hash: u64, key: &[u8]) -> Option<&mut SessionEntry<W>> {
        self.sessions.find_mut(hash, |e| *e.key == *key)
    }

    /// Stores the session list of `key`, replacing an existing one.
    pub(crate) fn put_sessions(&mut self, hash: u64, key: &[u8], sessions: Sessions<W>) {
        match self.sessions.entry(hash, |e| *e.key == *key, |e| e.hash) {
            Entry::Occupied(mut occupied) => occupied.get_mut().sessions = sessions,
            Entry::Vacant(vacant) => {
                vacant.insert(SessionEntry {
                    hash,
                    key: key.into(),
                    sessions,
                });
            }
        }
    }

    /// Removes the session list of `key`.
    pub(crate) fn remove_sessions(&mut self, hash: u64, key: &[u8]) {
        if let Ok(entry) = self.sessions.find_entry(hash, |e| *e.key == *key) {
            entry.remove();
        }
    }

    /// Every slot of the group, in no particular order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &SlotEntry<K, A, W>> {
        self.slots.iter()
    }

    /// Every session list of the group, in no particular order.
    pub(crate) fn session_lists(&self) -> impl Iterator<Item = &SessionEntry<W>> {
        self.sessions.iter()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len() + self.sessions.len()
    }
}

/// The window state of the key groups one subtask owns.
pub(crate) struct WindowStore<K, A, W> {
    start: KeyGroup,
    groups: Vec<GroupState<K, A, W>>,
}

impl<K, A, W: Window> WindowStore<K, A, W> {
    /// A store for the key groups `start..end`.
    pub(crate) fn new(start: KeyGroup, end: KeyGroup) -> Self {
        WindowStore {
            start,
            groups: (start..end).map(|_| GroupState::new()).collect(),
        }
    }

    /// The key groups the store holds.
    pub(crate) fn key_groups(&self) -> std::ops::Range<KeyGroup> {
        // Fewer than 2^15 groups: the sum fits a key group.
        self.start..self.start + self.groups.len() as KeyGroup
    }

    /// The index of `key_group` among the store's groups, or `None` if it is not owned.
    #[inline]
    pub(crate) fn index_of(&self, key_group: KeyGroup) -> Option<usize> {
        let i = usize::from(key_group.checked_sub(self.start)?);
        (i < self.groups.len()).then_some(i)
    }

    /// The state of `key_group`, or the error of accessing a key group the subtask does not
    /// own.
    #[inline]
    pub(crate) fn group(
        &mut self,
        key_group: KeyGroup,
    ) -> Result<&mut GroupState<K, A, W>, StateError> {
        match self.index_of(key_group) {
            Some(i) => Ok(&mut self.groups[i]),
            None => Err(StateError::KeyGroupNotOwned {
                key_group,
                start: self.start,
                end: self.key_groups().end.saturating_sub(1),
            }),
        }
    }

    /// Slots plus session lists held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.groups.iter().map(GroupState::len).sum()
    }
}

/// An entry of the window index: a time, then the key group, key and window it is for.
pub(crate) type IndexEntry<W> = (i64, KeyGroup, Arc<[u8]>, W);

/// The wake-up times of live windows, ordered by time, one set per time domain: each live
/// window's cleanup time (which is also when the default triggers fire it) plus any other time
/// its trigger registered. Rebuilt from the state on restore.
pub(crate) struct WindowIndex<W> {
    event: BTreeSet<IndexEntry<W>>,
    processing: BTreeSet<IndexEntry<W>>,
}

impl<W: Window> WindowIndex<W> {
    pub(crate) fn new() -> Self {
        WindowIndex {
            event: BTreeSet::new(),
            processing: BTreeSet::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    fn of(&mut self, domain: TimeDomain) -> &mut BTreeSet<IndexEntry<W>> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Removes and returns the first entry of `domain` at or before `limit`.
    pub(crate) fn pop_due(&mut self, domain: TimeDomain, limit: i64) -> Option<IndexEntry<W>> {
        let index = self.of(domain);
        if index.first()?.0 > limit {
            return None;
        }
        index.pop_first()
    }

    /// Enters a window's wake-up time.
    pub(crate) fn insert(
        &mut self,
        (domain, time): (TimeDomain, i64),
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &W,
    ) {
        self.of(domain)
            .insert((time, key_group, Arc::clone(key), window.clone()));
    }

    fn remove(
        &mut self,
        (domain, time): (TimeDomain, i64),
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &W,
    ) {
        self.of(domain)
            .remove(&(time, key_group, Arc::clone(key), window.clone()));
    }

    /// Applies a trigger's registrations and deletions for a window (and clears `changes`). A
    /// registration at the window's `cleanup` time shares the cleanup entry.
    pub(crate) fn apply_changes(
        &mut self,
        changes: &mut Vec<TimerChange>,
        cleanup: (TimeDomain, i64),
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &W,
    ) {
        for change in changes.drain(..) {
            let (added, time) = match change {
                TimerChange::Added(d, t) => (true, (d, t)),
                TimerChange::Removed(d, t) => (false, (d, t)),
            };
            if time == cleanup {
                continue;
            }
            if added {
                self.insert(time, key_group, key, window);
            } else {
                self.remove(time, key_group, key, window);
            }
        }
    }

    /// Removes the entries of a window's `timers` other than the one at its `cleanup` time,
    /// which share the cleanup entry.
    pub(crate) fn remove_timers(
        &mut self,
        cleanup: (TimeDomain, i64),
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &W,
        timers: &[(TimeDomain, i64)],
    ) {
        for &time in timers.iter().filter(|t| **t != cleanup) {
            self.remove(time, key_group, key, window);
        }
    }

    /// Removes the cleanup entry at `cleanup` made for `window`.
    pub(crate) fn remove_cleanup(
        &mut self,
        cleanup: (TimeDomain, i64),
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &W,
    ) {
        self.remove(cleanup, key_group, key, window);
    }

    /// Removes every entry of a window whose slot had `timers`, and its `cleanup` entry.
    pub(crate) fn remove_window(
        &mut self,
        cleanup: (TimeDomain, i64),
        key_group: KeyGroup,
        key: &Arc<[u8]>,
        window: &W,
        timers: &[(TimeDomain, i64)],
    ) {
        // A registration at the cleanup time shares the cleanup entry.
        for &time in timers.iter().filter(|t| **t != cleanup).chain([&cleanup]) {
            self.remove(time, key_group, key, window);
        }
    }
}
