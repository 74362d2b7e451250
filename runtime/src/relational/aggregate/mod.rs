//! Group aggregation with retraction: Flink's `GroupAggregate` over Arrow changelog batches.
//!
//! A [`GroupAggregateOperator`] groups the rows of its input by the values of some columns and
//! folds each group's rows with [`AggregateCall`]s: `COUNT`, `COUNT(*)`, `SUM`, `AVG`, `MIN`,
//! `MAX` and user functions ([`AggregateUdf`]), each optionally `DISTINCT` and with a `FILTER`.
//! Rows with kind `+I`/`+U` are accumulated, `-U`/`-D` retracted.
//!
//! Built-in aggregates are vectorised: the group keys of a batch are encoded once, mapped to
//! dense group indices with one hash-table probe per row, and every aggregate then updates
//! columnar per-group state (`Vec<i128>` sums, `Vec<i64>` counts, ...) in one typed loop per
//! batch. User functions go through their row-wise [`Accumulator`](super::Accumulator).
//!
//! Modules:
//! - `accumulator`: the columnar per-group accumulators of the built-in aggregates, the
//!   `DISTINCT` wrapper and the adapter for user functions.
//! - `groups`: the table from encoded group keys to dense group indices.
//! - `operator`: [`GroupAggregateOperator`] itself.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Int64Type, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::aggregate::{
//!     AggregateCall, AggregateKind, EmitMode, GroupAggregateOperator, GroupAggregateSpec,
//! };
//! use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext, RowKind};
//!
//! let input = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Utf8, false),
//!     Field::new("amount", DataType::Int64, true),
//! ]));
//! let output = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Utf8, false),
//!     Field::new("total", DataType::Int64, true),
//! ]));
//! let spec = GroupAggregateSpec {
//!     group_columns: vec![0],
//!     aggregates: vec![AggregateCall::new(
//!         AggregateKind::Sum,
//!         [1],
//!         Field::new("total", DataType::Int64, true),
//!     )],
//!     input_schema: Arc::clone(&input),
//!     output_schema: output,
//!     emit: EmitMode::Changelog,
//! };
//! let mut op = GroupAggregateOperator::new(spec)?;
//! let mut out = RecordingOutput::default();
//! op.open(&OperatorContext::new("agg", 0, 1, 128)).unwrap();
//! for amounts in [[3, 4], [5, 6]] {
//!     let batch = RecordBatch::try_new(
//!         Arc::clone(&input),
//!         vec![
//!             Arc::new(StringArray::from(vec!["ada", "ada"])),
//!             Arc::new(Int64Array::from(amounts.to_vec())),
//!         ],
//!     )?;
//!     op.process_batch(ChangelogBatch::insert_only(batch), &mut out).unwrap();
//! }
//! // +I[ada, 7], then -U[ada, 7] +U[ada, 18]
//! let last = &out.batches[1];
//! assert_eq!(last.row_kind(0), RowKind::UpdateBefore);
//! assert_eq!(last.row_kind(1), RowKind::UpdateAfter);
//! assert_eq!(last.data().column(1).as_primitive::<Int64Type>().value(1), 18);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

pub(crate) mod accumulator;
pub(crate) mod groups;
pub(crate) mod operator;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::error::ArrowError;

use super::function::AggregateUdf;
use crate::batch::arrow::ChangelogError;
use crate::error::BoxError;
use crate::keys::KeyError;

pub use operator::GroupAggregateOperator;

pub(crate) use accumulator::{
    AccumulatorError, AccumulatorState, GroupsAccumulator, create_accumulator,
};

/// Which aggregate function an [`AggregateCall`] computes.
#[derive(Debug, Clone)]
pub enum AggregateKind {
    /// `COUNT(x)`: the number of rows whose first argument is not null. Never null.
    Count,
    /// `COUNT(*)`: the number of rows. Never null.
    CountStar,
    /// `SUM(x)`: integers sum to `BIGINT` (unsigned to `UInt64`), floats to `DOUBLE`,
    /// `DECIMAL(p, s)` to `DECIMAL(38, s)`. An integer overflow fails the job.
    Sum,
    /// `AVG(x)`: numbers average to `DOUBLE`; `DECIMAL(p, s)` to
    /// `DECIMAL(min(p + 4, 38), min(s + 4, 38))`, rounded half away from zero.
    Avg,
    /// `MIN(x)` of any orderable type (numbers, strings, booleans, dates, times, timestamps).
    Min,
    /// `MAX(x)` of any orderable type.
    Max,
    /// A user-defined aggregate function, fed through its row-wise accumulator. Unlike the
    /// built-ins it also sees rows whose arguments are null, as in Flink.
    User(Arc<dyn AggregateUdf>),
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggregateKind::Count | AggregateKind::CountStar => "COUNT",
            AggregateKind::Sum => "SUM",
            AggregateKind::Avg => "AVG",
            AggregateKind::Min => "MIN",
            AggregateKind::Max => "MAX",
            AggregateKind::User(udf) => udf.name(),
        })
    }
}

/// One aggregate of a [`GroupAggregateSpec`]: the function, its arguments and its result column.
///
/// Aggregates that see no (non-null) value yield null, except the counts, which yield 0.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    /// The function.
    pub kind: AggregateKind,
    /// Positions of the argument columns in the input.
    pub args: Vec<usize>,
    /// Whether each distinct argument value counts once per group (`SUM(DISTINCT x)`).
    pub distinct: bool,
    /// Position of a `BOOLEAN` input column: only rows where it is true are aggregated
    /// (`COUNT(*) FILTER (WHERE ...)`).
    pub filter: Option<usize>,
    /// The result column: name, type and nullability, as the planner decided them.
    pub output: Field,
}

impl AggregateCall {
    /// A call of `kind` on the input columns `args`, producing `output`; neither distinct nor
    /// filtered.
    pub fn new(kind: AggregateKind, args: impl IntoIterator<Item = usize>, output: Field) -> Self {
        AggregateCall {
            kind,
            args: args.into_iter().collect(),
            distinct: false,
            filter: None,
            output,
        }
    }

    /// The same call over distinct argument values.
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// The same call aggregating only the rows where the `BOOLEAN` column `column` is true.
    pub fn with_filter(mut self, column: usize) -> Self {
        self.filter = Some(column);
        self
    }
}

/// When a [`GroupAggregateOperator`] emits results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// Streaming: after each input batch, emit the changes of the groups it touched (`+I` for a
    /// new group, `-U`/`+U` for a changed result, `-D` for a group whose rows were all
    /// retracted). A global aggregate (no group columns) emits nothing until its first row, as
    /// in Flink; if it has no row when a bounded input ends (no rows, or all retracted), it
    /// emits the row of an empty input then, so the consolidated changelog equals the batch
    /// result.
    Changelog,
    /// Bounded input: emit each group's final result once, insert-only, at the end of input.
    /// A global aggregate emits exactly one row, even for an empty input.
    Final,
}

/// What a [`GroupAggregateOperator`] computes.
#[derive(Debug, Clone)]
pub struct GroupAggregateSpec {
    /// Positions of the group-key columns in the input. Empty for a global aggregate.
    pub group_columns: Vec<usize>,
    /// The aggregates, in output order.
    pub aggregates: Vec<AggregateCall>,
    /// The schema of the input batches.
    pub input_schema: SchemaRef,
    /// The schema of the output: the group columns, then one column per aggregate.
    pub output_schema: SchemaRef,
    /// When results are emitted.
    pub emit: EmitMode,
}

/// Why a group aggregation cannot be built or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// A group, argument or filter column position beyond the input's columns.
    #[error(
        "{role} column {column} does not exist: the input has {} columns {inputs:?}; use a position below {}",
        inputs.len(),
        inputs.len()
    )]
    NoSuchColumn {
        /// What the column was for (`group`, `argument of SUM(..) AS total`, ...).
        role: String,
        /// The position asked for.
        column: usize,
        /// The input's column names.
        inputs: Vec<String>,
    },
    /// An aggregate got another number of arguments than it takes.
    #[error("aggregate {aggregate} takes {expected} argument(s) but was given {found}")]
    ArgumentCount {
        /// The aggregate, e.g. `SUM(amount) AS total`.
        aggregate: String,
        /// How many it takes.
        expected: usize,
        /// How many it got.
        found: usize,
    },
    /// An aggregate does not accept its argument's type.
    #[error("aggregate {aggregate} does not accept arguments of type {data_type}")]
    UnsupportedArgument {
        /// The aggregate.
        aggregate: String,
        /// The argument type.
        data_type: DataType,
    },
    /// A `FILTER` column that is not `BOOLEAN`.
    #[error("the filter of aggregate {aggregate} is of type {data_type}; it must be BOOLEAN")]
    FilterNotBoolean {
        /// The aggregate.
        aggregate: String,
        /// The filter column's type.
        data_type: DataType,
    },
    /// `DISTINCT` on an aggregate without arguments (`COUNT(DISTINCT *)`).
    #[error("aggregate {aggregate} is DISTINCT but has no argument; DISTINCT needs a column")]
    DistinctWithoutArgument {
        /// The aggregate.
        aggregate: String,
    },
    /// The planner's result type differs from the one the function produces.
    #[error(
        "aggregate {aggregate} produces {expected}, but its output column is declared {declared}"
    )]
    OutputType {
        /// The aggregate.
        aggregate: String,
        /// The type the function produces for its arguments.
        expected: DataType,
        /// The type of its output field.
        declared: DataType,
    },
    /// The output schema does not list the group columns then the aggregates.
    #[error(
        "the output schema has {found} for column {position} but the aggregation produces {expected}; list the group columns, then the aggregates"
    )]
    OutputSchema {
        /// The position in the output schema.
        position: usize,
        /// What the aggregation produces there (name: type), or `nothing`.
        expected: String,
        /// What the schema declares there, or `nothing`.
        found: String,
    },
    /// An input batch whose column differs from the input schema.
    #[error(
        "input column {column} is {found:?} but the aggregation was planned for {expected}; the input does not match the plan"
    )]
    InputType {
        /// The column position.
        column: usize,
        /// The type in the input schema.
        expected: DataType,
        /// The type in the batch, `None` when the batch lacks the column.
        found: Option<DataType>,
    },
    /// A group column's type cannot be a key.
    #[error("group column {column} cannot be a group key: {source}")]
    UnsupportedGroupKey {
        /// The column's name.
        column: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A result does not fit its type.
    #[error(
        "aggregate {aggregate} overflowed its result type {data_type}; cast the argument to a wider type (e.g. DECIMAL(38, s))"
    )]
    Overflow {
        /// The aggregate.
        aggregate: String,
        /// The result type.
        data_type: DataType,
    },
    /// A retraction of a value the aggregate never accumulated.
    #[error(
        "aggregate {aggregate} was asked to retract a value it never accumulated for group {group}; the input changelog retracts a row it did not insert"
    )]
    RetractedUnknownValue {
        /// The aggregate.
        aggregate: String,
        /// The group key, as far as it is known.
        group: String,
    },
    /// A retraction of a row in a group that has no rows.
    #[error(
        "a row was retracted from group {group}, which has no rows; the input changelog retracts a row it did not insert"
    )]
    RetractedUnknownRow {
        /// The group key.
        group: String,
    },
    /// A user aggregate function failed.
    #[error("aggregate {aggregate} failed: {source}")]
    User {
        /// The aggregate.
        aggregate: String,
        /// What the function reported.
        #[source]
        source: BoxError,
    },
    /// A snapshot could not be written or read back.
    #[error("group aggregate state of key group {key_group} is unreadable: {reason}")]
    State {
        /// The key group.
        key_group: u16,
        /// Why.
        reason: String,
    },
    /// An Arrow kernel failed: an internal error.
    #[error("internal error in group aggregation: {0}")]
    Arrow(#[from] ArrowError),
    /// Encoding group keys failed.
    #[error("cannot encode group keys: {0}")]
    Key(#[from] KeyError),
    /// An output batch could not be built.
    #[error("internal error in group aggregation: {0}")]
    Changelog(#[from] ChangelogError),
}
