//! After the debug container exists: wait for it, attach (or print its logs when it already
//! ended), and say how to come back.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;

use crate::args::DebugArgs;
use crate::cluster::Cluster;
use crate::errors::KspyError;
use crate::tty;
use crate::wait::{Outcome, wait_for_container};

/// Waits for `container` of `pod` and attaches, as the flags say. `reattach` is the command
/// that attaches again, printed at the end.
pub async fn follow(
    cluster: &Cluster,
    pod: Pod,
    container: &str,
    args: &DebugArgs,
    reattach: &str,
) -> Result<ExitCode, KspyError> {
    let attach = args.should_attach();
    if !attach && !args.wait {
        if !args.quiet {
            eprintln!("attach with: {reattach}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (pod, outcome) =
        wait_for_container(cluster, pod, container, args.timeout(), args.quiet).await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if outcome == Outcome::Terminated {
        if !args.quiet {
            eprintln!("container {container} has already terminated; its logs:");
        }
        tty::print_logs(cluster, &pod, container).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if !attach {
        if !args.quiet {
            eprintln!("container {container} is running; attach with: {reattach}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ended = tty::attach(cluster, &name, container, args.stdin, args.tty, args.quiet).await?;
    if !args.quiet {
        eprintln!("\nsession ended; attach again with: {reattach}");
    }
    Ok(match ended.exit_code {
        Some(code) if code != 0 => ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1)),
        _ => ExitCode::SUCCESS,
    })
}
