//! Graceful shutdown: a review in flight when shutdown starts is answered; readiness fails
//! first; the real binary does the same on SIGTERM.

mod common;

use std::time::Duration;

use common::{
    Harness, WebhookProcess, admin_get, eventually, fixture, fixture_uid, raw_tls, read_response,
    response_of,
};
use kspy_webhook::client::{HttpVersion, HttpsConnection};
use tokio::io::AsyncWriteExt;

/// Sends the headers and the first half of `body`; the rest is sent by the caller.
async fn start_request(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    body: &[u8],
) -> usize {
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let half = body.len() / 2;
    stream.write_all(&body[..half]).await.expect("first half");
    stream.flush().await.expect("flush");
    half
}

#[tokio::test]
async fn a_review_in_flight_at_shutdown_completes() {
    let h = Harness::start().await;
    let body = fixture("attach-allowed.json");
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    let half = start_request(&mut stream, &body).await;
    let metrics = h.server.metrics().clone();
    eventually("the review is in flight", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.render().contains("kspy_reviews_in_flight 1\n") }
    })
    .await;

    let admin = h.server.admin_addr;
    let addr = h.server.addr;
    let handle = h.server.shutdown_handle();
    handle.shutdown();
    let stopping = tokio::spawn(h.server.shutdown());
    eventually(
        "readiness fails once shutdown starts",
        Duration::from_secs(5),
        || async { admin_get(admin, "/readyz").await.0 == 503 },
    )
    .await;
    assert_eq!(
        admin_get(admin, "/healthz").await.0,
        200,
        "still alive while draining"
    );
    // The listener is closed: new connections are refused.
    eventually(
        "new connections are refused",
        Duration::from_secs(5),
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;

    stream.write_all(&body[half..]).await.expect("second half");
    stream.flush().await.expect("flush");
    let (status, answer) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    let r = response_of(answer.as_bytes());
    assert_eq!(r["uid"], fixture_uid("attach-allowed.json"));
    assert_eq!(r["allowed"], true);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .expect("shutdown task");
}

#[tokio::test]
async fn the_shutdown_delay_keeps_serving_while_not_ready() {
    let h = Harness::start_with(common::POLICIES, |c| {
        // Long enough for a TLS handshake and a review on a loaded machine.
        c.shutdown_delay = Duration::from_secs(2)
    })
    .await;
    let (admin, addr) = (h.server.admin_addr, h.server.addr);
    h.server.shutdown_handle().shutdown();
    assert_eq!(admin_get(admin, "/readyz").await.0, 503);
    let mut conn = HttpsConnection::connect(addr, "localhost", &h.tls, HttpVersion::Http1)
        .await
        .expect("still accepting during the delay");
    let resp = conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("served");
    assert_eq!(resp.status(), 200);
    h.server.wait().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_the_binary_finish_the_review_in_flight_and_exit_zero() {
    let webhook = WebhookProcess::spawn(&[]);
    let (addr, admin) = (webhook.addr, webhook.admin);
    let mut lines = webhook.lines.iter();
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    let tls = webhook.tls.clone();
    let body = fixture("attach-allowed.json");
    let mut stream = raw_tls(addr, &tls).await;
    let half = start_request(&mut stream, &body).await;
    eventually(
        "the review is in flight",
        Duration::from_secs(5),
        || async {
            admin_get(admin, "/metrics")
                .await
                .1
                .contains("kspy_reviews_in_flight 1\n")
        },
    )
    .await;

    webhook.terminate();
    let logs: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.contains("shutting down"))
        .collect();
    assert!(logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");

    stream.write_all(&body[half..]).await.expect("second half");
    stream.flush().await.expect("flush");
    let (code, answer) = read_response(&mut stream).await;
    assert_eq!(code, 200);
    assert_eq!(response_of(answer.as_bytes())["allowed"], true);

    let rest: Vec<String> = lines.collect();
    let exit = webhook.wait().await;
    assert!(exit.success(), "{exit:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

/// Waits (at most 10 s) for a log line holding `text`; the lines read until then included.
fn line_with(
    lines: &std::sync::mpsc::Receiver<String>,
    text: &str,
    seen: &mut Vec<String>,
) -> Option<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let line = lines.recv_timeout(left).ok()?;
        seen.push(line.clone());
        if line.contains(text) {
            return Some(line);
        }
    }
    None
}

/// SIGHUP's default action killed the process at once (no drain, no log line); it is now
/// logged and ignored. A second SIGTERM while stopping was silently ignored; it is now
/// logged as such, and the stop goes on.
#[cfg(unix)]
#[tokio::test]
async fn sighup_is_ignored_with_a_log_line_and_a_second_sigterm_says_already_stopping() {
    let webhook = WebhookProcess::spawn_with("json", &[], &["--shutdown-delay", "1500ms"]);
    let admin = webhook.admin;
    let mut seen = Vec::new();

    webhook.signal("HUP");
    let line = line_with(&webhook.lines, "SIGHUP", &mut seen)
        .unwrap_or_else(|| panic!("no SIGHUP line: {seen:?}"));
    assert!(line.contains("reload on their own"), "{line}");
    assert_eq!(admin_get(admin, "/readyz").await.0, 200, "still serving");

    webhook.terminate();
    line_with(&webhook.lines, "shutting down", &mut seen)
        .unwrap_or_else(|| panic!("no shutdown: {seen:?}"));
    webhook.terminate();
    let line = line_with(&webhook.lines, "already stopping", &mut seen)
        .unwrap_or_else(|| panic!("no 'already stopping' line: {seen:?}"));
    assert!(line.contains("SIGTERM"), "{line}");
    line_with(&webhook.lines, "\"stopped\"", &mut seen)
        .unwrap_or_else(|| panic!("the stop did not finish: {seen:?}"));
    let exit = webhook.wait().await;
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_connections_with_no_request() {
    // Idle keep-alive connections on both protocols, and a client that connected and has not
    // started its TLS handshake: none has a request, so none holds the shutdown. The last one
    // used to hold it until the 10 s handshake limit.
    let h = Harness::start().await;
    let mut http1 = h.connect(HttpVersion::Http1).await;
    let answer = http1
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("http/1.1 review");
    assert_eq!(answer.status().as_u16(), 200);
    let mut http2 = HttpsConnection::connect(
        h.server.addr,
        "localhost",
        &kspy_webhook::tls::client_config(common::ca_roots(&[&h.certs.ca_cert_pem]), &[b"h2"])
            .expect("h2 client config"),
        HttpVersion::Http2,
    )
    .await
    .expect("h2 connect");
    let answer = http2
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("h2 review");
    assert_eq!(answer.status().as_u16(), 200);
    let _silent = tokio::net::TcpStream::connect(h.server.addr)
        .await
        .expect("connect");
    let metrics = h.server.metrics().clone();
    eventually("three connections open", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.render().contains("kspy_connections_open 3\n") }
    })
    .await;

    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), h.server.shutdown())
        .await
        .expect("shutdown completes");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
}

/// Reads one HTTP/1.1 response (with a Content-Length) off a keep-alive stream: status,
/// whether it says `Connection: close`, and the body.
async fn read_one(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> (u16, bool, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().expect("status");
                let close = head.lines().any(|l| l == "connection: close");
                return (status, close, buf[end + 4..end + 4 + len].to_vec());
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// SIGTERM with many reviews in flight on keep-alive connections, and idle ones beside them:
/// each review in flight is answered (saying the connection closes), the idle connections are
/// closed, new connections are refused, and the process exits 0 once the last answer is out,
/// well within its grace period. One client that never sends the rest of its body holds the
/// exit to the grace period and no longer.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_review_in_flight_and_exits_within_the_grace() {
    const BUSY: usize = 16;
    const IDLE: usize = 4;
    let grace = Duration::from_secs(3);
    let webhook = WebhookProcess::spawn_with("json", &[], &["--shutdown-grace", "3s"]);
    let (addr, admin, tls) = (webhook.addr, webhook.admin, webhook.tls.clone());
    let body = fixture("attach-allowed.json");
    let uid = fixture_uid("attach-allowed.json");

    // Every connection has served one review, so it is a keep-alive one.
    let mut busy = Vec::new();
    let mut idle = Vec::new();
    for i in 0..BUSY + IDLE + 1 {
        let mut stream = raw_tls(addr, &tls).await;
        let head = format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body).await.expect("body");
        let (status, close, _) = read_one(&mut stream).await;
        assert_eq!((status, close), (200, false), "connection {i}");
        if i < BUSY + 1 {
            let half = start_request(&mut stream, &body).await;
            busy.push((stream, half));
        } else {
            idle.push(stream);
        }
    }
    // The last busy one never finishes its body.
    let (mut stuck, _) = busy.pop().expect("the stuck one");
    eventually(
        "the reviews are in flight",
        Duration::from_secs(10),
        || async {
            admin_get(admin, "/metrics")
                .await
                .1
                .contains(&format!("kspy_reviews_in_flight {}\n", BUSY + 1))
        },
    )
    .await;

    let signalled = std::time::Instant::now();
    webhook.terminate();
    let mut seen = Vec::new();
    line_with(&webhook.lines, "shutting down", &mut seen)
        .unwrap_or_else(|| panic!("no shutdown line: {seen:?}"));
    eventually(
        "new connections are refused",
        Duration::from_secs(2),
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
    for mut stream in idle {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), async {
            use tokio::io::AsyncReadExt;
            let _ = stream.read_to_end(&mut rest).await;
        })
        .await;
        assert!(
            read.is_ok() && rest.is_empty(),
            "an idle connection is closed: {rest:?}"
        );
    }
    let answers: Vec<_> = busy
        .into_iter()
        .map(|(mut stream, half)| {
            let body = body.clone();
            tokio::spawn(async move {
                stream.write_all(&body[half..]).await.expect("second half");
                stream.flush().await.expect("flush");
                let answer = read_one(&mut stream).await;
                let mut after = Vec::new();
                use tokio::io::AsyncReadExt;
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut after))
                        .await;
                (answer, after)
            })
        })
        .collect();
    for answer in answers {
        let ((status, close, body), after) = answer.await.expect("client");
        assert_eq!(status, 200);
        assert!(close, "the answer says the connection closes");
        let r = response_of(&body);
        assert_eq!(r["uid"], uid.as_str());
        assert_eq!(r["allowed"], true);
        assert!(after.is_empty(), "nothing after the answer: {after:?}");
    }
    let exit = tokio::time::timeout(grace + Duration::from_secs(5), webhook.wait())
        .await
        .expect("exits after the grace period");
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        took >= grace - Duration::from_millis(200) && took < grace + Duration::from_secs(3),
        "exit {took:?} after SIGTERM (grace {grace:?})"
    );
    stuck.write_all(b"x").await.ok();
}

/// Shutdown with reviews being judged on one HTTP/2 connection (as many streams as it may
/// have open) and on HTTP/1.1 keep-alive connections: every one is answered with its verdict,
/// none is cut off or denied for the shutdown, the connections close after, and the
/// shutdown ends once the last answer is out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_review_being_judged_on_both_protocols() {
    let judging = Duration::from_millis(1500);
    let h = Harness::start_with(common::POLICIES, |c| {
        c.fault_injection = kspy_webhook::FaultInjection::Delay(judging);
        c.judge_threads = 40;
        c.shutdown_grace = Duration::from_secs(8);
    })
    .await;
    let h2_tls =
        kspy_webhook::tls::client_config(common::ca_roots(&[&h.certs.ca_cert_pem]), &[b"h2"])
            .expect("h2 client config");
    let h2 = HttpsConnection::connect(h.server.addr, "localhost", &h2_tls, HttpVersion::Http2)
        .await
        .expect("h2 connect");
    let mut reviews = Vec::new();
    for i in 0..16 {
        let mut conn = h2.try_clone().expect("h2 handle");
        reviews.push(tokio::spawn(async move {
            let name = if i % 2 == 0 {
                "attach-allowed.json"
            } else {
                "attach-denied.json"
            };
            (name, conn.post_json("/validate", fixture(name)).await)
        }));
    }
    for i in 0..8 {
        let mut conn = h.connect(HttpVersion::Http1).await;
        reviews.push(tokio::spawn(async move {
            let name = if i % 2 == 0 {
                "attach-allowed.json"
            } else {
                "attach-denied.json"
            };
            (name, conn.post_json("/validate", fixture(name)).await)
        }));
    }
    let metrics = h.server.metrics().clone();
    eventually("every review is in flight", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.render().contains("kspy_reviews_in_flight 24\n") }
    })
    .await;
    let started = std::time::Instant::now();
    let addr = h.server.addr;
    let stopping = tokio::spawn(h.server.shutdown());
    eventually(
        "new connections are refused",
        Duration::from_secs(2),
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
    for review in reviews {
        let (name, answer) = review.await.expect("client");
        let answer = answer.unwrap_or_else(|e| panic!("{name}: cut off by the shutdown: {e}"));
        assert_eq!(answer.status(), 200, "{name}");
        let r = response_of(answer.body());
        assert_eq!(r["uid"], fixture_uid(name));
        assert_eq!(r["allowed"], name == "attach-allowed.json", "{name}: {r}");
    }
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the shutdown ends after the last answer")
        .expect("shutdown task");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the shutdown took {:?} for reviews judged in {judging:?}",
        started.elapsed()
    );
    assert!(
        h2.is_closed(),
        "the HTTP/2 connection is closed after its answers"
    );
    assert_eq!(
        metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("kspy_internal_errors_total{"))
            .count(),
        0,
        "none was denied for the shutdown"
    );
}
