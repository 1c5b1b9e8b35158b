//! Debug profiles, with the same effect as `kubectl debug --profile` (kubectl 1.36, where
//! `general` is the default).
//!
//! | profile | ephemeral container (attach) | pod copy (copy) | node pod (node) |
//! | --- | --- | --- | --- |
//! | legacy | nothing | labels removed | host namespaces, `/` at `/host` |
//! | general | add SYS_PTRACE | add SYS_PTRACE, strip†, share processes | host namespaces, `/` at `/host`, empty securityContext |
//! | baseline | empty securityContext | empty securityContext, strip†, share processes | empty securityContext |
//! | restricted | non-root, drop ALL, no privilege escalation, seccomp RuntimeDefault | the same, strip†, share processes | the same |
//! | netadmin | add NET_ADMIN, NET_RAW | the same, strip†, share processes | the same, host namespaces |
//! | sysadmin | privileged | privileged, strip†, share processes | privileged, host namespaces, `/` at `/host` |
//!
//! † labels, annotations, probes and init containers removed unless the matching `--keep-*`
//! flag is given. "share processes" only sets `shareProcessNamespace` when it is unset, and
//! not for a `hostPID` pod (the API server refuses the two together) nor a Windows pod (where
//! it refuses the field).

use k8s_openapi::api::core::v1::{
    Capabilities, Container, HostPathVolumeSource, Pod, PodSpec, SeccompProfile, SecurityContext,
    Volume, VolumeMount,
};

/// A debug profile, as `kubectl debug --profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// Compatible with kubectl 1.23: nothing added to debug containers.
    Legacy,
    /// SYS_PTRACE for process tracing; host namespaces and `/` at `/host` for nodes.
    #[default]
    General,
    /// Passes the Pod Security "baseline" level: empty securityContext, no host access.
    Baseline,
    /// Passes the Pod Security "restricted" level: non-root, all capabilities dropped.
    Restricted,
    /// NET_ADMIN and NET_RAW for network debugging.
    Netadmin,
    /// Privileged mode.
    Sysadmin,
}

impl Profile {
    /// The profile's name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Legacy => "legacy",
            Profile::General => "general",
            Profile::Baseline => "baseline",
            Profile::Restricted => "restricted",
            Profile::Netadmin => "netadmin",
            Profile::Sysadmin => "sysadmin",
        }
    }
}

/// Which of the original fields a pod copy keeps (`--keep-*`, as kubectl 1.31+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepFlags {
    /// Keep the pod's labels.
    pub labels: bool,
    /// Keep the pod's annotations.
    pub annotations: bool,
    /// Keep liveness probes.
    pub liveness: bool,
    /// Keep readiness probes.
    pub readiness: bool,
    /// Keep startup probes.
    pub startup: bool,
    /// Keep init containers.
    pub init_containers: bool,
}

/// How the debugging happens, which decides what a profile does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// An ephemeral container added to a running pod.
    Ephemeral,
    /// A copy of a pod with a debug container.
    Copy(KeepFlags),
    /// A pod on a node.
    Node,
}

impl Profile {
    /// The capabilities the profile adds to the debug container by itself, without `--cap`:
    /// for a node pod's container (`node`) or for the others.
    pub fn added_capabilities(self, node: bool) -> &'static [&'static str] {
        match self {
            Profile::General if !node => &["SYS_PTRACE"],
            Profile::Netadmin => &["NET_ADMIN", "NET_RAW"],
            _ => &[],
        }
    }

    /// Applies the profile's effect on the debug container itself.
    pub fn apply_container(self, style: Style, c: &mut Container) {
        match self {
            Profile::Legacy => {}
            Profile::General => match style {
                Style::Ephemeral | Style::Copy(_) => add_capability(c, "SYS_PTRACE"),
                Style::Node => c.security_context = None,
            },
            Profile::Baseline => c.security_context = None,
            Profile::Restricted => {
                c.security_context = Some(SecurityContext {
                    run_as_non_root: Some(true),
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        add: None,
                        drop: Some(vec!["ALL".to_string()]),
                    }),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".to_string(),
                        localhost_profile: None,
                    }),
                    ..SecurityContext::default()
                });
            }
            Profile::Netadmin => {
                add_capability(c, "NET_ADMIN");
                add_capability(c, "NET_RAW");
            }
            Profile::Sysadmin => {
                c.security_context
                    .get_or_insert_with(SecurityContext::default)
                    .privileged = Some(true);
            }
        }
    }

    /// Applies the profile's effect on the pod around the debug container `container`
    /// (pod copies and node pods; nothing for ephemeral containers).
    pub fn apply_pod(self, style: Style, pod: &mut Pod, container: &str) {
        match style {
            Style::Ephemeral => {}
            Style::Node => {
                let (host_namespaces, mount_root) = match self {
                    Profile::Legacy | Profile::General | Profile::Sysadmin => (true, true),
                    Profile::Netadmin => (true, false),
                    Profile::Baseline | Profile::Restricted => (false, false),
                };
                if host_namespaces {
                    use_host_namespaces(pod);
                }
                if mount_root {
                    mount_root_partition(pod, container);
                }
            }
            Style::Copy(keep) => {
                if self == Profile::Legacy {
                    // kubectl's legacy profile removes the labels of a copy and nothing else;
                    // --keep-init-containers=false still drops the init containers, as it
                    // does with every profile.
                    pod.metadata.labels = None;
                    if !keep.init_containers
                        && let Some(spec) = pod.spec.as_mut()
                    {
                        spec.init_containers = None;
                    }
                    return;
                }
                strip_copy(pod, keep);
                // The API server refuses shareProcessNamespace together with hostPID, and in a
                // Windows pod altogether.
                if let Some(spec) = pod.spec.as_mut()
                    && spec.host_pid != Some(true)
                    && !runs_windows(spec)
                {
                    spec.share_process_namespace.get_or_insert(true);
                }
            }
        }
    }
}

/// Whether the pod runs Windows (`spec.os.name: windows`), where the API server refuses the
/// Linux-only fields ("cannot be set for a windows pod"), `shareProcessNamespace` among them.
pub fn runs_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

/// Removes labels, annotations, probes and init containers from a pod copy, except those `keep` names.
pub fn strip_copy(pod: &mut Pod, keep: KeepFlags) {
    if !keep.labels {
        pod.metadata.labels = None;
    }
    if !keep.annotations {
        pod.metadata.annotations = None;
    }
    if let Some(spec) = pod.spec.as_mut() {
        for c in &mut spec.containers {
            if !keep.liveness {
                c.liveness_probe = None;
            }
            if !keep.readiness {
                c.readiness_probe = None;
            }
            if !keep.startup {
                c.startup_probe = None;
            }
        }
        if !keep.init_containers {
            spec.init_containers = None;
        }
    }
}

/// Adds a capability to the container's `securityContext.capabilities.add`, once.
pub fn add_capability(c: &mut Container, cap: &str) {
    let add = c
        .security_context
        .get_or_insert_with(SecurityContext::default)
        .capabilities
        .get_or_insert_with(Capabilities::default)
        .add
        .get_or_insert_with(Vec::new);
    if !add.iter().any(|a| a == cap) {
        add.push(cap.to_string());
    }
}

fn use_host_namespaces(pod: &mut Pod) {
    if let Some(spec) = pod.spec.as_mut() {
        spec.host_network = Some(true);
        spec.host_pid = Some(true);
        spec.host_ipc = Some(true);
    }
}

/// The volume holding the node's `/` in node-debugging pods.
pub const HOST_ROOT_VOLUME: &str = "host-root";

/// The node's `/` as volume `host-root`, mounted at `/host` in the debug container.
fn mount_root_partition(pod: &mut Pod, container: &str) {
    const VOLUME: &str = HOST_ROOT_VOLUME;
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: "/".to_string(),
            type_: None,
        }),
        ..Volume::default()
    });
    if let Some(c) = spec.containers.iter_mut().find(|c| c.name == container) {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: VOLUME.to_string(),
                mount_path: "/host".to_string(),
                ..VolumeMount::default()
            });
    }
}

/// Every profile, in the order of `--help`.
pub const ALL: [Profile; 6] = [
    Profile::Legacy,
    Profile::General,
    Profile::Baseline,
    Profile::Restricted,
    Profile::Netadmin,
    Profile::Sysadmin,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        Container {
            name: "dbg".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }
    }

    fn caps(c: &Container) -> Vec<String> {
        c.security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.clone())
            .unwrap_or_default()
    }

    #[test]
    fn ephemeral_effects_match_kubectl() {
        let mut c = container();
        Profile::Legacy.apply_container(Style::Ephemeral, &mut c);
        assert_eq!(c, container());

        let mut c = container();
        Profile::General.apply_container(Style::Ephemeral, &mut c);
        assert_eq!(caps(&c), vec!["SYS_PTRACE"]);
        assert_eq!(
            c.security_context.as_ref().and_then(|s| s.run_as_user),
            Some(1000),
            "kept"
        );

        let mut c = container();
        Profile::Baseline.apply_container(Style::Ephemeral, &mut c);
        assert_eq!(c.security_context, None);

        let mut c = container();
        add_capability(&mut c, "SYS_ADMIN");
        Profile::Restricted.apply_container(Style::Ephemeral, &mut c);
        let sc = c.security_context.expect("set");
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.run_as_user, None,
            "restricted starts from an empty securityContext"
        );
        let cap = sc.capabilities.expect("caps");
        assert_eq!(cap.drop, Some(vec!["ALL".to_string()]));
        assert_eq!(cap.add, None);
        assert_eq!(
            sc.seccomp_profile.map(|p| p.type_),
            Some("RuntimeDefault".to_string())
        );

        let mut c = container();
        Profile::Netadmin.apply_container(Style::Ephemeral, &mut c);
        assert_eq!(caps(&c), vec!["NET_ADMIN", "NET_RAW"]);

        let mut c = container();
        Profile::Sysadmin.apply_container(Style::Ephemeral, &mut c);
        assert_eq!(c.security_context.and_then(|s| s.privileged), Some(true));
    }

    #[test]
    fn add_capability_is_idempotent() {
        let mut c = container();
        add_capability(&mut c, "SYS_PTRACE");
        add_capability(&mut c, "SYS_PTRACE");
        assert_eq!(caps(&c), vec!["SYS_PTRACE"]);
    }

    fn node_pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "spec": {"containers": [{"name": "debugger", "image": "busybox"}]}
        }))
        .expect("pod")
    }

    #[test]
    fn node_host_access_by_profile() {
        for (profile, host, root) in [
            (Profile::Legacy, true, true),
            (Profile::General, true, true),
            (Profile::Baseline, false, false),
            (Profile::Restricted, false, false),
            (Profile::Netadmin, true, false),
            (Profile::Sysadmin, true, true),
        ] {
            let mut pod = node_pod();
            profile.apply_pod(Style::Node, &mut pod, "debugger");
            let spec = pod.spec.expect("spec");
            assert_eq!(spec.host_pid.unwrap_or(false), host, "{profile:?} hostPID");
            assert_eq!(
                spec.host_network.unwrap_or(false),
                host,
                "{profile:?} hostNetwork"
            );
            let has_root = spec
                .volumes
                .unwrap_or_default()
                .iter()
                .any(|v| v.name == "host-root");
            assert_eq!(has_root, root, "{profile:?} host-root");
            let mounts = spec.containers[0].volume_mounts.clone().unwrap_or_default();
            assert_eq!(
                mounts.iter().any(|m| m.mount_path == "/host"),
                root,
                "{profile:?} /host"
            );
        }
    }

    #[test]
    fn copy_strip_respects_keep_flags() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "app", "livenessProbe": {"exec": {"command": ["true"]}},
                    "readinessProbe": {"exec": {"command": ["true"]}},
                    "startupProbe": {"exec": {"command": ["true"]}}}]
            }
        }))
        .expect("pod");
        let keep = KeepFlags {
            labels: true,
            readiness: true,
            init_containers: true,
            ..KeepFlags::default()
        };
        Profile::General.apply_pod(Style::Copy(keep), &mut pod, "app");
        assert!(pod.metadata.labels.is_some());
        assert!(pod.metadata.annotations.is_none());
        let spec = pod.spec.expect("spec");
        assert!(spec.containers[0].liveness_probe.is_none());
        assert!(spec.containers[0].readiness_probe.is_some());
        assert!(spec.containers[0].startup_probe.is_none());
        assert!(spec.init_containers.is_some());
        assert_eq!(spec.share_process_namespace, Some(true));
    }

    #[test]
    fn copy_share_processes_is_not_overridden() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "labels": {"app": "web"}},
            "spec": {"shareProcessNamespace": false, "containers": [{"name": "app"}]}
        }))
        .expect("pod");
        Profile::Baseline.apply_pod(Style::Copy(KeepFlags::default()), &mut pod, "app");
        assert_eq!(
            pod.spec.and_then(|s| s.share_process_namespace),
            Some(false)
        );
        let mut legacy: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "app"}]}
        }))
        .expect("pod");
        // Not for a hostPID pod: the API server refuses shareProcessNamespace with hostPID.
        let mut host_pid: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c"},
            "spec": {"hostPID": true, "containers": [{"name": "app"}]}
        }))
        .expect("pod");
        Profile::General.apply_pod(Style::Copy(KeepFlags::default()), &mut host_pid, "app");
        assert_eq!(host_pid.spec.and_then(|s| s.share_process_namespace), None);
        Profile::Legacy.apply_pod(Style::Copy(KeepFlags::default()), &mut legacy, "app");
        assert!(legacy.metadata.labels.is_none());
        assert!(
            legacy.metadata.annotations.is_some(),
            "legacy keeps annotations"
        );
    }
}
