//! Self-tests of the admission chain against a scriptable stub webhook over TLS: the review
//! sent, patches applied, denials, warnings, failure policies, dry-run gating, selectors,
//! matchConditions, response verification, and where generateName is resolved.

use std::sync::{Arc, Mutex};

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
    // A PATCH reaches admission with UpdateOptions in both phases (patchToUpdateOptions).
    for review in &got {
        assert_eq!(
            review["request"]["options"],
            json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"})
        );
    }
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
        vec![r#"299 - "debug session is \"audited\"""#],
        "the same text from both webhooks is recorded once"
    );
}

/// The warning recorder's rules: UTF-8 text sent as is, a text with a control character
/// (a tab, a line break: `NewWarningHeader` refuses it) dropped whole and not counted,
/// repeats dropped, and past 4096 runes in total every warning cut to 256 runes and no
/// more added once the total reaches 4096.
#[tokio::test]
async fn warnings_are_deduplicated_truncated_and_sent_as_utf8() {
    let long: Vec<String> = (0..20)
        .map(|i| char::from(b'a' + i as u8).to_string().repeat(300))
        .collect();
    let mut sent = vec![
        "naïve ✓ok".to_string(),
        "tab\there".to_string(),
        "policy old-busybox: busybox 1.35 is old\n".to_string(),
    ];
    sent.extend(long.iter().cloned());
    let (s, _stub) = setup(Arc::new(
        move |_req: &Value| json!({"allowed": true, "warnings": sent}),
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
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
        .collect();
    assert_eq!(warnings[0], "299 - \"naïve ✓ok\"");
    // The two with control characters are no header and count nothing. 9 + 14 × 300
    // passes 4096 at the 14th long one: the 15 so far are cut to 256 runes (3593), then two
    // more are added before the total reaches 4096; the second webhook's are repeats.
    assert_eq!(
        warnings.len(),
        17,
        "{:?}",
        warnings.iter().map(|w| w.len()).collect::<Vec<_>>()
    );
    for (w, text) in warnings[1..].iter().zip(&long) {
        assert_eq!(*w, format!("299 - \"{}\"", &text[..256]));
    }
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
    // Port 1 (tcpmux) is privileged and nothing listens on it: certainly refused, unlike a
    // port bound and released here, which another test may take meanwhile.
    let port = 1;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on 127.0.0.1:{port}; this test needs it closed"
    );
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

/// A webhook answering outside 2xx is a call failure worded as the API server's REST client
/// words it: by the status code (a 400's or 413's plain-text reason is not shown), the text
/// only for a 5xx, and a JSON `Status` by its message.
#[tokio::test]
async fn answers_outside_2xx_are_worded_by_status_code() {
    let answer: Arc<Mutex<Value>> = Arc::new(Mutex::new(Value::Null));
    let current = answer.clone();
    let (s, _stub) = setup(Arc::new(
        move |_req: &Value| json!({stub_webhook::HTTP_KEY: current.lock().unwrap().clone()}),
    ))
    .await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let prefix = r#"Internal error occurred: failed calling webhook "mutate.stub.dev": failed to call webhook: "#;
    for (http, said) in [
        (
            json!({"status": 413, "contentType": "text/plain; charset=utf-8", "body": "the request body is larger than the limit of 10 bytes\n"}),
            "the server responded with the status code 413 but did not return more information",
        ),
        (
            json!({"status": 400, "contentType": "text/plain", "body": "request.object is not a valid Pod"}),
            "the server rejected our request for an unknown reason",
        ),
        (
            json!({"status": 500, "contentType": "text/plain", "body": "kspy failed while deciding\n"}),
            r#"an error on the server ("kspy failed while deciding") has prevented the request from succeeding"#,
        ),
        (
            json!({"status": 500, "contentType": "application/octet-stream", "body": "x"}),
            r#"an error on the server ("unknown") has prevented the request from succeeding"#,
        ),
        (
            json!({"status": 503, "contentType": "application/json", "body": r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"draining","code":503}"#}),
            "draining",
        ),
    ] {
        *answer.lock().unwrap() = http.clone();
        let st = api_err(
            api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (st.code, st.reason.as_str()),
            (500, "InternalError"),
            "{http}"
        );
        assert_eq!(st.message, format!("{prefix}{said}"), "{http}");
    }
}

/// kspy's own webhook answers a review it cannot take (here one over its body limit) with a
/// `Status`, so the user sees kspy's reason after the API server's "failed calling webhook",
/// not the words the REST client puts in for a bare 413.
#[tokio::test]
async fn kspys_refusal_of_a_review_reaches_the_user() {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .start()
        .await
        .unwrap();
    let cert = s.ca().issue_serving(&["127.0.0.1"]).unwrap();
    let dir = s.dir().join("kspy-tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &cert.key_pem).unwrap();
    let tls = kspy_webhook::TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    let mut config =
        kspy_webhook::ServerConfig::new(kspy_e2e::scenario::policies_dir(), tls).on_loopback();
    config.max_body_bytes = 1024;
    let webhook = kspy_webhook::start(config).await.unwrap();
    let target = WebhookTarget {
        base_url: format!("https://{}", webhook.addr),
        ca_pem: cert.ca_pem.clone(),
    };
    s.set_admission(
        AdmissionChain::from_manifests(&manifests("Fail", "None", 5), Some(&target)).unwrap(),
    );
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let st = api_err(
        api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));
    assert!(
        st.message.starts_with(
            r#"Internal error occurred: failed calling webhook "mutate.stub.dev": failed to call webhook: "#
        ) && st.message.contains("1024"),
        "{}",
        st.message
    );
    webhook.shutdown().await;
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
    // sideEffects: Some (v1beta1 only) cannot be configured in v1, so every webhook of a
    // configuration the server accepts can be called for a dry run.
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: stub.ca_pem.clone(),
    };
    let err = AdmissionChain::from_manifests(&manifests("Fail", "Some", 5), Some(&target))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "MutatingWebhookConfiguration.admissionregistration.k8s.io \"stub\" is invalid: \
         webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \
         \"NoneOnDryRun\""
    );
    let before = stub.received().len();
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

/// Installs `yaml` (webhook configurations calling the stub) on the server.
fn install(s: &ApiServer, stub: &StubWebhook, yaml: &str) {
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: stub.ca_pem.clone(),
    };
    s.set_admission(AdmissionChain::from_manifests(yaml, Some(&target)).unwrap());
}

/// A pod create: `generateName: gen-`, mutating admission sees no name, validating admission
/// the generated one (the registry's BeforeCreate runs between them), and so does the client.
#[tokio::test]
async fn generate_name_is_resolved_after_mutating_before_validating_admission() {
    let (s, stub) = setup(Arc::new(|_req: &Value| stub_webhook::allow())).await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let mut pod = fixtures::web_pod("prod", "");
    pod.metadata.name = None;
    pod.metadata.generate_name = Some("gen-".into());
    let created = api.create(&PostParams::default(), &pod).await.unwrap();
    let name = created.metadata.name.clone().expect("named");
    assert!(
        name.starts_with("gen-") && name.len() == 9,
        "generated from the prefix: {name}"
    );
    let got = stub.received();
    assert_eq!(got.len(), 2, "mutating then validating");
    let mutating = &got[0]["request"];
    assert!(
        mutating.get("name").is_none(),
        "request.name is empty (omitted) in mutating admission: {mutating}"
    );
    assert!(
        mutating["object"]["metadata"].get("name").is_none(),
        "{}",
        mutating["object"]["metadata"]
    );
    assert_eq!(mutating["object"]["metadata"]["generateName"], "gen-");
    let validating = &got[1]["request"];
    assert_eq!(validating["name"], name.as_str());
    assert_eq!(validating["object"]["metadata"]["name"], name.as_str());
    assert_eq!(s.pod("prod", &name).unwrap().metadata.name, Some(name));
}

/// objectSelector: the object or the old object must match; a missing old object (CREATE)
/// matches nothing, so `NotIn` / `DoesNotExist` do not select every create.
#[tokio::test]
async fn object_selector_ignores_the_missing_old_object_of_a_create() {
    let (s, stub) = setup(Arc::new(|_req: &Value| stub_webhook::allow())).await;
    install(
        &s,
        &stub,
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: stub}
webhooks:
- name: mutate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {name: stub, namespace: stub, path: /mutate}}
  objectSelector:
    matchExpressions: [{key: quiet, operator: NotIn, values: ["yes"]}]
  rules:
  - {operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods, pods/ephemeralcontainers]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: stub}
webhooks:
- name: validate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {name: stub, namespace: stub, path: /validate}}
  objectSelector:
    matchExpressions: [{key: quiet, operator: DoesNotExist}]
  rules:
  - {operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods, pods/ephemeralcontainers]}
"#,
    );
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let mut quiet = fixtures::web_pod("prod", "quiet");
    quiet
        .metadata
        .labels
        .get_or_insert_default()
        .insert("quiet".into(), "yes".into());
    api.create(&PostParams::default(), &quiet).await.unwrap();
    assert_eq!(
        stub.received().len(),
        0,
        "neither selector matches the labelled pod, and there is no old object to match"
    );
    // An update of it: object and old object both carry the label.
    api.patch_ephemeral_containers("quiet", &PatchParams::default(), &add_dbg("dbg"))
        .await
        .unwrap();
    assert_eq!(stub.received().len(), 0);
    // Without the label both select it.
    api.create(&PostParams::default(), &fixtures::web_pod("prod", "loud"))
        .await
        .unwrap();
    let names: Vec<Value> = s
        .reviews()
        .iter()
        .map(|r| r.request["request"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("loud"), json!("loud")]);
}

/// A stub responder whose answer for the mutating call (a CREATE without uid yet) and for
/// the validating one (with uid) are set by the test.
type Script = Arc<Mutex<(Value, Value)>>;

fn scripted() -> (Script, stub_webhook::Responder) {
    let script: Script = Arc::new(Mutex::new((stub_webhook::allow(), stub_webhook::allow())));
    let s = script.clone();
    let responder: stub_webhook::Responder = Arc::new(move |req: &Value| {
        let (m, v) = s.lock().unwrap().clone();
        if req["object"]["metadata"]["uid"].is_null() {
            m
        } else {
            v
        }
    });
    (script, responder)
}

/// The real server's `VerifyAdmissionResponse`: wrong apiVersion/kind, patch without
/// patchType (or the reverse, or another type), and any patch from a validating webhook are
/// webhook call failures — a 500 under `failurePolicy: Fail`, skipped under `Ignore`.
#[tokio::test]
async fn malformed_webhook_responses_are_call_failures() {
    let (script, responder) = scripted();
    let (s, stub) = setup(responder).await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let b64 = |t: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(t)
    };
    let add_label = r#"[{"op":"add","path":"/metadata/labels/patched","value":"yes"}]"#;
    let allow = stub_webhook::allow();
    let cases: Vec<(&str, Value, Value, &str, &str)> = vec![
        (
            "no apiVersion and kind",
            json!({"allowed": true, stub_webhook::ENVELOPE_KEY: {"apiVersion": null, "kind": null}}),
            allow.clone(),
            "mutate.stub.dev",
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind=",
        ),
        (
            "v1beta1",
            json!({"allowed": true, stub_webhook::ENVELOPE_KEY: {"apiVersion": "admission.k8s.io/v1beta1"}}),
            allow.clone(),
            "mutate.stub.dev",
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview",
        ),
        (
            "another kind",
            allow.clone(),
            json!({"allowed": true, stub_webhook::ENVELOPE_KEY: {"kind": "Review"}}),
            "validate.stub.dev",
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1, Kind=Review",
        ),
        (
            "patch without patchType",
            json!({"allowed": true, "patch": b64(add_label)}),
            allow.clone(),
            "mutate.stub.dev",
            "webhook returned response.patch but not response.patchType",
        ),
        (
            "patchType without patch",
            json!({"allowed": true, "patchType": "JSONPatch"}),
            allow.clone(),
            "mutate.stub.dev",
            "webhook returned response.patchType but not response.patch",
        ),
        (
            "a patchType other than JSONPatch",
            json!({"allowed": true, "patchType": "MergePatch", "patch": b64(r#"{"metadata":{"labels":{"patched":"yes"}}}"#)}),
            allow.clone(),
            "mutate.stub.dev",
            r#"webhook returned invalid response.patchType of "MergePatch""#,
        ),
        (
            "a validating webhook's patch",
            allow.clone(),
            stub_webhook::patch(serde_json::from_str(add_label).unwrap()),
            "validate.stub.dev",
            "validating webhook may not return response.patch",
        ),
        (
            "a validating webhook's patchType",
            allow.clone(),
            json!({"allowed": true, "patchType": "JSONPatch"}),
            "validate.stub.dev",
            "validating webhook may not return response.patchType",
        ),
    ];
    for (i, (case, mutating, validating, hook, why)) in cases.into_iter().enumerate() {
        *script.lock().unwrap() = (mutating, validating);
        install(&s, &stub, &manifests("Fail", "None", 5));
        let name = format!("fail-{i}");
        let st = api_err(
            api.create(&PostParams::default(), &fixtures::web_pod("prod", &name))
                .await
                .expect_err(case),
        );
        assert_eq!(
            (st.code, st.reason.as_str()),
            (500, "InternalError"),
            "{case}"
        );
        assert_eq!(
            st.message,
            format!(
                "Internal error occurred: failed calling webhook \"{hook}\": received invalid webhook response: {why}"
            ),
            "{case}"
        );
        assert!(s.pod("prod", &name).is_none(), "{case}");
        let rec = s.reviews().pop().unwrap();
        assert_eq!(rec.webhook, hook, "{case}");
        assert!(rec.error.is_some(), "{case}");

        install(&s, &stub, &manifests("Ignore", "None", 5));
        let name = format!("ignore-{i}");
        let pod = api
            .create(&PostParams::default(), &fixtures::web_pod("prod", &name))
            .await
            .unwrap_or_else(|e| panic!("{case}: failurePolicy Ignore skips the webhook: {e}"));
        assert!(
            !pod.metadata
                .labels
                .unwrap_or_default()
                .contains_key("patched"),
            "{case}: nothing of an invalid response is applied"
        );
    }
    // The well-formed patch still applies.
    *script.lock().unwrap() = (
        stub_webhook::patch(serde_json::from_str(add_label).unwrap()),
        stub_webhook::allow(),
    );
    install(&s, &stub, &manifests("Fail", "None", 5));
    let pod = api
        .create(&PostParams::default(), &fixtures::web_pod("prod", "good"))
        .await
        .unwrap();
    assert_eq!(pod.metadata.labels.unwrap()["patched"], "yes");
}

fn conditional(failure_policy: &str, conditions: &[&str]) -> String {
    let list: String = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  - name: c{i}\n    expression: {c:?}\n"))
        .collect();
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: stub}}
webhooks:
- name: mutate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {{service: {{name: stub, namespace: stub, path: /mutate}}}}
  rules:
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: stub}}
webhooks:
- name: validate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: {failure_policy}
  clientConfig: {{service: {{name: stub, namespace: stub, path: /validate}}}}
  matchConditions:
{list}  rules:
  - {{operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods, pods/ephemeralcontainers]}}
"#
    )
}

/// matchConditions (k8s.io/apiserver matchconditions): all true → called; any false →
/// skipped (even next to an error); an evaluation error → 403 under Fail, skipped under
/// Ignore; `authorizer` is not offered; the variables are object (as mutated so far),
/// oldObject (null on CREATE) and request.
#[tokio::test]
async fn match_conditions_decide_whether_the_webhook_is_called() {
    // The mutating webhook labels every pod it sees; the validating one is conditional.
    let (script, responder) = scripted();
    *script.lock().unwrap() = (
        stub_webhook::patch(
            json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]),
        ),
        stub_webhook::allow(),
    );
    let (s, stub) = setup(responder).await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let validations = || {
        s.reviews()
            .iter()
            .filter(|r| r.webhook == "validate.stub.dev")
            .map(|r| {
                r.request["request"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let missing = "object.metadata.labels.nosuchlabel == 'x'";
    // (case, failurePolicy, conditions, Ok(webhook called) or Err(part of the 403 message))
    type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Result<bool, &'a str>);
    let cases: Vec<Case> = vec![
        (
            "all true, on the variables the server offers",
            "Fail",
            vec![
                "request.operation == 'CREATE' && request.userInfo.username == 'alice'",
                "oldObject == null && !has(request.subResource)",
                "object.metadata.labels.mutated == 'yes'",
                "request.namespace == 'prod' && request.kind.kind == 'Pod'",
            ],
            Ok(true),
        ),
        (
            "one false",
            "Fail",
            vec!["true", "object.metadata.labels.app == 'other'"],
            Ok(false),
        ),
        (
            "false next to an error",
            "Fail",
            vec![missing, "false"],
            Ok(false),
        ),
        (
            "an error under Ignore",
            "Ignore",
            vec!["true", missing],
            Ok(false),
        ),
        (
            "an error under Fail",
            "Fail",
            vec!["true", missing],
            Err("expression 'object.metadata.labels.nosuchlabel == 'x'' resulted in error: "),
        ),
        (
            "authorizer",
            "Fail",
            vec!["authorizer.group('').resource('pods').check('create').allowed()"],
            Err("authorizer"),
        ),
    ];
    for (i, (case, policy, conditions, want)) in cases.into_iter().enumerate() {
        install(&s, &stub, &conditional(policy, &conditions));
        let name = format!("mc-{i}");
        let before = validations().len();
        let result = api
            .create(&PostParams::default(), &fixtures::web_pod("prod", &name))
            .await;
        let called = validations()[before..].contains(&name);
        match want {
            Ok(call) => {
                result.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(called, call, "{case}");
            }
            Err(why) => {
                let st = api_err(result.expect_err(case));
                assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"), "{case}");
                let prefix = format!("pods \"{name}\" is forbidden: ");
                assert!(
                    st.message.starts_with(&prefix) && st.message.contains(why),
                    "{case}: {}",
                    st.message
                );
                assert!(!called, "{case}");
                assert!(s.pod("prod", &name).is_none(), "{case}");
            }
        }
    }
    // An ephemeral-container UPDATE: oldObject is the stored pod, request.subResource set.
    install(
        &s,
        &stub,
        &conditional(
            "Fail",
            &["oldObject.metadata.name == 'web' && request.subResource == 'ephemeralcontainers'"],
        ),
    );
    let before = validations().len();
    api.patch_ephemeral_containers("web", &PatchParams::default(), &add_dbg("dbg"))
        .await
        .unwrap();
    assert_eq!(validations()[before..], ["web".to_string()]);
}

/// An expression that does not compile: the configuration is refused, as the API server
/// refuses to store it.
#[test]
fn match_conditions_that_do_not_compile_are_refused() {
    let yaml = conditional("Fail", &["object.metadata.name =="]);
    let target = WebhookTarget {
        base_url: "https://127.0.0.1:1".into(),
        ca_pem: String::new(),
    };
    match AdmissionChain::from_manifests(&yaml, Some(&target)) {
        Err(e @ kspy_e2e::admission_chain::ChainConfigError::MatchCondition { .. }) => {
            assert!(e.to_string().contains("validate.stub.dev"), "{e}")
        }
        other => panic!("expected a compilation error, got {other:?}"),
    }
}

/// A MutatingWebhookConfiguration `config` with one webhook `<config>.stub.dev` calling
/// `stub` by URL (pod CREATEs), with `reinvocationPolicy`.
fn mutating_by_url(config: &str, stub: &StubWebhook, reinvocation: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: {config}}}
webhooks:
- name: {config}.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  reinvocationPolicy: {reinvocation}
  clientConfig: {{url: "{}/mutate", caBundle: {}}}
  rules:
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}
---
"#,
        stub.url,
        kspy_e2e::admission_chain::config::ca_bundle_base64(&stub.ca_pem)
    )
}

/// A responder that sets annotation `key` when the object lacks it.
fn annotating(key: &'static str) -> stub_webhook::Responder {
    Arc::new(move |req: &Value| {
        let annotations = &req["object"]["metadata"]["annotations"];
        if annotations.get(key).is_some() {
            return stub_webhook::allow();
        }
        if annotations.is_object() {
            stub_webhook::patch(
                json!([{"op": "add", "path": format!("/metadata/annotations/{key}"), "value": "1"}]),
            )
        } else {
            stub_webhook::patch(
                json!([{"op": "add", "path": "/metadata/annotations", "value": {key: "1"}}]),
            )
        }
    })
}

fn plain_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}
    }))
    .unwrap()
}

/// A webhook that changes a pod being created makes the reinvoker run the in-tree mutating
/// plugins again, whatever the reinvocationPolicy: the ServiceAccount plugin mounts the
/// token into a container the webhook added, and the validating webhook sees that mount.
#[tokio::test]
async fn in_tree_plugins_run_again_after_a_webhook_changed_the_pod() {
    let (s, stub) = setup(Arc::new(|req: &Value| {
        let containers = &req["object"]["spec"]["containers"];
        if req["operation"] == "CREATE"
            && req["object"]["metadata"]["uid"].is_null()
            && containers.as_array().is_some_and(|c| c.len() == 1)
        {
            return stub_webhook::patch(json!([{"op": "add", "path": "/spec/containers/-",
                "value": {"name": "sidecar", "image": "busybox:1.36"}}]));
        }
        stub_webhook::allow()
    }))
    .await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let pod = api
        .create(&PostParams::default(), &plain_pod("injected"))
        .await
        .unwrap();
    let mounts = |c: &k8s_openapi::api::core::v1::Container| -> Vec<String> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| format!("{}:{}", m.name, m.mount_path))
            .collect()
    };
    let containers = pod.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(mounts(&containers[1]), mounts(&containers[0]));
    assert!(
        mounts(&containers[1])[0].starts_with("kube-api-access-")
            && mounts(&containers[1])[0]
                .ends_with(":/var/run/secrets/kubernetes.io/serviceaccount"),
        "{:?}",
        mounts(&containers[1])
    );
    let got = stub.received();
    assert_eq!(got.len(), 2, "the Never webhook is not called again");
    assert_eq!(
        got[1]["request"]["object"]["spec"]["containers"][1]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
}

/// `reinvocationPolicy: IfNeeded`: a webhook that ran before a later webhook changed the
/// object is called once more, and sees that change; one that ran after the last change, and
/// a `Never` webhook, are not.
#[tokio::test]
async fn mutating_webhooks_are_reinvoked_if_needed() {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .start()
        .await
        .unwrap();
    let a = StubWebhook::start(s.ca(), annotating("a")).await.unwrap();
    let b = StubWebhook::start(s.ca(), annotating("b")).await.unwrap();
    let c = StubWebhook::start(s.ca(), Arc::new(|_: &Value| stub_webhook::allow()))
        .await
        .unwrap();
    let yaml = mutating_by_url("a", &a, "IfNeeded")
        + &mutating_by_url("b", &b, "Never")
        + &mutating_by_url("c", &c, "IfNeeded");
    s.set_admission(AdmissionChain::from_manifests(&yaml, None).unwrap());
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let pod = api
        .create(&PostParams::default(), &plain_pod("p"))
        .await
        .unwrap();
    let annotations = pod.metadata.annotations.unwrap_or_default();
    assert_eq!(
        (annotations.get("a"), annotations.get("b")),
        (Some(&"1".to_string()), Some(&"1".to_string()))
    );
    let a_calls = a.received();
    assert_eq!(a_calls.len(), 2, "a ran before b changed the object");
    assert_eq!(
        a_calls[1]["request"]["object"]["metadata"]["annotations"],
        json!({"a": "1", "b": "1"}),
        "the reinvocation sees b's change"
    );
    assert_eq!(b.received().len(), 1, "reinvocationPolicy Never");
    assert_eq!(c.received().len(), 1, "c ran after the last change");

    // A webhook's change alone does not reinvoke that webhook.
    let s2 = ApiServer::builder()
        .namespace("prod", &[])
        .start()
        .await
        .unwrap();
    let d = StubWebhook::start(s2.ca(), annotating("d")).await.unwrap();
    s2.set_admission(
        AdmissionChain::from_manifests(&mutating_by_url("d", &d, "IfNeeded"), None).unwrap(),
    );
    Api::<Pod>::namespaced(s2.client("alice").await.unwrap(), "prod")
        .create(&PostParams::default(), &plain_pod("q"))
        .await
        .unwrap();
    assert_eq!(d.received().len(), 1);
}

/// After each webhook's patch the object is decoded as the typed Pod (unknown fields
/// dropped) and defaulted before the next webhook sees it; a patch whose result does not
/// decode is a 500 InternalError.
#[tokio::test]
async fn each_patch_is_decoded_and_defaulted_before_the_next_webhook() {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .start()
        .await
        .unwrap();
    let first = StubWebhook::start(
        s.ca(),
        Arc::new(|req: &Value| {
            if req["object"]["spec"]["initContainers"].is_array() {
                return stub_webhook::allow();
            }
            stub_webhook::patch(json!([
                {"op": "add", "path": "/spec/containers/0/bogusField", "value": 1},
                {"op": "add", "path": "/spec/initContainers", "value": [{"name": "init", "image": "busybox"}]}
            ]))
        }),
    )
    .await
    .unwrap();
    let second = StubWebhook::start(s.ca(), Arc::new(|_: &Value| stub_webhook::allow()))
        .await
        .unwrap();
    let yaml = mutating_by_url("a", &first, "Never") + &mutating_by_url("b", &second, "Never");
    s.set_admission(AdmissionChain::from_manifests(&yaml, None).unwrap());
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    api.create(&PostParams::default(), &plain_pod("p"))
        .await
        .unwrap();
    let seen = &second.received()[0]["request"]["object"]["spec"];
    assert_eq!(seen["containers"][0].get("bogusField"), None, "{seen}");
    assert_eq!(
        seen["initContainers"][0]["imagePullPolicy"], "Always",
        "defaulted: {seen}"
    );

    // A patch that leaves a value of the wrong type: the object does not decode.
    let bad = StubWebhook::start(
        s.ca(),
        Arc::new(|_: &Value| {
            stub_webhook::patch(
                json!([{"op": "add", "path": "/spec/containers/0/stdin", "value": "yes"}]),
            )
        }),
    )
    .await
    .unwrap();
    s.set_admission(
        AdmissionChain::from_manifests(&mutating_by_url("bad", &bad, "Never"), None).unwrap(),
    );
    let st = api_err(
        api.create(&PostParams::default(), &plain_pod("q"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.reason.as_str()),
        (500, "InternalError"),
        "{st:?}"
    );
    assert!(
        st.message.starts_with("Internal error occurred: "),
        "{st:?}"
    );
    assert!(s.pod("prod", "q").is_none());
}

/// Configurations `ValidateMutatingWebhookConfiguration` /
/// `ValidateValidatingWebhookConfiguration` refuse are refused with the API server's 422
/// message, instead of being clamped or ignored.
#[test]
fn webhook_configurations_the_api_server_refuses_are_refused() {
    let target = WebhookTarget {
        base_url: "https://127.0.0.1:9".into(),
        ca_pem: "PEM".into(),
    };
    let config = |kind: &str, hooks: &str| {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata: {{name: cfg}}\nwebhooks:\n{hooks}"
        )
    };
    let hook = |name: &str, extra: &str| {
        format!(
            "- name: {name}\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  clientConfig: {{service: {{name: svc, namespace: ns, path: /p}}}}\n{extra}"
        )
    };
    let refused = |yaml: String| {
        AdmissionChain::from_manifests(&yaml, Some(&target))
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"))
            .to_string()
    };
    let m = "MutatingWebhookConfiguration";
    let v = "ValidatingWebhookConfiguration";
    let prefix = |kind: &str| format!("{kind}.admissionregistration.k8s.io \"cfg\" is invalid: ");
    let cases: Vec<(String, String)> = vec![
        (
            config(m, &hook("a.b.c", "  timeoutSeconds: 31\n")),
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds".into(),
        ),
        (
            config(v, &hook("a.b.c", "  timeoutSeconds: 0\n")),
            "webhooks[0].timeoutSeconds: Invalid value: 0: the timeout value must be between 1 and 30 seconds".into(),
        ),
        (
            config(m, &hook("a.b.c", "").replace("sideEffects: None", "sideEffects: Unknown")),
            "webhooks[0].sideEffects: Unsupported value: \"Unknown\": supported values: \"None\", \"NoneOnDryRun\"".into(),
        ),
        (
            config(v, &hook("a.b.c", "").replace("[v1]", "[v2]")),
            "webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1".into(),
        ),
        (
            config(v, &hook("a.b.c", "").replace("[v1]", "[]")),
            "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1".into(),
        ),
        (
            config(m, &hook("a.b.c", "  reinvocationPolicy: Always\n")),
            "webhooks[0].reinvocationPolicy: Unsupported value: \"Always\": supported values: \"IfNeeded\", \"Never\"".into(),
        ),
        (
            config(m, &hook("mutate.kspy", "")),
            "webhooks[0].name: Invalid value: \"mutate.kspy\": should be a domain with at least three segments separated by dots".into(),
        ),
        (
            config(v, &(hook("a.b.c", "") + &hook("a.b.c", ""))),
            "webhooks[1].name: Duplicate value: \"a.b.c\"".into(),
        ),
        (
            config(
                v,
                &hook(
                    "a.b.c",
                    "  matchConditions:\n  - {name: x, expression: \"true\"}\n  - {name: x, expression: \"false\"}\n",
                ),
            ),
            "webhooks[0].matchConditions[1].name: Duplicate value: \"x\"".into(),
        ),
    ];
    for (yaml, want) in cases {
        let kind = if yaml.contains(m) { m } else { v };
        assert_eq!(
            refused(yaml.clone()),
            format!("{}{want}", prefix(kind)),
            "{yaml}"
        );
    }
    // Several errors: listed together, as the 422 lists them.
    let err = refused(config(
        m,
        &hook("x", "  timeoutSeconds: 60\n  failurePolicy: Sometimes\n"),
    ));
    assert!(
        err.starts_with(&format!("{}[webhooks[0].name", prefix(m))),
        "{err}"
    );
    assert!(err.contains("failurePolicy: Unsupported value"), "{err}");
    assert!(err.contains("timeoutSeconds: Invalid value: 60"), "{err}");
    // Valid at the edges.
    AdmissionChain::from_manifests(
        &config(
            m,
            &hook(
                "a.b.c",
                "  timeoutSeconds: 30\n  reinvocationPolicy: IfNeeded\n",
            ),
        ),
        Some(&target),
    )
    .unwrap();
}

/// A PUT whose resourceVersion is stale gets its 409 from the storage update, which runs
/// after mutating admission (and before validation and validating admission).
#[tokio::test]
async fn a_stale_put_is_mutated_before_its_conflict() {
    let (s, stub) = setup(Arc::new(|_req: &Value| stub_webhook::allow())).await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let mut pod = api.get_ephemeral_containers("web").await.unwrap();
    pod.metadata.resource_version = Some("1".into());
    pod.spec.as_mut().unwrap().ephemeral_containers = Some(vec![
        serde_json::from_value(json!({"name": "dbg", "image": "busybox"})).unwrap(),
    ]);
    let st = api_err(
        api.replace_ephemeral_containers("web", &PostParams::default(), &pod)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    let webhooks: Vec<String> = s.reviews().iter().map(|r| r.webhook.clone()).collect();
    assert_eq!(webhooks, ["mutate.stub.dev"], "mutating only");
    assert_eq!(stub.received().len(), 1);
}

/// The field manager runs before admission (`createHandler`/`patchResource` →
/// `FieldManager.UpdateNoErrors`): webhooks see `managedFields` in `object` — the creator's
/// entry on create, the ephemeralcontainers entry next to it on the subresource — and in
/// `oldObject`; what admission plugins add (the ServiceAccount token volume) is owned by
/// nobody; GET returns them.
#[tokio::test]
async fn webhooks_and_reads_see_managed_fields() {
    let (s, _stub) = setup(Arc::new(|_req: &Value| json!({"allowed": true}))).await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let pp = PostParams {
        field_manager: Some("e2e-creator".into()),
        ..Default::default()
    };
    api.create(&pp, &fixtures::web_pod("prod", "fresh"))
        .await
        .unwrap();
    let reviews = s.reviews();
    let created = &reviews
        .iter()
        .find(|r| r.request["request"]["operation"] == "CREATE")
        .expect("a create review")
        .request["request"]["object"];
    let entries = created["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields on the reviewed object");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        (
            &e["manager"],
            &e["operation"],
            &e["apiVersion"],
            &e["fieldsType"]
        ),
        (
            &json!("e2e-creator"),
            &json!("Update"),
            &json!("v1"),
            &json!("FieldsV1")
        )
    );
    assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    let app = &e["fieldsV1"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    for f in [
        ".",
        "f:image",
        "f:name",
        "f:terminationMessagePolicy",
        "f:volumeMounts",
    ] {
        assert!(app.get(f).is_some(), "{f} in {app}");
    }
    assert_eq!(
        e["fieldsV1"]["f:metadata"],
        json!({"f:labels": {".": {}, "f:app": {}}})
    );
    // The token volume came from the ServiceAccount plugin, after the field manager.
    let volumes = e["fieldsV1"]["f:spec"]["f:volumes"].as_object().unwrap();
    assert!(
        volumes.keys().all(|k| !k.contains("kube-api-access")),
        "{volumes:?}"
    );
    assert!(e["fieldsV1"].get("f:status").is_none());

    api.patch_ephemeral_containers("fresh", &PatchParams::default(), &add_dbg("dbg"))
        .await
        .unwrap();
    let user_agent = s
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap()
        .user_agent;
    let product = user_agent.split('/').next().unwrap().to_string();
    let reviews = s.reviews();
    let update = &reviews
        .iter()
        .rfind(|r| r.request["request"]["operation"] == "UPDATE")
        .expect("an update review")
        .request["request"];
    assert_eq!(
        update["oldObject"]["metadata"]["managedFields"][0]["manager"],
        "e2e-creator"
    );
    let entries = update["object"]["metadata"]["managedFields"]
        .as_array()
        .unwrap();
    let eph = entries
        .iter()
        .find(|e| e["subresource"] == "ephemeralcontainers")
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(eph["manager"], json!(product));
    assert_eq!(
        eph["fieldsV1"],
        json!({"f:spec": {"f:ephemeralContainers": {".": {}, "k:{\"name\":\"dbg\"}": {
            ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}
        }}}})
    );
    // Stored and read back.
    let got = api.get("fresh").await.unwrap();
    let managers: Vec<String> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.manager.unwrap_or_default())
        .collect();
    assert!(
        managers.contains(&"e2e-creator".to_string()),
        "{managers:?}"
    );
    assert!(managers.contains(&product), "{managers:?}");
}
