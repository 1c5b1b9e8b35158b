//! The CEL environment policies are written in.
//!
//! Engine choice: `kube-cel` 0.8 on `cel` 0.13 (imported only as `kube_cel::cel`, so the tree has
//! one cel). It registers every Kubernetes CEL library a ValidatingAdmissionPolicy author
//! expects — strings, lists, sets, regex, urls, ip/cidr, semver, quantity, format, math,
//! encoders — and ships the static cost estimator used here to refuse expressions over the
//! Kubernetes per-expression budget at load. `cel` 0.15 alone has optional syntax (`a.?b`) but
//! none of Kubernetes' quantity/ip/url/semver/sets libraries and no cost estimator; kspy's
//! policies are meant to read like ValidatingAdmissionPolicies, so the libraries win. Optional
//! field access is written `has(a.b) ? a.b : x` instead.
//!
//! Every expression is compiled once at load; identifiers, function names and a policy's
//! `variables.NAME` are checked then, so a typo such as `contianer.image`,
//! `container.image.startswith('x')` or `variables.reasn` is a load error, not a denial at
//! 3 a.m. Function names are checked against the runtime itself ([`is_registered`]), so the
//! check cannot drift from what evaluation resolves; the fields selected from the Kubernetes
//! objects against k8s-openapi's types (`cel_fields`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program, Value};

/// The Kubernetes per-expression cost budget (`PerCallLimit`) applied at load.
pub const COST_BUDGET: u64 = 1_000_000;

/// The variables an expression may use.
pub const VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "container",
    "target",
    "asks",
    "variables",
];

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    /// A syntax error.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line in the expression.
        line: isize,
        /// 1-based column in the expression.
        column: isize,
        /// The parser's message.
        message: String,
    },
    /// An identifier that is neither a variable nor bound by a macro.
    #[error(
        "undeclared reference to {name:?}{}; the variables are {}",
        Hint(suggestion),
        VARIABLES.join(", ")
    )]
    UnknownVariable {
        /// The identifier.
        name: String,
        /// A variable of a close name.
        suggestion: Option<String>,
    },
    /// A field of `request` or `asks`, whose fields kspy defines, that neither has: reading it
    /// would fail on every request, denying it.
    #[error(
        "{var} has no field {field:?}{}; reading it would fail on every request, denying it \
         (the fields of {var} are {})",
        Hint(suggestion),
        fields.join(", ")
    )]
    UnknownField {
        /// `request` or `asks`.
        var: &'static str,
        /// The field selected.
        field: String,
        /// A field of a close name.
        suggestion: Option<String>,
        /// The fields it has.
        fields: &'static [&'static str],
    },
    /// A field of `container`, `target` or `namespaceObject` (directly or through a policy
    /// variable holding part of one) that their Kubernetes type lacks: kspy builds those
    /// values from the types, so the field is never there.
    #[error(
        "{path} has no field {field:?}{}; kspy builds {} from Kubernetes {}'s types, so \
         reading it would fail on every request, denying it, and has() of it would always be \
         false",
        Hint(suggestion),
        root,
        crate::kube_shape::KUBERNETES_VERSION
    )]
    UnknownKubernetesField {
        /// The value selected from, from its variable: `container.securityContext`, or
        /// `variables.sc` for a policy variable holding it.
        path: String,
        /// The variable the value comes from (`container`).
        root: &'static str,
        /// The field selected.
        field: String,
        /// A field of the type with a close name.
        suggestion: Option<String>,
    },
    /// A call to a function or method the runtime does not register: it would fail at every
    /// evaluation, and a failed evaluation denies.
    #[error(
        "unknown function {name:?}{}; it would fail on every request, denying it (the functions \
         are listed in the README, \"CEL\")",
        Hint(suggestion)
    )]
    UnknownFunction {
        /// The function as called (`sizee`, `sets.contans`).
        name: String,
        /// A registered function of a close name.
        suggestion: Option<String>,
    },
    /// `variables.NAME` for a NAME that `spec.variables` does not declare before this
    /// expression: reading it fails at every evaluation.
    #[error("{}", undeclared_policy_variable(name, suggestion, *declared_later))]
    UnknownPolicyVariable {
        /// The variable name after `variables.`.
        name: String,
        /// A declared variable of a close name.
        suggestion: Option<String>,
        /// True when it is declared, but after the variable whose expression reads it.
        declared_later: bool,
    },
    /// Over the cost budget.
    #[error("{0}")]
    TooExpensive(String),
    /// Longer than [`MAX_EXPRESSION_LENGTH`].
    #[error(
        "the expression is {length} bytes long; at most {MAX_EXPRESSION_LENGTH} are accepted (as \
         for a ValidatingAdmissionPolicy): split it into `variables`"
    )]
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// Nested deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error(
        "the expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (long chains of \
         operators or fields count as nesting): split it into `variables`"
    )]
    TooDeep,
    /// The parser failed without an answer (it panicked, or its thread could not start).
    #[error("the CEL parser failed on this expression: {0}")]
    ParserFailed(String),
}

/// "; did you mean `x`?" when there is a suggestion.
struct Hint<'a>(&'a Option<String>);

impl std::fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean {s:?}?)"),
            None => Ok(()),
        }
    }
}

/// The warning for a field of what the API server sent (`object`, `oldObject`, the parts of
/// `request`) that its type lacks: the API server sends them as its own version has them, and
/// a newer one may have the field.
fn unknown_sent_field(f: &crate::cel_fields::UnknownKubeField) -> String {
    format!(
        "{} has no field {:?} in Kubernetes {}{}: reading it fails on every request that lacks \
         it, denying it, and has() of it is false; if your cluster is newer and sends this \
         field, ignore this warning",
        f.path,
        f.field,
        crate::kube_shape::KUBERNETES_VERSION,
        Hint(&f.suggestion)
    )
}

fn undeclared_policy_variable(name: &str, suggestion: &Option<String>, later: bool) -> String {
    if later {
        format!(
            "variables.{name} is not declared above this variable; a variable sees only the \
             ones above it in spec.variables (they are evaluated in order): move {name:?} above \
             the variables that read it"
        )
    } else {
        format!(
            "variables.{name} is not declared in spec.variables{}; reading it would fail on every \
             request, denying it",
            Hint(suggestion)
        )
    }
}

/// The most one policy's variables may hold together, in [`size_within`]'s measure: above
/// the largest object etcd stores (1.5 MiB), so variables naming a whole Pod fit. cel has no
/// runtime cost limit, and a few variables each doubling the one before (`v1 = v0 + v0`, …)
/// pass the static cost estimate yet would build gigabytes. This bounds what variables hold;
/// a single expression can still build large intermediate values from them (its length and
/// the static cost estimate are its only bounds).
pub const MAX_VARIABLE_BYTES: usize = 2 << 20;

/// The size of `value` when it is at most `limit`, else `None`: string and byte lengths, 8 per
/// other scalar, list item and map entry (keys by their length), counted without recursion
/// and only until the limit is passed.
pub fn size_within(value: &Value, limit: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(items) => {
                stack.extend(items.iter());
                8 * items.len()
            }
            Value::Map(m) => {
                let mut keys = 0usize;
                for (k, item) in m.map.iter() {
                    keys = keys.saturating_add(match k {
                        Key::String(s) => s.len(),
                        _ => 8,
                    });
                    stack.push(item);
                }
                keys.saturating_add(8 * m.map.len())
            }
            _ => 8,
        });
        if total > limit {
            return None;
        }
    }
    Some(total)
}

/// The longest expression accepted: what Kubernetes accepts in a ValidatingAdmissionPolicy.
pub const MAX_EXPRESSION_LENGTH: usize = 5 * 1024;

/// The deepest expression tree accepted. cel evaluates (and drops) a tree recursively, and
/// its parser's own nesting limit does not count chains such as `a + b + …` or `a.b.…`: a
/// few thousand levels overflow a thread's stack, which aborts the whole process. Real
/// policies nest a dozen levels.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// The most brackets (`(`, `[`, `{`) nested in an expression's text. The parser refuses 96
/// levels, and once it has refused, goes on through the rest of the text in time quadratic in
/// its length: 0.8 s in a release build, 4 s in a debug one, for 5 KiB of `[`, for each such
/// expression of a file. Counted on the text first, such an expression is refused at once;
/// what the parser accepts (at most 95 levels) is not refused by this count.
const MAX_BRACKET_DEPTH: usize = 95;

/// True when brackets nest more than `limit` levels deep in `source`, outside string and
/// bytes literals and comments. Scans the text once; a literal it misreads can only make it
/// count too few, which leaves the expression to the parser.
fn brackets_nest_deeper_than(source: &str, limit: usize) -> bool {
    let text = source.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'/' if text.get(i + 1) == Some(&b'/') => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'\'' | b'"') => {
                // A raw literal (`r'…'`, `br'…'`) has no escapes.
                let raw = i > 0 && matches!(text[i - 1], b'r' | b'R');
                let triple = text.get(i + 1) == Some(&quote) && text.get(i + 2) == Some(&quote);
                let width = if triple { 3 } else { 1 };
                i += width;
                while i < text.len() {
                    if text[i] == b'\\' && !raw {
                        i += 2;
                        continue;
                    }
                    if text[i] == quote && (!triple || text[i..].starts_with(&[quote; 3])) {
                        i += width - 1;
                        break;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// The stack an expression is parsed and checked on. The parser recurses per level of
/// nesting, heavily in debug builds, before any depth can be counted; its own thread keeps a
/// hostile policy file from overflowing the loader's (the stack is reserved, and only what
/// is used is committed).
const COMPILE_STACK_BYTES: usize = 256 << 20;

/// A set of the [`VARIABLES`] (a bit each, in that order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VarSet(u8);

impl VarSet {
    /// The set holding `name`, or the empty set for a name that is not a variable.
    pub fn of(name: &str) -> VarSet {
        VarSet(
            VARIABLES
                .iter()
                .position(|v| *v == name)
                .map_or(0, |i| 1 << i),
        )
    }

    /// True when `name` is in the set.
    pub fn contains(self, name: &str) -> bool {
        let bit = VarSet::of(name).0;
        bit != 0 && self.0 & bit == bit
    }

    /// The union.
    pub fn union(self, other: VarSet) -> VarSet {
        VarSet(self.0 | other.0)
    }
}

/// What the policy around an expression declares, for the checks that depend on it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The `spec.variables` the expression sees (for a variable's expression, those above
    /// it), or `None` where there is no policy to check `variables.NAME` against.
    pub variables: Option<&'a [String]>,
    /// The policy's variables declared after the expression's own (a variable reading one of
    /// these gets told to reorder them).
    pub later: &'a [String],
    /// The Kubernetes types of the variables' values where their expressions make them known,
    /// so a field read through `variables.NAME` is checked as one read directly is.
    pub variable_types: Option<&'a VariableTypes>,
}

/// The Kubernetes types of a policy's variables' values, as far as their expressions show
/// them: `sc: container.securityContext` holds a `SecurityContext`, so
/// `variables.sc.privilged` is the same misspelling as `container.securityContext.privilged`
/// and gets the same error (or warning, for the Pod as sent).
#[derive(Debug, Clone, Default)]
pub struct VariableTypes(Vec<(String, Option<crate::cel_fields::Typed>)>);

impl VariableTypes {
    /// Records that the variable `name` holds the value of `expression`.
    pub fn push(&mut self, name: &str, expression: &Expression) {
        self.0
            .push((name.to_owned(), expression.value_type.clone()));
    }
}

/// A compiled, checked expression.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: Program,
    reads: VarSet,
    projection: Projection,
    warnings: Vec<String>,
    /// The Kubernetes type of its value, when a selection of a known object makes it known.
    value_type: Option<crate::cel_fields::Typed>,
}

impl Expression {
    /// Parses, checks length, depth, identifiers and functions, and estimates cost, without
    /// a policy's `variables` to check. Never panics and never overflows the caller's stack,
    /// whatever `source` holds.
    pub fn compile(source: &str) -> Result<Self, CelError> {
        Self::compile_in(source, Scope::default())
    }

    /// [`Expression::compile`], also refusing `variables.NAME` for a NAME `scope` does not
    /// declare.
    pub fn compile_in(source: &str, scope: Scope<'_>) -> Result<Self, CelError> {
        if source.len() > MAX_EXPRESSION_LENGTH {
            return Err(CelError::TooLong {
                length: source.len(),
            });
        }
        if brackets_nest_deeper_than(source, MAX_BRACKET_DEPTH) {
            return Err(CelError::TooDeep);
        }
        std::thread::scope(|threads| {
            let parsing = std::thread::Builder::new()
                .name("kspy-cel-compile".into())
                .stack_size(COMPILE_STACK_BYTES)
                .spawn_scoped(threads, || Self::compile_here(source, scope))
                .map_err(|e| CelError::ParserFailed(format!("cannot start its thread: {e}")))?;
            parsing.join().unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "it panicked".into());
                Err(CelError::ParserFailed(what))
            })
        })
    }

    /// [`Expression::compile`] on the current thread.
    fn compile_here(source: &str, scope: Scope<'_>) -> Result<Self, CelError> {
        let program = Program::compile(source).map_err(|errors| {
            let first = errors.errors.first();
            // The parser's positions are 1-based already (ANTLR's lines, its columns plus one).
            CelError::Syntax {
                line: first.map_or(1, |e| e.pos.0.max(1)),
                column: first.map_or(1, |e| e.pos.1.max(1)),
                message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
            }
        })?;
        if exceeds_depth(program.expression(), MAX_EXPRESSION_DEPTH) {
            return Err(CelError::TooDeep);
        }
        // Functions first: `sets.contans(…)` is a misspelt function, not a variable `sets`.
        check_names(program.expression(), &mut Vec::new(), scope)?;
        let mut projection = Projection::default();
        free_variables(program.expression(), &mut Vec::new(), &mut projection);
        if let Some(name) = projection
            .vars
            .keys()
            .find(|n| !VARIABLES.contains(&n.as_str()))
        {
            return Err(CelError::UnknownVariable {
                name: name.clone(),
                suggestion: closest(name, VARIABLES.iter().copied()),
            });
        }
        // The fields of `request` and `asks` are kspy's own: a misspelt one (`request.userinfo`,
        // `asks.privilged`) is known now, not at the first request it denies.
        for (var, fields) in [
            ("request", crate::review::REQUEST_FIELDS),
            ("asks", crate::asks::ASKS_FIELDS),
        ] {
            if let Some(Fields::Some(selected)) = projection.fields(var)
                && let Some(field) = selected.iter().find(|f| !fields.contains(&f.as_str()))
            {
                return Err(CelError::UnknownField {
                    var,
                    field: field.clone(),
                    suggestion: closest(field, fields.iter().copied()),
                    fields,
                });
            }
        }
        // The Kubernetes objects' fields: a misspelt one of a value kspy builds is an error;
        // of the Pod as sent, a warning (a newer cluster may send fields the types lack).
        let mut warnings = Vec::new();
        let fields = crate::cel_fields::check(
            program.expression(),
            scope.variable_types.map_or(&[], |types| &types.0),
        );
        for f in fields.unknown {
            if f.never_present {
                return Err(CelError::UnknownKubernetesField {
                    path: f.path,
                    root: f.root,
                    field: f.field,
                    suggestion: f.suggestion,
                });
            }
            warnings.push(unknown_sent_field(&f));
        }
        let schema = kube_cel::compile_schema(&serde_json::json!({"type": "object"}));
        if let Some(w) = kube_cel::estimate_rule_cost(source, &schema)
            .into_iter()
            .find(|w| w.kind == kube_cel::WarningKind::CostExceeded)
        {
            return Err(CelError::TooExpensive(format!(
                "{} (the Kubernetes per-expression budget is {COST_BUDGET}; nested loops over lists are the usual cause)",
                w.message.split(';').next().unwrap_or(&w.message)
            )));
        }
        let reads = projection
            .vars
            .keys()
            .fold(VarSet::default(), |set, name| set.union(VarSet::of(name)));
        Ok(Expression {
            source: source.to_owned(),
            program,
            reads,
            projection,
            warnings,
            value_type: fields.value,
        })
    }

    /// What compiles but is likely a mistake: fields of `object`, `oldObject` or `request`'s
    /// parts that their types, in the Kubernetes version kspy is built against, lack. One
    /// line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The type every evaluation yields when the expression is a literal of it (`'yes'`, `1`,
    /// `[…]`, `{…}`); `None` for anything computed.
    pub fn literal_type(&self) -> Option<&'static str> {
        Some(match &self.program.expression().expr {
            Expr::Literal(LiteralValue::Boolean(_)) => "bool",
            Expr::Literal(LiteralValue::String(_)) => "string",
            Expr::Literal(LiteralValue::Int(_)) => "int",
            Expr::Literal(LiteralValue::UInt(_)) => "uint",
            Expr::Literal(LiteralValue::Double(_)) => "double",
            Expr::Literal(LiteralValue::Bytes(_)) => "bytes",
            Expr::Literal(LiteralValue::Null) => "null",
            Expr::List(_) => "list",
            Expr::Map(_) => "map",
            _ => return None,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables it names (whether or not a given evaluation reaches them).
    pub fn reads(&self) -> VarSet {
        self.reads
    }

    /// Which top-level fields of each variable it reads.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Evaluates to a value. A panic in the CEL library is an evaluation error, which denies,
    /// never a judgement taken down: kube-cel 0.8's `format` panics on a precision past
    /// 65535 (`'%.99999f'.format([1.0])`), and `kspy policy test` and `eval` have no judging
    /// pool around them to catch it.
    pub fn eval(&self, ctx: &Context<'_>) -> Result<Value, String> {
        let run = std::panic::AssertUnwindSafe(|| self.program.execute(ctx));
        match std::panic::catch_unwind(run) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Err(format!(
                    "the CEL library failed on it ({what}); kspy denies rather than guess"
                ))
            }
        }
    }

    /// Evaluates to a boolean; any other result is an error.
    pub fn eval_bool(&self, ctx: &Context<'_>) -> Result<bool, String> {
        match self.eval(ctx)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("expected a bool, got {}", type_name(&other))),
        }
    }

    /// Evaluates to a string; any other result is an error.
    pub fn eval_string(&self, ctx: &Context<'_>) -> Result<String, String> {
        match self.eval(ctx)? {
            Value::String(s) => Ok(s.as_ref().clone()),
            other => Err(format!("expected a string, got {}", type_name(&other))),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        _ => "a non-primitive value",
    }
}

/// Whether the tree under `root` is deeper than `limit`, counted without recursion (the tree
/// may be far too deep to recurse over).
fn exceeds_depth<'e>(root: &'e IdedExpr, limit: usize) -> bool {
    let mut stack: Vec<(&'e IdedExpr, usize)> = vec![(root, 1)];
    while let Some((e, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        let mut push = |child: &'e IdedExpr| stack.push((child, depth + 1));
        match &e.expr {
            Expr::Call(call) => {
                call.target.iter().for_each(|t| push(t));
                call.args.iter().for_each(&mut push);
            }
            Expr::Select(s) => push(&s.operand),
            Expr::List(l) => l.elements.iter().for_each(&mut push),
            Expr::Map(m) => entry_children(&m.entries, &mut push),
            Expr::Struct(s) => entry_children(&s.entries, &mut push),
            Expr::Comprehension(c) => {
                for child in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    push(child);
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    false
}

/// Each expression of a map's or struct's entries (keys and values), in order.
pub(crate) fn entry_children<'e>(
    list: &'e [kube_cel::cel::common::ast::IdedEntryExpr],
    push: &mut impl FnMut(&'e IdedExpr),
) {
    for entry in list {
        match &entry.expr {
            EntryExpr::StructField(f) => push(&f.value),
            EntryExpr::MapEntry(m) => {
                push(&m.key);
                push(&m.value);
            }
        }
    }
}

/// Collects the identifiers not bound by an enclosing comprehension, each with the top-level
/// fields read through it (`request.userInfo` reads `userInfo`; a bare `request` reads all).
fn free_variables(e: &IdedExpr, bound: &mut Vec<String>, projection: &mut Projection) {
    let is_free = |name: &str, bound: &Vec<String>| {
        !name.starts_with('@') && !bound.iter().any(|b| b == name)
    };
    match &e.expr {
        Expr::Ident(name) => {
            if is_free(name, bound) {
                projection.read_all(name);
            }
        }
        Expr::Call(call) => {
            // `sets.contains(…)` names a function, not a variable `sets`: the runtime looks
            // the qualified name up first and then never evaluates the target.
            if let Some(t) = &call.target
                && !qualified_name(call).is_some_and(|q| is_registered(&q))
            {
                free_variables(t, bound, projection);
            }
            for a in &call.args {
                free_variables(a, bound, projection);
            }
        }
        Expr::Select(s) => match &s.operand.expr {
            Expr::Ident(name) if is_free(name, bound) => projection.read_field(name, &s.field),
            _ => free_variables(&s.operand, bound, projection),
        },
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|x| free_variables(x, bound, projection)),
        Expr::Map(m) => entries(&m.entries, bound, projection),
        Expr::Struct(s) => entries(&s.entries, bound, projection),
        Expr::Comprehension(c) => {
            free_variables(&c.iter_range, bound, projection);
            free_variables(&c.accu_init, bound, projection);
            let pushed = 2 + usize::from(c.iter_var2.is_some());
            bound.push(c.iter_var.clone());
            bound.push(c.accu_var.clone());
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2.clone());
            }
            free_variables(&c.loop_cond, bound, projection);
            free_variables(&c.loop_step, bound, projection);
            free_variables(&c.result, bound, projection);
            bound.truncate(bound.len() - pushed);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// `prefix.name` for a call written `prefix.name(…)` on a plain identifier, which the runtime
/// tries as one function name before it tries `name` as a method of `prefix`.
fn qualified_name(call: &kube_cel::cel::common::ast::CallExpr) -> Option<String> {
    match &call.target.as_deref()?.expr {
        Expr::Ident(prefix) => Some(format!("{prefix}.{}", call.func_name)),
        _ => None,
    }
}

/// Operators (`_+_`, `@in`, `!_`) are evaluated by the interpreter itself; only calls named
/// like identifiers are looked up among the registered functions.
fn is_function_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !(name.starts_with('_') && name.ends_with('_'))
}

/// Refuses what the runtime would fail on at every evaluation: calls to functions it does not
/// register, and `variables.NAME` for a NAME the policy does not declare before the
/// expression. Recursion is bounded: the depth was checked before.
fn check_names(e: &IdedExpr, bound: &mut Vec<String>, scope: Scope<'_>) -> Result<(), CelError> {
    match &e.expr {
        Expr::Call(call) => {
            // `variables['x']` reads `x` as `variables.x` does (`variables[?'x']` and `'x' in
            // variables` ask, as `has()` does, and are left alone).
            if call.func_name == INDEX_OPERATOR
                && let [operand, key] = call.args.as_slice()
                && let Expr::Literal(LiteralValue::String(field)) = &key.expr
            {
                undeclared_variable(&operand.expr, field.inner(), bound, scope)?;
            }
            let qualified = qualified_name(call);
            let as_qualified = qualified.as_deref().is_some_and(is_registered);
            if is_function_name(&call.func_name) && !as_qualified && !is_registered(&call.func_name)
            {
                // `sets.contans(…)` on a prefix that is no variable was meant as a function
                // of that library; `x.startswith(…)` as a method.
                let prefix_is_value = match call.target.as_deref().map(|t| &t.expr) {
                    Some(Expr::Ident(p)) => VARIABLES.contains(&p.as_str()) || bound.contains(p),
                    _ => true,
                };
                let name = match qualified {
                    Some(q) if !prefix_is_value => q,
                    _ => call.func_name.clone(),
                };
                return Err(CelError::UnknownFunction {
                    suggestion: closest(
                        &name,
                        FUNCTION_NAMES.iter().copied().filter(|f| is_registered(f)),
                    ),
                    name,
                });
            }
            if let Some(t) = &call.target
                && !as_qualified
            {
                check_names(t, bound, scope)?;
            }
            for a in &call.args {
                check_names(a, bound, scope)?;
            }
        }
        Expr::Select(s) => {
            // `has(variables.x)` asks whether there is one: false, not an error, when not.
            if !s.test {
                undeclared_variable(&s.operand.expr, &s.field, bound, scope)?;
            }
            check_names(&s.operand, bound, scope)?;
        }
        Expr::List(l) => {
            for x in &l.elements {
                check_names(x, bound, scope)?;
            }
        }
        Expr::Map(m) => check_entries(&m.entries, bound, scope)?,
        Expr::Struct(s) => check_entries(&s.entries, bound, scope)?,
        Expr::Comprehension(c) => {
            check_names(&c.iter_range, bound, scope)?;
            check_names(&c.accu_init, bound, scope)?;
            let pushed = 2 + usize::from(c.iter_var2.is_some());
            bound.push(c.iter_var.clone());
            bound.push(c.accu_var.clone());
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2.clone());
            }
            let result = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(|x| check_names(x, bound, scope));
            bound.truncate(bound.len() - pushed);
            result?;
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
    Ok(())
}

/// The CEL parser's name for indexing, `a[b]`.
const INDEX_OPERATOR: &str = "_[_]";

/// Refuses a read of `field` from `operand` when `operand` is the policy's `variables` (not a
/// comprehension variable of that name) and `scope` does not declare `field`.
fn undeclared_variable(
    operand: &Expr,
    field: &str,
    bound: &[String],
    scope: Scope<'_>,
) -> Result<(), CelError> {
    if let (Expr::Ident(name), Some(declared)) = (operand, scope.variables)
        && name == "variables"
        && !bound.contains(name)
        && !declared.iter().any(|d| d == field)
    {
        return Err(CelError::UnknownPolicyVariable {
            suggestion: closest(field, declared.iter().map(String::as_str)),
            declared_later: scope.later.iter().any(|l| l == field),
            name: field.to_owned(),
        });
    }
    Ok(())
}

fn check_entries(
    list: &[kube_cel::cel::common::ast::IdedEntryExpr],
    bound: &mut Vec<String>,
    scope: Scope<'_>,
) -> Result<(), CelError> {
    for entry in list {
        match &entry.expr {
            EntryExpr::StructField(f) => check_names(&f.value, bound, scope)?,
            EntryExpr::MapEntry(m) => {
                check_names(&m.key, bound, scope)?;
                check_names(&m.value, bound, scope)?;
            }
        }
    }
    Ok(())
}

/// The functions the libraries document, offered as "did you mean" for an unknown one. Only
/// suggestions come from this list (each is offered only when registered, which
/// `suggestions_are_registered_functions` checks): whether a call is accepted is asked of the
/// runtime itself, through [`is_registered`]. Public for the mutation tests, which call
/// each with edge arguments.
pub const FUNCTION_NAMES: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "bytes",
    "double",
    "int",
    "uint",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "max",
    "min",
    "optional.none",
    "optional.of",
    "optional.ofNonZeroValue",
    "value",
    "hasValue",
    "or",
    "orValue",
    "lowerAscii",
    "upperAscii",
    "split",
    "join",
    "replace",
    "trim",
    "indexOf",
    "lastIndexOf",
    "substring",
    "charAt",
    "reverse",
    "strings.quote",
    "format",
    "sum",
    "isSorted",
    "distinct",
    "flatten",
    "first",
    "last",
    "slice",
    "sort",
    "lists.range",
    "sets.contains",
    "sets.intersects",
    "sets.equivalent",
    "find",
    "findAll",
    "math.greatest",
    "math.least",
    "math.abs",
    "math.ceil",
    "math.floor",
    "math.round",
    "math.sign",
    "math.sqrt",
    "math.trunc",
    "math.isFinite",
    "math.isInf",
    "math.isNaN",
    "base64.encode",
    "base64.decode",
    "quantity",
    "isQuantity",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "asInteger",
    "asApproximateFloat",
    "isInteger",
    "add",
    "sub",
    "sign",
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "family",
    "isLoopback",
    "isUnspecified",
    "prefixLength",
    "masked",
    "url",
    "isURL",
    "getHost",
    "getHostname",
    "getPort",
    "getScheme",
    "getQuery",
    "getEscapedPath",
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
];

/// The root context every expression is evaluated in: the standard library and Kubernetes'.
fn root_context() -> Context<'static> {
    let mut ctx = Context::default().with_all();
    crate::cel_library::register(&mut ctx);
    ctx
}

/// An identifier no context declares, passed to probed functions: any function that reads an
/// argument fails on it, which tells "found, and failed on its argument" from "not found".
const PROBE_ARGUMENT: &str = "kspy_probe_argument_";

/// True when the runtime resolves a call to `name` (`size`, or `sets.contains` as written
/// `sets.contains(…)`). The runtime's function registry is not public, so it is asked the way
/// an evaluation asks it: the call is evaluated on the root context, with arguments that
/// cannot be resolved, and only "undeclared reference to the function" means absent. Answers
/// are kept, so each name is probed once per process.
pub fn is_registered(name: &str) -> bool {
    use std::sync::{LazyLock, Mutex};
    static ROOT: LazyLock<Context<'static>> = LazyLock::new(root_context);
    static KNOWN: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(Default::default);
    if !name.split('.').all(is_function_name) || name.split('.').count() > 2 {
        return false;
    }
    if let Some(known) = KNOWN.lock().ok().and_then(|k| k.get(name).copied()) {
        return known;
    }
    let (prefix, function) = match name.split_once('.') {
        Some((p, f)) => (Some(p), f),
        None => (None, name),
    };
    let found = Program::compile(&format!(
        "{name}({PROBE_ARGUMENT}, {PROBE_ARGUMENT}, {PROBE_ARGUMENT})"
    ))
    .is_ok_and(|program| {
        // A function that panics on odd arguments was still found.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ROOT))) {
            Ok(Err(kube_cel::cel::ExecutionError::UndeclaredReference(missing))) => {
                missing.as_str() != function && Some(missing.as_str()) != prefix
            }
            _ => true,
        }
    });
    if let Ok(mut known) = KNOWN.lock() {
        known.insert(name.to_owned(), found);
    }
    found
}

/// The candidate closest to `name`, ignoring case, when it is close enough to be a typo.
pub(crate) fn closest<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let limit = if name.len() <= 4 { 1 } else { 2 };
    candidates
        .filter(|c| *c != name)
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn entries(
    list: &[kube_cel::cel::common::ast::IdedEntryExpr],
    bound: &mut Vec<String>,
    projection: &mut Projection,
) {
    for entry in list {
        match &entry.expr {
            EntryExpr::StructField(f) => free_variables(&f.value, bound, projection),
            EntryExpr::MapEntry(m) => {
                free_variables(&m.key, bound, projection);
                free_variables(&m.value, bound, projection);
            }
        }
    }
}

/// The top-level fields of one variable that expressions read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// The variable is used whole (passed to a function, indexed, compared).
    All,
    /// Only these fields are selected from it.
    Some(BTreeSet<String>),
}

/// Which identifiers a set of expressions reads freely, and which top-level fields of each. A variable's value can
/// be bound with only those fields: cel converts a bound value whole, so binding the three
/// fields policies read instead of the twenty a request has is most of the cost of a review.
/// Selecting a field that is absent still behaves as on the whole value (`has()` false, an
/// error on access), because a field is either copied entirely or absent in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    vars: BTreeMap<String, Fields>,
}

impl Projection {
    fn read_all(&mut self, var: &str) {
        self.vars.insert(var.to_owned(), Fields::All);
    }

    fn read_field(&mut self, var: &str, field: &str) {
        match self
            .vars
            .entry(var.to_owned())
            .or_insert_with(|| Fields::Some(BTreeSet::new()))
        {
            Fields::All => {}
            Fields::Some(set) => {
                set.insert(field.to_owned());
            }
        }
    }

    /// What the expressions read of `var`; `None` when they never name it.
    pub fn fields(&self, var: &str) -> Option<&Fields> {
        self.vars.get(var)
    }

    /// Adds what `other` reads.
    pub fn union(&mut self, other: &Projection) {
        for (var, fields) in &other.vars {
            match fields {
                Fields::All => self.read_all(var),
                Fields::Some(set) => set.iter().for_each(|f| self.read_field(var, f)),
            }
        }
    }
}

/// `value` as CEL sees it through `fields`: for an object, only the fields read; otherwise (or
/// with no projection known) whole.
pub fn project_json(value: &serde_json::Value, fields: Option<&Fields>) -> Value {
    match (fields, value) {
        (Some(Fields::Some(names)), serde_json::Value::Object(map)) => map_of(
            names
                .iter()
                .filter_map(|n| map.get(n).map(|v| (n.clone(), json_to_cel(v)))),
        ),
        _ => json_to_cel(value),
    }
}

/// The root CEL context: every Kubernetes library registered once. Per-request variables live
/// in child scopes of it, so registering functions never happens on the request path.
/// Variables are bound through [`LazyVariables`], so a value is converted from JSON only when
/// an expression reads it.
pub struct CelEnv {
    root: Context<'static>,
}

impl std::fmt::Debug for CelEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CelEnv")
    }
}

impl Default for CelEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl CelEnv {
    /// Builds the root context with the standard and Kubernetes libraries.
    pub fn new() -> Self {
        CelEnv {
            root: root_context(),
        }
    }

    /// The root context; bind variables in `root().new_inner_scope()`.
    pub fn root(&self) -> &Context<'static> {
        &self.root
    }
}

/// Converts JSON to a CEL value. Integers become `int` whenever they fit: JSON has no unsigned
/// type, and `uint` would make `x + 1` a type error in every policy.
pub fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(fields) => {
            let map: HashMap<Key, Value> = fields
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// A CEL map from named values.
pub fn map_of(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k)), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

/// Computes a variable's value on first read.
type ValueSource<'a> = Box<dyn Fn() -> Value + Send + Sync + 'a>;

/// CEL variables converted from JSON on first read: a request whose policies never reach
/// `object` never pays for turning a whole Pod into CEL values. cel converts a resolved value
/// into its evaluation form on every read, so this suits large values read rarely; small ones
/// are cheaper bound once into a scope. [`LazyVariables::bind_read`] moves the ones read into
/// a scope, where later reads borrow the value converted once.
pub struct LazyVariables<'a> {
    sources: Vec<(&'static str, ValueSource<'a>)>,
    values: Vec<std::sync::OnceLock<Value>>,
    /// Set when the value has been bound into a scope: the resolver answers for it no more.
    bound: Vec<AtomicBool>,
}

impl<'a> LazyVariables<'a> {
    /// No variables.
    pub fn new() -> Self {
        LazyVariables {
            sources: Vec::new(),
            values: Vec::new(),
            bound: Vec::new(),
        }
    }

    /// Adds `name`, computed by `source` when first read.
    pub fn with(
        mut self,
        name: &'static str,
        source: impl Fn() -> Value + Send + Sync + 'a,
    ) -> Self {
        self.sources.push((name, Box::new(source)));
        self.values.push(std::sync::OnceLock::new());
        self.bound.push(AtomicBool::new(false));
        self
    }

    /// Binds into `scope` every variable read so far and not bound yet, converted by cel once
    /// there, and stops resolving it: reads in scopes below `scope` then borrow that value
    /// instead of converting it whole again. A read in a scope that is not below `scope` finds
    /// the variable undeclared, so bind into a scope every later evaluation descends from.
    pub fn bind_read(&self, scope: &mut Context<'_>) {
        for (((name, _), value), bound) in self.sources.iter().zip(&self.values).zip(&self.bound) {
            if let Some(value) = value.get()
                && !bound.swap(true, Ordering::Relaxed)
            {
                scope.add_variable_from_value(*name, value.clone());
            }
        }
    }
}

impl Default for LazyVariables<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl kube_cel::cel::context::VariableResolver for LazyVariables<'_> {
    fn resolve(&self, variable: &str) -> Option<Value> {
        let i = self.sources.iter().position(|(n, _)| *n == variable)?;
        if self.bound[i].load(Ordering::Relaxed) {
            return None;
        }
        Some(self.values[i].get_or_init(|| (self.sources[i].1)()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile expressions are refused with the reason, on the caller's small test-thread
    /// stack, instead of overflowing it (which aborts the process) or panicking.
    #[test]
    fn overlong_and_overdeep_expressions_are_refused_without_crashing() {
        let chain = |n: usize, op: &str| format!("{}1 > 0", format!("1{op}").repeat(n));
        assert!(matches!(
            Expression::compile(&chain(2999, "+")),
            Err(CelError::TooLong { length: 6003 })
        ));
        for deep in [
            chain(2000, "+"),
            format!("object{}", ".b".repeat(2000)),
            format!("{}1{}", "[".repeat(80), "]".repeat(80)),
        ] {
            assert_eq!(
                Expression::compile(&deep).err(),
                Some(CelError::TooDeep),
                "{deep:.40}"
            );
        }
        // Brackets nested past what the parser accepts are refused before it runs: it took
        // a second to refuse 5 KiB of them. Brackets in literals and comments do not count.
        for deep in [
            format!("{}1{} == []", "[".repeat(2500), "]".repeat(2500)),
            format!("{}1{} == 1", "-(".repeat(1500), ")".repeat(1500)),
            format!("{}true{}", "(".repeat(96), ")".repeat(96)),
        ] {
            assert_eq!(
                Expression::compile(&deep).err(),
                Some(CelError::TooDeep),
                "{deep:.40}"
            );
        }
        for quoted in [
            format!("'{}' != ''", "[".repeat(2000)),
            format!(r"r'\{}' != ''", "(".repeat(2000)),
            format!(r#"b"{}" != b''"#, "{".repeat(2000)),
            format!(r#""\"{}" != ''"#, "{".repeat(2000)),
            format!("'''{}''' != ''", "(".repeat(2000)),
            format!("true // {}", "(".repeat(2000)),
        ] {
            assert!(Expression::compile(&quoted).is_ok(), "{quoted:.40}");
        }
        // The parser's own failure on nested conditionals is an error, not a panic.
        let conditionals = format!("{}1", "true ? 1 : ".repeat(97));
        assert!(Expression::compile(&conditionals).is_err());
        // What real policies write still compiles: parentheses add no depth, and a chain
        // within the limit is fine.
        let parens = format!("{}true{}", "(".repeat(40), ")".repeat(40));
        assert!(Expression::compile(&parens).is_ok());
        assert!(Expression::compile(&format!("{}true", "true || ".repeat(30))).is_ok());
        // Logical chains are built balanced, so long ones stay shallow.
        assert!(Expression::compile(&format!("{}true", "true && ".repeat(500))).is_ok());
    }

    /// The "did you mean" list offers only what the runtime resolves, and the probe tells
    /// registered functions from others the way an evaluation does.
    #[test]
    fn suggestions_are_registered_functions() {
        let missing: Vec<&str> = FUNCTION_NAMES
            .iter()
            .copied()
            .filter(|f| !is_registered(f))
            .collect();
        assert!(missing.is_empty(), "not registered: {missing:?}");
        for absent in [
            "type",
            "dyn",
            "sizee",
            "sets.contans",
            "math.contains",
            "startswith",
        ] {
            assert!(!is_registered(absent), "{absent}");
        }
        // Each answer agrees with evaluating a call on the engine's own root context.
        let env = CelEnv::new();
        for (source, registered) in [("size('ab') == 2", true), ("sizee('ab') == 2", false)] {
            let program = Program::compile(source).unwrap();
            assert_eq!(program.execute(env.root()).is_ok(), registered, "{source}");
        }
        assert_eq!(
            closest("startswith", FUNCTION_NAMES.iter().copied()),
            Some("startsWith".into())
        );
        assert_eq!(
            closest("contianer", VARIABLES.iter().copied()),
            Some("container".into())
        );
        assert_eq!(closest("zzz", VARIABLES.iter().copied()), None);
    }

    /// Positions are 1-based and point at the offending token: `1 +` ends at column 4.
    #[test]
    fn syntax_error_positions_are_where_the_error_is() {
        for (source, line, column) in [("1 +", 1, 4), ("a.b(", 1, 5), ("true &&\n  )", 2, 3)] {
            match Expression::compile(source) {
                Err(CelError::Syntax {
                    line: l, column: c, ..
                }) => assert_eq!((l, c), (line, column), "{source:?}"),
                other => panic!("{source:?}: {other:?}"),
            }
        }
    }

    fn fields(source: &str, var: &str) -> Option<Fields> {
        Expression::compile(source)
            .unwrap()
            .projection()
            .fields(var)
            .cloned()
    }

    fn some(names: &[&str]) -> Option<Fields> {
        Some(Fields::Some(names.iter().map(|n| n.to_string()).collect()))
    }

    #[test]
    fn projection_follows_field_selection() {
        let e = "request.userInfo.username == 'a' && has(request.dryRun) \
                 && container.env.exists(e, e.name == 'X')";
        assert_eq!(fields(e, "request"), some(&["dryRun", "userInfo"]));
        assert_eq!(fields(e, "container"), some(&["env"]));
        assert_eq!(fields(e, "target"), None);
        // Used whole: passed to a function, indexed, compared.
        assert_eq!(fields("size(request) > 1", "request"), Some(Fields::All));
        assert_eq!(
            fields("request['userInfo'].username == 'a'", "request"),
            Some(Fields::All)
        );
        assert_eq!(
            fields("request.name == 'x' || request == {}", "request"),
            Some(Fields::All)
        );
        // A comprehension variable of the same name is not the variable.
        assert_eq!(fields("[1].exists(request, request == 1)", "request"), None);
        assert_eq!(
            fields("[1].exists(x, x == 1) && request.name == 'p'", "request"),
            some(&["name"])
        );
    }

    #[test]
    fn projections_add_up() {
        let mut p = Projection::default();
        p.union(
            Expression::compile("request.name == 'a'")
                .unwrap()
                .projection(),
        );
        p.union(
            Expression::compile("request.uid == 'b'")
                .unwrap()
                .projection(),
        );
        assert_eq!(p.fields("request"), some(&["name", "uid"]).as_ref());
        p.union(
            Expression::compile("size(request) > 0")
                .unwrap()
                .projection(),
        );
        assert_eq!(p.fields("request"), Some(&Fields::All));
        p.union(
            Expression::compile("request.kind == 'c'")
                .unwrap()
                .projection(),
        );
        assert_eq!(p.fields("request"), Some(&Fields::All));
    }

    /// Counts the values a resolver hands to cel, each of which cel converts whole.
    struct Counting<'a> {
        vars: &'a LazyVariables<'a>,
        handed: std::sync::atomic::AtomicUsize,
    }

    impl kube_cel::cel::context::VariableResolver for Counting<'_> {
        fn resolve(&self, variable: &str) -> Option<Value> {
            let value = self.vars.resolve(variable);
            if value.is_some() {
                self.handed.fetch_add(1, Ordering::Relaxed);
            }
            value
        }
    }

    /// What a judge does for each subject: a scope below a shared one, with the resolver, and
    /// `bind_read` into the shared scope between them. Only the first scope's reads are handed
    /// out; the later scopes read the value bound once, however many there are.
    #[test]
    fn a_variable_read_is_bound_once_for_later_scopes() {
        use kube_cel::cel::context::VariableResolver;
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let vars = LazyVariables::new()
            .with("object", move || json_to_cel(&pod))
            .with("oldObject", || Value::Null);
        let counting = Counting {
            vars: &vars,
            handed: Default::default(),
        };
        let e = Expression::compile("has(object.spec) && object.metadata.name == 'p'").unwrap();
        let env = CelEnv::new();
        let mut shared = env.root().new_inner_scope();
        for _ in 0..5 {
            {
                let mut scope = shared.new_inner_scope();
                scope.set_variable_resolver(&counting);
                assert_eq!(e.eval_bool(&scope), Ok(true));
            }
            vars.bind_read(&mut shared);
        }
        // The two reads of the first scope; 10 when every scope resolves it.
        assert_eq!(counting.handed.load(Ordering::Relaxed), 2);
        assert!(vars.resolve("object").is_none());
        // Never read, so neither computed nor bound: still resolved on demand.
        assert!(shared.get_variable("oldObject").is_none());
        assert_eq!(vars.resolve("oldObject"), Some(Value::Null));
    }

    #[test]
    fn project_json_keeps_only_the_fields_read() {
        let v = serde_json::json!({"a": 1, "b": {"c": 2}, "d": [3]});
        let only = project_json(&v, some(&["b", "missing"]).as_ref());
        assert_eq!(only, map_of([("b".to_string(), json_to_cel(&v["b"]))]));
        assert_eq!(project_json(&v, Some(&Fields::All)), json_to_cel(&v));
        assert_eq!(project_json(&v, None), json_to_cel(&v));
        let scalar = serde_json::json!(5);
        assert_eq!(project_json(&scalar, some(&["x"]).as_ref()), Value::Int(5));
    }
}
