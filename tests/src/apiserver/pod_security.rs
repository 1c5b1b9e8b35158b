//! The PodSecurity admission plugin (`k8s.io/pod-security-admission`), minimally: the level
//! the namespace label `pod-security.kubernetes.io/enforce` sets (version from
//! `…/enforce-version`, default `latest`), enforced in the validating phase — after
//! validation, before validating webhooks — on pod creates, on `ephemeralcontainers` updates
//! and on pod updates that change a container image (`isSignificantPodUpdate`).
//!
//! Checks (the policy's IDs, evaluated baseline first, each level's by ID, as the real
//! aggregate lists them):
//! - baseline: `capabilities_baseline` (non-default capabilities), `hostNamespaces`,
//!   `hostPathVolumes`, `privileged`;
//! - restricted adds `allowPrivilegeEscalation`, `capabilities_restricted` (drop ALL, add
//!   only NET_BIND_SERVICE; replaces the baseline one), `restrictedVolumes` (replaces
//!   hostPathVolumes), `runAsNonRoot`, `seccompProfile_restricted`.
//!
//! Not checked: hostPorts, AppArmor, SELinux, /proc mount, sysctls, seccomp at baseline,
//! runAsUser=0, Windows host processes; the `warn` and `audit` labels; exemptions. An enforce
//! label that is not a level is treated as `restricted`, the most restrictive, as the plugin
//! does.
//!
//! A violation is the plugin's 403: `pods "x" is forbidden: violates PodSecurity
//! "restricted:latest": REASON (DETAIL), …`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::status::ApiError;

/// The namespace label that sets the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The namespace label that pins the policy version.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// Capabilities the baseline level lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// A Pod Security level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No restrictions.
    Privileged,
    /// Known privilege escalations forbidden.
    Baseline,
    /// Hardened.
    Restricted,
}

/// The enforced level and version of a namespace, from its labels (`None`: unlabelled).
pub fn enforced(labels: &BTreeMap<String, String>) -> Option<(Level, String)> {
    let level = match labels.get(ENFORCE_LABEL)?.as_str() {
        "privileged" => Level::Privileged,
        "baseline" => Level::Baseline,
        // Not a level: the plugin falls back to the most restrictive one.
        _ => Level::Restricted,
    };
    let version = labels
        .get(ENFORCE_VERSION_LABEL)
        .cloned()
        .unwrap_or_else(|| "latest".into());
    Some((level, version))
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 { singular } else { plural }
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Init containers, containers, then ephemeral containers (`visitContainers`).
fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .collect()
}

fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// One failed check: (ForbiddenReason, ForbiddenDetail).
type Violation = (String, String);

fn capabilities_baseline(spec: &Value) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut bad_caps = BTreeSet::new();
    for c in containers(spec) {
        let mut bad = false;
        for cap in strings(&c["securityContext"]["capabilities"]["add"]) {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                bad = true;
                bad_caps.insert(cap);
            }
        }
        if bad {
            bad_containers.push(name(c));
        }
    }
    (!bad_containers.is_empty()).then(|| {
        (
            "non-default capabilities".into(),
            format!(
                "{} {} must not include {} in securityContext.capabilities.add",
                pluralize("container", "containers", bad_containers.len()),
                join_quote(&bad_containers),
                join_quote(&bad_caps.into_iter().collect::<Vec<_>>())
            ),
        )
    })
}

fn host_namespaces(spec: &Value) -> Option<Violation> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| spec[**k] == true)
        .map(|k| format!("{k}=true"))
        .collect();
    (!set.is_empty()).then(|| ("host namespaces".into(), set.join(", ")))
}

fn volumes(spec: &Value) -> Vec<&Value> {
    spec["volumes"].as_array().into_iter().flatten().collect()
}

fn host_path_volumes(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = volumes(spec)
        .into_iter()
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "hostPath volumes".into(),
            format!(
                "{} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

fn privileged(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| c["securityContext"]["privileged"] == true)
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "privileged".into(),
            format!(
                "{} {} must not set securityContext.privileged=true",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

fn allow_privilege_escalation(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != false)
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "allowPrivilegeEscalation != false".into(),
            format!(
                "{} {} must set securityContext.allowPrivilegeEscalation=false",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

fn capabilities_restricted(spec: &Value) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for c in containers(spec) {
        let caps = &c["securityContext"]["capabilities"];
        if !caps.is_object() {
            missing_drop_all.push(name(c));
            continue;
        }
        if !strings(&caps["drop"]).iter().any(|d| d == "ALL") {
            missing_drop_all.push(name(c));
        }
        let mut bad = false;
        for cap in strings(&caps["add"]) {
            if cap != "NET_BIND_SERVICE" {
                bad = true;
                forbidden.insert(cap);
            }
        }
        if bad {
            adding.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} {} must set securityContext.capabilities.drop=[\"ALL\"]",
            pluralize("container", "containers", missing_drop_all.len()),
            join_quote(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} {} must not include {} in securityContext.capabilities.add",
            pluralize("container", "containers", adding.len()),
            join_quote(&adding),
            join_quote(&forbidden.into_iter().collect::<Vec<_>>())
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities".into(), details.join("; ")))
}

/// Volume sources the restricted level allows.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in volumes(spec) {
        let Some(fields) = v.as_object() else {
            continue;
        };
        let sources: Vec<&String> = fields
            .iter()
            .filter(|(k, val)| *k != "name" && !val.is_null())
            .map(|(k, _)| k)
            .collect();
        if sources
            .iter()
            .any(|s| RESTRICTED_VOLUME_SOURCES.contains(&s.as_str()))
        {
            continue;
        }
        bad.push(name(v));
        types.insert(
            sources
                .first()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    (!bad.is_empty()).then(|| {
        (
            "restricted volume types".into(),
            format!(
                "{} {} {} {} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "restricted volume type",
                    "restricted volume types",
                    types.len()
                ),
                join_quote(&types.into_iter().collect::<Vec<_>>())
            ),
        )
    })
}

fn run_as_non_root(spec: &Value) -> Option<Violation> {
    let mut bad_setters = Vec::new();
    let mut pod_non_root = false;
    match spec["securityContext"]["runAsNonRoot"].as_bool() {
        Some(false) => bad_setters.push("pod".to_string()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c["securityContext"]["runAsNonRoot"].as_bool() {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        bad_setters.push(format!(
            "{} {}",
            pluralize("container", "containers", explicit.len()),
            join_quote(&explicit)
        ));
    }
    if !bad_setters.is_empty() {
        return Some((
            "runAsNonRoot != true".into(),
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad_setters.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            "runAsNonRoot != true".into(),
            format!(
                "pod or {} {} must set securityContext.runAsNonRoot=true",
                pluralize("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        )
    })
}

fn seccomp_restricted(spec: &Value) -> Option<Violation> {
    let valid = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut bad_setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(t) = spec["securityContext"]["seccompProfile"]["type"].as_str() {
        if valid(t) {
            pod_set = true;
        } else {
            bad_setters.push("pod".to_string());
            bad_values.insert(t.to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c["securityContext"]["seccompProfile"]["type"].as_str() {
            Some(t) if !valid(t) => {
                explicit.push(name(c));
                bad_values.insert(t.to_string());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        bad_setters.push(format!(
            "{} {}",
            pluralize("container", "containers", explicit.len()),
            join_quote(&explicit)
        ));
    }
    if !bad_setters.is_empty() {
        return Some((
            "seccompProfile".into(),
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                bad_setters.join(" and "),
                join_quote(&bad_values.into_iter().collect::<Vec<_>>())
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            "seccompProfile".into(),
            format!(
                "pod or {} {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                pluralize("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        )
    })
}

/// The violations of `spec` at `level`, in the order the plugin reports them.
pub fn violations(level: Level, spec: &Value) -> Vec<Violation> {
    type Check = fn(&Value) -> Option<Violation>;
    let checks: Vec<Check> = match level {
        Level::Privileged => vec![],
        Level::Baseline => vec![
            capabilities_baseline,
            host_namespaces,
            host_path_volumes,
            privileged,
        ],
        Level::Restricted => vec![
            // Baseline checks the restricted ones do not replace…
            host_namespaces,
            privileged,
            // …then the restricted level's.
            allow_privilege_escalation,
            capabilities_restricted,
            restricted_volumes,
            run_as_non_root,
            seccomp_restricted,
        ],
    };
    checks.into_iter().filter_map(|check| check(spec)).collect()
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Privileged => "privileged",
        Level::Baseline => "baseline",
        Level::Restricted => "restricted",
    }
}

/// Admits the pod `pod` (JSON) named `name` in a namespace with `namespace_labels`: `Ok` or
/// the plugin's 403.
pub fn admit(
    namespace_labels: &BTreeMap<String, String>,
    name: &str,
    pod: &Value,
) -> Result<(), ApiError> {
    let Some((level, version)) = enforced(namespace_labels) else {
        return Ok(());
    };
    let found = violations(level, &pod["spec"]);
    if found.is_empty() {
        return Ok(());
    }
    let detail = found
        .iter()
        .map(|(reason, detail)| {
            if detail.is_empty() {
                reason.clone()
            } else {
                format!("{reason} ({detail})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::forbidden(
        "pods",
        name,
        format!(
            "violates PodSecurity \"{}:{version}\": {detail}",
            level_name(level)
        ),
    ))
}

/// Whether a pod update (no subresource) is evaluated at all: only when a container's image
/// changed or containers were added or removed (`isSignificantPodUpdate`).
pub fn significant_pod_update(new: &Value, old: &Value) -> bool {
    ["initContainers", "containers"].iter().any(|k| {
        let images = |p: &Value| -> Vec<Value> {
            p["spec"][*k]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["image"].clone())
                .collect()
        };
        images(new) != images(old)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(level: &str) -> BTreeMap<String, String> {
        [(ENFORCE_LABEL.to_string(), level.to_string())].into()
    }

    #[test]
    fn restricted_message_of_a_plain_pod() {
        let pod = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        let e = admit(&labels("restricted"), "bad", &pod).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"pods "bad" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        );
        assert!(admit(&labels("baseline"), "bad", &pod).is_ok());
        assert!(admit(&BTreeMap::new(), "bad", &pod).is_ok());
    }

    #[test]
    fn baseline_violations() {
        let pod = json!({"spec": {
            "hostPID": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "tmp", "emptyDir": {}}],
            "containers": [
                {"name": "a", "securityContext": {"privileged": true}},
                {"name": "b", "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN", "CHOWN"]}}}
            ]
        }});
        let e = admit(&labels("baseline"), "x", &pod).unwrap_err();
        assert_eq!(
            e.message,
            r#"pods "x" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "b" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add), host namespaces (hostPID=true), hostPath volumes (volume "root"), privileged (container "a" must not set securityContext.privileged=true)"#
        );
    }
}
