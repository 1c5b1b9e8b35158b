//! A tiny shell stand-in: the "process" of every running container.
//!
//! It reads stdin lines and answers: `echo X` prints X, `size` prints the terminal size
//! last received on the resize channel (`COLSxROWS`), `whoami` prints `root`,
//! `exit [N]` ends the process with code N; any other line is echoed back. With a TTY,
//! typed characters are echoed as a terminal would (`\r` → `\r\n`), Ctrl-D on an empty
//! line exits. All output is also appended to the container log (for `pods/log`).

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, watch};

/// Input to a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes on stdin.
    Data(Vec<u8>),
    /// Terminal resize (width, height).
    Resize(u16, u16),
}

/// A running (or finished) container process.
#[derive(Debug)]
pub struct Process {
    /// Feeds stdin and resize events.
    pub input: mpsc::UnboundedSender<Input>,
    /// Output stream (stdout; with a TTY stdout and stderr are one stream).
    pub output: broadcast::Sender<Vec<u8>>,
    /// Exit code once the process ended.
    pub exit: watch::Receiver<Option<i32>>,
    /// Everything written so far.
    pub log: Arc<Mutex<Vec<u8>>>,
    /// Whether the container has a TTY.
    pub tty: bool,
    /// Every resize received, in order.
    pub resizes: Arc<Mutex<Vec<(u16, u16)>>>,
}

impl Process {
    /// Subscribes to output and returns what was logged before, atomically.
    pub fn subscribe_with_backlog(&self) -> (Vec<u8>, broadcast::Receiver<Vec<u8>>) {
        let guard = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.output.subscribe();
        (guard.clone(), rx)
    }

    /// Whether the process has ended.
    pub fn exited(&self) -> Option<i32> {
        *self.exit.borrow()
    }
}

struct Writer {
    output: broadcast::Sender<Vec<u8>>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Writer {
    fn write(&self, bytes: &[u8]) {
        let mut l = self.log.lock().unwrap_or_else(|p| p.into_inner());
        l.extend_from_slice(bytes);
        let _ = self.output.send(bytes.to_vec());
    }
}

/// What the shell does with one complete line; `Err(code)` means exit.
fn run_line(line: &str, size: Option<(u16, u16)>) -> Result<Option<String>, i32> {
    let line = line.trim();
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "" => Ok(None),
        "exit" => Err(rest.trim().parse().unwrap_or(0)),
        "echo" => Ok(Some(rest.to_string())),
        "whoami" => Ok(Some("root".into())),
        "size" => Ok(Some(match size {
            Some((w, h)) => format!("{w}x{h}"),
            None => "unknown".into(),
        })),
        _ => Ok(Some(line.to_string())),
    }
}

/// Starts a shell process; `on_exit` is called with the exit code when it ends.
/// `greeting` is written first (e.g. for one-shot containers that print and exit).
pub fn spawn(
    tty: bool,
    greeting: Option<String>,
    exit_now: Option<i32>,
    on_exit: impl FnOnce(i32) + Send + 'static,
) -> Arc<Process> {
    let (in_tx, mut in_rx) = mpsc::unbounded_channel::<Input>();
    let (out_tx, _) = broadcast::channel(256);
    let (exit_tx, exit_rx) = watch::channel(None);
    let log = Arc::new(Mutex::new(Vec::new()));
    let resizes = Arc::new(Mutex::new(Vec::new()));
    let proc_ = Arc::new(Process {
        input: in_tx,
        output: out_tx.clone(),
        exit: exit_rx,
        log: log.clone(),
        tty,
        resizes: resizes.clone(),
    });
    let w = Writer {
        output: out_tx,
        log,
    };
    let nl = if tty { "\r\n" } else { "\n" };
    tokio::spawn(async move {
        if let Some(g) = greeting {
            w.write(g.replace('\n', nl).as_bytes());
        }
        if let Some(code) = exit_now {
            let _ = exit_tx.send(Some(code));
            on_exit(code);
            return;
        }
        let mut line: Vec<u8> = Vec::new();
        let mut size = None;
        let code = 'outer: loop {
            let Some(input) = in_rx.recv().await else {
                break 0;
            };
            match input {
                Input::Resize(wd, h) => {
                    size = Some((wd, h));
                    resizes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((wd, h));
                }
                Input::Data(bytes) => {
                    for b in bytes {
                        match b {
                            b'\r' | b'\n' => {
                                if tty {
                                    w.write(b"\r\n");
                                }
                                let text = String::from_utf8_lossy(&line).to_string();
                                line.clear();
                                match run_line(&text, size) {
                                    Ok(Some(out)) => w.write(format!("{out}{nl}").as_bytes()),
                                    Ok(None) => {}
                                    Err(code) => break 'outer code,
                                }
                            }
                            0x04 if tty && line.is_empty() => break 'outer 0,
                            0x03 if tty => {
                                line.clear();
                                w.write(b"^C\r\n");
                            }
                            _ => {
                                if tty {
                                    w.write(&[b]);
                                }
                                line.push(b);
                            }
                        }
                    }
                }
            }
        };
        let _ = exit_tx.send(Some(code));
        on_exit(code);
    });
    proc_
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echoes_and_exits() {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = spawn(false, None, None, move |c| tx.send(c).unwrap());
        let mut out = p.output.subscribe();
        p.input.send(Input::Resize(80, 24)).unwrap();
        p.input
            .send(Input::Data(
                b"hello\nsize\necho hi there\nexit 3\n".to_vec(),
            ))
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.extend(out.recv().await.unwrap());
        }
        assert_eq!(String::from_utf8(got).unwrap(), "hello\n80x24\nhi there\n");
        let mut exit = p.exit.clone();
        exit.wait_for(|c| c.is_some()).await.unwrap();
        assert_eq!(p.exited(), Some(3));
        assert_eq!(rx.recv().unwrap(), 3);
        assert_eq!(p.subscribe_with_backlog().0, b"hello\n80x24\nhi there\n");
    }

    #[tokio::test]
    async fn tty_echo() {
        let p = spawn(true, None, None, |_| {});
        let mut out = p.output.subscribe();
        p.input.send(Input::Data(b"ab\r".to_vec())).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"ab\r\n") || got.len() < 6 {
            got.extend(out.recv().await.unwrap());
        }
        assert_eq!(got, b"ab\r\nab\r\n");
    }
}
