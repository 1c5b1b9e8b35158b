//! Everything that is not a well-formed review gets the right HTTP status and a one-line
//! reason; judging failures deny (fail closed) and are counted.

mod common;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::{Harness, fixture, fixture_uid, raw_tls, read_response, response_of};
use http_body_util::Full;
use kspy_webhook::FaultInjection;
use kspy_webhook::client::HttpVersion;
use kspy_webhook::metrics::InternalError;
use tokio::io::AsyncWriteExt;

fn one_line(body: &[u8]) -> String {
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(text.ends_with('\n'), "{text:?}");
    assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
    text
}

#[tokio::test]
async fn malformed_reviews_get_400_with_a_one_line_reason() {
    let h = Harness::start().await;
    let cases: [(&str, &str); 6] = [
        ("{", "not JSON"),
        ("[1,2]", "not an AdmissionReview"),
        (
            r#"{"kind":"Pod","apiVersion":"v1"}"#,
            "not an AdmissionReview",
        ),
        (
            r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{}}"#,
            "admission.k8s.io/v1beta1",
        ),
        (
            r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#,
            "no request",
        ),
        (
            r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":7}}"#,
            "malformed",
        ),
    ];
    for path in ["/validate", "/mutate"] {
        for (body, expect) in cases {
            let (status, answer) = h.post(path, Bytes::from_static(body.as_bytes())).await;
            assert_eq!(status, 400, "{body}");
            let line = one_line(&answer);
            assert!(line.contains(expect), "{body}: {line}");
        }
    }
    let (status, answer) = h.post("/validate", Bytes::new()).await;
    assert_eq!(status, 400);
    one_line(&answer);

    // A review that is well formed but for one byte that is not UTF-8, in the Pod's status,
    // which the typed decoding skips: still not JSON.
    let mut broken = fixture("attach-allowed.json").to_vec();
    let at = broken
        .windows(11)
        .position(|w| w == b"\"Burstable\"")
        .expect("status.qosClass");
    broken[at + 1] = 0xff;
    let (status, answer) = h.post("/validate", Bytes::from(broken)).await;
    assert_eq!(status, 400);
    assert!(one_line(&answer).contains("not valid UTF-8"));

    // The Pod as an array of its fields, and a request member given twice: refused, not
    // read some other way (`admission/tests/hostile_reviews.rs` has many more).
    let mut review: serde_json::Value =
        serde_json::from_slice(&fixture("attach-allowed.json")).expect("fixture");
    let object = review["request"]["object"].take();
    review["request"]["object"] = serde_json::json!([]);
    let array = serde_json::to_vec(&review).expect("encode");
    review["request"]["object"] = object;
    let once = serde_json::to_string(&review["request"]).expect("encode");
    let twice = format!(
        r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{},"object":{{}}}}}}"#,
        &once[..once.len() - 1]
    );
    for (body, expect) in [
        (array, "request.object is not a valid Pod"),
        (twice.into_bytes(), "duplicate field `object`"),
    ] {
        let (status, answer) = h.post("/validate", Bytes::from(body)).await;
        assert_eq!(status, 400, "{expect}");
        let line = one_line(&answer);
        assert!(line.contains(expect), "{line}");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let h = Harness::start_with(common::POLICIES, |c| c.max_body_bytes = 16 * 1024).await;
    // Declared length over the limit.
    let big = Bytes::from(vec![b' '; 20 * 1024]);
    let (status, answer) = h.post("/validate", big).await;
    assert_eq!(status, 413);
    assert!(one_line(&answer).contains("16384"));

    // Chunked, no declared length: cut off while reading.
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    let chunk = vec![b' '; 8 * 1024];
    let mut request = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.expect("write");
    let (status, _) = read_response(&mut stream).await;
    assert_eq!(status, 413);

    // A real review under the limit still works.
    let (status, _) = h.post_fixture("/validate", "attach-allowed.json").await;
    assert_eq!(status, 200);
    h.server.shutdown().await;
}

#[tokio::test]
async fn wrong_method_is_405_and_unknown_path_404() {
    let h = Harness::start().await;
    let mut conn = h.connect(HttpVersion::Http1).await;
    for (method, path, expect) in [
        ("GET", "/validate", 405),
        ("PUT", "/mutate", 405),
        ("DELETE", "/validate", 405),
        ("POST", "/", 404),
        ("POST", "/validate/extra", 404),
        ("GET", "/healthz", 404),
    ] {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = conn.send(req).await.expect("response");
        assert_eq!(resp.status().as_u16(), expect, "{method} {path}");
        one_line(resp.body());
        if expect == 405 {
            assert_eq!(resp.headers()["allow"], "POST");
        }
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_millis(300)
    })
    .await;
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    stream
        .write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"kind\":")
        .await
        .expect("write");
    stream.flush().await.expect("flush");
    let started = Instant::now();
    let (status, _) = read_response(&mut stream).await;
    assert_eq!(status, 408);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn judging_past_the_deadline_is_denied_and_counted() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_millis(200);
        c.fault_injection = FaultInjection::Delay(Duration::from_secs(2));
    })
    .await;
    let started = Instant::now();
    let (status, body) = h.post_fixture("/validate", "attach-allowed.json").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        elapsed < Duration::from_secs(1),
        "answered after {elapsed:?}"
    );
    let r = response_of(&body);
    assert_eq!(r["uid"], fixture_uid("attach-allowed.json"));
    assert_eq!(r["allowed"], false, "fail closed: {r}");
    assert_eq!(r["status"]["code"], 500);
    assert!(
        r["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not decide")),
        "{r}"
    );
    assert_eq!(
        h.server
            .metrics()
            .internal_errors_total("validate", InternalError::Timeout),
        1
    );
    let (_, text) = h.admin_get("/metrics").await;
    assert!(
        text.contains("kspy_internal_errors_total{endpoint=\"validate\",reason=\"timeout\"} 1"),
        "{text}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_panic_while_judging_is_a_denial_and_the_server_keeps_serving() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.fault_injection = FaultInjection::Panic
    })
    .await;
    for _ in 0..3 {
        let (status, body) = h.post_fixture("/mutate", "attach-allowed.json").await;
        assert_eq!(status, 200);
        let r = response_of(&body);
        assert_eq!(r["allowed"], false, "{r}");
        assert!(r.get("patch").is_none());
    }
    assert_eq!(
        h.server
            .metrics()
            .internal_errors_total("mutate", InternalError::Panic),
        3
    );
    assert_eq!(h.admin_get("/healthz").await.0, 200);
    h.server.shutdown().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_answer() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start().await;
    let mut tcp = tokio::net::TcpStream::connect(h.server.addr)
        .await
        .expect("connect");
    tcp.write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "{buf:?}"
    );
    // And the server is fine afterwards.
    let (status, _) = h.post("/validate", fixture("attach-allowed.json")).await;
    assert_eq!(status, 200);
    h.server.shutdown().await;
}
