//! The engine: one object holding the compiled policies and settings, answering reviews.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use k8s_openapi::api::core::v1::{EphemeralContainer, Namespace};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::Status;

use crate::ask::Ask;
use crate::asks::PodVolumes;
use crate::cel::{CelEnv, Expression, json_to_cel};
use crate::classify::{Action, Classifier, PodState, Subject, classify};
use crate::classify::{MAX_REACHED, asks_of, ephemeral_asks};
use crate::decide::{Decision, DenialReason, Judge, decide, request_variables};
use crate::defaults::{PatchBuilder, SubjectDefaults, subject_defaults};
use crate::pod_security::{
    AddedContainer, Enforced, Level, Version, enforced_level, enforced_version,
};
use crate::policy::compiled::CompiledPolicy;
use crate::policy::{LoadError, LoadErrors, Mode, PolicySet};
use crate::reach::TracedContainer;
use crate::review::ParsedReview;

/// What to do when no Enforce policy applies to a debug container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NoPolicyVerdict {
    /// Deny (the default: kspy fails closed).
    #[default]
    Deny,
    /// Allow with a warning and an audit annotation, for audit-only roll-outs.
    Allow,
}

/// Where the Namespace objects handed to [`Engine::judge`] come from. Only the wording of a
/// denial depends on it: when a namespace's labels are unknown, what to fix differs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceOrigin {
    /// Read from the API server (the webhook's default): a missing Namespace is a lookup that
    /// failed (RBAC, the API server) or one that does not exist.
    #[default]
    Api,
    /// Not looked up at all: the webhook's `--namespace-lookup none`, or `auto` without a
    /// Kubernetes client configuration.
    NotLookedUp,
    /// Declared by the `DebugPolicyTest` suites' `spec.namespaces` (`kspy policy eval` and
    /// `test`, the webhook's `--namespace-lookup declared`): a missing one is not declared.
    Declared {
        /// The policy directory (or file) whose suites declare them, as the user gave it.
        under: String,
    },
}

/// Why the API server did not give a review's Namespace ([`NamespaceOrigin::Api`]), for
/// [`Engine::judge_namespace_unread`]: what to do differs for each, and the denial says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMiss {
    /// The API server answered 404: no Namespace of this name exists.
    NotFound,
    /// The name cannot be a Namespace's (not a DNS-1123 label), so it was not looked up.
    NotAName,
    /// The API server answered 403: the webhook may not `get` `namespaces`. `user` is who the
    /// API server says asked (`system:serviceaccount:NS:NAME`), when its answer names one.
    Forbidden {
        /// The user the refusal names, checked to be one (at most 253 bytes of a
        /// Kubernetes user name's characters).
        user: Option<String>,
    },
    /// The API server did not answer within the lookup's share of the review deadline.
    TimedOut {
        /// How long the lookup waited.
        after: std::time::Duration,
    },
    /// The API server could not be reached (connection, TLS, a body that does not read).
    Unreachable,
    /// The API server answered with another error status.
    Refused {
        /// The HTTP status code.
        code: u16,
    },
}

/// Engine settings beyond the policies.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// What to do when no policy applies.
    pub no_policy: NoPolicyVerdict,
    /// Where the Namespace objects come from, for messages.
    pub namespaces: NamespaceOrigin,
    /// A CEL expression over `object`, `request`, `namespaceObject` that marks created pods as
    /// debug copies, besides the `kspy.dev/debug: copy` label; for a pod UPDATE that changes an
    /// image, asked of the pod after the update and of the pod before it (as `object`).
    pub copy_classifier: Option<String>,
    /// The same for node-debugging pods, besides the label and `node-debugger-*` names.
    pub node_classifier: Option<String>,
}

/// Which webhook endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/mutate`: defaults as a JSON patch; never denies a well-formed request.
    Mutate,
    /// `/validate`: the verdict.
    Validate,
}

impl Endpoint {
    /// `mutate` or `validate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// The outcome for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a debug request; allowed untouched.
    NotDebug,
    /// Allowed.
    Allowed,
    /// Denied.
    Denied,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::NotDebug => "not-debug",
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
        })
    }
}

/// The answer to one review.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// The AdmissionResponse (uid echoed).
    pub response: AdmissionResponse,
    /// The debug action, when it was one.
    pub action: Option<Action>,
    /// The verdict.
    pub verdict: Verdict,
    /// Policies that applied.
    pub policies: Vec<String>,
    /// Names of the containers judged.
    pub subjects: Vec<String>,
    /// Why it was denied (empty when allowed), briefly and without what only the requester
    /// should read (their groups, who else is granted what): for kspy's Events, which anyone
    /// who may read the namespace reads. The response's message says it in full.
    pub reasons: Vec<DenialReason>,
}

impl Judgement {
    /// The AdmissionReview to send back, as kube's type. Do not serialize it with serde for
    /// the API server: see [`Judgement::encode`].
    pub fn into_review(self) -> AdmissionReview<DynamicObject> {
        self.response.into_review()
    }

    /// The AdmissionReview JSON to send back, `patch` in base64 as the API server decodes it
    /// ([`crate::wire`]).
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::wire::encode_review(&self.response)
    }
}

/// The decision engine. Immutable once built; share it behind an `Arc` and swap it whole on
/// reload.
pub struct Engine {
    policies: PolicySet,
    settings: Settings,
    env: CelEnv,
    copy_classifier: Option<Expression>,
    node_classifier: Option<Expression>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.policies.names())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Engine {
    /// Builds an engine; the classifier expressions are compiled here.
    pub fn new(policies: PolicySet, settings: Settings) -> Result<Engine, LoadErrors> {
        let compile =
            |name: &str, source: &Option<String>| -> Result<Option<Expression>, LoadErrors> {
                source
                    .as_deref()
                    .map(|s| {
                        Expression::compile(s).map_err(|e| {
                            LoadErrors::one(LoadError {
                                file: "settings".into(),
                                document: None,
                                policy: None,
                                field: Some(name.into()),
                                at: None,
                                message: e.to_string(),
                            })
                        })
                    })
                    .transpose()
            };
        Ok(Engine {
            copy_classifier: compile("copyClassifier", &settings.copy_classifier)?,
            node_classifier: compile("nodeClassifier", &settings.node_classifier)?,
            policies,
            settings,
            env: CelEnv::new(),
        })
    }

    /// The loaded policies.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Answers one review. Never panics on input; anything that cannot be judged is denied
    /// with the reason.
    pub fn judge(
        &self,
        review: &ParsedReview,
        endpoint: Endpoint,
        namespace: Option<&Namespace>,
    ) -> Judgement {
        self.judge_checked(review, endpoint, namespace, None)
    }

    /// [`Engine::judge`] without the review's Namespace, because the API server did not give
    /// it for the reason `why`: a denial for want of its labels says that reason and what to
    /// do about it, instead of the general "could not be read".
    pub fn judge_namespace_unread(
        &self,
        review: &ParsedReview,
        endpoint: Endpoint,
        why: &NamespaceMiss,
    ) -> Judgement {
        self.judge_checked(review, endpoint, None, Some(why))
    }

    fn judge_checked(
        &self,
        review: &ParsedReview,
        endpoint: Endpoint,
        namespace: Option<&Namespace>,
        miss: Option<&NamespaceMiss>,
    ) -> Judgement {
        let judgement = self.judge_views_unchecked(review, endpoint, namespace, miss);
        // An expression (or a default) that read the raw object got `null` if it did not
        // parse; whatever it concluded, allowed or not a debug request, cannot stand.
        match review.raw_view_error() {
            None => judgement,
            Some(error) => denial(
                AdmissionResponse::from(review.request()),
                judgement.action,
                Vec::new(),
                judgement.subjects,
                format!("kspy cannot judge this request: {error}"),
                vec![DenialReason::request("kspy cannot judge this request")],
            ),
        }
    }

    fn judge_views_unchecked(
        &self,
        review: &ParsedReview,
        endpoint: Endpoint,
        namespace: Option<&Namespace>,
        miss: Option<&NamespaceMiss>,
    ) -> Judgement {
        let base = AdmissionResponse::from(review.request());
        let classifier = CelClassifier {
            engine: self,
            namespace,
            miss,
        };
        let request = match classify(review, &classifier) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Judgement {
                    response: base,
                    action: None,
                    verdict: Verdict::NotDebug,
                    policies: Vec::new(),
                    subjects: Vec::new(),
                    reasons: Vec::new(),
                };
            }
            Err(e) => {
                return denial(
                    base,
                    None,
                    Vec::new(),
                    Vec::new(),
                    format!("kspy cannot judge this request: {e}"),
                    vec![DenialReason::request("kspy cannot judge this request")],
                );
            }
        };
        let subjects: Vec<String> = request.subjects.iter().map(|s| s.name.clone()).collect();
        let vars = request_variables(review, namespace);
        let judge = Judge::new(
            &self.env,
            &self.policies,
            review,
            &request,
            namespace,
            &vars,
        );
        match endpoint {
            Endpoint::Mutate => self.mutate(base, &judge, review, &request, namespace, subjects),
            Endpoint::Validate => {
                let mut decision = decide(&judge, &self.settings, miss);
                if let Some(level) = enforced_level(namespace).filter(|l| *l > Level::Privileged) {
                    let added: Vec<_> = request
                        .subjects
                        .iter()
                        .map(|s| AddedContainer {
                            name: &s.name,
                            asks: &s.asks,
                            container: &s.container,
                        })
                        .collect();
                    let version = enforced_version(namespace);
                    decision.warnings.extend(pod_security_warnings(
                        level, version, review, &request, &added,
                    ));
                }
                let action = Some(request.action);
                if decision.allowed() {
                    let mut response = base;
                    response.audit_annotations = decision.audit.into_iter().collect();
                    response.warnings =
                        (!decision.warnings.is_empty()).then_some(decision.warnings);
                    Judgement {
                        response,
                        action,
                        verdict: Verdict::Allowed,
                        policies: decision.policies,
                        subjects,
                        reasons: Vec::new(),
                    }
                } else {
                    let message = denial_message(review, &request, &decision);
                    let mut j = denial(
                        base,
                        action,
                        decision.policies,
                        subjects,
                        message,
                        decision.reasons,
                    );
                    j.response.audit_annotations = decision.audit.into_iter().collect();
                    j.response.warnings =
                        (!decision.warnings.is_empty()).then_some(decision.warnings);
                    j
                }
            }
        }
    }

    fn mutate(
        &self,
        base: AdmissionResponse,
        judge: &Judge<'_>,
        review: &ParsedReview,
        request: &crate::classify::DebugRequest,
        namespace: Option<&Namespace>,
        subjects: Vec<String>,
    ) -> Judgement {
        // A pod update may change nothing of a container but its image (the API server
        // refuses the rest): a default patched into the copy or node pod's containers would
        // make every image change Invalid. It is judged by /validate only.
        if request.action != Action::Attach && review.request().operation == Operation::Update {
            return Judgement {
                response: base,
                action: Some(request.action),
                verdict: Verdict::Allowed,
                policies: Vec::new(),
                subjects,
                reasons: Vec::new(),
            };
        }
        let candidates: Vec<_> = judge
            .statically_matching()
            .into_iter()
            .filter(|p| p.mode == Mode::Enforce)
            .collect();
        let null = serde_json::Value::Null;
        let object = review.object().unwrap_or(&null);
        let volumes = crate::defaults::volumes_by_name(object);
        let level = enforced_level(namespace);
        // The Enforce policies that apply to each subject, evaluated once: a second pass of
        // the defaults (below) must not evaluate their CEL again.
        let mut applied: Vec<String> = Vec::new();
        let per_subject: Vec<Vec<&CompiledPolicy>> = request
            .subjects
            .iter()
            .map(|subject| {
                let outcomes = judge.evaluate(subject, &candidates, false);
                candidates
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.applies && o.errors.is_empty())
                    .map(|(p, _)| *p)
                    .collect()
            })
            .collect();
        // Each name once, in order: a search of `applied` for each made a review of many
        // subjects, under many policies, cost subjects x policies squared.
        let mut named: HashSet<&str> = HashSet::new();
        for p in per_subject.iter().flatten() {
            crate::search_steps::step(crate::search_steps::Search::PolicySet);
            if named.insert(&p.name) {
                applied.push(p.name.clone());
            }
        }
        let pass = |no_target: &BTreeSet<usize>| {
            let mut patch = PatchBuilder::default();
            let mut notes = Vec::new();
            let mut targets = Vec::new();
            // Grows with the user each subject's defaults name: two debug containers added at
            // once must not both be given the same conforming user.
            let mut pod_users = crate::pod_security::container_users(object);
            for (i, (subject, policies)) in request.subjects.iter().zip(&per_subject).enumerate() {
                let patched = subject_defaults(
                    &mut patch,
                    &SubjectDefaults {
                        subject,
                        policies: policies.clone(),
                        object,
                        action: request.action,
                        volumes: &volumes,
                        level,
                        pod_users: &pod_users,
                        target_default: !no_target.contains(&i),
                    },
                );
                notes.extend(patched.notes);
                pod_users.extend(patched.run_as_user);
                targets.push(patched.target);
            }
            (patch.build(), notes, targets)
        };
        let (mut patch, mut notes, targets) = pass(&BTreeSet::new());
        // The pod as the patch leaves it (its subjects' list), made once it is needed.
        let mut patched: Option<Option<serde_json::Value>> = None;
        // A `targetContainer` default puts the debug container in its target's process
        // namespace, where /validate (called with this patch applied) judges what it reaches
        // there: as the target's user, its Secret mounts. A default must not turn an allowed
        // request into a denied one, so where it would, the container gets no target.
        if request.action == Action::Attach && targets.iter().any(Option::is_some) {
            let first = apply_patch(object, request.action, &patch);
            let refused = match &first {
                Some(p) => targets_out_of_reach(review, request, p, &per_subject, &targets),
                None => Vec::new(),
            };
            if refused.is_empty() {
                patched = Some(first);
            } else {
                let no_target: BTreeSet<usize> = refused.iter().map(|(i, _)| *i).collect();
                let (again, again_notes, _) = pass(&no_target);
                patch = again;
                notes = again_notes;
                notes.extend(refused.into_iter().map(|(_, note)| note));
            }
        }
        // Pod Security runs after the mutating webhooks and before the validating ones, so a
        // request it refuses never reaches /validate: the warnings are given here, for the
        // containers as kspy's own defaults leave them (on a refusal the API server still
        // returns the warnings of the webhooks it called).
        if let Some(level) = level.filter(|l| *l > Level::Privileged) {
            let patched =
                patched.get_or_insert_with(|| apply_patch(object, request.action, &patch));
            notes.extend(warnings_after_patch(
                level,
                enforced_version(namespace),
                review,
                request,
                patched.as_ref(),
            ));
        }
        let mut response = base;
        if !notes.is_empty() {
            response.warnings = Some(notes);
        }
        if !patch.0.is_empty() {
            match response.clone().with_patch(patch) {
                Ok(r) => response = r,
                Err(e) => {
                    return denial(
                        response,
                        Some(request.action),
                        applied,
                        subjects,
                        format!("kspy could not encode its default patch: {e}"),
                        vec![DenialReason::request(
                            "kspy could not encode its default patch",
                        )],
                    );
                }
            }
        }
        Judgement {
            response,
            action: Some(request.action),
            verdict: Verdict::Allowed,
            policies: applied,
            subjects,
            reasons: Vec::new(),
        }
    }
}

fn denial(
    base: AdmissionResponse,
    action: Option<Action>,
    policies: Vec<String>,
    subjects: Vec<String>,
    message: String,
    reasons: Vec<DenialReason>,
) -> Judgement {
    let mut response = base.deny(&message);
    response.result = Status::failure(&message, "Forbidden").with_code(403);
    Judgement {
        response,
        action,
        verdict: Verdict::Denied,
        policies,
        subjects,
        reasons,
    }
}

fn denial_message(
    review: &ParsedReview,
    request: &crate::classify::DebugRequest,
    d: &Decision,
) -> String {
    let ns = review.namespace().unwrap_or("");
    let what = match request.action {
        Action::Attach => format!("debug container for pod {ns}/{}", review.name()),
        Action::Copy => format!("debug copy {ns}/{}", pod_name(review)),
        Action::Node => format!("node-debugging pod {ns}/{}", pod_name(review)),
    };
    let mut text = format!("kspy denied the {what}:");
    for reason in &d.denials {
        text.push_str("\n- ");
        text.push_str(reason);
    }
    if d.omitted > 0 {
        text.push_str(&format!(
            "\n- and {} more (kspy lists the first {})",
            d.omitted,
            crate::decide::MAX_LISTED_DENIALS
        ));
    }
    text
}

fn pod_name(review: &ParsedReview) -> String {
    review
        .pod()
        .and_then(|p| {
            p.metadata
                .name
                .clone()
                .or_else(|| p.metadata.generate_name.clone())
        })
        .unwrap_or_else(|| review.name().to_owned())
}

/// The Pod Security warnings of a debug request whose added containers read as `added`.
fn pod_security_warnings(
    level: Level,
    version: Version,
    review: &ParsedReview,
    request: &crate::classify::DebugRequest,
    added: &[AddedContainer<'_>],
) -> Vec<String> {
    let Some(pod) = review.pod() else {
        return Vec::new();
    };
    let pod_label = match request.action {
        Action::Attach => review.name().to_owned(),
        Action::Copy | Action::Node => pod_name(review),
    };
    crate::pod_security::warnings(
        Enforced { level, version },
        review.namespace().unwrap_or(""),
        &pod_label,
        request.action,
        pod,
        &request.pod,
        added,
    )
}

/// `object` with `patch` (kspy's own defaults) applied, as the API server applies it; `None`
/// when there is nothing to apply or it does not apply. For an attach only its ephemeral
/// containers, the only list the patch touches and the only one read back: the rest of the
/// pod (its `managedFields` and `status` too) need not be copied for each review.
fn apply_patch(
    object: &serde_json::Value,
    action: Action,
    patch: &json_patch::Patch,
) -> Option<serde_json::Value> {
    if patch.0.is_empty() {
        return None;
    }
    let mut o = match action {
        Action::Attach => serde_json::json!({"spec": {
            "ephemeralContainers": object["spec"]["ephemeralContainers"].clone()
        }}),
        Action::Copy | Action::Node => object.clone(),
    };
    json_patch::patch(&mut o, patch).ok()?;
    Some(o)
}

/// The subjects of an attach whose `targetContainerName` default (`targets`, by subject)
/// puts them, as the defaults leave them in `patched` ([`apply_patch`]: the pod's ephemeral
/// containers with kspy's patch applied), within reach of something in the target's process
/// namespace that none of the policies applying to them (`policies`, by subject) grants, each
/// with a note for the user: `/validate`, which the API server calls with the patch applied,
/// would deny them for it. Nothing when the pod shares one process namespace (a target changes nothing there) or
/// when the patched ephemeral containers do not read as such (then `/validate` judges them as
/// they stand).
fn targets_out_of_reach(
    review: &ParsedReview,
    request: &crate::classify::DebugRequest,
    patched: &serde_json::Value,
    policies: &[Vec<&CompiledPolicy>],
    targets: &[Option<String>],
) -> Vec<(usize, String)> {
    use serde::Deserialize;
    // The pod as /validate reads it: the patch touches only the ephemeral containers, and the
    // rest is decoded as for any review (a `status` nobody judges cannot change the answer).
    let Some(mut pod) = review.pod().cloned() else {
        return Vec::new();
    };
    let Some(spec) = pod.spec.as_mut() else {
        return Vec::new();
    };
    if spec.share_process_namespace == Some(true) {
        return Vec::new();
    }
    let Ok(ephemeral) =
        Vec::<EphemeralContainer>::deserialize(&patched["spec"]["ephemeralContainers"])
    else {
        return Vec::new();
    };
    spec.ephemeral_containers = Some(ephemeral);
    let ephemeral = pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default();
    let volumes = PodVolumes::of_running(&pod);
    let mut reach: Option<crate::asks::TraceReach> = None;
    let mut out = Vec::new();
    // What the targets would have them reach, counted as classify counts it: past
    // MAX_REACHED, /validate denies the request, so none is given a target.
    let mut reached = 0usize;
    for (i, (subject, target)) in request.subjects.iter().zip(targets).enumerate() {
        let (Some(target), Some(ec)) = (target, ephemeral.get(subject.index)) else {
            continue;
        };
        let asks = ephemeral_asks(ec, &pod, &volumes, false, &mut reach);
        reached = reached
            .saturating_add(reach.as_ref().map_or(0, |r| r.sharing(&asks)))
            .saturating_add(asks.traced.iter().map(TracedContainer::size).sum());
        if reached > MAX_REACHED {
            return request
                .subjects
                .iter()
                .zip(targets)
                .enumerate()
                .filter_map(|(i, (subject, target))| {
                    let target = target.as_ref()?;
                    Some((
                        i,
                        format!(
                            "container {:?} was not given targetContainerName {target:?}: with \
                             their targets, the debug containers this request adds would reach \
                             more than {MAX_REACHED} containers and what they hold, which kspy \
                             denies; add fewer debug containers at once",
                            subject.name
                        ),
                    ))
                })
                .collect();
        }
        let as_patched = Subject {
            name: subject.name.clone(),
            list: subject.list,
            index: subject.index,
            container: serde_json::Value::Null,
            asks,
        };
        let refused = Ask::list(&as_patched, request).into_iter().find(|ask| {
            matches!(ask, Ask::ThroughTracing { .. })
                && !policies
                    .get(i)
                    .is_some_and(|ps| ps.iter().any(|p| ask.granted_by(p, &as_patched)))
        });
        if let Some(ask) = refused {
            out.push((
                i,
                format!(
                    "container {:?} was not given targetContainerName {target:?}: with it, \
                     {ask} would not be granted by the policies that apply, and the request \
                     would be denied; without it, the container runs in a process namespace of \
                     its own (to share {target:?}'s, name it as the target yourself, with what \
                     keeps the above out of reach)",
                    subject.name
                ),
            ));
        }
    }
    out
}

/// [`pod_security_warnings`] for the subjects as kspy's own defaults leave them (`patched`,
/// [`apply_patch`]: their lists with the patch applied). A subject that cannot be read back is
/// judged as sent: a warning too many, never one too few.
fn warnings_after_patch(
    level: Level,
    version: Version,
    review: &ParsedReview,
    request: &crate::classify::DebugRequest,
    patched: Option<&serde_json::Value>,
) -> Vec<String> {
    let Some(pod) = review.pod() else {
        return Vec::new();
    };
    let volumes = PodVolumes::of(pod);
    let after: Vec<Option<(&serde_json::Value, crate::Asks)>> = request
        .subjects
        .iter()
        .map(|s| {
            let container = &patched?["spec"][s.list.field()][s.index];
            Some((container, asks_of(s.list, container, pod, &volumes)?))
        })
        .collect();
    let added: Vec<AddedContainer<'_>> = request
        .subjects
        .iter()
        .zip(&after)
        .map(|(s, after)| match after {
            Some((container, asks)) => AddedContainer {
                name: &s.name,
                asks,
                container,
            },
            None => AddedContainer {
                name: &s.name,
                asks: &s.asks,
                container: &s.container,
            },
        })
        .collect();
    pod_security_warnings(level, version, review, request, &added)
}

/// Evaluates the configured classifier expressions over `object`, `request` and
/// `namespaceObject`.
struct CelClassifier<'a> {
    engine: &'a Engine,
    namespace: Option<&'a Namespace>,
    /// Why the Namespace is missing, when the API server said.
    miss: Option<&'a NamespaceMiss>,
}

impl Classifier for CelClassifier<'_> {
    fn matches(
        &self,
        action: Action,
        review: &ParsedReview,
        state: PodState,
    ) -> Result<bool, String> {
        let expr = match action {
            Action::Copy => &self.engine.copy_classifier,
            Action::Node => &self.engine.node_classifier,
            Action::Attach => &None,
        };
        let Some(expr) = expr else {
            return Ok(false);
        };
        // Null, with `has()` over it false: a pod the classifier would mark could pass
        // unjudged for want of a lookup (fail closed, as a policy selecting by label does).
        if self.namespace.is_none() && expr.reads().contains("namespaceObject") {
            let (why, fix) =
                crate::decide::unknown_namespace(&self.engine.settings.namespaces, self.miss);
            return Err(format!(
                "it reads namespaceObject, and the labels of namespace {:?} are unknown ({why}), \
                 so whether this pod is a debug pod cannot be told ({fix})",
                review.namespace().unwrap_or("")
            ));
        }
        let mut ctx = self.engine.env.root().new_inner_scope();
        let null = serde_json::Value::Null;
        // The pod before an update is judged as a created one: `object`, with no `oldObject`.
        let object = match state {
            PodState::Requested => review.object(),
            PodState::BeforeUpdate => review.old_object(),
        };
        ctx.add_variable_from_value("object", json_to_cel(object.unwrap_or(&null)));
        ctx.add_variable_from_value("oldObject", kube_cel::cel::Value::Null);
        ctx.add_variable_from_value("request", json_to_cel(&review.request_json()));
        let ns = self
            .namespace
            .and_then(|n| serde_json::to_value(n).ok())
            .unwrap_or(serde_json::Value::Null);
        ctx.add_variable_from_value("namespaceObject", json_to_cel(&ns));
        expr.eval_bool(&ctx)
    }
}
