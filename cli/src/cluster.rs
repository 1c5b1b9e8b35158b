//! Cluster access like kubectl: `--kubeconfig`, then `KUBECONFIG` (a list of files, merged),
//! then `~/.kube/config`, then the in-cluster service account; `--context` picks a context;
//! `-n/--namespace` defaults to the context's namespace, then `default`.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::container::{validate_dns_label, validate_dns_subdomain};
use crate::errors::{Action, KspyError, explain, missing_with_candidates};
use crate::patch::PlannedRequest;

/// The flags that pick the cluster and namespace, shared by every command that talks to one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, ~/.kube/config, then in-cluster]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: the current context]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace [default: the context's namespace, else "default"]
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// A connected client and the namespace to work in.
#[derive(Clone)]
pub struct Cluster {
    /// The kube client.
    pub client: Client,
    /// The namespace from `-n` or the context.
    pub namespace: String,
    /// The API server URL, for messages.
    pub server: String,
}

fn kubeconfig_error(
    e: KubeconfigError,
    context: Option<&str>,
    kubeconfig: Option<&Kubeconfig>,
) -> KspyError {
    if let (KubeconfigError::LoadContext(_), Some(ctx)) = (&e, context) {
        let names: Vec<String> = kubeconfig
            .map(|k| k.contexts.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        return missing_with_candidates(
            format!("context {ctx} not found in the kubeconfig"),
            "context",
            ctx,
            &names,
        );
    }
    KspyError::new("cannot load the kubeconfig")
        .source(e)
        .hint("check `--kubeconfig`, `KUBECONFIG` and `--context`")
}

fn home_kubeconfig() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    let path = PathBuf::from(home).join(".kube").join("config");
    path.exists().then_some(path)
}

async fn load_config(args: &ClusterArgs) -> Result<Config, KspyError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: None,
        user: None,
    };
    let from_file = |kc: Kubeconfig| async {
        let copy = kc.clone();
        Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| kubeconfig_error(e, args.context.as_deref(), Some(&copy)))
    };
    if let Some(path) = &args.kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|e| {
            KspyError::new(format!("cannot read kubeconfig {}", path.display())).source(e)
        })?;
        return from_file(kc).await;
    }
    let env_set = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    if env_set || home_kubeconfig().is_some() {
        let kc = Kubeconfig::read().map_err(|e| kubeconfig_error(e, None, None))?;
        return from_file(kc).await;
    }
    if let Some(ctx) = &args.context {
        return Err(
            KspyError::new(format!("context {ctx} not found: there is no kubeconfig"))
                .hint("set KUBECONFIG or pass --kubeconfig"),
        );
    }
    Config::incluster().map_err(|e| {
        KspyError::new("no kubeconfig found and not running inside a cluster")
            .source(e)
            .hint("set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config")
    })
}

impl Cluster {
    /// Connects as kubectl would with the same flags and environment.
    pub async fn connect(args: &ClusterArgs) -> Result<Cluster, KspyError> {
        let config = load_config(args).await?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        validate_dns_label("--namespace", &namespace).map_err(KspyError::from)?;
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .map_err(|e| KspyError::new("cannot set up the Kubernetes client").source(e))?;
        Ok(Cluster {
            client,
            namespace,
            server,
        })
    }

    /// Explains a client error for `action`.
    pub fn explain(&self, action: &Action, err: kube::Error) -> KspyError {
        explain(action, err, &self.server)
    }

    /// Pods of the working namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Sends a planned write and decodes the answer.
    pub async fn send<T: DeserializeOwned>(
        &self,
        req: &PlannedRequest,
        action: &Action,
    ) -> Result<T, KspyError> {
        let http = req
            .to_http()
            .map_err(|e| KspyError::new(format!("{action}: cannot build the request")).source(e))?;
        self.client
            .request::<T>(http)
            .await
            .map_err(|e| self.explain(action, e))
    }

    /// Reads a pod; when it does not exist, the error lists the pods that do.
    pub async fn get_pod(&self, name: &str) -> Result<Pod, KspyError> {
        validate_dns_subdomain("POD", name).map_err(KspyError::from)?;
        let action = Action::GetPod {
            ns: self.namespace.clone(),
            pod: name.to_string(),
        };
        match self.pods().get(name).await {
            Ok(pod) => Ok(pod),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let headline = format!("pod {name} not found in namespace {}", self.namespace);
                match self.pods().list(&ListParams::default()).await {
                    Ok(list) => {
                        let names: Vec<String> = list
                            .items
                            .into_iter()
                            .filter_map(|p| p.metadata.name)
                            .collect();
                        Err(missing_with_candidates(headline, "pod", name, &names))
                    }
                    Err(_) => Err(KspyError::new(headline).hint(format!(
                        "see the pods with `kubectl get pods -n {}`",
                        self.namespace
                    ))),
                }
            }
            Err(e) => Err(self.explain(&action, e)),
        }
    }

    /// Reads a node; `Ok(None)` when kspy may not read nodes (the pod is created anyway);
    /// when it does not exist, the error lists the nodes that do.
    pub async fn get_node(&self, name: &str) -> Result<Option<Node>, KspyError> {
        validate_dns_subdomain("NODE", name).map_err(KspyError::from)?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.get(name).await {
            Ok(node) => Ok(Some(node)),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let headline = format!("node {name} not found");
                let names: Vec<String> = match nodes.list(&ListParams::default()).await {
                    Ok(list) => list
                        .items
                        .into_iter()
                        .filter_map(|n| n.metadata.name)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                Err(missing_with_candidates(headline, "node", name, &names))
            }
            Err(e) => Err(self.explain(
                &Action::GetNode {
                    node: name.to_string(),
                },
                e,
            )),
        }
    }

    /// The user the API server sees, from a SelfSubjectReview (Kubernetes 1.28+); `None` when
    /// the cluster cannot say.
    pub async fn whoami(&self) -> Option<String> {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).ok()?)
            .ok()?;
        let answer: Value = self.client.request(req).await.ok()?;
        answer
            .pointer("/status/userInfo/username")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    }
}
