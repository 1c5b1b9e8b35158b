//! Kubernetes Events about decisions, posted to a local stand-in for the API server's
//! `POST /apis/events.k8s.io/v1/namespaces/{ns}/events` and `PATCH …/events/{name}`: which
//! reviews leave one, what it says, repeats written as a series, failures counted, and the
//! queue posted before shutdown completes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use common::{Harness, eventually, fixture};
use kspy_webhook::ServerConfig;
use kspy_webhook::event_series::SeriesTiming;
use kspy_webhook::events::EventSink;
use kspy_webhook::metrics::EventResult;
use kspy_webhook::namespaces::NamespaceSource;
use serde_json::Value;

#[derive(Clone)]
struct FakeApi {
    posted: Arc<Mutex<Vec<(String, Value)>>>,
    /// `(namespace, name, merge patch)` of each series write.
    patched: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// How long each create takes.
    delay: Duration,
    /// The status every create answers with.
    status: StatusCode,
    /// Whether patches find their Event (false: every Event has gone).
    keep_events: bool,
    /// Whether the next create is taken and never answered.
    hang_next: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeApi {
    fn posted(&self) -> Vec<(String, Value)> {
        self.posted.lock().expect("lock").clone()
    }

    fn patched(&self) -> Vec<(String, String, Value)> {
        self.patched.lock().expect("lock").clone()
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code.as_u16(),
        "reason": reason, "message": message,
    });
    (code, axum::Json(status)).into_response()
}

async fn create_event(State(api): State<FakeApi>, Path(ns): Path<String>, body: Bytes) -> Response {
    if api
        .hang_next
        .swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(api.delay).await;
    if !api.status.is_success() {
        return status(
            api.status,
            "Forbidden",
            "events.events.k8s.io is forbidden: User \"system:serviceaccount:kspy-system:kspy-webhook\" cannot create resource \"events\"",
        );
    }
    let mut event: Value = serde_json::from_slice(&body).expect("an Event");
    let mut posted = api.posted.lock().expect("lock");
    // The name the API server makes from generateName.
    let name = format!(
        "{}{}",
        event["metadata"]["generateName"].as_str().unwrap_or(""),
        posted.len()
    );
    event["metadata"]["name"] = Value::String(name);
    posted.push((ns, event.clone()));
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

async fn patch_event(
    State(api): State<FakeApi>,
    Path((ns, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    assert_eq!(
        headers[axum::http::header::CONTENT_TYPE],
        "application/merge-patch+json"
    );
    let posted = api.posted();
    let found = posted
        .iter()
        .find(|(n, e)| *n == ns && e["metadata"]["name"] == name.as_str());
    let Some((_, event)) = found.filter(|_| api.keep_events) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("events.events.k8s.io \"{name}\" not found"),
        );
    };
    let patch: Value = serde_json::from_slice(&body).expect("a merge patch");
    let mut event = event.clone();
    json_patch::merge(&mut event, &patch);
    api.patched.lock().expect("lock").push((ns, name, patch));
    (StatusCode::OK, axum::Json(event)).into_response()
}

/// A webhook posting Events to a fake API server answering creates with `status` after
/// `delay`; `tweak` adjusts the fake and the webhook's series timing.
async fn start_with(
    delay: Duration,
    status: StatusCode,
    tweak: impl FnOnce(&mut FakeApi, &mut SeriesTiming),
) -> (Harness, FakeApi) {
    start_full(common::POLICIES, delay, status, tweak, |_| {}).await
}

/// A webhook judging with `policies`, its configuration adjusted by `config`, posting Events
/// to a fake API server that creates them at once.
async fn start_on(policies: &str, config: impl FnOnce(&mut ServerConfig)) -> (Harness, FakeApi) {
    start_full(
        policies,
        Duration::ZERO,
        StatusCode::CREATED,
        |_, _| {},
        config,
    )
    .await
}

async fn start_full(
    policies: &str,
    delay: Duration,
    status: StatusCode,
    tweak: impl FnOnce(&mut FakeApi, &mut SeriesTiming),
    config: impl FnOnce(&mut ServerConfig),
) -> (Harness, FakeApi) {
    let mut api = FakeApi {
        posted: Arc::default(),
        patched: Arc::default(),
        delay,
        status,
        keep_events: true,
        hang_next: Arc::default(),
    };
    let mut timing = SeriesTiming::default();
    tweak(&mut api, &mut timing);
    let app = Router::new()
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            post(create_event),
        )
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
            patch(patch_event),
        )
        .with_state(api.clone());
    let client = common::fake_api(app).await;
    let h = Harness::start_with(policies, |c| {
        c.events = EventSink::Api {
            client,
            instance: "kspy-webhook-test".into(),
        };
        c.event_series = timing;
        config(c);
    })
    .await;
    (h, api)
}

async fn start(delay: Duration, status: StatusCode) -> (Harness, FakeApi) {
    start_with(delay, status, |_, _| {}).await
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
    // Counted once the API server's answer is read, which may be after the fake recorded it.
    let metrics = h.server.metrics().clone();
    eventually("both Events counted", Duration::from_secs(5), || {
        let metrics = metrics.clone();
        async move { metrics.events_total(EventResult::Posted) == 2 }
    })
    .await;
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
async fn a_create_the_api_server_never_answers_is_abandoned_and_later_events_posted() {
    let (h, api) = start_with(Duration::ZERO, StatusCode::CREATED, |api, timing| {
        api.hang_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
        timing.call_timeout = Duration::from_millis(300);
    })
    .await;
    // bob's Event is taken and never answered; carol's, queued behind it, is posted once
    // the call is abandoned.
    for user in ["bob", "carol"] {
        let (status, _) = h
            .post("/validate", sent_by("attach-denied.json", user))
            .await;
        assert_eq!(status, 200);
    }
    until(&api, "carol's Event posted", |api| api.posted().len() == 1).await;
    assert!(
        api.posted()[0].1["note"]
            .as_str()
            .is_some_and(|n| n.contains("by carol")),
        "{:?}",
        api.posted()
    );
    // The fake API server records the POST before its answer reaches the webhook, which
    // counts the Event only then.
    let metrics = h.server.metrics().clone();
    eventually("carol's Event counted", Duration::from_secs(5), || {
        let metrics = metrics.clone();
        async move { metrics.events_total(EventResult::Posted) == 1 }
    })
    .await;
    assert_eq!(metrics.events_total(EventResult::Failed), 1);
    h.server.shutdown().await;
}

/// `name` sent by `user`.
fn sent_by(name: &str, user: &str) -> Bytes {
    let mut v: Value = serde_json::from_slice(&fixture(name)).expect("fixture");
    v["request"]["userInfo"]["username"] = Value::String(user.into());
    Bytes::from(serde_json::to_vec(&v).expect("json"))
}

#[tokio::test]
async fn queued_events_are_posted_before_shutdown_completes() {
    // Each create takes 150 ms: three reviews answered at once leave Events queued.
    let (h, api) = start(Duration::from_millis(150), StatusCode::CREATED).await;
    for user in ["bob", "carol", "dave"] {
        let (status, _) = h
            .post("/validate", sent_by("attach-denied.json", user))
            .await;
        assert_eq!(status, 200);
    }
    let metrics = h.server.metrics().clone();
    h.server.shutdown().await;
    assert_eq!(api.posted().len(), 3, "every queued Event posted by then");
    assert_eq!(metrics.events_total(EventResult::Posted), 3);
}

/// Sends the denied attach `times` times; each is answered 200.
async fn deny(h: &Harness, times: usize) {
    for _ in 0..times {
        assert_eq!(
            h.post_fixture("/validate", "attach-denied.json").await.0,
            200
        );
    }
}

/// Waits until `check` holds of what the fake API server received.
async fn until(api: &FakeApi, what: &str, check: fn(&FakeApi) -> bool) {
    eventually(what, Duration::from_secs(5), || {
        let api = api.clone();
        async move { check(&api) }
    })
    .await;
}

/// The name of the `i`th Event created.
fn created_name(api: &FakeApi, i: usize) -> String {
    api.posted()[i].1["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned()
}

/// The series of the Event `name`, from each merge patch written onto it.
fn series_counts(api: &FakeApi, name: &str) -> Vec<i64> {
    api.patched()
        .iter()
        .filter(|(_, n, _)| n == name)
        .map(|(_, _, p)| {
            assert!(p["series"]["lastObservedTime"].is_string(), "{p}");
            assert_eq!(
                p.as_object().map(|o| o.len()),
                Some(1),
                "only the series: {p}"
            );
            p["series"]["count"].as_i64().expect("count")
        })
        .collect()
}

#[tokio::test]
async fn repeats_of_one_decision_become_a_series_on_its_event() {
    let (h, api) = start(Duration::ZERO, StatusCode::CREATED).await;
    deny(&h, 4).await;
    // Another user's identical request is another decision.
    let (status, _) = h
        .post("/validate", sent_by("attach-denied.json", "carol"))
        .await;
    assert_eq!(status, 200);
    let metrics = h.server.metrics().clone();
    until(&api, "the first repeat written", |api| {
        !api.patched().is_empty() && api.posted().len() == 2
    })
    .await;
    let posted = api.posted();
    let name = created_name(&api, 0);
    assert!(posted[0].1["series"].is_null(), "a new Event has no series");
    assert!(posted[1].1["note"].as_str().unwrap_or("").contains("carol"));
    // The first repeat at once; the next two only counted while the series goes on.
    assert_eq!(series_counts(&api, &name), [2]);
    assert_eq!(metrics.events_total(EventResult::Repeated), 3);
    // Counted once the API server's answer to the PATCH is read, which may be after the fake
    // recorded it.
    eventually(
        "the repeat's update counted",
        Duration::from_secs(5),
        || {
            let metrics = metrics.clone();
            async move { metrics.events_total(EventResult::Updated) == 1 }
        },
    )
    .await;

    // Shutdown writes the count not written yet.
    h.server.shutdown().await;
    assert_eq!(series_counts(&api, &name), [2, 4]);
    assert_eq!(api.posted().len(), 2, "no Event of their own");
    assert_eq!(metrics.events_total(EventResult::Posted), 2);
    assert_eq!(metrics.events_total(EventResult::Updated), 2);
}

#[tokio::test]
async fn an_ended_series_gets_its_final_count_and_a_later_repeat_a_new_event() {
    // The three denials must be repeats of each other, each within the window of the one
    // before (one TLS connection and review each): 1.5 s holds on a loaded machine too.
    let (h, api) = start_with(Duration::ZERO, StatusCode::CREATED, |_, timing| {
        timing.window = Duration::from_millis(1500);
        timing.check_every = Duration::from_millis(50);
    })
    .await;
    deny(&h, 3).await;
    until(&api, "the final count written", |api| {
        api.patched().len() == 2
    })
    .await;
    assert_eq!(series_counts(&api, &created_name(&api, 0)), [2, 3]);
    deny(&h, 1).await;
    until(&api, "a new Event", |api| api.posted().len() == 2).await;
    h.server.shutdown().await;
    assert_eq!(
        api.patched().len(),
        2,
        "the new Event is a single occurrence"
    );
}

#[tokio::test]
async fn a_series_whose_event_has_gone_is_created_anew_with_its_count() {
    let (h, api) = start_with(Duration::ZERO, StatusCode::CREATED, |fake, _| {
        fake.keep_events = false;
    })
    .await;
    deny(&h, 2).await;
    until(&api, "the series created anew", |api| {
        api.posted().len() == 2
    })
    .await;
    let posted = api.posted();
    let again = &posted[1].1;
    assert_eq!(again["series"]["count"], 2, "{again}");
    assert!(again["series"]["lastObservedTime"].is_string(), "{again}");
    assert_eq!(again["note"], posted[0].1["note"]);
    let metrics = h.server.metrics().clone();
    h.server.shutdown().await;
    assert_eq!(metrics.events_total(EventResult::Failed), 0);
    assert_eq!(metrics.events_total(EventResult::Posted), 2);
}

/// The notes of the Events created so far, in order.
fn notes(api: &FakeApi) -> Vec<String> {
    api.posted()
        .iter()
        .map(|(_, e)| e["note"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The denial message of an AdmissionReview answer.
fn denial_message(body: &[u8]) -> String {
    let response = common::response_of(body);
    assert_eq!(response["allowed"], false, "{response}");
    response["status"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// [`common::POLICIES`] and a policy granting SYS_ADMIN to another group in another namespace,
/// so a denial's full message says who could have been granted it.
fn policies_with_an_admin_grant() -> String {
    format!(
        "{}---\n{}",
        common::POLICIES,
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: platform-admin
spec:
  match:
    actions: [attach]
    groups: [platform-admins]
    namespaces: [kube-system]
  grant:
    images: ["busybox:*"]
    capabilities: [SYS_ADMIN]
"#
    )
}

#[tokio::test]
async fn a_denial_event_says_why_without_the_users_groups_or_who_holds_what() {
    let (h, api) = start_on(&policies_with_an_admin_grant(), |_| {}).await;
    let (status, not_granted) = h.post_fixture("/validate", "attach-denied.json").await;
    assert_eq!(status, 200);
    let (status, no_policy) = h.post_fixture("/validate", "attach-no-policy.json").await;
    assert_eq!(status, 200);
    until(&api, "two Events", |api| api.posted().len() == 2).await;

    // The requester still gets the whole story.
    let full = denial_message(&not_granted);
    assert!(
        full.contains("platform-admin grants it to groups [platform-admins]"),
        "{full}"
    );
    let full = denial_message(&no_policy);
    assert!(full.contains("(groups interns)"), "{full}");

    // Whoever reads the namespace's Events gets the verdict and the reasons only.
    assert_eq!(
        notes(&api),
        [
            "attach by alice@example.com (debugger-def34): denied: capability SYS_ADMIN is not \
             granted",
            "attach by mallory@example.com (debugger-ghi56): denied: no DebugPolicy allows this \
             request",
        ]
    );
    h.server.shutdown().await;
}

/// Every policy file of the shipped library, as one YAML stream.
fn shipped_policies() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("policies dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("policy file"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// A fixture of the shipped library, its JSON changed by `edit`.
fn shipped_fixture(name: &str, edit: impl FnOnce(&mut Value)) -> Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/fixtures")
        .join(name);
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON");
    edit(&mut v);
    Bytes::from(serde_json::to_vec(&v).expect("json"))
}

#[tokio::test]
async fn a_denial_event_names_only_the_policies_whose_validations_denied() {
    let production = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "prod-payments", "labels": {"env": "production"}}
    }))
    .expect("namespace");
    let (h, api) = start_on(&shipped_policies(), |c| {
        c.namespaces = NamespaceSource::from_namespaces([production]);
    })
    .await;
    // production-reason applies and passes (the copy states a reason); no policy lets a
    // developer copy in production.
    let (status, _) = h
        .post("/validate", shipped_fixture("copy-fork-dev.json", |_| {}))
        .await;
    assert_eq!(status, 200);
    // sre-debug grants everything asked; production-reason's validation fails.
    let (status, _) = h
        .post(
            "/validate",
            shipped_fixture("attach-sre-ptrace-no-reason.json", |_| {}),
        )
        .await;
    assert_eq!(status, 200);
    // Both: no reason, and no policy.
    let (status, _) = h
        .post(
            "/validate",
            shipped_fixture("copy-fork-dev.json", |v| {
                v["request"]["object"]["metadata"]["annotations"]
                    .as_object_mut()
                    .expect("annotations")
                    .remove("kspy.dev/reason");
            }),
        )
        .await;
    assert_eq!(status, 200);
    until(&api, "three Events", |api| api.posted().len() == 3).await;
    let notes = notes(&api);
    let reason = "policy production-reason: debugging in production needs a reason of at least \
                  10 characters";
    assert_eq!(
        notes[0],
        "copy by bob@example.com (app, sidecar, debugger): denied: no DebugPolicy allows this \
         request"
    );
    assert!(
        notes[1].starts_with(&format!(
            "attach by alice@example.com (debugger-k7x2q): denied: {reason}"
        )),
        "{}",
        notes[1]
    );
    assert!(!notes[1].contains("sre-debug"), "{}", notes[1]);
    assert!(
        notes[2].starts_with(&format!(
            "copy by bob@example.com (app, sidecar, debugger): denied: {reason}"
        )),
        "{}",
        notes[2]
    );
    assert!(
        notes[2].ends_with("; no DebugPolicy allows this request"),
        "{}",
        notes[2]
    );
    h.server.shutdown().await;
}

/// The denied attach sent by `user`, its debug container named `container`.
fn denied_attach(user: &str, container: &str) -> Bytes {
    let mut v: Value = serde_json::from_slice(&fixture("attach-denied.json")).expect("fixture");
    v["request"]["userInfo"]["username"] = Value::String(user.into());
    let added = v["request"]["object"]["spec"]["ephemeralContainers"]
        .as_array_mut()
        .and_then(|c| c.last_mut())
        .expect("a debug container");
    added["name"] = Value::String(container.into());
    Bytes::from(serde_json::to_vec(&v).expect("json"))
}

#[tokio::test]
async fn one_users_flood_is_rate_limited_and_does_not_crowd_out_others() {
    let (h, api) = start(Duration::ZERO, StatusCode::CREATED).await;
    // `kubectl debug` names each container anew: every attempt is a decision of its own.
    for i in 0..60 {
        let (status, _) = h
            .post(
                "/validate",
                denied_attach("bob", &format!("debugger-{i:05}")),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = h
        .post("/validate", denied_attach("carol", "debugger-c0001"))
        .await;
    assert_eq!(status, 200);
    until(&api, "carol's Event", |api| {
        notes(api).iter().any(|n| n.starts_with("attach by carol "))
    })
    .await;
    let metrics = h.server.metrics().clone();
    h.server.shutdown().await;
    let notes = notes(&api);
    let by = |user: &str| {
        notes
            .iter()
            .filter(|n| n.starts_with(&format!("attach by {user} ")))
            .count()
    };
    assert_eq!(by("bob"), 25, "the burst of one key");
    assert_eq!(by("carol"), 1);
    assert_eq!(metrics.events_total(EventResult::Dropped), 0);
}
