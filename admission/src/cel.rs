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
//! limits and the errors they give ([`CelError`]) are in `cel_check`; the context an
//! expression is evaluated in and the per-request values bound into it ([`CelEnv`],
//! [`LazyVariables`]) in `cel_context`. This module holds the compiled [`Expression`] and
//! what it reads ([`Projection`]).

use std::collections::{BTreeMap, BTreeSet};

use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use kube_cel::cel::{Context, Program, Value};

use crate::cel_check::{
    MAX_BRACKET_DEPTH, brackets_nest_deeper_than, character_column, check_names,
    check_regex_literals, closest, exceeds_depth, qualified_name, syntax_position,
    unknown_sent_field,
};
// The load-time checks live in `cel_check.rs`; re-exported so the `cel::` paths keep working.
pub use crate::cel_check::{
    CelError, FUNCTION_NAMES, MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH, is_registered,
};
// The context expressions are evaluated in lives in `cel_context.rs`; re-exported so the
// `cel::` paths keep working.
pub use crate::cel_context::{
    CelEnv, LazyVariables, MAX_VARIABLE_BYTES, json_to_cel, map_of, project_json, size_within,
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
    /// The program's expression as evaluated (`cel_library::evaluated_form`): each
    /// comprehension step charged to the evaluation's budget, field selections strict.
    evaluated: kube_cel::cel::IdedExpr,
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
            // The parser's positions are 1-based already (ANTLR's lines, its columns plus one);
            // a macro's column counts bytes, made characters here.
            let column = first.map(|e| character_column(source, e.pos.0, e.pos.1, &e.msg));
            CelError::Syntax {
                line: first.map_or(1, |e| e.pos.0.max(1)),
                column: column.map_or(1, |c| c.max(1)),
                message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
                position: first
                    .zip(column)
                    .and_then(|(e, column)| syntax_position(source, e.pos.0, column, &e.msg)),
            }
        })?;
        if exceeds_depth(program.expression(), MAX_EXPRESSION_DEPTH) {
            return Err(CelError::TooDeep);
        }
        // Functions first: `sets.contans(…)` is a misspelt function, not a variable `sets`.
        check_names(program.expression(), &mut Vec::new(), scope)?;
        check_regex_literals(program.expression())?;
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
            evaluated: crate::cel_library::evaluated_form(program.expression()),
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
    /// never a judgement taken down: cel 0.13 panics negating the least int
    /// (`-(-9223372036854775808)`), and `kspy policy test` and `eval` have no judging pool
    /// around them to catch it ([`quiet_evaluation_panics`] keeps its text off stderr;
    /// kube-cel 0.8's `format`, which panicked on a precision past 65535, is given no such
    /// precision: `cel_library::MAX_FORMAT_PRECISION`). So is work past `cel_library::MAX_EVALUATION_COST` (ten
    /// million steps), whatever value the expression would have had.
    pub fn eval(&self, ctx: &Context<'_>) -> Result<Value, String> {
        let run = std::panic::AssertUnwindSafe(|| {
            crate::cel_library::run_metered(|| Value::resolve(&self.evaluated, ctx))
                .unwrap_or_else(|_| Err(crate::cel_library::over_budget_error()))
        });
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
            other => Err(format!(
                "expected a bool, got {}",
                crate::cel_library::value_type(&other)
            )),
        }
    }

    /// Evaluates to a string; any other result is an error.
    pub fn eval_string(&self, ctx: &Context<'_>) -> Result<String, String> {
        match self.eval(ctx)? {
            Value::String(s) => Ok(s.as_ref().clone()),
            other => Err(format!(
                "expected a string, got {}",
                crate::cel_library::value_type(&other)
            )),
        }
    }
}

/// Makes the process's panic hook silent for a panic inside an expression's evaluation, which
/// [`Expression::eval`] catches and returns as an evaluation error (naming the panic's
/// message), so it denies; every other panic reaches the hook that was set before. Without it
/// the default hook printed such a panic's raw text and location on stderr ("thread 'main'
/// panicked at …/cel-0.13.0/…"), which `kspy policy test` and `eval` showed beside their own
/// clear error. Idempotent; for a program's `main`, since the hook is the whole process's.
pub fn quiet_evaluation_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let earlier = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::cel_library::evaluating() {
                earlier(info);
            }
        }));
    });
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
}
