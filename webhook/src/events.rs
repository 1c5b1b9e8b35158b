//! Kubernetes Events about debug decisions: one `events.k8s.io/v1` Event per judged debug
//! request on `/validate`, regarding the Pod, so `kubectl describe pod` and `kubectl events`
//! show who debugged it, how, and what kspy decided.
//!
//! Events are posted in the background: a review never waits on the API server, a full queue
//! drops the event (counted), and a failed post is logged and counted. Repeats of one
//! decision are written as a series on the first one's Event (`event_series.rs`). Dry-run
//! requests get no Event, which is why the validating webhook declares
//! `sideEffects: NoneOnDryRun`.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use crate::event_series::{SeriesBook, SeriesTiming, SeriesUpdate, Step};
use crate::metrics::{EventResult, Metrics};

/// `reportingController` of every Event kspy posts.
pub const REPORTING_CONTROLLER: &str = "kspy.dev/webhook";
/// Events waiting to be posted, beyond which new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// The API server rejects an Event note over 1 KiB.
const NOTE_MAX_BYTES: usize = 1024;

/// Where decision Events go.
#[derive(Clone, Default)]
pub enum EventSink {
    /// Nowhere (no cluster, or `--events off`).
    #[default]
    Off,
    /// Posted to the API server.
    Api {
        /// The client.
        client: kube::Client,
        /// `reportingInstance`: this replica's name (the pod's hostname).
        instance: String,
    },
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventSink::Off => f.write_str("Off"),
            EventSink::Api { instance, .. } => f
                .debug_struct("Api")
                .field("instance", instance)
                .finish_non_exhaustive(),
        }
    }
}

/// What one decision's Event says. Two equal ones are repeats of one decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionEvent {
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod's name.
    pub pod: String,
    /// The Pod's uid, when the request carried it (an attach to a running Pod does).
    pub pod_uid: Option<String>,
    /// The debug action (`attach`, `copy`, `node`).
    pub action: String,
    /// Whether the request was allowed.
    pub allowed: bool,
    /// Who asked.
    pub user: String,
    /// The policies that applied.
    pub policies: Vec<String>,
    /// The containers judged.
    pub subjects: Vec<String>,
    /// The denial message (empty when allowed).
    pub message: String,
}

impl DecisionEvent {
    /// The Event object, timestamped `now`, reported by `instance` (the webhook pod's name).
    pub fn to_event(&self, instance: &str, now: k8s_openapi::jiff::Timestamp) -> Event {
        let (type_, reason) = if self.allowed {
            ("Normal", "DebugAllowed")
        } else {
            ("Warning", "DebugDenied")
        };
        let policies = if self.policies.is_empty() {
            "no policy".to_owned()
        } else {
            format!("policy {}", self.policies.join(", "))
        };
        let containers = if self.subjects.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.subjects.join(", "))
        };
        let note = if self.allowed {
            format!(
                "{} by {}{containers}: allowed by {policies}",
                self.action, self.user
            )
        } else {
            format!(
                "{} by {}{containers}: denied by {policies}: {}",
                self.action, self.user, self.message
            )
        };
        Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.kspy.", self.pod)),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(capitalized(&self.action)),
            reason: Some(reason.to_owned()),
            type_: Some(type_.to_owned()),
            note: Some(truncated(note, NOTE_MAX_BYTES)),
            regarding: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(self.pod.clone()),
                namespace: Some(self.namespace.clone()),
                uid: self.pod_uid.clone(),
                ..ObjectReference::default()
            }),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(instance.to_owned()),
            ..Event::default()
        }
    }
}

/// `attach` → `Attach`: Event actions are CamelCase machine-readable words.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Debug".to_owned(),
    }
}

/// `s` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
fn truncated(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// Posts decision Events in the background. Cloning shares the queue.
#[derive(Clone)]
pub struct EventRecorder {
    queue: mpsc::Sender<DecisionEvent>,
    metrics: Arc<Metrics>,
    /// Asks the posting task to take nothing new and finish what is queued.
    stop: Arc<tokio::sync::Notify>,
    /// The posting task, taken by the first [`EventRecorder::drain`].
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish()
    }
}

impl EventRecorder {
    /// Starts the posting task on the current Tokio runtime. `instance` names this webhook
    /// replica in `reportingInstance`; `timing` says when repeats of a decision are written
    /// as a series (see [`crate::event_series`]). The task ends when every recorder is
    /// dropped, or at [`EventRecorder::drain`].
    pub fn start(
        client: kube::Client,
        instance: String,
        metrics: Arc<Metrics>,
        timing: SeriesTiming,
    ) -> Self {
        let (queue, mut rx) = mpsc::channel::<DecisionEvent>(QUEUE_CAPACITY);
        let mut poster = Poster {
            client,
            instance,
            metrics: Arc::clone(&metrics),
            book: SeriesBook::new(timing),
        };
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut check = tokio::time::interval(timing.check_every);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(decision) => poster.decision(decision).await,
                        None => break,
                    },
                    // Closing lets `recv` hand out what is queued, then end the loop.
                    () = stopped.notified() => rx.close(),
                    _ = check.tick() => {
                        let due = poster.book.due(Instant::now());
                        poster.write_all(due).await;
                    }
                }
            }
            let unwritten = poster.book.unwritten();
            poster.write_all(unwritten).await;
        });
        EventRecorder {
            queue,
            metrics,
            stop,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        }
    }

    /// On shutdown: takes no new Events (they count as dropped), posts the queued ones and
    /// writes the series counts not written yet, waiting at most `within`; what is left then
    /// is lost.
    pub async fn drain(&self, within: std::time::Duration) {
        self.stop.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && tokio::time::timeout(within, task).await.is_err()
        {
            tracing::warn!(
                "decision Events still queued after {within:?} at shutdown were not posted"
            );
        }
    }

    /// Queues one decision's Event; drops it (and counts the drop) when the queue is full.
    pub fn record(&self, decision: DecisionEvent) {
        if self.queue.try_send(decision).is_err() {
            self.metrics.event(EventResult::Dropped);
        }
    }
}

/// The posting task's side: makes the API calls the series book asks for.
struct Poster {
    client: kube::Client,
    instance: String,
    metrics: Arc<Metrics>,
    book: SeriesBook,
}

impl Poster {
    async fn decision(&mut self, decision: DecisionEvent) {
        let wall = Timestamp::now();
        match self.book.observe(&decision, Instant::now(), wall) {
            Step::Create => {
                if let Some(name) = self.create(&decision, None).await {
                    self.book.created(&decision, name, Instant::now(), wall);
                }
            }
            Step::Update(update) => {
                self.metrics.event(EventResult::Repeated);
                self.write(*update).await;
            }
            Step::Counted => self.metrics.event(EventResult::Repeated),
        }
    }

    async fn write_all(&mut self, updates: Vec<SeriesUpdate>) {
        for update in updates {
            self.write(update).await;
        }
    }

    /// Creates `decision`'s Event, with `series` when it stands for repeats; its name.
    async fn create(
        &self,
        decision: &DecisionEvent,
        series: Option<EventSeries>,
    ) -> Option<String> {
        let mut event = decision.to_event(&self.instance, Timestamp::now());
        event.series = series;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &decision.namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                self.metrics.event(EventResult::Posted);
                created.metadata.name
            }
            Err(err) => {
                self.metrics.event(EventResult::Failed);
                tracing::warn!(
                    namespace = %decision.namespace,
                    pod = %decision.pod,
                    error = %err,
                    "cannot post the decision Event (the webhook's ServiceAccount needs \
                     `create` on events.k8s.io events)"
                );
                None
            }
        }
    }

    /// Writes a series count onto its Event; creates the Event anew, series and all, when it
    /// has gone (Events expire, an hour after their last write by default).
    async fn write(&mut self, update: SeriesUpdate) {
        let series = EventSeries {
            count: update.count,
            last_observed_time: MicroTime(update.last_observed),
        };
        let count = u32::try_from(update.count).unwrap_or(0);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &update.decision.namespace);
        let patch = serde_json::json!({ "series": &series });
        match api
            .patch(&update.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.metrics.event(EventResult::Updated);
                self.book.written(&update.decision, count, Instant::now());
            }
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                if let Some(name) = self.create(&update.decision, Some(series)).await {
                    self.book
                        .recreated(&update.decision, name, count, Instant::now());
                }
            }
            Err(err) => {
                self.metrics.event(EventResult::Failed);
                // Not retried until the next repeat or heartbeat: a refusal would repeat.
                self.book.written(&update.decision, count, Instant::now());
                tracing::warn!(
                    namespace = %update.decision.namespace,
                    event = %update.name,
                    count = update.count,
                    error = %err,
                    "cannot write the count of a repeated decision onto its Event (the \
                     webhook's ServiceAccount needs `patch` on events.k8s.io events)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> DecisionEvent {
        DecisionEvent {
            namespace: "prod-payments".into(),
            pod: "payments-api-7d9f".into(),
            pod_uid: Some("0c5e-uid".into()),
            action: "attach".into(),
            allowed: false,
            user: "alice@acme.example".into(),
            policies: vec!["sre-debug".into()],
            subjects: vec!["debugger-x2k".into()],
            message: "capability SYS_ADMIN is not granted".into(),
        }
    }

    #[test]
    fn a_denial_is_a_warning_regarding_the_pod_with_the_reason() {
        let now = Timestamp::from_second(1_790_000_000).expect("time");
        let e = denied().to_event("kspy-webhook-abc", now);
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("DebugDenied"));
        assert_eq!(e.action.as_deref(), Some("Attach"));
        assert_eq!(
            e.note.as_deref(),
            Some(
                "attach by alice@acme.example (debugger-x2k): denied by policy sre-debug: \
                 capability SYS_ADMIN is not granted"
            )
        );
        let regarding = e.regarding.expect("regarding");
        assert_eq!(regarding.kind.as_deref(), Some("Pod"));
        assert_eq!(regarding.name.as_deref(), Some("payments-api-7d9f"));
        assert_eq!(regarding.uid.as_deref(), Some("0c5e-uid"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("prod-payments"));
        assert_eq!(
            e.metadata.generate_name.as_deref(),
            Some("payments-api-7d9f.kspy.")
        );
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("kspy-webhook-abc"));
        assert_eq!(e.event_time, Some(MicroTime(now)));
    }

    #[test]
    fn an_allowance_is_normal_and_names_the_policies() {
        let mut d = denied();
        d.allowed = true;
        d.message.clear();
        d.policies = vec!["sre-debug".into(), "audit".into()];
        let e = d.to_event("i", Timestamp::UNIX_EPOCH);
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.reason.as_deref(), Some("DebugAllowed"));
        assert_eq!(
            e.note.as_deref(),
            Some("attach by alice@acme.example (debugger-x2k): allowed by policy sre-debug, audit")
        );
    }

    #[test]
    fn a_long_note_is_cut_to_the_api_limit_on_a_character_boundary() {
        let mut d = denied();
        d.message = "é".repeat(2000);
        let note = d.to_event("i", Timestamp::UNIX_EPOCH).note.expect("note");
        assert!(note.len() <= NOTE_MAX_BYTES, "{}", note.len());
        assert!(note.ends_with("é…"), "{note}");
        assert_eq!(truncated("short".into(), 10), "short");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::new());
        // A recorder whose task never runs: nothing drains the queue.
        let (queue, _rx) = mpsc::channel(1);
        let recorder = EventRecorder {
            queue,
            metrics: Arc::clone(&metrics),
            stop: Arc::new(tokio::sync::Notify::new()),
            task: Arc::new(std::sync::Mutex::new(None)),
        };
        recorder.record(denied());
        recorder.record(denied());
        recorder.record(denied());
        assert_eq!(metrics.events_total(EventResult::Dropped), 2);
        assert_eq!(metrics.events_total(EventResult::Posted), 0);
    }
}
