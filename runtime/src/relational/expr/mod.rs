//! Physical expressions: vectorised computations over the columns of a record batch.
//!
//! A [`PhysicalExpr`] refers to input columns by position and evaluates a whole batch at a time,
//! with Arrow compute kernels where one exists. Rows that fail (a failed cast, a division by zero)
//! are handled by the [`EvalContext`]'s [`BadDataPolicy`]: fail the job with an error naming the
//! expression and row, turn the value into a null, or drop the row and count it in [`BadRows`].
//!
//! One module per expression family:
//!
//! - `binary`: [`BinaryExpr`]: arithmetic (integers, floats, decimals, time), comparisons,
//!   `IS NOT DISTINCT FROM`, and three-valued `AND` / `OR`.
//! - `unary`: [`NotExpr`], [`NegativeExpr`], [`IsNullExpr`], [`IsNotNullExpr`].
//! - `cast`: [`CastExpr`] (`CAST` and `TRY_CAST`).
//! - `case`: [`CaseExpr`], which evaluates each branch only on the rows that reach it.
//! - `in_list`: [`InListExpr`]. `like`: [`LikeExpr`].
//! - `function`: [`ScalarFunctionExpr`] for the built-in [`ScalarFunction`]s; `udf`:
//!   [`ScalarUdfExpr`] for user functions.
//! - `decimal` and `temporal`: the decimal and date-time kernels they share.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use rivulet_runtime::relational::expr::{
//!     BinaryExpr, BinaryOperator, ColumnExpr, LiteralExpr, evaluate_to_array,
//! };
//! use rivulet_runtime::relational::{EvalContext, PhysicalExpr, ScalarValue};
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
//! let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?;
//! let a = Arc::new(ColumnExpr::new("a", 0, DataType::Int64, false));
//! let ten = Arc::new(LiteralExpr::new(ScalarValue::Int64(10)));
//! let sum = BinaryExpr::try_new(a, BinaryOperator::Plus, ten)?;
//! assert_eq!(sum.to_string(), "(a#0 + 10)");
//! let out = evaluate_to_array(&sum, &batch, &mut EvalContext::default())?;
//! assert_eq!(out.as_ref(), &Int64Array::from(vec![11, 12, 13]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, Datum, RecordBatch, Scalar, UInt32Array, make_array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use parking_lot::Mutex;

use super::scalar::ScalarValue;
use crate::error::BoxError;

mod binary;
mod case;
mod cast;
mod decimal;
mod function;
mod in_list;
mod like;
mod temporal;
mod udf;
mod unary;

pub use binary::{BinaryExpr, BinaryOperator, decimal_arithmetic_type};
pub use case::CaseExpr;
pub use cast::{CastExpr, lossless_cast};
pub use function::{DatePart, ScalarFunction, ScalarFunctionExpr};
pub use in_list::InListExpr;
pub use like::LikeExpr;
pub use udf::ScalarUdfExpr;
pub use unary::{IsNotNullExpr, IsNullExpr, NegativeExpr, NotExpr};

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
    /// While a subset of the operator's batch is evaluated (the rows reaching a `CASE` branch),
    /// the operator's row for each row of the subset.
    selection: Option<Arc<[usize]>>,
}

impl EvalContext {
    /// A context applying `policy`, recording skipped rows in `bad_rows`.
    pub fn new(policy: BadDataPolicy, bad_rows: BadRows) -> Self {
        EvalContext {
            policy,
            bad_rows,
            failed: Vec::new(),
            selection: None,
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
        let row = match &self.selection {
            Some(rows) => rows[row],
            None => row,
        };
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

    /// Runs `f` on a batch made of the rows `rows` of the current one, so rows that fail inside
    /// `f` are reported (and skipped) as the current batch's rows.
    pub fn within_rows<R>(&mut self, rows: &[usize], f: impl FnOnce(&mut Self) -> R) -> R {
        let mapped: Arc<[usize]> = match &self.selection {
            Some(outer) => rows.iter().map(|r| outer[*r]).collect(),
            None => rows.into(),
        };
        let outer = self.selection.replace(mapped);
        let result = f(self);
        self.selection = outer;
        result
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

/// Why a physical expression cannot be built: operands of types it does not accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// Arguments of types the expression does not accept.
    #[error("`{expr}`: {message}")]
    InvalidArguments {
        /// The expression, as displayed in plans.
        expr: String,
        /// What was expected and what was found.
        message: String,
    },
}

impl ExprError {
    pub(crate) fn invalid(expr: impl fmt::Display, message: impl Into<String>) -> Self {
        ExprError::InvalidArguments {
            expr: expr.to_string(),
            message: message.into(),
        }
    }
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

/// An evaluated operand as an Arrow [`Datum`]: scalars stay one-row scalars, so kernels compare
/// with constants without materialising them.
pub(crate) enum Operand {
    Array(ArrayRef),
    Scalar(Scalar<ArrayRef>),
}

impl Operand {
    pub(crate) fn new(value: &ColumnarValue) -> Self {
        match value {
            ColumnarValue::Array(a) => Operand::Array(Arc::clone(a)),
            ColumnarValue::Scalar(v) => Operand::Scalar(Scalar::new(v.to_array(1))),
        }
    }

    pub(crate) fn is_scalar(&self) -> bool {
        matches!(self, Operand::Scalar(_))
    }
}

impl Datum for Operand {
    fn get(&self) -> (&dyn Array, bool) {
        match self {
            Operand::Array(a) => (a.as_ref(), false),
            Operand::Scalar(s) => s.get(),
        }
    }
}

/// The result of a kernel over operands that were all scalars (`all_scalar`, a one-row array)
/// or not (an array of the batch's length).
pub(crate) fn kernel_result(array: ArrayRef, all_scalar: bool, rows: usize) -> ColumnarValue {
    if !all_scalar || array.len() != 1 {
        return ColumnarValue::Array(array);
    }
    match ScalarValue::try_from_array(&array, 0) {
        Ok(value) => ColumnarValue::Scalar(value),
        Err(_) => ColumnarValue::Array(repeat_first(&array, rows)),
    }
}

/// An array of `rows` copies of `array`'s first value.
pub(crate) fn repeat_first(array: &ArrayRef, rows: usize) -> ArrayRef {
    let zeros = UInt32Array::from(vec![0u32; rows]);
    arrow::compute::take(array.as_ref(), &zeros, None)
        .expect("taking row 0 of a one-row array cannot fail")
}

/// `array` with the rows in `rows` (ascending) set to null.
pub(crate) fn with_nulls_at(array: &ArrayRef, rows: &[usize]) -> ArrayRef {
    if rows.is_empty() || *array.data_type() == DataType::Null {
        return Arc::clone(array);
    }
    let mut valid = vec![true; array.len()];
    for row in rows {
        valid[*row] = false;
    }
    let extra = NullBuffer::new(BooleanBuffer::from(valid));
    let nulls = NullBuffer::union(array.logical_nulls().as_ref(), Some(&extra));
    let data = array.to_data().into_builder().nulls(nulls);
    make_array(data.build().expect("adding nulls keeps an array valid"))
}

/// The values of `value` as an array of `rows` rows.
pub(crate) fn to_array(value: &ColumnarValue, rows: usize) -> ArrayRef {
    value.clone().into_array(rows)
}

#[cfg(test)]
mod tests;
