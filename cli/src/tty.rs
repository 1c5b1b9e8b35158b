//! Attaching the terminal to a container through the API server (`pods/attach` over
//! WebSocket, kube-rs `Api::attach`): stdin/stdout/stderr, and with a TTY the local terminal
//! in raw mode and its size sent on every resize.

use std::io::IsTerminal;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, LogParams, TerminalSize};
use tokio::io::AsyncWriteExt;

use crate::cluster::Cluster;
use crate::errors::{Action, KspyError};

/// Puts the terminal in raw mode for as long as it lives.
struct RawMode;

impl RawMode {
    fn enable() -> std::io::Result<RawMode> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

fn terminal_size() -> Option<TerminalSize> {
    crossterm::terminal::size()
        .ok()
        .map(|(width, height)| TerminalSize { width, height })
}

/// How an attach session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The container's exit code, when the API server reported a non-zero one.
    pub exit_code: Option<i32>,
}

/// Attaches to `container` of `pod`, with stdin when `stdin`, a TTY when `tty` (and stdin
/// is a terminal), until the container's output ends.
pub async fn attach(
    cluster: &Cluster,
    pod: &str,
    container: &str,
    stdin: bool,
    tty: bool,
    quiet: bool,
) -> Result<Ended, KspyError> {
    let action = Action::Attach {
        ns: cluster.namespace.clone(),
        pod: pod.to_string(),
        container: container.to_string(),
    };
    let local_tty = tty && stdin && std::io::stdin().is_terminal();
    if tty && stdin && !local_tty && !quiet {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let params = AttachParams {
        container: Some(container.to_string()),
        stdin,
        stdout: true,
        stderr: !local_tty,
        tty: local_tty,
        ..AttachParams::default()
    };
    let mut process = cluster
        .pods()
        .attach(pod, &params)
        .await
        .map_err(|e| cluster.explain(&action, e))?;
    if local_tty && !quiet {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let _raw = if local_tty {
        Some(
            RawMode::enable()
                .map_err(|e| KspyError::new("cannot put the terminal in raw mode").source(e))?,
        )
    } else {
        None
    };

    if local_tty && let Some(mut sizes) = process.terminal_size() {
        if let Some(size) = terminal_size() {
            let _ = sizes.try_send(size);
        }
        #[cfg(unix)]
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut winch) = signal(SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some(size) = terminal_size()
                    && sizes.try_send(size).is_err()
                    && sizes.is_closed()
                {
                    break;
                }
            }
        });
    }

    if let Some(mut remote_in) = process.stdin() {
        tokio::spawn(async move {
            let mut local_in = tokio::io::stdin();
            let _ = tokio::io::copy(&mut local_in, &mut remote_in).await;
            let _ = remote_in.shutdown().await;
        });
    }
    let err_task = process.stderr().map(|mut remote_err| {
        tokio::spawn(async move {
            let mut local_err = tokio::io::stderr();
            let _ = tokio::io::copy(&mut remote_err, &mut local_err).await;
            let _ = local_err.flush().await;
        })
    });
    let status = process.take_status();
    if let Some(mut remote_out) = process.stdout() {
        let mut local_out = tokio::io::stdout();
        let _ = tokio::io::copy(&mut remote_out, &mut local_out).await;
        let _ = local_out.flush().await;
    }
    if let Some(task) = err_task {
        let _ = task.await;
    }
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    process.abort();
    let exit_code = status.and_then(|s| {
        let code = s
            .details
            .as_ref()?
            .causes
            .as_ref()?
            .iter()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))?
            .message
            .as_deref()?
            .parse::<i32>()
            .ok()?;
        Some(code)
    });
    Ok(Ended { exit_code })
}

/// Prints the logs of `container` (for a container that already terminated).
pub async fn print_logs(cluster: &Cluster, pod: &Pod, container: &str) -> Result<(), KspyError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let action = Action::Logs {
        ns: cluster.namespace.clone(),
        pod: name.clone(),
        container: container.to_string(),
    };
    let params = LogParams {
        container: Some(container.to_string()),
        ..LogParams::default()
    };
    let logs = cluster
        .pods()
        .logs(&name, &params)
        .await
        .map_err(|e| cluster.explain(&action, e))?;
    let mut out = tokio::io::stdout();
    out.write_all(logs.as_bytes())
        .await
        .map_err(|e| KspyError::new("cannot write to stdout").source(e))?;
    out.flush()
        .await
        .map_err(|e| KspyError::new("cannot write to stdout").source(e))?;
    Ok(())
}
