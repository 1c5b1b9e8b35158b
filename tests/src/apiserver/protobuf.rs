//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) of pod creates, decoded to
//! the JSON the rest of the server works on.
//!
//! kubectl 1.32 and later create pods (`kubectl debug --copy-to`, `kubectl debug node/…`) with
//! protobuf bodies, which kube-apiserver decodes like JSON ones. The body is the `k8s\0` magic
//! and a `runtime.Unknown` (`typeMeta` = 1, `raw` = 2) whose `raw` is the `v1.Pod` message.
//!
//! The message tables ([`MESSAGES`]) were generated from the `k8s.io/api/core/v1` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1` file descriptors kubectl 1.33 carries; they cover
//! what a pod of kubectl debug holds (metadata, containers, volumes, security contexts,
//! tolerations). A field outside them (affinity, probes, …) is refused with a 415 naming
//! it, never dropped, so that nothing reaches admission with less in it than was sent.
//!
//! Go's protobuf code writes a field of a pointer type only when it is set, and a value field
//! always; JSON omits a value field when it is zero (`omitempty`). So a decoded scalar is kept
//! when its Go field is a pointer (`runAsUser: 0`, `privileged: false` mean something) and
//! dropped when it is a zero value, as the JSON kube-apiserver hands to webhooks drops it.

use serde_json::{Map, Value, json};

/// How a field is decoded.
#[derive(Debug)]
pub(super) enum Kind {
    /// `string`.
    Str,
    /// `bool`.
    Bool,
    /// `int32`, `int64`.
    Int,
    /// A message of [`MESSAGES`].
    Msg(&'static str),
    /// A message Go embeds in its parent: its fields are the parent's in JSON.
    Inline(&'static str),
    /// `map<string, V>`: repeated entries of key = 1, value = 2.
    Map(&'static Kind),
    /// `resource.Quantity` (`string` = 1), a string in JSON.
    Quantity,
    /// `metav1.Time` (`seconds` = 1, `nanos` = 2), RFC 3339 in JSON; zero is omitted.
    Time,
    /// Decoded and dropped (`Pod.status`: the registry resets it on create).
    Skip,
    /// A message this server does not model: refused when present.
    Unsupported(&'static str),
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    no: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
    /// The Go field is a pointer: set means present, even when zero.
    pointer: bool,
}

/// Why a protobuf body was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// Not the wire format kube-apiserver accepts: it answers 400.
    #[error("{0}")]
    Malformed(String),
    /// A field this server's tables do not hold: the real server would decode it.
    #[error(
        "this test API server does not decode field {field} ({what}) of protobuf message {message}; add it to tests/src/apiserver/protobuf.rs"
    )]
    NotModelled {
        /// The message.
        message: String,
        /// The field (number and name).
        field: String,
        /// Its type.
        what: String,
    },
}

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf-encoded `v1.Pod` request body to its JSON form.
pub fn decode_pod(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        ProtobufError::Malformed(
            "provided object is not a protobuf-encoded object (no k8s magic prefix)".into(),
        )
    })?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for item in Reader(rest) {
        let (no, wire) = item?;
        match (no, wire) {
            (1, Wire::Len(type_meta)) => {
                for item in Reader(type_meta) {
                    match item? {
                        (1, Wire::Len(b)) => api_version = utf8(b)?,
                        (2, Wire::Len(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(b)) => raw = b,
            _ => {}
        }
    }
    if api_version != "v1" || kind != "Pod" {
        return Err(ProtobufError::Malformed(format!(
            "the object provided is of kind {kind:?} in version {api_version:?}, not Pod in v1"
        )));
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!("v1"));
    object.insert("kind".into(), json!("Pod"));
    decode_into(raw, "k8s.io.api.core.v1.Pod", &mut object)?;
    Ok(Value::Object(object))
}

fn fields_of(message: &str) -> Option<&'static [Field]> {
    MESSAGES
        .iter()
        .find(|(name, _)| *name == message)
        .map(|(_, fields)| *fields)
}

fn decode_message(bytes: &[u8], message: &'static str) -> Result<Value, ProtobufError> {
    let mut object = Map::new();
    decode_into(bytes, message, &mut object)?;
    Ok(Value::Object(object))
}

fn decode_into(
    bytes: &[u8],
    message: &'static str,
    object: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let fields = fields_of(message).ok_or_else(|| ProtobufError::NotModelled {
        message: message.into(),
        field: "(all)".into(),
        what: "message".into(),
    })?;
    for item in Reader(bytes) {
        let (no, wire) = item?;
        let Some(field) = fields.iter().find(|f| f.no == no) else {
            return Err(ProtobufError::NotModelled {
                message: message.into(),
                field: no.to_string(),
                what: "unknown number".into(),
            });
        };
        let value = match decode_value(&field.kind, wire) {
            // An unmodelled message type of this very field: name it here. (One found
            // deeper was named where it was found.)
            Err(ProtobufError::NotModelled {
                message: m, what, ..
            }) if m.is_empty() => {
                return Err(ProtobufError::NotModelled {
                    message: message.into(),
                    field: format!("{} {}", field.no, field.name),
                    what,
                });
            }
            other => other?,
        };
        match (&field.kind, value) {
            (Kind::Skip, _) => {}
            (Kind::Inline(_), Value::Object(inner)) => object.extend(inner),
            (Kind::Map(_), Value::Array(pair)) => {
                let mut pair = pair.into_iter();
                let key = pair.next().and_then(|k| k.as_str().map(str::to_owned));
                let value = pair.next().unwrap_or(Value::Null);
                let entry = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(key), Some(map)) = (key, entry.as_object_mut()) {
                    map.insert(key, value);
                }
            }
            (_, value) if field.repeated => {
                let entry = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = entry.as_array_mut() {
                    list.push(value);
                }
            }
            (_, value) => {
                if field.pointer || !is_zero(&value) {
                    object.insert(field.name.into(), value);
                } else {
                    object.remove(field.name);
                }
            }
        }
    }
    Ok(())
}

/// A Go value field JSON would omit: `""`, `false`, `0`, and a zero `metav1.Time` (null).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn decode_value(kind: &Kind, wire: Wire<'_>) -> Result<Value, ProtobufError> {
    let wrong = |what: &str| {
        ProtobufError::Malformed(format!(
            "protobuf field of type {what} has wire type {}",
            wire.name()
        ))
    };
    Ok(match (kind, wire) {
        (Kind::Str, Wire::Len(b)) => Value::String(utf8(b)?),
        (Kind::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // int32 and int64 alike: negative values are sign-extended to 64 bits.
        (Kind::Int, Wire::Varint(v)) => json!(v as i64),
        (Kind::Msg(m) | Kind::Inline(m), Wire::Len(b)) => decode_message(b, m)?,
        (Kind::Map(value_kind), Wire::Len(b)) => {
            let mut key = Value::String(String::new());
            let mut value = match value_kind {
                Kind::Str | Kind::Quantity => Value::String(String::new()),
                _ => Value::Null,
            };
            for item in Reader(b) {
                match item? {
                    (1, w) => key = decode_value(&Kind::Str, w)?,
                    (2, w) => value = decode_value(value_kind, w)?,
                    _ => {}
                }
            }
            Value::Array(vec![key, value])
        }
        (Kind::Quantity, Wire::Len(b)) => {
            let mut s = String::new();
            for item in Reader(b) {
                if let (1, Wire::Len(text)) = item? {
                    s = utf8(text)?;
                }
            }
            Value::String(s)
        }
        (Kind::Time, Wire::Len(b)) => {
            let (mut seconds, mut nanos) = (0i64, 0i64);
            for item in Reader(b) {
                match item? {
                    (1, Wire::Varint(v)) => seconds = v as i64,
                    (2, Wire::Varint(v)) => nanos = v as i64,
                    _ => {}
                }
            }
            if seconds == 0 && nanos == 0 {
                Value::Null
            } else {
                let t = k8s_openapi::jiff::Timestamp::new(seconds, nanos as i32)
                    .map_err(|e| ProtobufError::Malformed(format!("time {seconds}s: {e}")))?;
                serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t))
                    .map_err(|e| ProtobufError::Malformed(e.to_string()))?
            }
        }
        (Kind::Skip, _) => Value::Null,
        (Kind::Unsupported(m), _) => {
            return Err(ProtobufError::NotModelled {
                message: String::new(),
                field: String::new(),
                what: (*m).into(),
            });
        }
        (Kind::Str | Kind::Msg(_) | Kind::Inline(_), _) => {
            return Err(wrong("string/bytes/message"));
        }
        (Kind::Map(_) | Kind::Quantity | Kind::Time, _) => {
            return Err(wrong("message"));
        }
        (Kind::Bool | Kind::Int, _) => return Err(wrong("varint")),
    })
}

fn utf8(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec())
        .map_err(|e| ProtobufError::Malformed(format!("a protobuf string is not UTF-8: {e}")))
}

/// One field's payload on the wire.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed64,
    Fixed32,
}

impl Wire<'_> {
    fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Len(_) => "length-delimited",
            Wire::Fixed64 => "fixed64",
            Wire::Fixed32 => "fixed32",
        }
    }
}

/// The fields of one message, in wire order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or_else(|| ProtobufError::Malformed("truncated protobuf varint".into()))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed(
            "protobuf varint longer than 10 bytes".into(),
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if n > self.0.len() {
            return Err(ProtobufError::Malformed("truncated protobuf field".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), ProtobufError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Malformed("protobuf length too large".into()))?;
                Wire::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            other => {
                return Err(ProtobufError::Malformed(format!(
                    "protobuf wire type {other} is not used by Kubernetes objects"
                )));
            }
        };
        Ok((key >> 3, wire))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u64, Wire<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            // Stop after an error: what follows cannot be framed.
            self.0 = &[];
        }
        Some(item)
    }
}

// Generated from the file descriptors in kubectl 1.33 (k8s.io/api/core/v1/generated.proto,
// k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto); `pointer` marks the fields Go
// declares as pointers (k8s.io/api/core/v1/types.go).
#[rustfmt::skip]
pub(super) static MESSAGES: &[(&str, &[Field])] = &[
    ("k8s.io.api.core.v1.Pod", &[
        Field { no: 1, name: "metadata", kind: Kind::Msg("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"), repeated: false, pointer: false },
        Field { no: 2, name: "spec", kind: Kind::Msg("k8s.io.api.core.v1.PodSpec"), repeated: false, pointer: false },
        Field { no: 3, name: "status", kind: Kind::Skip, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.PodSpec", &[
        Field { no: 1, name: "volumes", kind: Kind::Msg("k8s.io.api.core.v1.Volume"), repeated: true, pointer: false },
        Field { no: 2, name: "containers", kind: Kind::Msg("k8s.io.api.core.v1.Container"), repeated: true, pointer: false },
        Field { no: 3, name: "restartPolicy", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 4, name: "terminationGracePeriodSeconds", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 5, name: "activeDeadlineSeconds", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 6, name: "dnsPolicy", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 7, name: "nodeSelector", kind: Kind::Map(&Kind::Str), repeated: false, pointer: false },
        Field { no: 8, name: "serviceAccountName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 9, name: "serviceAccount", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 10, name: "nodeName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 11, name: "hostNetwork", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 12, name: "hostPID", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 13, name: "hostIPC", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 14, name: "securityContext", kind: Kind::Msg("k8s.io.api.core.v1.PodSecurityContext"), repeated: false, pointer: false },
        Field { no: 15, name: "imagePullSecrets", kind: Kind::Msg("k8s.io.api.core.v1.LocalObjectReference"), repeated: true, pointer: false },
        Field { no: 16, name: "hostname", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 17, name: "subdomain", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 18, name: "affinity", kind: Kind::Unsupported("k8s.io.api.core.v1.Affinity"), repeated: false, pointer: false },
        Field { no: 19, name: "schedulerName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 20, name: "initContainers", kind: Kind::Msg("k8s.io.api.core.v1.Container"), repeated: true, pointer: false },
        Field { no: 21, name: "automountServiceAccountToken", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 22, name: "tolerations", kind: Kind::Msg("k8s.io.api.core.v1.Toleration"), repeated: true, pointer: false },
        Field { no: 23, name: "hostAliases", kind: Kind::Unsupported("k8s.io.api.core.v1.HostAlias"), repeated: true, pointer: false },
        Field { no: 24, name: "priorityClassName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 25, name: "priority", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 26, name: "dnsConfig", kind: Kind::Unsupported("k8s.io.api.core.v1.PodDNSConfig"), repeated: false, pointer: false },
        Field { no: 27, name: "shareProcessNamespace", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 28, name: "readinessGates", kind: Kind::Msg("k8s.io.api.core.v1.PodReadinessGate"), repeated: true, pointer: false },
        Field { no: 29, name: "runtimeClassName", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 30, name: "enableServiceLinks", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 31, name: "preemptionPolicy", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 32, name: "overhead", kind: Kind::Unsupported("k8s.io.api.core.v1.PodSpec.OverheadEntry"), repeated: true, pointer: false },
        Field { no: 33, name: "topologySpreadConstraints", kind: Kind::Unsupported("k8s.io.api.core.v1.TopologySpreadConstraint"), repeated: true, pointer: false },
        Field { no: 34, name: "ephemeralContainers", kind: Kind::Unsupported("k8s.io.api.core.v1.EphemeralContainer"), repeated: true, pointer: false },
        Field { no: 35, name: "setHostnameAsFQDN", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 36, name: "os", kind: Kind::Msg("k8s.io.api.core.v1.PodOS"), repeated: false, pointer: false },
        Field { no: 37, name: "hostUsers", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 38, name: "schedulingGates", kind: Kind::Msg("k8s.io.api.core.v1.PodSchedulingGate"), repeated: true, pointer: false },
        Field { no: 39, name: "resourceClaims", kind: Kind::Unsupported("k8s.io.api.core.v1.PodResourceClaim"), repeated: true, pointer: false },
        Field { no: 40, name: "resources", kind: Kind::Msg("k8s.io.api.core.v1.ResourceRequirements"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.Volume", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "volumeSource", kind: Kind::Inline("k8s.io.api.core.v1.VolumeSource"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.VolumeSource", &[
        Field { no: 1, name: "hostPath", kind: Kind::Msg("k8s.io.api.core.v1.HostPathVolumeSource"), repeated: false, pointer: false },
        Field { no: 2, name: "emptyDir", kind: Kind::Msg("k8s.io.api.core.v1.EmptyDirVolumeSource"), repeated: false, pointer: false },
        Field { no: 3, name: "gcePersistentDisk", kind: Kind::Unsupported("k8s.io.api.core.v1.GCEPersistentDiskVolumeSource"), repeated: false, pointer: false },
        Field { no: 4, name: "awsElasticBlockStore", kind: Kind::Unsupported("k8s.io.api.core.v1.AWSElasticBlockStoreVolumeSource"), repeated: false, pointer: false },
        Field { no: 5, name: "gitRepo", kind: Kind::Unsupported("k8s.io.api.core.v1.GitRepoVolumeSource"), repeated: false, pointer: false },
        Field { no: 6, name: "secret", kind: Kind::Msg("k8s.io.api.core.v1.SecretVolumeSource"), repeated: false, pointer: false },
        Field { no: 7, name: "nfs", kind: Kind::Unsupported("k8s.io.api.core.v1.NFSVolumeSource"), repeated: false, pointer: false },
        Field { no: 8, name: "iscsi", kind: Kind::Unsupported("k8s.io.api.core.v1.ISCSIVolumeSource"), repeated: false, pointer: false },
        Field { no: 9, name: "glusterfs", kind: Kind::Unsupported("k8s.io.api.core.v1.GlusterfsVolumeSource"), repeated: false, pointer: false },
        Field { no: 10, name: "persistentVolumeClaim", kind: Kind::Unsupported("k8s.io.api.core.v1.PersistentVolumeClaimVolumeSource"), repeated: false, pointer: false },
        Field { no: 11, name: "rbd", kind: Kind::Unsupported("k8s.io.api.core.v1.RBDVolumeSource"), repeated: false, pointer: false },
        Field { no: 12, name: "flexVolume", kind: Kind::Unsupported("k8s.io.api.core.v1.FlexVolumeSource"), repeated: false, pointer: false },
        Field { no: 13, name: "cinder", kind: Kind::Unsupported("k8s.io.api.core.v1.CinderVolumeSource"), repeated: false, pointer: false },
        Field { no: 14, name: "cephfs", kind: Kind::Unsupported("k8s.io.api.core.v1.CephFSVolumeSource"), repeated: false, pointer: false },
        Field { no: 15, name: "flocker", kind: Kind::Unsupported("k8s.io.api.core.v1.FlockerVolumeSource"), repeated: false, pointer: false },
        Field { no: 16, name: "downwardAPI", kind: Kind::Msg("k8s.io.api.core.v1.DownwardAPIVolumeSource"), repeated: false, pointer: false },
        Field { no: 17, name: "fc", kind: Kind::Unsupported("k8s.io.api.core.v1.FCVolumeSource"), repeated: false, pointer: false },
        Field { no: 18, name: "azureFile", kind: Kind::Unsupported("k8s.io.api.core.v1.AzureFileVolumeSource"), repeated: false, pointer: false },
        Field { no: 19, name: "configMap", kind: Kind::Msg("k8s.io.api.core.v1.ConfigMapVolumeSource"), repeated: false, pointer: false },
        Field { no: 20, name: "vsphereVolume", kind: Kind::Unsupported("k8s.io.api.core.v1.VsphereVirtualDiskVolumeSource"), repeated: false, pointer: false },
        Field { no: 21, name: "quobyte", kind: Kind::Unsupported("k8s.io.api.core.v1.QuobyteVolumeSource"), repeated: false, pointer: false },
        Field { no: 22, name: "azureDisk", kind: Kind::Unsupported("k8s.io.api.core.v1.AzureDiskVolumeSource"), repeated: false, pointer: false },
        Field { no: 23, name: "photonPersistentDisk", kind: Kind::Unsupported("k8s.io.api.core.v1.PhotonPersistentDiskVolumeSource"), repeated: false, pointer: false },
        Field { no: 24, name: "portworxVolume", kind: Kind::Unsupported("k8s.io.api.core.v1.PortworxVolumeSource"), repeated: false, pointer: false },
        Field { no: 25, name: "scaleIO", kind: Kind::Unsupported("k8s.io.api.core.v1.ScaleIOVolumeSource"), repeated: false, pointer: false },
        Field { no: 26, name: "projected", kind: Kind::Msg("k8s.io.api.core.v1.ProjectedVolumeSource"), repeated: false, pointer: false },
        Field { no: 27, name: "storageos", kind: Kind::Unsupported("k8s.io.api.core.v1.StorageOSVolumeSource"), repeated: false, pointer: false },
        Field { no: 28, name: "csi", kind: Kind::Unsupported("k8s.io.api.core.v1.CSIVolumeSource"), repeated: false, pointer: false },
        Field { no: 29, name: "ephemeral", kind: Kind::Unsupported("k8s.io.api.core.v1.EphemeralVolumeSource"), repeated: false, pointer: false },
        Field { no: 30, name: "image", kind: Kind::Unsupported("k8s.io.api.core.v1.ImageVolumeSource"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.HostPathVolumeSource", &[
        Field { no: 1, name: "path", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "type", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.EmptyDirVolumeSource", &[
        Field { no: 1, name: "medium", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "sizeLimit", kind: Kind::Quantity, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.SecretVolumeSource", &[
        Field { no: 1, name: "secretName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "items", kind: Kind::Msg("k8s.io.api.core.v1.KeyToPath"), repeated: true, pointer: false },
        Field { no: 3, name: "defaultMode", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 4, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "items", kind: Kind::Msg("k8s.io.api.core.v1.KeyToPath"), repeated: true, pointer: false },
        Field { no: 3, name: "defaultMode", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 4, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ProjectedVolumeSource", &[
        Field { no: 1, name: "sources", kind: Kind::Msg("k8s.io.api.core.v1.VolumeProjection"), repeated: true, pointer: false },
        Field { no: 2, name: "defaultMode", kind: Kind::Int, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.VolumeProjection", &[
        Field { no: 1, name: "secret", kind: Kind::Msg("k8s.io.api.core.v1.SecretProjection"), repeated: false, pointer: false },
        Field { no: 2, name: "downwardAPI", kind: Kind::Msg("k8s.io.api.core.v1.DownwardAPIProjection"), repeated: false, pointer: false },
        Field { no: 3, name: "configMap", kind: Kind::Msg("k8s.io.api.core.v1.ConfigMapProjection"), repeated: false, pointer: false },
        Field { no: 4, name: "serviceAccountToken", kind: Kind::Msg("k8s.io.api.core.v1.ServiceAccountTokenProjection"), repeated: false, pointer: false },
        Field { no: 5, name: "clusterTrustBundle", kind: Kind::Unsupported("k8s.io.api.core.v1.ClusterTrustBundleProjection"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.SecretProjection", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "items", kind: Kind::Msg("k8s.io.api.core.v1.KeyToPath"), repeated: true, pointer: false },
        Field { no: 4, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ConfigMapProjection", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "items", kind: Kind::Msg("k8s.io.api.core.v1.KeyToPath"), repeated: true, pointer: false },
        Field { no: 4, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.DownwardAPIProjection", &[
        Field { no: 1, name: "items", kind: Kind::Msg("k8s.io.api.core.v1.DownwardAPIVolumeFile"), repeated: true, pointer: false },
    ]),
    ("k8s.io.api.core.v1.DownwardAPIVolumeFile", &[
        Field { no: 1, name: "path", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "fieldRef", kind: Kind::Msg("k8s.io.api.core.v1.ObjectFieldSelector"), repeated: false, pointer: false },
        Field { no: 3, name: "resourceFieldRef", kind: Kind::Msg("k8s.io.api.core.v1.ResourceFieldSelector"), repeated: false, pointer: false },
        Field { no: 4, name: "mode", kind: Kind::Int, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.DownwardAPIVolumeSource", &[
        Field { no: 1, name: "items", kind: Kind::Msg("k8s.io.api.core.v1.DownwardAPIVolumeFile"), repeated: true, pointer: false },
        Field { no: 2, name: "defaultMode", kind: Kind::Int, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ServiceAccountTokenProjection", &[
        Field { no: 1, name: "audience", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "expirationSeconds", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 3, name: "path", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.KeyToPath", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "path", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "mode", kind: Kind::Int, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ObjectFieldSelector", &[
        Field { no: 1, name: "apiVersion", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "fieldPath", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.ResourceFieldSelector", &[
        Field { no: 1, name: "containerName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "resource", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "divisor", kind: Kind::Quantity, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.Container", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "image", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "command", kind: Kind::Str, repeated: true, pointer: false },
        Field { no: 4, name: "args", kind: Kind::Str, repeated: true, pointer: false },
        Field { no: 5, name: "workingDir", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 6, name: "ports", kind: Kind::Msg("k8s.io.api.core.v1.ContainerPort"), repeated: true, pointer: false },
        Field { no: 7, name: "env", kind: Kind::Msg("k8s.io.api.core.v1.EnvVar"), repeated: true, pointer: false },
        Field { no: 8, name: "resources", kind: Kind::Msg("k8s.io.api.core.v1.ResourceRequirements"), repeated: false, pointer: false },
        Field { no: 9, name: "volumeMounts", kind: Kind::Msg("k8s.io.api.core.v1.VolumeMount"), repeated: true, pointer: false },
        Field { no: 10, name: "livenessProbe", kind: Kind::Unsupported("k8s.io.api.core.v1.Probe"), repeated: false, pointer: false },
        Field { no: 11, name: "readinessProbe", kind: Kind::Unsupported("k8s.io.api.core.v1.Probe"), repeated: false, pointer: false },
        Field { no: 12, name: "lifecycle", kind: Kind::Unsupported("k8s.io.api.core.v1.Lifecycle"), repeated: false, pointer: false },
        Field { no: 13, name: "terminationMessagePath", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 14, name: "imagePullPolicy", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 15, name: "securityContext", kind: Kind::Msg("k8s.io.api.core.v1.SecurityContext"), repeated: false, pointer: false },
        Field { no: 16, name: "stdin", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 17, name: "stdinOnce", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 18, name: "tty", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 19, name: "envFrom", kind: Kind::Msg("k8s.io.api.core.v1.EnvFromSource"), repeated: true, pointer: false },
        Field { no: 20, name: "terminationMessagePolicy", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 21, name: "volumeDevices", kind: Kind::Unsupported("k8s.io.api.core.v1.VolumeDevice"), repeated: true, pointer: false },
        Field { no: 22, name: "startupProbe", kind: Kind::Unsupported("k8s.io.api.core.v1.Probe"), repeated: false, pointer: false },
        Field { no: 23, name: "resizePolicy", kind: Kind::Msg("k8s.io.api.core.v1.ContainerResizePolicy"), repeated: true, pointer: false },
        Field { no: 24, name: "restartPolicy", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ContainerPort", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "hostPort", kind: Kind::Int, repeated: false, pointer: false },
        Field { no: 3, name: "containerPort", kind: Kind::Int, repeated: false, pointer: false },
        Field { no: 4, name: "protocol", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 5, name: "hostIP", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.EnvVar", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "valueFrom", kind: Kind::Msg("k8s.io.api.core.v1.EnvVarSource"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.EnvVarSource", &[
        Field { no: 1, name: "fieldRef", kind: Kind::Msg("k8s.io.api.core.v1.ObjectFieldSelector"), repeated: false, pointer: false },
        Field { no: 2, name: "resourceFieldRef", kind: Kind::Msg("k8s.io.api.core.v1.ResourceFieldSelector"), repeated: false, pointer: false },
        Field { no: 3, name: "configMapKeyRef", kind: Kind::Msg("k8s.io.api.core.v1.ConfigMapKeySelector"), repeated: false, pointer: false },
        Field { no: 4, name: "secretKeyRef", kind: Kind::Msg("k8s.io.api.core.v1.SecretKeySelector"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.SecretKeySelector", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.EnvFromSource", &[
        Field { no: 1, name: "prefix", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "configMapRef", kind: Kind::Msg("k8s.io.api.core.v1.ConfigMapEnvSource"), repeated: false, pointer: false },
        Field { no: 3, name: "secretRef", kind: Kind::Msg("k8s.io.api.core.v1.SecretEnvSource"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.SecretEnvSource", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", &[
        Field { no: 1, name: "localObjectReference", kind: Kind::Inline("k8s.io.api.core.v1.LocalObjectReference"), repeated: false, pointer: false },
        Field { no: 2, name: "optional", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.LocalObjectReference", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.ResourceRequirements", &[
        Field { no: 1, name: "limits", kind: Kind::Map(&Kind::Quantity), repeated: false, pointer: false },
        Field { no: 2, name: "requests", kind: Kind::Map(&Kind::Quantity), repeated: false, pointer: false },
        Field { no: 3, name: "claims", kind: Kind::Msg("k8s.io.api.core.v1.ResourceClaim"), repeated: true, pointer: false },
    ]),
    ("k8s.io.api.core.v1.ResourceClaim", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "request", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.VolumeMount", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "readOnly", kind: Kind::Bool, repeated: false, pointer: false },
        Field { no: 3, name: "mountPath", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 4, name: "subPath", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 5, name: "mountPropagation", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 6, name: "subPathExpr", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 7, name: "recursiveReadOnly", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.SecurityContext", &[
        Field { no: 1, name: "capabilities", kind: Kind::Msg("k8s.io.api.core.v1.Capabilities"), repeated: false, pointer: false },
        Field { no: 2, name: "privileged", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 3, name: "seLinuxOptions", kind: Kind::Msg("k8s.io.api.core.v1.SELinuxOptions"), repeated: false, pointer: false },
        Field { no: 4, name: "runAsUser", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 5, name: "runAsNonRoot", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 6, name: "readOnlyRootFilesystem", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 7, name: "allowPrivilegeEscalation", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 8, name: "runAsGroup", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 9, name: "procMount", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 10, name: "windowsOptions", kind: Kind::Msg("k8s.io.api.core.v1.WindowsSecurityContextOptions"), repeated: false, pointer: false },
        Field { no: 11, name: "seccompProfile", kind: Kind::Msg("k8s.io.api.core.v1.SeccompProfile"), repeated: false, pointer: false },
        Field { no: 12, name: "appArmorProfile", kind: Kind::Msg("k8s.io.api.core.v1.AppArmorProfile"), repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.Capabilities", &[
        Field { no: 1, name: "add", kind: Kind::Str, repeated: true, pointer: false },
        Field { no: 2, name: "drop", kind: Kind::Str, repeated: true, pointer: false },
    ]),
    ("k8s.io.api.core.v1.SELinuxOptions", &[
        Field { no: 1, name: "user", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "role", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "type", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 4, name: "level", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.SeccompProfile", &[
        Field { no: 1, name: "type", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "localhostProfile", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.AppArmorProfile", &[
        Field { no: 1, name: "type", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "localhostProfile", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.WindowsSecurityContextOptions", &[
        Field { no: 1, name: "gmsaCredentialSpecName", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 2, name: "gmsaCredentialSpec", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 3, name: "runAsUserName", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 4, name: "hostProcess", kind: Kind::Bool, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.PodSecurityContext", &[
        Field { no: 1, name: "seLinuxOptions", kind: Kind::Msg("k8s.io.api.core.v1.SELinuxOptions"), repeated: false, pointer: false },
        Field { no: 2, name: "runAsUser", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 3, name: "runAsNonRoot", kind: Kind::Bool, repeated: false, pointer: true },
        Field { no: 4, name: "supplementalGroups", kind: Kind::Int, repeated: true, pointer: false },
        Field { no: 5, name: "fsGroup", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 6, name: "runAsGroup", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 7, name: "sysctls", kind: Kind::Msg("k8s.io.api.core.v1.Sysctl"), repeated: true, pointer: false },
        Field { no: 8, name: "windowsOptions", kind: Kind::Msg("k8s.io.api.core.v1.WindowsSecurityContextOptions"), repeated: false, pointer: false },
        Field { no: 9, name: "fsGroupChangePolicy", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 10, name: "seccompProfile", kind: Kind::Msg("k8s.io.api.core.v1.SeccompProfile"), repeated: false, pointer: false },
        Field { no: 11, name: "appArmorProfile", kind: Kind::Msg("k8s.io.api.core.v1.AppArmorProfile"), repeated: false, pointer: false },
        Field { no: 12, name: "supplementalGroupsPolicy", kind: Kind::Str, repeated: false, pointer: true },
        Field { no: 13, name: "seLinuxChangePolicy", kind: Kind::Str, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.Sysctl", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.Toleration", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "operator", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "value", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 4, name: "effect", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 5, name: "tolerationSeconds", kind: Kind::Int, repeated: false, pointer: true },
    ]),
    ("k8s.io.api.core.v1.PodOS", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.ContainerResizePolicy", &[
        Field { no: 1, name: "resourceName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "restartPolicy", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.PodSchedulingGate", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.PodReadinessGate", &[
        Field { no: 1, name: "conditionType", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.PodSpec.NodeSelectorEntry", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.ResourceRequirements.LimitsEntry", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Quantity, repeated: false, pointer: false },
    ]),
    ("k8s.io.api.core.v1.ResourceRequirements.RequestsEntry", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Quantity, repeated: false, pointer: false },
    ]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta", &[
        Field { no: 1, name: "name", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "generateName", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 3, name: "namespace", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 4, name: "selfLink", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 5, name: "uid", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 6, name: "resourceVersion", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 7, name: "generation", kind: Kind::Int, repeated: false, pointer: false },
        Field { no: 8, name: "creationTimestamp", kind: Kind::Time, repeated: false, pointer: false },
        Field { no: 9, name: "deletionTimestamp", kind: Kind::Time, repeated: false, pointer: false },
        Field { no: 10, name: "deletionGracePeriodSeconds", kind: Kind::Int, repeated: false, pointer: true },
        Field { no: 11, name: "labels", kind: Kind::Map(&Kind::Str), repeated: false, pointer: false },
        Field { no: 12, name: "annotations", kind: Kind::Map(&Kind::Str), repeated: false, pointer: false },
        Field { no: 13, name: "ownerReferences", kind: Kind::Unsupported("k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference"), repeated: true, pointer: false },
        Field { no: 14, name: "finalizers", kind: Kind::Str, repeated: true, pointer: false },
        Field { no: 17, name: "managedFields", kind: Kind::Unsupported("k8s.io.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"), repeated: true, pointer: false },
    ]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta.LabelsEntry", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Str, repeated: false, pointer: false },
    ]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta.AnnotationsEntry", &[
        Field { no: 1, name: "key", kind: Kind::Str, repeated: false, pointer: false },
        Field { no: 2, name: "value", kind: Kind::Str, repeated: false, pointer: false },
    ]),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field.
    fn len(no: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = varint(no << 3 | 2);
        out.extend(varint(bytes.len() as u64));
        out.extend_from_slice(bytes);
        out
    }

    /// A varint field.
    fn var(no: u64, v: u64) -> Vec<u8> {
        let mut out = varint(no << 3);
        out.extend(varint(v));
        out
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn envelope(pod: &[u8]) -> Vec<u8> {
        let type_meta = [len(1, b"v1"), len(2, b"Pod")].concat();
        [MAGIC.to_vec(), len(1, &type_meta), len(2, pod)].concat()
    }

    /// What Go's generated code writes for a node pod: value fields always (zero or not),
    /// pointer fields when set.
    fn node_pod(extra_spec: &[u8]) -> Vec<u8> {
        let labels_entry = [len(1, b"app"), len(2, b"dbg")].concat();
        let meta = [
            len(1, b"node-debugger-node-1-abcde"),
            len(2, b""),
            len(3, b"shop"),
            len(8, &[]), // creationTimestamp: a zero metav1.Time
            len(11, &labels_entry),
        ]
        .concat();
        let caps = len(1, b"SYS_ADMIN");
        let security = [len(1, &caps), var(2, 0), var(4, 0)].concat();
        let mount = [
            len(1, b"host-root"),
            var(2, 0),
            len(3, b"/host"),
            len(4, b""),
        ]
        .concat();
        let limits = [len(1, b"cpu"), len(2, &len(1, b"100m"))].concat();
        let resources = len(1, &limits);
        let container = [
            len(1, b"debugger"),
            len(2, b"busybox:1.36"),
            len(8, &resources),
            len(9, &mount),
            len(14, b""),
            len(15, &security),
            var(16, 1),
            var(17, 0),
            var(18, 0),
        ]
        .concat();
        let host_path = [len(1, b"/"), len(2, b"")].concat();
        let volume = [len(1, b"host-root"), len(2, &len(1, &host_path))].concat();
        let toleration = [len(1, b""), len(2, b"Exists"), len(3, b""), len(4, b"")].concat();
        let spec = [
            len(1, &volume),
            len(2, &container),
            len(3, b"Never"),
            len(10, b"node-1"),
            var(11, 0),
            var(12, 1),
            var(13, 0),
            len(22, &toleration),
            var(27, 0),
            extra_spec.to_vec(),
        ]
        .concat();
        let status = [len(1, b""), len(2, b"")].concat();
        envelope(&[len(1, &meta), len(2, &spec), len(3, &status)].concat())
    }

    #[test]
    fn a_pod_decodes_to_the_json_kube_apiserver_hands_on() {
        let pod = decode_pod(&node_pod(&[])).unwrap();
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "node-debugger-node-1-abcde",
                    "namespace": "shop",
                    "labels": {"app": "dbg"}
                },
                "spec": {
                    "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": ""}}],
                    "containers": [{
                        "name": "debugger",
                        "image": "busybox:1.36",
                        "resources": {"limits": {"cpu": "100m"}},
                        "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                        // Pointers: set, so kept although zero (root, explicitly not privileged).
                        "securityContext": {
                            "capabilities": {"add": ["SYS_ADMIN"]},
                            "privileged": false,
                            "runAsUser": 0
                        },
                        "stdin": true
                    }],
                    "restartPolicy": "Never",
                    "nodeName": "node-1",
                    "hostPID": true,
                    "tolerations": [{"operator": "Exists"}],
                    "shareProcessNamespace": false
                }
            })
        );
    }

    #[test]
    fn what_is_not_modelled_is_refused_by_name_never_dropped() {
        // spec.affinity (18): a message this server does not decode.
        let err = decode_pod(&node_pod(&len(18, &[]))).unwrap_err();
        assert!(
            matches!(&err, ProtobufError::NotModelled { message, field, .. }
                if message == "k8s.io.api.core.v1.PodSpec" && field == "18 affinity"),
            "{err}"
        );
        assert!(
            err.to_string().contains("tests/src/apiserver/protobuf.rs"),
            "{err}"
        );
        // A field number the tables do not know.
        let err = decode_pod(&node_pod(&var(99, 1))).unwrap_err();
        assert!(
            matches!(&err, ProtobufError::NotModelled { field, .. } if field == "99"),
            "{err}"
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for body in [
            b"{\"kind\":\"Pod\"}".to_vec(),
            [MAGIC.to_vec(), vec![0x12, 0x05, 0x0a]].concat(),
            envelope(&[0x0a, 0xff]),
            [
                MAGIC.to_vec(),
                len(1, &[len(1, b"v1"), len(2, b"Node")].concat()),
            ]
            .concat(),
            envelope(&var(1, 1)),
        ] {
            let err = decode_pod(&body).unwrap_err();
            assert!(
                matches!(err, ProtobufError::Malformed(_)),
                "{body:?}: {err}"
            );
        }
    }
}
