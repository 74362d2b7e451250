//! The canonical key encoding of Arrow key columns, column at a time.
//!
//! Encoding a batch takes two passes over the key columns: the first adds up each row's
//! encoded length, the second writes each column's values into every row at a per-row
//! cursor. Each pass downcasts a column once and then loops over its typed values.

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, FixedSizeBinaryArray,
    GenericByteArray, GenericByteViewArray, PrimitiveArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::*;

use super::encoding::{NULL_TAG, PRESENT_TAG, canonical_f32_bits, canonical_f64_bits, encoded_len};
use super::key_group::validate_max_parallelism;
use super::{KeyError, KeyGroup, hash_key_bytes, key_group_for_hash};

/// The encoded keys of a batch: one byte string per row, in one buffer.
///
/// Filled by [`encode_arrow_keys`]; reuse one `EncodedKeys` across batches to keep its buffers.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Int64Array};
/// use rivulet_runtime::keys::{encode_arrow_keys, encode_key, EncodedKeys};
///
/// let column: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None]));
/// let mut keys = EncodedKeys::new();
/// encode_arrow_keys(&[column], &mut keys)?;
/// assert_eq!(keys.len(), 2);
///
/// let mut typed = Vec::new();
/// encode_key(&42i64, &mut typed)?;
/// assert_eq!(keys.row(0), typed.as_slice());
/// assert_eq!(keys.row(1), [0]);
/// # Ok::<(), rivulet_runtime::keys::KeyError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct EncodedKeys {
    /// All rows' encodings, back to back.
    bytes: Vec<u8>,
    /// Row `i` is `bytes[offsets[i]..offsets[i + 1]]`; empty when nothing was encoded yet.
    offsets: Vec<u32>,
    /// Scratch: per-row lengths in the first pass, write positions in the second.
    cursors: Vec<usize>,
}

impl EncodedKeys {
    /// An empty set of encoded keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded key of row `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The encoded keys of all rows, in row order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.offsets
            .windows(2)
            .map(|w| &self.bytes[w[0] as usize..w[1] as usize])
    }

    /// Clears `out` and writes the key group of every row to it.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidMaxParallelism`] unless `max_parallelism` is in `1..=32768`.
    pub fn key_groups(
        &self,
        max_parallelism: u16,
        out: &mut Vec<KeyGroup>,
    ) -> Result<(), KeyError> {
        validate_max_parallelism(max_parallelism)?;
        out.clear();
        out.extend(
            self.iter()
                .map(|row| key_group_for_hash(hash_key_bytes(row), max_parallelism)),
        );
        Ok(())
    }
}

/// Encodes one composite key per row of `columns` into `out` (replacing its contents).
///
/// Row `i`'s key is the concatenation of each column's encoding of its value `i`, in column
/// order, exactly as [`encode_key`](super::encode_key) encodes the equivalent tuple: a
/// non-null value encodes like the Rust value it holds and every null as `[0]` (like `None`).
/// Temporal and decimal types encode as their native integer (`Date32` as `i32`,
/// `Timestamp`/`Date64`/`Time64`/`Duration` as `i64`, `Time32` as `i32`, `Decimal128` as its
/// unscaled `i128`), `Utf8`/`LargeUtf8`/`Utf8View` like `&str`, and binary types like
/// `serde_bytes` byte arrays.
///
/// # Errors
///
/// - [`KeyError::NoKeyColumns`] if `columns` is empty;
/// - [`KeyError::ColumnLengthMismatch`] if the columns differ in length;
/// - [`KeyError::UnsupportedArrowType`] for a column of any other type than those listed
///   above, `Null`, `Boolean`, the integer and float types, `Decimal32`/`Decimal64`,
///   `BinaryView` and `FixedSizeBinary`;
/// - [`KeyError::TooLong`] / [`KeyError::BatchTooLarge`] if a value or the whole batch's
///   encoding exceeds 4 GiB.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Int64Array, StringArray};
/// use rivulet_runtime::keys::{encode_arrow_keys, encode_key, EncodedKeys};
///
/// let users: ArrayRef = Arc::new(StringArray::from(vec!["user"]));
/// let ids: ArrayRef = Arc::new(Int64Array::from(vec![7]));
/// let mut keys = EncodedKeys::new();
/// encode_arrow_keys(&[users, ids], &mut keys)?;
///
/// let mut typed = Vec::new();
/// encode_key(&("user", 7i64), &mut typed)?;
/// assert_eq!(keys.row(0), typed.as_slice());
/// # Ok::<(), rivulet_runtime::keys::KeyError>(())
/// ```
pub fn encode_arrow_keys(columns: &[ArrayRef], out: &mut EncodedKeys) -> Result<(), KeyError> {
    let first = columns.first().ok_or(KeyError::NoKeyColumns)?;
    let rows = first.len();
    let encoders = columns
        .iter()
        .enumerate()
        .map(|(column, array)| {
            if array.len() != rows {
                return Err(KeyError::ColumnLengthMismatch {
                    column,
                    expected: rows,
                    found: array.len(),
                });
            }
            column_encoder(column, array.as_ref())
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Pass 1: each row's encoded length.
    let EncodedKeys {
        bytes,
        offsets,
        cursors,
    } = out;
    cursors.clear();
    cursors.resize(rows, 0);
    for encoder in &encoders {
        encoder.add_lengths(cursors)?;
    }
    offsets.clear();
    offsets.reserve(rows + 1);
    offsets.push(0);
    let mut total = 0usize;
    for len in cursors.iter_mut() {
        let start = total;
        total += *len;
        let end = u32::try_from(total).map_err(|_| KeyError::BatchTooLarge {
            bytes: total as u64,
        })?;
        offsets.push(end);
        *len = start;
    }

    // Pass 2: write each column into every row at its cursor.
    bytes.clear();
    bytes.resize(total, 0);
    for encoder in &encoders {
        encoder.write(bytes, cursors);
    }
    debug_assert!(
        cursors
            .iter()
            .zip(&offsets[1..])
            .all(|(c, end)| *c == *end as usize)
    );
    Ok(())
}

/// Clears `out` and writes the key group of every row of `columns` to it.
///
/// Equivalent to [`encode_arrow_keys`] followed by [`EncodedKeys::key_groups`]; it allocates
/// one encoding buffer per call, so a hot loop should keep an [`EncodedKeys`] and call those
/// two instead.
///
/// # Errors
///
/// As [`encode_arrow_keys`], and [`KeyError::InvalidMaxParallelism`] unless
/// `max_parallelism` is in `1..=32768`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Int64Array};
/// use rivulet_runtime::keys::{arrow_key_groups, key_group_of};
///
/// let column: ArrayRef = Arc::new(Int64Array::from(vec![42, 43]));
/// let mut groups = Vec::new();
/// arrow_key_groups(&[column], 128, &mut groups)?;
/// assert_eq!(groups[0], key_group_of(&42i64, 128, &mut Vec::new())?);
/// # Ok::<(), rivulet_runtime::keys::KeyError>(())
/// ```
pub fn arrow_key_groups(
    columns: &[ArrayRef],
    max_parallelism: u16,
    out: &mut Vec<KeyGroup>,
) -> Result<(), KeyError> {
    validate_max_parallelism(max_parallelism)?;
    let mut keys = EncodedKeys::new();
    encode_arrow_keys(columns, &mut keys)?;
    keys.key_groups(max_parallelism, out)
}

/// Encodes one key column: downcast once per batch, then typed loops over its values.
trait ColumnEncoder {
    /// Adds each row's encoded length of this column to `lens`.
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError>;
    /// Writes each row's encoding at `cursors[row]` and advances the cursor past it.
    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]);
}

/// The encoder for a column, or the error naming its unsupported type.
fn column_encoder(
    column: usize,
    array: &dyn Array,
) -> Result<Box<dyn ColumnEncoder + '_>, KeyError> {
    fn primitive<T: ArrowPrimitiveType>(array: &dyn Array) -> Box<dyn ColumnEncoder + '_>
    where
        T::Native: KeyNative,
    {
        Box::new(array.as_primitive::<T>())
    }
    use DataType as D;
    use TimeUnit as U;
    Ok(match array.data_type() {
        D::Null => Box::new(AllNull(array.len())),
        D::Boolean => Box::new(array.as_boolean()),
        D::Int8 => primitive::<Int8Type>(array),
        D::Int16 => primitive::<Int16Type>(array),
        D::Int32 => primitive::<Int32Type>(array),
        D::Int64 => primitive::<Int64Type>(array),
        D::UInt8 => primitive::<UInt8Type>(array),
        D::UInt16 => primitive::<UInt16Type>(array),
        D::UInt32 => primitive::<UInt32Type>(array),
        D::UInt64 => primitive::<UInt64Type>(array),
        D::Float32 => primitive::<Float32Type>(array),
        D::Float64 => primitive::<Float64Type>(array),
        D::Decimal32(..) => primitive::<Decimal32Type>(array),
        D::Decimal64(..) => primitive::<Decimal64Type>(array),
        D::Decimal128(..) => primitive::<Decimal128Type>(array),
        D::Date32 => primitive::<Date32Type>(array),
        D::Date64 => primitive::<Date64Type>(array),
        D::Time32(U::Second) => primitive::<Time32SecondType>(array),
        D::Time32(U::Millisecond) => primitive::<Time32MillisecondType>(array),
        D::Time64(U::Microsecond) => primitive::<Time64MicrosecondType>(array),
        D::Time64(U::Nanosecond) => primitive::<Time64NanosecondType>(array),
        D::Timestamp(U::Second, _) => primitive::<TimestampSecondType>(array),
        D::Timestamp(U::Millisecond, _) => primitive::<TimestampMillisecondType>(array),
        D::Timestamp(U::Microsecond, _) => primitive::<TimestampMicrosecondType>(array),
        D::Timestamp(U::Nanosecond, _) => primitive::<TimestampNanosecondType>(array),
        D::Duration(U::Second) => primitive::<DurationSecondType>(array),
        D::Duration(U::Millisecond) => primitive::<DurationMillisecondType>(array),
        D::Duration(U::Microsecond) => primitive::<DurationMicrosecondType>(array),
        D::Duration(U::Nanosecond) => primitive::<DurationNanosecondType>(array),
        D::Utf8 => Box::new(array.as_string::<i32>()),
        D::LargeUtf8 => Box::new(array.as_string::<i64>()),
        D::Binary => Box::new(array.as_binary::<i32>()),
        D::LargeBinary => Box::new(array.as_binary::<i64>()),
        D::Utf8View => Box::new(array.as_string_view()),
        D::BinaryView => Box::new(array.as_binary_view()),
        D::FixedSizeBinary(_) => Box::new(array.as_fixed_size_binary()),
        other => {
            return Err(KeyError::UnsupportedArrowType {
                column,
                data_type: other.clone(),
            });
        }
    })
}

/// A native value written as its canonical little-endian bytes.
trait KeyNative: Copy {
    /// Encoded width in bytes, without the tag.
    const WIDTH: usize;
    /// Writes the value to `dst`, which is exactly `WIDTH` bytes long.
    fn write_le(self, dst: &mut [u8]);
}

macro_rules! key_native_int {
    ($($t:ty),*) => {$(
        impl KeyNative for $t {
            const WIDTH: usize = size_of::<$t>();
            #[inline]
            fn write_le(self, dst: &mut [u8]) {
                dst.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
key_native_int!(i8, i16, i32, i64, i128, u8, u16, u32, u64);

impl KeyNative for f32 {
    const WIDTH: usize = 4;
    #[inline]
    fn write_le(self, dst: &mut [u8]) {
        dst.copy_from_slice(&canonical_f32_bits(self).to_le_bytes());
    }
}

impl KeyNative for f64 {
    const WIDTH: usize = 8;
    #[inline]
    fn write_le(self, dst: &mut [u8]) {
        dst.copy_from_slice(&canonical_f64_bits(self).to_le_bytes());
    }
}

/// Adds `1 + width` per valid row and `1` per null row.
fn add_fixed_lengths(nulls: Option<&NullBuffer>, width: usize, lens: &mut [usize]) {
    match nulls {
        None => lens.iter_mut().for_each(|len| *len += 1 + width),
        Some(nulls) => {
            for (len, valid) in lens.iter_mut().zip(nulls.iter()) {
                *len += if valid { 1 + width } else { 1 };
            }
        }
    }
}

/// Adds the encoded length of each row's byte string (`1 + 4 + len`, or `1` when null).
fn add_var_lengths(
    nulls: Option<&NullBuffer>,
    value_lens: impl Iterator<Item = usize>,
    lens: &mut [usize],
) -> Result<(), KeyError> {
    for (row, (len, value_len)) in lens.iter_mut().zip(value_lens).enumerate() {
        if nulls.is_some_and(|n| n.is_null(row)) {
            *len += 1;
        } else {
            encoded_len("byte array", value_len)?;
            *len += 5 + value_len;
        }
    }
    Ok(())
}

/// Writes the null tag of every null row; calls `write_valid` for the others.
#[inline]
fn write_rows(
    nulls: Option<&NullBuffer>,
    bytes: &mut [u8],
    cursors: &mut [usize],
    mut write_valid: impl FnMut(usize, &mut [u8], &mut usize),
) {
    match nulls {
        None => {
            for (row, cursor) in cursors.iter_mut().enumerate() {
                write_valid(row, bytes, cursor);
            }
        }
        Some(nulls) => {
            for ((row, cursor), valid) in cursors.iter_mut().enumerate().zip(nulls.iter()) {
                if valid {
                    write_valid(row, bytes, cursor);
                } else {
                    bytes[*cursor] = NULL_TAG;
                    *cursor += 1;
                }
            }
        }
    }
}

/// Writes a present tag, a `u32` length and the bytes.
#[inline]
fn write_length_prefixed(value: &[u8], bytes: &mut [u8], cursor: &mut usize) {
    let c = *cursor;
    bytes[c] = PRESENT_TAG;
    // Lengths were checked to fit a `u32` in the length pass.
    bytes[c + 1..c + 5].copy_from_slice(&(value.len() as u32).to_le_bytes());
    bytes[c + 5..c + 5 + value.len()].copy_from_slice(value);
    *cursor = c + 5 + value.len();
}

/// A column of Arrow's `Null` type: every row encodes as `[0]`.
struct AllNull(usize);

impl ColumnEncoder for AllNull {
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError> {
        lens.iter_mut().for_each(|len| *len += 1);
        Ok(())
    }

    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]) {
        debug_assert_eq!(self.0, cursors.len());
        for cursor in cursors {
            bytes[*cursor] = NULL_TAG;
            *cursor += 1;
        }
    }
}

impl<T: ArrowPrimitiveType> ColumnEncoder for &PrimitiveArray<T>
where
    T::Native: KeyNative,
{
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError> {
        add_fixed_lengths(self.nulls(), T::Native::WIDTH, lens);
        Ok(())
    }

    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]) {
        let values = self.values();
        let width = T::Native::WIDTH;
        write_rows(self.nulls(), bytes, cursors, |row, bytes, cursor| {
            let c = *cursor;
            bytes[c] = PRESENT_TAG;
            values[row].write_le(&mut bytes[c + 1..c + 1 + width]);
            *cursor = c + 1 + width;
        });
    }
}

impl ColumnEncoder for &BooleanArray {
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError> {
        add_fixed_lengths(self.nulls(), 1, lens);
        Ok(())
    }

    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]) {
        let values = self.values();
        write_rows(self.nulls(), bytes, cursors, |row, bytes, cursor| {
            let c = *cursor;
            bytes[c] = PRESENT_TAG;
            bytes[c + 1] = u8::from(values.value(row));
            *cursor = c + 2;
        });
    }
}

impl<T: ByteArrayType> ColumnEncoder for &GenericByteArray<T> {
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError> {
        let value_lens = self
            .value_offsets()
            .windows(2)
            .map(|w| w[1].as_usize() - w[0].as_usize());
        add_var_lengths(self.nulls(), value_lens, lens)
    }

    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]) {
        let offsets = self.value_offsets();
        let data = self.value_data();
        write_rows(self.nulls(), bytes, cursors, |row, bytes, cursor| {
            let value = &data[offsets[row].as_usize()..offsets[row + 1].as_usize()];
            write_length_prefixed(value, bytes, cursor);
        });
    }
}

impl<T: ByteViewType> ColumnEncoder for &GenericByteViewArray<T>
where
    T::Native: AsRef<[u8]>,
{
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError> {
        // The low 32 bits of a view are the value's length.
        let value_lens = self.views().iter().map(|view| *view as u32 as usize);
        add_var_lengths(self.nulls(), value_lens, lens)
    }

    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]) {
        write_rows(self.nulls(), bytes, cursors, |row, bytes, cursor| {
            write_length_prefixed(self.value(row).as_ref(), bytes, cursor);
        });
    }
}

impl ColumnEncoder for &FixedSizeBinaryArray {
    fn add_lengths(&self, lens: &mut [usize]) -> Result<(), KeyError> {
        let width = usize::try_from(self.value_length()).unwrap_or(0);
        add_var_lengths(self.nulls(), std::iter::repeat_n(width, self.len()), lens)
    }

    fn write(&self, bytes: &mut [u8], cursors: &mut [usize]) {
        write_rows(self.nulls(), bytes, cursors, |row, bytes, cursor| {
            write_length_prefixed(self.value(row), bytes, cursor);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::*;
    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;
    use crate::keys::encode_key;

    fn typed<K: Serialize + ?Sized>(key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(key, &mut out).expect("key encodes");
        out
    }

    fn arrow_rows(columns: Vec<ArrayRef>) -> Vec<Vec<u8>> {
        let mut keys = EncodedKeys::new();
        encode_arrow_keys(&columns, &mut keys).expect("columns encode");
        keys.iter().map(<[u8]>::to_vec).collect()
    }

    /// Each supported type, one non-null value and one null, against the typed plane.
    #[test]
    fn every_supported_type_matches_typed_plane() {
        fn check<K: Serialize>(array: ArrayRef, value: K) {
            let rows = arrow_rows(vec![array.clone()]);
            assert_eq!(rows[0], typed(&value), "type {}", array.data_type());
            assert_eq!(rows[1], [NULL_TAG], "type {}", array.data_type());
        }
        check(Arc::new(Int8Array::from(vec![Some(-3), None])), -3i8);
        check(Arc::new(Int16Array::from(vec![Some(-300), None])), -300i16);
        check(Arc::new(Int32Array::from(vec![Some(-3), None])), -3i32);
        check(Arc::new(Int64Array::from(vec![Some(-3), None])), -3i64);
        check(Arc::new(UInt8Array::from(vec![Some(3), None])), 3u8);
        check(Arc::new(UInt16Array::from(vec![Some(3), None])), 3u16);
        check(Arc::new(UInt32Array::from(vec![Some(3), None])), 3u32);
        check(
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None])),
            u64::MAX,
        );
        check(Arc::new(Float32Array::from(vec![Some(-0.0), None])), 0.0f32);
        check(
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None])),
            -f64::NAN,
        );
        check(Arc::new(BooleanArray::from(vec![Some(true), None])), true);
        check(Arc::new(StringArray::from(vec![Some("é"), None])), "é");
        check(
            Arc::new(LargeStringArray::from(vec![Some("ab"), None])),
            "ab",
        );
        check(
            Arc::new(StringViewArray::from(vec![
                Some("a string longer than twelve"),
                None,
            ])),
            "a string longer than twelve",
        );
        check(
            Arc::new(BinaryArray::from(vec![Some(b"ab".as_slice()), None])),
            "ab",
        );
        check(
            Arc::new(LargeBinaryArray::from(vec![Some(b"ab".as_slice()), None])),
            "ab",
        );
        check(
            Arc::new(BinaryViewArray::from(vec![Some(b"ab".as_slice()), None])),
            "ab",
        );
        check(
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(b"xyz".to_vec()), None].into_iter(),
                    3,
                )
                .unwrap(),
            ),
            "xyz",
        );
        check(
            Arc::new(Date32Array::from(vec![Some(19_000), None])),
            19_000i32,
        );
        check(
            Arc::new(Date64Array::from(vec![Some(1 << 40), None])),
            1i64 << 40,
        );
        check(Arc::new(Time32SecondArray::from(vec![Some(5), None])), 5i32);
        check(
            Arc::new(Time32MillisecondArray::from(vec![Some(5), None])),
            5i32,
        );
        check(
            Arc::new(Time64MicrosecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(Time64NanosecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(TimestampSecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(TimestampMillisecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(TimestampMicrosecondArray::from(vec![Some(5), None]).with_timezone("UTC")),
            5i64,
        );
        check(
            Arc::new(TimestampNanosecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(DurationSecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(DurationMillisecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(DurationMicrosecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(DurationNanosecondArray::from(vec![Some(5), None])),
            5i64,
        );
        check(
            Arc::new(
                Decimal128Array::from(vec![Some(-12_345), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            -12_345i128,
        );
        check(Arc::new(Decimal32Array::from(vec![Some(7), None])), 7i32);
        check(Arc::new(Decimal64Array::from(vec![Some(7), None])), 7i64);
    }

    #[test]
    fn null_type_column_is_all_null() {
        let rows = arrow_rows(vec![Arc::new(NullArray::new(2))]);
        assert_eq!(rows, vec![vec![NULL_TAG], vec![NULL_TAG]]);
    }

    #[test]
    fn sliced_columns_encode_their_own_rows() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)]));
        let strs: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            Some("d"),
        ]));
        let rows = arrow_rows(vec![ints.slice(1, 3), strs.slice(1, 3)]);
        assert_eq!(rows[0], typed(&(None::<i64>, "b")));
        assert_eq!(rows[1], typed(&(3i64, None::<&str>)));
        assert_eq!(rows[2], typed(&(4i64, "d")));
    }

    #[test]
    fn buffers_are_reused_across_batches() {
        let mut keys = EncodedKeys::new();
        assert!(keys.is_empty());
        let big: ArrayRef = Arc::new(StringArray::from(vec!["long long value"; 3]));
        encode_arrow_keys(&[big], &mut keys).unwrap();
        let small: ArrayRef = Arc::new(Int8Array::from(vec![1]));
        encode_arrow_keys(&[small], &mut keys).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.row(0), typed(&1i8));
        let empty: ArrayRef = Arc::new(Int8Array::from(Vec::<i8>::new()));
        encode_arrow_keys(&[empty], &mut keys).unwrap();
        assert!(keys.is_empty());
    }

    #[test]
    fn errors() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1)]),
        ]));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let mut keys = EncodedKeys::new();

        let err = encode_arrow_keys(&[ints.clone(), list], &mut keys).unwrap_err();
        assert!(matches!(
            err,
            KeyError::UnsupportedArrowType { column: 1, .. }
        ));
        let message = err.to_string();
        assert!(message.contains("List"), "{message}");
        assert!(message.contains("supported key column types"), "{message}");

        assert!(matches!(
            encode_arrow_keys(&[], &mut keys),
            Err(KeyError::NoKeyColumns)
        ));

        let two: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        assert!(matches!(
            encode_arrow_keys(&[ints.clone(), two], &mut keys),
            Err(KeyError::ColumnLengthMismatch {
                column: 1,
                expected: 1,
                found: 2
            })
        ));

        assert!(matches!(
            arrow_key_groups(&[ints], 0, &mut Vec::new()),
            Err(KeyError::InvalidMaxParallelism { max_parallelism: 0 })
        ));
    }

    /// A row of the property test: the typed key and its four Arrow columns.
    type Row = (Option<i64>, Option<String>, bool, f64);

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::from_bits(0xfff0_0000_dead_beef)),
            Just(f64::INFINITY),
        ]
    }

    fn any_row() -> impl Strategy<Value = Row> {
        (
            any::<Option<i64>>(),
            proptest::option::of(".{0,20}"),
            any::<bool>(),
            any_f64(),
        )
    }

    proptest! {
        #[test]
        fn typed_and_arrow_planes_agree(rows in proptest::collection::vec(any_row(), 0..40)) {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.1.as_deref()).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| Some(r.2)).collect::<BooleanArray>()),
                Arc::new(rows.iter().map(|r| r.3).collect::<Float64Array>()),
            ];
            let mut keys = EncodedKeys::new();
            encode_arrow_keys(&columns, &mut keys).unwrap();
            prop_assert_eq!(keys.len(), rows.len());
            let mut groups = Vec::new();
            keys.key_groups(128, &mut groups).unwrap();
            let mut scratch = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let expected = typed(row);
                prop_assert_eq!(keys.row(i), expected.as_slice());
                prop_assert_eq!(
                    groups[i],
                    crate::keys::key_group_of(row, 128, &mut scratch).unwrap()
                );
            }
        }
    }
}
