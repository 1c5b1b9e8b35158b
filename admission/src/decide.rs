//! Judging one debug request against the policy set.
//!
//! Per subject (each new debug container): a policy *applies* when its static match holds and
//! all its CEL conditions are true. Then
//!
//! 1. no applicable `Enforce` policy that grants anything → deny (or allow with a warning when the engine runs
//!    audit-only, [`NoPolicyVerdict::Allow`]);
//! 2. a failed validation of an applicable policy → deny (`Enforce`), warn (`Warn`) or annotate
//!    (`Audit`);
//! 3. an ask granted by no applicable `Enforce` policy → deny, naming the policies that would
//!    grant it and to whom. Grants add up across applicable policies.
//!
//! A policy that selects namespaces by label (a `namespaceSelector`, or CEL reading
//! `namespaceObject`) cannot be matched when the Namespace is unknown (its lookup failed): it
//! grants nothing then, and if it is an `Enforce` policy with
//! validations, the request is denied, since skipping a guardrail would be an allow by accident.
//!
//! A `Warn` or `Audit` policy that cannot be matched for want of the Namespace warns or annotates
//! that its validations were not checked.
//!
//! CEL that fails to evaluate never allows: for an `Enforce` policy it is a denial carrying the
//! error. `Warn` and `Audit` policies never grant and never deny.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use kube_cel::cel::{Context, Value};

use crate::ask::Ask;
use crate::asks::Asks;
use crate::cel::{CelEnv, Fields, LazyVariables, VarSet, json_to_cel, map_of, project_json};
use crate::classify::{Action, DebugRequest, Subject};
use crate::engine::{NamespaceMiss, NamespaceOrigin, NoPolicyVerdict, Settings};
use crate::policy::compiled::{CompiledPolicy, MatchInput, MatchOutcome};
use crate::policy::spec::TEST_KIND;
use crate::policy::{Mode, PolicySet};
use crate::review::ParsedReview;

/// What came of judging a request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Every reason to deny; empty means allowed.
    pub denials: Vec<String>,
    /// Warnings for the user (Warn-mode policies, audit-only allowances).
    pub warnings: Vec<String>,
    /// Audit annotations (the API server prefixes them with the webhook name).
    pub audit: BTreeMap<String, String>,
    /// Names of the policies that applied to some subject, in load order.
    pub policies: Vec<String>,
    /// The reasons of `denials`, in the same order, told briefly and fit for anyone who may
    /// read the namespace (kspy's Events).
    pub reasons: Vec<DenialReason>,
    /// Denials past the first [`MAX_LISTED_DENIALS`], counted but neither in `denials` nor in
    /// `reasons`: the denial message ends with `and N more`.
    pub omitted: usize,
    /// The last denial counted in `omitted`, so that a repeat of it is not counted again
    /// (consecutive repeats are said once).
    last_omitted: Option<Omitted>,
}

/// A denial counted in [`Decision::omitted`], as far as telling a repeat of it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Omitted {
    /// Its text.
    Text(String),
    /// A missing grant: the container and the ask, whose text (not made, as it would not be
    /// shown: naming the policies that grant it elsewhere took most of the time of a review
    /// denied hundreds of thousands of times) they determine.
    Ungranted(String, Ask),
}

/// Most denials a decision lists, in its message and in its reasons: the rest are counted.
/// A forged review can make their number grow with the square of its size: 700 debug
/// containers, each mounting a Secret volume and each able to read the others' as their
/// user, made 490 000 denials, a 355 MB message, from a 240 KB review.
pub const MAX_LISTED_DENIALS: usize = 100;

impl Decision {
    /// True when nothing denies.
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    /// Denies: `full` for the requester, `reason` for everyone else. A repeat of the previous
    /// denial is said once; past [`MAX_LISTED_DENIALS`], denials are only counted.
    fn deny(&mut self, full: String, reason: DenialReason) {
        if self.denials.len() < MAX_LISTED_DENIALS {
            if self.denials.last() != Some(&full) {
                self.denials.push(full);
            }
            if self.reasons.last() != Some(&reason) {
                self.reasons.push(reason);
            }
            return;
        }
        let repeat = match &self.last_omitted {
            Some(Omitted::Text(text)) => *text == full,
            Some(Omitted::Ungranted(..)) => false,
            None => self.denials.last() == Some(&full),
        };
        if !repeat {
            self.omitted += 1;
            self.last_omitted = Some(Omitted::Text(full));
        }
    }

    /// Counts the missing grant of `ask` to `container` among the omitted denials, without
    /// its text, and true; false while its text may still be needed (to be listed, or to be
    /// told from the last one listed).
    fn omit_ungranted(&mut self, container: &str, ask: &Ask) -> bool {
        let Some(last) = &self.last_omitted else {
            return false;
        };
        if !matches!(last, Omitted::Ungranted(c, a) if c == container && a == ask) {
            self.omitted += 1;
            self.last_omitted = Some(Omitted::Ungranted(container.to_owned(), ask.clone()));
        }
        true
    }
}

/// One reason a request was denied, in words fit for whoever may read the Pod's namespace
/// (kspy's Events): unlike the full denial message, which is for the requester, it names
/// neither the requester's groups nor which policies grant what to whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DenialReason {
    /// The debug container it is about; `None` when it is about the whole request.
    pub container: Option<String>,
    /// The policy that denied: an `Enforce` policy whose validation failed, whose CEL failed
    /// to evaluate, or whose validations could not be checked. `None` when the denial is a
    /// missing grant or no applicable policy: no policy denied then.
    pub policy: Option<String>,
    /// What is wrong: `capability SYS_PTRACE is not granted`, `no DebugPolicy allows this
    /// request`, or a policy's validation message.
    pub reason: String,
}

impl DenialReason {
    /// A reason about the whole request that no policy gave.
    pub fn request(reason: impl Into<String>) -> Self {
        DenialReason {
            container: None,
            policy: None,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for DenialReason {
    /// `policy production-reason: <message>`, or the reason alone; the container is left to
    /// the caller, which knows whether naming it says anything.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.policy {
            Some(policy) => write!(f, "policy {policy}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// How one policy fared for one subject.
#[derive(Debug, Default)]
pub(crate) struct PolicyOutcome {
    /// Static match and all conditions held.
    pub applies: bool,
    /// CEL evaluation errors (variables, conditions, validations).
    pub errors: Vec<CelFailure>,
    /// Messages of failed validations.
    pub failed_validations: Vec<String>,
}

/// A CEL expression of a policy that failed to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct CelFailure {
    /// Which expression (`condition "own-team"`), without the error.
    pub what: String,
    /// `condition "own-team" failed to evaluate: <the error>`.
    pub full: String,
}

/// Most bytes of an evaluation error quoted in a denial. The error may quote request data (a
/// regular expression taken from an env value, a key): quoted whole, one request made a
/// denial message, and a log line, of megabytes, over as many lines as it held line breaks.
pub(crate) const MAX_ERROR_BYTES: usize = 512;

/// Most bytes of an expression quoted in a denial (expressions may be 5 KiB long).
pub(crate) const MAX_EXPRESSION_BYTES: usize = 256;

impl CelFailure {
    fn new(what: String, error: impl std::fmt::Display) -> Self {
        CelFailure {
            full: format!(
                "{what} failed to evaluate: {}",
                brief(&error.to_string(), MAX_ERROR_BYTES)
            ),
            what,
        }
    }

    /// The failure of `expression` (its source, quoted briefly after the error).
    fn of(what: String, error: impl std::fmt::Display, expression: &str) -> Self {
        CelFailure {
            full: format!(
                "{what} failed to evaluate: {} (expression: {})",
                brief(&error.to_string(), MAX_ERROR_BYTES),
                brief(expression, MAX_EXPRESSION_BYTES)
            ),
            what,
        }
    }
}

/// `text` on one line (each line break, tab or other control character a space) and at most
/// `limit` bytes of it, whole characters: past that, its start and its end (where an error
/// quoting a long value says what was wrong: the regex crate's "error: unclosed group") with
/// `… (N bytes in all) …` between them.
pub(crate) fn brief(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    let one_line: std::borrow::Cow<'_, str> = if text.contains(char::is_control) {
        text.replace(char::is_control, " ").into()
    } else {
        text.into()
    };
    if one_line.len() <= limit {
        return one_line;
    }
    let mut head = limit * 3 / 4;
    while !one_line.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = one_line.len() - limit / 4;
    while !one_line.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} … ({} bytes in all) … {}",
        &one_line[..head],
        one_line.len(),
        &one_line[tail..]
    )
    .into()
}

/// Evaluates policies for one request; CEL scopes are built once and only when needed.
pub(crate) struct Judge<'a> {
    policies: &'a PolicySet,
    review: &'a ParsedReview,
    request: &'a DebugRequest,
    namespace: Option<&'a Namespace>,
    vars: &'a LazyVariables<'a>,
    groups: &'a [String],
    candidates: Vec<&'a CompiledPolicy>,
    /// Policies that would match but for a namespace selector no one can check: the Namespace
    /// is unknown.
    undetermined: Vec<&'a CompiledPolicy>,
    request_value: OnceCell<Value>,
    /// The parent of every subject's scope. The whole objects an expression reached are bound
    /// here before the next subject ([`LazyVariables::bind_read`]): cel converts a resolved
    /// value whole on every read, and a debug copy has as many subjects as containers, so
    /// resolving the Pod for each made judging it quadratic in its size. (cel still copies a
    /// selected part of a value on each field access, so an expression that selects a large
    /// part of the Pod for every subject stays quadratic; the shipped policies select small
    /// parts.)
    objects: RefCell<Context<'a>>,
}

/// The labels of a Namespace that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The whole-object CEL variables of a review, converted only when an expression reaches them.
pub(crate) fn request_variables<'a>(
    review: &'a ParsedReview,
    namespace: Option<&'a Namespace>,
) -> LazyVariables<'a> {
    let raw = |v: Option<&serde_json::Value>| v.map_or(Value::Null, json_to_cel);
    LazyVariables::new()
        .with("object", move || raw(review.object()))
        .with("oldObject", move || raw(review.old_object()))
        .with("namespaceObject", move || {
            namespace
                .and_then(|n| serde_json::to_value(n).ok())
                .map_or(Value::Null, |v| json_to_cel(&v))
        })
}

impl<'a> Judge<'a> {
    pub fn new(
        env: &'a CelEnv,
        policies: &'a PolicySet,
        review: &'a ParsedReview,
        request: &'a DebugRequest,
        namespace: Option<&'a Namespace>,
        vars: &'a LazyVariables<'a>,
    ) -> Self {
        let groups = review
            .request()
            .user_info
            .groups
            .as_deref()
            .unwrap_or_default();
        let mut judge = Judge {
            policies,
            review,
            request,
            namespace,
            vars,
            groups,
            candidates: Vec::new(),
            undetermined: Vec::new(),
            request_value: OnceCell::new(),
            objects: RefCell::new(env.root().new_inner_scope()),
        };
        let input = judge.match_input();
        let (mut candidates, mut undetermined) = (Vec::new(), Vec::new());
        for p in policies.policies() {
            match p.matcher.outcome(&input) {
                MatchOutcome::Holds => candidates.push(p),
                MatchOutcome::NamespaceUnknown => undetermined.push(p),
                MatchOutcome::Fails => {}
            }
        }
        judge.candidates = candidates;
        judge.undetermined = undetermined;
        judge
    }

    fn match_input(&self) -> MatchInput<'_> {
        MatchInput {
            action: self.request.action,
            namespace: self.review.namespace().unwrap_or(""),
            namespace_labels: self
                .namespace
                .map(|n| n.metadata.labels.as_ref().unwrap_or(&NO_LABELS)),
            user: self.review.user(),
            groups: self.groups,
        }
    }

    /// The policies whose static match holds for this request.
    pub fn statically_matching(&self) -> Vec<&'a CompiledPolicy> {
        self.candidates.clone()
    }

    /// The value of a variable bound into subject scopes (not the whole-object ones, which
    /// [`request_variables`] resolves).
    ///
    /// Each holds only the top-level fields some policy reads (the set's [`Projection`](crate::cel::Projection)):
    /// cel copies a bound value whole, and binding three fields of `request` instead of
    /// thirteen is most of the cost of evaluating a policy.
    fn light_value(&self, name: &str, subject: &Subject) -> Value {
        let fields = self.policies.projection().fields(name);
        match name {
            "request" => self
                .request_value
                .get_or_init(|| request_value(self.review, fields))
                .clone(),
            "container" => project_json(&subject.container, fields),
            "target" => project_json(&target_json(self.review, subject), fields),
            "asks" => project_json(&asks_json(self.request, &subject.asks), fields),
            _ => Value::Null,
        }
    }

    /// Evaluates `policies` (already statically matching) for one subject. Validations run
    /// only when asked for (not for `/mutate`).
    pub fn evaluate(
        &self,
        subject: &Subject,
        policies: &[&'a CompiledPolicy],
        with_validations: bool,
    ) -> Vec<PolicyOutcome> {
        let needs_cel = policies.iter().any(|p| p.has_cel());
        if !needs_cel {
            return policies
                .iter()
                .map(|_| PolicyOutcome {
                    applies: true,
                    ..PolicyOutcome::default()
                })
                .collect();
        }
        // One scope per subject. cel converts a value into its evaluation form when it is
        // bound, so each small variable is bound once, just before the first expression that
        // names it; the whole objects are resolved (and converted) only when reached. Those
        // an earlier subject reached are bound in the shared parent scope now, converted once
        // for all the subjects left (and never for a request with one subject).
        self.vars.bind_read(&mut self.objects.borrow_mut());
        let objects = self.objects.borrow();
        let mut scope = objects.new_inner_scope();
        scope.set_variable_resolver(self.vars);
        let mut bound = VarSet::default();
        let mut bind = |scope: &mut Context<'_>, wanted: VarSet| {
            for name in LIGHT_VARIABLES {
                if wanted.contains(name) && !bound.contains(name) {
                    scope.add_variable_from_value(*name, self.light_value(name, subject));
                    bound = bound.union(VarSet::of(name));
                }
            }
        };
        policies
            .iter()
            .map(|p| evaluate_policy(&mut scope, p, with_validations, &mut bind))
            .collect()
    }
}

/// CEL's `request`, built from only the fields read when the projection says which.
fn request_value(review: &ParsedReview, fields: Option<&Fields>) -> Value {
    match fields {
        Some(Fields::Some(names)) => map_of(names.iter().filter_map(|n| {
            review
                .request_field(n)
                .map(|v| (n.clone(), json_to_cel(&v)))
        })),
        _ => json_to_cel(&review.request_json()),
    }
}

/// Variables bound into a subject's scope; the rest are resolved lazily.
const LIGHT_VARIABLES: &[&str] = &["request", "container", "target", "asks"];

/// The JSON CEL sees as `asks` for a subject: its asks plus the pod-level ones.
fn asks_json(request: &DebugRequest, asks: &Asks) -> serde_json::Value {
    let mut v = serde_json::to_value(asks).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "pod".into(),
            serde_json::to_value(&request.pod).unwrap_or(serde_json::Value::Null),
        );
        obj.insert(
            "hostNamespaces".into(),
            serde_json::json!(request.pod.host_namespaces()),
        );
    }
    v
}

/// The container a subject targets, as JSON, or null.
fn target_json(review: &ParsedReview, subject: &Subject) -> serde_json::Value {
    let (Some(target), Some(spec)) = (
        subject.asks.target.as_deref(),
        review.pod().and_then(|p| p.spec.as_ref()),
    ) else {
        return serde_json::Value::Null;
    };
    // A restartable init container (a sidecar) may be targeted too.
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == target)
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// A policy's `variables`, each evaluated the first time an expression names it (with the
/// earlier ones it names), at most once per request, within [`crate::cel::MAX_VARIABLE_BYTES`]
/// together.
struct PolicyVariables<'p> {
    declared: &'p [(String, crate::cel::Expression)],
    /// By declaration index: not yet evaluated, its value, or why it failed.
    values: Vec<Option<Result<Value, CelFailure>>>,
    held: usize,
}

impl<'p> PolicyVariables<'p> {
    fn new(declared: &'p [(String, crate::cel::Expression)]) -> Self {
        PolicyVariables {
            declared,
            values: vec![None; declared.len()],
            held: 0,
        }
    }

    /// The declared variables `expr` names, by index (all of them when it uses `variables`
    /// whole), among the first `upto`.
    fn named_by(&self, expr: &crate::cel::Expression, upto: usize, into: &mut [bool]) {
        match expr.projection().fields("variables") {
            None => {}
            Some(Fields::All) => into[..upto].iter_mut().for_each(|n| *n = true),
            Some(Fields::Some(names)) => {
                for (i, (name, _)) in self.declared[..upto].iter().enumerate() {
                    if names.contains(name) {
                        into[i] = true;
                    }
                }
            }
        }
    }

    /// Evaluates what `expr` (and `also`, a message expression) need, then a scope binding
    /// `variables` to every value held.
    fn scope_for<'c>(
        &mut self,
        scope: &'c Context<'c>,
        expr: &crate::cel::Expression,
        also: Option<&crate::cel::Expression>,
    ) -> Result<Context<'c>, CelFailure> {
        let mut needed = vec![false; self.declared.len()];
        self.named_by(expr, self.declared.len(), &mut needed);
        if let Some(also) = also {
            self.named_by(also, self.declared.len(), &mut needed);
        }
        self.evaluate(scope, needed)?;
        Ok(self.bound(scope))
    }

    /// Evaluates the `needed` variables and the earlier ones they name, in declaration order
    /// (a variable sees only those above it, so one pass from the last finds them all).
    fn evaluate(&mut self, scope: &Context<'_>, mut needed: Vec<bool>) -> Result<(), CelFailure> {
        for i in (0..self.declared.len()).rev() {
            if needed[i] && self.values[i].is_none() {
                let (_, expr) = &self.declared[i];
                self.named_by(expr, i, &mut needed);
            }
        }
        let needed: Vec<usize> = (0..needed.len()).filter(|i| needed[*i]).collect();
        for i in needed {
            if self.values[i].is_none() {
                let (name, expr) = &self.declared[i];
                let child = self.bound(scope);
                let value = match expr.eval(&child) {
                    Ok(v) => {
                        match crate::cel::size_within(
                            &v,
                            crate::cel::MAX_VARIABLE_BYTES - self.held,
                        ) {
                            Some(size) => {
                                self.held += size;
                                Ok(v)
                            }
                            // Fail closed, as for any evaluation error, before a later one
                            // doubles it.
                            None => Err(CelFailure::new(
                                format!("variable {name:?}"),
                                format!(
                                    "the policy's variables would hold more than {} MiB, their limit",
                                    crate::cel::MAX_VARIABLE_BYTES >> 20
                                ),
                            )),
                        }
                    }
                    Err(e) => Err(CelFailure::of(
                        format!("variable {name:?}"),
                        e,
                        expr.source(),
                    )),
                };
                self.values[i] = Some(value);
            }
            if let Some(Err(failure)) = &self.values[i] {
                return Err(failure.clone());
            }
        }
        Ok(())
    }

    /// A scope binding `variables` to the values evaluated so far.
    fn bound<'c>(&self, scope: &'c Context<'c>) -> Context<'c> {
        let mut child = scope.new_inner_scope();
        if !self.declared.is_empty() {
            let held =
                self.declared
                    .iter()
                    .zip(&self.values)
                    .filter_map(|((name, _), v)| match v {
                        Some(Ok(v)) => Some((name.clone(), v.clone())),
                        _ => None,
                    });
            child.add_variable_from_value("variables", map_of(held));
        }
        child
    }
}

fn evaluate_policy(
    scope: &mut Context<'_>,
    p: &CompiledPolicy,
    with_validations: bool,
    bind: &mut dyn FnMut(&mut Context<'_>, VarSet),
) -> PolicyOutcome {
    let mut outcome = PolicyOutcome::default();
    bind(scope, p.condition_reads);
    // Variables are evaluated when an expression first names them, as ValidatingAdmissionPolicy
    // does: a variable that could only fail where the conditions exclude the request (a label
    // the namespace lacks) must not deny it.
    let mut variables = PolicyVariables::new(&p.variables);
    for (name, expr) in &p.conditions {
        let child = match variables.scope_for(scope, expr, None) {
            Ok(child) => child,
            Err(failure) => {
                outcome.errors.push(failure);
                return outcome;
            }
        };
        match expr.eval_bool(&child) {
            Ok(true) => {}
            Ok(false) => return outcome,
            Err(e) => {
                outcome.errors.push(CelFailure::of(
                    format!("condition {name:?}"),
                    e,
                    expr.source(),
                ));
                return outcome;
            }
        }
    }
    outcome.applies = true;
    if !with_validations || p.validations.is_empty() {
        return outcome;
    }
    bind(scope, p.validation_reads);
    for (i, v) in p.validations.iter().enumerate() {
        let child = match variables.scope_for(scope, &v.expression, v.message_expression.as_ref()) {
            Ok(child) => child,
            Err(failure) => {
                // Once per variable, however many validations name it.
                if !outcome.errors.iter().any(|f| f.what == failure.what) {
                    outcome.errors.push(failure);
                }
                continue;
            }
        };
        match v.expression.eval_bool(&child) {
            Ok(true) => {}
            Ok(false) => {
                // As ValidatingAdmissionPolicy takes a messageExpression's result: trimmed,
                // and given up for the fixed message when blank or still holding a line
                // break. A warning with one would not reach anyone: the API server's warning
                // recorder drops a text with a control character whole.
                let message = v
                    .message_expression
                    .as_ref()
                    .and_then(|m| m.eval_string(&child).ok())
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty() && !m.contains(['\n', '\r']))
                    .or_else(|| v.message.clone())
                    .unwrap_or_else(|| format!("failed rule: {}", v.expression.source()));
                outcome.failed_validations.push(message);
            }
            Err(e) => outcome.errors.push(CelFailure {
                what: format!("validation {}", i + 1),
                full: format!(
                    "validation {} ({}) failed to evaluate: {}",
                    i + 1,
                    brief(v.expression.source(), MAX_EXPRESSION_BYTES),
                    brief(&e, MAX_ERROR_BYTES)
                ),
            }),
        }
    }
    outcome
}

/// Judges a whole request for `/validate`.
/// `miss` says why the Namespace is missing, when the API server said.
pub(crate) fn decide(
    judge: &Judge<'_>,
    settings: &Settings,
    miss: Option<&NamespaceMiss>,
) -> Decision {
    let no_policy = settings.no_policy;
    let mut d = Decision::default();
    let request = judge.request;
    let review = judge.review;
    let candidates = judge.statically_matching();
    // By address: the candidates are borrowed from `judge.policies`, in which a search for
    // each one's index made every subject cost the square of the number of policies.
    let mut applied: HashSet<*const CompiledPolicy> = HashSet::new();
    let mut grants_used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let who = describe_user(review, judge.groups);
    let place = format!("namespace {:?}", review.namespace().unwrap_or(""));
    // What `--no-policy-allows` let through, per subject.
    let mut audit_only: Vec<String> = Vec::new();

    // A guardrail that selects namespaces by label cannot be skipped just because the
    // Namespace could not be read: its validations might deny. Fail closed. A Warn or Audit
    // policy cannot deny, but skipping it in silence would report "nothing to warn about"
    // during exactly the roll-out it is there to watch: it says that it was not checked.
    for p in &judge.undetermined {
        if p.validations.is_empty() {
            continue;
        }
        let selects = match p.matcher.namespace_selector.as_ref() {
            Some(selector) => format!("applies in namespaces labelled {selector}"),
            None => "reads namespaceObject (the Namespace and its labels) in its CEL".into(),
        };
        let (why, fix) = unknown_namespace(&settings.namespaces, miss);
        match p.mode {
            Mode::Enforce => d.deny(
                format!(
                    "policy {} {selects} and the labels of {place} are unknown ({why}), so its \
                     validations cannot be checked; kspy denies rather than skip them ({fix})",
                    p.name
                ),
                DenialReason {
                    container: None,
                    policy: Some(p.name.clone()),
                    reason: format!("its validations cannot be checked: {why}"),
                },
            ),
            Mode::Warn => d.warnings.push(format!(
                "policy {} {selects} and the labels of {place} are unknown ({why}), so its \
                 validations were not checked ({fix})",
                p.name
            )),
            Mode::Audit => push_audit(
                &mut d.audit,
                &format!("audit-{}", p.name),
                &format!("not checked: it {selects} and the labels of {place} are unknown ({why})"),
            ),
        }
    }

    for subject in &request.subjects {
        let outcomes = judge.evaluate(subject, &candidates, true);
        // What a Warn or Audit policy found is said of a container when there are several (a
        // debug copy's, two debug containers at once): "pin it; pin it" in the audit log would
        // not say which. One alone, as kubectl debug adds, needs no name.
        let of = if request.subjects.len() > 1 {
            format!("container {:?}: ", subject.name)
        } else {
            String::new()
        };
        let mut enforcing: Vec<&CompiledPolicy> = Vec::new();
        // An Enforce policy with a grant whose CEL failed: it might have allowed the request.
        let mut undecided_grant = false;
        for (p, o) in candidates.iter().zip(&outcomes) {
            if p.mode == Mode::Enforce && !o.errors.is_empty() && !p.grant.is_empty() {
                undecided_grant = true;
            }
            for e in &o.errors {
                let text = format!("policy {}: {}", p.name, e.full);
                match p.mode {
                    Mode::Enforce => d.deny(
                        format!("container {:?}: {text}", subject.name),
                        DenialReason {
                            container: Some(subject.name.clone()),
                            policy: Some(p.name.clone()),
                            reason: format!("{} failed to evaluate", e.what),
                        },
                    ),
                    Mode::Warn => d.warnings.push(format!("{of}{text}")),
                    Mode::Audit => push_audit(
                        &mut d.audit,
                        &format!("audit-{}", p.name),
                        &format!("{of}{text}"),
                    ),
                }
            }
            if !o.applies {
                continue;
            }
            crate::search_steps::step(crate::search_steps::Search::PolicySet);
            applied.insert(std::ptr::from_ref(*p));
            for m in &o.failed_validations {
                match p.mode {
                    Mode::Enforce => d.deny(
                        format!("container {:?}: policy {}: {m}", subject.name, p.name),
                        DenialReason {
                            container: Some(subject.name.clone()),
                            policy: Some(p.name.clone()),
                            reason: m.clone(),
                        },
                    ),
                    Mode::Warn => d.warnings.push(format!("{of}policy {}: {m}", p.name)),
                    Mode::Audit => push_audit(
                        &mut d.audit,
                        &format!("audit-{}", p.name),
                        &format!("{of}{m}"),
                    ),
                }
            }
            if p.mode == Mode::Enforce && o.errors.is_empty() {
                enforcing.push(p);
            }
        }

        // Guardrails (Enforce policies that grant nothing) deny through their validations but
        // do not make a request "allowed by a policy".
        if enforcing.iter().all(|p| p.grant.is_empty()) {
            // The failure, a denial already, is the reason: "no DebugPolicy allows you" (with
            // the failed policy listed as one for everyone) would send people to ask for a
            // grant they have.
            if undecided_grant {
                continue;
            }
            let message = format!(
                "no DebugPolicy allows {who} to {} in {place}{}{}",
                request.action.verb_phrase(),
                alternatives_for_action(judge.policies, request.action),
                grants_left_undetermined(judge, settings, miss, &place)
            );
            match no_policy {
                NoPolicyVerdict::Deny => d.deny(
                    format!(
                        "container {:?}: {message}; kspy denies debug requests no policy allows",
                        subject.name
                    ),
                    DenialReason {
                        container: Some(subject.name.clone()),
                        policy: None,
                        reason: "no DebugPolicy allows this request".into(),
                    },
                ),
                // Said only if nothing else denies (below): a denied request was not
                // "allowed only because" of anything.
                NoPolicyVerdict::Allow => audit_only.push(format!(
                    "{message}; allowed only because kspy runs audit-only (no policy allows)"
                )),
            }
            continue;
        }

        // By address, for the policies granting elsewhere (below): a search of `enforcing`
        // for each policy made each denied ask cost the square of the number of policies.
        let enforcing_set: HashSet<*const CompiledPolicy> =
            enforcing.iter().map(|p| std::ptr::from_ref(*p)).collect();
        for ask in Ask::list(subject, request) {
            let granting: Vec<&str> = enforcing
                .iter()
                .filter(|p| ask.granted_by(p, subject))
                .map(|p| p.name.as_str())
                .collect();
            if granting.is_empty() {
                // What is not even valid is not a grant missing: say what to fix.
                if let Ask::InvalidImage(_)
                | Ask::InvalidCapability(_)
                | Ask::VolumeImage { error: Some(_), .. } = ask
                {
                    d.deny(
                        format!(
                            "container {:?}: {ask}; no policy grants what is not valid: fix it",
                            subject.name
                        ),
                        DenialReason {
                            container: Some(subject.name.clone()),
                            policy: None,
                            reason: ask.to_string(),
                        },
                    );
                    continue;
                }
                if d.omit_ungranted(&subject.name, &ask) {
                    continue;
                }
                let elsewhere: Vec<String> = judge
                    .policies
                    .policies()
                    .iter()
                    .filter(|p| {
                        crate::search_steps::step(crate::search_steps::Search::PolicySet);
                        p.mode == Mode::Enforce && !enforcing_set.contains(&std::ptr::from_ref(*p))
                    })
                    .filter(|p| {
                        p.matcher.actions.is_empty() || p.matcher.actions.contains(&request.action)
                    })
                    .filter(|p| ask.granted_by(p, subject))
                    .map(|p| format!("{} grants it {}", p.name, p.matcher.describe()))
                    .collect();
                // A policy that only sets defaults grants and checks nothing: naming it among
                // the ones that do not grant would send people to the wrong place.
                let applied_names: Vec<&str> = enforcing
                    .iter()
                    .filter(|p| !p.grant.is_empty() || !p.validations.is_empty())
                    .map(|p| p.name.as_str())
                    .collect();
                let hint = if elsewhere.is_empty() {
                    "no policy grants it to anyone".to_owned()
                } else {
                    elsewhere.join("; ")
                };
                d.deny(
                    format!(
                        "container {:?}: {ask} is not granted by the policies that apply ({}); \
                         {hint}{}",
                        subject.name,
                        applied_names.join(", "),
                        denial_note(&ask, subject, &enforcing)
                    ),
                    DenialReason {
                        container: Some(subject.name.clone()),
                        policy: None,
                        reason: format!("{ask} is not granted"),
                    },
                );
            } else {
                grants_used
                    .entry(granting.join("+"))
                    .or_default()
                    .insert(ask.to_string());
            }
        }
    }

    if d.allowed() && !audit_only.is_empty() {
        d.warnings.extend(audit_only);
        d.audit
            .insert("no-policy".into(), "allowed-audit-only".into());
    }
    d.policies = judge
        .policies
        .policies()
        .iter()
        .filter(|p| applied.contains(&std::ptr::from_ref(*p)))
        .map(|p| p.name.clone())
        .collect();
    d.warnings.dedup();
    d.audit.insert("action".into(), request.action.to_string());
    if !d.policies.is_empty() {
        d.audit.insert("policies".into(), d.policies.join(","));
    }
    if !grants_used.is_empty() {
        let text: Vec<String> = grants_used
            .iter()
            .map(|(p, asks)| {
                format!(
                    "{p}: {}",
                    asks.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        d.audit.insert("grants".into(), text.join("; "));
    }
    if let Some(reason) = debug_reason(request) {
        d.audit.insert("reason".into(), reason);
    }
    d
}

/// What the denial of `ask` adds to "not granted" for the requester: why a granted-looking
/// ask is not, or what it means and how not to ask it. Empty for most asks.
fn denial_note(ask: &Ask, subject: &Subject, enforcing: &[&CompiledPolicy]) -> String {
    if *ask == Ask::ReadingHostProcesses {
        return "; in the node's pid namespace the kernel opens a process's files \
                (/proc/PID/root) and environment (/proc/PID/environ) to one of its own user \
                holding every capability it holds, so a debug container that may run as root \
                reaches every container on the node running as root with no more than the \
                runtime's default capabilities, and holding SETUID every user's: other pods' \
                Secret mounts and service-account tokens included, which a grant of \
                mountVolumes: all covers; or run it as a non-root user with \
                allowPrivilegeEscalation: false"
            .to_owned();
    }
    digest_note(ask, subject, enforcing)
}

/// For an image pinned by digest that no pattern grants: that the applicable policies'
/// patterns naming a tag cannot match it (a digest reference has no tag), and what would.
/// Empty otherwise.
fn digest_note(ask: &Ask, subject: &Subject, enforcing: &[&CompiledPolicy]) -> String {
    let image = match ask {
        Ask::Image(_) => subject.asks.image_ref.as_ref(),
        Ask::VolumeImage { volume, .. } => subject
            .asks
            .volume_images
            .iter()
            .find(|v| &v.volume == volume)
            .and_then(|v| v.image_ref.as_ref()),
        _ => None,
    };
    let Some(image) = image.filter(|i| i.digest().is_some()) else {
        return String::new();
    };
    let tagged: Vec<&str> = enforcing
        .iter()
        .flat_map(|p| &p.grant.images)
        .filter(|p| p.names_a_tag())
        .map(|p| p.as_str())
        .take(3)
        .collect();
    if tagged.is_empty() {
        return String::new();
    }
    format!(
        "; pinned by digest, it has no tag, so patterns naming a tag ({}) do not match it: \
         grant the digest ({image}) or the repository ({})",
        tagged.join(", "),
        image.name()
    )
}

/// For a denial that no policy allows: the Enforce policies that grant and would have been
/// matched but for the labels of the Namespace, which are unknown, why they are and what to do
/// (a 404, RBAC, an API server that did not answer: each wants another fix). Empty when there
/// are none; only called on that denial, never on the allowed path.
fn grants_left_undetermined(
    judge: &Judge<'_>,
    settings: &Settings,
    miss: Option<&NamespaceMiss>,
    place: &str,
) -> String {
    let names: Vec<&str> = judge
        .undetermined
        .iter()
        .filter(|p| p.mode == Mode::Enforce && !p.grant.is_empty())
        .map(|p| p.name.as_str())
        .collect();
    if names.is_empty() {
        return String::new();
    }
    let (why, fix) = unknown_namespace(&settings.namespaces, miss);
    let one = names.len() == 1;
    format!(
        "; {} {} {} on the labels of {place} (a namespaceSelector, or CEL reading \
         namespaceObject), which are unknown ({why}), so {} not apply ({fix})",
        if one { "policy" } else { "policies" },
        names.join(", "),
        if one { "depends" } else { "depend" },
        if one { "it does" } else { "they do" },
    )
}

/// Why the labels of a namespace are unknown, and what to do about it, from where the
/// Namespace objects come from and, when the API server said, why it did not give it.
pub(crate) fn unknown_namespace(
    origin: &NamespaceOrigin,
    miss: Option<&NamespaceMiss>,
) -> (String, String) {
    const FAILS_CLOSED: &str = "kspy fails closed when it cannot read a Namespace";
    match (origin, miss) {
        (NamespaceOrigin::Api, Some(NamespaceMiss::NotFound)) => (
            "the API server answered 404 Not Found: no Namespace of this name exists".to_owned(),
            "check the namespace name; a Namespace created a moment ago is seen once the \
             webhook's cached lookup expires (--namespace-cache-ttl)"
                .to_owned(),
        ),
        (NamespaceOrigin::Api, Some(NamespaceMiss::NotAName)) => (
            "no Namespace can have this name (not a DNS-1123 label), so it was not looked up"
                .to_owned(),
            "check the namespace the request names".to_owned(),
        ),
        (NamespaceOrigin::Api, Some(NamespaceMiss::Forbidden { user })) => {
            let who = match user {
                Some(user) => format!("the webhook's ServiceAccount ({user})"),
                None => "the webhook's ServiceAccount".to_owned(),
            };
            (
                format!("the API server answered 403 Forbidden: {who} may not get namespaces"),
                format!(
                    "grant {who} RBAC verb `get` on resource `namespaces` (API group \"\"), as \
                     the ClusterRole kspy-webhook in deploy/base/rbac.yaml does, bound to it by \
                     a ClusterRoleBinding"
                ),
            )
        }
        (NamespaceOrigin::Api, Some(NamespaceMiss::TimedOut { after })) => (
            format!(
                "the API server did not answer the Namespace lookup within {} ms, its share of \
                 the review deadline",
                after.as_millis()
            ),
            format!(
                "{FAILS_CLOSED} in time; retry, and if it persists check the API server's load \
                 and the network between the webhook and the API server"
            ),
        ),
        (NamespaceOrigin::Api, Some(NamespaceMiss::Unreachable)) => (
            "the webhook could not reach the API server to read the Namespace".to_owned(),
            format!(
                "{FAILS_CLOSED}; check the network between the webhook and the API server \
                 (the webhook's log has the error)"
            ),
        ),
        (NamespaceOrigin::Api, Some(NamespaceMiss::Refused { code })) => (
            format!("the API server answered the Namespace lookup with HTTP {code}"),
            format!("{FAILS_CLOSED}; the webhook's log has the API server's message"),
        ),
        (NamespaceOrigin::Api, None) => (
            "the Namespace could not be read".to_owned(),
            "the webhook needs RBAC `get` on namespaces; its log says why the lookup failed"
                .to_owned(),
        ),
        (NamespaceOrigin::NotLookedUp, _) => (
            "the webhook does not look Namespaces up".to_owned(),
            "run it with --namespace-lookup api and RBAC `get` on namespaces, or with \
             --namespace-lookup declared for the namespaces the test suites declare"
                .to_owned(),
        ),
        (NamespaceOrigin::Declared { under }, _) => (
            format!(
                "the namespace is not declared in any {TEST_KIND} spec.namespaces under {under}"
            ),
            format!(
                "declare it with its labels in a {TEST_KIND} suite's spec.namespaces under \
                 {under}, as namespaces.yaml in the shipped policies does"
            ),
        ),
    }
}

fn push_audit(audit: &mut BTreeMap<String, String>, key: &str, text: &str) {
    audit
        .entry(key.to_owned())
        .and_modify(|v| {
            v.push_str("; ");
            v.push_str(text);
        })
        .or_insert_with(|| text.to_owned());
}

/// `user "bob" (groups dev, system:authenticated)`
pub(crate) fn describe_user(review: &ParsedReview, groups: &[String]) -> String {
    let groups: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|g| *g != "system:authenticated")
        .collect();
    if groups.is_empty() {
        format!("user {:?}", review.user())
    } else {
        format!("user {:?} (groups {})", review.user(), groups.join(", "))
    }
}

fn alternatives_for_action(policies: &PolicySet, action: Action) -> String {
    let list: Vec<String> = policies
        .policies()
        .iter()
        // Guardrails allow nothing; naming one here would send people to the wrong door.
        .filter(|p| p.mode == Mode::Enforce && !p.grant.is_empty())
        .filter(|p| p.matcher.actions.is_empty() || p.matcher.actions.contains(&action))
        .map(|p| format!("{} ({})", p.name, p.matcher.describe()))
        .collect();
    if list.is_empty() {
        String::new()
    } else {
        format!(" (policies for {action}: {})", list.join("; "))
    }
}

/// The `KSPY_REASON` a debug container carries, recorded in the audit log: its last entry,
/// the one the kubelet sets (a later entry of a name replaces an earlier one), so that what
/// the audit log says is what the container was given.
fn debug_reason(request: &DebugRequest) -> Option<String> {
    request.subjects.iter().find_map(|s| {
        s.container["env"]
            .as_array()?
            .iter()
            .rfind(|e| e["name"] == "KSPY_REASON")?
            .get("value")?
            .as_str()
            .map(|r| r.chars().take(256).collect())
    })
}

#[cfg(test)]
mod tests {
    use kube_cel::cel::context::VariableResolver;

    use super::*;
    use crate::capability::Capability;
    use crate::classify::{NoClassifier, classify};

    /// `count` policies, `p0`, `p1`, …, each applying to every attach and granting the image
    /// `image(i)`.
    fn attach_policies(count: usize, image: impl Fn(usize) -> String) -> PolicySet {
        let yaml: String = (0..count)
            .map(|i| {
                format!(
                    "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: p{i}}}\n\
                     spec:\n  match: {{actions: [attach]}}\n  grant: {{images: [\"{}\"]}}\n---\n",
                    image(i)
                )
            })
            .collect();
        PolicySet::from_yaml("t.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// alice's attach of `debuggers` to pod `ns/p`, whose one container is `app`.
    fn attach_review(debuggers: Vec<serde_json::Value>) -> ParsedReview {
        let pod = |ephemeral: Vec<serde_json::Value>| {
            serde_json::json!({"metadata": {"name": "p", "namespace": "ns"},
                "spec": {"containers": [{"name": "app", "image": "app"}],
                         "ephemeralContainers": ephemeral}})
        };
        ParsedReview::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": "ephemeralcontainers",
                "name": "p", "namespace": "ns", "operation": "UPDATE",
                "userInfo": {"username": "alice"},
                "object": pod(debuggers),
                "oldObject": pod(vec![])
            }
        }))
        .unwrap()
    }

    /// The decision on `review` under `policies`, with the steps of the policy-set searches
    /// it took.
    fn decide_counting(policies: &PolicySet, review: &ParsedReview) -> (Decision, usize) {
        let request = classify(review, &NoClassifier).unwrap().unwrap();
        let env = CelEnv::new();
        let vars = request_variables(review, None);
        let judge = Judge::new(&env, policies, review, &request, None, &vars);
        crate::search_steps::reset(crate::search_steps::Search::PolicySet);
        let d = decide(&judge, &Settings::default(), None);
        (
            d,
            crate::search_steps::count(crate::search_steps::Search::PolicySet),
        )
    }

    /// 300 policies apply, each granting its own image, and the debug container asks for five
    /// capabilities none grants: naming the applied policies, and for each denial the
    /// policies granting elsewhere, looks at each policy once, not at each against all.
    #[test]
    fn many_policies_are_searched_once_per_denied_ask_not_once_per_pair() {
        const POLICIES: usize = 300;
        let policies = attach_policies(POLICIES, |i| format!("busybox:1.{i}"));
        let debugger = serde_json::json!({
            "name": "d", "image": "busybox:1.7",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE", "BPF"]}}
        });
        let review = attach_review(vec![debugger]);
        let (d, steps) = decide_counting(&policies, &review);
        assert_eq!(d.policies.len(), POLICIES);
        assert_eq!(d.policies[..3], ["p0", "p1", "p2"]);
        let denied: Vec<_> = d.reasons.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            denied,
            [
                "capability BPF is not granted",
                "capability NET_ADMIN is not granted",
                "capability NET_RAW is not granted",
                "capability SYS_ADMIN is not granted",
                "capability SYS_PTRACE is not granted"
            ]
        );
        // Once per applied policy, and once per policy for each of the five denials.
        // At least once per applied policy: a count of 0 would mean the steps went uncounted.
        assert!((POLICIES..=6 * POLICIES).contains(&steps), "{steps} steps");
    }

    /// 40 debug containers added at once, under 100 policies that all apply: `/mutate` names
    /// each applied policy once, in load order, looking at each (subject, policy) once, not
    /// searching the names found so far for each.
    #[test]
    fn mutate_names_the_applied_policies_without_searching_them_for_each_subject() {
        const POLICIES: usize = 100;
        const SUBJECTS: usize = 40;
        let policies = attach_policies(POLICIES, |_| "busybox:*".to_owned());
        let engine = crate::Engine::new(policies, Settings::default()).expect("engine");
        let debuggers: Vec<_> = (0..SUBJECTS)
            .map(|i| serde_json::json!({"name": format!("d{i}"), "image": "busybox:1.36"}))
            .collect();
        let review = attach_review(debuggers);
        crate::search_steps::reset(crate::search_steps::Search::PolicySet);
        let j = engine.judge(&review, crate::Endpoint::Mutate, None);
        let steps = crate::search_steps::count(crate::search_steps::Search::PolicySet);
        let names: Vec<String> = (0..POLICIES).map(|i| format!("p{i}")).collect();
        assert_eq!(j.policies, names);
        assert!(
            (POLICIES..=SUBJECTS * POLICIES).contains(&steps),
            "{steps} steps"
        );
    }

    /// A debug container asking for 500 capabilities no policy grants: the first
    /// [`MAX_LISTED_DENIALS`] denials are made in full, naming the policies that grant
    /// elsewhere; the rest are counted without looking for those policies, and a repeat is
    /// still counted once.
    #[test]
    fn denials_past_the_listed_ones_are_counted_without_their_text() {
        const CAPABILITIES: usize = 500;
        let policies = attach_policies(3, |_| "busybox:*".to_owned());
        let caps: Vec<String> = (0..CAPABILITIES).map(|i| format!("X{i:03}")).collect();
        let debugger = serde_json::json!({
            "name": "d", "image": "busybox:1.36",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                "allowPrivilegeEscalation": false, "capabilities": {"add": caps}}
        });
        let review = attach_review(vec![debugger]);
        let (d, steps) = decide_counting(&policies, &review);
        assert_eq!(d.denials.len(), MAX_LISTED_DENIALS);
        assert_eq!(d.omitted, CAPABILITIES - MAX_LISTED_DENIALS);
        assert!(
            d.denials[0].starts_with("container \"d\": capability X000 is not granted"),
            "{}",
            d.denials[0]
        );
        // Three applied; three looked at for each denial listed, and for the first one
        // counted (told from the last one listed by its text).
        assert!(
            (3 + 3 * MAX_LISTED_DENIALS..=3 + 3 * (MAX_LISTED_DENIALS + 1)).contains(&steps),
            "{steps} steps"
        );
        // The same ask twice in a row (as two subjects of one name would give) is one denial.
        let mut e = Decision::default();
        for _ in 0..MAX_LISTED_DENIALS + 1 {
            e.deny(format!("d{}", e.denials.len()), DenialReason::request("r"));
        }
        let ask = Ask::Capability(Capability::normalize("X1").expect("capability"));
        assert!(e.omit_ungranted("d", &ask) && e.omit_ungranted("d", &ask));
        assert!(e.omit_ungranted("e", &ask));
        assert_eq!(e.omitted, 3);
    }

    /// Each container of a debug copy is a subject, and a validation that reads `object` reads
    /// it for each. The Pod is handed to cel (which converts it whole) for the first subject
    /// only; the later ones read it bound in the judge's shared scope, and still see all of it.
    #[test]
    fn the_pod_is_converted_for_the_first_subject_only() {
        let policies = PolicySet::from_yaml(
            "t.yaml",
            r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: copies}
spec:
  match: {actions: [copy]}
  grant: {images: ["busybox*"], runAsRoot: true}
  validations:
    - expression: "object.spec.containers.exists(c, c.name == container.name)"
    - expression: "size(object.spec.containers) == 4 && container.name != 'c3'"
      message: not c3
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let containers: Vec<_> = (0..4)
            .map(|i| serde_json::json!({"name": format!("c{i}"), "image": "busybox:1.36"}))
            .collect();
        let review = ParsedReview::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "p", "namespace": "ns", "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": {
                    "metadata": {"name": "p", "labels": {"kspy.dev/debug": "copy"}},
                    "spec": {"containers": containers}
                }
            }
        }))
        .unwrap();
        let request = classify(&review, &NoClassifier).unwrap().unwrap();
        assert_eq!(request.subjects.len(), 4);
        let env = CelEnv::new();
        let vars = request_variables(&review, None);
        let judge = Judge::new(&env, &policies, &review, &request, None, &vars);
        let d = decide(&judge, &Settings::default(), None);
        // Every subject evaluated both validations against the whole Pod: only c3, the last,
        // fails one, and nothing failed to evaluate.
        let denied: Vec<_> = d
            .reasons
            .iter()
            .map(|r| (r.container.as_deref(), r.reason.as_str()))
            .collect();
        assert_eq!(denied, [(Some("c3"), "not c3")], "{:?}", d.denials);
        // Bound once in the shared scope; the resolver answers for it no more.
        assert!(vars.resolve("object").is_none());
        assert!(judge.objects.borrow().get_variable("object").is_some());
    }
}
