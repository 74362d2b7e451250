//! User-defined functions: scalar, table and aggregate.
//!
//! Scalar and table functions work on whole Arrow arrays; aggregate functions on one group's
//! values at a time through an [`Accumulator`], which may also retract values (for updating
//! inputs) and merge partial states (for two-phase aggregation and checkpoints).

use std::fmt;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{DataType, Field};

use super::scalar::ScalarValue;
use crate::error::BoxError;

/// A scalar user function: one output value per input row, computed on whole arrays.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, AsArray, Int64Array};
/// use arrow::datatypes::{DataType, Int64Type};
/// use rivulet_runtime::BoxError;
/// use rivulet_runtime::relational::ScalarUdf;
///
/// #[derive(Debug)]
/// struct Square;
///
/// impl ScalarUdf for Square {
///     fn name(&self) -> &str { "square" }
///     fn return_type(&self, args: &[DataType]) -> Result<DataType, String> {
///         match args {
///             [DataType::Int64] => Ok(DataType::Int64),
///             other => Err(format!("square takes one BIGINT, got {other:?}")),
///         }
///     }
///     fn invoke(&self, args: &[ArrayRef], _rows: usize) -> Result<ArrayRef, BoxError> {
///         let x = args[0].as_primitive::<Int64Type>();
///         Ok(Arc::new(x.unary::<_, Int64Type>(|v| v * v)))
///     }
/// }
/// ```
pub trait ScalarUdf: Send + Sync + fmt::Debug + 'static {
    /// The name used in plans and error messages.
    fn name(&self) -> &str;

    /// The result type for arguments of these types, or why they are not accepted. Called when
    /// the expression is built, so a wrong call fails before the job runs.
    fn return_type(&self, args: &[DataType]) -> Result<DataType, String>;

    /// Computes the result for `rows` rows; `args` hold one array per argument, each `rows` long.
    fn invoke(&self, args: &[ArrayRef], rows: usize) -> Result<ArrayRef, BoxError>;
}

/// A table user function: zero or more output rows per input row (`flat_map`, lateral join).
pub trait TableUdf: Send + Sync + fmt::Debug + 'static {
    /// The name used in plans and error messages.
    fn name(&self) -> &str;

    /// The columns it produces for arguments of these types, or why they are not accepted.
    fn output_fields(&self, args: &[DataType]) -> Result<Vec<Field>, String>;

    /// Computes the output rows for `rows` input rows: for each output row the index of the
    /// input row it came from (ascending), and the output columns.
    fn invoke(
        &self,
        args: &[ArrayRef],
        rows: usize,
    ) -> Result<(UInt32Array, Vec<ArrayRef>), BoxError>;
}

/// An aggregate user function: folds a group's rows into one value.
pub trait AggregateUdf: Send + Sync + fmt::Debug + 'static {
    /// The name used in plans and error messages.
    fn name(&self) -> &str;

    /// The result type for arguments of these types, or why they are not accepted.
    fn return_type(&self, args: &[DataType]) -> Result<DataType, String>;

    /// A fresh accumulator for one group.
    fn create_accumulator(&self, args: &[DataType]) -> Box<dyn Accumulator>;

    /// Whether its accumulators can retract values; a function that cannot is rejected on an
    /// updating input at planning time.
    fn supports_retract(&self) -> bool {
        false
    }
}

/// One group's running aggregate.
pub trait Accumulator: Send + fmt::Debug {
    /// Adds one row's argument values.
    fn accumulate(&mut self, args: &[ScalarValue]) -> Result<(), BoxError>;

    /// Removes one row's argument values, added before.
    fn retract(&mut self, _args: &[ScalarValue]) -> Result<(), BoxError> {
        Err("this aggregate function cannot retract values".into())
    }

    /// Merges another accumulator's [`state`](Accumulator::state) into this one.
    fn merge(&mut self, state: &[ScalarValue]) -> Result<(), BoxError>;

    /// The accumulator's state, for checkpoints and two-phase aggregation.
    fn state(&self) -> Vec<ScalarValue>;

    /// The current result.
    fn value(&self) -> Result<ScalarValue, BoxError>;
}
