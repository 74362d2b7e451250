//! Lowering logical expressions into physical ones over an input schema.

use std::sync::Arc;

use rivulet_runtime::relational::PhysicalExprRef;
use rivulet_runtime::relational::expr::{ColumnExpr, LiteralExpr};

use crate::error::PlanError;
use crate::expr::Expr;
use crate::schema::PlanSchema;

/// The physical expression computing `expr` over batches of `input`'s columns.
pub fn create_physical_expr(expr: &Expr, input: &PlanSchema) -> Result<PhysicalExprRef, PlanError> {
    match expr {
        Expr::Column(c) => {
            let index = input.index_of(c, "plan")?;
            let field = input.field(index);
            Ok(Arc::new(ColumnExpr::new(
                field.name.clone(),
                index,
                field.data_type.clone(),
                field.nullable,
            )))
        }
        Expr::Literal(v) => Ok(Arc::new(LiteralExpr::new(v.clone()))),
        Expr::Alias(e, _) => create_physical_expr(e, input),
        other => Err(PlanError::unsupported(
            "plan",
            format!("the expression `{other}`"),
        )),
    }
}
