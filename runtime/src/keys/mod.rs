//! Keys: how records are routed to parallel subtasks and how keyed state is scoped.
//!
//! A key is turned into bytes by a frozen **canonical encoding**, the bytes are hashed with
//! xxh3-64 under the fixed seed [`KEY_HASH_SEED`], and the hash picks a [`KeyGroup`]
//! (`hash % max_parallelism`). Key groups are assigned to subtasks in contiguous ranges with
//! Flink's formulas, so keyed state rescales by moving whole key groups.
//!
//! Typed keys (any `Serialize` value) go through [`encode_key`] / [`key_group_of`]; Arrow key
//! columns through [`encode_arrow_keys`] / [`arrow_key_groups`]. Both planes produce the same
//! bytes for the same key, so a record is routed the same way whichever API produced it.
//!
//! - `encoding` — the serde `Serializer` of typed keys;
//! - `arrow_keys` — the column-at-a-time encoder of Arrow key columns;
//! - `key_group` — key groups, [`KeyGroupRange`] and the subtask assignment.
//!
//! # Canonical encoding
//!
//! **Frozen:** key groups are stored in savepoints, so changing any byte of this encoding (or
//! the seed) re-routes keys and breaks restoring from existing savepoints.
//!
//! Every value starts with a one-byte tag: `0` = null, `1` = present.
//!
//! | value                                   | bytes                                                  |
//! |-----------------------------------------|--------------------------------------------------------|
//! | null (`None`, Arrow null, skipped field)| `0`                                                    |
//! | `bool`                                  | `1`, then `0` or `1`                                   |
//! | `i8`/`u8`, `i16`/`u16`, `i32`/`u32`, `i64`/`u64`, `i128`/`u128` | `1`, then little-endian at the type's width (1, 2, 4, 8, 16 bytes) |
//! | `f32` / `f64`                           | `1`, then the little-endian IEEE bits; `-0.0` as `0.0`, every NaN as the quiet NaN `0x7fc00000` / `0x7ff8000000000000` |
//! | `char`                                  | `1`, then the code point as `u32`                       |
//! | string, byte array                      | `1`, `u32` length, the bytes (UTF-8 for strings)       |
//! | `()`, unit struct                       | `1`                                                    |
//! | tuple, struct, tuple struct             | the fields' encodings concatenated (no tag of its own) |
//! | newtype struct                          | the inner value's encoding                             |
//! | sequence, map                           | `1`, `u32` element count, the elements (map: key then value) |
//! | enum variant                            | `1`, `u32` variant index, the fields' encodings        |
//! | `Some(x)`                               | `x`'s encoding, or `1` then `x`'s encoding when `x` is itself an `Option`, tuple, struct or tuple struct |
//!
//! So `Some(5i64)` encodes like `5i64`, and a composite key is the concatenation of its
//! parts: the Arrow plane encodes row `i` of key columns `[a, b]` as `a[i]` then `b[i]`,
//! exactly like the tuple `(a[i], b[i])`. `Some(x)` gets an extra present tag when `x`'s
//! encoding could start with a null tag (or be empty), which keeps the encoding injective
//! for each key type. Arrow temporal and decimal columns encode as their native integers; see
//! [`encode_arrow_keys`]. Maps encode in iteration order: key by a `BTreeMap`, not a
//! `HashMap`. `Vec<u8>` serializes as a sequence; use `serde_bytes` to match an Arrow
//! `Binary` column.
//!
//! # Examples
//!
//! ```
//! use rivulet_runtime::keys::{key_group_of, key_group_range_for_subtask, subtask_for_key_group};
//!
//! let mut scratch = Vec::new();
//! let key_group = key_group_of(&("user", 7i64), 128, &mut scratch)?;
//! let subtask = subtask_for_key_group(128, 4, key_group);
//! assert!(key_group_range_for_subtask(128, 4, subtask).contains(key_group));
//! # Ok::<(), rivulet_runtime::keys::KeyError>(())
//! ```

mod arrow_keys;
mod encoding;
mod key_group;

use arrow::datatypes::DataType;
use serde::Serialize;

pub use arrow_keys::{EncodedKeys, arrow_key_groups, encode_arrow_keys};
pub use encoding::encode_key;
pub use key_group::{
    DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange, UPPER_BOUND_MAX_PARALLELISM,
    key_group_for_hash, key_group_range_for_subtask, subtask_for_key_group, validate_parallelism,
};

/// The seed of the key hash: the ASCII bytes `"rivulet\0"`.
///
/// **Frozen:** changing it moves every key to another key group and breaks restoring from
/// existing savepoints.
pub const KEY_HASH_SEED: u64 = 0x7269_7675_6c65_7400;

/// Why a key could not be encoded or routed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key's `Serialize` implementation reported an error.
    #[error("cannot encode key: {message}")]
    Serialize {
        /// The error the `Serialize` implementation raised.
        message: String,
    },
    /// A string, byte array or sequence in a key is too long for its `u32` length prefix.
    #[error(
        "key {what} has {len} bytes or elements, more than the {max} a key can hold; key by a shorter value or by a hash of it",
        max = u32::MAX
    )]
    TooLong {
        /// What was too long: `"string"`, `"byte array"` or `"sequence"`.
        what: &'static str,
        /// Its length.
        len: u64,
    },
    /// An Arrow key column has a type that has no key encoding.
    #[error(
        "key column {column} has type {data_type}, which cannot be a key; supported key column types are \
         Null, Boolean, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float32, Float64, \
         Decimal32, Decimal64, Decimal128, Date32, Date64, Time32, Time64, Timestamp, Duration, \
         Utf8, LargeUtf8, Utf8View, Binary, LargeBinary, BinaryView and FixedSizeBinary; cast the column to one of them"
    )]
    UnsupportedArrowType {
        /// Zero-based position of the column among the key columns.
        column: usize,
        /// The column's type.
        data_type: DataType,
    },
    /// Arrow key columns of one batch have different lengths.
    #[error(
        "key column {column} has {found} rows but key column 0 has {expected}; all key columns must have the same length"
    )]
    ColumnLengthMismatch {
        /// Zero-based position of the mismatching column.
        column: usize,
        /// Length of the first key column.
        expected: usize,
        /// Length of this column.
        found: usize,
    },
    /// No key columns were given.
    #[error("no key columns given; key by at least one column")]
    NoKeyColumns,
    /// A batch's encoded keys exceed the 4 GiB an [`EncodedKeys`] can address.
    #[error(
        "the keys of this batch encode to {bytes} bytes, more than 4 GiB; split the batch into smaller ones"
    )]
    BatchTooLarge {
        /// Encoded size of the batch's keys (so far).
        bytes: u64,
    },
    /// The max parallelism is outside `1..=32768`.
    #[error(
        "max parallelism {max_parallelism} is out of range; it must be between 1 and {}",
        UPPER_BOUND_MAX_PARALLELISM
    )]
    InvalidMaxParallelism {
        /// The rejected max parallelism.
        max_parallelism: u16,
    },
    /// The parallelism is zero or above the max parallelism.
    #[error(
        "parallelism {parallelism} is out of range; it must be between 1 and the max parallelism {max_parallelism}"
    )]
    InvalidParallelism {
        /// The rejected parallelism.
        parallelism: usize,
        /// The max parallelism it must not exceed.
        max_parallelism: u16,
    },
}

impl serde::ser::Error for KeyError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        KeyError::Serialize {
            message: msg.to_string(),
        }
    }
}

/// The key hash of an encoded key: xxh3-64 with seed [`KEY_HASH_SEED`].
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::{encode_key, hash_key_bytes, key_group_for_hash, key_group_of};
///
/// let mut bytes = Vec::new();
/// encode_key("rivulet", &mut bytes)?;
/// let key_group = key_group_for_hash(hash_key_bytes(&bytes), 128);
/// assert_eq!(key_group, key_group_of("rivulet", 128, &mut bytes)?);
/// # Ok::<(), rivulet_runtime::keys::KeyError>(())
/// ```
#[inline]
pub fn hash_key_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, KEY_HASH_SEED)
}

/// The key group of a typed key: clears `scratch`, encodes `key` into it and hashes it.
///
/// Keep `scratch` across calls so encoding does not allocate.
///
/// # Errors
///
/// [`KeyError::InvalidMaxParallelism`] unless `max_parallelism` is in `1..=32768`, and the
/// errors of [`encode_key`].
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::{key_group_of, DEFAULT_MAX_PARALLELISM};
///
/// let mut scratch = Vec::new();
/// let key_group = key_group_of(&42i64, DEFAULT_MAX_PARALLELISM, &mut scratch)?;
/// assert!(key_group < DEFAULT_MAX_PARALLELISM);
/// // `Some(x)` routes like `x`.
/// assert_eq!(key_group, key_group_of(&Some(42i64), DEFAULT_MAX_PARALLELISM, &mut scratch)?);
/// # Ok::<(), rivulet_runtime::keys::KeyError>(())
/// ```
pub fn key_group_of<K: Serialize + ?Sized>(
    key: &K,
    max_parallelism: u16,
    scratch: &mut Vec<u8>,
) -> Result<KeyGroup, KeyError> {
    key_group::validate_max_parallelism(max_parallelism)?;
    scratch.clear();
    encode_key(key, scratch)?;
    Ok(key_group_for_hash(hash_key_bytes(scratch), max_parallelism))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    // Golden values, computed once and pinned. If one of these fails, the key encoding or
    // hash changed, which re-routes keys and breaks restoring from savepoints.
    const GOLDEN_I64_HASH: u64 = 0x50e3_ab77_818c_3c09;
    const GOLDEN_I64_KEY_GROUP: KeyGroup = 9;
    const GOLDEN_STRING_HASH: u64 = 0x0be9_78ac_d9ca_efb3;
    const GOLDEN_STRING_KEY_GROUP: KeyGroup = 51;
    const GOLDEN_PAIR_HASH: u64 = 0x9c92_72c1_71d9_296b;
    const GOLDEN_PAIR_KEY_GROUP: KeyGroup = 107;
    const GOLDEN_NULL_HASH: u64 = 0xaff5_dcfb_d76d_6483;
    const GOLDEN_NULL_KEY_GROUP: KeyGroup = 3;

    /// Checks a golden key: its bytes, hash and key group (max parallelism 128) on the typed
    /// plane, and the key group on the Arrow plane.
    fn check_golden<K: Serialize + ?Sized>(
        key: &K,
        columns: Vec<ArrayRef>,
        bytes: &[u8],
        hash: u64,
        key_group: KeyGroup,
    ) {
        let mut scratch = Vec::new();
        encode_key(key, &mut scratch).unwrap();
        assert_eq!(
            scratch, bytes,
            "encoded bytes changed: this breaks savepoints"
        );
        assert_eq!(
            hash_key_bytes(&scratch),
            hash,
            "key hash changed: this breaks savepoints"
        );
        assert_eq!(key_group_of(key, 128, &mut scratch).unwrap(), key_group);

        let mut keys = EncodedKeys::new();
        encode_arrow_keys(&columns, &mut keys).unwrap();
        assert_eq!(keys.row(0), bytes);
        let mut groups = Vec::new();
        arrow_key_groups(&columns, 128, &mut groups).unwrap();
        assert_eq!(groups, [key_group]);
    }

    #[test]
    fn golden_i64() {
        check_golden(
            &42i64,
            vec![Arc::new(Int64Array::from(vec![42]))],
            &[1, 42, 0, 0, 0, 0, 0, 0, 0],
            GOLDEN_I64_HASH,
            GOLDEN_I64_KEY_GROUP,
        );
    }

    #[test]
    fn golden_string() {
        check_golden(
            "rivulet",
            vec![Arc::new(StringArray::from(vec!["rivulet"]))],
            &[1, 7, 0, 0, 0, b'r', b'i', b'v', b'u', b'l', b'e', b't'],
            GOLDEN_STRING_HASH,
            GOLDEN_STRING_KEY_GROUP,
        );
    }

    #[test]
    fn golden_pair() {
        check_golden(
            &(String::from("user"), 7i64),
            vec![
                Arc::new(StringArray::from(vec!["user"])),
                Arc::new(Int64Array::from(vec![7])),
            ],
            &[
                1, 4, 0, 0, 0, b'u', b's', b'e', b'r', 1, 7, 0, 0, 0, 0, 0, 0, 0,
            ],
            GOLDEN_PAIR_HASH,
            GOLDEN_PAIR_KEY_GROUP,
        );
    }

    #[test]
    fn golden_null() {
        check_golden(
            &Option::<i64>::None,
            vec![Arc::new(Int64Array::from(vec![None]))],
            &[0],
            GOLDEN_NULL_HASH,
            GOLDEN_NULL_KEY_GROUP,
        );
    }

    #[test]
    fn key_group_of_rejects_bad_max_parallelism() {
        let mut scratch = Vec::new();
        assert!(matches!(
            key_group_of(&1i64, 0, &mut scratch),
            Err(KeyError::InvalidMaxParallelism { max_parallelism: 0 })
        ));
        assert!(key_group_of(&1i64, UPPER_BOUND_MAX_PARALLELISM + 1, &mut scratch).is_err());
    }

    #[test]
    fn keys_spread_over_key_groups() {
        let mut scratch = Vec::new();
        let mut counts = [0u32; 128];
        for i in 0..12_800i64 {
            counts[usize::from(key_group_of(&i, 128, &mut scratch).unwrap())] += 1;
        }
        // 100 expected per group; xxh3 keeps every group well within 2x.
        assert!(counts.iter().all(|&c| (50..200).contains(&c)), "{counts:?}");
    }
}
