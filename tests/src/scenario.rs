//! Scenario environment: the in-process API server wired to kspy's real webhook (started
//! in-process through `kspy_webhook::start`, serving TLS with a certificate from the
//! harness CA), the webhook configurations of `deploy/` pointed at it, and the `kspy`
//! binary run against the server's kubeconfigs — or, with `KSPY_E2E_KUBECONFIG`, a real
//! cluster where kspy is installed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};

use crate::admission_chain::{AdmissionChain, WebhookTarget};
use crate::apiserver::ApiServer;
use crate::fixtures;
use crate::identity::Identity;
use crate::tools::{self, Output};

/// Root of the workspace (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The scenario policies (`tests/fixtures/policies`).
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/policies")
}

/// The webhook configurations as deployed: `kubectl kustomize deploy/base` when kubectl is
/// there, else `deploy/base/webhooks.yaml` as written, else the copy in `tests/fixtures`.
pub async fn deploy_manifests() -> Result<(String, &'static str)> {
    let base = workspace_root().join("deploy/base");
    if let Some(k) = tools::kubectl()
        && base.is_dir()
    {
        let out = tools::run(
            &k,
            &["kustomize".into(), base.display().to_string()],
            &[],
            None,
            Duration::from_secs(60),
        )
        .await?;
        if out.success() && out.stdout.contains("ValidatingWebhookConfiguration") {
            return Ok((out.stdout, "kubectl kustomize deploy/base"));
        }
    }
    let file = base.join("webhooks.yaml");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return Ok((text, "deploy/base/webhooks.yaml"));
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks.yaml");
    Ok((
        std::fs::read_to_string(&fallback)
            .with_context(|| format!("reading {}", fallback.display()))?,
        "tests/fixtures/webhooks.yaml",
    ))
}

/// Starts kspy's webhook in-process on `server` with the policies of `policies` (Events posted
/// to and Namespaces read from `server` as `kspy-webhook`, which `server` must know), and
/// installs the webhook configurations of `deploy/` pointed at it. Returns the running webhook
/// and where the configurations came from.
pub async fn wire_kspy(
    server: &ApiServer,
    policies: PathBuf,
) -> Result<(kspy_webhook::RunningServer, &'static str)> {
    let cert = server.ca().issue_serving(&["127.0.0.1", "localhost"])?;
    let dir = server.dir().join("webhook-tls");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem)?;
    std::fs::write(dir.join("tls.key"), &cert.key_pem)?;
    let tls = kspy_webhook::TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    let mut config = kspy_webhook::ServerConfig::new(policies, tls).on_loopback();
    // Decision Events go to this API server, posted as the webhook's ServiceAccount.
    config.events = kspy_webhook::events::EventSink::Api {
        client: server.client("kspy-webhook").await?,
        instance: "kspy-webhook-e2e".into(),
    };
    // Namespaces (labels, the Pod Security level) are read from this API server, as the
    // deployed webhook reads them from its cluster.
    config.namespaces = kspy_webhook::NamespaceSource::Api {
        client: server.client("kspy-webhook").await?,
        ttl: Duration::from_secs(30),
    };
    let webhook = kspy_webhook::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("starting kspy's webhook: {e}"))?;
    let (yaml, source) = deploy_manifests().await?;
    let target = WebhookTarget {
        base_url: format!("https://{}", webhook.addr),
        ca_pem: cert.ca_pem.clone(),
    };
    let chain = AdmissionChain::from_manifests(&yaml, Some(&target))?;
    if chain.webhooks().is_empty() {
        bail!("{source} holds no webhook configuration");
    }
    server.set_admission(chain);
    Ok((webhook, source))
}

/// The in-process namespace labelled `pod-security.kubernetes.io/enforce: restricted`,
/// holding the restricted-compliant pod `hardened`.
pub const RESTRICTED_NS: &str = "locked";

/// Identities of the scenarios: `alice` (group `sre`), `bob` (group `dev`), `admin`, `eve`.
pub fn identities() -> Vec<Identity> {
    Identity::defaults()
}

/// Where a scenario runs.
pub enum Target {
    /// The in-process API server with kspy's webhook.
    InProcess {
        /// The API server.
        server: Box<ApiServer>,
        /// kspy's webhook.
        webhook: Option<kspy_webhook::RunningServer>,
    },
    /// A real cluster (kubeconfig contexts named after the identities).
    Real {
        /// The kubeconfig.
        kubeconfig: PathBuf,
    },
}

/// One scenario's world: namespace `ns` holding pods `web` (one container) and `duo`
/// (containers `app`, `sidecar`).
pub struct Env {
    /// Where it runs.
    pub target: Target,
    /// The scenario namespace.
    pub ns: String,
    /// How the webhook configurations were obtained.
    pub manifests_source: &'static str,
}

impl Env {
    /// Starts the in-process world, or prepares the real cluster when `KSPY_E2E_KUBECONFIG` is set.
    pub async fn start() -> Result<Self> {
        if let Some(kc) = tools::real_cluster() {
            return Self::start_real(kc).await;
        }
        let ns = "prod".to_string();
        let server = ApiServer::builder()
            .namespace(&ns, &[("team", "payments")])
            .pod(fixtures::web_pod(&ns, "web"))
            .pod(fixtures::two_container_pod(&ns, "duo"))
            // Pod Security "restricted" is enforced here (in-process scenarios only).
            .namespace(
                RESTRICTED_NS,
                &[(crate::apiserver::pod_security::ENFORCE_LABEL, "restricted")],
            )
            .pod(fixtures::hardened_pod(RESTRICTED_NS, "hardened"))
            .start()
            .await?;
        let (webhook, source) = wire_kspy(&server, policies_dir()).await?;
        Ok(Self {
            target: Target::InProcess {
                server: Box::new(server),
                webhook: Some(webhook),
            },
            ns,
            manifests_source: source,
        })
    }

    async fn start_real(kubeconfig: PathBuf) -> Result<Self> {
        let ns = format!("kspy-e2e-{}", crate::apiserver::defaults::random_suffix(5));
        let env = Self {
            target: Target::Real { kubeconfig },
            ns: ns.clone(),
            manifests_source: "the cluster's own",
        };
        let client = env.client("admin").await?;
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.clone());
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &n)
            .await?;
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let image = std::env::var("KSPY_E2E_APP_IMAGE")
            .unwrap_or_else(|_| "registry.k8s.io/pause:3.10".into());
        for mut p in [
            fixtures::web_pod(&ns, "web"),
            fixtures::two_container_pod(&ns, "duo"),
        ] {
            if let Some(spec) = p.spec.as_mut() {
                for c in spec.containers.iter_mut() {
                    c.image = Some(image.clone());
                }
            }
            pods.create(&PostParams::default(), &p).await?;
        }
        for name in ["web", "duo"] {
            for _ in 0..240 {
                let phase = pods.get(name).await?.status.and_then(|s| s.phase);
                if phase.as_deref() == Some("Running") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(env)
    }

    /// Whether this runs against a real cluster.
    pub fn is_real(&self) -> bool {
        matches!(self.target, Target::Real { .. })
    }

    /// The in-process server, when there is one.
    pub fn server(&self) -> Option<&ApiServer> {
        match &self.target {
            Target::InProcess { server, .. } => Some(server),
            Target::Real { .. } => None,
        }
    }

    /// Stops kspy's webhook (to test failurePolicy Fail); in-process only.
    pub async fn stop_webhook(&mut self) {
        if let Target::InProcess { webhook, .. } = &mut self.target
            && let Some(w) = webhook.take()
        {
            w.shutdown().await;
        }
    }

    /// Kubeconfig arguments for `user`: its own file in-process, its context on a real cluster.
    pub fn kube_args(&self, user: &str) -> Vec<String> {
        match &self.target {
            Target::InProcess { server, .. } => vec![
                "--kubeconfig".into(),
                server.kubeconfig_for(user).display().to_string(),
            ],
            Target::Real { kubeconfig } => {
                vec![
                    "--kubeconfig".into(),
                    kubeconfig.display().to_string(),
                    "--context".into(),
                    user.into(),
                ]
            }
        }
    }

    /// A kube client for `user`.
    pub async fn client(&self, user: &str) -> Result<kube::Client> {
        match &self.target {
            Target::InProcess { server, .. } => Ok(server.client(user).await?),
            Target::Real { kubeconfig } => {
                let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
                let opts = kube::config::KubeConfigOptions {
                    context: Some(user.into()),
                    ..Default::default()
                };
                Ok(kube::Client::try_from(
                    kube::Config::from_custom_kubeconfig(kc, &opts).await?,
                )?)
            }
        }
    }

    /// A pod of the scenario namespace, as stored.
    pub async fn pod(&self, name: &str) -> Result<Pod> {
        Ok(
            Api::<Pod>::namespaced(self.client("admin").await?, &self.ns)
                .get(name)
                .await?,
        )
    }

    /// Runs `kspy ARGS` as `user` (kubeconfig and namespace added), stdin fed then closed.
    pub async fn kspy(&self, user: &str, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        self.kspy_in(&self.ns, user, args, stdin).await
    }

    /// [`Env::kspy`] in namespace `ns`.
    pub async fn kspy_in(
        &self,
        ns: &str,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output> {
        let bin =
            tools::kspy_bin().context("the kspy binary is not built (cargo build -p kspy)")?;
        // Cluster flags right after the subcommand, before any `-- CMD`.
        let mut full: Vec<String> = args.iter().take(1).map(|s| s.to_string()).collect();
        full.extend(self.kube_args(user));
        full.extend(["-n".to_string(), ns.to_string()]);
        full.extend(args.iter().skip(1).map(|s| s.to_string()));
        let home = self.home();
        let env = vec![
            ("HOME".to_string(), home),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        Ok(tools::run(
            &bin,
            &full,
            &env,
            stdin.map(|s| s.as_bytes().to_vec()),
            Duration::from_secs(60),
        )
        .await?)
    }

    /// Runs the real `kubectl ARGS` as `user`; `None` when no kubectl is installed.
    pub async fn kubectl(
        &self,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Option<Output>> {
        let Some(bin) = tools::kubectl() else {
            return Ok(None);
        };
        Ok(Some(self.kubectl_with(&bin, user, args, stdin).await?))
    }

    /// Runs `bin ARGS` (a kubectl, e.g. [`tools::json_kubectl`]'s) as `user`.
    pub async fn kubectl_with(
        &self,
        bin: &Path,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output> {
        let mut full = self.kube_args(user);
        full.extend(["-n".to_string(), self.ns.clone()]);
        full.extend(args.iter().map(|s| s.to_string()));
        let home = self.home();
        Ok(tools::run(
            bin,
            &full,
            &[("HOME".into(), home)],
            stdin.map(|s| s.as_bytes().to_vec()),
            Duration::from_secs(60),
        )
        .await?)
    }

    /// HOME for child processes: the server's scratch directory (kubectl's discovery cache
    /// stays per server), or the system temp directory on a real cluster.
    fn home(&self) -> String {
        match &self.target {
            Target::InProcess { server, .. } => server.dir().display().to_string(),
            Target::Real { .. } => std::env::temp_dir().display().to_string(),
        }
    }

    /// Removes what a real-cluster run created.
    pub async fn cleanup(self) -> Result<()> {
        if self.is_real() {
            let client = self.client("admin").await?;
            Api::<Namespace>::all(client)
                .delete(&self.ns, &DeleteParams::default())
                .await?;
        }
        Ok(())
    }
}
