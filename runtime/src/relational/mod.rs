//! The physical relational layer: what a table pipeline runs as.
//!
//! Everything here works on Arrow [`ChangelogBatch`](crate::ChangelogBatch)es and knows nothing of
//! logical plans; the optimizer lowers a plan into these pieces.
//!
//! - [`scalar`]: [`ScalarValue`], one typed value (a literal, an accumulator's state).
//! - [`aggregate`]: [`GroupAggregateOperator`], group aggregation with retraction.
//! - [`expr`]: [`PhysicalExpr`], vectorised expressions evaluated on record batches, and the
//!   [`EvalContext`] that applies the environment's [`BadDataPolicy`].
//! - [`function`]: the user-function traits: scalar ([`ScalarUdf`]), table ([`TableUdf`]) and
//!   aggregate ([`AggregateUdf`] with its row-wise [`Accumulator`]).
//! - [`calc`], [`sort`], [`correlate`]: the stateless and bounded relational operators.
//! - [`window`]: window TVFs ([`WindowTvf`]) and the window aggregate, Top-N and join on them.

pub mod aggregate;
pub mod calc;
pub mod changelog;
pub mod correlate;
pub mod expr;
pub mod function;
pub mod join;
pub mod scalar;
pub mod set_op;
pub mod sort;
pub mod window;

pub use aggregate::{
    AggregateCall, AggregateError, AggregateKind, EmitMode, GroupAggregateOperator,
    GroupAggregateSpec,
};
pub use expr::{
    BadDataPolicy, BadRows, ColumnarValue, EvalContext, EvalError, PhysicalExpr, PhysicalExprRef,
};
pub use function::{Accumulator, AggregateUdf, ScalarUdf, TableUdf};
pub use join::{JoinError, JoinMode, JoinOperator, JoinSpec, JoinType};
pub use scalar::ScalarValue;
pub use set_op::{SetOpOperator, SetOpType};
pub use window::{
    LocalWindowAggregateOperator, WindowAggregateOperator, WindowAggregateSpec,
    WindowAssignOperator, WindowError, WindowJoinOperator, WindowJoinSpec, WindowRankOperator,
    WindowRankSpec, WindowTvf,
};
