//! The expression DSL: `col("a")`, `lit(3)`, aggregates and functions.

use std::sync::Arc;

use rivulet_optimizer::expr::functions::DatePart;
use rivulet_optimizer::{AggregateFunction, BuiltinFunction, Column, Expr, ScalarValue};
use rivulet_runtime::relational::{AggregateUdf, ScalarUdf, WindowTvf};

pub use rivulet_optimizer::expr::when;

/// The column `name`; `"table.name"` qualifies it.
pub fn col(name: &str) -> Expr {
    Expr::Column(Column::new(name))
}

/// A column of the enclosing query, inside a correlated subquery (`exists`, scalar subqueries).
pub fn outer_col(name: &str) -> Expr {
    Expr::OuterColumn(Column::new(name))
}

/// A constant.
pub fn lit(value: impl Into<ScalarValue>) -> Expr {
    Expr::Literal(value.into())
}

/// A typed null.
pub fn null(data_type: arrow::datatypes::DataType) -> Expr {
    Expr::Literal(ScalarValue::Null(data_type))
}

/// A `DECIMAL(precision, scale)` constant from its unscaled value: `decimal(1234, 10, 2)` is
/// `12.34`.
pub fn decimal(value: i128, precision: u8, scale: i8) -> Expr {
    Expr::Literal(ScalarValue::Decimal128 {
        value,
        precision,
        scale,
    })
}

/// A `DATE` constant from `"YYYY-MM-DD"`.
///
/// # Panics
/// When the text is not a valid date; dates in code are constants, so this is a programming
/// error.
pub fn date(text: &str) -> Expr {
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("date({text:?}): {e}; write dates as YYYY-MM-DD"));
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    Expr::Literal(ScalarValue::Date32((day - epoch).num_days() as i32))
}

/// A `TIMESTAMP(3)` constant from milliseconds since the epoch.
pub fn timestamp_ms(ms: i64) -> Expr {
    Expr::Literal(ScalarValue::TimestampMs(ms))
}

/// An `INTERVAL` of milliseconds (day-time).
pub fn interval_ms(ms: i64) -> Expr {
    Expr::Literal(ScalarValue::DurationMs(ms))
}

/// An `INTERVAL` of days.
pub fn interval_days(days: i64) -> Expr {
    interval_ms(days * 86_400_000)
}

/// An `INTERVAL` of months (year-month).
pub fn interval_months(months: i32) -> Expr {
    Expr::Literal(ScalarValue::IntervalMonths(months))
}

fn agg(func: AggregateFunction, args: Vec<Expr>) -> Expr {
    Expr::aggregate(func, args)
}

/// `COUNT(x)`: the non-null values.
pub fn count(x: Expr) -> Expr {
    agg(AggregateFunction::Count, vec![x])
}

/// `COUNT(*)`: the rows.
pub fn count_star() -> Expr {
    agg(AggregateFunction::Count, vec![])
}

/// `COUNT(DISTINCT x)`.
pub fn count_distinct(x: Expr) -> Expr {
    count(x).distinct()
}

/// `SUM(x)`.
pub fn sum(x: Expr) -> Expr {
    agg(AggregateFunction::Sum, vec![x])
}

/// `AVG(x)`.
pub fn avg(x: Expr) -> Expr {
    agg(AggregateFunction::Avg, vec![x])
}

/// `MIN(x)`.
pub fn min(x: Expr) -> Expr {
    agg(AggregateFunction::Min, vec![x])
}

/// `MAX(x)`.
pub fn max(x: Expr) -> Expr {
    agg(AggregateFunction::Max, vec![x])
}

/// A user aggregate function call.
pub fn aggregate_udf(udf: Arc<dyn AggregateUdf>, args: Vec<Expr>) -> Expr {
    agg(AggregateFunction::User(udf), args)
}

/// A scalar user function call.
pub fn call(udf: Arc<dyn ScalarUdf>, args: Vec<Expr>) -> Expr {
    Expr::ScalarUdf { udf, args }
}

fn f(func: BuiltinFunction, args: Vec<Expr>) -> Expr {
    Expr::Function { func, args }
}

macro_rules! unary_functions {
    ($($(#[$doc:meta])* $name:ident => $func:expr),* $(,)?) => {
        $($(#[$doc])* pub fn $name(x: Expr) -> Expr { f($func, vec![x]) })*
    };
}

unary_functions! {
    /// `UPPER(s)`.
    upper => BuiltinFunction::Upper,
    /// `LOWER(s)`.
    lower => BuiltinFunction::Lower,
    /// `TRIM(s)`.
    trim => BuiltinFunction::Trim,
    /// `LTRIM(s)`.
    ltrim => BuiltinFunction::LTrim,
    /// `RTRIM(s)`.
    rtrim => BuiltinFunction::RTrim,
    /// `CHAR_LENGTH(s)`.
    char_length => BuiltinFunction::CharLength,
    /// `ABS(x)`.
    abs => BuiltinFunction::Abs,
    /// `CEIL(x)`.
    ceil => BuiltinFunction::Ceil,
    /// `FLOOR(x)`.
    floor => BuiltinFunction::Floor,
    /// `SQRT(x)`.
    sqrt => BuiltinFunction::Sqrt,
    /// `LN(x)`.
    ln => BuiltinFunction::Ln,
    /// `LOG10(x)`.
    log10 => BuiltinFunction::Log10,
    /// `EXP(x)`.
    exp => BuiltinFunction::Exp,
    /// `SIGN(x)`.
    sign => BuiltinFunction::Sign,
    /// `EXTRACT(YEAR FROM t)`.
    year => BuiltinFunction::Extract(DatePart::Year),
    /// `EXTRACT(QUARTER FROM t)`.
    quarter => BuiltinFunction::Extract(DatePart::Quarter),
    /// `EXTRACT(MONTH FROM t)`.
    month => BuiltinFunction::Extract(DatePart::Month),
    /// `EXTRACT(DAY FROM t)`.
    day => BuiltinFunction::Extract(DatePart::Day),
    /// `EXTRACT(DOW FROM t)`: 1 (Sunday) to 7.
    day_of_week => BuiltinFunction::Extract(DatePart::DayOfWeek),
    /// `EXTRACT(DOY FROM t)`.
    day_of_year => BuiltinFunction::Extract(DatePart::DayOfYear),
    /// `EXTRACT(HOUR FROM t)`.
    hour => BuiltinFunction::Extract(DatePart::Hour),
    /// `EXTRACT(MINUTE FROM t)`.
    minute => BuiltinFunction::Extract(DatePart::Minute),
    /// `EXTRACT(SECOND FROM t)`.
    second => BuiltinFunction::Extract(DatePart::Second),
    /// `TO_TIMESTAMP(s)`.
    to_timestamp => BuiltinFunction::ToTimestamp,
    /// `TO_DATE(s)`.
    to_date => BuiltinFunction::ToDate,
}

/// `SUBSTRING(s FROM start FOR length)`, 1-based.
pub fn substring(s: Expr, start: i64, length: Option<i64>) -> Expr {
    let mut args = vec![s, lit(start)];
    args.extend(length.map(lit));
    f(BuiltinFunction::Substring, args)
}

/// `CONCAT(a, b, ...)`.
pub fn concat(args: impl IntoIterator<Item = Expr>) -> Expr {
    f(BuiltinFunction::Concat, args.into_iter().collect())
}

/// `REGEXP_EXTRACT(s, pattern, group)`.
pub fn regexp_extract(s: Expr, pattern: &str, group: i64) -> Expr {
    f(
        BuiltinFunction::RegexpExtract,
        vec![s, lit(pattern), lit(group)],
    )
}

/// `SPLIT_INDEX(s, delimiter, index)`: the 0-based piece.
pub fn split_index(s: Expr, delimiter: &str, index: i64) -> Expr {
    f(
        BuiltinFunction::SplitIndex,
        vec![s, lit(delimiter), lit(index)],
    )
}

/// `REPLACE(s, from, to)`.
pub fn replace(s: Expr, from: &str, to: &str) -> Expr {
    f(BuiltinFunction::Replace, vec![s, lit(from), lit(to)])
}

/// `POSITION(needle IN s)`.
pub fn position(needle: Expr, s: Expr) -> Expr {
    f(BuiltinFunction::Position, vec![needle, s])
}

/// `ROUND(x, digits)`.
pub fn round(x: Expr, digits: i64) -> Expr {
    f(BuiltinFunction::Round, vec![x, lit(digits)])
}

/// `POWER(x, y)`.
pub fn power(x: Expr, y: Expr) -> Expr {
    f(BuiltinFunction::Power, vec![x, y])
}

/// `COALESCE(a, b, ...)`.
pub fn coalesce(args: impl IntoIterator<Item = Expr>) -> Expr {
    f(BuiltinFunction::Coalesce, args.into_iter().collect())
}

/// `NULLIF(a, b)`.
pub fn nullif(a: Expr, b: Expr) -> Expr {
    f(BuiltinFunction::NullIf, vec![a, b])
}

/// `GREATEST(a, b, ...)`.
pub fn greatest(args: impl IntoIterator<Item = Expr>) -> Expr {
    f(BuiltinFunction::Greatest, args.into_iter().collect())
}

/// `LEAST(a, b, ...)`.
pub fn least(args: impl IntoIterator<Item = Expr>) -> Expr {
    f(BuiltinFunction::Least, args.into_iter().collect())
}

/// `DATE_FORMAT(t, pattern)` with a Java-style pattern (`yyyy-MM-dd HH:mm:ss`).
pub fn date_format(t: Expr, pattern: &str) -> Expr {
    f(BuiltinFunction::DateFormat, vec![t, lit(pattern)])
}

/// `EXISTS (subquery)`; correlate it with [`outer_col`].
pub fn exists(subquery: &crate::Table) -> Expr {
    Expr::Exists {
        subquery: Arc::clone(subquery.plan()),
        negated: false,
    }
}

/// `NOT EXISTS (subquery)`.
pub fn not_exists(subquery: &crate::Table) -> Expr {
    Expr::Exists {
        subquery: Arc::clone(subquery.plan()),
        negated: true,
    }
}

/// `x IN (subquery)` for a one-column subquery.
pub fn in_table(x: Expr, subquery: &crate::Table) -> Expr {
    Expr::InSubquery {
        expr: Box::new(x),
        subquery: Arc::clone(subquery.plan()),
        negated: false,
    }
}

/// `x NOT IN (subquery)`.
pub fn not_in_table(x: Expr, subquery: &crate::Table) -> Expr {
    Expr::InSubquery {
        expr: Box::new(x),
        subquery: Arc::clone(subquery.plan()),
        negated: true,
    }
}

/// A one-row, one-column subquery used as a value; correlate it with [`outer_col`].
pub fn scalar_subquery(subquery: &crate::Table) -> Expr {
    Expr::ScalarSubquery(Arc::clone(subquery.plan()))
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `TUMBLE(time, size)`: windows of `size`, back to back. Shift their starts with
/// [`WindowTvf::with_offset`].
pub fn tumble(size: std::time::Duration) -> WindowTvf {
    WindowTvf::Tumble {
        size: millis(size),
        offset: 0,
    }
}

/// `HOP(time, slide, size)`: windows of `size` starting every `slide` (`size` a multiple of
/// `slide`).
pub fn hop(slide: std::time::Duration, size: std::time::Duration) -> WindowTvf {
    WindowTvf::Hop {
        slide: millis(slide),
        size: millis(size),
        offset: 0,
    }
}

/// `CUMULATE(time, step, max_size)`: windows of `max_size`, each also emitted every `step` as it
/// grows.
pub fn cumulate(step: std::time::Duration, max_size: std::time::Duration) -> WindowTvf {
    WindowTvf::Cumulate {
        step: millis(step),
        max_size: millis(max_size),
        offset: 0,
    }
}

/// `SESSION(time, gap)`: per group key, rows less than `gap` apart share a window; only valid
/// under a window aggregation.
pub fn session(gap: std::time::Duration) -> WindowTvf {
    WindowTvf::Session { gap: millis(gap) }
}
