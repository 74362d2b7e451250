//! Type inference: the Arrow type and nullability of an expression over a schema.
//!
//! Follows SQL: a null operand makes arithmetic and comparisons null; `AND`/`OR` are
//! three-valued; integers widen to the larger integer, integers and decimals meet in a decimal,
//! anything and a float meet in `DOUBLE`.

use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};

use super::{AggregateFunction, BinaryOp, Expr};
use crate::error::PlanError;
use crate::schema::PlanSchema;

/// The largest decimal precision.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The type and nullability of `expr` over `schema`; errors name `operation`.
pub fn infer(
    expr: &Expr,
    schema: &PlanSchema,
    operation: &str,
) -> Result<(DataType, bool), PlanError> {
    let mismatch = |message: String| PlanError::TypeMismatch {
        operation: operation.to_owned(),
        expr: expr.to_string(),
        message,
    };
    match expr {
        Expr::Column(c) => {
            let field = schema.field(schema.index_of(c, operation)?);
            Ok((field.data_type.clone(), field.nullable))
        }
        // Typed when the subquery is decorrelated against its outer query.
        Expr::OuterColumn(_) => Ok((DataType::Null, true)),
        Expr::Literal(v) => Ok((v.data_type(), v.is_null())),
        Expr::Alias(e, _) => infer(e, schema, operation),
        Expr::Binary { left, op, right } => {
            let (lt, ln) = infer(left, schema, operation)?;
            let (rt, rn) = infer(right, schema, operation)?;
            let result = binary_type(*op, &lt, &rt).map_err(mismatch)?;
            let nullable = match op {
                BinaryOp::IsNotDistinctFrom => false,
                // Division by zero and overflow are bad data; under the null policy they
                // become nulls.
                BinaryOp::Divide | BinaryOp::Modulo => true,
                // So is overflow, which only floats cannot have.
                BinaryOp::Plus | BinaryOp::Minus | BinaryOp::Multiply => {
                    ln || rn || !result.is_floating()
                }
                _ => ln || rn,
            };
            Ok((result, nullable))
        }
        Expr::Not(e) => {
            let (t, n) = infer(e, schema, operation)?;
            expect_boolean(&t).map_err(mismatch)?;
            Ok((DataType::Boolean, n))
        }
        Expr::Negative(e) => {
            let (t, n) = infer(e, schema, operation)?;
            let signed = (t.is_numeric() && !t.is_unsigned_integer())
                || matches!(
                    t,
                    DataType::Duration(_) | DataType::Interval(_) | DataType::Null
                );
            if signed {
                // Negating the smallest integer overflows: bad data, null under the null policy.
                Ok((t.clone(), n || t.is_integer()))
            } else {
                Err(mismatch(format!("cannot negate a value of type {t}")))
            }
        }
        Expr::IsNull(e) | Expr::IsNotNull(e) => {
            infer(e, schema, operation)?;
            Ok((DataType::Boolean, false))
        }
        Expr::Cast {
            expr: e,
            to,
            try_cast,
        } => {
            let (from, n) = infer(e, schema, operation)?;
            if !arrow::compute::can_cast_types(&from, to) {
                return Err(mismatch(format!("cannot cast {from} to {to}")));
            }
            // A cast that can fail is bad data; under the null policy the value becomes null.
            let may_fail = !lossless_cast(&from, to);
            Ok((to.clone(), n || *try_cast || may_fail))
        }
        Expr::Case {
            branches,
            otherwise,
        } => {
            let mut result: Option<DataType> = None;
            let mut nullable = otherwise.is_none();
            for (condition, value) in branches {
                let (ct, _) = infer(condition, schema, operation)?;
                expect_boolean(&ct).map_err(|m| mismatch(format!("a WHEN condition: {m}")))?;
                let (vt, vn) = infer(value, schema, operation)?;
                nullable |= vn;
                result = Some(unify(result, &vt).map_err(mismatch)?);
            }
            if let Some(e) = otherwise {
                let (et, en) = infer(e, schema, operation)?;
                nullable |= en;
                result = Some(unify(result, &et).map_err(mismatch)?);
            }
            Ok((result.unwrap_or(DataType::Null), nullable))
        }
        Expr::InList { expr: e, list, .. } => {
            let (mut t, mut nullable) = infer(e, schema, operation)?;
            for item in list {
                let (it, n) = infer(item, schema, operation)?;
                nullable |= n;
                t = common_type(&t, &it).ok_or_else(|| {
                    mismatch(format!(
                        "cannot compare {t} with the list item {item} of {it}"
                    ))
                })?;
            }
            Ok((DataType::Boolean, nullable))
        }
        Expr::Like {
            expr: e, pattern, ..
        } => {
            let (t, n) = infer(e, schema, operation)?;
            let (pt, pn) = infer(pattern, schema, operation)?;
            for (what, ty) in [("value", &t), ("pattern", &pt)] {
                if !is_string(ty) && *ty != DataType::Null {
                    return Err(mismatch(format!("LIKE needs a STRING {what}, got {ty}")));
                }
            }
            Ok((DataType::Boolean, n || pn))
        }
        Expr::Function { func, args } => {
            let args = args
                .iter()
                .map(|a| infer(a, schema, operation))
                .collect::<Result<Vec<_>, _>>()?;
            func.return_type(&args).map_err(mismatch)
        }
        Expr::ScalarUdf { udf, args } => {
            let types = args
                .iter()
                .map(|a| infer(a, schema, operation).map(|(t, _)| t))
                .collect::<Result<Vec<_>, _>>()?;
            let t = udf.return_type(&types).map_err(mismatch)?;
            Ok((t, true))
        }
        Expr::Aggregate {
            func, args, filter, ..
        } => {
            if let Some(f) = filter {
                let (ft, _) = infer(f, schema, operation)?;
                expect_boolean(&ft).map_err(|m| mismatch(format!("the FILTER condition: {m}")))?;
                if f.contains_aggregate() {
                    return Err(PlanError::AggregateNotAllowed {
                        operation: operation.to_owned(),
                        expr: f.to_string(),
                    });
                }
            }
            let arg_types = args
                .iter()
                .map(|a| {
                    if a.contains_aggregate() {
                        return Err(PlanError::AggregateNotAllowed {
                            operation: operation.to_owned(),
                            expr: a.to_string(),
                        });
                    }
                    infer(a, schema, operation).map(|(t, _)| t)
                })
                .collect::<Result<Vec<_>, _>>()?;
            aggregate_type(func, &arg_types).map_err(mismatch)
        }
        Expr::InSubquery {
            expr: e, subquery, ..
        } => {
            let (t, n) = infer(e, schema, operation)?;
            let sub = subquery.schema();
            if sub.len() != 1 {
                return Err(mismatch(format!(
                    "IN needs a subquery of one column, got {}",
                    sub.len()
                )));
            }
            let st = &sub.field(0).data_type;
            common_type(&t, st)
                .ok_or_else(|| mismatch(format!("cannot compare {t} with the subquery's {st}")))?;
            Ok((DataType::Boolean, n || sub.field(0).nullable))
        }
        Expr::Exists { .. } => Ok((DataType::Boolean, false)),
        Expr::ScalarSubquery(subquery) => {
            let sub = subquery.schema();
            if sub.len() != 1 {
                return Err(mismatch(format!(
                    "a scalar subquery must have one column, got {}",
                    sub.len()
                )));
            }
            Ok((sub.field(0).data_type.clone(), true))
        }
    }
}

/// The result type of an aggregate over arguments of these types.
pub fn aggregate_type(
    func: &AggregateFunction,
    args: &[DataType],
) -> Result<(DataType, bool), String> {
    let one_arg = || match args {
        [t] => Ok(t.clone()),
        _ => Err(format!(
            "{} takes one argument, got {}",
            func.name(),
            args.len()
        )),
    };
    match func {
        AggregateFunction::Count => {
            if args.len() > 1 {
                return Err(format!(
                    "count takes at most one argument, got {}",
                    args.len()
                ));
            }
            Ok((DataType::Int64, false))
        }
        AggregateFunction::Sum => {
            let t = one_arg()?;
            let result = match &t {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    DataType::Int64
                }
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                    DataType::UInt64
                }
                DataType::Float32 | DataType::Float64 => DataType::Float64,
                DataType::Decimal128(_, s) => DataType::Decimal128(MAX_DECIMAL_PRECISION, *s),
                DataType::Duration(u) => DataType::Duration(*u),
                DataType::Null => DataType::Int64,
                other => return Err(format!("sum needs a number, got {other}")),
            };
            Ok((result, true))
        }
        AggregateFunction::Avg => {
            let t = one_arg()?;
            let result = match &t {
                t if t.is_integer() || t.is_floating() || *t == DataType::Null => DataType::Float64,
                DataType::Decimal128(p, s) => DataType::Decimal128(
                    (*p + 4).min(MAX_DECIMAL_PRECISION),
                    (*s + 4).min(MAX_DECIMAL_PRECISION as i8),
                ),
                other => return Err(format!("avg needs a number, got {other}")),
            };
            Ok((result, true))
        }
        AggregateFunction::Min | AggregateFunction::Max => {
            let t = one_arg()?;
            if t.is_nested() {
                return Err(format!("{} cannot order values of type {t}", func.name()));
            }
            Ok((t, true))
        }
        AggregateFunction::User(udf) => Ok((udf.return_type(args)?, true)),
    }
}

fn expect_boolean(t: &DataType) -> Result<(), String> {
    match t {
        DataType::Boolean | DataType::Null => Ok(()),
        other => Err(format!("expected BOOLEAN, got {other}")),
    }
}

fn unify(current: Option<DataType>, next: &DataType) -> Result<DataType, String> {
    match current {
        None => Ok(next.clone()),
        Some(t) => common_type(&t, next)
            .ok_or_else(|| format!("branches have incompatible types {t} and {next}")),
    }
}

/// Whether `t` is a string type.
pub fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

pub use rivulet_runtime::relational::expr::lossless_cast;

/// The decimal digits an integer type needs (`INT`: 10).
pub fn integer_digits(t: &DataType) -> Option<u8> {
    Some(match t {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::Int64 => 19,
        DataType::UInt64 => 20,
        _ => return None,
    })
}

fn integer_rank(t: &DataType) -> u8 {
    match t {
        DataType::Int8 | DataType::UInt8 => 1,
        DataType::Int16 | DataType::UInt16 => 2,
        DataType::Int32 | DataType::UInt32 => 3,
        _ => 4,
    }
}

/// The type two values meet in for comparison, `CASE`, `COALESCE` and set operations.
pub fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType as T;
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (T::Null, other) | (other, T::Null) => Some(other.clone()),
        (x, y) if is_string(x) && is_string(y) => Some(T::Utf8),
        (x, y) if x.is_integer() && y.is_integer() => {
            let signed = x.is_signed_integer() || y.is_signed_integer();
            // A signed type holds an unsigned one's values only when it is wider.
            let widened =
                |t: &DataType| integer_rank(t) + u8::from(signed && t.is_unsigned_integer());
            let rank = widened(x).max(widened(y));
            Some(match (signed, rank) {
                (true, 1) => T::Int8,
                (true, 2) => T::Int16,
                (true, 3) => T::Int32,
                (true, _) => T::Int64,
                (false, 1) => T::UInt8,
                (false, 2) => T::UInt16,
                (false, 3) => T::UInt32,
                (false, _) => T::UInt64,
            })
        }
        (T::Float32, y) | (y, T::Float32) if y.is_numeric() && !y.is_floating() => Some(T::Float64),
        (x, y) if x.is_floating() && y.is_numeric() || y.is_floating() && x.is_numeric() => {
            Some(T::Float64)
        }
        (T::Decimal128(p1, s1), T::Decimal128(p2, s2)) => {
            let scale = (*s1).max(*s2);
            let int_digits = (*p1 as i8 - *s1).max(*p2 as i8 - *s2);
            Some(T::Decimal128(
                ((int_digits + scale) as u8).min(MAX_DECIMAL_PRECISION),
                scale,
            ))
        }
        (T::Decimal128(p, s), i) | (i, T::Decimal128(p, s)) if i.is_integer() => {
            let digits = integer_digits(i)?;
            let int_digits = (*p as i8 - *s).max(digits as i8);
            Some(T::Decimal128(
                ((int_digits + *s) as u8).min(MAX_DECIMAL_PRECISION),
                *s,
            ))
        }
        (T::Date32, T::Timestamp(u, tz)) | (T::Timestamp(u, tz), T::Date32) => {
            Some(T::Timestamp(*u, tz.clone()))
        }
        _ => None,
    }
}

/// The result type of `left op right`, or why the operand types do not fit.
pub fn binary_type(op: BinaryOp, left: &DataType, right: &DataType) -> Result<DataType, String> {
    use DataType as T;
    let sym = op.symbol();
    match op {
        BinaryOp::And | BinaryOp::Or => {
            expect_boolean(left).map_err(|m| format!("left of {sym}: {m}"))?;
            expect_boolean(right).map_err(|m| format!("right of {sym}: {m}"))?;
            Ok(T::Boolean)
        }
        op if op.is_comparison() => match common_type(left, right) {
            Some(_) => Ok(T::Boolean),
            None => Err(format!("cannot compare {left} with {right}")),
        },
        _ => {
            // Time arithmetic, on the runtime's time types: TIMESTAMP(3), DATE, an INTERVAL
            // of milliseconds or of months.
            let ms = TimeUnit::Millisecond;
            match (op, left, right) {
                (BinaryOp::Plus | BinaryOp::Minus, T::Timestamp(u, tz), r)
                    if *u == ms && is_interval(r) =>
                {
                    return Ok(T::Timestamp(*u, tz.clone()));
                }
                (BinaryOp::Plus, l, T::Timestamp(u, tz)) if *u == ms && is_interval(l) => {
                    return Ok(T::Timestamp(*u, tz.clone()));
                }
                (BinaryOp::Plus | BinaryOp::Minus, T::Date32, r) if is_interval(r) => {
                    return Ok(T::Date32);
                }
                (BinaryOp::Minus, T::Timestamp(u, _), T::Timestamp(v, _))
                    if *u == ms && *v == ms =>
                {
                    return Ok(T::Duration(*u));
                }
                (_, l, r) if is_time(l) || is_time(r) => {
                    return Err(format!(
                        "{sym} is not defined for {left} and {right}; time arithmetic takes \
                         TIMESTAMP(3) or DATE with an INTERVAL (milliseconds or months), or \
                         TIMESTAMP(3) - TIMESTAMP(3); cast the operands"
                    ));
                }
                _ => {}
            }
            if !(left.is_numeric() || *left == T::Null)
                || !(right.is_numeric() || *right == T::Null)
            {
                return Err(format!("{sym} needs numbers, got {left} and {right}"));
            }
            match (left, right) {
                (T::Decimal128(p1, s1), T::Decimal128(p2, s2)) => {
                    Ok(decimal_arithmetic(op, (*p1, *s1), (*p2, *s2)))
                }
                (T::Decimal128(p, s), i) if i.is_integer() => Ok(decimal_arithmetic(
                    op,
                    (*p, *s),
                    (integer_digits(i).unwrap_or(19), 0),
                )),
                (i, T::Decimal128(p, s)) if i.is_integer() => Ok(decimal_arithmetic(
                    op,
                    (integer_digits(i).unwrap_or(19), 0),
                    (*p, *s),
                )),
                _ => common_type(left, right)
                    .ok_or_else(|| format!("{sym} needs numbers, got {left} and {right}")),
            }
        }
    }
}

fn is_interval(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Duration(TimeUnit::Millisecond) | DataType::Interval(IntervalUnit::YearMonth)
    )
}

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Duration(_)
            | DataType::Interval(_)
            | DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Date64
    )
}

/// The decimal type of `a op b` for decimals `(precision, scale)`, as SQL defines it (capped at
/// 38 digits). The runtime's decimal kernels compute at exactly this type.
pub fn decimal_arithmetic(op: BinaryOp, left: (u8, i8), right: (u8, i8)) -> DataType {
    rivulet_runtime::relational::expr::decimal_arithmetic_type(
        crate::physical::expr::binary_operator(op),
        left,
        right,
    )
}

/// The timestamp type the runtime normalises to.
pub fn timestamp_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}
