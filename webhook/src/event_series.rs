//! How many Events decisions make: repeats of one decision become one Event with a `series`,
//! and a rate limit per user and namespace keeps one client from flooding the queue.
//!
//! **Series.** Repeats of one decision become one Event with a `series`, as client-go's
//! events.k8s.io recorder does, so a script retrying a denied debug request does not flood the
//! API server (and `kubectl events`) with one identical Event per attempt.
//!
//! - The first time a decision is seen, its Event is created.
//! - The first repeat patches that Event's `series` (`count: 2`) at once, so the Event shows
//!   that it repeats.
//! - Later repeats are only counted here. Their count is written when the series ends (no
//!   repeat for [`SeriesTiming::window`]), at each [`SeriesTiming::heartbeat`] of a series
//!   that goes on, and at shutdown.
//!
//! Two decisions repeat each other only when their Events would say exactly the same thing
//! ([`EventContent`]): same Pod (and uid), action, verdict and note (the user, the containers,
//! and the policies that allowed or the reasons it was denied). client-go
//! folds Events that differ in their note; kspy does not, because the note says who debugged
//! what, and a series keeps the note of its first Event only.
//!
//! **Rate limit.** Series do not help when every attempt is a new decision: `kubectl debug`
//! names each debug container anew. [`SpamFilter`] is client-go's
//! `EventSourceObjectSpamFilter` keyed by who asked and where: a token bucket per (user,
//! namespace) holding [`SPAM_BURST`] tokens, one back every [`SPAM_REFILL`]. Every decision
//! takes a token before it is queued; one finding none is not queued (and so not counted in
//! a series either).
//!
//! This file is the bookkeeping alone, with the clock passed in; the posting task in
//! `events.rs` makes the API calls it asks for.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

use crate::events::EventContent;

/// When series end and how often the posting task looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesTiming {
    /// A series ends after this long without a repeat; its final count is written then.
    /// client-go's `finishTime`: 6 minutes.
    pub window: Duration,
    /// A series that goes on has its count written at least this often. client-go's
    /// `refreshTime`: 30 minutes.
    pub heartbeat: Duration,
    /// How often the posting task checks for ended series and heartbeats.
    pub check_every: Duration,
    /// The longest one API call (a create or a series write) may take; past it the call is
    /// abandoned and counts as failed, so a hung API server delays the Events behind it by
    /// this much each, not for as long as its connection stays open.
    pub call_timeout: Duration,
}

impl Default for SeriesTiming {
    fn default() -> Self {
        SeriesTiming {
            window: Duration::from_secs(6 * 60),
            heartbeat: Duration::from_secs(30 * 60),
            check_every: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// Decisions remembered at most; a new decision beyond it is posted as an Event of its own
/// and not followed for repeats.
pub const CAPACITY: usize = 4096;

/// What the posting task does about one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not seen within the window: create its Event, then report its name with
    /// [`SeriesBook::created`].
    Create,
    /// The first repeat: write the series now.
    Update(Box<SeriesUpdate>),
    /// A later repeat: counted, written later.
    Counted,
}

/// A series count to write onto an Event already created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesUpdate {
    /// The decision the Event is about (to create it anew if it has gone).
    pub decision: EventContent,
    /// The Event's name, as the API server gave it.
    pub name: String,
    /// `series.count`: how many times the decision was seen, the first included (at least 2).
    pub count: i32,
    /// `series.lastObservedTime`.
    pub last_observed: Timestamp,
}

#[derive(Debug)]
struct Entry {
    name: String,
    seen: u32,
    written: u32,
    last_seen: Instant,
    last_observed: Timestamp,
    last_written: Instant,
}

impl Entry {
    /// Whether the series ended: no repeat for `window` by `now`.
    fn ended(&self, now: Instant, window: Duration) -> bool {
        now.saturating_duration_since(self.last_seen) >= window
    }

    /// Whether occurrences were seen that its Event does not count yet.
    fn unwritten(&self) -> bool {
        self.seen > self.written
    }

    fn update(&self, decision: &EventContent) -> SeriesUpdate {
        SeriesUpdate {
            decision: decision.clone(),
            name: self.name.clone(),
            count: i32::try_from(self.seen).unwrap_or(i32::MAX),
            last_observed: self.last_observed,
        }
    }
}

/// The decisions whose Events were created within the window, with their repeat counts.
#[derive(Debug)]
pub struct SeriesBook {
    timing: SeriesTiming,
    entries: HashMap<EventContent, Entry>,
    /// Final counts of series found ended by [`SeriesBook::observe`], for the next `due`.
    ended: Vec<SeriesUpdate>,
}

impl SeriesBook {
    /// An empty book.
    pub fn new(timing: SeriesTiming) -> Self {
        SeriesBook {
            timing,
            entries: HashMap::new(),
            ended: Vec::new(),
        }
    }

    /// Notes one decision seen at `now` (`wall` on the wall clock) and says what to post.
    pub fn observe(&mut self, decision: &EventContent, now: Instant, wall: Timestamp) -> Step {
        let window = self.timing.window;
        let Some(entry) = self.entries.get_mut(decision) else {
            return Step::Create;
        };
        if entry.ended(now, window) {
            // The series ended but was not collected yet: its count is written at the next
            // `due`, and this occurrence starts a new Event.
            if entry.unwritten() {
                self.ended.push(entry.update(decision));
            }
            self.entries.remove(decision);
            return Step::Create;
        }
        entry.seen = entry.seen.saturating_add(1);
        entry.last_seen = now;
        entry.last_observed = wall;
        if entry.written < 2 {
            Step::Update(Box::new(entry.update(decision)))
        } else {
            Step::Counted
        }
    }

    /// Remembers that the API server created `decision`'s new Event as `name` at `now`
    /// (`wall` on the wall clock). Beyond [`CAPACITY`] the decision is not followed.
    pub fn created(
        &mut self,
        decision: &EventContent,
        name: String,
        now: Instant,
        wall: Timestamp,
    ) {
        if !self.entries.contains_key(decision) && self.entries.len() >= CAPACITY {
            return;
        }
        self.entries.insert(
            decision.clone(),
            Entry {
                name,
                seen: 1,
                written: 1,
                last_seen: now,
                last_observed: wall,
                last_written: now,
            },
        );
    }

    /// Remembers that a series whose Event had gone was created anew as `name`, with `count`
    /// occurrences on it. A series no longer followed stays forgotten.
    pub fn recreated(&mut self, decision: &EventContent, name: String, count: u32, now: Instant) {
        if let Some(entry) = self.entries.get_mut(decision) {
            entry.name = name;
        }
        self.written(decision, count, now);
    }

    /// Records that `count` occurrences of `decision` are now on its Event (or that writing
    /// them failed and should not be retried until the next repeat).
    pub fn written(&mut self, decision: &EventContent, count: u32, now: Instant) {
        if let Some(entry) = self.entries.get_mut(decision) {
            entry.written = entry.written.max(count);
            entry.last_written = now;
        }
    }

    /// At `now`: the counts to write for series that ended (forgotten here) or are due a
    /// heartbeat; decisions not repeated within the window are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<SeriesUpdate> {
        let SeriesTiming {
            window, heartbeat, ..
        } = self.timing;
        let mut updates = std::mem::take(&mut self.ended);
        self.entries.retain(|decision, entry| {
            let ended = entry.ended(now, window);
            if entry.unwritten()
                && (ended || now.saturating_duration_since(entry.last_written) >= heartbeat)
            {
                updates.push(entry.update(decision));
            }
            !ended
        });
        updates
    }

    /// At shutdown: every count not written yet.
    pub fn unwritten(&mut self) -> Vec<SeriesUpdate> {
        let mut updates = std::mem::take(&mut self.ended);
        updates.extend(
            self.entries
                .iter()
                .filter(|(_, entry)| entry.unwritten())
                .map(|(decision, entry)| entry.update(decision)),
        );
        updates
    }

    /// How many decisions it remembers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Decision Events one user may have posted in one namespace at once: client-go's spam filter
/// burst (`defaultSpamBurst`).
pub const SPAM_BURST: u32 = 25;
/// A rate-limited key gets one token back this often: client-go's spam filter rate
/// (`defaultSpamQPS`, one every 300 s). A key unused for `SPAM_BURST × SPAM_REFILL` (about
/// two hours) is back to a full burst.
pub const SPAM_REFILL: Duration = Duration::from_secs(5 * 60);
/// Keys (user and namespace) the rate limit remembers at most, as client-go's spam filter
/// cache. Beyond it, keys whose bucket has refilled are forgotten first (they are no different
/// from a key never seen), then the least recently used one.
pub const SPAM_KEYS: usize = 4096;

/// Whom a rate limit applies to: the requesting user in the Pod's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpamKey {
    /// The requesting user, as far as an Event's note shows it (256 bytes).
    pub user: String,
    /// The Pod's namespace.
    pub namespace: String,
}

impl SpamKey {
    /// The key of `decision`.
    pub fn of(decision: &EventContent) -> Self {
        SpamKey {
            user: decision.user.clone(),
            namespace: decision.namespace.clone(),
        }
    }
}

/// What the rate limit says about one decision's Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpamVerdict {
    /// A token was taken: queue it.
    Allowed,
    /// No token left: drop it. `first` is true for the first refusal since the key last had
    /// a token (log it once, not once per Event).
    Limited {
        /// The first refusal of a run.
        first: bool,
    },
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date with the refill.
    refilled: Instant,
    last_used: Instant,
    /// Whether the last decision of this key was refused.
    limited: bool,
}

impl Bucket {
    /// Adds the tokens earned since `refilled`, up to `burst`.
    fn refill(&mut self, now: Instant, burst: u32, every: Duration) {
        if self.tokens >= burst {
            self.refilled = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = elapsed.as_nanos() / every.as_nanos().max(1);
        let missing = burst - self.tokens;
        match u32::try_from(earned) {
            Ok(earned) if earned < missing => {
                self.tokens += earned;
                // Keep the part of a period already elapsed.
                self.refilled += every.saturating_mul(earned);
            }
            _ => {
                self.tokens = burst;
                self.refilled = now;
            }
        }
    }

    /// Whether it is full by `now`.
    fn full_at(&self, now: Instant, burst: u32, every: Duration) -> bool {
        let missing = burst.saturating_sub(self.tokens);
        missing == 0
            || now.saturating_duration_since(self.refilled) >= every.saturating_mul(missing)
    }
}

/// A token bucket per (user, namespace) for decision Events; see the module documentation.
#[derive(Debug)]
pub struct SpamFilter {
    burst: u32,
    refill: Duration,
    capacity: usize,
    buckets: HashMap<SpamKey, Bucket>,
}

impl Default for SpamFilter {
    /// [`SPAM_BURST`], [`SPAM_REFILL`], [`SPAM_KEYS`].
    fn default() -> Self {
        SpamFilter::new(SPAM_BURST, SPAM_REFILL, SPAM_KEYS)
    }
}

impl SpamFilter {
    /// Buckets of `burst` tokens, one back every `refill`, for at most `capacity` keys (each
    /// at least 1).
    pub fn new(burst: u32, refill: Duration, capacity: usize) -> Self {
        SpamFilter {
            burst: burst.max(1),
            refill,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token of `key` at `now`, if it has one.
    pub fn admit(&mut self, key: &SpamKey, now: Instant) -> SpamVerdict {
        let (burst, refill) = (self.burst, self.refill);
        if !self.buckets.contains_key(key) {
            self.make_room(now);
            self.buckets.insert(
                key.clone(),
                Bucket {
                    tokens: burst,
                    refilled: now,
                    last_used: now,
                    limited: false,
                },
            );
        }
        let Some(bucket) = self.buckets.get_mut(key) else {
            // Just inserted.
            return SpamVerdict::Allowed;
        };
        bucket.refill(now, burst, refill);
        bucket.last_used = now;
        if bucket.tokens > 0 {
            bucket.tokens -= 1;
            bucket.limited = false;
            SpamVerdict::Allowed
        } else {
            let first = !bucket.limited;
            bucket.limited = true;
            SpamVerdict::Limited { first }
        }
    }

    /// Below capacity, for one more key: forgets the keys whose bucket is full again, or
    /// else the least recently used key.
    fn make_room(&mut self, now: Instant) {
        if self.buckets.len() < self.capacity {
            return;
        }
        let (burst, refill) = (self.burst, self.refill);
        self.buckets
            .retain(|_, bucket| !bucket.full_at(now, burst, refill));
        if self.buckets.len() < self.capacity {
            return;
        }
        let oldest = self
            .buckets
            .iter()
            .min_by_key(|(_, bucket)| bucket.last_used)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.buckets.remove(&key);
        }
    }

    /// How many keys it remembers.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use kspy_admission::decide::DenialReason;

    use super::*;
    use crate::events::DecisionEvent;

    fn decision(user: &str) -> EventContent {
        raw(user).content()
    }

    fn raw(user: &str) -> DecisionEvent {
        DecisionEvent {
            namespace: "shop".into(),
            pod: "checkout".into(),
            pod_uid: Some("uid-1".into()),
            action: "attach".into(),
            allowed: false,
            user: user.into(),
            policies: vec!["sre-debug".into()],
            subjects: vec!["debugger-x2k".into()],
            reasons: vec![DenialReason {
                container: Some("debugger-x2k".into()),
                policy: None,
                reason: "capability SYS_ADMIN is not granted".into(),
            }],
        }
    }

    fn timing() -> SeriesTiming {
        SeriesTiming {
            window: Duration::from_secs(360),
            heartbeat: Duration::from_secs(1800),
            check_every: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
        }
    }

    fn wall(second: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + second).expect("time")
    }

    /// A book holding `d`'s Event `ev-1`, created at `t0`.
    fn book_with(d: &EventContent, t0: Instant) -> SeriesBook {
        let mut book = SeriesBook::new(timing());
        assert_eq!(book.observe(d, t0, wall(0)), Step::Create);
        book.created(d, "ev-1".into(), t0, wall(0));
        book
    }

    #[test]
    fn the_first_repeat_is_written_at_once_and_later_ones_counted() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        let step = book.observe(&d, t0 + Duration::from_secs(5), wall(5));
        let Step::Update(update) = step else {
            panic!("{step:?}")
        };
        assert_eq!(update.name, "ev-1");
        assert_eq!(update.count, 2);
        assert_eq!(update.last_observed, wall(5));
        book.written(&d, 2, t0 + Duration::from_secs(5));
        for s in 6..9 {
            assert_eq!(
                book.observe(&d, t0 + Duration::from_secs(s), wall(s as i64)),
                Step::Counted
            );
        }
        // Nothing is due while the series goes on, short of a heartbeat.
        assert!(book.due(t0 + Duration::from_secs(60)).is_empty());
        assert_eq!(book.unwritten()[0].count, 5);
    }

    #[test]
    fn a_repeat_before_the_write_of_the_first_is_confirmed_is_written_too() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        assert!(matches!(book.observe(&d, t0, wall(1)), Step::Update(u) if u.count == 2));
        // The write of count 2 failed to be confirmed (not `written`): the next one tries 3.
        assert!(matches!(book.observe(&d, t0, wall(2)), Step::Update(u) if u.count == 3));
    }

    #[test]
    fn an_ended_series_gets_its_final_count_and_is_forgotten() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        book.observe(&d, t0 + Duration::from_secs(1), wall(1));
        book.written(&d, 2, t0 + Duration::from_secs(1));
        book.observe(&d, t0 + Duration::from_secs(2), wall(2));
        let last = t0 + Duration::from_secs(2);
        assert!(book.due(last + Duration::from_secs(359)).is_empty());
        let due = book.due(last + Duration::from_secs(360));
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].count, 3);
        assert_eq!(due[0].last_observed, wall(2));
        assert!(book.is_empty());
        // The next occurrence starts a new Event.
        assert_eq!(
            book.observe(&d, last + Duration::from_secs(400), wall(400)),
            Step::Create
        );
    }

    #[test]
    fn a_decision_never_repeated_is_forgotten_after_the_window_without_a_write() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        assert!(book.due(t0 + Duration::from_secs(360)).is_empty());
        assert!(book.is_empty());
    }

    #[test]
    fn a_repeat_after_the_window_creates_a_new_event_and_the_old_count_is_still_written() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        book.observe(&d, t0, wall(0));
        book.written(&d, 2, t0);
        book.observe(&d, t0 + Duration::from_secs(1), wall(1));
        // No `due` ran in between (the check is periodic).
        let later = t0 + Duration::from_secs(400);
        assert_eq!(book.observe(&d, later, wall(400)), Step::Create);
        book.created(&d, "ev-2".into(), later, wall(400));
        let due = book.due(later);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!((due[0].name.as_str(), due[0].count), ("ev-1", 3));
        assert!(book.due(later).is_empty(), "written once");
    }

    #[test]
    fn a_long_series_is_written_at_each_heartbeat() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        book.observe(&d, t0, wall(0));
        book.written(&d, 2, t0);
        // One repeat a minute for 31 minutes: the series never ends.
        let mut now = t0;
        for minute in 1..=31 {
            now = t0 + Duration::from_secs(60 * minute);
            assert_eq!(
                book.observe(&d, now, wall(60 * minute as i64)),
                Step::Counted
            );
            if minute < 30 {
                assert!(book.due(now).is_empty(), "minute {minute}");
            }
        }
        let due = book.due(now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 33);
        book.written(&d, 33, now);
        assert!(book.due(now + Duration::from_secs(60)).is_empty());
        assert_eq!(book.len(), 1, "still going on");
    }

    #[test]
    fn a_series_created_anew_keeps_counting_on_the_new_event() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = book_with(&d, t0);
        let Step::Update(first) = book.observe(&d, t0, wall(1)) else {
            panic!("the first repeat is written")
        };
        // Its Event had gone; the poster created it anew with count 2.
        book.recreated(&d, "ev-new".into(), 2, t0);
        assert_eq!(book.observe(&d, t0, wall(2)), Step::Counted);
        assert_eq!(first.name, "ev-1");
        let unwritten = book.unwritten();
        assert_eq!(
            (unwritten[0].name.as_str(), unwritten[0].count),
            ("ev-new", 3)
        );
        // An ended series is not followed again because its final write re-created it.
        let mut ended = SeriesBook::new(timing());
        ended.recreated(&d, "ev-old".into(), 5, t0);
        assert!(ended.is_empty());
    }

    #[test]
    fn different_decisions_are_different_series() {
        let t0 = Instant::now();
        let bob = decision("bob");
        let mut book = book_with(&bob, t0);
        assert_eq!(book.observe(&decision("carol"), t0, wall(0)), Step::Create);
        let mut other_container = raw("bob");
        other_container.subjects = vec!["debugger-q7m".into()];
        assert_eq!(
            book.observe(&other_container.content(), t0, wall(0)),
            Step::Create
        );
        let mut allowed = raw("bob");
        allowed.allowed = true;
        assert_eq!(book.observe(&allowed.content(), t0, wall(0)), Step::Create);
    }

    #[test]
    fn a_failed_create_is_not_remembered_so_the_next_occurrence_creates_again() {
        let t0 = Instant::now();
        let d = decision("bob");
        let mut book = SeriesBook::new(timing());
        assert_eq!(book.observe(&d, t0, wall(0)), Step::Create);
        // No `created`: the API server refused it.
        assert_eq!(book.observe(&d, t0, wall(0)), Step::Create);
        assert!(book.is_empty());
    }

    #[test]
    fn beyond_capacity_new_decisions_are_not_followed() {
        let t0 = Instant::now();
        let mut book = SeriesBook::new(timing());
        for i in 0..CAPACITY {
            book.created(
                &decision(&format!("user-{i}")),
                format!("ev-{i}"),
                t0,
                wall(0),
            );
        }
        let extra = decision("one-too-many");
        book.created(&extra, "ev-x".into(), t0, wall(0));
        assert_eq!(book.len(), CAPACITY);
        assert_eq!(book.observe(&extra, t0, wall(0)), Step::Create);
        // Those followed still are.
        assert!(matches!(
            book.observe(&decision("user-7"), t0, wall(0)),
            Step::Update(_)
        ));
    }

    fn key(user: &str, namespace: &str) -> SpamKey {
        SpamKey {
            user: user.into(),
            namespace: namespace.into(),
        }
    }

    /// How many of `n` decisions of `k` at `now` the filter lets through.
    fn admitted(filter: &mut SpamFilter, k: &SpamKey, n: usize, now: Instant) -> usize {
        (0..n)
            .filter(|_| filter.admit(k, now) == SpamVerdict::Allowed)
            .count()
    }

    #[test]
    fn a_key_gets_its_burst_then_one_event_per_refill_period() {
        let t0 = Instant::now();
        let mut filter = SpamFilter::default();
        let bob = key("bob", "shop");
        assert_eq!(admitted(&mut filter, &bob, 100, t0), SPAM_BURST as usize);
        // Another user in the same namespace, and bob elsewhere, have buckets of their own.
        assert_eq!(admitted(&mut filter, &key("carol", "shop"), 1, t0), 1);
        assert_eq!(admitted(&mut filter, &key("bob", "billing"), 1, t0), 1);
        // Nothing comes back before a whole period.
        let almost = t0 + SPAM_REFILL - Duration::from_secs(1);
        assert_eq!(admitted(&mut filter, &bob, 5, almost), 0);
        assert_eq!(admitted(&mut filter, &bob, 5, t0 + SPAM_REFILL), 1);
        // Two and a half periods later: two tokens, and the half period is kept.
        let later = t0 + SPAM_REFILL * 3 + SPAM_REFILL / 2;
        assert_eq!(admitted(&mut filter, &bob, 5, later), 2);
        assert_eq!(
            admitted(&mut filter, &bob, 5, t0 + SPAM_REFILL * 4),
            1,
            "the half period counted"
        );
        // Long unused, the bucket is full again, and no fuller than the burst.
        let idle = t0 + SPAM_REFILL * 1000;
        assert_eq!(admitted(&mut filter, &bob, 100, idle), SPAM_BURST as usize);
    }

    #[test]
    fn only_the_first_refusal_of_a_run_is_marked_first() {
        let t0 = Instant::now();
        let mut filter = SpamFilter::new(1, Duration::from_secs(60), 8);
        let bob = key("bob", "shop");
        assert_eq!(filter.admit(&bob, t0), SpamVerdict::Allowed);
        assert_eq!(filter.admit(&bob, t0), SpamVerdict::Limited { first: true });
        assert_eq!(
            filter.admit(&bob, t0),
            SpamVerdict::Limited { first: false }
        );
        let later = t0 + Duration::from_secs(60);
        assert_eq!(filter.admit(&bob, later), SpamVerdict::Allowed);
        assert_eq!(
            filter.admit(&bob, later),
            SpamVerdict::Limited { first: true }
        );
    }

    #[test]
    fn the_filter_remembers_at_most_its_capacity_forgetting_refilled_keys_then_the_oldest() {
        let t0 = Instant::now();
        let refill = Duration::from_secs(60);
        let mut filter = SpamFilter::new(2, refill, 3);
        let (a, b, c, d) = (
            key("a", "ns"),
            key("b", "ns"),
            key("c", "ns"),
            key("d", "ns"),
        );
        // a is spent; b and c used once, b least recently.
        assert_eq!(admitted(&mut filter, &a, 2, t0), 2);
        filter.admit(&b, t0 + Duration::from_secs(1));
        filter.admit(&c, t0 + Duration::from_secs(2));
        assert_eq!(filter.len(), 3);
        // d evicts the least recently used: b (not a, which was used before it but is spent
        // and must stay limited).
        filter.admit(&a, t0 + Duration::from_secs(3));
        filter.admit(&d, t0 + Duration::from_secs(4));
        assert_eq!(filter.len(), 3);
        assert_eq!(
            filter.admit(&a, t0 + Duration::from_secs(5)),
            SpamVerdict::Limited { first: false },
            "a is still remembered, and still limited"
        );
        // Two periods on, every bucket has refilled: they are all forgotten for a new key.
        let later = t0 + Duration::from_secs(5) + refill * 2;
        filter.admit(&key("e", "ns"), later);
        assert_eq!(filter.len(), 1);
        assert_eq!(admitted(&mut filter, &a, 5, later), 2, "a full burst again");
    }
}
