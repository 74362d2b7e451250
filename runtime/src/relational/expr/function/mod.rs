//! [`ScalarFunctionExpr`]: the built-in scalar functions, one family per module.
//!
//! - `string`: `UPPER`, `LOWER`, `SUBSTRING`, `CONCAT`, `TRIM`s, `CHAR_LENGTH`,
//!   `REGEXP_EXTRACT`, `SPLIT_INDEX`, `REPLACE`, `POSITION`.
//! - `math`: `ABS`, `CEIL`, `FLOOR`, `ROUND`, `SQRT`, `POWER`, `LN`, `LOG10`, `EXP`, `SIGN`.
//! - `conditional`: `COALESCE`, `NULLIF`, `GREATEST`, `LEAST`.
//! - `time`: `EXTRACT`, `DATE_FORMAT`, `TO_TIMESTAMP`, `TO_DATE`.

mod conditional;
mod math;
mod string;
mod time;

use std::fmt;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use parking_lot::Mutex;

use super::{ColumnarValue, EvalContext, EvalError, ExprError, PhysicalExpr, PhysicalExprRef};

/// A part of a date or timestamp, for `EXTRACT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatePart {
    /// The year.
    Year,
    /// The quarter, 1 to 4.
    Quarter,
    /// The month, 1 to 12.
    Month,
    /// The day of the month, 1 to 31.
    Day,
    /// The day of the week, 1 (Sunday) to 7 (Saturday), as Flink.
    DayOfWeek,
    /// The day of the year, 1 to 366.
    DayOfYear,
    /// The hour, 0 to 23.
    Hour,
    /// The minute, 0 to 59.
    Minute,
    /// The second, 0 to 59.
    Second,
}

/// A built-in scalar function, as the runtime evaluates it.
///
/// The semantics follow Flink's where Flink defines them:
/// - `SUBSTRING(s, start [, length])` counts characters from 1; positions before the first
///   character count toward `length` (`SUBSTRING('abc', 0, 2)` is `'a'`); a negative length
///   gives `''`.
/// - `CONCAT` is null when any argument is; non-string arguments are cast to strings.
/// - `TRIM`, `LTRIM`, `RTRIM` remove spaces.
/// - `REGEXP_EXTRACT(s, pattern [, group])`: group 0 (the whole match) by default, as Flink;
///   null when nothing matches or the group does not exist. An invalid pattern is bad data.
/// - `SPLIT_INDEX(s, delimiter, index)`: the 0-based piece, null when out of range.
/// - `POSITION(needle IN s)`: the 1-based character position, 0 when absent.
/// - `ROUND(x, d)` rounds half away from zero and keeps `x`'s type (a decimal keeps its
///   scale); `CEIL` and `FLOOR` keep it too. Overflow (`ABS` of the smallest integer, a decimal
///   rounded past its precision) is bad data.
/// - `SQRT`, `LN`, `LOG10`, `POWER` follow IEEE 754 (`SQRT(-1)` is NaN, `LN(0)` is -infinity).
/// - `GREATEST` and `LEAST` are null when any argument is.
/// - `EXTRACT` reads timestamps as UTC wall-clock time; day of week is 1 (Sunday) to 7.
/// - `DATE_FORMAT(t, pattern)` takes Java `DateTimeFormatter` letters (`yyyy MM dd HH mm ss
///   SSS`, quoted text); `TO_TIMESTAMP` parses `yyyy-MM-dd HH:mm:ss[.SSS]` and `TO_DATE`
///   `yyyy-MM-dd`. Unparseable text and unsupported pattern letters are bad data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ScalarFunction {
    /// `UPPER(s)`.
    Upper,
    /// `LOWER(s)`.
    Lower,
    /// `SUBSTRING(s, start [, length])`, 1-based.
    Substring,
    /// `CONCAT(a, b, ..)`: null if any argument is null.
    Concat,
    /// `TRIM(s)`: spaces at both ends.
    Trim,
    /// `LTRIM(s)`.
    LTrim,
    /// `RTRIM(s)`.
    RTrim,
    /// `CHAR_LENGTH(s)`: characters, not bytes.
    CharLength,
    /// `REGEXP_EXTRACT(s, pattern [, group])`.
    RegexpExtract,
    /// `SPLIT_INDEX(s, delimiter, index)`.
    SplitIndex,
    /// `REPLACE(s, from, to)`: every occurrence.
    Replace,
    /// `POSITION(needle IN s)`.
    Position,
    /// `ABS(x)`.
    Abs,
    /// `CEIL(x)`.
    Ceil,
    /// `FLOOR(x)`.
    Floor,
    /// `ROUND(x [, digits])`.
    Round,
    /// `SQRT(x)`.
    Sqrt,
    /// `POWER(x, y)`.
    Power,
    /// `LN(x)`.
    Ln,
    /// `LOG10(x)`.
    Log10,
    /// `EXP(x)`.
    Exp,
    /// `SIGN(x)`: -1, 0 or 1 in `x`'s type.
    Sign,
    /// `COALESCE(a, b, ..)`: the first non-null argument.
    Coalesce,
    /// `NULLIF(a, b)`: null when `a = b`, else `a`.
    NullIf,
    /// `GREATEST(a, b, ..)`.
    Greatest,
    /// `LEAST(a, b, ..)`.
    Least,
    /// `EXTRACT(part FROM t)`.
    Extract(DatePart),
    /// `DATE_FORMAT(t, pattern)`.
    DateFormat,
    /// `TO_TIMESTAMP(s)`.
    ToTimestamp,
    /// `TO_DATE(s)`.
    ToDate,
}

impl ScalarFunction {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        use ScalarFunction as F;
        match self {
            F::Upper => "upper",
            F::Lower => "lower",
            F::Substring => "substring",
            F::Concat => "concat",
            F::Trim => "trim",
            F::LTrim => "ltrim",
            F::RTrim => "rtrim",
            F::CharLength => "char_length",
            F::RegexpExtract => "regexp_extract",
            F::SplitIndex => "split_index",
            F::Replace => "replace",
            F::Position => "position",
            F::Abs => "abs",
            F::Ceil => "ceil",
            F::Floor => "floor",
            F::Round => "round",
            F::Sqrt => "sqrt",
            F::Power => "power",
            F::Ln => "ln",
            F::Log10 => "log10",
            F::Exp => "exp",
            F::Sign => "sign",
            F::Coalesce => "coalesce",
            F::NullIf => "nullif",
            F::Greatest => "greatest",
            F::Least => "least",
            F::Extract(DatePart::Year) => "extract_year",
            F::Extract(DatePart::Quarter) => "extract_quarter",
            F::Extract(DatePart::Month) => "extract_month",
            F::Extract(DatePart::Day) => "extract_day",
            F::Extract(DatePart::DayOfWeek) => "extract_dow",
            F::Extract(DatePart::DayOfYear) => "extract_doy",
            F::Extract(DatePart::Hour) => "extract_hour",
            F::Extract(DatePart::Minute) => "extract_minute",
            F::Extract(DatePart::Second) => "extract_second",
            F::DateFormat => "date_format",
            F::ToTimestamp => "to_timestamp",
            F::ToDate => "to_date",
        }
    }

    /// The result type for arguments of these types, or why they are not accepted.
    ///
    /// Arguments that meet in one type (`COALESCE`, `GREATEST`, `LEAST`) must already have it
    /// (or be null-typed); other arguments are converted as the function needs (integers of any
    /// width, any string type, any number for the floating-point functions).
    pub fn return_type(self, args: &[DataType]) -> Result<DataType, String> {
        use ScalarFunction as F;
        let name = self.name();
        let arity = |range: std::ops::RangeInclusive<usize>| {
            if range.contains(&args.len()) {
                Ok(())
            } else {
                let expected = match (*range.start(), *range.end()) {
                    (low, usize::MAX) => format!("at least {low}"),
                    (low, high) if low == high => low.to_string(),
                    (low, high) => format!("{low} to {high}"),
                };
                Err(format!(
                    "{name} takes {expected} arguments, got {}",
                    args.len()
                ))
            }
        };
        let check = |i: usize, ok: fn(&DataType) -> bool, what: &str| {
            if ok(&args[i]) || args[i] == DataType::Null {
                Ok(())
            } else {
                Err(format!(
                    "{name} needs {what} as argument {}, got {}",
                    i + 1,
                    args[i]
                ))
            }
        };
        let string =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let integer = |t: &DataType| t.is_integer();
        let number = |t: &DataType| t.is_numeric();
        let datetime = super::temporal::is_datetime;
        match self {
            F::Upper | F::Lower | F::Trim | F::LTrim | F::RTrim | F::CharLength => {
                arity(1..=1)?;
                check(0, string, "a STRING")?;
            }
            F::Substring => {
                arity(2..=3)?;
                check(0, string, "a STRING")?;
                (1..args.len()).try_for_each(|i| check(i, integer, "an integer"))?;
            }
            F::Concat => arity(1..=usize::MAX)?,
            F::RegexpExtract => {
                arity(2..=3)?;
                check(0, string, "a STRING")?;
                check(1, string, "a STRING")?;
                if args.len() == 3 {
                    check(2, integer, "an integer")?;
                }
            }
            F::SplitIndex => {
                arity(3..=3)?;
                check(0, string, "a STRING")?;
                check(1, string, "a STRING")?;
                check(2, integer, "an integer")?;
            }
            F::Replace => {
                arity(3..=3)?;
                (0..3).try_for_each(|i| check(i, string, "a STRING"))?;
            }
            F::Position => {
                arity(2..=2)?;
                (0..2).try_for_each(|i| check(i, string, "a STRING"))?;
            }
            F::Abs | F::Ceil | F::Floor | F::Sign | F::Sqrt | F::Ln | F::Log10 | F::Exp => {
                arity(1..=1)?;
                check(0, number, "a number")?;
            }
            F::Round => {
                arity(1..=2)?;
                check(0, number, "a number")?;
                if args.len() == 2 {
                    check(1, integer, "an integer")?;
                }
            }
            F::Power => {
                arity(2..=2)?;
                (0..2).try_for_each(|i| check(i, number, "a number"))?;
            }
            F::Coalesce | F::Greatest | F::Least => {
                arity(1..=usize::MAX)?;
                return one_type(name, args);
            }
            F::NullIf => {
                arity(2..=2)?;
                if args[0] != args[1] && args[0] != DataType::Null && args[1] != DataType::Null {
                    return Err(format!(
                        "nullif needs arguments of one type, got {} and {}",
                        args[0], args[1]
                    ));
                }
                return Ok(args[0].clone());
            }
            F::Extract(_) | F::DateFormat => {
                arity(if self == F::DateFormat { 2..=2 } else { 1..=1 })?;
                check(0, datetime, "a DATE or TIMESTAMP")?;
                if self == F::DateFormat {
                    check(1, string, "a STRING")?;
                }
            }
            F::ToTimestamp | F::ToDate => {
                arity(1..=1)?;
                check(0, string, "a STRING")?;
            }
        }
        Ok(match self {
            F::CharLength | F::Position => DataType::Int32,
            F::Abs | F::Ceil | F::Floor | F::Sign | F::Round => args[0].clone(),
            F::Sqrt | F::Ln | F::Log10 | F::Exp | F::Power => DataType::Float64,
            F::Extract(_) => DataType::Int64,
            F::ToTimestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            F::ToDate => DataType::Date32,
            _ => DataType::Utf8,
        })
    }

    /// Whether the result can be null, given the argument types and nullabilities: null
    /// arguments give a null result (except for `COALESCE`), and so do rows that are bad data
    /// under the null policy.
    pub fn nullable(self, args: &[(DataType, bool)]) -> bool {
        use ScalarFunction as F;
        let any = args.iter().any(|(_, n)| *n);
        let first = args.first().map(|(t, _)| t);
        let exact = |t: Option<&DataType>| {
            t.is_some_and(|t| t.is_integer() || matches!(t, DataType::Decimal128(_, _)))
        };
        match self {
            F::Coalesce => args.iter().all(|(_, n)| *n),
            F::RegexpExtract
            | F::SplitIndex
            | F::NullIf
            | F::DateFormat
            | F::ToTimestamp
            | F::ToDate => true,
            // Overflow of integers and decimals is bad data.
            F::Abs | F::Round => any || exact(first),
            F::Ceil | F::Floor => any || matches!(first, Some(DataType::Decimal128(_, _))),
            _ => any,
        }
    }
}

fn one_type(name: &str, args: &[DataType]) -> Result<DataType, String> {
    let mut t = DataType::Null;
    for a in args {
        if *a == DataType::Null {
            continue;
        }
        if t == DataType::Null {
            t = a.clone();
        } else if t != *a {
            return Err(format!(
                "{name} needs arguments of one type, got {t} and {a}"
            ));
        }
    }
    Ok(t)
}

/// A call of a built-in [`ScalarFunction`].
///
/// Arguments are evaluated first; when all are constants the function runs once on one row
/// and the result stays a scalar.
#[derive(Debug)]
pub struct ScalarFunctionExpr {
    func: ScalarFunction,
    args: Vec<PhysicalExprRef>,
    data_type: DataType,
    /// The last compiled pattern (`REGEXP_EXTRACT`) or translated format (`DATE_FORMAT`).
    cache: PatternCache,
}

impl ScalarFunctionExpr {
    /// `func(args..)`, or why the arguments do not fit.
    pub fn try_new(func: ScalarFunction, args: Vec<PhysicalExprRef>) -> Result<Self, ExprError> {
        let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
        let mut expr = ScalarFunctionExpr {
            func,
            args,
            data_type: DataType::Null,
            cache: PatternCache::default(),
        };
        expr.data_type = func
            .return_type(&types)
            .map_err(|message| ExprError::invalid(&expr, message))?;
        Ok(expr)
    }

    /// The function.
    pub fn func(&self) -> ScalarFunction {
        self.func
    }
}

impl fmt::Display for ScalarFunctionExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.func.name())?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str(")")
    }
}

/// Rows that failed while a kernel ran: `(row, message)`; the kernel wrote nulls for them.
pub(crate) type Failures = Vec<(usize, String)>;

/// The last pattern a function compiled, reused while the pattern stays the same (always, for
/// a constant pattern).
#[derive(Debug, Default)]
pub(crate) struct PatternCache {
    regex: Mutex<Option<(String, Result<regex::Regex, String>)>>,
    format: Mutex<Option<(String, Result<String, String>)>>,
}

impl PatternCache {
    /// `pattern` compiled, or why it does not compile.
    pub(crate) fn regex(&self, pattern: &str) -> Result<regex::Regex, String> {
        let mut cached = self.regex.lock();
        match &*cached {
            Some((p, compiled)) if p == pattern => compiled.clone(),
            _ => {
                let compiled = regex::Regex::new(pattern)
                    .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"));
                *cached = Some((pattern.to_owned(), compiled.clone()));
                compiled
            }
        }
    }

    /// A Java date pattern as a chrono format, or why it is not supported.
    pub(crate) fn format(&self, pattern: &str) -> Result<String, String> {
        let mut cached = self.format.lock();
        match &*cached {
            Some((p, translated)) if p == pattern => translated.clone(),
            _ => {
                let translated = super::temporal::java_pattern_to_chrono(pattern);
                *cached = Some((pattern.to_owned(), translated.clone()));
                translated
            }
        }
    }
}

impl PhysicalExpr for ScalarFunctionExpr {
    fn data_type(&self) -> DataType {
        self.data_type.clone()
    }

    fn nullable(&self) -> bool {
        let args: Vec<(DataType, bool)> = self
            .args
            .iter()
            .map(|a| (a.data_type(), a.nullable()))
            .collect();
        self.func.nullable(&args)
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let rows = batch.num_rows();
        let values = self
            .args
            .iter()
            .map(|a| a.evaluate(batch, ctx))
            .collect::<Result<Vec<_>, _>>()?;
        let all_scalar = values.iter().all(|v| matches!(v, ColumnarValue::Scalar(_)));
        let len = if all_scalar { 1 } else { rows };
        let arrays: Vec<ArrayRef> = values.into_iter().map(|v| v.into_array(len)).collect();
        let mut failures = Failures::new();
        let out = self
            .invoke(&arrays, &mut failures)
            .map_err(|e| EvalError::arrow(self, e))?;
        if all_scalar {
            // A constant call that fails, fails on every row.
            if let Some((_, message)) = failures.first() {
                for row in 0..rows {
                    ctx.row_failed(self, row, message.clone())?;
                }
            }
        } else {
            for (row, message) in failures {
                ctx.row_failed(self, row, message)?;
            }
        }
        Ok(super::kernel_result(out, all_scalar, rows))
    }
}

impl ScalarFunctionExpr {
    fn invoke(&self, args: &[ArrayRef], failures: &mut Failures) -> Result<ArrayRef, ArrowError> {
        use ScalarFunction as F;
        let t = &self.data_type;
        match self.func {
            F::Upper | F::Lower | F::Trim | F::LTrim | F::RTrim => string::map(self.func, &args[0]),
            F::CharLength => string::char_length(&args[0]),
            F::Substring => string::substring(args),
            F::Concat => string::concat(args),
            F::RegexpExtract => string::regexp_extract(args, &self.cache, failures),
            F::SplitIndex => string::split_index(args),
            F::Replace => string::replace(args),
            F::Position => string::position(args),
            F::Abs => math::abs(&args[0], failures),
            F::Ceil | F::Floor => math::ceil_floor(&args[0], self.func == F::Ceil, failures),
            F::Round => math::round(args, failures),
            F::Sign => math::sign(&args[0]),
            F::Sqrt | F::Ln | F::Log10 | F::Exp | F::Power => math::float(self.func, args),
            F::Coalesce => conditional::coalesce(args, t),
            F::NullIf => conditional::nullif(args),
            F::Greatest | F::Least => conditional::extreme(args, t, self.func == F::Greatest),
            F::Extract(part) => time::extract(part, &args[0]),
            F::DateFormat => time::date_format(args, &self.cache, failures),
            F::ToTimestamp => time::to_timestamp(&args[0], failures),
            F::ToDate => time::to_date(&args[0], failures),
        }
    }
}
