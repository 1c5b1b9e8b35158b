//! Logs and traces.
//!
//! Logs go to stdout through `tracing-subscriber`, as JSON (one object per line, for log
//! collectors, `src/json_lines.rs`) or human-readable text (`name=value` fields, values quoted
//! and escaped so that one event is one line, `src/text_fields.rs`); the level comes from
//! `RUST_LOG` (default `info`, also used, with a warning, when `RUST_LOG` does not parse).
//! Traces are exported over OTLP/HTTP (protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; each review is one span named after its
//! endpoint, carrying uid, user, namespace, pod, action and verdict. [`trace_plan`] reads the
//! standard variables that decide whether and how: `OTEL_SDK_DISABLED=true` and
//! `OTEL_TRACES_EXPORTER=none` turn traces off; a protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`) other than `http/protobuf` and an endpoint that is not
//! an `http://` URL stop the start with a message saying what to set. Headers, timeout,
//! compression, sampler and service name are read by the exporter and the SDK.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A standard `OTEL_*` variable asks for something the webhook cannot do.
    #[error("{variable}={value:?}: {hint}")]
    Setting {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it means here and what to set instead.
        hint: String,
    },
    /// The OTLP exporter could not be built.
    #[error("OTLP trace exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// Keeps the trace pipeline alive; call [`Telemetry::shutdown`] before exiting to flush spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Where spans go, for the shutdown's log line.
    url: String,
}

/// The longest the shutdown waits for the last spans to be exported. The exporter's own
/// timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s) is for a running server; at shutdown a slow
/// collector must not eat the pod's termination grace period (30 s in the Deployment, most of
/// it for in-flight reviews and Events).
pub const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Trace exports that failed since the start (`kspy_trace_export_failures_total`). Process-wide,
/// as the trace pipeline is: one per process, installed with the global subscriber.
static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Set once [`init`] installed the trace exporter: until then, and without it, requests'
/// trace context is not even read.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Makes `span` (a server span, not yet entered) the child of the W3C trace context the
/// request carries (`traceparent`, `tracestate`; the API server sends them when its own
/// tracing is on), so the review shows inside the API server's trace. Without traces it does
/// nothing but read one flag: this is every review's path.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !TRACES_ON.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let parent =
        opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only for a span already started or disabled: then it keeps its own trace.
    let _ = span.set_parent(parent);
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Trace exports (batches of spans) that failed since the process started.
pub fn trace_export_failures() -> u64 {
    EXPORT_FAILURES.load(Ordering::Relaxed)
}

impl Telemetry {
    /// True when traces are exported.
    pub fn exporting_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the trace exporter, if any, waiting at most [`FLUSH_LIMIT`]; a flush
    /// that fails or takes longer is logged (with the endpoint) and abandoned. Blocking: call it
    /// outside the runtime's worker threads (for example in `spawn_blocking`).
    pub fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown waits for the export in progress, whatever its timeout: it runs on
        // a thread of its own, left behind (and ended with the process) if it overruns.
        let (done, result) = std::sync::mpsc::channel();
        let flushing = std::thread::Builder::new()
            .name("kspy-trace-flush".into())
            .spawn(move || {
                let _ = done.send(provider.shutdown());
            });
        let failure = match flushing {
            Err(err) => format!("cannot start the flushing thread: {err}"),
            Ok(_) => match result.recv_timeout(FLUSH_LIMIT) {
                Ok(Ok(())) => return,
                Ok(Err(err)) => err.to_string(),
                Err(_) => {
                    format!("not done within {FLUSH_LIMIT:?}; the spans still batched are dropped")
                }
            },
        };
        tracing::warn!(
            endpoint = %self.url,
            limit = ?FLUSH_LIMIT,
            error = %failure,
            "flushing traces at shutdown failed"
        );
    }
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

/// What the environment asks of traces ([`trace_plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracePlan {
    /// No OTLP endpoint is set: no traces.
    Off,
    /// An endpoint is set, but `variable=value` turns traces off.
    Disabled {
        /// The variable that turns them off.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// Export over OTLP/HTTP with protobuf.
    Export {
        /// The URL spans are posted to.
        url: String,
    },
}

/// Reads the standard variables that decide whether traces are exported, and where, from
/// `env` (`std::env::var` in [`init`]; a variable set to the empty string counts as unset, as
/// the specification says). An error names the variable, its value and what to set instead.
pub fn trace_plan(env: impl Fn(&str) -> Option<String>) -> Result<TracePlan, TelemetryError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    // The per-signal variable is the URL itself; the generic one is a base that gets the
    // signal's path (the OTLP exporter specification, as the exporter builds it).
    let (variable, endpoint) = match (var(TRACES_ENDPOINT), var(ENDPOINT)) {
        (Some(e), _) => (TRACES_ENDPOINT, e),
        (None, Some(e)) => (ENDPOINT, e),
        (None, None) => return Ok(TracePlan::Off),
    };
    // Checked before anything else: an operator who turned traces off must not be stopped by
    // a setting that no longer matters.
    if let Some(value) = var(SDK_DISABLED)
        && value.trim().eq_ignore_ascii_case("true")
    {
        return Ok(TracePlan::Disabled {
            variable: SDK_DISABLED,
            value,
        });
    }
    if let Some(value) = var(TRACES_EXPORTER) {
        let names: Vec<String> = value
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().all(|n| n == "none") {
            return Ok(TracePlan::Disabled {
                variable: TRACES_EXPORTER,
                value,
            });
        }
        if names.iter().any(|n| n != "otlp" && n != "none") {
            return Err(TelemetryError::Setting {
                variable: TRACES_EXPORTER,
                value,
                hint: "kspy-webhook exports traces over OTLP only; set it to otlp (or unset \
                       it), or to none to turn traces off"
                    .to_owned(),
            });
        }
    }
    let (protocol_variable, protocol) = match (var(TRACES_PROTOCOL), var(PROTOCOL)) {
        (Some(p), _) => (TRACES_PROTOCOL, Some(p)),
        (None, p) => (PROTOCOL, p),
    };
    if let Some(value) = protocol {
        let hint = match value.trim() {
            "http/protobuf" => None,
            "grpc" => Some(format!(
                "kspy-webhook sends traces over OTLP/HTTP with protobuf, not gRPC; set \
                 {protocol_variable}=http/protobuf (or unset it) and point {variable} at the \
                 collector's OTLP/HTTP port (4318 by default) instead of its gRPC port (4317)"
            )),
            "http/json" => Some(format!(
                "kspy-webhook sends traces over OTLP/HTTP with protobuf only (every OTLP/HTTP \
                 collector accepts it); set {protocol_variable}=http/protobuf or unset it"
            )),
            _ => Some(format!(
                "not an OTLP protocol; kspy-webhook sends traces over OTLP/HTTP with \
                 protobuf: set {protocol_variable}=http/protobuf or unset it"
            )),
        };
        if let Some(hint) = hint {
            return Err(TelemetryError::Setting {
                variable: protocol_variable,
                value,
                hint,
            });
        }
    }
    let endpoint = endpoint.trim().to_owned();
    let scheme = endpoint
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => {}
        // The exporter's HTTP client connects over plain TCP only: an https:// URL would fail
        // at every export.
        Some("https") => {
            return Err(TelemetryError::Setting {
                variable,
                value: endpoint,
                hint: "kspy-webhook's OTLP exporter speaks plain HTTP only; give the \
                       collector's (or a local agent's) http:// URL, for example \
                       http://otel-collector.observability.svc:4318"
                    .to_owned(),
            });
        }
        _ => {
            return Err(TelemetryError::Setting {
                variable,
                hint: format!(
                    "not a URL: it needs its scheme, for example http://{}",
                    endpoint
                        .split_once("://")
                        .map_or(endpoint.as_str(), |(_, rest)| rest)
                ),
                value: endpoint,
            });
        }
    }
    let url = if variable == TRACES_ENDPOINT {
        endpoint
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    Ok(TracePlan::Export { url })
}

/// Installs the global log subscriber and, when requested by the environment, the OTLP trace
/// exporter. Must be called inside a Tokio runtime (the exporter's batch task runs on it).
pub fn init(format: LogFormat, service_name: &'static str) -> Result<Telemetry, TelemetryError> {
    let (filter, refused) = level_filter(std::env::var_os(EnvFilter::DEFAULT_ENV));
    // Colours for a terminal only: escape codes in a file or a pipe are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = log_layer(format, ansi, std::io::stdout);
    let plan = trace_plan(|name| std::env::var(name).ok())?;
    let (provider, url) = match &plan {
        TracePlan::Export { url } => (Some(otlp_provider(service_name, url)?), url.clone()),
        TracePlan::Off | TracePlan::Disabled { .. } => (None, String::new()),
    };
    let otel = provider
        .as_ref()
        .map(|p| trace_layer(p.tracer(service_name)).boxed());
    let filter = Wanted {
        env: filter,
        review_spans: provider.is_some(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    TRACES_ON.store(provider.is_some(), Ordering::Relaxed);
    match plan {
        TracePlan::Off => {}
        // Once, at start: the endpoint says traces were wanted, so their absence needs a reason.
        TracePlan::Disabled { variable, value } => tracing::info!(
            variable,
            value = %value,
            "traces are not exported: {variable}={value} turns them off"
        ),
        TracePlan::Export { url } => {
            tracing::info!(endpoint = %url, "exporting traces over OTLP/HTTP")
        }
    }
    // Said once the subscriber is in place: falling back silently left an operator who asked
    // for `debug` wondering why nothing more was logged.
    if let Some(error) = refused {
        tracing::warn!(
            variable = EnvFilter::DEFAULT_ENV,
            error = %error,
            // Not `level`: that is the line's own in JSON.
            level_used = DEFAULT_LEVEL,
            "RUST_LOG is not a valid log filter; logging at the default level"
        );
    }
    Ok(Telemetry { provider, url })
}

/// The review span's target and name (`review.rs`): exported whatever `RUST_LOG` says.
const REVIEW_SPAN: (&str, &str) = ("kspy_webhook::review", "review");

/// The global filter: `RUST_LOG` (`env`), and, with traces on, every review span.
///
/// `RUST_LOG` chooses log lines, but a global filter disables what it refuses for every
/// layer, the trace exporter's too: with `RUST_LOG=warn` (a usual way to quiet a busy
/// webhook) the `info` review spans were never created, and no trace was exported though
/// `OTEL_EXPORTER_OTLP_ENDPOINT` was set. The log layer keeps spans away from the formatter
/// on its own (`log_layer`), so enabling them costs no log line. `env` stays global, and sees
/// every span, so span directives (`[review]=debug`) go on working.
struct Wanted {
    env: EnvFilter,
    review_spans: bool,
}

impl Wanted {
    fn is_review_span(&self, meta: &tracing::Metadata<'_>) -> bool {
        self.review_spans && meta.is_span() && (meta.target(), meta.name()) == REVIEW_SPAN
    }
}

impl<S> Layer<S> for Wanted
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.is_review_span(meta) {
            tracing::subscriber::Interest::always()
        } else {
            Layer::<S>::register_callsite(&self.env, meta)
        }
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.is_review_span(meta) || self.env.enabled(meta, cx)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let env = self.env.max_level_hint();
        if self.review_spans {
            // The review span is at `info`; `None` (no hint) already lets everything through.
            env.map(|level| level.max(tracing::level_filters::LevelFilter::INFO))
        } else {
            env
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.env.on_new_span(attrs, id, cx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.env.on_record(id, values, cx);
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.env.on_enter(id, cx);
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.env.on_exit(id, cx);
    }

    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.env.on_close(id, cx);
    }
}

/// The layer that turns spans into OpenTelemetry spans for `tracer`, as [`init`] installs it.
/// Spans carry their own fields, the special `otel.*` ones (name, kind, status) and
/// `http.response.status_code`; the layer's own additions that say nothing about a review
/// (`busy_ns`/`idle_ns`, `thread.*`, `code.*`, `target`) are left out: they cost bytes in every
/// export, and `code.*` only points at the same line of `review.rs` each time.
pub fn trace_layer<S>(tracer: opentelemetry_sdk::trace::SdkTracer) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
}

/// The level used without `RUST_LOG`, or with one that does not parse.
const DEFAULT_LEVEL: &str = "info";

/// The log filter `RUST_LOG` (its value `value`) asks for, or [`DEFAULT_LEVEL`] with why it
/// was refused when it is not a valid filter.
fn level_filter(value: Option<std::ffi::OsString>) -> (EnvFilter, Option<String>) {
    let Some(value) = value else {
        return (EnvFilter::new(DEFAULT_LEVEL), None);
    };
    let refused = match value.into_string() {
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => return (filter, None),
            Err(err) => format!("{text:?}: {err}"),
        },
        Err(raw) => format!("{raw:?}: not valid UTF-8"),
    };
    (EnvFilter::new(DEFAULT_LEVEL), Some(refused))
}

/// The log lines [`init`] installs, written to `writer` instead of stdout at `level`, with no
/// trace export: for tests that read what the server logs.
pub fn log_subscriber<W>(
    format: LogFormat,
    level: tracing::Level,
    writer: W,
) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(level))
        .with(log_layer(format, false, writer))
}

/// The layer that writes log lines in `format` to `writer`.
fn log_layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    match format {
        // One object per line, fields at the top level, no spans (json_lines.rs).
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(crate::json_lines::JsonLines)
            .with_writer(writer)
            .boxed(),
        // Values quoted and escaped so that one event is one line (text_fields.rs).
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .fmt_fields(crate::text_fields::TextFields)
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    }
    // Log lines are events; every decision event carries its own fields. Keeping spans away
    // from the formatter spares it formatting span fields nobody prints (measurable per
    // review); the trace exporter still sees them.
    .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_event()
    }))
    .boxed()
}

fn otlp_provider(
    service_name: &'static str,
    url: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    // The URL [`trace_plan`] chose, not the exporter's own reading of the same variables,
    // which differs on edge cases (a per-signal variable of only spaces is unset for one and
    // an invalid URL for the other).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let exporter = Reporting {
        inner: exporter,
        url: url.to_owned(),
        failures: Mutex::new(FailureLog::default()),
    };
    // The hyper-based HTTP client needs the Tokio runtime, so spans are batched on it rather
    // than on the SDK's own thread.
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    // OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the built-in name.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name);
    }
    let resource = resource.build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// How often, at most, failing exports are logged after the first failure.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A span exporter that reports the failures of the one it wraps: the SDK (without its
/// internal logs) drops a batch that failed without a word. Every failure is counted in
/// [`trace_export_failures`]; the first is logged at once, later ones at most once per
/// [`FAILURE_LOG_INTERVAL`] with their count, so a collector that is down does not flood
/// the log; the first success after failures is logged too.
#[derive(Debug)]
struct Reporting<E> {
    inner: E,
    /// Where spans go, for the log lines.
    url: String,
    failures: Mutex<FailureLog>,
}

/// Failures not yet logged.
#[derive(Debug, Default)]
struct FailureLog {
    /// When a failure was last logged; `None` while exports succeed.
    logged_at: Option<Instant>,
    /// Failed exports and the spans they held since then.
    unlogged: u64,
    unlogged_spans: u64,
}

/// What to log about export failures.
#[derive(Debug, PartialEq, Eq)]
enum FailureReport {
    /// Nothing now.
    Quiet,
    /// The first failure after exports worked (or since the start).
    First,
    /// `failures` exports holding `spans` spans failed since the last line.
    Since { failures: u64, spans: u64 },
    /// Exports work again after failures; `failures` were not logged yet.
    Recovered { failures: u64, spans: u64 },
}

impl FailureLog {
    fn failed(&mut self, spans: u64, now: Instant) -> FailureReport {
        self.unlogged += 1;
        self.unlogged_spans += spans;
        let report = match self.logged_at {
            None => FailureReport::First,
            Some(at) if now.duration_since(at) >= FAILURE_LOG_INTERVAL => FailureReport::Since {
                failures: self.unlogged,
                spans: self.unlogged_spans,
            },
            Some(_) => return FailureReport::Quiet,
        };
        self.logged_at = Some(now);
        self.unlogged = 0;
        self.unlogged_spans = 0;
        report
    }

    fn succeeded(&mut self) -> FailureReport {
        if self.logged_at.take().is_none() {
            return FailureReport::Quiet;
        }
        let report = FailureReport::Recovered {
            failures: self.unlogged,
            spans: self.unlogged_spans,
        };
        self.unlogged = 0;
        self.unlogged_spans = 0;
        report
    }
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let mut log = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let report = match &result {
            Ok(()) => log.succeeded(),
            Err(_) => {
                EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
                log.failed(spans, Instant::now())
            }
        };
        drop(log);
        let error = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        match report {
            FailureReport::Quiet => {}
            FailureReport::First => tracing::warn!(
                endpoint = %self.url,
                spans,
                error = %error,
                "exporting traces failed; the spans are dropped (further failures are logged at most once a minute, all are counted in kspy_trace_export_failures_total)"
            ),
            FailureReport::Since { failures, spans } => tracing::warn!(
                endpoint = %self.url,
                failures,
                spans,
                error = %error,
                "exporting traces still fails: {failures} exports ({spans} spans) dropped in the last minute or more"
            ),
            FailureReport::Recovered { failures, spans } => tracing::info!(
                endpoint = %self.url,
                failures,
                spans,
                "exporting traces works again ({failures} more exports, {spans} spans, failed since the last warning)"
            ),
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan for an environment holding only `vars`.
    fn plan(vars: &[(&str, &str)]) -> Result<TracePlan, TelemetryError> {
        trace_plan(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn export(url: &str) -> Result<TracePlan, TelemetryError> {
        Ok(TracePlan::Export {
            url: url.to_owned(),
        })
    }

    #[test]
    fn traces_go_to_the_endpoint_the_standard_variables_name() {
        assert!(matches!(plan(&[]), Ok(TracePlan::Off)));
        assert!(matches!(plan(&[(ENDPOINT, "")]), Ok(TracePlan::Off)));
        let base = (ENDPOINT, "http://collector:4318");
        assert_eq!(
            plan(&[base]).ok(),
            export("http://collector:4318/v1/traces").ok()
        );
        assert_eq!(
            plan(&[(ENDPOINT, "HTTP://collector:4318/")]).ok(),
            export("HTTP://collector:4318/v1/traces").ok()
        );
        // The per-signal URL is used as given, and wins.
        assert_eq!(
            plan(&[base, (TRACES_ENDPOINT, "http://other:4318/custom")]).ok(),
            export("http://other:4318/custom").ok()
        );
        for ok in [
            (PROTOCOL, "http/protobuf"),
            (TRACES_EXPORTER, "otlp"),
            (SDK_DISABLED, "false"),
        ] {
            assert_eq!(
                plan(&[base, ok]).ok(),
                export("http://collector:4318/v1/traces").ok()
            );
        }
    }

    #[test]
    fn the_sdk_switch_and_the_none_exporter_turn_traces_off() {
        let base = (ENDPOINT, "http://collector:4318");
        for (variable, value) in [
            (SDK_DISABLED, "true"),
            (SDK_DISABLED, "TRUE"),
            (TRACES_EXPORTER, "none"),
        ] {
            assert_eq!(
                plan(&[base, (variable, value), (PROTOCOL, "grpc")]).ok(),
                Some(TracePlan::Disabled {
                    variable,
                    value: value.to_owned()
                }),
                "{variable}={value} wins over a protocol it would refuse"
            );
        }
        // Without an endpoint there is nothing to turn off, and nothing to say.
        assert!(matches!(
            plan(&[(SDK_DISABLED, "true")]),
            Ok(TracePlan::Off)
        ));
    }

    #[test]
    fn protocols_other_than_http_protobuf_are_refused_with_what_to_set() {
        let base = (ENDPOINT, "http://collector:4317");
        for (variable, value, says) in [
            (PROTOCOL, "grpc", "4318"),
            (TRACES_PROTOCOL, "grpc", "4318"),
            (PROTOCOL, "http/json", "http/protobuf"),
            (TRACES_PROTOCOL, "thrift", "http/protobuf"),
        ] {
            let err = plan(&[base, (variable, value)]).expect_err("refused");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{variable}=\"{value}\"")) && text.contains(says),
                "{text}"
            );
            assert!(
                text.contains(&format!("set {variable}=http/protobuf")),
                "{text}"
            );
        }
        // The per-signal variable wins over the generic one.
        assert!(plan(&[base, (PROTOCOL, "grpc"), (TRACES_PROTOCOL, "http/protobuf")]).is_ok());
        let err = plan(&[base, (TRACES_EXPORTER, "zipkin")]).expect_err("refused");
        assert!(err.to_string().contains("OTEL_TRACES_EXPORTER"), "{err}");
    }

    #[test]
    fn an_endpoint_without_its_scheme_is_refused_naming_the_variable() {
        let err = plan(&[(ENDPOINT, "127.0.0.1:4318")]).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT=\"127.0.0.1:4318\"")
                && text.contains("http://127.0.0.1:4318"),
            "{text}"
        );
        let err = plan(&[(TRACES_ENDPOINT, "collector:4318/v1/traces")]).expect_err("refused");
        assert!(err.to_string().starts_with(TRACES_ENDPOINT), "{err}");
        let err = plan(&[(ENDPOINT, "https://collector:4318")]).expect_err("refused");
        assert!(err.to_string().contains("plain HTTP"), "{err}");
    }

    #[test]
    fn export_failures_are_logged_first_then_once_a_minute_with_their_count() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut log = FailureLog::default();
        assert_eq!(log.succeeded(), FailureReport::Quiet);
        assert_eq!(log.failed(10, at(0)), FailureReport::First);
        assert_eq!(log.failed(5, at(1)), FailureReport::Quiet);
        assert_eq!(log.failed(5, at(59)), FailureReport::Quiet);
        assert_eq!(
            log.failed(2, at(60)),
            FailureReport::Since {
                failures: 3,
                spans: 12
            }
        );
        assert_eq!(log.failed(1, at(61)), FailureReport::Quiet);
        assert_eq!(
            log.succeeded(),
            FailureReport::Recovered {
                failures: 1,
                spans: 1
            }
        );
        assert_eq!(log.succeeded(), FailureReport::Quiet);
        // A new outage is told at once again.
        assert_eq!(log.failed(1, at(62)), FailureReport::First);
    }
}
