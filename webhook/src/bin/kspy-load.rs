//! `kspy-load`: load generator and benchmark for kspy-webhook.
//!
//! - `kspy-load run`: replay one AdmissionReview against a running server.
//! - `kspy-load floor`: run the floor server (same TLS/HTTP stack, constant answer).
//! - `kspy-load bench`: the whole benchmark in one run: generate a CA, start a floor server
//!   and a `kspy-webhook` as child processes on loopback, measure the webhook's idle RSS, load
//!   the floor and the webhook with the same review, concurrency and duration, measure loaded
//!   RSS, and print the figures and the webhook/floor ratios.
//!
//! Loopback only; durations and counts are bounded (see `kspy_webhook::load`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use clap::{Args, Parser, Subcommand};
use kspy_webhook::TlsFiles;
use kspy_webhook::client::HttpVersion;
use kspy_webhook::duration::parse_duration;
use kspy_webhook::load::{LoadConfig, LoadReport, run_load};

/// mimalloc: judging a review allocates a few hundred small values, and glibc malloc was a
/// third of its instructions (see the engine benchmark). The floor server and load generator
/// (`kspy-load`) use it too, so the comparison stays like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "kspy-load",
    version,
    about = "Load generator and benchmark for kspy-webhook (loopback only)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Replay an AdmissionReview against a running server and report rps and latency.
    Run {
        /// Server address (loopback).
        #[arg(long, default_value = "127.0.0.1:8443")]
        addr: SocketAddr,
        /// CA certificate to trust (only this one).
        #[arg(long, value_name = "FILE")]
        ca: PathBuf,
        /// Name to verify the server certificate for.
        #[arg(long, default_value = "127.0.0.1")]
        server_name: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Run the floor server: TLS + HTTP, constant "allowed" answer, no parsing.
    Floor {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9443")]
        addr: SocketAddr,
        /// PEM certificate.
        #[arg(long, value_name = "FILE")]
        tls_cert: PathBuf,
        /// PEM key.
        #[arg(long, value_name = "FILE")]
        tls_key: PathBuf,
    },
    /// Benchmark kspy-webhook against the floor server, both started as child processes.
    Bench {
        /// The kspy-webhook binary to benchmark (build it with --release).
        #[arg(long, value_name = "FILE")]
        webhook_bin: PathBuf,
        /// Policy directory for the webhook.
        #[arg(long, value_name = "DIR", default_value = "policies")]
        policies: PathBuf,
        /// Rounds (floor then webhook each round); the summary takes the median.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
        rounds: u32,
        /// Write the webhook's log here instead of discarding it.
        #[arg(long, value_name = "FILE")]
        webhook_log: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// AdmissionReview JSON to send.
    #[arg(long, value_name = "FILE")]
    review: PathBuf,
    /// Request path.
    #[arg(long, default_value = "/validate")]
    path: String,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Measure for this long (at most 10m).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many requests (whichever comes first with --duration).
    #[arg(long, short = 'n', default_value_t = 10_000_000)]
    count: u64,
    /// Unmeasured requests sent first.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// Use HTTP/2 (16 streams per connection) instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    http2: bool,
    /// Send the file's bytes unchanged. By default the review is re-serialized compact, as the
    /// API server sends it (fixtures are indented for reading; whitespace is a third of them).
    #[arg(long)]
    as_is: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("kspy-load: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Each error names its own step only; its causes follow once.
            eprintln!("kspy-load: {}", kspy_certs::error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run {
            addr,
            ca,
            server_name,
            load,
        } => {
            let pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
            let report = run_load(load_config(addr, &server_name, &pem, &load)?).await?;
            println!("{}", header());
            println!("{}", row("server", &report));
            Ok(())
        }
        Cmd::Floor {
            addr,
            tls_cert,
            tls_key,
        } => {
            let tls = TlsFiles {
                cert: tls_cert,
                key: tls_key,
            };
            let floor = kspy_webhook::floor::start_floor(addr, &tls).await?;
            eprintln!("floor server on https://{}", floor.addr);
            let _ = tokio::signal::ctrl_c().await;
            floor.shutdown().await;
            Ok(())
        }
        Cmd::Bench {
            webhook_bin,
            policies,
            rounds,
            webhook_log,
            load,
        } => {
            bench(
                &webhook_bin,
                &policies,
                rounds,
                webhook_log.as_deref(),
                &load,
            )
            .await
        }
    }
}

fn load_config(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &[u8],
    load: &LoadArgs,
) -> anyhow::Result<LoadConfig> {
    let roots = kspy_certs::root_store_from_pem(ca_pem, "CA")?;
    let tls = kspy_webhook::tls::client_config(roots, &[b"http/1.1"])?;
    let mut body = std::fs::read(&load.review)
        .with_context(|| format!("reading {}", load.review.display()))?;
    if !load.as_is {
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).with_context(|| {
            format!(
                "{} is not JSON (send it with --as-is)",
                load.review.display()
            )
        })?;
        body = kspy_admission::wire::compact_json(&body);
    }
    Ok(LoadConfig {
        addr,
        server_name: server_name.to_owned(),
        tls,
        path: load.path.clone(),
        body: Bytes::from(body),
        concurrency: load.concurrency,
        version: if load.http2 {
            HttpVersion::Http2
        } else {
            HttpVersion::Http1
        },
        duration: load.duration,
        count: load.count,
        warmup: load.warmup,
    })
}

fn header() -> String {
    format!(
        "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>6}",
        "target", "reviews/s", "p50", "p90", "p99", "max", "ok", "non200", "errors"
    )
}

fn row(name: &str, r: &LoadReport) -> String {
    format!(
        "{:<8} {:>10.0} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>6}",
        name,
        r.rps(),
        fmt_d(r.p50),
        fmt_d(r.p90),
        fmt_d(r.p99),
        fmt_d(r.max),
        r.ok,
        r.non_200,
        r.errors
    )
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10_000.0 {
        format!("{us:.0}µs")
    } else {
        format!("{:.1}ms", us / 1000.0)
    }
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// `VmRSS` and `VmHWM` of a process, in KiB, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Plain `GET path` on the admin port; the status code.
fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let now = Instant::now();
    let deadline = now.checked_add(timeout).unwrap_or(now);
    while !ready() {
        if Instant::now() > deadline {
            bail!("{what} did not become ready within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

async fn bench(
    webhook_bin: &Path,
    policies: &Path,
    rounds: u32,
    webhook_log: Option<&Path>,
    load: &LoadArgs,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("kspy-load-{}", std::process::id()));
    let certs = kspy_certs::generate_with_sans(
        "kspy-webhook",
        "kspy",
        Duration::from_secs(86_400),
        &["127.0.0.1".to_owned()],
    )?;
    let files = certs.write_to(&dir)?;
    let result = bench_in(webhook_bin, policies, rounds, webhook_log, load, &files).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench_in(
    webhook_bin: &Path,
    policies: &Path,
    rounds: u32,
    webhook_log: Option<&Path>,
    load: &LoadArgs,
    files: &kspy_certs::WrittenFiles,
) -> anyhow::Result<()> {
    let floor_addr = free_port()?;
    let webhook_addr = free_port()?;
    let admin_addr = free_port()?;
    let me = std::env::current_exe().context("locating kspy-load")?;
    let floor = Guard(
        Command::new(&me)
            .args(["floor", "--addr", &floor_addr.to_string()])
            .arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the floor server")?,
    );
    let log = match webhook_log {
        Some(path) => Stdio::from(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let webhook = Guard(
        Command::new(webhook_bin)
            .args([
                "--addr",
                &webhook_addr.to_string(),
                "--admin-addr",
                &admin_addr.to_string(),
            ])
            .arg("--policies")
            .arg(policies)
            .arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .args(["--log-format", "json"])
            // A benchmark must not post thousands of Events to whatever cluster a kubeconfig
            // on this machine points at.
            .args(["--events", "off"])
            // Namespaces as the policy test suites declare them: the webhook judges as it would
            // in a cluster (namespace selectors, namespaceObject, Pod Security levels), and the
            // figures do not depend on whether this machine has a kubeconfig.
            .args(["--namespace-lookup", "declared"])
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", webhook_bin.display()))?,
    );
    wait_until("the webhook", Duration::from_secs(30), || {
        http_get_status(admin_addr, "/readyz") == Some(200)
    })?;
    wait_until("the floor server", Duration::from_secs(30), || {
        TcpStream::connect_timeout(&floor_addr, Duration::from_millis(200)).is_ok()
    })?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = webhook.0.id();
    let idle = rss_kib(pid);

    let floor_pid = floor.0.id();
    let ca = std::fs::read(&files.ca_cert)?;
    let mut floor_reports = Vec::new();
    let mut webhook_reports = Vec::new();
    let mut rounds_seen = Vec::new();
    for round in 1..=rounds {
        let (f, f_cpu) = measured_load(floor_pid, floor_addr, &ca, load).await?;
        let (w, w_cpu) = measured_load(pid, webhook_addr, &ca, load).await?;
        let paired = PairedRound::new(&f, f_cpu, &w, w_cpu);
        if rounds > 1 {
            eprintln!(
                "round {round}:\n{}\n{}\n{}\n{paired}",
                header(),
                row("floor", &f),
                row("webhook", &w)
            );
        }
        floor_reports.push(f);
        webhook_reports.push(w);
        rounds_seen.push(paired);
    }
    let loaded = rss_kib(pid);
    let floor_rss = rss_kib(floor_pid);
    drop(webhook);
    drop(floor);

    let f = median(&floor_reports);
    let w = median(&webhook_reports);
    println!(
        "review {} ({}) → {} · concurrency {} · {} · {:?} per run · {} round(s)",
        load.review.display(),
        if load.as_is { "as is" } else { "compact" },
        load.path,
        load.concurrency,
        if load.http2 {
            "HTTP/2"
        } else {
            "HTTP/1.1 keep-alive"
        },
        load.duration,
        rounds
    );
    println!("{}", header());
    println!("{}", row("floor", &f));
    println!("{}", row("webhook", &w));
    println!(
        "webhook/floor: rps {:.2}×  p50 {:.2}×  p90 {:.2}×  p99 {:.2}×",
        w.rps() / f.rps(),
        ratio(w.p50, f.p50),
        ratio(w.p90, f.p90),
        ratio(w.p99, f.p99)
    );
    if rounds > 1 {
        println!(
            "median of the rounds' {}",
            PairedRound::median(&rounds_seen)
        );
    } else if let Some(only) = rounds_seen.first() {
        println!("{}", only.cpu_line());
    }
    let mib = |k: u64| k as f64 / 1024.0;
    if let (Some((idle_rss, _)), Some((loaded_rss, peak))) = (idle, loaded) {
        println!(
            "webhook RSS: idle {:.1} MiB, after load {:.1} MiB (peak {:.1} MiB)",
            mib(idle_rss),
            mib(loaded_rss),
            mib(peak)
        );
    }
    if let Some((rss, peak)) = floor_rss {
        println!(
            "floor RSS (incl. nothing but TLS/HTTP): {:.1} MiB (peak {:.1} MiB)",
            mib(rss),
            mib(peak)
        );
    }
    if w.errors + w.non_200 > 0 || f.errors + f.non_200 > 0 {
        bail!("some requests failed (see the table)");
    }
    Ok(())
}

/// `a / b` as a factor; NaN when `b` is zero.
fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::NAN
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// Runs one load against the server with process id `pid`; the report and the server's CPU
/// time per request (warm-up included in both the time and the count), when `/proc` says.
async fn measured_load(
    pid: u32,
    addr: SocketAddr,
    ca: &[u8],
    load: &LoadArgs,
) -> anyhow::Result<(LoadReport, Option<Duration>)> {
    let before = cpu_time(pid);
    let report = run_load(load_config(addr, "127.0.0.1", ca, load)?).await?;
    let after = cpu_time(pid);
    let requests = report.ok + report.non_200 + report.errors + load.warmup;
    let per_request = match (before, after) {
        (Some(b), Some(a)) if requests > 0 => {
            Some(a.saturating_sub(b) / u32::try_from(requests).unwrap_or(u32::MAX))
        }
        _ => None,
    };
    Ok((report, per_request))
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime + stime` of a `/proc/PID/stat` line.
fn cpu_time_from_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // /proc counts in USER_HZ ticks, 1/100 s on every Linux architecture.
    Some(Duration::from_millis((utime + stime).saturating_mul(10)))
}

/// One round's webhook/floor ratios, taken within the round. The host's other load drifts
/// between rounds; ratios paired in time are steadier than ratios of separate medians.
#[derive(Clone, Copy)]
struct PairedRound {
    p50: f64,
    p99: f64,
    floor_cpu: Option<Duration>,
    webhook_cpu: Option<Duration>,
}

impl PairedRound {
    fn new(
        f: &LoadReport,
        f_cpu: Option<Duration>,
        w: &LoadReport,
        w_cpu: Option<Duration>,
    ) -> Self {
        Self {
            p50: ratio(w.p50, f.p50),
            p99: ratio(w.p99, f.p99),
            floor_cpu: f_cpu,
            webhook_cpu: w_cpu,
        }
    }

    /// The median of each figure over the rounds, each taken on its own.
    fn median(rounds: &[PairedRound]) -> Self {
        fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> Option<T> {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v.get(v.len() / 2).copied()
        }
        Self {
            p50: mid(rounds.iter().map(|r| r.p50).collect()).unwrap_or(f64::NAN),
            p99: mid(rounds.iter().map(|r| r.p99).collect()).unwrap_or(f64::NAN),
            floor_cpu: mid(rounds.iter().filter_map(|r| r.floor_cpu).collect()),
            webhook_cpu: mid(rounds.iter().filter_map(|r| r.webhook_cpu).collect()),
        }
    }

    /// The servers' CPU per request, as a line.
    fn cpu_line(&self) -> String {
        let us = |d: Option<Duration>| d.map_or("?".to_string(), |d| d.as_micros().to_string());
        format!(
            "server CPU per request: floor {} µs, webhook {} µs",
            us(self.floor_cpu),
            us(self.webhook_cpu)
        )
    }
}

impl std::fmt::Display for PairedRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "paired webhook/floor: p50 {:.2}×  p99 {:.2}× · {}",
            self.p50,
            self.p99,
            self.cpu_line()
        )
    }
}

/// The report with the median p50 (the rounds' other figures go with it).
fn median(reports: &[LoadReport]) -> LoadReport {
    let mut sorted: Vec<&LoadReport> = reports.iter().collect();
    sorted.sort_by_key(|r| r.p50);
    sorted[sorted.len() / 2].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p50_us: u64, p99_us: u64) -> LoadReport {
        LoadReport {
            ok: 1000,
            non_200: 0,
            errors: 0,
            elapsed: Duration::from_secs(1),
            p50: Duration::from_micros(p50_us),
            p90: Duration::from_micros(p99_us),
            p99: Duration::from_micros(p99_us),
            max: Duration::from_micros(p99_us),
        }
    }

    #[test]
    fn cpu_time_reads_utime_and_stime_past_an_awkward_command_name() {
        // Fields 14 and 15 (utime 250, stime 30 ticks); the name holds spaces and a ')'.
        let stat = "4242 (kspy (judge) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 30 0 0 20 0 \
                    6 0 100 1000000 3000 18446744073709551615";
        assert_eq!(cpu_time_from_stat(stat), Some(Duration::from_millis(2800)));
        assert_eq!(cpu_time_from_stat("4242 (cut short) S 1 2"), None);
        assert_eq!(cpu_time_from_stat("no parenthesis at all"), None);
    }

    #[test]
    fn paired_ratios_are_taken_within_each_round_then_their_median() {
        let us = Duration::from_micros;
        let rounds = [
            PairedRound::new(
                &report(100, 200),
                Some(us(30)),
                &report(300, 400),
                Some(us(90)),
            ),
            PairedRound::new(
                &report(200, 400),
                Some(us(50)),
                &report(300, 500),
                Some(us(100)),
            ),
            PairedRound::new(&report(100, 100), None, &report(400, 900), Some(us(120))),
        ];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(rounds[0].p50, 3.0));
        assert!(close(rounds[1].p99, 1.25));
        let m = PairedRound::median(&rounds);
        // p50 ratios 3, 1.5, 4 → 3; p99 ratios 2, 1.25, 9 → 2. A round without a CPU
        // figure is left out of that median only.
        assert!(close(m.p50, 3.0) && close(m.p99, 2.0), "{m}");
        assert_eq!(m.floor_cpu, Some(us(50)));
        assert_eq!(m.webhook_cpu, Some(us(100)));
        assert_eq!(
            m.to_string(),
            "paired webhook/floor: p50 3.00×  p99 2.00× · \
             server CPU per request: floor 50 µs, webhook 100 µs"
        );
    }
}
