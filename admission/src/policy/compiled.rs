//! Policies in the form the engine evaluates: globs compiled, paths normalized, CEL compiled.

use std::collections::BTreeMap;

use crate::asks::{VolumeAsk, VolumeKind};
use crate::capability::Capability;
use crate::cel::{Expression, Projection, Scope, VarSet, VariableTypes};
use crate::classify::Action;
use crate::glob::{ImagePattern, NamePattern};
use crate::hostpath::HostPath;
use crate::image::ImageRef;

use super::spec::{
    DefaultsSpec, HostNamespace, HostPathGrantSpec, LabelOperator, LabelSelectorSpec, Mode,
    PolicyDocument, VolumeGrant,
};

/// Where a policy came from, for every message that points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file it was read from.
    pub file: String,
    /// Its 1-based document number in the file.
    pub document: usize,
}

/// A loaded, compiled policy.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// `metadata.name`
    pub name: String,
    /// `spec.description`
    pub description: Option<String>,
    /// Enforce, Warn or Audit.
    pub mode: Mode,
    /// Where it was defined.
    pub origin: Origin,
    /// The static match.
    pub matcher: Match,
    /// `spec.variables`, compiled, in order.
    pub variables: Vec<(String, Expression)>,
    /// `spec.conditions`, compiled.
    pub conditions: Vec<(String, Expression)>,
    /// What it grants.
    pub grant: Grant,
    /// `spec.validations`, compiled.
    pub validations: Vec<Validation>,
    /// `spec.defaults`.
    pub defaults: DefaultsSpec,
    /// The CEL variables its `variables` and `conditions` name.
    pub condition_reads: VarSet,
    /// The CEL variables its `validations` name.
    pub validation_reads: VarSet,
    /// The top-level fields of each variable its expressions read.
    pub projection: Projection,
    /// What compiled but is likely a mistake, by field (see [`Expression::warnings`]).
    pub warnings: Vec<FieldError>,
}

impl CompiledPolicy {
    /// True when the policy has CEL to evaluate before it can be said to apply.
    pub fn has_cel(&self) -> bool {
        !self.variables.is_empty() || !self.conditions.is_empty() || !self.validations.is_empty()
    }
}

/// One compiled validation rule.
#[derive(Debug)]
pub struct Validation {
    /// The rule.
    pub expression: Expression,
    /// The fixed message, if any.
    pub message: Option<String>,
    /// The message expression, if any.
    pub message_expression: Option<Expression>,
}

/// Who and where a policy applies to, before CEL conditions.
#[derive(Debug, Default)]
pub struct Match {
    /// Empty = every action.
    pub actions: Vec<Action>,
    /// Empty = every namespace.
    pub namespaces: Vec<NamePattern>,
    /// Namespaces never matched.
    pub exclude_namespaces: Vec<NamePattern>,
    /// Namespace label selector.
    pub namespace_selector: Option<LabelSelectorSpec>,
    /// Empty = any group. `*` crosses `/` here ([`NamePattern::identity`]).
    pub groups: Vec<NamePattern>,
    /// Empty = any user. `*` crosses `/` here ([`NamePattern::identity`]).
    pub users: Vec<NamePattern>,
    /// Empty = any identity; else `NAMESPACE/NAME` globs of service accounts.
    pub service_accounts: Vec<NamePattern>,
    /// The policy's CEL (variables, conditions, validations) reads `namespaceObject`: it
    /// selects namespaces by their labels as a `namespace_selector` does, so with the
    /// Namespace unknown (`namespaceObject` null, and `has()` over it false) whether it
    /// applies, and what its validations say, cannot be told.
    pub reads_namespace_object: bool,
}

/// The identity and place of a request, as the static match sees it.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// attach, copy or node.
    pub action: Action,
    /// The request namespace.
    pub namespace: &'a str,
    /// The namespace's labels (empty for a Namespace without labels), or `None` when the
    /// Namespace object is unknown.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// `userInfo.username`
    pub user: &'a str,
    /// `userInfo.groups`
    pub groups: &'a [String],
}

/// Whether a policy's static match holds for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Every non-empty field holds.
    Holds,
    /// Some field does not hold.
    Fails,
    /// Every other field holds, but the policy selects namespaces by label and the Namespace
    /// object is unknown (its lookup failed or is switched off), so no one can tell.
    NamespaceUnknown,
}

impl Match {
    /// True when every non-empty field holds. A namespace selector never holds for an unknown
    /// Namespace; [`Match::outcome`] tells that case apart.
    pub fn matches(&self, input: &MatchInput<'_>) -> bool {
        self.outcome(input) == MatchOutcome::Holds
    }

    /// Whether the static match holds, fails, or cannot be told for want of the Namespace.
    pub fn outcome(&self, input: &MatchInput<'_>) -> MatchOutcome {
        let any = |patterns: &[NamePattern], value: &str| patterns.iter().any(|p| p.matches(value));
        let others_hold = (self.actions.is_empty() || self.actions.contains(&input.action))
            && (self.namespaces.is_empty() || any(&self.namespaces, input.namespace))
            && !any(&self.exclude_namespaces, input.namespace)
            && (self.groups.is_empty() || input.groups.iter().any(|g| any(&self.groups, g)))
            && (self.users.is_empty() || any(&self.users, input.user))
            && (self.service_accounts.is_empty()
                || service_account_of(input.user)
                    .is_some_and(|sa| any(&self.service_accounts, &sa)));
        if !others_hold {
            return MatchOutcome::Fails;
        }
        match (&self.namespace_selector, input.namespace_labels) {
            (None, None) if self.reads_namespace_object => MatchOutcome::NamespaceUnknown,
            (None, _) => MatchOutcome::Holds,
            (Some(_), None) => MatchOutcome::NamespaceUnknown,
            (Some(selector), Some(labels)) if selector_matches(selector, labels) => {
                MatchOutcome::Holds
            }
            (Some(_), Some(_)) => MatchOutcome::Fails,
        }
    }

    /// "to groups [sre] in namespaces [prod-*]", for denials that point elsewhere.
    pub fn describe(&self) -> String {
        let list = |p: &[NamePattern]| {
            p.iter()
                .map(NamePattern::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut who = Vec::new();
        if !self.groups.is_empty() {
            who.push(format!("groups [{}]", list(&self.groups)));
        }
        if !self.users.is_empty() {
            who.push(format!("users [{}]", list(&self.users)));
        }
        if !self.service_accounts.is_empty() {
            who.push(format!(
                "service accounts [{}]",
                list(&self.service_accounts)
            ));
        }
        let mut text = if who.is_empty() {
            "to everyone".to_owned()
        } else {
            format!("to {}", who.join(" and "))
        };
        if !self.namespaces.is_empty() {
            text.push_str(&format!(" in namespaces [{}]", list(&self.namespaces)));
        }
        if !self.exclude_namespaces.is_empty() {
            text.push_str(&format!(
                " outside namespaces [{}]",
                list(&self.exclude_namespaces)
            ));
        }
        if let Some(selector) = &self.namespace_selector {
            text.push_str(&format!(" in namespaces labelled {selector}"));
        }
        if !self.actions.is_empty() {
            let actions: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
            text.push_str(&format!(" for [{}]", actions.join(", ")));
        }
        text
    }
}

/// The user-name prefix of service accounts.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// `system:serviceaccount:NS:NAME` → `NS/NAME`; `None` for any other user name, as the API
/// server's `SplitUsername` reads it: exactly two parts after the prefix, each a non-empty
/// lower-case DNS name. `system:serviceaccount:ci:x:y` (a user name a static token file or an
/// authenticating proxy may give) is not service account `x:y` of `ci`, nor is
/// `system:serviceaccount:ci:` one of `ci` without a name: `ci/*` must match neither.
fn service_account_of(user: &str) -> Option<String> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    let dns = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    };
    (dns(ns) && dns(name)).then(|| format!("{ns}/{name}"))
}

/// False when the user pattern `pattern` can match no service account's user name: its
/// literal start (up to the first glob character) departs from `system:serviceaccount:`.
fn may_match_service_account(pattern: &str) -> bool {
    let literal: String = pattern
        .chars()
        .take_while(|c| !matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\'))
        .collect();
    let whole = literal.len() == pattern.len();
    if whole {
        literal.starts_with(SERVICE_ACCOUNT_PREFIX)
    } else {
        literal.starts_with(SERVICE_ACCOUNT_PREFIX) || SERVICE_ACCOUNT_PREFIX.starts_with(&literal)
    }
}

/// The name part of a label key, and a label value: at most 63 characters, letters, digits,
/// `-`, `_` and `.`, starting and ending with a letter or digit (Kubernetes' `IsQualifiedName`
/// name part and `IsValidLabelValue`; a value may also be empty).
fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why `key` is no label key (`[PREFIX/]NAME`, the prefix a lower-case DNS subdomain), so
/// that a selector naming it never holds: no Namespace has such a label.
fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    (!prefix_ok || !is_label_name(name)).then(|| {
        format!(
            "{key:?} is not a label key ([PREFIX/]NAME: the name at most 63 characters, letters, \
             digits, '-', '_' and '.', starting and ending with a letter or digit; the prefix a \
             lower-case DNS subdomain), so no Namespace has it and the selector never holds"
        )
    })
}

/// Why `value` is no label value, so that a selector requirement naming it never holds (or,
/// with NotIn, always does). `match_label` is its key when it is a `matchLabels` value, for
/// the hint.
fn label_value_problem(value: &str, match_label: Option<&str>) -> Option<String> {
    if value.is_empty() || is_label_name(value) {
        return None;
    }
    let split: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let hint = match match_label {
        _ if split.len() < 2 || !split.iter().all(|v| is_label_name(v)) => String::new(),
        None => format!("; list one value per item: values: [{}]", split.join(", ")),
        Some(key) => format!(
            "; to match any of them, write matchExpressions: [{{key: {key}, operator: In, \
             values: [{}]}}]",
            split.join(", ")
        ),
    };
    Some(format!(
        "{value:?} is not a label value (at most 63 characters, letters, digits, '-', '_' and \
         '.', starting and ending with a letter or digit), so no Namespace has it and the \
         selector compares against a value no label holds{hint}"
    ))
}

/// Kubernetes label selector semantics.
pub fn selector_matches(selector: &LabelSelectorSpec, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator {
                LabelOperator::In => value.is_some_and(|v| r.values.contains(v)),
                LabelOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                LabelOperator::Exists => value.is_some(),
                LabelOperator::DoesNotExist => value.is_none(),
            }
        })
}

/// A host path grant, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPathGrant {
    /// The prefix.
    pub prefix: HostPath,
    /// Only read-only mounts.
    pub read_only: bool,
}

/// What a policy grants, compiled.
#[derive(Debug, Default)]
pub struct Grant {
    /// Image patterns.
    pub images: Vec<ImagePattern>,
    /// Capabilities.
    pub capabilities: Vec<Capability>,
    /// May run as root.
    pub run_as_root: bool,
    /// May be privileged.
    pub privileged: bool,
    /// Which pod volumes may be mounted.
    pub mount_volumes: VolumeGrant,
    /// Host namespaces.
    pub host_namespaces: Vec<HostNamespace>,
    /// Host path prefixes.
    pub host_paths: Vec<HostPathGrant>,
}

impl Grant {
    /// True when the policy grants nothing at all: a guardrail, not an allowance.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.capabilities.is_empty()
            && !self.run_as_root
            && !self.privileged
            && self.mount_volumes == VolumeGrant::None
            && self.host_namespaces.is_empty()
            && self.host_paths.is_empty()
    }

    /// True when some image pattern matches.
    pub fn covers_image(&self, image: &ImageRef) -> bool {
        self.images.iter().any(|p| p.matches(image))
    }

    /// True when the capability is listed, or `ALL` is. Asking for `ALL` is granted only by a
    /// grant that lists `ALL`.
    pub fn covers_capability(&self, cap: &Capability) -> bool {
        // A grant of ALL is every capability, one at a time too.
        self.capabilities.iter().any(|g| g == cap || g.is_all())
    }

    /// True when the volume mount is allowed by `mountVolumes` (hostPath mounts are judged by
    /// [`Grant::covers_host_path`]).
    pub fn covers_volume(&self, kind: VolumeKind) -> bool {
        match kind {
            VolumeKind::NonSecret => self.mount_volumes >= VolumeGrant::NonSecret,
            VolumeKind::Secret => self.mount_volumes >= VolumeGrant::All,
            VolumeKind::HostPath => false,
        }
    }

    /// True when a hostPath mount lies within a granted prefix, read-only if so required.
    pub fn covers_host_path(&self, ask: &VolumeAsk) -> bool {
        let Some(path) = &ask.host_path else {
            return false;
        };
        self.host_paths
            .iter()
            .any(|g| path.is_within(&g.prefix) && (ask.read_only || !g.read_only))
    }

    /// True when the host namespace is granted.
    pub fn covers_host_namespace(&self, ns: &str) -> bool {
        self.host_namespaces.iter().any(|h| h.as_str() == ns)
    }
}

/// A problem compiling one field of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.grant.images[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Where in the field's expression the problem is, when it is known exactly (a CEL
    /// syntax error): the loader places the error there in the file when it can.
    pub inside: Option<InExpression>,
}

/// A place inside an expression: the expression as the field holds it, and a 1-based line
/// and column, counted in characters, in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InExpression {
    /// The field's text, as decoded.
    pub source: String,
    /// The 1-based line in `source`.
    pub line: usize,
    /// The 1-based column in that line, in characters.
    pub column: usize,
}

impl CompiledPolicy {
    /// Compiles a decoded document, collecting every field error rather than stopping at one.
    pub fn compile(doc: PolicyDocument, origin: Origin) -> Result<CompiledPolicy, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: String, message: String| {
            errors.push(FieldError {
                field,
                message,
                inside: None,
            })
        };
        // The places inside their expressions of the CEL errors, by field (each expression
        // field is compiled once), set on the errors at the end.
        let inside: std::cell::RefCell<Vec<(String, InExpression)>> = Default::default();
        let spec = doc.spec;

        if let Err(m) = check_name(&doc.metadata.name) {
            fail("metadata.name".into(), m);
        } else if spec.mode == Mode::Audit && doc.metadata.name.len() > MAX_AUDIT_POLICY_NAME {
            // Its failures are recorded under the audit annotation `audit-NAME`, and the API
            // server drops a key whose name part is over 63 characters: the policy would
            // record nothing, in silence.
            fail(
                "metadata.name".into(),
                format!(
                    "an Audit policy's name is at most {MAX_AUDIT_POLICY_NAME} characters \
                     ({} here): its findings are recorded as the audit annotation \
                     \"audit-NAME\", whose name the API server limits to 63 characters and \
                     drops when longer; shorten the name",
                    doc.metadata.name.len()
                ),
            );
        }

        let names = |field: &str, patterns: &[String], fail: &mut dyn FnMut(String, String)| {
            // Users and groups have no segments: `/` in them is an ordinary character.
            let new = if matches!(field, "users" | "groups") {
                NamePattern::identity
            } else {
                NamePattern::new
            };
            patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match new(p) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        fail(format!("spec.match.{field}[{i}]"), e.to_string());
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let m = &spec.match_;
        let mut matcher = Match {
            actions: m.actions.clone(),
            namespaces: names("namespaces", &m.namespaces, &mut fail),
            exclude_namespaces: names("excludeNamespaces", &m.exclude_namespaces, &mut fail),
            namespace_selector: m.namespace_selector.clone(),
            groups: names("groups", &m.groups, &mut fail),
            users: names("users", &m.users, &mut fail),
            service_accounts: names("serviceAccounts", &m.service_accounts, &mut fail),
            reads_namespace_object: false,
        };
        // Namespace names are lower-case RFC 1123 labels; a pattern with any other character
        // (`Prod`, `prod_eu`) loads and never matches.
        for (field, patterns) in [
            ("namespaces", &m.namespaces),
            ("excludeNamespaces", &m.exclude_namespaces),
        ] {
            for (i, p) in patterns.iter().enumerate() {
                // Only the characters that stand for themselves: bracket expressions
                // (`[^x]`, `[[:digit:]]`) and escapes are glob syntax.
                if let Some(c) = crate::glob::literal_chars(p).find(|c| {
                    !(c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || *c == '-'
                        // Refused as a pattern already, with its own message.
                        || c.is_whitespace()
                        || c.is_control())
                }) {
                    fail(
                        format!("spec.match.{field}[{i}]"),
                        format!(
                            "{p:?} can never match: namespace names are lower-case RFC 1123 \
                             labels (letters a-z, digits, '-'), and {c:?} is none of those{} \
                             (globs such as prod-* are allowed)",
                            if p.to_ascii_lowercase() == *p {
                                String::new()
                            } else {
                                format!("; write {:?}", p.to_ascii_lowercase())
                            }
                        ),
                    );
                }
            }
        }
        if let Some(sel) = &m.namespace_selector {
            for (key, value) in &sel.match_labels {
                let field = format!("spec.match.namespaceSelector.matchLabels.{key}");
                if let Some(problem) = label_key_problem(key) {
                    fail(field, problem);
                } else if let Some(c) = value.chars().find(|c| "*?[]{}".contains(*c)) {
                    fail(
                        field,
                        format!(
                            "{value:?} can never match: matchLabels compares values exactly and \
                             label values cannot contain {c:?} (no globs here); list the values \
                             in matchExpressions with operator In, or use Exists"
                        ),
                    );
                } else if let Some(problem) = label_value_problem(value, Some(key)) {
                    fail(field, problem);
                }
            }
            for (i, r) in sel.match_expressions.iter().enumerate() {
                let at = format!("spec.match.namespaceSelector.matchExpressions[{i}]");
                if let Some(problem) = label_key_problem(&r.key) {
                    fail(format!("{at}.key"), problem);
                }
                for (j, value) in r.values.iter().enumerate() {
                    if let Some(problem) = label_value_problem(value, None) {
                        fail(format!("{at}.values[{j}]"), problem);
                    }
                }
            }
        }
        for (i, sa) in m.service_accounts.iter().enumerate() {
            if !sa.contains('/') {
                fail(
                    format!("spec.match.serviceAccounts[{i}]"),
                    format!("{sa:?} must be NAMESPACE/NAME (globs allowed)"),
                );
            } else if crate::glob::literal_chars(sa).any(|c| c.is_ascii_uppercase()) {
                // Namespaces and service-account names are lower-case DNS names: `Ops/Deployer`
                // loads and never matches.
                fail(
                    format!("spec.match.serviceAccounts[{i}]"),
                    format!(
                        "{sa:?} can never match: namespaces and service-account names are \
                         lower-case; write {:?}",
                        sa.to_ascii_lowercase()
                    ),
                );
            }
        }
        // Fields are AND: with both set, a request matches only from a service account whose
        // user name (system:serviceaccount:NS:NAME) a users pattern also matches. When none
        // can, the policy loads and never applies, where two policies were meant.
        if !m.users.is_empty()
            && !m.service_accounts.is_empty()
            && !m.users.iter().any(|u| may_match_service_account(u))
        {
            fail(
                "spec.match.users".into(),
                format!(
                    "the policy can never apply: match fields are AND, so it needs a user that \
                     is both one of users [{}] and one of serviceAccounts [{}], and a service \
                     account's user name is {SERVICE_ACCOUNT_PREFIX}NAMESPACE:NAME, which no \
                     users pattern here matches; to allow both, write one policy for the users \
                     and another for the service accounts",
                    m.users.join(", "),
                    m.service_accounts.join(", ")
                ),
            );
        }
        if let Some(sel) = &m.namespace_selector {
            for (i, r) in sel.match_expressions.iter().enumerate() {
                let needs_values = matches!(r.operator, LabelOperator::In | LabelOperator::NotIn);
                if needs_values == r.values.is_empty() {
                    fail(
                        format!("spec.match.namespaceSelector.matchExpressions[{i}].values"),
                        if needs_values {
                            "In and NotIn need at least one value".into()
                        } else {
                            "Exists and DoesNotExist take no values".into()
                        },
                    );
                }
            }
        }

        let variable_names: Vec<String> = spec.variables.iter().map(|v| v.name.clone()).collect();
        let warnings = std::cell::RefCell::new(Vec::new());
        // `expected`: the type the engine needs the result to be, when it needs one; a literal
        // of another type fails on every request, which denies it.
        // Under "    expression: ", a multi-line expression (a YAML block scalar) keeps its
        // lines together: each continuation is indented as far as the first line is, so the
        // report's own indentation does not cut it into lines of its own.
        let shown = |source: &str| source.trim_end().replace('\n', "\n                ");
        let compile = |field: String,
                       source: &str,
                       scope: Scope<'_>,
                       expected: Option<&str>,
                       fail: &mut dyn FnMut(String, String)| {
            // A `|` block scalar ends in a newline: a syntax error at its end would be placed on
            // a line after the last one shown.
            match Expression::compile_in(source.trim_end(), scope) {
                Ok(e) => match (expected, e.literal_type()) {
                    (Some(want), Some(got)) if want != got => {
                        let article = |t: &str| if t.starts_with(['a', 'i']) { "an" } else { "a" };
                        fail(
                            field,
                            format!(
                                "the expression is {} {got} literal, but {} {want} is needed: {}\
                                 \n    expression: {}",
                                article(got),
                                article(want),
                                if want == "bool" {
                                    "it would fail on every request, denying it; write a test \
                                     such as `container.image.startsWith('x')`"
                                } else {
                                    "it would fail on every request, and `message` (or the rule) be \
                                     used instead"
                                },
                                shown(source)
                            ),
                        );
                        None
                    }
                    _ => {
                        warnings
                            .borrow_mut()
                            .extend(e.warnings().iter().map(|w| FieldError {
                                field: field.clone(),
                                message: format!("{w}\n    expression: {}", shown(source)),
                                inside: None,
                            }));
                        Some(e)
                    }
                },
                Err(e) => {
                    if let Some((line, column)) = e.position() {
                        inside.borrow_mut().push((
                            field.clone(),
                            InExpression {
                                source: source.to_owned(),
                                line,
                                column,
                            },
                        ));
                    }
                    fail(field, format!("{e}\n    expression: {}", shown(source)));
                    None
                }
            }
        };
        let mut seen_vars: Vec<&str> = Vec::new();
        let mut variables = Vec::new();
        let mut variable_types = VariableTypes::default();
        for (i, v) in spec.variables.iter().enumerate() {
            if seen_vars.contains(&v.name.as_str()) {
                fail(
                    format!("spec.variables[{i}].name"),
                    format!("duplicate variable {:?}", v.name),
                );
            } else if !is_cel_identifier(&v.name) {
                // `variables.a.b` selects `b` of `a`: a variable named "a.b" (or "") could
                // never be read.
                fail(
                    format!("spec.variables[{i}].name"),
                    format!(
                        "{:?} is not a CEL identifier, so no expression could read it as \
                         variables.NAME: use letters, digits and '_', not starting with a digit",
                        v.name
                    ),
                );
            }
            seen_vars.push(&v.name);
            // Variables are evaluated in order, each seeing those above it.
            let scope = Scope {
                variables: Some(&variable_names[..i]),
                later: &variable_names[i..],
                variable_types: Some(&variable_types),
            };
            if let Some(e) = compile(
                format!("spec.variables[{i}].expression"),
                &v.expression,
                scope,
                None,
                &mut fail,
            ) {
                variable_types.push(&v.name, &e);
                variables.push((v.name.clone(), e));
            }
        }
        let all_variables = Scope {
            variables: Some(&variable_names),
            later: &[],
            variable_types: Some(&variable_types),
        };
        let mut conditions: Vec<(String, Expression)> = Vec::new();
        for (i, c) in spec.conditions.iter().enumerate() {
            // A condition is named in the error when it fails to evaluate: two of one name
            // (which ValidatingAdmissionPolicy refuses too) would leave the reader guessing.
            if let Some(first) = spec.conditions[..i].iter().position(|d| d.name == c.name) {
                fail(
                    format!("spec.conditions[{i}].name"),
                    format!(
                        "{:?} is already the name of spec.conditions[{first}]; give each \
                         condition its own",
                        c.name
                    ),
                );
            }
            if let Some(e) = compile(
                format!("spec.conditions[{i}].expression"),
                &c.expression,
                all_variables,
                Some("bool"),
                &mut fail,
            ) {
                conditions.push((c.name.clone(), e));
            }
        }
        let mut validations = Vec::new();
        for (i, v) in spec.validations.iter().enumerate() {
            let expression = compile(
                format!("spec.validations[{i}].expression"),
                &v.expression,
                all_variables,
                Some("bool"),
                &mut fail,
            );
            let message_expression = v.message_expression.as_deref().and_then(|m| {
                compile(
                    format!("spec.validations[{i}].messageExpression"),
                    m,
                    all_variables,
                    Some("string"),
                    &mut fail,
                )
            });
            // As ValidatingAdmissionPolicy reads `message`: empty is unset (the rule is shown),
            // blank or with a line break is refused. A denial is one line per reason, which
            // kspy and the API server's callers split on: a `|` block's line breaks (and its
            // trailing one) would end the reason early and start a line that looks like
            // another reason ("- container …").
            let message = match v.message.as_deref() {
                None | Some("") => None,
                Some(m) if m.contains(['\n', '\r']) => {
                    fail(
                        format!("spec.validations[{i}].message"),
                        "the message has a line break, and a denial gives each reason one \
                         line: write it on one line, or fold it with `message: >-`"
                            .to_owned(),
                    );
                    None
                }
                Some(m) if m.trim().is_empty() => {
                    fail(
                        format!("spec.validations[{i}].message"),
                        "the message is blank: say what the rule wants, or leave `message` out \
                         to show the rule"
                            .to_owned(),
                    );
                    None
                }
                Some(m) => Some(m.to_owned()),
            };
            if let Some(expression) = expression {
                validations.push(Validation {
                    expression,
                    message,
                    message_expression,
                });
            }
        }

        let g = &spec.grant;
        let mut grant = Grant {
            run_as_root: g.run_as_root,
            privileged: g.privileged,
            mount_volumes: g.mount_volumes,
            host_namespaces: g.host_namespaces.clone(),
            ..Grant::default()
        };
        for (i, p) in g.images.iter().enumerate() {
            match ImagePattern::new(p) {
                Ok(p) => grant.images.push(p),
                Err(e) => fail(format!("spec.grant.images[{i}]"), e.to_string()),
            }
        }
        for (i, c) in g.capabilities.iter().enumerate() {
            match Capability::parse_known(c) {
                Ok(c) => grant.capabilities.push(c),
                Err(e) => fail(format!("spec.grant.capabilities[{i}]"), e.to_string()),
            }
        }
        for (i, h) in g.host_paths.iter().enumerate() {
            let (path, read_only) = match h {
                HostPathGrantSpec::Path(p) => (p.as_str(), false),
                HostPathGrantSpec::Detailed(d) => (d.path.as_str(), d.read_only),
            };
            // A grant is written by hand: `/var/log/..` granting `/var` is a mistake to report,
            // not a path to normalize (requests are normalized; grants must already be).
            if path.split('/').any(|s| s == "..") {
                fail(
                    format!("spec.grant.hostPaths[{i}]"),
                    format!("{path:?} contains \"..\"; write the directory it means"),
                );
                continue;
            }
            // `--mount VOL:PATH:ro` and docker's `-v SRC:DST:ro` write the mode after the path;
            // here it would be part of the path, granting a directory no mount names, and
            // `/var/log:ro` would seem a read-only grant of /var/log.
            if let Some((dir, mode @ ("ro" | "rw"))) = path.rsplit_once(':')
                && dir.starts_with('/')
            {
                let fix = if mode == "ro" {
                    format!("{{path: {dir}, readOnly: true}}")
                } else {
                    dir.to_owned()
                };
                fail(
                    format!("spec.grant.hostPaths[{i}]"),
                    format!(
                        "{path:?} ends in \":{mode}\", which would be part of the path: a \
                         hostPaths entry takes no mode suffix; write `- {fix}`"
                    ),
                );
                continue;
            }
            match HostPath::parse(path) {
                Ok(prefix) => grant.host_paths.push(HostPathGrant { prefix, read_only }),
                Err(e) => fail(format!("spec.grant.hostPaths[{i}]"), e.to_string()),
            }
        }

        // Only Enforce policies grant and inject defaults (DESIGN.md, "Flow"); in a Warn or
        // Audit policy both would load and silently do nothing.
        if spec.mode != Mode::Enforce {
            let mode = match spec.mode {
                Mode::Audit => "an Audit",
                _ => "a Warn",
            };
            if !grant.is_empty() {
                fail(
                    "spec.grant".into(),
                    format!(
                        "{mode} policy grants nothing: grants and defaults act only in mode \
                         Enforce. To roll out a new grant, put it in an Enforce policy whose \
                         match names a pilot group or namespace and widen the match later, or \
                         preview it here as a validation that states it (e.g. \
                         `asks.capabilities.all(c, c in ['SYS_PTRACE'])`) and move it to an \
                         Enforce grant once the warnings are the ones you expect"
                    ),
                );
            }
            if !spec.defaults.is_empty() {
                fail(
                    "spec.defaults".into(),
                    format!(
                        "{mode} policy injects no defaults: grants and defaults act only in \
                         mode Enforce. Put the defaults in an Enforce policy (one without a \
                         grant is a guardrail and allows nothing by itself)"
                    ),
                );
            }
        }

        let d = &spec.defaults;
        if let Some(sc) = &d.security_context {
            for (field, message) in security_context_errors(sc) {
                fail(field, message);
            }
        }
        for (i, e) in d.env.iter().enumerate() {
            if !is_env_var_name(&e.name) {
                fail(
                    format!("spec.defaults.env[{i}].name"),
                    format!(
                        "{:?} is not a variable name every API server accepts: use letters, \
                         digits, '_', '-' and '.', not starting with a digit",
                        e.name
                    ),
                );
            } else if let Some(first) = d.env[..i].iter().position(|f| f.name == e.name) {
                // The first value of a name wins (README, "Defaults"): the second would be
                // dropped without a word, and `explain` would list both.
                fail(
                    format!("spec.defaults.env[{i}].name"),
                    format!(
                        "{:?} is already set by spec.defaults.env[{first}]; only the first value \
                         of a name is injected: keep one",
                        e.name
                    ),
                );
            }
        }

        if !errors.is_empty() {
            for (field, at) in inside.into_inner() {
                if let Some(e) = errors.iter_mut().find(|e| e.field == field) {
                    e.inside = Some(at);
                }
            }
            return Err(errors);
        }
        let condition_reads = variables
            .iter()
            .chain(&conditions)
            .fold(VarSet::default(), |set, (_, e)| set.union(e.reads()));
        let validation_reads = validations.iter().fold(VarSet::default(), |set, v| {
            let set = set.union(v.expression.reads());
            v.message_expression
                .as_ref()
                .map_or(set, |m| set.union(m.reads()))
        });
        matcher.reads_namespace_object = condition_reads
            .union(validation_reads)
            .contains("namespaceObject");
        let mut projection = Projection::default();
        for e in variables.iter().chain(&conditions).map(|(_, e)| e).chain(
            validations
                .iter()
                .flat_map(|v| std::iter::once(&v.expression).chain(v.message_expression.as_ref())),
        ) {
            projection.union(e.projection());
        }
        let mut warnings = warnings.into_inner();
        // A namespace named outright that an exclusion matches too: excludeNamespaces wins, so
        // the entry never matches (nor the policy, when every entry is so).
        for (i, ns) in m.namespaces.iter().enumerate() {
            if ns.contains(['*', '?', '[', '{', '\\']) {
                continue;
            }
            if let Some(x) = matcher.exclude_namespaces.iter().find(|x| x.matches(ns)) {
                warnings.push(FieldError {
                    field: format!("spec.match.namespaces[{i}]"),
                    message: format!(
                        "{ns:?} never matches: excludeNamespaces pattern {:?} excludes it, and \
                         an exclusion wins",
                        x.as_str()
                    ),
                    inside: None,
                });
            }
        }
        // A prefix is matched lexically; the kubelet follows symbolic links. Whoever may write
        // below a prefix can link `PREFIX/x` to `/`, and a later hostPath volume at `PREFIX/x`
        // (a copy or node pod may name any path), granted by the same entry, mounts the node's
        // root. `/` itself grants everything already.
        for (i, h) in grant.host_paths.iter().enumerate() {
            let path = h.prefix.to_string();
            if path == "/" {
                continue;
            }
            // Read-only too: pods write below the node's pod storage (their emptyDir volumes,
            // their containers' writable layers), so any pod of the user's can plant the link
            // there, and the entry then grants the node's / read-only.
            if h.read_only {
                if let Some(dir) = pod_written_dir(&h.prefix) {
                    warnings.push(FieldError {
                        field: format!("spec.grant.hostPaths[{i}]"),
                        message: format!(
                            "{path} is granted read-only, but a prefix does not confine a mount \
                             below {dir}, where pods write on the node (their emptyDir volumes, \
                             their containers' writable layers): any pod can make a symbolic \
                             link there to / (in an emptyDir, {dir}/pods/UID/volumes/\
                             kubernetes.io~empty-dir/NAME/x), and a hostPath volume at that \
                             path, which this entry grants, mounts what the link points to (the \
                             kubelet follows it), the node's / included; grant paths outside \
                             {dir} (/var/log, /etc), or / read-only to whom that is acceptable"
                        ),
                        inside: None,
                    });
                }
                continue;
            }
            warnings.push(FieldError {
                field: format!("spec.grant.hostPaths[{i}]"),
                message: format!(
                    "{path} is granted read-write, and a prefix does not confine a writable \
                     mount: a debug container that writes there can make a symbolic link below \
                     it ({path}/x -> /), and a hostPath volume at {path}/x, which this entry \
                     grants, mounts what the link points to (the kubelet follows it), the \
                     node's / included; grant it read-only (`- {{path: {path}, readOnly: \
                     true}}`) unless whoever has it may write anywhere on the node"
                ),
                inside: None,
            });
        }
        // The API server sets imagePullPolicy on every container while decoding the request,
        // before admission webhooks run: no debug container reaches kspy without one, so the
        // default loads (files written for it keep loading) and never applies in a cluster.
        if let Some(pull) = spec.defaults.image_pull_policy {
            let pull = pull.as_str();
            warnings.push(FieldError {
                field: "spec.defaults.imagePullPolicy".into(),
                message: format!(
                    "{pull} never applies in a cluster: the API server sets imagePullPolicy on \
                     every container while decoding the request (Always for an image tagged \
                     :latest or untagged, IfNotPresent otherwise), before admission webhooks \
                     run, so no debug container reaches kspy without one; set it where the \
                     debug container is made (`kspy attach --image-pull-policy {pull}`, \
                     `kubectl debug --image-pull-policy {pull}`, or imagePullPolicy in the \
                     container's spec) and remove this default"
                ),
                inside: None,
            });
        }
        if grant.is_empty() && validations.is_empty() && spec.defaults.is_empty() {
            warnings.push(FieldError {
                field: "spec".into(),
                message: "the policy has no effect: it grants nothing, has no validations and \
                          sets no defaults"
                    .into(),
                inside: None,
            });
        }
        Ok(CompiledPolicy {
            name: doc.metadata.name,
            description: spec.description.clone(),
            mode: spec.mode,
            origin,
            matcher,
            variables,
            conditions,
            grant,
            validations,
            condition_reads,
            validation_reads,
            projection,
            defaults: spec.defaults,
            warnings,
        })
    }
}

/// The node directories pods write below with the usual kubelet and runtime settings: the
/// kubelet's (emptyDir volumes), the runtimes' (containers' writable layers and root file
/// systems) and their state under `/run` (`/var/run` links to it).
const POD_WRITTEN_DIRS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/var/lib/docker",
    "/run/containerd",
    "/run/containers",
    "/var/run/containerd",
    "/var/run/containers",
];

/// The first of [`POD_WRITTEN_DIRS`] that `prefix` holds or lies within: a grant of it reaches
/// paths where a pod can make symbolic links.
fn pod_written_dir(prefix: &HostPath) -> Option<&'static str> {
    POD_WRITTEN_DIRS.iter().copied().find(|dir| {
        HostPath::parse(dir).is_ok_and(|dir| prefix.is_within(&dir) || dir.is_within(prefix))
    })
}

/// What is wrong with a `defaults.securityContext`, by field: not a mapping, a value of the
/// wrong type, or a field a container securityContext does not have (`runAsUsr`), which would
/// otherwise be patched into every debug container as written and ignored or refused there.
fn security_context_errors(sc: &serde_json::Value) -> Vec<(String, String)> {
    use k8s_openapi::api::core::v1::SecurityContext;
    const FIELD: &str = "spec.defaults.securityContext";
    if !sc.is_object() {
        return vec![(FIELD.into(), "must be a mapping".into())];
    }
    let typed: SecurityContext = match serde_path_to_error::deserialize(sc) {
        Ok(typed) => typed,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                FIELD.to_owned()
            } else {
                format!("{FIELD}.{path}")
            };
            return vec![(
                field,
                format!("not a container securityContext: {}", e.into_inner()),
            )];
        }
    };
    // k8s-openapi reads past unknown fields; what it knows is what it writes back.
    let known = serde_json::to_value(&typed).unwrap_or_default();
    let mut errors = Vec::new();
    unknown_fields(sc, &known, FIELD, &mut errors);
    let profiles = [
        (
            "seccompProfile",
            typed
                .seccomp_profile
                .map(|p| (p.type_, p.localhost_profile)),
        ),
        (
            "appArmorProfile",
            typed
                .app_armor_profile
                .map(|p| (p.type_, p.localhost_profile)),
        ),
    ];
    for (name, profile) in profiles {
        if let Some((kind, localhost)) = profile
            && let Some(problem) = profile_problem(&kind, localhost.as_deref())
        {
            errors.push((format!("{FIELD}.{name}"), problem));
        }
    }
    errors
}

/// What the API server would refuse in a seccomp or AppArmor profile: a `type` outside the
/// three it knows, or `localhostProfile` missing with `Localhost` or present with another
/// `type`. A default is patched into every matching request, so each would be Invalid.
fn profile_problem(kind: &str, localhost: Option<&str>) -> Option<String> {
    const KINDS: [&str; 3] = ["RuntimeDefault", "Localhost", "Unconfined"];
    if !KINDS.contains(&kind) {
        let close = crate::cel_check::closest(kind, KINDS.iter().copied())
            .map(|k| format!(" (did you mean {k:?}?)"))
            .unwrap_or_default();
        return Some(format!(
            "type {kind:?} is not a profile type{close}: use RuntimeDefault, Localhost or Unconfined"
        ));
    }
    match (
        kind == "Localhost",
        localhost.is_some_and(|p| !p.is_empty()),
    ) {
        (true, false) => Some(
            "type Localhost needs localhostProfile, the profile's path on the node (relative to \
             the kubelet's profile directory)"
                .into(),
        ),
        (false, true) => Some(format!(
            "localhostProfile is only allowed with type Localhost, not {kind}: remove it or set \
             type: Localhost"
        )),
        _ => None,
    }
}

/// The fields of a container securityContext, for "did you mean".
const SECURITY_CONTEXT_FIELDS: &[&str] = &[
    "allowPrivilegeEscalation",
    "appArmorProfile",
    "capabilities",
    "privileged",
    "procMount",
    "readOnlyRootFilesystem",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "seLinuxOptions",
    "seccompProfile",
    "windowsOptions",
];

/// Every field of `given` that `known` (its typed round trip) lacks.
fn unknown_fields(
    given: &serde_json::Value,
    known: &serde_json::Value,
    at: &str,
    errors: &mut Vec<(String, String)>,
) {
    let (Some(given), Some(known)) = (given.as_object(), known.as_object()) else {
        return;
    };
    for (name, value) in given {
        let field = format!("{at}.{name}");
        match known.get(name) {
            Some(k) => unknown_fields(value, k, &field, errors),
            None if value.is_null() => {
                errors.push((field, "null is no default: leave the field out".into()))
            }
            None => {
                let close = if at == "spec.defaults.securityContext" {
                    crate::cel_check::closest(name, SECURITY_CONTEXT_FIELDS.iter().copied())
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                errors.push((
                    field,
                    format!(
                        "unknown field {name:?}{close}: a container securityContext has no such \
                         field (see `kubectl explain pod.spec.containers.securityContext`)"
                    ),
                ))
            }
        }
    }
}

/// True for a CEL identifier: `[_a-zA-Z][_a-zA-Z0-9]*`.
fn is_cel_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The longest name of an Audit policy: `audit-` and the name make an audit annotation key,
/// whose name part Kubernetes limits to 63 characters.
pub const MAX_AUDIT_POLICY_NAME: usize = 63 - "audit-".len();

/// Policy names are DNS subdomain-like, as Kubernetes object names.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// Kubernetes' strict `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`. A default lands in every
/// matching request, and API servers before the relaxed rule (RelaxedEnvironmentVariableValidation)
/// refuse anything else, so one odd name would make every such request Invalid.
fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b"-._".contains(&b))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests {
    /// The suggestion list names exactly k8s-openapi's fields: the struct literal stops
    /// compiling when a field is added or removed, and the serialization gives their names.
    #[test]
    fn security_context_fields_match_k8s_openapi() {
        use k8s_openapi::api::core::v1::SecurityContext;
        let every = SecurityContext {
            allow_privilege_escalation: Some(false),
            app_armor_profile: Some(Default::default()),
            capabilities: Some(Default::default()),
            privileged: Some(false),
            proc_mount: Some(String::new()),
            read_only_root_filesystem: Some(false),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            se_linux_options: Some(Default::default()),
            seccomp_profile: Some(Default::default()),
            windows_options: Some(Default::default()),
        };
        let value = serde_json::to_value(every).unwrap();
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        names.sort();
        let mut listed = super::SECURITY_CONTEXT_FIELDS.to_vec();
        listed.sort();
        assert_eq!(names, listed);
    }
}
