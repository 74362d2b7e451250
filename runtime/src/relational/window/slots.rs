//! The (key, window) table of window aggregation: each pair gets a dense slot index into the
//! columnar accumulators, and an index ordered by window end says which slots fire next.

use std::collections::BTreeSet;

use crate::keys::{KeyGroup, key_group_for_hash};
use crate::relational::aggregate::groups::GroupTable;
use crate::relational::join::rows::FixedHashMap;

/// Keys, their live windows, and the slot of each (key, window).
#[derive(Debug, Default)]
pub(super) struct WindowSlots {
    /// Group keys (canonical key encoding) to key ids, with their values in Arrow's row format.
    pub(super) keys: GroupTable,
    /// Per key id: its live slots.
    key_slots: Vec<Vec<u32>>,
    /// Per slot: its key id.
    slot_key: Vec<u32>,
    /// Per slot: its window `(start, end)`.
    windows: Vec<(i64, i64)>,
    /// Per slot: whether it is in use.
    live: Vec<bool>,
    /// Slots free for reuse.
    free: Vec<u32>,
    /// Slots removed during the current batch, freed once the batch is applied.
    pending: Vec<u32>,
    /// `(key, start, end)` to slot, for windows that do not merge.
    lookup: FixedHashMap<(u32, i64, i64), u32>,
    /// `(end, slot)` of every live slot: the order windows fire in.
    index: BTreeSet<(i64, u32)>,
}

impl WindowSlots {
    /// One past the largest slot index handed out: the length accumulators need.
    pub(super) fn capacity(&self) -> usize {
        self.live.len()
    }

    /// The number of live (key, window) slots.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The slot of the non-merging window `(start, end)` of `key`, created when new.
    #[inline]
    pub(super) fn find_or_create(&mut self, key: u32, start: i64, end: i64) -> u32 {
        if let Some(&slot) = self.lookup.get(&(key, start, end)) {
            return slot;
        }
        let slot = self.create(key, start, end);
        self.lookup.insert((key, start, end), slot);
        slot
    }

    /// A new slot for the window `(start, end)` of `key`, not looked up by its bounds (a
    /// session, whose bounds change as it merges).
    pub(super) fn create(&mut self, key: u32, start: i64, end: i64) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                let s = slot as usize;
                self.slot_key[s] = key;
                self.windows[s] = (start, end);
                self.live[s] = true;
                slot
            }
            None => {
                let slot = u32::try_from(self.live.len()).expect("fewer than 2^32 windows");
                self.slot_key.push(key);
                self.windows.push((start, end));
                self.live.push(true);
                slot
            }
        };
        let k = key as usize;
        if k >= self.key_slots.len() {
            self.key_slots.resize_with(k + 1, Vec::new);
        }
        self.key_slots[k].push(slot);
        self.index.insert((end, slot));
        slot
    }

    /// Moves a session slot to the window `(start, end)`.
    pub(super) fn set_window(&mut self, slot: u32, start: i64, end: i64) {
        let s = slot as usize;
        self.index.remove(&(self.windows[s].1, slot));
        self.windows[s] = (start, end);
        self.index.insert((end, slot));
    }

    /// The key id of a slot.
    #[inline]
    pub(super) fn key(&self, slot: u32) -> u32 {
        self.slot_key[slot as usize]
    }

    /// The window `(start, end)` of a slot.
    #[inline]
    pub(super) fn window(&self, slot: u32) -> (i64, i64) {
        self.windows[slot as usize]
    }

    /// The live slots of `key`.
    pub(super) fn slots_of(&self, key: u32) -> &[u32] {
        self.key_slots
            .get(key as usize)
            .map_or(&[], |slots| slots.as_slice())
    }

    /// The key group of a slot's key, as the hash exchange computes it.
    pub(super) fn key_group(&self, slot: u32, max_parallelism: u16) -> KeyGroup {
        key_group_for_hash(self.keys.hash(self.key(slot)), max_parallelism)
    }

    /// The slots whose window has fired once the watermark is at `watermark` (`end - 1 <=
    /// watermark`), in order of window end.
    pub(super) fn due(&self, watermark: i64) -> Vec<u32> {
        self.index
            .iter()
            .take_while(|(end, _)| end.saturating_sub(1) <= watermark)
            .map(|&(_, slot)| slot)
            .collect()
    }

    /// Every live slot, in order of window end.
    pub(super) fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.iter().map(|&(_, slot)| slot)
    }

    /// Removes a slot; its key goes too when it was the key's last slot. With `deferred` the
    /// slot index is reused only after [`WindowSlots::release`], so rows of the current batch
    /// may still name it.
    pub(super) fn remove(&mut self, slot: u32, deferred: bool) {
        let s = slot as usize;
        if !self.live[s] {
            return;
        }
        let key = self.slot_key[s];
        let (start, end) = self.windows[s];
        self.index.remove(&(end, slot));
        if self.lookup.get(&(key, start, end)) == Some(&slot) {
            self.lookup.remove(&(key, start, end));
        }
        let slots = &mut self.key_slots[key as usize];
        if let Some(at) = slots.iter().position(|&other| other == slot) {
            slots.swap_remove(at);
        }
        if slots.is_empty() {
            self.keys.remove(key);
        }
        self.live[s] = false;
        if deferred {
            self.pending.push(slot);
        } else {
            self.free.push(slot);
        }
    }

    /// Removes `key` if it has no slot (all of its rows were late).
    pub(super) fn remove_key_if_unused(&mut self, key: u32) {
        if self.slots_of(key).is_empty() {
            self.keys.remove(key);
        }
    }

    /// Makes slots removed with `deferred` reusable.
    pub(super) fn release(&mut self) {
        self.free.append(&mut self.pending);
    }
}
