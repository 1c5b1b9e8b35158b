//! Namespace objects for `namespaceSelector` and `namespaceObject`: none (fail closed), a static
//! set, and the API server (a local stand-in serving `GET /api/v1/namespaces/NAME`), cached.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Harness, response_of};
use k8s_openapi::api::core::v1::Namespace;
use kspy_webhook::NamespaceSource;

/// Interns may attach busybox in namespaces labelled `team`, when the user is in `team-<label>`.
const TEAM_POLICY: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: team-attach
spec:
  match:
    actions: [attach]
    groups: [interns]
    namespaceSelector:
      matchExpressions:
        - {key: team, operator: Exists}
  conditions:
    - name: own-team
      expression: "('team-' + namespaceObject.metadata.labels['team']) in request.userInfo.groups"
  grant:
    images: ["busybox:*"]
    runAsRoot: true
"#;

fn shop(team: &str) -> Namespace {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"team": team, "kubernetes.io/metadata.name": "shop"}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
    }))
    .expect("namespace")
}

/// `attach-no-policy.json` is mallory (groups interns) attaching busybox in `shop`; this
/// variant puts mallory in `team-checkout` too.
fn review_with_team() -> axum::body::Bytes {
    let mut v: serde_json::Value =
        serde_json::from_slice(&common::fixture("attach-no-policy.json")).expect("fixture");
    v["request"]["userInfo"]["groups"] =
        serde_json::json!(["interns", "team-checkout", "system:authenticated"]);
    axum::body::Bytes::from(serde_json::to_vec(&v).expect("json"))
}

async fn allowed(h: &Harness) -> bool {
    let (status, body) = h.post("/validate", review_with_team()).await;
    assert_eq!(status, 200);
    response_of(&body)["allowed"] == true
}

#[tokio::test]
async fn without_namespace_objects_label_selected_policies_do_not_apply() {
    let h = Harness::start_with(TEAM_POLICY, |_| {}).await;
    assert!(!allowed(&h).await);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_static_namespace_set_feeds_selectors_and_cel() {
    let h = Harness::start_with(TEAM_POLICY, |c| {
        c.namespaces = NamespaceSource::from_namespaces([shop("checkout")]);
    })
    .await;
    assert!(allowed(&h).await);
    h.server.shutdown().await;

    // Another team's namespace: the CEL condition does not hold.
    let h = Harness::start_with(TEAM_POLICY, |c| {
        c.namespaces = NamespaceSource::from_namespaces([shop("payments")]);
    })
    .await;
    assert!(!allowed(&h).await);
    h.server.shutdown().await;
}

#[derive(Clone)]
struct FakeApi {
    gets: Arc<AtomicUsize>,
    team: &'static str,
}

async fn get_namespace(State(api): State<FakeApi>, Path(name): Path<String>) -> Response {
    api.gets.fetch_add(1, Ordering::SeqCst);
    if name == "shop" {
        axum::Json(shop(api.team)).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("namespaces \"{name}\" not found"), "reason": "NotFound", "code": 404
            })),
        )
            .into_response()
    }
}

#[tokio::test]
async fn namespaces_are_read_from_the_api_and_cached() {
    let gets = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/api/v1/namespaces/{name}", get(get_namespace))
        .with_state(FakeApi {
            gets: gets.clone(),
            team: "checkout",
        });
    let client = common::fake_api(app).await;

    let h = Harness::start_with(TEAM_POLICY, |c| {
        c.namespaces = NamespaceSource::Api {
            client,
            ttl: Duration::from_secs(60),
        };
    })
    .await;
    assert!(allowed(&h).await);
    assert!(allowed(&h).await);
    assert!(allowed(&h).await);
    assert_eq!(
        gets.load(Ordering::SeqCst),
        1,
        "looked up once, then cached"
    );
    h.server.shutdown().await;
}
