//! The PodSecurity admission plugin (`k8s.io/pod-security-admission`): the levels the
//! namespace labels `pod-security.kubernetes.io/enforce` and `…/warn` set (versions from
//! `…/enforce-version` and `…/warn-version`, default `latest`), evaluated in the validating
//! phase — after validation, before validating webhooks — on pod creates, and on updates of
//! the pod or its `ephemeralcontainers` that are significant ([`significant_pod_update`]:
//! an ephemeral container added, an image or a seccomp annotation changed, …).
//!
//! Checks (`policy/check_*.go`, evaluated as the registry orders them: the baseline IDs
//! sorted, then the restricted IDs sorted; restricted inherits the baseline checks it does not
//! override):
//! - baseline: `appArmorProfile` (field and annotations), `capabilities_baseline`,
//!   `hostNamespaces`, `hostPathVolumes`, `hostPorts`, `hostProbesAndHostLifecycle` (1.34+),
//!   `privileged`, `procMount`, `seLinuxOptions`, `seccompProfile_baseline`, `sysctls`,
//!   `windowsHostProcess`;
//! - restricted adds `allowPrivilegeEscalation`, `capabilities_restricted` (replaces
//!   capabilities_baseline), `restrictedVolumes` (replaces hostPathVolumes), `runAsNonRoot`,
//!   `runAsUser` (1.23+), `seccompProfile_restricted` (replaces seccompProfile_baseline).
//!   From 1.25 `allowPrivilegeEscalation`, `capabilities_restricted` and
//!   `seccompProfile_restricted` pass a pod with `spec.os.name: windows` unchecked.
//!
//! Each check applies from the policy version its first revision has (`MinimumVersion`), and
//! a restricted check overrides a baseline one only at the versions it has:
//! `allowPrivilegeEscalation` from 1.8, `seccompProfile_restricted` from 1.19 (before, the
//! baseline check of the seccomp annotations), `capabilities_restricted` from 1.22 (before,
//! `capabilities_baseline`), `runAsUser` from 1.23, the probe and lifecycle hosts from 1.34.
//! Within a check the versions differ in the safe sysctls (1.27, 1.29, 1.32 added some),
//! `container_engine_t` (SELinux, 1.31+) and the Windows relaxation (1.25+). A version newer
//! than the newest check is evaluated as `latest`. `procMount` is the 1.33 check: the
//! user-namespace relaxation sits behind the alpha `UserNamespacesPodSecurityStandards` gate,
//! off by default, so `hostUsers: false` does not relax it.
//!
//! A level label that is not a level is treated as the plugin does (`api.ParseLevel`,
//! `PolicyToEvaluate`): `restricted` for `enforce`, `privileged` (fail open) for `warn`. A
//! version label that is not `latest` or `v1.N` (`api.ParseVersion`: `v1.+5`, `v1.05`) is
//! evaluated as `latest`.
//!
//! An `enforce` violation is the plugin's 403: `pods "x" is forbidden: violates PodSecurity
//! "restricted:latest": REASON (DETAIL), …`. A `warn` violation of an admitted pod is a
//! `Warning` header, `would violate PodSecurity "restricted:latest": …` (none when the request
//! is refused). The `audit` label only annotates audit events, and this server keeps no audit
//! log; exemptions are not modelled.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::status::ApiError;

/// The namespace label that sets the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The namespace label that pins the enforced policy version.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
/// The namespace label that sets the level whose violations are returned as warnings.
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
/// The namespace label that pins the warned policy version.
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

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

/// A policy version: `latest` or `v1.N` (`api.ParseVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The newest checks.
    Latest,
    /// `v1.N`: the checks as of Kubernetes 1.N.
    Minor(u32),
}

impl Version {
    /// Parses a version label as `api.ParseVersion` does: `latest`, or `v1.N` with `N` ASCII
    /// digits and no leading zero (its `^v1\.([0-9]|[1-9][0-9]*)$`). Anything else (`v1.+5`,
    /// `v1.05`, `1.26`) is an error there, and `PolicyToEvaluate` evaluates `latest` for it
    /// (the error only goes to the audit annotations), so it is `latest` here too. A number
    /// too large for the minor is `latest` as well, which is also what the plugin makes of a
    /// version newer than its checks.
    pub fn parse(s: &str) -> Version {
        s.strip_prefix("v1.")
            // `u32::from_str` takes a leading `+`, which the plugin's regular expression does not.
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
            .filter(|m| m == &"0" || !m.starts_with('0'))
            .and_then(|m| m.parse().ok())
            .map_or(Version::Latest, Version::Minor)
    }

    /// Whether checks that start at 1.`minor` apply.
    fn at_least(self, minor: u32) -> bool {
        match self {
            Version::Latest => true,
            Version::Minor(m) => m >= minor,
        }
    }

    fn label(self) -> String {
        match self {
            Version::Latest => "latest".into(),
            Version::Minor(m) => format!("v1.{m}"),
        }
    }
}

/// A level label the plugin cannot parse (`api.ParseLevel`): `enforce` falls back to the most
/// restrictive level, `warn` (and `audit`) fail open to `privileged` (`PolicyToEvaluate`).
fn level_version(
    labels: &BTreeMap<String, String>,
    level_key: &str,
    version_key: &str,
) -> Option<(Level, Version)> {
    let level = match labels.get(level_key)?.as_str() {
        "privileged" => Level::Privileged,
        "baseline" => Level::Baseline,
        "restricted" => Level::Restricted,
        _ if level_key == ENFORCE_LABEL => Level::Restricted,
        _ => Level::Privileged,
    };
    let version = labels
        .get(version_key)
        .map_or(Version::Latest, |v| Version::parse(v));
    Some((level, version))
}

/// The enforced level and version label of a namespace, from its labels (`None`:
/// unlabelled).
pub fn enforced(labels: &BTreeMap<String, String>) -> Option<(Level, String)> {
    level_version(labels, ENFORCE_LABEL, ENFORCE_VERSION_LABEL).map(|(l, v)| (l, v.label()))
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

/// Volume sources the restricted level allows. `image` (an OCI image as a read-only volume)
/// since Kubernetes 1.33, added to the 1.0 check rather than to a new version: an API server
/// of 1.33 or later allows it at every pinned version.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
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

/// What the checks read: the pod's metadata and spec, and the policy version evaluated.
struct Subject<'a> {
    meta: &'a Value,
    spec: &'a Value,
    version: Version,
}

/// The setters of a bad value: `pod` (when the pod-level field is bad), then `container(s)
/// "a", "b"`, joined with " and ", as the checks that look at both levels phrase it.
fn setters(pod_bad: bool, containers: &[String]) -> String {
    let mut out = Vec::new();
    if pod_bad {
        out.push("pod".to_string());
    }
    if !containers.is_empty() {
        out.push(format!(
            "{} {}",
            pluralize("container", "containers", containers.len()),
            join_quote(containers)
        ));
    }
    out.join(" and ")
}

/// The annotation prefix of the deprecated per-container AppArmor profiles.
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Where a profile field (`seccompProfile`, `appArmorProfile`) of the pod's or a container's
/// securityContext has a type other than `RuntimeDefault` or `Localhost`, as both checks
/// look: whether the pod's does, the containers whose do, and the types found.
fn forbidden_profile_types(s: &Subject, field: &str) -> (bool, Vec<String>, BTreeSet<String>) {
    let bad_type = |p: &Value| -> Option<String> {
        if !p.is_object() {
            return None;
        }
        let t = p["type"].as_str().unwrap_or_default();
        (!matches!(t, "RuntimeDefault" | "Localhost")).then(|| t.to_string())
    };
    let mut bad_values = BTreeSet::new();
    let pod_bad = match bad_type(&s.spec["securityContext"][field]) {
        Some(t) => {
            bad_values.insert(t);
            true
        }
        None => false,
    };
    let mut bad_containers = Vec::new();
    for c in containers(s.spec) {
        if let Some(t) = bad_type(&c["securityContext"][field]) {
            bad_containers.push(name(c));
            bad_values.insert(t);
        }
    }
    (pod_bad, bad_containers, bad_values)
}

/// `check_appArmorProfile.go`: the `appArmorProfile` fields may only be `RuntimeDefault` or
/// `Localhost`; the deprecated annotations only empty, `runtime/default` or `localhost/*`.
fn app_armor_profile(s: &Subject) -> Option<Violation> {
    let (pod_bad, bad_containers, bad_values) = forbidden_profile_types(s, "appArmorProfile");
    let mut annotations: Vec<String> = s.meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(APPARMOR_ANNOTATION_PREFIX))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let allowed = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!allowed).then(|| format!("{k}={v:?}"))
        })
        .collect();
    annotations.sort();
    let mut who = setters(pod_bad, &bad_containers);
    let mut values: Vec<String> = bad_values.into_iter().collect();
    if !annotations.is_empty() {
        let setter = pluralize("annotation", "annotations", annotations.len());
        who = if who.is_empty() {
            setter.to_string()
        } else {
            format!("{who} and {setter}")
        };
        values.extend(annotations);
    }
    (!who.is_empty()).then(|| {
        (
            pluralize(
                "forbidden AppArmor profile",
                "forbidden AppArmor profiles",
                values.len(),
            )
            .into(),
            format!(
                "{who} must not set AppArmor profile type to {}",
                join_quote(&values)
            ),
        )
    })
}

/// `check_hostPorts.go`: no container may set a non-zero `hostPort`.
fn host_ports(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut uses = false;
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(hp) = p["hostPort"].as_i64().filter(|hp| *hp != 0) {
                uses = true;
                // A set of strings, listed in string order, as the plugin's sets.String.
                ports.insert(hp.to_string());
            }
        }
        if uses {
            bad.push(name(c));
        }
    }
    (!bad.is_empty()).then(|| {
        (
            "hostPort".into(),
            format!(
                "{} {} {} {} {}",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// `check_hostProbesAndhostLifecycle.go` (1.34+): no probe (`httpGet`, `tcpSocket`) or
/// lifecycle handler (`postStart`, `preStop`) of any container may name a `host`.
fn host_probes_and_host_lifecycle(s: &Subject) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(s.spec) {
        let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
            .iter()
            .map(|p| &c[*p])
            .chain(["postStart", "preStop"].iter().map(|h| &c["lifecycle"][*h]));
        for handler in handlers {
            for kind in ["httpGet", "tcpSocket"] {
                if let Some(host) = handler[kind]["host"].as_str().filter(|h| !h.is_empty()) {
                    bad.insert(name(c));
                    hosts.insert(host.to_string());
                }
            }
        }
    }
    (!bad.is_empty()).then(|| {
        let bad: Vec<String> = bad.into_iter().collect();
        let hosts: Vec<String> = hosts.into_iter().collect();
        (
            "probe or lifecycle host".into(),
            format!(
                "{} {} {} {} {}",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "probe or lifecycle host",
                    "probe or lifecycle hosts",
                    hosts.len()
                ),
                join_quote(&hosts)
            ),
        )
    })
}

/// `check_procMount.go` (1.33): `procMount` unset or `Default`.
fn proc_mount(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(t) = c["securityContext"]["procMount"].as_str()
            && t != "Default"
        {
            bad.push(name(c));
            types.insert(t.to_string());
        }
    }
    (!bad.is_empty()).then(|| {
        (
            "procMount".into(),
            format!(
                "{} {} must not set securityContext.procMount to {}",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                join_quote(&types.into_iter().collect::<Vec<_>>())
            ),
        )
    })
}

/// `check_seLinuxOptions.go`: the type only one of the container types, user and role unset.
fn se_linux_options(s: &Subject) -> Option<Violation> {
    let mut allowed = vec!["", "container_t", "container_init_t", "container_kvm_t"];
    if s.version.at_least(31) {
        allowed.push("container_engine_t");
    }
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |opts: &Value| -> bool {
        let t = opts["type"].as_str().unwrap_or_default();
        let mut ok = true;
        if !allowed.contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if !opts["user"].as_str().unwrap_or_default().is_empty() {
            ok = false;
            set_user = true;
        }
        if !opts["role"].as_str().unwrap_or_default().is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let pod_opts = &s.spec["securityContext"]["seLinuxOptions"];
    let pod_bad = pod_opts.is_object() && !valid(pod_opts);
    let mut bad_containers = Vec::new();
    for c in containers(s.spec) {
        let opts = &c["securityContext"]["seLinuxOptions"];
        if opts.is_object() && !valid(opts) {
            bad_containers.push(name(c));
        }
    }
    let who = setters(pod_bad, &bad_containers);
    if who.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types.into_iter().collect::<Vec<_>>())
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    Some((
        "seLinuxOptions".into(),
        format!(
            "{who} set forbidden securityContext.seLinuxOptions: {}",
            data.join("; ")
        ),
    ))
}

/// `check_seccompProfile_baseline.go`: from 1.19 the `seccompProfile` fields may not be set
/// to anything but `RuntimeDefault` or `Localhost`; before, the alpha annotations.
fn seccomp_baseline(s: &Subject) -> Option<Violation> {
    if !s.version.at_least(19) {
        return seccomp_baseline_annotations(s);
    }
    let (pod_bad, bad_containers, bad_values) = forbidden_profile_types(s, "seccompProfile");
    let who = setters(pod_bad, &bad_containers);
    (!who.is_empty()).then(|| {
        (
            "seccompProfile".into(),
            format!(
                "{who} must not set securityContext.seccompProfile.type to {}",
                join_quote(&bad_values.into_iter().collect::<Vec<_>>())
            ),
        )
    })
}

/// The 1.0–1.18 seccomp baseline: the alpha annotations of the pod and its containers.
fn seccomp_baseline_annotations(s: &Subject) -> Option<Violation> {
    const POD_KEY: &str = "seccomp.security.alpha.kubernetes.io/pod";
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let annotations = &s.meta["annotations"];
    let mut keys = vec![POD_KEY.to_string()];
    keys.extend(
        containers(s.spec)
            .into_iter()
            .map(|c| format!("container.seccomp.security.alpha.kubernetes.io/{}", name(c))),
    );
    let forbidden: BTreeSet<String> = keys
        .into_iter()
        .filter_map(|k| {
            let v = annotations[k.as_str()].as_str()?;
            (!valid(v)).then(|| format!("{k}={v:?}"))
        })
        .collect();
    (!forbidden.is_empty()).then(|| {
        (
            "seccompProfile".into(),
            format!(
                "forbidden {} {}",
                pluralize("annotation", "annotations", forbidden.len()),
                forbidden.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// `check_sysctls.go`: only the sysctls the version counts as safe (namespaced, isolated).
fn sysctls(s: &Subject) -> Option<Violation> {
    let mut allowed = vec![
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    ];
    if s.version.at_least(27) {
        allowed.push("net.ipv4.ip_local_reserved_ports");
    }
    if s.version.at_least(29) {
        allowed.extend([
            "net.ipv4.tcp_keepalive_time",
            "net.ipv4.tcp_fin_timeout",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes",
        ]);
    }
    if s.version.at_least(32) {
        allowed.extend(["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]);
    }
    // In the pod's order, repeats included, as the plugin lists them.
    let bad: Vec<String> = s.spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| x["name"].as_str().unwrap_or_default())
        .filter(|n| !allowed.contains(n))
        .map(str::to_string)
        .collect();
    (!bad.is_empty()).then(|| ("forbidden sysctls".into(), bad.join(", ")))
}

/// `check_windowsHostProcess.go`: `windowsOptions.hostProcess` never true.
fn windows_host_process(spec: &Value) -> Option<Violation> {
    let host_process = |sc: &Value| sc["windowsOptions"]["hostProcess"] == true;
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| host_process(&c["securityContext"]))
        .map(name)
        .collect();
    let who = setters(host_process(&spec["securityContext"]), &bad);
    (!who.is_empty()).then(|| {
        (
            "hostProcess".into(),
            format!("{who} must not set securityContext.windowsOptions.hostProcess=true"),
        )
    })
}

/// `check_runAsUser.go` (restricted, 1.23+): no explicit `runAsUser: 0`.
fn run_as_user(s: &Subject) -> Option<Violation> {
    let root = |sc: &Value| sc["runAsUser"].as_i64() == Some(0);
    let bad: Vec<String> = containers(s.spec)
        .into_iter()
        .filter(|c| root(&c["securityContext"]))
        .map(name)
        .collect();
    let who = setters(root(&s.spec["securityContext"]), &bad);
    (!who.is_empty()).then(|| {
        (
            "runAsUser=0".into(),
            format!("{who} must not set runAsUser=0"),
        )
    })
}

type Check = fn(&Subject) -> Option<Violation>;

/// One check of the registry: its ID, the first policy version it has (`MinimumVersion` of its
/// oldest revision, as `1.minor`), and the check.
struct Registered {
    id: &'static str,
    since: u32,
    check: Check,
}

/// The baseline checks by ID, in ID order (the registry sorts them). Before its `since` a
/// check is not registered at all for that version (`inflateVersions`).
const BASELINE_CHECKS: &[Registered] = &[
    Registered {
        id: "appArmorProfile",
        since: 0,
        check: app_armor_profile,
    },
    Registered {
        id: "capabilities_baseline",
        since: 0,
        check: |s| capabilities_baseline(s.spec),
    },
    Registered {
        id: "hostNamespaces",
        since: 0,
        check: |s| host_namespaces(s.spec),
    },
    Registered {
        id: "hostPathVolumes",
        since: 0,
        check: |s| host_path_volumes(s.spec),
    },
    Registered {
        id: "hostPorts",
        since: 0,
        check: |s| host_ports(s.spec),
    },
    Registered {
        id: "hostProbesAndHostLifecycle",
        since: 34,
        check: host_probes_and_host_lifecycle,
    },
    Registered {
        id: "privileged",
        since: 0,
        check: |s| privileged(s.spec),
    },
    Registered {
        id: "procMount",
        since: 0,
        check: |s| proc_mount(s.spec),
    },
    Registered {
        id: "seLinuxOptions",
        since: 0,
        check: se_linux_options,
    },
    Registered {
        id: "seccompProfile_baseline",
        since: 0,
        check: seccomp_baseline,
    },
    Registered {
        id: "sysctls",
        since: 0,
        check: sysctls,
    },
    Registered {
        id: "windowsHostProcess",
        since: 0,
        check: |s| windows_host_process(s.spec),
    },
];

/// Whether the 1.25 versions of `allowPrivilegeEscalation`, `capabilities_restricted` and
/// `seccompProfile_restricted` let the pod through unchecked: a pod with `spec.os.name:
/// windows`, which cannot set those fields.
fn windows_exempt(s: &Subject) -> bool {
    s.version.at_least(25) && s.spec["os"]["name"] == "windows"
}

/// The restricted checks by ID, in ID order, with the baseline checks each overrides
/// (`OverrideCheckIDs`). An override holds only at the versions its check has: before 1.22
/// there is no `capabilities_restricted`, so a restricted namespace pinned to v1.21 runs
/// `capabilities_baseline` (and asks for no dropped capabilities); before 1.19 it runs the
/// annotation form of `seccompProfile_baseline` and asks for no seccomp profile.
const RESTRICTED_CHECKS: &[(Registered, &[&str])] = &[
    (
        Registered {
            id: "allowPrivilegeEscalation",
            // The field came with 1.8.
            since: 8,
            check: |s| {
                if windows_exempt(s) {
                    return None;
                }
                allow_privilege_escalation(s.spec)
            },
        },
        &[],
    ),
    (
        Registered {
            id: "capabilities_restricted",
            since: 22,
            check: |s| {
                if windows_exempt(s) {
                    return None;
                }
                capabilities_restricted(s.spec)
            },
        },
        &["capabilities_baseline"],
    ),
    (
        Registered {
            id: "restrictedVolumes",
            since: 0,
            check: |s| restricted_volumes(s.spec),
        },
        &["hostPathVolumes"],
    ),
    (
        Registered {
            id: "runAsNonRoot",
            since: 0,
            check: |s| run_as_non_root(s.spec),
        },
        &[],
    ),
    (
        Registered {
            id: "runAsUser",
            since: 23,
            check: run_as_user,
        },
        &[],
    ),
    (
        Registered {
            id: "seccompProfile_restricted",
            since: 19,
            check: |s| {
                if windows_exempt(s) {
                    return None;
                }
                seccomp_restricted(s.spec)
            },
        },
        &["seccompProfile_baseline"],
    ),
];

/// The violations of `pod` at `level` and `version`, in the order the plugin reports them:
/// the baseline checks the level keeps, then the restricted ones, each only from its version.
pub fn violations(level: Level, version: Version, pod: &Value) -> Vec<Violation> {
    let subject = Subject {
        meta: &pod["metadata"],
        spec: &pod["spec"],
        version,
    };
    let registered = |r: &&Registered| version.at_least(r.since);
    let restricted: Vec<&(Registered, &[&str])> = RESTRICTED_CHECKS
        .iter()
        .filter(|(r, _)| registered(&r))
        .collect();
    let overridden: Vec<&str> = restricted
        .iter()
        .flat_map(|(_, overrides)| overrides.iter().copied())
        .collect();
    let baseline = BASELINE_CHECKS.iter().filter(registered);
    let checks: Vec<Check> = match level {
        Level::Privileged => vec![],
        Level::Baseline => baseline.map(|r| r.check).collect(),
        Level::Restricted => baseline
            .filter(|r| !overridden.contains(&r.id))
            .map(|r| r.check)
            .chain(restricted.iter().map(|(r, _)| r.check))
            .collect(),
    };
    checks
        .into_iter()
        .filter_map(|check| check(&subject))
        .collect()
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Privileged => "privileged",
        Level::Baseline => "baseline",
        Level::Restricted => "restricted",
    }
}

/// `AggregateCheckResult.ForbiddenDetail`: `REASON (DETAIL), …`.
fn forbidden_detail(found: &[Violation]) -> String {
    found
        .iter()
        .map(|(reason, detail)| {
            if detail.is_empty() {
                reason.clone()
            } else {
                format!("{reason} ({detail})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Admits the pod `pod` (JSON) named `name` in a namespace with `namespace_labels`: the
/// plugin's 403 when the `enforce` level refuses it, else the warnings its `warn` level
/// raises (`would violate PodSecurity "LEVEL:VERSION": …`, one for the request), to be
/// returned as `Warning` headers.
pub fn admit(
    namespace_labels: &BTreeMap<String, String>,
    name: &str,
    pod: &Value,
) -> Result<Vec<String>, ApiError> {
    if let Some((level, version)) =
        level_version(namespace_labels, ENFORCE_LABEL, ENFORCE_VERSION_LABEL)
    {
        let found = violations(level, version, pod);
        if !found.is_empty() {
            return Err(ApiError::forbidden(
                "pods",
                name,
                format!(
                    "violates PodSecurity \"{}:{}\": {}",
                    level_name(level),
                    version.label(),
                    forbidden_detail(&found)
                ),
            ));
        }
    }
    // Warnings only for a request that is let through.
    let mut warnings = Vec::new();
    if let Some((level, version)) = level_version(namespace_labels, WARN_LABEL, WARN_VERSION_LABEL)
    {
        let found = violations(level, version, pod);
        if !found.is_empty() {
            warnings.push(format!(
                "would violate PodSecurity \"{}:{}\": {}",
                level_name(level),
                version.label(),
                forbidden_detail(&found)
            ));
        }
    }
    Ok(warnings)
}

/// Whether a pod update — of the pod itself or of its `ephemeralcontainers` — is evaluated
/// at all (`isSignificantPodUpdate`): the pod's seccomp annotation changed, containers or
/// init containers were added or removed, an ephemeral container was added, or a container
/// of any kind changed its image or its seccomp annotation. Anything else is let through
/// unevaluated, even in a namespace whose level the pod violates.
pub fn significant_pod_update(new: &Value, old: &Value) -> bool {
    const POD_SECCOMP: &str = "seccomp.security.alpha.kubernetes.io/pod";
    let annotation =
        |p: &Value, k: &str| p["metadata"]["annotations"][k].as_str().map(str::to_string);
    if annotation(new, POD_SECCOMP) != annotation(old, POD_SECCOMP) {
        return true;
    }
    let list =
        |p: &Value, k: &str| -> Vec<Value> { p["spec"][k].as_array().cloned().unwrap_or_default() };
    let container_changed = |c: &Value, o: &Value| {
        let key = format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            c["name"].as_str().unwrap_or_default()
        );
        c["image"] != o["image"] || annotation(new, &key) != annotation(old, &key)
    };
    for k in ["containers", "initContainers"] {
        let (n, o) = (list(new, k), list(old, k));
        // By position, as the plugin compares them.
        if n.len() != o.len() || n.iter().zip(&o).any(|(c, o)| container_changed(c, o)) {
            return true;
        }
    }
    let old_ephemeral = list(old, "ephemeralContainers");
    list(new, "ephemeralContainers").iter().any(|c| {
        match old_ephemeral.iter().find(|o| o["name"] == c["name"]) {
            None => true,
            Some(o) => container_changed(c, o),
        }
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
    fn restricted_asks_a_windows_pod_only_for_what_it_can_set_from_1_25() {
        let pod = json!({"spec": {
            "os": {"name": "windows"},
            "containers": [{"name": "iis", "image": "iis"}]
        }});
        let e = admit(&labels("restricted"), "win", &pod).unwrap_err();
        assert_eq!(
            e.message,
            r#"pods "win" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "iis" must set securityContext.runAsNonRoot=true)"#
        );
        let mut pinned = labels("restricted");
        pinned.insert(ENFORCE_VERSION_LABEL.into(), "v1.24".into());
        let e = admit(&pinned, "win", &pod).unwrap_err();
        assert!(
            e.message.contains("allowPrivilegeEscalation != false"),
            "{}",
            e.message
        );
    }

    fn pinned(level: &str, version: &str) -> BTreeMap<String, String> {
        let mut l = labels(level);
        l.insert(ENFORCE_VERSION_LABEL.into(), version.into());
        l
    }

    #[test]
    fn a_version_label_api_parse_version_refuses_is_latest() {
        for (label, version) in [
            ("latest", Version::Latest),
            ("v1.0", Version::Minor(0)),
            ("v1.5", Version::Minor(5)),
            ("v1.34", Version::Minor(34)),
            // A sign `u32::from_str` takes, the plugin's regular expression does not.
            ("v1.+5", Version::Latest),
            ("v1.+0", Version::Latest),
            ("v1.05", Version::Latest),
            ("v1.", Version::Latest),
            ("1.26", Version::Latest),
            ("v2.0", Version::Latest),
            ("v1.26 ", Version::Latest),
            ("v1.99999999999999999999", Version::Latest),
        ] {
            assert_eq!(Version::parse(label), version, "{label:?}");
        }
        // Evaluated as latest, and named as such: v1.5 would refuse the 1.27 sysctl.
        let pod = json!({"spec": {
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "80"}]},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]
        }});
        let e = admit(&pinned("baseline", "v1.+5"), "p", &pod).unwrap_err();
        assert_eq!(
            e.message,
            r#"pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
        );
        let e = admit(&pinned("baseline", "v1.5"), "p", &pod).unwrap_err();
        assert!(e.message.contains("forbidden sysctls"), "{}", e.message);
    }

    #[test]
    fn a_warn_level_that_is_not_a_level_fails_open() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let warn: BTreeMap<String, String> =
            [(WARN_LABEL.to_string(), "Restricted".to_string())].into();
        assert_eq!(admit(&warn, "p", &pod).unwrap(), Vec::<String>::new());
        // An enforce level that is not one is the most restrictive.
        assert!(admit(&labels("Restricted"), "p", &pod).is_err());
    }

    #[test]
    fn restricted_checks_start_at_their_versions() {
        let sc = |extra: Value| {
            let mut sc =
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
            sc.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            sc
        };
        let pod = |annotations: Value, c: Value| {
            json!({"metadata": {"annotations": annotations}, "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [c]
            }})
        };
        // Before 1.22 restricted runs capabilities_baseline: no drop asked, CHOWN allowed.
        let caps = pod(
            json!({}),
            json!({"name": "c", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["CHOWN"]}}}),
        );
        assert!(admit(&pinned("restricted", "v1.21"), "p", &caps).is_ok());
        let e = admit(&pinned("restricted", "v1.22"), "p", &caps).unwrap_err();
        assert!(
            e.message.contains("unrestricted capabilities"),
            "{}",
            e.message
        );
        let sys_admin = pod(
            json!({}),
            json!({"name": "c", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["SYS_ADMIN"]}}}),
        );
        let e = admit(&pinned("restricted", "v1.21"), "p", &sys_admin).unwrap_err();
        assert_eq!(
            e.message,
            r#"pods "p" is forbidden: violates PodSecurity "restricted:v1.21": non-default capabilities (container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
        );
        // allowPrivilegeEscalation from 1.8.
        let escalating = pod(
            json!({}),
            json!({"name": "c", "image": "busybox",
            "securityContext": {"capabilities": {"drop": ["ALL"]}}}),
        );
        assert!(admit(&pinned("restricted", "v1.7"), "p", &escalating).is_ok());
        assert!(admit(&pinned("restricted", "v1.8"), "p", &escalating).is_err());
        // seccompProfile_restricted from 1.19; before, the annotations of the baseline check.
        let mut unset = pod(
            json!({}),
            json!({"name": "c", "image": "busybox", "securityContext": sc(json!({}))}),
        );
        unset["spec"]["securityContext"] = json!({"runAsNonRoot": true});
        assert!(admit(&pinned("restricted", "v1.18"), "p", &unset).is_ok());
        assert!(admit(&pinned("restricted", "v1.19"), "p", &unset).is_err());
        unset["metadata"]["annotations"] =
            json!({"seccomp.security.alpha.kubernetes.io/pod": "unconfined"});
        let e = admit(&pinned("restricted", "v1.18"), "p", &unset).unwrap_err();
        assert!(e.message.contains("forbidden annotation"), "{}", e.message);
    }

    #[test]
    fn restricted_allows_image_volumes() {
        let pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tools", "image": {"reference": "busybox:1.36"}}],
            "containers": [{"name": "c", "image": "busybox", "securityContext":
                {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        }});
        for version in ["latest", "v1.22"] {
            assert!(
                admit(&pinned("restricted", version), "p", &pod).is_ok(),
                "{version}"
            );
        }
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
