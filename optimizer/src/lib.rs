//! The logical layer of rivulet: what a table pipeline means, before it runs.
//!
//! - [`schema`]: [`PlanSchema`], the typed, optionally qualified columns of a plan node.
//! - [`expr`]: the logical [`Expr`]ession tree, type inference and the built-in functions.
//! - [`plan`]: [`LogicalPlan`], the relational operators, each with its output schema.
//! - [`error`]: [`PlanError`], typed build-time errors that name the operation.
//! - [`changelog`] and [`keys`]: which row kinds a node emits and which columns identify its
//!   rows (upsert keys).
//!
//! Lowering a plan into runtime operators is a separate step (`physical`), so the optimizer can
//! run between building and lowering.
#![warn(missing_docs)]

pub mod builder;
pub mod changelog;
mod decorrelate;
pub mod error;
pub mod expr;
pub mod keys;
pub mod physical;
pub mod plan;
pub mod schema;
pub mod source;

pub use changelog::ChangelogMode;
pub use error::PlanError;
pub use expr::{AggregateFunction, BinaryOp, BuiltinFunction, Column, Expr, SortExpr};
pub use plan::{JoinKind, LogicalPlan, SetOpKind};
pub use rivulet_runtime::relational::ScalarValue;
pub use schema::{PlanField, PlanSchema, PlanSchemaRef, TimeAttribute};
pub use source::{EventTimeSpec, Statistics, TableSource, TableSourceRef};
