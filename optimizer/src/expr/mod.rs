//! Logical expressions: what a column of a plan node computes.
//!
//! An [`Expr`] refers to columns by name ([`Column`]); a plan node resolves and types its
//! expressions against its input's [`PlanSchema`](crate::PlanSchema) when it is built, so an
//! unknown column or a type mismatch fails at the call that introduced it.
//!
//! - `builder`: the operator methods (`a.gt(b)`, `a + b`, `a.alias("x")`, ...).
//! - `typing`: type inference with SQL's null semantics and numeric coercion.
//! - `functions`: the built-in scalar functions: their names, argument checks and result types.

mod builder;
pub mod functions;
pub mod typing;

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use rivulet_runtime::relational::{AggregateUdf, ScalarUdf, ScalarValue};

pub use builder::{CaseBuilder, when};
pub use functions::BuiltinFunction;

use crate::plan::LogicalPlan;

/// A reference to a column by name, optionally qualified by its table or alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Column {
    /// The table or alias, when given.
    pub relation: Option<String>,
    /// The column's name.
    pub name: String,
}

impl Column {
    /// The column `name` (which may be written `"table.name"`).
    pub fn new(name: impl Into<String>) -> Self {
        Column {
            relation: None,
            name: name.into(),
        }
    }

    /// The column `name` of `relation`.
    pub fn qualified(relation: impl Into<String>, name: impl Into<String>) -> Self {
        Column {
            relation: Some(relation.into()),
            name: name.into(),
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(r) => write!(f, "{r}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Multiply,
    /// `/`
    Divide,
    /// `%`
    Modulo,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND` (three-valued)
    And,
    /// `OR` (three-valued)
    Or,
    /// `IS NOT DISTINCT FROM`: equality where two nulls are equal.
    IsNotDistinctFrom,
}

impl BinaryOp {
    /// The operator as written in SQL.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Plus => "+",
            BinaryOp::Minus => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::IsNotDistinctFrom => "IS NOT DISTINCT FROM",
        }
    }

    /// Whether it compares its operands and yields a boolean.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
                | BinaryOp::IsNotDistinctFrom
        )
    }

    /// Whether it is arithmetic.
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Plus
                | BinaryOp::Minus
                | BinaryOp::Multiply
                | BinaryOp::Divide
                | BinaryOp::Modulo
        )
    }
}

/// An aggregate function.
#[derive(Debug, Clone)]
pub enum AggregateFunction {
    /// `COUNT(x)` (non-null values), or `COUNT(*)` without arguments.
    Count,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)`.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// A user aggregate function.
    User(Arc<dyn AggregateUdf>),
}

impl AggregateFunction {
    /// The function's name.
    pub fn name(&self) -> &str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::User(f) => f.name(),
        }
    }
}

impl PartialEq for AggregateFunction {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AggregateFunction::User(a), AggregateFunction::User(b)) => Arc::ptr_eq(a, b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// A sort key: an expression, its direction, and where nulls go.
#[derive(Debug, Clone, PartialEq)]
pub struct SortExpr {
    /// What to sort by.
    pub expr: Expr,
    /// Ascending (the default) or descending.
    pub ascending: bool,
    /// Nulls before other values (the default for descending order, as in Flink and Postgres).
    pub nulls_first: bool,
}

/// A logical expression.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Expr {
    /// A column of the input.
    Column(Column),
    /// A column of the enclosing query, inside a correlated subquery.
    OuterColumn(Column),
    /// A constant.
    Literal(ScalarValue),
    /// An expression under another name.
    Alias(Box<Expr>, String),
    /// `left op right`.
    Binary {
        /// The left operand.
        left: Box<Expr>,
        /// The operator.
        op: BinaryOp,
        /// The right operand.
        right: Box<Expr>,
    },
    /// `NOT x` (three-valued).
    Not(Box<Expr>),
    /// `-x`.
    Negative(Box<Expr>),
    /// `x IS NULL`.
    IsNull(Box<Expr>),
    /// `x IS NOT NULL`.
    IsNotNull(Box<Expr>),
    /// `CAST(x AS type)`, or `TRY_CAST` (a failed conversion is null instead of an error).
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// The target type.
        to: DataType,
        /// `TRY_CAST`.
        try_cast: bool,
    },
    /// `CASE WHEN c1 THEN v1 ... ELSE e END`.
    Case {
        /// `(condition, value)` pairs, tried in order.
        branches: Vec<(Expr, Expr)>,
        /// The value when no condition holds (null when absent).
        otherwise: Option<Box<Expr>>,
    },
    /// `x [NOT] IN (v1, v2, ...)`.
    InList {
        /// The value.
        expr: Box<Expr>,
        /// The list.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `x [NOT] LIKE pattern` (`%` any run, `_` one character), optionally case-insensitive.
    Like {
        /// The value.
        expr: Box<Expr>,
        /// The pattern.
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// A built-in scalar function.
    Function {
        /// The function.
        func: BuiltinFunction,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// A scalar user function.
    ScalarUdf {
        /// The function.
        udf: Arc<dyn ScalarUdf>,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// An aggregate: allowed only in `aggregate(..)`.
    Aggregate {
        /// The function.
        func: AggregateFunction,
        /// Its arguments (none for `COUNT(*)`).
        args: Vec<Expr>,
        /// `DISTINCT`: each distinct argument value counts once.
        distinct: bool,
        /// `FILTER (WHERE ..)`: only rows where this holds are aggregated.
        filter: Option<Box<Expr>>,
    },
    /// `x [NOT] IN (subquery)`.
    InSubquery {
        /// The value.
        expr: Box<Expr>,
        /// A one-column subquery.
        subquery: Arc<LogicalPlan>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `[NOT] EXISTS (subquery)`, usually correlated through [`Expr::OuterColumn`].
    Exists {
        /// The subquery.
        subquery: Arc<LogicalPlan>,
        /// `NOT EXISTS`.
        negated: bool,
    },
    /// A subquery returning one row and one column, used as a value.
    ScalarSubquery(Arc<LogicalPlan>),
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        // Structural equality through the displayed form, with user functions and subqueries
        // compared by identity.
        match (self, other) {
            (Expr::ScalarUdf { udf: a, args: x }, Expr::ScalarUdf { udf: b, args: y }) => {
                Arc::ptr_eq(a, b) && x == y
            }
            (Expr::InSubquery { subquery: a, .. }, Expr::InSubquery { subquery: b, .. })
            | (Expr::Exists { subquery: a, .. }, Expr::Exists { subquery: b, .. })
            | (Expr::ScalarSubquery(a), Expr::ScalarSubquery(b)) => {
                Arc::ptr_eq(a, b) && self.to_string() == other.to_string()
            }
            _ => {
                std::mem::discriminant(self) == std::mem::discriminant(other)
                    && self.to_string() == other.to_string()
            }
        }
    }
}

impl Expr {
    /// The name of the output column this expression gives when it is not aliased.
    pub fn output_name(&self) -> String {
        match self {
            Expr::Column(c) | Expr::OuterColumn(c) => c.name.clone(),
            Expr::Alias(_, name) => name.clone(),
            other => other.to_string(),
        }
    }

    /// The expression without a top-level alias.
    pub fn unalias(&self) -> &Expr {
        match self {
            Expr::Alias(e, _) => e.unalias(),
            other => other,
        }
    }

    /// The direct sub-expressions.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_)
            | Expr::OuterColumn(_)
            | Expr::Literal(_)
            | Expr::Exists { .. }
            | Expr::ScalarSubquery(_) => vec![],
            Expr::Alias(e, _)
            | Expr::Not(e)
            | Expr::Negative(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::Cast { expr: e, .. }
            | Expr::InSubquery { expr: e, .. } => vec![e],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::Case {
                branches,
                otherwise,
            } => branches
                .iter()
                .flat_map(|(c, v)| [c, v])
                .chain(otherwise.as_deref())
                .collect(),
            Expr::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::Function { args, .. } | Expr::ScalarUdf { args, .. } => args.iter().collect(),
            Expr::Aggregate { args, filter, .. } => args.iter().chain(filter.as_deref()).collect(),
        }
    }

    /// Whether `pred` holds for this expression or any sub-expression.
    pub fn any(&self, pred: &mut impl FnMut(&Expr) -> bool) -> bool {
        pred(self) || self.children().into_iter().any(|c| c.any(pred))
    }

    /// Whether the expression contains an aggregate.
    pub fn contains_aggregate(&self) -> bool {
        self.any(&mut |e| matches!(e, Expr::Aggregate { .. }))
    }

    /// Whether the expression contains a subquery.
    pub fn contains_subquery(&self) -> bool {
        self.any(&mut |e| {
            matches!(
                e,
                Expr::InSubquery { .. } | Expr::Exists { .. } | Expr::ScalarSubquery(_)
            )
        })
    }

    /// The columns it refers to (not those of subqueries), in first-use order.
    pub fn columns(&self) -> Vec<Column> {
        let mut out = Vec::new();
        self.any(&mut |e| {
            if let Expr::Column(c) = e
                && !out.contains(c)
            {
                out.push(c.clone());
            }
            false
        });
        out
    }

    /// Rebuilds the expression bottom-up, replacing each node by `f`'s result.
    pub fn transform(self, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
        let rebuilt = self.transform_children(&mut |c| c.transform(f));
        f(rebuilt)
    }

    /// The same node with each direct child replaced by `f`'s result.
    pub fn transform_children(self, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
        match self {
            leaf @ (Expr::Column(_)
            | Expr::OuterColumn(_)
            | Expr::Literal(_)
            | Expr::Exists { .. }
            | Expr::ScalarSubquery(_)) => leaf,
            Expr::Alias(e, n) => Expr::Alias(Box::new(e.pipe(f)), n),
            Expr::Not(e) => Expr::Not(Box::new(e.pipe(f))),
            Expr::Negative(e) => Expr::Negative(Box::new(e.pipe(f))),
            Expr::IsNull(e) => Expr::IsNull(Box::new(e.pipe(f))),
            Expr::IsNotNull(e) => Expr::IsNotNull(Box::new(e.pipe(f))),
            Expr::Cast { expr, to, try_cast } => Expr::Cast {
                expr: Box::new(expr.pipe(f)),
                to,
                try_cast,
            },
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => Expr::InSubquery {
                expr: Box::new(expr.pipe(f)),
                subquery,
                negated,
            },
            Expr::Binary { left, op, right } => Expr::Binary {
                left: Box::new(left.pipe(f)),
                op,
                right: Box::new(right.pipe(f)),
            },
            Expr::Case {
                branches,
                otherwise,
            } => Expr::Case {
                branches: branches
                    .into_iter()
                    .map(|(c, v)| (c.pipe(f), v.pipe(f)))
                    .collect(),
                otherwise: otherwise.map(|e| Box::new(e.pipe(f))),
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: Box::new(expr.pipe(f)),
                list: list.into_iter().map(|e| e.pipe(f)).collect(),
                negated,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => Expr::Like {
                expr: Box::new(expr.pipe(f)),
                pattern: Box::new(pattern.pipe(f)),
                negated,
                case_insensitive,
            },
            Expr::Function { func, args } => Expr::Function {
                func,
                args: args.into_iter().map(|e| e.pipe(f)).collect(),
            },
            Expr::ScalarUdf { udf, args } => Expr::ScalarUdf {
                udf,
                args: args.into_iter().map(|e| e.pipe(f)).collect(),
            },
            Expr::Aggregate {
                func,
                args,
                distinct,
                filter,
            } => Expr::Aggregate {
                func,
                args: args.into_iter().map(|e| e.pipe(f)).collect(),
                distinct,
                filter: filter.map(|e| Box::new(e.pipe(f))),
            },
        }
    }

    fn pipe(self, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
        f(self)
    }
}

fn comma_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) => write!(f, "{c}"),
            Expr::OuterColumn(c) => write!(f, "outer({c})"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Alias(e, name) => write!(f, "{e} AS {name}"),
            Expr::Binary { left, op, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Negative(e) => write!(f, "-{e}"),
            Expr::IsNull(e) => write!(f, "{e} IS NULL"),
            Expr::IsNotNull(e) => write!(f, "{e} IS NOT NULL"),
            Expr::Cast { expr, to, try_cast } => {
                let name = if *try_cast { "TRY_CAST" } else { "CAST" };
                write!(f, "{name}({expr} AS {to})")
            }
            Expr::Case {
                branches,
                otherwise,
            } => {
                f.write_str("CASE")?;
                for (c, v) in branches {
                    write!(f, " WHEN {c} THEN {v}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                write!(f, "{expr} {}IN (", if *negated { "NOT " } else { "" })?;
                comma_list(f, list)?;
                f.write_str(")")
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(f, "{expr} {not}{op} {pattern}")
            }
            Expr::Function { func, args } => {
                write!(f, "{}(", func.name())?;
                comma_list(f, args)?;
                f.write_str(")")
            }
            Expr::ScalarUdf { udf, args } => {
                write!(f, "{}(", udf.name())?;
                comma_list(f, args)?;
                f.write_str(")")
            }
            Expr::Aggregate {
                func,
                args,
                distinct,
                filter,
            } => {
                write!(f, "{}(", func.name())?;
                if *distinct {
                    f.write_str("DISTINCT ")?;
                }
                if args.is_empty() {
                    f.write_str("*")?;
                }
                comma_list(f, args)?;
                f.write_str(")")?;
                if let Some(filter) = filter {
                    write!(f, " FILTER (WHERE {filter})")?;
                }
                Ok(())
            }
            Expr::InSubquery { expr, negated, .. } => {
                write!(
                    f,
                    "{expr} {}IN (<subquery>)",
                    if *negated { "NOT " } else { "" }
                )
            }
            Expr::Exists { negated, .. } => {
                write!(
                    f,
                    "{}EXISTS (<subquery>)",
                    if *negated { "NOT " } else { "" }
                )
            }
            Expr::ScalarSubquery(_) => f.write_str("(<scalar subquery>)"),
        }
    }
}
