//! Physical planning: lowering a logical plan into runtime operators.

pub mod expr;

pub use expr::create_physical_expr;
