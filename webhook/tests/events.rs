//! Kubernetes Events about decisions, posted to a local stand-in for the API server's
//! `POST /apis/events.k8s.io/v1/namespaces/{ns}/events`: which reviews leave one, what it
//! says, failures counted, and the queue posted before shutdown completes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{Harness, eventually, fixture};
use kspy_webhook::events::EventSink;
use kspy_webhook::metrics::EventResult;
use serde_json::Value;

#[derive(Clone)]
struct FakeApi {
    posted: Arc<Mutex<Vec<(String, Value)>>>,
    /// How long each create takes.
    delay: Duration,
    /// The status every create answers with.
    status: StatusCode,
}

impl FakeApi {
    fn posted(&self) -> Vec<(String, Value)> {
        self.posted.lock().expect("lock").clone()
    }
}

async fn create_event(State(api): State<FakeApi>, Path(ns): Path<String>, body: Bytes) -> Response {
    tokio::time::sleep(api.delay).await;
    if !api.status.is_success() {
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": api.status.as_u16(),
            "reason": "Forbidden",
            "message": "events.events.k8s.io is forbidden: User \"system:serviceaccount:kspy-system:kspy-webhook\" cannot create resource \"events\""
        });
        return (api.status, axum::Json(status)).into_response();
    }
    let event: Value = serde_json::from_slice(&body).expect("an Event");
    api.posted.lock().expect("lock").push((ns, event.clone()));
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

/// A webhook posting Events to a fake API server answering `status` after `delay`.
async fn start(delay: Duration, status: StatusCode) -> (Harness, FakeApi) {
    let api = FakeApi {
        posted: Arc::default(),
        delay,
        status,
    };
    let app = Router::new()
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            post(create_event),
        )
        .with_state(api.clone());
    let client = common::fake_api(app).await;
    let h = Harness::start_with(common::POLICIES, |c| {
        c.events = EventSink::Api {
            client,
            instance: "kspy-webhook-test".into(),
        };
    })
    .await;
    (h, api)
}

/// `name` with `request.dryRun` set.
fn dry_run(name: &str) -> Bytes {
    let mut v: Value = serde_json::from_slice(&fixture(name)).expect("fixture");
    v["request"]["dryRun"] = Value::Bool(true);
    Bytes::from(serde_json::to_vec(&v).expect("json"))
}

#[tokio::test]
async fn validate_leaves_one_event_per_decision_on_the_pod() {
    let (h, api) = start(Duration::ZERO, StatusCode::CREATED).await;
    assert_eq!(
        h.post_fixture("/validate", "attach-denied.json").await.0,
        200
    );
    assert_eq!(
        h.post_fixture("/validate", "attach-allowed.json").await.0,
        200
    );
    // Not recorded: /mutate (the final verdict is /validate's), a dry run, a plain pod.
    assert_eq!(
        h.post_fixture("/mutate", "attach-allowed.json").await.0,
        200
    );
    assert_eq!(
        h.post("/validate", dry_run("attach-denied.json")).await.0,
        200
    );
    assert_eq!(
        h.post_fixture("/validate", "create-plain-pod.json").await.0,
        200
    );
    eventually("two Events posted", Duration::from_secs(5), || async {
        api.posted().len() >= 2
    })
    .await;
    // Give a wrongly queued third one the time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let posted = api.posted();
    assert_eq!(posted.len(), 2, "{posted:#?}");

    let (ns, denied) = &posted[0];
    assert_eq!(ns, "shop");
    assert_eq!(denied["apiVersion"], "events.k8s.io/v1");
    assert_eq!(denied["kind"], "Event");
    assert_eq!(denied["type"], "Warning");
    assert_eq!(denied["reason"], "DebugDenied");
    assert_eq!(denied["action"], "Attach");
    assert_eq!(denied["reportingController"], "kspy.dev/webhook");
    assert_eq!(denied["reportingInstance"], "kspy-webhook-test");
    assert_eq!(denied["regarding"]["kind"], "Pod");
    assert_eq!(denied["regarding"]["name"], "checkout-5c7d9b8f6-q4w2e");
    assert_eq!(
        denied["regarding"]["uid"],
        "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
    );
    assert!(denied["eventTime"].is_string(), "{denied}");
    let note = denied["note"].as_str().unwrap_or("");
    assert!(note.contains("denied"), "{note}");

    let (_, allowed) = &posted[1];
    assert_eq!(allowed["type"], "Normal");
    assert_eq!(allowed["reason"], "DebugAllowed");
    assert_eq!(h.server.metrics().events_total(EventResult::Posted), 2);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_refused_event_is_counted_and_the_review_still_answered() {
    let (h, api) = start(Duration::ZERO, StatusCode::FORBIDDEN).await;
    let (status, _) = h.post_fixture("/validate", "attach-denied.json").await;
    assert_eq!(status, 200);
    let metrics = h.server.metrics().clone();
    eventually("the failure counted", Duration::from_secs(5), || {
        let metrics = metrics.clone();
        async move { metrics.events_total(EventResult::Failed) == 1 }
    })
    .await;
    assert!(api.posted().is_empty());
    let (_, text) = h.admin_get("/metrics").await;
    assert!(
        text.contains("kspy_events_total{result=\"failed\"} 1"),
        "{text}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn queued_events_are_posted_before_shutdown_completes() {
    // Each create takes 150 ms: three reviews answered at once leave Events queued.
    let (h, api) = start(Duration::from_millis(150), StatusCode::CREATED).await;
    for _ in 0..3 {
        assert_eq!(
            h.post_fixture("/validate", "attach-denied.json").await.0,
            200
        );
    }
    let metrics = h.server.metrics().clone();
    h.server.shutdown().await;
    assert_eq!(api.posted().len(), 3, "every queued Event posted by then");
    assert_eq!(metrics.events_total(EventResult::Posted), 3);
}
