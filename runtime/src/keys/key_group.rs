//! Key groups: the unit of keyed-state partitioning, and their assignment to subtasks.
//!
//! The formulas are Flink's (`KeyGroupRangeAssignment`), so a job rescales the same way a
//! Flink job does: each subtask owns one contiguous range of key groups, and rescaling moves
//! whole key groups between subtasks.

use std::ops::Range;

use super::KeyError;

/// A key group: the smallest unit of keyed state that can move between subtasks.
///
/// A key's group is `hash % max_parallelism` (see [`key_group_for_hash`]), so key groups run
/// from `0` to `max_parallelism - 1`.
pub type KeyGroup = u16;

/// The max parallelism used when a job does not set one: 128 key groups.
///
/// The max parallelism is the number of key groups and the upper bound for any operator's
/// parallelism. It is part of a savepoint: changing it re-partitions all keyed state.
pub const DEFAULT_MAX_PARALLELISM: u16 = 128;

/// The largest allowed max parallelism, `32768` (Flink's `UPPER_BOUND_MAX_PARALLELISM`).
pub const UPPER_BOUND_MAX_PARALLELISM: u16 = 1 << 15;

/// Checks that `max_parallelism` is in `1..=32768` and `parallelism` in `1..=max_parallelism`.
///
/// The other key-group functions assume checked values and panic on a zero divisor; call this
/// once when a job is built.
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::{validate_parallelism, DEFAULT_MAX_PARALLELISM};
///
/// assert!(validate_parallelism(DEFAULT_MAX_PARALLELISM, 4).is_ok());
/// assert!(validate_parallelism(DEFAULT_MAX_PARALLELISM, 200).is_err());
/// assert!(validate_parallelism(0, 1).is_err());
/// ```
pub fn validate_parallelism(max_parallelism: u16, parallelism: usize) -> Result<(), KeyError> {
    validate_max_parallelism(max_parallelism)?;
    if parallelism == 0 || parallelism > usize::from(max_parallelism) {
        return Err(KeyError::InvalidParallelism {
            parallelism,
            max_parallelism,
        });
    }
    Ok(())
}

/// Checks that `max_parallelism` is in `1..=UPPER_BOUND_MAX_PARALLELISM`.
pub(crate) fn validate_max_parallelism(max_parallelism: u16) -> Result<(), KeyError> {
    if max_parallelism == 0 || max_parallelism > UPPER_BOUND_MAX_PARALLELISM {
        return Err(KeyError::InvalidMaxParallelism { max_parallelism });
    }
    Ok(())
}

/// The key group of a key whose [`hash_key_bytes`](super::hash_key_bytes) is `hash`:
/// `hash % max_parallelism`.
///
/// # Panics
///
/// If `max_parallelism` is zero (see [`validate_parallelism`]).
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::key_group_for_hash;
///
/// assert_eq!(key_group_for_hash(1000, 128), 1000 % 128);
/// ```
#[inline]
pub fn key_group_for_hash(hash: u64, max_parallelism: u16) -> KeyGroup {
    // The remainder is below `max_parallelism`, so it fits a `u16`.
    (hash % u64::from(max_parallelism)) as KeyGroup
}

/// The subtask (zero-based operator index) that owns `key_group`:
/// `key_group * parallelism / max_parallelism` (Flink's
/// `computeOperatorIndexForKeyGroup`).
///
/// Agrees with [`key_group_range_for_subtask`]: the returned subtask's range contains
/// `key_group`.
///
/// # Panics
///
/// If `max_parallelism` is zero (see [`validate_parallelism`]).
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::subtask_for_key_group;
///
/// // 128 key groups over 4 subtasks: 32 consecutive groups each.
/// assert_eq!(subtask_for_key_group(128, 4, 0), 0);
/// assert_eq!(subtask_for_key_group(128, 4, 31), 0);
/// assert_eq!(subtask_for_key_group(128, 4, 32), 1);
/// assert_eq!(subtask_for_key_group(128, 4, 127), 3);
/// ```
#[inline]
pub fn subtask_for_key_group(
    max_parallelism: u16,
    parallelism: usize,
    key_group: KeyGroup,
) -> usize {
    usize::from(key_group) * parallelism / usize::from(max_parallelism)
}

/// The key groups owned by `subtask` when an operator with `max_parallelism` key groups
/// runs at `parallelism` (Flink's `computeKeyGroupRangeForOperatorIndex`).
///
/// The ranges of subtasks `0..parallelism` are disjoint, consecutive and cover all key groups.
///
/// # Panics
///
/// If `parallelism` is zero (see [`validate_parallelism`]).
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::key_group_range_for_subtask;
///
/// let range = key_group_range_for_subtask(128, 3, 1);
/// assert_eq!((range.start(), range.end()), (43, 86));
/// assert!(range.contains(43) && !range.contains(86));
/// ```
pub fn key_group_range_for_subtask(
    max_parallelism: u16,
    parallelism: usize,
    subtask: usize,
) -> KeyGroupRange {
    let max_p = usize::from(max_parallelism);
    let p = parallelism;
    let start = (subtask * max_p).div_ceil(p);
    // Flink's inclusive end is `((subtask + 1) * max_p - 1) / p`; ours is one past it.
    let end = ((subtask + 1) * max_p).div_ceil(p);
    // Both bounds are at most `max_p`, which is at most `UPPER_BOUND_MAX_PARALLELISM`
    // for a valid subtask; clamp so an out-of-range subtask yields an empty range.
    let clamp = |kg: usize| kg.min(max_p) as KeyGroup;
    KeyGroupRange::new(clamp(start), clamp(end))
}

/// A contiguous range of key groups, `start..end` with an **exclusive** end.
///
/// Flink's `KeyGroupRange` has an inclusive end; ours is exclusive so an empty range is
/// representable (a subtask beyond the max parallelism owns no key groups).
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::KeyGroupRange;
///
/// let range = KeyGroupRange::new(32, 64);
/// assert_eq!(range.len(), 32);
/// assert_eq!(range.index_of(40), Some(8));
/// assert_eq!(range.index_of(64), None);
/// assert_eq!(range.iter().next(), Some(32));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    start: KeyGroup,
    end: KeyGroup,
}

impl KeyGroupRange {
    /// The key groups `start..end` (end exclusive). If `end < start` the range is empty.
    pub const fn new(start: KeyGroup, end: KeyGroup) -> Self {
        let end = if end < start { start } else { end };
        Self { start, end }
    }

    /// The first key group in the range.
    pub const fn start(&self) -> KeyGroup {
        self.start
    }

    /// One past the last key group in the range.
    pub const fn end(&self) -> KeyGroup {
        self.end
    }

    /// Whether `key_group` is in the range.
    pub const fn contains(&self, key_group: KeyGroup) -> bool {
        self.start <= key_group && key_group < self.end
    }

    /// The number of key groups in the range.
    pub const fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the range holds no key group.
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The key groups of the range, in ascending order.
    pub fn iter(&self) -> Range<KeyGroup> {
        self.start..self.end
    }

    /// The offset of `key_group` within the range (`key_group - start`), or `None` if the
    /// range does not contain it. Keyed state backends index per-key-group data with it.
    pub const fn index_of(&self, key_group: KeyGroup) -> Option<usize> {
        if self.contains(key_group) {
            Some((key_group - self.start) as usize)
        } else {
            None
        }
    }
}

impl IntoIterator for KeyGroupRange {
    type Item = KeyGroup;
    type IntoIter = Range<KeyGroup>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (max parallelism, parallelism) pairs covering edge cases: one subtask, one key group,
    /// parallelism equal to max parallelism, non-divisible splits and the upper bound.
    fn parallelism_pairs() -> Vec<(u16, usize)> {
        let mut pairs = Vec::new();
        for max_p in [1u16, 2, 3, 7, 10, 64, 100, 127, 128, 129, 1000, 4096] {
            for p in [
                1usize, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 100, 127, 128, 1000,
            ] {
                if p <= usize::from(max_p) {
                    pairs.push((max_p, p));
                }
            }
            pairs.push((max_p, usize::from(max_p)));
        }
        pairs.extend([
            (32768, 1),
            (32768, 3),
            (32768, 1000),
            (32768, 32767),
            (32768, 32768),
        ]);
        pairs
    }

    #[test]
    fn every_key_group_maps_to_exactly_one_subtask() {
        for (max_p, p) in parallelism_pairs() {
            let ranges: Vec<_> = (0..p)
                .map(|i| key_group_range_for_subtask(max_p, p, i))
                .collect();
            // Consecutive, non-empty, and covering 0..max_p.
            assert_eq!(ranges[0].start(), 0, "max_p={max_p} p={p}");
            assert_eq!(ranges[p - 1].end(), max_p, "max_p={max_p} p={p}");
            for w in ranges.windows(2) {
                assert_eq!(w[0].end(), w[1].start(), "max_p={max_p} p={p}");
            }
            for r in &ranges {
                assert!(!r.is_empty(), "max_p={max_p} p={p} range={r:?}");
            }
            // Count each key group's owners (ranges are disjoint by the windows check, but
            // count anyway) and check the subtask function names the same owner.
            let mut owners = vec![0u32; usize::from(max_p)];
            for (subtask, range) in ranges.iter().enumerate() {
                for kg in range.iter() {
                    owners[usize::from(kg)] += 1;
                    assert_eq!(
                        subtask_for_key_group(max_p, p, kg),
                        subtask,
                        "range and subtask functions disagree: max_p={max_p} p={p} kg={kg}"
                    );
                }
            }
            assert!(owners.iter().all(|&n| n == 1), "max_p={max_p} p={p}");
        }
    }

    #[test]
    #[allow(clippy::manual_div_ceil)] // Spelled exactly as Flink writes it.
    fn ranges_match_flink_inclusive_formula() {
        for (max_p, p) in parallelism_pairs() {
            let m = usize::from(max_p);
            for i in 0..p {
                let r = key_group_range_for_subtask(max_p, p, i);
                let flink_start = (i * m + p - 1) / p;
                let flink_end_inclusive = ((i + 1) * m - 1) / p;
                assert_eq!(usize::from(r.start()), flink_start);
                assert_eq!(usize::from(r.end()), flink_end_inclusive + 1);
            }
        }
    }

    #[test]
    fn range_helpers() {
        let r = KeyGroupRange::new(10, 13);
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![10, 11, 12]);
        assert_eq!(r.into_iter().count(), 3);
        assert_eq!(r.index_of(9), None);
        assert_eq!(r.index_of(10), Some(0));
        assert_eq!(r.index_of(12), Some(2));
        assert_eq!(r.index_of(13), None);
        let empty = KeyGroupRange::new(5, 3);
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert!(!empty.contains(5));
    }

    #[test]
    fn more_subtasks_than_key_groups_leaves_some_idle() {
        let ranges: Vec<_> = (0..4)
            .map(|i| key_group_range_for_subtask(2, 4, i))
            .collect();
        assert_eq!(ranges.iter().map(KeyGroupRange::len).sum::<usize>(), 2);
        for kg in 0..2 {
            let s = subtask_for_key_group(2, 4, kg);
            assert!(ranges[s].contains(kg));
        }
    }

    #[test]
    fn validation() {
        assert!(validate_parallelism(1, 1).is_ok());
        assert!(validate_parallelism(UPPER_BOUND_MAX_PARALLELISM, 32768).is_ok());
        assert!(matches!(
            validate_parallelism(0, 1),
            Err(KeyError::InvalidMaxParallelism { max_parallelism: 0 })
        ));
        assert!(validate_parallelism(UPPER_BOUND_MAX_PARALLELISM + 1, 1).is_err());
        assert!(matches!(
            validate_parallelism(128, 0),
            Err(KeyError::InvalidParallelism { parallelism: 0, .. })
        ));
        assert!(validate_parallelism(128, 129).is_err());
    }

    #[test]
    fn key_group_for_hash_is_modulo() {
        assert_eq!(key_group_for_hash(u64::MAX, 128), (u64::MAX % 128) as u16);
        assert_eq!(key_group_for_hash(5, 1), 0);
        assert_eq!(key_group_for_hash(40000, 32768), 40000 - 32768);
    }
}
