//! The AdmissionReview envelope: parsed once, kept both as kube's typed request and as the raw
//! JSON of the objects (so CEL sees every field, including ones newer than our Kubernetes types).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::AdmissionRequest;
use kube::core::{DynamicObject, TypeMeta};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The only AdmissionReview version kspy speaks (the API server negotiates it from the
/// webhook configuration's `admissionReviewVersions: [v1]`).
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The envelope's kind.
pub const KIND: &str = "AdmissionReview";

/// Why a body is not a reviewable AdmissionReview. Each message is one line, fit for an HTTP
/// 400 body and for the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body does not parse as JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object with `kind: AdmissionReview`.
    #[error("the body is not an AdmissionReview (kind is {0:?})")]
    NotAReview(String),
    /// An AdmissionReview of another version.
    #[error("unsupported apiVersion {0:?}: kspy speaks {API_VERSION} only")]
    WrongApiVersion(String),
    /// No `request` in the review.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// The request does not have the shape of an AdmissionRequest.
    #[error("the AdmissionReview request is malformed: {0}")]
    MalformedRequest(#[source] serde_json::Error),
    /// The request is about pods but its object is not a Pod.
    #[error("request.{field} is not a valid Pod: {source}")]
    MalformedPod {
        /// `object` or `oldObject`.
        field: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// A checked AdmissionReview request.
///
/// Parsing is shallow where it can be: the request's header fields become JSON values, while
/// `object` and `oldObject` (two whole Pods for an ephemeral-container update) are decoded
/// straight into typed Pods, their raw text kept. The raw JSON view, for CEL's `object` and
/// for patches, is parsed only when something asks for it.
#[derive(Debug)]
pub struct ParsedReview {
    request: AdmissionRequest<DynamicObject>,
    object_raw: Option<Box<RawValue>>,
    old_object_raw: Option<Box<RawValue>>,
    object: OnceLock<Option<Value>>,
    old_object: OnceLock<Option<Value>>,
    pod: Option<Pod>,
    old_pod: Option<Pod>,
}

/// The envelope, with the request left unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default, borrow)]
    request: Option<&'a RawValue>,
}

impl ParsedReview {
    /// Parses a request body. Checks the envelope (`kind`, `apiVersion`, a `request`), then,
    /// for requests about core/v1 pods, decodes `object` and `oldObject` as Pods.
    pub fn from_slice(body: &[u8]) -> Result<Self, ReviewError> {
        let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                ReviewError::NotAReview(String::new())
            } else {
                ReviewError::NotJson(e)
            }
        })?;
        let kind = envelope.kind.unwrap_or_default();
        if kind != KIND {
            return Err(ReviewError::NotAReview(kind));
        }
        let api_version = envelope.api_version.unwrap_or_default();
        if api_version != API_VERSION {
            return Err(ReviewError::WrongApiVersion(api_version));
        }
        let Some(request) = envelope.request.filter(|r| r.get() != "null") else {
            return Err(ReviewError::MissingRequest);
        };
        // One level deep only: the objects stay raw text.
        let mut fields: BTreeMap<String, &RawValue> =
            serde_json::from_str(request.get()).map_err(ReviewError::MalformedRequest)?;
        let not_null =
            |r: Option<&RawValue>| r.filter(|r| r.get() != "null").map(RawValue::to_owned);
        let object_raw = not_null(fields.remove("object"));
        let old_object_raw = not_null(fields.remove("oldObject"));
        let header = fields
            .into_iter()
            .map(|(k, v)| serde_json::from_str(v.get()).map(|v| (k, v)))
            .collect::<Result<serde_json::Map<String, Value>, _>>()
            .map_err(ReviewError::MalformedRequest)?;
        let mut request = AdmissionRequest::<DynamicObject>::deserialize(Value::Object(header))
            .map_err(ReviewError::MalformedRequest)?;
        request.types = TypeMeta { api_version, kind };
        let is_pod = request.resource.group.is_empty()
            && request.resource.version == "v1"
            && request.resource.resource == "pods";
        let decode = |field: &'static str,
                      raw: &Option<Box<RawValue>>|
         -> Result<Option<Pod>, ReviewError> {
            match raw {
                Some(raw) if is_pod => serde_json::from_str(raw.get())
                    .map(Some)
                    .map_err(|source| ReviewError::MalformedPod { field, source }),
                _ => Ok(None),
            }
        };
        let pod = decode("object", &object_raw)?;
        let old_pod = decode("oldObject", &old_object_raw)?;
        Ok(ParsedReview {
            request,
            object_raw,
            old_object_raw,
            object: OnceLock::new(),
            old_object: OnceLock::new(),
            pod,
            old_pod,
        })
    }

    /// Like [`ParsedReview::from_slice`], from JSON already parsed.
    pub fn from_value(value: Value) -> Result<Self, ReviewError> {
        let body = serde_json::to_vec(&value).map_err(ReviewError::NotJson)?;
        Self::from_slice(&body)
    }

    /// kube's typed request (its `object`/`oldObject` are empty: see [`ParsedReview::object`]).
    pub fn request(&self) -> &AdmissionRequest<DynamicObject> {
        &self.request
    }

    /// The request uid, which the response must echo.
    pub fn uid(&self) -> &str {
        &self.request.uid
    }

    /// The namespace of the object, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.request.namespace.as_deref()
    }

    /// The requesting user's name (empty when the API server sent none).
    pub fn user(&self) -> &str {
        self.request.user_info.username.as_deref().unwrap_or("")
    }

    /// The object's name (the pod for `pods/ephemeralcontainers`).
    pub fn name(&self) -> &str {
        &self.request.name
    }

    /// `object` as sent, every field included; parsed on first use.
    pub fn object(&self) -> Option<&Value> {
        raw_json(&self.object, &self.object_raw)
    }

    /// `oldObject` as sent; parsed on first use.
    pub fn old_object(&self) -> Option<&Value> {
        raw_json(&self.old_object, &self.old_object_raw)
    }

    /// `object` decoded as a Pod, for requests about pods.
    pub fn pod(&self) -> Option<&Pod> {
        self.pod.as_ref()
    }

    /// `oldObject` decoded as a Pod, for requests about pods.
    pub fn old_pod(&self) -> Option<&Pod> {
        self.old_pod.as_ref()
    }

    /// The request as CEL's `request` variable sees it (ValidatingAdmissionPolicy's shape).
    pub fn request_json(&self) -> Value {
        let r = &self.request;
        let mut v = serde_json::json!({
            "uid": r.uid,
            "kind": r.kind,
            "resource": r.resource,
            "subResource": r.sub_resource.clone().unwrap_or_default(),
            "requestKind": r.request_kind,
            "requestResource": r.request_resource,
            "requestSubResource": r.request_sub_resource.clone().unwrap_or_default(),
            "name": r.name,
            "namespace": r.namespace.clone().unwrap_or_default(),
            "operation": r.operation,
            "userInfo": r.user_info,
            "dryRun": r.dry_run,
        });
        if let Some(options) = &r.options
            && let Some(obj) = v.as_object_mut()
        {
            obj.insert("options".into(), options.0.clone());
        }
        v
    }
}

/// The JSON of a raw object, parsed once. The text was already checked as JSON when the review
/// was parsed, so parsing it again cannot fail.
fn raw_json<'a>(
    cell: &'a OnceLock<Option<Value>>,
    raw: &Option<Box<RawValue>>,
) -> Option<&'a Value> {
    cell.get_or_init(|| {
        raw.as_ref()
            .and_then(|r| serde_json::from_str(r.get()).ok())
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(body: &str) -> Result<ParsedReview, ReviewError> {
        ParsedReview::from_slice(body.as_bytes())
    }

    const HEADER: &str = r#""uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},
        "resource":{"group":"","version":"v1","resource":"pods"},"name":"p","namespace":"ns",
        "operation":"CREATE","userInfo":{"username":"alice","groups":["dev"]}"#;

    #[test]
    fn envelope_errors_are_specific() {
        assert!(matches!(review("{"), Err(ReviewError::NotJson(_))));
        assert!(matches!(review("[]"), Err(ReviewError::NotAReview(_))));
        assert!(matches!(
            review(r#"{"kind":"Pod"}"#),
            Err(ReviewError::NotAReview(_))
        ));
        assert!(matches!(
            review(r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{}}"#),
            Err(ReviewError::WrongApiVersion(v)) if v == "admission.k8s.io/v1beta1"
        ));
        assert!(matches!(
            review(r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#),
            Err(ReviewError::MissingRequest)
        ));
        assert!(matches!(
            review(
                r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":5}}"#
            ),
            Err(ReviewError::MalformedRequest(_))
        ));
        let bad_pod = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},"object":{{"spec":{{"containers":"nope"}}}}}}}}"#
        );
        let err = review(&bad_pod).unwrap_err();
        assert!(
            matches!(
                err,
                ReviewError::MalformedPod {
                    field: "object",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn keeps_raw_objects_and_typed_pods() {
        let body = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},
            "object":{{"metadata":{{"name":"p"}},"spec":{{"containers":[{{"name":"app","image":"x"}}]}},"futureField":1}},
            "oldObject":null}}}}"#
        );
        let r = review(&body).unwrap();
        assert_eq!(r.uid(), "u1");
        assert_eq!(r.user(), "alice");
        assert_eq!(r.namespace(), Some("ns"));
        assert_eq!(r.object().unwrap()["futureField"], 1);
        assert!(r.old_object().is_none());
        let pod = r.pod().unwrap();
        assert_eq!(pod.spec.as_ref().unwrap().containers[0].name, "app");
        assert_eq!(r.request_json()["userInfo"]["groups"][0], "dev");
    }
}
