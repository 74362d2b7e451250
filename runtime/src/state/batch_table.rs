//! [`BatchKeyedTable`]: encoded key -> value, read and written a whole batch at a time, for
//! vectorised (Arrow) operators.

use std::fmt;

use arrow::array::{Array, GenericBinaryArray, OffsetSizeTrait};
use arrow::row::Rows;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::table::hash_key;
use super::{KeyGroup, StateError, StateValue};

/// Version of the per-key-group snapshot format of [`BatchKeyedTable`].
const BATCH_SNAPSHOT_VERSION: u32 = 1;

/// A column of encoded keys, one per row of a batch, readable without allocating.
///
/// Implemented for slices and vectors of byte strings (`&[&[u8]]`, `Vec<Vec<u8>>`, ...), for
/// [`OffsetKeys`] (offsets into one buffer), for Arrow binary arrays and for Arrow
/// [`Rows`].
pub trait EncodedKeys {
    /// Number of rows.
    fn len(&self) -> usize;
    /// The encoded key of row `row` (`row < len()`).
    fn key(&self, row: usize) -> &[u8];
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: AsRef<[u8]>> EncodedKeys for [T] {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    #[inline]
    fn key(&self, row: usize) -> &[u8] {
        self[row].as_ref()
    }
}

impl<T: AsRef<[u8]>> EncodedKeys for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn key(&self, row: usize) -> &[u8] {
        self[row].as_ref()
    }
}

impl<O: OffsetSizeTrait> EncodedKeys for GenericBinaryArray<O> {
    fn len(&self) -> usize {
        Array::len(self)
    }
    #[inline]
    fn key(&self, row: usize) -> &[u8] {
        self.value(row)
    }
}

impl EncodedKeys for Rows {
    fn len(&self) -> usize {
        self.num_rows()
    }
    #[inline]
    fn key(&self, row: usize) -> &[u8] {
        self.row(row).data()
    }
}

/// Encoded keys stored back to back in one buffer: row `i` is `bytes[offsets[i]..offsets[i + 1]]`.
///
/// ```
/// use rivulet_runtime::state::{EncodedKeys, OffsetKeys};
///
/// let keys = OffsetKeys::new(&[0, 3, 5], b"annbo")?;
/// assert_eq!(keys.len(), 2);
/// assert_eq!(keys.key(1), b"bo");
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OffsetKeys<'a> {
    offsets: &'a [usize],
    bytes: &'a [u8],
}

impl<'a> OffsetKeys<'a> {
    /// Keys delimited by `offsets` (one more than the number of rows, non-decreasing, within
    /// `bytes`).
    pub fn new(offsets: &'a [usize], bytes: &'a [u8]) -> Result<Self, StateError> {
        let decreasing = offsets.windows(2).find(|w| w[0] > w[1]).map(|w| w[1]);
        let end = offsets.last().copied().unwrap_or(0);
        if let Some(end) = decreasing.or((end > bytes.len()).then_some(end)) {
            return Err(StateError::InvalidKeyOffsets {
                end,
                bytes: bytes.len(),
            });
        }
        Ok(Self { offsets, bytes })
    }
}

impl EncodedKeys for OffsetKeys<'_> {
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    #[inline]
    fn key(&self, row: usize) -> &[u8] {
        &self.bytes[self.offsets[row]..self.offsets[row + 1]]
    }
}

/// Encoded key -> value, partitioned by key group, for vectorised operators (e.g. a hash
/// aggregate over Arrow batches): one call reads or writes a whole batch.
///
/// Keys come with their key groups, which must lie in the table's range. Values are live Rust
/// values, serialized only by [`snapshot_key_group`](Self::snapshot_key_group).
///
/// ```
/// use rivulet_runtime::state::BatchKeyedTable;
///
/// let mut sums = BatchKeyedTable::<i64>::new(0, 127);
/// let keys: [&[u8]; 3] = [b"a", b"b", b"a"];
/// let key_groups = [1, 2, 1];
/// let amounts = [10, 5, 7];
/// sums.update_many(&keys[..], &key_groups, |_| 0, |row, sum| *sum += amounts[row])?;
///
/// let mut out = Vec::new();
/// sums.get_many(&keys[..2], &key_groups[..2], &mut out)?;
/// assert_eq!(out, vec![Some(17), Some(5)]);
/// # Ok::<(), rivulet_runtime::state::StateError>(())
/// ```
pub struct BatchKeyedTable<V> {
    start: KeyGroup,
    end: KeyGroup,
    groups: Vec<HashTable<(Box<[u8]>, V)>>,
    len: usize,
}

impl<V: StateValue> BatchKeyedTable<V> {
    /// An empty table for key groups `key_group_start..=key_group_end_inclusive`.
    ///
    /// # Panics
    /// If `key_group_end_inclusive < key_group_start` (a bug in the caller's key group
    /// assignment).
    pub fn new(key_group_start: KeyGroup, key_group_end_inclusive: KeyGroup) -> Self {
        assert!(
            key_group_start <= key_group_end_inclusive,
            "empty key group range {key_group_start}..={key_group_end_inclusive}"
        );
        let groups = usize::from(key_group_end_inclusive - key_group_start) + 1;
        Self {
            start: key_group_start,
            end: key_group_end_inclusive,
            groups: (0..groups).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key groups this table holds.
    pub fn key_group_range(&self) -> std::ops::RangeInclusive<KeyGroup> {
        self.start..=self.end
    }

    #[inline]
    fn group(&self, key_group: KeyGroup) -> Result<usize, StateError> {
        let group = usize::from(key_group.wrapping_sub(self.start));
        if group < self.groups.len() {
            Ok(group)
        } else {
            Err(StateError::KeyGroupNotOwned {
                key_group,
                start: self.start,
                end: self.end,
            })
        }
    }

    fn check_lengths<K: EncodedKeys + ?Sized>(
        keys: &K,
        key_groups: &[KeyGroup],
    ) -> Result<(), StateError> {
        if keys.len() == key_groups.len() {
            Ok(())
        } else {
            Err(StateError::BatchLengthMismatch {
                keys: keys.len(),
                column: "key groups",
                other: key_groups.len(),
            })
        }
    }

    /// The value of one key.
    pub fn get(&self, key: &[u8], key_group: KeyGroup) -> Result<Option<&V>, StateError> {
        let group = self.group(key_group)?;
        Ok(self.groups[group]
            .find(hash_key(key), |(k, _)| **k == *key)
            .map(|(_, v)| v))
    }

    /// Clears `out` and pushes the value of each row's key (`None` where absent), cloned.
    pub fn get_many<K: EncodedKeys + ?Sized>(
        &self,
        keys: &K,
        key_groups: &[KeyGroup],
        out: &mut Vec<Option<V>>,
    ) -> Result<(), StateError> {
        Self::check_lengths(keys, key_groups)?;
        out.clear();
        out.reserve(keys.len());
        for (row, &key_group) in key_groups.iter().enumerate() {
            let group = self.group(key_group)?;
            let key = keys.key(row);
            let found = self.groups[group].find(hash_key(key), |(k, _)| **k == *key);
            out.push(found.map(|(_, v)| v.clone()));
        }
        Ok(())
    }

    /// Clears `out` and pushes a reference to the value of each row's key (`None` where
    /// absent), without cloning.
    pub fn get_many_ref<'t, K: EncodedKeys + ?Sized>(
        &'t self,
        keys: &K,
        key_groups: &[KeyGroup],
        out: &mut Vec<Option<&'t V>>,
    ) -> Result<(), StateError> {
        Self::check_lengths(keys, key_groups)?;
        out.clear();
        out.reserve(keys.len());
        for (row, &key_group) in key_groups.iter().enumerate() {
            let group = self.group(key_group)?;
            let key = keys.key(row);
            let found = self.groups[group].find(hash_key(key), |(k, _)| **k == *key);
            out.push(found.map(|(_, v)| v));
        }
        Ok(())
    }

    /// Sets the value of each row's key to the row's value (later rows win for repeated keys).
    pub fn upsert_many<K: EncodedKeys + ?Sized>(
        &mut self,
        keys: &K,
        key_groups: &[KeyGroup],
        values: impl IntoIterator<Item = V, IntoIter: ExactSizeIterator>,
    ) -> Result<(), StateError> {
        Self::check_lengths(keys, key_groups)?;
        let values = values.into_iter();
        if values.len() != keys.len() {
            return Err(StateError::BatchLengthMismatch {
                keys: keys.len(),
                column: "values",
                other: values.len(),
            });
        }
        self.check_key_groups(key_groups)?;
        for ((row, &key_group), value) in key_groups.iter().enumerate().zip(values) {
            let group = self.group(key_group)?;
            let key = keys.key(row);
            match self.groups[group].entry(
                hash_key(key),
                |(k, _)| **k == *key,
                |(k, _)| hash_key(k),
            ) {
                TableEntry::Occupied(mut occupied) => occupied.get_mut().1 = value,
                TableEntry::Vacant(vacant) => {
                    vacant.insert((key.into(), value));
                    self.len += 1;
                }
            }
        }
        Ok(())
    }

    /// For each row, calls `update(row, value)` on the value of the row's key, first inserting
    /// `init(row)` if the key is absent; one hash lookup per row.
    pub fn update_many<K: EncodedKeys + ?Sized>(
        &mut self,
        keys: &K,
        key_groups: &[KeyGroup],
        mut init: impl FnMut(usize) -> V,
        mut update: impl FnMut(usize, &mut V),
    ) -> Result<(), StateError> {
        Self::check_lengths(keys, key_groups)?;
        self.check_key_groups(key_groups)?;
        for (row, &key_group) in key_groups.iter().enumerate() {
            let group = self.group(key_group)?;
            let key = keys.key(row);
            let value = match self.groups[group].entry(
                hash_key(key),
                |(k, _)| **k == *key,
                |(k, _)| hash_key(k),
            ) {
                TableEntry::Occupied(occupied) => &mut occupied.into_mut().1,
                TableEntry::Vacant(vacant) => {
                    self.len += 1;
                    &mut vacant.insert((key.into(), init(row))).into_mut().1
                }
            };
            update(row, value);
        }
        Ok(())
    }

    /// Removes each row's key; returns how many keys were present.
    pub fn remove_many<K: EncodedKeys + ?Sized>(
        &mut self,
        keys: &K,
        key_groups: &[KeyGroup],
    ) -> Result<usize, StateError> {
        Self::check_lengths(keys, key_groups)?;
        self.check_key_groups(key_groups)?;
        let mut removed = 0;
        for (row, &key_group) in key_groups.iter().enumerate() {
            let group = self.group(key_group)?;
            let key = keys.key(row);
            if let Ok(entry) = self.groups[group].find_entry(hash_key(key), |(k, _)| **k == *key) {
                entry.remove();
                removed += 1;
            }
        }
        self.len -= removed;
        Ok(removed)
    }

    /// Fails before any write if a key group is not owned, so batch writes are all or nothing.
    fn check_key_groups(&self, key_groups: &[KeyGroup]) -> Result<(), StateError> {
        match key_groups.iter().find(|&&kg| self.group(kg).is_err()) {
            Some(&key_group) => self.group(key_group).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Calls `f(key_group, key, value)` for every entry, key group by key group.
    pub fn for_each(&self, mut f: impl FnMut(KeyGroup, &[u8], &V)) {
        for (key_group, entries) in self.key_group_range().zip(&self.groups) {
            for (key, value) in entries {
                f(key_group, key, value);
            }
        }
    }

    /// Serializes the entries of key group `key_group`.
    pub fn snapshot_key_group(&self, key_group: KeyGroup) -> Result<Vec<u8>, StateError> {
        let group = self.group(key_group)?;
        let mut rows: Vec<(&[u8], &V)> =
            self.groups[group].iter().map(|(k, v)| (&**k, v)).collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        postcard::to_allocvec(&(BATCH_SNAPSHOT_VERSION, key_group, rows)).map_err(|source| {
            StateError::Serialize {
                state: "batch keyed table".to_owned(),
                key_group,
                source,
            }
        })
    }

    /// Restores key group `key_group` from bytes written by
    /// [`snapshot_key_group`](Self::snapshot_key_group) (possibly by a table with another key
    /// group range); entries replace existing ones with the same key.
    pub fn restore_key_group(
        &mut self,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let group = self.group(key_group)?;
        let (version, stored_group, rows): (u32, KeyGroup, Vec<(Vec<u8>, V)>) =
            postcard::from_bytes(bytes).map_err(|source| StateError::Deserialize {
                state: "batch keyed table".to_owned(),
                key_group,
                source,
            })?;
        if version != BATCH_SNAPSHOT_VERSION || stored_group != key_group {
            return Err(StateError::CorruptSnapshot {
                key_group,
                reason: format!(
                    "batch table snapshot of version {version} for key group {stored_group}"
                ),
            });
        }
        let entries = &mut self.groups[group];
        entries.reserve(rows.len(), |(k, _)| hash_key(k));
        for (key, value) in rows {
            match entries.entry(hash_key(&key), |(k, _)| **k == *key, |(k, _)| hash_key(k)) {
                TableEntry::Occupied(mut occupied) => occupied.get_mut().1 = value,
                TableEntry::Vacant(vacant) => {
                    vacant.insert((key.into_boxed_slice(), value));
                    self.len += 1;
                }
            }
        }
        Ok(())
    }
}

impl<V> fmt::Debug for BatchKeyedTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchKeyedTable")
            .field("key_groups", &(self.start..=self.end))
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip_and_split_restore() -> Result<(), StateError> {
        let mut table = BatchKeyedTable::<u64>::new(0, 127);
        let keys: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let key_groups: Vec<KeyGroup> = (0..200u16).map(|i| i % 128).collect();
        table.upsert_many(&keys, &key_groups, (0..200u64).collect::<Vec<_>>())?;
        assert_eq!(table.len(), 200);

        let mut left = BatchKeyedTable::<u64>::new(0, 63);
        let mut right = BatchKeyedTable::<u64>::new(64, 127);
        for kg in 0..128 {
            let bytes = table.snapshot_key_group(kg)?;
            if kg < 64 {
                left.restore_key_group(kg, &bytes)?;
            } else {
                right.restore_key_group(kg, &bytes)?;
            }
        }
        assert_eq!(left.len() + right.len(), 200);
        for (row, key) in keys.iter().enumerate() {
            let kg = key_groups[row];
            let owner = if kg < 64 { &left } else { &right };
            assert_eq!(owner.get(key, kg)?, Some(&(row as u64)));
        }
        assert!(left.get(&keys[100], key_groups[100]).is_err());
        Ok(())
    }

    #[test]
    fn offsets_get_update_remove() -> Result<(), StateError> {
        let mut table = BatchKeyedTable::<String>::new(10, 11);
        let keys = OffsetKeys::new(&[0, 1, 3, 4], b"abbc")?;
        let key_groups = [10, 11, 10];
        table.update_many(
            &keys,
            &key_groups,
            |_| String::new(),
            |row, s| s.push_str(&row.to_string()),
        )?;
        table.update_many(
            &keys,
            &key_groups,
            |_| String::new(),
            |row, s| s.push_str(&row.to_string()),
        )?;
        let mut out = Vec::new();
        table.get_many_ref(&keys, &key_groups, &mut out)?;
        assert_eq!(
            out,
            vec![
                Some(&"00".to_owned()),
                Some(&"11".to_owned()),
                Some(&"22".to_owned())
            ]
        );

        let removed = table.remove_many(&[&b"a"[..], b"zz"][..], &[10, 10])?;
        assert_eq!(removed, 1);
        assert_eq!(table.len(), 2);
        let mut out = Vec::new();
        table.get_many(&keys, &key_groups, &mut out)?;
        assert_eq!(
            out,
            vec![None, Some("11".to_owned()), Some("22".to_owned())]
        );
        Ok(())
    }

    #[test]
    fn mismatched_lengths_and_foreign_key_groups_are_errors() {
        let mut table = BatchKeyedTable::<u8>::new(0, 3);
        let keys: [&[u8]; 2] = [b"a", b"b"];
        assert!(matches!(
            table.upsert_many(&keys[..], &[0], vec![1]),
            Err(StateError::BatchLengthMismatch {
                keys: 2,
                other: 1,
                ..
            })
        ));
        assert!(matches!(
            table.upsert_many(&keys[..], &[0, 9], vec![1, 2]),
            Err(StateError::KeyGroupNotOwned { key_group: 9, .. })
        ));
        assert!(table.is_empty(), "a failed batch writes nothing");
        assert!(matches!(
            OffsetKeys::new(&[0, 4], b"abc"),
            Err(StateError::InvalidKeyOffsets { end: 4, bytes: 3 })
        ));
        assert!(OffsetKeys::new(&[2, 1], b"abc").is_err());
    }

    #[test]
    fn arrow_binary_keys() -> Result<(), StateError> {
        let keys = arrow::array::BinaryArray::from_vec(vec![b"x", b"y"]);
        let mut table = BatchKeyedTable::<i32>::new(0, 0);
        table.upsert_many(&keys, &[0, 0], [1, 2])?;
        assert_eq!(table.get(b"y", 0)?, Some(&2));
        Ok(())
    }
}
