//! Columnar per-group accumulators: one object per aggregate call holds the state of every group
//! in vectors indexed by dense group index.
//!
//! Every update takes a whole batch: the argument columns, each row's group index and each row's
//! sign (`1` accumulate, `-1` retract, `0` skip — a filtered-out row, or a duplicate under
//! `DISTINCT`). Built-ins downcast their argument once per batch and run one typed loop over it.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Decimal128Array, Float64Array,
    Int64Array, OffsetSizeTrait, PrimitiveArray, UInt64Array, new_empty_array, new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{AggregateCall, AggregateError, AggregateKind};
use crate::keys::{EncodedKeys, encode_arrow_keys};
use crate::relational::function::{Accumulator, AggregateUdf};
use crate::relational::scalar::ScalarValue;

/// Why an accumulator update failed.
#[derive(Debug)]
pub(crate) enum AccumulatorError {
    /// A retraction of a value the group never accumulated; the operator names the group.
    UnknownValue {
        /// The group index.
        group: u32,
    },
    /// Any other failure, already described.
    Failed(AggregateError),
}

impl From<AggregateError> for AccumulatorError {
    fn from(error: AggregateError) -> Self {
        AccumulatorError::Failed(error)
    }
}

/// One group's accumulator state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum AccumulatorState {
    /// A count.
    Count(i64),
    /// An exact sum and the number of values in it.
    ExactSum {
        /// The sum (unscaled for decimals).
        sum: i128,
        /// The number of values.
        count: i64,
    },
    /// A floating-point sum and the number of values in it.
    FloatSum {
        /// The sum.
        sum: f64,
        /// The number of values.
        count: i64,
    },
    /// The multiset of values of `MIN`/`MAX`, postcard-encoded `(value, multiplicity)` pairs in
    /// ascending order.
    Ordered(Vec<u8>),
    /// The distinct values seen (canonical key encoding, multiplicity) and the state of the
    /// aggregate over them.
    Distinct {
        /// Each distinct value and how many rows hold it.
        values: Vec<(Vec<u8>, u64)>,
        /// The wrapped aggregate's state.
        inner: Box<AccumulatorState>,
    },
    /// A user accumulator's [`state`](Accumulator::state); `None` when it saw no row.
    User(Option<Vec<ScalarValue>>),
}

/// The state of one aggregate call for every group.
pub(crate) trait GroupsAccumulator: Send + fmt::Debug {
    /// Makes room for group indices below `groups`; new groups are empty.
    fn resize(&mut self, groups: usize);

    /// Accumulates (sign 1) or retracts (sign -1) each row's arguments into its group.
    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError>;

    /// The current result of each of `groups`, in that order.
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError>;

    /// Empties a group, whose index may then be reused.
    fn reset(&mut self, group: u32);

    /// A group's state for a checkpoint.
    fn save(&self, group: u32) -> Result<AccumulatorState, String>;

    /// Restores a group's state saved by [`GroupsAccumulator::save`] into an empty group.
    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String>;

    /// Adds a state saved by [`GroupsAccumulator::save`] (of another group of this or an
    /// equal accumulator) to `group`'s state, as if `group` had also seen that group's rows:
    /// what merging two session windows or a partial into a global aggregate needs.
    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String>;

    /// Moves group `from`'s state into group `into` and empties `from`.
    fn merge(&mut self, into: u32, from: u32) -> Result<(), String> {
        let state = self.save(from)?;
        self.merge_state(into, state)?;
        self.reset(from);
        Ok(())
    }
}

/// Builds the accumulator of `call`, checking its arguments and declared result type.
pub(crate) fn create_accumulator(
    call: &AggregateCall,
    label: &str,
    arg_types: &[DataType],
) -> Result<Box<dyn GroupsAccumulator>, AggregateError> {
    let expect_args = |n: usize| {
        if arg_types.len() == n {
            Ok(())
        } else {
            Err(AggregateError::ArgumentCount {
                aggregate: label.to_owned(),
                expected: n,
                found: arg_types.len(),
            })
        }
    };
    let unsupported = |data_type: &DataType| AggregateError::UnsupportedArgument {
        aggregate: label.to_owned(),
        data_type: data_type.clone(),
    };
    let label: Arc<str> = Arc::from(label);
    let (expected, accumulator): (DataType, Box<dyn GroupsAccumulator>) = match &call.kind {
        AggregateKind::CountStar => {
            expect_args(0)?;
            (DataType::Int64, Box::new(Count::new(true)))
        }
        AggregateKind::Count => {
            expect_args(1)?;
            (DataType::Int64, Box::new(Count::new(false)))
        }
        kind @ (AggregateKind::Sum | AggregateKind::Avg) => {
            expect_args(1)?;
            let avg = matches!(kind, AggregateKind::Avg);
            let output = sum_type(&arg_types[0], avg).ok_or_else(|| unsupported(&arg_types[0]))?;
            (
                output.clone(),
                sum_accumulator(&arg_types[0], avg, output, &label)?,
            )
        }
        kind @ (AggregateKind::Min | AggregateKind::Max) => {
            expect_args(1)?;
            let max = matches!(kind, AggregateKind::Max);
            let accumulator = min_max_accumulator(&arg_types[0], max)
                .ok_or_else(|| unsupported(&arg_types[0]))?;
            (arg_types[0].clone(), accumulator)
        }
        AggregateKind::User(udf) => {
            let output = udf
                .return_type(arg_types)
                .map_err(|reason| AggregateError::User {
                    aggregate: label.to_string(),
                    source: reason.into(),
                })?;
            let accumulator = Box::new(UserAggregate {
                udf: Arc::clone(udf),
                label: Arc::clone(&label),
                arg_types: arg_types.to_vec(),
                output: output.clone(),
                accumulators: Vec::new(),
            });
            (output, accumulator)
        }
    };
    if &expected != call.output.data_type() {
        return Err(AggregateError::OutputType {
            aggregate: label.to_string(),
            expected,
            declared: call.output.data_type().clone(),
        });
    }
    if !call.distinct {
        return Ok(accumulator);
    }
    if arg_types.is_empty() {
        return Err(AggregateError::DistinctWithoutArgument {
            aggregate: label.to_string(),
        });
    }
    // Distinct values are keyed by the canonical key encoding; check it takes the types.
    let empty: Vec<ArrayRef> = arg_types.iter().map(new_empty_array).collect();
    encode_arrow_keys(&empty, &mut EncodedKeys::new()).map_err(|_| {
        AggregateError::UnsupportedArgument {
            aggregate: format!("{label} (DISTINCT)"),
            data_type: arg_types[0].clone(),
        }
    })?;
    Ok(Box::new(Distinct {
        inner: accumulator,
        skip_nulls: !matches!(call.kind, AggregateKind::User(_)),
        seen: Vec::new(),
        keys: EncodedKeys::new(),
        signs: Vec::new(),
    }))
}

/// The result type of `SUM` (or `AVG`) over `input`.
fn sum_type(input: &DataType, avg: bool) -> Option<DataType> {
    use DataType as D;
    Some(match (input, avg) {
        (D::Int8 | D::Int16 | D::Int32 | D::Int64, false) => D::Int64,
        (D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64, false) => D::UInt64,
        (D::Float32 | D::Float64, false) => D::Float64,
        (D::Decimal128(_, s), false) => D::Decimal128(38, *s),
        (
            D::Int8
            | D::Int16
            | D::Int32
            | D::Int64
            | D::UInt8
            | D::UInt16
            | D::UInt32
            | D::UInt64
            | D::Float32
            | D::Float64,
            true,
        ) => D::Float64,
        (D::Decimal128(p, s), true) => {
            D::Decimal128((*p + 4).min(38), (i16::from(*s) + 4).min(38) as i8)
        }
        _ => return None,
    })
}

fn sum_accumulator(
    input: &DataType,
    avg: bool,
    output: DataType,
    label: &Arc<str>,
) -> Result<Box<dyn GroupsAccumulator>, AggregateError> {
    macro_rules! exact {
        ($t:ty) => {
            Box::new(ExactSum::<$t>::new(avg, output, input, label))
        };
    }
    macro_rules! float {
        ($t:ty) => {
            Box::new(FloatSum::<$t>::new(avg))
        };
    }
    Ok(match input {
        DataType::Int8 => exact!(Int8Type),
        DataType::Int16 => exact!(Int16Type),
        DataType::Int32 => exact!(Int32Type),
        DataType::Int64 => exact!(Int64Type),
        DataType::UInt8 => exact!(UInt8Type),
        DataType::UInt16 => exact!(UInt16Type),
        DataType::UInt32 => exact!(UInt32Type),
        DataType::UInt64 => exact!(UInt64Type),
        DataType::Decimal128(..) => exact!(Decimal128Type),
        DataType::Float32 => float!(Float32Type),
        DataType::Float64 => float!(Float64Type),
        other => {
            return Err(AggregateError::UnsupportedArgument {
                aggregate: label.to_string(),
                data_type: other.clone(),
            });
        }
    })
}

fn min_max_accumulator(input: &DataType, max: bool) -> Option<Box<dyn GroupsAccumulator>> {
    use DataType as D;
    use TimeUnit as U;
    macro_rules! primitive {
        ($t:ty) => {
            Box::new(PrimitiveMinMax::<$t>::new(max, input.clone()))
        };
    }
    Some(match input {
        D::Boolean => Box::new(BooleanMinMax {
            max,
            counts: Vec::new(),
        }),
        D::Int8 => primitive!(Int8Type),
        D::Int16 => primitive!(Int16Type),
        D::Int32 => primitive!(Int32Type),
        D::Int64 => primitive!(Int64Type),
        D::UInt8 => primitive!(UInt8Type),
        D::UInt16 => primitive!(UInt16Type),
        D::UInt32 => primitive!(UInt32Type),
        D::UInt64 => primitive!(UInt64Type),
        D::Float32 => primitive!(Float32Type),
        D::Float64 => primitive!(Float64Type),
        D::Decimal128(..) => primitive!(Decimal128Type),
        D::Date32 => primitive!(Date32Type),
        D::Date64 => primitive!(Date64Type),
        D::Time32(U::Second) => primitive!(Time32SecondType),
        D::Time32(U::Millisecond) => primitive!(Time32MillisecondType),
        D::Time64(U::Microsecond) => primitive!(Time64MicrosecondType),
        D::Time64(U::Nanosecond) => primitive!(Time64NanosecondType),
        D::Timestamp(U::Second, _) => primitive!(TimestampSecondType),
        D::Timestamp(U::Millisecond, _) => primitive!(TimestampMillisecondType),
        D::Timestamp(U::Microsecond, _) => primitive!(TimestampMicrosecondType),
        D::Timestamp(U::Nanosecond, _) => primitive!(TimestampNanosecondType),
        D::Duration(U::Second) => primitive!(DurationSecondType),
        D::Duration(U::Millisecond) => primitive!(DurationMillisecondType),
        D::Duration(U::Microsecond) => primitive!(DurationMicrosecondType),
        D::Duration(U::Nanosecond) => primitive!(DurationNanosecondType),
        D::Interval(IntervalUnit::YearMonth) => primitive!(IntervalYearMonthType),
        D::Utf8 => Box::new(StringMinMax::<i32>::new(max)),
        D::LargeUtf8 => Box::new(StringMinMax::<i64>::new(max)),
        _ => return None,
    })
}

/// Grows `values` to `groups` entries with `empty`.
fn grow<T: Clone>(values: &mut Vec<T>, groups: usize, empty: T) {
    if values.len() < groups {
        values.resize(groups, empty);
    }
}

// ---------------------------------------------------------------------------------------------
// COUNT and COUNT(*)

/// `COUNT(x)` (non-null values of the first argument) or `COUNT(*)` (rows).
#[derive(Debug)]
struct Count {
    star: bool,
    counts: Vec<i64>,
}

impl Count {
    fn new(star: bool) -> Self {
        Count {
            star,
            counts: Vec::new(),
        }
    }
}

impl GroupsAccumulator for Count {
    fn resize(&mut self, groups: usize) {
        grow(&mut self.counts, groups, 0);
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let nulls = if self.star {
            None
        } else {
            args[0].logical_nulls()
        };
        let counts = &mut self.counts;
        let mut add = |g: u32, s: i8| {
            let count = &mut counts[g as usize];
            *count += i64::from(s);
            if *count < 0 {
                return Err(AccumulatorError::UnknownValue { group: g });
            }
            Ok(())
        };
        match nulls {
            None => {
                for (&g, &s) in groups.iter().zip(signs) {
                    add(g, s)?;
                }
            }
            Some(nulls) => {
                for (row, (&g, &s)) in groups.iter().zip(signs).enumerate() {
                    if nulls.is_valid(row) {
                        add(g, s)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| self.counts[g as usize]),
        )))
    }

    fn reset(&mut self, group: u32) {
        self.counts[group as usize] = 0;
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        Ok(AccumulatorState::Count(self.counts[group as usize]))
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::Count(count) => {
                self.counts[group as usize] = count;
                Ok(())
            }
            other => Err(format!("expected a count, found {other:?}")),
        }
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::Count(count) => {
                self.counts[group as usize] += count;
                Ok(())
            }
            other => Err(format!("expected a count, found {other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SUM and AVG

/// `SUM`/`AVG` of integers and decimals: an exact `i128` sum and a count per group.
///
/// An `i128` cannot overflow on 64-bit integers (it would take 2^63 rows), so only decimals
/// check additions; whether the result fits its type is checked when it is evaluated, so a
/// transient excursion that later retractions undo is not an error.
struct ExactSum<T> {
    avg: bool,
    output: DataType,
    input_scale: i8,
    label: Arc<str>,
    sums: Vec<i128>,
    counts: Vec<i64>,
    _input: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for ExactSum<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactSum")
            .field("avg", &self.avg)
            .field("output", &self.output)
            .field("groups", &self.sums.len())
            .finish()
    }
}

impl<T: ArrowPrimitiveType> ExactSum<T>
where
    T::Native: Into<i128>,
{
    fn new(avg: bool, output: DataType, input: &DataType, label: &Arc<str>) -> Self {
        let input_scale = match input {
            DataType::Decimal128(_, s) => *s,
            _ => 0,
        };
        ExactSum {
            avg,
            output,
            input_scale,
            label: Arc::clone(label),
            sums: Vec::new(),
            counts: Vec::new(),
            _input: PhantomData,
        }
    }

    fn overflow(&self) -> AggregateError {
        AggregateError::Overflow {
            aggregate: self.label.to_string(),
            data_type: self.output.clone(),
        }
    }

    #[inline]
    fn apply(&mut self, g: u32, s: i8, v: i128) -> Result<(), AccumulatorError> {
        let g_ = g as usize;
        match s {
            1 => {
                self.sums[g_] = self.sums[g_]
                    .checked_add(v)
                    .ok_or_else(|| self.overflow())?;
                self.counts[g_] += 1;
            }
            -1 => {
                if self.counts[g_] == 0 {
                    return Err(AccumulatorError::UnknownValue { group: g });
                }
                self.sums[g_] = self.sums[g_]
                    .checked_sub(v)
                    .ok_or_else(|| self.overflow())?;
                self.counts[g_] -= 1;
            }
            _ => {}
        }
        Ok(())
    }
}

/// `10^exp` as an `i128`, for exponents up to 38.
fn pow10(exp: u32) -> i128 {
    10i128.pow(exp)
}

/// `numerator / denominator` rounded half away from zero (`denominator > 0`).
fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.unsigned_abs() * 2 >= denominator.unsigned_abs() {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for ExactSum<T>
where
    T::Native: Into<i128>,
{
    fn resize(&mut self, groups: usize) {
        grow(&mut self.sums, groups, 0);
        grow(&mut self.counts, groups, 0);
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let array = args[0].as_primitive::<T>();
        let values = array.values();
        match array.nulls() {
            None => {
                for ((&g, &s), &v) in groups.iter().zip(signs).zip(values.iter()) {
                    self.apply(g, s, v.into())?;
                }
            }
            Some(nulls) => {
                for (row, ((&g, &s), &v)) in groups.iter().zip(signs).zip(values.iter()).enumerate()
                {
                    if nulls.is_valid(row) {
                        self.apply(g, s, v.into())?;
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        let present = |g: u32| self.counts[g as usize] > 0;
        Ok(match (&self.output, self.avg) {
            (DataType::Int64, false) => {
                let values = groups
                    .iter()
                    .map(|&g| {
                        present(g)
                            .then(|| i64::try_from(self.sums[g as usize]))
                            .transpose()
                    })
                    .collect::<Result<Int64Array, _>>()
                    .map_err(|_| self.overflow())?;
                Arc::new(values)
            }
            (DataType::UInt64, false) => {
                let values = groups
                    .iter()
                    .map(|&g| {
                        present(g)
                            .then(|| u64::try_from(self.sums[g as usize]))
                            .transpose()
                    })
                    .collect::<Result<UInt64Array, _>>()
                    .map_err(|_| self.overflow())?;
                Arc::new(values)
            }
            (DataType::Decimal128(precision, scale), false) => {
                let limit = pow10(u32::from(*precision));
                let values = groups
                    .iter()
                    .map(|&g| {
                        let sum = self.sums[g as usize];
                        match present(g) {
                            false => Ok(None),
                            true if sum.unsigned_abs() < limit.unsigned_abs() => Ok(Some(sum)),
                            true => Err(self.overflow()),
                        }
                    })
                    .collect::<Result<Decimal128Array, _>>()?;
                Arc::new(values.with_precision_and_scale(*precision, *scale)?)
            }
            (DataType::Float64, true) => Arc::new(
                groups
                    .iter()
                    .map(|&g| {
                        present(g)
                            .then(|| self.sums[g as usize] as f64 / self.counts[g as usize] as f64)
                    })
                    .collect::<Float64Array>(),
            ),
            (DataType::Decimal128(precision, scale), true) => {
                let limit = pow10(u32::from(*precision));
                let factor = pow10((*scale - self.input_scale).max(0) as u32);
                let values = groups
                    .iter()
                    .map(|&g| {
                        if !present(g) {
                            return Ok(None);
                        }
                        let scaled = self.sums[g as usize]
                            .checked_mul(factor)
                            .ok_or_else(|| self.overflow())?;
                        let avg = div_round_half_up(scaled, i128::from(self.counts[g as usize]));
                        if avg.unsigned_abs() < limit.unsigned_abs() {
                            Ok(Some(avg))
                        } else {
                            Err(self.overflow())
                        }
                    })
                    .collect::<Result<Decimal128Array, _>>()?;
                Arc::new(values.with_precision_and_scale(*precision, *scale)?)
            }
            (other, _) => {
                return Err(AggregateError::UnsupportedArgument {
                    aggregate: self.label.to_string(),
                    data_type: other.clone(),
                });
            }
        })
    }

    fn reset(&mut self, group: u32) {
        self.sums[group as usize] = 0;
        self.counts[group as usize] = 0;
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        Ok(AccumulatorState::ExactSum {
            sum: self.sums[group as usize],
            count: self.counts[group as usize],
        })
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::ExactSum { sum, count } => {
                self.sums[group as usize] = sum;
                self.counts[group as usize] = count;
                Ok(())
            }
            other => Err(format!("expected an exact sum, found {other:?}")),
        }
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::ExactSum { sum, count } => {
                let g = group as usize;
                self.sums[g] = self.sums[g]
                    .checked_add(sum)
                    .ok_or_else(|| self.overflow().to_string())?;
                self.counts[g] += count;
                Ok(())
            }
            other => Err(format!("expected an exact sum, found {other:?}")),
        }
    }
}

/// `SUM`/`AVG` of floats: an `f64` sum and a count per group.
struct FloatSum<T> {
    avg: bool,
    sums: Vec<f64>,
    counts: Vec<i64>,
    _input: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for FloatSum<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloatSum")
            .field("avg", &self.avg)
            .field("groups", &self.sums.len())
            .finish()
    }
}

impl<T> FloatSum<T> {
    fn new(avg: bool) -> Self {
        FloatSum {
            avg,
            sums: Vec::new(),
            counts: Vec::new(),
            _input: PhantomData,
        }
    }
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for FloatSum<T>
where
    T::Native: Into<f64>,
{
    fn resize(&mut self, groups: usize) {
        grow(&mut self.sums, groups, 0.0);
        grow(&mut self.counts, groups, 0);
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let array = args[0].as_primitive::<T>();
        let nulls = array.nulls();
        for (row, ((&g, &s), &v)) in groups.iter().zip(signs).zip(array.values()).enumerate() {
            if s == 0 || nulls.is_some_and(|n| n.is_null(row)) {
                continue;
            }
            let g_ = g as usize;
            if s < 0 && self.counts[g_] == 0 {
                return Err(AccumulatorError::UnknownValue { group: g });
            }
            self.sums[g_] += f64::from(s) * v.into();
            self.counts[g_] += i64::from(s);
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        Ok(Arc::new(
            groups
                .iter()
                .map(|&g| {
                    let (sum, count) = (self.sums[g as usize], self.counts[g as usize]);
                    (count > 0).then(|| if self.avg { sum / count as f64 } else { sum })
                })
                .collect::<Float64Array>(),
        ))
    }

    fn reset(&mut self, group: u32) {
        self.sums[group as usize] = 0.0;
        self.counts[group as usize] = 0;
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        Ok(AccumulatorState::FloatSum {
            sum: self.sums[group as usize],
            count: self.counts[group as usize],
        })
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::FloatSum { sum, count } => {
                self.sums[group as usize] = sum;
                self.counts[group as usize] = count;
                Ok(())
            }
            other => Err(format!("expected a float sum, found {other:?}")),
        }
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::FloatSum { sum, count } => {
                self.sums[group as usize] += sum;
                self.counts[group as usize] += count;
                Ok(())
            }
            other => Err(format!("expected a float sum, found {other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MIN and MAX

/// Adds one occurrence of `value` to a multiset (`sign > 0`) or removes one; `false` when the
/// value to remove is absent.
fn bump<K, Q>(multiset: &mut BTreeMap<K, u64>, value: &Q, sign: i8) -> bool
where
    K: Borrow<Q> + Ord,
    Q: Ord + ToOwned<Owned = K> + ?Sized,
{
    if sign > 0 {
        match multiset.get_mut(value) {
            Some(count) => *count += 1,
            None => {
                multiset.insert(value.to_owned(), 1);
            }
        }
        return true;
    }
    match multiset.get_mut(value) {
        Some(count) if *count > 1 => *count -= 1,
        Some(_) => {
            multiset.remove(value);
        }
        None => return false,
    }
    true
}

/// The smallest or largest value of a multiset.
fn extreme<K: Ord>(multiset: &BTreeMap<K, u64>, max: bool) -> Option<&K> {
    if max {
        multiset.last_key_value().map(|(k, _)| k)
    } else {
        multiset.first_key_value().map(|(k, _)| k)
    }
}

fn save_multiset<K: Serialize>(multiset: &BTreeMap<K, u64>) -> Result<AccumulatorState, String> {
    let pairs: Vec<(&K, &u64)> = multiset.iter().collect();
    postcard::to_allocvec(&pairs)
        .map(AccumulatorState::Ordered)
        .map_err(|e| e.to_string())
}

/// Adds every value of `from` to `into`, with its multiplicity.
fn merge_multiset<K: Ord>(into: &mut BTreeMap<K, u64>, from: BTreeMap<K, u64>) {
    for (value, count) in from {
        *into.entry(value).or_insert(0) += count;
    }
}

fn load_multiset<K: Ord + DeserializeOwned>(
    state: AccumulatorState,
) -> Result<BTreeMap<K, u64>, String> {
    match state {
        AccumulatorState::Ordered(bytes) => postcard::from_bytes::<Vec<(K, u64)>>(&bytes)
            .map(|pairs| pairs.into_iter().collect())
            .map_err(|e| e.to_string()),
        other => Err(format!("expected a multiset of values, found {other:?}")),
    }
}

/// A native value with a total order: integers as themselves, floats by `total_cmp`.
trait OrderedNative: ArrowNativeType {
    type Key: Ord + Copy + Send + fmt::Debug + Serialize + DeserializeOwned + 'static;
    fn to_key(self) -> Self::Key;
    fn from_key(key: Self::Key) -> Self;
}

macro_rules! ordered_as_itself {
    ($($t:ty),*) => {$(
        impl OrderedNative for $t {
            type Key = $t;
            fn to_key(self) -> $t { self }
            fn from_key(key: $t) -> $t { key }
        }
    )*};
}

ordered_as_itself!(i8, i16, i32, i64, i128, u8, u16, u32, u64);

impl OrderedNative for f32 {
    type Key = i32;
    fn to_key(self) -> i32 {
        // Flips the magnitude bits of negatives so integer order is `total_cmp` order.
        let bits = self.to_bits() as i32;
        bits ^ (((bits >> 31) as u32) >> 1) as i32
    }
    fn from_key(key: i32) -> f32 {
        f32::from_bits((key ^ (((key >> 31) as u32) >> 1) as i32) as u32)
    }
}

impl OrderedNative for f64 {
    type Key = i64;
    fn to_key(self) -> i64 {
        let bits = self.to_bits() as i64;
        bits ^ (((bits >> 63) as u64) >> 1) as i64
    }
    fn from_key(key: i64) -> f64 {
        f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
    }
}

/// `MIN`/`MAX` of a primitive type: a multiset of values per group, so retracting the current
/// extreme finds the next one.
struct PrimitiveMinMax<T: ArrowPrimitiveType>
where
    T::Native: OrderedNative,
{
    max: bool,
    data_type: DataType,
    values: Vec<BTreeMap<<T::Native as OrderedNative>::Key, u64>>,
}

impl<T: ArrowPrimitiveType> fmt::Debug for PrimitiveMinMax<T>
where
    T::Native: OrderedNative,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimitiveMinMax")
            .field("max", &self.max)
            .field("data_type", &self.data_type)
            .field("groups", &self.values.len())
            .finish()
    }
}

impl<T: ArrowPrimitiveType> PrimitiveMinMax<T>
where
    T::Native: OrderedNative,
{
    fn new(max: bool, data_type: DataType) -> Self {
        PrimitiveMinMax {
            max,
            data_type,
            values: Vec::new(),
        }
    }
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for PrimitiveMinMax<T>
where
    T::Native: OrderedNative,
{
    fn resize(&mut self, groups: usize) {
        if self.values.len() < groups {
            self.values.resize_with(groups, BTreeMap::new);
        }
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let array = args[0].as_primitive::<T>();
        let nulls = array.nulls();
        for (row, ((&g, &s), &v)) in groups.iter().zip(signs).zip(array.values()).enumerate() {
            if s == 0 || nulls.is_some_and(|n| n.is_null(row)) {
                continue;
            }
            if !bump(&mut self.values[g as usize], &v.to_key(), s) {
                return Err(AccumulatorError::UnknownValue { group: g });
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        let array: PrimitiveArray<T> = groups
            .iter()
            .map(|&g| extreme(&self.values[g as usize], self.max).map(|k| T::Native::from_key(*k)))
            .collect();
        Ok(Arc::new(array.with_data_type(self.data_type.clone())))
    }

    fn reset(&mut self, group: u32) {
        self.values[group as usize] = BTreeMap::new();
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        save_multiset(&self.values[group as usize])
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        self.values[group as usize] = load_multiset(state)?;
        Ok(())
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        merge_multiset(&mut self.values[group as usize], load_multiset(state)?);
        Ok(())
    }
}

/// `MIN`/`MAX` of strings: a multiset of values per group.
#[derive(Debug)]
struct StringMinMax<O> {
    max: bool,
    values: Vec<BTreeMap<String, u64>>,
    _offsets: PhantomData<fn(O)>,
}

impl<O> StringMinMax<O> {
    fn new(max: bool) -> Self {
        StringMinMax {
            max,
            values: Vec::new(),
            _offsets: PhantomData,
        }
    }
}

impl<O: OffsetSizeTrait> GroupsAccumulator for StringMinMax<O> {
    fn resize(&mut self, groups: usize) {
        if self.values.len() < groups {
            self.values.resize_with(groups, BTreeMap::new);
        }
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let array = args[0].as_string::<O>();
        for (row, (&g, &s)) in groups.iter().zip(signs).enumerate() {
            if s == 0 || array.is_null(row) {
                continue;
            }
            if !bump(&mut self.values[g as usize], array.value(row), s) {
                return Err(AccumulatorError::UnknownValue { group: g });
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        let values = groups
            .iter()
            .map(|&g| extreme(&self.values[g as usize], self.max).map(String::as_str));
        Ok(Arc::new(arrow::array::GenericStringArray::<O>::from_iter(
            values,
        )))
    }

    fn reset(&mut self, group: u32) {
        self.values[group as usize] = BTreeMap::new();
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        save_multiset(&self.values[group as usize])
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        self.values[group as usize] = load_multiset(state)?;
        Ok(())
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        merge_multiset(&mut self.values[group as usize], load_multiset(state)?);
        Ok(())
    }
}

/// `MIN`/`MAX` of booleans: how many `false` and `true` values each group holds.
#[derive(Debug)]
struct BooleanMinMax {
    max: bool,
    counts: Vec<[u64; 2]>,
}

impl GroupsAccumulator for BooleanMinMax {
    fn resize(&mut self, groups: usize) {
        grow(&mut self.counts, groups, [0, 0]);
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let array = args[0].as_boolean();
        for (row, (&g, &s)) in groups.iter().zip(signs).enumerate() {
            if s == 0 || array.is_null(row) {
                continue;
            }
            let count = &mut self.counts[g as usize][usize::from(array.value(row))];
            if s > 0 {
                *count += 1;
            } else if *count == 0 {
                return Err(AccumulatorError::UnknownValue { group: g });
            } else {
                *count -= 1;
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        let values = groups.iter().map(|&g| {
            let [falses, trues] = self.counts[g as usize];
            match (falses > 0, trues > 0) {
                (false, false) => None,
                (true, true) => Some(self.max),
                (only_false, _) => Some(!only_false),
            }
        });
        Ok(Arc::new(values.collect::<BooleanArray>()))
    }

    fn reset(&mut self, group: u32) {
        self.counts[group as usize] = [0, 0];
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        let [falses, trues] = self.counts[group as usize];
        let mut multiset = BTreeMap::new();
        for (value, count) in [(false, falses), (true, trues)] {
            if count > 0 {
                multiset.insert(value, count);
            }
        }
        save_multiset(&multiset)
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        let multiset: BTreeMap<bool, u64> = load_multiset(state)?;
        self.counts[group as usize] = [
            multiset.get(&false).copied().unwrap_or(0),
            multiset.get(&true).copied().unwrap_or(0),
        ];
        Ok(())
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        let multiset: BTreeMap<bool, u64> = load_multiset(state)?;
        let counts = &mut self.counts[group as usize];
        counts[0] += multiset.get(&false).copied().unwrap_or(0);
        counts[1] += multiset.get(&true).copied().unwrap_or(0);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// DISTINCT

/// `DISTINCT`: counts each group's rows per distinct argument value, and feeds the wrapped
/// aggregate a value only when its count goes from 0 to 1 (accumulate) or 1 to 0 (retract).
#[derive(Debug)]
struct Distinct {
    inner: Box<dyn GroupsAccumulator>,
    /// Built-ins ignore rows with a null argument; user functions see them.
    skip_nulls: bool,
    /// Per group: canonical encoding of the argument values -> number of rows holding them.
    seen: Vec<hashbrown::HashMap<Box<[u8]>, u64>>,
    /// Scratch: the batch's encoded argument values.
    keys: EncodedKeys,
    /// Scratch: the signs passed on to the wrapped aggregate.
    signs: Vec<i8>,
}

impl GroupsAccumulator for Distinct {
    fn resize(&mut self, groups: usize) {
        if self.seen.len() < groups {
            self.seen.resize_with(groups, hashbrown::HashMap::new);
        }
        self.inner.resize(groups);
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        encode_arrow_keys(args, &mut self.keys).map_err(AggregateError::from)?;
        let nulls = if self.skip_nulls {
            args.iter().fold(None, |acc: Option<NullBuffer>, a| {
                NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
            })
        } else {
            None
        };
        self.signs.clear();
        for (row, (&g, &s)) in groups.iter().zip(signs).enumerate() {
            let skip = s == 0 || nulls.as_ref().is_some_and(|n| n.is_null(row));
            if skip {
                self.signs.push(0);
                continue;
            }
            let seen = &mut self.seen[g as usize];
            let value = self.keys.row(row);
            let passed = if s > 0 {
                match seen.get_mut(value) {
                    Some(count) => {
                        *count += 1;
                        0
                    }
                    None => {
                        seen.insert(value.into(), 1);
                        1
                    }
                }
            } else {
                match seen.get_mut(value) {
                    Some(count) if *count > 1 => {
                        *count -= 1;
                        0
                    }
                    Some(_) => {
                        seen.remove(value);
                        -1
                    }
                    None => return Err(AccumulatorError::UnknownValue { group: g }),
                }
            };
            self.signs.push(passed);
        }
        self.inner.update(args, groups, &self.signs)
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        self.inner.evaluate(groups)
    }

    fn reset(&mut self, group: u32) {
        self.seen[group as usize] = hashbrown::HashMap::new();
        self.inner.reset(group);
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        let mut values: Vec<(Vec<u8>, u64)> = self.seen[group as usize]
            .iter()
            .map(|(k, c)| (k.to_vec(), *c))
            .collect();
        values.sort_unstable();
        Ok(AccumulatorState::Distinct {
            values,
            inner: Box::new(self.inner.save(group)?),
        })
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::Distinct { values, inner } => {
                self.seen[group as usize] = values
                    .into_iter()
                    .map(|(k, c)| (k.into_boxed_slice(), c))
                    .collect();
                self.inner.load(group, *inner)
            }
            other => Err(format!("expected distinct values, found {other:?}")),
        }
    }

    /// Distinct values are kept in the key encoding, which cannot be turned back into the
    /// argument values the wrapped aggregate would need to see once more.
    fn merge_state(&mut self, _group: u32, _state: AccumulatorState) -> Result<(), String> {
        Err("DISTINCT aggregates cannot be merged".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// User aggregate functions

/// A user aggregate function: one row-wise [`Accumulator`] per group, created on its first row.
#[derive(Debug)]
struct UserAggregate {
    udf: Arc<dyn AggregateUdf>,
    label: Arc<str>,
    arg_types: Vec<DataType>,
    output: DataType,
    accumulators: Vec<Option<Box<dyn Accumulator>>>,
}

impl UserAggregate {
    fn failed(&self, source: crate::error::BoxError) -> AggregateError {
        AggregateError::User {
            aggregate: self.label.to_string(),
            source,
        }
    }
}

impl GroupsAccumulator for UserAggregate {
    fn resize(&mut self, groups: usize) {
        if self.accumulators.len() < groups {
            self.accumulators.resize_with(groups, || None);
        }
    }

    fn update(
        &mut self,
        args: &[ArrayRef],
        groups: &[u32],
        signs: &[i8],
    ) -> Result<(), AccumulatorError> {
        let mut values = Vec::with_capacity(args.len());
        for (row, (&g, &s)) in groups.iter().zip(signs).enumerate() {
            if s == 0 {
                continue;
            }
            values.clear();
            for arg in args {
                values.push(
                    ScalarValue::try_from_array(arg.as_ref(), row).map_err(AggregateError::from)?,
                );
            }
            let slot = &mut self.accumulators[g as usize];
            let accumulator =
                slot.get_or_insert_with(|| self.udf.create_accumulator(&self.arg_types));
            let result = if s > 0 {
                accumulator.accumulate(&values)
            } else {
                accumulator.retract(&values)
            };
            result.map_err(|source| AggregateError::User {
                aggregate: self.label.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        if groups.is_empty() {
            return Ok(new_empty_array(&self.output));
        }
        let mut pieces = Vec::with_capacity(groups.len());
        for &g in groups {
            let value = match &self.accumulators[g as usize] {
                Some(accumulator) => accumulator.value(),
                None => self.udf.create_accumulator(&self.arg_types).value(),
            }
            .map_err(|e| self.failed(e))?;
            let piece = match value {
                ScalarValue::Null(_) => new_null_array(&self.output, 1),
                value if value.data_type() == self.output => value.to_array(1),
                value => {
                    return Err(AggregateError::OutputType {
                        aggregate: self.label.to_string(),
                        expected: value.data_type(),
                        declared: self.output.clone(),
                    });
                }
            };
            pieces.push(piece);
        }
        let refs: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
        Ok(arrow::compute::concat(&refs)?)
    }

    fn reset(&mut self, group: u32) {
        self.accumulators[group as usize] = None;
    }

    fn save(&self, group: u32) -> Result<AccumulatorState, String> {
        Ok(AccumulatorState::User(
            self.accumulators[group as usize]
                .as_ref()
                .map(|a| a.state()),
        ))
    }

    fn load(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::User(None) => {
                self.accumulators[group as usize] = None;
                Ok(())
            }
            AccumulatorState::User(Some(state)) => {
                let mut accumulator = self.udf.create_accumulator(&self.arg_types);
                accumulator.merge(&state).map_err(|e| e.to_string())?;
                self.accumulators[group as usize] = Some(accumulator);
                Ok(())
            }
            other => Err(format!(
                "expected a user accumulator's state, found {other:?}"
            )),
        }
    }

    fn merge_state(&mut self, group: u32, state: AccumulatorState) -> Result<(), String> {
        match state {
            AccumulatorState::User(None) => Ok(()),
            AccumulatorState::User(Some(state)) => {
                let slot = &mut self.accumulators[group as usize];
                let accumulator =
                    slot.get_or_insert_with(|| self.udf.create_accumulator(&self.arg_types));
                accumulator.merge(&state).map_err(|e| e.to_string())
            }
            other => Err(format!(
                "expected a user accumulator's state, found {other:?}"
            )),
        }
    }
}

#[cfg(test)]
mod merge_tests {
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::Field;
    use proptest::prelude::*;

    use super::*;

    /// Every built-in non-distinct aggregate over an argument of `data_type`.
    fn calls(data_type: &DataType) -> Vec<AggregateCall> {
        let field = |t: DataType| Field::new("out", t, true);
        let mut calls = vec![
            AggregateCall::new(AggregateKind::CountStar, [], field(DataType::Int64)),
            AggregateCall::new(AggregateKind::Count, [0], field(DataType::Int64)),
            AggregateCall::new(AggregateKind::Min, [0], field(data_type.clone())),
            AggregateCall::new(AggregateKind::Max, [0], field(data_type.clone())),
        ];
        if let Some(sum) = sum_type(data_type, false) {
            calls.push(AggregateCall::new(AggregateKind::Sum, [0], field(sum)));
            calls.push(AggregateCall::new(
                AggregateKind::Avg,
                [0],
                field(DataType::Float64),
            ));
        }
        calls
    }

    /// Accumulates `column` into group 0 whole, and into groups 1 and 2 split at `split`;
    /// merging group 2 into 1 must give group 0's result and leave group 2 empty.
    fn check(column: ArrayRef, split: usize) -> Result<(), TestCaseError> {
        let rows = column.len();
        let split = split.min(rows);
        for call in calls(column.data_type()) {
            let args: Vec<ArrayRef> = call.args.iter().map(|_| Arc::clone(&column)).collect();
            let types: Vec<DataType> = args.iter().map(|a| a.data_type().clone()).collect();
            let mut accumulator = create_accumulator(&call, "test", &types).unwrap();
            accumulator.resize(3);
            let signs = vec![1i8; rows];
            accumulator.update(&args, &vec![0; rows], &signs).unwrap();
            let halves: Vec<u32> = (0..rows)
                .map(|row| if row < split { 1 } else { 2 })
                .collect();
            accumulator.update(&args, &halves, &signs).unwrap();
            accumulator.merge(1, 2).unwrap();
            let whole = accumulator.evaluate(&[0]).unwrap();
            let merged = accumulator.evaluate(&[1]).unwrap();
            let left = accumulator.evaluate(&[2]).unwrap();
            prop_assert_eq!(whole.to_data(), merged.to_data(), "{:?}", call.kind);
            // Group 2 is emptied: it evaluates as a group that saw nothing.
            let mut fresh = create_accumulator(&call, "test", &types).unwrap();
            fresh.resize(1);
            prop_assert_eq!(left.to_data(), fresh.evaluate(&[0]).unwrap().to_data());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn merged_groups_equal_one_group(
            values in prop::collection::vec(prop::option::of(-50i64..50), 0..20),
            split in 0usize..20,
        ) {
            check(Arc::new(Int64Array::from(values.clone())), split)?;
            let floats: Float64Array = values.iter().map(|v| v.map(|v| v as f64 / 4.0)).collect();
            check(Arc::new(floats), split)?;
            let strings: StringArray = values.iter().map(|v| v.map(|v| format!("s{v}"))).collect();
            check(Arc::new(strings), split)?;
            let booleans: BooleanArray = values.iter().map(|v| v.map(|v| v > 0)).collect();
            check(Arc::new(booleans), split)?;
        }
    }

    #[test]
    fn distinct_states_refuse_to_merge() {
        let call = AggregateCall::new(
            AggregateKind::Count,
            [0],
            Field::new("n", DataType::Int64, false),
        )
        .distinct();
        let mut accumulator = create_accumulator(&call, "test", &[DataType::Int64]).unwrap();
        accumulator.resize(2);
        assert!(accumulator.merge(0, 1).is_err());
    }
}
