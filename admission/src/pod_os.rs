//! The operating system a pod declares (`spec.os.name`), and what a Windows pod cannot carry.
//!
//! The API server refuses a pod with `spec.os.name: windows` whose containers set any Linux-only
//! securityContext field ("cannot be set for a windows pod"), ephemeral containers included, and
//! Pod Security's `restricted` level stops asking a Windows pod for the three of them it cannot
//! set (since 1.25). kspy's defaults and its Pod Security warnings follow both, so a debug
//! request to a Windows pod is not broken by a field kspy added.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// The container securityContext fields the API server refuses in a Windows pod, in the order
/// its validation names them.
pub const LINUX_ONLY_CONTAINER_FIELDS: [&str; 10] = [
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "capabilities",
    "readOnlyRootFilesystem",
    "privileged",
    "allowPrivilegeEscalation",
    "procMount",
    "runAsUser",
    "runAsGroup",
];

/// The Windows account a container runs as with Administrator rights in the container: what
/// `runAsNonRoot` keeps a Windows container from running as.
pub const WINDOWS_ADMINISTRATOR: &str = "ContainerAdministrator";

/// The unprivileged account Windows base images ship: what a conforming default runs a Windows
/// debug container as when nothing names a user, as `65534` is on Linux.
pub const WINDOWS_UNPRIVILEGED_USER: &str = "ContainerUser";

/// Whether the pod `object` (as JSON) declares `spec.os.name: windows`.
pub fn is_windows(object: &Value) -> bool {
    object["spec"]["os"]["name"] == "windows"
}

/// Whether the typed `pod` declares `spec.os.name: windows`.
pub fn is_windows_pod(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.os.as_ref())
        .is_some_and(|os| os.name == "windows")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_declared_windows_pod_is_windows() {
        let pod = |mut spec: Value| {
            spec["containers"] = json!([]);
            json!({"spec": spec})
        };
        assert!(is_windows(&pod(json!({"os": {"name": "windows"}}))));
        for spec in [
            json!({}),
            json!({"os": {"name": "linux"}}),
            json!({"os": null}),
            // The API server accepts only the two lower-case names; anything else is not a
            // Windows pod it would hold to Windows rules.
            json!({"os": {"name": "Windows"}}),
            json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
        ] {
            assert!(!is_windows(&pod(spec.clone())), "{spec}");
            let typed: Pod = serde_json::from_value(pod(spec.clone())).expect("a pod");
            assert!(!is_windows_pod(&typed), "{spec}");
        }
        let typed: Pod =
            serde_json::from_value(pod(json!({"os": {"name": "windows"}}))).expect("a pod");
        assert!(is_windows_pod(&typed));
    }
}
