//! Everything that is not a well-formed review gets the right HTTP status and a one-line
//! reason; judging failures deny (fail closed) and are counted.

mod common;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::{
    Harness, eventually, exchange, fixture, fixture_uid, raw_tls, read_response, response_of,
};
use http_body_util::Full;
use kspy_webhook::FaultInjection;
use kspy_webhook::client::HttpVersion;
use kspy_webhook::metrics::{BadRequest, InternalError};
use tokio::io::AsyncWriteExt;

/// The message of an error answer: one line of JSON, a `metav1.Status` of `Failure`, which the
/// API server's REST client shows users (it words a text body by the status code alone).
fn one_line(body: &[u8]) -> String {
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(text.ends_with('\n'), "{text:?}");
    assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
    let status: serde_json::Value = serde_json::from_str(&text).expect("a Status");
    assert_eq!(
        (&status["kind"], &status["apiVersion"], &status["status"]),
        (&"Status".into(), &"v1".into(), &"Failure".into()),
        "{text}"
    );
    assert!(status["code"].is_u64(), "{text}");
    status["message"].as_str().expect("a message").to_owned()
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

/// A body whose chunks do not parse is refused with hyper's reason, not only "error reading a
/// body from connection".
#[tokio::test]
async fn a_malformed_chunked_body_is_refused_with_the_reason() {
    let h = Harness::start().await;
    let (status, body) = exchange(
        h.server.addr,
        &h.tls,
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nzz\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let line = one_line(body.as_bytes()).to_ascii_lowercase();
    assert!(line.starts_with("cannot read the request body: "), "{body}");
    assert!(line.contains("chunk size"), "{body}");
    assert_eq!(
        h.server
            .metrics()
            .bad_requests_total("validate", BadRequest::Unreadable),
        1
    );
    h.server.shutdown().await;
}

/// Answers sent before the body is read end the HTTP/1.1 connection, and say so: a client
/// keeping it alive (the API server's Go transport) would send its next review into a
/// connection about to close.
#[tokio::test]
async fn answers_before_the_body_is_read_say_the_connection_closes() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start_with(common::POLICIES, |c| c.max_body_bytes = 16 * 1024).await;
    for (head, status) in [
        // Declared over the limit, the body on its way.
        (
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000\r\n\r\n",
            413,
        ),
        // An unknown path or a wrong method, with a body left unread.
        (
            "POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000\r\n\r\n",
            404,
        ),
        (
            "PUT /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000\r\n\r\n",
            405,
        ),
        // A coding kspy does not read.
        (
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: gzip\r\nContent-Length: 20000\r\n\r\n",
            415,
        ),
    ] {
        let mut stream = raw_tls(h.server.addr, &h.tls).await;
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(&[b' '; 1000]).await.expect("write");
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let (answer_head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        assert!(
            answer_head.starts_with(&format!("http/1.1 {status}")),
            "{text}"
        );
        assert!(
            answer_head.contains("\r\nconnection: close"),
            "{head}: {text}"
        );
    }
    // A whole request answered keeps its connection.
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    stream
        .write_all(b"GET /validate HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 405"), "{text}");
    assert!(!text.contains("connection: close"), "{text}");
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

/// Posts the allowed attach fixture to `path` on a connection opened first, so that the time
/// runs from the request, as the server's deadline does: how long the answer took, its status
/// and body.
async fn timed_post(h: &Harness, path: &str) -> (Duration, u16, Bytes) {
    let mut conn = h.connect(HttpVersion::Http1).await;
    let started = Instant::now();
    let response = conn
        .post_json(path, fixture("attach-allowed.json"))
        .await
        .expect("answered");
    let elapsed = started.elapsed();
    (elapsed, response.status().as_u16(), response.into_body())
}

#[tokio::test]
async fn judging_past_the_deadline_is_denied_and_counted() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_millis(200);
        c.fault_injection = FaultInjection::Delay(Duration::from_secs(2));
    })
    .await;
    let (elapsed, status, body) = timed_post(&h, "/validate").await;
    assert_eq!(status, 200);
    // At the 200 ms deadline, not when the 2 s judgement ends.
    assert!(
        elapsed < Duration::from_millis(1500),
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
    // A verdict like any other: counted as denied, its action unknown (the delay comes before
    // classification).
    assert_eq!(
        h.server
            .metrics()
            .reviews_total("validate", "unknown", "denied", "none"),
        1
    );
    let (_, text) = h.admin_get("/metrics").await;
    assert!(
        text.contains("kspy_internal_errors_total{endpoint=\"validate\",reason=\"timeout\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kspy_reviews_total{endpoint=\"validate\",action=\"unknown\",verdict=\"denied\",policy=\"none\"} 1"),
        "{text}"
    );
    h.server.shutdown().await;
}

/// The API server states its own deadline in the URL (`?timeout=3s`, the webhook's
/// `timeoutSeconds`) and gives up at it, applying the failure policy (with `Ignore`, the
/// request passes unjudged). A review is denied within nine tenths of it when that is shorter
/// than `--review-timeout`, with kspy's reason, while the API server still waits.
#[tokio::test]
async fn a_shorter_api_server_timeout_sets_the_deadline() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_secs(9);
        c.fault_injection = FaultInjection::Delay(Duration::from_secs(6));
    })
    .await;
    let (elapsed, status, body) = timed_post(&h, "/validate?timeout=3s").await;
    assert_eq!(status, 200);
    // Never before the 2.7 s deadline, and long before the judgement's 6 s or the configured
    // 9 s: the stated timeout set it. (The message below names the 2.7 s the deadline is; an
    // upper bound within the 0.3 s to the API server's 3 s would only measure the CI machine.)
    assert!(
        elapsed >= Duration::from_millis(2700) && elapsed < Duration::from_millis(4500),
        "answered after {elapsed:?}, not at nine tenths of the API server's 3 s"
    );
    let r = response_of(&body);
    assert_eq!(r["allowed"], false, "fail closed: {r}");
    assert_eq!(
        r["status"]["message"],
        "kspy could not decide within 2.7s (the API server gives up after 3s, the webhook's timeoutSeconds); denied (fail closed)"
    );
    assert_eq!(
        h.server
            .metrics()
            .internal_errors_total("validate", InternalError::Timeout),
        1
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn odd_stated_timeouts_are_judged_under_the_configured_deadline() {
    // A caller writes the query: a stated timeout too large to take nine tenths of by
    // multiplying used to panic the connection's task, which closed without an answer.
    let h = Harness::start().await;
    for query in [
        "timeout=5000000000000000000s",
        "timeout=5000000000000000h",
        "timeout=",
        "timeout=-1s",
        "timeout=1s&timeout=5000000000000000000s",
    ] {
        let mut conn = h.connect(HttpVersion::Http1).await;
        let response = conn
            .post_json(
                &format!("/validate?{query}"),
                fixture("attach-allowed.json"),
            )
            .await
            .unwrap_or_else(|e| panic!("?{query}: no answer: {e}"));
        assert_eq!(response.status().as_u16(), 200, "?{query}");
        let r = response_of(&response.into_body());
        assert_eq!(r["allowed"], true, "?{query}: {r}");
    }
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
    assert_eq!(
        h.server
            .metrics()
            .reviews_total("mutate", "unknown", "denied", "none"),
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
    // Counted as a failed handshake.
    eventually(
        "a failed handshake counted",
        Duration::from_secs(5),
        || async {
            h.server
                .metrics()
                .connections_closed_total(kspy_webhook::metrics::ConnectionClosed::HandshakeFailed)
                == 1
        },
    )
    .await;
    // And the server is fine afterwards.
    let (status, _) = h.post("/validate", fixture("attach-allowed.json")).await;
    assert_eq!(status, 200);
    h.server.shutdown().await;
}

#[tokio::test]
async fn encoded_bodies_get_415_before_they_are_read() {
    let h = Harness::start().await;
    let gzip = Bytes::from_static(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00");
    for (encoding, body) in [
        ("gzip", gzip),
        // A plain body labelled as compressed is not judged as plain either.
        ("br", fixture("attach-allowed.json")),
        ("identity, deflate", fixture("attach-allowed.json")),
    ] {
        let req = hyper::Request::post("/validate")
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(Full::new(body))
            .expect("request");
        // A connection each: the answer comes before the body is read, and ends it.
        let mut conn = h.connect(HttpVersion::Http1).await;
        let resp = conn.send(req).await.expect("response");
        assert_eq!(resp.status().as_u16(), 415, "{encoding}");
        assert_eq!(resp.headers()["accept-encoding"], "identity");
        let line = one_line(resp.body());
        assert!(line.contains("Content-Encoding"), "{line}");
        assert!(line.contains("uncompressed"), "{line}");
    }
    assert_eq!(
        h.server
            .metrics()
            .bad_requests_total("validate", BadRequest::UnsupportedEncoding),
        3
    );
    // `identity` is no encoding at all.
    let req = hyper::Request::post("/validate")
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body(Full::new(fixture("attach-allowed.json")))
        .expect("request");
    let resp = h
        .connect(HttpVersion::Http1)
        .await
        .send(req)
        .await
        .expect("response");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(response_of(resp.body())["allowed"], true);

    // Answered before the body is read: a body that never comes gets 415, not 408.
    let (status, _) = exchange(
        h.server.addr,
        &h.tls,
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: gzip\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 415);
    h.server.shutdown().await;
}

/// `attach-allowed.json` padded with trailing white space to `size` bytes.
fn padded_review(size: usize) -> Vec<u8> {
    let mut body = fixture("attach-allowed.json").to_vec();
    assert!(body.len() < size);
    body.resize(size, b' ');
    body
}

/// Starts a request on a new connection: its head with `Content-Length: body.len()` and the
/// first `sent` bytes of `body`.
async fn start_request(
    h: &Harness,
    body: &[u8],
    sent: usize,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body[..sent]).await.expect("body");
    stream.flush().await.expect("flush");
    stream
}

/// Bodies hold room in the budget for what they have sent. A body finding none waits (over
/// HTTP/1.1) unread and unanswered; once a held body is answered its room goes on, and every
/// body is answered.
#[tokio::test]
async fn bodies_wait_for_room_in_the_buffer_budget_and_none_is_lost() {
    const BODY: usize = 32 * 1024;
    const PART: usize = BODY * 3 / 4;
    let h = Harness::start_with(common::POLICIES, |c| {
        c.max_body_bytes = BODY;
        c.max_buffered_bytes = 2 * BODY;
        c.review_timeout = Duration::from_secs(10);
    })
    .await;
    let metrics = h.server.metrics().clone();
    let body = padded_review(BODY);

    // Two slow bodies, three quarters sent, hold three quarters of the budget.
    let mut a = start_request(&h, &body, PART).await;
    let mut b = start_request(&h, &body, PART).await;
    eventually("two bodies held", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.buffered_body_bytes() == 2 * PART as u64 }
    })
    .await;

    // A third, sent whole, cannot all be given room: taking the last quarter would leave the
    // first two unable to finish. It waits: not read whole, not answered.
    let mut c = start_request(&h, &body, BODY).await;
    eventually("three reviews in flight", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.reviews_in_flight() == 3 }
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), read_response(&mut c))
            .await
            .is_err(),
        "the third body was read while the budget was spent"
    );
    let held = metrics.buffered_body_bytes();
    assert!(
        held >= 2 * PART as u64 && held <= (2 * PART + (BODY - PART)) as u64,
        "held {held}: the third may take only what leaves the others room to finish"
    );

    // The first finishes and is answered; its room goes to the third, which is answered too.
    a.write_all(&body[PART..]).await.expect("rest of a");
    a.flush().await.expect("flush");
    let (status, answer) = read_response(&mut a).await;
    assert_eq!(status, 200);
    assert_eq!(response_of(answer.as_bytes())["allowed"], true);
    let (status, answer) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut c))
        .await
        .expect("the third is answered once room frees");
    assert_eq!(status, 200);
    assert_eq!(response_of(answer.as_bytes())["allowed"], true);
    b.write_all(&body[PART..]).await.expect("rest of b");
    b.flush().await.expect("flush");
    let (status, _) = read_response(&mut b).await;
    assert_eq!(status, 200);

    assert_eq!(metrics.buffered_body_bytes(), 0, "every byte given back");
    assert_eq!(
        metrics.bad_requests_total("validate", BadRequest::BufferFull),
        0
    );
    let (_, text) = h.admin_get("/metrics").await;
    assert!(text.contains("kspy_buffered_body_bytes 0\n"), "{text}");
    h.server.shutdown().await;
}

/// Requests that declare bodies and send nothing hold no room: one HTTP/2 connection of
/// streams with only their HEADERS (no `content-length`, so the largest body each) and
/// HTTP/1.1 requests declaring the largest body leave ordinary reviews, over either protocol,
/// to be read and answered. When room was taken for what a request declared, before any of
/// it came, these held the whole budget and made an ordinary review wait until its deadline.
#[tokio::test]
async fn requests_that_send_nothing_hold_no_room() {
    const BODY: usize = 64 * 1024;
    let h = Harness::start_with(common::POLICIES, |c| {
        c.max_body_bytes = BODY;
        c.max_buffered_bytes = 2 * BODY;
        c.review_timeout = Duration::from_secs(3);
    })
    .await;
    let metrics = h.server.metrics().clone();

    let mut h2 = common::h2::peer(&h).await;
    let block = common::h2::request_headers(true, "/validate");
    for id in (1..20).step_by(2) {
        common::h2::send_frame_on(
            &mut h2,
            id,
            common::h2::HEADERS,
            common::h2::END_HEADERS,
            &block,
        )
        .await;
    }
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(start_request(&h, &padded_review(BODY), 0).await);
    }
    eventually(
        "thirteen silent requests in flight",
        Duration::from_secs(5),
        || {
            let m = metrics.clone();
            async move { m.reviews_in_flight() == 13 }
        },
    )
    .await;
    assert_eq!(metrics.buffered_body_bytes(), 0, "nothing has arrived");

    let (status, answer) = h.post_fixture("/validate", "attach-allowed.json").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(response_of(&answer)["allowed"], true);
    let mut conn = h.connect(HttpVersion::Http2).await;
    let response = conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response_of(response.body())["allowed"], true);
    assert_eq!(
        metrics.bad_requests_total("validate", BadRequest::BufferFull),
        0
    );

    drop((h2, silent));
    eventually("the silent requests ended", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.reviews_in_flight() == 0 }
    })
    .await;
    assert_eq!(metrics.buffered_body_bytes(), 0);
    h.server.shutdown().await;
}

/// A server whose body budget holds one 32 KiB body, and an HTTP/1.1 request holding all of
/// it while it is judged (judging takes 2 s, past the given review deadline if shorter): the
/// server, a body of that size, and that request's stream.
async fn budget_held_by_one_request(
    review_timeout: Duration,
) -> (
    Harness,
    Vec<u8>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    const BODY: usize = 32 * 1024;
    let h = Harness::start_with(common::POLICIES, |c| {
        c.max_body_bytes = BODY;
        c.max_buffered_bytes = BODY;
        c.review_timeout = review_timeout;
        // Judging outlives a short deadline; the body it holds stays reserved until it ends.
        c.fault_injection = FaultInjection::Delay(Duration::from_secs(2));
    })
    .await;
    let metrics = h.server.metrics().clone();
    let body = padded_review(BODY);
    let held = start_request(&h, &body, BODY).await;
    eventually("a body reserved", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.buffered_body_bytes() == BODY as u64 }
    })
    .await;
    (h, body, held)
}

#[tokio::test]
async fn a_body_with_no_room_before_its_deadline_gets_408_and_is_counted() {
    let (h, body, mut a) = budget_held_by_one_request(Duration::from_millis(600)).await;
    let metrics = h.server.metrics().clone();
    let mut c = start_request(&h, &body, body.len()).await;
    let started = Instant::now();
    let (status, line) = read_response(&mut c).await;
    assert_eq!(status, 408, "{line}");
    assert!(line.contains("--max-buffered-bytes"), "{line}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // The first was denied at its deadline (fail closed), its judgement still running.
    let (status, answer) = read_response(&mut a).await;
    assert_eq!(status, 200);
    assert_eq!(response_of(answer.as_bytes())["allowed"], false);
    assert_eq!(
        metrics.bad_requests_total("validate", BadRequest::BufferFull),
        1
    );
    let (_, text) = h.admin_get("/metrics").await;
    assert!(
        text.contains("kspy_bad_requests_total{endpoint=\"validate\",reason=\"buffer-full\"} 1"),
        "{text}"
    );

    // Once that judgement ends the room comes back, and the next body is read.
    eventually("the room given back", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.buffered_body_bytes() == 0 }
    })
    .await;
    let (status, _) = h.post("/validate", Bytes::from(body)).await;
    assert_eq!(
        status, 200,
        "read and judged (denied: the delay outlives the deadline)"
    );
    assert_eq!(
        metrics.bad_requests_total("validate", BadRequest::BufferFull),
        1
    );
    h.server.shutdown().await;
}

/// An HTTP/2 request that finds no room does not wait: its unread data would hold the flow
/// control window its connection's other streams share. It gets 503 with Retry-After at once,
/// counted as buffer-full; an HTTP/2 request that fits goes through as usual.
#[tokio::test]
async fn an_http2_request_without_room_is_refused_at_once() {
    let (h, body, mut a) = budget_held_by_one_request(Duration::from_secs(5)).await;
    let metrics = h.server.metrics().clone();
    let mut conn = h.connect(HttpVersion::Http2).await;
    let started = Instant::now();
    let response = conn
        .post_json("/validate", Bytes::from(body.clone()))
        .await
        .expect("answered");
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = String::from_utf8_lossy(response.body()).into_owned();
    assert!(text.contains("--max-buffered-bytes"), "{text}");
    assert_eq!(
        metrics.bad_requests_total("validate", BadRequest::BufferFull),
        1
    );
    let (status, _) = read_response(&mut a).await;
    assert_eq!(status, 200);
    eventually("the room given back", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.buffered_body_bytes() == 0 }
    })
    .await;
    let response = conn
        .post_json("/validate", Bytes::from(body))
        .await
        .expect("answered");
    assert_eq!(response.status(), 200, "room for it now");
    h.server.shutdown().await;
}

/// A client that sends reviews and goes away before the answers (closes the connection, or
/// resets the HTTP/2 stream) leaves no work behind: its judgements, still queued, are dropped
/// unrun. They used to run all the same, so a client sending reviews and hanging up at once
/// could keep the judging threads busy with work nobody waited for, while the reviews queued
/// behind it ran out of time and were denied.
#[tokio::test]
async fn judgements_nobody_waits_for_any_more_are_not_run() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.judge_threads = 1;
        c.review_timeout = Duration::from_secs(3);
        c.fault_injection = FaultInjection::Delay(Duration::from_secs(1));
    })
    .await;
    // Ten reviews, each on its own connection: one is judged (1 s), nine wait in line.
    let body = fixture("attach-allowed.json");
    let mut gone = Vec::new();
    for _ in 0..10 {
        gone.push(start_request(&h, &body, body.len()).await);
    }
    eventually("ten reviews in flight", Duration::from_secs(5), || async {
        h.server.metrics().reviews_in_flight() == 10
    })
    .await;
    // Their bodies are whole: one is judged, nine wait for the thread.
    eventually("nine judgements queued", Duration::from_secs(5), || async {
        h.admin_get("/metrics")
            .await
            .1
            .lines()
            .any(|l| l == "kspy_judgements_queued 9")
    })
    .await;
    drop(gone);
    eventually("the clients gone", Duration::from_secs(5), || async {
        h.server.metrics().reviews_in_flight() == 0
    })
    .await;
    // Behind nine abandoned judgements (9 s of work, 3 s of deadline) this one would be
    // denied for time; without them it waits for the one being judged at most.
    let (status, answer) = h.post_fixture("/validate", "attach-allowed.json").await;
    assert_eq!(status, 200);
    let r = response_of(&answer);
    assert_eq!(r["allowed"], true, "{r}");
    h.server.shutdown().await;
}

/// hyper takes a chunked body apart and passes on any other transfer coding as it came: a body
/// sent `Transfer-Encoding: gzip, chunked` was read as if it were plain, and judged when it
/// parsed (a compressed one got a confusing "not valid UTF-8"). Such a body gets 501 before it
/// is read, counted as unsupported-encoding; a plain chunked one is judged as before.
#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501() {
    let h = Harness::start().await;
    let body = fixture("attach-allowed.json");
    let send = |coding: &'static str| {
        let body = body.clone();
        let h = &h;
        async move {
            let mut stream = raw_tls(h.server.addr, &h.tls).await;
            let head = format!(
                "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n{:x}\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.expect("head");
            stream.write_all(&body).await.expect("body");
            stream.write_all(b"\r\n0\r\n\r\n").await.expect("end");
            tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
                .await
                .expect("answered")
        }
    };
    let (status, line) = send("gzip, chunked").await;
    assert_eq!(status, 501, "{line}");
    let line = one_line(line.as_bytes());
    assert!(line.contains("Transfer-Encoding gzip"), "{line}");
    assert_eq!(
        h.server
            .metrics()
            .bad_requests_total("validate", BadRequest::UnsupportedEncoding),
        1
    );
    let (status, answer) = send("chunked").await;
    assert_eq!(status, 200);
    assert_eq!(response_of(answer.as_bytes())["allowed"], true);
    h.server.shutdown().await;
}
