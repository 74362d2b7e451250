//! Keyed timers: event-time and processing-time wake-ups per key and namespace.
//!
//! Timers are deduplicated per (time, key, namespace), fired in time order, and kept per key
//! group so they are snapshotted and restored with the keyed state.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::KeyGroup;
use crate::state::StateError;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time.
    EventTime,
    /// Fires when the processing-time clock reaches the timer's time.
    ProcessingTime,
}

/// The identity of a timer; the order is the firing order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    pub(crate) time: i64,
    pub(crate) key_group: KeyGroup,
    pub(crate) key: Box<[u8]>,
    pub(crate) namespace: Box<[u8]>,
}

/// Timers of one domain, ordered by time, each remembering its typed key.
#[derive(Debug)]
pub(crate) struct TimerQueue<K> {
    timers: BTreeMap<TimerKey, K>,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            timers: BTreeMap::new(),
        }
    }
}

impl<K: Clone + Serialize + DeserializeOwned> TimerQueue<K> {
    /// Registers a timer; registering the same one twice keeps one.
    pub(crate) fn register(&mut self, timer: TimerKey, key: &K) {
        self.timers.entry(timer).or_insert_with(|| key.clone());
    }

    /// Removes a timer if it exists.
    pub(crate) fn delete(&mut self, timer: &TimerKey) {
        self.timers.remove(timer);
    }

    /// Removes and returns the earliest timer due at `limit`.
    pub(crate) fn pop_due(&mut self, limit: i64) -> Option<(TimerKey, K)> {
        let (first, _) = self.timers.first_key_value()?;
        if first.time > limit {
            return None;
        }
        self.timers.pop_first()
    }

    /// The number of timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    /// The timers of `key_group`, serialized.
    pub(crate) fn snapshot_key_group(&self, key_group: KeyGroup) -> Result<Vec<u8>, StateError> {
        let entries: Vec<(i64, &[u8], &[u8], &K)> = self
            .timers
            .iter()
            .filter(|(t, _)| t.key_group == key_group)
            .map(|(t, k)| (t.time, &*t.key, &*t.namespace, k))
            .collect();
        postcard::to_stdvec(&entries).map_err(|e| {
            StateError::Internal(format!(
                "could not serialize the timers of key group {key_group}: {e}"
            ))
        })
    }

    /// Adds the timers of `key_group` from a snapshot.
    pub(crate) fn restore_key_group(
        &mut self,
        key_group: KeyGroup,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let entries: Vec<(i64, Vec<u8>, Vec<u8>, K)> =
            postcard::from_bytes(bytes).map_err(|e| StateError::CorruptSnapshot {
                key_group,
                reason: format!("timers: {e}"),
            })?;
        for (time, key, namespace, typed) in entries {
            self.timers.insert(
                TimerKey {
                    time,
                    key_group,
                    key: key.into(),
                    namespace: namespace.into(),
                },
                typed,
            );
        }
        Ok(())
    }
}

/// The event-time and processing-time timers of a keyed operator, plus its current watermark.
#[derive(Debug)]
pub(crate) struct Timers<K> {
    pub(crate) event: TimerQueue<K>,
    pub(crate) processing: TimerQueue<K>,
    pub(crate) watermark: i64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            event: TimerQueue::default(),
            processing: TimerQueue::default(),
            watermark: i64::MIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(time: i64, key: u8) -> TimerKey {
        TimerKey {
            time,
            key_group: key as u16 % 4,
            key: vec![key].into(),
            namespace: Box::new([]),
        }
    }

    #[test]
    fn timers_fire_in_time_order_once() {
        let mut q = TimerQueue::<String>::default();
        q.register(timer(30, 1), &"a".to_owned());
        q.register(timer(10, 2), &"b".to_owned());
        q.register(timer(10, 2), &"b".to_owned());
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.pop_due(20).map(|(t, k)| (t.time, k)),
            Some((10, "b".to_owned()))
        );
        assert!(q.pop_due(20).is_none());
        assert_eq!(q.pop_due(30).map(|(t, _)| t.time), Some(30));
    }

    #[test]
    fn timers_round_trip_per_key_group() {
        let mut q = TimerQueue::<u8>::default();
        for k in 0..8u8 {
            q.register(timer(100 + k as i64, k), &k);
        }
        let mut restored = TimerQueue::<u8>::default();
        for kg in 0..4u16 {
            let bytes = q.snapshot_key_group(kg).unwrap();
            restored.restore_key_group(kg, &bytes).unwrap();
        }
        let mut fired = Vec::new();
        while let Some((t, k)) = restored.pop_due(i64::MAX) {
            fired.push((t.time, k));
        }
        assert_eq!(
            fired,
            (0..8u8).map(|k| (100 + k as i64, k)).collect::<Vec<_>>()
        );
    }
}
