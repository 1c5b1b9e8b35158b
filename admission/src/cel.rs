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
//! objects against k8s-openapi's types (`cel_fields`). Those checks, the length and depth
//! limits and the errors they give ([`CelError`]) are in `cel_check`; this module holds the
//! compiled [`Expression`], what it reads ([`Projection`]) and the context it is evaluated in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program, Value};

use crate::cel_check::{
    MAX_BRACKET_DEPTH, brackets_nest_deeper_than, check_names, closest, exceeds_depth,
    qualified_name, unknown_sent_field,
};
// The load-time checks live in `cel_check.rs`; re-exported so the `cel::` paths keep working.
pub use crate::cel_check::{
    CelError, FUNCTION_NAMES, MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH, is_registered,
};

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

/// The root context every expression is evaluated in: the standard library and Kubernetes'.
pub(crate) fn root_context() -> Context<'static> {
    let mut ctx = Context::default().with_all();
    crate::cel_library::register(&mut ctx);
    ctx
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
