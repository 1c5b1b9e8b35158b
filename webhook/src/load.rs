//! The load generator behind `kspy-load`: replays one request body over keep-alive HTTPS
//! connections at a fixed concurrency, for a duration or a count, and reports throughput and
//! latency percentiles. Loopback targets only, and bounded in time and count, so it cannot be
//! turned on someone else's server by accident.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rustls::ClientConfig;

use crate::client::{ClientError, HttpVersion, HttpsConnection};

/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most requests accepted in one run.
pub const MAX_COUNT: u64 = 10_000_000;
/// Most concurrent connections (HTTP/1.1) or streams (HTTP/2).
pub const MAX_CONCURRENCY: usize = 4096;

/// What to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Target; must be a loopback address.
    pub addr: SocketAddr,
    /// Name the server certificate is verified for.
    pub server_name: String,
    /// TLS client configuration (trust only the webhook's CA).
    pub tls: ClientConfig,
    /// Request path, e.g. `/validate`.
    pub path: String,
    /// Request body (an AdmissionReview).
    pub body: Bytes,
    /// Requests in flight at once: connections for HTTP/1.1, streams on
    /// `connections` connections for HTTP/2.
    pub concurrency: usize,
    /// HTTP version.
    pub version: HttpVersion,
    /// Stop after this long (whichever of duration and count comes first).
    pub duration: Duration,
    /// Stop after this many requests.
    pub count: u64,
    /// Requests sent first and not measured, to warm connections and caches.
    pub warmup: u64,
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target is not on loopback.
    #[error("{0} is not a loopback address; kspy-load only targets 127.0.0.0/8 or ::1")]
    NotLoopback(SocketAddr),
    /// A limit was exceeded.
    #[error("{0}")]
    Limit(String),
    /// Connecting failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered with HTTP 200 (measured ones).
    pub ok: u64,
    /// Requests answered with another status.
    pub non_200: u64,
    /// Requests that failed at the transport level.
    pub errors: u64,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Latency percentiles of HTTP 200 answers.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs the load described by `config`.
pub async fn run_load(config: LoadConfig) -> Result<LoadReport, LoadError> {
    if !config.addr.ip().is_loopback() {
        return Err(LoadError::NotLoopback(config.addr));
    }
    if config.duration > MAX_DURATION || config.duration.is_zero() {
        return Err(LoadError::Limit(format!(
            "duration must be between 0 and {MAX_DURATION:?}"
        )));
    }
    if config.count == 0 || config.count > MAX_COUNT || config.warmup > MAX_COUNT {
        return Err(LoadError::Limit(format!(
            "count and warmup must be between 1 and {MAX_COUNT}"
        )));
    }
    if config.concurrency == 0 || config.concurrency > MAX_CONCURRENCY {
        return Err(LoadError::Limit(format!(
            "concurrency must be between 1 and {MAX_CONCURRENCY}"
        )));
    }
    let config = Arc::new(config);

    // Connect everything first. HTTP/1.1: one connection per worker. HTTP/2: one connection
    // per 16 workers, the workers sharing it.
    let mut workers = Vec::with_capacity(config.concurrency);
    match config.version {
        HttpVersion::Http1 => {
            for _ in 0..config.concurrency {
                workers.push(connect(&config).await?);
            }
        }
        HttpVersion::Http2 => {
            let mut shared = None;
            for i in 0..config.concurrency {
                if i % 16 == 0 {
                    shared = Some(connect(&config).await?);
                }
                if let Some(conn) = shared.as_ref().and_then(HttpsConnection::try_clone) {
                    workers.push(conn);
                }
            }
        }
    }

    // Warm-up, not measured.
    let (workers, _) = run_phase(
        &config,
        workers,
        config.warmup,
        deadline_after(Instant::now(), config.duration),
        false,
    )
    .await;
    if workers.is_empty() {
        return Err(LoadError::Limit(
            "every connection failed during warm-up".into(),
        ));
    }

    let started = Instant::now();
    let (_, results) = run_phase(
        &config,
        workers,
        config.count,
        deadline_after(started, config.duration),
        true,
    )
    .await;
    let elapsed = started.elapsed();

    let mut latencies: Vec<u64> = Vec::new();
    let (mut ok, mut non_200, mut errors) = (0, 0, 0);
    for r in results {
        latencies.extend(r.latencies_ns);
        ok += r.ok;
        non_200 += r.non_200;
        errors += r.errors;
    }
    latencies.sort_unstable();
    let pick = |q: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        Duration::from_nanos(latencies[i])
    };
    Ok(LoadReport {
        ok,
        non_200,
        errors,
        elapsed,
        p50: pick(0.50),
        p90: pick(0.90),
        p99: pick(0.99),
        max: latencies
            .last()
            .map_or(Duration::ZERO, |m| Duration::from_nanos(*m)),
    })
}

async fn connect(config: &LoadConfig) -> Result<HttpsConnection, ClientError> {
    HttpsConnection::connect(
        config.addr,
        &config.server_name,
        &config.tls,
        config.version,
    )
    .await
}

#[derive(Default)]
struct WorkerResult {
    latencies_ns: Vec<u64>,
    ok: u64,
    non_200: u64,
    errors: u64,
}

/// Runs one phase: every worker sends requests back to back until `count` requests were
/// issued in total or `deadline` passed. Returns the workers' connections (for the next
/// phase) and, when `record`, their results.
async fn run_phase(
    config: &Arc<LoadConfig>,
    workers: Vec<HttpsConnection>,
    count: u64,
    deadline: Instant,
    record: bool,
) -> (Vec<HttpsConnection>, Vec<WorkerResult>) {
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(workers.len());
    for mut conn in workers {
        let config = config.clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = WorkerResult::default();
            if record {
                result.latencies_ns.reserve(8192);
            }
            while issued.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                let t0 = Instant::now();
                match conn.post_json(&config.path, config.body.clone()).await {
                    Ok(resp) if resp.status() == hyper::StatusCode::OK => {
                        if record {
                            let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            result.latencies_ns.push(ns);
                        }
                        result.ok += 1;
                    }
                    Ok(_) => result.non_200 += 1,
                    Err(_) => {
                        result.errors += 1;
                        // Reconnect once; this worker stops if that fails too.
                        match connect(&config).await {
                            Ok(c) => conn = c,
                            Err(_) => return (None, result),
                        }
                    }
                }
            }
            (Some(conn), result)
        }));
    }
    let mut conns = Vec::new();
    let mut results = Vec::new();
    for task in tasks {
        if let Ok((conn, result)) = task.await {
            conns.extend(conn);
            results.push(result);
        }
    }
    (conns, results)
}

/// `start + duration`, or (past the clock's end, which the checked duration never reaches)
/// `start`: the phase then ends at once instead of panicking.
fn deadline_after(start: Instant, duration: Duration) -> Instant {
    start.checked_add(duration).unwrap_or(start)
}
