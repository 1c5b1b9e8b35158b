//! Pod Security Standards, as the namespace's `pod-security.kubernetes.io/enforce` label sets
//! them: what a debug container must carry to be admitted, and what a debug request asks that
//! the level forbids (reported as warnings before the API server's own rejection).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Namespace, Pod, Volume};
use serde_json::{Value, json};

use crate::asks::{Asks, ContainerParts, PodAsks, PodVolumes, VolumeKind};
use crate::capability::Capability;
use crate::classify::Action;

/// The namespace label that sets the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// Capabilities the baseline level allows a container to add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
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
    /// Unrestricted.
    Privileged,
    /// Known privilege escalations forbidden.
    Baseline,
    /// Hardened.
    Restricted,
}

impl Level {
    /// The label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The level a namespace enforces, when it is known and labelled. A label value Pod Security
/// admission cannot parse (`Restricted`, `latest`) makes it enforce `restricted`, so it is
/// `restricted` here too: taken for no level, it turned `podSecurity: conform` and the warnings
/// off where the API server then refused the container.
pub fn enforced_level(namespace: Option<&Namespace>) -> Option<Level> {
    let value = namespace?.metadata.labels.as_ref()?.get(ENFORCE_LABEL)?;
    Some(match value.as_str() {
        "privileged" => Level::Privileged,
        "baseline" => Level::Baseline,
        _ => Level::Restricted,
    })
}

/// The namespace label that pins the version of the enforced level's checks.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// The version of the Pod Security checks a namespace enforces: `latest`, or pinned to a
/// Kubernetes minor version, whose checks differ where kspy's warnings follow them:
/// `allowPrivilegeEscalation` (1.8+), the seccomp checks (before 1.19 the annotations, and
/// `restricted` asks for no profile), `capabilities_restricted` (1.22+: before it,
/// `restricted` asks for no dropped capabilities and allows the baseline ones),
/// `runAsUser: 0` (1.23+), the Windows relaxation of `restricted` (1.25+), the safe sysctls
/// (1.27, 1.29 and 1.32 added some), `container_engine_t` (1.31+) and the probe and lifecycle
/// hosts (1.34+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The API server's own version (the default).
    Latest,
    /// `v1.N`.
    Minor(u32),
}

impl Version {
    /// Parses the label value as Pod Security does: `latest` or `v1.N` (`N` ASCII digits
    /// without a sign or a leading zero, as `api.ParseVersion`'s `^v1\.([0-9]|[1-9][0-9]*)$`);
    /// anything else (`v1.+5`, `v1.05`, `1.26`) is `latest`, which the plugin evaluates for a
    /// version it cannot parse (the error goes to the audit annotations only).
    pub fn parse(value: &str) -> Version {
        value
            .strip_prefix("v1.")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| *n == "0" || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .map_or(Version::Latest, Version::Minor)
    }

    /// Whether the checks of this version include those of `1.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        match self {
            Version::Latest => true,
            Version::Minor(m) => m >= minor,
        }
    }
}

/// A level with the version of its checks, as a namespace enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforced {
    /// The `enforce` label's level.
    pub level: Level,
    /// The `enforce-version` label's version.
    pub version: Version,
}

/// The version a namespace's `enforce-version` label pins, `latest` when unset.
pub fn enforced_version(namespace: Option<&Namespace>) -> Version {
    namespace
        .and_then(|ns| ns.metadata.labels.as_ref())
        .and_then(|labels| labels.get(ENFORCE_VERSION_LABEL))
        .map_or(Version::Latest, |v| Version::parse(v))
}

/// Whether `name` is a sysctl `baseline` allows at `version`.
fn safe_sysctl(name: &str, version: Version) -> bool {
    let since = match name {
        "net.ipv4.ip_local_reserved_ports" => 27,
        "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_fin_timeout"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => 29,
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => 32,
        _ => 0,
    };
    crate::asks::SAFE_SYSCTLS.contains(&name) && version.at_least(since)
}

/// The user a conforming container runs as when neither it nor its Pod names one: `nobody`.
pub const NON_ROOT_USER: i64 = 65534;

/// What [`conforming_security_context`] reads of a container beside its asks.
#[derive(Debug, Clone, Copy)]
pub struct Conforming<'a> {
    /// The container's own securityContext as sent.
    pub container_sc: &'a Value,
    /// The pod-level securityContext (a seccomp profile or user set there already counts).
    pub pod_sc: &'a Value,
    /// The `runAsUser`s the pod's containers name ([`container_users`]).
    pub pod_users: &'a BTreeSet<i64>,
    /// The pod declares `spec.os.name: windows`.
    pub windows: bool,
    /// The container is one the debug request brings (an ephemeral container, a node pod's,
    /// a copy's debugger), not one of the source pod's that a copy repeats.
    pub debug_container: bool,
}

/// The securityContext fields a container needs to meet `level`, as a partial securityContext
/// to fill into what the user left unset.
///
/// With `runAsNonRoot` it also sets `runAsUser` when nothing names a user: the kubelet refuses
/// to start a non-root container whose image runs as root or as a user name (most debug
/// images), and an ephemeral container that never starts cannot be removed. The user is
/// [`NON_ROOT_USER`], or the highest below it that no container of the pod names
/// (`pod_users`, their `runAsUser`s): a debug container running as the same user as a
/// container in its process namespace reads that container's files, its Secret mounts
/// included, and `/validate` judges it so ([`crate::user_reach`]). A copy's own containers,
/// already `runAsNonRoot` (as a pod in a `restricted` namespace is), get no user: their images
/// ran as the users they pick, and another would break the very thing being debugged.
///
/// In a Windows pod the level asks only for `runAsNonRoot` (the other fields are Linux-only,
/// and the API server refuses them there), and the user named when nothing names one is
/// [`WINDOWS_UNPRIVILEGED_USER`](crate::pod_os::WINDOWS_UNPRIVILEGED_USER).
pub fn conforming_security_context(level: Level, asks: &Asks, c: &Conforming<'_>) -> Option<Value> {
    if level != Level::Restricted {
        return None;
    }
    let non_root_already = c.container_sc["runAsNonRoot"] == json!(true)
        || (c.container_sc["runAsNonRoot"].is_null() && c.pod_sc["runAsNonRoot"] == json!(true));
    let image_user_stays = non_root_already && !c.debug_container;
    if c.windows {
        let user_name = |sc: &Value| sc["windowsOptions"]["runAsUserName"].as_str().is_some();
        let user_named = user_name(c.container_sc) || user_name(c.pod_sc);
        let mut sc = json!({"runAsNonRoot": true});
        if !user_named && !image_user_stays {
            sc["windowsOptions"] =
                json!({"runAsUserName": crate::pod_os::WINDOWS_UNPRIVILEGED_USER});
        }
        return Some(sc);
    }
    let mut sc = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
    });
    let user_named = !c.container_sc["runAsUser"].is_null() || !c.pod_sc["runAsUser"].is_null();
    // An explicit runAsUser 0 cannot be made non-root by a default; the warning says so.
    if !asks.runs_as_root || !user_named {
        sc["runAsNonRoot"] = json!(true);
        if !user_named
            && !image_user_stays
            && let Some(uid) = (1..=NON_ROOT_USER).rev().find(|u| !c.pod_users.contains(u))
        {
            sc["runAsUser"] = json!(uid);
        }
    }
    if c.pod_sc.get("seccompProfile").is_none() {
        sc["seccompProfile"] = json!({"type": "RuntimeDefault"});
    }
    Some(sc)
}

/// What [`violations`] reads of the pod around a container.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    /// The pod's securityContext as JSON (`Null` when unset).
    pub sc: &'a Value,
    /// The pod's annotations, for the container's (deprecated) AppArmor annotation.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The pod declares `spec.os.name: windows`.
    pub windows: bool,
}

/// What in one container the namespace's level forbids, one phrase each. `host_namespaces`
/// are the pod's (`pid`, `network`, `ipc`), named with the container they reach. In a Windows
/// pod (`windows`) `restricted` does not ask for `allowPrivilegeEscalation: false`, dropped
/// capabilities or a seccomp profile, which it cannot set.
///
/// A seccomp or AppArmor profile, SELinux options or `hostProcess` the container takes from
/// the pod's securityContext are not named here: Pod Security refuses them as the pod's
/// setting, whatever the containers set ([`pod_spec_violations`]), and no setting of the
/// container's own makes the pod admitted.
pub fn violations(
    level: Level,
    version: Version,
    asks: &Asks,
    container: &Value,
    pod: &PodView<'_>,
    host_namespaces: &[&str],
) -> Vec<String> {
    let (pod_sc, annotations, windows) = (pod.sc, pod.annotations, pod.windows);
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    if asks.privileged {
        out.push("privileged: true".to_owned());
    }
    for ns in host_namespaces {
        out.push(format!("the host {ns} namespace"));
    }
    for v in &asks.volumes {
        if v.kind == VolumeKind::HostPath {
            out.push(format!("hostPath volume {:?}", v.name));
        }
    }
    // The 1.25 restricted checks pass over what a Windows pod cannot set; the older ones do not.
    let windows_relaxed = windows && version.at_least(25);
    // Before 1.22 restricted has no capabilities check of its own: baseline's stands.
    let restricted_caps = level == Level::Restricted && version.at_least(22);
    let allowed_caps: &[&str] = if restricted_caps {
        &["NET_BIND_SERVICE"]
    } else {
        BASELINE_CAPABILITIES
    };
    // As written: Pod Security compares the strings, so `CAP_CHOWN` or `chown`, the same
    // capability to the runtime, is not one the level allows. A Windows pod can add none (the
    // API server refuses the field there), and `restricted` skips the check for it.
    let mut added: Vec<&str> = container["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    added.sort_unstable();
    added.dedup();
    for cap in added {
        if allowed_caps.contains(&cap) || (windows_relaxed && restricted_caps) {
            continue;
        }
        match Capability::normalize(cap) {
            Ok(normal) if allowed_caps.contains(&normal.as_str()) => out.push(format!(
                "capability {cap} (Pod Security compares the name as written: write {normal})"
            )),
            _ => out.push(format!("capability {cap}")),
        }
    }
    if asks.proc_mount_unmasked {
        out.push("procMount: Unmasked".to_owned());
    }
    let own = &container["securityContext"];
    // The seccompProfile fields since 1.19; before, the annotations, which are the pod's
    // (`pod_spec_violations`).
    if own["seccompProfile"]["type"] == "Unconfined" && version.at_least(19) {
        out.push("seccomp Unconfined".to_owned());
    }
    // The container's field and its (deprecated) annotation, each checked as Pod Security
    // checks them (the API server requires the two to agree when both are set).
    let annotation = container["name"]
        .as_str()
        .and_then(|name| annotations?.get(&format!("{APPARMOR_ANNOTATION_PREFIX}{name}")));
    let field_unconfined = own["appArmorProfile"]["type"]
        .as_str()
        .is_some_and(|t| !matches!(t, "RuntimeDefault" | "Localhost"));
    if field_unconfined || annotation.is_some_and(|v| !apparmor_annotation_allowed(v)) {
        out.push("AppArmor Unconfined".to_owned());
    }
    if selinux_forbidden(&own["seLinuxOptions"], version) {
        out.push("seLinuxOptions beyond the container types".to_owned());
    }
    if own["windowsOptions"]["hostProcess"] == json!(true) {
        out.push("windowsOptions.hostProcess: true".to_owned());
    }
    // Since policy version 1.34: the kubelet calls a probe's or hook's host from the node's
    // network, its loopback services and the cloud's metadata endpoint included.
    let probe_checked = version.at_least(34);
    let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
        .iter()
        .map(|p| &container[*p])
        .chain(
            ["postStart", "preStop"]
                .iter()
                .map(|h| &container["lifecycle"][*h]),
        );
    let mut hosts: Vec<&str> = handlers
        .flat_map(|h| [&h["httpGet"]["host"], &h["tcpSocket"]["host"]])
        .filter_map(Value::as_str)
        .filter(|h| probe_checked && !h.is_empty())
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    out.extend(
        hosts
            .into_iter()
            .map(|h| format!("probe or lifecycle host {h:?} (leave host unset: the pod's IP)")),
    );
    if level == Level::Restricted {
        let sc = &container["securityContext"];
        // The field came with 1.8, and so did the check.
        if sc["allowPrivilegeEscalation"] != json!(false) && !windows_relaxed && version.at_least(8)
        {
            out.push("allowPrivilegeEscalation not set to false".to_owned());
        }
        let non_root = sc["runAsNonRoot"] == json!(true)
            || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == json!(true));
        // Pod Security reads runAsNonRoot alone (check_runAsNonRoot.go): a runAsUserName
        // beside it is the kubelet's business, which refuses to start ContainerAdministrator
        // under runAsNonRoot, not the API server's, so it is no reason for this warning.
        if !non_root && windows {
            // runAsNonRoot keeps a Windows container from running as ContainerAdministrator;
            // `runAsUser` (the Linux remedy) the API server refuses in a Windows pod.
            out.push(format!(
                "running as an administrator (runAsNonRoot must be true, and \
                 windowsOptions.runAsUserName {} or unset)",
                crate::pod_os::WINDOWS_UNPRIVILEGED_USER
            ));
        } else if !non_root {
            out.push("running as root (runAsNonRoot must be true)".to_owned());
        }
        // Refused as written, even beside runAsNonRoot (with which the kubelet would not start
        // it anyway); the pod-level field is the pod's (see `pod_spec_violations`).
        if sc["runAsUser"] == json!(0) && version.at_least(23) {
            out.push("runAsUser: 0".to_owned());
        }
        // Exactly "ALL": Pod Security compares the string as written, so a container dropping
        // "all" is refused by the API server, and warning nothing about it misled.
        let drops_all = sc["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
        if !drops_all && !windows_relaxed && restricted_caps {
            out.push("capabilities not dropping ALL".to_owned());
        }
        let seccomp = sc["seccompProfile"]["type"]
            .as_str()
            .or_else(|| pod_sc["seccompProfile"]["type"].as_str());
        // Before 1.19 restricted asks for no profile (baseline's annotation check stands).
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost"))
            && !windows_relaxed
            && version.at_least(19)
        {
            out.push("no seccompProfile RuntimeDefault or Localhost".to_owned());
        }
    }
    out
}

/// The prefix of the (deprecated) per-container AppArmor annotation.
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Whether Pod Security allows an AppArmor annotation's value: empty, `runtime/default` or
/// `localhost/…` (`unconfined`, and any other value, it refuses).
fn apparmor_annotation_allowed(value: &str) -> bool {
    value.is_empty() || value == "runtime/default" || value.starts_with("localhost/")
}

/// The seccomp annotation of the pod, which the checks of versions before 1.19 read.
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// The prefix of the per-container seccomp annotation, read before 1.19.
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Whether the seccomp checks before 1.19 allow an annotation's value.
fn seccomp_annotation_allowed(value: &str) -> bool {
    matches!(value, "runtime/default" | "docker/default") || value.starts_with("localhost/")
}

/// Whether `options` (a securityContext's `seLinuxOptions`) holds what `baseline` forbids: a
/// type outside the container types (`container_t` and the like), a user or a role.
fn selinux_forbidden(options: &Value, version: Version) -> bool {
    let set = |field: &str| options[field].as_str().is_some_and(|v| !v.is_empty());
    let allowed = |t: &str| {
        crate::asks::BASELINE_SELINUX_TYPES.contains(&t)
            && (t != "container_engine_t" || version.at_least(31))
    };
    let odd_type = options["type"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && !allowed(t));
    odd_type || set("user") || set("role")
}

/// The users the containers of the pod `object` (regular, init and ephemeral) set as their
/// `runAsUser`, for [`conforming_security_context`] to name another.
pub fn container_users(object: &Value) -> BTreeSet<i64> {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| object["spec"][*list].as_array())
        .flatten()
        .filter_map(|c| c["securityContext"]["runAsUser"].as_i64())
        .collect()
}

/// The volume types `restricted` allows (besides none at all). `image` (an OCI image mounted
/// read-only) since Kubernetes 1.33, whose Pod Security added it to the check of every policy
/// version rather than to a new one.
const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// What `level` forbids in a pod beyond what its containers ask for themselves, one phrase
/// each: host ports, sysctls outside the safe set, what the pod's securityContext sets that
/// the level forbids even where every container overrides it (a seccomp profile other than
/// RuntimeDefault or Localhost, AppArmor Unconfined, SELinux options beyond the container
/// types, `hostProcess`; under `restricted` `runAsNonRoot: false` and `runAsUser: 0`: Pod
/// Security names the pod as their setter), hostPath volumes that no container in
/// `mounted_host_paths` mounts (Pod Security refuses the volume, mounted or not; a mounted
/// one is named with its container), and under `restricted` volumes of types it does not
/// allow. Pod Security also reads every AppArmor annotation, the ones naming no container of
/// the pod (`containers`, its containers' names) included, and before 1.19 the seccomp
/// annotations of the pod and of its containers.
/// `pod_sc` is the pod's securityContext as JSON, as [`warnings`] has it already.
fn pod_spec_violations(
    level: Level,
    version: Version,
    pod: &Pod,
    pod_sc: &Value,
    mounted_host_paths: &BTreeSet<String>,
    containers: &BTreeSet<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    // The pod's own host ports, which an attach's asks (`PodAsks::inherited`) leave out.
    let asks = PodAsks::extract(pod);
    out.extend(asks.host_ports.iter().map(|p| format!("hostPort {p}")));
    let mut sysctls: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.sysctls.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| !safe_sysctl(name, version))
        .collect();
    sysctls.sort_unstable();
    sysctls.dedup();
    out.extend(sysctls.iter().map(|s| format!("sysctl {s}")));
    if let Some(t) = pod_sc["seccompProfile"]["type"].as_str()
        && !matches!(t, "RuntimeDefault" | "Localhost")
        && version.at_least(19)
    {
        out.push(format!("seccompProfile {t} in the pod's securityContext"));
    }
    let annotations = pod.metadata.annotations.as_ref();
    if !version.at_least(19) {
        let container_keys = containers
            .iter()
            .map(|name| format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{name}"));
        for key in std::iter::once(SECCOMP_POD_ANNOTATION.to_owned()).chain(container_keys) {
            if let Some(value) = annotations.and_then(|a| a.get(&key))
                && !seccomp_annotation_allowed(value)
            {
                out.push(format!("seccomp annotation {key}={value:?}"));
            }
        }
    }
    for (key, value) in annotations.into_iter().flatten() {
        if let Some(name) = key.strip_prefix(APPARMOR_ANNOTATION_PREFIX)
            && !containers.contains(name)
            && !apparmor_annotation_allowed(value)
        {
            out.push(format!(
                "AppArmor annotation {key}={value:?}, for no container of the pod (remove it)"
            ));
        }
    }
    if pod_sc["appArmorProfile"]["type"] == "Unconfined" {
        out.push("appArmorProfile Unconfined in the pod's securityContext".to_owned());
    }
    if selinux_forbidden(&pod_sc["seLinuxOptions"], version) {
        out.push(
            "seLinuxOptions beyond the container types in the pod's securityContext".to_owned(),
        );
    }
    if pod_sc["windowsOptions"]["hostProcess"] == json!(true) {
        out.push("windowsOptions.hostProcess: true in the pod's securityContext".to_owned());
    }
    if level == Level::Restricted {
        if pod_sc["runAsNonRoot"] == json!(false) {
            out.push("runAsNonRoot: false in the pod's securityContext".to_owned());
        }
        if pod_sc["runAsUser"] == json!(0) && version.at_least(23) {
            out.push("runAsUser: 0 in the pod's securityContext".to_owned());
        }
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for v in volumes {
        if v.host_path.is_some() {
            if !mounted_host_paths.contains(&v.name) {
                out.push(format!("hostPath volume {:?}", v.name));
            }
        } else if level == Level::Restricted
            && let Some(kind) =
                volume_type(v).filter(|t| !RESTRICTED_VOLUME_TYPES.contains(&t.as_str()))
        {
            out.push(format!("volume {:?} of type {kind}", v.name));
        }
    }
    out
}

/// The type of a volume as its JSON field names it (`gitRepo`, `nfs`); `None` for a volume
/// with no source, which the API server defaults to an emptyDir.
fn volume_type(v: &Volume) -> Option<String> {
    let json = serde_json::to_value(v).ok()?;
    json.as_object()?.keys().find(|k| *k != "name").cloned()
}

/// One container a debug request adds, as Pod Security will see it: after kspy's own
/// `/mutate` defaults when the warnings are given at `/mutate`.
#[derive(Debug, Clone, Copy)]
pub struct AddedContainer<'a> {
    /// Its name.
    pub name: &'a str,
    /// What it asks for.
    pub asks: &'a Asks,
    /// The container as JSON.
    pub container: &'a Value,
}

/// The Pod Security warnings for a debug request in namespace `namespace` enforcing `level`:
/// one per added container that the level forbids something in, and one for the pod
/// (`pod_name`) around them. For an attach Pod Security judges the whole pod, not just the
/// container added, so containers already in it that the level forbids (the level was
/// tightened after the pod started, or the pod is exempt) make the API server refuse any
/// debug container; `added` are then the new ephemeral containers, and `pod` the pod with
/// them. For a copy or node pod `added` are all its containers.
pub fn warnings(
    Enforced { level, version }: Enforced,
    namespace: &str,
    pod_name: &str,
    action: Action,
    pod: &Pod,
    pod_asks: &PodAsks,
    added: &[AddedContainer<'_>],
) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| serde_json::to_value(sc).ok())
        .unwrap_or(Value::Null);
    let host_namespaces = pod_asks.host_namespaces();
    let view = PodView {
        sc: &pod_sc,
        annotations: pod.metadata.annotations.as_ref(),
        windows: crate::pod_os::is_windows_pod(pod),
    };
    let mut mounted_host_paths: BTreeSet<String> = BTreeSet::new();
    for c in added {
        mounted_host_paths.extend(host_path_mounts(c.asks));
        let found = violations(level, version, c.asks, c.container, &view, &host_namespaces);
        if !found.is_empty() {
            out.push(format!(
                "namespace {namespace:?} enforces Pod Security {}, which forbids in container {:?}: {}; the API server will reject it (try --profile {} or ask for an exemption)",
                enforcing(level, version),
                c.name,
                found.join(", "),
                suggested_profile(level)
            ));
        }
    }

    let mut in_pod = Vec::new();
    let volumes = PodVolumes::of(pod);
    let added_names: BTreeSet<&str> = added.iter().map(|c| c.name).collect();
    let pod_containers = pod_containers(pod);
    let container_names: BTreeSet<&str> = pod_containers
        .iter()
        .map(|(parts, _)| parts.name)
        .chain(added_names.iter().copied())
        .collect();
    for (parts, json) in &pod_containers {
        if added_names.contains(parts.name) {
            continue;
        }
        let asks = Asks::extract(parts, pod, &volumes);
        // Host namespaces are named once, with the containers added.
        let found = violations(level, version, &asks, json, &view, &[]);
        if !found.is_empty() {
            in_pod.push(format!("container {:?}: {}", parts.name, found.join(", ")));
        }
        mounted_host_paths.extend(host_path_mounts(&asks));
    }
    in_pod.extend(pod_spec_violations(
        level,
        version,
        pod,
        &pod_sc,
        &mounted_host_paths,
        &container_names,
    ));
    if !in_pod.is_empty() {
        let consequence = match action {
            Action::Attach => {
                "adding a container makes the API server judge the whole pod, so it will reject the \
                 debug container unless the pod is exempt"
            }
            Action::Copy | Action::Node => "the API server will reject the pod unless it is exempt",
        };
        out.push(format!(
            "namespace {namespace:?} enforces Pod Security {}, which forbids in pod {pod_name:?}: {}; {consequence} (ask a cluster administrator for a Pod Security exemption)",
            enforcing(level, version),
            in_pod.join("; "),
        ));
    }
    out
}

/// The level as the warnings name it, with the version when the namespace pins one:
/// `"baseline"`, `"baseline" at version v1.22`.
fn enforcing(level: Level, version: Version) -> String {
    match version {
        Version::Latest => format!("{:?}", level.as_str()),
        Version::Minor(m) => format!("{:?} at version v1.{m}", level.as_str()),
    }
}

/// The names of the hostPath volumes a container mounts.
fn host_path_mounts(asks: &Asks) -> impl Iterator<Item = String> + '_ {
    asks.volumes
        .iter()
        .filter(|v| v.kind == VolumeKind::HostPath)
        .map(|v| v.name.clone())
}

/// Every container of the pod (init, regular, ephemeral) with its JSON form.
fn pod_containers(pod: &Pod) -> Vec<(ContainerParts<'_>, Value)> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| {
            let json = serde_json::to_value(c).unwrap_or(Value::Null);
            (ContainerParts::from_container(c), json)
        })
        .chain(spec.ephemeral_containers.iter().flatten().map(|c| {
            let json = serde_json::to_value(c).unwrap_or(Value::Null);
            (ContainerParts::from_ephemeral(c), json)
        }))
        .collect()
}

/// The `kspy attach --profile` that fits a level, for hints.
pub fn suggested_profile(level: Level) -> &'static str {
    match level {
        Level::Restricted => "restricted",
        Level::Baseline => "baseline",
        Level::Privileged => "general",
    }
}
