//! The in-process Kubernetes API server: TLS with the harness CA, bearer-token
//! authentication, RBAC-like authorization, core/v1 pods (+ ephemeralcontainers, attach,
//! log, status), namespaces and nodes, `events.k8s.io/v1` Events, and the admission chain on
//! writes.

pub mod attach;
pub mod authentication;
pub mod defaults;
pub mod discovery;
pub mod events;
pub mod managed_fields;
pub mod patch;
pub mod pod_security;
pub mod pods;
pub mod protobuf;
pub mod selectors;
pub mod status;
pub mod store;
pub mod strategic;
pub mod table;
pub mod validation;
pub mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::admission_chain::{AdmissionChain, ReviewLog, ReviewRecord};
use crate::identity::Identity;
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::shell::Process;
use crate::tls::{CertAuthority, TlsError};
use status::ApiError;
use store::Store;

/// Errors starting or driving the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Certificates or TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Listening, writing kubeconfigs.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Building a kube client.
    #[error("kube client: {0}")]
    Kube(String),
    /// Seeding an object the API would refuse.
    #[error("seeding refused: {0}")]
    Seed(#[from] ApiError),
    /// An object given to the harness did not (de)serialize.
    #[error("object encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// One write request as received, for assertions on what a client sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Authenticated user.
    pub user: String,
    /// Content-Type header.
    pub content_type: String,
    /// User-Agent header (`kubectl/v1.31.… (linux/amd64) kubernetes/…`, `kube-rs/…`, …).
    pub user_agent: String,
    /// Request body (UTF-8 lossy).
    pub body: String,
}

/// Server state shared by handlers.
pub struct ServerState {
    /// Listening address.
    pub address: SocketAddr,
    /// Objects.
    pub store: Arc<Mutex<Store>>,
    /// Known identities.
    pub identities: Vec<Identity>,
    /// Webhooks (replaceable while running).
    pub admission: RwLock<AdmissionChain>,
    /// Every webhook call.
    pub reviews: ReviewLog,
    /// The node.
    pub kubelet: Arc<Kubelet>,
    /// Write requests received.
    pub requests: Mutex<Vec<RecordedRequest>>,
    /// Behaviour switches that differ between Kubernetes versions or server flags.
    pub options: ServerOptions,
}

/// Switches for behaviour that depends on the kube-apiserver version or its flags; the
/// defaults are those of the v1.33 server the harness claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// `--anonymous-auth` (default true): a request without a bearer token runs as
    /// `system:anonymous` and is refused by authorization (403), not by authentication (401).
    pub anonymous_auth: bool,
    /// The `AuthorizePodWebsocketUpgradeCreatePermission` feature gate (beta and on by default
    /// from 1.35, absent before): a WebSocket upgrade (`GET`) of `pods/attach` needs `create`
    /// as well as the `get` its HTTP method maps to. Off by default.
    pub websocket_upgrade_needs_create: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            anonymous_auth: true,
            websocket_upgrade_needs_create: false,
        }
    }
}

/// Handle to the shared state.
pub type SharedState = Arc<ServerState>;

impl ServerState {
    /// Locks the store (a poisoned lock is still usable: the store has no invariants a panic breaks).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of the admission chain.
    pub fn chain(&self) -> AdmissionChain {
        self.admission
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a write request.
    pub fn record(
        &self,
        method: &str,
        uri: &str,
        user: &Identity,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RecordedRequest {
                method: method.into(),
                uri: uri.into(),
                user: user.name.clone(),
                content_type: ct,
                user_agent,
                body: String::from_utf8_lossy(body).into_owned(),
            });
    }
}

/// A JSON response with `Warning: 299 - "..."` headers (see [`warning_headers`]).
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warning_headers(warnings) {
        // Go writes header values as the bytes they are; UTF-8 is obs-text to HTTP.
        if let Ok(v) = HeaderValue::from_bytes(w.as_bytes()) {
            h.append(header::WARNING, v);
        }
    }
    resp
}

/// Total runes of warning text before the recorder starts truncating (`truncateAtTotalRunes`).
const WARNING_TOTAL_RUNES: usize = 4 * 1024;
/// Runes each warning is cut to once truncating (`truncateItemRunes`).
const WARNING_ITEM_RUNES: usize = 256;

/// The `Warning` header values for warnings added in order, as the request's warning
/// recorder (`apiserver/pkg/endpoints/filters/warning.go`) writes them: empty texts
/// skipped, repeats dropped; once the texts would pass 4096 runes in total, every warning
/// so far is rewritten cut to 256 runes, later ones are cut too and added only while the
/// total stays under 4096. Each is `299 - "text"` (`net.NewWarningHeader`): `"` and `\`
/// escaped, anything else — UTF-8 included — kept as is. A text holding a control character
/// (`unicode.IsControl`: a line break, a tab, ESC) is no header at all: `NewWarningHeader`
/// refuses it and the recorder drops the warning without a word (a cut that leaves the
/// control character out lets it through).
pub fn warning_headers(warnings: &[String]) -> Vec<String> {
    fn cut(text: &str) -> (String, usize) {
        let n = text.chars().count();
        if n > WARNING_ITEM_RUNES {
            (
                text.chars().take(WARNING_ITEM_RUNES).collect(),
                WARNING_ITEM_RUNES,
            )
        } else {
            (text.to_string(), n)
        }
    }
    fn header(text: &str) -> Option<String> {
        if text.chars().any(char::is_control) {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 8);
        out.push_str("299 - \"");
        for c in text.chars() {
            if matches!(c, '\\' | '"') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        Some(out)
    }
    let mut seen = std::collections::HashSet::new();
    let mut ordered: Vec<&str> = Vec::new();
    let mut headers = Vec::new();
    let mut written = 0;
    let mut truncating = false;
    for w in warnings {
        if w.is_empty() || (truncating && written >= WARNING_TOTAL_RUNES) {
            continue;
        }
        if !seen.insert(w.as_str()) {
            continue;
        }
        ordered.push(w);
        let (text, runes) = if truncating {
            cut(w)
        } else {
            (w.clone(), w.chars().count())
        };
        let Some(value) = header(&text) else {
            continue;
        };
        if truncating || written + runes <= WARNING_TOTAL_RUNES {
            written += runes;
            headers.push(value);
            continue;
        }
        truncating = true;
        written = 0;
        headers.clear();
        for earlier in &ordered {
            let (text, runes) = cut(earlier);
            if let Some(value) = header(&text) {
                headers.push(value);
                written += runes;
            }
        }
    }
    headers
}

async fn authenticate(State(state): State<SharedState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if matches!(
        path.as_str(),
        "/version" | "/healthz" | "/readyz" | "/livez"
    ) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A token that no authenticator accepts is 401 whatever --anonymous-auth says; only a
    // request that carries none falls through to the anonymous authenticator
    // (apiserver/pkg/authentication/request/anonymous, after the union of the others).
    let id = match token {
        Some(t) => match state.identities.iter().find(|i| i.token == t) {
            Some(id) => id.clone(),
            None => return ApiError::unauthorized().into_response(),
        },
        None if state.options.anonymous_auth => Identity::anonymous(),
        None => return ApiError::unauthorized().into_response(),
    };
    // Non-resource paths (discovery, /openapi, ...) are authorized by path. The default
    // RBAC grants `system:unauthenticated` only the public-info paths let through above
    // (ClusterRole system:public-info-viewer); discovery is system:discovery, for
    // `system:authenticated`. Resource requests are refused by the handlers' RBAC check.
    if id.is_anonymous() && !is_resource_path(&path) {
        let verb = if req.method() == axum::http::Method::GET {
            "get"
        } else {
            &req.method().as_str().to_ascii_lowercase()
        };
        return ApiError::forbidden_path(&id.name, verb, &path).into_response();
    }
    req.extensions_mut().insert(id);
    next.run(req).await
}

/// Whether `path` names a resource (`/api/v1/<resource>…`, `/apis/<group>/<version>/<resource>…`)
/// rather than a discovery document or another non-resource path, as the request info
/// resolver (apiserver/pkg/endpoints/request/requestinfo.go) tells them apart.
fn is_resource_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.first() {
        Some(&"api") => parts.len() >= 3,
        Some(&"apis") => parts.len() >= 4,
        _ => false,
    }
}

async fn not_found() -> Response {
    ApiError::no_such_resource().into_response()
}

async fn ok() -> &'static str {
    "ok"
}

fn router(state: SharedState) -> Router {
    use axum::routing::get as g;
    Router::new()
        .route("/version", g(discovery::version))
        .route("/healthz", g(ok))
        .route("/readyz", g(ok))
        .route("/livez", g(ok))
        .route("/api", g(discovery::api))
        .route("/api/v1", g(discovery::api_v1))
        .route("/apis", g(discovery::apis))
        .route("/api/v1/namespaces", g(pods::list_namespaces))
        .route("/api/v1/namespaces/{ns}", g(pods::get_namespace))
        .route("/api/v1/nodes", g(pods::list_nodes))
        .route("/api/v1/nodes/{name}", g(pods::get_node))
        .route("/api/v1/pods", g(pods::list_all_pods))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            g(pods::list_pods).post(pods::create_pod),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            g(pods::get_pod)
                .delete(pods::delete_pod)
                .patch(pods::patch_pod),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers",
            g(pods::get_pod_sub)
                .patch(pods::patch_ephemeral)
                .put(pods::put_ephemeral),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/status",
            g(pods::get_pod_sub),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            g(attach::attach).post(attach::attach),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(attach::log))
        .route(
            "/apis/authentication.k8s.io",
            g(discovery::authentication_group),
        )
        .route(
            "/apis/authentication.k8s.io/v1",
            g(discovery::authentication_v1),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            axum::routing::post(authentication::create_self_subject_review),
        )
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            g(events::list_events).post(events::create_event),
        )
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
            g(events::get_event).patch(events::patch_event),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Configures and starts an [`ApiServer`].
pub struct ApiServerBuilder {
    identities: Vec<Identity>,
    namespaces: Vec<(String, BTreeMap<String, String>)>,
    pods: Vec<Pod>,
    chain: AdmissionChain,
    kubelet: KubeletConfig,
    default_namespace: String,
    options: ServerOptions,
}

impl ApiServerBuilder {
    /// `--anonymous-auth` (default true). With `false` a request without credentials is
    /// refused with 401, as a server started with `--anonymous-auth=false` does.
    pub fn anonymous_auth(mut self, on: bool) -> Self {
        self.options.anonymous_auth = on;
        self
    }

    /// Turns on the 1.35 `AuthorizePodWebsocketUpgradeCreatePermission` behaviour: a
    /// WebSocket attach needs `create` on `pods/attach` besides `get`.
    pub fn websocket_upgrade_needs_create(mut self, on: bool) -> Self {
        self.options.websocket_upgrade_needs_create = on;
        self
    }

    /// Adds (or replaces, by name) an identity. The first identity's context is the
    /// kubeconfig's current one (`admin` by default).
    pub fn identity(mut self, id: Identity) -> Self {
        self.identities.retain(|i| i.name != id.name);
        self.identities.push(id);
        self
    }

    /// Adds a namespace with labels (`kubernetes.io/metadata.name` is added, as the API server does).
    pub fn namespace(mut self, name: &str, labels: &[(&str, &str)]) -> Self {
        let l = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.namespaces.push((name.to_string(), l));
        self
    }

    /// Seeds a running pod (its namespace must be added too).
    pub fn pod(mut self, pod: Pod) -> Self {
        self.pods.push(pod);
        self
    }

    /// The webhooks to call.
    pub fn admission(mut self, chain: AdmissionChain) -> Self {
        self.chain = chain;
        self
    }

    /// Kubelet behaviour.
    pub fn kubelet(mut self, cfg: KubeletConfig) -> Self {
        self.kubelet = cfg;
        self
    }

    /// Namespace of the kubeconfig contexts (default `default`).
    pub fn default_namespace(mut self, ns: &str) -> Self {
        self.default_namespace = ns.to_string();
        self
    }

    /// Binds 127.0.0.1:0, writes kubeconfigs, seeds objects and serves.
    pub async fn start(self) -> Result<ApiServer, HarnessError> {
        let ca = CertAuthority::generate("kspy-e2e-ca")?;
        let serving = ca.issue_serving(&["localhost", "127.0.0.1"])?;
        let tls = crate::tls::server_config(&serving, &[b"http/1.1"])?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let url = format!("https://{address}");

        let store = Arc::new(Mutex::new(Store::new()));
        let kubelet = Arc::new(Kubelet::new(self.kubelet.clone(), store.clone()));
        let state = Arc::new(ServerState {
            address,
            store,
            identities: self.identities.clone(),
            admission: RwLock::new(self.chain),
            reviews: Arc::new(Mutex::new(Vec::new())),
            kubelet,
            requests: Mutex::new(Vec::new()),
            options: self.options,
        });

        let dir = tempfile::Builder::new().prefix("kspy-e2e-").tempdir()?;
        let kubeconfig = crate::kubeconfig::write_all(
            dir.path(),
            &url,
            ca.cert_pem(),
            &self.identities,
            &self.default_namespace,
        )?;

        let server = ApiServer {
            state: state.clone(),
            url,
            ca,
            dir,
            kubeconfig,
            task: None,
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            server.add_namespace(name, &[]);
        }
        for (name, labels) in &self.namespaces {
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            server.add_namespace(name, &l);
        }
        let mut node = Node::default();
        node.metadata.name = Some(self.kubelet.node_name.clone());
        // The labels every kubelet puts on its Node (kubelet's well-known labels).
        node.metadata.labels = Some(
            [
                (
                    "kubernetes.io/hostname".to_string(),
                    self.kubelet.node_name.clone(),
                ),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ]
            .into(),
        );
        state.store().put_node(node);
        for p in self.pods {
            server.add_pod(p)?;
        }

        let app = router(state);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        let mut server = server;
        server.task = Some(task);
        Ok(server)
    }
}

/// A running in-process API server; stops when dropped.
pub struct ApiServer {
    state: SharedState,
    url: String,
    ca: CertAuthority,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl ApiServer {
    /// A builder with the default identities ([`Identity::defaults`]).
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder {
            identities: Identity::defaults(),
            namespaces: Vec::new(),
            pods: Vec::new(),
            chain: AdmissionChain::empty(),
            kubelet: KubeletConfig::default(),
            default_namespace: "default".into(),
            options: ServerOptions::default(),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA that signed the serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The harness CA, e.g. to issue the webhook's serving certificate.
    pub fn ca(&self) -> &CertAuthority {
        &self.ca
    }

    /// Scratch directory (kubeconfigs live here); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kubeconfig with every identity as a context (current: the first identity).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Kubeconfig holding only `user`.
    pub fn kubeconfig_for(&self, user: &str) -> PathBuf {
        crate::kubeconfig::path_for(self.dir.path(), user)
    }

    /// A kube-rs client acting as `user`.
    pub async fn client(&self, user: &str) -> Result<kube::Client, HarnessError> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig_for(user))
            .map_err(|e| HarnessError::Kube(e.to_string()))?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| HarnessError::Kube(e.to_string()))?;
        kube::Client::try_from(cfg).map_err(|e| HarnessError::Kube(e.to_string()))
    }

    /// The webhooks currently configured.
    pub fn admission(&self) -> AdmissionChain {
        self.state.chain()
    }

    /// Replaces the webhooks.
    pub fn set_admission(&self, chain: AdmissionChain) {
        *self
            .state
            .admission
            .write()
            .unwrap_or_else(|p| p.into_inner()) = chain;
    }

    /// Every webhook call so far.
    pub fn reviews(&self) -> Vec<ReviewRecord> {
        self.state
            .reviews
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every write request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `events.k8s.io/v1` Events stored in `namespace`, oldest first.
    pub fn events(&self, namespace: &str) -> Vec<serde_json::Value> {
        self.state.store().events(namespace)
    }

    /// A stored pod.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.state.store().pod(namespace, name).cloned()
    }

    /// Adds a namespace (with `kubernetes.io/metadata.name`).
    pub fn add_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.into());
        ns.metadata.uid = Some(defaults::random_uid());
        ns.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert("kubernetes.io/metadata.name".into(), name.into());
        ns.metadata.labels = Some(l);
        ns.status = serde_json::from_value(json!({"phase": "Active"})).ok();
        self.state.store().put_namespace(ns);
    }

    /// Adds (or replaces) a Node, as a kubelet registers it (`GET`/`LIST` of nodes return it).
    /// No kubelet runs there: the harness kubelet still runs every pod created.
    pub fn add_node(&self, node: Node) {
        self.state.store().put_node(node);
    }

    /// Adds (or replaces) the ServiceAccount `name` in `namespace`, with its
    /// `automountServiceAccountToken` when given. Every namespace has `default`; pods naming
    /// another account are refused until it exists, as the ServiceAccount plugin does.
    pub fn add_service_account(&self, namespace: &str, name: &str, automount_token: Option<bool>) {
        self.state
            .store()
            .put_service_account(namespace, name, automount_token);
    }

    /// Seeds a pod as if created earlier and already running: defaulted, with the
    /// built-in admission plugins' additions, without calling webhooks.
    pub fn add_pod(&self, pod: Pod) -> Result<Pod, HarnessError> {
        let pod = pods::seed(&self.state, pod)?;
        self.state.kubelet.pod_created(&pod, true);
        Ok(self
            .pod(
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
            )
            .unwrap_or(pod))
    }

    /// The process of a started container.
    pub fn process(&self, namespace: &str, pod: &str, container: &str) -> Option<Arc<Process>> {
        self.state.kubelet.process(namespace, pod, container)
    }

    /// Polls until `pred` holds for the pod or `timeout` passes.
    pub async fn wait_for_pod(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Pod) -> bool,
    ) -> Option<Pod> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(p) = self.pod(namespace, name)
                && pred(&p)
            {
                return Some(p);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
