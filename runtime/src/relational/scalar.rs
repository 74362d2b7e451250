//! [`ScalarValue`]: one typed value, possibly null.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, DurationMillisecondArray,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    IntervalYearMonthArray, StringArray, TimestampMillisecondArray, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array, new_null_array,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DurationMillisecondType, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, IntervalUnit, IntervalYearMonthType, TimeUnit,
    TimestampMillisecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;

/// One value of an Arrow type, or a null of that type.
///
/// Timestamps are milliseconds since the epoch without a time zone (the unit the runtime
/// normalises to); day-time intervals are durations in milliseconds; year-month intervals count
/// months.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ScalarValue {
    /// A null of the given type.
    Null(#[serde(with = "data_type_serde")] DataType),
    /// `BOOLEAN`.
    Boolean(bool),
    /// `TINYINT`.
    Int8(i8),
    /// `SMALLINT`.
    Int16(i16),
    /// `INT`.
    Int32(i32),
    /// `BIGINT`.
    Int64(i64),
    /// Unsigned 8-bit integer.
    UInt8(u8),
    /// Unsigned 16-bit integer.
    UInt16(u16),
    /// Unsigned 32-bit integer.
    UInt32(u32),
    /// Unsigned 64-bit integer.
    UInt64(u64),
    /// `FLOAT`.
    Float32(f32),
    /// `DOUBLE`.
    Float64(f64),
    /// `DECIMAL(precision, scale)`: `value / 10^scale`.
    Decimal128 {
        /// The unscaled value.
        value: i128,
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// `STRING`.
    Utf8(String),
    /// `DATE`: days since 1970-01-01.
    Date32(i32),
    /// `TIMESTAMP(3)`: milliseconds since the epoch.
    TimestampMs(i64),
    /// `INTERVAL DAY TO SECOND`: a duration in milliseconds.
    DurationMs(i64),
    /// `INTERVAL YEAR TO MONTH`: a number of months.
    IntervalMonths(i32),
}

impl ScalarValue {
    /// The value's Arrow type.
    pub fn data_type(&self) -> DataType {
        match self {
            ScalarValue::Null(t) => t.clone(),
            ScalarValue::Boolean(_) => DataType::Boolean,
            ScalarValue::Int8(_) => DataType::Int8,
            ScalarValue::Int16(_) => DataType::Int16,
            ScalarValue::Int32(_) => DataType::Int32,
            ScalarValue::Int64(_) => DataType::Int64,
            ScalarValue::UInt8(_) => DataType::UInt8,
            ScalarValue::UInt16(_) => DataType::UInt16,
            ScalarValue::UInt32(_) => DataType::UInt32,
            ScalarValue::UInt64(_) => DataType::UInt64,
            ScalarValue::Float32(_) => DataType::Float32,
            ScalarValue::Float64(_) => DataType::Float64,
            ScalarValue::Decimal128 {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            ScalarValue::Utf8(_) => DataType::Utf8,
            ScalarValue::Date32(_) => DataType::Date32,
            ScalarValue::TimestampMs(_) => DataType::Timestamp(TimeUnit::Millisecond, None),
            ScalarValue::DurationMs(_) => DataType::Duration(TimeUnit::Millisecond),
            ScalarValue::IntervalMonths(_) => DataType::Interval(IntervalUnit::YearMonth),
        }
    }

    /// Whether this is a null.
    pub fn is_null(&self) -> bool {
        matches!(self, ScalarValue::Null(_))
    }

    /// An array repeating this value `rows` times.
    pub fn to_array(&self, rows: usize) -> ArrayRef {
        match self {
            ScalarValue::Null(t) => new_null_array(t, rows),
            ScalarValue::Boolean(v) => Arc::new(BooleanArray::from(vec![*v; rows])),
            ScalarValue::Int8(v) => Arc::new(Int8Array::from_value(*v, rows)),
            ScalarValue::Int16(v) => Arc::new(Int16Array::from_value(*v, rows)),
            ScalarValue::Int32(v) => Arc::new(Int32Array::from_value(*v, rows)),
            ScalarValue::Int64(v) => Arc::new(Int64Array::from_value(*v, rows)),
            ScalarValue::UInt8(v) => Arc::new(UInt8Array::from_value(*v, rows)),
            ScalarValue::UInt16(v) => Arc::new(UInt16Array::from_value(*v, rows)),
            ScalarValue::UInt32(v) => Arc::new(UInt32Array::from_value(*v, rows)),
            ScalarValue::UInt64(v) => Arc::new(UInt64Array::from_value(*v, rows)),
            ScalarValue::Float32(v) => Arc::new(Float32Array::from_value(*v, rows)),
            ScalarValue::Float64(v) => Arc::new(Float64Array::from_value(*v, rows)),
            ScalarValue::Decimal128 {
                value,
                precision,
                scale,
            } => Arc::new(
                Decimal128Array::from_value(*value, rows)
                    .with_precision_and_scale(*precision, *scale)
                    .expect("a decimal scalar has a valid precision and scale"),
            ),
            ScalarValue::Utf8(v) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                v.as_str(),
                rows,
            ))),
            ScalarValue::Date32(v) => Arc::new(Date32Array::from_value(*v, rows)),
            ScalarValue::TimestampMs(v) => {
                Arc::new(TimestampMillisecondArray::from_value(*v, rows))
            }
            ScalarValue::DurationMs(v) => Arc::new(DurationMillisecondArray::from_value(*v, rows)),
            ScalarValue::IntervalMonths(v) => {
                Arc::new(IntervalYearMonthArray::from_value(*v, rows))
            }
        }
    }

    /// The value at `row` of `array`.
    pub fn try_from_array(array: &dyn Array, row: usize) -> Result<ScalarValue, ArrowError> {
        if array.is_null(row) {
            return Ok(ScalarValue::Null(array.data_type().clone()));
        }
        Ok(match array.data_type() {
            DataType::Boolean => ScalarValue::Boolean(array.as_boolean().value(row)),
            DataType::Int8 => ScalarValue::Int8(array.as_primitive::<Int8Type>().value(row)),
            DataType::Int16 => ScalarValue::Int16(array.as_primitive::<Int16Type>().value(row)),
            DataType::Int32 => ScalarValue::Int32(array.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => ScalarValue::Int64(array.as_primitive::<Int64Type>().value(row)),
            DataType::UInt8 => ScalarValue::UInt8(array.as_primitive::<UInt8Type>().value(row)),
            DataType::UInt16 => ScalarValue::UInt16(array.as_primitive::<UInt16Type>().value(row)),
            DataType::UInt32 => ScalarValue::UInt32(array.as_primitive::<UInt32Type>().value(row)),
            DataType::UInt64 => ScalarValue::UInt64(array.as_primitive::<UInt64Type>().value(row)),
            DataType::Float32 => {
                ScalarValue::Float32(array.as_primitive::<Float32Type>().value(row))
            }
            DataType::Float64 => {
                ScalarValue::Float64(array.as_primitive::<Float64Type>().value(row))
            }
            DataType::Decimal128(precision, scale) => ScalarValue::Decimal128 {
                value: array.as_primitive::<Decimal128Type>().value(row),
                precision: *precision,
                scale: *scale,
            },
            DataType::Utf8 => ScalarValue::Utf8(array.as_string::<i32>().value(row).to_owned()),
            DataType::LargeUtf8 => {
                ScalarValue::Utf8(array.as_string::<i64>().value(row).to_owned())
            }
            DataType::Utf8View => ScalarValue::Utf8(array.as_string_view().value(row).to_owned()),
            DataType::Date32 => ScalarValue::Date32(array.as_primitive::<Date32Type>().value(row)),
            DataType::Timestamp(TimeUnit::Millisecond, _) => ScalarValue::TimestampMs(
                array.as_primitive::<TimestampMillisecondType>().value(row),
            ),
            DataType::Duration(TimeUnit::Millisecond) => {
                ScalarValue::DurationMs(array.as_primitive::<DurationMillisecondType>().value(row))
            }
            DataType::Interval(IntervalUnit::YearMonth) => ScalarValue::IntervalMonths(
                array.as_primitive::<IntervalYearMonthType>().value(row),
            ),
            other => {
                return Err(ArrowError::NotYetImplemented(format!(
                    "scalar values of type {other}"
                )));
            }
        })
    }
}

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarValue::Null(_) => f.write_str("NULL"),
            ScalarValue::Boolean(v) => write!(f, "{}", if *v { "TRUE" } else { "FALSE" }),
            ScalarValue::Int8(v) => write!(f, "{v}"),
            ScalarValue::Int16(v) => write!(f, "{v}"),
            ScalarValue::Int32(v) => write!(f, "{v}"),
            ScalarValue::Int64(v) => write!(f, "{v}"),
            ScalarValue::UInt8(v) => write!(f, "{v}"),
            ScalarValue::UInt16(v) => write!(f, "{v}"),
            ScalarValue::UInt32(v) => write!(f, "{v}"),
            ScalarValue::UInt64(v) => write!(f, "{v}"),
            ScalarValue::Float32(v) => write!(f, "{v:?}"),
            ScalarValue::Float64(v) => write!(f, "{v:?}"),
            ScalarValue::Decimal128 { value, scale, .. } => {
                let array = Decimal128Array::from(vec![*value])
                    .with_precision_and_scale(38, *scale)
                    .map_err(|_| fmt::Error)?;
                f.write_str(&array.value_as_string(0))
            }
            ScalarValue::Utf8(v) => write!(f, "'{}'", v.replace('\'', "''")),
            ScalarValue::Date32(v) => match arrow::temporal_conversions::date32_to_datetime(*v) {
                Some(d) => write!(f, "DATE '{}'", d.format("%Y-%m-%d")),
                None => write!(f, "DATE({v})"),
            },
            ScalarValue::TimestampMs(v) => {
                match arrow::temporal_conversions::timestamp_ms_to_datetime(*v) {
                    Some(d) => write!(f, "TIMESTAMP '{}'", d.format("%Y-%m-%d %H:%M:%S%.3f")),
                    None => write!(f, "TIMESTAMP({v})"),
                }
            }
            ScalarValue::DurationMs(v) => write!(f, "INTERVAL '{v}' MILLISECOND"),
            ScalarValue::IntervalMonths(v) => write!(f, "INTERVAL '{v}' MONTH"),
        }
    }
}

macro_rules! scalar_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for ScalarValue {
            fn from(v: $t) -> Self {
                ScalarValue::$variant(v)
            }
        })*
    };
}

scalar_from!(bool => Boolean, i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64, u8 => UInt8,
    u16 => UInt16, u32 => UInt32, u64 => UInt64, f32 => Float32, f64 => Float64, String => Utf8);

impl From<&str> for ScalarValue {
    fn from(v: &str) -> Self {
        ScalarValue::Utf8(v.to_owned())
    }
}

impl<T: Into<ScalarValue>> From<Option<T>> for ScalarValue
where
    T: Default,
{
    fn from(v: Option<T>) -> Self {
        match v {
            Some(v) => v.into(),
            None => ScalarValue::Null(T::default().into().data_type()),
        }
    }
}

/// Serialises a [`DataType`] through its Arrow IPC-compatible string form.
mod data_type_serde {
    use arrow::datatypes::DataType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<DataType>().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_arrays() {
        let values = [
            ScalarValue::Int64(7),
            ScalarValue::Utf8("a'b".into()),
            ScalarValue::Decimal128 {
                value: 1234,
                precision: 10,
                scale: 2,
            },
            ScalarValue::TimestampMs(1_000),
            ScalarValue::Null(DataType::Int32),
        ];
        for value in values {
            let array = value.to_array(3);
            assert_eq!(array.len(), 3);
            assert_eq!(ScalarValue::try_from_array(&array, 2).unwrap(), value);
        }
        assert_eq!(
            ScalarValue::Decimal128 {
                value: 1234,
                precision: 10,
                scale: 2
            }
            .to_string(),
            "12.34"
        );
    }

    #[test]
    fn serialises_nulls_with_their_type() {
        let value = ScalarValue::Null(DataType::Timestamp(TimeUnit::Millisecond, None));
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert_eq!(postcard::from_bytes::<ScalarValue>(&bytes).unwrap(), value);
    }
}
