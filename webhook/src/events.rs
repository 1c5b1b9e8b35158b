//! Kubernetes Events about debug decisions: one `events.k8s.io/v1` Event per judged debug
//! request on `/validate`, regarding the Pod, so `kubectl describe pod` and `kubectl events`
//! show who debugged it, how, and what kspy decided.
//!
//! Anyone who may read the namespace reads its Events (the `view` role can), so a denial's
//! note says what was wrong (the engine's [`DenialReason`]s) and names only the policies that
//! denied, never the requester's groups nor which policies grant what to whom: the full denial
//! message goes to the requester alone.
//!
//! Events are posted in the background: a review never waits on the API server, a full queue
//! drops the event (counted), and a failed post is logged and counted. Each user has a rate
//! limit per namespace, and repeats of one decision are written as a series on the first
//! one's Event (`event_series.rs`). Dry-run requests get no Event, which is why the
//! validating webhook declares `sideEffects: NoneOnDryRun`.

use crate::bounded_text::{FIELD_BYTES, MESSAGE_BYTES, bounded, prefix};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kspy_admission::decide::DenialReason;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use crate::event_series::{
    SeriesBook, SeriesTiming, SeriesUpdate, SpamFilter, SpamKey, SpamVerdict, Step,
};
use crate::metrics::{EventResult, Metrics};

/// `reportingController` of every Event kspy posts.
pub const REPORTING_CONTROLLER: &str = "kspy.dev/webhook";
/// Events waiting to be posted, beyond which new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// The API server rejects an Event note over 1 KiB.
const NOTE_MAX_BYTES: usize = 1024;
/// One reason in a note at most (a validation message can be long), so that one long reason
/// leaves room for the others.
const REASON_MAX_BYTES: usize = 320;
/// The user, and the list of containers, in a note at most.
const NAME_MAX_BYTES: usize = 256;
/// The API server keeps at most this many bytes of a `generateName` before adding five random
/// characters (`maxGeneratedNameLength`, 63 - 5), so a name from it is a valid DNS label.
const GENERATE_NAME_KEPT_BYTES: usize = 58;
/// What follows the Pod's name in an Event's `generateName`. It ends in `-`: the API server
/// checks a `generateName` as a DNS subdomain whose last character may be a `-` (the random
/// suffix follows), but not a `.`.
const GENERATE_NAME_SUFFIX: &str = ".kspy-";
/// The API server refuses a `reportingInstance` longer than this.
const INSTANCE_MAX_BYTES: usize = 128;
/// The API server refuses an `action` longer than this.
const ACTION_MAX_BYTES: usize = 128;
/// The longest name of a Kubernetes object (a DNS subdomain).
const OBJECT_NAME_MAX_BYTES: usize = 253;

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

/// One decision, as the review handler tells it: the Event is made from it
/// ([`DecisionEvent::content`]).
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
    /// The policies that applied (named in an allowance's note).
    pub policies: Vec<String>,
    /// The containers judged.
    pub subjects: Vec<String>,
    /// Why it was denied (empty when allowed): the engine's short reasons, fit for whoever
    /// may read the namespace ([`kspy_admission::Judgement::reasons`]), not the full message.
    pub reasons: Vec<DenialReason>,
}

/// What one decision's Event says, rendered when the decision is recorded
/// ([`DecisionEvent::content`]): a few KiB at most whatever the review held, so the queue and
/// the series book stay small even when every review is a 6 MiB one with a megabyte username.
/// Two equal ones are repeats of one decision: their Events would say exactly the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventContent {
    /// The Pod's namespace (at most 253 bytes, the longest name).
    pub namespace: String,
    /// The Pod's name (at most 253 bytes).
    pub pod: String,
    /// The Pod's uid (at most 253 bytes).
    pub pod_uid: Option<String>,
    /// The debug action (`attach`, `copy`, `node`; at most 128 bytes, the API's limit).
    pub action: String,
    /// Whether the request was allowed.
    pub allowed: bool,
    /// Who asked, cut as the note shows it (at most 256 bytes): the rate limit's key.
    pub user: String,
    /// The note (at most 1 KiB, the API's limit).
    pub note: String,
}

impl DecisionEvent {
    /// The Event object, timestamped `now`, reported by `instance` (the webhook pod's name).
    pub fn to_event(&self, instance: &str, now: k8s_openapi::jiff::Timestamp) -> Event {
        self.content().to_event(instance, now)
    }

    /// What its Event says, within the API server's limits.
    pub fn content(&self) -> EventContent {
        let note = if self.allowed {
            let policies = if self.policies.is_empty() {
                "no policy".to_owned()
            } else {
                // Cut first: the note keeps 1 KiB of them at most anyway.
                format!(
                    "policy {}",
                    truncated(self.policies.join(", "), NOTE_MAX_BYTES)
                )
            };
            format!("{}: allowed by {policies}", self.who_and_what())
        } else {
            self.denial_note()
        };
        EventContent {
            namespace: prefix(&self.namespace, OBJECT_NAME_MAX_BYTES).to_owned(),
            pod: prefix(&self.pod, OBJECT_NAME_MAX_BYTES).to_owned(),
            pod_uid: self
                .pod_uid
                .as_deref()
                .map(|uid| prefix(uid, OBJECT_NAME_MAX_BYTES).to_owned()),
            action: prefix(&self.action, ACTION_MAX_BYTES).to_owned(),
            allowed: self.allowed,
            user: truncated(self.user.clone(), NAME_MAX_BYTES),
            note: truncated(note, NOTE_MAX_BYTES),
        }
    }
}

impl EventContent {
    /// The Event object, timestamped `now`, reported by `instance` (the webhook pod's name).
    pub fn to_event(&self, instance: &str, now: k8s_openapi::jiff::Timestamp) -> Event {
        let (type_, reason) = if self.allowed {
            ("Normal", "DebugAllowed")
        } else {
            ("Warning", "DebugDenied")
        };
        Event {
            metadata: ObjectMeta {
                generate_name: Some(generate_name(&self.pod)),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(capitalized(&self.action)),
            reason: Some(reason.to_owned()),
            type_: Some(type_.to_owned()),
            note: Some(self.note.clone()),
            regarding: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(self.pod.clone()),
                namespace: Some(self.namespace.clone()),
                uid: self.pod_uid.clone(),
                ..ObjectReference::default()
            }),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(prefix(instance, INSTANCE_MAX_BYTES).to_owned()),
            ..Event::default()
        }
    }
}

impl DecisionEvent {
    /// `attach by alice (debugger-x2k)`: the user's name only, never their groups.
    fn who_and_what(&self) -> String {
        let user = truncated(self.user.clone(), NAME_MAX_BYTES);
        if self.subjects.is_empty() {
            format!("{} by {user}", self.action)
        } else {
            let containers = truncated(self.subjects.join(", "), NAME_MAX_BYTES);
            format!("{} by {user} ({containers})", self.action)
        }
    }

    /// `attach by bob (debugger-x2k): denied: capability SYS_ADMIN is not granted; policy
    /// production-reason: …`, within [`NOTE_MAX_BYTES`]: each reason once, with the containers
    /// it concerns when it does not concern them all, and `and N more` for those that do not
    /// fit.
    fn denial_note(&self) -> String {
        let mut note = format!("{}: denied", self.who_and_what());
        let parts = self.reason_parts();
        let mut sep = ": ";
        for (i, part) in parts.iter().enumerate() {
            let left = parts.len() - i - 1;
            let more = if left > 0 {
                format!("; and {left} more").len()
            } else {
                0
            };
            if note.len() + sep.len() + part.len() + more > NOTE_MAX_BYTES {
                note.push_str(&format!("{sep}and {} more", parts.len() - i));
                break;
            }
            note.push_str(sep);
            note.push_str(part);
            sep = "; ";
        }
        note
    }

    /// The reasons as the note lists them: one per distinct policy and reason, in order.
    /// Linear in the reasons and containers (a forged review can carry thousands of each: a
    /// search per reason made it quadratic, seconds on the posting task).
    fn reason_parts(&self) -> Vec<String> {
        struct Part<'a> {
            reason: &'a DenialReason,
            containers: Vec<&'a str>,
            seen: HashSet<&'a str>,
            whole_request: bool,
        }
        let mut found: Vec<Part<'_>> = Vec::new();
        let mut index: HashMap<(Option<&str>, &str), usize> = HashMap::new();
        for r in &self.reasons {
            let key = (r.policy.as_deref(), r.reason.as_str());
            let i = *index.entry(key).or_insert_with(|| {
                found.push(Part {
                    reason: r,
                    containers: Vec::new(),
                    seen: HashSet::new(),
                    whole_request: false,
                });
                found.len() - 1
            });
            let part = &mut found[i];
            match &r.container {
                Some(c) => {
                    if part.seen.insert(c.as_str()) {
                        part.containers.push(c);
                    }
                }
                None => part.whole_request = true,
            }
        }
        let subjects: HashSet<&str> = self.subjects.iter().map(String::as_str).collect();
        found
            .iter()
            .map(|p| {
                let text = p.reason.to_string();
                // Naming the container says something only when others were judged too and
                // this reason is not about them all.
                let covered = p.seen.iter().filter(|c| subjects.contains(*c)).count();
                let some = !p.whole_request && !p.containers.is_empty() && covered < subjects.len();
                let text = if some {
                    let quoted: Vec<String> =
                        p.containers.iter().map(|c| format!("{c:?}")).collect();
                    let noun = if quoted.len() == 1 {
                        "container"
                    } else {
                        "containers"
                    };
                    format!("{noun} {}: {text}", quoted.join(", "))
                } else {
                    text
                };
                truncated(text, REASON_MAX_BYTES)
            })
            .collect()
    }
}

/// The `generateName` of an Event about `pod`: `payments-api-7d9f.kspy-`, from which the API
/// server makes `payments-api-7d9f.kspy-x7k2p`. The Pod's name is cut so that the whole prefix
/// is within what the API server keeps (a Pod name may be 253 bytes, and a `generateName` over
/// 253 is refused), and a cut that ends in `-` or `.` is trimmed, which the API server would
/// refuse before `.kspy-`.
fn generate_name(pod: &str) -> String {
    let base = prefix(pod, GENERATE_NAME_KEPT_BYTES - GENERATE_NAME_SUFFIX.len())
        .trim_end_matches(['-', '.']);
    if base.is_empty() {
        "kspy-".to_owned()
    } else {
        format!("{base}{GENERATE_NAME_SUFFIX}")
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
    let kept = prefix(&s, max - '…'.len_utf8()).len();
    s.truncate(kept);
    s.push('…');
    s
}

/// Posts decision Events in the background. Cloning shares the queue.
#[derive(Clone)]
pub struct EventRecorder {
    queue: mpsc::Sender<EventContent>,
    metrics: Arc<Metrics>,
    /// The rate limit per user and namespace, applied before the queue.
    spam: Arc<std::sync::Mutex<SpamFilter>>,
    /// Events refused by the rate limit.
    rate_limited: Arc<AtomicU64>,
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
        let (queue, mut rx) = mpsc::channel::<EventContent>(QUEUE_CAPACITY);
        let mut poster = Poster {
            client,
            instance,
            metrics: Arc::clone(&metrics),
            book: SeriesBook::new(timing),
            call_timeout: timing.call_timeout,
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
            spam: Arc::default(),
            rate_limited: Arc::default(),
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

    /// Queues one decision's Event; drops it (and counts the drop) when the queue is full, or
    /// when it is a denial and its user is over their rate limit for denials in its namespace
    /// (see [`crate::event_series::SpamFilter`]). Allowed decisions are never rate-limited:
    /// each added a debug container, the Event is the record of who debugged what, and a run
    /// of cheap denied attempts must not hide the session that follows.
    ///
    /// Only what the Event says is kept ([`EventContent`]), not the decision: a forged review
    /// can carry a megabyte username or thousands of reasons, and 1024 queued and 4096
    /// followed decisions of 6 MiB each were gigabytes.
    pub fn record(&self, decision: DecisionEvent) {
        let decision = decision.content();
        let verdict = if decision.allowed {
            SpamVerdict::Allowed
        } else {
            self.spam
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .admit(&SpamKey::of(&decision), Instant::now())
        };
        if let SpamVerdict::Limited { first } = verdict {
            self.count_rate_limited();
            if first {
                tracing::warn!(
                    user = %bounded(&decision.user, FIELD_BYTES),
                    namespace = %bounded(&decision.namespace, FIELD_BYTES),
                    burst = crate::event_series::SPAM_BURST,
                    refill_s = crate::event_series::SPAM_REFILL.as_secs(),
                    "too many debug decisions by this user in this namespace: their Events are \
                     not posted until the rate limit refills (one Event every refill_s seconds \
                     after a burst)"
                );
            }
            return;
        }
        if self.queue.try_send(decision).is_err() {
            self.metrics.event(EventResult::Dropped);
        }
    }

    /// How many Events the rate limit refused.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Counts one Event refused by the rate limit, also as `kspy_events_total{result="rate-limited"}`.
    fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        self.metrics.event(EventResult::RateLimited);
    }
}

/// The posting task's side: makes the API calls the series book asks for.
struct Poster {
    client: kube::Client,
    instance: String,
    metrics: Arc<Metrics>,
    book: SeriesBook,
    /// The longest one API call may take ([`SeriesTiming::call_timeout`]).
    call_timeout: std::time::Duration,
}

/// Why an API call about an Event failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The API server answered with an error, or could not be reached.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The API server did not answer in time. kube's client has no read timeout, so a server
    /// that takes a request and never answers held the posting task, and with it every
    /// later Event, for as long as the connection stayed open.
    #[error(
        "the API server did not answer within {0:?}; the call was abandoned (the Event may \
         or may not have been written)"
    )]
    TimedOut(std::time::Duration),
}

impl Poster {
    async fn decision(&mut self, decision: EventContent) {
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
    async fn create(&self, decision: &EventContent, series: Option<EventSeries>) -> Option<String> {
        let mut event = decision.to_event(&self.instance, Timestamp::now());
        event.series = series;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &decision.namespace);
        match self
            .within_time(api.create(&PostParams::default(), &event))
            .await
        {
            Ok(created) => {
                self.metrics.event(EventResult::Posted);
                created.metadata.name
            }
            Err(err) => {
                self.metrics.event(EventResult::Failed);
                tracing::warn!(
                    namespace = %bounded(&decision.namespace, FIELD_BYTES),
                    pod = %bounded(&decision.pod, FIELD_BYTES),
                    error = %bounded(&err.to_string(), MESSAGE_BYTES),
                    "cannot post the decision Event (the webhook's ServiceAccount needs \
                     `create` on events.k8s.io events)"
                );
                None
            }
        }
    }

    /// `call`, abandoned after [`Poster::call_timeout`].
    async fn within_time<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(answered) => Ok(answered?),
            Err(_) => Err(CallError::TimedOut(self.call_timeout)),
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
        match self
            .within_time(api.patch(&update.name, &PatchParams::default(), &Patch::Merge(&patch)))
            .await
        {
            Ok(_) => {
                self.metrics.event(EventResult::Updated);
                self.book.written(&update.decision, count, Instant::now());
            }
            Err(CallError::Api(kube::Error::Api(status))) if status.is_not_found() => {
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
                    namespace = %bounded(&update.decision.namespace, FIELD_BYTES),
                    event = %bounded(&update.name, FIELD_BYTES),
                    count = update.count,
                    error = %bounded(&err.to_string(), MESSAGE_BYTES),
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
            reasons: vec![reason(
                Some("debugger-x2k"),
                None,
                "capability SYS_ADMIN is not granted",
            )],
        }
    }

    fn reason(container: Option<&str>, policy: Option<&str>, text: &str) -> DenialReason {
        DenialReason {
            container: container.map(str::to_owned),
            policy: policy.map(str::to_owned),
            reason: text.into(),
        }
    }

    fn note(d: &DecisionEvent) -> String {
        d.to_event("i", Timestamp::UNIX_EPOCH).note.expect("a note")
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
                "attach by alice@acme.example (debugger-x2k): denied: capability SYS_ADMIN is not granted"
            )
        );
        let regarding = e.regarding.expect("regarding");
        assert_eq!(regarding.kind.as_deref(), Some("Pod"));
        assert_eq!(regarding.name.as_deref(), Some("payments-api-7d9f"));
        assert_eq!(regarding.uid.as_deref(), Some("0c5e-uid"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("prod-payments"));
        assert_eq!(
            e.metadata.generate_name.as_deref(),
            Some("payments-api-7d9f.kspy-")
        );
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("kspy-webhook-abc"));
        assert_eq!(e.event_time, Some(MicroTime(now)));
    }

    /// `validation.IsDNS1123Subdomain`: at most 253 bytes of dot-separated parts of lower-case
    /// letters, digits and `-`, each starting and ending with a letter or digit.
    fn is_dns1123_subdomain(s: &str) -> bool {
        s.len() <= 253
            && s.split('.').all(|part| {
                let b = part.as_bytes();
                !b.is_empty()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    && b[0] != b'-'
                    && b[b.len() - 1] != b'-'
            })
    }

    /// What the API server does with a `generateName` on create (`ValidateObjectMeta` with
    /// `NameIsDNSSubdomain`): the prefix is checked as a subdomain with a trailing `-` allowed,
    /// and the name made from it (at most 58 bytes of it, then five random characters) too.
    fn api_server_accepts_generate_name(g: &str) -> bool {
        let masked = match g.strip_suffix('-') {
            Some(rest) if !rest.is_empty() => format!("{rest}a"),
            _ => g.to_owned(),
        };
        let generated = format!("{}x7k2p", &g[..g.len().min(58)]);
        is_dns1123_subdomain(&masked) && is_dns1123_subdomain(&generated)
    }

    #[test]
    fn the_event_name_and_instance_are_what_the_api_server_accepts() {
        let long_label = "a".repeat(63);
        let longest = [long_label.as_str(); 4].join(".");
        assert_eq!(longest.len(), 255);
        let longest = &longest[..253];
        for pod in [
            "web",
            "payments-api-7d9f",
            "node-debugger-worker-1.example.com-x2k9d",
            // Cut at the 52nd byte: on a `-`, on a `.`, on a letter.
            &format!("{}-tail", "p".repeat(51)),
            &format!("{}.tail", "p".repeat(51)),
            &"p".repeat(60),
            longest,
        ] {
            let mut d = denied();
            d.pod = pod.to_owned();
            let e = d.to_event("kspy-webhook-0", Timestamp::UNIX_EPOCH);
            let g = e.metadata.generate_name.expect("a generateName");
            assert!(api_server_accepts_generate_name(&g), "{pod:?} → {g:?}");
            assert!(g.ends_with(".kspy-"), "{g}");
            assert!(g.len() <= 58, "kept whole by the API server: {g}");
            assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some(pod));
        }
        // The old prefix, `web.kspy.`, ended in a dot: every Event was refused.
        assert!(!api_server_accepts_generate_name("web.kspy."));

        let instance = "h".repeat(300);
        let e = denied().to_event(&instance, Timestamp::UNIX_EPOCH);
        assert_eq!(
            e.reporting_instance.as_deref(),
            Some(&instance[..INSTANCE_MAX_BYTES])
        );
    }

    #[test]
    fn an_allowance_is_normal_and_names_the_policies() {
        let mut d = denied();
        d.allowed = true;
        d.reasons.clear();
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
        d.user = "u".repeat(2000);
        d.reasons = vec![reason(None, Some("long"), &"é".repeat(2000))];
        let note = note(&d);
        assert!(note.len() <= NOTE_MAX_BYTES, "{}", note.len());
        assert!(
            note.contains(&format!("by {}…", "u".repeat(NAME_MAX_BYTES - 3))),
            "{note}"
        );
        assert!(note.contains(": denied: policy long: éé"), "{note}");
        assert!(note.ends_with("é…"), "{note}");
        assert_eq!(truncated("short".into(), 10), "short");
    }

    #[test]
    fn reasons_that_do_not_fit_are_counted() {
        let mut d = denied();
        d.reasons = (0..20)
            .map(|i| reason(None, Some(&format!("p{i:02}")), &"x".repeat(200)))
            .collect();
        let note = note(&d);
        assert!(note.len() <= NOTE_MAX_BYTES, "{}", note.len());
        // Each reason is cut to REASON_MAX_BYTES at most; four of them fit.
        assert!(note.contains("policy p03: xxx"), "{note}");
        assert!(!note.contains("policy p04"), "{note}");
        assert!(note.ends_with("; and 16 more"), "{note}");
    }

    #[test]
    fn a_denial_names_no_groups_and_only_the_policies_that_denied() {
        let mut d = denied();
        d.action = "copy".into();
        d.user = "bob@example.com".into();
        d.subjects = vec!["app".into(), "debugger".into()];
        // production-reason applied and passed; it is among `policies` but not a reason.
        d.policies = vec!["production-reason".into(), "dev-copy".into()];
        d.reasons = vec![
            reason(Some("app"), Some("guard"), "no host networking"),
            reason(Some("app"), None, "no DebugPolicy allows this request"),
            reason(Some("debugger"), None, "no DebugPolicy allows this request"),
            reason(Some("debugger"), None, "image evil:1 is not granted"),
        ];
        assert_eq!(
            note(&d),
            "copy by bob@example.com (app, debugger): denied: container \"app\": policy guard: \
             no host networking; no DebugPolicy allows this request; container \"debugger\": \
             image evil:1 is not granted"
        );
        // A reason about the whole request names no container.
        d.reasons = vec![reason(None, Some("guard"), "cannot be checked")];
        assert_eq!(
            note(&d),
            "copy by bob@example.com (app, debugger): denied: policy guard: cannot be checked"
        );
        d.reasons.clear();
        assert_eq!(note(&d), "copy by bob@example.com (app, debugger): denied");
    }

    #[tokio::test]
    async fn over_its_rate_limit_a_user_s_events_are_counted_and_not_queued() {
        let metrics = Arc::new(Metrics::new());
        let (queue, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let recorder = EventRecorder {
            queue,
            metrics: Arc::clone(&metrics),
            spam: Arc::default(),
            rate_limited: Arc::default(),
            stop: Arc::new(tokio::sync::Notify::new()),
            task: Arc::new(std::sync::Mutex::new(None)),
        };
        for i in 0..40 {
            let mut d = denied();
            d.subjects = vec![format!("debugger-{i}")];
            recorder.record(d);
        }
        let mut other = denied();
        other.user = "carol@acme.example".into();
        recorder.record(other);
        let burst = crate::event_series::SPAM_BURST as usize;
        let mut queued = Vec::new();
        while let Ok(d) = rx.try_recv() {
            queued.push(d.user);
        }
        assert_eq!(queued.len(), burst + 1, "{queued:?}");
        assert_eq!(
            queued.last().map(String::as_str),
            Some("carol@acme.example")
        );
        assert_eq!(recorder.rate_limited_total(), 40 - burst as u64);
        assert_eq!(
            metrics.events_total(EventResult::RateLimited),
            40 - burst as u64
        );
        assert!(
            metrics.render().contains(&format!(
                "kspy_events_total{{result=\"rate-limited\"}} {}",
                40 - burst
            )),
            "{}",
            metrics.render()
        );
        assert_eq!(metrics.events_total(EventResult::Dropped), 0);

        // The user is over the limit for denials, yet the session that follows is recorded:
        // allowed decisions are never rate-limited.
        let mut allowed = denied();
        allowed.allowed = true;
        allowed.subjects = vec!["debugger-ok".into()];
        recorder.record(allowed);
        let next = rx.try_recv().expect("the allowed decision is queued");
        assert!(next.allowed);
        assert_eq!(recorder.rate_limited_total(), 40 - burst as u64);
    }

    #[tokio::test]
    async fn a_huge_decision_is_queued_as_the_few_kib_its_event_says() {
        let metrics = Arc::new(Metrics::new());
        let (queue, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let recorder = EventRecorder {
            queue,
            metrics: Arc::clone(&metrics),
            spam: Arc::default(),
            rate_limited: Arc::default(),
            stop: Arc::new(tokio::sync::Notify::new()),
            task: Arc::new(std::sync::Mutex::new(None)),
        };
        // What a forged 6 MiB review can make: a megabyte name, thousands of containers.
        let mut d = denied();
        d.user = "u".repeat(1 << 20);
        d.pod = "p".repeat(1 << 16);
        d.subjects = (0..5000).map(|i| format!("c-{i}")).collect();
        d.reasons = (0..5000)
            .map(|i| {
                reason(
                    Some(&format!("c-{i}")),
                    None,
                    &format!("{i}: {}", "r".repeat(100)),
                )
            })
            .collect();
        d.policies = (0..5000).map(|i| format!("policy-{i}")).collect();
        let expected_note = note(&d);
        recorder.record(d.clone());
        let mut allowed = d;
        allowed.allowed = true;
        allowed.reasons.clear();
        recorder.record(allowed);
        for _ in 0..2 {
            let queued = rx.try_recv().expect("queued");
            let held = format!("{queued:?}").len();
            assert!(held < 4096, "a queued Event holds {held} bytes");
        }
        assert!(expected_note.len() <= NOTE_MAX_BYTES);
        assert!(
            expected_note.ends_with("; and 4997 more"),
            "{expected_note}"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::new());
        // A recorder whose task never runs: nothing drains the queue.
        let (queue, _rx) = mpsc::channel(1);
        let recorder = EventRecorder {
            queue,
            metrics: Arc::clone(&metrics),
            spam: Arc::default(),
            rate_limited: Arc::default(),
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
