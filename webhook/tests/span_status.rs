//! The review span's status and HTTP status code, through the trace layer the binary installs
//! (`telemetry::trace_layer`): an HTTP error and a fail-closed denial are errors with the message
//! the client got; a verdict, allowed or denied by policy, is not. (Its own test binary: it
//! installs a global subscriber exporting to memory.)

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use common::Harness;
use kspy_webhook::FaultInjection;
use opentelemetry::Value;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

/// Keeps every exported span.
#[derive(Debug, Clone, Default)]
struct Memory(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Memory {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().expect("lock").extend(batch);
        Ok(())
    }
}

/// The spans exported so far, once the process-wide subscriber is installed.
fn spans() -> &'static Memory {
    static MEMORY: OnceLock<Memory> = OnceLock::new();
    MEMORY.get_or_init(|| {
        let memory = Memory::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(memory.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(kspy_webhook::telemetry::trace_layer(
            provider.tracer("test"),
        ));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        memory
    })
}

/// The exported review span with this `uid` (`None`: the one without a uid, for a body that
/// was not a review), waiting for it to end.
async fn span_of(memory: &Memory, uid: Option<&str>) -> SpanData {
    for _ in 0..100 {
        let found = memory
            .0
            .lock()
            .expect("lock")
            .iter()
            .find(|s| {
                let has_uid = s.attributes.iter().any(|kv| kv.key.as_str() == "uid");
                match uid {
                    Some(uid) => s
                        .attributes
                        .iter()
                        .any(|kv| kv.key.as_str() == "uid" && kv.value.as_str() == uid),
                    None => !has_uid,
                }
            })
            .cloned();
        if let Some(span) = found {
            return span;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no span for {uid:?}");
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_fail_closed_denials_are_error_spans_and_verdicts_are_not() {
    let memory = spans();
    let ok = Harness::start().await;
    let (status, _) = ok.post_fixture("/validate", "attach-denied.json").await;
    assert_eq!(status, 200);
    let denied = span_of(memory, Some(&common::fixture_uid("attach-denied.json"))).await;
    assert_eq!(
        denied.status,
        Status::Unset,
        "a policy's denial is a verdict"
    );
    assert_eq!(
        attribute(&denied, "http.response.status_code"),
        Some(Value::I64(200))
    );

    let (status, answer) = ok
        .post("/validate", Bytes::from_static(b"not a review"))
        .await;
    assert_eq!(status, 400);
    let bad = span_of(memory, None).await;
    assert_eq!(
        attribute(&bad, "http.response.status_code"),
        Some(Value::I64(400))
    );
    match &bad.status {
        Status::Error { description } => assert_eq!(
            description.as_ref(),
            serde_json::from_slice::<serde_json::Value>(&answer).expect("a Status")["message"],
            "the message the client got"
        ),
        other => panic!("a 400 is an error: {other:?}"),
    }
    ok.server.shutdown().await;

    let failing = Harness::start_with(common::POLICIES, |c| {
        c.fault_injection = FaultInjection::Panic;
    })
    .await;
    let (status, _) = failing
        .post_fixture("/validate", "attach-allowed.json")
        .await;
    assert_eq!(status, 200);
    let closed = span_of(memory, Some(&common::fixture_uid("attach-allowed.json"))).await;
    assert_eq!(
        attribute(&closed, "http.response.status_code"),
        Some(Value::I64(200))
    );
    match &closed.status {
        Status::Error { description } => {
            assert!(description.contains("fail closed"), "{description}")
        }
        other => panic!("a fail-closed denial is an error: {other:?}"),
    }
    failing.server.shutdown().await;

    // Only what says something about the review.
    for span in [&denied, &bad, &closed] {
        for kv in &span.attributes {
            let key = kv.key.as_str();
            assert!(
                !matches!(key, "busy_ns" | "idle_ns" | "target")
                    && !key.starts_with("thread.")
                    && !key.starts_with("code."),
                "{key} in {:?}",
                span.attributes
            );
        }
    }
}
