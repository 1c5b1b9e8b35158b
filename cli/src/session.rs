//! After the debug container exists: wait for it, attach (or print its logs when it already
//! ended), and say how to come back.
//!
//! kspy's exit code is the debug container's, as `kubectl run --attach` and `kubectl debug`
//! do: the kubelet's attach stream does not carry it (only exec reports exit codes), so it is
//! read from the pod's status once the stream ends — `state.terminated.exitCode` of the
//! container in `ephemeralContainerStatuses` (attach) or `containerStatuses` (copy, node).

use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::args::DebugArgs;
use crate::cluster::Cluster;
use crate::errors::KspyError;
use crate::output;
use crate::tty;
use crate::wait::{Outcome, State, exit_code_after_session, state_of, wait_for_container};

/// How long to wait, after an attach stream ends, for the pod's status to show the container
/// terminated (the kubelet reports it within a second or two). Still running after that: the
/// session was detached or cut, and the container goes on.
pub const EXIT_STATUS_WAIT: Duration = Duration::from_secs(5);

/// How long a failed attach waits for the pod's status to show the container ended.
const ATTACH_FAILED_WAIT: Duration = Duration::from_secs(2);

/// The process exit code for a container's: 0 stays 0, anything else becomes 1 to 255.
pub fn exit_code(code: i32) -> ExitCode {
    if code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1))
    }
}

/// When kspy does not attach, `-q` leaves it only one thing to say: the name it chose, alone
/// on a line of stdout (as `kubectl … -o name`), so that a script can capture it. Nothing when
/// `-o` already put the object on stdout, which must parse as it is.
pub fn print_name_for_scripts(args: &DebugArgs, name: &str) -> Result<(), KspyError> {
    if args.quiet && args.output.is_none() {
        output::write_stdout(format!("{name}\n"))?;
    }
    Ok(())
}

/// Waits for `container` of `pod` and attaches, as the flags say. `reattach` is the command
/// that attaches again, printed at the end; `name` is what `-q` prints instead when kspy does
/// not attach ([`print_name_for_scripts`]): the debug container for attach and copy, the pod
/// for node, the names kspy generates.
pub async fn follow(
    cluster: &Cluster,
    pod: Pod,
    container: &str,
    args: &DebugArgs,
    reattach: &str,
    name: &str,
) -> Result<ExitCode, KspyError> {
    let attach = args.should_attach();
    if !attach && !args.wait {
        if !args.quiet {
            eprintln!("attach with: {reattach}");
        }
        print_name_for_scripts(args, name)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (pod, outcome) = wait_for_container(
        cluster,
        pod,
        container,
        args.timeout(),
        args.quiet,
        reattach,
    )
    .await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if outcome == Outcome::Terminated {
        let state = state_of(&pod, container);
        if !args.quiet {
            eprintln!(
                "container {container} has already terminated ({}); its logs:",
                output::printable(&state.describe())
            );
        }
        tty::print_logs(cluster, &pod, container).await?;
        return Ok(match state {
            State::Terminated {
                exit_code: code, ..
            } => exit_code(code),
            _ => ExitCode::SUCCESS,
        });
    }
    if !attach {
        if !args.quiet {
            eprintln!("container {container} is running; attach with: {reattach}");
        }
        print_name_for_scripts(args, name)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = pod_name;
    if let Err(err) = tty::attach(cluster, &name, container, args.stdin, args.tty, args.quiet).await
    {
        // A short command can end between the wait and the attach: kubectl then falls back to
        // the container's logs, and so does kspy, with its exit code. A container still
        // running means the attach itself failed.
        return match exit_code_after_session(cluster, &name, container, ATTACH_FAILED_WAIT).await {
            Ok(Some(code)) => {
                if !args.quiet {
                    eprintln!(
                        "could not attach: container {container} has already terminated; its logs:"
                    );
                }
                tty::print_logs(cluster, &pod, container).await?;
                Ok(exit_code(code))
            }
            _ => Err(err),
        };
    }
    match exit_code_after_session(cluster, &name, container, EXIT_STATUS_WAIT).await? {
        Some(code) => {
            if !args.quiet {
                eprintln!("\ncontainer {container} exited with code {code}");
            }
            Ok(exit_code(code))
        }
        None => {
            if !args.quiet {
                eprintln!("\nsession ended; attach again with: {reattach}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
