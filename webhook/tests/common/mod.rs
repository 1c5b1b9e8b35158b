//! Shared test harness: a real kspy-webhook on 127.0.0.1:0 with a freshly generated CA, and
//! clients that trust only that CA.

#![allow(dead_code)]

pub mod h2;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use kspy_certs::{GeneratedCerts, WrittenFiles};
use kspy_webhook::client::{HttpVersion, HttpsConnection};
use kspy_webhook::{RunningServer, ServerConfig, TlsFiles};
use rustls::ClientConfig;
use serde_json::Value;

/// SREs may attach busybox with SYS_PTRACE; defaults target the first container and set the
/// pull policy. A Warn-mode policy asks for digest-pinned images.
pub const POLICIES: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: test-sre
spec:
  description: SREs may trace.
  match:
    actions: [attach]
    groups: [sre]
  grant:
    images: ["busybox:*"]
    capabilities: [SYS_PTRACE]
    runAsRoot: true
    mountVolumes: nonSecret
  defaults:
    targetContainer: first
    imagePullPolicy: IfNotPresent
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: test-pinned
spec:
  mode: Warn
  match:
    actions: [attach]
  validations:
    - expression: "container.image.contains('@sha256:')"
      message: debug images should be pinned by digest
"#;

/// Like [`POLICIES`], with SYS_ADMIN granted too.
pub const POLICIES_WITH_SYS_ADMIN: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: test-sre
spec:
  match:
    actions: [attach]
    groups: [sre]
  grant:
    images: ["busybox:*"]
    capabilities: [SYS_PTRACE, SYS_ADMIN]
    runAsRoot: true
    mountVolumes: nonSecret
"#;

/// Reads a fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The request uid of a fixture.
pub fn fixture_uid(name: &str) -> String {
    let v: Value = serde_json::from_slice(&fixture(name)).expect("fixture is JSON");
    v["request"]["uid"].as_str().expect("uid").to_owned()
}

/// A running webhook and what it was started with.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub certs: GeneratedCerts,
    pub cert_files: WrittenFiles,
    pub policies: PathBuf,
    pub server: RunningServer,
    pub tls: ClientConfig,
}

/// A certificate for loopback.
pub fn loopback_certs() -> GeneratedCerts {
    kspy_certs::generate_with_sans(
        "kspy-webhook",
        "kspy",
        Duration::from_secs(86_400),
        &["127.0.0.1".to_owned(), "localhost".to_owned()],
    )
    .expect("generate certs")
}

/// A root store holding only the given CA PEMs.
pub fn ca_roots(ca_pems: &[&str]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for pem in ca_pems {
        for cert in kspy_certs::parse_certs(pem.as_bytes(), "ca").expect("ca") {
            roots.add(cert).expect("add root");
        }
    }
    roots
}

/// A client configuration trusting only the given CA PEMs.
pub fn client_tls(ca_pems: &[&str]) -> ClientConfig {
    kspy_webhook::tls::client_config(ca_roots(ca_pems), &[b"http/1.1"]).expect("client config")
}

impl Harness {
    /// Starts a server with [`POLICIES`] and fast reload polling.
    pub async fn start() -> Harness {
        Self::start_with(POLICIES, |_| {}).await
    }

    /// Starts a server with the given policies, after `tweak` adjusts the configuration.
    pub async fn start_with(policies: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = loopback_certs();
        let cert_files = certs
            .write_to(&dir.path().join("certs"))
            .expect("write certs");
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir_all(&policy_dir).expect("policy dir");
        std::fs::write(policy_dir.join("policies.yaml"), policies).expect("write policies");
        let tls = TlsFiles {
            cert: cert_files.cert.clone(),
            key: cert_files.key.clone(),
        };
        let mut config = ServerConfig::new(&policy_dir, tls).on_loopback();
        config.reload_interval = Duration::from_millis(50);
        tweak(&mut config);
        let server = kspy_webhook::start(config).await.expect("server starts");
        let tls = client_tls(&[&certs.ca_cert_pem]);
        Harness {
            dir,
            certs,
            cert_files,
            policies: policy_dir,
            server,
            tls,
        }
    }

    /// A new HTTPS connection.
    pub async fn connect(&self, version: HttpVersion) -> HttpsConnection {
        HttpsConnection::connect(self.server.addr, "localhost", &self.tls, version)
            .await
            .expect("connect")
    }

    /// POSTs a fixture on a new HTTP/1.1 connection; status and body.
    pub async fn post_fixture(&self, path: &str, name: &str) -> (u16, Bytes) {
        self.post(path, fixture(name)).await
    }

    /// POSTs a body on a new HTTP/1.1 connection; status and body.
    pub async fn post(&self, path: &str, body: Bytes) -> (u16, Bytes) {
        let mut conn = self.connect(HttpVersion::Http1).await;
        let resp = conn.post_json(path, body).await.expect("request");
        (resp.status().as_u16(), resp.into_body())
    }

    /// `GET path` on the admin port: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        admin_get(self.server.admin_addr, path).await
    }
}

/// Plain HTTP/1.0 GET; status and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// POSTs `review`, encoded as JSON, to `/validate` over `conn`: the answer.
pub async fn post_validate(conn: &mut HttpsConnection, review: &Value) -> hyper::Response<Bytes> {
    conn.post_json(
        "/validate",
        serde_json::to_vec(review).expect("encode").into(),
    )
    .await
    .expect("review")
}

/// The `response` of an AdmissionReview answer.
pub fn response_of(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("answer is JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
    assert_eq!(v["kind"], "AdmissionReview", "{v}");
    v["response"].clone()
}

/// Serves `app` over plain HTTP on loopback, as a stand-in for the API server, and returns a
/// Kubernetes client pointed at it.
pub async fn fake_api(app: axum::Router) -> kube::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client")
}

/// Polls `check` every 20 ms until it holds, failing after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw TLS stream to the webhook, for hand-written HTTP.
pub async fn raw_tls(
    addr: SocketAddr,
    tls: &ClientConfig,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls.clone()))
        .connect(name, tcp)
        .await
        .expect("handshake")
}

/// Sends `bytes` on a new raw TLS connection (a whole request, or a part of one) and reads
/// the response to the end of the stream, which the server must answer and close within
/// 5 s: status and body.
pub async fn exchange(addr: SocketAddr, tls: &ClientConfig, bytes: &[u8]) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = raw_tls(addr, tls).await;
    stream.write_all(bytes).await.expect("write");
    tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("answered and closed within 5 s")
}

/// Reads an HTTP/1.1 response to the end of the stream: status and body.
pub async fn read_response(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    // A peer closing without close_notify is fine here: what arrived is what counts.
    let _ = stream.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The real `kspy-webhook` binary on loopback ports (`127.0.0.1:0`), with a fresh CA and
/// [`POLICIES`], logging JSON lines to a pipe.
pub struct WebhookProcess {
    pub child: std::process::Child,
    /// The log lines after the "listening" one, as they come.
    pub lines: std::sync::mpsc::Receiver<String>,
    /// The log lines up to the "listening" one.
    pub start_lines: Vec<String>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// A client configuration trusting only the process's CA.
    pub tls: ClientConfig,
    /// The process's CA (PEM), for clients of other configurations.
    pub ca_pem: String,
    /// The policy directory it reads ([`POLICIES`] in `p.yaml`).
    pub policies: PathBuf,
    /// What it wrote to stderr so far, a line each (also passed on to the test's stderr).
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    /// Kills the process if the test ends (or panics) before [`WebhookProcess::wait`].
    _reaper: Reaper,
}

/// Sends SIGKILL to a child process when dropped, unless disarmed by a wait: a failed
/// test must not leave a server behind.
struct Reaper(Option<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl WebhookProcess {
    /// Starts the binary logging JSON, with `envs` added to an environment without any OTLP
    /// endpoint, and waits until it listens.
    pub fn spawn(envs: &[(&str, &str)]) -> WebhookProcess {
        Self::spawn_logging("json", envs)
    }

    /// Like [`WebhookProcess::spawn`], logging in `format` (`json` or `text`).
    pub fn spawn_logging(format: &str, envs: &[(&str, &str)]) -> WebhookProcess {
        Self::spawn_with(format, envs, &[])
    }

    /// Like [`WebhookProcess::spawn_logging`], with `args` added to the command line.
    pub fn spawn_with(format: &str, envs: &[(&str, &str)], args: &[&str]) -> WebhookProcess {
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().expect("tempdir");
        let certs = loopback_certs();
        let files = certs.write_to(&dir.path().join("tls")).expect("certs");
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).expect("dir");
        std::fs::write(policies.join("p.yaml"), POLICIES).expect("policies");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--log-format",
                format,
                "--events",
                "off",
            ])
            .arg("--policies")
            .arg(&policies)
            .arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .args(args)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_TRACES_EXPORTER")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kspy-webhook");
        let reaper = Reaper(Some(child.id()));
        let stderr = stderr_lines(&mut child);
        let lines = stdout_lines(&mut child);
        let mut start_lines = Vec::new();
        let (addr, admin) =
            listening_addrs(&mut lines.iter().inspect(|l| start_lines.push(l.clone())));
        WebhookProcess {
            child,
            lines,
            start_lines,
            addr,
            admin,
            tls: client_tls(&[&certs.ca_cert_pem]),
            ca_pem: certs.ca_cert_pem.clone(),
            _reaper: reaper,
            policies,
            stderr,
            _dir: dir,
        }
    }

    /// A keep-alive HTTPS/1.1 connection to it, trusting only its CA (as
    /// [`Harness::connect`] is to an in-process server).
    pub async fn connect(&self) -> HttpsConnection {
        HttpsConnection::connect(self.addr, "localhost", &self.tls, HttpVersion::Http1)
            .await
            .expect("connect")
    }

    /// Sends SIGTERM.
    #[cfg(unix)]
    pub fn terminate(&self) {
        sigterm(&self.child);
    }

    /// Sends `signal` (`HUP`, `TERM`, …).
    #[cfg(unix)]
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub async fn wait(self) -> std::process::ExitStatus {
        let WebhookProcess {
            child, mut _reaper, ..
        } = self;
        let status = wait_exit(child).await;
        _reaper.0 = None;
        status
    }
}

/// Sends SIGTERM to `child`.
#[cfg(unix)]
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits, off the runtime's workers, for `child` to exit.
pub async fn wait_exit(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait")
}

/// Collects the lines a child writes to its piped stderr, passing each on to the test's own
/// stderr so that a failing test still shows them.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr is piped");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            sink.lock().expect("stderr lines").push(line);
        }
    });
    seen
}

/// The lines a child writes to its piped stdout, as they come (the channel closes when the
/// child closes its stdout).
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Reads the binary's log, JSON or text, until the "listening" line; the two addresses.
pub fn listening_addrs(lines: &mut impl Iterator<Item = String>) -> (SocketAddr, SocketAddr) {
    for line in lines {
        if !line.contains("kspy-webhook listening") {
            continue;
        }
        let field = |name: &str| -> SocketAddr {
            let text = match serde_json::from_str::<Value>(&line) {
                Ok(v) => v[name].as_str().map(str::to_owned),
                Err(_) => text_field(&line, name),
            };
            text.and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {line:?}"))
        };
        return (field("addr"), field("admin_addr"));
    }
    panic!("the webhook exited before listening");
}

/// The value of the first `name=value` field in a text log line, unquoted and unescaped as
/// `src/text_fields.rs` writes it.
pub fn text_field(line: &str, name: &str) -> Option<String> {
    text_fields(line)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// The `name=value` fields of a text log line, in order: the line is split at spaces outside
/// double quotes, and a quoted value has its escapes undone (`\"`, `\\`, `\n`, `\r`, `\t`,
/// `\u{…}`).
pub fn text_fields(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return fields;
        }
        // A token: a name and `=`, or a word of the message or of the line's prefix.
        let mut token = String::new();
        let mut value = None;
        while let Some(&c) = chars.peek() {
            if c == ' ' {
                break;
            }
            chars.next();
            if c == '='
                && value.is_none()
                && !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                value = Some(if chars.peek() == Some(&'"') {
                    chars.next();
                    unquote(&mut chars)
                } else {
                    let mut bare = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == ' ' {
                            break;
                        }
                        bare.push(c);
                        chars.next();
                    }
                    bare
                });
                break;
            }
            token.push(c);
        }
        if let Some(value) = value {
            fields.push((token, value));
        }
    }
}

/// Reads a quoted value up to its closing quote, undoing the escapes.
fn unquote(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some('t') => value.push('\t'),
                Some('u') => {
                    let code: String = chars
                        .by_ref()
                        .skip_while(|c| *c == '{')
                        .take_while(|c| *c != '}')
                        .collect();
                    let c = u32::from_str_radix(&code, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    value.push(c);
                }
                Some(other) => value.push(other),
                None => break,
            },
            c => value.push(c),
        }
    }
    value
}
