//! A cheap first look at a review body: the request's `uid` and `namespace`, read without
//! building the document. The uid lets the server answer a review it could not judge in time,
//! and both name it in the log line of such a denial when the body never finished parsing. The
//! body is parsed for real, and checked, by the engine; nothing here causes a Namespace
//! lookup (that waits until the body parsed and the engine needs it).
//!
//! The API server writes `uid` and `namespace` first in `request` (Go field order), before
//! the objects, so the scan stops as soon as it has both and rarely reads past the first few
//! hundred bytes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// What the first look found; empty when the body is not a recognisable review.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Hints {
    /// `request.uid`.
    pub uid: Option<String>,
    /// `request.namespace`, when not empty.
    pub namespace: Option<String>,
}

/// The error used to stop scanning once both fields are known.
const DONE: &str = "kspy: hints complete";

/// Reads `request.uid` and `request.namespace` from `body`.
pub(crate) fn hints(body: &[u8]) -> Hints {
    let mut found = Found::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    // Stopping early is reported as an error; what was found before any error is kept.
    let _ = de.deserialize_map(EnvelopeVisitor(&mut found));
    Hints {
        uid: found.uid,
        namespace: found.namespace.filter(|n| !n.is_empty()),
    }
}

#[derive(Default)]
struct Found {
    uid: Option<String>,
    namespace: Option<String>,
}

struct EnvelopeVisitor<'a>(&'a mut Found);

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "request" {
                map.next_value_seed(RequestSeed(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct RequestSeed<'a>(&'a mut Found);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(RequestVisitor(self.0))
    }
}

struct RequestVisitor<'a>(&'a mut Found);

impl<'de> Visitor<'de> for RequestVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionRequest object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "uid" => self.0.uid = Some(map.next_value::<Cow<'de, str>>()?.into_owned()),
                "namespace" => {
                    self.0.namespace = Some(map.next_value::<Cow<'de, str>>()?.into_owned());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if self.0.uid.is_some() && self.0.namespace.is_some() {
                return Err(de::Error::custom(DONE));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uid_and_namespace_in_any_order_and_tolerates_anything_else() {
        let h = hints(
            br#"{"kind":"AdmissionReview","request":{"object":{"a":[1,{"b":"\"x"}]},"uid":"u\u0031","namespace":"shop"}}"#,
        );
        assert_eq!(h.uid.as_deref(), Some("u1"));
        assert_eq!(h.namespace.as_deref(), Some("shop"));
        let h = hints(br#"{"request":{"namespace":"ns","uid":"u2","object":{"#);
        assert_eq!(
            (h.uid.as_deref(), h.namespace.as_deref()),
            (Some("u2"), Some("ns"))
        );
        // Cluster-scoped: no namespace; the whole request is read.
        let h = hints(br#"{"request":{"uid":"u3","name":"n"},"apiVersion":"admission.k8s.io/v1"}"#);
        assert_eq!((h.uid.as_deref(), h.namespace), (Some("u3"), None));
        assert_eq!(
            hints(br#"{"request":{"uid":"u","namespace":""}}"#).namespace,
            None
        );
        for junk in [
            &b"{"[..],
            b"[]",
            b"{\"request\":5}",
            b"{\"request\":{\"uid\":7}}",
            b"",
        ] {
            assert_eq!(hints(junk).uid, None, "{junk:?}");
        }
    }

    #[test]
    fn stops_before_the_objects() {
        // Anything after uid and namespace may be broken: it is never read.
        let h = hints(br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"u","namespace":"n","object":{{{{"#);
        assert_eq!(
            (h.uid.as_deref(), h.namespace.as_deref()),
            (Some("u"), Some("n"))
        );
    }
}
