//! A bound on the memory that decoding a review may take for its lists and maps.
//!
//! The body limit counts JSON bytes, but decoding multiplies them: `{"name":"v1"}` is 13 bytes
//! of JSON and a 3.2 KB `Volume` once decoded (k8s-openapi keeps every volume source inline),
//! so a 363 KB pod with 20 000 such volumes took 170 MiB, and a pod with 200 000 short `env`
//! entries 80 MiB: past the webhook's memory limit. The API server calls mutating webhooks
//! before it validates the object, so anyone who may create a pod labelled as a debug copy
//! can send one. [`Budgeted`] wraps a serde `Deserializer` and charges every list item and map
//! entry its decoded size (`size_of` the Rust value), refusing the input once the total passes
//! the budget: a review of any pod the API server would admit stays far below it.

use std::cell::Cell;
use std::fmt;
use std::mem::size_of;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// What the typed decoding of a review's pods may charge: 4 MiB. A pod of 100 containers
/// with 50 `env` entries and 20 mounts each, and 500 volumes, charges about 3 MiB.
pub const TYPED_BYTES: usize = 4 << 20;

/// What a raw JSON view of one object (CEL's `object`, `/mutate`'s defaults) may charge:
/// 8 MiB, about 150 000 values; a 1 MB pod holds some 50 000.
pub const RAW_BYTES: usize = 8 << 20;

/// The bytes left to charge, shared by every part of one decoding.
#[derive(Debug)]
pub struct DecodeBudget {
    left: Cell<usize>,
    limit: usize,
}

impl DecodeBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        DecodeBudget {
            left: Cell::new(limit),
            limit,
        }
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes.max(1)) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "its lists and maps would take more than {} MiB once decoded (the limit kspy \
                 sets so that no review can exhaust its memory; pods the API server admits \
                 stay far below it)",
                self.limit >> 20
            ))),
        }
    }
}

/// The most any JSON object of a review decodes into: a k8s-openapi `Volume`, the largest
/// (3 208 bytes; every volume source inline), rounded up. A test holds it above the types.
const MOST_PER_OBJECT: usize = 4096;

/// The most any other list item or map entry is charged: a `String` key beside a 32-byte
/// value (`serde_json::Value`, `IntOrString`), rounded up; a value that is an object is
/// charged as one (above).
const MOST_PER_ITEM: usize = 64;

/// The most decoding `json` can charge, counted without parsing: every `{` as the largest
/// object, every `,` and `[` (at least one per item or entry) as the largest item. The
/// webhook's reviews are far below a budget (the shipped fixture: about 1.9 MiB of the 4), and
/// then decode without [`Budgeted`]: the wrapper cost a tenth of the webhook's CPU per review
/// (`kspy-load bench`), more than its instructions, as a second copy of the decoding code.
/// Only what might not fit is decoded with it.
pub fn most_charged(json: &[u8]) -> usize {
    let (mut objects, mut items) = (0usize, 0usize);
    // Branch-free, so that it vectorizes: a few instructions per 16 bytes.
    for chunk in json.chunks(255) {
        let (mut o, mut i) = (0u8, 0u8);
        for &b in chunk {
            o += u8::from(b == b'{');
            i += u8::from(b == b',') + u8::from(b == b'[');
        }
        objects += usize::from(o);
        items += usize::from(i);
    }
    objects
        .saturating_mul(MOST_PER_OBJECT)
        .saturating_add(items.saturating_mul(MOST_PER_ITEM))
}

/// Decodes `T` from the JSON `text` as `serde_json::from_str` does (trailing characters
/// refused), charging `budget`.
pub fn from_str<'a, T: Deserialize<'a>>(
    text: &'a str,
    budget: &DecodeBudget,
) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Budgeted::new(&mut de, budget))?;
    de.end()?;
    Ok(value)
}

/// [`from_str`] for JSON bytes, checking them as `serde_json::from_slice` does.
pub fn from_slice<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    budget: &DecodeBudget,
) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(Budgeted::new(&mut de, budget))?;
    de.end()?;
    Ok(value)
}

/// `inner` with every list item and map entry it yields charged to `budget`.
pub struct Budgeted<'b, D> {
    inner: D,
    budget: &'b DecodeBudget,
}

impl<'b, D> Budgeted<'b, D> {
    /// Wraps `inner`.
    pub fn new(inner: D, budget: &'b DecodeBudget) -> Self {
        Budgeted { inner, budget }
    }
}

/// Forwards `deserialize_*` methods, wrapping the visitor.
macro_rules! forward_deserialize {
    ($($method:ident $(($($arg:ident : $ty:ty),*))?;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($($arg,)*)? Wrapped { inner: visitor, budget: self.budget })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Budgeted<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any;
        deserialize_bool;
        deserialize_i8;
        deserialize_i16;
        deserialize_i32;
        deserialize_i64;
        deserialize_i128;
        deserialize_u8;
        deserialize_u16;
        deserialize_u32;
        deserialize_u64;
        deserialize_u128;
        deserialize_f32;
        deserialize_f64;
        deserialize_char;
        deserialize_str;
        deserialize_string;
        deserialize_bytes;
        deserialize_byte_buf;
        deserialize_option;
        deserialize_unit;
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq;
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier;
        deserialize_ignored_any;
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor whose lists, maps and nested values stay charged.
struct Wrapped<'b, V> {
    inner: V,
    budget: &'b DecodeBudget,
}

/// Forwards `visit_*` methods that take a plain value.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrapped<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Budgeted::new(d, self.budget))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner
            .visit_newtype_struct(Budgeted::new(d, self.budget))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Seq {
            inner: seq,
            budget: self.budget,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Map {
            inner: map,
            budget: self.budget,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Enum {
            inner: data,
            budget: self.budget,
        })
    }
}

/// A seed whose value is decoded through [`Budgeted`].
struct Seed<'b, S> {
    inner: S,
    budget: &'b DecodeBudget,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Budgeted::new(d, self.budget))
    }
}

/// A list whose items are charged as they are decoded.
struct Seq<'b, A> {
    inner: A,
    budget: &'b DecodeBudget,
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let item = self.inner.next_element_seed(Seed {
            inner: seed,
            budget: self.budget,
        })?;
        if item.is_some() {
            self.budget.charge(size_of::<T::Value>())?;
        }
        Ok(item)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map whose entries are charged as they are decoded.
struct Map<'b, A> {
    inner: A,
    budget: &'b DecodeBudget,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.inner.next_key_seed(Seed {
            inner: seed,
            budget: self.budget,
        })?;
        if key.is_some() {
            self.budget.charge(size_of::<K::Value>())?;
        }
        Ok(key)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let value = self.inner.next_value_seed(Seed {
            inner: seed,
            budget: self.budget,
        })?;
        self.budget.charge(size_of::<S::Value>())?;
        Ok(value)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An enum whose variant's contents stay charged.
struct Enum<'b, A> {
    inner: A,
    budget: &'b DecodeBudget,
}

impl<'de, 'b, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Enum<'b, A> {
    type Error = A::Error;
    type Variant = Variant<'b, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(Seed {
            inner: seed,
            budget: self.budget,
        })?;
        Ok((
            value,
            Variant {
                inner: variant,
                budget: self.budget,
            },
        ))
    }
}

/// The contents of an enum variant, charged.
struct Variant<'b, A> {
    inner: A,
    budget: &'b DecodeBudget,
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            budget: self.budget,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            Wrapped {
                inner: visitor,
                budget: self.budget,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            Wrapped {
                inner: visitor,
                budget: self.budget,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use serde_json::Value;

    fn decode<'a, T: Deserialize<'a>>(json: &'a str, limit: usize) -> Result<T, String> {
        from_str(json, &DecodeBudget::new(limit)).map_err(|e| e.to_string())
    }

    fn volumes(n: usize) -> String {
        let items: Vec<String> = (0..n).map(|i| format!(r#"{{"name":"v{i}"}}"#)).collect();
        format!(
            r#"{{"containers":[{{"name":"app"}}],"volumes":[{}]}}"#,
            items.join(",")
        )
    }

    #[test]
    fn decodes_what_fits_as_without_a_budget() {
        let json = r#"{"containers":[{"name":"app","image":"web:1","args":["-v"],
            "env":[{"name":"A","value":"1"}],"resources":{"limits":{"cpu":"1"}},
            "ports":[{"containerPort":80}]}],
            "volumes":[{"name":"c","configMap":{"name":"c"}}],"nodeSelector":{"a":"b"}}"#;
        let budgeted: PodSpec = decode(json, TYPED_BYTES).unwrap();
        let plain: PodSpec = serde_json::from_str(json).unwrap();
        assert_eq!(budgeted, plain);
        let budgeted: Value = decode(json, RAW_BYTES).unwrap();
        assert_eq!(budgeted, serde_json::from_str::<Value>(json).unwrap());
    }

    #[test]
    fn refuses_lists_that_would_decode_past_the_budget() {
        // 20 000 volumes of 13 bytes of JSON each: 260 KB, but 64 MB decoded.
        let json = volumes(20_000);
        let e = decode::<PodSpec>(&json, TYPED_BYTES).unwrap_err();
        assert!(e.contains("would take more than 4 MiB once decoded"), "{e}");
        // Charged by what each item takes decoded: the same list fits as JSON values.
        assert!(decode::<Value>(&json, RAW_BYTES).is_ok());
        // A realistic pod is far below: 500 volumes.
        assert!(decode::<PodSpec>(&volumes(500), TYPED_BYTES).is_ok());
    }

    #[test]
    fn the_object_bound_covers_the_largest_types() {
        use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod, PodSpec, Volume};
        for size in [
            size_of::<Volume>(),
            size_of::<Container>(),
            size_of::<EphemeralContainer>(),
            size_of::<PodSpec>(),
            size_of::<Pod>(),
        ] {
            assert!(size <= MOST_PER_OBJECT, "{size}");
        }
        assert!(size_of::<String>() + size_of::<Value>() <= MOST_PER_ITEM);
    }

    #[test]
    fn most_charged_bounds_what_the_budget_charges() {
        // Whatever it says fits does fit, charged item by item.
        for n in [0, 1, 10, 100, 500, 1_000, 1_100, 20_000] {
            let json = volumes(n);
            if most_charged(json.as_bytes()) <= TYPED_BYTES {
                assert!(decode::<PodSpec>(&json, TYPED_BYTES).is_ok(), "{n}");
            }
        }
        assert!(most_charged(volumes(500).as_bytes()) <= TYPED_BYTES);
        assert!(most_charged(volumes(1_100).as_bytes()) > TYPED_BYTES);
        // Strings: 4 bytes of JSON each, a 24-byte String decoded.
        let strings = format!("[{}]", vec![r#""a""#; 70_000].join(","));
        assert!(most_charged(strings.as_bytes()) > TYPED_BYTES);
        assert!(decode::<Vec<String>>(&strings, TYPED_BYTES).is_ok());
        // Counts past 255 per chunk are carried.
        assert!(most_charged(&[b'{'; 1100]) > TYPED_BYTES);
        assert!(most_charged(&[b'{'; 1000]) <= TYPED_BYTES);
    }

    #[test]
    fn map_entries_and_nested_values_are_charged() {
        let labels: Vec<String> = (0..200_000).map(|i| format!(r#""k{i}":"v""#)).collect();
        let json = format!(r#"{{"a":[{{"b":{{{}}}}}]}}"#, labels.join(","));
        let e = decode::<Value>(&json, RAW_BYTES).unwrap_err();
        assert!(e.contains("more than 8 MiB"), "{e}");
    }
}
