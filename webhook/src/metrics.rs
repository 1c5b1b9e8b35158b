//! Prometheus metrics, hand-written: a few counters, gauges and one histogram kept in atomics
//! (label sets in small maps), rendered in the Prometheus text exposition format on
//! `GET /metrics` of the admin port.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `kspy_reviews_total` | counter | `endpoint`, `action`, `verdict`, `policy` |
//! | `kspy_policy_decisions_total` | counter | `endpoint`, `policy`, `verdict` |
//! | `kspy_review_duration_seconds` | histogram | `endpoint` |
//! | `kspy_bad_requests_total` | counter | `endpoint`, `reason` |
//! | `kspy_internal_errors_total` | counter | `endpoint`, `reason` |
//! | `kspy_reviews_in_flight` | gauge | |
//! | `kspy_buffered_body_bytes` | gauge | |
//! | `kspy_judgements_queued` | gauge | |
//! | `kspy_connections_open` | gauge | |
//! | `kspy_connection_limit_reached_total` | counter | |
//! | `kspy_connections_closed_total` | counter | `reason` (`handshake-failed` / `handshake-timeout` / `client-cert-refused` / `first-request-timeout` / `head-timeout` / `head-too-large` / `head-malformed` / `write-stall` / `evicted`) |
//! | `kspy_policy_reloads_total` | counter | `result` (`success` / `failure`) |
//! | `kspy_policies_loaded` | gauge | |
//! | `kspy_cert_reloads_total` | counter | `result` (`success` / `failure`) |
//! | `kspy_cert_expiry_timestamp_seconds` | gauge | |
//! | `kspy_client_ca_reloads_total` | counter | `result` (`success` / `failure`) |
//! | `kspy_events_total` | counter | `result` (`posted` / `repeated` / `updated` / `failed` / `dropped` / `rate-limited`) |
//! | `kspy_trace_export_failures_total` | counter | |
//!
//! In `kspy_reviews_total`, `policy` is the comma-joined list of the policies that applied
//! (`none` when none did; `(other)` for lists first seen past [`MAX_REVIEW_SERIES`] series),
//! so the series add up to the number of reviews;
//! `kspy_policy_decisions_total` counts once per applied policy, for per-policy views. A review
//! the server denied because judging failed (fail closed) counts there too, with verdict
//! `denied`, policy `none`, and action `unknown` unless it was classified before the failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds: from the ~100 µs of a review
/// to the review deadline (9 s by default, at most 30 s), so reviews closing in on the API
/// server's timeout show in the percentiles.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 7.5, 10.0, 30.0,
];

/// A counter with labels: one value per label-value tuple.
#[derive(Debug)]
struct LabeledCounter {
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl LabeledCounter {
    const fn new(labels: &'static [&'static str]) -> Self {
        LabeledCounter {
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn inc(&self, values: &[&str]) {
        debug_assert_eq!(values.len(), self.labels.len());
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut map = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(key).or_insert(0) += 1;
    }

    /// Like [`LabeledCounter::inc`], but once `max` series exist a new label set is counted
    /// with its label `fold.0` set to `fold.1`: at most `max` series, plus those folded ones.
    fn inc_at_most(&self, values: &[&str], max: usize, fold: (usize, &str)) {
        debug_assert_eq!(values.len(), self.labels.len());
        let mut key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut map = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= max && !map.contains_key(&key) {
            fold.1.clone_into(&mut key[fold.0]);
        }
        *map.entry(key).or_insert(0) += 1;
    }

    /// How many series there are.
    fn series(&self) -> usize {
        self.values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let map = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str) {
        let map = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        for (values, count) in map.iter() {
            out.push_str(name);
            push_labels(out, self.labels, values.iter().map(String::as_str));
            let _ = writeln!(out, " {count}");
        }
    }
}

/// Most `kspy_reviews_total` series with their own `policy` value. That label is the set of
/// policies that applied, and whoever reaches the webhook port names the user, groups and
/// namespace of its reviews, so with N policies matching on different groups it can make up to
/// 2^N sets: each a series kept for the life of the process and sent on every scrape (every
/// review with twenty such policies: a million series). Past this many, a new set is counted
/// as [`OTHER_POLICIES`]; the series still add up to the number of reviews.
pub const MAX_REVIEW_SERIES: usize = 1024;

/// The `policy` value of the reviews counted past [`MAX_REVIEW_SERIES`]: with parentheses, no
/// policy name (a DNS subdomain) can be it.
pub const OTHER_POLICIES: &str = "(other)";

/// A latency histogram with fixed buckets ([`DURATION_BUCKETS`]).
///
/// Each observation goes into exactly one slot (its bucket, or the last slot past the
/// largest bound), and `+Inf` and `_count` are both the sum of the slots as one scrape read
/// them: with a count kept apart, read after the buckets, a scrape during a review could show
/// `+Inf` below `le="30"`, a histogram Prometheus reports as non-monotonic.
#[derive(Debug)]
struct Histogram {
    /// Per bucket, not cumulative; the last one counts observations over every bound.
    slots: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.slots[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, label: (&str, &str)) {
        let mut cumulative = 0u64;
        for (le, slot) in DURATION_BUCKETS.iter().zip(&self.slots) {
            cumulative += slot.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{}=\"{}\",le=\"{le}\"}} {cumulative}",
                label.0, label.1
            );
        }
        let count = cumulative + self.slots[DURATION_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{}=\"{}\",le=\"+Inf\"}} {count}",
            label.0, label.1
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{}=\"{}\"}} {sum}", label.0, label.1);
        let _ = writeln!(out, "{name}_count{{{}=\"{}\"}} {count}", label.0, label.1);
    }
}

/// Why a request got no verdict (the `reason` label of `kspy_bad_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The body did not parse as an AdmissionReview v1 (HTTP 400).
    Invalid,
    /// The body was over the size limit (HTTP 413).
    TooLarge,
    /// The body could not be read, or not within the deadline (HTTP 400 / 408).
    Unreadable,
    /// A piece of the body found no room in the budget (`--max-buffered-bytes`), held by
    /// other requests' bodies: until the deadline (HTTP/1.1, 408), or at once (HTTP/2, 503).
    BufferFull,
    /// The body had a `Content-Encoding` other than `identity` (HTTP 415), or a
    /// `Transfer-Encoding` other than `chunked` (HTTP 501).
    UnsupportedEncoding,
}

impl BadRequest {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            BadRequest::Invalid => "invalid",
            BadRequest::TooLarge => "too-large",
            BadRequest::Unreadable => "unreadable",
            BadRequest::BufferFull => "buffer-full",
            BadRequest::UnsupportedEncoding => "unsupported-encoding",
        }
    }
}

/// Why a debug request was denied by the server rather than judged (the `reason` label of
/// `kspy_internal_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalError {
    /// Judging did not finish before the per-request deadline.
    Timeout,
    /// The judging task panicked.
    Panic,
    /// The response could not be serialized.
    Serialize,
}

impl InternalError {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            InternalError::Timeout => "timeout",
            InternalError::Panic => "panic",
            InternalError::Serialize => "serialize",
        }
    }
}

/// What became of a decision's Kubernetes Event (the `result` label of `kspy_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventResult {
    /// The API server created it.
    Posted,
    /// A repeat of a decision whose Event exists: counted into that Event's series, with no
    /// Event of its own.
    Repeated,
    /// A series count written onto an Event.
    Updated,
    /// The API server refused a create or a series write, or could not be reached.
    Failed,
    /// The queue was full; never sent.
    Dropped,
    /// Over its user's rate limit in the namespace; never queued.
    RateLimited,
}

impl EventResult {
    fn label(self) -> &'static str {
        match self {
            EventResult::Posted => "posted",
            EventResult::Repeated => "repeated",
            EventResult::Updated => "updated",
            EventResult::Failed => "failed",
            EventResult::Dropped => "dropped",
            EventResult::RateLimited => "rate-limited",
        }
    }
}

/// Why the server closed a connection on its own (the `reason` label of
/// `kspy_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionClosed {
    /// The TLS handshake failed (not TLS, an old version, no common cipher or protocol).
    HandshakeFailed,
    /// The TLS handshake did not finish within its limit.
    HandshakeTimeout,
    /// The TLS handshake failed on the client certificate `--client-ca` requires: none was
    /// presented, or it did not chain to a trusted CA for client authentication, was not
    /// valid, or bore none of the `--client-name` names.
    ClientCertRefused,
    /// No request started within the first-request limit.
    FirstRequestTimeout,
    /// An HTTP/1.1 request head did not end within its limit.
    HeadTimeout,
    /// An HTTP/1.1 request head went past its size limit (16 KiB): answered 431 by hyper,
    /// before any handler saw it.
    HeadTooLarge,
    /// An HTTP/1.1 request head hyper could not parse (a malformed request line or header, a
    /// `Content-Length` that is no number or is given twice with two values, a NUL in a
    /// header): answered 400 with no body by hyper, before any handler saw it.
    HeadMalformed,
    /// The client took none of the answers within the write limit.
    WriteStall,
    /// Idle (or still in its handshake) when every slot was taken and another client
    /// connected: closed to make room for it.
    Evicted,
}

impl ConnectionClosed {
    /// Every reason, in the order they are rendered.
    const ALL: [ConnectionClosed; 9] = [
        ConnectionClosed::HandshakeFailed,
        ConnectionClosed::HandshakeTimeout,
        ConnectionClosed::ClientCertRefused,
        ConnectionClosed::FirstRequestTimeout,
        ConnectionClosed::HeadTimeout,
        ConnectionClosed::HeadTooLarge,
        ConnectionClosed::HeadMalformed,
        ConnectionClosed::WriteStall,
        ConnectionClosed::Evicted,
    ];

    /// Where its count is kept: its place in [`ConnectionClosed::ALL`].
    fn index(self) -> usize {
        match self {
            ConnectionClosed::HandshakeFailed => 0,
            ConnectionClosed::HandshakeTimeout => 1,
            ConnectionClosed::ClientCertRefused => 2,
            ConnectionClosed::FirstRequestTimeout => 3,
            ConnectionClosed::HeadTimeout => 4,
            ConnectionClosed::HeadTooLarge => 5,
            ConnectionClosed::HeadMalformed => 6,
            ConnectionClosed::WriteStall => 7,
            ConnectionClosed::Evicted => 8,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionClosed::HandshakeFailed => "handshake-failed",
            ConnectionClosed::HandshakeTimeout => "handshake-timeout",
            ConnectionClosed::ClientCertRefused => "client-cert-refused",
            ConnectionClosed::FirstRequestTimeout => "first-request-timeout",
            ConnectionClosed::HeadTimeout => "head-timeout",
            ConnectionClosed::HeadTooLarge => "head-too-large",
            ConnectionClosed::HeadMalformed => "head-malformed",
            ConnectionClosed::WriteStall => "write-stall",
            ConnectionClosed::Evicted => "evicted",
        }
    }
}

/// Every metric the webhook exports.
#[derive(Debug)]
pub struct Metrics {
    reviews: LabeledCounter,
    policy_decisions: LabeledCounter,
    bad_requests: LabeledCounter,
    internal_errors: LabeledCounter,
    duration_mutate: Histogram,
    duration_validate: Histogram,
    in_flight: AtomicI64,
    buffered_body_bytes: AtomicU64,
    judgements_queued: AtomicU64,
    connections_open: AtomicI64,
    connection_limit_reached: AtomicU64,
    /// By [`ConnectionClosed::ALL`]'s order.
    connections_closed: [AtomicU64; ConnectionClosed::ALL.len()],
    policy_reloads_ok: AtomicU64,
    policy_reloads_failed: AtomicU64,
    policies_loaded: AtomicU64,
    cert_reloads_ok: AtomicU64,
    cert_reloads_failed: AtomicU64,
    cert_expiry: AtomicI64,
    client_ca_reloads_ok: AtomicU64,
    client_ca_reloads_failed: AtomicU64,
    events: LabeledCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics at zero.
    pub fn new() -> Self {
        Metrics {
            reviews: LabeledCounter::new(&["endpoint", "action", "verdict", "policy"]),
            policy_decisions: LabeledCounter::new(&["endpoint", "policy", "verdict"]),
            bad_requests: LabeledCounter::new(&["endpoint", "reason"]),
            internal_errors: LabeledCounter::new(&["endpoint", "reason"]),
            duration_mutate: Histogram::new(),
            duration_validate: Histogram::new(),
            in_flight: AtomicI64::new(0),
            buffered_body_bytes: AtomicU64::new(0),
            judgements_queued: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connection_limit_reached: AtomicU64::new(0),
            connections_closed: std::array::from_fn(|_| AtomicU64::new(0)),
            policy_reloads_ok: AtomicU64::new(0),
            policy_reloads_failed: AtomicU64::new(0),
            policies_loaded: AtomicU64::new(0),
            cert_reloads_ok: AtomicU64::new(0),
            cert_reloads_failed: AtomicU64::new(0),
            cert_expiry: AtomicI64::new(0),
            client_ca_reloads_ok: AtomicU64::new(0),
            client_ca_reloads_failed: AtomicU64::new(0),
            events: LabeledCounter::new(&["result"]),
        }
    }

    /// Counts one judged review and its latency. `policies` are the applied policies.
    pub fn review(
        &self,
        endpoint: &str,
        action: &str,
        verdict: &str,
        policies: &[String],
        elapsed: Duration,
    ) {
        let joined = if policies.is_empty() {
            "none".to_owned()
        } else {
            policies.join(",")
        };
        self.reviews.inc_at_most(
            &[endpoint, action, verdict, &joined],
            MAX_REVIEW_SERIES,
            (3, OTHER_POLICIES),
        );
        for policy in policies {
            self.policy_decisions.inc(&[endpoint, policy, verdict]);
        }
        self.observe(endpoint, elapsed);
    }

    /// Records a request's latency (also done by [`Metrics::review`]).
    pub fn observe(&self, endpoint: &str, elapsed: Duration) {
        match endpoint {
            "mutate" => self.duration_mutate.observe(elapsed),
            _ => self.duration_validate.observe(elapsed),
        }
    }

    /// Counts a request answered with an HTTP error instead of a verdict.
    pub fn bad_request(&self, endpoint: &str, reason: BadRequest) {
        self.bad_requests.inc(&[endpoint, reason.label()]);
    }

    /// Counts a request the server denied because judging failed.
    pub fn internal_error(&self, endpoint: &str, reason: InternalError) {
        self.internal_errors.inc(&[endpoint, reason.label()]);
    }

    /// Counts what became of one decision Event.
    pub fn event(&self, result: EventResult) {
        self.events.inc(&[result.label()]);
    }

    /// The current value of `kspy_events_total` for one result (for tests).
    pub fn events_total(&self, result: EventResult) -> u64 {
        self.events.get(&[result.label()])
    }

    /// One more review in flight; the guard counts it out when dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Adds `bytes` to `kspy_buffered_body_bytes` (a piece of a body was given room).
    pub(crate) fn body_bytes_reserved(&self, bytes: u64) {
        self.buffered_body_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes `bytes` off `kspy_buffered_body_bytes` (a body's room was given back).
    pub(crate) fn body_bytes_released(&self, bytes: u64) {
        self.buffered_body_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Sets `kspy_judgements_queued`. The pool counts its queue under its own lock; the admin
    /// port copies the count here at each scrape, so reviews pay nothing for the gauge.
    pub fn set_judgements_queued(&self, queued: usize) {
        self.judgements_queued
            .store(u64::try_from(queued).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `kspy_buffered_body_bytes`: body bytes held now (for tests).
    pub fn buffered_body_bytes(&self) -> u64 {
        self.buffered_body_bytes.load(Ordering::Relaxed)
    }

    /// `kspy_reviews_in_flight` (for tests).
    pub fn reviews_in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The current value of `kspy_bad_requests_total` for one label set (for tests).
    pub fn bad_requests_total(&self, endpoint: &str, reason: BadRequest) -> u64 {
        self.bad_requests.get(&[endpoint, reason.label()])
    }

    /// One more HTTPS connection open; the guard counts it out when dropped (it moves with the
    /// connection's task, so it holds the metrics).
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Counts one time the server stopped accepting because every connection slot was taken.
    pub fn connection_limit_reached(&self) {
        self.connection_limit_reached
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection the server closed on its own, for `reason`.
    pub fn connection_closed(&self, reason: ConnectionClosed) {
        self.connections_closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of `kspy_connections_closed_total` for `reason` (for tests).
    pub fn connections_closed_total(&self, reason: ConnectionClosed) -> u64 {
        self.connections_closed[reason.index()].load(Ordering::Relaxed)
    }

    /// `kspy_connections_open` and `kspy_connection_limit_reached_total` (for tests).
    pub fn connections(&self) -> (i64, u64) {
        (
            self.connections_open.load(Ordering::Relaxed),
            self.connection_limit_reached.load(Ordering::Relaxed),
        )
    }

    /// Counts a successful policy reload that put `n` policies in force.
    pub fn policy_reload_succeeded(&self, n: usize) {
        self.policy_reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.set_policies_loaded(n);
    }

    /// Counts a failed policy reload (the previous policies stay in force).
    pub fn policy_reload_failed(&self) {
        self.policy_reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how many policies are in force.
    pub fn set_policies_loaded(&self, n: usize) {
        self.policies_loaded
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a successful certificate reload and records the new `notAfter` (Unix seconds).
    pub fn cert_reload_succeeded(&self, not_after: i64) {
        self.cert_reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.set_cert_expiry(not_after);
    }

    /// Counts a failed certificate reload (the previous certificate stays in use).
    pub fn cert_reload_failed(&self) {
        self.cert_reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the serving certificate's `notAfter` (Unix seconds).
    pub fn set_cert_expiry(&self, not_after: i64) {
        self.cert_expiry.store(not_after, Ordering::Relaxed);
    }

    /// Counts a successful reload of the client CA file (`--client-ca`).
    pub fn client_ca_reload_succeeded(&self) {
        self.client_ca_reloads_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed reload of the client CA file (the previous CAs stay in force).
    pub fn client_ca_reload_failed(&self) {
        self.client_ca_reloads_failed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// `kspy_client_ca_reloads_total`: (successes, failures).
    pub fn client_ca_reloads(&self) -> (u64, u64) {
        (
            self.client_ca_reloads_ok.load(Ordering::Relaxed),
            self.client_ca_reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// The current value of `kspy_reviews_total` for one label set (for tests).
    pub fn reviews_total(&self, endpoint: &str, action: &str, verdict: &str, policy: &str) -> u64 {
        self.reviews.get(&[endpoint, action, verdict, policy])
    }

    /// How many `kspy_reviews_total` series there are (for tests).
    pub fn review_series(&self) -> usize {
        self.reviews.series()
    }

    /// The current value of `kspy_internal_errors_total` for one label set (for tests).
    pub fn internal_errors_total(&self, endpoint: &str, reason: InternalError) -> u64 {
        self.internal_errors.get(&[endpoint, reason.label()])
    }

    /// `kspy_policy_reloads_total`: (successes, failures).
    pub fn policy_reloads(&self) -> (u64, u64) {
        (
            self.policy_reloads_ok.load(Ordering::Relaxed),
            self.policy_reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// `kspy_cert_reloads_total`: (successes, failures).
    pub fn cert_reloads(&self) -> (u64, u64) {
        (
            self.cert_reloads_ok.load(Ordering::Relaxed),
            self.cert_reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "kspy_reviews_total",
            "counter",
            "AdmissionReviews answered with a verdict, by endpoint, debug action, verdict and the applied policies (comma-joined); fail-closed denials count as denied.",
        );
        self.reviews.render(&mut out, "kspy_reviews_total");
        header(
            &mut out,
            "kspy_policy_decisions_total",
            "counter",
            "Judged reviews per applied policy and verdict.",
        );
        self.policy_decisions
            .render(&mut out, "kspy_policy_decisions_total");
        header(
            &mut out,
            "kspy_review_duration_seconds",
            "histogram",
            "Time from request received to response ready.",
        );
        self.duration_mutate.render(
            &mut out,
            "kspy_review_duration_seconds",
            ("endpoint", "mutate"),
        );
        self.duration_validate.render(
            &mut out,
            "kspy_review_duration_seconds",
            ("endpoint", "validate"),
        );
        header(
            &mut out,
            "kspy_bad_requests_total",
            "counter",
            "Requests answered with an HTTP error instead of a verdict.",
        );
        self.bad_requests
            .render(&mut out, "kspy_bad_requests_total");
        header(
            &mut out,
            "kspy_internal_errors_total",
            "counter",
            "Debug requests denied because judging failed (fail closed).",
        );
        self.internal_errors
            .render(&mut out, "kspy_internal_errors_total");
        single(
            &mut out,
            "kspy_reviews_in_flight",
            "gauge",
            "Reviews being processed.",
            self.in_flight.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "kspy_buffered_body_bytes",
            "gauge",
            "Request body bytes held against --max-buffered-bytes: what has arrived of the bodies being read or judged.",
            self.buffered_body_bytes.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "kspy_judgements_queued",
            "gauge",
            "Reviews whose bodies are whole, waiting for a judging thread (--judge-threads); one whose deadline passes there is dropped unjudged when reached.",
            self.judgements_queued.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "kspy_connections_open",
            "gauge",
            "HTTPS connections open on the webhook port.",
            self.connections_open.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "kspy_connection_limit_reached_total",
            "counter",
            "Times every connection slot was taken (--max-connections): new clients then took idle connections' slots, or waited while all were busy.",
            self.connection_limit_reached.load(Ordering::Relaxed),
        );
        header(
            &mut out,
            "kspy_connections_closed_total",
            "counter",
            "Connections on the webhook port the server closed on its own: a failed or slow TLS handshake, a client certificate refused (--client-ca), no request in time, an unfinished request head, answers the client did not take.",
        );
        for (reason, count) in ConnectionClosed::ALL.iter().zip(&self.connections_closed) {
            let _ = writeln!(
                out,
                "kspy_connections_closed_total{{reason=\"{}\"}} {}",
                reason.label(),
                count.load(Ordering::Relaxed)
            );
        }
        by_result(
            &mut out,
            "kspy_policy_reloads_total",
            "Policy directory reloads by result; a failed reload keeps the previous policies.",
            self.policy_reloads(),
        );
        single(
            &mut out,
            "kspy_policies_loaded",
            "gauge",
            "Policies in force.",
            self.policies_loaded.load(Ordering::Relaxed),
        );
        by_result(
            &mut out,
            "kspy_cert_reloads_total",
            "Serving certificate reloads by result; a failed reload keeps the previous certificate.",
            self.cert_reloads(),
        );
        single(
            &mut out,
            "kspy_cert_expiry_timestamp_seconds",
            "gauge",
            "Earliest notAfter of the served chain (serving certificate and intermediates), Unix seconds.",
            self.cert_expiry.load(Ordering::Relaxed),
        );
        by_result(
            &mut out,
            "kspy_client_ca_reloads_total",
            "Client CA file (--client-ca) reloads by result; a failed reload keeps the previous CAs. 0 without --client-ca.",
            self.client_ca_reloads(),
        );
        header(
            &mut out,
            "kspy_events_total",
            "counter",
            "Kubernetes Events about decisions, by result: posted (created), repeated (counted into an earlier Event's series), updated (series count written), failed, dropped (queue full), rate-limited (over the user's Event rate limit in the namespace).",
        );
        self.events.render(&mut out, "kspy_events_total");
        single(
            &mut out,
            "kspy_trace_export_failures_total",
            "counter",
            "OTLP trace exports (batches of spans) that failed; their spans are dropped. Process-wide; 0 without traces.",
            crate::telemetry::trace_export_failures(),
        );
        out
    }
}

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts an HTTPS connection out of `kspy_connections_open` when dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric with one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A counter with `result="success"` and `result="failure"` samples.
fn by_result(out: &mut String, name: &str, help: &str, (ok, failed): (u64, u64)) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name}{{result=\"success\"}} {ok}");
    let _ = writeln!(out, "{name}{{result=\"failure\"}} {failed}");
}

fn push_labels<'a>(out: &mut String, names: &[&str], values: impl Iterator<Item = &'a str>) {
    out.push('{');
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The metrics the README and this module's table document are the ones `/metrics`
    /// serves, each with its type: a metric added without its row fails here.
    #[test]
    fn every_metric_served_is_documented_with_its_type() {
        let served: BTreeMap<String, String> = Metrics::new()
            .render()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
            .collect();
        assert!(served.len() >= 18, "{served:?}");
        let table = |text: &str| -> BTreeMap<String, String> {
            text.lines()
                .filter_map(|l| l.trim_start_matches("//! ").strip_prefix("| `kspy_"))
                .filter_map(|l| {
                    let (name, rest) = l.split_once("` | ")?;
                    let kind = rest.split(" |").next()?;
                    Some((format!("kspy_{name}"), kind.to_owned()))
                })
                .collect()
        };
        assert_eq!(
            table(include_str!("../README.md")),
            served,
            "webhook/README.md"
        );
        assert_eq!(
            table(include_str!("metrics.rs")),
            served,
            "metrics.rs's table"
        );
    }

    /// The labels the README's metric table names for each metric are the ones its series
    /// carry (`le` aside, which every histogram has), and the `reason` and `result` values it
    /// lists are the ones the server can serve.
    #[test]
    fn every_metric_is_documented_with_its_labels() {
        let m = Metrics::new();
        m.review(
            "validate",
            "attach",
            "allowed",
            &["p".into()],
            Duration::ZERO,
        );
        m.bad_request("validate", BadRequest::Invalid);
        m.internal_error("validate", InternalError::Timeout);
        m.event(EventResult::Posted);
        let mut served: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in m.render().lines().filter(|l| !l.starts_with('#')) {
            let (series, _) = line.rsplit_once(' ').expect("a sample");
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            let entry = served.entry(name.to_owned()).or_default();
            for pair in labels
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
            {
                let (label, _) = pair.split_once('=').expect("label=value");
                if label != "le" {
                    entry.insert(label.to_owned());
                }
            }
        }
        let readme = include_str!("../README.md");
        let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in readme.lines().filter(|l| l.starts_with("| `kspy_")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            // Label names are the backticked words outside parentheses, which list values.
            let mut labels = BTreeSet::new();
            let mut depth = 0usize;
            let mut outside = String::new();
            for c in cells[3].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ if depth == 0 => outside.push(c),
                    _ => {}
                }
            }
            for (i, word) in outside.split('`').enumerate() {
                if i % 2 == 1 {
                    labels.insert(word.to_owned());
                }
            }
            documented.insert(name.to_owned(), labels);
        }
        assert_eq!(
            documented, served,
            "labels in webhook/README.md against /metrics"
        );
        let values = |all: &[&'static str]| all.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let row = |name: &str| {
            readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("no row for {name}"))
                .split('|')
                .nth(3)
                .unwrap_or_default()
                .to_owned()
        };
        let documented_values = |cell: &str| -> BTreeSet<String> {
            let inside = cell
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(v, _)| v)
                .unwrap_or_default();
            inside
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, v)| v.to_owned())
                .collect()
        };
        let bad = [
            BadRequest::Invalid,
            BadRequest::TooLarge,
            BadRequest::Unreadable,
            BadRequest::BufferFull,
            BadRequest::UnsupportedEncoding,
        ]
        .map(BadRequest::label);
        let internal = [
            InternalError::Timeout,
            InternalError::Panic,
            InternalError::Serialize,
        ]
        .map(InternalError::label);
        let events = [
            EventResult::Posted,
            EventResult::Repeated,
            EventResult::Updated,
            EventResult::Failed,
            EventResult::Dropped,
            EventResult::RateLimited,
        ]
        .map(EventResult::label);
        let closed = ConnectionClosed::ALL.map(ConnectionClosed::label);
        for (name, all) in [
            ("kspy_bad_requests_total", values(&bad)),
            ("kspy_internal_errors_total", values(&internal)),
            ("kspy_events_total", values(&events)),
            ("kspy_connections_closed_total", values(&closed)),
        ] {
            let cell = row(name);
            let listed = documented_values(cell.split_once("`reason` ").map_or(&cell, |(_, r)| r));
            assert_eq!(
                listed,
                all.into_iter().collect::<BTreeSet<_>>(),
                "the values webhook/README.md lists for {name}"
            );
        }
    }

    #[test]
    fn renders_counters_with_escaped_labels_and_sorted_series() {
        let m = Metrics::new();
        m.review(
            "validate",
            "attach",
            "allowed",
            &["b".into(), "a\"x".into()],
            Duration::from_micros(80),
        );
        m.review(
            "validate",
            "attach",
            "allowed",
            &["b".into(), "a\"x".into()],
            Duration::from_micros(80),
        );
        m.review("mutate", "none", "not-debug", &[], Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains(
            "kspy_reviews_total{endpoint=\"validate\",action=\"attach\",verdict=\"allowed\",policy=\"b,a\\\"x\"} 2\n"
        ), "{text}");
        assert!(text.contains(
            "kspy_reviews_total{endpoint=\"mutate\",action=\"none\",verdict=\"not-debug\",policy=\"none\"} 1\n"
        ), "{text}");
        assert!(text.contains("kspy_policy_decisions_total{endpoint=\"validate\",policy=\"b\",verdict=\"allowed\"} 2\n"), "{text}");
        assert_eq!(m.reviews_total("mutate", "none", "not-debug", "none"), 1);
    }

    /// A client that names its reviews' groups can make every set of policies apply; each set
    /// was a series of its own for the life of the process.
    #[test]
    fn policy_sets_past_the_series_limit_are_counted_as_other() {
        let m = Metrics::new();
        let sets = MAX_REVIEW_SERIES + 500;
        for i in 0..sets {
            let policies = vec![format!("p{i}"), "shared".to_owned()];
            m.review("validate", "attach", "denied", &policies, Duration::ZERO);
        }
        // An existing set keeps its own series.
        m.review(
            "validate",
            "attach",
            "denied",
            &["p0".into(), "shared".into()],
            Duration::ZERO,
        );
        assert_eq!(m.review_series(), MAX_REVIEW_SERIES + 1);
        assert_eq!(
            m.reviews_total("validate", "attach", "denied", OTHER_POLICIES),
            500
        );
        assert_eq!(
            m.reviews_total("validate", "attach", "denied", "p0,shared"),
            2
        );
        let text = m.render();
        let sum: u64 = text
            .lines()
            .filter(|l| l.starts_with("kspy_reviews_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(sum, sets as u64 + 1, "the series add up to the reviews");
    }

    #[test]
    fn histogram_is_cumulative_with_count_and_sum() {
        let m = Metrics::new();
        m.observe("validate", Duration::from_micros(50));
        m.observe("validate", Duration::from_micros(700));
        m.observe("validate", Duration::from_secs(9));
        m.observe("validate", Duration::from_secs(31));
        let text = m.render();
        let line = |s: &str| text.lines().any(|l| l == s);
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"0.0001\"} 1"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"0.001\"} 2"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"5\"} 2"),
            "{text}"
        );
        // A review timed out at the default 9 s deadline lands below the API server's 10 s.
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"7.5\"} 2"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"10\"} 3"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"30\"} 3"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_bucket{endpoint=\"validate\",le=\"+Inf\"} 4"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_count{endpoint=\"validate\"} 4"),
            "{text}"
        );
        assert!(
            line("kspy_review_duration_seconds_count{endpoint=\"mutate\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("kspy_review_duration_seconds_sum{endpoint=\"validate\"} 40.00075"),
            "{text}"
        );
    }

    /// Prometheus requires `le="+Inf"` to equal `_count` and to be at least every bucket.
    /// `+Inf` was the separate count, read after the buckets and added to after its bucket,
    /// so a scrape during a review could show `+Inf` below `le="30"`, which
    /// `histogram_quantile` reports as a non-monotonic histogram.
    #[test]
    fn a_scrape_during_reviews_sees_a_consistent_histogram() {
        let m = Arc::new(Metrics::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let observers: Vec<_> = (0..2)
            .map(|_| {
                let (m, stop) = (m.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        m.observe("validate", Duration::from_micros(50));
                    }
                })
            })
            .collect();
        let value = |line: &str| -> u64 {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{line}"))
        };
        let mut torn = Vec::new();
        for _ in 0..3_000 {
            let text = m.render();
            let series: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("kspy_review_duration_seconds_") && l.contains("validate")
                })
                .collect();
            let buckets: Vec<u64> = series
                .iter()
                .filter(|l| l.contains("_bucket{"))
                .map(|l| value(l))
                .collect();
            let inf = *buckets.last().expect("+Inf");
            let count = series
                .iter()
                .find(|l| l.contains("_count{"))
                .map(|l| value(l))
                .expect("_count");
            if buckets.windows(2).any(|w| w[0] > w[1]) || count != inf {
                torn.push(series.join("\n"));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for o in observers {
            o.join().expect("observer");
        }
        assert!(torn.is_empty(), "{torn:?}");
    }

    #[test]
    fn gauges_and_reload_counters() {
        let m = Metrics::new();
        {
            let _a = m.in_flight();
            let _b = m.in_flight();
            assert!(m.render().contains("kspy_reviews_in_flight 2\n"));
        }
        assert!(m.render().contains("kspy_reviews_in_flight 0\n"));
        let m = Arc::new(m);
        let open = m.connection_opened();
        m.connection_limit_reached();
        assert!(m.render().contains("kspy_connections_open 1\n"));
        assert!(
            m.render()
                .contains("kspy_connection_limit_reached_total 1\n")
        );
        drop(open);
        assert_eq!(m.connections(), (0, 1));
        m.connection_closed(ConnectionClosed::WriteStall);
        m.connection_closed(ConnectionClosed::WriteStall);
        m.connection_closed(ConnectionClosed::HandshakeFailed);
        // Every reason is there from the start, at zero until it happens.
        let text = m.render();
        for line in [
            "kspy_connections_closed_total{reason=\"handshake-failed\"} 1",
            "kspy_connections_closed_total{reason=\"handshake-timeout\"} 0",
            "kspy_connections_closed_total{reason=\"client-cert-refused\"} 0",
            "kspy_connections_closed_total{reason=\"first-request-timeout\"} 0",
            "kspy_connections_closed_total{reason=\"head-timeout\"} 0",
            "kspy_connections_closed_total{reason=\"head-too-large\"} 0",
            "kspy_connections_closed_total{reason=\"head-malformed\"} 0",
            "kspy_connections_closed_total{reason=\"write-stall\"} 2",
            "kspy_connections_closed_total{reason=\"evicted\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        m.policy_reload_succeeded(7);
        m.policy_reload_failed();
        m.cert_reload_succeeded(1_900_000_000);
        m.cert_reload_failed();
        m.cert_reload_failed();
        m.client_ca_reload_succeeded();
        m.client_ca_reload_failed();
        m.client_ca_reload_failed();
        m.client_ca_reload_failed();
        let text = m.render();
        for line in [
            "kspy_policy_reloads_total{result=\"success\"} 1",
            "kspy_policy_reloads_total{result=\"failure\"} 1",
            "kspy_policies_loaded 7",
            "kspy_cert_reloads_total{result=\"success\"} 1",
            "kspy_cert_reloads_total{result=\"failure\"} 2",
            "kspy_cert_expiry_timestamp_seconds 1900000000",
            "kspy_client_ca_reloads_total{result=\"success\"} 1",
            "kspy_client_ca_reloads_total{result=\"failure\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        // Every series has HELP and TYPE.
        for name in [
            "kspy_reviews_total",
            "kspy_internal_errors_total",
            "kspy_bad_requests_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
        }
    }
}
