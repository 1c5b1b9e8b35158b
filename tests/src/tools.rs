//! External programs the scenarios drive — the real `kubectl` and the `kspy` binary — and
//! the real-cluster switch.
//!
//! Child processes run on a blocking thread with a deadline (they are killed when it
//! passes), so the in-process server keeps serving while they talk to it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming a kubeconfig: scenarios then run against that cluster.
pub const REAL_CLUSTER_ENV: &str = "KSPY_E2E_KUBECONFIG";

/// The kubeconfig of a real cluster, when [`REAL_CLUSTER_ENV`] is set.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os(REAL_CLUSTER_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The kubectl to use: `$KSPY_E2E_KUBECTL`, else `/usr/bin/kubectl`, else `kubectl` on PATH.
pub fn kubectl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KSPY_E2E_KUBECTL") {
        return Some(PathBuf::from(p));
    }
    let fixed = PathBuf::from("/usr/bin/kubectl");
    if fixed.exists() {
        return Some(fixed);
    }
    find_on_path("kubectl")
}

/// Versioned kubectl binaries (`kubectl.1.NN`) shipped with the Google Cloud SDK, if present.
pub fn versioned_kubectls() -> Vec<PathBuf> {
    let dir = Path::new("/usr/lib/google-cloud-sdk/bin");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("kubectl.1."))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The `kspy` binary: `$KSPY_BIN`, else `kspy` in the cargo target directory holding this
/// test executable (`target/debug/deps/<test>` → `target/debug/kspy`). Build it first with
/// `cargo build -p kspy`; the scenarios skip with a message when it is missing.
pub fn kspy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KSPY_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent()?;
    }
    let p = dir.join("kspy");
    p.is_file().then_some(p)
}

/// Output of a finished (or killed) child.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; `None` when killed by the deadline or a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Whether the deadline killed it.
    pub timed_out: bool,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr together, for messages.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `program args` with `stdin` fed (then closed) and a deadline.
pub async fn run(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
    deadline: Duration,
) -> std::io::Result<Output> {
    let program = program.to_path_buf();
    let args = args.to_vec();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || run_blocking(&program, &args, &env, stdin, deadline))
        .await
        .map_err(std::io::Error::other)?
}

fn run_blocking(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
    deadline: Duration,
) -> std::io::Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = std::io::Read::read_to_end(p, &mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = std::io::Read::read_to_end(p, &mut s);
        }
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    Ok(Output {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
    })
}
