//! The canonical key encoding of typed (serde) keys.
//!
//! The byte format is documented in the [module docs](crate::keys); this file is its serde
//! [`Serializer`]. The Arrow plane (`arrow_keys.rs`) writes the same bytes column by column
//! and shares the scalar helpers below.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Serializer};

use super::KeyError;

/// Tag byte of a null value (`None`, an Arrow null).
pub(crate) const NULL_TAG: u8 = 0;
/// Tag byte in front of every present value.
pub(crate) const PRESENT_TAG: u8 = 1;

/// Canonical NaN bits for `f32`: every NaN encodes as this quiet NaN.
const CANONICAL_NAN_F32: u32 = 0x7fc0_0000;
/// Canonical NaN bits for `f64`: every NaN encodes as this quiet NaN.
const CANONICAL_NAN_F64: u64 = 0x7ff8_0000_0000_0000;

/// The bits an `f32` key encodes as: `-0.0` becomes `0.0`, every NaN one canonical NaN.
#[inline]
pub(crate) fn canonical_f32_bits(v: f32) -> u32 {
    if v.is_nan() {
        CANONICAL_NAN_F32
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// The bits an `f64` key encodes as: `-0.0` becomes `0.0`, every NaN one canonical NaN.
#[inline]
pub(crate) fn canonical_f64_bits(v: f64) -> u64 {
    if v.is_nan() {
        CANONICAL_NAN_F64
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Converts a length or element count to the `u32` the encoding stores.
#[inline]
pub(crate) fn encoded_len(what: &'static str, len: usize) -> Result<u32, KeyError> {
    u32::try_from(len).map_err(|_| KeyError::TooLong {
        what,
        len: len as u64,
    })
}

/// Appends the canonical encoding of `key` to `out`.
///
/// `out` is not cleared, so a caller can reuse one buffer across keys (or build a composite
/// key piecewise); nothing is allocated except to grow `out`. The format is frozen and
/// described in the [module docs](crate::keys); in short, every value starts with a tag byte
/// (`0` null, `1` present), integers are little-endian at their own width, strings are
/// length-prefixed, and a tuple or struct key is the concatenation of its fields.
///
/// # Errors
///
/// [`KeyError::TooLong`] for a string, byte array or sequence with more than `u32::MAX`
/// bytes or elements, and [`KeyError::Serialize`] when the key's `Serialize` impl itself
/// fails. On error `out` may hold a partial encoding.
///
/// # Examples
///
/// ```
/// use rivulet_runtime::keys::encode_key;
///
/// let mut out = Vec::new();
/// encode_key(&("user", 7i64), &mut out)?;
/// assert_eq!(out, [1, 4, 0, 0, 0, b'u', b's', b'e', b'r', 1, 7, 0, 0, 0, 0, 0, 0, 0]);
///
/// // `Some(x)` encodes like `x`, so an optional column routes like a required one.
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// encode_key(&Some(5i64), &mut a)?;
/// encode_key(&5i64, &mut b)?;
/// assert_eq!(a, b);
/// # Ok::<(), rivulet_runtime::keys::KeyError>(())
/// ```
pub fn encode_key<K: Serialize + ?Sized>(key: &K, out: &mut Vec<u8>) -> Result<(), KeyError> {
    key.serialize(&mut KeySerializer {
        out,
        in_some: false,
    })
}

/// The serde [`Serializer`] behind [`encode_key`].
struct KeySerializer<'a> {
    out: &'a mut Vec<u8>,
    /// Set by `serialize_some` until the wrapped value starts. A wrapped value whose encoding
    /// may not begin with the present tag (an `Option`, or a tuple/struct whose first field may
    /// be null or which has no fields) then gets an extra present tag, so `None` and
    /// `Some(x)` never collide.
    in_some: bool,
}

impl KeySerializer<'_> {
    /// Starts a value that begins with the present tag: writes the tag.
    #[inline]
    fn present(&mut self) {
        self.in_some = false;
        self.out.push(PRESENT_TAG);
    }

    /// Starts a value whose encoding may begin with a null tag or be empty (an option, a
    /// tuple, a struct): writes a present tag only if it is wrapped in `Some`.
    #[inline]
    fn untagged(&mut self) {
        if std::mem::take(&mut self.in_some) {
            self.out.push(PRESENT_TAG);
        }
    }

    #[inline]
    fn present_bytes(&mut self, bytes: &[u8]) {
        self.present();
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn length_prefixed(&mut self, what: &'static str, bytes: &[u8]) -> Result<(), KeyError> {
        let len = encoded_len(what, bytes.len())?;
        self.present();
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn variant(&mut self, variant_index: u32) {
        self.present();
        self.out.extend_from_slice(&variant_index.to_le_bytes());
    }

    /// Writes the present tag and a placeholder element count, patched by
    /// [`Compound::end`].
    fn counted(&mut self) -> usize {
        self.present();
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        at
    }
}

/// Serializes the fields or elements of a composite value.
struct Compound<'a, 'b> {
    ser: &'a mut KeySerializer<'b>,
    /// Where the `u32` element count goes, for sequences and maps.
    count_at: Option<usize>,
    count: usize,
}

impl<'a, 'b> Compound<'a, 'b> {
    fn fields(ser: &'a mut KeySerializer<'b>) -> Self {
        Self {
            ser,
            count_at: None,
            count: 0,
        }
    }

    fn counted(ser: &'a mut KeySerializer<'b>) -> Self {
        let count_at = Some(ser.counted());
        Self {
            ser,
            count_at,
            count: 0,
        }
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.count += 1;
        value.serialize(&mut *self.ser)
    }

    /// A field skipped by `#[serde(skip_serializing_if)]` encodes as null, so skipping a
    /// `None` field gives the same bytes as writing it.
    fn skip(&mut self) {
        self.ser.out.push(NULL_TAG);
    }

    fn end(self) -> Result<(), KeyError> {
        if let Some(at) = self.count_at {
            let count = encoded_len("sequence", self.count)?;
            self.ser.out[at..at + 4].copy_from_slice(&count.to_le_bytes());
        }
        Ok(())
    }
}

/// Writes `Display` output straight into the key buffer (for `collect_str`).
struct BufWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl<'a, 'b> Serializer for &'a mut KeySerializer<'b> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.present_bytes(&[u8::from(v)]);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.present_bytes(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.present_bytes(&canonical_f32_bits(v).to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.present_bytes(&canonical_f64_bits(v).to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.present_bytes(&u32::from(v).to_le_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.length_prefixed("string", v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.length_prefixed("byte array", v)
    }

    fn serialize_none(self) -> Result<(), KeyError> {
        self.untagged();
        self.out.push(NULL_TAG);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        // `Some(Some(x))`: the outer `Some` needs a tag to differ from `Some(None)`.
        self.untagged();
        self.in_some = true;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), KeyError> {
        self.present();
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyError> {
        self.present();
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), KeyError> {
        self.variant(variant_index);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        // Transparent: `struct UserId(i64)` encodes like `i64`.
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.variant(variant_index);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, KeyError> {
        Ok(Compound::counted(self))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a, 'b>, KeyError> {
        self.untagged();
        Ok(Compound::fields(self))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, KeyError> {
        self.untagged();
        Ok(Compound::fields(self))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, KeyError> {
        self.variant(variant_index);
        Ok(Compound::fields(self))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, KeyError> {
        Ok(Compound::counted(self))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, KeyError> {
        self.untagged();
        Ok(Compound::fields(self))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, KeyError> {
        self.variant(variant_index);
        Ok(Compound::fields(self))
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        // Format in place behind a placeholder length instead of allocating a `String`.
        let at = self.counted();
        fmt::write(&mut BufWriter(self.out), format_args!("{value}"))
            .map_err(<KeyError as ser::Error>::custom)?;
        let len = encoded_len("string", self.out.len() - at - 4)?;
        self.out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        // One entry per key; the value is not counted.
        self.element(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }

    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        self.skip();
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }

    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        self.skip();
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    fn enc<K: Serialize + ?Sized>(key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(key, &mut out).expect("key encodes");
        out
    }

    #[test]
    fn scalars() {
        assert_eq!(enc(&true), [1, 1]);
        assert_eq!(enc(&false), [1, 0]);
        assert_eq!(enc(&-1i8), [1, 0xff]);
        assert_eq!(enc(&0x0102u16), [1, 2, 1]);
        assert_eq!(enc(&0x0102_0304i32), [1, 4, 3, 2, 1]);
        assert_eq!(enc(&1u64), [1, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(&1i128).len(), 17);
        assert_eq!(enc(&u128::MAX), [[1].as_slice(), &[0xff; 16]].concat());
        assert_eq!(enc(&'A'), [1, 65, 0, 0, 0]);
        assert_eq!(enc(&()), [1]);
        assert_eq!(enc(""), [1, 0, 0, 0, 0]);
        assert_eq!(enc("hi"), [1, 2, 0, 0, 0, b'h', b'i']);
        assert_eq!(
            enc(&1.5f32),
            [[1].as_slice(), &1.5f32.to_le_bytes()].concat()
        );
    }

    #[test]
    fn floats_are_canonical() {
        assert_eq!(enc(&-0.0f64), enc(&0.0f64));
        assert_eq!(enc(&-0.0f32), enc(&0.0f32));
        assert_eq!(enc(&f64::NAN), enc(&-f64::NAN));
        assert_eq!(enc(&f64::NAN), enc(&f64::from_bits(0x7ff0_0000_0000_0001)));
        assert_eq!(enc(&f32::NAN), enc(&f32::from_bits(0xffc0_1234)));
        assert_ne!(enc(&f64::INFINITY), enc(&f64::NEG_INFINITY));
        assert_ne!(enc(&f64::NAN), enc(&f64::INFINITY));
    }

    #[test]
    fn option_some_is_transparent_for_scalars() {
        assert_eq!(enc(&Some(5i64)), enc(&5i64));
        assert_eq!(enc(&Some("x")), enc("x"));
        assert_eq!(enc(&Option::<i64>::None), [0]);
        assert_eq!(enc(&Some(vec![1u8])), enc(&vec![1u8]));
    }

    #[test]
    fn newtypes_are_transparent() {
        #[derive(Serialize)]
        struct UserId(i64);
        assert_eq!(enc(&UserId(3)), enc(&3i64));
    }

    #[test]
    fn structs_concatenate_fields() {
        #[derive(Serialize)]
        struct Key {
            user: String,
            day: i32,
        }
        #[derive(Serialize)]
        struct Pair(String, i32);
        let k = Key {
            user: "u".into(),
            day: 9,
        };
        assert_eq!(enc(&k), enc(&("u", 9i32)));
        assert_eq!(enc(&Pair("u".into(), 9)), enc(&("u", 9i32)));
        // Nested tuples flatten.
        assert_eq!(enc(&(("u", 9i32), 1u8)), enc(&("u", 9i32, 1u8)));
    }

    #[test]
    fn skipped_field_encodes_as_null() {
        #[derive(Serialize)]
        struct Key {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<i64>,
            b: i64,
        }
        assert_eq!(
            enc(&Key { a: None, b: 2 }),
            enc(&(Option::<i64>::None, 2i64))
        );
        assert_eq!(enc(&Key { a: Some(1), b: 2 }), enc(&(1i64, 2i64)));
    }

    #[test]
    fn sequences_and_maps_are_counted() {
        assert_eq!(enc(&vec![7u8, 8]), [1, 2, 0, 0, 0, 1, 7, 1, 8]);
        assert_eq!(enc(&Vec::<u8>::new()), [1, 0, 0, 0, 0]);
        let map = BTreeMap::from([(1u8, "a"), (2u8, "b")]);
        assert_eq!(
            enc(&map),
            [
                1, 2, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, b'a', 1, 2, 1, 1, 0, 0, 0, b'b'
            ]
        );
        // An iterator of unknown length gets its count patched in.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0u8..3).filter(|_| true))
            }
        }
        assert_eq!(enc(&Unsized), enc(&vec![0u8, 1, 2]));
    }

    #[test]
    fn enums_write_variant_index() {
        #[derive(Serialize)]
        enum E {
            A,
            B(i8),
            C(i8, i8),
            D { x: i8 },
        }
        assert_eq!(enc(&E::A), [1, 0, 0, 0, 0]);
        assert_eq!(enc(&E::B(5)), [1, 1, 0, 0, 0, 1, 5]);
        assert_eq!(enc(&E::C(5, 6)), [1, 2, 0, 0, 0, 1, 5, 1, 6]);
        assert_eq!(enc(&E::D { x: 5 }), [1, 3, 0, 0, 0, 1, 5]);
    }

    #[test]
    fn collect_str_matches_str() {
        struct Shown;
        impl Serialize for Shown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&format_args!("{}-{}", "ab", 12))
            }
        }
        assert_eq!(enc(&Shown), enc("ab-12"));
    }

    #[test]
    fn serialize_errors_are_reported() {
        struct Failing;
        impl Serialize for Failing {
            fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no key here"))
            }
        }
        let err = encode_key(&Failing, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, KeyError::Serialize { .. }));
        assert!(err.to_string().contains("no key here"), "{err}");
    }

    #[test]
    fn appends_without_clearing() {
        let mut out = vec![9];
        encode_key(&1u8, &mut out).unwrap();
        assert_eq!(out, [9, 1, 1]);
    }

    /// Pairs of different keys of one type whose encodings must differ.
    #[test]
    fn injective_on_tricky_cases() {
        fn differ<K: Serialize>(a: K, b: K) {
            assert_ne!(enc(&a), enc(&b));
        }
        differ(("a", "bc"), ("ab", "c"));
        differ(("", "a"), ("a", ""));
        differ((None, Some(1i64)), (Some(1i64), None));
        differ((None::<i64>, 0i64), (Some(0i64), 0i64));
        differ((None::<String>, "x"), (Some(String::new()), "x"));
        differ((vec![1u8], vec![]), (vec![], vec![1u8]));
        differ((b"a".as_slice(), b"bc".as_slice()), (b"ab", b"c"));
        // Nested options and options of composites.
        differ(None::<Option<i64>>, Some(None));
        differ(Some(None::<i64>), Some(Some(0i64)));
        differ(None::<(Option<i64>,)>, Some((None,)));
        differ(None::<()>, Some(()));
        #[derive(Serialize)]
        struct Empty {}
        differ(None::<Empty>, Some(Empty {}));
        differ(Some(Vec::<u8>::new()), None);
        // A `Some` of a tuple starting with a null cannot be mistaken for `None` followed by
        // more fields.
        differ(
            (None::<(Option<i64>, i64)>, Some(5i64), 9i64),
            (Some((None, 5i64)), Some(9i64), 0i64),
        );
    }
}
