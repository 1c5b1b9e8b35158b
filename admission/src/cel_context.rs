//! The context expressions are evaluated in, and the values bound into it per request.
//!
//! [`CelEnv`] holds the root context (every library registered once, at start); a request's
//! variables are bound in scopes below it through [`LazyVariables`], converted from JSON only
//! when an expression reads them ([`json_to_cel`]), and only the fields expressions read
//! ([`project_json`] through a [`crate::cel::Projection`]). [`size_within`] bounds what a
//! policy's variables may hold together ([`MAX_VARIABLE_BYTES`]), since kspy's evaluation
//! budget (`cel_library::MAX_EVALUATION_COST`) counts loop steps and the values loops build,
//! not the bytes a string concatenation builds.
//!
//! It is separate from `cel.rs` so that what a compiled expression is reads without the
//! per-request binding, and the binding (the part the request path pays for) reads without
//! the compilation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Value};

use crate::cel::Fields;

/// The most one policy's variables may hold together, in [`size_within`]'s measure: above
/// the largest object etcd stores (1.5 MiB), so variables naming a whole Pod fit. The
/// evaluation budget counts loop steps, not bytes, and a few variables each doubling the one
/// before (`v1 = v0 + v0`, …) pass the static cost estimate yet would build gigabytes. This
/// bounds what variables hold; a single expression can still build large intermediate values
/// from them (its length, the static cost estimate and the evaluation budget bound it).
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

/// The root context every expression is evaluated in: the standard library and Kubernetes'.
pub(crate) fn root_context() -> Context<'static> {
    let mut ctx = Context::default().with_all();
    crate::cel_library::register(&mut ctx);
    ctx
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
    use crate::cel::Expression;

    fn some(names: &[&str]) -> Option<Fields> {
        Some(Fields::Some(names.iter().map(|n| n.to_string()).collect()))
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
