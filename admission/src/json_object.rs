//! Structs read from JSON objects and nothing else.
//!
//! serde's derived `Deserialize` also reads a struct from an array of its field values, in
//! declaration order: `["v1", "Pod", {...}]` for `{"apiVersion": "v1", "kind": "Pod", ...}`,
//! and `[]` for a struct whose fields all have defaults. A review's `object: []` would then be
//! a Pod with no labels and no spec, which is no debug request at all, so it would be allowed.
//! Kubernetes objects are JSON objects, and k8s-openapi's own types accept nothing else;
//! [`JsonObject`] holds the structs decoded here to the same rule: a review's parts, and the
//! parts of a policy file (YAML, decoded through JSON values), whose fields say so with
//! [`object`], [`optional_object`] and [`objects`].
//!
//! A name repeated in one object is refused by the derived structs ("duplicate field") but
//! kept last by serde's map types, so two readings of one body could see two different
//! reviews. [`UniqueMembers`] is the map that refuses it too.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A `T` read from a JSON object; an array (or any other value) is refused with "invalid type:
/// …, expected a map of fields (a JSON object, a YAML mapping)".
#[derive(Debug)]
pub(crate) struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    /// The value read.
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(JsonObject)
    }
}

/// For `#[serde(deserialize_with = "crate::json_object::object")]` on a field whose type is a
/// derived struct: read from a JSON object only.
pub(crate) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    JsonObject::deserialize(d).map(JsonObject::into_inner)
}

/// [`object`] for an optional field (with `#[serde(default)]`): an absent key is `None`, a
/// present one must be an object. An explicit null is refused, as for every other field: a
/// `namespaceSelector:` whose lines were commented out would otherwise match everything.
pub(crate) fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    JsonObject::<T>::deserialize(d).map(|o| Some(o.into_inner()))
}

/// [`object`] for a list: every item must be an object.
pub(crate) fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Vec::<JsonObject<T>>::deserialize(d)
        .map(|v| v.into_iter().map(JsonObject::into_inner).collect())
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of fields (a JSON object, a YAML mapping)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// The members of one JSON object, by name, their values left as raw JSON text. A repeated
/// name is refused with "duplicate field `NAME`", as the derived structs refuse it.
#[derive(Debug, Default)]
pub(crate) struct UniqueMembers<'a>(pub BTreeMap<String, &'a RawValue>);

impl<'de> Deserialize<'de> for UniqueMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = UniqueMembers<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of fields (a JSON object, a YAML mapping)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = BTreeMap::new();
        while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
            if members.contains_key(&name) {
                return Err(A::Error::custom(format_args!("duplicate field `{name}`")));
            }
            members.insert(name, value);
        }
        Ok(UniqueMembers(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    struct Meta {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        labels: Option<std::collections::BTreeMap<String, String>>,
    }

    #[test]
    fn derived_structs_read_arrays_and_json_object_refuses_them() {
        // What the wrapper is for: the derive alone takes an array.
        assert_eq!(
            serde_json::from_str::<Meta>("[]").expect("the derive reads []"),
            Meta::default()
        );
        assert!(serde_json::from_str::<Meta>(r#"["p", {"a": "b"}]"#).is_ok());
        for refused in ["[]", r#"["p"]"#, "null", "1", r#""p""#] {
            let err = serde_json::from_str::<JsonObject<Meta>>(refused)
                .expect_err(refused)
                .to_string();
            assert!(err.contains("expected a map of fields"), "{refused}: {err}");
        }
    }

    #[test]
    fn objects_read_as_the_derive_reads_them() {
        let m = serde_json::from_str::<JsonObject<Meta>>(r#"{"name": "p", "labels": {"a": "b"}}"#)
            .expect("object")
            .into_inner();
        assert_eq!(m.name.as_deref(), Some("p"));
        assert_eq!(m.labels.expect("labels")["a"], "b");
        // The derive's own errors come through unchanged.
        let err = serde_json::from_str::<JsonObject<Meta>>(r#"{"name": 5}"#)
            .expect_err("a number is not a name")
            .to_string();
        assert!(err.contains("invalid type: integer `5`"), "{err}");
        // Nested wrappers, and a missing optional one, as the review's structs use them.
        #[derive(serde::Deserialize)]
        struct Outer {
            #[serde(default)]
            meta: Option<JsonObject<Meta>>,
        }
        assert!(
            serde_json::from_str::<Outer>("{}")
                .expect("empty")
                .meta
                .is_none()
        );
        assert!(serde_json::from_str::<Outer>(r#"{"meta": []}"#).is_err());
    }

    #[test]
    fn members_are_kept_raw_and_a_repeated_name_is_refused() {
        let m = serde_json::from_str::<UniqueMembers<'_>>(r#"{"b": [1, 2], "a": {"x": null}}"#)
            .expect("object")
            .0;
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m["b"].get(), "[1, 2]");
        let err = serde_json::from_str::<UniqueMembers<'_>>(r#"{"a": 1, "b": 2, "a": 3}"#)
            .expect_err("a twice")
            .to_string();
        assert!(err.contains("duplicate field `a`"), "{err}");
        // serde's own map keeps the last, which is what this type is for.
        let plain: BTreeMap<String, &RawValue> =
            serde_json::from_str(r#"{"a": 1, "a": 3}"#).expect("kept last");
        assert_eq!(plain["a"].get(), "3");
        assert!(serde_json::from_str::<UniqueMembers<'_>>("[]").is_err());
    }
}
