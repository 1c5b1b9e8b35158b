//! The policy file format, `kspy.dev/v1alpha1` `DebugPolicy`, exactly as platform teams write it.
//!
//! Every struct refuses unknown fields: a misspelt `capabilites:` must be an error, not a
//! grant that silently does nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::classify::Action;

/// The API version of policy and policy-test documents.
pub const API_VERSION: &str = "kspy.dev/v1alpha1";
/// The kind of a policy document.
pub const KIND: &str = "DebugPolicy";
/// The kind of a policy test-suite document (loaded by [`crate::testing`], skipped here).
pub const TEST_KIND: &str = "DebugPolicyTest";

/// One `DebugPolicy` document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyDocument {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// Name and labels.
    #[serde(deserialize_with = "crate::json_object::object")]
    pub metadata: Metadata,
    /// The policy.
    #[serde(deserialize_with = "crate::json_object::object")]
    pub spec: PolicySpec,
}

/// Object metadata of a policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The policy name, unique across the loaded set.
    pub name: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// What a policy does with the requests it applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Mode {
    /// Grants count, failed validations deny.
    #[default]
    Enforce,
    /// Grants nothing; failed validations become warnings to the user. A `grant` or
    /// `defaults` is refused at load: they act only in Enforce mode.
    Warn,
    /// Grants nothing; failed validations become audit annotations only. A `grant` or
    /// `defaults` is refused at load, as for Warn.
    Audit,
}

impl Mode {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "Enforce",
            Mode::Warn => "Warn",
            Mode::Audit => "Audit",
        }
    }
}

/// The body of a policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// What the policy is for, shown in denials that point at it.
    #[serde(default)]
    pub description: Option<String>,
    /// Enforce (default), Warn or Audit.
    #[serde(default)]
    pub mode: Mode,
    /// Static match: omitted or empty field = any; list items are OR, fields are AND. (An empty
    /// `users`, `groups` or `serviceAccounts` on a policy that grants, with none of the three
    /// naming anyone, loads with a warning: it grants to everyone.)
    #[serde(
        default,
        rename = "match",
        deserialize_with = "crate::json_object::object"
    )]
    pub match_: MatchSpec,
    /// Named CEL expressions, evaluated in order and visible to later ones as `variables.NAME`.
    #[serde(default, deserialize_with = "crate::json_object::objects")]
    pub variables: Vec<NamedExpression>,
    /// CEL expressions that must all be true for the policy to apply.
    #[serde(default, deserialize_with = "crate::json_object::objects")]
    pub conditions: Vec<NamedExpression>,
    /// What the policy allows.
    #[serde(default, deserialize_with = "crate::json_object::object")]
    pub grant: GrantSpec,
    /// CEL guardrails with ValidatingAdmissionPolicy semantics.
    #[serde(default, deserialize_with = "crate::json_object::objects")]
    pub validations: Vec<ValidationSpec>,
    /// Defaults injected by `/mutate`.
    #[serde(default, deserialize_with = "crate::json_object::object")]
    pub defaults: DefaultsSpec,
}

/// The static match of a policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchSpec {
    /// attach | copy | node.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Namespace globs.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespace globs that never match.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// Label selector on the request's namespace (needs the Namespace object).
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    pub namespace_selector: Option<LabelSelectorSpec>,
    /// Group globs (any of the user's groups).
    #[serde(default)]
    pub groups: Vec<String>,
    /// User-name globs.
    #[serde(default)]
    pub users: Vec<String>,
    /// Service accounts as `NAMESPACE/NAME` globs.
    #[serde(default)]
    pub service_accounts: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorSpec {
    /// Labels that must have exactly these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, deserialize_with = "crate::json_object::objects")]
    pub match_expressions: Vec<LabelRequirementSpec>,
}

impl std::fmt::Display for LabelSelectorSpec {
    /// kubectl's selector syntax: `env=production,team in (a,b),debug,!frozen`; `(any)` for a
    /// selector without requirements, which every Namespace satisfies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.extend(self.match_expressions.iter().map(|r| match r.operator {
            LabelOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
            LabelOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            LabelOperator::Exists => r.key.clone(),
            LabelOperator::DoesNotExist => format!("!{}", r.key),
        }));
        if parts.is_empty() {
            f.write_str("(any)")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// One set-based label requirement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelRequirementSpec {
    /// The label key.
    pub key: String,
    /// In | NotIn | Exists | DoesNotExist.
    pub operator: LabelOperator,
    /// Values for In and NotIn.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LabelOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A named CEL expression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedExpression {
    /// The name, used in messages (and as `variables.NAME` for variables).
    pub name: String,
    /// The CEL expression.
    pub expression: String,
}

/// A CEL validation rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidationSpec {
    /// Must evaluate to true.
    pub expression: String,
    /// Shown when it does not: one line (a line break, or a blank message, is a load
    /// error); empty or left out, the rule is shown (`failed rule: EXPRESSION`).
    #[serde(default)]
    pub message: Option<String>,
    /// A CEL expression producing the message (wins over `message` when it yields a string).
    #[serde(default)]
    pub message_expression: Option<String>,
}

/// What a policy grants. Grants of all applicable Enforce policies add up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrantSpec {
    /// Image globs on the normalized reference.
    #[serde(default)]
    pub images: Vec<String>,
    /// Capabilities that may be added; `ALL` only if listed.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// May run as root, or as another user that may become root (`allowPrivilegeEscalation`
    /// not `false`, and a setuid-root program in the image).
    #[serde(default)]
    pub run_as_root: bool,
    /// May be privileged (also allowPrivilegeEscalation, procMount Unmasked,
    /// seccomp/AppArmor Unconfined; for copy and node pods host ports, unsafe sysctls and
    /// probe hosts; and mounting a `gitRepo` volume the kubelet clones on the node).
    #[serde(default)]
    pub privileged: bool,
    /// Which pod volumes may be mounted (`volumeMounts`) or handed over as raw block devices
    /// (`volumeDevices`, judged as writable mounts); `all` also covers Secrets in the
    /// environment and DRA resource claims a container uses (`resources.claims`).
    #[serde(default)]
    pub mount_volumes: VolumeGrant,
    /// Host namespaces that may be shared.
    #[serde(default)]
    pub host_namespaces: Vec<HostNamespace>,
    /// Host path prefixes that may be mounted: `- /var/log` grants read-write mounts (and
    /// read-only ones), `- {path: /var/log, readOnly: true}` read-only mounts only. A mode
    /// suffix as `--mount` writes it (`/var/log:ro`) is refused at load. A read-write entry
    /// other than `/` loads with a warning: the kubelet follows symbolic links, so whoever
    /// writes below the prefix can make a later mount below it reach anywhere on the node.
    #[serde(default)]
    pub host_paths: Vec<HostPathGrantSpec>,
}

/// Which pod volumes may be mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeGrant {
    /// No pod volume.
    #[default]
    None,
    /// Any volume but Secrets and projected Secret / service-account-token volumes.
    NonSecret,
    /// Every volume; also env taken from Secrets.
    All,
}

/// A host namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HostNamespace {
    /// hostPID
    Pid,
    /// hostNetwork
    Network,
    /// hostIPC
    Ipc,
}

impl HostNamespace {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HostNamespace::Pid => "pid",
            HostNamespace::Network => "network",
            HostNamespace::Ipc => "ipc",
        }
    }
}

/// A host path grant: a prefix, matched segment by segment; `readOnly: true` allows only
/// read-only mounts.
#[derive(Debug, Clone)]
pub enum HostPathGrantSpec {
    /// `- /var/log` — read-write allowed (the short form grants writing too).
    Path(String),
    /// `- {path: /, readOnly: true}`
    Detailed(HostPathGrantDetail),
}

/// The two shapes, for every error about an entry of another.
const HOST_PATH_SHAPES: &str = "a hostPaths entry is either a path, `- /var/log` (read-write), \
                                or `- {path: /var/log, readOnly: true}`";

impl<'de> Deserialize<'de> for HostPathGrantSpec {
    /// Decoded by hand rather than `#[serde(untagged)]`, whose only error is "did not match
    /// any variant": a typo in the long form (`readonly`, `readOnly: "yes"`) is reported with
    /// its field, beside the two accepted shapes.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(path) => Ok(HostPathGrantSpec::Path(path)),
            value @ serde_json::Value::Object(_) => {
                serde_path_to_error::deserialize::<_, HostPathGrantDetail>(value)
                    .map(HostPathGrantSpec::Detailed)
                    .map_err(|e| {
                        let path = e.path().to_string();
                        let at = if path == "." {
                            String::new()
                        } else {
                            format!("{path}: ")
                        };
                        D::Error::custom(format!("{at}{}; {HOST_PATH_SHAPES}", e.into_inner()))
                    })
            }
            other => Err(D::Error::custom(format!(
                "expected a path or a mapping, found {}; {HOST_PATH_SHAPES}",
                match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    _ => "a list",
                }
            ))),
        }
    }
}

/// The long form of a host path grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathGrantDetail {
    /// The prefix.
    pub path: String,
    /// Only read-only mounts.
    #[serde(default)]
    pub read_only: bool,
}

/// Defaults injected by `/mutate` into the new debug containers; a field the user set is
/// never changed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultsSpec {
    /// Which container an ephemeral container targets when it names none.
    #[serde(default)]
    pub target_container: Option<TargetContainer>,
    /// Mirror the target container's volume mounts.
    #[serde(default)]
    pub mount_target_volumes: Option<MountTargetVolumes>,
    /// Always | IfNotPresent | Never, for a container that arrives without one. A real API
    /// server defaults `imagePullPolicy` while decoding the request, before admission webhooks
    /// run, so in a cluster this applies only to hand-made reviews; it is kept so that policy
    /// files written for it still load, each with a load warning that says so.
    #[serde(default)]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Extra environment variables, each name once (a name the container already has is
    /// never added).
    #[serde(default, deserialize_with = "crate::json_object::objects")]
    pub env: Vec<EnvDefault>,
    /// A partial container securityContext; only absent fields are filled in. Kept as JSON so
    /// the patch adds only what is written, but checked at load against k8s-openapi's
    /// `SecurityContext`: an unknown field (`runAsUsr`), at any depth, or a wrong type is
    /// refused with its path.
    #[serde(default)]
    pub security_context: Option<serde_json::Value>,
    /// Adjust the securityContext to the namespace's Pod Security level.
    #[serde(default)]
    pub pod_security: Option<PodSecurityDefault>,
}

impl DefaultsSpec {
    /// True when no default is set (`defaults: {}` or none).
    pub fn is_empty(&self) -> bool {
        self.target_container.is_none()
            && self.mount_target_volumes.is_none()
            && self.image_pull_policy.is_none()
            && self.env.is_empty()
            && self.security_context.is_none()
            && self.pod_security.is_none()
    }
}

/// `defaults.targetContainer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetContainer {
    /// The pod's first container.
    First,
    /// The pod's container only when it has exactly one.
    Sole,
    /// Leave unset.
    None,
}

/// `defaults.mountTargetVolumes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MountTargetVolumes {
    /// Mirror the target's mounts read-only.
    ReadOnly,
    /// Mirror them as the target has them.
    AsTarget,
    /// Do not mirror.
    None,
}

/// `defaults.imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ImagePullPolicy {
    /// Always pull.
    Always,
    /// Pull when absent.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// One default environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvDefault {
    /// The variable name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// `defaults.podSecurity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PodSecurityDefault {
    /// Fill in what the namespace's enforced Pod Security level requires.
    Conform,
    /// Do nothing.
    None,
}
