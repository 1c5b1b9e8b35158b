//! The AdmissionReview envelope: parsed once, kept both as kube's typed request and as the raw
//! JSON of the objects (so CEL sees every field, including ones newer than our Kubernetes types).

use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde::Deserialize;
use serde_json::Value;

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
        /// `object`.
        field: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// A checked AdmissionReview request.
#[derive(Debug, Clone)]
pub struct ParsedReview {
    request: AdmissionRequest<DynamicObject>,
    object: Option<Value>,
    old_object: Option<Value>,
    pod: Option<Pod>,
}

impl ParsedReview {
    /// Parses a request body. Checks the envelope (`kind`, `apiVersion`, a `request`), then,
    /// for requests about core/v1 pods, decodes `object` and `oldObject` as Pods.
    pub fn from_slice(body: &[u8]) -> Result<Self, ReviewError> {
        let value: Value = serde_json::from_slice(body).map_err(ReviewError::NotJson)?;
        Self::from_value(value)
    }

    /// Like [`ParsedReview::from_slice`], from JSON already parsed.
    pub fn from_value(mut value: Value) -> Result<Self, ReviewError> {
        let Some(envelope) = value.as_object_mut() else {
            return Err(ReviewError::NotAReview(String::new()));
        };
        let kind = envelope.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != KIND {
            return Err(ReviewError::NotAReview(kind.to_owned()));
        }
        let api_version = envelope
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if api_version != API_VERSION {
            return Err(ReviewError::WrongApiVersion(api_version.to_owned()));
        }
        let Some(request) = envelope.get_mut("request").and_then(Value::as_object_mut) else {
            return Err(ReviewError::MissingRequest);
        };
        // The objects are taken out so they are decoded once, not copied into DynamicObject.
        let object = request.remove("object").filter(|v| !v.is_null());
        let old_object = request.remove("oldObject").filter(|v| !v.is_null());
        let review = AdmissionReview::<DynamicObject>::deserialize(&value)
            .map_err(ReviewError::MalformedRequest)?;
        let request: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| ReviewError::MissingRequest)?;
        let is_pod = request.resource.group.is_empty()
            && request.resource.version == "v1"
            && request.resource.resource == "pods";
        let decode = |field: &'static str, v: &Option<Value>| -> Result<Option<Pod>, ReviewError> {
            match v {
                Some(v) if is_pod => Pod::deserialize(v)
                    .map(Some)
                    .map_err(|source| ReviewError::MalformedPod { field, source }),
                _ => Ok(None),
            }
        };
        // Only `object` is needed typed: `oldObject` is compared as JSON, by container name.
        let pod = decode("object", &object)?;
        Ok(ParsedReview {
            request,
            object,
            old_object,
            pod,
        })
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

    /// `object` as sent, when present.
    pub fn object(&self) -> Option<&Value> {
        self.object.as_ref()
    }

    /// `oldObject` as sent, when present.
    pub fn old_object(&self) -> Option<&Value> {
        self.old_object.as_ref()
    }

    /// `object` decoded as a Pod, for requests about pods.
    pub fn pod(&self) -> Option<&Pod> {
        self.pod.as_ref()
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
