//! The field names of Kubernetes types, as k8s-openapi's deserializers know them.
//!
//! A policy's CEL selects fields by name (`container.securityContext.privileged`), and a
//! misspelt one compiles: it fails at every evaluation (denying) or, under `has()`, is false
//! at every evaluation, in silence. To tell at load time, the checker needs each type's
//! fields. k8s-openapi's `Deserialize` impls name them: each struct asks its deserializer
//! for a map with `deserialize_struct(NAME, FIELDS, …)`. [`Shape::of`] runs a type's
//! deserializer against a probe that answers every such call with every field listed, and
//! records the names and, field by field, what each holds. No list is written by hand, so the
//! shapes follow the Kubernetes version kspy is built against.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Namespace, Pod};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess};

/// What a JSON value of some Kubernetes type holds, as far as field selection cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// An object with exactly these fields (a Kubernetes struct type).
    Object(BTreeMap<&'static str, Shape>),
    /// A list of values of one shape.
    List(Box<Shape>),
    /// A map from strings to values of one shape (labels, resource lists).
    Map(Box<Shape>),
    /// Anything else: a string, number, boolean, or a value whose shape is open (a
    /// `RawExtension`, an `IntOrString`).
    Scalar,
}

/// The Kubernetes version whose types the shapes come from, as users say it.
pub const KUBERNETES_VERSION: &str = "1.33";

/// The admission request, as `request` holds it (its top-level fields kspy's own list,
/// `REQUEST_FIELDS`; `userInfo`, `kind` and `resource` as the API server sends them).
pub static REQUEST: LazyLock<Option<Shape>> =
    LazyLock::new(Shape::of::<kube::core::admission::AdmissionRequest<kube::core::DynamicObject>>);

/// A Pod, as `object` and `oldObject` hold it.
pub static POD: LazyLock<Option<Shape>> = LazyLock::new(Shape::of_resource::<Pod>);

/// A Namespace, as `namespaceObject` holds it.
pub static NAMESPACE: LazyLock<Option<Shape>> = LazyLock::new(Shape::of_resource::<Namespace>);

/// A container of a Pod, as `target` holds it.
pub static CONTAINER: LazyLock<Option<Shape>> = LazyLock::new(Shape::of::<Container>);

/// A debug container, as `container` holds it: an ephemeral container for an attach, a
/// container for a copy or a node pod, so the fields of either.
pub static DEBUG_CONTAINER: LazyLock<Option<Shape>> = LazyLock::new(|| {
    let ephemeral = Shape::of::<EphemeralContainer>()?;
    let container = CONTAINER.as_ref()?;
    Some(ephemeral.union(container))
});

impl Shape {
    /// The shape of `T`, read from its deserializer; `None` if the probe could not walk it
    /// (a type that refuses every probing value, or nests deeper than any Kubernetes type).
    pub fn of<T: de::DeserializeOwned>() -> Option<Shape> {
        Self::probe::<T>(None)
    }

    /// [`Shape::of`] for a top-level resource, whose deserializer refuses any `apiVersion`
    /// and `kind` but its own.
    pub fn of_resource<T: de::DeserializeOwned + Resource>() -> Option<Shape> {
        Self::probe::<T>(Some((T::API_VERSION, T::KIND)))
    }

    fn probe<T: de::DeserializeOwned>(
        resource: Option<(&'static str, &'static str)>,
    ) -> Option<Shape> {
        let mut shape = Shape::Scalar;
        T::deserialize(Probe {
            out: &mut shape,
            depth: 0,
            resource,
        })
        .ok()?;
        Some(shape)
    }

    /// Both shapes' fields, for a value that is either. Where the two differ on a field
    /// (never, for Kubernetes' container types), the first's shape is kept.
    fn union(mut self, other: &Shape) -> Shape {
        if let (Shape::Object(mine), Shape::Object(theirs)) = (&mut self, other) {
            for (name, shape) in theirs {
                mine.entry(name).or_insert_with(|| shape.clone());
            }
        }
        self
    }
}

/// No Kubernetes type nests this deep (a Pod's deepest field is about ten levels down); a
/// type that did would be recursive, and the probe stops rather than recurse for ever.
const MAX_DEPTH: usize = 32;

/// A timestamp, which also reads as any string: `Time` fields parse it, and a `String` or
/// `Quantity` field takes it as it is.
const PROBE_TEXT: &str = "1970-01-01T00:00:00Z";

/// Why a probe stopped; only ever seen as "no shape".
#[derive(Debug)]
struct ProbeError(String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

/// A deserializer that offers every field a struct names and writes what it learns to `out`.
struct Probe<'s> {
    out: &'s mut Shape,
    depth: usize,
    /// The `apiVersion` and `kind` to answer, for the top-level struct of a resource.
    resource: Option<(&'static str, &'static str)>,
}

impl Probe<'_> {
    fn deeper(&self) -> Result<usize, ProbeError> {
        if self.depth >= MAX_DEPTH {
            return Err(ProbeError("the type nests too deep".into()));
        }
        Ok(self.depth + 1)
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    /// An open value (`IntOrString`, `Quantity`, JSON): a string suits all of them.
    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str(PROBE_TEXT)
    }

    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bool(false)
    }

    fn deserialize_i64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_u64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }

    fn deserialize_f64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_str<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str(PROBE_TEXT)
    }

    fn deserialize_bytes<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(&[])
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let depth = self.deeper()?;
        let mut element = Shape::Scalar;
        let value = visitor.visit_seq(OneElement {
            element: Some(&mut element),
            depth,
        })?;
        *self.out = Shape::List(Box::new(element));
        Ok(value)
    }

    fn deserialize_map<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let depth = self.deeper()?;
        let mut each = Shape::Scalar;
        let value = visitor.visit_map(Fields {
            names: &[""],
            next: 0,
            shapes: None,
            single: Some(&mut each),
            depth,
            resource: None,
        })?;
        *self.out = Shape::Map(Box::new(each));
        Ok(value)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let depth = self.deeper()?;
        let mut shapes = fields.iter().map(|f| (*f, Shape::Scalar)).collect();
        let value = visitor.visit_map(Fields {
            names: fields,
            next: 0,
            shapes: Some(&mut shapes),
            single: None,
            depth,
            resource: self.resource,
        })?;
        *self.out = Shape::Object(shapes);
        Ok(value)
    }

    /// An enum of unit variants (`Operation`): its first.
    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let first = variants
            .first()
            .ok_or_else(|| ProbeError("an enum without variants".into()))?;
        visitor.visit_enum((*first).into_deserializer())
    }

    fn deserialize_identifier<V: de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }

    fn deserialize_ignored_any<V: de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_i32<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_f32<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str(PROBE_TEXT)
    }

    fn deserialize_byte_buf<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(&[])
    }

    // Kubernetes' types use none of these; a string is as good an answer as any.
    serde::forward_to_deserialize_any! {
        i8 i16 i128 u8 u16 u32 u128 char unit_struct tuple tuple_struct
    }
}

/// A list of one element, probed.
struct OneElement<'s> {
    element: Option<&'s mut Shape>,
    depth: usize,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        match self.element.take() {
            Some(out) => seed
                .deserialize(Probe {
                    out,
                    depth: self.depth,
                    resource: None,
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

/// A struct's fields (each named once, each value probed into its own shape), or a map of one
/// entry (`single`).
struct Fields<'s> {
    names: &'static [&'static str],
    next: usize,
    shapes: Option<&'s mut BTreeMap<&'static str, Shape>>,
    single: Option<&'s mut Shape>,
    depth: usize,
    resource: Option<(&'static str, &'static str)>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize((*name).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let name = self
            .names
            .get(self.next)
            .ok_or_else(|| ProbeError("a value without a key".into()))?;
        self.next += 1;
        match (*name, self.resource) {
            ("apiVersion", Some((version, _))) => {
                return seed.deserialize(version.into_deserializer());
            }
            ("kind", Some((_, kind))) => return seed.deserialize(kind.into_deserializer()),
            _ => {}
        }
        let out = match (&mut self.shapes, &mut self.single) {
            (Some(shapes), _) => shapes
                .get_mut(name)
                .ok_or_else(|| ProbeError("a field not listed".into()))?,
            (None, Some(single)) => &mut **single,
            (None, None) => return Err(ProbeError("no field to fill".into())),
        };
        seed.deserialize(Probe {
            out,
            depth: self.depth,
            resource: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Shape {
        fn fields(&self) -> Option<&BTreeMap<&'static str, Shape>> {
            match self {
                Shape::Object(fields) => Some(fields),
                _ => None,
            }
        }
    }

    fn at<'s>(shape: &'s Shape, path: &[&str]) -> &'s Shape {
        path.iter().fold(shape, |s, step| match (s, *step) {
            (Shape::List(e), "[]") | (Shape::Map(e), "{}") => e,
            (Shape::Object(f), name) => f
                .get(name)
                .unwrap_or_else(|| panic!("no field {name} in {f:?}")),
            (other, step) => panic!("cannot take {step} of {other:?}"),
        })
    }

    #[test]
    fn a_pods_fields_are_read_from_its_deserializer() {
        let pod = POD.as_ref().expect("the Pod type is probed");
        let sc = at(
            pod,
            &["spec", "ephemeralContainers", "[]", "securityContext"],
        );
        let fields = sc.fields().expect("securityContext is an object");
        assert!(fields.contains_key("privileged"));
        assert!(fields.contains_key("runAsUser"));
        assert!(!fields.contains_key("privilged"));
        assert_eq!(
            at(sc, &["capabilities", "add"]),
            &Shape::List(Box::new(Shape::Scalar))
        );
        assert_eq!(
            at(pod, &["metadata", "labels"]),
            &Shape::Map(Box::new(Shape::Scalar))
        );
        assert!(matches!(
            at(pod, &["spec", "volumes", "[]", "hostPath"]),
            Shape::Object(f) if f.contains_key("path") && f.contains_key("type")
        ));
        // Open values are scalars, not objects with no fields.
        assert_eq!(
            at(
                pod,
                &["spec", "containers", "[]", "resources", "limits", "{}"]
            ),
            &Shape::Scalar
        );
        assert_eq!(at(pod, &["metadata", "creationTimestamp"]), &Shape::Scalar);
    }

    #[test]
    fn the_requests_user_and_kinds_are_read_from_kubes_admission_request() {
        let request = REQUEST
            .as_ref()
            .expect("the AdmissionRequest type is probed");
        let user = at(request, &["userInfo"]).fields().expect("an object");
        assert_eq!(
            user.keys().copied().collect::<Vec<_>>(),
            ["extra", "groups", "uid", "username"]
        );
        assert_eq!(
            at(request, &["userInfo", "extra", "{}"]),
            &Shape::List(Box::new(Shape::Scalar))
        );
        for kind in ["kind", "requestKind"] {
            let gvk = at(request, &[kind]).fields().expect("an object");
            assert_eq!(
                gvk.keys().copied().collect::<Vec<_>>(),
                ["group", "kind", "version"]
            );
        }
        for name in crate::review::REQUEST_FIELDS {
            at(request, &[name]);
        }
    }

    #[test]
    fn a_debug_container_has_the_fields_of_both_kinds_of_container() {
        let debug = DEBUG_CONTAINER
            .as_ref()
            .and_then(Shape::fields)
            .expect("probed");
        assert!(debug.contains_key("targetContainerName"));
        assert!(debug.contains_key("image"));
        let target = CONTAINER.as_ref().and_then(Shape::fields).expect("probed");
        assert!(!target.contains_key("targetContainerName"));
        let ns = NAMESPACE.as_ref().and_then(Shape::fields).expect("probed");
        assert_eq!(
            ns.keys().copied().collect::<Vec<_>>(),
            ["apiVersion", "kind", "metadata", "spec", "status"]
        );
    }
}
