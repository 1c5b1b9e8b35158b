//! The flags `attach`, `copy` and `node` share: the debug container, dry runs, output,
//! waiting and attaching. Names and defaults follow `kubectl debug` where they overlap.

use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;

use crate::container::{
    ContainerSpecBuilder, DEFAULT_IMAGE, MountSpec, load_custom, normalize_capability, parse_env,
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

/// Flags of the debug container and of the session around it.
#[derive(Debug, Clone, clap::Args)]
pub struct DebugArgs {
    /// Image of the debug container [default: busybox:latest]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Name of the debug container [default: debugger-XXXXX, unique in the pod; "debugger" for node pods]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Add a Linux capability (repeatable): SYS_PTRACE, NET_ADMIN, … ("CAP_" prefix and case are ignored)
    #[arg(long = "cap", value_name = "CAP", action = ArgAction::Append)]
    pub caps: Vec<String>,
    /// Debug profile, as kubectl debug: legacy, general, baseline, restricted, netadmin, sysadmin
    #[arg(long, value_enum, default_value_t = Profile::General, value_name = "PROFILE")]
    pub profile: Profile,
    /// Partial container spec (JSON or YAML) merged over the profile, as `kubectl debug --custom`
    #[arg(long, value_name = "FILE")]
    pub custom: Option<PathBuf>,
    /// Set an environment variable in the debug container (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env, action = ArgAction::Append)]
    pub env: Vec<(String, String)>,
    /// Why you are debugging; sent as env KSPY_REASON, which kspy's policies and audit can read
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Image pull policy of the debug container [default: the server's]
    #[arg(long, value_enum, value_name = "POLICY")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Keep stdin open on the debug container; attaches unless --no-attach
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the debug container (needs -i)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Wait for the container and attach to it [default: when -i is given]
    #[arg(long, overrides_with = "no_attach")]
    pub attach: bool,
    /// Do not attach, even with -i
    #[arg(long, overrides_with = "attach")]
    pub no_attach: bool,
    /// Wait until the container runs, even without attaching
    #[arg(long)]
    pub wait: bool,
    /// How long to wait for the container to run ("0" waits forever)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Treat the words after `--` as arguments to the image's entrypoint, not as a command
    #[arg(long)]
    pub arguments_only: bool,
    /// `client`: print the requests and send nothing that changes anything; `server`: let the
    /// API server and its webhooks judge them (dryRun=All) and keep nothing
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_missing_value = "client", default_value = "none")]
    pub dry_run: DryRun,
    /// Print the resulting object (the debug container for attach, the pod for copy and node)
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
    /// Print only what was asked for, no progress or hints
    #[arg(short = 'q', long)]
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
    /// containers, left to the kspy webhook's policy default, else the first container]
    #[arg(short = 'c', long = "target", value_name = "CONTAINER")]
    pub target: Option<String>,
    /// Mount a volume of the pod in the debug container, read-only with ":ro" (repeatable)
    #[arg(long = "mount", value_name = "VOLUME:PATH[:ro]", action = ArgAction::Append)]
    pub mounts: Vec<MountSpec>,
    /// Mount all of the target container's volumes, read-only, at the same paths
    #[arg(long)]
    pub mount_target: bool,
    /// Copy the target container's env and envFrom (secrets included)
    #[arg(long)]
    pub env_from_target: bool,
    /// Run as the target container's runAsUser/runAsGroup, so file permissions match
    #[arg(long)]
    pub as_target_user: bool,
}

impl DebugArgs {
    /// Whether to attach: `--attach`/`--no-attach`, else when `-i` is given.
    pub fn should_attach(&self) -> bool {
        if self.no_attach {
            false
        } else {
            self.attach || self.stdin
        }
    }

    /// The timeout; `None` for no limit.
    pub fn timeout(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then_some(self.timeout)
    }

    /// Checks combinations clap cannot.
    pub fn validate(&self) -> Result<(), KspyError> {
        if self.tty && !self.stdin {
            return Err(KspyError::new("-t/--tty needs -i/--stdin").hint("use -it"));
        }
        if self.arguments_only && self.command.is_empty() {
            return Err(KspyError::new(
                "--arguments-only needs arguments after `--`",
            ));
        }
        Ok(())
    }

    /// The container builder for these flags, with container name `name`.
    pub fn builder(
        &self,
        name: String,
        target: Option<&TargetArgs>,
    ) -> Result<ContainerSpecBuilder, KspyError> {
        let custom = match &self.custom {
            Some(path) => Some(load_custom(path)?),
            None => None,
        };
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
