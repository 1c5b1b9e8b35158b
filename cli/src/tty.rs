//! Attaching the terminal to a container through the API server (`pods/attach` over
//! WebSocket, kube-rs `Api::attach`): stdin/stdout/stderr, and with a TTY the local terminal
//! in raw mode and its size sent on every resize.

use std::io::IsTerminal;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachParams, LogParams, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cluster::Cluster;
use crate::errors::{Action, KspyError};

/// Puts the terminal in raw mode for as long as it lives. Dropping it restores the terminal;
/// a signal that ends kspy meanwhile does too ([`crate::interrupt::restore_terminal_on_signals`]),
/// as it skips the drop.
struct RawMode;

impl RawMode {
    fn enable() -> std::io::Result<RawMode> {
        crate::interrupt::restore_terminal_on_signals();
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

/// Attaches to `container` of `pod`, with stdin when `stdin`, a TTY when `tty` (and stdin
/// is a terminal), until the stream ends.
///
/// The kubelet ends an attach stream with a `Status` on the error channel: `Success` when the
/// container's output ended, or a `Failure` (`InternalError`) when it could not attach — the
/// container had already stopped ("no running task found"), for one. Unlike exec, attach
/// never reports the container's exit code there: the caller reads it from the pod's status.
/// A `Failure` is an error here, as in `kubectl attach`.
pub async fn attach(
    cluster: &Cluster,
    pod: &str,
    container: &str,
    stdin: bool,
    tty: bool,
    quiet: bool,
) -> Result<(), KspyError> {
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
    // kube's message loop closes stdout/stderr when it ends cleanly, but not when it ends on
    // an error — e.g. sending the end of stdin after the server already closed the stream,
    // a race every short session can hit. So the pumps stop on end of stream *or* once the
    // loop has ended and the pipe holds nothing more, never waiting for an EOF that can't come.
    let (ended_tx, ended) = tokio::sync::watch::channel(false);
    let err_task = process
        .stderr()
        .map(|remote| tokio::spawn(pump(remote, tokio::io::stderr(), ended.clone())));
    let out_task = process
        .stdout()
        .map(|remote| tokio::spawn(pump(remote, tokio::io::stdout(), ended.clone())));
    let status = process.take_status();
    let stream_result = process.join().await;
    let _ = ended_tx.send(true);
    for task in [out_task, err_task].into_iter().flatten() {
        let _ = task.await;
    }
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    if let Err(e) = &stream_result
        && status.is_none()
        && !quiet
    {
        eprintln!("the attach stream ended without a status from the kubelet: {e}");
    }
    match status {
        Some(s) if is_failure(&s) => {
            Err(attach_failure(&action, &s, pod, container, &cluster.flags))
        }
        _ => Ok(()),
    }
}

/// A `Failure` other than an exit code (which only exec reports, but a server may send).
fn is_failure(s: &Status) -> bool {
    s.status.as_deref() == Some("Failure") && s.reason.as_deref() != Some("NonZeroExitCode")
}

/// `flags`: the cluster flags given, repeated in the commands suggested.
fn attach_failure(
    action: &Action,
    s: &Status,
    pod: &str,
    container: &str,
    flags: &str,
) -> KspyError {
    let message = s.message.as_deref().unwrap_or_default().trim();
    let detail = if message.is_empty() {
        format!(
            "the kubelet answered {} {}",
            s.code.unwrap_or_default(),
            s.reason.as_deref().unwrap_or("Failure")
        )
    } else {
        message.to_string()
    };
    let ns = match action {
        Action::Attach { ns, .. } => ns.as_str(),
        _ => "default",
    };
    KspyError::new(action.to_string())
        .details([detail])
        .hint(format!(
            "the container may have stopped before kspy attached: see its state with \
             `kubectl get pod {pod} -n {ns}{flags}` and its output with \
             `kubectl logs {pod} -n {ns}{flags} -c {container}`"
        ))
}

/// Copies `remote` to `local` until end of stream, or until `ended` turns true and `remote`
/// has nothing buffered (the producer is gone but may not have closed the pipe).
async fn pump(
    mut remote: impl AsyncRead + Unpin,
    mut local: impl AsyncWrite + Unpin,
    mut ended: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 8192];
    let mut producer_gone = false;
    loop {
        let n = if producer_gone {
            // Whatever the producer wrote is already in the pipe: take it without waiting.
            match remote.read(&mut buf).now_or_never() {
                Some(Ok(n)) => n,
                Some(Err(_)) | None => 0,
            }
        } else {
            tokio::select! {
                r = remote.read(&mut buf) => r.unwrap_or(0),
                _ = ended.wait_for(|e| *e) => {
                    producer_gone = true;
                    continue;
                }
            }
        };
        if n == 0 || local.write_all(&buf[..n]).await.is_err() {
            break;
        }
        // Flush per chunk: an interactive session must show output as it arrives.
        let _ = local.flush().await;
    }
    let _ = local.flush().await;
}

/// Prints the logs of `container` (for a container that already terminated) to stdout as
/// they come: bytes, as the container wrote them — a log need not be UTF-8 (a binary dump,
/// Latin-1 text), and reading it as text (`Api::logs`) failed on it.
///
/// The caller exits with the container's exit code, which matters more to a script than its
/// output: logs that cannot be read (no `get pods/log`, a stream cut short) are reported on
/// stderr and are no error here. Only a failure to write to stdout is (a closed pipe ends kspy
/// quietly in `main`).
///
/// `previous`: the logs of the run before the current one (`lastState`), for a container the
/// kubelet restarted since it exited.
pub async fn print_logs(
    cluster: &Cluster,
    pod: &Pod,
    container: &str,
    previous: bool,
) -> Result<(), KspyError> {
    match copy_logs(cluster, pod, container, previous).await {
        Ok(()) => Ok(()),
        Err(LogsFailed::Writing(e)) => Err(e),
        Err(LogsFailed::Reading(e)) => {
            eprint!("{}", e.render(crate::prog()));
            Ok(())
        }
    }
}

/// Why [`copy_logs`] stopped.
enum LogsFailed {
    /// The logs could not be read.
    Reading(KspyError),
    /// Standard output could not be written.
    Writing(KspyError),
}

async fn copy_logs(
    cluster: &Cluster,
    pod: &Pod,
    container: &str,
    previous: bool,
) -> Result<(), LogsFailed> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let action = Action::Logs {
        ns: cluster.namespace.clone(),
        pod: name.clone(),
        container: container.to_string(),
    };
    let params = LogParams {
        container: Some(container.to_string()),
        previous,
        ..LogParams::default()
    };
    let mut logs = cluster
        .pods()
        .log_stream(&name, &params)
        .await
        .map_err(|e| LogsFailed::Reading(cluster.explain(&action, e)))?;
    let mut out = tokio::io::stdout();
    let write_failed =
        |e| LogsFailed::Writing(KspyError::new("cannot write to standard output").source(e));
    let mut buf = vec![0u8; 8192];
    loop {
        let n = futures::AsyncReadExt::read(&mut logs, &mut buf)
            .await
            .map_err(|e| {
                LogsFailed::Reading(
                    KspyError::new(format!("{action}: the stream broke off"))
                        .source(e)
                        .hint("the logs printed before this are incomplete"),
                )
            })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).await.map_err(write_failed)?;
    }
    out.flush().await.map_err(write_failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The producer wrote and went away without closing the pipe (kube's loop ending on an
    /// error): the pump hands over what was written and stops instead of waiting for EOF.
    #[tokio::test]
    async fn pump_stops_when_the_producer_is_gone_without_closing() {
        let (reader, mut writer) = tokio::io::simplex(1024);
        let (ended_tx, ended) = tokio::sync::watch::channel(false);
        writer.write_all(b"round-trip-ok\n").await.unwrap();
        let mut local = Vec::new();
        let pumping = pump(reader, &mut local, ended);
        let producer = async {
            tokio::task::yield_now().await;
            ended_tx.send(true).unwrap();
        };
        let ((), ()) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::future::join(pumping, producer),
        )
        .await
        .expect("the pump must not wait for an EOF that never comes");
        drop(writer);
        assert_eq!(local, b"round-trip-ok\n");
    }

    /// A clean end of stream stops the pump with everything copied, before `ended` is set.
    #[tokio::test]
    async fn pump_copies_until_end_of_stream() {
        let (reader, mut writer) = tokio::io::simplex(16);
        let (_ended_tx, ended) = tokio::sync::watch::channel(false);
        let producer = async move {
            for i in 0..100 {
                writer
                    .write_all(format!("line {i}\n").as_bytes())
                    .await
                    .unwrap();
            }
            writer.shutdown().await.unwrap();
        };
        let mut local = Vec::new();
        futures::future::join(pump(reader, &mut local, ended), producer).await;
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(local).unwrap(), expected);
    }
}
