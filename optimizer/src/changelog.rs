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

use crate::plan::{JoinKind, LogicalPlan, SetOpKind};

/// The changelog mode of `plan`'s output. In batch mode (every source bounded, results final)
/// everything is insert-only.
pub fn changelog_mode(plan: &LogicalPlan, batch: bool) -> ChangelogMode {
    if batch {
        return ChangelogMode::InsertOnly;
    }
    let inputs_insert_only = || {
        plan.inputs()
            .iter()
            .all(|i| changelog_mode(i, batch).is_insert_only())
    };
    let own = match plan {
        // An upsert source is normalised into retractions right where it is read.
        LogicalPlan::Scan(s) => match s.source.changelog_mode() {
            ChangelogMode::Upsert { .. } => ChangelogMode::Retract,
            mode => mode,
        },
        LogicalPlan::Values(_) | LogicalPlan::Sort(_) => ChangelogMode::InsertOnly,
        // A limit over an insert-only input passes rows through; over updates it consolidates
        // at the end (bounded input only).
        LogicalPlan::Limit(_) => ChangelogMode::InsertOnly,
        // A window aggregation's rows are final once the watermark passes their window.
        LogicalPlan::Aggregate(a) if crate::plan::window_aggregation(a).is_some() => {
            ChangelogMode::InsertOnly
        }
        LogicalPlan::Aggregate(_) => ChangelogMode::Retract,
        LogicalPlan::WindowTable(_) => ChangelogMode::InsertOnly,
        // Groups of a distinct never change once emitted, unless its input retracts.
        LogicalPlan::Distinct(_) => ChangelogMode::InsertOnly,
        // Matches of an interval join are final once the watermark passes their interval.
        LogicalPlan::Join(j) if j.interval.is_some() => ChangelogMode::InsertOnly,
        // So are a window join's, once the watermark passes their window.
        LogicalPlan::Join(j) if crate::plan::window_join(j).is_some() => ChangelogMode::InsertOnly,
        LogicalPlan::Join(j) => match j.kind {
            JoinKind::Inner | JoinKind::Semi => ChangelogMode::InsertOnly,
            _ => ChangelogMode::Retract,
        },
        LogicalPlan::SetOperation(s) => match s.kind {
            SetOpKind::Intersect => ChangelogMode::InsertOnly,
            SetOpKind::Except => ChangelogMode::Retract,
        },
        LogicalPlan::TopN(t) if crate::plan::window_top_n(t).is_some() => ChangelogMode::InsertOnly,
        LogicalPlan::TopN(_) => ChangelogMode::Retract,
        LogicalPlan::Deduplicate(d) if crate::plan::window_deduplicate(d).is_some() => {
            ChangelogMode::InsertOnly
        }
        LogicalPlan::Deduplicate(d) => match d.keep {
            crate::plan::KeepRow::First => ChangelogMode::InsertOnly,
            crate::plan::KeepRow::Last => ChangelogMode::Retract,
        },
        LogicalPlan::OverAggregate(_) => ChangelogMode::InsertOnly,
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Correlate(_)
        | LogicalPlan::SubqueryAlias(_) => ChangelogMode::InsertOnly,
    };
    match own {
        ChangelogMode::InsertOnly
            if !inputs_insert_only()
                && !matches!(plan, LogicalPlan::Sort(_) | LogicalPlan::Limit(_)) =>
        {
            ChangelogMode::Retract
        }
        other => other,
    }
}

/// The lowest node of `plan` whose output has updates although its inputs do not: the node an
/// error about an updating input should name.
pub fn updating_producer(plan: &LogicalPlan, batch: bool) -> Option<String> {
    if changelog_mode(plan, batch).is_insert_only() {
        return None;
    }
    for input in plan.inputs() {
        if let Some(found) = updating_producer(input, batch) {
            return Some(found);
        }
    }
    Some(plan.describe())
}
