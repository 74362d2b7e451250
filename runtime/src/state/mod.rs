//! Keyed state, as Flink's: state scoped to the current key (and a namespace, e.g. a window),
//! kept per key group as live Rust values and serialized only when snapshotting.
//!
//! - [`backend`]: [`KeyedStateBackend`], one per keyed operator subtask; per-key-group
//!   snapshot and restore, TTL cleanup, iteration over entries.
//! - [`value`], [`list`], [`map`], [`reducing`], [`aggregating`]: the state handles user
//!   functions keep as fields; they resolve their table by name on first use.
//! - [`ttl`]: [`StateTtlConfig`], time-to-live measured in processing time.
//! - [`batch_table`]: [`BatchKeyedTable`], encoded key -> value for vectorised operators, read
//!   and written a batch at a time.
//!
//! ```
//! use rivulet_runtime::state::{KeyedStateBackend, MapState, ValueState};
//!
//! let mut backend = KeyedStateBackend::new(0, 127);
//! let count = ValueState::<u64>::new("count");
//! let per_page = MapState::<String, u64>::new("per-page");
//!
//! for (user, key_group, page) in [(&b"ann"[..], 4, "home"), (b"bob", 9, "cart"), (b"ann", 4, "home")] {
//!     backend.set_current_key(user, key_group);
//!     count.modify(&mut backend, || 0, |c| *c += 1)?;
//!     let seen = per_page.get(&mut backend, &page.to_owned())?.unwrap_or(0);
//!     per_page.put(&mut backend, page.to_owned(), seen + 1)?;
//! }
//! backend.set_current_key(b"ann", 4);
//! assert_eq!(count.value(&mut backend)?, Some(2));
//! assert_eq!(per_page.get(&mut backend, &"home".to_owned())?, Some(2));
//! # Ok::<(), rivulet_runtime::state::StateError>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod aggregating;
pub mod backend;
pub mod batch_table;
pub mod list;
pub mod map;
pub mod reducing;
mod table;
pub mod ttl;
pub mod value;

pub use aggregating::{AggregateFunction, AggregatingState};
pub use backend::{BackendCapture, KeyedStateAccess, KeyedStateBackend};
pub use batch_table::{BatchKeyedTable, EncodedKeys, OffsetKeys};
pub use list::ListState;
pub use map::MapState;
pub use reducing::ReducingState;
pub use ttl::{StateTtlConfig, TtlUpdateType};
pub use value::ValueState;

/// A key group: the unit in which keyed state is partitioned, snapshotted and redistributed.
pub(crate) use crate::keys::KeyGroup;

/// What keyed state can hold: live, cloneable values that serde can serialize for snapshots.
///
/// Implemented for every type with these bounds, e.g. anything with
/// `#[derive(Clone, Serialize, Deserialize)]`.
pub trait StateValue: Clone + Serialize + DeserializeOwned + Send + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + Send + 'static> StateValue for T {}

/// Errors of keyed state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A state name was registered with one type and accessed with another.
    #[error(
        "state {state:?} is registered as {registered} but accessed as {requested}; give the new state another name or use the registered type"
    )]
    TypeMismatch {
        /// The state's name.
        state: String,
        /// The type it was registered with, e.g. `ValueState<u64>`.
        registered: String,
        /// The type of the failed access.
        requested: String,
    },
    /// State was accessed before any key was set.
    #[error(
        "state {state:?} accessed without a current key; keyed state can only be used on a keyed stream, after set_current_key"
    )]
    NoCurrentKey {
        /// The state's name.
        state: String,
    },
    /// A key group outside the backend's range was used.
    #[error(
        "key group {key_group} is not owned by this subtask, which owns key groups {start}..={end}"
    )]
    KeyGroupNotOwned {
        /// The key group used.
        key_group: KeyGroup,
        /// First owned key group.
        start: KeyGroup,
        /// Last owned key group.
        end: KeyGroup,
    },
    /// No state of this name is registered or restored.
    #[error("no state named {state:?} is registered")]
    UnknownState {
        /// The state's name.
        state: String,
    },
    /// The state was restored but no handle has registered it yet, so its type is unknown.
    #[error(
        "state {state:?} was restored but not registered yet; call `register` on its handle (e.g. in open) first"
    )]
    NotRegistered {
        /// The state's name.
        state: String,
    },
    /// A value could not be serialized into a snapshot.
    #[error("cannot serialize state {state:?} of key group {key_group}: {source}")]
    Serialize {
        /// The state's name.
        state: String,
        /// The key group being snapshotted.
        key_group: KeyGroup,
        /// The serializer's error.
        source: postcard::Error,
    },
    /// A state's snapshot could not be read with the type it is registered with.
    #[error(
        "cannot restore state {state:?} of key group {key_group}: {source}; was it written with another value type?"
    )]
    Deserialize {
        /// The state's name.
        state: String,
        /// The key group being restored.
        key_group: KeyGroup,
        /// The deserializer's error.
        source: postcard::Error,
    },
    /// Snapshot bytes are not a key group snapshot.
    #[error("corrupt snapshot of key group {key_group}: {reason}")]
    CorruptSnapshot {
        /// The key group being restored.
        key_group: KeyGroup,
        /// What is wrong.
        reason: String,
    },
    /// The columns of a batch call have different lengths.
    #[error("batch columns differ in length: {keys} keys but {other} {column}")]
    BatchLengthMismatch {
        /// Number of keys.
        keys: usize,
        /// The other column's name, e.g. `key groups`.
        column: &'static str,
        /// The other column's length.
        other: usize,
    },
    /// Offsets given to [`OffsetKeys`] do not delimit keys in the byte buffer.
    #[error(
        "key offsets must be non-decreasing and end within the {bytes} key bytes, but they end at {end}"
    )]
    InvalidKeyOffsets {
        /// Where the offsets end (or the first decreasing offset).
        end: usize,
        /// Length of the byte buffer.
        bytes: usize,
    },
    /// A bug in rivulet, not in the user program.
    #[error("internal state error: {0}; this is a bug in rivulet")]
    Internal(String),
}

#[cfg(test)]
mod tests;
