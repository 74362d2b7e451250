//! The operator methods of [`Expr`]: comparisons, boolean logic, arithmetic, casts, `CASE`.

use std::ops;

use arrow::datatypes::DataType;
use rivulet_runtime::relational::ScalarValue;

use super::{AggregateFunction, BinaryOp, Expr, SortExpr};

impl Expr {
    fn binary(self, op: BinaryOp, other: impl Into<Expr>) -> Expr {
        Expr::Binary {
            left: Box::new(self),
            op,
            right: Box::new(other.into()),
        }
    }

    /// The same expression under the output name `name`.
    pub fn alias(self, name: impl Into<String>) -> Expr {
        Expr::Alias(Box::new(self.unalias().clone()), name.into())
    }

    /// `self = other`.
    pub fn eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Eq, other)
    }

    /// `self <> other`.
    pub fn not_eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::NotEq, other)
    }

    /// `self < other`.
    pub fn lt(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Lt, other)
    }

    /// `self <= other`.
    pub fn lt_eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::LtEq, other)
    }

    /// `self > other`.
    pub fn gt(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Gt, other)
    }

    /// `self >= other`.
    pub fn gt_eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::GtEq, other)
    }

    /// `self IS NOT DISTINCT FROM other`: equal, or both null.
    pub fn is_not_distinct_from(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::IsNotDistinctFrom, other)
    }

    /// `self BETWEEN low AND high` (both bounds included).
    pub fn between(self, low: impl Into<Expr>, high: impl Into<Expr>) -> Expr {
        self.clone().gt_eq(low).and(self.lt_eq(high))
    }

    /// `self AND other` (three-valued: `FALSE AND NULL` is `FALSE`).
    pub fn and(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::And, other)
    }

    /// `self OR other` (three-valued: `TRUE OR NULL` is `TRUE`).
    pub fn or(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Or, other)
    }

    /// `NOT self` (also `!self`).
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// `self IS NULL`.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }

    /// `self IS NOT NULL`.
    pub fn is_not_null(self) -> Expr {
        Expr::IsNotNull(Box::new(self))
    }

    /// `CAST(self AS to)`: a value that does not convert is bad data (see the bad-data policy).
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
            try_cast: false,
        }
    }

    /// `TRY_CAST(self AS to)`: a value that does not convert becomes null.
    pub fn try_cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
            try_cast: true,
        }
    }

    /// `self IN (list)`.
    pub fn in_list(self, list: impl IntoIterator<Item = impl Into<Expr>>) -> Expr {
        Expr::InList {
            expr: Box::new(self),
            list: list.into_iter().map(Into::into).collect(),
            negated: false,
        }
    }

    /// `self NOT IN (list)`.
    pub fn not_in_list(self, list: impl IntoIterator<Item = impl Into<Expr>>) -> Expr {
        Expr::InList {
            expr: Box::new(self),
            list: list.into_iter().map(Into::into).collect(),
            negated: true,
        }
    }

    /// `self LIKE pattern`.
    pub fn like(self, pattern: impl Into<Expr>) -> Expr {
        Expr::Like {
            expr: Box::new(self),
            pattern: Box::new(pattern.into()),
            negated: false,
            case_insensitive: false,
        }
    }

    /// `self NOT LIKE pattern`.
    pub fn not_like(self, pattern: impl Into<Expr>) -> Expr {
        Expr::Like {
            expr: Box::new(self),
            pattern: Box::new(pattern.into()),
            negated: true,
            case_insensitive: false,
        }
    }

    /// `self ILIKE pattern` (case-insensitive `LIKE`).
    pub fn ilike(self, pattern: impl Into<Expr>) -> Expr {
        Expr::Like {
            expr: Box::new(self),
            pattern: Box::new(pattern.into()),
            negated: false,
            case_insensitive: true,
        }
    }

    /// On an aggregate: count each distinct argument value once (`SUM(DISTINCT x)`).
    pub fn distinct(self) -> Expr {
        match self {
            Expr::Aggregate {
                func, args, filter, ..
            } => Expr::Aggregate {
                func,
                args,
                distinct: true,
                filter,
            },
            Expr::Alias(e, name) => e.distinct().alias(name),
            other => other,
        }
    }

    /// On an aggregate: aggregate only the rows where `predicate` holds
    /// (`COUNT(*) FILTER (WHERE ..)`).
    pub fn filter(self, predicate: impl Into<Expr>) -> Expr {
        match self {
            Expr::Aggregate {
                func,
                args,
                distinct,
                ..
            } => Expr::Aggregate {
                func,
                args,
                distinct,
                filter: Some(Box::new(predicate.into())),
            },
            Expr::Alias(e, name) => e.filter(predicate).alias(name),
            other => other,
        }
    }

    /// Sort ascending, nulls last.
    pub fn asc(self) -> SortExpr {
        SortExpr {
            expr: self,
            ascending: true,
            nulls_first: false,
        }
    }

    /// Sort descending, nulls first.
    pub fn desc(self) -> SortExpr {
        SortExpr {
            expr: self,
            ascending: false,
            nulls_first: true,
        }
    }

    /// An aggregate call.
    pub fn aggregate(func: AggregateFunction, args: Vec<Expr>) -> Expr {
        Expr::Aggregate {
            func,
            args,
            distinct: false,
            filter: None,
        }
    }
}

impl SortExpr {
    /// The same key with nulls first.
    pub fn nulls_first(mut self) -> SortExpr {
        self.nulls_first = true;
        self
    }

    /// The same key with nulls last.
    pub fn nulls_last(mut self) -> SortExpr {
        self.nulls_first = false;
        self
    }
}

impl From<SortExpr> for Expr {
    fn from(s: SortExpr) -> Expr {
        s.expr
    }
}

macro_rules! arithmetic {
    ($($trait:ident $method:ident $op:ident),*) => {
        $(impl<T: Into<Expr>> ops::$trait<T> for Expr {
            type Output = Expr;
            fn $method(self, rhs: T) -> Expr {
                self.binary(BinaryOp::$op, rhs)
            }
        })*
    };
}

arithmetic!(Add add Plus, Sub sub Minus, Mul mul Multiply, Div div Divide, Rem rem Modulo);

impl ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::Negative(Box::new(self))
    }
}

impl ops::Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

macro_rules! literal_into_expr {
    ($($t:ty),*) => {
        $(impl From<$t> for Expr {
            fn from(v: $t) -> Expr {
                Expr::Literal(ScalarValue::from(v))
            }
        })*
    };
}

literal_into_expr!(
    bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, String, &str
);

impl From<ScalarValue> for Expr {
    fn from(v: ScalarValue) -> Expr {
        Expr::Literal(v)
    }
}

/// `CASE WHEN condition THEN ..`: start with [`when`], add branches, finish with
/// [`CaseBuilder::otherwise`] or [`CaseBuilder::end`].
#[derive(Debug, Clone)]
pub struct CaseBuilder {
    branches: Vec<(Expr, Expr)>,
    pending: Option<Expr>,
}

/// Starts a `CASE WHEN condition THEN ..` expression.
pub fn when(condition: impl Into<Expr>) -> CaseBuilder {
    CaseBuilder {
        branches: Vec::new(),
        pending: Some(condition.into()),
    }
}

impl CaseBuilder {
    /// The value when the last condition holds.
    pub fn then(mut self, value: impl Into<Expr>) -> CaseBuilder {
        let condition = self
            .pending
            .take()
            .unwrap_or(Expr::Literal(ScalarValue::Boolean(true)));
        self.branches.push((condition, value.into()));
        self
    }

    /// Another condition, tried when the earlier ones do not hold.
    pub fn when(mut self, condition: impl Into<Expr>) -> CaseBuilder {
        self.pending = Some(condition.into());
        self
    }

    /// The value when no condition holds.
    pub fn otherwise(self, value: impl Into<Expr>) -> Expr {
        Expr::Case {
            branches: self.branches,
            otherwise: Some(Box::new(value.into())),
        }
    }

    /// Ends the expression; the value is null when no condition holds.
    pub fn end(self) -> Expr {
        Expr::Case {
            branches: self.branches,
            otherwise: None,
        }
    }
}
