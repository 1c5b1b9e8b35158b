//! Logs and traces.
//!
//! Logs go to stdout through `tracing-subscriber`, as JSON (one object per line, for log
//! collectors, `src/json_lines.rs`) or human-readable text (`name=value` fields, values quoted
//! and escaped so that one event is one line, `src/text_fields.rs`); the level comes from
//! `RUST_LOG` (default `info`).
//! Traces are exported over OTLP/HTTP (protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; each review is one span named after its
//! endpoint, carrying uid, user, namespace, pod, action and verdict. The other standard
//! `OTEL_*` variables (headers, timeout, service name) are honoured by the exporter.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
}

impl Telemetry {
    /// True when traces are exported.
    pub fn exporting_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the trace exporter, if any. Blocking: call it outside the runtime's
    /// worker threads (for example in `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("kspy-webhook: flushing traces failed: {err}");
        }
    }
}

/// True when the environment asks for OTLP trace export.
pub fn otlp_requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Installs the global log subscriber and, when requested by the environment, the OTLP trace
/// exporter. Must be called inside a Tokio runtime (the exporter's batch task runs on it).
pub fn init(format: LogFormat, service_name: &'static str) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours for a terminal only: escape codes in a file or a pipe are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = log_layer(format, ansi, std::io::stdout);
    let provider = if otlp_requested() {
        Some(otlp_provider(service_name)?)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service_name))
            .boxed()
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(Telemetry { provider })
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

fn otlp_provider(service_name: &'static str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
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
