//! Window table-valued functions and the operators that sit on them: Flink's `TUMBLE`, `HOP`,
//! `CUMULATE` and `SESSION` windows over an event-time column, in the relational plane.
//!
//! A [`WindowTvf`] says which windows `[start, end)` a timestamp belongs to. On it sit:
//!
//! - [`WindowAssignOperator`]: the window TVF itself, which appends `window_start`,
//!   `window_end` and `window_time` (= `window_end - 1`) to each row (one row per window for
//!   `HOP` and `CUMULATE`).
//! - [`WindowAggregateOperator`]: `GROUP BY window_start, window_end, keys` over a window TVF,
//!   one final insert-only row per key and window once the watermark passes the window's end.
//!   Session windows merge per key.
//!   [`LocalWindowAggregateOperator`] is the local half of the two-phase form.
//! - [`WindowRankOperator`]: window Top-N, and window deduplication as its `n = 1` case.
//! - [`WindowJoinOperator`]: the join of two windowed inputs on equal window bounds and keys.
//!
//! All of them are event-time operators: a window `[start, end)` fires when the watermark
//! reaches `end - 1`, emits its final result insert-only and is purged. Rows that arrive for a
//! window that already fired are late: they are dropped and counted with
//! [`OperatorContext::count_late_records`](crate::OperatorContext::count_late_records). Event
//! time is `i64` milliseconds; time and window columns may be `Timestamp(Millisecond, _)` or
//! `Int64` milliseconds, and produced window columns are `Timestamp(Millisecond, _)`.
//!
//! ```
//! use rivulet_runtime::relational::window::WindowTvf;
//!
//! let hop = WindowTvf::hop(5, 10)?; // every 5 ms, 10 ms long
//! let mut windows = Vec::new();
//! hop.assign(-3, &mut windows);
//! assert_eq!(windows, vec![(-5, 5), (-10, 0)]);
//! # Ok::<(), rivulet_runtime::relational::window::WindowError>(())
//! ```

mod aggregate;
mod assign;
mod buffer;
mod join;
mod rank;
mod slots;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Int64Type, Schema, TimeUnit, TimestampMillisecondType};
use arrow::error::ArrowError;

use super::aggregate::AggregateError;
use super::expr::EvalError;
use super::join::JoinError;
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::keys::{KeyError, KeyGroup};
use crate::window::TimeWindow;

pub use aggregate::{LocalWindowAggregateOperator, WindowAggregateOperator, WindowAggregateSpec};
pub use assign::WindowAssignOperator;
pub use join::{WindowJoinOperator, WindowJoinSpec};
pub use rank::{RankSortKey, WindowRankOperator, WindowRankSpec};

/// A window table-valued function: which windows `[start, end)` of event time a row belongs to.
/// Durations are milliseconds.
///
/// Window starts follow Flink's formula, `start = t - (t - offset) mod size` with a modulo that
/// is never negative, so timestamps before 1970 get the same windows as later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowTvf {
    /// `TUMBLE`: windows of `size`, back to back; each row belongs to one.
    Tumble {
        /// The window length.
        size: i64,
        /// Shifts the window starts by this much (e.g. a time zone offset).
        offset: i64,
    },
    /// `HOP`: windows of `size` starting every `slide`; each row belongs to `size / slide`.
    Hop {
        /// How far apart window starts are.
        slide: i64,
        /// The window length, a multiple of `slide`.
        size: i64,
        /// Shifts the window starts by this much.
        offset: i64,
    },
    /// `CUMULATE`: windows of `max_size` back to back, each also emitted as it grows: for a
    /// window starting at `s`, the windows `[s, s + k * step)` for `k = 1 ..= max_size / step`.
    Cumulate {
        /// How much each emitted window grows.
        step: i64,
        /// The largest window, a multiple of `step`.
        max_size: i64,
        /// Shifts the window starts by this much.
        offset: i64,
    },
    /// `SESSION`: per key, rows less than `gap` apart share a window
    /// `[first row, last row + gap)`. Only window aggregation accepts it.
    Session {
        /// The inactivity gap that closes a session.
        gap: i64,
    },
}

impl WindowTvf {
    /// `TUMBLE` windows of `size` ms.
    ///
    /// # Errors
    ///
    /// When `size` is not positive.
    pub fn tumble(size: i64) -> Result<Self, WindowError> {
        WindowTvf::Tumble { size, offset: 0 }.validated()
    }

    /// `HOP` windows of `size` ms every `slide` ms.
    ///
    /// # Errors
    ///
    /// When a duration is not positive or `size` is not a multiple of `slide`.
    pub fn hop(slide: i64, size: i64) -> Result<Self, WindowError> {
        WindowTvf::Hop {
            slide,
            size,
            offset: 0,
        }
        .validated()
    }

    /// `CUMULATE` windows growing by `step` ms up to `max_size` ms.
    ///
    /// # Errors
    ///
    /// When a duration is not positive or `max_size` is not a multiple of `step`.
    pub fn cumulate(step: i64, max_size: i64) -> Result<Self, WindowError> {
        WindowTvf::Cumulate {
            step,
            max_size,
            offset: 0,
        }
        .validated()
    }

    /// `SESSION` windows closed by `gap` ms without rows.
    ///
    /// # Errors
    ///
    /// When `gap` is not positive.
    pub fn session(gap: i64) -> Result<Self, WindowError> {
        WindowTvf::Session { gap }.validated()
    }

    /// The same windows shifted by `offset` ms; sessions have no offset and stay as they are.
    /// Default: 0.
    pub fn with_offset(self, offset: i64) -> Self {
        match self {
            WindowTvf::Tumble { size, .. } => WindowTvf::Tumble { size, offset },
            WindowTvf::Hop { slide, size, .. } => WindowTvf::Hop {
                slide,
                size,
                offset,
            },
            WindowTvf::Cumulate { step, max_size, .. } => WindowTvf::Cumulate {
                step,
                max_size,
                offset,
            },
            session @ WindowTvf::Session { .. } => session,
        }
    }

    /// Checks the durations: all positive, a hop's size a multiple of its slide and a cumulate's
    /// maximum size a multiple of its step, as Flink requires.
    ///
    /// # Errors
    ///
    /// [`WindowError::NonPositiveDuration`] or [`WindowError::NotAMultiple`].
    pub fn validate(&self) -> Result<(), WindowError> {
        let positive = |what: &'static str, value: i64| {
            if value > 0 {
                Ok(())
            } else {
                Err(WindowError::NonPositiveDuration { what, value })
            }
        };
        let multiple = |window: &'static str, of: i64, of_what: &'static str, value: i64| {
            if value % of == 0 {
                Ok(())
            } else {
                Err(WindowError::NotAMultiple {
                    window,
                    size: value,
                    unit: of,
                    unit_name: of_what,
                })
            }
        };
        match *self {
            WindowTvf::Tumble { size, .. } => positive("the size of a TUMBLE window", size),
            WindowTvf::Hop { slide, size, .. } => {
                positive("the slide of a HOP window", slide)?;
                positive("the size of a HOP window", size)?;
                multiple("HOP", slide, "slide", size)
            }
            WindowTvf::Cumulate { step, max_size, .. } => {
                positive("the step of a CUMULATE window", step)?;
                positive("the max size of a CUMULATE window", max_size)?;
                multiple("CUMULATE", step, "step", max_size)
            }
            WindowTvf::Session { gap } => positive("the gap of a SESSION window", gap),
        }
    }

    fn validated(self) -> Result<Self, WindowError> {
        self.validate()?;
        Ok(self)
    }

    /// Whether windows of a key merge as rows arrive (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, WindowTvf::Session { .. })
    }

    /// Appends the windows `(start, end)` containing `timestamp`; for a session, the window the
    /// row opens on its own, `[timestamp, timestamp + gap)`. Assumes valid durations.
    ///
    /// Hop windows come latest start first; cumulate windows smallest first.
    pub fn assign(&self, timestamp: i64, out: &mut Vec<(i64, i64)>) {
        match *self {
            WindowTvf::Tumble { size, offset } => {
                let start = TimeWindow::window_start(timestamp, offset, size);
                out.push((start, start.saturating_add(size)));
            }
            WindowTvf::Hop {
                slide,
                size,
                offset,
            } => {
                let mut start = TimeWindow::window_start(timestamp, offset, slide);
                let lowest = timestamp.saturating_sub(size);
                // The latest window always contains the time; earlier ones while they reach it.
                loop {
                    out.push((start, start.saturating_add(size)));
                    match start.checked_sub(slide) {
                        Some(previous) if previous > lowest => start = previous,
                        _ => break,
                    }
                }
            }
            WindowTvf::Cumulate {
                step,
                max_size,
                offset,
            } => {
                let start = TimeWindow::window_start(timestamp, offset, max_size);
                let first_end =
                    TimeWindow::window_start(timestamp, offset, step).saturating_add(step);
                let last_end = start.saturating_add(max_size);
                let mut end = first_end;
                loop {
                    out.push((start, end));
                    if end >= last_end {
                        break;
                    }
                    end = end.saturating_add(step);
                }
            }
            WindowTvf::Session { gap } => out.push((timestamp, timestamp.saturating_add(gap))),
        }
    }

    /// The end of the first window containing `timestamp` to fire: once the watermark reaches
    /// it minus one, a row with this timestamp is late (Flink drops a row whose earliest window
    /// already fired, even if later windows of a hop or cumulate are still open). For a session,
    /// the end of the window the row opens on its own.
    pub fn first_end(&self, timestamp: i64) -> i64 {
        let (offset, unit) = match *self {
            WindowTvf::Tumble { size, offset } => (offset, size),
            WindowTvf::Hop { slide, offset, .. } => (offset, slide),
            WindowTvf::Cumulate { step, offset, .. } => (offset, step),
            WindowTvf::Session { gap } => return timestamp.saturating_add(gap),
        };
        TimeWindow::window_start(timestamp, offset, unit).saturating_add(unit)
    }
}

/// Where the `window_start` and `window_end` columns of a windowed input are (e.g. the output of
/// a [`WindowAssignOperator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowColumns {
    /// Position of `window_start`.
    pub start: usize,
    /// Position of `window_end`.
    pub end: usize,
}

impl WindowColumns {
    /// The window columns at `start` and `end`.
    pub fn new(start: usize, end: usize) -> Self {
        WindowColumns { start, end }
    }

    /// Checks that both columns exist and hold millisecond times.
    fn check(&self, schema: &Schema) -> Result<(), WindowError> {
        check_time_column(schema, "window start", self.start)?;
        check_time_column(schema, "window end", self.end)?;
        Ok(())
    }
}

/// Why a window operator cannot be built or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// A window duration is zero or negative.
    #[error("{what} is {value} ms; give a positive duration")]
    NonPositiveDuration {
        /// Which duration, e.g. `the size of a TUMBLE window`.
        what: &'static str,
        /// The value given.
        value: i64,
    },
    /// A hop size or cumulate maximum size that is not a multiple of the slide or step.
    #[error(
        "a {window} window of size {size} ms is not a whole number of its {unit_name} ({unit} ms); use a size that is a multiple of the {unit_name}"
    )]
    NotAMultiple {
        /// `HOP` or `CUMULATE`.
        window: &'static str,
        /// The size.
        size: i64,
        /// The slide or step.
        unit: i64,
        /// `slide` or `step`.
        unit_name: &'static str,
    },
    /// Session windows asked of an operator that cannot take them.
    #[error(
        "{operator} does not take SESSION windows; use TUMBLE, HOP or CUMULATE, or aggregate over the session with a window aggregate"
    )]
    SessionNotSupported {
        /// The operator.
        operator: &'static str,
    },
    /// A column position beyond the input's columns.
    #[error(
        "{role} column {column} does not exist: the input has {} columns {columns:?}; use a position below {}",
        columns.len(),
        columns.len()
    )]
    NoSuchColumn {
        /// What the column was for, e.g. `time`.
        role: String,
        /// The position asked for.
        column: usize,
        /// The input's column names.
        columns: Vec<String>,
    },
    /// A time or window column that is neither a millisecond timestamp nor `Int64`.
    #[error(
        "{role} column {column:?} is of type {found}; it must be Timestamp(Millisecond, _) or Int64 milliseconds, so cast it"
    )]
    TimeColumnType {
        /// What the column was for.
        role: &'static str,
        /// The column's name.
        column: String,
        /// Its type.
        found: DataType,
    },
    /// A row without event time.
    #[error(
        "{role} column {column:?} is null in row {row}; window operators need a time in every row, so filter out or fill null times before the window"
    )]
    NullTime {
        /// What the column is for.
        role: &'static str,
        /// The column's name.
        column: String,
        /// The row of the batch.
        row: usize,
    },
    /// An update or delete reached an operator that takes only inserts.
    #[error(
        "{operator} takes insert-only input but got a {kind} row; window operators cannot consume updates, so window the stream before aggregating or joining it"
    )]
    NotInsertOnly {
        /// The operator.
        operator: &'static str,
        /// The first row kind other than `+I`.
        kind: RowKind,
    },
    /// An input batch whose column type differs from the planned input schema.
    #[error(
        "input column {column} is {found:?} but {operator} was planned for {expected}; the input does not match the plan"
    )]
    InputType {
        /// The operator.
        operator: &'static str,
        /// The column position.
        column: usize,
        /// The planned type.
        expected: DataType,
        /// The type in the batch, `None` when the batch lacks the column.
        found: Option<DataType>,
    },
    /// The output schema does not list what the operator produces.
    #[error(
        "the output schema of {operator} has {found} for column {position} but the operator produces {expected}; {hint}"
    )]
    OutputSchema {
        /// The operator.
        operator: &'static str,
        /// The position in the output schema.
        position: usize,
        /// What the operator produces there (name: type), or `nothing`.
        expected: String,
        /// What the schema declares there, or `nothing`.
        found: String,
        /// How the schema should be laid out.
        hint: &'static str,
    },
    /// A `DISTINCT` aggregate over session windows, whose accumulators cannot be merged.
    #[error(
        "aggregate {aggregate} is DISTINCT, which SESSION windows cannot merge yet; drop DISTINCT or use TUMBLE, HOP or CUMULATE"
    )]
    DistinctSession {
        /// The aggregate.
        aggregate: String,
    },
    /// A `DISTINCT` aggregate in a two-phase aggregation, whose partial states cannot merge.
    #[error(
        "aggregate {aggregate} is DISTINCT, whose partial results cannot be merged; aggregate in one phase"
    )]
    DistinctTwoPhase {
        /// The aggregate.
        aggregate: String,
    },
    /// A Top-N with `n = 0`.
    #[error("a window Top-N must keep at least one row per window; give n >= 1")]
    ZeroRank,
    /// The key columns of the two inputs of a window join do not pair up.
    #[error(
        "the window join has {left} left and {right} right {what}; give them pairwise, one right per left"
    )]
    JoinColumnCount {
        /// `key columns` or `window columns`.
        what: &'static str,
        /// How many on the left.
        left: usize,
        /// How many on the right.
        right: usize,
    },
    /// An aggregate could not be built or failed.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// The join within windows could not be built or failed.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A key could not be encoded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A filter or expression failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A snapshot could not be written or read back.
    #[error(
        "window state of key group {key_group} is unreadable: {reason}; restore from a checkpoint taken by the same operator"
    )]
    State {
        /// The key group.
        key_group: KeyGroup,
        /// Why.
        reason: String,
    },
    /// An Arrow kernel failed: an internal error.
    #[error("internal error in a window operator while {action}: {source}")]
    Arrow {
        /// What the operator was doing.
        action: &'static str,
        /// The kernel's error.
        #[source]
        source: ArrowError,
    },
}

impl WindowError {
    fn arrow(action: &'static str) -> impl FnOnce(ArrowError) -> WindowError {
        move |source| WindowError::Arrow { action, source }
    }
}

/// The input column at `column`, or an error naming its role.
fn column_field<'a>(
    schema: &'a Schema,
    role: &str,
    column: usize,
) -> Result<&'a arrow::datatypes::Field, WindowError> {
    schema
        .fields()
        .get(column)
        .map(|f| f.as_ref())
        .ok_or_else(|| WindowError::NoSuchColumn {
            role: role.to_owned(),
            column,
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
}

/// Checks that `column` of `schema` can hold event time, and returns its name.
fn check_time_column(
    schema: &Schema,
    role: &'static str,
    column: usize,
) -> Result<String, WindowError> {
    let field = column_field(schema, role, column)?;
    match field.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => Ok(field.name().clone()),
        other => Err(WindowError::TimeColumnType {
            role,
            column: field.name().clone(),
            found: other.clone(),
        }),
    }
}

/// The time zone a produced window column carries: the time column's, none for `Int64`.
fn time_zone(schema: &Schema, column: usize) -> Option<Arc<str>> {
    match schema.field(column).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    }
}

/// The event times of `column`, which must have no nulls.
fn time_values(
    batch: &RecordBatch,
    role: &'static str,
    column: usize,
) -> Result<ScalarBuffer<i64>, WindowError> {
    let array = batch
        .columns()
        .get(column)
        .ok_or_else(|| WindowError::NoSuchColumn {
            role: role.to_owned(),
            column,
            columns: batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        })?;
    let name = || batch.schema_ref().field(column).name().clone();
    if let Some(nulls) = array.logical_nulls().filter(|n| n.null_count() > 0) {
        let row = (0..array.len()).find(|&i| nulls.is_null(i)).unwrap_or(0);
        return Err(WindowError::NullTime {
            role,
            column: name(),
            row,
        });
    }
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(array
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .clone()),
        DataType::Int64 => Ok(array.as_primitive::<Int64Type>().values().clone()),
        other => Err(WindowError::TimeColumnType {
            role,
            column: name(),
            found: other.clone(),
        }),
    }
}

/// Fails unless `data` has the column types of `schema`.
fn check_columns(
    data: &RecordBatch,
    schema: &Schema,
    operator: &'static str,
) -> Result<(), WindowError> {
    let found = data.schema_ref();
    for (column, field) in schema.fields().iter().enumerate() {
        let found = found.fields().get(column).map(|f| f.data_type());
        if found != Some(field.data_type()) {
            return Err(WindowError::InputType {
                operator,
                column,
                expected: field.data_type().clone(),
                found: found.cloned(),
            });
        }
    }
    Ok(())
}

/// Fails unless every row of `batch` is an insert.
fn check_insert_only(batch: &ChangelogBatch, operator: &'static str) -> Result<(), WindowError> {
    if let Some(kinds) = batch.row_kinds()
        && let Some(&code) = kinds.values().iter().find(|&&c| c != RowKind::Insert as i8)
    {
        return Err(WindowError::NotInsertOnly {
            operator,
            kind: RowKind::from_code(code).unwrap_or(RowKind::Delete),
        });
    }
    Ok(())
}

/// A timestamp column of `values`, of type `Timestamp(Millisecond, tz)`.
fn timestamp_column(values: impl IntoIterator<Item = i64>, tz: Option<Arc<str>>) -> ArrayRef {
    Arc::new(
        arrow::array::TimestampMillisecondArray::from_iter_values(values).with_timezone_opt(tz),
    )
}

#[cfg(test)]
mod tests;
