//! What request handlers share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kspy_certs::ReloadingResolver;

use crate::engine_cell::EngineCell;
use crate::metrics::Metrics;

/// Shared by the review handlers and the admin endpoints.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The engine in force.
    pub engine: Arc<EngineCell>,
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The serving certificate (for readiness).
    pub resolver: Arc<ReloadingResolver>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// The budget of body bytes held at once (`--max-buffered-bytes`).
    pub body_budget: crate::body_budget::BodyBudget,
    /// `--max-buffered-bytes`, for messages.
    pub max_buffered_bytes: usize,
    /// Per-review deadline.
    pub review_timeout: Duration,
    /// The threads that parse and judge reviews.
    pub judges: crate::judge_pool::JudgePool,
    /// Namespace objects for the engine.
    pub namespaces: Arc<crate::namespaces::NamespaceLookup>,
    /// Posts decision Events, when a sink is configured.
    pub events: Option<crate::events::EventRecorder>,
    /// Testing aid.
    pub fault_injection: crate::config::FaultInjection,
    /// False once shutdown started.
    pub accepting: AtomicBool,
    /// Throttles the warning about pod CREATEs that are no debug request
    /// (`review::warn_unmatched_pod_create`).
    pub unmatched_pod_creates: crate::serve::LogThrottle,
}

impl AppState {
    /// Why the server is not ready, if it is not: shutting down, or the served chain expired
    /// (the certificate or an intermediate: [`ReloadingResolver::not_after`]).
    pub fn not_ready_reason(&self) -> Option<String> {
        if !self.accepting.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let not_after = self.resolver.not_after();
        if not_after <= now {
            return Some(format!(
                "the serving certificate (or an intermediate sent with it) expired at {}",
                kspy_certs::format_unix_utc(not_after)
            ));
        }
        None
    }
}
