//! Physical expressions: vectorised computations over the columns of a record batch.
//!
//! A [`PhysicalExpr`] refers to input columns by position and evaluates a whole batch at a time,
//! with Arrow compute kernels where one exists. Rows that fail (a failed cast, a division by zero)
//! are handled by the [`EvalContext`]'s [`BadDataPolicy`]: fail the job with an error naming the
//! expression and row, turn the value into a null, or drop the row and count it in [`BadRows`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use parking_lot::Mutex;

use super::scalar::ScalarValue;
use crate::error::BoxError;

/// The result of evaluating an expression: an array with one value per row, or one value for all
/// rows (a literal), which kernels can use without materialising it.
#[derive(Debug, Clone)]
pub enum ColumnarValue {
    /// One value per row.
    Array(ArrayRef),
    /// The same value for every row.
    Scalar(ScalarValue),
}

impl ColumnarValue {
    /// The values as an array of `rows` rows.
    pub fn into_array(self, rows: usize) -> ArrayRef {
        match self {
            ColumnarValue::Array(array) => array,
            ColumnarValue::Scalar(value) => value.to_array(rows),
        }
    }

    /// The values' type.
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnarValue::Array(array) => array.data_type().clone(),
            ColumnarValue::Scalar(value) => value.data_type(),
        }
    }
}

/// A vectorised expression over the columns of a batch.
pub trait PhysicalExpr: Send + Sync + fmt::Debug + fmt::Display {
    /// The type of the values it produces.
    fn data_type(&self) -> DataType;

    /// Whether it can produce nulls.
    fn nullable(&self) -> bool;

    /// Evaluates the expression for every row of `batch`.
    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError>;
}

/// A shared physical expression.
pub type PhysicalExprRef = Arc<dyn PhysicalExpr>;

/// What to do with a row whose evaluation fails (a failed cast, a division by zero, a malformed
/// line in a file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BadDataPolicy {
    /// Fail the job with an error naming the expression (or file and line) and the row.
    #[default]
    Fail,
    /// Replace the failing value with a null and go on.
    Null,
    /// Drop the row, count it, and keep the first few for inspection in [`BadRows`].
    Skip,
}

/// How many rows were skipped under [`BadDataPolicy::Skip`], and the first of them.
///
/// Shared by every operator of a table environment; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BadRows {
    inner: Arc<BadRowsInner>,
}

#[derive(Debug, Default)]
struct BadRowsInner {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl BadRows {
    /// How many samples are kept.
    pub const SAMPLES: usize = 16;

    /// A fresh, empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one skipped row and why it was skipped.
    pub fn record(&self, description: impl FnOnce() -> String) {
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.inner.samples.lock();
        if samples.len() < Self::SAMPLES {
            samples.push(description());
        }
    }

    /// The number of rows skipped so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// The first skipped rows, each with the reason.
    pub fn samples(&self) -> Vec<String> {
        self.inner.samples.lock().clone()
    }
}

/// The per-operator state of expression evaluation: the bad-data policy and the rows of the
/// current batch that failed under [`BadDataPolicy::Skip`].
#[derive(Debug, Clone, Default)]
pub struct EvalContext {
    policy: BadDataPolicy,
    bad_rows: BadRows,
    failed: Vec<usize>,
}

impl EvalContext {
    /// A context applying `policy`, recording skipped rows in `bad_rows`.
    pub fn new(policy: BadDataPolicy, bad_rows: BadRows) -> Self {
        EvalContext {
            policy,
            bad_rows,
            failed: Vec::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> BadDataPolicy {
        self.policy
    }

    /// The shared record of skipped rows.
    pub fn bad_rows(&self) -> &BadRows {
        &self.bad_rows
    }

    /// Reports that `expr` failed on `row` of the current batch. Under [`BadDataPolicy::Fail`]
    /// this is the error to return; otherwise the caller writes a null for the row and goes on
    /// (under [`BadDataPolicy::Skip`] the row is also marked to be dropped).
    pub fn row_failed(
        &mut self,
        expr: &dyn fmt::Display,
        row: usize,
        message: impl Into<String>,
    ) -> Result<(), EvalError> {
        let message = message.into();
        match self.policy {
            BadDataPolicy::Fail => Err(EvalError::Row {
                expr: expr.to_string(),
                row,
                message,
            }),
            BadDataPolicy::Null => Ok(()),
            BadDataPolicy::Skip => {
                self.failed.push(row);
                let expr = expr.to_string();
                self.bad_rows
                    .record(|| format!("expression `{expr}` failed on row {row}: {message}"));
                Ok(())
            }
        }
    }

    /// Takes the rows of the current batch marked to be dropped, sorted and deduplicated.
    pub fn take_failed_rows(&mut self) -> Vec<usize> {
        let mut rows = std::mem::take(&mut self.failed);
        rows.sort_unstable();
        rows.dedup();
        rows
    }
}

/// Why an expression could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// One row failed and the policy is to fail.
    #[error(
        "expression `{expr}` failed on row {row}: {message}; fix the input, or set the bad-data policy to null or skip such rows"
    )]
    Row {
        /// The expression, as displayed in plans.
        expr: String,
        /// The row within its batch.
        row: usize,
        /// What went wrong.
        message: String,
    },
    /// An Arrow kernel failed.
    #[error("expression `{expr}` failed: {source}")]
    Arrow {
        /// The expression, as displayed in plans.
        expr: String,
        /// The kernel's error.
        #[source]
        source: ArrowError,
    },
    /// A user function failed.
    #[error("user function {function:?} failed: {source}")]
    Udf {
        /// The function's name.
        function: String,
        /// What it reported.
        #[source]
        source: BoxError,
    },
}

impl EvalError {
    /// Wraps a kernel error of `expr`.
    pub fn arrow(expr: &dyn fmt::Display, source: ArrowError) -> Self {
        EvalError::Arrow {
            expr: expr.to_string(),
            source,
        }
    }
}

/// The input column at a position.
#[derive(Debug, Clone)]
pub struct ColumnExpr {
    name: String,
    index: usize,
    data_type: DataType,
    nullable: bool,
}

impl ColumnExpr {
    /// The column `name` at `index`, of this type.
    pub fn new(name: impl Into<String>, index: usize, data_type: DataType, nullable: bool) -> Self {
        ColumnExpr {
            name: name.into(),
            index,
            data_type,
            nullable,
        }
    }

    /// The column's position in the input.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl fmt::Display for ColumnExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.index)
    }
}

impl PhysicalExpr for ColumnExpr {
    fn data_type(&self) -> DataType {
        self.data_type.clone()
    }

    fn nullable(&self) -> bool {
        self.nullable
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        _ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let column = batch.columns().get(self.index).ok_or_else(|| {
            EvalError::arrow(
                self,
                ArrowError::InvalidArgumentError(format!(
                    "the batch has {} columns",
                    batch.num_columns()
                )),
            )
        })?;
        Ok(ColumnarValue::Array(Arc::clone(column)))
    }
}

/// A constant.
#[derive(Debug, Clone)]
pub struct LiteralExpr {
    value: ScalarValue,
}

impl LiteralExpr {
    /// The constant `value`.
    pub fn new(value: ScalarValue) -> Self {
        LiteralExpr { value }
    }

    /// The constant.
    pub fn value(&self) -> &ScalarValue {
        &self.value
    }
}

impl fmt::Display for LiteralExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.value, f)
    }
}

impl PhysicalExpr for LiteralExpr {
    fn data_type(&self) -> DataType {
        self.value.data_type()
    }

    fn nullable(&self) -> bool {
        self.value.is_null()
    }

    fn evaluate(
        &self,
        _batch: &RecordBatch,
        _ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// Evaluates `expr` into an array of the batch's length.
pub fn evaluate_to_array(
    expr: &dyn PhysicalExpr,
    batch: &RecordBatch,
    ctx: &mut EvalContext,
) -> Result<ArrayRef, EvalError> {
    Ok(expr.evaluate(batch, ctx)?.into_array(batch.num_rows()))
}
