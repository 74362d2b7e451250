//! The group table: encoded group keys to dense group indices.
//!
//! Keys are looked up by their canonical key encoding (the bytes the hash exchange hashes), so
//! the hash computed for the lookup also gives the group's key group for checkpoints. Each
//! group also keeps its key values in Arrow's row format, from which output key columns are
//! rebuilt in one call. Indices of removed groups are reused, so per-group state vectors stay
//! as long as the largest number of groups alive at once.

use hashbrown::HashTable;

/// Encoded group keys and their dense indices.
#[derive(Debug, Default)]
pub(crate) struct GroupTable {
    /// Group indices, hashed by [`hash_key_bytes`](crate::keys::hash_key_bytes) of their key.
    table: HashTable<u32>,
    /// Per group: the hash of its key.
    hashes: Vec<u64>,
    /// Per group: its key in the canonical key encoding; empty for a free index.
    keys: Vec<Key>,
    /// Per group: its key values in Arrow's row format.
    rows: Vec<Box<[u8]>>,
    /// Per group: whether the index is in use.
    live: Vec<bool>,
    /// Free indices, reused before new ones.
    free: Vec<u32>,
}

impl GroupTable {
    /// One past the largest group index ever handed out: the length per-group state needs.
    pub(crate) fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// The number of live groups.
    pub(crate) fn len(&self) -> usize {
        self.keys.len() - self.free.len()
    }

    /// The index of the group with `key` (hashed to `hash`), and whether it was just created.
    #[inline]
    pub(crate) fn find_or_insert(&mut self, hash: u64, key: &[u8]) -> (u32, bool) {
        let keys = &self.keys;
        if let Some(&group) = self.table.find(hash, |&g| keys[g as usize].bytes() == key) {
            return (group, false);
        }
        let group = match self.free.pop() {
            Some(group) => {
                let g = group as usize;
                self.keys[g] = Key::new(key);
                self.hashes[g] = hash;
                self.live[g] = true;
                group
            }
            None => {
                let group = u32::try_from(self.keys.len()).expect("fewer than 2^32 groups");
                self.keys.push(Key::new(key));
                self.rows.push(Box::default());
                self.hashes.push(hash);
                self.live.push(true);
                group
            }
        };
        let hashes = &self.hashes;
        self.table
            .insert_unique(hash, group, |&g| hashes[g as usize]);
        (group, true)
    }

    /// Records the key values of `group` in Arrow's row format.
    pub(crate) fn set_row(&mut self, group: u32, row: &[u8]) {
        self.rows[group as usize] = row.into();
    }

    /// The key values of `group` in Arrow's row format.
    pub(crate) fn row(&self, group: u32) -> &[u8] {
        &self.rows[group as usize]
    }

    /// The hash of `group`'s key.
    pub(crate) fn hash(&self, group: u32) -> u64 {
        self.hashes[group as usize]
    }

    /// Removes `group`; its index will be reused.
    pub(crate) fn remove(&mut self, group: u32) {
        let g = group as usize;
        if !self.live[g] {
            return;
        }
        if let Ok(entry) = self
            .table
            .find_entry(self.hashes[g], |&other| other == group)
        {
            entry.remove();
        }
        self.keys[g] = Key::new(&[]);
        self.rows[g] = Box::default();
        self.live[g] = false;
        self.free.push(group);
    }

    /// The live groups, by ascending index.
    pub(crate) fn live_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.live
            .iter()
            .enumerate()
            .filter(|(_, live)| **live)
            .map(|(g, _)| g as u32)
    }
}

/// A group key's bytes, inline when short (most keys: a number or two, a short string), so
/// comparing a probed group's key reads the key vector only, not another allocation.
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// The longest key kept inline.
const INLINE: usize = 22;

impl Key {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(key.into())
        }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(bytes) => bytes,
        }
    }
}
