//! A small stand-in for the Kubernetes API server: plain HTTP on 127.0.0.1, every request
//! recorded (method, path, query, content type, body), answers from a handler the test gives.
//! Plus helpers to run the real `kspy` binary against it with a kubeconfig in a temp dir.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
}

impl Recorded {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body of {} {} is not JSON: {e}", self.method, self.path))
    }

    /// `METHOD path?query`, for sequence assertions.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }

    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.replace("%3D", "=").replace("%2F", "/"))
    }
}

/// An answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// Bytes, not text: a container's logs need not be UTF-8.
    pub body: Vec<u8>,
    /// More headers (`Retry-After`, say).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    /// A 200 answer of raw bytes (a container's logs, say).
    pub fn bytes(body: &[u8]) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain",
            body: body.to_vec(),
            headers: Vec::new(),
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn ok(v: &Value) -> Reply {
        Reply::json(200, v)
    }

    pub fn text(body: &str) -> Reply {
        Reply::bytes(body.as_bytes())
    }

    /// A watch answer: one JSON event per line, then the stream ends.
    pub fn events(events: &[(&str, Value)]) -> Reply {
        let body: String = events
            .iter()
            .map(|(t, o)| json!({"type": t, "object": o}).to_string() + "\n")
            .collect();
        Reply {
            status: 200,
            content_type: "application/json",
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }

    /// A `Status` failure, shaped as the API server sends it.
    pub fn status(code: u16, reason: &str, message: &str, details: Value) -> Reply {
        Reply::json(
            code,
            &json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "details": details, "code": code
            }),
        )
    }

    pub fn not_found(kind: &str, name: &str) -> Reply {
        Reply::status(
            404,
            "NotFound",
            &format!("{kind} \"{name}\" not found"),
            json!({"name": name, "kind": kind}),
        )
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The running fake API server; stops when dropped.
pub struct FakeApi {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

/// What the fake kubelet reports when an attached container's process exits: the container's
/// name and its exit code. The pod's status must then show it terminated, as the kubelet
/// reports it — a little later than the attach stream ends.
pub type OnExit = Arc<dyn Fn(&str, i32) + Send + Sync>;

/// `pods/attach` over WebSocket (`v5.channel.k8s.io`), as the kubelet answers through the
/// API server. The container runs a shell-like process: "attached" on stdout, stdin echoed
/// back on stdout, terminal resizes reported on stdout; Ctrl-D on a TTY, or the end of stdin,
/// ends the process — exit code 3 for a container named `*-fail`, else 0 — and the kubelet
/// ends the stream with a `Success` Status on channel 3 (attach, unlike exec, never reports an
/// exit code there: the exit code goes to the pod's status, through `on_exit`).
///
/// Other containers:
/// - `*-gone`: no running task (it stopped between the pod status and the attach): the
///   kubelet answers at once with an `InternalError` Status, as containerd's "no running task
///   found" comes back through it, and nothing else;
/// - `*-ended`: the same, for a short command that exited (code 4) just before the attach: the
///   pod's status then shows it terminated;
/// - `*-detach`: the stream is cut (an idle timeout, a restarted API server) without a Status
///   while the container goes on running.
async fn attach_session(
    mut ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    container: String,
    on_exit: OnExit,
) {
    let frame = |channel: u8, data: &[u8]| {
        let mut v = vec![channel];
        v.extend_from_slice(data);
        Message::binary(v)
    };
    if container.ends_with("-ended") {
        on_exit(&container, 4);
    }
    if container.ends_with("-gone") || container.ends_with("-ended") {
        let cause = "error attaching to container: failed to load task: no running task found: \
                     task 0a1b2c not found: not found";
        let status = json!({"metadata": {}, "status": "Failure",
            "message": format!("Internal error occurred: {cause}"), "reason": "InternalError",
            "details": {"causes": [{"message": cause}]}, "code": 500});
        let _ = ws.send(frame(3, status.to_string().as_bytes())).await;
        let _ = ws.close(None).await;
        return;
    }
    let _ = ws.send(frame(1, b"attached\n")).await;
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(data) => match data.first() {
                // Ctrl-D typed on a TTY ends the session, like a shell exiting.
                Some(0) if data[1..].contains(&4) => break,
                Some(0) => {
                    let _ = ws.send(frame(1, &data[1..])).await;
                }
                // Terminal resizes are reported back on stdout.
                Some(4) => {
                    let text = format!("[resize {}]\r\n", String::from_utf8_lossy(&data[1..]));
                    let _ = ws.send(frame(1, text.as_bytes())).await;
                }
                Some(255) => break,
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    if container.ends_with("-detach") {
        // Cut: no Status, no close handshake; the container goes on.
        return;
    }
    on_exit(&container, if container.ends_with("-fail") { 3 } else { 0 });
    let status = json!({"metadata": {}, "status": "Success"});
    let _ = ws.send(frame(3, status.to_string().as_bytes())).await;
    let _ = ws.close(None).await;
}

/// The API server's answer to an attach by user `dev`, whom RBAC does not grant `get` on
/// `pods/attach`: the upgrade of a `*-refused` container, and the same request without it.
pub fn attach_refused_status() -> serde_json::Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("pods \"{WEB}\" is forbidden: User \"dev\" cannot get resource \
            \"pods/attach\" in API group \"\" in the namespace \"prod\""),
        "reason": "Forbidden", "details": {"name": WEB, "kind": "pods"}, "code": 403})
}

fn upgrade(
    req: Request<Incoming>,
    rec: Recorded,
    log: Arc<Mutex<Vec<Recorded>>>,
    on_exit: OnExit,
) -> Response<Full<Bytes>> {
    let key = req
        .headers()
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let offered = req
        .headers()
        .get(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let container = rec.param("container").unwrap_or_default();
    log.lock().expect("log").push(rec);
    if container.ends_with("-refused") {
        // RBAC refuses the upgrade: the API server answers 403 with its Status, which a
        // WebSocket client that expected 101 does not read.
        return Response::builder()
            .status(403)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(attach_refused_status().to_string())))
            .expect("response");
    }
    if !offered.contains("v5.channel.k8s.io") {
        return Response::builder()
            .status(400)
            .body(Full::new(Bytes::from("v5 wanted")))
            .expect("response");
    }
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            attach_session(ws, container, on_exit).await;
        }
    });
    Response::builder()
        .status(101)
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::SEC_WEBSOCKET_ACCEPT, key)
        .header(hyper::header::SEC_WEBSOCKET_PROTOCOL, "v5.channel.k8s.io")
        .body(Full::new(Bytes::new()))
        .expect("response")
}

async fn handle(
    req: Request<Incoming>,
    handler: Handler,
    log: Arc<Mutex<Vec<Recorded>>>,
    on_exit: OnExit,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req
        .uri()
        .query()
        .unwrap_or_default()
        .trim_start_matches('&')
        .to_string();
    if req.headers().contains_key(hyper::header::UPGRADE) && path.ends_with("/attach") {
        let rec = Recorded {
            method,
            path,
            query,
            content_type: String::new(),
            body: String::new(),
        };
        return Ok(upgrade(req, rec, log, on_exit));
    }
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let rec = Recorded {
        method,
        path,
        query,
        content_type,
        body,
    };
    let reply = handler(&rec);
    log.lock().expect("log").push(rec);
    let mut resp = Response::builder()
        .status(reply.status)
        .header(hyper::header::CONTENT_TYPE, reply.content_type);
    for (name, value) in &reply.headers {
        resp = resp.header(*name, value.as_str());
    }
    let resp = resp
        .body(Full::new(Bytes::from(reply.body)))
        .expect("response");
    Ok(resp)
}

impl FakeApi {
    /// Starts a server answering with `handler`; attached containers' exits are not reported.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeApi {
        FakeApi::start_with_kubelet(handler, |_, _| {})
    }

    /// Starts a server answering with `handler`; `on_exit` hears of every attached container
    /// whose process exits (see `attach_session`), to put it in the pod's status.
    pub fn start_with_kubelet(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
        on_exit: impl Fn(&str, i32) + Send + Sync + 'static,
    ) -> FakeApi {
        let handler: Handler = Arc::new(handler);
        let on_exit: OnExit = Arc::new(on_exit);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_log = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let handler = handler.clone();
                            let log = server_log.clone();
                            let on_exit = on_exit.clone();
                            tokio::spawn(async move {
                                let svc = service_fn(move |req| {
                                    handle(req, handler.clone(), log.clone(), on_exit.clone())
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .with_upgrades()
                                    .await;
                            });
                        }
                        _ = &mut stop_rx => break,
                    }
                }
            });
        });
        let addr = addr_rx.recv().expect("server address");
        FakeApi {
            addr,
            log,
            stop: Some(stop_tx),
            thread: Some(thread),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("log").clone()
    }

    /// `METHOD path?query` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    /// Writes a kubeconfig pointing at the server (context `fake`, namespace `prod`; context
    /// `other`, namespace `other`) and returns its path.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: prod\n\
             - name: other\n  context:\n    cluster: fake\n    user: fake\n    namespace: other\n\
             users:\n- name: fake\n  user:\n    token: test-token\n",
            addr = self.addr
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Writes a kubeconfig `file` with one context `fake` (namespace `prod`) for a cluster at
    /// `server` with the extra cluster fields `cluster_extra` (YAML lines indented for the
    /// cluster mapping, e.g. `"    proxy-url: http://…\n"`) and a user whose fields are `user`
    /// (indented likewise), and returns its path.
    pub fn write_kubeconfig(
        &self,
        file: &str,
        server: &str,
        cluster_extra: &str,
        user: &str,
    ) -> PathBuf {
        let path = self.dir.path().join(file);
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n{cluster_extra}\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: prod\n\
             users:\n- name: fake\n  user:\n{user}"
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Runs the real binary with `args`, kubeconfig `kubeconfig`, `env` added to its
    /// (otherwise clean) environment, and `input` on its stdin.
    pub fn kspy_env(
        &self,
        args: &[&str],
        kubeconfig: &Path,
        env: &[(&str, &str)],
        input: &[u8],
    ) -> Output {
        use std::io::Write;
        let mut cmd = command(
            Path::new(env!("CARGO_BIN_EXE_kspy")),
            args,
            Some(kubeconfig),
            self.dir.path(),
        );
        cmd.envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kspy");
        let mut stdin = child.stdin.take().expect("stdin");
        // kspy may exit before reading its input (an error): a closed pipe is no failure here.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("kspy output")
    }

    /// Runs the real binary with `args` against this server.
    pub fn kspy(&self, args: &[&str]) -> Output {
        run_binary(
            Path::new(env!("CARGO_BIN_EXE_kspy")),
            args,
            Some(&self.kubeconfig()),
            self.dir.path(),
        )
    }

    /// Runs the real binary with `args` against this server, its stdout a pipe nobody reads
    /// (see [`run_with_closed_stdout`]).
    pub fn kspy_closed_stdout(&self, args: &[&str]) -> Output {
        run_with_closed_stdout(
            Path::new(env!("CARGO_BIN_EXE_kspy")),
            args,
            Some(&self.kubeconfig()),
            self.dir.path(),
        )
    }

    /// Runs the real binary with `args`, `input` on its stdin.
    pub fn kspy_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self.spawn_kspy(args);
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("kspy output")
    }
}

impl FakeApi {
    /// Starts the real binary with `args` against this server, stdin, stdout and stderr
    /// piped, for a test that acts while it runs (sends it a signal, say).
    pub fn spawn_kspy(&self, args: &[&str]) -> std::process::Child {
        let mut cmd = command(
            Path::new(env!("CARGO_BIN_EXE_kspy")),
            args,
            Some(&self.kubeconfig()),
            self.dir.path(),
        );
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn kspy")
    }

    /// Starts the real binary with `args` against this server in a pseudo-terminal, as a
    /// person's shell runs it — stdin, stdout and stderr the terminal — through util-linux's
    /// `script` (`-e`: its exit code is kspy's). Writing to the child's stdin is typing; its
    /// stdout is the screen. `None` where `script` is not installed.
    pub fn spawn_kspy_in_terminal(&self, args: &[&str]) -> Option<std::process::Child> {
        self.spawn_shell_in_terminal(&format!("exec {}", kspy_command_line(args)))
    }

    /// Runs the shell command `line` (`/bin/sh`) in a pseudo-terminal as
    /// [`FakeApi::spawn_kspy_in_terminal`] does, with the same environment; `None` where
    /// `script` is not installed. [`kspy_command_line`] quotes a kspy command for it.
    pub fn spawn_shell_in_terminal(&self, line: &str) -> Option<std::process::Child> {
        let script = ["/usr/bin/script", "/bin/script"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let mut cmd = command(
            Path::new(script),
            &["-q", "-e", "-f", "-c", line, "/dev/null"],
            Some(&self.kubeconfig()),
            self.dir.path(),
        );
        cmd.env("SHELL", "/bin/sh")
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Some(cmd.spawn().expect("spawn script"))
    }
}

/// A single-quoted word for `/bin/sh`.
pub fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The real binary with `args`, quoted for `/bin/sh`.
pub fn kspy_command_line(args: &[&str]) -> String {
    let mut line = sh_quote(env!("CARGO_BIN_EXE_kspy"));
    for a in args {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    line
}

/// Collects what `reader` yields on a thread; [`Collected::wait_for`] waits until it holds a
/// text.
pub struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collected {
    pub fn start(mut reader: impl std::io::Read + Send + 'static) -> Collected {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("bytes").extend_from_slice(&buf[..n]);
            }
        });
        Collected {
            bytes,
            thread: Some(thread),
        }
    }

    /// What came so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().expect("bytes")).into_owned()
    }

    /// Waits up to `limit` for `needle` to show up; false if it does not.
    pub fn wait_for(&self, needle: &str, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// Everything, once the writer has closed its end.
    pub fn finish(mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.text()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `binary` with a clean environment: `KUBECONFIG` as given, `HOME` a temp dir, not in a cluster.
pub fn run_binary(binary: &Path, args: &[&str], kubeconfig: Option<&Path>, home: &Path) -> Output {
    command(binary, args, kubeconfig, home)
        .output()
        .expect("run kspy")
}

/// Proxy settings kspy reads; scrubbed so that the developer's own do not leak into tests.
pub const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn command(binary: &Path, args: &[&str], kubeconfig: Option<&Path>, home: &Path) -> Command {
    let mut cmd = Command::new(binary);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    cmd
}

/// Runs `binary` with its stdout a pipe whose reading end is closed before it starts, as in
/// `kspy ls | true` when `true` has exited: every write to stdout fails with EPIPE. The
/// returned `stdout` is empty; `stderr` is captured.
pub fn run_with_closed_stdout(
    binary: &Path,
    args: &[&str],
    kubeconfig: Option<&Path>,
    home: &Path,
) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = command(binary, args, kubeconfig, home);
    cmd.stdout(writer).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn kspy");
    drop(cmd);
    child.wait_with_output().expect("kspy output")
}

/// stdout and stderr as strings.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The fixture pod.
pub fn web_pod() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pod-web.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// Name of the fixture pod.
pub const WEB: &str = "web-7d9f8c6b5-x2x4q";

/// An HTTP proxy on 127.0.0.1 that tunnels `CONNECT host:port` requests, as squid or any
/// forward proxy does (kube-rs always tunnels, for `http://` API servers too), answering
/// `200 Connection established` and then relaying bytes both ways. It resolves names itself,
/// as a proxy does with its own DNS: `hosts` maps names to addresses on this machine; other
/// names are resolved normally. A name it cannot resolve or connect to gets `502 Bad Gateway`.
/// Requests other than CONNECT get `405`. Every CONNECT target is recorded.
pub struct FakeProxy {
    pub addr: SocketAddr,
    connects: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeProxy {
    pub fn start(hosts: &[(&str, std::net::IpAddr)]) -> FakeProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let connects = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hosts: Vec<(String, std::net::IpAddr)> =
            hosts.iter().map(|(n, ip)| (n.to_string(), *ip)).collect();
        let (log, stopping) = (connects.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (log, hosts) = (log.clone(), hosts.clone());
                std::thread::spawn(move || tunnel(conn, &log, &hosts));
            }
        });
        FakeProxy {
            addr,
            connects,
            stop,
        }
    }

    /// The `host:port` of every CONNECT so far.
    pub fn connects(&self) -> Vec<String> {
        self.connects.lock().expect("connects").clone()
    }
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

fn tunnel(
    mut client: std::net::TcpStream,
    log: &Mutex<Vec<String>>,
    hosts: &[(String, std::net::IpAddr)],
) {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    // The request head, byte by byte: nothing after it may be consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    if method != "CONNECT" {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    log.lock().expect("connects").push(target.to_string());
    let upstream = target.rsplit_once(':').and_then(|(host, port)| {
        let port: u16 = port.parse().ok()?;
        let addr = match hosts.iter().find(|(n, _)| n == host) {
            Some((_, ip)) => SocketAddr::new(*ip, port),
            None => (host, port).to_socket_addrs().ok()?.next()?,
        };
        std::net::TcpStream::connect(addr).ok()
    });
    let Some(upstream) = upstream else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(mut client_read), Ok(mut upstream_write)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let mut upstream_read = upstream;
    let mut client_write = client;
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}
