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
use crate::wait::{
    Exited, Outcome, exit_after_session, exited_since, restart_policy, restarts, wait_for_container,
};

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
    // A debug copy keeps the source pod's restartPolicy (as kubectl debug --copy-to does): its
    // debug container, once exited, is restarted. Restarts from here on mean it ran and exited.
    let restarts_before = restarts(&pod, container);
    let (pod, outcome) = wait_for_container(
        cluster,
        pod,
        container,
        restarts_before,
        args.timeout(),
        args.quiet,
        reattach,
    )
    .await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if outcome == Outcome::Terminated {
        let Some(exited) = exited_since(&pod, container, restarts_before) else {
            // Not reached: waiting ends so only once the container ran and exited.
            return Ok(ExitCode::SUCCESS);
        };
        if !args.quiet {
            eprintln!(
                "{}; {}:",
                ran_and_exited(container, &exited, &pod),
                logs_of(&exited)
            );
        }
        tty::print_logs(cluster, &pod, container, exited.restarted).await?;
        return Ok(exit_code(exited.exit_code));
    }
    if !attach {
        if !args.quiet {
            eprintln!("container {container} is running; attach with: {reattach}");
        }
        print_name_for_scripts(args, name)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = pod_name;
    let restarts_before = restarts(&pod, container);
    if let Err(err) = tty::attach(cluster, &name, container, args.stdin, args.tty, args.quiet).await
    {
        // A short command can end between the wait and the attach: kubectl then falls back to
        // the container's logs, and so does kspy, with its exit code. A container still
        // running the same run means the attach itself failed.
        return match exit_after_session(
            cluster,
            &name,
            container,
            restarts_before,
            ATTACH_FAILED_WAIT,
        )
        .await
        {
            Ok(Some(exited)) => {
                if !args.quiet && exited.restarted {
                    eprintln!(
                        "could not attach: {}; {}:",
                        ran_and_exited(container, &exited, &pod),
                        logs_of(&exited)
                    );
                } else if !args.quiet {
                    eprintln!(
                        "could not attach: container {container} has already terminated; its logs:"
                    );
                }
                tty::print_logs(cluster, &pod, container, exited.restarted).await?;
                Ok(exit_code(exited.exit_code))
            }
            // The container was added (or the pod created) and outlives the failed attach:
            // say how to reach it once the cause is fixed, as after a wait that failed, so
            // that running the same kspy command again does not add a second one.
            Ok(None) => Err(err.details([format!(
                "container {container} of pod {}/{name} still shows as running; once the \
                 cause is fixed, attach to it with: {reattach}",
                cluster.namespace
            )])),
            // Gone, or its state unknown: nothing to point at.
            Err(_) => Err(err),
        };
    }
    match exit_after_session(cluster, &name, container, restarts_before, EXIT_STATUS_WAIT).await? {
        Some(exited) if exited.restarted => {
            if !args.quiet {
                eprintln!(
                    "\ncontainer {container} exited with code {}; the pod's restartPolicy ({}) \
                     is restarting it: attach again with: {reattach}",
                    exited.exit_code,
                    restart_policy(&pod)
                );
            }
            Ok(exit_code(exited.exit_code))
        }
        Some(exited) => {
            if !args.quiet {
                eprintln!(
                    "\ncontainer {container} exited with code {}",
                    exited.exit_code
                );
            }
            Ok(exit_code(exited.exit_code))
        }
        None => {
            if !args.quiet {
                eprintln!("\nsession ended; attach again with: {reattach}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// "container X has already terminated (…)", or, when the kubelet restarted it since, that it
/// ran and exited and that the pod's restartPolicy restarts it.
fn ran_and_exited(container: &str, exited: &Exited, pod: &Pod) -> String {
    let how = output::printable(&format!(
        "{}, exit code {}",
        exited.reason, exited.exit_code
    ))
    .into_owned();
    if exited.restarted {
        format!(
            "container {container} ran and exited ({how}); the pod's restartPolicy ({}) is \
             restarting it (a debug copy keeps the source pod's, as kubectl debug does; --fork \
             sets Never)",
            restart_policy(pod)
        )
    } else {
        format!("container {container} has already terminated (Terminated ({how}))")
    }
}

/// Which logs follow: a restarted container's are those of the run that ended (`previous`).
fn logs_of(exited: &Exited) -> &'static str {
    if exited.restarted {
        "the logs of that run"
    } else {
        "its logs"
    }
}
