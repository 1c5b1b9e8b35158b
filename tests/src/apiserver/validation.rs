//! Pod validation as `pkg/apis/core/validation` does it for the cases kspy meets:
//! `ValidatePodCreate` (ephemeral containers forbidden on create) and
//! `ValidatePodEphemeralContainersUpdate` (existing ones immutable; names unique across
//! all container kinds; `targetContainerName` must name a container; no ports, resources,
//! probes, lifecycle, resizePolicy or restartPolicy; no subPath mounts).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};

use super::status::FieldError;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const EPHEMERAL_FORBIDDEN: &str = "cannot be set for an Ephemeral Container";

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// The fields common to all container kinds, borrowed from either type.
struct Common<'a> {
    name: &'a str,
    image: Option<&'a str>,
    image_pull_policy: Option<&'a str>,
    termination_message_policy: Option<&'a str>,
    volume_mounts: &'a [k8s_openapi::api::core::v1::VolumeMount],
    env: &'a [k8s_openapi::api::core::v1::EnvVar],
    security_context: Option<&'a k8s_openapi::api::core::v1::SecurityContext>,
}

impl<'a> From<&'a Container> for Common<'a> {
    fn from(c: &'a Container) -> Self {
        Self {
            name: &c.name,
            image: c.image.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            termination_message_policy: c.termination_message_policy.as_deref(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            env: c.env.as_deref().unwrap_or_default(),
            security_context: c.security_context.as_ref(),
        }
    }
}

impl<'a> From<&'a EphemeralContainer> for Common<'a> {
    fn from(c: &'a EphemeralContainer) -> Self {
        Self {
            name: &c.name,
            image: c.image.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            termination_message_policy: c.termination_message_policy.as_deref(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            env: c.env.as_deref().unwrap_or_default(),
            security_context: c.security_context.as_ref(),
        }
    }
}

fn validate_common(c: &Common<'_>, volumes: &BTreeSet<String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1123_label(c.name) {
        errs.push(FieldError::invalid(
            format!("{path}.name"),
            c.name,
            DNS1123_LABEL_MSG,
        ));
    }
    if c.image.is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    match c.termination_message_policy {
        None | Some("") => errs.push(FieldError::required(
            format!("{path}.terminationMessagePolicy"),
            "",
        )),
        Some("File" | "FallbackToLogsOnError") => {}
        Some(other) => errs.push(FieldError::not_supported(
            format!("{path}.terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    match c.image_pull_policy {
        None | Some("") => errs.push(FieldError::required(format!("{path}.imagePullPolicy"), "")),
        Some("Always" | "IfNotPresent" | "Never") => {}
        Some(other) => errs.push(FieldError::not_supported(
            format!("{path}.imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    for (i, e) in c.env.iter().enumerate() {
        if e.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(format!("{mp}.name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        }
        if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
    }
    if let Some(sc) = c.security_context
        && sc.privileged == Some(true)
        && sc.allow_privilege_escalation == Some(false)
    {
        errs.push(FieldError::invalid(
            format!("{path}.securityContext"),
            "",
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    errs
}

fn volume_names(pod: &Pod) -> BTreeSet<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| vs.iter().map(|v| v.name.clone()).collect())
        .unwrap_or_default()
}

/// Validation of metadata and spec (`validatePodMetadataAndSpec`), ephemeral containers included.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match pod.metadata.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(n) if !is_dns1123_subdomain(n) => errs.push(FieldError::invalid(
            "metadata.name",
            n,
            DNS1123_SUBDOMAIN_MSG,
        )),
        Some(_) => {}
    }
    let Some(spec) = pod.spec.as_ref() else {
        errs.push(FieldError::required("spec.containers", ""));
        return errs;
    };
    let volumes = volume_names(pod);
    let mut seen_vols = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if v.name.is_empty() {
            errs.push(FieldError::required(format!("spec.volumes[{i}].name"), ""));
        } else if !seen_vols.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(
                format!("spec.volumes[{i}].name"),
                &v.name,
            ));
        }
        if let Some(hp) = &v.host_path
            && hp.path.is_empty()
        {
            errs.push(FieldError::required(
                format!("spec.volumes[{i}].hostPath.path"),
                "",
            ));
        }
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required("spec.containers", ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        errs.extend(validate_common(&c.into(), &volumes, &path));
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &c.name));
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        errs.extend(validate_common(&c.into(), &volumes, &path));
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &c.name));
        }
    }
    let others = names.clone();
    for (i, ec) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        errs.extend(validate_common(&ec.into(), &volumes, &path));
        if names.contains(&ec.name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &ec.name));
        } else {
            names.insert(ec.name.clone());
        }
        if let Some(t) = ec.target_container_name.as_deref()
            && !t.is_empty()
            && !others.contains(t)
        {
            errs.push(FieldError::not_found(
                format!("{path}.targetContainerName"),
                t,
            ));
        }
        let forbidden = [
            ("ports", ec.ports.as_ref().is_some_and(|p| !p.is_empty())),
            (
                "resources",
                ec.resources.as_ref().is_some_and(|r| {
                    r.limits.as_ref().is_some_and(|l| !l.is_empty())
                        || r.requests.as_ref().is_some_and(|l| !l.is_empty())
                        || r.claims.as_ref().is_some_and(|l| !l.is_empty())
                }),
            ),
            (
                "resizePolicy",
                ec.resize_policy.as_ref().is_some_and(|p| !p.is_empty()),
            ),
            (
                "restartPolicy",
                ec.restart_policy.as_ref().is_some_and(|p| !p.is_empty()),
            ),
            ("livenessProbe", ec.liveness_probe.is_some()),
            ("readinessProbe", ec.readiness_probe.is_some()),
            ("startupProbe", ec.startup_probe.is_some()),
            ("lifecycle", ec.lifecycle.is_some()),
        ];
        for (field, set) in forbidden {
            if set {
                errs.push(FieldError::forbidden(
                    format!("{path}.{field}"),
                    EPHEMERAL_FORBIDDEN,
                ));
            }
        }
        for (j, m) in ec.volume_mounts.iter().flatten().enumerate() {
            if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.push(FieldError::forbidden(
                    format!("{path}.volumeMounts[{j}].subPath"),
                    EPHEMERAL_FORBIDDEN,
                ));
            }
            if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.push(FieldError::forbidden(
                    format!("{path}.volumeMounts[{j}].subPathExpr"),
                    EPHEMERAL_FORBIDDEN,
                ));
            }
        }
    }
    errs
}

/// `ValidatePodCreate`: the pod itself, and no ephemeral containers on create.
pub fn validate_create(pod: &Pod) -> Vec<FieldError> {
    let mut errs = validate_pod(pod);
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    errs
}

/// `ValidatePodEphemeralContainersUpdate`: the new pod, and existing ephemeral containers
/// neither removed nor changed.
pub fn validate_ephemeral_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mut errs = validate_pod(new);
    let new_ecs = new
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.clone())
        .unwrap_or_default();
    let old_ecs = old
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.clone())
        .unwrap_or_default();
    for o in &old_ecs {
        match new_ecs.iter().find(|n| n.name == o.name) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!(
                    "existing ephemeral containers {:?} may not be removed\n",
                    o.name
                ),
            )),
            Some(n) if n != o => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!(
                    "existing ephemeral containers {:?} may not be changed\n{}",
                    o.name,
                    diff_fields(o, n)
                ),
            )),
            Some(_) => {}
        }
    }
    errs
}

/// `ValidatePodUpdate`, reduced to its central rule: the spec is immutable but for
/// container images, `activeDeadlineSeconds` and tolerations.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mut errs = validate_pod(new);
    let strip = |p: &Pod| -> serde_json::Value {
        let mut v = serde_json::to_value(&p.spec).unwrap_or_default();
        for list in ["containers", "initContainers"] {
            if let Some(cs) = v.get_mut(list).and_then(serde_json::Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
        }
        v
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    errs
}

/// Which top-level fields of an ephemeral container differ (a terse stand-in for `cmp.Diff`).
fn diff_fields(old: &EphemeralContainer, new: &EphemeralContainer) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return String::new();
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let changed: Vec<&str> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| k.as_str())
        .collect();
    format!("changed fields: {}", changed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ecs: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{"name": "app", "image": "nginx", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}],
                "ephemeralContainers": ecs
            }
        }))
        .unwrap()
    }

    fn ec(name: &str) -> serde_json::Value {
        json!({"name": name, "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"})
    }

    #[test]
    fn duplicate_names_across_kinds() {
        let errs = validate_pod(&pod(json!([ec("app")])));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            r#"spec.ephemeralContainers[0].name: Duplicate value: "app""#
        );
        let errs = validate_pod(&pod(json!([ec("dbg"), ec("dbg")])));
        assert_eq!(
            errs[0].to_string(),
            r#"spec.ephemeralContainers[1].name: Duplicate value: "dbg""#
        );
    }

    #[test]
    fn forbidden_fields_and_target() {
        let mut bad = ec("dbg");
        bad["ports"] = json!([{"containerPort": 80}]);
        bad["readinessProbe"] = json!({"exec": {"command": ["true"]}});
        bad["targetContainerName"] = json!("nope");
        bad["volumeMounts"] = json!([{"name": "data", "mountPath": "/d", "subPath": "x"}, {"name": "ghost", "mountPath": "/g"}]);
        let got: Vec<String> = validate_pod(&pod(json!([bad])))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            vec![
                r#"spec.ephemeralContainers[0].volumeMounts[1].name: Not found: "ghost""#,
                r#"spec.ephemeralContainers[0].targetContainerName: Not found: "nope""#,
                "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[0].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container",
            ]
        );
    }

    #[test]
    fn immutability_and_create() {
        let old = pod(json!([ec("dbg")]));
        let mut changed = ec("dbg");
        changed["image"] = json!("alpine");
        let errs = validate_ephemeral_update(&pod(json!([changed])), &old);
        assert!(errs[0].to_string().starts_with(
            r#"spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be changed"#
        ));
        let errs = validate_ephemeral_update(&pod(json!([])), &old);
        assert!(errs[0].to_string().contains("may not be removed"));
        assert!(validate_ephemeral_update(&pod(json!([ec("dbg"), ec("dbg2")])), &old).is_empty());
        let errs = validate_create(&old);
        assert_eq!(
            errs[0].to_string(),
            "spec.ephemeralContainers: Forbidden: cannot be set on create"
        );
    }
}
