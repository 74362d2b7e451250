//! The built-in scalar functions: names, argument checks and result types.
//!
//! Each function's runtime kernel lives in `rivulet_runtime::relational::expr`; the planner lowers
//! an [`Expr::Function`](super::Expr::Function) to it after checking the argument types here.

use arrow::datatypes::{DataType, TimeUnit};

pub use rivulet_runtime::relational::expr::DatePart;

/// A built-in scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BuiltinFunction {
    /// `UPPER(s)`.
    Upper,
    /// `LOWER(s)`.
    Lower,
    /// `SUBSTRING(s, start [, length])`, 1-based.
    Substring,
    /// `CONCAT(s1, s2, ...)`: null if any argument is null.
    Concat,
    /// `TRIM(s)`: both ends.
    Trim,
    /// `LTRIM(s)`.
    LTrim,
    /// `RTRIM(s)`.
    RTrim,
    /// `CHAR_LENGTH(s)`: characters, not bytes.
    CharLength,
    /// `REGEXP_EXTRACT(s, pattern [, group])`: the group's match, null when none.
    RegexpExtract,
    /// `SPLIT_INDEX(s, delimiter, index)`: the 0-based piece, null when out of range.
    SplitIndex,
    /// `REPLACE(s, from, to)`.
    Replace,
    /// `POSITION(needle IN s)`: 1-based, 0 when absent.
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
    /// `SIGN(x)`.
    Sign,
    /// `COALESCE(a, b, ...)`: the first non-null argument.
    Coalesce,
    /// `NULLIF(a, b)`: null when `a = b`, else `a`.
    NullIf,
    /// `GREATEST(a, b, ...)`.
    Greatest,
    /// `LEAST(a, b, ...)`.
    Least,
    /// `EXTRACT(part FROM t)`.
    Extract(DatePart),
    /// `DATE_FORMAT(t, format)` with a Java-style pattern such as `yyyy-MM-dd HH:mm:ss`.
    DateFormat,
    /// `TO_TIMESTAMP(s)`: parses `yyyy-MM-dd HH:mm:ss[.SSS]`.
    ToTimestamp,
    /// `TO_DATE(s)`: parses `yyyy-MM-dd`.
    ToDate,
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(_, _))
}

impl BuiltinFunction {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinFunction::Upper => "upper",
            BuiltinFunction::Lower => "lower",
            BuiltinFunction::Substring => "substring",
            BuiltinFunction::Concat => "concat",
            BuiltinFunction::Trim => "trim",
            BuiltinFunction::LTrim => "ltrim",
            BuiltinFunction::RTrim => "rtrim",
            BuiltinFunction::CharLength => "char_length",
            BuiltinFunction::RegexpExtract => "regexp_extract",
            BuiltinFunction::SplitIndex => "split_index",
            BuiltinFunction::Replace => "replace",
            BuiltinFunction::Position => "position",
            BuiltinFunction::Abs => "abs",
            BuiltinFunction::Ceil => "ceil",
            BuiltinFunction::Floor => "floor",
            BuiltinFunction::Round => "round",
            BuiltinFunction::Sqrt => "sqrt",
            BuiltinFunction::Power => "power",
            BuiltinFunction::Ln => "ln",
            BuiltinFunction::Log10 => "log10",
            BuiltinFunction::Exp => "exp",
            BuiltinFunction::Sign => "sign",
            BuiltinFunction::Coalesce => "coalesce",
            BuiltinFunction::NullIf => "nullif",
            BuiltinFunction::Greatest => "greatest",
            BuiltinFunction::Least => "least",
            BuiltinFunction::Extract(DatePart::Year) => "extract_year",
            BuiltinFunction::Extract(DatePart::Quarter) => "extract_quarter",
            BuiltinFunction::Extract(DatePart::Month) => "extract_month",
            BuiltinFunction::Extract(DatePart::Day) => "extract_day",
            BuiltinFunction::Extract(DatePart::DayOfWeek) => "extract_dow",
            BuiltinFunction::Extract(DatePart::DayOfYear) => "extract_doy",
            BuiltinFunction::Extract(DatePart::Hour) => "extract_hour",
            BuiltinFunction::Extract(DatePart::Minute) => "extract_minute",
            BuiltinFunction::Extract(DatePart::Second) => "extract_second",
            BuiltinFunction::DateFormat => "date_format",
            BuiltinFunction::ToTimestamp => "to_timestamp",
            BuiltinFunction::ToDate => "to_date",
        }
    }

    /// The result type and nullability for arguments of these types and nullabilities, or why
    /// they are not accepted.
    pub fn return_type(self, args: &[(DataType, bool)]) -> Result<(DataType, bool), String> {
        use BuiltinFunction as F;
        let any_nullable = args.iter().any(|(_, n)| *n);
        let arity = |range: std::ops::RangeInclusive<usize>| {
            if range.contains(&args.len()) {
                Ok(())
            } else {
                Err(format!(
                    "{} takes {} arguments, got {}",
                    self.name(),
                    if range.start() == range.end() {
                        range.start().to_string()
                    } else {
                        format!("{} to {}", range.start(), range.end())
                    },
                    args.len()
                ))
            }
        };
        let string_arg = |i: usize| match &args[i].0 {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Ok(()),
            other => Err(format!(
                "{} needs a STRING as argument {}, got {other}",
                self.name(),
                i + 1
            )),
        };
        let numeric_arg = |i: usize| {
            if args[i].0.is_numeric() || args[i].0 == DataType::Null {
                Ok(())
            } else {
                Err(format!(
                    "{} needs a number as argument {}, got {}",
                    self.name(),
                    i + 1,
                    args[i].0
                ))
            }
        };
        let integer_arg = |i: usize| {
            if args[i].0.is_integer() || args[i].0 == DataType::Null {
                Ok(())
            } else {
                Err(format!(
                    "{} needs an integer as argument {}, got {}",
                    self.name(),
                    i + 1,
                    args[i].0
                ))
            }
        };
        match self {
            F::Upper | F::Lower | F::Trim | F::LTrim | F::RTrim => {
                arity(1..=1)?;
                string_arg(0)?;
                Ok((DataType::Utf8, any_nullable))
            }
            F::CharLength => {
                arity(1..=1)?;
                string_arg(0)?;
                Ok((DataType::Int32, any_nullable))
            }
            F::Substring => {
                arity(2..=3)?;
                string_arg(0)?;
                (1..args.len()).try_for_each(integer_arg)?;
                Ok((DataType::Utf8, any_nullable))
            }
            F::Concat => {
                if args.is_empty() {
                    return Err("concat takes at least one argument".into());
                }
                Ok((DataType::Utf8, any_nullable))
            }
            F::RegexpExtract => {
                arity(2..=3)?;
                string_arg(0)?;
                string_arg(1)?;
                if args.len() == 3 {
                    integer_arg(2)?;
                }
                Ok((DataType::Utf8, true))
            }
            F::SplitIndex => {
                arity(3..=3)?;
                string_arg(0)?;
                string_arg(1)?;
                integer_arg(2)?;
                Ok((DataType::Utf8, true))
            }
            F::Replace => {
                arity(3..=3)?;
                (0..3).try_for_each(string_arg)?;
                Ok((DataType::Utf8, any_nullable))
            }
            F::Position => {
                arity(2..=2)?;
                string_arg(0)?;
                string_arg(1)?;
                Ok((DataType::Int32, any_nullable))
            }
            F::Abs | F::Ceil | F::Floor | F::Sign => {
                arity(1..=1)?;
                numeric_arg(0)?;
                let t = &args[0].0;
                // Overflow (ABS of the smallest integer, a decimal rounded up past its
                // precision) is bad data, null under the null policy.
                let may_overflow = match self {
                    F::Abs => t.is_integer() || is_decimal(t),
                    F::Sign => false,
                    _ => is_decimal(t),
                };
                Ok((t.clone(), any_nullable || may_overflow))
            }
            F::Round => {
                arity(1..=2)?;
                numeric_arg(0)?;
                if args.len() == 2 {
                    integer_arg(1)?;
                }
                let t = &args[0].0;
                Ok((t.clone(), any_nullable || t.is_integer() || is_decimal(t)))
            }
            // IEEE 754: SQRT(-1) is NaN and LN(0) is -infinity, not null.
            F::Sqrt | F::Ln | F::Log10 | F::Exp => {
                arity(1..=1)?;
                numeric_arg(0)?;
                Ok((DataType::Float64, any_nullable))
            }
            F::Power => {
                arity(2..=2)?;
                numeric_arg(0)?;
                numeric_arg(1)?;
                Ok((DataType::Float64, any_nullable))
            }
            F::Coalesce | F::Greatest | F::Least => {
                if args.is_empty() {
                    return Err(format!("{} takes at least one argument", self.name()));
                }
                let mut common = args[0].0.clone();
                for (t, _) in &args[1..] {
                    common = super::typing::common_type(&common, t).ok_or_else(|| {
                        format!(
                            "{} needs arguments of one type, got {common} and {t}",
                            self.name()
                        )
                    })?;
                }
                let nullable = if self == F::Coalesce {
                    args.iter().all(|(_, n)| *n)
                } else {
                    any_nullable
                };
                Ok((common, nullable))
            }
            F::NullIf => {
                arity(2..=2)?;
                // Both sides are compared in their common type, which is the result's type.
                let t = super::typing::common_type(&args[0].0, &args[1].0).ok_or_else(|| {
                    format!(
                        "nullif needs arguments of one type, got {} and {}",
                        args[0].0, args[1].0
                    )
                })?;
                Ok((t, true))
            }
            F::Extract(_) => {
                arity(1..=1)?;
                match &args[0].0 {
                    DataType::Date32 | DataType::Timestamp(_, _) | DataType::Null => {
                        Ok((DataType::Int64, any_nullable))
                    }
                    other => Err(format!(
                        "{} needs a DATE or TIMESTAMP, got {other}",
                        self.name()
                    )),
                }
            }
            F::DateFormat => {
                arity(2..=2)?;
                match &args[0].0 {
                    DataType::Date32 | DataType::Timestamp(_, _) | DataType::Null => {}
                    other => {
                        return Err(format!(
                            "date_format needs a DATE or TIMESTAMP, got {other}"
                        ));
                    }
                }
                string_arg(1)?;
                // An unsupported pattern letter is bad data, null under the null policy.
                Ok((DataType::Utf8, true))
            }
            F::ToTimestamp => {
                arity(1..=1)?;
                string_arg(0)?;
                Ok((DataType::Timestamp(TimeUnit::Millisecond, None), true))
            }
            F::ToDate => {
                arity(1..=1)?;
                string_arg(0)?;
                Ok((DataType::Date32, true))
            }
        }
    }
}
