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
mod interrupt;
mod ls;
mod merge;
mod node;
mod output;
mod patch;
mod policy;
mod profile;
mod proxy;
mod request_timeout;
mod retry;
mod session;
mod tty;
mod wait;
mod warnings;

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

// Help texts say `{prog}` where the command's name goes: `kspy`, or `kubectl kspy` as a
// kubectl plugin ([`localize`] fills it in).
const MAIN_EXAMPLES: &str = "\
Examples:
  # Trace a process in a distroless pod (general profile: SYS_PTRACE)
  {prog} attach web-7d9f8c6b5-x2x4q -n prod -it --image nicolaka/netshoot -- strace -fp 1

  # See the exact PATCH it sends, as a curl command, without sending it
  {prog} attach web-7d9f8c6b5-x2x4q -n prod --dry-run=client

  # Ask kspy's policy without changing anything
  {prog} attach web-7d9f8c6b5-x2x4q -n prod --cap NET_ADMIN --dry-run=server

  # A copy of a crash-looping pod that sleeps instead of crashing
  {prog} copy api-6c9f -n prod --to api-debug --fork -it

  # A shell on a node, its filesystem at /host
  {prog} node worker-3 -it

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
    #[command(after_help = ATTACH_EXAMPLES)]
    Attach(attach::AttachArgs),
    /// Create a debug copy of a pod (kubectl debug --copy-to), with a debug container
    #[command(after_help = COPY_EXAMPLES)]
    Copy(copy::CopyArgs),
    /// Create a node-debugging pod on a node: host namespaces, the node's / at /host (read-only
    /// unless --host-writable)
    #[command(after_help = NODE_EXAMPLES)]
    Node(node::NodeArgs),
    /// List what kspy left in a pod or namespace: ephemeral containers, debug copies, node pods
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

const ATTACH_EXAMPLES: &str = "\
Examples:
  # Interactive shell next to the app container, able to strace it (profile general)
  {prog} attach web-7d9f8c6b5-x2x4q -n prod -c app -it

  # gdb needs SYS_PTRACE; a tools image; the app's volumes read-only at the same paths
  {prog} attach web-7d9f8c6b5-x2x4q -c app --image registry.example.com/debug/tools:1.2 \\
      --mount-target --as-target-user -it -- gdb -p 1

  # Mount one pod volume, set env, say why (KSPY_REASON)
  {prog} attach web-7d9f8c6b5-x2x4q --mount config:/cfg:ro --env LOG=debug --reason INC-1234 -it

  # Anything else from a partial container spec, as kubectl debug --custom
  {prog} attach web-7d9f8c6b5-x2x4q --custom seccomp-unconfined.yaml -it

  # The raw PATCH as a JSON patch, printed as a curl command, nothing sent
  {prog} attach web-7d9f8c6b5-x2x4q --patch-type json --dry-run=client

  # Let the API server and kspy's policy judge it, keep nothing, show what they changed
  {prog} attach web-7d9f8c6b5-x2x4q --cap SYS_ADMIN --dry-run=server -o yaml

  # Back into a debug container that is still running, instead of adding another
  {prog} attach web-7d9f8c6b5-x2x4q --reuse -it

Target container: -c names it. Without -c it is the pod's only container, or the one in its
kubectl.kubernetes.io/default-container annotation. With several containers and no hint, kspy
first asks with a server dry run whether an admission webhook (kspy's defaults.targetContainer)
sets it, and leaves it to the webhook if so; otherwise it targets the first container.

Boolean flags also take a value, as in kubectl: --attach=false, --stdin=true.";

const COPY_EXAMPLES: &str = "\
Examples:
  # A copy sharing processes, with a debug container, attached
  {prog} copy web-7d9f8c6b5-x2x4q -n prod --to web-debug -it

  # CrashLoopBackOff: the app container sleeps instead of crashing; no labels, no probes
  {prog} copy api-6c9f --to api-debug --fork -c api -it

  # The copy with another image for the app, no debug container
  {prog} copy api-6c9f --to api-debug --set-image api=registry.example.com/api:debug

  # Replace the original pod with the copy, on the same node
  {prog} copy api-6c9f --to api-debug --replace --same-node -it

  # Just print the POST it would send
  {prog} copy api-6c9f --to api-debug --dry-run=client

--copy-to is accepted for --to, as in kubectl debug; boolean flags also take a value
(--keep-labels=true, --share-processes=false).";

const NODE_EXAMPLES: &str = "\
Examples:
  # A shell on the node: host PID/network/IPC, the node's / at /host
  {prog} node worker-3 -it -- chroot /host

  # Network debugging (NET_ADMIN, NET_RAW, host PID/network/IPC, no /host), with a tools image
  {prog} node worker-3 --profile netadmin --image nicolaka/netshoot -it

  # What would be created, as YAML
  {prog} node worker-3 --dry-run=client -o yaml";

const LS_EXAMPLES: &str = "\
Examples:
  # Debug containers in the current namespace
  {prog} ls

  # In one pod, or in every namespace
  {prog} ls web-7d9f8c6b5-x2x4q -n prod
  {prog} ls -A -o json";

const POLICY_EXAMPLES: &str = "\
Examples:
  # Load and compile every policy under a directory, or in one file
  {prog} policy check policies/
  {prog} policy check policies/sre.yaml

  # Run the DebugPolicyTest cases beside the policies
  {prog} policy test policies/";

const CERTS_EXAMPLES: &str = "\
Examples:
  # A CA and a serving certificate for the webhook Service kspy-webhook in kspy-system
  {prog} certs generate --service kspy-webhook --namespace kspy-system --out certs/

  # The names and expiry of a certificate
  {prog} certs inspect certs/tls.crt";

const COMPLETION_EXAMPLES: &str = "\
Examples:
  {prog} completion bash > /etc/bash_completion.d/kspy
  {prog} completion zsh > \"${fpath[1]}/_kspy\"
  {prog} completion fish > ~/.config/fish/completions/kspy.fish";

/// Fills the command's name into every `after_help` of `cmd` and its subcommands.
fn localize(cmd: clap::Command, prog: &str) -> clap::Command {
    let cmd = match cmd.get_after_help().map(|h| h.to_string()) {
        Some(text) => cmd.after_help(text.replace("{prog}", prog)),
        None => cmd,
    };
    cmd.mut_subcommands(|sub| localize(sub, prog))
}

/// `-c/--target` of `kspy copy`. The shared help (TargetArgs) is attach's: there the target's
/// processes are shared with the debug container and, with several containers, kspy's webhook
/// may pick it. In a copy neither holds: processes are shared pod-wide (--share-processes) and
/// kspy picks the container itself.
const COPY_TARGET_HELP: &str = "The container of the copy that --fork puts to sleep, and that \
    --mount-target, --env-from-target and --as-target-user copy from (processes are shared \
    with every container of the copy, see --share-processes) [default: the pod's only \
    container, or its kubectl.kubernetes.io/default-container, else its first container]";

/// The command line as `prog` (`kspy` or `kubectl kspy`) shows it.
fn cli_command(prog: &str) -> clap::Command {
    let cmd = localize(Cli::command(), prog).bin_name(prog);
    cmd.mut_subcommand("copy", |copy| {
        copy.mut_arg("target", |arg| arg.help(COPY_TARGET_HELP))
    })
}

/// What `-c` means in kspy, for those who write kubectl debug's `-c NAME`.
pub(crate) const TARGET_NOT_NAME: &str = "in kspy, -c is --target: the container to debug (kubectl \
     debug's --target); name the debug container with --name (what kubectl debug's -c does)";

/// clap's error for `-c`/`--target` given twice, explained: kubectl debug's `-c` names the
/// debug container, so `--target app -c dbg` is kubectl habit, and clap's "'--target' cannot
/// be used multiple times" names a flag the user wrote once. Any other error is kept.
fn target_given_twice(
    cmd: &mut clap::Command,
    e: clap::Error,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let twice = e.kind() == ErrorKind::ArgumentConflict
        && matches!(e.get(ContextKind::InvalidArg),
                    Some(ContextValue::String(arg)) if arg.starts_with("--target "));
    if !twice {
        return e;
    }
    // The subcommand whose usage line to show: the first word naming one that has -c.
    let sub = args.into_iter().skip(1).find_map(|a| {
        a.to_str()
            .filter(|a| matches!(*a, "attach" | "copy"))
            .map(str::to_owned)
    });
    match sub.and_then(|name| cmd.find_subcommand_mut(&name)) {
        Some(sub) => sub.error(
            ErrorKind::ArgumentConflict,
            format!("-c/--target is given twice; {TARGET_NOT_NAME}"),
        ),
        None => e,
    }
}

/// Combinations of flags clap cannot check by itself: (subcommand, what is wrong).
fn check(cli: &Cli) -> Result<(), (&'static str, String)> {
    let (name, debug, target) = match &cli.command {
        Command::Attach(a) => ("attach", &a.debug, Some(&a.target)),
        Command::Copy(a) => ("copy", &a.debug, Some(&a.target)),
        Command::Node(a) => ("node", &a.debug, None),
        _ => return Ok(()),
    };
    debug.check().map_err(|e| (name, e))?;
    if let Some(t) = target {
        t.check().map_err(|e| (name, e))?;
    }
    // Only attach's container is ephemeral: the file's other mistakes are found as it is read.
    if let Command::Attach(a) = &cli.command
        && let Some(custom) = &a.debug.custom
    {
        container::check_ephemeral_custom(custom).map_err(|e| ("attach", e))?;
    }
    // The copy is created before --replace deletes the original: the name is still taken then.
    if let Command::Copy(a) = &cli.command
        && a.to == a.pod
    {
        return Err((
            "copy",
            format!(
                "--to {} names the pod being copied: the copy needs a name of its own (with \
                 --replace too, as the copy is created before the original is deleted); pick \
                 another, e.g. --to {}-debug",
                a.to, a.pod
            ),
        ));
    }
    if let Command::Node(a) = &cli.command
        && let Some(conflict) = node::host_writable_conflict(a)
    {
        return Err(("node", conflict));
    }
    if let Command::Copy(a) = &cli.command {
        let ignored = copy::flags_without_debug_container(a);
        if !ignored.is_empty() {
            return Err((
                "copy",
                format!(
                    "{} would be ignored: --set-image without --image only changes images and \
                     adds no debug container; give --image to add a debug container (e.g. \
                     --image busybox:latest), or leave them out",
                    ignored.join(", ")
                ),
            ));
        }
    }
    if let Command::Attach(a) = &cli.command
        && a.reuse
    {
        let flags = attach::flags_reuse_cannot_honour(&a.debug, &a.target);
        if !flags.is_empty() {
            return Err((
                "attach",
                format!(
                    "--reuse cannot honour {}: it attaches to a debug container that already \
                     exists, whose environment, mounts and user cannot be compared with what \
                     these flags ask; leave them out, or add a new container without --reuse",
                    flags.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

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
        // A denial of a capability the profile added, not --cap, says so.
        Command::Attach(a) => {
            let d = a.debug.clone();
            run_cluster_command(async move {
                attach::run(a)
                    .await
                    .map_err(|e| d.explain_profile_denial(e, false))
            })
        }
        Command::Copy(a) => {
            let d = a.debug.clone();
            run_cluster_command(async move {
                copy::run(a)
                    .await
                    .map_err(|e| d.explain_profile_denial(e, false))
            })
        }
        Command::Node(a) => {
            let d = a.debug.clone();
            run_cluster_command(async move {
                node::run(a)
                    .await
                    .map_err(|e| d.explain_profile_denial(e, true))
            })
        }
        Command::Ls(a) => run_cluster_command(ls::run(a)),
        Command::Policy { cmd } => policy::run(cmd),
        Command::Certs { cmd } => certs_cmd::run(cmd),
        Command::Completion { shell } => {
            // Rendered first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli_command("kspy"), "kspy", &mut script);
            output::write_stdout(&script)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// True when `err` comes from writing to a closed pipe (`kspy ls | head -1`): the reader has
/// what it wanted, so kspy stops quietly, as ripgrep does.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        // serde_json's writers (`kspy policy eval`) wrap the io::Error without giving it as
        // their source: only `io_error_kind` tells.
        let kind = match cause.downcast_ref::<serde_json::Error>() {
            Some(e) => e.io_error_kind(),
            None => cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
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
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { proxy::normalize_no_proxy_env() };
    let prog = *PROG.get_or_init(|| prog_for(std::env::args_os().next().as_deref()));
    // A panic in the CEL library is a policy's evaluation error (it denies, and `policy
    // test`/`eval` name the expression and the panic's message), not raw panic text on stderr.
    kspy_admission::cel::quiet_evaluation_panics();
    let mut cmd = cli_command(prog);
    let matches = match cmd.try_get_matches_from_mut(std::env::args_os()) {
        Ok(matches) => matches,
        Err(e) => target_given_twice(&mut cmd, e, std::env::args_os()).exit(),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err((name, message)) = check(&cli) {
        let kind = clap::error::ErrorKind::ArgumentConflict;
        let err = match cmd.find_subcommand_mut(name) {
            Some(sub) => sub.error(kind, message),
            None => cmd.error(kind, message),
        };
        err.exit();
    }
    let result = run(cli);
    // Warnings held for a server dry run's verdict that none took (it was denied, or `-q -o`
    // printed the object alone) are still shown, before any error.
    warnings::Warnings::process().flush();
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprint!("{}", report(&err));
            match err.downcast_ref::<KspyError>() {
                Some(k) if k.code == interrupt::EXIT_INTERRUPTED => interrupt::die_of_interrupt(),
                Some(k) => ExitCode::from(k.code),
                None => ExitCode::FAILURE,
            }
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
        assert_eq!(
            a.debug.caps,
            vec!["SYS_PTRACE", "NET_ADMIN"],
            "normalized as the policies compare them"
        );
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
        assert_eq!(c.share_processes, Some(false));
        assert!(!c.keep_init_containers);
        assert_eq!(
            c.set_image,
            vec![("app".to_string(), "busybox".to_string())]
        );
        let cli = Cli::try_parse_from(["kspy", "copy", "web", "--to", "x"]).expect("parses");
        let Command::Copy(c) = cli.command else {
            panic!("copy");
        };
        assert!(c.keep_init_containers, "defaults on");
        assert_eq!(
            c.share_processes, None,
            "left to the pod: build_copy decides without the flag"
        );
        let cli = Cli::try_parse_from(["kspy", "copy", "web", "--to", "x", "--share-processes"])
            .expect("parses");
        let Command::Copy(c) = cli.command else {
            panic!("copy");
        };
        assert_eq!(c.share_processes, Some(true), "given bare: true");

        assert!(Cli::try_parse_from(["kspy", "attach", "web", "--profile", "nope"]).is_err());
        assert!(Cli::try_parse_from(["kspy", "attach", "web", "--env", "novalue"]).is_err());
        assert!(Cli::try_parse_from(["kspy", "attach", "web", "--timeout", "5y"]).is_err());
    }

    /// Every subcommand, nested ones included, with its path (`certs generate`).
    fn all_subcommands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{path}{}", sub.get_name());
            out.push((name.clone(), sub.clone()));
            all_subcommands(sub, &format!("{name} "), out);
        }
    }

    #[test]
    fn every_command_has_examples() {
        let mut subs = Vec::new();
        all_subcommands(&cli_command("kspy"), "", &mut subs);
        assert!(subs.iter().any(|(n, _)| n == "certs generate"));
        for (name, sub) in subs {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(help.contains("Examples:"), "{name} has no examples");
        }
    }

    #[test]
    fn help_examples_use_the_invoked_name() {
        let cmd = cli_command("kubectl kspy");
        let mut subs = vec![("kspy".to_string(), cmd.clone())];
        all_subcommands(&cmd, "", &mut subs);
        for (name, sub) in subs {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(!help.contains("{prog}"), "{name}: {help}");
            for line in help.lines() {
                assert!(
                    !line.trim_start().starts_with("kspy "),
                    "{name} shows `kspy` as a kubectl plugin: {line}"
                );
            }
        }
        let attach = cmd
            .find_subcommand("attach")
            .and_then(|a| a.get_after_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(
            attach.contains("\n  kubectl kspy attach web-7d9f8c6b5-x2x4q -n prod -c app -it\n"),
            "{attach}"
        );
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args)
    }

    #[test]
    fn boolean_flags_take_kubectl_values() {
        let attach = |args: &[&str]| {
            let mut all = vec!["kspy", "attach", "web"];
            all.extend_from_slice(args);
            match parse(&all).expect("parses").command {
                Command::Attach(a) => a,
                other => panic!("{other:?}"),
            }
        };
        let a = attach(&["-i", "--attach=false"]);
        assert!(a.debug.stdin && !a.debug.should_attach(), "--attach=false");
        let a = attach(&["--attach"]);
        assert!(!a.debug.stdin && a.debug.should_attach());
        let a = attach(&["--attach=true", "--no-attach"]);
        assert!(!a.debug.should_attach(), "the last of the two wins");
        let a = attach(&["-it"]);
        assert!(a.debug.stdin && a.debug.tty, "-it still clusters");
        let a = attach(&["-itq"]);
        assert!(a.debug.stdin && a.debug.tty && a.debug.quiet);
        let a = attach(&["-i=false"]);
        assert!(!a.debug.stdin);
        let a = attach(&["--stdin=true", "--tty=true", "--reuse=false", "-q"]);
        assert!(a.debug.stdin && a.debug.tty && !a.reuse && a.debug.quiet);
        let a = attach(&[
            "--mount-target=1",
            "--env-from-target=false",
            "--as-target-user=t",
        ]);
        assert!(a.target.mount_target && !a.target.env_from_target && a.target.as_target_user);
        let a = attach(&["--wait", "--arguments-only=false"]);
        assert!(a.debug.wait && !a.debug.arguments_only);
        assert!(parse(&["kspy", "attach", "web", "--attach=maybe"]).is_err());

        let copy = |args: &[&str]| {
            let mut all = vec!["kspy", "copy", "web"];
            all.extend_from_slice(args);
            match parse(&all).expect("parses").command {
                Command::Copy(c) => c,
                other => panic!("{other:?}"),
            }
        };
        let c = copy(&[
            "--copy-to",
            "web-debug",
            "--keep-labels=true",
            "--fork=false",
        ]);
        assert_eq!(c.to, "web-debug", "--copy-to is --to, as in kubectl debug");
        assert!(c.keep_labels && !c.fork);
        let c = copy(&[
            "--to=x",
            "--same-node",
            "--replace=false",
            "--keep-annotations",
            "--keep-liveness=true",
            "--keep-readiness=false",
            "--keep-startup",
        ]);
        assert!(c.same_node && !c.replace && c.keep_annotations && c.keep_liveness);
        assert!(!c.keep_readiness && c.keep_startup);

        let Command::Ls(l) = parse(&["kspy", "ls", "-A=false"]).expect("parses").command else {
            panic!("ls");
        };
        assert!(!l.all_namespaces);
        let Command::Ls(l) = parse(&["kspy", "ls", "web"]).expect("parses").command else {
            panic!("ls");
        };
        assert_eq!(l.pod.as_deref(), Some("web"), "-A's default is no conflict");
        assert!(parse(&["kspy", "ls", "web", "-A"]).is_err());
    }

    /// kubectl debug's `--target app -c dbg` said "'--target' cannot be used multiple times",
    /// naming a flag written once; it now says what -c is in kspy, and what names the new
    /// container.
    #[test]
    fn target_given_twice_says_what_c_means() {
        for args in [
            &["kspy", "attach", "web", "--target", "app", "-c", "dbg"][..],
            &[
                "kspy",
                "copy",
                "web",
                "--to",
                "web-debug",
                "-c",
                "app",
                "-c",
                "dbg",
            ],
        ] {
            let mut cmd = cli_command("kspy");
            let e = cmd.try_get_matches_from_mut(args).expect_err("refused");
            let e = target_given_twice(&mut cmd, e, args.iter().map(Into::into));
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            assert!(
                text.starts_with(
                    "error: -c/--target is given twice; in kspy, -c is --target: the container \
                     to debug (kubectl debug's --target); name the debug container with --name"
                ),
                "{args:?}: {text}"
            );
            assert!(text.contains(&format!("Usage: kspy {}", args[1])), "{text}");
        }
        // Another flag given twice keeps clap's own words.
        let args = ["kspy", "attach", "web", "--image", "a", "--image", "b"];
        let mut cmd = cli_command("kspy");
        let e = cmd.try_get_matches_from_mut(args).expect_err("refused");
        let e = target_given_twice(&mut cmd, e, args.iter().map(Into::into));
        assert!(
            e.to_string()
                .contains("'--image <IMAGE>' cannot be used multiple times")
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        use clap::error::ErrorKind;
        for args in [
            &["kspy", "attach", "web", "--cap", "sys ptrace"][..],
            &["kspy", "attach", "web", "--image", ""],
            &["kspy", "attach", "web", "--name", "Debugger"],
            &[
                "kspy",
                "attach",
                "web",
                "--custom",
                "/nonexistent/custom.yaml",
            ],
            &["kspy", "attach", "web", "--mount", "data"],
            &["kspy", "attach", "web", "-n", "Prod"],
            &["kspy", "attach", "web_1"],
            &["kspy", "copy", "web", "--to", "Web"],
            // The pod being copied is a name as much as the copy's: it was sent as it came.
            &["kspy", "copy", "web_1", "--to", "web-debug"],
            &["kspy", "copy", "", "--to", "web-debug"],
            // A Service or namespace name that is none is a usage error too (it was exit code
            // 1, "generating certificates").
            &[
                "kspy",
                "certs",
                "generate",
                "--service",
                "Kspy Webhook",
                "--namespace",
                "kspy",
                "--out",
                "certs",
            ],
            &[
                "kspy",
                "certs",
                "generate",
                "--service",
                "kspy-webhook",
                "--namespace",
                "",
                "--out",
                "certs",
            ],
        ] {
            let err = parse(args).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
        // kubectl's TYPE/NAME (`kubectl debug node/worker-3`) is refused with the name to give.
        for (args, name) in [
            (&["kspy", "node", "node/worker-3"][..], "worker-3"),
            (&["kspy", "attach", "pod/web"], "web"),
            (&["kspy", "copy", "pods/web", "--to", "web-debug"], "web"),
            (&["kspy", "ls", "po/web"], "web"),
        ] {
            let err = parse(args).expect_err("refused").to_string();
            assert!(
                err.contains(&format!(
                    "give the name alone, {name}: kspy takes names, not kubectl's TYPE/NAME"
                )),
                "{args:?}: {err}"
            );
        }
        let err = parse(&["kspy", "attach", "deploy/web"])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("must be a DNS subdomain"), "{err}");
        let cli = parse(&["kspy", "attach", "web", "-t"]).expect("parses");
        assert_eq!(
            check(&cli),
            Err(("attach", "-t/--tty needs -i/--stdin; use -it".to_string()))
        );
        let cli = parse(&[
            "kspy",
            "copy",
            "web",
            "--to",
            "x",
            "--mount",
            "data:/d",
            "--mount",
            "config:/d:ro",
        ])
        .expect("parses");
        let (name, message) = check(&cli).expect_err("same path twice");
        assert_eq!(name, "copy");
        assert!(
            message.contains("--mount data:/d and --mount config:/d:ro both mount at /d"),
            "{message}"
        );
        let cli = parse(&["kspy", "node", "n1", "--arguments-only"]).expect("parses");
        assert!(check(&cli).is_err());
        // --host-writable with a profile that mounts no /host: refused, not ignored.
        let cli = parse(&[
            "kspy",
            "node",
            "n1",
            "--host-writable",
            "--profile",
            "netadmin",
        ])
        .expect("parses");
        let (name, message) = check(&cli).expect_err("nothing to make writable");
        assert_eq!(name, "node");
        assert!(
            message.contains("profile netadmin does not mount it"),
            "{message}"
        );
        let cli = parse(&["kspy", "node", "n1", "--host-writable"]).expect("parses");
        assert_eq!(check(&cli), Ok(()), "general mounts /host");
        let cli = parse(&["kspy", "attach", "web", "-it", "--mount", "data:/d"]).expect("parses");
        assert_eq!(check(&cli), Ok(()));
    }

    /// `kspy copy --set-image` without `--image` adds no debug container: every flag of one is
    /// refused by name rather than dropped; with `--image` they are fine, and so are the flags
    /// that still shape the copy itself.
    #[test]
    fn set_image_alone_refuses_the_debug_containers_flags() {
        let copy = |extra: &[&str]| {
            let mut argv = vec!["kspy", "copy", "web", "--to", "web-debug"];
            argv.extend_from_slice(extra);
            check(&parse(&argv).expect("parses"))
        };
        let (name, message) = copy(&[
            "--set-image",
            "app=busybox:1.36",
            "--cap",
            "NET_ADMIN",
            "--env",
            "A=1",
            "--name",
            "dbg",
            "-it",
            "--mount-target",
            "--",
            "sh",
        ])
        .expect_err("refused");
        assert_eq!(name, "copy");
        assert_eq!(
            message,
            "--name, --cap, --env, -i/--stdin, -t/--tty, --mount-target, -- COMMAND would be \
             ignored: --set-image without --image only changes images and adds no debug \
             container; give --image to add a debug container (e.g. --image busybox:latest), or \
             leave them out"
        );
        for flags in [
            &["--set-image", "app=x", "--attach"][..],
            &["--set-image", "app=x", "--wait"],
            &["--set-image", "app=x", "--as-target-user"],
            &["--set-image", "app=x", "--image-pull-policy", "Always"],
            &["--set-image", "app=x", "--mount", "data:/d"],
            &["--set-image", "app=x", "--env-from-target"],
        ] {
            assert!(copy(flags).is_err(), "{flags:?}");
        }
        for fine in [
            &["--set-image", "app=x"][..],
            &[
                "--set-image",
                "app=x",
                "--fork",
                "-c",
                "app",
                "--reason",
                "INC-1",
            ],
            &[
                "--set-image",
                "app=x",
                "--profile",
                "baseline",
                "--no-attach",
            ],
            &[
                "--set-image",
                "app=x",
                "--image",
                "busybox",
                "--cap",
                "NET_ADMIN",
                "-it",
            ],
            &["--cap", "NET_ADMIN", "-it"],
        ] {
            assert_eq!(copy(fine), Ok(()), "{fine:?}");
        }
    }

    /// `kspy copy -c` is described as what it does in a copy: the container --fork puts to
    /// sleep and the other target flags copy from; not attach's "processes shared with the
    /// debug container" nor a webhook's policy default, which apply to ephemeral containers.
    #[test]
    fn copy_describes_its_own_target() {
        let help = |sub: &str| {
            cli_command("kspy")
                .find_subcommand(sub)
                .and_then(|s| s.get_arguments().find(|a| a.get_id() == "target"))
                .and_then(|a| a.get_help().map(|h| h.to_string()))
                .expect("-c has help")
        };
        let copy = help("copy");
        for says in [
            "--fork",
            "--mount-target",
            "--share-processes",
            "first container",
        ] {
            assert!(copy.contains(says), "{copy}");
        }
        assert!(!copy.contains("webhook"), "{copy}");
        assert!(!copy.contains("shared with the debug container"), "{copy}");
        let attach = help("attach");
        assert!(attach.contains("webhook's policy default"), "{attach}");
    }

    #[test]
    fn help_explains_every_dry_run_value() {
        let cmd = cli_command("kspy");
        for sub in ["attach", "copy", "node"] {
            let arg = cmd
                .find_subcommand(sub)
                .and_then(|s| s.get_arguments().find(|a| a.get_id() == "dry_run"))
                .expect("--dry-run");
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            for value in arg.get_possible_values() {
                assert!(
                    help.contains(&format!("`{}`:", value.get_name())),
                    "{sub} --dry-run: {help}"
                );
            }
        }
    }

    #[test]
    fn node_help_says_what_netadmin_gives() {
        // The netadmin profile gives a node pod every host namespace, and not the node's /.
        let mut pod = k8s_openapi::api::core::v1::Pod {
            spec: Some(Default::default()),
            ..Default::default()
        };
        profile::Profile::Netadmin.apply_pod(profile::Style::Node, &mut pod, "debugger");
        let spec = pod.spec.expect("spec");
        assert_eq!(
            (spec.host_pid, spec.host_network, spec.host_ipc),
            (Some(true), Some(true), Some(true))
        );
        assert!(spec.volumes.is_none());
        // The comment line above the `--profile netadmin` example.
        let lines: Vec<&str> = NODE_EXAMPLES.lines().collect();
        let example = lines
            .iter()
            .position(|l| l.contains("--profile netadmin"))
            .and_then(|i| i.checked_sub(1))
            .map(|i| lines[i])
            .expect("the netadmin example");
        assert!(
            example.contains("host PID/network/IPC, no /host"),
            "{example}"
        );
    }

    /// The flags of `kspy attach|copy|node|ls --help`, each by its long and short name.
    fn flags_of(name: &str) -> Vec<(String, Option<String>)> {
        let cli = Cli::command();
        let sub = cli.find_subcommand(name).expect("the subcommand");
        sub.get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?;
                (long != "help" && long != "version")
                    .then(|| (format!("--{long}"), a.get_short().map(|c| format!("-{c}"))))
            })
            .collect()
    }

    /// The `-x` and `--name` tokens of `text`, without values.
    fn flag_tokens(text: &str) -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|t| match t.strip_prefix("--") {
                // `-- CMD` is no flag.
                Some(long) => !long.is_empty(),
                None => t.len() == 2 && t.starts_with('-'),
            })
            .map(str::to_owned)
            .collect()
    }

    /// cli/README.md's usage block names every flag of `attach`, `copy`, `node` and `ls`, and
    /// no flag they lack: a flag added, renamed or removed without the README fails here.
    #[test]
    fn the_readme_usage_block_is_the_flags() {
        let readme = include_str!("../README.md");
        let block = readme
            .split("```text\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("cli/README.md opens with a usage block");
        let section = |name: &str| -> String {
            let start = block
                .find(&format!("kspy {name} "))
                .unwrap_or_else(|| panic!("no `kspy {name}` in the usage block"));
            let rest = &block[start..];
            let end = rest[1..].find("\nkspy ").map_or(rest.len(), |e| e + 1);
            rest[..end].to_owned()
        };
        let attach = flag_tokens(&section("attach"));
        // Cluster access flags are every command's; the README names them once, for attach.
        let cluster = [
            "--kubeconfig",
            "--context",
            "--namespace",
            "--request-timeout",
        ];
        for name in ["attach", "copy", "node", "ls"] {
            let text = section(name);
            // The node line ends with the flags it does not take.
            let listed = flag_tokens(text.split("; not ").next().unwrap_or(&text));
            let flags = flags_of(name);
            let mentioned = |(long, short): &(String, Option<String>)| {
                listed.contains(long) || short.as_ref().is_some_and(|s| listed.contains(s))
            };
            for flag in &flags {
                let inherited = name == "copy"
                    && (attach.contains(&flag.0)
                        || flag.1.as_ref().is_some_and(|s| attach.contains(s)));
                let global = name != "attach" && cluster.contains(&flag.0.as_str());
                assert!(
                    mentioned(flag) || inherited || global,
                    "cli/README.md's usage of kspy {name} does not name {} (it is in --help)",
                    flag.0
                );
            }
            for token in &listed {
                assert!(
                    flags
                        .iter()
                        .any(|(l, s)| l == token || s.as_deref() == Some(token)),
                    "cli/README.md's usage of kspy {name} names {token}, which kspy {name} does not take"
                );
            }
        }
    }
}
