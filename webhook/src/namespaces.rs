//! Where a review's Namespace object comes from, for policies' `match.namespaceSelector` and
//! CEL's `namespaceObject`. The API server does not send it in the AdmissionReview.
//!
//! - [`NamespaceSource::None`]: unknown. Policies that select namespaces by label do not apply
//!   (so requests they would allow are denied: fail closed).
//! - [`NamespaceSource::Static`]: a fixed set (tests, offline runs).
//! - [`NamespaceSource::Api`]: `GET /api/v1/namespaces/NAME` with a Kubernetes client (needs
//!   RBAC `get` on `namespaces`), cached per name for `ttl`; on an API error, or when the API
//!   server does not answer within [`lookup_budget`], the last known object is used if it was
//!   read within [`STALE_TTLS`] times `ttl`, otherwise none (fail closed: a guardrail that
//!   selects namespaces by label denies). A Namespace relabelled while the API server cannot
//!   be read used to be judged by its old labels for as long as the outage lasted.
//!
//! A name that cannot be a Namespace's (not a DNS-1123 label) is never looked up: the
//! Namespace is unknown.
//!
//! Each lookup is stamped with the time its request was sent, and an answer never replaces
//! one from a later request: a slow answer read before a relabel used to overwrite the
//! relabelled Namespace a quicker lookup had just cached, and stand for a whole `ttl`.
//!
//! The review handler asks for a Namespace only once the body parsed as a review and only
//! when the engine needs it: a debug request in a namespace, or a pod CREATE or UPDATE a
//! configured classifier (which may read `namespaceObject`) has to look at. Anything else
//! never causes an API request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kspy_admission::NamespaceMiss;

use crate::bounded_text::{FIELD_BYTES, MESSAGE_BYTES, bounded};

/// Default time a looked-up Namespace is reused.
pub const DEFAULT_NAMESPACE_TTL: Duration = Duration::from_secs(30);

/// Where Namespace objects come from.
#[derive(Clone, Default)]
pub enum NamespaceSource {
    /// Not known.
    #[default]
    None,
    /// A fixed set, by name.
    Static(HashMap<String, Namespace>),
    /// Looked up in the API server.
    Api {
        /// The client.
        client: kube::Client,
        /// How long a lookup (found or not) is reused.
        ttl: Duration,
    },
}

impl std::fmt::Debug for NamespaceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NamespaceSource::None => f.write_str("None"),
            NamespaceSource::Static(m) => f
                .debug_tuple("Static")
                .field(&m.keys().collect::<Vec<_>>())
                .finish(),
            NamespaceSource::Api { ttl, .. } => f
                .debug_struct("Api")
                .field("ttl", ttl)
                .finish_non_exhaustive(),
        }
    }
}

impl NamespaceSource {
    /// A static source from a list of Namespaces (unnamed ones are skipped).
    pub fn from_namespaces(namespaces: impl IntoIterator<Item = Namespace>) -> Self {
        NamespaceSource::Static(
            namespaces
                .into_iter()
                .filter_map(|ns| ns.metadata.name.clone().map(|n| (n, ns)))
                .collect(),
        )
    }
}

/// A cached lookup of one namespace.
#[derive(Clone)]
struct Entry {
    fetched: Instant,
    namespace: Option<Arc<Namespace>>,
}

/// Looks Namespaces up from a [`NamespaceSource`], with a cache.
#[derive(Debug)]
pub(crate) struct NamespaceLookup {
    source: NamespaceSource,
    static_arcs: HashMap<String, Arc<Namespace>>,
    cache: Mutex<HashMap<String, Entry>>,
    /// Names cached at most ([`MAX_CACHED`]).
    capacity: usize,
}

/// Upper bound on cached names, so a flood of bogus names cannot grow memory without end.
const MAX_CACHED: usize = 10_000;

/// How many `ttl`s old the last known Namespace may be to stand in for a lookup that failed
/// (5 minutes with the default 30 s); older, the Namespace is unknown.
pub const STALE_TTLS: u32 = 10;

/// Longest an API lookup may take, whatever the review deadline.
pub const MAX_LOOKUP_TIME: Duration = Duration::from_secs(2);

/// How long one Namespace lookup may take for a review with deadline `review_timeout`: the
/// smaller of [`MAX_LOOKUP_TIME`] and a third of it, so a slow or hanging API server leaves
/// most of the deadline to judging. Past it the lookup counts as failed.
pub fn lookup_budget(review_timeout: Duration) -> Duration {
    MAX_LOOKUP_TIME.min(review_timeout / 3)
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// The Namespace (for a failed lookup, the last known one standing in).
    Namespace(Arc<Namespace>),
    /// None: no source, or not in the fixed set; the engine's [`NamespaceOrigin`] says why.
    ///
    /// [`NamespaceOrigin`]: kspy_admission::NamespaceOrigin
    Unknown,
    /// None, and why the API server did not give it, for the denial to say.
    Missing(NamespaceMiss),
}

impl Found {
    /// The Namespace, when there is one.
    pub(crate) fn namespace(&self) -> Option<&Namespace> {
        match self {
            Found::Namespace(ns) => Some(ns),
            Found::Unknown | Found::Missing(_) => None,
        }
    }

    fn from_option(namespace: Option<Arc<Namespace>>, otherwise: Found) -> Found {
        namespace.map_or(otherwise, Found::Namespace)
    }
}

/// What the cache (or the fixed set) says about a name, without waiting.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    /// Known: the Namespace, or known to be unknown (no source, not in the fixed set, or a
    /// fresh "not found" from the API server).
    Known(Found),
    /// Only the API server can tell: [`NamespaceLookup::fetch`].
    Miss,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("found", &self.namespace.is_some())
            .finish()
    }
}

impl NamespaceLookup {
    pub(crate) fn new(source: NamespaceSource) -> Self {
        let static_arcs = match &source {
            NamespaceSource::Static(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect(),
            _ => HashMap::new(),
        };
        NamespaceLookup {
            source,
            static_arcs,
            cache: Mutex::new(HashMap::new()),
            capacity: MAX_CACHED,
        }
    }

    /// What is known about `name` without asking the API server: always an answer for the
    /// fixed sources, and for the API source a cached lookup younger than its TTL.
    pub(crate) fn cached(&self, name: &str) -> Cached {
        match &self.source {
            NamespaceSource::None => Cached::Known(Found::Unknown),
            NamespaceSource::Static(_) => Cached::Known(Found::from_option(
                self.static_arcs.get(name).cloned(),
                Found::Unknown,
            )),
            // No Namespace can have this name: nothing to ask, nothing to cache.
            NamespaceSource::Api { .. } if !is_namespace_name(name) => {
                Cached::Known(Found::Missing(NamespaceMiss::NotAName))
            }
            // Only answers are cached: an entry without a Namespace is a 404.
            NamespaceSource::Api { ttl, .. } => match self.entry(name) {
                Some(entry) if entry.fetched.elapsed() < *ttl => Cached::Known(Found::from_option(
                    entry.namespace,
                    Found::Missing(NamespaceMiss::NotFound),
                )),
                _ => Cached::Miss,
            },
        }
    }

    fn entry(&self, name: &str) -> Option<Entry> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The Namespace named `name`, if known; waits for the API server at most `share` (give
    /// it [`lookup_budget`]) and never past `deadline`, after which the lookup failed: the
    /// last known object is used, or none, and the miss says how long it waited.
    pub(crate) async fn fetch(
        &self,
        name: &str,
        share: Duration,
        deadline: tokio::time::Instant,
    ) -> Found {
        match &self.source {
            NamespaceSource::None | NamespaceSource::Static(_) => match self.cached(name) {
                Cached::Known(found) => found,
                Cached::Miss => Found::Unknown,
            },
            NamespaceSource::Api { .. } if !is_namespace_name(name) => {
                Found::Missing(NamespaceMiss::NotAName)
            }
            NamespaceSource::Api { client, ttl } => {
                let not_found = || Found::Missing(NamespaceMiss::NotFound);
                let cached = self.entry(name);
                if let Some(entry) = &cached
                    && entry.fetched.elapsed() < *ttl
                {
                    return Found::from_option(entry.namespace.clone(), not_found());
                }
                let api: kube::Api<Namespace> = kube::Api::all(client.clone());
                let sent = Instant::now();
                let now = tokio::time::Instant::now();
                let until = now.checked_add(share).map_or(deadline, |t| t.min(deadline));
                // What the lookup may take, for the denial if it runs out.
                let budget = until.saturating_duration_since(now);
                let fetched = tokio::time::timeout_at(until, api.get_opt(name)).await;
                let namespace = match fetched {
                    Ok(Ok(found)) => found.map(Arc::new),
                    Ok(Err(err)) => {
                        let (stand_in, used) = last_known(cached, *ttl);
                        tracing::warn!(
                            namespace = %bounded(name, FIELD_BYTES),
                            error = %bounded(&err.to_string(), MESSAGE_BYTES),
                            "cannot read the Namespace ({}); {used}",
                            failure_hint(&err)
                        );
                        return Found::from_option(stand_in, Found::Missing(miss_of(&err)));
                    }
                    Err(_) => {
                        let (stand_in, used) = last_known(cached, *ttl);
                        tracing::warn!(
                            namespace = %bounded(name, FIELD_BYTES),
                            "reading the Namespace took longer than its share of the review \
                             deadline; {used}"
                        );
                        return Found::from_option(
                            stand_in,
                            Found::Missing(NamespaceMiss::TimedOut { after: budget }),
                        );
                    }
                };
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(newer) = cache.get(name).filter(|e| e.fetched > sent) {
                    // A later request already answered: its Namespace is the fresher one.
                    return Found::from_option(newer.namespace.clone(), not_found());
                }
                if !cache.contains_key(name) && cache.len() >= self.capacity {
                    make_room(&mut cache, *ttl);
                }
                cache.insert(
                    name.to_owned(),
                    Entry {
                        fetched: sent,
                        namespace: namespace.clone(),
                    },
                );
                Found::from_option(namespace, not_found())
            }
        }
    }
}

/// What a failed lookup means for whoever reads the log: a refusal is RBAC, anything else the
/// API server or the way to it.
fn failure_hint(err: &kube::Error) -> &'static str {
    match err {
        kube::Error::Api(status) if status.is_forbidden() => {
            "forbidden: the webhook's ServiceAccount needs RBAC `get` on `namespaces`"
        }
        kube::Error::Api(_) => "the API server refused the request",
        _ => "the API server could not be reached or did not answer properly",
    }
}

/// Why a lookup failed, for the denial: a refusal by RBAC (with the user the API server names),
/// another status, or no answer at all.
fn miss_of(err: &kube::Error) -> NamespaceMiss {
    match err {
        kube::Error::Api(status) if status.is_forbidden() => NamespaceMiss::Forbidden {
            user: refused_user(&status.message),
        },
        kube::Error::Api(status) => NamespaceMiss::Refused { code: status.code },
        _ => NamespaceMiss::Unreachable,
    }
}

/// The user an API server's refusal names: `namespaces "x" is forbidden: User
/// "system:serviceaccount:kspy-system:kspy-webhook" cannot get resource "namespaces" …`.
/// `None` unless it reads as a user name (at most 253 bytes of letters, digits and
/// `:.-_@`): the text goes into a denial.
fn refused_user(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("User \"")?;
    let (user, _) = rest.split_once('"')?;
    let fits = !user.is_empty()
        && user.len() <= 253
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":.-_@".contains(&b));
    fits.then(|| user.to_owned())
}

/// What stands in for a lookup that failed: the last known Namespace when it was read within
/// [`STALE_TTLS`] times `ttl`, else none; and the words saying which, for the log.
fn last_known(cached: Option<Entry>, ttl: Duration) -> (Option<Arc<Namespace>>, &'static str) {
    let fresh_enough = |e: &Entry| e.fetched.elapsed() < ttl.saturating_mul(STALE_TTLS);
    match cached.filter(fresh_enough) {
        Some(Entry {
            namespace: Some(namespace),
            ..
        }) => (Some(namespace), "using the last known one"),
        _ => (
            None,
            "its labels are unknown: policies that select namespaces by label do not apply, \
             and those with validations deny",
        ),
    }
}

/// Whether `name` can name a Namespace: a DNS-1123 label (at most 63 lower-case letters,
/// digits and `-`, starting and ending with a letter or digit). Anything else only comes in a
/// forged review, and used to be looked up and cached under its name: a half-megabyte
/// "namespace" the API server answers 404 for, ten thousand times over, was gigabytes of
/// cache, and each one a request to the API server.
fn is_namespace_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Below capacity for one more name, forgetting first what is of no use: lookups too old even
/// to stand in for a failed one, then names the API server did not know (a flood of made-up
/// names is all of those), then the oldest. Clearing the whole cache, as before, let such a
/// flood throw out every real Namespace, and with them what stands in while the API server
/// is down.
fn make_room(cache: &mut HashMap<String, Entry>, ttl: Duration) {
    let useless = ttl.saturating_mul(STALE_TTLS);
    let before = cache.len();
    cache.retain(|_, e| e.fetched.elapsed() < useless);
    if cache.len() < before {
        return;
    }
    let unknown = cache
        .iter()
        .filter(|(_, e)| e.namespace.is_none())
        .min_by_key(|(_, e)| e.fetched)
        .map(|(name, _)| name.clone());
    let victim = unknown.or_else(|| {
        cache
            .iter()
            .min_by_key(|(_, e)| e.fetched)
            .map(|(name, _)| name.clone())
    });
    if let Some(name) = victim {
        cache.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    /// A client of a stand-in API server that knows the Namespace `shop` only.
    async fn api() -> kube::Client {
        let app = axum::Router::new().route(
            "/api/v1/namespaces/{name}",
            axum::routing::get(|Path(name): Path<String>| async move {
                if name == "shop" {
                    axum::Json(serde_json::json!({
                        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}
                    }))
                    .into_response()
                } else {
                    (
                        StatusCode::NOT_FOUND,
                        axum::Json(serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "NotFound", "code": 404,
                            "message": format!("namespaces \"{name}\" not found"),
                        })),
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client")
    }

    #[test]
    fn a_refused_lookup_is_said_to_need_get_on_namespaces_and_only_a_refused_one() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("no", reason).with_code(code),
            ))
        };
        assert_eq!(
            failure_hint(&status(403, "Forbidden")),
            "forbidden: the webhook's ServiceAccount needs RBAC `get` on `namespaces`"
        );
        assert_eq!(
            failure_hint(&status(500, "InternalError")),
            "the API server refused the request"
        );
    }

    #[test]
    fn a_refusal_names_the_user_only_when_it_reads_as_one() {
        let refusal = |user: &str| {
            format!(
                "namespaces \"shop\" is forbidden: User \"{user}\" cannot get resource \
                 \"namespaces\" in API group \"\" at the cluster scope"
            )
        };
        assert_eq!(
            refused_user(&refusal("system:serviceaccount:kspy-system:kspy-webhook")).as_deref(),
            Some("system:serviceaccount:kspy-system:kspy-webhook")
        );
        // What goes into a denial is a user name, bounded: nothing that breaks a line, forges
        // text, or runs on.
        for odd in ["", "a\nb", "a b", &"a".repeat(254), "x<script>"] {
            assert_eq!(refused_user(&refusal(odd)), None, "{odd:?}");
        }
        assert_eq!(refused_user("forbidden"), None);
        assert_eq!(refused_user("User \"unterminated"), None);
    }

    #[tokio::test]
    async fn a_full_cache_forgets_made_up_names_before_a_real_namespace() {
        let mut lookup = NamespaceLookup::new(NamespaceSource::Api {
            client: api().await,
            ttl: Duration::from_secs(60),
        });
        lookup.capacity = 3;
        let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
        assert!(
            lookup
                .fetch("shop", Duration::from_secs(5), deadline())
                .await
                .namespace()
                .is_some()
        );
        // A flood of names no Namespace has, more than the cache holds.
        for i in 0..10 {
            assert!(
                lookup
                    .fetch(&format!("made-up-{i}"), Duration::from_secs(5), deadline())
                    .await
                    .namespace()
                    .is_none()
            );
            assert!(
                matches!(lookup.cached("shop"), Cached::Known(Found::Namespace(_))),
                "shop forgotten after made-up-{i}"
            );
        }
        assert_eq!(lookup.cache.lock().expect("lock").len(), 3);
        // The latest made-up names are still known to be unknown.
        assert!(matches!(
            lookup.cached("made-up-9"),
            Cached::Known(Found::Missing(NamespaceMiss::NotFound))
        ));
    }
}
