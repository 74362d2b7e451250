//! Changelog modes: which row kinds a plan node's output may contain.

use std::fmt;

/// Which row kinds a stream may contain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangelogMode {
    /// Only `+I`: every row is final.
    InsertOnly,
    /// `+I`, `-U`, `+U`, `-D`: updates as retraction pairs (the form inside a plan).
    Retract,
    /// `+I`, `+U`, `-D` keyed by these columns: an update replaces the row with the same key.
    Upsert {
        /// The key's column positions.
        key: Vec<usize>,
    },
}

impl ChangelogMode {
    /// Whether the stream holds only inserts.
    pub fn is_insert_only(&self) -> bool {
        matches!(self, ChangelogMode::InsertOnly)
    }
}

impl fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangelogMode::InsertOnly => f.write_str("[I]"),
            ChangelogMode::Retract => f.write_str("[I,UB,UA,D]"),
            ChangelogMode::Upsert { key } => write!(f, "[I,UA,D] key={key:?}"),
        }
    }
}
