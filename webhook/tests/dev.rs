//! `kspy-webhook --dev`: a CA and a serving certificate generated into `./.kspy-dev/` (kept
//! across runs), and a banner that says how to send a review — which works as printed.

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{client_tls, listening_addrs, response_of, sigterm, stdout_lines, wait_exit};
use kspy_webhook::client::{HttpVersion, HttpsConnection};

/// What the banner says: the CA file, the review file and the URL of the curl line.
struct Banner {
    ca: PathBuf,
    review: PathBuf,
    url: String,
}

/// Starts `--dev` in `dir` with `policies` and `envs` added, on port 0 (the default
/// 127.0.0.1:8443 may be taken on a test machine), its stdout piped.
fn spawn_dev(dir: &Path, policies: &Path, envs: &[(&str, &Path)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
        .arg("--dev")
        .arg("--policies")
        .arg(policies)
        .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn kspy-webhook --dev")
}

/// Runs `--dev` in `dir` until it prints its banner, sends the review the banner names the way
/// the curl line does (trusting only the CA it names), stops the process; the banner and
/// whether the review was allowed.
async fn dev_run(dir: &Path) -> (Banner, bool) {
    dev_run_with(dir, &[]).await
}

/// [`dev_run`] with `envs` added to the environment.
async fn dev_run_with(dir: &Path, envs: &[(&str, &Path)]) -> (Banner, bool) {
    let policies = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"));
    let mut child = spawn_dev(dir, policies, envs);
    let lines = stdout_lines(&mut child);
    let mut lines = lines.iter();
    let (addr, _) = listening_addrs(&mut lines);
    let mut ca = None;
    let mut curl = None;
    for line in lines.by_ref() {
        if let Some(path) = line.trim().strip_prefix("CA:") {
            ca = Some(PathBuf::from(path.trim()));
        }
        if line.trim_start().starts_with("curl ") {
            curl = Some(line);
            break;
        }
    }
    let ca = ca.expect("the banner names the CA");
    let curl = curl.expect("the banner has a curl line");
    let words: Vec<&str> = curl.split_whitespace().collect();
    let after = |flag: &str| {
        let at = words.iter().position(|w| *w == flag).expect(flag);
        words[at + 1].to_owned()
    };
    assert_eq!(PathBuf::from(after("--cacert")), ca, "{curl}");
    let review = PathBuf::from(
        after("--data-binary")
            .strip_prefix('@')
            .expect("@file")
            .to_owned(),
    );
    let url = words.last().expect("url").to_string();
    assert_eq!(url, format!("https://{addr}/validate"), "{curl}");

    let pem = std::fs::read_to_string(&ca).expect("the CA file exists");
    let tls = client_tls(&[&pem]);
    let mut conn = HttpsConnection::connect(addr, "127.0.0.1", &tls, HttpVersion::Http1)
        .await
        .expect("TLS with only the printed CA");
    let body = std::fs::read(&review).expect("the review file exists");
    let resp = conn
        .post_json("/validate", body.into())
        .await
        .expect("review");
    assert_eq!(resp.status(), 200);
    let allowed = response_of(resp.body())["allowed"] == true;
    drop(conn);

    sigterm(&child);
    let exit = wait_exit(child).await;
    assert!(exit.success(), "{exit:?}");
    (Banner { ca, review, url }, allowed)
}

#[tokio::test]
async fn dev_mode_prints_a_curl_line_that_works_and_keeps_its_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, allowed) = dev_run(dir.path()).await;
    assert!(
        allowed,
        "the banner's review is the SRE attach the policies allow"
    );
    assert_eq!(first.ca, dir.path().join(".kspy-dev/ca.crt"));
    assert!(
        first
            .review
            .ends_with("policies/fixtures/attach-sre-ptrace.json")
    );
    assert!(first.url.starts_with("https://127.0.0.1:"));
    for file in ["tls.crt", "tls.key", "ca-bundle.b64"] {
        assert!(dir.path().join(".kspy-dev").join(file).is_file(), "{file}");
    }
    let ca = std::fs::read(&first.ca).expect("ca");

    // A second run keeps the CA a user may already trust.
    let (second, allowed) = dev_run(dir.path()).await;
    assert!(allowed);
    assert_eq!(std::fs::read(&second.ca).expect("ca"), ca);
}

#[tokio::test]
async fn dev_mode_judges_with_the_declared_namespaces_even_with_a_kubeconfig() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // A stand-in API server that counts what it is asked and knows no Namespace, named by a
    // kubeconfig as a developer's current context would be.
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "not found", "reason": "NotFound", "code": 404
                })),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: http://{api}\ncontexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\ncurrent-context: dev\nusers:\n- name: dev\n  user:\n    token: dev-token\n"
        ),
    )
    .expect("kubeconfig");

    let (_, allowed) = dev_run_with(dir.path(), &[("KUBECONFIG", &kubeconfig)]).await;
    // prod-payments as the policy test suites declare it (env: production): allowed.
    assert!(allowed, "judged with the declared Namespaces");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        0,
        "the cluster was never asked"
    );
}

/// An empty policy directory starts (a ConfigMap may be filled later) but says that nothing
/// can be granted, and the banner names no fixture that is not there.
#[tokio::test]
async fn dev_mode_with_no_policies_warns_and_names_no_missing_fixture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let mut child = spawn_dev(dir.path(), &empty, &[]);
    let lines = stdout_lines(&mut child);
    let mut seen = Vec::new();
    let curl = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}: no curl line in {seen:#?}"));
        if line.trim_start().starts_with("curl ") {
            break line;
        }
        seen.push(line);
    };
    sigterm(&child);
    assert!(wait_exit(child).await.success());
    assert!(
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains("no DebugPolicy under the policy directory")),
        "{seen:#?}"
    );
    assert!(curl.contains("--data-binary @REVIEW.json "), "{curl}");
    assert!(
        seen.iter()
            .any(|l| l.contains("Send it a review (an admission.k8s.io/v1 AdmissionReview)")),
        "{seen:#?}"
    );
}
