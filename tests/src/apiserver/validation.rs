//! Pod validation as `pkg/apis/core/validation` does it for the cases kspy meets:
//! `ValidatePodCreate` (ephemeral containers forbidden on create) and
//! `ValidatePodEphemeralContainersUpdate` (existing ones immutable; names unique across
//! all container kinds; `targetContainerName` must name a container; the allow-list of
//! ephemeral container fields; no subPath mounts); for every container kind the checks of
//! `validateContainerCommon` that kspy's objects reach (`ValidateEnv` names and `valueFrom`,
//! `ValidateVolumeMounts` with mount propagation and `recursiveReadOnly`,
//! `validateResizePolicy`, `ValidateSecurityContext` with user/group ranges, `procMount`,
//! seccomp and AppArmor profiles), `validateContainerOnlyForPod` (image whitespace), and of
//! the pod's security context the ID ranges, `ShareProcessNamespace` with `HostPID`, and the
//! seccomp and AppArmor profiles.
//!
//! Where a rule depends on the version (feature-gate defaults), it follows the version
//! `/version` reports ([`super::discovery::GIT_VERSION`]).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Container, ContainerResizePolicy, EphemeralContainer, Pod, SecurityContext,
};
use serde_json::Value;

use super::discovery::GIT_VERSION;
use super::status::FieldError;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const EPHEMERAL_FORBIDDEN: &str = "cannot be set for an Ephemeral Container";
/// `validation.IsEnvVarName`'s message (`RegexError` with its three examples).
const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
/// `validation.IsRelaxedEnvVarName`'s message.
const RELAXED_ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";

/// The minor version of the Kubernetes the harness claims to be (`v1.33.0` → 33).
fn server_minor() -> u32 {
    GIT_VERSION
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The `RelaxedEnvironmentVariableValidation` feature gate at the server version's default:
/// alpha (off) in 1.30 and 1.31, beta and on by default from 1.32, GA (locked on) from 1.34.
/// With it on, `ValidateEnv` checks names with `IsRelaxedEnvVarName`, else `IsEnvVarName`.
pub fn relaxed_env_var_names() -> bool {
    server_minor() >= 32
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `validation.IsDNS1123Subdomain`'s regex: dot-separated parts of lower-case letters, digits
/// and `-`, each starting and ending with a letter or digit. Unlike a label, a part has no
/// length limit of its own: only the whole name's 253 characters count
/// ([`dns1123_subdomain_errors`]).
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

/// `NameIsDNSSubdomain(prefix, true)`, as a `generateName` is checked: a subdomain once a
/// trailing `-` is masked (`maskTrailingDash`: the last two characters become `a`).
pub(super) fn generate_name_errors(prefix: &str) -> Vec<&'static str> {
    match prefix.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => {
            let mut masked =
                rest[..rest.len() - rest.chars().last().map_or(0, char::len_utf8)].to_owned();
            masked.push('a');
            dns1123_subdomain_errors(&masked)
        }
        _ => dns1123_subdomain_errors(prefix),
    }
}

/// `validation.IsDNS1123Subdomain`: the length error, then the regex error, each that applies.
pub(super) fn dns1123_subdomain_errors(s: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters");
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(DNS1123_SUBDOMAIN_MSG);
    }
    errs
}

/// `validation.IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, then `hasChDirPrefix`.
fn env_var_name_errors_strict(name: &str) -> Vec<&'static str> {
    let b = name.as_bytes();
    let word = |c: &u8| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_');
    let mut errs = Vec::new();
    if b.is_empty() || !word(&b[0]) || !b[1..].iter().all(|c| word(c) || c.is_ascii_digit()) {
        errs.push(ENV_VAR_NAME_MSG);
    }
    if name == "." {
        errs.push("must not be '.'");
    } else if name == ".." {
        errs.push("must not be '..'");
    } else if name.starts_with("..") {
        errs.push("must not start with '..'");
    }
    errs
}

/// `validation.IsRelaxedEnvVarName`: printable ASCII (space included, as Go's
/// `unicode.IsPrint`) other than `=`; one message however many characters are bad.
fn env_var_name_errors_relaxed(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("environment variable name must be non-empty");
    }
    if name.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(RELAXED_ENV_VAR_NAME_MSG);
    }
    errs
}

/// `ValidateEnv`'s name check for one variable, by the feature gate's setting.
fn env_var_name_errors(name: &str, relaxed: bool) -> Vec<&'static str> {
    if relaxed {
        env_var_name_errors_relaxed(name)
    } else {
        env_var_name_errors_strict(name)
    }
}

/// How Go's `%#v` prints a `*core.SecurityContext` bad value (`field.Invalid(fldPath, sc,
/// …)`): `core.SecurityContext{Capabilities:(*core.Capabilities)(nil), …}`, fields in the
/// internal type's order. Go prints the addresses of set pointers; they differ from call to
/// call, so placeholders stand in for them here.
fn go_security_context(sc: &SecurityContext) -> String {
    let fields = [
        (
            "Capabilities",
            "core.Capabilities",
            sc.capabilities.is_some(),
        ),
        ("Privileged", "bool", sc.privileged.is_some()),
        (
            "SELinuxOptions",
            "core.SELinuxOptions",
            sc.se_linux_options.is_some(),
        ),
        (
            "WindowsOptions",
            "core.WindowsSecurityContextOptions",
            sc.windows_options.is_some(),
        ),
        ("RunAsUser", "int64", sc.run_as_user.is_some()),
        ("RunAsGroup", "int64", sc.run_as_group.is_some()),
        ("RunAsNonRoot", "bool", sc.run_as_non_root.is_some()),
        (
            "ReadOnlyRootFilesystem",
            "bool",
            sc.read_only_root_filesystem.is_some(),
        ),
        (
            "AllowPrivilegeEscalation",
            "bool",
            sc.allow_privilege_escalation.is_some(),
        ),
        ("ProcMount", "core.ProcMountType", sc.proc_mount.is_some()),
        (
            "SeccompProfile",
            "core.SeccompProfile",
            sc.seccomp_profile.is_some(),
        ),
        (
            "AppArmorProfile",
            "core.AppArmorProfile",
            sc.app_armor_profile.is_some(),
        ),
    ];
    let body: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (name, ty, set))| {
            if *set {
                format!("{name}:(*{ty})(0xc{:09x})", 0x0010_0000 + 8 * i)
            } else {
                format!("{name}:(*{ty})(nil)")
            }
        })
        .collect();
    format!("core.SecurityContext{{{}}}", body.join(", "))
}

/// `validation.IsValidUserID` / `IsValidGroupID`: 0 to `math.MaxInt32`.
fn id_range_errors(path: String, id: i64) -> Option<FieldError> {
    (!(0..=i64::from(i32::MAX)).contains(&id)).then(|| {
        FieldError::invalid_unquoted(
            path,
            id.to_string(),
            format!("must be between 0 and {}, inclusive", i32::MAX),
        )
    })
}

/// `validateLocalDescendingPath`: relative, without `..` components (one error for any
/// number of them).
fn local_descending_path_errors(path: &str, value: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if value.starts_with('/') {
        errs.push(FieldError::invalid(path, value, "must be a relative path"));
    }
    if value.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(path, value, "must not contain '..'"));
    }
    errs
}

/// `validateSeccompProfileField`: a known type (`Localhost`, `RuntimeDefault`,
/// `Unconfined`); `localhostProfile` required with `Localhost` (a relative path without
/// `..`) and refused with any other type — that error's bad value is the whole profile, which
/// Go prints with `%#v` (the pointer's address is a placeholder here, as in
/// [`go_security_context`]).
fn validate_seccomp_profile(
    sp: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    path: &str,
) -> Vec<FieldError> {
    let Some(sp) = sp else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(
            format!("{path}.type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            format!("{path}.type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    let profile_path = format!("{path}.localhostProfile");
    match (sp.type_.as_str(), sp.localhost_profile.as_deref()) {
        ("Localhost", None) => errs.push(FieldError::required(
            profile_path,
            "must be set when seccomp type is Localhost",
        )),
        ("Localhost", Some(p)) => errs.extend(local_descending_path_errors(&profile_path, p)),
        (_, Some(_)) => errs.push(FieldError::invalid_unquoted(
            profile_path,
            format!(
                "core.SeccompProfile{{Type:{:?}, LocalhostProfile:(*string)(0xc000100000)}}",
                sp.type_
            ),
            "can only be set when seccomp type is Localhost",
        )),
        (_, None) => {}
    }
    errs
}

/// `ValidateAppArmorProfileField`: the same pattern as seccomp — `Localhost` requires a
/// `localhostProfile` (not blank, not padded with whitespace; its 4095-byte limit is not
/// checked here), the other known types refuse one, and the type is required and one of the
/// three.
fn validate_app_armor_profile(
    profile: Option<&k8s_openapi::api::core::v1::AppArmorProfile>,
    path: &str,
) -> Vec<FieldError> {
    let Some(profile) = profile else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let profile_path = format!("{path}.localhostProfile");
    match profile.type_.as_str() {
        "Localhost" => match profile.localhost_profile.as_deref() {
            None => errs.push(FieldError::required(
                profile_path,
                "must be set when AppArmor type is Localhost",
            )),
            Some(p) => {
                if p.trim() != p {
                    errs.push(FieldError::invalid(
                        &profile_path,
                        p,
                        "must not be padded with whitespace",
                    ));
                } else if p.is_empty() {
                    errs.push(FieldError::required(
                        &profile_path,
                        "must be set when AppArmor type is Localhost",
                    ));
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(p) = profile.localhost_profile.as_deref() {
                errs.push(FieldError::invalid(
                    profile_path,
                    p,
                    "can only be set if the AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            format!("{path}.type"),
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            format!("{path}.type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

/// `ValidateSecurityContext` (1.33), in its order: `runAsUser` and `runAsGroup` ranges,
/// `procMount` (a known type; `Unmasked` only in a pod with `hostUsers: false`), the seccomp
/// profile, the refusals of `allowPrivilegeEscalation: false` with `privileged: true` and with
/// each `capabilities.add` entry spelled `CAP_SYS_ADMIN` (the literal only: `SYS_ADMIN`
/// passes; reported on the security context itself), then the AppArmor profile.
fn validate_security_context(
    sc: &SecurityContext,
    path: &str,
    host_users: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(uid) = sc.run_as_user {
        errs.extend(id_range_errors(format!("{path}.runAsUser"), uid));
    }
    if let Some(gid) = sc.run_as_group {
        errs.extend(id_range_errors(format!("{path}.runAsGroup"), gid));
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        let pm_path = format!("{path}.procMount");
        if !matches!(pm, "Default" | "Unmasked") {
            errs.push(FieldError::not_supported(
                &pm_path,
                pm,
                &["Default", "Unmasked"],
            ));
        }
        if host_users && pm == "Unmasked" {
            errs.push(FieldError::invalid(
                pm_path,
                pm,
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(validate_seccomp_profile(
        sc.seccomp_profile.as_ref(),
        &format!("{path}.seccompProfile"),
    ));
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid_unquoted(
                path,
                go_security_context(sc),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        for cap in sc.capabilities.iter().flat_map(|c| c.add.iter().flatten()) {
            if cap == "CAP_SYS_ADMIN" {
                errs.push(FieldError::invalid_unquoted(
                    path,
                    go_security_context(sc),
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                ));
            }
        }
    }
    errs.extend(validate_app_armor_profile(
        sc.app_armor_profile.as_ref(),
        &format!("{path}.appArmorProfile"),
    ));
    errs
}

/// `validateEnvVarValueFrom`: exactly one source, and none beside a non-empty `value`; the
/// required parts of each source (`fieldRef.fieldPath`, the `key` of a ConfigMap or Secret
/// key selector, `resourceFieldRef.resource`).
fn validate_env_value_from(e: &k8s_openapi::api::core::v1::EnvVar, path: &str) -> Vec<FieldError> {
    let Some(from) = e.value_from.as_ref() else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let mut sources = 0;
    if let Some(f) = &from.field_ref {
        sources += 1;
        if f.field_path.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.fieldRef.fieldPath"),
                "",
            ));
        }
    }
    if let Some(r) = &from.resource_field_ref {
        sources += 1;
        if r.resource.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.resourceFieldRef.resource"),
                "",
            ));
        }
    }
    if let Some(k) = &from.config_map_key_ref {
        sources += 1;
        if k.key.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.configMapKeyRef.key"),
                "",
            ));
        }
    }
    if let Some(k) = &from.secret_key_ref {
        sources += 1;
        if k.key.is_empty() {
            errs.push(FieldError::required(format!("{path}.secretKeyRef.key"), ""));
        }
    }
    if sources == 0 {
        errs.push(FieldError::invalid(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

/// `validateMountPropagation` and `validateMountRecursiveReadOnly` for one mount. Upstream
/// names both errors after the list (`…volumeMounts.mountPropagation`,
/// `…volumeMounts.recursiveReadOnly`), not the entry: `ValidateVolumeMounts` passes them
/// `fldPath.Child(…)` where the other checks use the index path.
fn validate_mount_modes(
    m: &k8s_openapi::api::core::v1::VolumeMount,
    mounts_path: &str,
    privileged: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(mp) = m.mount_propagation.as_deref() {
        let path = format!("{mounts_path}.mountPropagation");
        if !matches!(mp, "Bidirectional" | "HostToContainer" | "None") {
            errs.push(FieldError::not_supported(
                &path,
                mp,
                &["Bidirectional", "HostToContainer", "None"],
            ));
        }
        if mp == "Bidirectional" && !privileged {
            errs.push(FieldError::forbidden(
                path,
                "Bidirectional mount propagation is available only to privileged containers",
            ));
        }
    }
    if let Some(rro) = m.recursive_read_only.as_deref() {
        let path = format!("{mounts_path}.recursiveReadOnly");
        match rro {
            "Disabled" => {}
            "Enabled" | "IfPossible" => {
                if m.read_only != Some(true) {
                    errs.push(FieldError::forbidden(
                        &path,
                        "may only be specified when readOnly is true",
                    ));
                }
                if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                    errs.push(FieldError::forbidden(
                        &path,
                        "may only be specified when mountPropagation is None or not specified",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["Disabled", "Enabled", "IfPossible"],
            )),
        }
    }
    errs
}

/// `validateContainerOnlyForPod`: what pods (not pod templates) add — no whitespace around
/// the image.
fn image_whitespace_error(image: Option<&str>, path: &str) -> Option<FieldError> {
    let image = image?;
    (image.trim() != image).then(|| {
        FieldError::invalid(
            format!("{path}.image"),
            image,
            "must not have leading or trailing whitespace",
        )
    })
}

/// `validateResizePolicy`: resource names unique and `cpu` or `memory`, policies
/// `NotRequired` or `RestartContainer`, and — since kubernetes#118768 (2023; in 1.33) — only
/// `NotRequired` in a pod whose `restartPolicy` is `Never`. Most errors name the list, not
/// the entry, as the real function does.
fn validate_resize_policy(
    policies: &[ContainerResizePolicy],
    path: &str,
    pod_restart_policy: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, p) in policies.iter().enumerate() {
        if !seen.insert(p.resource_name.as_str()) {
            errs.push(FieldError::duplicate(
                format!("{path}[{i}]"),
                &p.resource_name,
            ));
        }
        match p.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(path, other, &["cpu", "memory"])),
        }
        match p.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if pod_restart_policy == "Never" && p.restart_policy != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                &p.restart_policy,
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

/// The fields common to all container kinds, borrowed from either type.
struct Common<'a> {
    name: &'a str,
    image: Option<&'a str>,
    image_pull_policy: Option<&'a str>,
    termination_message_policy: Option<&'a str>,
    volume_mounts: &'a [k8s_openapi::api::core::v1::VolumeMount],
    env: &'a [k8s_openapi::api::core::v1::EnvVar],
    resize_policy: &'a [ContainerResizePolicy],
    security_context: Option<&'a SecurityContext>,
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
            resize_policy: c.resize_policy.as_deref().unwrap_or_default(),
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
            resize_policy: c.resize_policy.as_deref().unwrap_or_default(),
            security_context: c.security_context.as_ref(),
        }
    }
}

/// What the checks of one container need from its pod.
struct PodContext<'a> {
    volumes: &'a BTreeSet<String>,
    /// `spec.restartPolicy` (defaulted to `Always` before validation).
    restart_policy: &'a str,
    /// [`relaxed_env_var_names`].
    relaxed_env: bool,
    /// `spec.hostUsers`, true when unset.
    host_users: bool,
}

/// `validateContainerCommon`, in its order: name, image, terminationMessagePolicy, env,
/// volume mounts, imagePullPolicy, resizePolicy, securityContext.
fn validate_common(c: &Common<'_>, pod: &PodContext<'_>, path: &str) -> Vec<FieldError> {
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
    // Only empty: whitespace is `validateContainerOnlyForPod`'s (pod templates allow it).
    if c.image.is_none_or(str::is_empty) {
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
    for (i, e) in c.env.iter().enumerate() {
        let name_path = format!("{path}.env[{i}].name");
        if e.name.is_empty() {
            errs.push(FieldError::required(name_path, ""));
        } else {
            for msg in env_var_name_errors(&e.name, pod.relaxed_env) {
                errs.push(FieldError::invalid(&name_path, &e.name, msg));
            }
        }
        errs.extend(validate_env_value_from(
            e,
            &format!("{path}.env[{i}].valueFrom"),
        ));
    }
    let privileged = c
        .security_context
        .is_some_and(|sc| sc.privileged == Some(true));
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        }
        if !pod.volumes.contains(&m.name) {
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
        errs.extend(validate_mount_modes(
            m,
            &format!("{path}.volumeMounts"),
            privileged,
        ));
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
    errs.extend(validate_resize_policy(
        c.resize_policy,
        &format!("{path}.resizePolicy"),
        pod.restart_policy,
    ));
    if let Some(sc) = c.security_context {
        errs.extend(validate_security_context(
            sc,
            &format!("{path}.securityContext"),
            pod.host_users,
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
        Some(n) => {
            for msg in dns1123_subdomain_errors(n) {
                errs.push(FieldError::invalid("metadata.name", n, msg));
            }
        }
    }
    let Some(spec) = pod.spec.as_ref() else {
        errs.push(FieldError::required("spec.containers", ""));
        return errs;
    };
    let volumes = volume_names(pod);
    let ctx = PodContext {
        volumes: &volumes,
        restart_policy: spec.restart_policy.as_deref().unwrap_or("Always"),
        relaxed_env: relaxed_env_var_names(),
        host_users: spec.host_users != Some(false),
    };
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
        errs.extend(validate_common(&c.into(), &ctx, &path));
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &c.name));
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        errs.extend(validate_common(&c.into(), &ctx, &path));
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &c.name));
        }
    }
    let others = names.clone();
    for (i, ec) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        errs.extend(validate_common(&ec.into(), &ctx, &path));
        // Ephemeral containers get `validateContainerOnlyForPod` here, right after the
        // common checks (`validateEphemeralContainers`).
        errs.extend(image_whitespace_error(ec.image.as_deref(), &path));
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
        errs.extend(validate_ephemeral_allow_list(ec, &path));
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
    // `ValidatePodSecurityContext` (`validatePodSpecSecurityContext` in later releases), after
    // all containers as in `ValidatePodSpec`. The internal type keeps `shareProcessNamespace`
    // and `hostPID` in the pod's security context, hence the path.
    let psc = spec.security_context.as_ref();
    if let Some(psc) = psc {
        if let Some(gid) = psc.fs_group {
            errs.extend(id_range_errors("spec.securityContext.fsGroup".into(), gid));
        }
        if let Some(uid) = psc.run_as_user {
            errs.extend(id_range_errors(
                "spec.securityContext.runAsUser".into(),
                uid,
            ));
        }
        if let Some(gid) = psc.run_as_group {
            errs.extend(id_range_errors(
                "spec.securityContext.runAsGroup".into(),
                gid,
            ));
        }
        for (g, gid) in psc.supplemental_groups.iter().flatten().enumerate() {
            errs.extend(id_range_errors(
                format!("spec.securityContext.supplementalGroups[{g}]"),
                *gid,
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(FieldError::invalid_unquoted(
            "spec.securityContext.shareProcessNamespace",
            "true",
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if let Some(psc) = psc {
        errs.extend(validate_seccomp_profile(
            psc.seccomp_profile.as_ref(),
            "spec.securityContext.seccompProfile",
        ));
        errs.extend(validate_app_armor_profile(
            psc.app_armor_profile.as_ref(),
            "spec.securityContext.appArmorProfile",
        ));
    }
    if spec.os.as_ref().is_some_and(|os| os.name == "windows") {
        errs.extend(validate_windows(spec));
    }
    // `validateContainersOnlyForPod`, after the whole spec: containers, then init containers.
    for (i, c) in spec.containers.iter().enumerate() {
        errs.extend(image_whitespace_error(
            c.image.as_deref(),
            &format!("spec.containers[{i}]"),
        ));
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        errs.extend(image_whitespace_error(
            c.image.as_deref(),
            &format!("spec.initContainers[{i}]"),
        ));
    }
    errs
}

/// `validateWindows` (`validateOS` for `spec.os.name: windows`): the Linux-only fields of the
/// pod's securityContext, then of each container's (init, regular, ephemeral, as
/// `VisitContainersWithPath` walks them), each "cannot be set for a windows pod".
fn validate_windows(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<FieldError> {
    // In `validateWindows`'s order. The internal type keeps the host namespace fields and
    // shareProcessNamespace in the pod's securityContext, but names them by the spec's own path.
    const POD_FIELDS: &[(&str, &str)] = &[
        ("appArmorProfile", "spec.securityContext.appArmorProfile"),
        ("seLinuxOptions", "spec.securityContext.seLinuxOptions"),
        ("hostUsers", "spec.hostUsers"),
        ("hostPID", "spec.hostPID"),
        ("hostIPC", "spec.hostIPC"),
        ("seccompProfile", "spec.securityContext.seccompProfile"),
        ("fsGroup", "spec.securityContext.fsGroup"),
        (
            "fsGroupChangePolicy",
            "spec.securityContext.fsGroupChangePolicy",
        ),
        ("sysctls", "spec.securityContext.sysctls"),
        ("shareProcessNamespace", "spec.shareProcessNamespace"),
        ("runAsUser", "spec.securityContext.runAsUser"),
        ("runAsGroup", "spec.securityContext.runAsGroup"),
        (
            "supplementalGroups",
            "spec.securityContext.supplementalGroups",
        ),
        (
            "supplementalGroupsPolicy",
            "spec.securityContext.supplementalGroupsPolicy",
        ),
        (
            "seLinuxChangePolicy",
            "spec.securityContext.seLinuxChangePolicy",
        ),
    ];
    const CONTAINER_FIELDS: &[&str] = &[
        "appArmorProfile",
        "seLinuxOptions",
        "seccompProfile",
        "capabilities",
        "readOnlyRootFilesystem",
        "privileged",
        "allowPrivilegeEscalation",
        "procMount",
        "runAsUser",
        "runAsGroup",
    ];
    const WHY: &str = "cannot be set for a windows pod";
    let mut errs = Vec::new();
    let present = |sc: &Value, field: &str| match &sc[field] {
        Value::Null => false,
        // The internal type holds sysctls and supplementalGroups as slices: only a non-empty
        // one is "set".
        Value::Array(items) if matches!(field, "sysctls" | "supplementalGroups") => {
            !items.is_empty()
        }
        _ => true,
    };
    let mut pod_sc = spec
        .security_context
        .as_ref()
        .and_then(|sc| serde_json::to_value(sc).ok())
        .unwrap_or(Value::Null);
    if let Some(share) = spec.share_process_namespace {
        pod_sc["shareProcessNamespace"] = Value::Bool(share);
    }
    if let Some(host_users) = spec.host_users {
        pod_sc["hostUsers"] = Value::Bool(host_users);
    }
    // hostPID and hostIPC are plain bools in the internal type: only `true` is "set".
    if spec.host_pid == Some(true) {
        pod_sc["hostPID"] = Value::Bool(true);
    }
    if spec.host_ipc == Some(true) {
        pod_sc["hostIPC"] = Value::Bool(true);
    }
    for (field, path) in POD_FIELDS {
        if present(&pod_sc, field) {
            errs.push(FieldError::forbidden(*path, WHY));
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("spec.initContainers[{i}]"),
                c.security_context.as_ref(),
            )
        })
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c.security_context.as_ref())),
        )
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| {
                    (
                        format!("spec.ephemeralContainers[{i}]"),
                        c.security_context.as_ref(),
                    )
                }),
        );
    for (path, sc) in containers {
        let sc = sc
            .and_then(|sc| serde_json::to_value(sc).ok())
            .unwrap_or(Value::Null);
        for field in CONTAINER_FIELDS {
            if present(&sc, field) {
                errs.push(FieldError::forbidden(
                    format!("{path}.securityContext.{field}"),
                    WHY,
                ));
            }
        }
    }
    errs
}

/// How a field of `core.EphemeralContainerCommon` compares with its zero value.
#[derive(Clone, Copy)]
enum GoKind {
    /// A string: zero when absent, `null` or `""`.
    String,
    /// A bool: zero when absent, `null` or `false`.
    Bool,
    /// A slice, map or pointer: zero only when absent or `null` — `[]`, `{}` and `""` (for a
    /// `*string`) decode to non-nil values.
    Nilable,
    /// A struct of nilable members (`ResourceRequirements`): zero when absent, `null` or an
    /// object whose members are all absent or `null`.
    Struct,
}

/// The fields of `core.EphemeralContainerCommon` (Kubernetes 1.33), in the struct's order,
/// with their JSON names and whether `allowedEphemeralContainerFields` allows them. The
/// allow-list maps `Ports`, `Resources`, the probes and `Lifecycle` to false and leaves out
/// `ResizePolicy` and `RestartPolicy`: all of these are forbidden once set.
const EPHEMERAL_CONTAINER_FIELDS: &[(&str, &str, bool, GoKind)] = &[
    ("Name", "name", true, GoKind::String),
    ("Image", "image", true, GoKind::String),
    ("Command", "command", true, GoKind::Nilable),
    ("Args", "args", true, GoKind::Nilable),
    ("WorkingDir", "workingDir", true, GoKind::String),
    ("Ports", "ports", false, GoKind::Nilable),
    ("EnvFrom", "envFrom", true, GoKind::Nilable),
    ("Env", "env", true, GoKind::Nilable),
    ("Resources", "resources", false, GoKind::Struct),
    ("ResizePolicy", "resizePolicy", false, GoKind::Nilable),
    ("RestartPolicy", "restartPolicy", false, GoKind::Nilable),
    ("VolumeMounts", "volumeMounts", true, GoKind::Nilable),
    ("VolumeDevices", "volumeDevices", true, GoKind::Nilable),
    ("LivenessProbe", "livenessProbe", false, GoKind::Nilable),
    ("ReadinessProbe", "readinessProbe", false, GoKind::Nilable),
    ("StartupProbe", "startupProbe", false, GoKind::Nilable),
    ("Lifecycle", "lifecycle", false, GoKind::Nilable),
    (
        "TerminationMessagePath",
        "terminationMessagePath",
        true,
        GoKind::String,
    ),
    (
        "TerminationMessagePolicy",
        "terminationMessagePolicy",
        true,
        GoKind::String,
    ),
    ("ImagePullPolicy", "imagePullPolicy", true, GoKind::String),
    ("SecurityContext", "securityContext", true, GoKind::Nilable),
    ("Stdin", "stdin", true, GoKind::Bool),
    ("StdinOnce", "stdinOnce", true, GoKind::Bool),
    ("TTY", "tty", true, GoKind::Bool),
];

/// Whether a JSON value decodes to the Go zero value of a field of this kind.
fn is_go_zero(v: Option<&Value>, kind: GoKind) -> bool {
    match (v, kind) {
        (None | Some(Value::Null), _) => true,
        (Some(Value::String(s)), GoKind::String) => s.is_empty(),
        (Some(Value::Bool(b)), GoKind::Bool) => !b,
        (Some(Value::Object(m)), GoKind::Struct) => m.values().all(Value::is_null),
        _ => false,
    }
}

/// `validateFieldAllowList(ec.EphemeralContainerCommon, allowedEphemeralContainerFields, …)`:
/// every field not allowed whose value is not its zero value (`reflect.DeepEqual`) is
/// forbidden, named as Go lower-cases the field's first letter. The container is read as
/// JSON, which keeps what the request said: a `[]` or `{}` is set, `null` or absent is not.
fn validate_ephemeral_allow_list(ec: &EphemeralContainer, path: &str) -> Vec<FieldError> {
    let json = serde_json::to_value(ec).unwrap_or_default();
    EPHEMERAL_CONTAINER_FIELDS
        .iter()
        .filter(|(_, key, allowed, kind)| !allowed && !is_go_zero(json.get(*key), *kind))
        .map(|(go_name, ..)| {
            let mut chars = go_name.chars();
            let lc: String = chars
                .next()
                .map(|c| c.to_ascii_lowercase())
                .into_iter()
                .chain(chars)
                .collect();
            FieldError::forbidden(format!("{path}.{lc}"), EPHEMERAL_FORBIDDEN)
        })
        .collect()
}

/// `ValidatePodCreate`: the pod itself, no ephemeral containers on create, and AppArmor
/// annotations that agree with the profile fields.
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
    errs.extend(validate_app_armor_annotations_match(pod));
    errs
}

/// `validateAppArmorAnnotationsAndFieldsMatchOnCreate`: where a container (or, for it, the
/// pod) has a profile field and the deprecated annotation is set too, both must say the same
/// (the creation's sync fills in whichever is missing, so only a contradiction remains).
/// Windows pods are not checked.
fn validate_app_armor_annotations_match(pod: &Pod) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return errs;
    };
    if spec.os.as_ref().is_some_and(|os| os.name == "windows") {
        return errs;
    }
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.app_armor_profile.as_ref());
    let mut check = |c: &Common<'_>, path: String| {
        let Some(profile) = c
            .security_context
            .and_then(|sc| sc.app_armor_profile.as_ref())
            .or(pod_profile)
        else {
            return;
        };
        let key = format!("container.apparmor.security.beta.kubernetes.io/{}", c.name);
        let Some(annotation) = annotations.get(&key) else {
            return;
        };
        let aa = format!("{path}.securityContext.appArmorProfile");
        let type_mismatch = || {
            FieldError::forbidden(
                format!("{aa}.type"),
                "apparmor type in annotation and field must match",
            )
        };
        match profile.type_.as_str() {
            "Unconfined" if annotation != "unconfined" => errs.push(type_mismatch()),
            "RuntimeDefault" if annotation != "runtime/default" => errs.push(type_mismatch()),
            "Localhost" => match annotation.strip_prefix("localhost/") {
                None => errs.push(type_mismatch()),
                Some(name) if profile.localhost_profile.as_deref() != Some(name) => {
                    errs.push(FieldError::forbidden(
                        format!("{aa}.localhostProfile"),
                        "apparmor profile in annotation and field must match",
                    ))
                }
                Some(_) => {}
            },
            _ => {}
        }
    };
    // VisitContainersWithPath: init containers, containers, ephemeral containers.
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        check(&c.into(), format!("spec.initContainers[{i}]"));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        check(&c.into(), format!("spec.containers[{i}]"));
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        check(&c.into(), format!("spec.ephemeralContainers[{i}]"));
    }
    errs
}

/// The annotation the kubelet puts on the mirror pod of a static pod (`core.MirrorPodAnnotationKey`).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// `ValidatePodEphemeralContainersUpdate`: the new pod, and existing ephemeral containers
/// neither removed nor changed. A static pod's mirror (the old pod carries
/// [`MIRROR_POD_ANNOTATION`]) takes none at all: the real function then returns that one
/// error alone, `Forbidden` at the empty path — its kubelet runs the pod from a file on the
/// node and never reads ephemeral containers from the API (kubernetes#113935).
pub fn validate_ephemeral_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mirror = old
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
    if mirror {
        return vec![FieldError::forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
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
    fn a_windows_pod_refuses_linux_only_fields() {
        let mut dbg = ec("dbg");
        dbg["securityContext"] = json!({
            "runAsNonRoot": true,
            "windowsOptions": {"runAsUserName": "ContainerUser"},
            "capabilities": {"drop": ["SETUID"]},
            "allowPrivilegeEscalation": false
        });
        let mut p = pod(json!([dbg]));
        let linux = validate_pod(&p);
        assert_eq!(linux.len(), 0, "{linux:?}");
        let spec = p.spec.as_mut().unwrap();
        spec.os = Some(k8s_openapi::api::core::v1::PodOS {
            name: "windows".into(),
        });
        spec.share_process_namespace = Some(true);
        spec.host_users = Some(true);
        spec.host_ipc = Some(true);
        // false is Go's zero value: not "set".
        spec.host_pid = Some(false);
        spec.security_context = Some(k8s_openapi::api::core::v1::PodSecurityContext {
            run_as_non_root: Some(true),
            supplemental_groups: Some(vec![]),
            se_linux_change_policy: Some("Recursive".into()),
            ..Default::default()
        });
        let got: Vec<String> = validate_pod(&p).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "spec.hostUsers: Forbidden: cannot be set for a windows pod",
                "spec.hostIPC: Forbidden: cannot be set for a windows pod",
                "spec.shareProcessNamespace: Forbidden: cannot be set for a windows pod",
                "spec.securityContext.seLinuxChangePolicy: Forbidden: cannot be set for a windows pod",
                "spec.ephemeralContainers[0].securityContext.capabilities: Forbidden: cannot be set for a windows pod",
                "spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation: Forbidden: cannot be set for a windows pod",
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

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    /// A pod with one regular container `app`, shaped by `f` (JSON), and the given ephemeral containers.
    fn pod_with(f: impl FnOnce(&mut serde_json::Value), ecs: serde_json::Value) -> Pod {
        let mut v = serde_json::to_value(pod(ecs)).unwrap();
        f(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn share_process_namespace_with_host_pid() {
        let both = pod_with(
            |v| {
                v["spec"]["hostPID"] = json!(true);
                v["spec"]["shareProcessNamespace"] = json!(true);
            },
            json!([]),
        );
        assert_eq!(
            messages(&validate_pod(&both)),
            vec![
                "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"
            ]
        );
        // Create and update validate the spec alike.
        assert_eq!(validate_create(&both), validate_pod(&both));
        // Either alone is fine, and so is shareProcessNamespace: false next to hostPID.
        for (pid, share) in [(true, false), (false, true)] {
            let p = pod_with(
                |v| {
                    v["spec"]["hostPID"] = json!(pid);
                    v["spec"]["shareProcessNamespace"] = json!(share);
                },
                json!([]),
            );
            assert!(validate_pod(&p).is_empty(), "{pid} {share}");
        }
    }

    #[test]
    fn allow_privilege_escalation_false_conflicts() {
        let sc = |extra: serde_json::Value| {
            let mut sc = json!({"allowPrivilegeEscalation": false});
            sc.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            sc
        };
        // Regular, init and ephemeral containers alike.
        let mut dbg = ec("dbg");
        dbg["securityContext"] =
            sc(json!({"capabilities": {"add": ["CAP_SYS_ADMIN", "NET_ADMIN"]}}));
        let p = pod_with(
            |v| {
                v["spec"]["containers"][0]["securityContext"] = sc(json!({"privileged": true}));
                v["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox",
                    "imagePullPolicy": "Always", "terminationMessagePolicy": "File",
                    "securityContext": sc(json!({"privileged": true, "capabilities": {"add": ["CAP_SYS_ADMIN"]}}))}]);
            },
            json!([dbg]),
        );
        let got = messages(&validate_pod(&p));
        let value = |priv_set: bool, caps_set: bool| {
            format!(
                "core.SecurityContext{{Capabilities:(*core.Capabilities)({}), Privileged:(*bool)({}), SELinuxOptions:(*core.SELinuxOptions)(nil), WindowsOptions:(*core.WindowsSecurityContextOptions)(nil), RunAsUser:(*int64)(nil), RunAsGroup:(*int64)(nil), RunAsNonRoot:(*bool)(nil), ReadOnlyRootFilesystem:(*bool)(nil), AllowPrivilegeEscalation:(*bool)(0xc000100040), ProcMount:(*core.ProcMountType)(nil), SeccompProfile:(*core.SeccompProfile)(nil), AppArmorProfile:(*core.AppArmorProfile)(nil)}}",
                if caps_set { "0xc000100000" } else { "nil" },
                if priv_set { "0xc000100008" } else { "nil" },
            )
        };
        const PRIV: &str =
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true";
        const CAP: &str =
            "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN";
        assert_eq!(
            got,
            vec![
                format!(
                    "spec.containers[0].securityContext: Invalid value: {}: {PRIV}",
                    value(true, false)
                ),
                format!(
                    "spec.initContainers[0].securityContext: Invalid value: {}: {PRIV}",
                    value(true, true)
                ),
                format!(
                    "spec.initContainers[0].securityContext: Invalid value: {}: {CAP}",
                    value(true, true)
                ),
                format!(
                    "spec.ephemeralContainers[0].securityContext: Invalid value: {}: {CAP}",
                    value(false, true)
                ),
            ]
        );
        // Only the literal CAP_SYS_ADMIN, only with allowPrivilegeEscalation false.
        let mut ok = ec("dbg");
        ok["securityContext"] = sc(json!({"capabilities": {"add": ["SYS_ADMIN"]}}));
        let mut unset = ec("dbg2");
        unset["securityContext"] =
            json!({"privileged": true, "capabilities": {"add": ["CAP_SYS_ADMIN"]}});
        assert!(validate_pod(&pod(json!([ok, unset]))).is_empty());
    }

    #[test]
    fn env_var_names() {
        // The harness is 1.33: RelaxedEnvironmentVariableValidation is beta and on.
        assert!(relaxed_env_var_names());
        let mut dbg = ec("dbg");
        dbg["env"] = json!([
            {"name": "1ST VAR", "value": "ok when relaxed"},
            {"name": "..PATH", "value": "ok when relaxed"},
            {"name": "A=B", "value": "x"},
            {"name": "TAB\tBED", "value": "x"},
            {"name": "CAFÉ", "value": "x"},
            {"name": "", "value": "x"}
        ]);
        const RELAXED: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";
        assert_eq!(
            messages(&validate_pod(&pod(json!([dbg])))),
            vec![
                format!(
                    r#"spec.ephemeralContainers[0].env[2].name: Invalid value: "A=B": {RELAXED}"#
                ),
                format!(
                    r#"spec.ephemeralContainers[0].env[3].name: Invalid value: "TAB\tBED": {RELAXED}"#
                ),
                format!(
                    r#"spec.ephemeralContainers[0].env[4].name: Invalid value: "CAFÉ": {RELAXED}"#
                ),
                "spec.ephemeralContainers[0].env[5].name: Required value".to_string(),
            ]
        );
        // Before 1.32 (the gate off) the strict IsEnvVarName applies.
        assert_eq!(
            env_var_name_errors("MY_ENV.name-1", false),
            Vec::<&str>::new()
        );
        assert_eq!(env_var_name_errors("1ST", false), vec![ENV_VAR_NAME_MSG]);
        assert_eq!(env_var_name_errors("MY VAR", false), vec![ENV_VAR_NAME_MSG]);
        assert_eq!(
            env_var_name_errors("..PATH", false),
            vec!["must not start with '..'"]
        );
        assert_eq!(env_var_name_errors("..", false), vec!["must not be '..'"]);
        assert_eq!(env_var_name_errors("MY VAR", true), Vec::<&str>::new());
    }

    #[test]
    fn resize_policy_with_restart_policy_never() {
        let resize = json!([
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "RestartContainer"}
        ]);
        let never = |resize: serde_json::Value| {
            pod_with(
                |v| {
                    v["spec"]["restartPolicy"] = json!("Never");
                    v["spec"]["containers"][0]["resizePolicy"] = resize;
                },
                json!([]),
            )
        };
        assert_eq!(
            messages(&validate_pod(&never(resize.clone()))),
            vec![
                r#"spec.containers[0].resizePolicy: Invalid value: "RestartContainer": must be 'NotRequired' when `restartPolicy` is 'Never'"#
            ]
        );
        assert!(
            validate_pod(&never(
                json!([{"resourceName": "memory", "restartPolicy": "NotRequired"}])
            ))
            .is_empty()
        );
        // Any other pod restart policy takes either.
        for policy in ["Always", "OnFailure"] {
            let p = pod_with(
                |v| {
                    v["spec"]["restartPolicy"] = json!(policy);
                    v["spec"]["containers"][0]["resizePolicy"] = resize.clone();
                },
                json!([]),
            );
            assert!(validate_pod(&p).is_empty(), "{policy}");
        }
        // The rest of validateResizePolicy.
        let bad = never(json!([
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "cpu", "restartPolicy": "Sometimes"}
        ]));
        assert_eq!(
            messages(&validate_pod(&bad)),
            vec![
                r#"spec.containers[0].resizePolicy[1]: Duplicate value: "cpu""#,
                r#"spec.containers[0].resizePolicy: Unsupported value: "Sometimes": supported values: "NotRequired", "RestartContainer""#,
                r#"spec.containers[0].resizePolicy: Invalid value: "Sometimes": must be 'NotRequired' when `restartPolicy` is 'Never'"#,
            ]
        );
    }

    #[test]
    fn ephemeral_allow_list_counts_empty_values() {
        // What Go decodes to a non-nil value is set, however empty.
        let mut empty = ec("dbg");
        empty["ports"] = json!([]);
        empty["resources"] = json!({"limits": {}});
        empty["resizePolicy"] = json!([]);
        empty["restartPolicy"] = json!("");
        empty["livenessProbe"] = json!({});
        empty["lifecycle"] = json!({});
        assert_eq!(
            messages(&validate_pod(&pod(json!([empty])))),
            [
                "ports",
                "resources",
                "resizePolicy",
                "restartPolicy",
                "livenessProbe",
                "lifecycle"
            ]
            .map(|f| format!(
                "spec.ephemeralContainers[0].{f}: Forbidden: cannot be set for an Ephemeral Container"
            ))
        );
        let mut claims = ec("dbg");
        claims["resources"] = json!({"claims": []});
        assert_eq!(
            messages(&validate_pod(&pod(json!([claims])))),
            vec![
                "spec.ephemeralContainers[0].resources: Forbidden: cannot be set for an Ephemeral Container"
            ]
        );
        // null, absent and an empty resources object are the zero value.
        let mut zero = ec("dbg");
        zero["ports"] = json!(null);
        zero["resources"] = json!({});
        zero["resizePolicy"] = json!(null);
        zero["restartPolicy"] = json!(null);
        zero["startupProbe"] = json!(null);
        let mut zero2 = ec("dbg2");
        zero2["resources"] = json!({"limits": null, "requests": null});
        assert!(validate_pod(&pod(json!([zero, zero2]))).is_empty());
        // Allowed fields may be set.
        let mut allowed = ec("dbg");
        allowed["command"] = json!([]);
        allowed["stdin"] = json!(true);
        allowed["tty"] = json!(true);
        allowed["securityContext"] = json!({});
        assert!(validate_pod(&pod(json!([allowed]))).is_empty());
    }
}
