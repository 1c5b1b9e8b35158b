//! Building the debug container from the command-line flags: base fields as `kubectl debug`
//! sets them, then the profile, then `--custom`, then `--cap` and `--as-target-user`.
//!
//! Everything here is pure: it takes the pod as read from the API and returns the container,
//! so each flag is covered by golden-file tests without a cluster.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, EphemeralContainer, Pod, PodSpec, VolumeMount,
};
use rand::Rng;
use serde_json::Value;

use crate::errors::{KspyError, missing_with_candidates};
use crate::merge::merge_container;
use crate::profile::{Profile, Style, add_capability};

/// The default debug image, as kubectl.
pub const DEFAULT_IMAGE: &str = "busybox:latest";

/// kubectl's alphabet for random name suffixes (no vowels, no look-alikes).
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The environment variable carrying `--reason`.
pub const REASON_ENV: &str = "KSPY_REASON";

/// The pod annotation kubectl reads for the default container.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Fields `--custom` may not set, as kubectl debug's `--custom` may not: `name`, `command` and
/// `image` come from flags; `lifecycle` and `volumeDevices` no flag sets.
const CUSTOM_FORBIDDEN: [&str; 5] = ["name", "command", "image", "lifecycle", "volumeDevices"];

/// Why `--custom` may not set `field`, one of [`CUSTOM_FORBIDDEN`].
fn custom_forbidden_why(field: &str) -> &'static str {
    match field {
        "name" => "comes from --name, not from --custom",
        "image" => "comes from --image, not from --custom",
        "command" => "comes from the words after --, not from --custom",
        _ => "--custom may not set, as kubectl debug --custom may not",
    }
}

/// The only fields the API allows on ephemeral containers (`allowedEphemeralContainerFields`
/// in the API server's validation; `targetContainerName` is the ephemeral container's own).
/// An allow-list, as the API server's, so that a container field the list does not know
/// (`ports`, probes, `resources`, `resizePolicy`, `restartPolicy`…) is refused here too.
const EPHEMERAL_ALLOWED: [&str; 16] = [
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "envFrom",
    "env",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
];

/// The volume-mount fields the API refuses on ephemeral containers ("cannot be set for an
/// Ephemeral Container"): their bind mounts outlive the container.
const EPHEMERAL_FORBIDDEN_MOUNT_FIELDS: [&str; 2] = ["subPath", "subPathExpr"];

/// What holds a container name `--name` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenBy {
    /// One of the pod's own containers or init containers.
    PodsOwn,
    /// A debug container that runs: `--reuse` attaches to it.
    RunningDebug,
    /// A debug container that does not run (terminated, or not started), described: it can
    /// never run again, and `--reuse` attaches only to running ones.
    StoppedDebug(String),
}

impl TakenBy {
    /// What holds `name` in `pod`: a debug container (running or not), else a container of the
    /// pod's own.
    pub fn of(pod: &Pod, name: &str) -> TakenBy {
        let debug = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .is_some_and(|e| e.iter().any(|c| c.name == name));
        if !debug {
            return TakenBy::PodsOwn;
        }
        match crate::wait::state_of(pod, name) {
            crate::wait::State::Running => TakenBy::RunningDebug,
            other => TakenBy::StoppedDebug(other.describe()),
        }
    }
}

/// Why a debug container could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `-c/--target` (or `--set-image`) names no container of the pod.
    #[error("container {wanted} not found in pod {pod}")]
    UnknownContainer {
        /// The flag that named it: `-c/--target` or `--set-image`.
        flag: &'static str,
        /// The pod.
        pod: String,
        /// The name asked for.
        wanted: String,
        /// The containers that exist.
        existing: Vec<String>,
    },
    /// `--name` is already used in the pod.
    #[error("a container named {name} already exists in pod {pod}")]
    NameTaken {
        /// The name.
        name: String,
        /// The pod.
        pod: String,
        /// What holds the name, which decides the hint.
        taken_by: TakenBy,
    },
    /// `--mount` names no volume of the pod.
    #[error("volume {volume} not found in pod {pod}")]
    UnknownVolume {
        /// The pod.
        pod: String,
        /// The volume asked for.
        volume: String,
        /// The volumes that exist.
        existing: Vec<String>,
    },
    /// A flag value that does not parse.
    #[error("invalid {flag} value {value:?}: {why}")]
    InvalidFlag {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--custom` sets a field it may not.
    #[error("--custom file sets {field}, which {why}")]
    CustomField {
        /// The field.
        field: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// `--custom` file cannot be read or parsed.
    #[error("cannot use --custom file {path}: {why}")]
    Custom {
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// A flag needs a target container and the pod has no unambiguous one.
    #[error("{flag} needs a target container; pod {pod} has several ({})", .existing.join(", "))]
    NeedsTarget {
        /// The flag.
        flag: &'static str,
        /// The pod.
        pod: String,
        /// The containers.
        existing: Vec<String>,
    },
    /// `--cap` adds a capability the `--custom` file drops by name.
    #[error(
        "--cap {cap} is also dropped by the --custom file (securityContext.capabilities.drop: {dropped})"
    )]
    CapDropped {
        /// The capability, as `--cap` gave it.
        cap: String,
        /// The drop list's entry naming it.
        dropped: String,
    },
    /// `kspy copy --fork` with `-c` naming an init container that is no sidecar: put to sleep,
    /// it would never complete, and the pod's containers, the debug container among them,
    /// start only after it has.
    #[error("--fork cannot put container {container} to sleep: it is an init container of pod {pod}{}", if *.dropped { ", and --keep-init-containers=false leaves it out of the copy" } else { "" })]
    ForkInitContainer {
        /// The init container `-c` names.
        container: String,
        /// The source pod.
        pod: String,
        /// `--keep-init-containers=false` dropped it from the copy.
        dropped: bool,
        /// Its image, for the hint.
        image: String,
        /// The pod's containers, which `--fork` can put to sleep.
        containers: Vec<String>,
    },
    /// `--as-target-user` and the target's user is not in its spec.
    #[error("--as-target-user: container {target} sets no runAsUser, and neither does its pod")]
    TargetUserUnknown {
        /// The target container.
        target: String,
    },
}

impl From<BuildError> for KspyError {
    fn from(e: BuildError) -> Self {
        let headline = e.to_string();
        match e {
            BuildError::UnknownContainer { flag, wanted, existing, .. } => {
                let e = missing_with_candidates(headline, "container", &wanted, &existing);
                // Far from every container's name, it is rather kubectl debug's `-c NAME` for
                // the new container than a misspelt target.
                if flag == TARGET_FLAG && !existing.iter().any(|c| crate::errors::edit_distance(&wanted, c) <= 2) {
                    e.hint(crate::TARGET_NOT_NAME)
                } else {
                    e
                }
            }
            BuildError::UnknownVolume { volume, existing, .. } => {
                missing_with_candidates(headline, "volume", &volume, &existing)
            }
            BuildError::NameTaken { taken_by: TakenBy::RunningDebug, .. } => {
                KspyError::new(headline).details(["it is a running debug container"])
                    .hint("leave out --name for a generated one, or add --reuse to attach to it")
            }
            BuildError::NameTaken { taken_by: TakenBy::StoppedDebug(state), .. } => {
                KspyError::new(headline)
                    .details([format!("it is a debug container that does not run ({state}); ephemeral containers cannot be restarted, and --reuse attaches only to running ones")])
                    .hint("pick another --name, or leave it out for a generated one")
            }
            BuildError::NameTaken { taken_by: TakenBy::PodsOwn, .. } => {
                KspyError::new(headline).details(["it is one of the pod's own containers, not a debug container"])
                    .hint("pick another --name, or leave it out for a generated one")
            }
            BuildError::ForkInitContainer { container, image, containers, dropped, .. } => {
                let why = if dropped {
                    "a container left out cannot sleep".to_string()
                } else {
                    format!("the pod's containers, the debug container among them, start only once {container} has completed, and asleep it never would: the copy would wait for good")
                };
                KspyError::new(headline).details([why]).hint(format!(
                    "to look into {container}, copy the pod without it and run its image as the debug container (--keep-init-containers=false --image {} -- sh); or put one of the pod's containers to sleep with -c: {}",
                    if image.is_empty() { "IMAGE" } else { image.as_str() },
                    containers.join(", ")
                ))
            }
            BuildError::NeedsTarget { .. } => KspyError::new(headline).hint("name it with -c/--target CONTAINER"),
            BuildError::CapDropped { .. } => KspyError::new(headline)
                .details(["a capability both added and dropped by name is up to the container runtime, so the debug container may start without it"])
                .hint("remove it from the --custom file's drop list, or leave out --cap"),
            BuildError::TargetUserUnknown { .. } => KspyError::new(headline)
                .hint("the image's own user applies, which kspy cannot read; set --custom with securityContext.runAsUser"),
            other => KspyError::new(headline).source(other),
        }
    }
}

/// A `--mount VOLUME:PATH[:ro]` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The pod volume.
    pub volume: String,
    /// The absolute path in the debug container.
    pub path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl std::str::FromStr for MountSpec {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| BuildError::InvalidFlag {
            flag: "--mount",
            value: s.to_string(),
            why: why.to_string(),
        };
        let mut parts = s.split(':');
        let volume = parts.next().unwrap_or_default();
        let path = parts
            .next()
            .ok_or_else(|| bad("expected VOLUME:PATH[:ro]"))?;
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return Err(bad("the third part must be ro or rw")),
        };
        if parts.next().is_some() {
            return Err(bad("expected VOLUME:PATH[:ro]"));
        }
        if volume.is_empty() {
            return Err(bad("the volume name is empty"));
        }
        if !path.starts_with('/') {
            return Err(bad("the mount path must be absolute"));
        }
        if path.split('/').any(|part| part == "..") {
            return Err(bad(
                "the mount path must not contain '..'; write the directory it means",
            ));
        }
        let path = clean_mount_path(path);
        if path == "/" {
            return Err(bad(
                "a volume cannot be mounted over the container's /; mount it at a directory \
                 such as /mnt/VOLUME",
            ));
        }
        Ok(MountSpec {
            volume: volume.to_string(),
            path,
            read_only,
        })
    }
}

/// A mount path as the container runtime reads it: `//`, `/./` and a trailing `/` collapsed
/// (`/data/` and `/data` are one place). The API server compares mount paths as strings only,
/// so two spellings of one place would both be sent, the second mount hiding the first.
pub fn clean_mount_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Parses `NAME=VALUE` (the value may contain `=`, the name cannot). The name must be one the
/// API server accepts even in its relaxed check (`IsRelaxedEnvVarName`): not empty, printable
/// ASCII characters only (space included). Servers without relaxed validation accept fewer:
/// letters, digits, `_`, `-` and `.`, not starting with a digit.
pub fn parse_env(s: &str) -> Result<(String, String), BuildError> {
    let bad = |why: String| BuildError::InvalidFlag {
        flag: "--env",
        value: s.to_string(),
        why,
    };
    let Some((name, value)) = s.split_once('=') else {
        return Err(bad("expected NAME=VALUE".to_string()));
    };
    if name.is_empty() {
        return Err(bad("expected NAME=VALUE; the name is empty".to_string()));
    }
    if let Some(c) = name.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(bad(format!(
            "the name contains {c:?}; the API server accepts only printable ASCII characters \
             in environment variable names"
        )));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Normalizes a capability as the admission engine does: upper-case, `CAP_` prefix stripped.
pub fn normalize_capability(s: &str) -> Result<String, BuildError> {
    let upper = s.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(BuildError::InvalidFlag {
            flag: "--cap",
            value: s.to_string(),
            why: "a capability is a name like SYS_PTRACE".to_string(),
        });
    }
    Ok(name.to_string())
}

/// Checks a Kubernetes object name (DNS-1123 label: lower-case alphanumerics and `-`, at most 63).
pub fn validate_dns_label(flag: &'static str, name: &str) -> Result<(), BuildError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidFlag {
            flag,
            value: name.to_string(),
            why: "must be lower-case letters, digits and '-', at most 63 characters".to_string(),
        })
    }
}

/// Checks an object name that may contain dots (DNS-1123 subdomain, at most 253).
pub fn validate_dns_subdomain(flag: &'static str, name: &str) -> Result<(), BuildError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidFlag {
            flag,
            value: name.to_string(),
            why: if name.len() > 253 {
                format!(
                    "is {} characters long; a DNS subdomain has at most 253",
                    name.len()
                )
            } else {
                "must be a DNS subdomain: lower-case letters, digits, '-' and '.', each \
                 dot-separated part starting and ending with a letter or digit"
                    .to_string()
            },
        })
    }
}

/// Every container name used in a pod: containers, init and ephemeral containers.
pub fn used_names(spec: &PodSpec) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    names.extend(
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone()),
    );
    names.extend(
        spec.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone()),
    );
    names
}

/// `n` random characters from kubectl's alphabet.
pub fn random_suffix(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())]))
        .collect()
}

/// `debugger-` and 5 random characters, unused in the pod.
pub fn generate_name(spec: Option<&PodSpec>, rng: &mut impl Rng) -> String {
    let used = spec.map(used_names).unwrap_or_default();
    loop {
        let name = format!("debugger-{}", random_suffix(rng, 5));
        if !used.contains(&name) {
            return name;
        }
    }
}

/// Two `--mount` flags at one path: an error naming both.
pub fn duplicate_mount_paths(mounts: &[MountSpec]) -> Result<(), BuildError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Some(first) = mounts[..i].iter().find(|f| f.path == m.path) {
            return Err(BuildError::InvalidFlag {
                flag: "--mount",
                value: m.to_string(),
                why: format!(
                    "--mount {first} and --mount {m} both mount at {}; give each path once",
                    m.path
                ),
            });
        }
    }
    Ok(())
}

impl std::fmt::Display for MountSpec {
    /// The flag's spelling: `VOLUME:PATH`, or `VOLUME:PATH:ro`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.volume, self.path)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

/// The most of a `--custom` file kspy reads: a container spec, however complete, is far less.
pub const MAX_CUSTOM_BYTES: u64 = 1024 * 1024;

/// Reads a `--custom` file: a partial container spec in JSON or YAML.
///
/// Refused: anything but an object, a value of the wrong type, a field a container does not
/// have (a misspelling would otherwise be dropped without a word), the fields that come
/// from flags (`name`, `image`, `command`, `lifecycle`, `volumeDevices`), and more than
/// [`MAX_CUSTOM_BYTES`].
pub fn load_custom(path: &Path) -> Result<Value, BuildError> {
    use std::io::Read;
    let err = |why: String| BuildError::Custom {
        path: path.display().to_string(),
        why,
    };
    // Counted while reading: a device (`/dev/zero`) says nothing of its size and was read
    // until memory ran out.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CUSTOM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| err(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_CUSTOM_BYTES {
        return Err(err(format!(
            "it holds more than {MAX_CUSTOM_BYTES} bytes; a partial container spec is a few lines"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| err("it is not UTF-8 text".to_string()))?;
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            serde_saphyr::from_str(&text).map_err(|e| err(format!("neither JSON nor YAML: {e}")))?
        }
    };
    let Some(obj) = value.as_object() else {
        return Err(err(
            "expected a partial container spec (an object)".to_string()
        ));
    };
    if let Some(field) = CUSTOM_FORBIDDEN.iter().find(|f| obj.contains_key(**f)) {
        return Err(err(format!(
            "it sets {field}, which {}",
            custom_forbidden_why(field)
        )));
    }
    // It must be a container: decode it, and find the fields the decoding dropped.
    let container = serde_json::from_value::<Container>(merge_name(&value))
        .map_err(|e| err(format!("not a container spec: {e}")))?;
    let kept =
        serde_json::to_value(&container).map_err(|e| err(format!("not a container spec: {e}")))?;
    let mut unknown = Vec::new();
    unknown_fields(&value, &kept, &mut String::new(), &mut unknown);
    if !unknown.is_empty() {
        let plural = if unknown.len() == 1 { "" } else { "s" };
        return Err(err(format!(
            "unknown field{plural} {} (see `kubectl explain pod.spec.containers` for the fields \
             of a container)",
            unknown.join(", ")
        )));
    }
    if let Some(why) = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.capabilities.as_ref())
        .and_then(misspelt_capability)
    {
        return Err(err(why));
    }
    Ok(value)
}

/// The first name in a `capabilities` list of a `--custom` file that the container runtime
/// would not read as the capability it names, and why. containerd puts `CAP_` before each name
/// it adds or drops and trims nothing, and runc ignores a name it does not know: `CAP_SYS_PTRACE`
/// (`CAP_CAP_SYS_PTRACE` there), ` SYS_PTRACE` or `SYS_PTRAC` would add or drop nothing, in
/// silence — while kspy's webhook reads them as the capability meant. Case is free: containerd
/// upper-cases each name.
fn misspelt_capability(caps: &k8s_openapi::api::core::v1::Capabilities) -> Option<String> {
    let lists = [("add", &caps.add), ("drop", &caps.drop)];
    for (list, names) in lists {
        for (i, name) in names.iter().flatten().enumerate() {
            let at = format!("securityContext.capabilities.{list}[{i}] {name:?}");
            let upper = name.to_ascii_uppercase();
            if name.trim() != name {
                return Some(format!(
                    "{at} has white space around it, which no runtime trims; write {:?}",
                    name.trim()
                ));
            }
            if let Some(bare) = upper.strip_prefix("CAP_") {
                return Some(format!(
                    "{at}: write {bare:?}, without CAP_ (containerd puts CAP_ before each name, \
                     and CAP_{upper} is no capability: it would {list} nothing)"
                ));
            }
            if let Some(why) = crate::args::unknown_capability(&upper) {
                return Some(format!(
                    "{at}: {why} (the container runtime would {list} nothing for it)"
                ));
            }
        }
    }
    None
}

/// The paths (`securityContext.capabilitis`, `env[0].valu`) of the fields of `input` that are
/// not in `kept`, its decoded and re-encoded form. Null values are skipped: they remove a
/// field in the merge and are never kept.
fn unknown_fields(input: &Value, kept: &Value, path: &mut String, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i {
                if value.is_null() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match k.get(key) {
                    Some(kept_value) => unknown_fields(value, kept_value, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (value, kept_value)) in i.iter().zip(k).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{n}]"));
                unknown_fields(value, kept_value, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn merge_name(custom: &Value) -> Value {
    let mut v = custom.clone();
    if let Value::Object(m) = &mut v {
        m.entry("name").or_insert_with(|| Value::String("x".into()));
    }
    v
}

/// Which container a new ephemeral container targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChoice {
    /// This container, named by the user with `-c`: never dropped.
    Named(String),
    /// This container, picked by kspy since nothing was named: the pod's only container, or
    /// the one its default-container annotation names — for `kspy attach`, none when an
    /// admission webhook refuses it as target but admits the container without one.
    Picked {
        /// The container picked.
        name: String,
        /// Why kspy picked it.
        by: PickedBy,
    },
    /// The pod has several containers and nothing says which: the kspy webhook's policy
    /// default decides, else the first container (`first`) — for `kspy attach`, none when an
    /// admission webhook refuses `first` as target but admits the container without one.
    Ambiguous {
        /// The pod's first container.
        first: String,
    },
}

/// Why kspy picked a target container the user did not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickedBy {
    /// It is the pod's only container.
    OnlyContainer,
    /// The pod's `kubectl.kubernetes.io/default-container` annotation names it.
    Annotation,
    /// It is the first of the pod's containers.
    FirstContainer,
}

impl PickedBy {
    /// What the container is to the pod, as notes say it ("the pod's only container").
    pub fn describe(self) -> &'static str {
        match self {
            PickedBy::OnlyContainer => "the pod's only container",
            PickedBy::Annotation => {
                "the pod's default container (annotation kubectl.kubernetes.io/default-container)"
            }
            PickedBy::FirstContainer => "the pod's first container",
        }
    }
}

impl TargetChoice {
    /// The target container's name when known.
    pub fn name(&self) -> Option<&str> {
        match self {
            TargetChoice::Named(n) | TargetChoice::Picked { name: n, .. } => Some(n),
            TargetChoice::Ambiguous { .. } => None,
        }
    }
}

/// The flag that names the target container, as errors name it.
pub const TARGET_FLAG: &str = "-c/--target";

/// Decides the target container of `pod` for `-c/--target` = `requested`.
pub fn resolve_target(pod: &Pod, requested: Option<&str>) -> Result<TargetChoice, BuildError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers: Vec<String> = spec
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    if let Some(wanted) = requested {
        let init = spec.and_then(|s| s.init_containers.as_ref());
        let exists = containers.iter().any(|c| c == wanted)
            || init.into_iter().flatten().any(|c| c.name == wanted);
        // The names offered for a misspelt one: the pod's containers and its sidecars, the
        // init containers that run alongside them (`restartPolicy: Always`, as a service
        // mesh's proxy) and are debugged as often. Other init containers have completed by the
        // time the pod runs: accepted when named, but nothing to suggest.
        let sidecars = init
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .map(|c| c.name.clone());
        return if exists {
            Ok(TargetChoice::Named(wanted.to_string()))
        } else {
            Err(BuildError::UnknownContainer {
                flag: TARGET_FLAG,
                pod: pod_name,
                wanted: wanted.to_string(),
                existing: containers.into_iter().chain(sidecars).collect(),
            })
        };
    }
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|n| containers.contains(n));
    if let Some(name) = annotated {
        return Ok(TargetChoice::Picked {
            name: name.clone(),
            by: PickedBy::Annotation,
        });
    }
    match containers.as_slice() {
        [] => Err(BuildError::UnknownContainer {
            flag: TARGET_FLAG,
            pod: pod_name,
            wanted: String::new(),
            existing: Vec::new(),
        }),
        [only] => Ok(TargetChoice::Picked {
            name: only.clone(),
            by: PickedBy::OnlyContainer,
        }),
        [first, ..] => Ok(TargetChoice::Ambiguous {
            first: first.clone(),
        }),
    }
}

/// The debug container's settings, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpecBuilder {
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// `imagePullPolicy`, when given.
    pub image_pull_policy: Option<String>,
    /// Keep stdin open (`-i`).
    pub stdin: bool,
    /// Allocate a TTY (`-t`).
    pub tty: bool,
    /// The command after `--`.
    pub command: Vec<String>,
    /// The words after `--` are `args`, not `command`.
    pub arguments_only: bool,
    /// `--env` pairs, in order.
    pub env: Vec<(String, String)>,
    /// `--reason`, sent as `KSPY_REASON`.
    pub reason: Option<String>,
    /// `--cap`, normalized.
    pub caps: Vec<String>,
    /// `--profile`.
    pub profile: Profile,
    /// `--custom`, the partial container spec.
    pub custom: Option<Value>,
    /// `--mount`.
    pub mounts: Vec<MountSpec>,
    /// `--mount-target`.
    pub mount_target: bool,
    /// `--env-from-target`.
    pub env_from_target: bool,
    /// `--as-target-user`.
    pub as_target_user: bool,
}

impl ContainerSpecBuilder {
    /// Builds the debug container for a pod copy or a node pod.
    ///
    /// `pod` is the pod whose volumes `--mount` may use and whose security context
    /// `--as-target-user` falls back on; `target` the container `--mount-target`,
    /// `--env-from-target` and `--as-target-user` copy from.
    pub fn build(
        &self,
        style: Style,
        pod: Option<&Pod>,
        target: Option<&str>,
    ) -> Result<Container, BuildError> {
        let pod_name = pod
            .and_then(|p| p.metadata.name.clone())
            .unwrap_or_default();
        let spec = pod.and_then(|p| p.spec.as_ref());
        let target_container = spec.zip(target).and_then(|(s, t)| find_container(s, t));
        let needs_target = |flag: &'static str| BuildError::NeedsTarget {
            flag,
            pod: pod_name.clone(),
            existing: spec
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default(),
        };

        validate_dns_label("--name", &self.name)?;
        if let Err(why) = crate::args::parse_image(&self.image) {
            return Err(BuildError::InvalidFlag {
                flag: "--image",
                value: self.image.clone(),
                why,
            });
        }

        let mut c = Container {
            name: self.name.clone(),
            image: Some(self.image.clone()),
            image_pull_policy: self.image_pull_policy.clone(),
            stdin: self.stdin.then_some(true),
            tty: self.tty.then_some(true),
            termination_message_policy: Some("File".to_string()),
            ..Container::default()
        };
        if !self.command.is_empty() {
            if self.arguments_only {
                c.args = Some(self.command.clone());
            } else {
                c.command = Some(self.command.clone());
            }
        }

        // Environment: the target's, then --env, then the reason.
        let mut env: Vec<EnvVar> = Vec::new();
        if self.env_from_target {
            let t = target_container.ok_or_else(|| needs_target("--env-from-target"))?;
            env.extend(t.env.iter().flatten().cloned().map(|mut var| {
                // A resourceFieldRef without containerName reads the limits of the container
                // that holds it: in the debug container (an ephemeral one has none) it would
                // read the node's allocatable, not the target's limit. It names the target.
                if let Some(field) = var
                    .value_from
                    .as_mut()
                    .and_then(|v| v.resource_field_ref.as_mut())
                    .filter(|f| f.container_name.as_deref().is_none_or(str::is_empty))
                {
                    field.container_name = Some(t.name.clone());
                }
                var
            }));
            c.env_from = t.env_from.clone();
        }
        let mut set_env = |name: &str, value: &str| {
            let var = EnvVar {
                name: name.to_string(),
                value: Some(value.to_string()),
                value_from: None,
            };
            match env.iter_mut().find(|e| e.name == name) {
                Some(existing) => *existing = var,
                None => env.push(var),
            }
        };
        for (k, v) in &self.env {
            set_env(k, v);
        }
        if let Some(reason) = &self.reason {
            set_env(REASON_ENV, reason);
        }
        if !env.is_empty() {
            c.env = Some(env);
        }

        // Mounts: the target's, read-only, then --mount.
        let mut mounts: Vec<VolumeMount> = Vec::new();
        if self.mount_target {
            let t = target_container.ok_or_else(|| needs_target("--mount-target"))?;
            // The API server refuses subPath and subPathExpr on an ephemeral container, and
            // the whole volume where one file of it was meant would mislead: such mounts are
            // left out ([`Self::unmirrored_mounts`] says which). A copy's debug container is a
            // regular container and keeps them.
            let mirrored = t
                .volume_mounts
                .iter()
                .flatten()
                .filter(|m| style != Style::Ephemeral || !has_sub_path(m));
            mounts.extend(mirrored.map(|m| VolumeMount {
                name: m.name.clone(),
                mount_path: m.mount_path.clone(),
                sub_path: m.sub_path.clone(),
                sub_path_expr: m.sub_path_expr.clone(),
                read_only: Some(true),
                ..VolumeMount::default()
            }));
        }
        let volumes: Vec<String> = spec
            .and_then(|s| s.volumes.as_ref())
            .map(|v| v.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default();
        duplicate_mount_paths(&self.mounts)?;
        for m in &self.mounts {
            if !volumes.contains(&m.volume) {
                return Err(BuildError::UnknownVolume {
                    pod: pod_name.clone(),
                    volume: m.volume.clone(),
                    existing: volumes.clone(),
                });
            }
            let mount = VolumeMount {
                name: m.volume.clone(),
                mount_path: m.path.clone(),
                read_only: m.read_only.then_some(true),
                ..VolumeMount::default()
            };
            match mounts
                .iter_mut()
                .find(|x| clean_mount_path(&x.mount_path) == m.path)
            {
                Some(existing) => *existing = mount,
                None => mounts.push(mount),
            }
        }
        if !mounts.is_empty() {
            c.volume_mounts = Some(mounts);
        }

        self.profile.apply_container(style, &mut c);

        if let Some(custom) = &self.custom {
            c = apply_custom(c, custom)?;
        }

        // A drop of ALL is the usual base for adding a few (the restricted profile's way); a
        // drop naming the very capability asked for contradicts the flag.
        let dropped = c
            .security_context
            .as_ref()
            .and_then(|sc| sc.capabilities.as_ref())
            .and_then(|caps| caps.drop.as_deref())
            .unwrap_or_default();
        for cap in &self.caps {
            if let Some(d) = dropped
                .iter()
                .find(|d| normalize_capability(d).is_ok_and(|n| &n == cap))
            {
                return Err(BuildError::CapDropped {
                    cap: cap.clone(),
                    dropped: d.clone(),
                });
            }
        }
        for cap in &self.caps {
            add_capability(&mut c, cap);
        }

        if self.as_target_user {
            let t = target_container.ok_or_else(|| needs_target("--as-target-user"))?;
            let pod_sc = spec.and_then(|s| s.security_context.as_ref());
            let csc = t.security_context.as_ref();
            let user = csc
                .and_then(|s| s.run_as_user)
                .or(pod_sc.and_then(|s| s.run_as_user));
            let group = csc
                .and_then(|s| s.run_as_group)
                .or(pod_sc.and_then(|s| s.run_as_group));
            let Some(user) = user else {
                return Err(BuildError::TargetUserUnknown {
                    target: t.name.clone(),
                });
            };
            let sc = c.security_context.get_or_insert_with(Default::default);
            sc.run_as_user = Some(user);
            if group.is_some() {
                sc.run_as_group = group;
            }
            if user != 0 && sc.run_as_non_root.is_none() {
                // Say so, which also lets Pod Security "restricted" admit it.
                sc.run_as_non_root = Some(true);
            }
        }
        Ok(c)
    }

    /// What `--mount-target` leaves out of the ephemeral container it builds from container
    /// `target` of `pod`, one line each: the target's mounts of a `subPath` or `subPathExpr`
    /// of a volume, which the API server refuses on ephemeral containers. Empty without
    /// `--mount-target`; a mount that a `--mount` at the same path replaces is not listed.
    pub fn unmirrored_mounts(&self, pod: &Pod, target: &str) -> Vec<String> {
        if !self.mount_target {
            return Vec::new();
        }
        let Some(t) = pod.spec.as_ref().and_then(|s| find_container(s, target)) else {
            return Vec::new();
        };
        t.volume_mounts
            .iter()
            .flatten()
            .filter(|m| {
                has_sub_path(m)
                    && !self
                        .mounts
                        .iter()
                        .any(|f| f.path == clean_mount_path(&m.mount_path))
            })
            .map(|m| {
                let (field, sub) = match m.sub_path.as_deref().filter(|p| !p.is_empty()) {
                    Some(p) => ("subPath", p),
                    None => (
                        "subPathExpr",
                        m.sub_path_expr.as_deref().unwrap_or_default(),
                    ),
                };
                format!(
                    "volume {:?} of container {target:?} was not mounted at {}: the target \
                     mounts {field} {sub:?} of it, which an ephemeral container cannot; mount \
                     the whole volume elsewhere with --mount {}:PATH:ro",
                    m.name, m.mount_path, m.name
                )
            })
            .collect()
    }

    /// Builds the ephemeral container for `kspy attach`: the name must be free in `pod`, and
    /// `target` becomes `targetContainerName` (unset when `None`).
    ///
    /// `reference` is the container `--mount-target` & co. copy from: the target, or, when the
    /// target is left to the webhook, the container it will most likely pick.
    pub fn build_ephemeral(
        &self,
        pod: &Pod,
        target: Option<&str>,
        reference: Option<&str>,
    ) -> Result<EphemeralContainer, BuildError> {
        if let Some(spec) = pod.spec.as_ref()
            && used_names(spec).contains(&self.name)
        {
            return Err(BuildError::NameTaken {
                name: self.name.clone(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                taken_by: TakenBy::of(pod, &self.name),
            });
        }
        let c = self.build(Style::Ephemeral, Some(pod), reference.or(target))?;
        to_ephemeral(c, target)
    }
}

/// Container `name` of `spec`, among its containers and init containers.
fn find_container<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// Whether a mount is of a part of its volume (`subPath` or `subPathExpr`).
fn has_sub_path(m: &VolumeMount) -> bool {
    [&m.sub_path, &m.sub_path_expr]
        .iter()
        .any(|p| p.as_deref().is_some_and(|p| !p.is_empty()))
}

/// Applies a `--custom` partial container spec.
fn apply_custom(c: Container, custom: &Value) -> Result<Container, BuildError> {
    if let Some(obj) = custom.as_object() {
        for field in CUSTOM_FORBIDDEN {
            if obj.contains_key(field) {
                return Err(BuildError::CustomField {
                    field: field.to_string(),
                    why: custom_forbidden_why(field),
                });
            }
        }
    }
    let name = c.name.clone();
    let mut value = serde_json::to_value(&c).map_err(|e| BuildError::Custom {
        path: "-".into(),
        why: e.to_string(),
    })?;
    merge_container(&mut value, custom);
    let mut merged: Container = serde_json::from_value(value).map_err(|e| BuildError::Custom {
        path: "-".into(),
        why: format!("the merged container is not valid: {e}"),
    })?;
    merged.name = name;
    Ok(merged)
}

/// Whether `value` leaves the container field `field` at Go's zero value, which is what the
/// API server's allow-list of ephemeral-container fields compares with: null does, and so
/// does `resources` (a struct, not a pointer) with no member set, as `kubectl get -o yaml`
/// prints it (`resources: {}`). An empty list or an empty object elsewhere is set.
fn is_unset(field: &str, value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(members) if field == "resources" => members.values().all(Value::is_null),
        _ => false,
    }
}

/// The first field of `container` (a container, or a `--custom` spec, as JSON) that the API
/// refuses on ephemeral containers; a null field (`--custom` removing it) is none.
fn ephemeral_refusal(container: &serde_json::Map<String, Value>) -> Option<BuildError> {
    if let Some((field, _)) = container
        .iter()
        .find(|(k, v)| !is_unset(k, v) && !EPHEMERAL_ALLOWED.contains(&k.as_str()))
    {
        return Some(BuildError::CustomField {
            field: field.clone(),
            why: "ephemeral containers may not have",
        });
    }
    // Only --custom can bring these: --mount-target leaves such mounts out.
    let mounts = container.get("volumeMounts").and_then(Value::as_array);
    for (i, mount) in mounts.into_iter().flatten().enumerate() {
        for field in EPHEMERAL_FORBIDDEN_MOUNT_FIELDS {
            if mount[field].as_str().is_some_and(|v| !v.is_empty()) {
                return Some(BuildError::CustomField {
                    field: format!("volumeMounts[{i}].{field}"),
                    why: "ephemeral containers may not have; mount the whole volume instead",
                });
            }
        }
    }
    None
}

/// Checks a `--custom` spec for an ephemeral container (`kspy attach`) before anything is
/// sent: `Err` names a field the API refuses there and says which ones it allows, for a usage
/// error.
pub fn check_ephemeral_custom(custom: &Value) -> Result<(), String> {
    let Some(refused) = custom.as_object().and_then(ephemeral_refusal) else {
        return Ok(());
    };
    let allowed: Vec<&str> = EPHEMERAL_ALLOWED
        .into_iter()
        .filter(|f| !CUSTOM_FORBIDDEN.contains(f))
        .collect();
    // restartPolicy is refused on a copy's regular containers too: no copy to point to.
    let elsewhere = if matches!(&refused, BuildError::CustomField { field, .. } if field == "restartPolicy")
    {
        String::new()
    } else {
        format!(
            "; `{} copy` makes a debug container that may have ports, probes, resources and \
             resizePolicy",
            crate::prog()
        )
    };
    Err(format!(
        "{refused} (an ephemeral container's --custom file may set only {}, and no subPath or \
         subPathExpr in volumeMounts{elsewhere})",
        allowed.join(", "),
    ))
}

/// Turns a built container into an ephemeral container, refusing what the API refuses there.
fn to_ephemeral(c: Container, target: Option<&str>) -> Result<EphemeralContainer, BuildError> {
    let mut value = serde_json::to_value(&c).map_err(|e| BuildError::Custom {
        path: "-".into(),
        why: e.to_string(),
    })?;
    if let Value::Object(m) = &mut value {
        if let Some(refused) = ephemeral_refusal(m) {
            return Err(refused);
        }
        if let Some(t) = target {
            m.insert("targetContainerName".into(), Value::String(t.to_string()));
        }
    }
    serde_json::from_value(value).map_err(|e| BuildError::Custom {
        path: "-".into(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    pub(crate) fn web_pod() -> Pod {
        golden::fixture_pod("pod-web.json")
    }

    fn builder() -> ContainerSpecBuilder {
        ContainerSpecBuilder {
            name: "debugger-tst42".into(),
            image: DEFAULT_IMAGE.into(),
            stdin: true,
            tty: true,
            ..ContainerSpecBuilder::default()
        }
    }

    fn ec_json(b: &ContainerSpecBuilder, target: Option<&str>) -> Value {
        let pod = web_pod();
        let ec = b.build_ephemeral(&pod, target, None).expect("builds");
        serde_json::to_value(ec).expect("json")
    }

    #[test]
    fn every_profile_matches_golden() {
        let mut all = serde_json::Map::new();
        for p in crate::profile::ALL {
            let b = ContainerSpecBuilder {
                profile: p,
                ..builder()
            };
            all.insert(p.name().to_string(), ec_json(&b, Some("app")));
        }
        golden::assert_golden("attach-profiles.json", &Value::Object(all));
    }

    #[test]
    fn flags_match_golden() {
        let b = ContainerSpecBuilder {
            image: "registry.example.com/debug/tools:1.2".into(),
            image_pull_policy: Some("IfNotPresent".into()),
            command: vec!["strace".into(), "-p".into(), "1".into()],
            env: vec![("A".into(), "1".into()), ("B".into(), "x=y".into())],
            reason: Some("INC-1234 latency".into()),
            caps: vec!["NET_ADMIN".into(), "SYS_PTRACE".into()],
            mounts: vec![
                "config:/cfg:ro".parse().expect("mount"),
                "scratch:/scratch".parse().expect("mount"),
            ],
            ..builder()
        };
        golden::assert_golden("attach-flags.json", &ec_json(&b, Some("app")));
    }

    #[test]
    fn mount_target_env_from_target_as_target_user_match_golden() {
        let b = ContainerSpecBuilder {
            mount_target: true,
            env_from_target: true,
            as_target_user: true,
            env: vec![("LOG_LEVEL".into(), "debug".into())],
            ..builder()
        };
        let v = ec_json(&b, Some("app"));
        // Behaviour first, then the whole shape.
        let mounts = v["volumeMounts"].as_array().expect("mounts");
        assert!(!mounts.is_empty());
        assert!(
            mounts.iter().all(|m| m["readOnly"] == json!(true)),
            "{mounts:?}"
        );
        assert_eq!(v["securityContext"]["runAsUser"], json!(1000));
        assert!(
            v["env"]
                .as_array()
                .expect("env")
                .iter()
                .any(|e| e["name"] == "LOG_LEVEL" && e["value"] == "debug")
        );
        golden::assert_golden("attach-target-mirror.json", &v);
    }

    #[test]
    fn custom_is_merged_after_profile_and_before_caps() {
        let custom = json!({
            "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_RAW"]}},
            "env": [{"name": "A", "value": "from-custom"}],
            "volumeMounts": [{"name": "config", "mountPath": "/cfg", "readOnly": true}],
            "workingDir": "/tmp"
        });
        let b = ContainerSpecBuilder {
            custom: Some(custom),
            env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            caps: vec!["SYS_ADMIN".into()],
            ..builder()
        };
        let v = ec_json(&b, Some("app"));
        // general's SYS_PTRACE is replaced by the custom list (strategic merge replaces plain
        // lists), then --cap adds SYS_ADMIN.
        assert_eq!(
            v["securityContext"]["capabilities"]["add"],
            json!(["NET_RAW", "SYS_ADMIN"])
        );
        assert_eq!(
            v["env"],
            json!([{"name": "A", "value": "from-custom"}, {"name": "B", "value": "2"}])
        );
        golden::assert_golden("attach-custom.json", &v);
    }

    #[test]
    fn a_cap_the_custom_file_drops_by_name_is_refused_and_drop_all_is_not() {
        for drop in ["SYS_PTRACE", "sys_ptrace", "CAP_SYS_PTRACE"] {
            let b = ContainerSpecBuilder {
                custom: Some(json!({"securityContext": {"capabilities": {"drop": [drop]}}})),
                caps: vec!["SYS_PTRACE".into()],
                ..builder()
            };
            let err = b
                .build_ephemeral(&web_pod(), Some("app"), None)
                .expect_err("refused");
            assert!(
                matches!(&err, BuildError::CapDropped { cap, dropped } if cap == "SYS_PTRACE" && dropped == drop),
                "{err}"
            );
            assert!(err.to_string().contains("--cap SYS_PTRACE"), "{err}");
        }
        // Dropping everything and adding one back is the restricted way, not a contradiction.
        let b = ContainerSpecBuilder {
            custom: Some(
                json!({"securityContext": {"capabilities": {"drop": ["ALL", "NET_RAW"]}}}),
            ),
            caps: vec!["SYS_PTRACE".into()],
            ..builder()
        };
        let v = ec_json(&b, Some("app"));
        assert_eq!(
            v["securityContext"]["capabilities"],
            json!({"add": ["SYS_PTRACE"], "drop": ["ALL", "NET_RAW"]})
        );
    }

    #[test]
    fn custom_refuses_fields_from_flags_and_ephemeral_forbidden_ones() {
        for field in ["name", "image", "command"] {
            let b = ContainerSpecBuilder {
                custom: Some(json!({field: "x"})),
                ..builder()
            };
            let err = b
                .build_ephemeral(&web_pod(), Some("app"), None)
                .expect_err("refused");
            assert!(
                matches!(err, BuildError::CustomField { field: ref f, .. } if f == field),
                "{err}"
            );
        }
        let b = ContainerSpecBuilder {
            custom: Some(json!({"ports": [{"containerPort": 80}]})),
            ..builder()
        };
        let err = b
            .build_ephemeral(&web_pod(), Some("app"), None)
            .expect_err("refused");
        assert!(err.to_string().contains("ports"), "{err}");
    }

    #[test]
    fn mount_target_leaves_sub_path_mounts_out_of_ephemeral_containers_and_says_so() {
        let mut pod = web_pod();
        if let Some(app) = pod.spec.as_mut().map(|s| &mut s.containers[0]) {
            let mounts = app.volume_mounts.get_or_insert_with(Vec::new);
            mounts.push(VolumeMount {
                name: "config".into(),
                mount_path: "/etc/web/app.yaml".into(),
                sub_path: Some("app.yaml".into()),
                ..VolumeMount::default()
            });
            mounts.push(VolumeMount {
                name: "data".into(),
                mount_path: "/var/log/web".into(),
                sub_path_expr: Some("$(POD_NAME)".into()),
                ..VolumeMount::default()
            });
        }
        let b = ContainerSpecBuilder {
            mount_target: true,
            ..builder()
        };
        let ec = b.build_ephemeral(&pod, Some("app"), None).expect("builds");
        let paths: Vec<&str> = ec
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "/etc/web",
                "/var/lib/web",
                "/var/run/secrets/kubernetes.io/serviceaccount"
            ],
            "the API server refuses subPath and subPathExpr on ephemeral containers"
        );
        assert_eq!(
            b.unmirrored_mounts(&pod, "app"),
            [
                "volume \"config\" of container \"app\" was not mounted at /etc/web/app.yaml: \
                 the target mounts subPath \"app.yaml\" of it, which an ephemeral container \
                 cannot; mount the whole volume elsewhere with --mount config:PATH:ro",
                "volume \"data\" of container \"app\" was not mounted at /var/log/web: the \
                 target mounts subPathExpr \"$(POD_NAME)\" of it, which an ephemeral container \
                 cannot; mount the whole volume elsewhere with --mount data:PATH:ro",
            ]
        );
        // A --mount at the path says what goes there instead; without --mount-target, nothing.
        let replaced = ContainerSpecBuilder {
            mounts: vec!["data:/var/log/web".parse().expect("mount")],
            ..b.clone()
        };
        assert_eq!(replaced.unmirrored_mounts(&pod, "app").len(), 1);
        assert!(builder().unmirrored_mounts(&pod, "app").is_empty());

        // A copy's debug container is a regular container: it keeps them.
        let c = b
            .build(Style::Copy(Default::default()), Some(&pod), Some("app"))
            .expect("builds");
        let sub: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| has_sub_path(m))
            .collect();
        assert_eq!(sub.len(), 2, "{sub:?}");
    }

    #[test]
    fn ephemeral_containers_take_only_the_fields_the_api_server_allows() {
        let refused = |custom: Value| {
            let b = ContainerSpecBuilder {
                custom: Some(custom),
                ..builder()
            };
            b.build_ephemeral(&web_pod(), Some("app"), None)
                .expect_err("refused")
                .to_string()
        };
        let err = refused(json!({"resizePolicy": [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"}
        ]}));
        assert_eq!(
            err,
            "--custom file sets resizePolicy, which ephemeral containers may not have"
        );
        let err = refused(json!({"restartPolicy": "Always"}));
        assert!(err.contains("sets restartPolicy, which"), "{err}");
        let err = refused(json!({"volumeMounts": [
            {"name": "config", "mountPath": "/cfg"},
            {"name": "config", "mountPath": "/cfg/a.yaml", "subPath": "a.yaml"}
        ]}));
        assert_eq!(
            err,
            "--custom file sets volumeMounts[1].subPath, which ephemeral containers may not \
             have; mount the whole volume instead"
        );
        let err = refused(json!({"volumeMounts": [
            {"name": "data", "mountPath": "/d", "subPathExpr": "$(POD_NAME)"}
        ]}));
        assert!(
            err.contains("sets volumeMounts[0].subPathExpr, which"),
            "{err}"
        );

        // Every field of the allow-list passes.
        let b = ContainerSpecBuilder {
            custom: Some(
                json!({"args": ["-v"], "workingDir": "/w", "stdinOnce": true,
                "envFrom": [{"configMapRef": {"name": "cm"}}],
                "volumeMounts": [{"name": "config", "mountPath": "/cfg"}],
                "terminationMessagePath": "/dev/termination-log"}),
            ),
            ..builder()
        };
        assert!(b.build_ephemeral(&web_pod(), Some("app"), None).is_ok());

        // Go's zero values are unset to the API server: `resources: {}` as `kubectl get -o
        // yaml` prints it, or with null members; not so an empty list or limits map.
        for unset in [
            json!({"resources": {}}),
            json!({"resources": {"limits": null}}),
        ] {
            assert!(check_ephemeral_custom(&unset).is_ok(), "{unset}");
        }
        for set in [json!({"resources": {"limits": {}}}), json!({"ports": []})] {
            assert!(check_ephemeral_custom(&set).is_err(), "{set}");
        }
        // A copy's containers may not have restartPolicy either: no pointing there.
        let hint =
            check_ephemeral_custom(&json!({"restartPolicy": "Always"})).expect_err("refused");
        assert!(!hint.contains("copy"), "{hint}");
        let hint = check_ephemeral_custom(&json!({"ports": [{"containerPort": 80}]}))
            .expect_err("refused");
        assert!(
            hint.contains("copy` makes a debug container that may have ports"),
            "{hint}"
        );
        // Not lifecycle: no --custom file may set it, a copy's included.
        assert!(!hint.contains("lifecycle"), "{hint}");
    }

    #[test]
    fn env_names_are_what_a_relaxed_api_server_accepts() {
        // Printable ASCII but '=': what IsRelaxedEnvVarName accepts.
        for (flag, name) in [
            ("my.env-name=1", "my.env-name"),
            ("1ST=x", "1ST"),
            ("A B=x", "A B"),
            ("a:b/c~{}=x", "a:b/c~{}"),
        ] {
            assert_eq!(parse_env(flag).expect(flag).0, name);
        }
        for (flag, why) in [
            ("=x", "the name is empty"),
            ("novalue", "expected NAME=VALUE"),
            ("CAFÉ=1", "the name contains 'É'"),
            ("A\u{7f}=1", "the name contains '\\u{7f}'"),
            ("A\tB=1", "the name contains '\\t'"),
            ("\u{1b}[31m=1", "the name contains '\\u{1b}'"),
        ] {
            let err = parse_env(flag).expect_err(flag).to_string();
            assert!(err.contains(why), "{flag:?}: {err}");
        }
    }

    #[test]
    fn custom_file_json_or_yaml() {
        let dir = tempfile::tempdir().expect("tmp");
        let yaml = dir.path().join("c.yaml");
        std::fs::write(&yaml, "securityContext:\n  runAsUser: 0\nworkingDir: /w\n").expect("write");
        assert_eq!(
            load_custom(&yaml).expect("yaml"),
            json!({"securityContext": {"runAsUser": 0}, "workingDir": "/w"})
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "[1, 2]").expect("write");
        assert!(load_custom(&bad).is_err());
        let wrong = dir.path().join("wrong.yaml");
        std::fs::write(&wrong, "securityContext: 5\n").expect("write");
        assert!(load_custom(&wrong).is_err(), "not a container spec");
    }

    /// A device says nothing of its size: /dev/zero was read until memory ran out.
    #[cfg(target_os = "linux")]
    #[test]
    fn custom_file_is_read_up_to_a_limit() {
        let e = load_custom(Path::new("/dev/zero")).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "cannot use --custom file /dev/zero: it holds more than 1048576 bytes; a partial \
             container spec is a few lines"
        );
    }

    #[test]
    fn custom_file_refuses_unknown_fields_naming_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("c.yaml");
        let refused = |text: &str| {
            std::fs::write(&file, text).expect("write");
            load_custom(&file).expect_err("refused").to_string()
        };
        let err = refused("securityContex:\n  privileged: true\n");
        assert!(err.contains("unknown field securityContex "), "{err}");
        let err = refused("securityContext:\n  capabilitis:\n    add: [NET_ADMIN]\n");
        assert!(err.contains("securityContext.capabilitis"), "{err}");
        let err = refused("env:\n- name: A\n  valu: x\nworkingdir: /w\n");
        assert!(
            err.contains("unknown fields env[0].valu, workingdir"),
            "{err}"
        );
        let err = refused("name: other\n");
        assert!(err.contains("sets name, which comes from --name"), "{err}");
        let err = refused("command: [sh]\n");
        assert!(
            err.contains("sets command, which comes from the words after --"),
            "{err}"
        );
        // No flag sets these: the refusal must not send the user looking for one.
        for field in ["lifecycle", "volumeDevices"] {
            let err = refused(&format!("{field}: null\n"));
            assert!(
                err.contains(&format!(
                    "sets {field}, which --custom may not set, as kubectl debug --custom may not"
                )),
                "{err}"
            );
            assert!(!err.contains("command line"), "{err}");
        }

        // Nulls remove fields in the merge; they are not unknown.
        std::fs::write(
            &file,
            "securityContext: null\nworkingDir: /w\nenv:\n- {name: A, value: x}\n",
        )
        .expect("write");
        let v = load_custom(&file).expect("accepted");
        assert_eq!(v["workingDir"], "/w");
        assert!(v["securityContext"].is_null());
    }

    #[test]
    fn two_mounts_at_one_path_are_refused_naming_both() {
        let b = ContainerSpecBuilder {
            mounts: vec![
                "data:/d".parse().expect("mount"),
                "config:/d:ro".parse().expect("mount"),
            ],
            ..builder()
        };
        let err = b
            .build_ephemeral(&web_pod(), Some("app"), None)
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("--mount data:/d and --mount config:/d:ro both mount at /d"),
            "{err}"
        );
    }

    /// The target's env read from its own resources (`resourceFieldRef` without a container)
    /// keeps reading the target's: in the debug container, with no limits of its own, the
    /// same reference would give the node's allocatable in silence.
    #[test]
    fn env_from_target_reads_the_targets_resources() {
        let mut pod = serde_json::to_value(web_pod()).expect("json");
        pod["spec"]["containers"][0]["env"] = json!([
            {"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {"name": "SIDECAR_CPU", "valueFrom": {"resourceFieldRef": {"containerName": "sidecar", "resource": "limits.cpu"}}},
            {"name": "PLAIN", "value": "x"}
        ]);
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        let b = ContainerSpecBuilder {
            env_from_target: true,
            ..builder()
        };
        let ec = b.build_ephemeral(&pod, Some("app"), None).expect("builds");
        let v = serde_json::to_value(ec).expect("json");
        assert_eq!(
            v["env"],
            json!([
                {"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"containerName": "app", "resource": "limits.memory"}}},
                {"name": "SIDECAR_CPU", "valueFrom": {"resourceFieldRef": {"containerName": "sidecar", "resource": "limits.cpu"}}},
                {"name": "PLAIN", "value": "x"}
            ])
        );
    }

    /// One place, one mount: the API server compares mount paths as strings, so `/d/` beside
    /// `/d` (or a target's `/var/lib/web` beside `--mount …:/var/lib/web/`) was sent twice,
    /// the second mount hiding the first in silence.
    #[test]
    fn mount_paths_are_compared_as_the_runtime_reads_them() {
        let spec = |s: &str| s.parse::<MountSpec>();
        assert_eq!(
            spec("data:/var//lib/./web/").expect("ok").path,
            "/var/lib/web"
        );
        for (flag, why) in [
            ("data:/d/../etc", "must not contain '..'"),
            ("data:/..", "must not contain '..'"),
            ("data:/", "cannot be mounted over the container's /"),
            ("data://.", "cannot be mounted over the container's /"),
        ] {
            let err = spec(flag).expect_err(flag).to_string();
            assert!(err.contains(why), "{flag}: {err}");
        }
        let b = ContainerSpecBuilder {
            mounts: vec![
                spec("data:/d").expect("ok"),
                spec("config:/d/").expect("ok"),
            ],
            ..builder()
        };
        let err = b
            .build_ephemeral(&web_pod(), Some("app"), None)
            .expect_err("refused");
        assert!(err.to_string().contains("both mount at /d"), "{err}");
        // A --mount at the target's path, spelt otherwise, replaces the mirrored mount.
        let b = ContainerSpecBuilder {
            mount_target: true,
            mounts: vec![spec("config:/var/lib/web/").expect("ok")],
            ..builder()
        };
        let v = ec_json(&b, Some("app"));
        let at_web: Vec<&Value> = v["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter(|m| m["mountPath"] == "/var/lib/web")
            .collect();
        assert_eq!(
            at_web,
            [&json!({"name": "config", "mountPath": "/var/lib/web"})],
            "{v}"
        );
    }

    #[test]
    fn arguments_only_sets_args() {
        let b = ContainerSpecBuilder {
            command: vec!["-c".into(), "ls".into()],
            arguments_only: true,
            ..builder()
        };
        let v = ec_json(&b, None);
        assert_eq!(v["args"], json!(["-c", "ls"]));
        assert!(v.get("command").is_none());
        assert!(v.get("targetContainerName").is_none());
    }

    #[test]
    fn name_collision_is_refused_and_generation_avoids_it() {
        let pod = web_pod();
        let existing = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .and_then(|e| e.first())
            .map(|e| e.name.clone())
            .expect("fixture has an ephemeral container");
        let b = ContainerSpecBuilder {
            name: existing.clone(),
            ..builder()
        };
        assert!(matches!(
            b.build_ephemeral(&pod, Some("app"), None),
            Err(BuildError::NameTaken { .. })
        ));
        let b = ContainerSpecBuilder {
            name: "app".into(),
            ..builder()
        };
        assert!(matches!(
            b.build_ephemeral(&pod, Some("app"), None),
            Err(BuildError::NameTaken { .. })
        ));
        // The hint fits what holds the name: --reuse only for a running debug container.
        let hint = |name: &str| {
            let b = ContainerSpecBuilder {
                name: name.into(),
                ..builder()
            };
            let err = b
                .build_ephemeral(&pod, Some("app"), None)
                .expect_err("taken");
            let err = KspyError::from(err);
            (err.details.join("\n"), err.hint.unwrap_or_default())
        };
        let (details, running) = hint("debugger-old01");
        assert!(running.contains("add --reuse"), "{details}: {running}");
        for name in ["app", "debugger-gone2"] {
            let (details, h) = hint(name);
            assert!(!h.contains("--reuse"), "{name}: {h}");
            assert!(h.starts_with("pick another --name"), "{name}: {h}");
            let wanted = if name == "app" {
                "it is one of the pod's own containers"
            } else {
                "it is a debug container that does not run (Terminated (Completed, exit code 0)); \
                 ephemeral containers cannot be restarted"
            };
            assert!(details.starts_with(wanted), "{name}: {details}");
        }

        // The first name a seeded generator draws is made taken: the next draw is used.
        let first = generate_name(None, &mut StdRng::seed_from_u64(7));
        let mut spec = pod.spec.clone().expect("spec");
        spec.containers[0].name = first.clone();
        let second = generate_name(Some(&spec), &mut StdRng::seed_from_u64(7));
        assert_ne!(first, second);
        for name in [&first, &second] {
            let suffix = name.strip_prefix("debugger-").expect("prefix");
            assert_eq!(suffix.len(), 5);
            assert!(suffix.bytes().all(|b| NAME_ALPHABET.contains(&b)), "{name}");
        }
    }

    #[test]
    fn target_resolution() {
        let pod = web_pod();
        assert_eq!(
            resolve_target(&pod, Some("sidecar")).expect("ok"),
            TargetChoice::Named("sidecar".into())
        );
        assert_eq!(
            resolve_target(&pod, None).expect("ok"),
            TargetChoice::Ambiguous {
                first: "app".into()
            }
        );
        let err = resolve_target(&pod, Some("ap")).expect_err("missing");
        let k: KspyError = err.into();
        assert_eq!(k.details, vec!["containers that exist: app, sidecar"]);

        // A sidecar init container (restartPolicy Always, a mesh's proxy) is a target as the
        // containers are: a misspelt name is offered it, not told -c names the debug container.
        let mut meshed = serde_json::to_value(&pod).expect("json");
        meshed["spec"]["initContainers"]
            .as_array_mut()
            .expect("the fixture has init containers")
            .push(
                serde_json::json!({"name": "istio-proxy", "image": "proxyv2:1.24",
                "restartPolicy": "Always"}),
            );
        let meshed: Pod = serde_json::from_value(meshed).expect("pod");
        assert_eq!(
            resolve_target(&meshed, Some("istio-proxy")).expect("ok"),
            TargetChoice::Named("istio-proxy".into())
        );
        let k: KspyError = resolve_target(&meshed, Some("istio-prox"))
            .expect_err("missing")
            .into();
        assert_eq!(
            k.details,
            vec!["containers that exist: istio-proxy, sidecar, app"]
        );
        assert_eq!(k.hint, None, "a near miss, not kubectl's -c");

        let mut annotated = pod.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DEFAULT_CONTAINER_ANNOTATION.into(), "sidecar".into());
        assert_eq!(
            resolve_target(&annotated, None).expect("ok"),
            TargetChoice::Picked {
                name: "sidecar".into(),
                by: PickedBy::Annotation
            }
        );

        let mut single = pod.clone();
        if let Some(s) = single.spec.as_mut() {
            s.containers.truncate(1);
        }
        assert_eq!(
            resolve_target(&single, None).expect("ok"),
            TargetChoice::Picked {
                name: "app".into(),
                by: PickedBy::OnlyContainer
            }
        );
    }

    #[test]
    fn flag_parsing() {
        assert_eq!(
            "data:/d:ro".parse::<MountSpec>().expect("ok"),
            MountSpec {
                volume: "data".into(),
                path: "/d".into(),
                read_only: true
            }
        );
        assert!("data".parse::<MountSpec>().is_err());
        assert!("data:rel".parse::<MountSpec>().is_err());
        assert!("data:/d:rx".parse::<MountSpec>().is_err());
        assert_eq!(parse_env("A=b=c").expect("ok"), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
        assert_eq!(
            normalize_capability("cap_sys_ptrace").expect("ok"),
            "SYS_PTRACE"
        );
        assert!(normalize_capability("sys ptrace").is_err());
        assert!(validate_dns_label("--name", "Debugger").is_err());
        assert!(validate_dns_label("--name", "debugger-1").is_ok());
        assert!(validate_dns_subdomain("POD", "web.v1").is_ok());
        assert!(validate_dns_subdomain("POD", "../etc").is_err());
        // Too long is said as such, with the limit, not as a character problem.
        let long = "a".repeat(300);
        let err = validate_dns_subdomain("POD", &long).expect_err("300 characters");
        assert!(err.to_string().contains("300 characters long"), "{err}");
        assert!(err.to_string().contains("253"), "{err}");
    }

    #[test]
    fn unknown_volume_lists_volumes() {
        let b = ContainerSpecBuilder {
            mounts: vec!["confg:/c".parse().expect("mount")],
            ..builder()
        };
        let err = b
            .build_ephemeral(&web_pod(), Some("app"), None)
            .expect_err("refused");
        let k: KspyError = err.into();
        assert!(
            k.details[0].starts_with("volumes that exist: config"),
            "{:?}",
            k.details
        );
    }

    #[test]
    fn as_target_user_needs_a_user() {
        let mut pod = web_pod();
        if let Some(s) = pod.spec.as_mut() {
            s.security_context = None;
            for c in &mut s.containers {
                c.security_context = None;
            }
        }
        let b = ContainerSpecBuilder {
            as_target_user: true,
            ..builder()
        };
        assert!(matches!(
            b.build_ephemeral(&pod, Some("app"), None),
            Err(BuildError::TargetUserUnknown { .. })
        ));
    }
}
