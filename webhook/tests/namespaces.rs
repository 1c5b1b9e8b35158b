//! Namespace objects for `namespaceSelector` and `namespaceObject`: none (fail closed), a static
//! set, and the API server (a local stand-in serving `GET /api/v1/namespaces/NAME`), cached.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Harness, response_of};
use k8s_openapi::api::core::v1::Namespace;
use kspy_webhook::NamespaceSource;
use kspy_webhook::client::HttpVersion;
use kspy_webhook::metrics::InternalError;

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

/// A webhook judging with [`TEAM_POLICY`] that reads Namespaces through `client`, caching
/// them for `ttl`.
async fn looked_up_in(client: kube::Client, ttl: Duration) -> Harness {
    Harness::start_with(TEAM_POLICY, |c| {
        c.namespaces = NamespaceSource::Api { client, ttl };
    })
    .await
}

#[tokio::test]
async fn namespaces_are_read_from_the_api_and_cached() {
    let (client, gets) = namespace_api("checkout").await;

    let h = looked_up_in(client, Duration::from_secs(60)).await;
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

/// A stand-in API server serving Namespaces labelled `team: TEAM`; the GETs it answered.
async fn namespace_api(team: &'static str) -> (kube::Client, Arc<AtomicUsize>) {
    let gets = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/api/v1/namespaces/{name}", get(get_namespace))
        .with_state(FakeApi {
            gets: gets.clone(),
            team,
        });
    (common::fake_api(app).await, gets)
}

/// A stand-in API server that takes every request and never answers; the requests it took.
async fn hanging_api() -> (kube::Client, Arc<AtomicUsize>) {
    let gets = Arc::new(AtomicUsize::new(0));
    let counted = gets.clone();
    let app = Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    });
    (common::fake_api(app).await, gets)
}

#[tokio::test]
async fn only_debug_requests_look_up_their_namespace_and_a_hanging_api_server_gets_a_bounded_share()
{
    let (client, gets) = hanging_api().await;
    // A third of 1.5 s: the lookup may take 500 ms.
    let timeout = Duration::from_millis(1500);
    let h = Harness::start_with(TEAM_POLICY, |c| {
        c.review_timeout = timeout;
        c.namespaces = NamespaceSource::Api {
            client,
            ttl: Duration::from_secs(60),
        };
    })
    .await;

    // A plain pod CREATE in `shop` is not a debug request: allowed at once, no API request.
    // (Timed from the request, on a connection made first: a lookup's share is 500 ms.)
    let mut conn = h.connect(HttpVersion::Http1).await;
    let started = Instant::now();
    let response = conn
        .post_json("/validate", common::fixture("create-plain-pod.json"))
        .await
        .expect("answered");
    let took = started.elapsed();
    let (status, body) = (response.status().as_u16(), response.into_body());
    assert_eq!(status, 200);
    assert_eq!(response_of(&body)["allowed"], true, "{body:?}");
    assert!(took < Duration::from_millis(400), "answered after {took:?}");
    assert_eq!(gets.load(Ordering::SeqCst), 0, "no Namespace lookup");

    // Bodies that are not reviews, even ones that name a namespace first: 400, no API request.
    for junk in [
        &b"{"[..],
        br#"{"request":{"uid":"u1","namespace":"shop"}}"#,
        br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u2","namespace":"shop","object":[]}}"#,
    ] {
        let (status, _) = h.post("/validate", axum::body::Bytes::from_static(junk)).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(junk));
    }
    assert_eq!(gets.load(Ordering::SeqCst), 0, "no Namespace lookup");

    // A debug request waits for the Namespace its share of the deadline, then is judged with
    // the Namespace unknown (the team policy does not apply: denied), not timed out.
    let started = Instant::now();
    let response = conn
        .post_json("/validate", review_with_team())
        .await
        .expect("answered");
    let took = started.elapsed();
    let (status, body) = (response.status().as_u16(), response.into_body());
    assert_eq!(status, 200);
    let r = response_of(&body);
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["status"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("could not decide"), "{r}");
    // And says why: the API server did not answer in time, so kspy failed closed.
    assert!(
        message.contains(
            "the API server did not answer the Namespace lookup within 500 ms, its share of the \
             review deadline"
        ) && message.contains("kspy fails closed when it cannot read a Namespace in time"),
        "{r}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1300),
        "answered after {took:?}"
    );
    assert_eq!(gets.load(Ordering::SeqCst), 1);
    assert_eq!(
        h.server
            .metrics()
            .internal_errors_total("validate", InternalError::Timeout),
        0
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_classifier_that_may_read_the_namespace_gets_it_for_a_plain_pod_create() {
    let (client, gets) = namespace_api("checkout").await;
    let h = Harness::start_with(TEAM_POLICY, |c| {
        c.settings.copy_classifier =
            Some("namespaceObject.metadata.labels['team'] == 'checkout'".into());
        c.namespaces = NamespaceSource::Api {
            client,
            ttl: Duration::from_secs(60),
        };
    })
    .await;
    // The classifier makes the pod a debug copy, which no policy allows. (Without the
    // Namespace the classifier would fail on `namespaceObject`, and say so.)
    let (status, body) = h.post_fixture("/validate", "create-plain-pod.json").await;
    assert_eq!(status, 200);
    let r = response_of(&body);
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["status"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("classifier"), "{message}");
    assert!(message.contains("copy"), "{message}");
    assert_eq!(gets.load(Ordering::SeqCst), 1);
    // Cached: judged on the judging thread with no second lookup.
    let (_, body) = h.post_fixture("/validate", "create-plain-pod.json").await;
    assert_eq!(response_of(&body)["allowed"], false);
    assert_eq!(gets.load(Ordering::SeqCst), 1);
    h.server.shutdown().await;
}

/// An image change of a pod is a debug request when a classifier marks the pod after the
/// update or before it (README: "a pod CREATE or UPDATE that a configured classifier has to
/// look at"): the Namespace is looked up for it, and a pod the classifier marked by an
/// annotation the same update removes is judged as a copy all the same.
#[tokio::test]
async fn a_classifier_that_may_read_the_namespace_gets_it_for_a_pod_update() {
    let (client, gets) = namespace_api("checkout").await;
    let h = Harness::start_with(TEAM_POLICY, |c| {
        c.settings.copy_classifier = Some(
            "namespaceObject.metadata.labels['team'] == 'checkout' && \
             has(object.metadata.annotations) && \
             'example.com/copy' in object.metadata.annotations"
                .into(),
        );
        c.namespaces = NamespaceSource::Api {
            client,
            ttl: Duration::from_secs(60),
        };
    })
    .await;
    let mut review: serde_json::Value =
        serde_json::from_slice(&common::fixture("create-plain-pod.json")).expect("fixture");
    let mut old = review["request"]["object"].clone();
    old["metadata"]["annotations"] = serde_json::json!({"example.com/copy": "true"});
    review["request"]["operation"] = "UPDATE".into();
    review["request"]["oldObject"] = old;
    review["request"]["object"]["spec"]["containers"][0]["image"] = "busybox:1.36".into();
    let body = axum::body::Bytes::from(serde_json::to_vec(&review).expect("json"));
    let (status, body) = h.post("/validate", body).await;
    assert_eq!(status, 200);
    let r = response_of(&body);
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["status"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("classifier"), "{message}");
    assert!(message.contains("copy"), "{message}");
    assert_eq!(gets.load(Ordering::SeqCst), 1);
    h.server.shutdown().await;
}

/// A stand-in API server whose answer to the `n`th GET of `shop` (from 0) is `answer(n)`: a
/// delay, then the Namespace labelled with a team or a 403.
async fn scripted_api(
    answer: impl Fn(usize) -> (Duration, Option<&'static str>) + Clone + Send + Sync + 'static,
) -> (kube::Client, Arc<AtomicUsize>) {
    let gets = Arc::new(AtomicUsize::new(0));
    let counted = gets.clone();
    let app = Router::new().route(
        "/api/v1/namespaces/{name}",
        get(move || {
            let answer = answer.clone();
            let counted = counted.clone();
            async move {
                // What the API server read when the request came, sent after `delay`.
                let (delay, team) = answer(counted.fetch_add(1, Ordering::SeqCst));
                tokio::time::sleep(delay).await;
                match team {
                    Some(team) => axum::Json(shop(team)).into_response(),
                    None => (
                        StatusCode::FORBIDDEN,
                        axum::Json(serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "namespaces \"shop\" is forbidden: User \"system:serviceaccount:kspy-system:kspy-webhook\" cannot get resource \"namespaces\" in API group \"\" at the cluster scope",
                            "reason": "Forbidden", "code": 403
                        })),
                    )
                        .into_response(),
                }
            }
        }),
    );
    (common::fake_api(app).await, gets)
}

#[tokio::test]
async fn a_slow_answer_read_before_a_relabel_does_not_replace_the_newer_one() {
    // The first lookup reads `shop` as team checkout and answers late; by then `shop` is
    // team payments, which a second lookup has read and cached.
    let (client, gets) = scripted_api(|n| {
        if n == 0 {
            (Duration::from_millis(800), Some("checkout"))
        } else {
            (Duration::ZERO, Some("payments"))
        }
    })
    .await;
    let h = Arc::new(looked_up_in(client, Duration::from_secs(60)).await);
    let first = tokio::spawn({
        let h = h.clone();
        async move { allowed(&h).await }
    });
    common::eventually("the first lookup sent", Duration::from_secs(5), || {
        let gets = gets.clone();
        async move { gets.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert!(!allowed(&h).await, "judged by the relabelled Namespace");
    // Its late answer is older than the one cached meanwhile: judged by the newer one too.
    assert!(
        !first.await.expect("first review"),
        "judged by the newer Namespace"
    );
    // The late answer did not replace the later one: still team payments, from the cache.
    assert!(!allowed(&h).await, "the cache holds the newer Namespace");
    assert_eq!(gets.load(Ordering::SeqCst), 2);
    if let Ok(h) = Arc::try_unwrap(h) {
        h.server.shutdown().await;
    }
}

#[tokio::test]
async fn a_namespace_unreadable_for_long_is_unknown_not_its_old_labels() {
    // Read once (team checkout), then refused: RBAC taken away.
    let (client, gets) = scripted_api(|n| {
        if n == 0 {
            (Duration::ZERO, Some("checkout"))
        } else {
            (Duration::ZERO, None)
        }
    })
    .await;
    let ttl = Duration::from_millis(100);
    let h = looked_up_in(client, ttl).await;
    assert!(allowed(&h).await);
    // The webhook timed its read when it sent the GET, somewhere inside the review: only now
    // is that surely past. (Timed from before the review, a slow connection or judging thread
    // on a busy machine moved the read later than the test thought, and the last check below
    // came before the old labels were stale.)
    let read = Instant::now();
    // A moment past its TTL the refusal is an outage: the last known Namespace stands in.
    tokio::time::sleep(ttl * 2).await;
    assert!(allowed(&h).await, "the last known labels, briefly");
    assert_eq!(gets.load(Ordering::SeqCst), 2);
    // Refused for longer than STALE_TTLS TTLs: the old labels no longer count.
    let stale = ttl * kspy_webhook::namespaces::STALE_TTLS;
    tokio::time::sleep_until((read + stale).into()).await;
    assert!(!allowed(&h).await, "judged with the Namespace unknown");
    assert_eq!(gets.load(Ordering::SeqCst), 3);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_name_no_namespace_can_have_is_not_looked_up_nor_cached() {
    let (client, gets) = namespace_api("checkout").await;
    let h = looked_up_in(client, Duration::from_secs(60)).await;
    // A forged review's "namespace": upper case, a dot, too long, a huge one.
    for namespace in [
        "Shop".to_owned(),
        "shop.example".to_owned(),
        "s".repeat(64),
        "s".repeat(300_000),
    ] {
        let mut v: serde_json::Value = serde_json::from_slice(&review_with_team()).expect("json");
        v["request"]["namespace"] = serde_json::Value::String(namespace.clone());
        v["request"]["object"]["metadata"]["namespace"] = serde_json::Value::String(namespace);
        let (status, body) = h
            .post(
                "/validate",
                axum::body::Bytes::from(serde_json::to_vec(&v).expect("json")),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            response_of(&body)["allowed"],
            false,
            "the Namespace is unknown"
        );
    }
    assert_eq!(gets.load(Ordering::SeqCst), 0, "no Namespace lookup");
    // A real name still is.
    assert!(allowed(&h).await);
    assert_eq!(gets.load(Ordering::SeqCst), 1);
    h.server.shutdown().await;
}

/// The denial for want of a Namespace says what the API server answered, and what to do: a
/// 403 names the RBAC verb, the resource and the ServiceAccount the API server refused, a
/// 404 that there is no such Namespace. Only the webhook's log told them apart.
#[tokio::test]
async fn a_denial_says_why_the_namespace_was_not_read() {
    let message = |body: &axum::body::Bytes| {
        response_of(body)["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Refused: RBAC.
    let (client, _) = scripted_api(|_| (Duration::ZERO, None)).await;
    let h = looked_up_in(client, Duration::from_secs(60)).await;
    let (status, body) = h.post("/validate", review_with_team()).await;
    assert_eq!(status, 200);
    assert_eq!(response_of(&body)["allowed"], false);
    let m = message(&body);
    assert!(
        m.contains(
            "policy team-attach depends on the labels of namespace \"shop\" (a namespaceSelector, \
             or CEL reading namespaceObject), which are unknown (the API server answered 403 \
             Forbidden: the webhook's ServiceAccount \
             (system:serviceaccount:kspy-system:kspy-webhook) may not get namespaces), so it \
             does not apply (grant the webhook's ServiceAccount \
             (system:serviceaccount:kspy-system:kspy-webhook) RBAC verb `get` on resource \
             `namespaces`"
        ),
        "{m}"
    );
    h.server.shutdown().await;

    // No such Namespace: not RBAC.
    let app = Router::new().fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "namespaces \"shop\" not found", "reason": "NotFound", "code": 404
            })),
        )
    });
    let h = looked_up_in(common::fake_api(app).await, Duration::from_secs(60)).await;
    // Twice: the fresh answer, then the cached one, say the same.
    for _ in 0..2 {
        let (status, body) = h.post("/validate", review_with_team()).await;
        assert_eq!(status, 200);
        let m = message(&body);
        assert!(
            m.contains("(the API server answered 404 Not Found: no Namespace of this name exists)"),
            "{m}"
        );
        assert!(!m.contains("RBAC"), "{m}");
    }
    h.server.shutdown().await;
}
