//! Renders `deploy/` with `kubectl kustomize` and checks the cluster-wide install's
//! invariants (issue 5): every object parses into its k8s-openapi type without losing a
//! field, the webhooks see exactly the debug requests and fail closed, the Service, ports,
//! probes and args agree, RBAC grants nothing beyond the list, the policy ConfigMap holds
//! every policy file of `policies/` (not the JSON fixtures) and loads, every object fits
//! the last-applied-configuration annotation of a client-side `kubectl apply`, the pods
//! run at kspy's own priority behind a NetworkPolicy that admits only the webhook's two
//! ports, the pods pass Pod Security `restricted`, and each overlay supplies the CA
//! (cert-manager injection, or the self-signed Secret's `ca.crt`).
//!
//! Without `kubectl` on PATH (or in `$KUBECTL`), the rendering tests print why and pass.
//!
//! # Reuse
//!
//! The helpers in [`render`] are meant to be shared: the e2e API server can load the
//! shipped webhook configurations with
//! `render::render("overlays/self-signed", &[], Some(&certs))?.webhook_configurations()`.
//! They live in this file for now; move the module to `tests/src` when a second test
//! needs it.

pub mod render {
    //! Rendering `deploy/` kustomizations into typed objects.

    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use anyhow::{Context as _, bail, ensure};
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    /// The repository's `deploy/` directory.
    pub fn deploy_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
    }

    /// The repository's policy library, `policies/`.
    pub fn policies_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    /// The kubectl to run: `$KUBECTL`, else `kubectl` from PATH.
    pub fn kubectl() -> String {
        std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned())
    }

    /// Whether kubectl (with its built-in kustomize) can be run. Contacts no cluster.
    pub fn kubectl_available() -> bool {
        Command::new(kubectl())
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The rendered objects of one kustomization, in kustomize's output order.
    #[derive(Debug, Clone)]
    pub struct Rendered {
        /// What was rendered, for messages (e.g. `overlays/self-signed`).
        pub target: String,
        /// Every object, as JSON (base64 line breaks removed, as the API server reads it).
        pub docs: Vec<Value>,
        /// Every object exactly as kustomize wrote it (what `kubectl apply` sends).
        pub raw_docs: Vec<Value>,
    }

    impl Rendered {
        /// Objects of one apiVersion and kind, as JSON.
        pub fn values(&self, api_version: &str, kind: &str) -> Vec<&Value> {
            self.docs
                .iter()
                .filter(|d| d["apiVersion"] == api_version && d["kind"] == kind)
                .collect()
        }

        /// Every object of type `T`, parsed.
        pub fn all<T>(&self) -> anyhow::Result<Vec<T>>
        where
            T: k8s_openapi::Resource + DeserializeOwned,
        {
            self.values(T::API_VERSION, T::KIND)
                .into_iter()
                .map(|v| {
                    serde_json::from_value(v.clone()).with_context(|| {
                        format!(
                            "{}: parsing a {} {}",
                            self.target,
                            T::KIND,
                            v["metadata"]["name"]
                        )
                    })
                })
                .collect()
        }

        /// The single object of type `T`; an error when there are none or several.
        pub fn one<T>(&self) -> anyhow::Result<T>
        where
            T: k8s_openapi::Resource + DeserializeOwned,
        {
            let mut all = self.all::<T>()?;
            ensure!(
                all.len() == 1,
                "{}: expected exactly one {}, found {}",
                self.target,
                T::KIND,
                all.len()
            );
            Ok(all.remove(0))
        }

        /// The object of type `T` named `name`.
        pub fn named<T>(&self, name: &str) -> anyhow::Result<T>
        where
            T: k8s_openapi::Resource
                + k8s_openapi::Metadata<
                    Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                > + DeserializeOwned,
        {
            self.all::<T>()?
                .into_iter()
                .find(|o| o.metadata().name.as_deref() == Some(name))
                .with_context(|| format!("{}: no {} named {name}", self.target, T::KIND))
        }

        /// The shipped webhook configurations (exactly one of each kind).
        pub fn webhook_configurations(
            &self,
        ) -> anyhow::Result<(MutatingWebhookConfiguration, ValidatingWebhookConfiguration)>
        {
            Ok((self.one()?, self.one()?))
        }
    }

    /// Renders `target` (a kustomization directory relative to `deploy/`, e.g. `base` or
    /// `overlays/cert-manager`) with `kubectl kustomize`, optionally with kustomize
    /// `components` (relative to `deploy/`, e.g. `components/audit-only`) added on top.
    ///
    /// The render runs on a temporary copy of `deploy/`, so nothing is written to the
    /// working tree. With `certs`, they are written where the self-signed overlay reads
    /// them (`overlays/self-signed/certs/`), with the file names `kspy certs generate`
    /// uses, before rendering.
    pub fn render(
        target: &str,
        components: &[&str],
        certs: Option<&kspy_certs::GeneratedCerts>,
    ) -> anyhow::Result<Rendered> {
        render_with(target, components, certs, None)
    }

    /// [`render`], with `extra` (kustomization fields such as `patches:`, as YAML) added to
    /// the kustomization that includes `target` and `components`, as a user's own overlay
    /// would.
    pub fn render_with(
        target: &str,
        components: &[&str],
        certs: Option<&kspy_certs::GeneratedCerts>,
        extra: Option<&str>,
    ) -> anyhow::Result<Rendered> {
        let tmp = tempfile::tempdir()?;
        let deploy = tmp.path().join("deploy");
        copy_tree(&deploy_dir(), &deploy)?;
        if let Some(certs) = certs {
            certs
                .write_to(&deploy.join("overlays/self-signed/certs"))
                .context("writing certificates for the self-signed overlay")?;
        }
        let mut dir = deploy.join(target);
        ensure!(
            dir.join("kustomization.yaml").is_file(),
            "deploy/{target}: no kustomization.yaml"
        );
        if !components.is_empty() || extra.is_some() {
            // kustomize refuses absolute resource paths: a kustomization beside the others.
            let wrapper = deploy.join("render-with-components");
            std::fs::create_dir_all(&wrapper)?;
            let mut k = format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../{target}\n"
            );
            if !components.is_empty() {
                k.push_str("components:\n");
            }
            for c in components {
                k.push_str(&format!("  - ../{c}\n"));
            }
            if let Some(extra) = extra {
                k.push_str(extra);
                k.push('\n');
            }
            std::fs::write(wrapper.join("kustomization.yaml"), k)?;
            dir = wrapper;
        }
        let out = Command::new(kubectl())
            .arg("kustomize")
            .arg(&dir)
            .output()
            .with_context(|| format!("running {} kustomize", kubectl()))?;
        if !out.status.success() {
            bail!(
                "kubectl kustomize deploy/{target} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let yaml = String::from_utf8(out.stdout).context("kustomize output is not UTF-8")?;
        let raw_docs: Vec<Value> = serde_saphyr::from_multiple(&yaml)
            .with_context(|| format!("parsing the YAML rendered from deploy/{target}"))?;
        let mut docs = raw_docs.clone();
        docs.iter_mut().for_each(unwrap_base64);
        let mut label = target.to_owned();
        for c in components {
            label.push_str(" + ");
            label.push_str(c);
        }
        if extra.is_some() {
            label.push_str(" + an overlay's patches");
        }
        Ok(Rendered {
            target: label,
            docs,
            raw_docs,
        })
    }

    /// Every regular file under `dir`, as paths relative to it with `/` separators,
    /// sorted. Symlinks are followed, to files and to directories, as kspy-webhook's policy
    /// loader and `deploy/sync-policies.sh` follow them.
    pub fn files_under(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> anyhow::Result<()> {
            // A link back up the tree would be walked until the path grew too long.
            ensure!(
                dir.components().count() < root.components().count() + 16,
                "{} is more than 16 directories below {}: a symlink loop?",
                dir.display(),
                root.display()
            );
            for entry in
                std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let entry = entry?;
                let path = entry.path();
                let ty = entry.file_type()?;
                if ty.is_dir() || (ty.is_symlink() && path.is_dir()) {
                    walk(root, &path, out)?;
                } else if ty.is_file() || (ty.is_symlink() && path.is_file()) {
                    let rel = path.strip_prefix(root)?;
                    let parts: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.insert(parts.join("/"));
                }
            }
            Ok(())
        }
        let mut out = BTreeSet::new();
        if dir.is_dir() {
            walk(dir, dir, &mut out)?;
        }
        Ok(out)
    }

    /// The files of `dir` that kspy-webhook loads as policies, and so the files of
    /// `policies/` that `deploy/sync-policies.sh` ships: `*.yaml` and `*.yml`, none under
    /// a name starting with `.` (the loader skips those). The JSON fixtures of the test
    /// suites are not among them.
    pub fn policy_files_under(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
        Ok(files_under(dir)?
            .into_iter()
            .filter(|f| {
                (f.ends_with(".yaml") || f.ends_with(".yml"))
                    && !f.split('/').any(|part| part.starts_with('.'))
            })
            .collect())
    }

    /// The ConfigMap key `deploy/sync-policies.sh` gives a file of `policies/`.
    pub fn policy_key(relative_path: &str) -> String {
        relative_path.replace('/', "__")
    }

    /// kustomize writes generated base64 (Secret `data`, and the `caBundle` the
    /// self-signed overlay copies from it) wrapped at 70 columns. The API server's
    /// base64 decoding skips `\r`/`\n` (Go's encoding/base64), so `kubectl apply` takes
    /// it as is; k8s-openapi's `ByteString` does not, so the line breaks are removed
    /// here, as the API server would.
    fn unwrap_base64(doc: &mut Value) {
        fn strip(v: &mut Value) {
            if let Value::String(s) = v {
                s.retain(|c| c != '\n' && c != '\r');
            }
        }
        for key in ["data", "binaryData"] {
            if (doc["kind"] == "Secret" || (doc["kind"] == "ConfigMap" && key == "binaryData"))
                && let Some(map) = doc.get_mut(key).and_then(Value::as_object_mut)
            {
                map.values_mut().for_each(strip);
            }
        }
        if let Some(hooks) = doc.get_mut("webhooks").and_then(Value::as_array_mut) {
            for h in hooks {
                if let Some(b) = h.pointer_mut("/clientConfig/caBundle") {
                    strip(b);
                }
            }
        }
    }

    fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in
            std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))?
        {
            let entry = entry?;
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            if src.is_dir() {
                copy_tree(&src, &dst)?;
            } else {
                std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
            }
        }
        Ok(())
    }
}

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhook, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_cel::cel;
use render::{Rendered, render, render_with};
use serde_json::{Value, json};

const NAMESPACE: &str = "kspy-system";
const TLS_SECRET: &str = "kspy-webhook-tls";
const POLICIES_CONFIGMAP: &str = "kspy-policies";
/// The flags kspy-webhook accepts (issue 2); anything else in the args is a typo.
const WEBHOOK_FLAGS: &[&str] = &[
    "addr",
    "admin-addr",
    "policies",
    "tls-cert",
    "tls-key",
    "log-format",
    "no-policy-allows",
    "max-body-bytes",
    "max-buffered-bytes",
    "review-timeout",
    "reload-interval",
    "copy-classifier",
    "node-classifier",
    "namespace-lookup",
    "namespace-cache-ttl",
    "shutdown-delay",
    "shutdown-grace",
    "judge-threads",
    "max-connections",
    "events",
];
/// kspy-webhook's default `--review-timeout`.
const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(9);
/// What kspy-webhook's shutdown takes beyond `--shutdown-delay` and `--shutdown-grace` at
/// worst (webhook/src/server.rs): posting the queued decision Events (5 s), closing the
/// admin port (its `ADMIN_GRACE`, 5 s), then flushing traces (`telemetry::FLUSH_LIMIT`).
const SHUTDOWN_AFTER_GRACE: Duration =
    Duration::from_secs(5 + 5).saturating_add(kspy_webhook::telemetry::FLUSH_LIMIT);
/// The pod's `terminationGracePeriodSeconds` when unset.
const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;
/// ConfigMaps are limited to 1 MiB of data.
const CONFIGMAP_LIMIT: usize = 1 << 20;
/// The API server's limit on the total size (keys plus values) of an object's annotations.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;
/// Where a client-side `kubectl apply` keeps the whole object it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The control-plane CIDR `components/restrict-ingress` ships, to be replaced by the user:
/// not a valid CIDR, so `kubectl apply` refuses the NetworkPolicy until it is.
const CONTROL_PLANE_CIDR_PLACEHOLDER: &str = "SET-THE-CONTROL-PLANE-CIDR";
/// The PriorityClass the webhook pods run at.
const PRIORITY_CLASS: &str = "kspy-webhook";
/// User-defined PriorityClasses may not exceed one billion; the system-* classes start at
/// two billion.
const USER_PRIORITY_CEILING: i32 = 1_000_000_000;

// ----------------------------------------------------------------------------------------
// The tests

#[test]
fn base_renders_and_holds_the_common_invariants() -> anyhow::Result<()> {
    let Some(r) = rendered("base", &[], None)? else {
        return Ok(());
    };
    check_common(&r)?;
    // The base alone has no CA: it is not installable without an overlay.
    let (m, v) = r.webhook_configurations()?;
    for hook in hooks(&m, &v)? {
        ensure!(
            hook.client_config.ca_bundle.is_none(),
            "base: {} has a caBundle",
            hook.name
        );
    }
    ensure!(r.all::<Secret>()?.is_empty(), "base: renders a Secret");
    Ok(())
}

#[test]
fn cert_manager_overlay_issues_the_certificate_and_injects_the_ca() -> anyhow::Result<()> {
    let Some(r) = rendered("overlays/cert-manager", &[], None)? else {
        return Ok(());
    };
    check_common(&r)?;
    ensure!(
        r.all::<Secret>()?.is_empty(),
        "cert-manager: the TLS Secret is cert-manager's to create"
    );

    let certificates = r.values("cert-manager.io/v1", "Certificate");
    let issuers = r.values("cert-manager.io/v1", "Issuer");
    let by_name = |list: &[&Value], name: &str| -> anyhow::Result<Value> {
        list.iter()
            .find(|o| o["metadata"]["name"] == name)
            .map(|o| (*o).clone())
            .with_context(|| format!("cert-manager: no object named {name}"))
    };
    for o in certificates.iter().chain(&issuers) {
        ensure!(
            o["metadata"]["namespace"] == NAMESPACE,
            "cert-manager: {} outside {NAMESPACE}",
            o["metadata"]["name"]
        );
    }

    // Both webhook configurations ask cainjector for the serving Certificate's CA.
    let (m, v) = r.webhook_configurations()?;
    let injections = [
        m.metadata.annotations.clone().unwrap_or_default(),
        v.metadata.annotations.clone().unwrap_or_default(),
    ];
    let mut serving_name = None;
    for a in &injections {
        let from = a.get("cert-manager.io/inject-ca-from").context(
            "cert-manager: a webhook configuration lacks cert-manager.io/inject-ca-from",
        )?;
        let (ns, name) = from
            .split_once('/')
            .context("inject-ca-from must be NAMESPACE/NAME")?;
        ensure!(ns == NAMESPACE, "inject-ca-from names namespace {ns}");
        serving_name = Some(name.to_owned());
    }
    let serving = by_name(&certificates, &serving_name.unwrap_or_default())?;

    // The serving certificate lands in the Secret the pods mount, for the Service's name.
    let deployment = r.one::<Deployment>()?;
    let spec = pod_spec(&deployment)?;
    ensure!(
        serving["spec"]["secretName"] == tls_secret_name(spec)?,
        "cert-manager: Certificate secretName differs from the mounted Secret"
    );
    let service = r.one::<Service>()?;
    let svc_dns = format!(
        "{}.{}.svc",
        service.metadata.name.as_deref().unwrap_or_default(),
        NAMESPACE
    );
    let dns: Vec<&str> = serving["spec"]["dnsNames"]
        .as_array()
        .context("serving Certificate without dnsNames")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        dns.contains(&svc_dns.as_str()),
        "cert-manager: dnsNames {dns:?} lack {svc_dns}"
    );
    ensure!(
        serving["spec"]["isCA"] != true,
        "cert-manager: the serving certificate is a CA"
    );

    // Issuer chain: serving <- CA Issuer <- CA Certificate (isCA) <- selfSigned Issuer.
    let issuer_of = |cert: &Value| -> anyhow::Result<Value> {
        let r#ref = &cert["spec"]["issuerRef"];
        ensure!(
            r#ref["kind"] == "Issuer",
            "issuerRef kind must be Issuer (namespaced), is {}",
            r#ref["kind"]
        );
        by_name(&issuers, r#ref["name"].as_str().unwrap_or_default())
    };
    let ca_issuer = issuer_of(&serving)?;
    let ca_secret = ca_issuer["spec"]["ca"]["secretName"]
        .as_str()
        .context("the serving Issuer is not a CA Issuer")?;
    let ca_cert = certificates
        .iter()
        .find(|c| c["spec"]["secretName"] == ca_secret)
        .with_context(|| format!("no Certificate writes the CA Secret {ca_secret}"))?;
    ensure!(
        ca_cert["spec"]["isCA"] == true,
        "the CA Certificate lacks isCA: true"
    );
    // A CA renewal must keep the key: the caBundle switches to the renewed CA while the
    // pods still serve a certificate signed before the renewal, which must still verify.
    ensure!(
        ca_cert["spec"]["privateKey"]["rotationPolicy"] == "Never",
        "cert-manager: the CA Certificate's privateKey.rotationPolicy is {}, want Never (a new \
         CA key refuses debug requests until the pods load the reissued certificate)",
        ca_cert["spec"]["privateKey"]["rotationPolicy"]
    );
    let root = issuer_of(ca_cert)?;
    ensure!(
        root["spec"]["selfSigned"].is_object(),
        "the CA Certificate is not issued by a selfSigned Issuer"
    );
    Ok(())
}

#[test]
fn self_signed_overlay_uses_the_generated_files() -> anyhow::Result<()> {
    // What `kspy certs generate --service kspy-webhook --namespace kspy-system --out
    // deploy/overlays/self-signed/certs` writes (the README's command), in a temp copy.
    let certs = kspy_certs::generate("kspy-webhook", NAMESPACE, Duration::from_secs(86_400))?;
    let Some(r) = rendered("overlays/self-signed", &[], Some(&certs))? else {
        return Ok(());
    };
    check_common(&r)?;

    let secret = r.named::<Secret>(TLS_SECRET)?;
    ensure!(
        secret.type_.as_deref() == Some("kubernetes.io/tls"),
        "self-signed: Secret type {:?}",
        secret.type_
    );
    let data = secret.data.clone().unwrap_or_default();
    for (key, want) in [
        ("tls.crt", &certs.cert_pem),
        ("tls.key", &certs.key_pem),
        ("ca.crt", &certs.ca_cert_pem),
    ] {
        ensure!(
            data.get(key) == Some(&ByteString(want.clone().into_bytes())),
            "self-signed: Secret {key} is not the generated file"
        );
    }

    let (m, v) = r.webhook_configurations()?;
    for hook in hooks(&m, &v)? {
        let bundle = hook
            .client_config
            .ca_bundle
            .as_ref()
            .with_context(|| format!("{}: no caBundle", hook.name))?;
        ensure!(
            bundle.0 == certs.ca_cert_pem.as_bytes(),
            "{}: caBundle is not the generated ca.crt",
            hook.name
        );
    }
    // The same value as ca-bundle.b64, the other documented way to get it.
    let as_json = serde_json::to_value(&m)?;
    ensure!(
        as_json["webhooks"][0]["clientConfig"]["caBundle"] == certs.ca_bundle_b64(),
        "caBundle differs from ca-bundle.b64"
    );

    // The certificate is valid for the name the API server calls.
    let service = r.one::<Service>()?;
    let svc_dns = format!(
        "{}.{}.svc",
        service.metadata.name.as_deref().unwrap_or_default(),
        NAMESPACE
    );
    ensure!(
        certs.sans.contains(&svc_dns),
        "generated SANs {:?} lack {svc_dns}",
        certs.sans
    );
    Ok(())
}

#[test]
fn audit_only_component_adds_no_policy_allows() -> anyhow::Result<()> {
    let certs = kspy_certs::generate("kspy-webhook", NAMESPACE, Duration::from_secs(86_400))?;
    let Some(plain) = rendered("overlays/self-signed", &[], Some(&certs))? else {
        return Ok(());
    };
    let Some(audit) = rendered("overlays/cert-manager", &["components/audit-only"], None)? else {
        return Ok(());
    };
    check_common(&audit)?;
    let has_flag = |r: &Rendered| -> anyhow::Result<bool> {
        let d = r.one::<Deployment>()?;
        Ok(webhook_container(pod_spec(&d)?)?
            .args
            .iter()
            .flatten()
            .any(|a| a == "--no-policy-allows"))
    };
    ensure!(
        !has_flag(&plain)?,
        "the overlays must deny when no policy applies (fail closed)"
    );
    ensure!(
        has_flag(&audit)?,
        "components/audit-only does not add --no-policy-allows"
    );
    Ok(())
}

/// `components/restrict-ingress` admits the https port only from an `ipBlock` the user
/// sets (shipped as a placeholder that is not a valid CIDR, so `kubectl apply` refuses the
/// NetworkPolicy until it is set) and the admin port only from the monitoring namespace;
/// the overlay patch from deploy/README.md ("Restricting who can reach kspy") sets it.
#[test]
fn restrict_ingress_component_narrows_both_ports() -> anyhow::Result<()> {
    const COMPONENT: &str = "components/restrict-ingress";
    let Some(shipped) = rendered("overlays/cert-manager", &[COMPONENT], None)? else {
        return Ok(());
    };
    check_common_with(&shipped, Sources::Restricted)?;
    // (https sources, admin sources) of the one NetworkPolicy, its rules in the base's order.
    let peers = |r: &Rendered| -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
        let np = r.one::<NetworkPolicy>()?;
        let rules = np.spec.and_then(|s| s.ingress).unwrap_or_default();
        ensure!(
            rules.len() == 2,
            "{}: {} ingress rules",
            r.target,
            rules.len()
        );
        let from = |i: usize| -> anyhow::Result<Vec<Value>> {
            Ok(
                serde_json::to_value(rules[i].from.clone().unwrap_or_default())?
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        Ok((from(0)?, from(1)?))
    };
    let (https, admin) = peers(&shipped)?;
    ensure!(
        https == [json!({"ipBlock": {"cidr": CONTROL_PLANE_CIDR_PLACEHOLDER}})],
        "{COMPONENT}: https sources {https:?}, want only the placeholder ipBlock"
    );
    ensure!(
        !is_cidr(CONTROL_PLANE_CIDR_PLACEHOLDER),
        "{COMPONENT}: the placeholder is a valid CIDR: an overlay that forgets to set it \
         would apply a policy that shuts the API server out"
    );
    ensure!(
        admin
            == [
                json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}})
            ],
        "{COMPONENT}: admin sources {admin:?}, want only the monitoring namespace"
    );

    // A user's overlay sets the CIDR as deploy/README.md shows.
    let patch = "patches:\n  - target: {kind: NetworkPolicy, name: kspy-webhook}\n    patch: |-\n      - op: replace\n        path: /spec/ingress/0/from\n        value:\n          - ipBlock: {cidr: 10.0.0.0/28}\n";
    let set = render_with("overlays/cert-manager", &[COMPONENT], None, Some(patch))?;
    check_common_with(&set, Sources::Restricted)?;
    let (https, _) = peers(&set)?;
    ensure!(
        https == [json!({"ipBlock": {"cidr": "10.0.0.0/28"}})] && is_cidr("10.0.0.0/28"),
        "{}: https sources {https:?}, want the overlay's ipBlock",
        set.target
    );

    // The restricted check fails where it should: the base's open policy, a rule opened to
    // every address again, a rule whose sources were dropped.
    let deployment = set.one::<Deployment>()?;
    let Some(open) = rendered("overlays/cert-manager", &[], None)? else {
        return Ok(());
    };
    ensure!(
        check_network_policy_with(&open, &open.one::<Deployment>()?, Sources::Restricted).is_err(),
        "the base's open NetworkPolicy passes the restricted check"
    );
    // A NetworkPolicy broken one way, named.
    type Breakage = (&'static str, fn(&mut Value));
    let broken: [Breakage; 3] = [
        ("https from 0.0.0.0/0", |np| {
            np["spec"]["ingress"][0]["from"] = json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}])
        }),
        ("https without sources", |np| {
            np["spec"]["ingress"][0]
                .as_object_mut()
                .expect("rule")
                .remove("from");
        }),
        ("admin without sources", |np| {
            np["spec"]["ingress"][1]
                .as_object_mut()
                .expect("rule")
                .remove("from");
        }),
    ];
    for (case, mutate) in broken {
        let mut bad = set.clone();
        for d in bad
            .docs
            .iter_mut()
            .chain(bad.raw_docs.iter_mut())
            .filter(|d| d["kind"] == "NetworkPolicy")
        {
            mutate(d);
        }
        ensure!(
            check_network_policy_with(&bad, &deployment, Sources::Restricted).is_err(),
            "restricted NetworkPolicy with {case}: not caught"
        );
    }
    Ok(())
}

/// Whether `s` is a CIDR the API server accepts in an `ipBlock` (address/prefix length).
fn is_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(ip, bits)| {
        match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        }
    })
}

/// The CEL in `matchConditions` is evaluated by the API server for every pod CREATE in
/// the cluster: it must select the debug requests, skip the rest, and never error (an
/// error with failurePolicy Fail would reject an ordinary pod). It must also agree with
/// kspy's own classifier (`kspy_admission::classify`) on every case: a request the
/// classifier would judge but the API server does not send is never judged at all.
#[test]
fn match_conditions_select_debug_requests_and_never_error() -> anyhow::Result<()> {
    let Some(r) = rendered("base", &[], None)? else {
        return Ok(());
    };
    let (m, v) = r.webhook_configurations()?;
    for hook in hooks(&m, &v)? {
        let conditions = hook.match_conditions.clone().unwrap_or_default();
        ensure!(!conditions.is_empty(), "{}: no matchConditions", hook.name);
        let programs: Vec<(String, cel::Program)> = conditions
            .iter()
            .map(|c| {
                cel::Program::compile(&c.expression)
                    .map(|p| (c.name.clone(), p))
                    .map_err(|e| anyhow::anyhow!("{}: matchCondition {}: {e}", hook.name, c.name))
            })
            .collect::<anyhow::Result<_>>()?;
        for (case, request, object, want) in match_condition_cases() {
            let mut ctx = cel::Context::default();
            ctx.add_variable_from_value("request", cel::to_value(&request)?);
            ctx.add_variable_from_value("object", cel::to_value(&object)?);
            let old = if request["operation"] == "UPDATE" {
                let mut old = object.clone();
                // A pod update is judged when it changes an image (the one field of a
                // container it may change): each container had another before it.
                if request.get("subResource").is_none() {
                    for c in old["spec"]["containers"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                    {
                        c["image"] = json!("registry.example.com/before:0");
                    }
                }
                old
            } else {
                Value::Null
            };
            ctx.add_variable_from_value("oldObject", cel::to_value(&old)?);
            let mut sent = true;
            for (name, p) in &programs {
                match p.execute(&ctx) {
                    Ok(cel::Value::Bool(b)) => sent &= b,
                    Ok(other) => bail!(
                        "{}: matchCondition {name} gave {other:?} for {case}",
                        hook.name
                    ),
                    Err(e) => bail!(
                        "{}: matchCondition {name} errors for {case}: {e:?}",
                        hook.name
                    ),
                }
            }
            ensure!(
                sent == want,
                "{}: {case}: sent to kspy = {sent}, want {want}",
                hook.name
            );
            // kspy's classifier (without configured classifiers, as shipped): a request it
            // cannot classify is denied, so it counts as judged.
            let mut full = request.clone();
            full["object"] = object.clone();
            full["oldObject"] = old;
            let review = kspy_admission::ParsedReview::from_value(json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": full,
            }))
            .map_err(|e| anyhow::anyhow!("{case}: not a valid AdmissionReview: {e}"))?;
            let judged = !matches!(
                kspy_admission::classify::classify(
                    &review,
                    &kspy_admission::classify::NoClassifier
                ),
                Ok(None)
            );
            ensure!(
                judged == want,
                "kspy's classifier: {case}: judged = {judged}, want {want} (the \
                 matchConditions of {} say {sent})",
                hook.name
            );
        }
    }
    Ok(())
}

/// Kubernetes 1.27 drops `matchConditions` (alpha there, off by default) without a word:
/// the shipped webhooks would then be called for every pod CREATE in the cluster,
/// kube-system's included, and with `failurePolicy: Fail` no pod could be created while
/// kspy is down. `components/without-match-conditions` splits each webhook into one for
/// ephemeral containers and one for pods labelled `kspy.dev/debug` (an objectSelector,
/// which every version applies), and is otherwise the shipped webhook, caBundle included.
#[test]
fn without_match_conditions_component_keeps_ordinary_pods_away() -> anyhow::Result<()> {
    let certs = kspy_certs::generate("kspy-webhook", NAMESPACE, Duration::from_secs(86_400))?;
    for (target, certs) in [
        ("overlays/cert-manager", None),
        ("overlays/self-signed", Some(&certs)),
    ] {
        let Some(shipped) = rendered(target, &[], certs)? else {
            return Ok(());
        };
        let Some(split) = rendered(target, &[WITHOUT_MATCH_CONDITIONS], certs)? else {
            return Ok(());
        };
        check_common_but_webhooks(&split, Sources::Anywhere)?;
        check_split_webhooks(&shipped, &split)?;

        // Where the API server sends each request: the shipped webhooks with
        // matchConditions honoured (1.28 and later), and the split ones whether or not
        // the API server knows matchConditions at all.
        let (m, v) = shipped.webhook_configurations()?;
        check_routing(
            &shipped.target,
            &hooks(&m, &v)?,
            Honour::MatchConditions,
            |c| c.shipped,
        )?;
        let (m, v) = split.webhook_configurations()?;
        let split_hooks = hooks(&m, &v)?;
        for honour in [Honour::MatchConditions, Honour::Dropped] {
            check_routing(&split.target, &split_hooks, honour, |c| c.split)?;
        }

        // What the component is for: on 1.27 the shipped webhooks see ordinary pods.
        let (m, v) = shipped.webhook_configurations()?;
        ensure!(
            check_routing(&shipped.target, &hooks(&m, &v)?, Honour::Dropped, |c| {
                c.shipped
            })
            .is_err(),
            "{}: without matchConditions the shipped webhooks should see ordinary pods",
            shipped.target
        );
        // And the routing check sees a pods webhook that lost its objectSelector.
        let mut broken = split.clone();
        for doc in &mut broken.docs {
            if let Some(hooks) = doc.get_mut("webhooks").and_then(Value::as_array_mut) {
                for h in hooks {
                    h.as_object_mut().map(|o| o.remove("objectSelector"));
                }
            }
        }
        let (m, v) = broken.webhook_configurations()?;
        ensure!(
            check_routing(&broken.target, &hooks(&m, &v)?, Honour::Dropped, |c| c
                .split)
            .is_err(),
            "the routing check missed pods webhooks without an objectSelector"
        );
    }
    Ok(())
}

/// Private keys never enter the repository: the self-signed overlay's `certs/` is
/// git-ignored and nothing else under `deploy/` may hold one.
#[test]
fn no_private_key_is_committed_under_deploy() -> anyhow::Result<()> {
    let deploy = render::deploy_dir();
    let ignore = std::fs::read_to_string(deploy.join("overlays/self-signed/.gitignore"))
        .context("deploy/overlays/self-signed/.gitignore")?;
    ensure!(
        ignore.lines().any(|l| l.trim() == "/certs/"),
        "overlays/self-signed/.gitignore must ignore /certs/"
    );
    for file in render::files_under(&deploy)? {
        if file.starts_with("overlays/self-signed/certs/") {
            continue;
        }
        let bytes = std::fs::read(deploy.join(&file))?;
        ensure!(
            !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY-----"),
            "deploy/{file} holds a private key"
        );
    }
    Ok(())
}

/// Every `kspy certs generate --out DIR` in deploy/README.md (the install and the
/// rotation) writes the serving key under the self-signed overlay's `certs/`, which git
/// ignores and the image build's context leaves out. The rotation once wrote it to
/// `overlays/self-signed/new/`, where `git add -A` would commit it.
#[test]
fn documented_certificate_commands_write_keys_where_git_ignores_them() -> anyhow::Result<()> {
    let deploy = render::deploy_dir();
    let readme = std::fs::read_to_string(deploy.join("README.md")).context("deploy/README.md")?;
    let dockerignore = std::fs::read_to_string(deploy.join("Containerfile.dockerignore"))
        .context("deploy/Containerfile.dockerignore")?;
    const KEYS: &str = "deploy/overlays/self-signed/certs";
    ensure!(
        dockerignore.lines().any(|l| l.trim() == format!("{KEYS}/")),
        "Containerfile.dockerignore must leave {KEYS}/ out of the build context"
    );
    let outs = documented_cert_outputs(&readme);
    ensure!(
        outs.len() >= 2,
        "deploy/README.md: found {outs:?}, want the install's and the rotation's --out"
    );
    for out in &outs {
        ensure!(
            out == KEYS || out.starts_with(&format!("{KEYS}/")),
            "deploy/README.md: `kspy certs generate --out` writes a private key to {out}, \
             outside the git-ignored {KEYS}/"
        );
    }
    // The check sees the old rotation procedure's directory.
    let old = "```sh\ncd deploy/overlays/self-signed\nkspy certs generate --service kspy-webhook --namespace kspy-system --out new\n```\n";
    ensure!(
        documented_cert_outputs(old) == ["deploy/overlays/self-signed/new"],
        "documented_cert_outputs misread the old rotation: {:?}",
        documented_cert_outputs(old)
    );
    Ok(())
}

/// Policies that select namespaces by label trust whoever may change those labels: the
/// ValidatingAdmissionPolicy deploy/README.md offers ("Namespace labels are part of the
/// policy") must parse as one, and keep every listed label, value or absence, from changing
/// unless the user is a cluster admin.
#[test]
fn documented_namespace_label_policy_keeps_selected_labels_to_admins() -> anyhow::Result<()> {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let readme = std::fs::read_to_string(render::deploy_dir().join("README.md"))
        .context("deploy/README.md")?;
    let docs = documented_yaml_objects(&readme)?;
    let named = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == "kspy-namespace-labels")
            .cloned()
            .with_context(|| format!("deploy/README.md: no {kind} kspy-namespace-labels"))
    };
    let policy: ValidatingAdmissionPolicy =
        serde_json::from_value(named("ValidatingAdmissionPolicy")?)?;
    let binding: ValidatingAdmissionPolicyBinding =
        serde_json::from_value(named("ValidatingAdmissionPolicyBinding")?)?;
    let b = binding.spec.context("binding without spec")?;
    ensure!(
        b.policy_name.as_deref() == Some("kspy-namespace-labels")
            && b.validation_actions == Some(vec!["Deny".to_owned()]),
        "the binding must deny with kspy-namespace-labels: {b:?}"
    );
    let spec = policy.spec.context("policy without spec")?;
    ensure!(
        spec.failure_policy.as_deref() == Some("Fail"),
        "failurePolicy must be Fail"
    );
    let rules = spec
        .match_constraints
        .as_ref()
        .and_then(|m| m.resource_rules.clone())
        .unwrap_or_default();
    ensure!(
        rules.iter().any(|r| {
            r.resources.as_deref() == Some(&["namespaces".to_owned()][..])
                && r.operations.iter().flatten().any(|o| o == "UPDATE")
        }),
        "the policy must match Namespace UPDATEs: {rules:?}"
    );
    let compile = |e: &str| cel::Program::compile(e).map_err(|err| anyhow::anyhow!("{e}: {err}"));
    let conditions: Vec<cel::Program> = spec
        .match_conditions
        .iter()
        .flatten()
        .map(|c| compile(&c.expression))
        .collect::<anyhow::Result<_>>()?;
    let variables: Vec<(String, cel::Program)> = spec
        .variables
        .iter()
        .flatten()
        .map(|v| Ok((v.name.clone(), compile(&v.expression)?)))
        .collect::<anyhow::Result<_>>()?;
    let validations: Vec<cel::Program> = spec
        .validations
        .iter()
        .flatten()
        .map(|v| compile(&v.expression))
        .collect::<anyhow::Result<_>>()?;
    ensure!(!validations.is_empty(), "no validations");

    // (case, groups, labels before, labels after (None: no labels field), admitted)
    type Case<'a> = (&'a str, &'a [&'a str], Value, Option<Value>, bool);
    let dev = ["team-checkout", "system:authenticated"];
    let admin = ["system:masters", "system:authenticated"];
    let cases: Vec<Case> = vec![
        (
            "another label added",
            &dev,
            json!({"env": "production", "team": "checkout"}),
            Some(json!({"env": "production", "team": "checkout", "owner": "x"})),
            true,
        ),
        ("no labels before or after", &dev, json!(null), None, true),
        (
            "env removed with every label",
            &dev,
            json!({"env": "production"}),
            None,
            false,
        ),
        (
            "env changed",
            &dev,
            json!({"env": "production"}),
            Some(json!({"env": "staging"})),
            false,
        ),
        (
            "team changed",
            &dev,
            json!({"team": "billing"}),
            Some(json!({"team": "checkout"})),
            false,
        ),
        (
            "team added",
            &dev,
            json!({"owner": "x"}),
            Some(json!({"owner": "x", "team": "checkout"})),
            false,
        ),
        (
            "team added to a Namespace without labels",
            &dev,
            json!(null),
            Some(json!({"team": "a"})),
            false,
        ),
        (
            "team set empty where it was absent",
            &dev,
            json!({}),
            Some(json!({"team": ""})),
            false,
        ),
        (
            "an admin removes env",
            &admin,
            json!({"env": "production"}),
            Some(json!({})),
            true,
        ),
    ];
    for (case, groups, before, after, want) in cases {
        let namespace = |labels: Option<Value>| {
            let mut metadata = json!({"name": "prod-payments"});
            if let Some(l) = labels.filter(|l| !l.is_null()) {
                metadata["labels"] = l;
            }
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        };
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("object", cel::to_value(namespace(after))?);
        ctx.add_variable_from_value("oldObject", cel::to_value(namespace(Some(before)))?);
        ctx.add_variable_from_value(
            "request",
            cel::to_value(
                json!({"operation": "UPDATE", "userInfo": {"username": "u", "groups": groups}}),
            )?,
        );
        let mut vars = std::collections::HashMap::new();
        for (name, p) in &variables {
            vars.insert(
                name.clone(),
                p.execute(&ctx)
                    .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?,
            );
        }
        ctx.add_variable_from_value("variables", cel::Value::from(vars));
        let truth = |p: &cel::Program| match p.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            other => Err(anyhow::anyhow!("{case}: {other:?}")),
        };
        let mut matched = true;
        for c in &conditions {
            matched &= truth(c)?;
        }
        let mut admitted = true;
        if matched {
            for v in &validations {
                admitted &= truth(v)?;
            }
        }
        ensure!(
            admitted == want,
            "{case}: admitted = {admitted}, want {want}"
        );
    }
    Ok(())
}

/// Every Kubernetes object in the ```yaml blocks of `markdown`, as JSON.
fn documented_yaml_objects(markdown: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => block = Some(String::new()),
            (Some(text), l) if l.starts_with("```") => {
                let docs: Vec<Value> = serde_saphyr::from_multiple(text)
                    .with_context(|| format!("a yaml block of deploy/README.md:\n{text}"))?;
                out.extend(docs.into_iter().filter(|d| d.get("kind").is_some()));
                block = None;
            }
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    Ok(out)
}

/// The `--out` directory of every `kspy certs generate` in the shell blocks of `markdown`,
/// relative to the repository root (each block starts there and follows its `cd`s).
fn documented_cert_outputs(markdown: &str) -> Vec<String> {
    let mut outs = Vec::new();
    let mut in_block = false;
    let mut cwd: Vec<String> = Vec::new();
    let mut command = String::new();
    for line in markdown.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            in_block = !in_block;
            cwd.clear();
            command.clear();
            continue;
        }
        if !in_block {
            continue;
        }
        let code = line.split(" #").next().unwrap_or_default().trim_end();
        command.push_str(code.trim_end_matches('\\'));
        command.push(' ');
        if code.ends_with('\\') {
            continue;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        if let ["cd", dir, ..] = words.as_slice() {
            cwd.extend(dir.split('/').filter(|p| !p.is_empty()).map(str::to_owned));
        }
        if command.contains("kspy certs generate")
            && let Some(i) = words.iter().position(|w| *w == "--out")
            && let Some(dir) = words.get(i + 1)
        {
            let mut path = cwd.clone();
            path.extend(dir.split('/').filter(|p| !p.is_empty()).map(str::to_owned));
            outs.push(path.join("/"));
        }
        command.clear();
    }
    outs
}

/// The ConfigMap carries the DebugPolicyTest suites but not the fixtures they point at:
/// the webhook must still load it, with the same policies as `policies/` itself.
#[test]
fn shipped_configmap_loads_without_the_test_fixtures() -> anyhow::Result<()> {
    let Some(r) = rendered("base", &[], None)? else {
        return Ok(());
    };
    let cm = r.named::<ConfigMap>(POLICIES_CONFIGMAP)?;
    let data = cm.data.unwrap_or_default();
    // As the ConfigMap volume lays it out: one file per key.
    let mounted = tempfile::tempdir()?;
    for (key, text) in &data {
        std::fs::write(mounted.path().join(key), text)?;
    }
    // The case this guards: test suites whose review fixtures are not shipped.
    let reviews: Vec<String> = data
        .values()
        .filter(|text| text.contains("kind: DebugPolicyTest"))
        .flat_map(|text| text.lines())
        .filter_map(|l| l.trim().strip_prefix("review: "))
        .map(|f| f.trim().to_owned())
        .collect();
    ensure!(
        !reviews.is_empty(),
        "no shipped test suite refers to a review fixture: this test no longer covers anything"
    );
    let shipped_fixtures: Vec<&String> = reviews
        .iter()
        .filter(|f| data.contains_key(&render::policy_key(f)))
        .collect();
    ensure!(
        shipped_fixtures.is_empty(),
        "review fixtures are shipped in the ConfigMap: {shipped_fixtures:?}"
    );

    // The webhook's default settings (no TLS files are read here).
    let settings = || {
        let dir = mounted.path();
        kspy_webhook::ServerConfig::new(
            dir,
            kspy_webhook::TlsFiles {
                cert: dir.join("tls.crt"),
                key: dir.join("tls.key"),
            },
        )
        .settings
    };
    let shipped = kspy_webhook::load_engine(mounted.path(), settings())
        .context("kspy-webhook cannot load the shipped kspy-policies ConfigMap")?;
    let library = kspy_webhook::load_engine(&render::policies_dir(), settings())
        .context("kspy-webhook cannot load policies/")?;
    let mut got: Vec<String> = shipped
        .policies()
        .names()
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    let mut want: Vec<String> = library
        .policies()
        .names()
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    got.sort();
    want.sort();
    ensure!(!want.is_empty(), "policies/ defines no policy");
    ensure!(
        got == want,
        "the shipped ConfigMap loads policies {got:?}, policies/ defines {want:?}"
    );
    Ok(())
}

/// The checks above catch what they are meant to: each broken variant of the rendered
/// base fails its check (and the rendered base passes it).
/// Replaces the webhook container's `FLAG=…` argument of a rendered Deployment with
/// `FLAG=value`, or removes it (`None`).
fn set_webhook_flag(deployment: &mut Value, flag: &str, value: Option<&str>) {
    let args = deployment
        .pointer_mut("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array_mut)
        .expect("args");
    args.retain(|a| !a.as_str().unwrap_or_default().starts_with(flag));
    if let Some(value) = value {
        args.push(json!(format!("{flag}={value}")));
    }
}

#[test]
fn checks_reject_broken_renderings() -> anyhow::Result<()> {
    let Some(good) = rendered("base", &[], None)? else {
        return Ok(());
    };
    type Check<'a> = &'a dyn Fn(&Rendered) -> anyhow::Result<()>;
    /// (what is broken, the kind of object changed, the change, the check that must fail)
    type Case<'a> = (&'static str, &'static str, fn(&mut Value), Check<'a>);
    let with_deployment = |f: fn(&Rendered, &Deployment) -> anyhow::Result<()>| {
        move |r: &Rendered| f(r, &r.one::<Deployment>()?)
    };
    let annotations = check_apply_annotations;
    let configmap = check_policies_configmap;
    let deployment = with_deployment(check_deployment);
    let priority = with_deployment(check_priority_class);
    let network = with_deployment(check_network_policy);
    let cases: Vec<Case> = vec![
        (
            "a fixture-sized ConfigMap (270 000 bytes of data)",
            "ConfigMap",
            |d| d["data"]["fixtures__big.json"] = json!("x".repeat(270_000)),
            &annotations,
        ),
        (
            "a ConfigMap whose JSON only exceeds the budget with Go's HTML escaping",
            "ConfigMap",
            |d| d["data"]["fixtures__escaped.json"] = json!("<".repeat(60_000)),
            &annotations,
        ),
        (
            "a ConfigMap with a fixture key",
            "ConfigMap",
            |d| d["data"]["fixtures__a.json"] = json!("{}"),
            &configmap,
        ),
        (
            "no --namespace-lookup",
            "Deployment",
            |d| set_webhook_flag(d, "--namespace-lookup", None),
            &deployment,
        ),
        (
            "a body budget that leaves the server no room under the memory limit",
            "Deployment",
            |d| set_webhook_flag(d, "--max-buffered-bytes", Some("125829120")),
            &deployment,
        ),
        (
            "a CPU limit of two cores (two judging threads) without more memory",
            "Deployment",
            |d| {
                d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
                    json!("2")
            },
            &deployment,
        ),
        (
            "--judge-threads=2 without more memory",
            "Deployment",
            |d| set_webhook_flag(d, "--judge-threads", Some("2")),
            &deployment,
        ),
        (
            "a --shutdown-grace that overruns terminationGracePeriodSeconds",
            "Deployment",
            |d| set_webhook_flag(d, "--shutdown-grace", Some("20s")),
            &deployment,
        ),
        (
            "no --shutdown-grace (the default 15s overruns with the 5s delay)",
            "Deployment",
            |d| set_webhook_flag(d, "--shutdown-grace", None),
            &deployment,
        ),
        (
            "a --shutdown-grace shorter than the review timeout",
            "Deployment",
            |d| set_webhook_flag(d, "--shutdown-grace", Some("5s")),
            &deployment,
        ),
        (
            "a preStop sleep on top of --shutdown-delay",
            "Deployment",
            |d| {
                d["spec"]["template"]["spec"]["containers"][0]["lifecycle"] =
                    json!({"preStop": {"sleep": {"seconds": 5}}})
            },
            &deployment,
        ),
        (
            "a termination grace period shorter than the shutdown",
            "Deployment",
            |d| d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(20),
            &deployment,
        ),
        (
            "--addr on IPv4 only",
            "Deployment",
            |d| set_webhook_flag(d, "--addr", Some("0.0.0.0:8443")),
            &deployment,
        ),
        (
            "--admin-addr on IPv4 only",
            "Deployment",
            |d| set_webhook_flag(d, "--admin-addr", Some("0.0.0.0:8080")),
            &deployment,
        ),
        (
            "--namespace-lookup=auto",
            "Deployment",
            |d| set_webhook_flag(d, "--namespace-lookup", Some("auto")),
            &deployment,
        ),
        (
            "the default terminationMessagePolicy",
            "Deployment",
            |d| {
                d["spec"]["template"]["spec"]["containers"][0]
                    .as_object_mut()
                    .expect("container")
                    .remove("terminationMessagePolicy");
            },
            &deployment,
        ),
        (
            "no Linux nodeSelector",
            "Deployment",
            |d| {
                d["spec"]["template"]["spec"]
                    .as_object_mut()
                    .expect("pod spec")
                    .remove("nodeSelector");
            },
            &deployment,
        ),
        (
            "no priorityClassName",
            "Deployment",
            |d| {
                d["spec"]["template"]["spec"]
                    .as_object_mut()
                    .expect("pod spec")
                    .remove("priorityClassName");
            },
            &priority,
        ),
        (
            "priorityClassName system-cluster-critical",
            "Deployment",
            |d| {
                d["spec"]["template"]["spec"]["priorityClassName"] =
                    json!("system-cluster-critical")
            },
            &priority,
        ),
        (
            "a PriorityClass at the user-defined ceiling",
            "PriorityClass",
            |d| d["value"] = json!(USER_PRIORITY_CEILING),
            &priority,
        ),
        (
            "a PriorityClass that is the global default",
            "PriorityClass",
            |d| d["globalDefault"] = json!(true),
            &priority,
        ),
        (
            "a PriorityClass that preempts lower priorities",
            "PriorityClass",
            |d| d["preemptionPolicy"] = json!("PreemptLowerPriority"),
            &priority,
        ),
        (
            "a PriorityClass with the default preemptionPolicy (PreemptLowerPriority)",
            "PriorityClass",
            |d| {
                d.as_object_mut()
                    .expect("PriorityClass")
                    .remove("preemptionPolicy");
            },
            &priority,
        ),
        (
            "a NetworkPolicy rule without ports (every port)",
            "NetworkPolicy",
            |d| {
                d["spec"]["ingress"]
                    .as_array_mut()
                    .expect("ingress")
                    .push(json!({}))
            },
            &network,
        ),
        (
            "a NetworkPolicy admitting 9090",
            "NetworkPolicy",
            |d| {
                d["spec"]["ingress"]
                    .as_array_mut()
                    .expect("ingress")
                    .push(json!({"ports": [{"port": 9090, "protocol": "TCP"}]}))
            },
            &network,
        ),
        (
            "a NetworkPolicy admitting a port range over the admin port",
            "NetworkPolicy",
            |d| d["spec"]["ingress"][1]["ports"][0]["endPort"] = json!(8090),
            &network,
        ),
        (
            "a NetworkPolicy with https only from one namespace",
            "NetworkPolicy",
            |d| {
                d["spec"]["ingress"][0]["from"] =
                    json!([{"namespaceSelector": {"matchLabels": {"a": "b"}}}])
            },
            &network,
        ),
        (
            "a NetworkPolicy without the admin port",
            "NetworkPolicy",
            |d| {
                d["spec"]["ingress"]
                    .as_array_mut()
                    .expect("ingress")
                    .remove(1);
            },
            &network,
        ),
        (
            "a NetworkPolicy that isolates egress too",
            "NetworkPolicy",
            |d| d["spec"]["policyTypes"] = json!(["Ingress", "Egress"]),
            &network,
        ),
        (
            "a NetworkPolicy that misses the pods",
            "NetworkPolicy",
            |d| d["spec"]["podSelector"] = json!({"matchLabels": {"app": "other"}}),
            &network,
        ),
    ];
    for (case, kind, mutate, check) in cases {
        check(&good).with_context(|| format!("the rendered base fails the check of: {case}"))?;
        let mut bad = good.clone();
        let mut found = false;
        for docs in [&mut bad.docs, &mut bad.raw_docs] {
            for d in docs.iter_mut().filter(|d| d["kind"] == kind) {
                mutate(d);
                found = true;
            }
        }
        ensure!(found, "{case}: no {kind} rendered");
        ensure!(check(&bad).is_err(), "{case}: not caught");
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Checks shared by every rendering

fn rendered(
    target: &str,
    components: &[&str],
    certs: Option<&kspy_certs::GeneratedCerts>,
) -> anyhow::Result<Option<Rendered>> {
    if !render::kubectl_available() {
        // A failure under KSPY_E2E_REQUIRE unless the machine has no kubectl at all.
        kspy_e2e::tools::skip_without_kubectl(&format!(
            "deploy/{target}: `{} version --client` does not run (install kubectl or set KUBECTL)",
            render::kubectl()
        ));
        return Ok(None);
    }
    render(target, components, certs).map(Some)
}

fn check_common(r: &Rendered) -> anyhow::Result<()> {
    check_common_with(r, Sources::Anywhere)
}

/// The common checks, with the NetworkPolicy expected to admit the https and admin ports
/// from `sources`.
fn check_common_with(r: &Rendered, sources: Sources) -> anyhow::Result<()> {
    check_common_but_webhooks(r, sources)?;
    check_webhooks(r, &r.one::<Deployment>()?)
}

/// The common checks but the webhook configurations' (which
/// `components/without-match-conditions` reshapes).
fn check_common_but_webhooks(r: &Rendered, sources: Sources) -> anyhow::Result<()> {
    check_round_trip(r)?;
    check_namespace(r)?;
    let deployment = r.one::<Deployment>()?;
    check_deployment(r, &deployment)?;
    check_security_context(r, &deployment)?;
    check_service(r, &deployment)?;
    check_pdb(r, &deployment)?;
    check_rbac(r, &deployment)?;
    check_policies_configmap(r)?;
    check_priority_class(r, &deployment)?;
    check_network_policy_with(r, &deployment, sources)?;
    check_apply_annotations(r)?;
    Ok(())
}

/// Every object is of a kind we ship and survives a round trip through its k8s-openapi
/// type unchanged, so no field is misspelled or misplaced (k8s-openapi would drop it).
fn check_round_trip(r: &Rendered) -> anyhow::Result<()> {
    fn same<T: serde::de::DeserializeOwned + serde::Serialize>(
        doc: &Value,
    ) -> anyhow::Result<bool> {
        let typed: T = serde_json::from_value(doc.clone())?;
        Ok(&serde_json::to_value(&typed)? == doc)
    }
    for doc in &r.docs {
        let what = format!("{}: {} {}", r.target, doc["kind"], doc["metadata"]["name"]);
        let kind = (
            doc["apiVersion"].as_str().unwrap_or_default(),
            doc["kind"].as_str().unwrap_or_default(),
        );
        let ok = match kind {
            ("v1", "Namespace") => same::<Namespace>(doc),
            ("v1", "ServiceAccount") => same::<ServiceAccount>(doc),
            ("v1", "ConfigMap") => same::<ConfigMap>(doc),
            ("v1", "Secret") => same::<Secret>(doc),
            ("v1", "Service") => same::<Service>(doc),
            ("apps/v1", "Deployment") => same::<Deployment>(doc),
            ("policy/v1", "PodDisruptionBudget") => same::<PodDisruptionBudget>(doc),
            ("scheduling.k8s.io/v1", "PriorityClass") => same::<PriorityClass>(doc),
            ("networking.k8s.io/v1", "NetworkPolicy") => same::<NetworkPolicy>(doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => same::<ClusterRole>(doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                same::<ClusterRoleBinding>(doc)
            }
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
                same::<MutatingWebhookConfiguration>(doc)
            }
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
                same::<ValidatingWebhookConfiguration>(doc)
            }
            ("cert-manager.io/v1", "Issuer" | "Certificate") => Ok(true),
            _ => bail!("{what}: unexpected kind {}/{}", kind.0, kind.1),
        }
        .with_context(|| format!("{what}: does not parse as its k8s-openapi type"))?;
        ensure!(
            ok,
            "{what}: changes in a round trip through k8s-openapi (unknown or misplaced field?)"
        );
        let cluster_scoped = matches!(
            kind.1,
            "Namespace"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "PriorityClass"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
        );
        let ns = doc["metadata"]["namespace"].as_str();
        if cluster_scoped {
            ensure!(
                ns.is_none(),
                "{what}: cluster-scoped object with a namespace"
            );
        } else {
            ensure!(
                ns == Some(NAMESPACE),
                "{what}: namespace {ns:?}, want {NAMESPACE}"
            );
        }
    }
    Ok(())
}

fn check_namespace(r: &Rendered) -> anyhow::Result<()> {
    let ns = r.one::<Namespace>()?;
    ensure!(
        ns.metadata.name.as_deref() == Some(NAMESPACE),
        "{}: namespace {:?}",
        r.target,
        ns.metadata.name
    );
    let labels = ns.metadata.labels.unwrap_or_default();
    ensure!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str)
            == Some("restricted"),
        "{}: {NAMESPACE} does not enforce Pod Security restricted",
        r.target
    );
    Ok(())
}

/// The number of `container`'s port named `name`; an error naming the rendering `t` when
/// there is none.
fn container_port(container: &Container, name: &str, t: &str) -> anyhow::Result<i32> {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
        .with_context(|| format!("{t}: no container port named {name}"))
}

fn check_deployment(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    let spec = d.spec.as_ref().context("Deployment without spec")?;
    ensure!(
        spec.replicas.unwrap_or(1) >= 2,
        "{t}: fewer than 2 replicas"
    );
    let pod_labels = pod_labels(d)?;
    ensure!(
        selects(Some(&spec.selector), &pod_labels),
        "{t}: Deployment selector misses its pods"
    );
    let strategy = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    ensure!(
        strategy.and_then(|s| s.max_unavailable.as_ref()) == Some(&IntOrString::Int(0)),
        "{t}: rolling updates must keep every replica (maxUnavailable: 0)"
    );
    let pod = pod_spec(d)?;

    // Spread: topology spread constraints and anti-affinity over the Deployment's own pods.
    let tsc = pod.topology_spread_constraints.clone().unwrap_or_default();
    ensure!(
        tsc.iter()
            .any(|c| c.topology_key == "kubernetes.io/hostname"),
        "{t}: no topology spread across nodes"
    );
    for c in &tsc {
        ensure!(
            selects(c.label_selector.as_ref(), &pod_labels),
            "{t}: a topology spread constraint misses the pods"
        );
    }
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .context("no podAntiAffinity")?;
    let terms: Vec<_> = anti
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .map(|w| &w.pod_affinity_term)
        .chain(
            anti.required_during_scheduling_ignored_during_execution
                .iter()
                .flatten(),
        )
        .collect();
    ensure!(!terms.is_empty(), "{t}: empty podAntiAffinity");
    for term in terms {
        ensure!(
            selects(term.label_selector.as_ref(), &pod_labels),
            "{t}: podAntiAffinity misses the pods"
        );
    }

    // The image is a Linux binary: a pod the scheduler places on a Windows node (AKS, for
    // one, does not taint them) never starts, and with both replicas there every debug
    // request is refused.
    ensure!(
        pod.node_selector
            .as_ref()
            .and_then(|s| s.get("kubernetes.io/os"))
            .map(String::as_str)
            == Some("linux"),
        "{t}: no nodeSelector kubernetes.io/os: linux (the image runs on Linux nodes only)"
    );

    // Args, ports and probes agree.
    let c = webhook_container(pod)?;
    // A start that fails (a broken policy in the ConfigMap, a missing certificate) says why on
    // stderr and exits 1; kspy writes no termination-log file, so only the log fallback puts
    // that reason into the pod's status (`kubectl describe pod`, `kubectl get pod -o yaml`).
    ensure!(
        c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        "{t}: terminationMessagePolicy is not FallbackToLogsOnError: a failed start would \
         show only 'Error, exit code 1' in the pod's status"
    );
    let args = parse_args(c)?;
    let port_of = |name: &str| container_port(c, name, t);
    let (https, admin) = (port_of("https")?, port_of("admin")?);
    ensure!(https != admin, "{t}: https and admin ports collide");
    ensure!(
        addr_port(&args, "addr", 8443)? == https,
        "{t}: --addr does not listen on the https port {https}"
    );
    ensure!(
        addr_port(&args, "admin-addr", 8080)? == admin,
        "{t}: --admin-addr does not listen on the admin port {admin}"
    );
    // Every address of both families: in an IPv6 or IPv6-first dual-stack cluster the API
    // server and the kubelet's probes connect to the pod's IPv6 address, which a listener on
    // 0.0.0.0 refuses (the pods never turn ready, every debug request is refused).
    for flag in ["addr", "admin-addr"] {
        let host = addr_host(&args, flag)?;
        ensure!(
            host == "[::]",
            "{t}: --{flag} listens on {host}, not on [::]: IPv6 clusters could not reach it"
        );
    }
    for (probe, path) in [
        (c.readiness_probe.as_ref(), "/readyz"),
        (c.liveness_probe.as_ref(), "/healthz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .with_context(|| format!("{t}: no httpGet probe for {path}"))?;
        ensure!(
            get.path.as_deref() == Some(path),
            "{t}: probe path {:?}, want {path}",
            get.path
        );
        ensure!(
            resolve_port(c, &get.port)? == admin,
            "{t}: probe {path} is not on the admin port"
        );
        ensure!(
            get.scheme.as_deref().unwrap_or("HTTP") == "HTTP",
            "{t}: the admin port is plain HTTP"
        );
    }
    // Namespace labels come from the API server, and the pod fails to start rather than
    // run without them (`auto` would start with no lookup when no client config is found,
    // and policies selecting namespaces by label would silently stop applying).
    let lookup = args.get("namespace-lookup").cloned().flatten();
    ensure!(
        lookup.as_deref() == Some("api"),
        "{t}: --namespace-lookup is {lookup:?}, want api (the default auto may run without \
         any Namespace lookup)"
    );
    ensure!(
        pod.automount_service_account_token != Some(false),
        "{t}: --namespace-lookup=api needs the ServiceAccount token mounted"
    );
    if let Some(format) = args.get("log-format") {
        ensure!(
            matches!(format.as_deref(), Some("json" | "text")),
            "{t}: --log-format {format:?}"
        );
    }

    // Shutdown: everything from SIGTERM to exit fits the termination grace period, or
    // SIGKILL cuts the decision Events' flush short. A preStop hook runs before SIGTERM
    // within the same period, so a preStop sleep counts too.
    let delay = match args.get("shutdown-delay").cloned().flatten() {
        Some(s) => duration(&s)?,
        None => Duration::ZERO,
    };
    let grace = match args.get("shutdown-grace").cloned().flatten() {
        Some(s) => duration(&s)?,
        None => kspy_webhook::config::DEFAULT_SHUTDOWN_GRACE,
    };
    let pre_stop = match c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
        None => Duration::ZERO,
        Some(h) => {
            let seconds = h
                .sleep
                .as_ref()
                .map(|s| s.seconds)
                .with_context(|| format!("{t}: a preStop hook other than sleep (unbounded)"))?;
            Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
        }
    };
    let worst = pre_stop + delay + grace + SHUTDOWN_AFTER_GRACE;
    let period = pod
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_TERMINATION_GRACE_SECONDS);
    ensure!(
        worst <= Duration::from_secs(u64::try_from(period).unwrap_or(0)),
        "{t}: shutdown may take {worst:?} (preStop {pre_stop:?} + --shutdown-delay {delay:?} + \
         --shutdown-grace {grace:?} + {SHUTDOWN_AFTER_GRACE:?} of Event, admin and trace \
         flushes), over terminationGracePeriodSeconds {period}"
    );
    let review_timeout = match args.get("review-timeout").cloned().flatten() {
        Some(s) => duration(&s)?,
        None => DEFAULT_REVIEW_TIMEOUT,
    };
    ensure!(
        grace >= review_timeout,
        "{t}: --shutdown-grace {grace:?} is shorter than --review-timeout {review_timeout:?}: \
         reviews in flight at shutdown may be cut off"
    );

    // Policies and certificates come from the mounted volumes.
    let policies = args
        .get("policies")
        .cloned()
        .flatten()
        .context("no --policies")?;
    ensure!(
        mount_path(pod, c, |v| v
            .config_map
            .as_ref()
            .is_some_and(|cm| cm.name == POLICIES_CONFIGMAP))?
            == policies.trim_end_matches('/'),
        "{t}: --policies is not the ConfigMap mount"
    );
    let tls_dir = mount_path(pod, c, |v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(TLS_SECRET))
    })?;
    for (flag, file) in [("tls-cert", "tls.crt"), ("tls-key", "tls.key")] {
        let got = args
            .get(flag)
            .cloned()
            .flatten()
            .with_context(|| format!("no --{flag}"))?;
        ensure!(
            got == format!("{tls_dir}/{file}"),
            "{t}: --{flag}={got}, want {tls_dir}/{file}"
        );
    }
    for m in c.volume_mounts.iter().flatten() {
        ensure!(
            m.sub_path.is_none() && m.sub_path_expr.is_none(),
            "{t}: subPath mounts never update; the webhook reloads from the volume"
        );
    }

    // Requests and limits set, request <= limit, and room above the 20 MiB idle target.
    let res = c.resources.as_ref().context("no resources")?;
    let (req, lim) = (
        res.requests.clone().unwrap_or_default(),
        res.limits.clone().unwrap_or_default(),
    );
    for key in ["cpu", "memory"] {
        let (q, l) = (
            req.get(key)
                .with_context(|| format!("{t}: no {key} request"))?,
            lim.get(key)
                .with_context(|| format!("{t}: no {key} limit"))?,
        );
        ensure!(
            quantity(&q.0)? <= quantity(&l.0)?,
            "{t}: {key} request above its limit"
        );
    }
    ensure!(
        quantity(&req["memory"].0)? >= 20.0 * 1024.0 * 1024.0,
        "{t}: memory request below the 20 MiB idle RSS"
    );
    // Request bodies held at once, plus the ~20 MiB the server itself needs under load, must
    // fit the memory limit with room to spare, or a burst of large bodies gets the pod
    // OOM-killed. Unset, the budget is the webhook's default of 64 MiB.
    let buffered = match args.get("max-buffered-bytes").cloned().flatten() {
        Some(v) => v
            .parse::<f64>()
            .with_context(|| format!("{t}: --max-buffered-bytes={v} is not a byte count"))?,
        None => 64.0 * 1024.0 * 1024.0,
    };
    let limit = quantity(&lim["memory"].0)?;
    ensure!(
        buffered + 40.0 * 1024.0 * 1024.0 <= limit,
        "{t}: --max-buffered-bytes ({buffered} bytes) leaves under 40 MiB of the {limit}-byte \
         memory limit for the server itself"
    );
    // And with every connection open too (about 35 KiB each once used, counted as 40), on
    // top of the ~22 MiB measured after load (counted as 24), with a tenth of the limit to
    // spare: a client holding both the connections and the budget must not get the pod
    // OOM-killed. Unset, 1 024 connections.
    let connections = match args.get("max-connections").cloned().flatten() {
        Some(v) => v
            .parse::<f64>()
            .with_context(|| format!("{t}: --max-connections={v} is not a number"))?,
        None => 1024.0,
    };
    // And what the reviews being judged decode into: each judging thread may hold one judgement
    // at the engine's decode budgets' edge, about 15 MiB (webhook/README.md, "Memory"). The
    // threads are --judge-threads, by default the CPUs the process may use: the CPU limit's
    // whole cores (Rust's available_parallelism reads the cgroup quota), at least one. So
    // raising the CPU limit alone raises the memory a pod may need.
    let judges = match args.get("judge-threads").cloned().flatten() {
        Some(v) => v
            .parse::<f64>()
            .with_context(|| format!("{t}: --judge-threads={v} is not a number"))?,
        None => quantity(&lim["cpu"].0)?.floor().max(1.0),
    };
    let judging = judges * 15.0 * 1024.0 * 1024.0;
    let worst = buffered + connections * 40.0 * 1024.0 + 24.0 * 1024.0 * 1024.0 + judging;
    ensure!(
        worst <= 0.9 * limit,
        "{t}: --max-buffered-bytes ({buffered} bytes), --max-connections ({connections}, about \
         40 KiB each) and {judges} judging thread(s) (about 15 MiB each at the decode budgets' \
         edge; by default one per whole core of the CPU limit) with the server's own ~24 MiB \
         come to {worst} bytes, over nine tenths of the {limit}-byte memory limit: raise the \
         memory limit with them"
    );
    Ok(())
}

/// Pod Security `restricted`, plus a read-only root filesystem.
fn check_security_context(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    let pod = pod_spec(d)?;
    ensure!(
        !pod.host_network.unwrap_or(false)
            && !pod.host_pid.unwrap_or(false)
            && !pod.host_ipc.unwrap_or(false),
        "{t}: host namespaces"
    );
    for v in pod.volumes.iter().flatten() {
        ensure!(v.host_path.is_none(), "{t}: hostPath volume {}", v.name);
    }
    let psc = pod.security_context.clone().unwrap_or_default();
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        let sc = c.security_context.clone().unwrap_or_default();
        let n = &c.name;
        ensure!(
            sc.run_as_non_root.or(psc.run_as_non_root) == Some(true),
            "{t}: {n}: runAsNonRoot not set"
        );
        ensure!(
            sc.run_as_user.or(psc.run_as_user) != Some(0),
            "{t}: {n}: runs as uid 0"
        );
        ensure!(
            sc.allow_privilege_escalation == Some(false),
            "{t}: {n}: allowPrivilegeEscalation not false"
        );
        ensure!(sc.privileged != Some(true), "{t}: {n}: privileged");
        ensure!(
            sc.read_only_root_filesystem == Some(true),
            "{t}: {n}: root filesystem writable"
        );
        let caps = sc.capabilities.clone().unwrap_or_default();
        ensure!(
            caps.drop.unwrap_or_default().iter().any(|c| c == "ALL"),
            "{t}: {n}: capabilities not dropped (ALL)"
        );
        ensure!(
            caps.add.unwrap_or_default().is_empty(),
            "{t}: {n}: adds capabilities"
        );
        let seccomp = sc
            .seccomp_profile
            .or(psc.seccomp_profile.clone())
            .map(|s| s.type_);
        ensure!(
            matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")),
            "{t}: {n}: seccomp profile {seccomp:?}"
        );
        for p in c.ports.iter().flatten() {
            ensure!(p.host_port.is_none(), "{t}: {n}: hostPort");
        }
    }
    Ok(())
}

fn check_service(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    let svc = r.one::<Service>()?;
    let spec = svc.spec.as_ref().context("Service without spec")?;
    let selector = spec.selector.clone().context("Service without selector")?;
    let labels = pod_labels(d)?;
    ensure!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{t}: Service selector misses the pods"
    );
    let c = webhook_container(pod_spec(d)?)?;
    let https = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("https"))
        .context("no https port")?;
    let p443 = spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == 443)
        .with_context(|| format!("{t}: Service has no port 443"))?;
    let target = p443.target_port.clone().unwrap_or(IntOrString::Int(443));
    ensure!(
        resolve_port(c, &target)? == https.container_port,
        "{t}: Service 443 targets {target:?}, not the container's https port {}",
        https.container_port
    );
    Ok(())
}

fn check_pdb(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    let pdb = r.one::<PodDisruptionBudget>()?;
    let spec = pdb.spec.context("PDB without spec")?;
    ensure!(
        spec.min_available == Some(IntOrString::Int(1)),
        "{t}: PDB minAvailable {:?}, want 1",
        spec.min_available
    );
    ensure!(
        spec.max_unavailable.is_none(),
        "{t}: PDB sets both minAvailable and maxUnavailable"
    );
    ensure!(
        selects(spec.selector.as_ref(), &pod_labels(d)?),
        "{t}: PDB selector misses the Deployment's pods"
    );
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    ensure!(
        replicas > 1,
        "{t}: a PDB of minAvailable 1 over one replica blocks every drain"
    );
    Ok(())
}

/// Exactly what the webhook does: get namespaces, create events.k8s.io Events and patch
/// their series.
fn check_rbac(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    ensure!(
        r.all::<Role>()?.is_empty() && r.all::<RoleBinding>()?.is_empty(),
        "{t}: unexpected Role/RoleBinding"
    );
    let role = r.one::<ClusterRole>()?;
    ensure!(
        role.aggregation_rule.is_none(),
        "{t}: aggregated ClusterRole"
    );
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        ensure!(
            rule.non_resource_urls.is_none(),
            "{t}: nonResourceURLs granted"
        );
        for g in rule.api_groups.iter().flatten() {
            for res in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    granted.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    let want: BTreeSet<(String, String, String)> = [
        ("", "namespaces", "get"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    ]
    .into_iter()
    .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
    .collect();
    ensure!(
        granted == want,
        "{t}: ClusterRole grants {granted:?}, want exactly {want:?}"
    );

    let binding = r.one::<ClusterRoleBinding>()?;
    ensure!(
        binding.role_ref.kind == "ClusterRole"
            && Some(&binding.role_ref.name) == role.metadata.name.as_ref(),
        "{t}: binding does not reference the ClusterRole"
    );
    let sa = r.one::<ServiceAccount>()?;
    let subjects = binding.subjects.unwrap_or_default();
    ensure!(
        subjects.len() == 1,
        "{t}: the binding has {} subjects",
        subjects.len()
    );
    let s = &subjects[0];
    ensure!(
        s.kind == "ServiceAccount"
            && Some(&s.name) == sa.metadata.name.as_ref()
            && s.namespace.as_deref() == Some(NAMESPACE),
        "{t}: the binding's subject is not the webhook's ServiceAccount"
    );
    ensure!(
        pod_spec(d)?.service_account_name == sa.metadata.name,
        "{t}: the pods do not run as the bound ServiceAccount"
    );
    Ok(())
}

/// The ConfigMap holds every policy file of `policies/` (`*.yaml`, `*.yml`), byte for byte
/// (the copy made by `deploy/sync-policies.sh` is current), and nothing else: the JSON
/// fixtures of the test suites stay out, so the ConfigMap fits a client-side apply.
fn check_policies_configmap(r: &Rendered) -> anyhow::Result<()> {
    let t = &r.target;
    let cm = r.named::<ConfigMap>(POLICIES_CONFIGMAP)?;
    let mut got: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in cm.data.unwrap_or_default() {
        got.insert(k, v.into_bytes());
    }
    for (k, v) in cm.binary_data.unwrap_or_default() {
        got.insert(k, v.0);
    }
    let dir = render::policies_dir();
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for file in render::policy_files_under(&dir)? {
        let key = render::policy_key(&file);
        let bytes = std::fs::read(dir.join(&file))?;
        ensure!(
            want.insert(key.clone(), bytes).is_none(),
            "two policy files map to ConfigMap key {key}"
        );
    }
    ensure!(!want.is_empty(), "no policy files under {}", dir.display());
    let stale = "deploy/base/policies is stale: run deploy/sync-policies.sh";
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "{t}: {stale} (missing keys {missing:?}, extra keys {extra:?}; only the *.yaml/*.yml \
         policy files are shipped, not the test fixtures)"
    );
    for (k, v) in &want {
        ensure!(
            got[k] == *v,
            "{t}: {stale} (key {k} differs from policies/)"
        );
    }
    let size: usize = got.iter().map(|(k, v)| k.len() + v.len()).sum();
    ensure!(
        size < CONFIGMAP_LIMIT,
        "{t}: policies total {size} bytes, over the ConfigMap limit"
    );
    // Explicitly, as it is the object that grows: `kubectl apply -k` must be able to
    // store it in its last-applied-configuration annotation.
    let raw = r
        .raw_docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == POLICIES_CONFIGMAP)
        .with_context(|| format!("{t}: no ConfigMap {POLICIES_CONFIGMAP}"))?;
    let (json, total) = apply_annotation_sizes(raw)?;
    ensure!(
        json < ANNOTATIONS_LIMIT && total <= ANNOTATIONS_LIMIT,
        "{t}: ConfigMap {POLICIES_CONFIGMAP} is {json} bytes of JSON ({total} bytes of \
         annotations once applied): `kubectl apply -k` fails (annotations are capped at \
         {ANNOTATIONS_LIMIT} bytes)"
    );
    Ok(())
}

/// A client-side `kubectl apply` stores each object, as JSON, in its
/// `kubectl.kubernetes.io/last-applied-configuration` annotation, and the API server
/// refuses an object whose annotations total more than 256 KiB ("metadata.annotations:
/// Too long"). Every rendered object must fit.
fn check_apply_annotations(r: &Rendered) -> anyhow::Result<()> {
    ensure!(
        r.raw_docs.len() == r.docs.len() && !r.raw_docs.is_empty(),
        "{}: nothing rendered",
        r.target
    );
    for doc in &r.raw_docs {
        let (json, total) = apply_annotation_sizes(doc)?;
        ensure!(
            json < ANNOTATIONS_LIMIT && total <= ANNOTATIONS_LIMIT,
            "{}: {} {} is {json} bytes of compact JSON ({total} bytes of annotations with \
             {LAST_APPLIED}), over the {ANNOTATIONS_LIMIT}-byte annotation limit: a \
             client-side `kubectl apply` of it fails",
            r.target,
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
    Ok(())
}

/// For one object as `kubectl apply` sends it: the length of its compact JSON as kubectl
/// writes it into last-applied-configuration, and the total size of the object's
/// annotations (keys and values, as the API server counts them) once that is added.
///
/// kubectl encodes with Go's encoding/json: compact, `<`, `>` and `&` escaped as `\u003c`
/// and the like (6 bytes for 1), U+2028 and U+2029 as `\u2028` (6 bytes for 3), and a
/// trailing newline. Key order differs from serde_json's, which changes no length.
fn apply_annotation_sizes(doc: &Value) -> anyhow::Result<(usize, usize)> {
    let mut doc = doc.clone();
    let mut others = 0;
    if let Some(a) = doc
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        // kubectl leaves a previous last-applied-configuration out of the new one.
        a.remove(LAST_APPLIED);
        for (k, v) in a.iter() {
            others += k.len() + v.as_str().map_or(0, str::len);
        }
    }
    let compact = serde_json::to_string(&doc)?;
    let escapes: usize = compact
        .chars()
        .map(|c| match c {
            '<' | '>' | '&' => 5,
            '\u{2028}' | '\u{2029}' => 3,
            _ => 0,
        })
        .sum();
    let json = compact.len() + escapes + 1;
    Ok((json, others + LAST_APPLIED.len() + json))
}

/// The pods run at kspy's own PriorityClass: above ordinary workloads, within the range
/// of user-defined classes (the system-* classes are not usable outside kube-system
/// without a ResourceQuota), never preempting: any pod may name the class, and a class
/// that preempts would let every tenant evict other tenants' pods.
fn check_priority_class(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    let pod = pod_spec(d)?;
    let name = pod
        .priority_class_name
        .as_deref()
        .with_context(|| format!("{t}: the webhook pods have no priorityClassName"))?;
    ensure!(
        name == PRIORITY_CLASS,
        "{t}: priorityClassName {name}, want kspy's own {PRIORITY_CLASS}"
    );
    ensure!(
        pod.priority.is_none(),
        "{t}: spec.priority is set by the API server from the class, not in the manifest"
    );
    let pc = r.named::<PriorityClass>(name)?;
    ensure!(
        pc.value > 0 && pc.value < USER_PRIORITY_CEILING,
        "{t}: PriorityClass {name} value {}, want above 0 (ordinary pods) and below \
         {USER_PRIORITY_CEILING} (user-defined classes; the system classes rank higher)",
        pc.value
    );
    ensure!(
        pc.value >= 1_000_000,
        "{t}: PriorityClass {name} value {} is too low to outrank typical application classes",
        pc.value
    );
    ensure!(
        pc.global_default != Some(true),
        "{t}: PriorityClass {name} is the cluster's globalDefault"
    );
    ensure!(
        pc.preemption_policy.as_deref() == Some("Never"),
        "{t}: PriorityClass {name} preemptionPolicy {:?}, want Never (any pod may use the \
         class; the default, PreemptLowerPriority, would let it evict other pods)",
        pc.preemption_policy
    );
    ensure!(
        pc.description
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty()),
        "{t}: PriorityClass {name} has no description"
    );
    // kustomize lists the class before the Deployment, so a first apply creates it first.
    let position = |kind: &str| r.docs.iter().position(|o| o["kind"] == kind);
    ensure!(
        position("PriorityClass") < position("Deployment"),
        "{t}: the PriorityClass is rendered after the Deployment"
    );
    Ok(())
}

/// Where the NetworkPolicy admits the https and admin ports from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sources {
    /// Every source (the base: the API server's addresses are not known in general).
    Anywhere,
    /// Only the listed peers (`components/restrict-ingress`), none of them everything.
    Restricted,
}

/// One NetworkPolicy isolates the webhook pods for ingress and admits exactly the https
/// port (from anywhere: the API server's addresses are not known in general) and the admin
/// port; egress stays open (the API server, an OTLP collector).
fn check_network_policy(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    check_network_policy_with(r, d, Sources::Anywhere)
}

/// [`check_network_policy`], with the https and admin ports admitted from `sources`.
fn check_network_policy_with(r: &Rendered, d: &Deployment, sources: Sources) -> anyhow::Result<()> {
    let t = &r.target;
    let pod_labels = pod_labels(d)?;
    let c = webhook_container(pod_spec(d)?)?;
    let port_of = |name: &str| container_port(c, name, t);
    let (https, admin) = (port_of("https")?, port_of("admin")?);

    let policies: Vec<NetworkPolicy> = r
        .all::<NetworkPolicy>()?
        .into_iter()
        .filter(|np| {
            np.spec
                .as_ref()
                // An absent or empty podSelector selects every pod of the namespace.
                .is_some_and(|s| {
                    let all = LabelSelector::default();
                    selects(Some(s.pod_selector.as_ref().unwrap_or(&all)), &pod_labels)
                })
        })
        .collect();
    ensure!(
        policies.len() == 1,
        "{t}: {} NetworkPolicies select the webhook pods, want exactly one",
        policies.len()
    );
    let np = &policies[0];
    let spec = np.spec.as_ref().context("NetworkPolicy without spec")?;
    ensure!(
        np.metadata.namespace.as_deref() == Some(NAMESPACE),
        "{t}: the NetworkPolicy is not in {NAMESPACE}"
    );
    let types = spec.policy_types.clone().unwrap_or_default();
    ensure!(
        types == ["Ingress"],
        "{t}: NetworkPolicy policyTypes {types:?}, want [Ingress] (isolate ingress, leave \
         egress to the API server open)"
    );
    ensure!(spec.egress.is_none(), "{t}: NetworkPolicy has egress rules");

    // Which (port, protocol) pairs does the policy admit, from any source or only some?
    let admitted = |port: i32, protocol: &str| -> anyhow::Result<Option<bool>> {
        let mut from_anywhere = None;
        for rule in spec.ingress.iter().flatten() {
            let ports = rule.ports.clone().unwrap_or_default();
            let mut matches = ports.is_empty();
            for p in &ports {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                let lo = match &p.port {
                    None => None,
                    Some(n) => Some(resolve_port(c, n)?),
                };
                let hi = p.end_port.or(lo);
                matches |= proto == protocol
                    && lo.is_none_or(|lo| lo <= port && hi.is_some_and(|hi| port <= hi));
            }
            if matches {
                // No peers, or an ipBlock covering every address, admits every source.
                let anywhere = rule.from.as_ref().is_none_or(|f| {
                    f.is_empty()
                        || f.iter().any(|peer| {
                            peer.ip_block.as_ref().is_some_and(|b| {
                                b.cidr.ends_with("/0")
                                    && b.except.as_ref().is_none_or(Vec::is_empty)
                            })
                        })
                });
                from_anywhere = Some(from_anywhere.unwrap_or(false) || anywhere);
            }
        }
        Ok(from_anywhere)
    };
    match sources {
        Sources::Anywhere => ensure!(
            admitted(https, "TCP")? == Some(true),
            "{t}: the NetworkPolicy does not admit the https port {https}/TCP from anywhere \
             (the API server's addresses are not known in general)"
        ),
        Sources::Restricted => {
            for (port, name) in [(https, "https"), (admin, "admin")] {
                ensure!(
                    admitted(port, "TCP")? == Some(false),
                    "{t}: the NetworkPolicy admits the {name} port {port}/TCP {}",
                    if admitted(port, "TCP")?.is_some() {
                        "from anywhere, want only the listed sources"
                    } else {
                        "from nowhere"
                    }
                );
            }
        }
    }
    ensure!(
        admitted(admin, "TCP")?.is_some(),
        "{t}: the NetworkPolicy does not admit the admin port {admin}/TCP (probes, metrics)"
    );
    for (port, proto) in [
        (https, "UDP"),
        (admin, "UDP"),
        (https, "SCTP"),
        (22, "TCP"),
        (80, "TCP"),
        (443, "TCP"),
        (8081, "TCP"),
        (8444, "TCP"),
        (9090, "TCP"),
        (10250, "TCP"),
        (65535, "TCP"),
    ] {
        ensure!(
            admitted(port, proto)?.is_none(),
            "{t}: the NetworkPolicy admits {port}/{proto}; only https and admin are open"
        );
    }
    // Every port the Service forwards to is admitted.
    let svc = r.one::<Service>()?;
    for p in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
        let target = resolve_port(
            c,
            &p.target_port.clone().unwrap_or(IntOrString::Int(p.port)),
        )?;
        ensure!(
            admitted(target, p.protocol.as_deref().unwrap_or("TCP"))?.is_some(),
            "{t}: Service port {} targets {target}, which the NetworkPolicy blocks",
            p.port
        );
    }
    Ok(())
}

fn check_webhooks(r: &Rendered, d: &Deployment) -> anyhow::Result<()> {
    let t = &r.target;
    let (m, v) = r.webhook_configurations()?;
    let svc = r.one::<Service>()?;
    let svc_ports: Vec<i32> = svc
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| p.port)
        .collect();
    let args = parse_args(webhook_container(pod_spec(d)?)?)?;
    let review_timeout = match args.get("review-timeout").cloned().flatten() {
        Some(s) => duration(&s)?,
        None => DEFAULT_REVIEW_TIMEOUT,
    };

    let mutating = m.webhooks.clone().unwrap_or_default();
    ensure!(
        mutating.len() == 1 && mutating[0].name == "mutate.kspy.dev",
        "{t}: mutating webhooks {:?}",
        mutating.iter().map(|w| &w.name).collect::<Vec<_>>()
    );
    ensure!(
        mutating[0].reinvocation_policy.as_deref() == Some("IfNeeded"),
        "{t}: reinvocationPolicy must be IfNeeded"
    );
    let validating = v.webhooks.clone().unwrap_or_default();
    ensure!(
        validating.len() == 1 && validating[0].name == "validate.kspy.dev",
        "{t}: validating webhooks {:?}",
        validating.iter().map(|w| &w.name).collect::<Vec<_>>()
    );

    let all = hooks(&m, &v)?;
    for (hook, path) in all.iter().zip(["/mutate", "/validate"]) {
        let n = &hook.name;
        // Rules: exactly the debug operations.
        let mut ops = BTreeSet::new();
        for rule in hook.rules.iter().flatten() {
            ensure!(
                rule.api_groups.clone().unwrap_or_default() == [""],
                "{t}: {n}: rule apiGroups {:?}",
                rule.api_groups
            );
            let versions = rule.api_versions.clone().unwrap_or_default();
            ensure!(
                versions.iter().any(|v| v == "v1" || v == "*"),
                "{t}: {n}: rule apiVersions {versions:?}"
            );
            ensure!(
                rule.scope.as_deref().unwrap_or("*") != "Cluster",
                "{t}: {n}: cluster scope"
            );
            for op in rule.operations.iter().flatten() {
                for res in rule.resources.iter().flatten() {
                    ops.insert((op.clone(), res.clone()));
                }
            }
        }
        let want: BTreeSet<(String, String)> = [
            ("UPDATE", "pods/ephemeralcontainers"),
            ("CREATE", "pods"),
            ("UPDATE", "pods"),
        ]
        .into_iter()
        .map(|(o, r)| (o.to_owned(), r.to_owned()))
        .collect();
        ensure!(
            ops == want,
            "{t}: {n}: rules cover {ops:?}, want exactly {want:?}"
        );

        ensure!(
            hook.failure_policy.as_deref() == Some("Fail"),
            "{t}: {n}: failurePolicy {:?}",
            hook.failure_policy
        );
        // /validate posts decision Events, never for dry runs; /mutate writes nothing.
        let side_effects = if path == "/validate" {
            "NoneOnDryRun"
        } else {
            "None"
        };
        ensure!(
            hook.side_effects == side_effects,
            "{t}: {n}: sideEffects {}, want {side_effects}",
            hook.side_effects
        );
        ensure!(
            hook.admission_review_versions == ["v1"],
            "{t}: {n}: admissionReviewVersions {:?}",
            hook.admission_review_versions
        );
        let timeout = hook
            .timeout_seconds
            .context("timeoutSeconds unset (defaults to 10, but say it)")?;
        ensure!(
            (1..=10).contains(&timeout),
            "{t}: {n}: timeoutSeconds {timeout} is not short"
        );
        ensure!(
            review_timeout < Duration::from_secs(timeout as u64),
            "{t}: {n}: --review-timeout {review_timeout:?} not below timeoutSeconds {timeout}"
        );
        ensure!(
            hook.object_selector.is_none(),
            "{t}: {n}: objectSelector would let labels bypass kspy"
        );

        // Never kspy's own namespace; every other namespace.
        let ns_labels = |name: &str| {
            BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), name.to_owned())])
        };
        ensure!(
            !selects(hook.namespace_selector.as_ref(), &ns_labels(NAMESPACE)),
            "{t}: {n}: namespaceSelector includes {NAMESPACE}"
        );
        for other in ["default", "kube-system", "prod-payments"] {
            ensure!(
                selects(hook.namespace_selector.as_ref(), &ns_labels(other)),
                "{t}: {n}: namespaceSelector skips {other}"
            );
        }

        // The Service, its port and the served path.
        let cc = &hook.client_config;
        ensure!(cc.url.is_none(), "{t}: {n}: url instead of service");
        let s = cc.service.as_ref().context("no clientConfig.service")?;
        ensure!(
            Some(&s.name) == svc.metadata.name.as_ref() && s.namespace == NAMESPACE,
            "{t}: {n}: service {}/{}",
            s.namespace,
            s.name
        );
        let port = s.port.unwrap_or(443);
        ensure!(
            port == 443 && svc_ports.contains(&port),
            "{t}: {n}: service port {port}"
        );
        ensure!(
            s.path.as_deref() == Some(path),
            "{t}: {n}: path {:?}, want {path}",
            s.path
        );

        // CA: a caBundle, or cert-manager's injection annotation.
        let injected = hook
            .annotations
            .contains_key("cert-manager.io/inject-ca-from");
        let bundled = cc.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty());
        if r.target != "base" {
            ensure!(
                injected || bundled,
                "{t}: {n}: neither caBundle nor cert-manager.io/inject-ca-from"
            );
        }
    }
    ensure!(
        all[0].match_conditions == all[1].match_conditions,
        "{t}: the mutating and validating webhooks must see the same requests (matchConditions differ)"
    );
    Ok(())
}

// ----------------------------------------------------------------------------------------
// matchConditions cases

fn pod(metadata: Value, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": containers}})
}

fn review_request(operation: &str, sub_resource: Option<&str>, namespace: &str) -> Value {
    let mut r = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["dev", "system:authenticated"]},
    });
    if let Some(s) = sub_resource {
        r["subResource"] = json!(s);
        r["requestSubResource"] = json!(s);
    }
    r
}

/// (case, request, object, sent to kspy?)
fn match_condition_cases() -> Vec<(&'static str, Value, Value, bool)> {
    let app = json!([{"name": "app", "image": "registry.example.com/app:1"}]);
    vec![
        (
            "kubectl debug / kspy attach (ephemeral container)",
            review_request("UPDATE", Some("ephemeralcontainers"), "prod-payments"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-0", "namespace": "prod-payments"},
                "spec": {"containers": app, "ephemeralContainers": [{"name": "debugger-x7k2p", "image": "busybox"}]},
            }),
            true,
        ),
        (
            "kspy copy (label kspy.dev/debug=copy)",
            review_request("CREATE", None, "prod-payments"),
            pod(
                json!({"name": "web-0-debug", "labels": {"kspy.dev/debug": "copy"}}),
                app.clone(),
            ),
            true,
        ),
        (
            "kspy node (label kspy.dev/debug=node)",
            review_request("CREATE", None, "default"),
            pod(
                json!({"name": "kspy-node-abc", "labels": {"kspy.dev/debug": "node"}}),
                app.clone(),
            ),
            true,
        ),
        (
            "an image change of a kspy copy (kubectl set image)",
            review_request("UPDATE", None, "prod-payments"),
            pod(
                json!({"name": "web-0-debug", "labels": {"kspy.dev/debug": "copy"}}),
                app.clone(),
            ),
            true,
        ),
        (
            "an image change of a kubectl debug node/NAME pod",
            review_request("UPDATE", None, "default"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "node-debugger-worker-1-mq7cz"},
                "spec": {"nodeName": "worker-1", "containers": app},
            }),
            true,
        ),
        (
            "an image change of an ordinary pod",
            review_request("UPDATE", None, "default"),
            pod(
                json!({"name": "web-0", "labels": {"app": "web"}}),
                app.clone(),
            ),
            false,
        ),
        (
            "kubectl debug node/worker-1",
            review_request("CREATE", None, "default"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "node-debugger-worker-1-mq7cz"},
                "spec": {"nodeName": "worker-1", "hostPID": true, "containers": [{"name": "debugger", "image": "busybox"}]},
            }),
            true,
        ),
        (
            "kubectl debug node/worker-1 created with generateName (mutating phase: no name yet)",
            review_request("CREATE", None, "default"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "node-debugger-worker-1-"},
                "spec": {"nodeName": "worker-1", "hostPID": true, "containers": [{"name": "debugger", "image": "busybox"}]},
            }),
            true,
        ),
        (
            "a pod named node-debugger-* that is not bound to a node",
            review_request("CREATE", None, "default"),
            pod(json!({"name": "node-debugger-worker-1-mq7cz"}), app.clone()),
            false,
        ),
        (
            "a pod with a name and a node-debugger- generateName (the name counts)",
            review_request("CREATE", None, "default"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-0", "generateName": "node-debugger-"},
                "spec": {"nodeName": "worker-1", "containers": app},
            }),
            false,
        ),
        (
            "an ordinary pod bound to a node, created with generateName",
            review_request("CREATE", None, "kube-system"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "fluentd-"},
                "spec": {"nodeName": "worker-1", "containers": app},
            }),
            false,
        ),
        (
            "kubectl debug POD --copy-to (debugger-XXXXX container)",
            review_request("CREATE", None, "prod-payments"),
            pod(
                json!({"name": "web-0-copy"}),
                json!([{"name": "app", "image": "app:1"}, {"name": "debugger-x7k2p", "image": "busybox"}]),
            ),
            true,
        ),
        (
            "ordinary pod from a ReplicaSet (generateName, no name yet)",
            review_request("CREATE", None, "prod-payments"),
            pod(
                json!({"generateName": "web-7d9f8-", "labels": {"app": "web"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f8"}]}),
                app.clone(),
            ),
            false,
        ),
        (
            "ordinary pod without labels",
            review_request("CREATE", None, "default"),
            pod(json!({"name": "plain"}), app.clone()),
            false,
        ),
        (
            "pod with empty metadata",
            review_request("CREATE", None, "default"),
            pod(json!({}), app.clone()),
            false,
        ),
        (
            "pod without a spec",
            review_request("CREATE", None, "default"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}),
            false,
        ),
        (
            "kubectl debug POD --copy-to --container=tools (a name the user chose)",
            review_request("CREATE", None, "prod-payments"),
            pod(
                json!({"name": "web-0-copy"}),
                json!([{"name": "app", "image": "app:1"}, {"name": "tools", "image": "busybox"}]),
            ),
            false,
        ),
        (
            "container named like a debugger but not kubectl's shape",
            review_request("CREATE", None, "default"),
            pod(
                json!({"name": "tools"}),
                json!([{"name": "debugger-tools", "image": "busybox"}]),
            ),
            false,
        ),
    ]
}

// ----------------------------------------------------------------------------------------
// components/without-match-conditions

/// The component for Kubernetes 1.27, relative to `deploy/`.
const WITHOUT_MATCH_CONDITIONS: &str = "components/without-match-conditions";

/// Whether the API server applies the webhooks' `matchConditions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Honour {
    /// 1.28 and later (beta, on by default; GA in 1.30).
    MatchConditions,
    /// 1.27 without `--feature-gates=AdmissionWebhookMatchConditions=true`: dropped.
    Dropped,
}

/// Each split webhook is the shipped one, but for its name, its half of the rules, no
/// matchConditions, and (for pods) an objectSelector on `kspy.dev/debug`.
fn check_split_webhooks(shipped: &Rendered, split: &Rendered) -> anyhow::Result<()> {
    let t = &split.target;
    let pods_selector =
        json!({"matchExpressions": [{"key": "kspy.dev/debug", "operator": "Exists"}]});
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let api = "admissionregistration.k8s.io/v1";
        let (Some(before), Some(after)) = (
            shipped.values(api, kind).first().copied(),
            split.values(api, kind).first().copied(),
        ) else {
            bail!("{t}: no {kind}");
        };
        ensure!(
            before["metadata"] == after["metadata"],
            "{t}: {kind}: metadata changed (cert-manager's annotation?)"
        );
        let original = before["webhooks"]
            .as_array()
            .filter(|w| w.len() == 1)
            .map(|w| w[0].clone())
            .with_context(|| format!("{t}: the shipped {kind} has not exactly one webhook"))?;
        let name = original["name"].as_str().unwrap_or_default().to_owned();
        let rule = |resource: &str| -> anyhow::Result<Value> {
            original["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["resources"] == json!([resource]))
                .cloned()
                .with_context(|| format!("{t}: {kind}: no rule for {resource}"))
        };
        let mut attach = original.clone();
        attach["rules"] = json!([rule("pods/ephemeralcontainers")?]);
        attach.as_object_mut().map(|o| o.remove("matchConditions"));
        let mut pods = attach.clone();
        pods["name"] = json!(name.replacen('.', "-pods.", 1));
        pods["rules"] = json!([rule("pods")?]);
        pods["objectSelector"] = pods_selector.clone();
        let want = json!([attach, pods]);
        ensure!(
            after["webhooks"] == want,
            "{t}: {kind}: webhooks\n{}\nwant\n{}",
            serde_json::to_string_pretty(&after["webhooks"])?,
            serde_json::to_string_pretty(&want)?
        );
    }
    Ok(())
}

/// Whether the API server calls `hook` for `request` on `object`: its rules (operation,
/// resource and subresource), its namespaceSelector (on the namespace's name label), its
/// objectSelector (on the object's labels) and, when `honour` says so, its matchConditions.
fn api_server_calls(
    hook: &Hook,
    request: &Value,
    object: &Value,
    honour: Honour,
) -> anyhow::Result<bool> {
    let op = request["operation"].as_str().unwrap_or_default();
    let mut resource = request["resource"]["resource"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(sub) = request["subResource"].as_str() {
        resource = format!("{resource}/{sub}");
    }
    let ruled = hook.rules.iter().flatten().any(|r| {
        r.operations.iter().flatten().any(|o| o == op || o == "*")
            && r.resources.iter().flatten().any(|x| *x == resource)
    });
    // An absent selector selects everything.
    let selected = |sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>| {
        sel.is_none() || selects(sel, labels)
    };
    let ns = request["namespace"].as_str().unwrap_or_default();
    let ns_labels = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), ns.to_owned())]);
    let object_labels: BTreeMap<String, String> =
        serde_json::from_value(object["metadata"]["labels"].clone()).unwrap_or_default();
    if !ruled
        || !selected(hook.namespace_selector.as_ref(), &ns_labels)
        || !selected(hook.object_selector.as_ref(), &object_labels)
    {
        return Ok(false);
    }
    if honour == Honour::Dropped {
        return Ok(true);
    }
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("request", cel::to_value(request)?);
    ctx.add_variable_from_value("object", cel::to_value(object)?);
    let old = if op == "UPDATE" {
        object.clone()
    } else {
        Value::Null
    };
    ctx.add_variable_from_value("oldObject", cel::to_value(&old)?);
    for c in hook.match_conditions.iter().flatten() {
        let p = cel::Program::compile(&c.expression)
            .map_err(|e| anyhow::anyhow!("{}: matchCondition {}: {e}", hook.name, c.name))?;
        match p.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Ok(false),
            other => bail!("{}: matchCondition {} gave {other:?}", hook.name, c.name),
        }
    }
    Ok(true)
}

/// A request, and whether kspy sees it (once on /mutate, once on /validate) with the
/// shipped webhooks (matchConditions honoured) and with the split ones.
struct Routed {
    case: &'static str,
    request: Value,
    object: Value,
    shipped: bool,
    split: bool,
}

fn routing_cases() -> Vec<Routed> {
    let app = json!([{"name": "app", "image": "registry.example.com/app:1"}]);
    let node_debugger = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "node-debugger-worker-1-mq7cz"},
        "spec": {"nodeName": "worker-1", "hostPID": true, "containers": [{"name": "debugger", "image": "busybox"}]},
    });
    let attached = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "coredns-5d78c9869d-x2x4q", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"containers": app, "ephemeralContainers": [{"name": "debugger-x7k2p", "image": "busybox"}]},
    });
    vec![
        Routed {
            case: "a DaemonSet's pod in kube-system (a CNI on a new node)",
            request: review_request("CREATE", None, "kube-system"),
            object: pod(
                json!({"generateName": "cilium-", "labels": {"k8s-app": "cilium"}}),
                app.clone(),
            ),
            shipped: false,
            split: false,
        },
        Routed {
            case: "a kubelet's mirror pod in kube-system",
            request: review_request("CREATE", None, "kube-system"),
            object: json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "kube-apiserver-cp-1", "annotations": {"kubernetes.io/config.mirror": "x"}},
                "spec": {"nodeName": "cp-1", "containers": app},
            }),
            shipped: false,
            split: false,
        },
        Routed {
            case: "an ordinary pod in default",
            request: review_request("CREATE", None, "default"),
            object: pod(
                json!({"name": "web-0", "labels": {"app": "web"}}),
                app.clone(),
            ),
            shipped: false,
            split: false,
        },
        Routed {
            case: "kubectl debug of a kube-system pod (ephemeral container)",
            request: review_request("UPDATE", Some("ephemeralcontainers"), "kube-system"),
            object: attached.clone(),
            shipped: true,
            split: true,
        },
        Routed {
            case: "kspy copy (label kspy.dev/debug=copy)",
            request: review_request("CREATE", None, "prod-payments"),
            object: pod(
                json!({"name": "web-0-debug", "labels": {"kspy.dev/debug": "copy"}}),
                app.clone(),
            ),
            shipped: true,
            split: true,
        },
        Routed {
            case: "kspy node (label kspy.dev/debug=node)",
            request: review_request("CREATE", None, "default"),
            object: pod(
                json!({"name": "kspy-node-abc", "labels": {"kspy.dev/debug": "node"}}),
                app.clone(),
            ),
            shipped: true,
            split: true,
        },
        Routed {
            case: "an image change of a kspy copy (kubectl set image)",
            request: review_request("UPDATE", None, "prod-payments"),
            object: pod(
                json!({"name": "web-0-debug", "labels": {"kspy.dev/debug": "copy"}}),
                app.clone(),
            ),
            shipped: true,
            split: true,
        },
        Routed {
            case: "an update of an ordinary pod",
            request: review_request("UPDATE", None, "default"),
            object: pod(
                json!({"name": "web-0", "labels": {"app": "web"}}),
                app.clone(),
            ),
            shipped: false,
            split: false,
        },
        Routed {
            // Unlabelled: the split webhooks cannot tell it from an ordinary pod.
            case: "kubectl debug node/worker-1",
            request: review_request("CREATE", None, "default"),
            object: node_debugger,
            shipped: true,
            split: false,
        },
        Routed {
            case: "kubectl debug in kspy-system",
            request: review_request("UPDATE", Some("ephemeralcontainers"), NAMESPACE),
            object: attached,
            shipped: false,
            split: false,
        },
        Routed {
            case: "kspy copy in kspy-system",
            request: review_request("CREATE", None, NAMESPACE),
            object: pod(
                json!({"name": "kspy-webhook-debug", "labels": {"kspy.dev/debug": "copy"}}),
                app,
            ),
            shipped: false,
            split: false,
        },
    ]
}

/// Every case reaches exactly one mutating and one validating webhook when `want` says it
/// is sent, and none otherwise.
fn check_routing(
    target: &str,
    hooks: &[Hook],
    honour: Honour,
    want: fn(&Routed) -> bool,
) -> anyhow::Result<()> {
    for c in routing_cases() {
        let mut called = Vec::new();
        for h in hooks {
            if api_server_calls(h, &c.request, &c.object, honour)? {
                called.push(h.name.clone());
            }
        }
        let mutating = called.iter().filter(|n| n.starts_with("mutate")).count();
        let validating = called.len() - mutating;
        let expected = usize::from(want(&c));
        ensure!(
            mutating == expected && validating == expected,
            "{target} ({honour:?}): {}: called {called:?}, want {}",
            c.case,
            if expected == 1 {
                "one mutating and one validating webhook"
            } else {
                "none"
            }
        );
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Helpers

/// A webhook of either configuration, as the fields both kinds share.
struct Hook {
    annotations: BTreeMap<String, String>,
    inner: ValidatingWebhook,
}

impl std::ops::Deref for Hook {
    type Target = ValidatingWebhook;
    fn deref(&self) -> &ValidatingWebhook {
        &self.inner
    }
}

/// The mutating webhooks then the validating ones, in a common shape.
fn hooks(
    m: &MutatingWebhookConfiguration,
    v: &ValidatingWebhookConfiguration,
) -> anyhow::Result<Vec<Hook>> {
    let mut out = Vec::new();
    for w in m.webhooks.iter().flatten() {
        let mut value = serde_json::to_value(w)?;
        value
            .as_object_mut()
            .context("webhook is not an object")?
            .remove("reinvocationPolicy");
        out.push(Hook {
            annotations: m.metadata.annotations.clone().unwrap_or_default(),
            inner: serde_json::from_value(value)?,
        });
    }
    for w in v.webhooks.iter().flatten() {
        out.push(Hook {
            annotations: v.metadata.annotations.clone().unwrap_or_default(),
            inner: w.clone(),
        });
    }
    Ok(out)
}

fn pod_spec(d: &Deployment) -> anyhow::Result<&PodSpec> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("Deployment without a pod spec")
}

fn pod_labels(d: &Deployment) -> anyhow::Result<BTreeMap<String, String>> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .context("pod template without labels")
}

fn webhook_container(pod: &PodSpec) -> anyhow::Result<&Container> {
    ensure!(
        pod.containers.len() == 1,
        "expected the webhook container only, found {}",
        pod.containers.len()
    );
    Ok(&pod.containers[0])
}

fn tls_secret_name(pod: &PodSpec) -> anyhow::Result<String> {
    pod.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .find(|n| n == TLS_SECRET)
        .with_context(|| format!("no volume from Secret {TLS_SECRET}"))
}

/// The mount path of the (single) volume that `is` picks, in container `c`.
fn mount_path(
    pod: &PodSpec,
    c: &Container,
    is: impl Fn(&k8s_openapi::api::core::v1::Volume) -> bool,
) -> anyhow::Result<String> {
    let vol = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| is(v))
        .context("volume not found")?;
    let m = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == vol.name)
        .with_context(|| format!("volume {} is not mounted", vol.name))?;
    ensure!(
        m.read_only == Some(true),
        "volume {} is mounted read-write",
        vol.name
    );
    Ok(m.mount_path.trim_end_matches('/').to_owned())
}

/// `--flag=value`, `--flag value` and bare `--flag` args; unknown flags are errors.
fn parse_args(c: &Container) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    ensure!(
        c.command.is_none(),
        "the image's entrypoint (kspy-webhook) must not be overridden"
    );
    let args = c.args.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i]
            .strip_prefix("--")
            .with_context(|| format!("unexpected argument {:?}", args[i]))?;
        let (name, value) = match a.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None if args.get(i + 1).is_some_and(|n| !n.starts_with("--")) => {
                i += 1;
                (a.to_owned(), Some(args[i].clone()))
            }
            None => (a.to_owned(), None),
        };
        ensure!(
            WEBHOOK_FLAGS.contains(&name.as_str()),
            "unknown kspy-webhook flag --{name}"
        );
        ensure!(
            out.insert(name.clone(), value).is_none(),
            "--{name} given twice"
        );
        i += 1;
    }
    Ok(out)
}

fn addr_port(
    args: &BTreeMap<String, Option<String>>,
    flag: &str,
    default: i32,
) -> anyhow::Result<i32> {
    match args.get(flag).cloned().flatten() {
        None => Ok(default),
        Some(addr) => {
            let (_, port) = addr
                .rsplit_once(':')
                .with_context(|| format!("--{flag}={addr}: no port"))?;
            port.parse()
                .with_context(|| format!("--{flag}={addr}: bad port"))
        }
    }
}

/// The host part of `--FLAG=HOST:PORT`, or kspy-webhook's default `[::]` when the flag is
/// not given.
fn addr_host(args: &BTreeMap<String, Option<String>>, flag: &str) -> anyhow::Result<String> {
    match args.get(flag).cloned().flatten() {
        None => Ok("[::]".to_owned()),
        Some(addr) => {
            let (host, _) = addr
                .rsplit_once(':')
                .with_context(|| format!("--{flag}={addr}: no port"))?;
            Ok(host.to_owned())
        }
    }
}

fn resolve_port(c: &Container, port: &IntOrString) -> anyhow::Result<i32> {
    match port {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .with_context(|| format!("no container port named {name}")),
    }
}

/// Label selector semantics (matchLabels AND matchExpressions); `None` selects nothing.
fn selects(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return false };
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let vals = e.values.clone().unwrap_or_default();
        let got = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => got.is_some_and(|g| vals.contains(g)),
            "NotIn" => got.is_none_or(|g| !vals.contains(g)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// A Kubernetes quantity as a number (cpu in cores, memory in bytes).
fn quantity(q: &str) -> anyhow::Result<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (s, mult) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            return Ok(n.parse::<f64>().with_context(|| format!("quantity {q}"))? * mult);
        }
    }
    q.parse::<f64>().with_context(|| format!("quantity {q}"))
}

/// `9s`, `500ms`, `1m` or plain seconds.
fn duration(s: &str) -> anyhow::Result<Duration> {
    let num = |n: &str| n.parse::<u64>().with_context(|| format!("duration {s}"));
    Ok(if let Some(n) = s.strip_suffix("ms") {
        Duration::from_millis(num(n)?)
    } else if let Some(n) = s.strip_suffix('s') {
        Duration::from_secs(num(n)?)
    } else if let Some(n) = s.strip_suffix('m') {
        Duration::from_secs(60 * num(n)?)
    } else {
        Duration::from_secs(num(s)?)
    })
}
