//! The flags `attach`, `copy` and `node` share: the debug container, dry runs, output,
//! waiting and attaching. Names and defaults follow `kubectl debug` where they overlap.

use std::time::Duration;

use clap::ArgAction;
use serde_json::Value;

use crate::container::{
    BuildError, ContainerSpecBuilder, DEFAULT_IMAGE, MountSpec, duplicate_mount_paths, load_custom,
    normalize_capability, parse_env, validate_dns_label, validate_dns_subdomain,
};
use crate::errors::KspyError;
use crate::output::Output;
use crate::profile::Profile;
use crate::wait::parse_duration;

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    /// Send nothing that changes anything; print the requests kspy would send.
    Client,
    /// Send the requests with `dryRun=All`: admission (kspy's policy included) judges them, nothing is kept.
    Server,
    /// Really send them (the default).
    None,
}

/// `--image-pull-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Always pull.
    #[value(name = "Always")]
    Always,
    /// Pull when the node lacks the image.
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    /// Never pull.
    #[value(name = "Never")]
    Never,
}

impl PullPolicy {
    /// The API value.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// A flag value's problem alone: clap already names the flag and the value.
fn why(e: BuildError) -> String {
    match e {
        BuildError::InvalidFlag { why, .. } => why,
        other => other.to_string(),
    }
}

/// Parses the value of a boolean flag as kubectl does (Go's `strconv.ParseBool`):
/// `--flag`, `--flag=true`, `--flag=false`, also `1`/`0`, `t`/`f`, `TRUE`/`FALSE`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// `--image`: an image reference as the kubelet parses it (the distribution reference
/// grammar, which kspy's webhook reads with the same parser). A reference outside it
/// (`Busybox`, `busybox:`, a short digest) is accepted by the API server, and the kubelet then
/// leaves the container waiting in `InvalidImageName` for good: an ephemeral container that can
/// never run and never be removed.
pub fn parse_image(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(
            "the image is empty; give an image reference such as busybox:latest".to_string(),
        );
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an image reference has no spaces or control characters".to_string());
    }
    match kspy_admission::ImageRef::parse(s) {
        Ok(_) => Ok(s.to_string()),
        Err(e) => {
            // Upper case is the common slip: say which spelling the registry knows.
            let lower = s.to_ascii_lowercase();
            let suggestion = if lower != s && kspy_admission::ImageRef::parse(&lower).is_ok() {
                format!(" (did you mean {lower}?)")
            } else {
                String::new()
            };
            Err(format!(
                "not a valid image reference: {}{suggestion}; the kubelet could never pull it, \
                 and the container would wait in InvalidImageName for good",
                e.reason
            ))
        }
    }
}

/// `--name`: a container name (DNS-1123 label).
pub fn parse_container_name(s: &str) -> Result<String, String> {
    validate_dns_label("--name", s).map_err(why)?;
    Ok(s.to_string())
}

/// `-n/--namespace`: a namespace name (DNS-1123 label).
pub fn parse_namespace(s: &str) -> Result<String, String> {
    validate_dns_label("--namespace", s).map_err(why)?;
    Ok(s.to_string())
}

/// `--context`: a context name, which is never empty. kubectl reads `--context ''` as "the
/// current context"; kspy refuses it, as a `--context "$CTX"` whose variable is unset would
/// otherwise debug in whatever cluster happens to be current.
pub fn parse_context(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err(
            "the context name is empty; name a context of the kubeconfig (`kubectl config \
             get-contexts` lists them), or leave out --context for the current one"
                .to_string(),
        )
    } else {
        Ok(s.to_string())
    }
}

/// `--kubeconfig`: a path, which is never empty. kubectl reads `--kubeconfig ''` as unset;
/// kspy refuses it, as an unset variable in `--kubeconfig "$FILE"` would otherwise fall back
/// to `KUBECONFIG` or `~/.kube/config`, another cluster perhaps.
pub fn parse_kubeconfig(s: &str) -> Result<std::path::PathBuf, String> {
    if s.is_empty() {
        Err(
            "the path is empty; name a kubeconfig file, or leave out --kubeconfig to use \
             KUBECONFIG or ~/.kube/config"
                .to_string(),
        )
    } else {
        Ok(std::path::PathBuf::from(s))
    }
}

/// A pod or node name (DNS-1123 subdomain).
pub fn parse_object_name(s: &str) -> Result<String, String> {
    validate_dns_subdomain("NAME", s).map_err(|e| {
        // kubectl habits (`kubectl debug node/worker-3`, `kubectl attach pod/web`) write
        // TYPE/NAME; the DNS rules alone would not tell the user which part to keep.
        match s.split_once('/') {
            Some((kind, name))
                if KUBECTL_TYPES.contains(&kind)
                    && validate_dns_subdomain("NAME", name).is_ok() =>
            {
                format!("give the name alone, {name}: kspy takes names, not kubectl's TYPE/NAME")
            }
            _ => why(e),
        }
    })?;
    Ok(s.to_string())
}

/// The resource types kubectl accepts in front of a pod or node name (`pod/web`).
const KUBECTL_TYPES: &[&str] = &["pod", "pods", "po", "node", "nodes", "no"];

/// `--cap`: a capability, normalized (upper case, `CAP_` stripped), that Linux defines (or
/// `ALL`). Neither the API server nor kspy's webhook knows the list, and runc drops a name it
/// does not know with a warning only the node's logs show: `--cap SYS_PTRAC` would run a
/// container without SYS_PTRACE, which can never be changed or removed.
pub fn parse_capability(s: &str) -> Result<String, String> {
    let cap = normalize_capability(s).map_err(why)?;
    match unknown_capability(&cap) {
        Some(why) => Err(format!(
            "{why} (`man 7 capabilities` lists them; the container runtime would start the \
             container without it)"
        )),
        None => Ok(cap),
    }
}

/// Why `cap` (normalized: upper case, no `CAP_`) is no capability Linux defines, with the
/// closest names; `None` for a known one or `ALL`.
pub fn unknown_capability(cap: &str) -> Option<String> {
    use kspy_admission::capability::KNOWN;
    if cap == "ALL" || KNOWN.contains(&cap) {
        return None;
    }
    let close: Vec<String> = crate::errors::closest_names(cap, KNOWN.iter().copied(), 2)
        .into_iter()
        .filter(|k| crate::errors::edit_distance(cap, k) <= 2)
        .collect();
    Some(if close.is_empty() {
        format!("Linux has no capability {cap}")
    } else {
        format!(
            "Linux has no capability {cap}; did you mean {}?",
            close.join(" or ")
        )
    })
}

/// `--env NAME=VALUE`.
pub fn parse_env_flag(s: &str) -> Result<(String, String), String> {
    parse_env(s).map_err(why)
}

/// `--mount VOLUME:PATH[:ro]`.
pub fn parse_mount(s: &str) -> Result<MountSpec, String> {
    s.parse::<MountSpec>().map_err(why)
}

/// `--custom FILE`: read and checked when the command line is parsed, before any request.
pub fn parse_custom(s: &str) -> Result<Value, String> {
    load_custom(std::path::Path::new(s)).map_err(|e| match e {
        BuildError::Custom { why, .. } => why,
        other => other.to_string(),
    })
}

/// Flags of the debug container and of the session around it.
///
/// Every boolean flag takes kubectl's forms: `--flag`, `--flag=true`, `--flag=false`.
#[derive(Debug, Clone, clap::Args)]
pub struct DebugArgs {
    /// Image of the debug container [default: busybox:latest]
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<String>,
    /// Name of the debug container [default: debugger-XXXXX, unique in the pod; "debugger" for node pods]
    #[arg(long, value_name = "NAME", value_parser = parse_container_name)]
    pub name: Option<String>,
    /// Add a Linux capability (repeatable): SYS_PTRACE, NET_ADMIN, … ("CAP_" prefix and case are ignored)
    #[arg(long = "cap", value_name = "CAP", value_parser = parse_capability, action = ArgAction::Append)]
    pub caps: Vec<String>,
    /// Debug profile, as kubectl debug: legacy, general, baseline, restricted, netadmin, sysadmin
    #[arg(long, value_enum, default_value_t = Profile::General, value_name = "PROFILE")]
    pub profile: Profile,
    /// Partial container spec (JSON or YAML) merged over the profile, as `kubectl debug --custom`
    #[arg(long, value_name = "FILE", value_parser = parse_custom)]
    pub custom: Option<Value>,
    /// Set an environment variable in the debug container (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env_flag, action = ArgAction::Append)]
    pub env: Vec<(String, String)>,
    /// Why you are debugging; sent as env KSPY_REASON, which kspy's policies and audit can read
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Image pull policy of the debug container [default: the server's]
    #[arg(long, value_enum, value_name = "POLICY")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Keep stdin open on the debug container; attaches unless --no-attach
    #[arg(short = 'i', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub stdin: bool,
    /// Allocate a TTY for the debug container (needs -i)
    #[arg(short = 't', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub tty: bool,
    /// Wait for the container and attach to it [default: true with -i, else false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_bool, action = ArgAction::Set,
          overrides_with = "no_attach")]
    pub attach: Option<bool>,
    /// Do not attach, even with -i (the same as --attach=false)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set, overrides_with = "attach")]
    pub no_attach: bool,
    /// Wait until the container runs, even without attaching
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub wait: bool,
    /// How long to wait for the container to run, as 90s, 1.5m or 1h30m, at most 8760h ("0"
    /// waits forever)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Treat the words after `--` as arguments to the image's entrypoint, not as a command
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub arguments_only: bool,
    /// `client`: print the requests and send nothing that changes anything; `server`: let the
    /// API server and its webhooks judge them (dryRun=All) and keep nothing; `none`: send them
    /// for real
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_missing_value = "client", default_value = "none")]
    pub dry_run: DryRun,
    /// Print the resulting object (the debug container for attach, the pod for copy and node)
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
    /// Print only what was asked for, no progress or hints
    #[arg(short = 'q', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub quiet: bool,
    /// The command to run in the debug container [default: the image's]
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Flags about the container being debugged.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// The container to debug: its processes are shared with the debug container [default: the
    /// pod's only container, or its kubectl.kubernetes.io/default-container; with several
    /// containers, left to the kspy webhook's policy default, else the first container — or
    /// none, with a note, when an admission webhook refuses that pick as target (attach)]
    #[arg(short = 'c', long = "target", value_name = "CONTAINER")]
    pub target: Option<String>,
    /// Mount a volume of the pod in the debug container, read-only with ":ro" (repeatable; one
    /// mount per path)
    #[arg(long = "mount", value_name = "VOLUME:PATH[:ro]", value_parser = parse_mount,
          action = ArgAction::Append)]
    pub mounts: Vec<MountSpec>,
    /// Mount all of the target container's volumes, read-only, at the same paths (attach
    /// leaves out, with a note, those of a subPath: ephemeral containers cannot have them)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub mount_target: bool,
    /// Copy the target container's env and envFrom (secrets included)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub env_from_target: bool,
    /// Run as the target container's runAsUser/runAsGroup, so file permissions match (kspy's
    /// webhook then counts the target's volumes and env Secrets as the debug container's own:
    /// as its user, it reads them through /proc/PID/root)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub as_target_user: bool,
}

impl TargetArgs {
    /// Checks combinations of these flags that clap cannot; the message is for a usage error.
    pub fn check(&self) -> Result<(), String> {
        duplicate_mount_paths(&self.mounts).map_err(why)
    }
}

impl DebugArgs {
    /// Adds to a denial of a capability the profile added by itself (`node`: for a node pod)
    /// that it came from the profile ([`crate::errors::profile_capability_denied`]).
    pub fn explain_profile_denial(&self, err: KspyError, node: bool) -> KspyError {
        let from_profile: Vec<&str> = self
            .profile
            .added_capabilities(node)
            .iter()
            .copied()
            .filter(|cap| !self.caps.iter().any(|c| c == cap))
            .collect();
        crate::errors::profile_capability_denied(err, self.profile.name(), &from_profile)
    }

    /// Under `--dry-run=server` the API server's warnings are part of the verdict: held for it
    /// ([`crate::output::report_verdict`]) rather than printed as they come.
    pub fn hold_warnings_for_verdict(&self) {
        if self.dry_run == DryRun::Server {
            crate::warnings::Warnings::process().hold();
        }
    }

    /// Whether to attach: `--no-attach` or `--attach[=BOOL]`, else when `-i` is given.
    pub fn should_attach(&self) -> bool {
        if self.no_attach {
            false
        } else {
            self.attach.unwrap_or(self.stdin)
        }
    }

    /// The timeout; `None` for no limit.
    pub fn timeout(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then_some(self.timeout)
    }

    /// Checks combinations of flags that clap cannot; `main` reports a failure as a usage
    /// error (exit code 2) before anything is sent.
    pub fn check(&self) -> Result<(), String> {
        if self.tty && !self.stdin {
            return Err("-t/--tty needs -i/--stdin; use -it".to_string());
        }
        if self.arguments_only && self.command.is_empty() {
            return Err("--arguments-only needs arguments after `--`".to_string());
        }
        Ok(())
    }

    /// The container builder for these flags, with container name `name`.
    pub fn builder(
        &self,
        name: String,
        target: Option<&TargetArgs>,
    ) -> Result<ContainerSpecBuilder, KspyError> {
        let custom = self.custom.clone();
        let caps = self
            .caps
            .iter()
            .map(|c| normalize_capability(c))
            .collect::<Result<Vec<_>, _>>()?;
        let t = target.cloned().unwrap_or_default();
        Ok(ContainerSpecBuilder {
            name,
            image: self
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
            image_pull_policy: self.image_pull_policy.map(|p| p.as_str().to_string()),
            stdin: self.stdin,
            tty: self.tty,
            command: self.command.clone(),
            arguments_only: self.arguments_only,
            env: self.env.clone(),
            reason: self.reason.clone(),
            caps,
            profile: self.profile,
            custom,
            mounts: t.mounts,
            mount_target: t.mount_target,
            env_from_target: t.env_from_target,
            as_target_user: t.as_target_user,
        })
    }
}
