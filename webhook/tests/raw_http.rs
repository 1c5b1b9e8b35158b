//! Hand-written HTTP/1.1 over TLS that clients other than the API server might send: pipelined
//! reviews, a body framed two ways at once, lengths that lie, `Expect: 100-continue` with no
//! body, header floods. Each gets well-formed answers, a request framed ambiguously never
//! lets a second one through on its connection, and the server keeps serving.

mod common;

use std::time::Duration;

use common::{Harness, fixture, fixture_uid, raw_tls};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One parsed response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn uid(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["response"]["uid"].as_str().map(str::to_owned)
    }
}

/// Splits what a connection sent back into responses; panics on anything that is not
/// well-formed HTTP/1.1 with a Content-Length.
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let text = String::from_utf8_lossy(bytes);
        let end = text
            .find("\r\n\r\n")
            .unwrap_or_else(|| panic!("a response head without its end: {text:?}"));
        let head = &text[..end];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
        let status = status_line[9..12].parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("length"))
            .unwrap_or(0);
        let rest = &bytes[end + 4..];
        assert!(rest.len() >= len, "a body cut short: {text:?}");
        out.push(Answer {
            status,
            headers,
            body: rest[..len].to_vec(),
        });
        bytes = &rest[len..];
    }
    out
}

/// Sends `bytes` on a new connection, half-closes nothing, and reads until the server closes
/// (within 5 s): the responses.
async fn send(h: &Harness, bytes: &[u8]) -> Vec<Answer> {
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.read_to_end(&mut buf).await;
    })
    .await;
    assert!(
        read.is_ok(),
        "not closed within 5 s; so far {:?}",
        String::from_utf8_lossy(&buf)
    );
    answers(&buf)
}

fn post(body: &[u8], extra: &str) -> Vec<u8> {
    let mut out = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn chunked(body: &[u8], extra: &str) -> Vec<u8> {
    let mut out = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n{extra}\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

#[tokio::test]
async fn pipelined_reviews_are_answered_in_order() {
    let h = Harness::start().await;
    let mut bytes = post(&fixture("attach-allowed.json"), "");
    bytes.extend(chunked(&fixture("attach-denied.json"), ""));
    bytes.extend(post(
        &fixture("create-plain-pod.json"),
        "Connection: close\r\n",
    ));
    let got = send(&h, &bytes).await;
    let uids: Vec<_> = got.iter().map(Answer::uid).collect();
    assert_eq!(
        uids,
        [
            Some(fixture_uid("attach-allowed.json")),
            Some(fixture_uid("attach-denied.json")),
            Some(fixture_uid("create-plain-pod.json")),
        ],
        "{got:?}"
    );
    assert!(got.iter().all(|a| a.status == 200), "{got:?}");
    h.server.shutdown().await;
}

/// RFC 9112 §6.1: a request with both Content-Length and Transfer-Encoding is answered (by
/// its chunks, or refused), and then the connection closes: what follows on it, framed by the
/// other length, is never read as a request (request smuggling).
#[tokio::test]
async fn a_body_framed_two_ways_closes_the_connection_after_its_answer() {
    let h = Harness::start().await;
    let smuggled = post(&fixture("attach-allowed.json"), "");
    let review = fixture("attach-denied.json");
    // Content-Length counts the chunked body and the request behind it.
    let chunks = {
        let mut c = format!("{:x}\r\n", review.len()).into_bytes();
        c.extend_from_slice(&review);
        c.extend_from_slice(b"\r\n0\r\n\r\n");
        c
    };
    for (first, second) in [
        ("Transfer-Encoding: chunked", "Content-Length"),
        ("Content-Length", "Transfer-Encoding: chunked"),
    ] {
        let length = format!("Content-Length: {}", chunks.len() + smuggled.len());
        let header = |h: &str| {
            if h == "Content-Length" {
                length.clone()
            } else {
                h.to_owned()
            }
        };
        let mut bytes = format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\n{}\r\n{}\r\n\r\n",
            header(first),
            header(second)
        )
        .into_bytes();
        bytes.extend_from_slice(&chunks);
        bytes.extend_from_slice(&smuggled);
        let got = send(&h, &bytes).await;
        assert_eq!(
            got.len(),
            1,
            "one answer, then the connection closes: {got:?}"
        );
        assert!(
            got[0].status == 400
                || (got[0].status == 200
                    && got[0].uid() == Some(fixture_uid("attach-denied.json"))),
            "{got:?}"
        );
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn lying_lengths_and_bad_chunks_get_well_formed_refusals() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.review_timeout = Duration::from_secs(1);
    })
    .await;
    let review = fixture("attach-allowed.json");
    let head = |extra: &str| {
        format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}\r\n"
        )
    };
    let with_body = |extra: &str, body: &[u8]| {
        let mut b = head(extra).into_bytes();
        b.extend_from_slice(body);
        b
    };
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "a chunk size that is no number",
            with_body("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
            &[400],
        ),
        (
            "a chunk size past u64",
            with_body(
                "Transfer-Encoding: chunked\r\n",
                b"fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
            ),
            &[400],
        ),
        (
            "a negative chunk size",
            with_body("Transfer-Encoding: chunked\r\n", b"-1\r\n{}\r\n0\r\n\r\n"),
            &[400],
        ),
        (
            "a chunk longer than its size",
            with_body(
                "Transfer-Encoding: chunked\r\n",
                b"2\r\n{}}}}}\r\n0\r\n\r\n",
            ),
            &[400],
        ),
        (
            "a chunk size past --max-body-bytes",
            with_body("Transfer-Encoding: chunked\r\n", b"7fffffff\r\n{}"),
            &[413, 408],
        ),
        (
            "a Content-Length shorter than the body",
            with_body(
                &format!("Content-Length: {}\r\n", review.len() / 2),
                &review,
            ),
            &[400],
        ),
        (
            "a Content-Length longer than the body",
            with_body(
                &format!("Content-Length: {}\r\n", review.len() * 2),
                &review,
            ),
            &[408],
        ),
        (
            "two different Content-Lengths",
            with_body("Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x"),
            &[400],
        ),
        (
            "a Content-Length with a sign",
            with_body("Content-Length: +2\r\n", b"{}"),
            &[400],
        ),
        (
            "a Content-Length in hex",
            with_body("Content-Length: 0x2\r\n", b"{}"),
            &[400],
        ),
        (
            "a huge Content-Length",
            with_body("Content-Length: 99999999999999999999999\r\n", b"{}"),
            &[400, 413],
        ),
        (
            "Expect: 100-continue and no body",
            head(&format!(
                "Expect: 100-continue\r\nContent-Length: {}\r\n",
                review.len()
            ))
            .into_bytes(),
            &[408],
        ),
        (
            "a flood of small header fields",
            head(
                &(0..2000)
                    .map(|i| format!("X-{i}: y\r\n"))
                    .collect::<String>(),
            )
            .into_bytes(),
            &[431],
        ),
        (
            // Read as hyper reads it (lenient, as most servers are): a request like another.
            "a bare LF between header fields",
            b"POST /validate HTTP/1.1\nHost: localhost\nConnection: close\nContent-Length: 2\n\n{}"
                .to_vec(),
            &[400],
        ),
        (
            "an obsolete folded header field",
            with_body("Content-Length: 2\r\nX-Folded: a\r\n b\r\n", b"{}"),
            &[400],
        ),
        (
            "chunked in HTTP/1.0",
            {
                let mut b = chunked(&review, "");
                b.splice(
                    0..b"POST /validate HTTP/1.1".len(),
                    b"POST /validate HTTP/1.0".iter().copied(),
                );
                b
            },
            &[200, 400],
        ),
    ];
    for (what, bytes, statuses) in cases {
        eprintln!("case: {what}");
        let got = send(&h, &bytes).await;
        // A 100 Continue may come first.
        let last = got
            .iter()
            .rfind(|a| a.status != 100)
            .unwrap_or_else(|| panic!("{what}: no final answer: {got:?}"));
        assert!(
            statuses.contains(&last.status),
            "{what}: status {} (want one of {statuses:?}): {got:?}",
            last.status
        );
        let finals = got.iter().filter(|a| a.status != 100).count();
        assert!(
            finals == 1 || (what.contains("shorter") && finals == 2),
            "{what}: {got:?}"
        );
        if last.status != 200 {
            assert_ne!(last.header("connection"), Some("keep-alive"), "{what}");
        }
    }
    let (status, _) = h.post_fixture("/validate", "attach-allowed.json").await;
    assert_eq!(status, 200, "still serving");
    h.server.shutdown().await;
}
