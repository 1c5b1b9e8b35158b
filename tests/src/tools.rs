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

/// Environment variable that turns every skip into a failure (`.ci/run` sets it): set to
/// anything but empty or `0`, a test that would print `SKIP:` panics instead. The one
/// exception is a test needing kubectl on a machine that has no kubectl at all.
pub const REQUIRE_ENV: &str = "KSPY_E2E_REQUIRE";

/// Whether [`REQUIRE_ENV`] is set.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips the calling test: prints `SKIP: reason`, or panics when [`REQUIRE_ENV`] is set.
/// The caller returns after it.
#[track_caller]
pub fn skip(reason: &str) {
    if required() {
        panic!("{REQUIRE_ENV} is set and this test would skip: {reason}");
    }
    println!("SKIP: {reason}");
}

/// Skips a test that needs kubectl and has none to use: a failure under [`REQUIRE_ENV`]
/// unless the machine has no kubectl at all ([`machine_has_kubectl`]).
#[track_caller]
pub fn skip_without_kubectl(reason: &str) {
    if required() && machine_has_kubectl() {
        panic!(
            "{REQUIRE_ENV} is set and this machine has kubectl ({:?}), yet the test would skip: {reason}",
            kubectl_candidates()
        );
    }
    println!("SKIP: {reason}");
}

/// Whether any kubectl is installed: `$KSPY_E2E_KUBECTL` or `$KUBECTL` set, `/usr/bin/kubectl`,
/// `kubectl` on PATH, or the Cloud SDK's versioned binaries.
pub fn machine_has_kubectl() -> bool {
    std::env::var_os("KSPY_E2E_KUBECTL").is_some_and(|v| !v.is_empty())
        || std::env::var_os("KUBECTL").is_some_and(|v| !v.is_empty())
        || !kubectl_candidates().is_empty()
}

/// The kubeconfig of a real cluster, when [`REAL_CLUSTER_ENV`] is set.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os(REAL_CLUSTER_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The kubectl to use: `$KSPY_E2E_KUBECTL`, else `/usr/bin/kubectl`, else `kubectl` on PATH.
/// For pod creates against the in-process server use [`json_kubectl`].
pub fn kubectl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KSPY_E2E_KUBECTL").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let fixed = PathBuf::from("/usr/bin/kubectl");
    if fixed.exists() {
        return Some(fixed);
    }
    find_on_path("kubectl")
}

/// Versioned kubectl binaries (`kubectl.1.NN`) shipped with the Google Cloud SDK, if
/// present, oldest first.
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
    // By minor version, not as text (`kubectl.1.100` after `kubectl.1.99`).
    out.sort_by_key(|p| {
        let minor = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("kubectl.1."))
            .and_then(|m| m.parse::<u32>().ok());
        (minor, p.clone())
    });
    out
}

/// Every kubectl on the machine, each binary once: `$KSPY_E2E_KUBECTL` alone when set, else
/// `/usr/bin/kubectl`, `kubectl` on PATH and [`versioned_kubectls`].
pub fn kubectl_candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("KSPY_E2E_KUBECTL").filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    let fixed = PathBuf::from("/usr/bin/kubectl");
    let all = fixed
        .is_file()
        .then_some(fixed)
        .into_iter()
        .chain(find_on_path("kubectl"))
        .chain(versioned_kubectls());
    for p in all {
        let real = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if !seen.contains(&real) {
            seen.push(real);
            out.push(p);
        }
    }
    out
}

/// `kubectl version --client`'s version as (major, minor, patch), `None` when it does not run.
pub async fn kubectl_version(bin: &Path) -> Option<(u32, u32, u32)> {
    let out = run(
        bin,
        &[
            "version".into(),
            "--client".into(),
            "-o".into(),
            "json".into(),
        ],
        &[],
        None,
        Duration::from_secs(30),
    )
    .await
    .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    parse_git_version(v.pointer("/clientVersion/gitVersion")?.as_str()?)
}

/// `v1.32.4-dispatcher` → (1, 32, 4).
fn parse_git_version(git: &str) -> Option<(u32, u32, u32)> {
    let mut parts = git.trim_start_matches('v').splitn(3, '.');
    let num = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    Some((
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next().unwrap_or("0")).unwrap_or(0),
    ))
}

/// Which kubectl sends pod creates as JSON, whose recorded bodies the scenarios read (client-go's
/// typed clients switched `kubectl debug --copy-to` and `kubectl debug node/…` to protobuf
/// bodies in 1.32, which the in-process API server decodes as well).
#[derive(Debug, Clone)]
pub enum JsonKubectl {
    /// The newest kubectl that does.
    Found(PathBuf),
    /// The machine has no kubectl at all.
    NoKubectl,
    /// kubectl is installed, but none of the binaries creates pods with JSON bodies; what
    /// each one did.
    NoneSendsJson(String),
}

static JSON_KUBECTL: tokio::sync::OnceCell<JsonKubectl> = tokio::sync::OnceCell::const_new();

/// The newest kubectl on the machine ([`kubectl_candidates`], newest version first) whose
/// `kubectl debug POD --copy-to=…` reaches an in-process API server as an
/// `application/json` POST and creates the copy. Found by trying each against a scratch
/// server, once per test process.
pub async fn json_kubectl() -> JsonKubectl {
    JSON_KUBECTL.get_or_init(probe_json_kubectl).await.clone()
}

/// [`json_kubectl`] for a test that needs it: `None` (after a skip, see
/// [`skip_without_kubectl`]) when the machine has no kubectl; a panic when it has kubectl
/// but no binary that sends JSON.
pub async fn json_kubectl_or_fail() -> Option<PathBuf> {
    match json_kubectl().await {
        JsonKubectl::Found(p) => Some(p),
        JsonKubectl::NoKubectl => {
            skip_without_kubectl("no kubectl on this machine");
            None
        }
        JsonKubectl::NoneSendsJson(why) => panic!(
            "kubectl is installed, but no binary creates pods with JSON bodies, whose \
             recorded bodies these tests read (set KSPY_E2E_KUBECTL to one that does, e.g. \
             kubectl 1.30):\n{why}"
        ),
    }
}

async fn probe_json_kubectl() -> JsonKubectl {
    let candidates = kubectl_candidates();
    if candidates.is_empty() {
        return JsonKubectl::NoKubectl;
    }
    let mut versioned = Vec::new();
    for c in candidates {
        let v = kubectl_version(&c).await;
        versioned.push((v, c));
    }
    // Newest first; for one version an explicit `kubectl.1.NN` before a dispatcher.
    versioned.sort_by(|(va, a), (vb, b)| {
        let explicit = |p: &PathBuf| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kubectl.1."))
        };
        vb.cmp(va).then(explicit(a).cmp(&explicit(b)))
    });
    let server = match crate::apiserver::ApiServer::builder()
        .namespace("prod", &[])
        .pod(crate::fixtures::web_pod("prod", "web"))
        .start()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return JsonKubectl::NoneSendsJson(format!("the probe server did not start: {e}"));
        }
    };
    let mut report = String::new();
    for (i, (version, bin)) in versioned.iter().enumerate() {
        let copy = format!("probe-{i}");
        let before = server.requests().len();
        let args: Vec<String> = [
            "--kubeconfig",
            &server.kubeconfig_for("admin").display().to_string(),
            "-n",
            "prod",
            "debug",
            "web",
            "--image=busybox",
            &format!("--copy-to={copy}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let home = vec![("HOME".to_string(), server.dir().display().to_string())];
        let out = run(bin, &args, &home, None, Duration::from_secs(60)).await;
        let post_types: Vec<String> = server
            .requests()
            .into_iter()
            .skip(before)
            .filter(|r| r.method == "POST" && r.uri.starts_with("/api/v1/namespaces/prod/pods"))
            .map(|r| r.content_type)
            .collect();
        let created = server.pod("prod", &copy).is_some();
        let ok = out.as_ref().is_ok_and(Output::success)
            && created
            && post_types.iter().all(|t| t.starts_with("application/json"));
        if ok {
            return JsonKubectl::Found(bin.clone());
        }
        let outcome = match &out {
            Ok(o) => o.stderr.trim().lines().last().unwrap_or("").to_string(),
            Err(e) => e.to_string(),
        };
        report.push_str(&format!(
            "  {} ({}): pod create content types {post_types:?}: {outcome}\n",
            bin.display(),
            version.map_or("version unknown".into(), |(a, b, c)| format!(
                "v{a}.{b}.{c}"
            )),
        ));
    }
    JsonKubectl::NoneSendsJson(report)
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
/// `cargo build -p kspy`; the scenarios skip with a message when it is missing (and fail
/// under [`REQUIRE_ENV`]).
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
