//! Lowering logical expressions into physical ones over an input schema.
//!
//! Columns become positions in the input; operands that meet in one type (both sides of a
//! comparison, the branches of `CASE`, an `IN` list, the arguments of `COALESCE`, `GREATEST`,
//! `LEAST`, `NULLIF`, an integer beside a decimal) get casts to the type
//! [`common_type`] gives, so the physical expression's type is
//! the one [`infer`](crate::expr::typing::infer) gives.

use std::sync::Arc;

use arrow::datatypes::DataType;
use rivulet_runtime::relational::PhysicalExprRef;
use rivulet_runtime::relational::expr::{
    BinaryExpr, BinaryOperator, CaseExpr, CastExpr, ColumnExpr, ExprError, InListExpr,
    IsNotNullExpr, IsNullExpr, LikeExpr, LiteralExpr, NegativeExpr, NotExpr, ScalarFunction,
    ScalarFunctionExpr, ScalarUdfExpr,
};

use crate::error::PlanError;
use crate::expr::typing::{common_type, integer_digits, is_string};
use crate::expr::{BinaryOp, BuiltinFunction, Expr};
use crate::schema::PlanSchema;

const OPERATION: &str = "plan";

/// The physical expression computing `expr` over batches of `input`'s columns.
///
/// Aggregates and subqueries are planned by their operators, not here: they give
/// [`PlanError::Unsupported`].
pub fn create_physical_expr(expr: &Expr, input: &PlanSchema) -> Result<PhysicalExprRef, PlanError> {
    let lower = |e: &Expr| create_physical_expr(e, input);
    let built = |result: Result<PhysicalExprRef, ExprError>| {
        result.map_err(|e| PlanError::TypeMismatch {
            operation: OPERATION.to_owned(),
            expr: expr.to_string(),
            message: e.to_string(),
        })
    };
    let common = |types: &[DataType]| -> Result<DataType, PlanError> {
        let mut t = DataType::Null;
        for next in types {
            t = common_type(&t, next).ok_or_else(|| PlanError::TypeMismatch {
                operation: OPERATION.to_owned(),
                expr: expr.to_string(),
                message: format!("{t} and {next} have no common type"),
            })?;
        }
        Ok(t)
    };
    match expr {
        Expr::Column(c) => {
            let index = input.index_of(c, OPERATION)?;
            let field = input.field(index);
            Ok(Arc::new(ColumnExpr::new(
                field.name.clone(),
                index,
                field.data_type.clone(),
                field.nullable,
            )))
        }
        Expr::Literal(v) => Ok(Arc::new(LiteralExpr::new(v.clone()))),
        Expr::Alias(e, _) => lower(e),
        Expr::Binary { left, op, right } => {
            let (mut l, mut r) = (lower(left)?, lower(right)?);
            let (lt, rt) = (l.data_type(), r.data_type());
            if op.is_comparison() {
                let t = common(&[lt, rt])?;
                (l, r) = (coerce(l, &t)?, coerce(r, &t)?);
            } else if op.is_arithmetic() {
                match (&lt, &rt) {
                    (DataType::Null, _) | (_, DataType::Null) => {}
                    (DataType::Decimal128(_, _), i) if i.is_integer() => {
                        r = coerce(r, &DataType::Decimal128(integer_digits(i).unwrap_or(20), 0))?;
                    }
                    (i, DataType::Decimal128(_, _)) if i.is_integer() => {
                        l = coerce(l, &DataType::Decimal128(integer_digits(i).unwrap_or(20), 0))?;
                    }
                    (DataType::Decimal128(_, _), DataType::Decimal128(_, _)) => {}
                    (a, b) if a.is_numeric() && b.is_numeric() => {
                        let t = common(&[lt.clone(), rt.clone()])?;
                        (l, r) = (coerce(l, &t)?, coerce(r, &t)?);
                    }
                    _ => {}
                }
            }
            built(BinaryExpr::try_new(l, binary_operator(*op), r).map(|e| Arc::new(e) as _))
        }
        Expr::Not(e) => built(NotExpr::try_new(lower(e)?).map(|e| Arc::new(e) as _)),
        Expr::Negative(e) => built(NegativeExpr::try_new(lower(e)?).map(|e| Arc::new(e) as _)),
        Expr::IsNull(e) => Ok(Arc::new(IsNullExpr::new(lower(e)?))),
        Expr::IsNotNull(e) => Ok(Arc::new(IsNotNullExpr::new(lower(e)?))),
        Expr::Cast {
            expr: e,
            to,
            try_cast,
        } => built(CastExpr::try_new(lower(e)?, to.clone(), *try_cast).map(|e| Arc::new(e) as _)),
        Expr::Case {
            branches,
            otherwise,
        } => {
            let mut lowered = Vec::with_capacity(branches.len());
            for (c, v) in branches {
                lowered.push((lower(c)?, lower(v)?));
            }
            let otherwise = otherwise.as_deref().map(lower).transpose()?;
            let types: Vec<DataType> = lowered
                .iter()
                .map(|(_, v)| v)
                .chain(otherwise.as_ref())
                .map(|v| v.data_type())
                .collect();
            let t = common(&types)?;
            let lowered = lowered
                .into_iter()
                .map(|(c, v)| Ok((c, coerce(v, &t)?)))
                .collect::<Result<Vec<_>, PlanError>>()?;
            let otherwise = otherwise.map(|v| coerce(v, &t)).transpose()?;
            built(CaseExpr::try_new(lowered, otherwise).map(|e| Arc::new(e) as _))
        }
        Expr::InList {
            expr: e,
            list,
            negated,
        } => {
            let value = lower(e)?;
            let items = list.iter().map(lower).collect::<Result<Vec<_>, _>>()?;
            let types: Vec<DataType> = std::iter::once(&value)
                .chain(&items)
                .map(|v| v.data_type())
                .collect();
            let t = common(&types)?;
            let value = coerce(value, &t)?;
            let items = items
                .into_iter()
                .map(|i| coerce(i, &t))
                .collect::<Result<Vec<_>, _>>()?;
            built(InListExpr::try_new(value, items, *negated).map(|e| Arc::new(e) as _))
        }
        Expr::Like {
            expr: e,
            pattern,
            negated,
            case_insensitive,
        } => {
            let to_utf8 = |p: PhysicalExprRef| match p.data_type() {
                t if is_string(&t) => coerce(p, &DataType::Utf8),
                _ => Ok(p),
            };
            let (value, pattern) = (to_utf8(lower(e)?)?, to_utf8(lower(pattern)?)?);
            built(
                LikeExpr::try_new(value, pattern, *negated, *case_insensitive)
                    .map(|e| Arc::new(e) as _),
            )
        }
        Expr::Function { func, args } => {
            let mut args = args.iter().map(lower).collect::<Result<Vec<_>, _>>()?;
            if matches!(
                func,
                BuiltinFunction::Coalesce
                    | BuiltinFunction::Greatest
                    | BuiltinFunction::Least
                    | BuiltinFunction::NullIf
            ) {
                let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
                let t = common(&types)?;
                args = args
                    .into_iter()
                    .map(|a| coerce(a, &t))
                    .collect::<Result<Vec<_>, _>>()?;
            }
            let func = scalar_function(*func);
            built(ScalarFunctionExpr::try_new(func, args).map(|e| Arc::new(e) as _))
        }
        Expr::ScalarUdf { udf, args } => {
            let args = args.iter().map(lower).collect::<Result<Vec<_>, _>>()?;
            built(ScalarUdfExpr::try_new(Arc::clone(udf), args).map(|e| Arc::new(e) as _))
        }
        Expr::OuterColumn(_) => Err(PlanError::unsupported(
            OPERATION,
            format!("the correlated column `{expr}` outside its subquery"),
        )),
        Expr::Aggregate { .. } => Err(PlanError::unsupported(
            OPERATION,
            format!("the aggregate `{expr}` as a scalar expression (aggregate operators plan it)"),
        )),
        Expr::InSubquery { .. } | Expr::Exists { .. } | Expr::ScalarSubquery(_) => {
            Err(PlanError::unsupported(
                OPERATION,
                format!("the subquery `{expr}` as a scalar expression (decorrelation plans it)"),
            ))
        }
    }
}

/// `expr` converted to `to`, when it has another type.
fn coerce(expr: PhysicalExprRef, to: &DataType) -> Result<PhysicalExprRef, PlanError> {
    if expr.data_type() == *to {
        return Ok(expr);
    }
    let shown = expr.to_string();
    CastExpr::try_new(expr, to.clone(), false)
        .map(|e| Arc::new(e) as PhysicalExprRef)
        .map_err(|e| PlanError::TypeMismatch {
            operation: OPERATION.to_owned(),
            expr: shown,
            message: e.to_string(),
        })
}

/// The runtime's operator for a logical one.
pub fn binary_operator(op: BinaryOp) -> BinaryOperator {
    match op {
        BinaryOp::Plus => BinaryOperator::Plus,
        BinaryOp::Minus => BinaryOperator::Minus,
        BinaryOp::Multiply => BinaryOperator::Multiply,
        BinaryOp::Divide => BinaryOperator::Divide,
        BinaryOp::Modulo => BinaryOperator::Modulo,
        BinaryOp::Eq => BinaryOperator::Eq,
        BinaryOp::NotEq => BinaryOperator::NotEq,
        BinaryOp::Lt => BinaryOperator::Lt,
        BinaryOp::LtEq => BinaryOperator::LtEq,
        BinaryOp::Gt => BinaryOperator::Gt,
        BinaryOp::GtEq => BinaryOperator::GtEq,
        BinaryOp::And => BinaryOperator::And,
        BinaryOp::Or => BinaryOperator::Or,
        BinaryOp::IsNotDistinctFrom => BinaryOperator::IsNotDistinctFrom,
    }
}

/// The runtime's function for a logical one.
pub fn scalar_function(func: BuiltinFunction) -> ScalarFunction {
    use BuiltinFunction as B;
    use ScalarFunction as S;
    match func {
        B::Upper => S::Upper,
        B::Lower => S::Lower,
        B::Substring => S::Substring,
        B::Concat => S::Concat,
        B::Trim => S::Trim,
        B::LTrim => S::LTrim,
        B::RTrim => S::RTrim,
        B::CharLength => S::CharLength,
        B::RegexpExtract => S::RegexpExtract,
        B::SplitIndex => S::SplitIndex,
        B::Replace => S::Replace,
        B::Position => S::Position,
        B::Abs => S::Abs,
        B::Ceil => S::Ceil,
        B::Floor => S::Floor,
        B::Round => S::Round,
        B::Sqrt => S::Sqrt,
        B::Power => S::Power,
        B::Ln => S::Ln,
        B::Log10 => S::Log10,
        B::Exp => S::Exp,
        B::Sign => S::Sign,
        B::Coalesce => S::Coalesce,
        B::NullIf => S::NullIf,
        B::Greatest => S::Greatest,
        B::Least => S::Least,
        B::Extract(part) => S::Extract(part),
        B::DateFormat => S::DateFormat,
        B::ToTimestamp => S::ToTimestamp,
        B::ToDate => S::ToDate,
    }
}
