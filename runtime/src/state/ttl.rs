//! State time-to-live: entries not written (or read) for a while expire.
//!
//! TTL is measured in processing time as told to the backend by
//! [`KeyedStateBackend::set_current_time`](super::KeyedStateBackend::set_current_time), never
//! by reading the wall clock, so tests and replays are deterministic.

use std::time::Duration;

/// When an entry's last-access timestamp is refreshed, as Flink's `StateTtlConfig.UpdateType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlUpdateType {
    /// The timestamp is set when the entry is created and on every write (the default).
    #[default]
    OnCreateAndWrite,
    /// As [`OnCreateAndWrite`](Self::OnCreateAndWrite), and also on every successful read.
    OnReadAndWrite,
}

/// Time-to-live configuration for a state, as Flink's `StateTtlConfig`.
///
/// An entry whose last access is `ttl` or more in the past is expired: it reads as absent
/// (expired values are never returned), is removed when touched, is removed by
/// [`KeyedStateBackend::cleanup_expired`](super::KeyedStateBackend::cleanup_expired), and is
/// not written into snapshots. For a [`MapState`](super::MapState) every user key expires on
/// its own.
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::state::{StateTtlConfig, TtlUpdateType, ValueState};
///
/// let ttl = StateTtlConfig::new(Duration::from_secs(60)).update_type(TtlUpdateType::OnReadAndWrite);
/// let last_seen = ValueState::<i64>::new("last-seen").with_ttl(ttl);
/// assert_eq!(last_seen.name(), "last-seen");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtlConfig {
    ttl: Duration,
    update_type: TtlUpdateType,
}

impl StateTtlConfig {
    /// Entries expire `ttl` after their last write.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            update_type: TtlUpdateType::default(),
        }
    }

    /// Which accesses refresh an entry's timestamp. Default: [`TtlUpdateType::OnCreateAndWrite`].
    pub fn update_type(mut self, update_type: TtlUpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    /// The configured time-to-live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The configured update type.
    pub fn get_update_type(&self) -> TtlUpdateType {
        self.update_type
    }

    pub(crate) fn to_ttl(self) -> Ttl {
        Ttl {
            ttl_ms: i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX),
            refresh_on_read: self.update_type == TtlUpdateType::OnReadAndWrite,
        }
    }
}

/// The resolved form of [`StateTtlConfig`] kept by a table: integer milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ttl {
    pub(crate) ttl_ms: i64,
    pub(crate) refresh_on_read: bool,
}

impl Ttl {
    /// Whether an entry last accessed at `stamp` is expired at processing time `now`.
    #[inline]
    pub(crate) fn is_expired(self, stamp: i64, now: i64) -> bool {
        stamp.saturating_add(self.ttl_ms) <= now
    }
}

/// Whether an entry stamped `stamp` is expired under an optional TTL.
#[inline]
pub(crate) fn expired(ttl: Option<Ttl>, stamp: i64, now: i64) -> bool {
    matches!(ttl, Some(ttl) if ttl.is_expired(stamp, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_boundary_is_inclusive() {
        let ttl = StateTtlConfig::new(Duration::from_millis(10)).to_ttl();
        assert!(!ttl.is_expired(100, 109));
        assert!(ttl.is_expired(100, 110));
        assert!(!expired(None, 0, i64::MAX));
    }

    #[test]
    fn huge_ttl_saturates() {
        let ttl = StateTtlConfig::new(Duration::MAX).to_ttl();
        assert_eq!(ttl.ttl_ms, i64::MAX);
        assert!(!ttl.is_expired(5, i64::MAX - 1));
    }
}
