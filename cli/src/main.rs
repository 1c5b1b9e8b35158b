//! `kspy`: debug Kubernetes pods and nodes through the raw API requests `kubectl debug`
//! cannot express, with kubectl's habits, gated by kspy's admission policies.
//!
//! Also `kubectl kspy`: a copy or symlink of this binary named `kubectl-kspy` on `PATH` is a
//! kubectl plugin, and behaves the same (its help then says `kubectl kspy`).

mod args;
mod attach;
mod certs_cmd;
mod cluster;
mod container;
mod copy;
mod errors;
#[cfg(test)]
mod golden;
mod ls;
mod merge;
mod node;
mod output;
mod patch;
mod policy;
mod profile;
mod session;
mod tty;
mod wait;

use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::errors::KspyError;

static PROG: OnceLock<&'static str> = OnceLock::new();

/// The name kspy was invoked as: `kspy`, or `kubectl kspy` as a kubectl plugin.
pub fn prog() -> &'static str {
    PROG.get().copied().unwrap_or("kspy")
}

/// `kubectl kspy` when argv[0] is `kubectl-kspy` (kubectl runs plugins so), else `kspy`.
fn prog_for(argv0: Option<&std::ffi::OsStr>) -> &'static str {
    let stem = argv0
        .and_then(|a| std::path::Path::new(a).file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("kspy");
    if stem == "kubectl-kspy" {
        "kubectl kspy"
    } else {
        "kspy"
    }
}

const MAIN_EXAMPLES: &str = "\
Examples:
  # Trace a process in a distroless pod (general profile: SYS_PTRACE)
  kspy attach web-7d9f8c6b5-x2x4q -n prod -it --image nicolaka/netshoot -- strace -fp 1

  # See the exact PATCH it sends, as a curl command, without sending it
  kspy attach web-7d9f8c6b5-x2x4q -n prod --dry-run=client

  # Ask kspy's policy without changing anything
  kspy attach web-7d9f8c6b5-x2x4q -n prod --cap NET_ADMIN --dry-run=server

  # A copy of a crash-looping pod that sleeps instead of crashing
  kspy copy api-6c9f -n prod --to api-debug --fork -it

  # A shell on a node, its filesystem at /host
  kspy node worker-3 -it

As a kubectl plugin: put a copy or symlink named kubectl-kspy on PATH, then `kubectl kspy …`.";

/// kspy: debug containers for Kubernetes, gated by policy.
#[derive(Debug, Parser)]
#[command(name = "kspy", version, about, after_help = MAIN_EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add an ephemeral debug container to a running pod and attach to it
    #[command(after_help = attach_examples())]
    Attach(attach::AttachArgs),
    /// Create a debug copy of a pod (kubectl debug --copy-to), with a debug container
    #[command(after_help = COPY_EXAMPLES)]
    Copy(copy::CopyArgs),
    /// Create a node-debugging pod on a node: host namespaces, the node's / at /host
    #[command(after_help = NODE_EXAMPLES)]
    Node(node::NodeArgs),
    /// List the ephemeral containers of a pod or namespace
    #[command(after_help = LS_EXAMPLES)]
    Ls(ls::LsArgs),
    /// Test and explain debug policies offline, with the webhook's own engine
    #[command(after_help = POLICY_EXAMPLES)]
    Policy {
        #[command(subcommand)]
        cmd: policy::PolicyCommand,
    },
    /// Certificates for the kspy webhook
    #[command(after_help = CERTS_EXAMPLES)]
    Certs {
        #[command(subcommand)]
        cmd: certs_cmd::CertsCommand,
    },
    /// Print a shell completion script
    #[command(after_help = COMPLETION_EXAMPLES)]
    Completion {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn attach_examples() -> String {
    "\
Examples:
  # Interactive shell next to the app container, able to strace it (profile general)
  kspy attach web-7d9f8c6b5-x2x4q -n prod -c app -it

  # gdb needs SYS_PTRACE; a tools image; the app's volumes read-only at the same paths
  kspy attach web-7d9f8c6b5-x2x4q -c app --image registry.example.com/debug/tools:1.2 \\
      --mount-target --as-target-user -it -- gdb -p 1

  # Mount one pod volume, set env, say why (KSPY_REASON)
  kspy attach web-7d9f8c6b5-x2x4q --mount config:/cfg:ro --env LOG=debug --reason INC-1234 -it

  # Anything else from a partial container spec, as kubectl debug --custom
  kspy attach web-7d9f8c6b5-x2x4q --custom seccomp-unconfined.yaml -it

  # The raw PATCH as a JSON patch, printed as a curl command, nothing sent
  kspy attach web-7d9f8c6b5-x2x4q --patch-type json --dry-run=client

  # Let the API server and kspy's policy judge it, keep nothing, show what they changed
  kspy attach web-7d9f8c6b5-x2x4q --cap SYS_ADMIN --dry-run=server -o yaml

  # Back into a debug container that is still running, instead of adding another
  kspy attach web-7d9f8c6b5-x2x4q --reuse -it

Target container: -c names it. Without -c it is the pod's only container, or the one in its
kubectl.kubernetes.io/default-container annotation. With several containers and no hint, kspy
first asks with a server dry run whether an admission webhook (kspy's defaults.targetContainer)
sets it, and leaves it to the webhook if so; otherwise it targets the first container."
        .to_string()
}

const COPY_EXAMPLES: &str = "\
Examples:
  # A copy sharing processes, with a debug container, attached
  kspy copy web-7d9f8c6b5-x2x4q -n prod --to web-debug -it

  # CrashLoopBackOff: the app container sleeps instead of crashing; no labels, no probes
  kspy copy api-6c9f --to api-debug --fork -c api -it

  # The copy with another image for the app, no debug container
  kspy copy api-6c9f --to api-debug --set-image api=registry.example.com/api:debug

  # Replace the original pod with the copy, on the same node
  kspy copy api-6c9f --to api-debug --replace --same-node -it

  # Just print the POST it would send
  kspy copy api-6c9f --to api-debug --dry-run=client";

const NODE_EXAMPLES: &str = "\
Examples:
  # A shell on the node: host PID/network/IPC, the node's / at /host
  kspy node worker-3 -it -- chroot /host

  # Network debugging only (NET_ADMIN, NET_RAW, host network), with a tools image
  kspy node worker-3 --profile netadmin --image nicolaka/netshoot -it

  # What would be created, as YAML
  kspy node worker-3 --dry-run=client -o yaml";

const LS_EXAMPLES: &str = "\
Examples:
  # Debug containers in the current namespace
  kspy ls

  # In one pod, or in every namespace
  kspy ls web-7d9f8c6b5-x2x4q -n prod
  kspy ls -A -o json";

const POLICY_EXAMPLES: &str = "\
Examples:
  # Load and compile every policy under a directory
  kspy policy check policies/";

const CERTS_EXAMPLES: &str = "\
Examples:
  # A CA and a serving certificate for the webhook Service
  kspy certs generate --service kspy-webhook";

const COMPLETION_EXAMPLES: &str = "\
Examples:
  kspy completion bash > /etc/bash_completion.d/kspy
  kspy completion zsh > \"${fpath[1]}/_kspy\"
  kspy completion fish > ~/.config/fish/completions/kspy.fish";

fn run_cluster_command(
    fut: impl std::future::Future<Output = Result<ExitCode, KspyError>>,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(fut);
    // A read of stdin may still block a thread; don't wait for it.
    rt.shutdown_background();
    Ok(result?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Attach(a) => run_cluster_command(attach::run(a)),
        Command::Copy(a) => run_cluster_command(copy::run(a)),
        Command::Node(a) => run_cluster_command(node::run(a)),
        Command::Ls(a) => run_cluster_command(ls::run(a)),
        Command::Policy { cmd } => policy::run(cmd),
        Command::Certs { cmd } => certs_cmd::run(cmd),
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "kspy", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints an error like ripgrep: `kspy: what happened`, details, causes, a hint.
fn report(err: &anyhow::Error) -> String {
    if let Some(k) = err.downcast_ref::<KspyError>() {
        return k.render(prog());
    }
    let mut out = format!("{}: {err}\n", prog());
    let mut previous = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        previous = text;
    }
    out
}

fn main() -> ExitCode {
    let prog = *PROG.get_or_init(|| prog_for(std::env::args_os().next().as_deref()));
    let matches = Cli::command().bin_name(prog).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprint!("{}", report(&err));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn plugin_name_from_argv0() {
        assert_eq!(
            prog_for(Some("/usr/local/bin/kubectl-kspy".as_ref())),
            "kubectl kspy"
        );
        assert_eq!(prog_for(Some("kubectl-kspy.exe".as_ref())), "kubectl kspy");
        assert_eq!(prog_for(Some("/usr/bin/kspy".as_ref())), "kspy");
        assert_eq!(prog_for(None), "kspy");
    }

    #[test]
    fn flags_parse_like_kubectl() {
        let cli = Cli::try_parse_from([
            "kspy",
            "attach",
            "web",
            "-n",
            "prod",
            "-c",
            "app",
            "-it",
            "--cap",
            "SYS_PTRACE",
            "--cap",
            "net_admin",
            "--env",
            "A=1",
            "--mount",
            "data:/d:ro",
            "--dry-run",
            "--",
            "sh",
            "-c",
            "ls",
        ])
        .expect("parses");
        let Command::Attach(a) = cli.command else {
            panic!("attach");
        };
        assert_eq!(a.pod, "web");
        assert_eq!(a.cluster.namespace.as_deref(), Some("prod"));
        assert_eq!(a.target.target.as_deref(), Some("app"));
        assert!(a.debug.stdin && a.debug.tty && a.debug.should_attach());
        assert_eq!(a.debug.caps, vec!["SYS_PTRACE", "net_admin"]);
        assert_eq!(
            a.debug.dry_run,
            args::DryRun::Client,
            "bare --dry-run means client"
        );
        assert_eq!(a.debug.command, vec!["sh", "-c", "ls"]);

        let cli = Cli::try_parse_from([
            "kspy",
            "attach",
            "web",
            "-i",
            "--no-attach",
            "--dry-run=server",
        ])
        .expect("parses");
        let Command::Attach(a) = cli.command else {
            panic!("attach");
        };
        assert!(!a.debug.should_attach());
        assert_eq!(a.debug.dry_run, args::DryRun::Server);

        let cli = Cli::try_parse_from([
            "kspy",
            "copy",
            "web",
            "--to",
            "web-debug",
            "--share-processes=false",
            "--keep-init-containers=false",
            "--set-image",
            "app=busybox",
        ])
        .expect("parses");
        let Command::Copy(c) = cli.command else {
            panic!("copy");
        };
        assert!(!c.share_processes);
        assert!(!c.keep_init_containers);
        assert_eq!(
            c.set_image,
            vec![("app".to_string(), "busybox".to_string())]
        );
        let cli = Cli::try_parse_from(["kspy", "copy", "web", "--to", "x"]).expect("parses");
        let Command::Copy(c) = cli.command else {
            panic!("copy");
        };
        assert!(
            c.share_processes && c.keep_init_containers,
            "both default on"
        );

        assert!(Cli::try_parse_from(["kspy", "attach", "web", "--profile", "nope"]).is_err());
        assert!(Cli::try_parse_from(["kspy", "attach", "web", "--env", "novalue"]).is_err());
        assert!(Cli::try_parse_from(["kspy", "attach", "web", "--timeout", "5y"]).is_err());
    }

    #[test]
    fn every_command_has_examples() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Examples:"),
                "{} has no examples",
                sub.get_name()
            );
        }
    }
}
