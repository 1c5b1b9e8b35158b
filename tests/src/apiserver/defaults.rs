//! Defaulting, applied to every Pod the server decodes (core/v1 `SetDefaults_*`), plus what
//! the built-in admission plugins add on create (ServiceAccount, DefaultTolerationSeconds,
//! Priority). Webhooks therefore see Pods shaped like a real cluster's.

use serde_json::{Map, Value, json};

use super::status::ApiError;

/// Where the ServiceAccount admission plugin mounts the API credentials.
pub const SA_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A small non-cryptographic random generator (xorshift) seeded from time and a counter.
pub fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// `names.MaxGeneratedNameLength`: a generated name is at most 63 characters, the prefix
/// keeping 63 − 5.
pub const MAX_GENERATED_NAME_PREFIX: usize = 58;

/// Names an object that has only `generateName`, as `names.SimpleNameGenerator` does on
/// create: the prefix cut to [`MAX_GENERATED_NAME_PREFIX`] bytes, plus five random
/// characters.
pub fn name_from_generate_name(meta: &mut Map<String, Value>) {
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(g) = meta.get("generateName").and_then(Value::as_str)
    {
        // Go cuts bytes; a cut inside a multi-byte character (which validation refuses
        // anyway) is moved back to the character's start instead of panicking.
        let mut end = g.len().min(MAX_GENERATED_NAME_PREFIX);
        while !g.is_char_boundary(end) {
            end -= 1;
        }
        let name = format!("{}{}", &g[..end], random_suffix(5));
        meta.insert("name".into(), json!(name));
    }
}

/// `n` characters from Kubernetes' random-suffix alphabet (as `utilrand.String`).
pub fn random_suffix(n: usize) -> String {
    let mut x = random_u64();
    (0..n)
        .map(|_| {
            let c = NAME_ALPHABET[(x % NAME_ALPHABET.len() as u64) as usize] as char;
            x /= NAME_ALPHABET.len() as u64;
            if x == 0 {
                x = random_u64();
            }
            c
        })
        .collect()
}

/// A random RFC 4122 version-4 UID.
pub fn random_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The pull policy Kubernetes defaults for an image: `Always` for `:latest` or no tag.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn set_if_absent(m: &mut Map<String, Value>, k: &str, v: Value) {
    if !m.contains_key(k) || m.get(k) == Some(&Value::Null) {
        m.insert(k.to_string(), v);
    }
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    set_if_absent(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_absent(m, "terminationMessagePolicy", json!("File"));
    if !m.contains_key("imagePullPolicy")
        && let Some(img) = m.get("image").and_then(Value::as_str)
    {
        let p = default_pull_policy(img);
        m.insert("imagePullPolicy".into(), json!(p));
    }
    if let Some(Value::Array(ports)) = m.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_if_absent(p, "protocol", json!("TCP"));
        }
    }
}

/// core/v1 defaulting of a Pod (as JSON): pod-level fields and every container kind.
pub fn apply_pod_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_if_absent(spec, "restartPolicy", json!("Always"));
    set_if_absent(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(spec, "schedulerName", json!("default-scheduler"));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            cs.iter_mut().for_each(default_container);
        }
    }
}

/// The annotation prefix of the deprecated per-container AppArmor profiles.
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// `appArmorAnnotationForField`: the annotation value a profile field stands for (empty for
/// a Localhost profile without a name, or an unknown type).
fn app_armor_annotation_for_field(profile: &Value) -> String {
    match profile["type"].as_str() {
        Some("Unconfined") => "unconfined".into(),
        Some("RuntimeDefault") => "runtime/default".into(),
        Some("Localhost") => profile["localhostProfile"]
            .as_str()
            .map(|p| format!("localhost/{p}"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `apparmorFieldForAnnotation`: the profile field an annotation value stands for, when it
/// is a valid one.
fn app_armor_field_for_annotation(annotation: &str) -> Option<Value> {
    match annotation {
        "unconfined" => Some(json!({"type": "Unconfined"})),
        "runtime/default" => Some(json!({"type": "RuntimeDefault"})),
        _ => annotation
            .strip_prefix("localhost/")
            // ValidateAppArmorProfileField refuses a padded name: such a value is not copied.
            .filter(|p| !p.is_empty() && p.trim() == *p)
            .map(|p| json!({"type": "Localhost", "localhostProfile": p})),
    }
}

/// `applyAppArmorVersionSkew` (`pkg/api/pod/util.go`, the pod strategy's PrepareForCreate, so
/// after mutating and before validating admission): for each container, a profile field
/// (the container's, else the pod's) without the deprecated annotation gets the annotation;
/// an annotation without the container's field gets the field (unless it equals the pod's
/// profile), and a deprecation warning — also when the annotation's value cannot become a
/// field. Windows pods are left alone. Returns the warnings.
pub fn apply_app_armor_version_skew(pod: &mut Value) -> Vec<String> {
    let mut warnings = Vec::new();
    if pod["spec"]["os"]["name"] == "windows" {
        return warnings;
    }
    let pod_profile = pod["spec"]["securityContext"]["appArmorProfile"].clone();
    let mut annotations = pod["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let before = annotations.clone();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(Value::Array(cs)) = pod["spec"].get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut() {
            let key = format!(
                "{APPARMOR_ANNOTATION_PREFIX}{}",
                c["name"].as_str().unwrap_or_default()
            );
            let container_profile = c["securityContext"]["appArmorProfile"].clone();
            match annotations
                .get(&key)
                .and_then(Value::as_str)
                .map(str::to_string)
            {
                None => {
                    let from = if container_profile.is_object() {
                        &container_profile
                    } else {
                        &pod_profile
                    };
                    let value = if from.is_object() {
                        app_armor_annotation_for_field(from)
                    } else {
                        String::new()
                    };
                    if !value.is_empty() {
                        annotations.insert(key, json!(value));
                    }
                }
                Some(annotation) if !container_profile.is_object() => {
                    let field = app_armor_field_for_annotation(&annotation);
                    let mut warn = field.is_none();
                    if let Some(field) = field.filter(|f| *f != pod_profile) {
                        if !c["securityContext"].is_object() {
                            c["securityContext"] = json!({});
                        }
                        c["securityContext"]["appArmorProfile"] = field;
                        warn = true;
                    }
                    if warn {
                        warnings.push(format!(
                            "metadata.annotations[{key}]: deprecated since v1.30; use the \"appArmorProfile\" field instead"
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    if annotations != before
        && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    warnings
}

/// The ServiceAccount a pod create runs as: `spec.serviceAccountName`, `default` when unset
/// (the ServiceAccount admission plugin fills it in before looking the account up).
pub fn service_account_name(pod: &Value) -> String {
    pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// The name `admission.NewForbidden` gives a pod being created: its name, else its
/// `generateName` (no name is generated before admission), else `Unknown`.
fn admission_name(pod: &Value) -> &str {
    let meta = &pod["metadata"];
    [&meta["name"], &meta["generateName"]]
        .into_iter()
        .filter_map(Value::as_str)
        .find(|n| !n.is_empty())
        .unwrap_or("Unknown")
}

/// The ServiceAccount plugin's refusal of a pod whose account does not exist
/// (`plugin/pkg/admission/serviceaccount/admission.go`): `error looking up service account
/// NS/NAME: serviceaccount "NAME" not found`, as `admission.NewForbidden` words it.
pub fn service_account_not_found(pod: &Value, namespace: &str, sa: &str) -> ApiError {
    ApiError::forbidden(
        "pods",
        admission_name(pod),
        format!(
            "error looking up service account {namespace}/{sa}: serviceaccount \"{sa}\" not found"
        ),
    )
}

/// The PriorityClasses every cluster has (`scheduling.SystemPriorityClasses`), with their
/// values; their preemption policy is the default, `PreemptLowerPriority`.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The Priority plugin on create (`plugin/pkg/admission/priority/admission.go`): resolves
/// `priorityClassName` (no class and no global default: 0) into `priority` and
/// `preemptionPolicy`, refusing an unknown class and values the pod sets that differ from the
/// computed ones.
fn admit_priority(pod: &mut Value) -> Result<(), ApiError> {
    let name = admission_name(pod).to_string();
    let forbidden = |why: String| ApiError::forbidden("pods", &name, why);
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    let priority = match class {
        None => 0,
        Some(c) => SYSTEM_PRIORITY_CLASSES
            .iter()
            .find(|(n, _)| *n == c)
            .map(|(_, v)| *v)
            .ok_or_else(|| forbidden(format!("no PriorityClass with name {c} was found")))?,
    };
    let policy = "PreemptLowerPriority";
    if let Some(p) = spec.get("priority").and_then(Value::as_i64)
        && p != priority
    {
        return Err(forbidden(format!(
            "the integer value of priority ({p}) must not be provided in pod spec; priority \
             admission controller computed {priority} from the given PriorityClass name"
        )));
    }
    spec.insert("priority".into(), json!(priority));
    if let Some(p) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && p != policy
    {
        return Err(forbidden(format!(
            "the string value of PreemptionPolicy ({p}) must not be provided in pod spec; \
             priority admission controller computed {policy} from the given PriorityClass name"
        )));
    }
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

/// DefaultTolerationSeconds (`plugin/pkg/admission/defaulttolerationseconds/admission.go`):
/// 300 s tolerations of the not-ready and unreachable NoExecute taints, each added only when
/// no toleration already tolerates it — one whose key is the taint's or empty (a wildcard)
/// and whose effect is NoExecute or empty; the operator does not matter.
fn default_toleration_seconds(spec: &mut Map<String, Value>) {
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Value::Array(ts) = tolerations else {
        return;
    };
    let tolerates = |ts: &[Value], key: &str| {
        ts.iter().any(|t| {
            let k = t["key"].as_str().unwrap_or_default();
            let effect = t["effect"].as_str().unwrap_or_default();
            (k.is_empty() || k == key) && (effect.is_empty() || effect == "NoExecute")
        })
    };
    let missing: Vec<&str> = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .filter(|key| !tolerates(ts, key))
    .collect();
    for key in missing {
        ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
    }
}

/// What the built-in admission plugins add to a Pod on create, before webhooks run:
/// ServiceAccount (account name; unless the pod, else the account, turns automounting off:
/// the token volume — an existing `kube-api-access-*` volume is reused — mounted read-only at
/// [`SA_MOUNT_PATH`] into every init and regular container that has no mount there; ephemeral
/// containers never get one), Priority (the 403 of an unknown class or of a priority that
/// contradicts it) and DefaultTolerationSeconds. `service_account` is the account
/// [`service_account_name`] names, which the caller looked up.
pub fn apply_create_admission(pod: &mut Value, service_account: &Value) -> Result<(), ApiError> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let sa = service_account["metadata"]["name"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(sa));
    spec.insert("serviceAccount".into(), json!(sa));
    // shouldAutomount: the pod's preference wins, then the account's, else true.
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| service_account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_service_account_token(spec);
    }
    // kube-apiserver's plugin order: ServiceAccount, …, Priority, DefaultTolerationSeconds.
    admit_priority(pod)?;
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        default_toleration_seconds(spec);
    }
    Ok(())
}

/// `mountServiceAccountToken`: the first volume named `kube-api-access-*` is the token
/// volume if there is one, else a new one with a random suffix, added only if some container
/// needed the mount.
fn mount_service_account_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with("kube-api-access-"))
        .map(str::to_string);
    let vol_name = existing
        .clone()
        .unwrap_or_else(|| format!("kube-api-access-{}", random_suffix(5)));
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = spec.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Value::Array(ms) = mounts else { continue };
            // A mount at the path, whatever its volume, keeps the token out of that container.
            if ms
                .iter()
                .any(|m| m["mountPath"].as_str() == Some(SA_MOUNT_PATH))
            {
                continue;
            }
            ms.push(json!({"name": vol_name, "readOnly": true, "mountPath": SA_MOUNT_PATH}));
            needed = true;
        }
    }
    if existing.is_some() || !needed {
        return;
    }
    let volume = json!({
        "name": vol_name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    });
    if let Value::Array(vs) = spec.entry("volumes").or_insert_with(|| json!([])) {
        vs.push(volume);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("r.io/x@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn create_adds_service_account_volume() {
        let mut p = json!({"spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        apply_pod_defaults(&mut p);
        apply_create_admission(&mut p, &json!({"metadata": {"name": "default"}})).unwrap();
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
            SA_MOUNT_PATH
        );
        assert!(
            p["spec"]["volumes"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with("kube-api-access-")
        );
        assert_eq!(random_suffix(5).len(), 5);
        assert_eq!(random_uid().len(), 36);
    }
}
