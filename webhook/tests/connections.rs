//! Connections held to their limits (`ConnectionLimits`): no more open than the cap, a client
//! that connects and says nothing is closed, an idle HTTP/1.1 keep-alive connection stays open until its own
//! (longer) limit, and an HTTP/2 peer that stops answering pings is dropped while one that
//! answers keeps its idle connection until the idle limit, when it gets a GOAWAY; a request
//! head is at most 16 KiB, and a client that does not read its answers is closed.

mod common;

use std::time::{Duration, Instant};

use common::h2::{
    ACK, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, SETTINGS, Stream, WINDOW_UPDATE,
    next_frame, request_headers, send_frame, send_frame_on,
};
use common::{Harness, eventually, fixture, raw_tls};
use kspy_webhook::client::HttpVersion;
use kspy_webhook::metrics::ConnectionClosed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long after `since` the server closed `stream`; fails if it is still open after 5 s.
/// What the server sent before closing (an HTTP/2 server's SETTINGS, say) is read and dropped:
/// the end of the stream is what counts.
async fn closed_after(stream: &mut Stream, since: Instant, client: &str) -> Duration {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "{client}: still open after 5 s");
    since.elapsed()
}

/// Waits until `kspy_connections_closed_total{reason}` is `n`.
async fn closed_for(h: &Harness, reason: ConnectionClosed, n: u64) {
    let what = format!("{} connections closed for {}", n, reason.label());
    eventually(&what, Duration::from_secs(5), || async {
        h.server.metrics().connections_closed_total(reason) == n
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_closed_after_the_first_request_limit() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.first_request = Duration::from_millis(300)
    })
    .await;
    let roots = || common::ca_roots(&[&h.certs.ca_cert_pem]);
    // Whatever it offers by ALPN: nothing, HTTP/2 (whose handshake had no limit) or HTTP/1.1.
    for alpn in [&[][..], &[&b"h2"[..]][..], &[&b"http/1.1"[..]][..]] {
        let tls = kspy_webhook::tls::client_config(roots(), alpn).expect("client config");
        let mut stream = raw_tls(h.server.addr, &tls).await;
        let started = Instant::now();
        let waited = closed_after(&mut stream, started, &format!("ALPN {alpn:?}")).await;
        assert!(
            waited >= Duration::from_millis(250),
            "ALPN {alpn:?}: closed before the timeout ({waited:?})"
        );
    }
    closed_for(&h, ConnectionClosed::FirstRequestTimeout, 3).await;
    // A client that talks is served as before.
    let (status, _) = h.post("/validate", fixture("attach-allowed.json")).await;
    assert_eq!(status, 200);
    let metrics = h.admin_get("/metrics").await.1;
    assert!(
        metrics.contains("kspy_connections_closed_total{reason=\"first-request-timeout\"} 3\n"),
        "{metrics}"
    );
    h.server.shutdown().await;
}

/// A TCP client that never starts the TLS handshake, and one that stops half-way through it,
/// are closed at the handshake limit, and counted.
#[tokio::test]
async fn a_tls_handshake_that_stalls_is_closed_at_the_handshake_limit() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.handshake = Duration::from_millis(300)
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(h.server.addr)
        .await
        .expect("connect");
    // The first 5 bytes of a ClientHello record: a handshake record follows, then nothing.
    let mut half = tokio::net::TcpStream::connect(h.server.addr)
        .await
        .expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .expect("record header");
    for (stream, client) in [(&mut silent, "silent"), (&mut half, "half a hello")] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf));
        assert!(read.await.is_ok(), "{client}: still open after 5 s");
    }
    closed_for(&h, ConnectionClosed::HandshakeTimeout, 2).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_first_request_limit_until_its_own() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.first_request = Duration::from_millis(200);
        c.connection_limits.keep_alive_idle = Duration::from_millis(1500);
    })
    .await;
    let mut conn = h.connect(HttpVersion::Http1).await;
    let review = || fixture("attach-allowed.json");
    let first = conn.post_json("/validate", review()).await.expect("first");
    assert_eq!(first.status(), 200);
    // Idle for longer than a new connection may stay silent: still served, same connection.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = conn.post_json("/validate", review()).await.expect("second");
    assert_eq!(second.status(), 200);
    // Idle past its own limit: closed by the server, not before the limit.
    let idle_since = Instant::now();
    let deadline = idle_since + Duration::from_secs(10);
    while !conn.is_closed() {
        assert!(
            Instant::now() < deadline,
            "idle keep-alive connection still open after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let idled = idle_since.elapsed();
    assert!(
        idled >= Duration::from_millis(1400),
        "closed after {idled:?} idle, before the 1.5 s keep-alive limit"
    );
    h.server.shutdown().await;
}

/// With every slot taken by a connection with a request in flight, a new client waits: its
/// TCP connection is accepted but its TLS handshake does not start. Once a request ends, that
/// connection, idle now, is closed to make room, and the waiting client is served.
#[tokio::test]
async fn with_every_connection_busy_a_new_client_waits_until_one_is_idle() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.max_connections = 2;
        // Every review is judged for 3 s: long enough to see the third client wait, on a
        // loaded machine too.
        c.fault_injection = kspy_webhook::FaultInjection::Delay(Duration::from_secs(3));
    })
    .await;
    let review = || fixture("attach-allowed.json");
    let mut first = h.connect(HttpVersion::Http1).await;
    let mut second = h.connect(HttpVersion::Http1).await;
    assert_eq!(
        h.server.metrics().connections(),
        (2, 1),
        "(open, times full)"
    );
    let started = Instant::now();
    let busy_first = tokio::spawn(async move {
        let status = first
            .post_json("/validate", fixture("attach-allowed.json"))
            .await;
        (status.expect("served").status(), first)
    });
    let busy_second = tokio::spawn(async move {
        let status = second
            .post_json("/validate", fixture("attach-allowed.json"))
            .await;
        (status.expect("served").status(), second)
    });
    eventually("two reviews in flight", Duration::from_secs(5), || async {
        h.server.metrics().reviews_in_flight() == 2
    })
    .await;

    let addr = h.server.addr;
    let tls = h.tls.clone();
    let third = tokio::spawn(async move {
        let mut conn = kspy_webhook::client::HttpsConnection::connect(
            addr,
            "localhost",
            &tls,
            HttpVersion::Http1,
        )
        .await
        .expect("third connects");
        conn.post_json("/validate", review())
            .await
            .expect("third served")
            .status()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the limit while both others were busy"
    );
    assert_eq!(h.server.metrics().connections(), (2, 1));
    // Both reviews were still in flight when the third was seen waiting (checked after it,
    // so it held at that moment): no clock reading decides this.
    assert!(
        !busy_first.is_finished() && !busy_second.is_finished(),
        "the test ran too slow to tell: a review ended within {:?}",
        started.elapsed()
    );

    // The first two are answered; one of them, idle now, is closed for the third.
    let mut kept = Vec::new();
    for busy in [busy_first, busy_second] {
        let (status, conn) = busy.await.expect("task");
        assert_eq!(status, 200);
        kept.push(conn);
    }
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("third served once a connection was idle")
        .expect("task");
    assert_eq!(status, 200);
    closed_for(&h, ConnectionClosed::Evicted, 1).await;
    // The third took the freed slot at once (still the same stretch at the limit), and has
    // closed since: one connection is left open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.server.metrics().connections() != (1, 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = h.admin_get("/metrics").await.1;
    for line in [
        "kspy_connections_open 1\n",
        "kspy_connection_limit_reached_total 1\n",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    }
    drop(kept);
    h.server.shutdown().await;
}

/// Connections that take every slot and send nothing (not even a TLS handshake) no longer
/// lock others out until their 10 s limits: each newcomer gets the slot of the one idle the
/// longest, and is served at once.
#[tokio::test]
async fn silent_connections_at_the_limit_make_room_for_newcomers() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.max_connections = 3;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            tokio::net::TcpStream::connect(h.server.addr)
                .await
                .expect("connect"),
        );
    }
    eventually("three connections open", Duration::from_secs(5), || async {
        h.server.metrics().connections().0 == 3
    })
    .await;
    for n in 1..=2u64 {
        let started = Instant::now();
        let mut conn = h.connect(HttpVersion::Http1).await;
        let resp = conn
            .post_json("/validate", fixture("attach-allowed.json"))
            .await
            .expect("served");
        assert_eq!(resp.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "served only after {:?}, as a silent connection's limit ran out",
            started.elapsed()
        );
        closed_for(&h, ConnectionClosed::Evicted, n).await;
    }
    // The silent ones closed were the oldest: the first two.
    let mut byte = [0u8; 1];
    for (i, s) in silent.iter_mut().enumerate().take(2) {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut byte))
            .await
            .expect("closed, not waiting");
        assert_eq!(n.ok(), Some(0), "silent connection {i} closed");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_request_head_left_unfinished_is_closed_after_the_head_limit() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.request_head = Duration::from_millis(300);
    })
    .await;
    let tls = h.tls.clone();
    // A head sent whole but for its blank line, then one sent a byte every 50 ms: each is
    // closed once its head has taken the limit, long before the 120 s idle limit.
    for trickle in [false, true] {
        let mut stream = raw_tls(h.server.addr, &tls).await;
        let started = Instant::now();
        let head = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        if trickle {
            for b in head {
                if stream.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            stream.write_all(head).await.expect("head");
        }
        let took = closed_after(&mut stream, started, &format!("trickle {trickle}")).await;
        assert!(
            took >= Duration::from_millis(250),
            "trickle {trickle}: closed before the limit ({took:?})"
        );
    }
    closed_for(&h, ConnectionClosed::HeadTimeout, 2).await;
    // A client that finishes its head is served; idle afterwards, longer than the head limit,
    // it is still served.
    let mut conn = h.connect(HttpVersion::Http1).await;
    let first = conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await;
    assert_eq!(first.expect("served").status(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await;
    assert_eq!(second.expect("served after idling").status(), 200);
    h.server.shutdown().await;
}

/// What an idle HTTP/2 client saw.
struct IdlePeer {
    /// PINGs the server sent.
    pings: usize,
    /// Whether the server closed the connection.
    closed: bool,
    /// Whether the server sent a GOAWAY first.
    goaway: bool,
}

/// Plays an idle HTTP/2 client for at most `for_at_most`: acknowledges the server's
/// SETTINGS, and its PINGs when `answer_pings`.
async fn idle_h2_client(h: &Harness, answer_pings: bool, for_at_most: Duration) -> IdlePeer {
    let mut stream = common::h2::peer(h).await;
    let mut seen = IdlePeer {
        pings: 0,
        closed: false,
        goaway: false,
    };
    let deadline = tokio::time::Instant::now() + for_at_most;
    loop {
        let frame = match tokio::time::timeout_at(deadline, next_frame(&mut stream)).await {
            Err(_) => return seen,
            Ok(None) => {
                seen.closed = true;
                return seen;
            }
            Ok(Some(frame)) => frame,
        };
        match frame {
            (GOAWAY, _, _) => seen.goaway = true,
            (SETTINGS, flags, _) if flags & ACK == 0 => {
                send_frame(&mut stream, SETTINGS, ACK, &[]).await;
            }
            (PING, flags, payload) if flags & ACK == 0 => {
                seen.pings += 1;
                if answer_pings {
                    send_frame(&mut stream, PING, ACK, &payload).await;
                }
            }
            _ => {}
        }
    }
}

async fn pinging_every_200ms() -> Harness {
    pinging_every_200ms_idle_for(Duration::from_secs(120)).await
}

async fn pinging_every_200ms_idle_for(idle: Duration) -> Harness {
    Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.keep_alive_idle = idle;
        c.connection_limits.http2_ping_interval = Duration::from_millis(200);
        // A peer that answers has a second to do so: the test's client shares a loaded
        // machine (and this runtime) with the server.
        c.connection_limits.http2_ping_timeout = Duration::from_secs(1);
        // HTTP/1.1's request-head limit does not apply to HTTP/2 frames.
        c.connection_limits.request_head = Duration::from_millis(100);
    })
    .await
}

#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_dropped() {
    let h = pinging_every_200ms().await;
    let started = Instant::now();
    let IdlePeer { pings, closed, .. } = idle_h2_client(&h, false, Duration::from_secs(5)).await;
    assert!(closed, "still open after 5 s ({pings} pings)");
    assert!(pings >= 1, "closed without a ping");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before a ping could time out: {:?}",
        started.elapsed()
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_http2_peer_that_answers_pings_keeps_its_idle_connection() {
    let h = pinging_every_200ms().await;
    let IdlePeer { pings, closed, .. } =
        idle_h2_client(&h, true, Duration::from_millis(1500)).await;
    assert!(!closed, "closed after {pings} answered pings");
    assert!(pings >= 3, "only {pings} pings in 1.5 s");
    h.server.shutdown().await;
}

/// Answering pings proves the peer is there, not that it needs the connection: an HTTP/2
/// connection with no request for the idle limit is closed with a GOAWAY, so that idle peers
/// cannot hold every connection slot. One that keeps asking is served on, past the limit.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_at_the_idle_limit_though_it_answers_pings() {
    let h = pinging_every_200ms_idle_for(Duration::from_secs(1)).await;
    let started = Instant::now();
    let seen = idle_h2_client(&h, true, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(seen.closed, "still open after 5 s ({} pings)", seen.pings);
    assert!(seen.goaway, "closed without a GOAWAY");
    assert!(seen.pings >= 2, "only {} pings before closing", seen.pings);
    assert!(took >= Duration::from_secs(1), "closed after {took:?}");

    let mut conn = h.connect(HttpVersion::Http2).await;
    for i in 0..6 {
        let resp = conn
            .post_json("/validate", fixture("attach-allowed.json"))
            .await;
        assert_eq!(resp.expect("served").status(), 200, "request {i}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    h.server.shutdown().await;
}

const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 4;

/// What an HTTP/2 client may send before kspy reads any of it is held by hyper, outside the
/// body budget (`--max-buffered-bytes`): with hyper's default windows (1 MiB) sixty uploads
/// waiting for room held 100 MiB. The server grants no more than the protocol's initial
/// window, per stream and per connection.
#[tokio::test]
async fn an_http2_client_may_send_at_most_64_kib_unread() {
    let h = Harness::start().await;
    let mut stream = common::h2::peer(&h).await;
    // The protocol's defaults, until the server says otherwise.
    let (mut stream_window, mut connection_window) = (65_535u64, 65_535u64);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some((kind, flags, payload))) =
        tokio::time::timeout_at(deadline, next_frame(&mut stream)).await
    {
        match kind {
            SETTINGS if flags & ACK == 0 => {
                for setting in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                    if id == SETTINGS_INITIAL_WINDOW_SIZE {
                        stream_window = u64::from(value);
                    }
                }
                send_frame(&mut stream, SETTINGS, ACK, &[]).await;
            }
            // A WINDOW_UPDATE on stream 0 widens the connection's window.
            WINDOW_UPDATE if payload.len() == 4 => {
                let increment =
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
                connection_window += u64::from(increment);
            }
            _ => {}
        }
    }
    drop(stream);
    let window = 65_535u64;
    assert!(
        stream_window <= window,
        "a stream may send {stream_window} bytes unread"
    );
    assert!(
        connection_window <= window,
        "a connection may send {connection_window} bytes unread"
    );
    h.server.shutdown().await;
}

/// A request head is at most 16 KiB: hyper's HTTP/1.1 default let a connection hold about
/// 400 KiB of an unfinished head, so `--max-connections` clients each sending one could hold
/// 400 MiB, far over the pod's memory limit. A head that does not end within 16 KiB gets 431
/// and the connection is closed; a large head within it is served.
#[tokio::test]
async fn an_http1_request_head_over_16_kib_gets_431() {
    let h = Harness::start().await;
    let review = fixture("attach-allowed.json");
    let head = |filler: usize| {
        format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Filler: {}\r\n\r\n",
            review.len(),
            "a".repeat(filler)
        )
    };

    // 12 KiB of header: served.
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    stream
        .write_all(head(12 * 1024).as_bytes())
        .await
        .expect("head");
    stream.write_all(&review).await.expect("body");
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.expect("answer");
    assert_eq!(
        &answer,
        b"HTTP/1.1 200",
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // 20 KiB of header, its end never sent: 431 at once, and closed.
    let big = head(20 * 1024);
    let (status, _) =
        common::exchange(h.server.addr, &h.tls, &big.as_bytes()[..big.len() - 4]).await;
    assert_eq!(status, 431);
    closed_for(&h, ConnectionClosed::HeadTooLarge, 1).await;

    // A head hyper cannot parse gets its bare 400, and is counted as such.
    for malformed in [
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let (status, _) = common::exchange(h.server.addr, &h.tls, malformed.as_bytes()).await;
        assert_eq!(status, 400, "{malformed}");
    }
    closed_for(&h, ConnectionClosed::HeadMalformed, 2).await;
    h.server.shutdown().await;
}

/// A client that sends requests and never reads the answers: once the socket buffers are full
/// the server's write waits, and with no limit on it the connection stayed open for ever (its
/// idle timer does not run while an answer is being written). It is closed once a write has
/// waited for the write limit.
#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed_at_the_write_limit() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.write_stall = Duration::from_millis(300);
    })
    .await;
    // A small receive buffer, so that the server's answers back up soon.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = socket.connect(h.server.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(h.tls.clone()))
        .connect(name, tcp)
        .await
        .expect("handshake");
    // Pipelined requests (each answered 404, nothing judged) until the server stops taking
    // them: it is then waiting to write, or has closed.
    let batch = b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(1000);
    while let Ok(Ok(())) =
        tokio::time::timeout(Duration::from_secs(1), stream.write_all(&batch)).await
    {}
    common::eventually("the connection closed", Duration::from_secs(10), || async {
        h.server.metrics().connections().0 == 0
    })
    .await;
    closed_for(&h, ConnectionClosed::WriteStall, 1).await;
    drop(stream);
    h.server.shutdown().await;
}

const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 3;

/// The server's SETTINGS, read from a new HTTP/2 connection: (identifier, value) pairs.
async fn server_settings(h: &Harness) -> Vec<(u16, u32)> {
    let mut stream = common::h2::peer(h).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some((kind, flags, payload))) =
        tokio::time::timeout_at(deadline, next_frame(&mut stream)).await
    {
        if kind == SETTINGS && flags & ACK == 0 {
            return payload
                .chunks_exact(6)
                .map(|s| {
                    (
                        u16::from_be_bytes([s[0], s[1]]),
                        u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                    )
                })
                .collect();
        }
    }
    panic!("no SETTINGS from the server");
}

/// A stream holds its answer until the client's window lets it out, and a client may open no
/// window at all: with hyper's default of 200 streams a connection held 316 KiB that way. A
/// client may have at most 16 requests open on a connection.
#[tokio::test]
async fn an_http2_client_may_have_at_most_16_requests_open_at_once() {
    let h = Harness::start().await;
    let settings = server_settings(&h).await;
    assert!(
        settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 16)),
        "{settings:?}"
    );
    h.server.shutdown().await;
}

/// An HTTP/2 client that asks, opens no flow-control window for the answers and answers
/// pings: the connection goes idle and is sent a GOAWAY, and closing waits for the answers
/// to go out, which never happens. It used to stay open for ever; it is closed once the
/// client has taken none of them for the write limit.
#[tokio::test]
async fn an_idle_http2_connection_whose_answers_are_never_taken_is_closed() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.keep_alive_idle = Duration::from_millis(500);
        c.connection_limits.write_stall = Duration::from_millis(300);
        c.connection_limits.http2_ping_interval = Duration::from_millis(200);
    })
    .await;
    let mut stream = common::h2::peer(&h).await;
    // The client's SETTINGS again, with a stream window of 0, and one request: HEADERS
    // (END_HEADERS, END_STREAM) for GET /nothing, in HPACK without indexing or Huffman.
    let initial_window_0 = [0, 4, 0, 0, 0, 0];
    send_frame(&mut stream, SETTINGS, 0, &initial_window_0).await;
    let block = request_headers(false, "/nothing");
    send_frame_on(&mut stream, 1, HEADERS, END_HEADERS | END_STREAM, &block).await;

    let started = Instant::now();
    let mut seen = Vec::new();
    let closed = loop {
        let frame =
            match tokio::time::timeout(Duration::from_secs(5), next_frame(&mut stream)).await {
                Err(_) => break false,
                Ok(None) => break true,
                Ok(Some(frame)) => frame,
            };
        seen.push(frame.0);
        match frame {
            (SETTINGS, flags, _) if flags & ACK == 0 => {
                send_frame(&mut stream, SETTINGS, ACK, &[]).await;
            }
            (PING, flags, payload) if flags & ACK == 0 => {
                send_frame(&mut stream, PING, ACK, &payload).await;
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
    };
    assert!(closed, "still open after 10 s; frames seen: {seen:?}");
    assert!(seen.contains(&GOAWAY), "closed without a GOAWAY: {seen:?}");
    assert!(
        !seen.contains(&0),
        "the answer's DATA went out through a shut window: {seen:?}"
    );
    closed_for(&h, ConnectionClosed::WriteStall, 1).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_unfinished_http2_preface_is_closed_at_the_first_request_limit() {
    // The first bytes of the preface, then nothing: they used to make the connection HTTP/2
    // at once, watched by nothing but the idle limit (120 s).
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.first_request = Duration::from_millis(300)
    })
    .await;
    let tls = kspy_webhook::tls::client_config(common::ca_roots(&[&h.certs.ca_cert_pem]), &[b"h2"])
        .expect("client config");
    for part in [&b"PRI "[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n"] {
        let mut stream = raw_tls(h.server.addr, &tls).await;
        let started = Instant::now();
        stream.write_all(part).await.expect("part of the preface");
        stream.flush().await.expect("flush");
        closed_after(&mut stream, started, &String::from_utf8_lossy(part)).await;
    }
    closed_for(&h, ConnectionClosed::FirstRequestTimeout, 2).await;
    // A whole preface is HTTP/2, served as before.
    let mut stream = common::h2::peer(&h).await;
    send_frame_on(
        &mut stream,
        1,
        HEADERS,
        END_HEADERS | END_STREAM,
        &request_headers(false, "/nope"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut headers = false;
    while let Some((kind, _, _)) =
        tokio::time::timeout(Duration::from_secs(5), next_frame(&mut stream))
            .await
            .expect("a frame within 5 s")
    {
        if kind == HEADERS {
            headers = true;
            break;
        }
    }
    assert!(headers, "the request was answered");
    drop(stream);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_body_sent_after_100_continue_has_the_review_deadline_not_the_head_limit() {
    // A client that asks before sending its body (curl does for large ones) gets
    // `100 Continue`; the body that follows was then watched as the next request's head and
    // cut off at the head limit, though the review deadline allowed it.
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_secs(20);
        c.connection_limits.request_head = Duration::from_millis(300);
    })
    .await;
    let body = fixture("attach-allowed.json");
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.flush().await.expect("flush");
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut interim))
        .await
        .expect("100 Continue within 5 s")
        .expect("read");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&body[..100]).await.expect("some body");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stream.write_all(&body[100..]).await.expect("the rest");
    stream.flush().await.expect("flush");
    let (status, answer) =
        tokio::time::timeout(Duration::from_secs(5), common::read_response(&mut stream))
            .await
            .expect("answered within 5 s");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(common::response_of(answer.as_bytes())["allowed"], true);
    assert_eq!(
        h.server
            .metrics()
            .connections_closed_total(ConnectionClosed::HeadTimeout),
        0
    );
    h.server.shutdown().await;
}
