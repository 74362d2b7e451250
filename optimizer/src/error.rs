//! Build-time errors of table pipelines: typed, naming the operation and what to do.

use arrow::datatypes::DataType;

/// Why a table operation could not be built or planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A column name that the input does not have.
    #[error("{operation}: unknown column {name:?}{}; the input has {available:?}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownColumn {
        /// The operation that referred to it (`select`, `filter`, ...).
        operation: String,
        /// The name as written.
        name: String,
        /// The closest existing name, when one is close.
        suggestion: Option<String>,
        /// The input's column names.
        available: Vec<String>,
    },
    /// A column name that several input columns have (after a join).
    #[error(
        "{operation}: column {name:?} is ambiguous: it could be any of {candidates:?}; qualify it (\"table.column\") or rename one side"
    )]
    AmbiguousColumn {
        /// The operation.
        operation: String,
        /// The name as written.
        name: String,
        /// The qualified names it could mean.
        candidates: Vec<String>,
    },
    /// An expression with arguments of the wrong types.
    #[error("{operation}: type mismatch in `{expr}`: {message}")]
    TypeMismatch {
        /// The operation.
        operation: String,
        /// The expression, as displayed.
        expr: String,
        /// What was expected and what was found, with both types.
        message: String,
    },
    /// An expression of the wrong type where a specific one is required.
    #[error("{operation}: `{expr}` has type {found} but {expected} is required")]
    WrongType {
        /// The operation.
        operation: String,
        /// The expression, as displayed.
        expr: String,
        /// The required type.
        expected: String,
        /// The expression's type.
        found: DataType,
    },
    /// An aggregate function where none is allowed (in a filter, a projection without
    /// `group_by`, or inside another aggregate).
    #[error(
        "{operation}: aggregate `{expr}` is not allowed here; aggregate in group_by(..).aggregate(..) or select(..) on an aggregated table"
    )]
    AggregateNotAllowed {
        /// The operation.
        operation: String,
        /// The aggregate expression.
        expr: String,
    },
    /// A selected column that is neither a group key nor inside an aggregate.
    #[error(
        "{operation}: column {column:?} is neither grouped nor aggregated; add it to group_by(..) or wrap it in an aggregate"
    )]
    NotGroupedOrAggregated {
        /// The operation.
        operation: String,
        /// The column.
        column: String,
    },
    /// Two output columns with the same name.
    #[error(
        "{operation}: duplicate output column {name:?}; give one of them another name with .alias(..)"
    )]
    DuplicateOutputName {
        /// The operation.
        operation: String,
        /// The repeated name.
        name: String,
    },
    /// An updating table where only insert-only input is accepted.
    #[error("{consumer} cannot consume updates, but {producer} produces them; {hint}")]
    UpdatingInput {
        /// The consumer (`to_data_stream`, a sink, an interval join, ...).
        consumer: String,
        /// The plan node that produces updates.
        producer: String,
        /// What to do instead.
        hint: String,
    },
    /// An updating table written to an upsert sink whose key does not identify its rows.
    #[error(
        "{sink} upserts on ({}), but the updating result of {producer} has no unique key within those columns (its keys: {}); key the sink on one of its keys, or group the query by the sink's key",
        key.join(", "),
        if upsert_keys.is_empty() { "none known".to_owned() } else { upsert_keys.iter().map(|k| format!("({})", k.join(", "))).collect::<Vec<_>>().join(", ") }
    )]
    SinkKeyMismatch {
        /// The sink.
        sink: String,
        /// The sink's key columns.
        key: Vec<String>,
        /// The unique keys known for the result, as column names.
        upsert_keys: Vec<Vec<String>>,
        /// The plan node that produces the updates.
        producer: String,
    },
    /// A table name the catalog does not have.
    #[error("unknown table {name:?}{}; the catalog has {available:?}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownTable {
        /// The name as written.
        name: String,
        /// The closest registered name.
        suggestion: Option<String>,
        /// The registered names.
        available: Vec<String>,
    },
    /// A table name registered twice.
    #[error("table {name:?} is already registered; drop it first or choose another name")]
    TableExists {
        /// The name.
        name: String,
    },
    /// Inputs whose schemas do not fit together (a union of different columns, a typed
    /// conversion to a struct of other fields).
    #[error("{operation}: {message}")]
    SchemaMismatch {
        /// The operation.
        operation: String,
        /// Which columns differ and how.
        message: String,
    },
    /// A call that is not valid for other reasons; the message says what to change.
    #[error("{operation}: {message}")]
    Invalid {
        /// The operation.
        operation: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Something the planner does not support yet.
    #[error("{operation}: {what} is not supported yet")]
    Unsupported {
        /// The operation.
        operation: String,
        /// What is missing.
        what: String,
    },
}

impl PlanError {
    /// An [`PlanError::Invalid`] for `operation`.
    pub fn invalid(operation: impl Into<String>, message: impl Into<String>) -> Self {
        PlanError::Invalid {
            operation: operation.into(),
            message: message.into(),
        }
    }

    /// A [`PlanError::Unsupported`] for `operation`.
    pub fn unsupported(operation: impl Into<String>, what: impl Into<String>) -> Self {
        PlanError::Unsupported {
            operation: operation.into(),
            what: what.into(),
        }
    }
}

/// The candidate closest to `name` by edit distance, when it is close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1) + usize::from(*d == 0))
        .min_by_key(|(d, c)| (*d, c.to_owned()))
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name() {
        let names = ["customer_id", "amount", "order_id"];
        assert_eq!(closest("amout", names), Some("amount".into()));
        assert_eq!(closest("Customer_ID", names), Some("customer_id".into()));
        assert_eq!(closest("zzz", names), None);
    }
}
