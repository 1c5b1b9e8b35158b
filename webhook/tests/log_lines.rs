//! What the server logs about requests it answers without judging them: every bad request
//! (400, 408, 413, 415) on one line with its reason and the limit it hit, and a fail-closed
//! denial as a decision line with the fields known when judging failed. The server runs in
//! process; this test binary installs the server's own JSON log format as the global
//! subscriber, writing to memory.

mod common;

use std::io;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use common::{Harness, fixture, raw_tls, read_response};
use http_body_util::Full;
use kspy_webhook::FaultInjection;
use kspy_webhook::client::HttpVersion;
use kspy_webhook::telemetry::{LogFormat, log_subscriber};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

static LOGGED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Memory;

impl io::Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LOGGED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends this process's log lines to memory, once.
fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = log_subscriber(LogFormat::Json, tracing::Level::INFO, || Memory);
        tracing::subscriber::set_global_default(subscriber).expect("install the log subscriber");
    });
}

/// Every line logged so far, parsed.
fn logged() -> Vec<Value> {
    let text = String::from_utf8(LOGGED.lock().expect("log").clone()).expect("UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The one "bad request" line with `reason` and `status`.
fn bad_request_line(reason: &str, status: u16) -> Value {
    let lines: Vec<Value> = logged()
        .into_iter()
        .filter(|l| l["message"] == "bad request" && l["reason"] == reason && l["status"] == status)
        .collect();
    assert_eq!(lines.len(), 1, "{reason} {status}: {lines:#?}");
    let line = lines.into_iter().next().expect("one line");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["endpoint"], "validate", "{line}");
    assert!(
        line["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{line}"
    );
    line
}

#[tokio::test]
async fn every_bad_request_is_logged_with_its_reason_and_limit() {
    capture();
    let h = Harness::start_with(common::POLICIES, |c| {
        c.max_body_bytes = 20_000;
        c.review_timeout = Duration::from_millis(700);
    })
    .await;

    // 413: declared over the limit.
    let (status, _) = h.post("/validate", Bytes::from(vec![b' '; 20_001])).await;
    assert_eq!(status, 413);
    let line = bad_request_line("too-large", 413);
    assert_eq!(line["limit"], "20000 bytes", "{line}");

    // 408: the body never comes.
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    stream
        .write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{")
        .await
        .expect("write");
    let (status, _) = read_response(&mut stream).await;
    assert_eq!(status, 408);
    let line = bad_request_line("unreadable", 408);
    assert_eq!(line["limit"], "700ms", "{line}");

    // 415: compressed.
    let mut conn = h.connect(HttpVersion::Http1).await;
    let req = hyper::Request::post("/validate")
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from_static(b"\x1f\x8b")))
        .expect("request");
    assert_eq!(conn.send(req).await.expect("response").status(), 415);
    let line = bad_request_line("unsupported-encoding", 415);
    assert!(
        line["error"].as_str().is_some_and(|e| e.contains("gzip")),
        "{line}"
    );

    // 400: not a review.
    let (status, _) = h.post("/validate", Bytes::from_static(b"{")).await;
    assert_eq!(status, 400);
    bad_request_line("invalid", 400);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_fail_closed_denial_is_a_decision_line_with_what_was_known() {
    capture();
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_millis(200);
        c.fault_injection = FaultInjection::Delay(Duration::from_secs(1));
    })
    .await;
    let mut review: Value =
        serde_json::from_slice(&fixture("attach-allowed.json")).expect("fixture");
    review["request"]["uid"] = "fail-closed-1".into();
    let body = Bytes::from(serde_json::to_vec(&review).expect("encode"));
    let (status, _) = h.post("/validate", body).await;
    assert_eq!(status, 200);

    let lines: Vec<Value> = logged()
        .into_iter()
        .filter(|l| l["uid"] == "fail-closed-1")
        .collect();
    assert_eq!(lines.len(), 1, "one line: {lines:#?}");
    let line = &lines[0];
    assert_eq!(line["message"], "decision", "{line}");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["endpoint"], "validate", "{line}");
    assert_eq!(line["user"], "alice@example.com", "{line}");
    assert_eq!(line["namespace"], "shop", "{line}");
    assert_eq!(line["pod"], "checkout-5c7d9b8f6-q4w2e", "{line}");
    // Judging stalled before classification.
    assert_eq!(line["action"], "unknown", "{line}");
    assert_eq!(line["verdict"], "denied", "{line}");
    assert_eq!(line["reason"], "timeout", "{line}");
    assert!(line["duration_us"].is_u64(), "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not decide")),
        "{line}"
    );
    h.server.shutdown().await;
}
