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
//! - [`normalize`]: [`ChangelogNormalizeOperator`], upsert changelogs into retractions.
//! - [`rowtime`]: [`RowtimeWatermarkOperator`], watermarks of a table's event-time column.
//! - [`rank`] (Top-N), [`dedup`], [`over`] and [`interval_join`]: the unbounded streaming operators,
//!   with their shared [`StreamOpError`] in [`stream_op`].
//! - [`window`]: window TVFs ([`WindowTvf`]) and the window aggregate, Top-N and join on them.

pub mod aggregate;
pub mod calc;
pub mod changelog;
pub mod correlate;
pub mod dedup;
pub mod expr;
pub mod function;
pub mod interval_join;
pub mod join;
pub mod normalize;
pub mod over;
pub mod rank;
pub mod rowtime;
pub mod scalar;
pub mod set_op;
pub mod sort;
pub mod stream_op;
pub mod unnest;
pub mod window;

pub use aggregate::{
    AggregateCall, AggregateError, AggregateKind, EmitMode, GroupAggregateOperator,
    GroupAggregateSpec,
};
pub use dedup::{DedupOrder, DeduplicateOperator, DeduplicateSpec, Keep};
pub use expr::{
    BadDataPolicy, BadRows, ColumnarValue, EvalContext, EvalError, PhysicalExpr, PhysicalExprRef,
};
pub use function::{Accumulator, AggregateUdf, ScalarUdf, TableUdf};
pub use interval_join::{IntervalJoinOperator, IntervalJoinSpec};
pub use join::{JoinError, JoinMode, JoinOperator, JoinSpec, JoinType};
pub use normalize::ChangelogNormalizeOperator;
pub use over::{OverAggregateOperator, OverAggregateSpec, OverFrame};
pub use rank::{RankOperator, RankSpec};
pub use rowtime::{RowtimeError, RowtimeWatermarkOperator};
pub use scalar::ScalarValue;
pub use set_op::{SetOpOperator, SetOpType};
pub use stream_op::StreamOpError;
pub use unnest::Unnest;
pub use window::{
    LocalWindowAggregateOperator, WindowAggregateOperator, WindowAggregateSpec,
    WindowAssignOperator, WindowError, WindowJoinOperator, WindowJoinSpec, WindowRankOperator,
    WindowRankSpec, WindowTvf,
};
