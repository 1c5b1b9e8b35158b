//! The AdmissionReview envelope: parsed once, kept both as kube's typed request and as the raw
//! JSON of the objects (so CEL sees every field, including ones newer than our Kubernetes types).

use crate::decode_budget::{self, Budgeted, DecodeBudget};
use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::{EphemeralContainer, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::{GroupVersionKind, GroupVersionResource, TypeMeta};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::json_object::{JsonObject, UniqueMembers};

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
    /// Not UTF-8, so not JSON (RFC 8259 requires UTF-8).
    #[error("the body is not JSON: byte {offset} is not valid UTF-8 (JSON text must be UTF-8)")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// JSON, but not an object with `kind: AdmissionReview`.
    #[error("the body is not an AdmissionReview (kind is {0:?})")]
    NotAReview(String),
    /// JSON, but not an AdmissionReview's envelope: not an object, a member of the wrong
    /// type, or one given twice.
    #[error("the body is not an AdmissionReview: {0}")]
    MalformedEnvelope(serde_json::Error),
    /// An AdmissionReview of another version.
    #[error("unsupported apiVersion {0:?}: kspy speaks {API_VERSION} only")]
    WrongApiVersion(String),
    /// No `request` in the review.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// The request does not have the shape of an AdmissionRequest.
    #[error("the AdmissionReview request is malformed: {}", described(.at, .source))]
    MalformedRequest {
        /// Where in the request, as a path (`userInfo.groups`), when known.
        at: Option<String>,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The request is about pods but its object is not a Pod.
    #[error("request.{field} is not a valid Pod: {}", described(.at, .source))]
    MalformedPod {
        /// `object` or `oldObject`.
        field: &'static str,
        /// Where in the object, as a path (`spec.containers[0].image`), when known.
        at: Option<String>,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// A decoding error for a message: at its path when known, and without serde's line and
/// column, which count from the start of the member decoded (the request, or one object),
/// not of the body, and so point nowhere a reader can find.
fn described(at: &Option<String>, source: &serde_json::Error) -> String {
    let text = source.to_string();
    let position = format!(" at line {} column {}", source.line(), source.column());
    let reason = text.strip_suffix(&position).unwrap_or(&text);
    match at {
        Some(at) => format!("{at}: {reason}"),
        None => reason.to_owned(),
    }
}

/// Where decoding `T` from `de` fails, as a path (`spec.containers[0].image`), when it is
/// inside the value. For messages only: called once decoding has failed, it decodes again.
fn failing_path<'de, T, D>(de: D) -> Option<String>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    let err = serde_path_to_error::deserialize::<_, T>(de).err()?;
    let path = err.path().to_string();
    (!path.is_empty() && path != ".").then_some(path)
}

/// A checked AdmissionReview request.
///
/// A review about pods is decoded in one pass: the header into kube's typed request, `object`
/// and `oldObject` straight into typed Pods. The body is kept, so the raw JSON view of the
/// objects — for CEL's `object` (every field, including ones newer than our Kubernetes types)
/// and for patches — is parsed only when something asks for it.
#[derive(Debug)]
pub struct ParsedReview {
    request: AdmissionRequest<Pod>,
    body: Bytes,
    object: OnceLock<Result<Option<Value>, String>>,
    old_object: OnceLock<Result<Option<Value>, String>>,
    pod: Option<Pod>,
    old_ephemeral_containers: Option<Vec<EphemeralContainer>>,
    /// The most decoding `body` can charge ([`decode_budget::most_charged`]), counted once.
    most_charged: usize,
}

/// The fields of CEL's `request` variable.
pub const REQUEST_FIELDS: &[&str] = &[
    "uid",
    "kind",
    "resource",
    "subResource",
    "requestKind",
    "requestResource",
    "requestSubResource",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "dryRun",
    "options",
];

/// The envelope, with the request left unparsed: the careful path, which names what is wrong.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default, borrow)]
    request: Option<&'a RawValue>,
}

/// A well-formed review about pods, decoded in one pass: the fast path.
#[derive(Deserialize)]
struct PodReview {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    #[serde(deserialize_with = "crate::json_object::object")]
    request: PodRequest,
}

/// kube's `AdmissionRequest` field for field, with the objects read as kspy needs them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodRequest {
    uid: String,
    #[serde(deserialize_with = "crate::json_object::object")]
    kind: GroupVersionKind,
    #[serde(deserialize_with = "crate::json_object::object")]
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    request_kind: Option<GroupVersionKind>,
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    request_resource: Option<GroupVersionResource>,
    #[serde(default)]
    request_sub_resource: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    user_info: UserInfo,
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    object: Option<PodParts>,
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    old_object: Option<OldPod>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    options: Option<RawExtension>,
}

impl PodRequest {
    /// kube's request, without objects, and the objects as read.
    fn split(self, types: TypeMeta) -> (AdmissionRequest<Pod>, Option<PodParts>, Option<OldPod>) {
        let request = AdmissionRequest {
            types,
            uid: self.uid,
            kind: self.kind,
            resource: self.resource,
            sub_resource: self.sub_resource,
            request_kind: self.request_kind,
            request_resource: self.request_resource,
            request_sub_resource: self.request_sub_resource,
            name: self.name,
            namespace: self.namespace,
            operation: self.operation,
            user_info: self.user_info,
            object: None,
            old_object: None,
            dry_run: self.dry_run,
            options: self.options,
        };
        (request, self.object, self.old_object)
    }
}

/// What kspy reads of a Pod: all but its `status` and `metadata.managedFields`, which nothing
/// judges (and which are a good part of an object the API server sends).
#[derive(Deserialize)]
struct PodParts {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, deserialize_with = "crate::json_object::object")]
    metadata: MetaParts,
    #[serde(default)]
    spec: Option<PodSpec>,
}

/// A Pod's metadata without `managedFields`: the API server includes them in every object it
/// sends (server-side apply's bookkeeping, often as large as the spec), and nothing judges
/// them. The raw view keeps them.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaParts {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    self_link: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

impl From<MetaParts> for ObjectMeta {
    fn from(m: MetaParts) -> Self {
        ObjectMeta {
            annotations: m.annotations,
            creation_timestamp: m.creation_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            generation: m.generation,
            labels: m.labels,
            managed_fields: None,
            name: m.name,
            namespace: m.namespace,
            owner_references: m.owner_references,
            resource_version: m.resource_version,
            self_link: m.self_link,
            uid: m.uid,
        }
    }
}

impl PodParts {
    /// The Pod, refusing another kind of object as k8s-openapi's own decoding does.
    fn into_pod(self) -> Result<Pod, String> {
        if let Some(v) = self.api_version.filter(|v| v != "v1") {
            return Err(format!("apiVersion is {v:?}, not \"v1\""));
        }
        if let Some(k) = self.kind.filter(|k| k != "Pod") {
            return Err(format!("kind is {k:?}, not \"Pod\""));
        }
        Ok(Pod {
            metadata: self.metadata.into(),
            spec: self.spec,
            status: None,
        })
    }
}

/// What kspy reads of `oldObject` for an ephemeral-container update: the ephemeral containers
/// already there (the rest of the old Pod is the new one's, minus what is being added).
#[derive(Deserialize)]
struct OldPod {
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    spec: Option<OldPodSpec>,
}

#[derive(Deserialize)]
struct OldPodSpec {
    #[serde(default, rename = "ephemeralContainers")]
    ephemeral_containers: Option<Vec<EphemeralContainer>>,
}

impl OldPod {
    fn into_ephemeral_containers(self) -> Vec<EphemeralContainer> {
        self.spec
            .and_then(|s| s.ephemeral_containers)
            .unwrap_or_default()
    }
}

/// Just the objects of a review, for the raw view.
#[derive(Deserialize)]
struct ObjectsOnly<T> {
    request: T,
}

#[derive(Deserialize)]
struct ObjectOnly {
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Deserialize)]
struct OldObjectOnly {
    #[serde(default, rename = "oldObject")]
    old_object: Option<Value>,
}

/// One raw view of `body`, within [`decode_budget::RAW_BYTES`] (budgeted only when the body
/// might not fit: `most_charged` is its [`decode_budget::most_charged`]).
fn raw_view<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    most_charged: usize,
) -> serde_json::Result<ObjectsOnly<T>> {
    if most_charged <= decode_budget::RAW_BYTES {
        serde_json::from_slice(body)
    } else {
        decode_budget::from_slice(body, &DecodeBudget::new(decode_budget::RAW_BYTES))
    }
}

fn is_core_pods(request: &AdmissionRequest<Pod>) -> bool {
    let r = &request.resource;
    r.group.is_empty() && r.version == "v1" && r.resource == "pods"
}

impl ParsedReview {
    /// Parses a request body. Checks the envelope (`kind`, `apiVersion`, a `request`), then,
    /// for requests about core/v1 pods, decodes `object` and `oldObject` as Pods.
    ///
    /// A well-formed review about pods — what the API server sends — is decoded in one pass.
    /// Anything else takes the careful path, which checks the envelope step by step so the
    /// error names what is wrong.
    pub fn from_slice(body: &[u8]) -> Result<Self, ReviewError> {
        Self::from_vec(body.to_vec())
    }

    /// Like [`ParsedReview::from_slice`], keeping `body` itself (no copy) for the raw views.
    pub fn from_vec(body: Vec<u8>) -> Result<Self, ReviewError> {
        Self::from_bytes(Bytes::from(body))
    }

    /// Like [`ParsedReview::from_slice`], keeping `body` itself (no copy: a body as the HTTP
    /// server collected it, which may share its read buffer) for the raw views.
    pub fn from_bytes(body: Bytes) -> Result<Self, ReviewError> {
        // JSON text is UTF-8 (RFC 8259). Checking the whole body at once costs a fraction of
        // what serde_json spends checking it string by string, which `from_str` then skips;
        // and it covers the parts the typed decoding skips unchecked (`managedFields`, ...).
        let text = std::str::from_utf8(&body).map_err(|e| ReviewError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        // Budgeted only when the body might not fit: see `decode_budget::most_charged`.
        let most_charged = decode_budget::most_charged(&body);
        let fast = if most_charged <= decode_budget::TYPED_BYTES {
            serde_json::from_str::<JsonObject<PodReview>>(text)
        } else {
            let budget = DecodeBudget::new(decode_budget::TYPED_BYTES);
            decode_budget::from_str::<JsonObject<PodReview>>(text, &budget)
        };
        if let Ok(JsonObject(fast)) = fast
            && fast.kind == KIND
            && fast.api_version == API_VERSION
        {
            let types = TypeMeta {
                api_version: fast.api_version,
                kind: fast.kind,
            };
            let (request, object, old_object) = fast.request.split(types);
            // An object that is not a Pod after all: the careful path says so.
            if is_core_pods(&request)
                && let Ok(pod) = object.map(PodParts::into_pod).transpose()
            {
                return Ok(ParsedReview {
                    request,
                    body,
                    object: OnceLock::new(),
                    old_object: OnceLock::new(),
                    pod,
                    old_ephemeral_containers: old_object.map(OldPod::into_ephemeral_containers),
                    most_charged,
                });
            }
        }
        Self::from_bytes_carefully(body)
    }

    fn from_bytes_carefully(body: Bytes) -> Result<Self, ReviewError> {
        let JsonObject(envelope): JsonObject<Envelope<'_>> = serde_json::from_slice(&body)
            .map_err(|e| {
                if e.is_data() {
                    ReviewError::MalformedEnvelope(e)
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
        let malformed_request = |source| ReviewError::MalformedRequest { at: None, source };
        let UniqueMembers(mut fields) =
            serde_json::from_str(request.get()).map_err(malformed_request)?;
        fn not_null(r: Option<&RawValue>) -> Option<&RawValue> {
            r.filter(|r| r.get() != "null")
        }
        let object_raw = not_null(fields.remove("object"));
        let old_object_raw = not_null(fields.remove("oldObject"));
        let header = fields
            .into_iter()
            .map(|(k, v)| serde_json::from_str(v.get()).map(|v| (k, v)))
            .collect::<Result<serde_json::Map<String, Value>, _>>()
            .map_err(malformed_request)?;
        // The objects were taken out above, so the header's come back empty.
        let header = Value::Object(header);
        let (request, _, _) = PodRequest::deserialize(&header)
            .map_err(|source| ReviewError::MalformedRequest {
                at: failing_path::<PodRequest, _>(&header),
                source,
            })?
            .split(TypeMeta { api_version, kind });
        let is_pod = is_core_pods(&request);
        let malformed = |field: &'static str, at: Option<String>, source: serde_json::Error| {
            ReviewError::MalformedPod { field, at, source }
        };
        // One budget for both objects, as on the fast path; and for the second decoding
        // that finds where one failed, which would otherwise take all it was refused.
        let budget = DecodeBudget::new(decode_budget::TYPED_BYTES);
        let pod = match object_raw {
            Some(raw) if is_pod => {
                let JsonObject(parts): JsonObject<PodParts> =
                    decode_budget::from_str(raw.get(), &budget).map_err(|e| {
                        let at = failing_path::<JsonObject<PodParts>, _>(Budgeted::new(
                            &mut serde_json::Deserializer::from_str(raw.get()),
                            &DecodeBudget::new(decode_budget::TYPED_BYTES),
                        ));
                        malformed("object", at, e)
                    })?;
                Some(parts.into_pod().map_err(|m| {
                    malformed(
                        "object",
                        None,
                        <serde_json::Error as serde::de::Error>::custom(m),
                    )
                })?)
            }
            _ => None,
        };
        let old_ephemeral_containers = match old_object_raw {
            Some(raw) if is_pod => Some(
                decode_budget::from_str::<JsonObject<OldPod>>(raw.get(), &budget)
                    .map_err(|e| {
                        let at = failing_path::<JsonObject<OldPod>, _>(Budgeted::new(
                            &mut serde_json::Deserializer::from_str(raw.get()),
                            &DecodeBudget::new(decode_budget::TYPED_BYTES),
                        ));
                        malformed("oldObject", at, e)
                    })?
                    .0
                    .into_ephemeral_containers(),
            ),
            _ => None,
        };
        let most_charged = decode_budget::most_charged(&body);
        Ok(ParsedReview {
            request,
            body,
            object: OnceLock::new(),
            old_object: OnceLock::new(),
            pod,
            old_ephemeral_containers,
            most_charged,
        })
    }

    /// Like [`ParsedReview::from_slice`], from JSON already parsed.
    pub fn from_value(value: Value) -> Result<Self, ReviewError> {
        let body = serde_json::to_vec(&value).map_err(ReviewError::NotJson)?;
        Self::from_vec(body)
    }

    /// kube's typed request (its `object`/`oldObject` are empty: see [`ParsedReview::pod`] and
    /// [`ParsedReview::object`]).
    pub fn request(&self) -> &AdmissionRequest<Pod> {
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

    /// `object` as sent, every field included; parsed from the body on first use. `None`
    /// when there is none, and also when that parse failed: [`ParsedReview::raw_view_error`]
    /// then says why, and whoever read it must not trust its answer.
    pub fn object(&self) -> Option<&Value> {
        self.object
            .get_or_init(|| {
                raw_view::<ObjectOnly>(&self.body, self.most_charged)
                    .map(|o| o.request.object)
                    .map_err(|e| format!("request.object: {e}"))
            })
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
    }

    /// `oldObject` as sent; parsed from the body on first use (see [`ParsedReview::object`]).
    pub fn old_object(&self) -> Option<&Value> {
        self.old_object
            .get_or_init(|| {
                raw_view::<OldObjectOnly>(&self.body, self.most_charged)
                    .map(|o| o.request.old_object)
                    .map_err(|e| format!("request.oldObject: {e}"))
            })
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
    }

    /// Why a raw view read so far ([`ParsedReview::object`], [`ParsedReview::old_object`])
    /// failed to parse. The typed decoding skips the parts nothing judges without checking
    /// them as strictly (numbers out of range, lone surrogates, nesting past serde_json's
    /// limit), so a body can decode yet have no raw view; CEL would then see `null` where the
    /// object is, and a guardrail such as `!has(object.spec.hostAliases)` would hold.
    pub fn raw_view_error(&self) -> Option<&str> {
        [&self.object, &self.old_object]
            .into_iter()
            .find_map(|view| view.get()?.as_ref().err().map(String::as_str))
    }

    /// `object` decoded as a Pod, for requests about pods. Its `status` and
    /// `metadata.managedFields` are not decoded (nothing judges them); [`ParsedReview::object`]
    /// has them.
    pub fn pod(&self) -> Option<&Pod> {
        self.pod.as_ref()
    }

    /// The ephemeral containers of `oldObject`, for requests about pods that have one (the
    /// rest of `oldObject` is not decoded; [`ParsedReview::old_object`] has all of it).
    pub fn old_ephemeral_containers(&self) -> Option<&[EphemeralContainer]> {
        self.old_ephemeral_containers.as_deref()
    }

    /// The request as CEL's `request` variable sees it (ValidatingAdmissionPolicy's shape).
    pub fn request_json(&self) -> Value {
        Value::Object(
            REQUEST_FIELDS
                .iter()
                .filter_map(|f| self.request_field(f).map(|v| ((*f).to_owned(), v)))
                .collect(),
        )
    }

    /// One top-level field of [`ParsedReview::request_json`], or `None` when the request has
    /// no such field.
    pub fn request_field(&self, field: &str) -> Option<Value> {
        let r = &self.request;
        fn json(v: &impl serde::Serialize) -> Option<Value> {
            serde_json::to_value(v).ok()
        }
        match field {
            "uid" => Some(Value::String(r.uid.clone())),
            "kind" => json(&r.kind),
            "resource" => json(&r.resource),
            "subResource" => Some(Value::String(r.sub_resource.clone().unwrap_or_default())),
            "requestKind" => json(&r.request_kind),
            "requestResource" => json(&r.request_resource),
            "requestSubResource" => Some(Value::String(
                r.request_sub_resource.clone().unwrap_or_default(),
            )),
            "name" => Some(Value::String(r.name.clone())),
            "namespace" => Some(Value::String(r.namespace.clone().unwrap_or_default())),
            "operation" => json(&r.operation),
            "userInfo" => json(&r.user_info),
            "dryRun" => Some(Value::Bool(r.dry_run)),
            "options" => r.options.as_ref().map(|o| o.0.clone()),
            _ => None,
        }
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

    /// A CREATE review of a pod whose spec is `spec` (JSON), labelled as a debug copy.
    fn review_of_spec(spec: &str) -> String {
        format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},
            "object":{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p",
            "labels":{{"kspy.dev/debug":"copy"}}}},"spec":{spec}}}}}}}"#
        )
    }

    #[test]
    fn pods_that_would_decode_past_the_budget_are_refused_with_where() {
        // 20 000 volumes of 13 bytes of JSON each decode to 64 MB of k8s-openapi Volumes.
        let volumes: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"name":"v{i}"}}"#))
            .collect();
        let body = review_of_spec(&format!(
            r#"{{"containers":[{{"name":"app","image":"busybox"}}],"volumes":[{}]}}"#,
            volumes.join(",")
        ));
        let e = review(&body).unwrap_err().to_string();
        assert!(
            e.contains("request.object is not a valid Pod: spec.volumes: its lists and maps would take more than 4 MiB once decoded"),
            "{e}"
        );
        // 500 volumes, more than pods have, are read.
        let volumes = volumes[..500].join(",");
        let body = review_of_spec(&format!(
            r#"{{"containers":[{{"name":"app","image":"busybox"}}],"volumes":[{volumes}]}}"#
        ));
        let r = review(&body).unwrap();
        assert_eq!(
            r.pod()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .volumes
                .as_ref()
                .unwrap()
                .len(),
            500
        );
        assert!(r.object().is_some());
    }

    #[test]
    fn a_raw_view_past_its_budget_is_none_with_the_reason() {
        // Annotations are not typed-decoded past a map of strings, but the raw view of an
        // object holding 400 000 short list items is 12.8 MB of JSON values.
        let items = vec!["1"; 400_000].join(",");
        let body = review_of_spec(&format!(
            r#"{{"containers":[{{"name":"app","image":"busybox"}}],"x-unknown":[{items}]}}"#
        ));
        let r = review(&body).unwrap();
        assert!(r.pod().is_some());
        assert!(r.object().is_none());
        let why = r.raw_view_error().unwrap();
        assert!(why.contains("more than 8 MiB once decoded"), "{why}");
    }

    #[test]
    fn envelope_errors_are_specific() {
        assert!(matches!(review("{"), Err(ReviewError::NotJson(_))));
        assert!(matches!(
            review("[]"),
            Err(ReviewError::MalformedEnvelope(_))
        ));
        // The reason is kept: a member given twice, or of the wrong type.
        for (body, says) in [
            (
                r#"{"kind":"AdmissionReview","kind":"AdmissionReview"}"#,
                "duplicate field `kind`",
            ),
            (
                r#"{"kind":"AdmissionReview","apiVersion":1}"#,
                "invalid type: integer `1`",
            ),
            ("null", "invalid type: null"),
        ] {
            let err = review(body).expect_err(body).to_string();
            assert!(
                err.starts_with("the body is not an AdmissionReview: "),
                "{err}"
            );
            assert!(err.contains(says), "{body}: {err}");
        }
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
            Err(ReviewError::MalformedRequest { .. })
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
        // Where, as a path; no line and column, which would count from the object's start.
        assert_eq!(
            err.to_string(),
            "request.object is not a valid Pod: spec.containers: invalid type: string \"nope\", expected a sequence"
        );
        let bad_old = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},"oldObject":{{"spec":{{"ephemeralContainers":[{{"name":"d","tty":"yes"}}]}}}}}}}}"#
        );
        let text = review(&bad_old).unwrap_err().to_string();
        assert!(
            text.starts_with("request.oldObject is not a valid Pod: spec.ephemeralContainers[0]"),
            "{text}"
        );
        assert!(!text.contains("column"), "{text}");
        let bad_header = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{}}}}}"#,
            HEADER.replace(r#""groups":["dev"]"#, r#""groups":"sre""#)
        );
        let text = review(&bad_header).unwrap_err().to_string();
        assert!(
            text.starts_with(
                "the AdmissionReview request is malformed: userInfo.groups: invalid type"
            ),
            "{text}"
        );
    }

    /// serde's derive also reads a struct from an array of its field values; every part of a
    /// review is a JSON object. `object: []` was once read as a Pod without labels or spec:
    /// no debug pod, so a debug copy sent that way was allowed.
    #[test]
    fn arrays_in_place_of_objects_are_refused() {
        let envelope = |request: &str| {
            format!(
                r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{request}}}"#
            )
        };
        let with = |members: &str| envelope(&format!("{{{HEADER},{members}}}"));
        for (body, field) in [
            (with(r#""object":[]"#), "object"),
            (with(r#""object":{"metadata":[]}"#), "object"),
            (with(r#""object":["v1","Pod"]"#), "object"),
            (with(r#""oldObject":[]"#), "oldObject"),
            (with(r#""oldObject":{"spec":[]}"#), "oldObject"),
        ] {
            match review(&body) {
                Err(ReviewError::MalformedPod {
                    field: f, source, ..
                }) => {
                    assert_eq!(f, field, "{body}");
                    assert!(
                        source.to_string().contains("expected a map of fields"),
                        "{source}"
                    );
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let kind_as_array = HEADER.replace(
            r#""kind":{"group":"","version":"v1","kind":"Pod"}"#,
            r#""kind":["","v1","Pod"]"#,
        );
        assert_ne!(kind_as_array, HEADER);
        for body in [envelope(&format!("{{{kind_as_array}}}")), envelope("[]")] {
            assert!(
                matches!(review(&body), Err(ReviewError::MalformedRequest { .. })),
                "{body}"
            );
        }
        assert!(matches!(
            review(r#"["AdmissionReview","admission.k8s.io/v1",{}]"#),
            Err(ReviewError::MalformedEnvelope(_))
        ));
    }

    /// A request member given twice: the typed decoding would keep the last `object`, the raw
    /// view CEL and the patches read none, so the review is refused instead.
    #[test]
    fn a_repeated_request_member_is_refused() {
        let object =
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app","image":"x"}]}}"#;
        let body = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},"object":{object},"object":{object}}}}}"#
        );
        let err = review(&body).unwrap_err();
        assert!(matches!(err, ReviewError::MalformedRequest { .. }), "{err}");
        assert!(
            err.to_string().contains("duplicate field `object`"),
            "{err}"
        );
    }

    /// JSON is UTF-8. A stray byte in a part the typed decoding skips (here `managedFields`)
    /// must not slip through and leave CEL without its `object` view.
    #[test]
    fn a_body_that_is_not_utf8_is_not_json_even_where_nothing_is_decoded() {
        let body = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},
            "object":{{"metadata":{{"name":"p","managedFields":[{{"manager":"BAD"}}]}},
            "spec":{{"containers":[{{"name":"app","image":"x"}}]}}}}}}}}"#
        );
        assert!(review(&body).is_ok());
        let mut bytes = body.into_bytes();
        let at = bytes.windows(3).position(|w| w == b"BAD").expect("marker");
        bytes[at] = 0xff;
        let err = ParsedReview::from_slice(&bytes).unwrap_err();
        assert!(
            matches!(err, ReviewError::NotUtf8 { offset } if offset == at),
            "{err}"
        );
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
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

    /// What the API server sends takes the one-pass path; it must read exactly what the
    /// careful path reads.
    #[test]
    fn one_pass_and_careful_parsing_agree() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/fixtures");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let body = std::fs::read(entry.unwrap().path()).unwrap();
            let fast = ParsedReview::from_slice(&body).unwrap();
            let careful = ParsedReview::from_bytes_carefully(Bytes::from(body.clone())).unwrap();
            let json = |r: &ParsedReview| serde_json::to_value(r.request()).unwrap();
            assert_eq!(json(&fast), json(&careful));
            assert!(fast.request().object.is_none() && fast.request().old_object.is_none());
            assert_eq!(fast.pod(), careful.pod());
            assert_eq!(
                fast.old_ephemeral_containers(),
                careful.old_ephemeral_containers()
            );
            assert_eq!(fast.object(), careful.object());
            assert_eq!(fast.old_object(), careful.old_object());
            assert_eq!(fast.request_json(), careful.request_json());
            seen += 1;
        }
        assert!(seen >= 10, "the fixtures are there");
    }

    /// A review about another resource (a misconfigured webhook rule) is read carefully: no
    /// Pods, the objects still available raw.
    #[test]
    fn other_resources_keep_raw_objects_without_pods() {
        let body = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{
            "uid":"u2","kind":{"group":"apps","version":"v1","kind":"Deployment"},
            "resource":{"group":"apps","version":"v1","resource":"deployments"},
            "name":"d","namespace":"ns","operation":"CREATE","userInfo":{"username":"alice"},
            "object":{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":2}}}}"#;
        let r = review(body).unwrap();
        assert!(r.pod().is_none());
        assert_eq!(r.object().unwrap()["spec"]["replicas"], 2);
        assert_eq!(r.request().resource.resource, "deployments");
    }

    /// A pods review whose object is another kind is refused as k8s-openapi would; the Pod
    /// leaves out `status` and `managedFields`, which the raw view keeps.
    #[test]
    fn pods_are_pods_without_status() {
        let body = |object: &str| {
            format!(
                r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{HEADER},"object":{object}}}}}"#
            )
        };
        let err = review(&body(r#"{"apiVersion":"apps/v1","kind":"Deployment"}"#)).unwrap_err();
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
        assert!(err.to_string().contains("apps/v1"), "{err}");
        let r = review(&body(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"},
            "managedFields":[{"manager":"kubelet","operation":"Update","fieldsType":"FieldsV1",
            "fieldsV1":{"f:status":{}}}],"uid":"u"},"status":{"phase":"Running"}}"#,
        ))
        .unwrap();
        let pod = r.pod().unwrap();
        assert!(pod.status.is_none());
        assert!(pod.metadata.managed_fields.is_none());
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(pod.metadata.uid.as_deref(), Some("u"));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["a"], "b");
        assert_eq!(r.object().unwrap()["status"]["phase"], "Running");
        assert_eq!(
            r.object().unwrap()["metadata"]["managedFields"][0]["manager"],
            "kubelet"
        );
    }
}
