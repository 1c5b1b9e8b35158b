//! The load-time checks of an expression: what makes one refused, and why.
//!
//! A policy file's expressions are compiled once, at load ([`crate::cel::Expression`]); this
//! module holds what that compilation refuses and the errors that say so ([`CelError`]):
//! expressions too long or nested too deep to parse and evaluate safely, calls to functions
//! the runtime does not register (asked of the runtime itself, [`is_registered`]), and
//! `variables.NAME` for a NAME the policy does not declare above it, each with a "did you
//! mean" ([`closest`]). The fields selected from the Kubernetes objects are checked in
//! `cel_fields`.
//!
//! It is separate from `cel.rs` so that what a compiled expression is, and how it is
//! evaluated, reads without the checks, and the checks (the half a policy author meets as
//! load errors) read without the evaluation.

use std::collections::HashMap;

use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use kube_cel::cel::{Context, Program};

use crate::cel::{Scope, VARIABLES};
use crate::cel_context::root_context;

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
        /// The 1-based line and column, counted in characters, of the error in the expression,
        /// when the parser's position is one exactly ([`syntax_position`]): a policy load error
        /// is placed there in the file.
        position: Option<(usize, usize)>,
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
        "unknown function {name:?}{}{}; it would fail on every request, denying it (the \
         functions are listed in the README, \"CEL\")",
        Hint(suggestion),
        unsupported_note(name).map(|n| format!(": {n}")).unwrap_or_default()
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
    /// A constant pattern given to `matches`, `find` or `findAll` that does not compile: the
    /// call would fail on every request, denying it. Kubernetes refuses it when the
    /// expression is compiled too (cel-go's regex literal check).
    #[error(
        "invalid regular expression {pattern:?} given to {function}: {reason}; it would fail \
         on every request, denying it (patterns are read as Go's regular expressions, RE2, as \
         in Kubernetes: fix the pattern)"
    )]
    InvalidRegex {
        /// `matches`, `find` or `findAll`.
        function: String,
        /// The pattern as written.
        pattern: String,
        /// Why it does not compile, on one line.
        reason: String,
    },
    /// The parser failed without an answer (it panicked, or its thread could not start).
    #[error("the CEL parser failed on this expression: {0}")]
    ParserFailed(String),
    /// A message literal (`Foo{a: 1}`): it parses, but the runtime has no message types and
    /// fails on it at every evaluation, which denies.
    #[error(
        "message literal {type_name}{{…}} is not supported: kspy's CEL has no message types, so \
         it would fail on every request, denying it; write a map literal instead ({{'field': \
         value}})"
    )]
    MessageLiteral {
        /// The message type as written (`Foo`, `google.protobuf.Struct`).
        type_name: String,
    },
}

impl CelError {
    /// The 1-based line and character column in the expression where the error is, when it is
    /// known exactly: only a syntax error has one (the checks on names and fields work on the
    /// parsed tree, whose source offsets the parser does not keep for an expression that
    /// parses).
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            CelError::Syntax { position, .. } => *position,
            _ => None,
        }
    }
}

/// The messages of the macro expanders' errors (`all`, `exists`, `map`, `filter`,
/// `exists_one` and `has`), which cel 0.13 places by byte offset: their columns count bytes
/// where every other error's counts characters.
const MACRO_ERRORS: [&str; 2] = [
    "argument must be a simple name",
    "invalid argument to has() macro",
];

/// The parser's error `column` (1-based, as it reports it) on `line` of `source`, counted in
/// characters (code points), as CEL counts positions: ANTLR's errors and the parser's own
/// ("unsupported syntax '?'") count characters already, while the macro expanders'
/// ([`MACRO_ERRORS`]) count bytes, so `'ééé'.all(1, true)` had its error at column 14 where
/// the `1` is the 11th character. A column that is no place in its line is left as it is.
pub(crate) fn character_column(source: &str, line: isize, column: isize, message: &str) -> isize {
    if !MACRO_ERRORS.contains(&message) {
        return column;
    }
    let text = usize::try_from(line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|l| source.split('\n').nth(l));
    let before = usize::try_from(column).ok().and_then(|c| c.checked_sub(1));
    match (text, before) {
        (Some(text), Some(before)) => text
            .get(..before)
            .and_then(|b| isize::try_from(b.chars().count()).ok())
            .map_or(column, |chars| chars + 1),
        _ => column,
    }
}

/// Where the parser's error `line` and `column` (1-based, the column in characters:
/// [`character_column`]) stand in `source`, when that is certain. An error without a
/// position (line 0), whose column lies past its line's end, or a recursion limit's (whose
/// "position" is a pair of byte offsets) has none.
pub(crate) fn syntax_position(
    source: &str,
    line: isize,
    column: isize,
    message: &str,
) -> Option<(usize, usize)> {
    let line = usize::try_from(line).ok().filter(|l| *l > 0)?;
    let column = usize::try_from(column).ok().filter(|c| *c > 0)?;
    // Its position is a pair of byte offsets, not a line and column.
    if message.starts_with("Recursion limit") {
        return None;
    }
    let text = source.split('\n').nth(line - 1)?;
    (column - 1 <= text.chars().count()).then_some((line, column))
}

/// "; did you mean `x`?" when there is a suggestion.
/// Why a function Kubernetes' CEL has is missing here, and what to write instead; `None` for
/// a name Kubernetes lacks too (a misspelling).
fn unsupported_note(name: &str) -> Option<&'static str> {
    Some(match name {
        "existsOne" => {
            "`existsOne` is Kubernetes' two-variable form of `exists_one` (`list.existsOne(i, v, \
             …)`), not supported by kspy's CEL (cel 0.13); use `exists_one` with one variable"
        }
        "all" | "exists" | "exists_one" => {
            "Kubernetes' two-variable form (`list.all(i, v, …)`, `map.all(k, v, …)`) is not \
             supported by kspy's CEL (cel 0.13); use the one-variable form"
        }
        "transformList" | "transformMap" | "transformMapEntry" => {
            "Kubernetes' two-variable comprehensions are not supported by kspy's CEL (cel 0.13); \
             use map() or filter()"
        }
        "dyn" => {
            "dyn() is not supported by kspy's CEL (cel 0.13); kspy's variables are untyped, so \
             write the value itself"
        }
        "type" => {
            "type() is not supported by kspy's CEL (cel 0.13), which has no type values; test \
             the value itself (has(), or a comparison, which fails for a value of another \
             type, denying)"
        }
        "cel.bind" => {
            "cel.bind is not supported by kspy's CEL (cel 0.13); declare a policy variable \
             (spec.variables) instead"
        }
        "sortBy" => {
            "sortBy is not supported by kspy's CEL (kube-cel 0.8); sort() sorts by the items"
        }
        _ if name.starts_with("authorizer.") => {
            "kspy makes no API calls while judging, so the authorizer library is not available"
        }
        _ => return None,
    })
}

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
pub(crate) fn unknown_sent_field(f: &crate::cel_fields::UnknownKubeField) -> String {
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
pub(crate) const MAX_BRACKET_DEPTH: usize = 95;

/// True when brackets nest more than `limit` levels deep in `source`, outside string and
/// bytes literals and comments. Scans the text once; a literal it misreads can only make it
/// count too few, which leaves the expression to the parser.
pub(crate) fn brackets_nest_deeper_than(source: &str, limit: usize) -> bool {
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

/// Whether the tree under `root` is deeper than `limit`, counted without recursion (the tree
/// may be far too deep to recurse over).
pub(crate) fn exceeds_depth<'e>(root: &'e IdedExpr, limit: usize) -> bool {
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

/// The functions whose pattern argument is a regular expression.
const REGEX_FUNCTIONS: [&str; 3] = ["matches", "find", "findAll"];

/// Refuses a constant pattern given to `matches`, `find` or `findAll` that does not compile
/// (`name.matches('[')`): the call would fail on every request, denying it, where Kubernetes
/// refuses the expression when it is compiled. A pattern computed from request data can only
/// be checked when evaluated. Each pattern checked is compiled into the shared cache, so the
/// first request does not pay for it. Walked without recursion, as [`exceeds_depth`].
pub(crate) fn check_regex_literals(root: &IdedExpr) -> Result<(), CelError> {
    let mut stack: Vec<&IdedExpr> = vec![root];
    while let Some(e) = stack.pop() {
        match &e.expr {
            Expr::Call(call) => {
                // `s.matches(p)`, `s.find(p)`, `s.findAll(p, n)`; and the global `matches(s, p)`.
                let pattern = match (call.target.is_some(), call.args.as_slice()) {
                    (true, [p, ..]) => Some(p),
                    (false, [_, p]) if call.func_name == "matches" => Some(p),
                    _ => None,
                };
                if REGEX_FUNCTIONS.contains(&call.func_name.as_str())
                    && let Some(Expr::Literal(LiteralValue::String(pattern))) =
                        pattern.map(|p| &p.expr)
                    && let Some(reason) = crate::cel_library::regex_problem(pattern.inner())
                {
                    return Err(CelError::InvalidRegex {
                        function: call.func_name.clone(),
                        pattern: pattern.inner().to_owned(),
                        reason,
                    });
                }
                stack.extend(call.target.as_deref());
                stack.extend(call.args.iter());
            }
            Expr::Select(s) => stack.push(&s.operand),
            Expr::List(l) => stack.extend(l.elements.iter()),
            Expr::Map(m) => entry_children(&m.entries, &mut |x| stack.push(x)),
            Expr::Struct(s) => entry_children(&s.entries, &mut |x| stack.push(x)),
            Expr::Comprehension(c) => stack.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    Ok(())
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

/// `prefix.name` for a call written `prefix.name(…)` on a plain identifier, which the runtime
/// tries as one function name before it tries `name` as a method of `prefix`.
pub(crate) fn qualified_name(call: &kube_cel::cel::common::ast::CallExpr) -> Option<String> {
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
pub(crate) fn check_names(
    e: &IdedExpr,
    bound: &mut Vec<String>,
    scope: Scope<'_>,
) -> Result<(), CelError> {
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
                // The receiver first: a chain is refused at its first unknown call as it
                // reads, `authorizer.group('apps')` in `authorizer.group('apps').check('get')
                // .allowed()`, which says why, not at the `allowed` that follows from it.
                if let Some(t) = &call.target {
                    check_names(t, bound, scope)?;
                }
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
        // cel 0.13 evaluates a message literal as `todo!()`: refused here, not denied later.
        Expr::Struct(s) => {
            return Err(CelError::MessageLiteral {
                type_name: s.type_name.clone(),
            });
        }
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
    "bool",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel::{CelEnv, Expression};

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

    /// A message literal parses but fails at every evaluation (cel 0.13 has no message types):
    /// it is refused at load, saying what to write instead, not denied at each request.
    #[test]
    fn message_literals_are_refused_at_load() {
        for (source, type_name) in [
            ("Foo{a: 1} == Foo{a: 1}", "Foo"),
            (
                "[google.protobuf.Struct{}].size() == 1",
                "google.protobuf.Struct",
            ),
            ("container.name == 'x' || has(Foo{}.a)", "Foo"),
        ] {
            let err = Expression::compile(source).err();
            assert_eq!(
                err,
                Some(CelError::MessageLiteral {
                    type_name: type_name.into()
                }),
                "{source}"
            );
            let text = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains("write a map literal"), "{text}");
        }
        // Map literals, which read the same way, still compile.
        assert!(Expression::compile("{'a': 1}.a == 1").is_ok());
    }

    /// The position a load error is placed at counts characters: ANTLR's errors do, so they
    /// are placed after non-ASCII text too; a macro's error counts bytes, so it is placed only
    /// where its line is ASCII up to it; an error with no position (or a recursion limit's
    /// byte offsets) is placed nowhere.
    #[test]
    fn syntax_positions_count_characters_or_are_none() {
        for (source, position) in [
            ("'éé' + ", Some((1, 8))),
            ("'é' +\n 'é' ) ", Some((2, 6))),
            ("[1].all(x.y, true)", Some((1, 10))),
            // A macro's error counts characters too: the `1` is the 11th character (the 14th
            // byte, where cel 0.13 places it).
            ("'ééé'.all(1, true)", Some((1, 11))),
            ("'é'\n+ 'ééé'.map(1, 2)", Some((2, 13))),
            ("'ééé' + has(a)", Some((1, 13))),
        ] {
            match Expression::compile(source) {
                Err(e @ CelError::Syntax { .. }) => {
                    assert_eq!(e.position(), position, "{source:?}")
                }
                other => panic!("{source:?}: {other:?}"),
            }
        }
        assert_eq!(syntax_position("1 +", 0, 0, "UNKNOWN"), None);
        assert_eq!(syntax_position("1 +", 1, 9, "Syntax error: x"), None);
        assert_eq!(syntax_position("1 +", 2, 1, "Syntax error: x"), None);
        assert_eq!(
            syntax_position("1 +", 1, 3, "Recursion limit of 96 exceeded"),
            None
        );
        assert_eq!(
            Expression::compile("sizee(1)")
                .err()
                .and_then(|e| e.position()),
            None
        );
    }

    /// Positions are 1-based and point at the offending token: `1 +` ends at column 4.
    #[test]
    fn syntax_error_positions_are_where_the_error_is() {
        for (source, line, column) in [("1 +", 1, 4), ("a.b(", 1, 5), ("true &&\n  )", 2, 3)] {
            match Expression::compile(source) {
                Err(CelError::Syntax {
                    line: l,
                    column: c,
                    position,
                    ..
                }) => {
                    assert_eq!((l, c), (line, column), "{source:?}");
                    assert_eq!(
                        position,
                        Some((line as usize, column as usize)),
                        "{source:?}"
                    );
                }
                other => panic!("{source:?}: {other:?}"),
            }
        }
    }
}
