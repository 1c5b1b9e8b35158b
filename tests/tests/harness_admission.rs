//! Self-tests of the admission chain against a scriptable stub webhook over TLS: the review
//! sent, patches applied, denials, warnings, failure policies, dry-run gating, selectors.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kspy_e2e::stub_webhook::{self, StubWebhook};
use kspy_e2e::{AdmissionChain, ApiServer, WebhookTarget, fixtures};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn manifests(failure_policy: &str, side_effects: &str, timeout: u32) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: stub}}
webhooks:
- name: mutate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: {side_effects}
  failurePolicy: {failure_policy}
  timeoutSeconds: {timeout}
  clientConfig: {{service: {{name: stub, namespace: stub, path: /mutate}}}}
  namespaceSelector:
    matchExpressions: [{{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}}]
  rules:
  - {{operations: [UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods/ephemeralcontainers]}}
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: stub}}
webhooks:
- name: validate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: {side_effects}
  failurePolicy: {failure_policy}
  timeoutSeconds: {timeout}
  clientConfig: {{service: {{name: stub, namespace: stub, path: /validate}}}}
  rules:
  - {{operations: [UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods/ephemeralcontainers]}}
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}
"#
    )
}

async fn setup(responder: stub_webhook::Responder) -> (ApiServer, StubWebhook) {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .pod(fixtures::web_pod("kube-system", "dns"))
        .start()
        .await
        .unwrap();
    let stub = StubWebhook::start(s.ca(), responder).await.unwrap();
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: stub.ca_pem.clone(),
    };
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "None", 5), Some(&target)).unwrap(),
    );
    (s, stub)
}

fn add_dbg(name: &str) -> Patch<Value> {
    Patch::Strategic(json!({"spec": {"ephemeralContainers": [{"name": name, "image": "busybox"}]}}))
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn review_shape_patch_and_validation_order() {
    let (s, stub) = setup(Arc::new(|req: &Value| {
        if req["object"]["spec"]["ephemeralContainers"].is_array() && req["operation"] == "UPDATE" {
            // Mutating: set targetContainerName; validating sees it.
            if req["object"]["spec"]["ephemeralContainers"][0].get("targetContainerName").is_none() {
                return stub_webhook::patch(json!([{"op": "add", "path": "/spec/ephemeralContainers/0/targetContainerName", "value": "app"}]));
            }
        }
        json!({"allowed": true, "warnings": ["debug session is audited"]})
    }))
    .await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let pod = api
        .patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
        .await
        .unwrap();
    assert_eq!(
        pod.spec.unwrap().ephemeral_containers.unwrap()[0]
            .target_container_name
            .as_deref(),
        Some("app")
    );

    let got = stub.received();
    assert_eq!(got.len(), 2, "one mutating, one validating call");
    let r = &got[0];
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["kind"], "AdmissionReview");
    let req = &r["request"];
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(req["subResource"], "ephemeralcontainers");
    assert_eq!(req["requestSubResource"], "ephemeralcontainers");
    assert_eq!(req["operation"], "UPDATE");
    assert_eq!(
        (req["name"].as_str(), req["namespace"].as_str()),
        (Some("web"), Some("prod"))
    );
    assert_eq!(
        req["userInfo"],
        json!({"username": "alice", "uid": "uid-alice", "groups": ["sre", "system:authenticated"]})
    );
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["options"]["kind"], "PatchOptions");
    assert_eq!(req["oldObject"]["spec"]["ephemeralContainers"], Value::Null);
    assert_eq!(
        req["object"]["spec"]["ephemeralContainers"][0]["name"],
        "dbg"
    );
    assert_eq!(
        req["object"]["spec"]["ephemeralContainers"][0]["imagePullPolicy"], "Always",
        "defaulted before webhooks"
    );
    assert_eq!(
        got[1]["request"]["object"]["spec"]["ephemeralContainers"][0]["targetContainerName"],
        "app"
    );
    assert_eq!(s.reviews().len(), 2);
    assert!(s.reviews()[1].response.is_some());
}

#[tokio::test]
async fn warnings_reach_the_client_as_headers() {
    let (s, _stub) = setup(Arc::new(
        |_req: &Value| json!({"allowed": true, "warnings": ["debug session is \"audited\""]}),
    ))
    .await;
    let client = s.client("alice").await.unwrap();
    let req = axum::http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/prod/pods/web/ephemeralcontainers")
        .header("content-type", "application/strategic-merge-patch+json")
        .body(kube::client::Body::from(
            br#"{"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox"}]}}"#.to_vec(),
        ))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let warnings: Vec<String> = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        warnings,
        vec![r#"299 - "debug session is \"audited\"""#; 2],
        "one per webhook"
    );
}

#[tokio::test]
async fn denial_has_the_api_server_wording() {
    let (s, _stub) = setup(Arc::new(|req: &Value| {
        if req["object"]["spec"]["ephemeralContainers"][0]["name"] == "evil"
            && req["oldObject"].is_object()
        {
            // Only the validating webhook denies (it is called second).
            stub_webhook::deny(403, "no policy grants capability SYS_ADMIN to group dev")
        } else {
            stub_webhook::allow()
        }
    }))
    .await;
    let api: Api<Pod> = Api::namespaced(s.client("bob").await.unwrap(), "prod");
    let st = api_err(
        api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("evil"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403);
    assert_eq!(st.reason, "Forbidden");
    assert_eq!(
        st.message,
        r#"admission webhook "mutate.stub.dev" denied the request: no policy grants capability SYS_ADMIN to group dev"#
    );
    assert!(
        s.pod("prod", "web")
            .unwrap()
            .spec
            .unwrap()
            .ephemeral_containers
            .is_none()
    );
}

#[tokio::test]
async fn unreachable_webhook_fail_and_ignore() {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .start()
        .await
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = WebhookTarget {
        base_url: format!("https://127.0.0.1:{port}"),
        ca_pem: s.ca_pem().to_string(),
    };
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "None", 2), Some(&target)).unwrap(),
    );
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let st = api_err(
        api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        st.message,
        format!(
            r#"Internal error occurred: failed calling webhook "mutate.stub.dev": failed to call webhook: Post "https://127.0.0.1:{port}/mutate?timeout=2s": dial tcp 127.0.0.1:{port}: connect: connection refused"#
        )
    );
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Ignore", "None", 2), Some(&target)).unwrap(),
    );
    api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
        .await
        .unwrap();
}

#[tokio::test]
async fn untrusted_certificate_and_timeout() {
    let (s, stub) = setup(Arc::new(
        |_req: &Value| json!({"allowed": true, stub_webhook::DELAY_KEY: 1500}),
    ))
    .await;
    // A CA bundle that did not sign the webhook's certificate.
    let other = kspy_e2e::tls::CertAuthority::generate("other").unwrap();
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: other.cert_pem().to_string(),
    };
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "None", 1), Some(&target)).unwrap(),
    );
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let st = api_err(
        api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
            .await
            .unwrap_err(),
    );
    assert!(
        st.message
            .ends_with("x509: certificate signed by unknown authority"),
        "{}",
        st.message
    );
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: stub.ca_pem.clone(),
    };
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "None", 1), Some(&target)).unwrap(),
    );
    let st = api_err(
        api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
            .await
            .unwrap_err(),
    );
    assert!(
        st.message
            .ends_with("/mutate?timeout=1s\": context deadline exceeded"),
        "{}",
        st.message
    );
}

#[tokio::test]
async fn dry_run_side_effects_and_selectors() {
    let (s, stub) = setup(Arc::new(|_req: &Value| stub_webhook::allow())).await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    api.patch_ephemeral_containers("web", &PatchParams::default().dry_run(), &add_dbg("dbg"))
        .await
        .unwrap();
    assert_eq!(stub.received()[0]["request"]["dryRun"], true);
    assert_eq!(
        stub.received()[0]["request"]["options"]["dryRun"],
        json!(["All"])
    );
    // sideEffects: Some refuses dry runs without calling.
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: stub.ca_pem.clone(),
    };
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "Some", 5), Some(&target)).unwrap(),
    );
    let before = stub.received().len();
    let st = api_err(
        api.patch_ephemeral_containers("web", &PatchParams::default().dry_run(), &add_dbg("dbg"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (
            400,
            r#"admission webhook "mutate.stub.dev" does not support dry run"#
        )
    );
    assert_eq!(stub.received().len(), before);
    // namespaceSelector excludes kube-system for the mutating webhook.
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "None", 5), Some(&target)).unwrap(),
    );
    let sys: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "kube-system");
    sys.patch_ephemeral_containers("dns", &PatchParams::default(), &add_dbg("dbg"))
        .await
        .unwrap();
    let last: Vec<Value> = stub.received().into_iter().skip(before).collect();
    assert_eq!(last.len(), 1, "only the validating webhook was called");
    assert_eq!(s.reviews().last().unwrap().webhook, "validate.stub.dev");
}

#[tokio::test]
async fn create_goes_through_both_webhooks() {
    let (s, stub) = setup(Arc::new(|req: &Value| {
        if req["operation"] == "CREATE" && req["object"]["metadata"]["uid"].is_null() {
            return stub_webhook::patch(
                json!([{"op": "add", "path": "/metadata/labels/kspy.dev~1debug", "value": "copy"}]),
            );
        }
        stub_webhook::allow()
    }))
    .await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let pod = api
        .create(
            &PostParams::default(),
            &fixtures::web_pod("prod", "web-copy"),
        )
        .await
        .unwrap();
    assert_eq!(pod.metadata.labels.unwrap()["kspy.dev/debug"], "copy");
    let got = stub.received();
    assert_eq!(got.len(), 2);
    let req = &got[0]["request"];
    assert_eq!(req["operation"], "CREATE");
    assert!(req.get("subResource").is_none());
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["options"]["kind"], "CreateOptions");
    assert!(
        got[1]["request"]["object"]["metadata"]["uid"].is_string(),
        "validating webhooks see the uid"
    );
}
