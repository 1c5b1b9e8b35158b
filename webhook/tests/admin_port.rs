//! The admin port (`/healthz`, `/readyz`, `/metrics`) is held to the webhook port's deadlines
//! and to a few connections: it was served with no limit at all, so a client that connected
//! and sent nothing, or a request head that never ended, held its connection (and up to
//! 400 KiB of buffered head) for ever, and any number of them could be opened.

mod common;

use std::time::Duration;

use common::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes `stream`, within 5 s; what it sent.
async fn closed_within_5s(stream: &mut TcpStream, client: &str) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{client}: still open after 5 s"))
        .unwrap_or_else(|err| panic!("{client}: {err}"));
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn silent_slow_and_oversized_admin_clients_are_closed() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.connection_limits.first_request = Duration::from_millis(300);
        c.connection_limits.request_head = Duration::from_millis(300);
    })
    .await;
    let admin = h.server.admin_addr;

    // Connects and says nothing.
    let mut silent = TcpStream::connect(admin).await.expect("connect");
    assert_eq!(closed_within_5s(&mut silent, "silent").await, "");

    // Starts a head and never ends it.
    let mut slow = TcpStream::connect(admin).await.expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("head");
    assert_eq!(closed_within_5s(&mut slow, "unfinished head").await, "");

    // A head over 16 KiB: 431.
    let mut big = TcpStream::connect(admin).await.expect("connect");
    let head = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}",
        "a".repeat(20 * 1024)
    );
    big.write_all(head.as_bytes()).await.expect("head");
    let answer = closed_within_5s(&mut big, "big head").await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // A probe is served as before.
    assert_eq!(h.admin_get("/healthz").await, (200, "ok\n".to_owned()));
    h.server.shutdown().await;
}

/// Every admin slot taken by clients that say nothing (each closed only after 10 s) used to
/// make the kubelet's probes wait that long: now the one idle the longest is closed for the
/// probe, which is served at once.
#[tokio::test]
async fn with_every_admin_connection_slot_taken_by_silent_clients_a_probe_is_served() {
    let h = Harness::start().await;
    let admin = h.server.admin_addr;
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect(admin).await.expect("connect"));
    }
    // Time for the server to take them all up from the listen queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), common::admin_get(admin, "/healthz"))
        .await
        .expect("served in place of a silent client");
    assert_eq!(answer, (200, "ok\n".to_owned()));
    // The oldest silent client was the one closed.
    assert_eq!(
        closed_within_5s(&mut held[0], "the oldest silent client").await,
        ""
    );
    drop(held);
    h.server.shutdown().await;
}

/// `kspy_reviews_total`'s `policy` label is the set of policies that applied, and a client
/// reaching the webhook port names its reviews' groups: with policies matching on different
/// groups it chose a new set, and so a new series kept for ever and sent on every scrape, with
/// each review (2^N sets for N policies). Past 1 024 series, new sets are counted as `(other)`.
#[tokio::test]
async fn a_client_choosing_groups_cannot_grow_the_review_series_without_bound() {
    const POLICIES: usize = 11;
    let policies: String = (0..POLICIES)
        .map(|i| {
            format!(
                "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata:\n  name: g{i}\nspec:\n  match:\n    actions: [attach]\n    groups: [g{i}]\n  grant:\n    images: [\"busybox:*\"]\n---\n"
            )
        })
        .collect();
    let h = Harness::start_with(&policies, |_| {}).await;
    let review: serde_json::Value =
        serde_json::from_slice(&common::fixture("attach-allowed.json")).expect("fixture");
    let mut conn = h.connect(kspy_webhook::client::HttpVersion::Http1).await;
    let reviews = 1_100u32;
    for set in 1..=reviews {
        let groups: Vec<String> = (0..POLICIES)
            .filter(|i| set & (1 << i) != 0)
            .map(|i| format!("g{i}"))
            .collect();
        let mut review = review.clone();
        review["request"]["userInfo"]["groups"] = groups.into();
        let resp = common::post_validate(&mut conn, &review).await;
        assert_eq!(resp.status(), 200);
    }
    let (status, metrics) = h.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kspy_reviews_total{"))
        .collect();
    assert!(series.len() <= 1_024 + 30, "{} series", series.len());
    let counted: u64 = series
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        counted,
        u64::from(reviews),
        "the series add up to the reviews"
    );
    assert!(
        series.iter().any(|l| l.contains("policy=\"(other)\"")),
        "{series:?}"
    );
    h.server.shutdown().await;
}
