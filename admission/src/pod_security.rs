//! Pod Security Standards, as the namespace's `pod-security.kubernetes.io/enforce` label sets
//! them: what a debug container must carry to be admitted, and what it asks that the level
//! forbids (reported as warnings before the API server's own rejection).

use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Value, json};

use crate::asks::{Asks, VolumeKind};
use crate::classify::DebugRequest;

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

/// The user a conforming container runs as when neither it nor its Pod names one: `nobody`.
pub const NON_ROOT_USER: i64 = 65534;

/// The securityContext fields a container needs to meet `level`, as a partial securityContext
/// to fill into what the user left unset. `container_sc` is the container's own
/// securityContext as sent, `pod_sc` the pod-level one (a seccomp profile or user set there
/// already counts).
///
/// With `runAsNonRoot` it also sets `runAsUser` [`NON_ROOT_USER`] when nothing names a user:
/// the kubelet refuses to start a non-root container whose image runs as root or as a user
/// name (most debug images), and an ephemeral container that never starts cannot be removed.
pub fn conforming_security_context(
    level: Level,
    asks: &Asks,
    container_sc: &Value,
    pod_sc: &Value,
) -> Option<Value> {
    if level != Level::Restricted {
        return None;
    }
    let mut sc = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
    });
    let user_named = !container_sc["runAsUser"].is_null() || !pod_sc["runAsUser"].is_null();
    // An explicit runAsUser 0 cannot be made non-root by a default; the warning says so.
    if !asks.runs_as_root || !user_named {
        sc["runAsNonRoot"] = json!(true);
        if !user_named {
            sc["runAsUser"] = json!(NON_ROOT_USER);
        }
    }
    if pod_sc.get("seccompProfile").is_none() {
        sc["seccompProfile"] = json!({"type": "RuntimeDefault"});
    }
    Some(sc)
}

/// What in a subject the namespace's level forbids, one line each.
pub fn violations(
    level: Level,
    asks: &Asks,
    container: &Value,
    pod_sc: &Value,
    request: &DebugRequest,
) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    if asks.privileged {
        out.push("privileged: true".to_owned());
    }
    for ns in request.pod.host_namespaces() {
        out.push(format!("the host {ns} namespace"));
    }
    for v in &asks.volumes {
        if v.kind == VolumeKind::HostPath {
            out.push(format!("hostPath volume {:?}", v.name));
        }
    }
    let allowed_caps: &[&str] = if level == Level::Restricted {
        &["NET_BIND_SERVICE"]
    } else {
        BASELINE_CAPABILITIES
    };
    for cap in &asks.capabilities {
        if !allowed_caps.contains(&cap.as_str()) {
            out.push(format!("capability {cap}"));
        }
    }
    if asks.proc_mount_unmasked {
        out.push("procMount: Unmasked".to_owned());
    }
    if asks.seccomp_unconfined {
        out.push("seccomp Unconfined".to_owned());
    }
    if asks.apparmor_unconfined {
        out.push("AppArmor Unconfined".to_owned());
    }
    if asks.selinux_unconfined {
        out.push("seLinuxOptions beyond the container types".to_owned());
    }
    if asks.host_process {
        out.push("windowsOptions.hostProcess: true".to_owned());
    }
    if level == Level::Restricted {
        let sc = &container["securityContext"];
        if sc["allowPrivilegeEscalation"] != json!(false) {
            out.push("allowPrivilegeEscalation not set to false".to_owned());
        }
        let non_root = sc["runAsNonRoot"] == json!(true)
            || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == json!(true));
        if !non_root || asks.runs_as_root {
            out.push("running as root (runAsNonRoot must be true)".to_owned());
        }
        // Exactly "ALL": Pod Security compares the string as written, so a container dropping
        // "all" is refused by the API server, and warning nothing about it misled.
        let drops_all = sc["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
        if !drops_all {
            out.push("capabilities not dropping ALL".to_owned());
        }
        let seccomp = sc["seccompProfile"]["type"]
            .as_str()
            .or_else(|| pod_sc["seccompProfile"]["type"].as_str());
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            out.push("no seccompProfile RuntimeDefault or Localhost".to_owned());
        }
    }
    out
}

/// The `kspy attach --profile` that fits a level, for hints.
pub fn suggested_profile(level: Level) -> &'static str {
    match level {
        Level::Restricted => "restricted",
        Level::Baseline => "baseline",
        Level::Privileged => "general",
    }
}
