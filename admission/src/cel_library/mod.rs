//! Library functions kspy registers in place of kube-cel's own, where kube-cel 0.8's would
//! take a judgement down or answer wrongly on what a request can hold. Each keeps its
//! name, receiver and results; only what failed becomes an evaluation error, which denies.
//!
//! Found by the mutation tests (`admission/tests/mutated_policies.rs`):
//! - `sum()` added integers unchecked: `[9223372036854775807, 1].sum()` panicked in a debug
//!   build and wrapped to a negative number in a release one, so a guardrail such as
//!   `….sum() <= limit` held for a sum past any limit;
//! - `lists.range(n)` built the whole list for any `n`: `lists.range(9223372036854775807)`
//!   allocated until the process was killed, which no unwinding catches (the static cost
//!   estimate let it load).
//!
//! And one for speed: `matches`, `find` and `findAll` compiled their regular expression at
//! every call. A pattern with Unicode classes (`[\\p{L}\\p{N}]`, a letter or digit in any
//! script) took about 2.4 M instructions to compile, five times all the rest of a review
//! (`webhook/bench/instructions.sh`); here each pattern is compiled once ([`go_regex::Regexes`]),
//! within a size limit, into a cache bounded in count and bytes ([`go_regex::RegexCache`]).
//!
//! And a runtime budget ([`MAX_EVALUATION_COST`]), which cel 0.13 lacks: each comprehension's
//! loop condition is wrapped in a call that charges the step and the accumulator it copies
//! ([`evaluated_form`]), and `lists.range` charges what it builds; functions reading a string
//! (`==`, `size`, `startsWith`, `endsWith`, `contains`, the regular expressions) charge the
//! bytes they read ([`charge_read`]), as Kubernetes' CEL does.
//!
//! And strict field selection ([`select`]): cel 0.13 answers `false` for a field of a value
//! that is no map, where CEL fails; likewise strict `==`, `!=` ([`equals`]) and `in`
//! ([`is_in`]) between values of types never equal; and `indexOf`/`lastIndexOf` ([`index_of`])
//! with cel-go's offsets, which fail outside the string, and `replace` ([`replace`]) with
//! cel-go's negative count (all).
//!
//! And, compared with cel-go: `size` of a string counts its characters (cel 0.13 counted
//! bytes) ([`size`]); `split` with an empty separator gives the characters, as Go's
//! `strings.Split` does ([`split`]); `join` fails on an item that is no string ([`join`]).
//! And regular expressions read as Go reads them ([`go_regex::go_pattern`], in
//! `go_regex.rs`): `\d`, `\w`, `\s`, `\b`
//! ASCII, Go's class syntax, Go's limits and flags.
//! And URLs as Go's `net/url` reads them ([`go_url::GoUrl`], in `go_url.rs`), as Kubernetes' `url()` does.
//! And semantic versions compared as Kubernetes compares them ([`go_semver::GoSemver`], in
//! `go_semver.rs`).
//! And timestamp and duration accessors as cel-go has them ([`time::time_accessor`], in
//! `time.rs`).
//! And `int()`/`uint()` of a double as cel-go has them ([`to_int`]): NaN and the ends fail.
//! And the other conversions as cel-go has them ([`conversions`], in `conversions.rs`):
//! `bool()`, `string(true)`, `timestamp(int)`, `int(timestamp)`, Go's formatting of doubles,
//! timestamps and durations.
//! And quantities written as Kubernetes writes them ([`kube_quantity_syntax`]).
//! And CIDR prefixes as Go's `netip.ParsePrefix` reads them ([`go_net::go_prefix_problem`], in
//! `go_net.rs`): no leading zeros in the length or the octets.

use std::cell::Cell;
use std::sync::Arc;

use kube_cel::cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use kube_cel::cel::common::types::{CelList, CelMap, CelMapKey};
use kube_cel::cel::common::value::Val;
use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

use crate::cel::MAX_VARIABLE_BYTES;

mod conversions;
mod go_net;
mod go_regex;
mod go_semver;
mod go_url;
mod time;

use go_net::{cidr, contains_cidr, is_cidr};
use go_regex::{find, find_all, matches};
use go_semver::{
    compare_to, is_greater_than, is_less_than, is_semver, semver_major, semver_minor, semver_patch,
    semver_value,
};
use go_url::{
    is_url, url, url_escaped_path, url_host, url_hostname, url_port, url_query, url_scheme,
};
use time::{TIME_ACCESSORS, time_accessor};

/// The longest list `lists.range` builds: what a policy's variables may hold together, at
/// the 8 bytes an integer counts for there.
pub const MAX_RANGE: i64 = (MAX_VARIABLE_BYTES / 8) as i64;

/// Why `pattern` (Go's syntax) is no regular expression kspy's `matches`, `find` and `findAll`
/// take, on one line; `None` when it compiles (it is then in the shared cache).
pub(crate) fn regex_problem(pattern: &str) -> Option<String> {
    go_regex::Regexes::get(pattern).err().map(|err| {
        // The `regex` crate's error quotes the pattern over several lines with a caret, then
        // says why on a line of its own: that line, or the whole error on one line.
        err.lines()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map_or_else(
                || err.split_whitespace().collect::<Vec<_>>().join(" "),
                str::to_owned,
            )
    })
}

/// Registers kspy's versions over kube-cel's in `ctx`.
pub(crate) fn register(ctx: &mut Context<'_>) {
    ctx.add_function("sum", sum);
    ctx.add_function("lists.range", lists_range);
    ctx.add_function("sets.contains", sets_compared);
    ctx.add_function("sets.equivalent", sets_compared);
    ctx.add_function("sets.intersects", sets_compared);
    ctx.add_function("distinct", distinct);
    ctx.add_function(STEP, step);
    ctx.add_function(SELECT, select);
    ctx.add_function(EQUALS, equals);
    ctx.add_function(NOT_EQUALS, not_equals);
    ctx.add_function(IN, is_in);
    ctx.add_function(FORMAT_CHECKED, format_checked);
    ctx.add_function("indexOf", index_of);
    ctx.add_function("lastIndexOf", last_index_of);
    ctx.add_function("replace", replace);
    ctx.add_function("size", size);
    ctx.add_function("startsWith", starts_with);
    ctx.add_function("endsWith", ends_with);
    ctx.add_function("contains", contains);
    ctx.add_function("split", split);
    ctx.add_function("join", join);
    ctx.add_function("url", url);
    ctx.add_function("isURL", is_url);
    ctx.add_function("getScheme", url_scheme);
    ctx.add_function("getHost", url_host);
    ctx.add_function("getHostname", url_hostname);
    ctx.add_function("getPort", url_port);
    ctx.add_function("getEscapedPath", url_escaped_path);
    ctx.add_function("getQuery", url_query);
    ctx.add_function("semver", semver_value);
    ctx.add_function("isSemver", is_semver);
    ctx.add_function("major", semver_major);
    ctx.add_function("minor", semver_minor);
    ctx.add_function("patch", semver_patch);
    ctx.add_function("compareTo", compare_to);
    ctx.add_function("isGreaterThan", is_greater_than);
    ctx.add_function("isLessThan", is_less_than);
    ctx.add_function("cidr", cidr);
    ctx.add_function("isCIDR", is_cidr);
    ctx.add_function("isCIDRv4", is_cidr);
    ctx.add_function("isCIDRv6", is_cidr);
    ctx.add_function("containsCIDR", contains_cidr);
    ctx.add_function("quantity", quantity);
    ctx.add_function("isQuantity", is_quantity);
    ctx.add_function("int", to_int);
    ctx.add_function("uint", to_uint);
    ctx.add_function("string", conversions::string);
    ctx.add_function("bool", conversions::bool);
    ctx.add_function("bytes", conversions::bytes);
    ctx.add_function("double", conversions::double);
    ctx.add_function("timestamp", conversions::timestamp);
    ctx.add_function("duration", conversions::duration);
    for accessor in TIME_ACCESSORS {
        ctx.add_function(accessor, time_accessor);
    }
    ctx.add_function("matches", matches);
    ctx.add_function("find", find);
    ctx.add_function("findAll", find_all);
}

/// `<list>.sum()`: kube-cel's, with integer overflow an error, as CEL's `+` has it. An empty
/// list sums to `0`.
fn sum(This(items): This<Arc<Vec<Value>>>) -> ResolveResult {
    let mut items = items.iter();
    let Some(first) = items.next() else {
        return Ok(Value::Int(0));
    };
    let overflow = || ExecutionError::function_error("sum", "integer overflow");
    items.try_fold(first.clone(), |total, item| match (&total, item) {
        (Value::Int(a), Value::Int(b)) => a.checked_add(*b).map(Value::Int).ok_or_else(overflow),
        (Value::UInt(a), Value::UInt(b)) => a.checked_add(*b).map(Value::UInt).ok_or_else(overflow),
        (Value::Float(a), Value::Float(b)) => Ok(Value::Float(a + b)),
        _ => Err(ExecutionError::function_error(
            "sum",
            "cannot sum values of this type",
        )),
    })
}

/// `sets.contains(a, b)`, `sets.equivalent(a, b)` and `sets.intersects(a, b)`: kube-cel's,
/// each item of one list compared with each of the other, after that product of their sizes
/// (twice for `equivalent`) is charged to the evaluation's budget: in one call over two
/// request lists of 20,000 strings it was 400 million comparisons nothing counted.
fn sets_compared(ftx: &FunctionContext, a: Arc<Vec<Value>>, b: Arc<Vec<Value>>) -> ResolveResult {
    let product = u64::try_from(a.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::try_from(b.len()).unwrap_or(u64::MAX));
    // `ftx.name` is the name without its `sets.` prefix.
    let (call, passes) = match ftx.name {
        "contains" => ("sets.contains(a, b)", 1),
        "equivalent" => ("sets.equivalent(a, b)", 2),
        "intersects" => ("sets.intersects(a, b)", 1),
        other => return Err(ftx.error(format!("internal: no set function {other:?}"))),
    };
    charge(product.saturating_mul(passes))?;
    kube_cel_call(ftx, call, Value::List(a), Some(&Value::List(b)))
}

/// `<list>.distinct()`: kube-cel's, each item compared with those kept before it, after the
/// most comparisons that takes (half the square of the list's size) is charged to the
/// evaluation's budget.
fn distinct(ftx: &FunctionContext, This(this): This<Arc<Vec<Value>>>) -> ResolveResult {
    let n = u64::try_from(this.len()).unwrap_or(u64::MAX);
    charge(n.saturating_mul(n) / 2)?;
    kube_cel_call(ftx, "a.distinct()", Value::List(this), None)
}

/// `lists.range(n)`: `[0, 1, …, n - 1]`, for `n` up to [`MAX_RANGE`], each item counted
/// against the evaluation's budget ([`MAX_EVALUATION_COST`]). A negative `n` gives `[]`, as in
/// cel-go, where kube-cel 0.8 failed: `lists.range(size(l) - 1).all(i, l[i] < l[i + 1])`
/// denied an empty `l` that Kubernetes finds sorted.
fn lists_range(n: i64) -> ResolveResult {
    if n < 0 {
        return Ok(Value::List(Arc::new(Vec::new())));
    }
    if n > MAX_RANGE {
        return Err(ExecutionError::function_error(
            "lists.range",
            format!("lists.range({n}) would build a list of more than {MAX_RANGE} items"),
        ));
    }
    charge(u64::try_from(n).unwrap_or(0))?;
    Ok(Value::List(Arc::new((0..n).map(Value::Int).collect())))
}

/// The most work one evaluation of an expression may do, in steps of a comprehension (`all`,
/// `exists`, `map`, `filter`, …) plus the items each step copies plus the items `lists.range`
/// builds plus the regular expressions it compiles, by size (`go_regex::Regexes`), plus the
/// pieces `split` and `findAll` build and the bytes `replace` builds plus the items each
/// `in` may look at plus the comparisons of `sets.*` and `distinct()` plus a tenth of the
/// bytes a regular expression, `==`/`!=` between strings or bytes, a string's `size()`,
/// `startsWith`, `endsWith` and `contains` read (`charge_read`). cel 0.13 has no runtime cost
/// limit, and the load-time estimate assumes lists of at most 1,000 items and leaves out what
/// `lists.range` and `map` build: `lists.range(200000).map(x, lists.range(200000))` loaded and allocated until the process was killed, and
/// `container.env.map(e, e.name)` copies the list built so far at every step (quadratic: over
/// the 10,000 env entries a request may hold, seconds of a judging thread per request). Ten
/// million is a tenth of a second or so in a release build; what real policies do (a few
/// loops over a Pod's containers and their env) stays thousands of times below it.
pub const MAX_EVALUATION_COST: u64 = 10_000_000;

/// The name a comprehension's loop condition is wrapped in ([`metered`]). It starts with `@`,
/// which no expression can write, like the parser's own `@result` and `@it`.
const STEP: &str = "@kspy.step";

thread_local! {
    /// What the evaluation running on this thread may still spend: `None` outside one.
    static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Whether an evaluation ran out of budget ([`run_metered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget;

/// Runs `f` (one evaluation) with [`MAX_EVALUATION_COST`] to spend; `Err` when it ran out,
/// whatever `f` returned: CEL's `||` and `&&` absorb an error on one side (`expensive || true`
/// is `true`), and an evaluation stopped half-way must not answer. Nested calls (none today)
/// share the outer budget.
pub(crate) fn run_metered<T>(f: impl FnOnce() -> T) -> Result<T, OverBudget> {
    /// Puts back what was there before, also when `f` panics.
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if self.0.is_some() {
                // Nested: the outer evaluation keeps what is left of the shared budget.
                return;
            }
            BUDGET.with(|b| b.set(None));
        }
    }
    let outer = BUDGET.with(|b| b.get());
    if outer.is_none() {
        BUDGET.with(|b| b.set(Some(MAX_EVALUATION_COST)));
    }
    let _restore = Restore(outer);
    let result = f();
    match BUDGET.with(|b| b.get()) {
        Some(0) => Err(OverBudget),
        _ => Ok(result),
    }
}

/// Whether this thread is inside an evaluation ([`run_metered`]), where `Expression::eval`
/// catches a panic and makes it an evaluation error.
pub(crate) fn evaluating() -> bool {
    BUDGET.with(|b| b.get().is_some())
}

/// Spends `units` of the running evaluation's budget; an error, and nothing left, when it
/// does not cover them. Free outside a metered evaluation.
fn charge(units: u64) -> Result<(), ExecutionError> {
    BUDGET.with(|b| match b.get() {
        None => Ok(()),
        Some(left) if left > units => {
            b.set(Some(left - units));
            Ok(())
        }
        Some(_) => {
            b.set(Some(0));
            Err(over_budget_error())
        }
    })
}

/// Bytes of a string (or bytes) a function reads per unit of the evaluation's budget: a tenth
/// of a unit a byte, Kubernetes' traversal cost (cel-go's `StringTraversalCostFactor`). By
/// integer division, so a string shorter than this costs nothing more than the call.
const READ_BYTES_PER_UNIT: usize = 10;

/// Charges reading `bytes` bytes of a string (or bytes) to the running evaluation's budget: a
/// loop may read the same long request string at each step, and only the steps were counted
/// (`lists.range(20000).all(i, v.matches('b'))` over 1 MB read 20 GB, counted as 20,000
/// steps).
fn charge_read(bytes: usize) -> Result<(), ExecutionError> {
    charge(u64::try_from(bytes / READ_BYTES_PER_UNIT).unwrap_or(u64::MAX))
}

/// The bytes `v` holds when it is a string or bytes, which comparing it reads; `None` for
/// other values.
fn read_len(v: &dyn Val) -> Option<usize> {
    use kube_cel::cel::common::types::{CelBytes, CelString};
    v.downcast_ref::<CelString>()
        .map(|s| s.inner().len())
        .or_else(|| v.downcast_ref::<CelBytes>().map(|b| b.inner().len()))
}

/// Charges a list of `items` that `function` is about to build from what the request sent
/// (`split`, `findAll`), as `lists.range` is charged; an error for one longer than
/// [`MAX_RANGE`]: the 3,000,000 pieces of a split of 3 MB were a third of a GB.
fn charge_list(function: &str, items: usize) -> Result<(), ExecutionError> {
    if i64::try_from(items).map_or(true, |n| n > MAX_RANGE) {
        return Err(ExecutionError::function_error(
            function,
            format!(
                "{function} would build a list of more than {MAX_RANGE} items (from {items} \
                 pieces of the string), more than a policy may hold"
            ),
        ));
    }
    charge(u64::try_from(items).unwrap_or(u64::MAX))
}

/// The error an evaluation over [`MAX_EVALUATION_COST`] fails with.
pub(crate) fn over_budget_error() -> ExecutionError {
    ExecutionError::function_error(
        "cost",
        format!(
            "the expression did more than {MAX_EVALUATION_COST} steps of work on this request \
             (loops over large lists, lists.range, or map/filter building long lists), so kspy \
             stopped it; loop over fewer items (filter before map, exists instead of map)"
        ),
    )
}

/// `@kspy.step(cond, '@accu')`: a comprehension's loop condition, evaluated before each step,
/// charging one unit plus the values the accumulator holds (nested ones too), which the step
/// copies whole.
fn step(ftx: &FunctionContext) -> ResolveResult {
    let [cond, accu] = ftx.args else {
        return Err(ftx.error("internal: @kspy.step takes two arguments"));
    };
    let left = BUDGET.with(|b| b.get()).unwrap_or(u64::MAX);
    let held = match &accu.expr {
        Expr::Literal(LiteralValue::String(name)) => ftx
            .ptx
            .get_variable(name.inner())
            .map_or(0, |v| values_within(v.as_ref(), left)),
        _ => 0,
    };
    charge(held.saturating_add(1))?;
    ftx.ptx.resolve(cond)
}

/// The values in `v` (itself, and what its lists and maps hold, at any depth), counted up to
/// `limit` only: the count is charged, so counting never costs more than the budget allows.
fn values_within(v: &dyn Val, limit: u64) -> u64 {
    let mut count = 1u64;
    let mut stack: Vec<&dyn Val> = vec![v];
    while let Some(v) = stack.pop() {
        if count >= limit {
            break;
        }
        let items: Box<dyn Iterator<Item = &Box<dyn Val>>> =
            if let Some(list) = v.downcast_ref::<CelList>() {
                Box::new(list.inner().iter())
            } else if let Some(map) = v.downcast_ref::<CelMap>() {
                Box::new(map.inner().values())
            } else {
                continue;
            };
        for item in items {
            count += 1;
            stack.push(item.as_ref());
            if count >= limit {
                break;
            }
        }
    }
    count
}

/// `e` as kspy evaluates it: each comprehension's loop condition wrapped in [`STEP`], which
/// charges each iteration to the evaluation's budget, and each chain of field selections
/// (`a.b.c`, not under `has()`) made one call of [`SELECT`], which fails on a value that is no
/// map. Recursion is bounded: the depth was checked before.
pub(crate) fn evaluated_form(e: &IdedExpr) -> IdedExpr {
    let expr = match &e.expr {
        Expr::Call(call) if call.func_name == "format" && call.args.len() == 1 => {
            // `fmt.format(args)` as `@kspy.format_checked(fmt).format(args)`: kube-cel's own
            // `format`, given only a format string whose precisions it can print.
            Expr::Call(CallExpr {
                func_name: call.func_name.clone(),
                target: call.target.as_deref().map(|t| {
                    Box::new(IdedExpr {
                        id: t.id,
                        expr: Expr::Call(CallExpr {
                            func_name: FORMAT_CHECKED.to_owned(),
                            target: None,
                            args: vec![evaluated_form(t)],
                        }),
                    })
                }),
                args: call.args.iter().map(evaluated_form).collect(),
            })
        }
        Expr::Call(call) => Expr::Call(CallExpr {
            func_name: match call.func_name.as_str() {
                "_==_" if call.target.is_none() && call.args.len() == 2 => EQUALS.to_owned(),
                "_!=_" if call.target.is_none() && call.args.len() == 2 => NOT_EQUALS.to_owned(),
                "@in" if call.target.is_none() && call.args.len() == 2 => IN.to_owned(),
                other => other.to_owned(),
            },
            target: call.target.as_deref().map(|t| Box::new(evaluated_form(t))),
            args: call.args.iter().map(evaluated_form).collect(),
        }),
        Expr::Select(s) if !s.test => {
            // `a.b.c` parses as Select(Select(a, b), c): the fields from the outside in.
            let mut fields = vec![s.field.as_str()];
            let mut root = s.operand.as_ref();
            while let Expr::Select(inner) = &root.expr
                && !inner.test
            {
                fields.push(inner.field.as_str());
                root = inner.operand.as_ref();
            }
            let mut args = vec![evaluated_form(root)];
            args.extend(fields.iter().rev().map(|f| IdedExpr {
                id: e.id,
                expr: Expr::Literal(LiteralValue::String((*f).into())),
            }));
            Expr::Call(CallExpr {
                func_name: SELECT.to_owned(),
                target: None,
                args,
            })
        }
        Expr::Select(s) => {
            let mut s = s.clone();
            s.operand = Box::new(evaluated_form(&s.operand));
            Expr::Select(s)
        }
        Expr::List(l) => {
            let mut l = l.clone();
            l.elements = l.elements.iter().map(evaluated_form).collect();
            Expr::List(l)
        }
        Expr::Map(m) => {
            let mut m = m.clone();
            m.entries.iter_mut().for_each(evaluated_entry);
            Expr::Map(m)
        }
        Expr::Struct(s) => {
            let mut s = s.clone();
            s.entries.iter_mut().for_each(evaluated_entry);
            Expr::Struct(s)
        }
        Expr::Comprehension(c) => {
            let mut c = c.clone();
            c.iter_range = evaluated_form(&c.iter_range);
            c.accu_init = evaluated_form(&c.accu_init);
            c.loop_step = evaluated_form(&c.loop_step);
            c.result = evaluated_form(&c.result);
            let cond = evaluated_form(&c.loop_cond);
            c.loop_cond = IdedExpr {
                id: c.loop_cond.id,
                expr: Expr::Call(CallExpr {
                    func_name: STEP.to_owned(),
                    target: None,
                    args: vec![
                        cond,
                        IdedExpr {
                            id: c.loop_cond.id,
                            expr: Expr::Literal(LiteralValue::String(c.accu_var.as_str().into())),
                        },
                    ],
                }),
            };
            Expr::Comprehension(c)
        }
        other => other.clone(),
    };
    IdedExpr { id: e.id, expr }
}

fn evaluated_entry(entry: &mut kube_cel::cel::common::ast::IdedEntryExpr) {
    match &mut entry.expr {
        EntryExpr::StructField(f) => f.value = evaluated_form(&f.value),
        EntryExpr::MapEntry(m) => {
            m.key = evaluated_form(&m.key);
            m.value = evaluated_form(&m.value);
        }
    }
}

/// The names `==` and `!=` are evaluated through ([`evaluated_form`]).
const EQUALS: &str = "@kspy.equals";
const NOT_EQUALS: &str = "@kspy.not_equals";

/// `a == b`, failing when `a` and `b` are of types no value of which is equal: cel 0.13
/// answers `false` there (CEL's heterogeneous equality), and `!=` turns that into a
/// guardrail that always holds: `container.securityContext.runAsUser != '0'` passed root.
/// The API server's type check refuses such an expression when the policy is created; kspy,
/// whose variables are untyped JSON, fails it when evaluated, which denies. `null` compares
/// with anything (`target == null`), and the numbers with each other (`1 == 1.0`).
fn equals(ftx: &FunctionContext) -> ResolveResult {
    compared(ftx).map(Value::Bool)
}

/// `a != b`, failing as [`equals`] does.
fn not_equals(ftx: &FunctionContext) -> ResolveResult {
    compared(ftx).map(|equal| Value::Bool(!equal))
}

fn compared(ftx: &FunctionContext) -> Result<bool, ExecutionError> {
    let [a, b] = ftx.args else {
        return Err(ftx.error("internal: @kspy.equals takes two arguments"));
    };
    let a = Value::resolve_val(a, ftx.ptx)?;
    let b = Value::resolve_val(b, ftx.ptx)?;
    let (name_a, name_b) = (a.get_type().name(), b.get_type().name());
    match comparability(name_a, name_b) {
        Comparability::Never => Err(ftx.error(format!(
            "comparing a {name_a} with a {name_b}: values of different types are never equal, \
             so the comparison would always give the same answer; compare values of one type \
             (convert one side with int(…) or string(…))"
        ))),
        Comparability::Numbers => Ok(numbers_equal(
            Value::try_from(a.as_ref())?,
            Value::try_from(b.as_ref())?,
        )),
        Comparability::SameType | Comparability::Null => {
            // Two strings (bytes) compare byte by byte up to the shorter one's length, which
            // is charged as cel-go charges `==`: `lists.range(20000).all(i, v == v)` over a
            // 1 MB request value compared 20 GB, counted as 20,000 steps.
            if let (Some(len_a), Some(len_b)) = (read_len(a.as_ref()), read_len(b.as_ref())) {
                charge_read(len_a.min(len_b))?;
            }
            Ok(a.eq(&b))
        }
    }
}

/// How values of two types (by their CEL type names) compare under [`equals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparability {
    /// One type: compared as cel 0.13 compares them.
    SameType,
    /// One of them is `null`, which compares with anything (and equals only `null`).
    Null,
    /// Numbers of different types: compared by value ([`numbers_equal`]), as CEL does
    /// (`0 == 0.0`), where cel 0.13 answers false.
    Numbers,
    /// No value of one type equals a value of the other.
    Never,
}

fn comparability(a: &str, b: &str) -> Comparability {
    let numeric = |t: &str| matches!(t, "int" | "uint" | "double");
    if a == b {
        Comparability::SameType
    } else if a == "null_type" || b == "null_type" {
        Comparability::Null
    } else if numeric(a) && numeric(b) {
        Comparability::Numbers
    } else {
        Comparability::Never
    }
}

/// The name `x in list` and `key in map` are evaluated through ([`evaluated_form`]).
const IN: &str = "@kspy.in";

/// `x in list` and `key in map` (charging the evaluation's budget the items it may look at),
/// failing where `x` is of a type no item (no key) of the
/// list (map) can equal, as [`equals`] fails: cel 0.13 answers `false` there, and a `!`
/// turns that into a guardrail that always holds: `!(container.securityContext.runAsUser in
/// ['0'])`, a quoted number, passed root. The API server's type check refuses such an
/// expression. An item counts as comparable as for `==`: of the same type, or a number
/// beside a number (`0 in [0.0]` holds); `null` items say nothing of the list's type, and
/// `null` is looked for in any list. An empty list (map), or one of `null`s only, holds
/// nothing: `false`. A list of mixed types (a literal `[1, 'a']`) fails only where no
/// item is comparable. Other containers are asked as cel 0.13 asks them.
fn is_in(ftx: &FunctionContext) -> ResolveResult {
    let [x, container] = ftx.args else {
        return Err(ftx.error("internal: @kspy.in takes two arguments"));
    };
    let x = Value::resolve_val(x, ftx.ptx)?;
    let container = Value::resolve_val(container, ftx.ptx)?;
    let x_type = x.get_type().name();
    let found = if let Some(list) = container.downcast_ref::<CelList>() {
        // The items it may look at, as Kubernetes' CEL charges `in` by the list's size: a
        // loop over one request list looking each item up in another did the product of their
        // lengths in comparisons, and only the loop's steps were counted.
        charge(u64::try_from(list.inner().len()).unwrap_or(u64::MAX))?;
        contains_strictly(
            ftx,
            x.as_ref(),
            x_type,
            "list",
            "items",
            false,
            list.inner().iter().map(AsRef::as_ref),
        )?
    } else if let Some(map) = container.downcast_ref::<CelMap>() {
        // The hashed lookup first: a key of `x`'s own type, found or not, needs no scan.
        let found = map
            .as_container()
            .is_some_and(|c| c.contains(x.as_ref()).unwrap_or(false));
        if found {
            true
        } else {
            // The keys the scan looks at (it stops at the first of `x`'s own type).
            let mut scanned: u64 = 0;
            let found = contains_strictly(
                ftx,
                x.as_ref(),
                x_type,
                "map",
                "keys",
                true,
                map.inner()
                    .keys()
                    .map(CelMapKey::inner)
                    .inspect(|_| scanned += 1),
            )?;
            charge(scanned)?;
            found
        }
    } else if let Some(c) = container.as_container() {
        c.contains(x.as_ref())?
    } else {
        return Err(ExecutionError::NoSuchOverload);
    };
    Ok(Value::Bool(found))
}

/// Whether `items` holds a value equal to `x` (of CEL type `x_type`), comparing as
/// [`equals`] does; an error when none of them could (see [`is_in`]). Stops at the first
/// equal item; allocates only to compare numbers of different types. `hashed`: the items of
/// `x`'s own type were looked up already (a map's keys), so one of them tells the answer is
/// `false` unless `x` is a number (an int key may still equal a uint `x`).
#[allow(clippy::too_many_arguments)] // the two words name the container in the error
fn contains_strictly<'v>(
    ftx: &FunctionContext,
    x: &dyn Val,
    x_type: &str,
    container: &str,
    items_are: &str,
    hashed: bool,
    items: impl Iterator<Item = &'v dyn Val>,
) -> Result<bool, ExecutionError> {
    let numeric = matches!(x_type, "int" | "uint" | "double");
    let mut other_type: Option<&str> = None;
    let mut comparable = false;
    for item in items {
        let item_type = item.get_type().name();
        match comparability(x_type, item_type) {
            Comparability::SameType if hashed => {
                if !numeric {
                    return Ok(false);
                }
                comparable = true;
            }
            Comparability::SameType | Comparability::Null => {
                if item_type != "null_type" || x_type == "null_type" {
                    comparable = true;
                }
                if item.equals(x) {
                    return Ok(true);
                }
            }
            Comparability::Numbers => {
                comparable = true;
                if numbers_equal(Value::try_from(x)?, Value::try_from(item)?) {
                    return Ok(true);
                }
            }
            Comparability::Never => {
                other_type.get_or_insert(item_type);
            }
        }
    }
    match other_type {
        Some(other) if !comparable => Err(ftx.error(format!(
            "looking for a {x_type} in a {container} whose {items_are} are {other}s: values of \
             different types are never equal, so `in` would always be false; look for a value \
             of the {items_are}' type (convert it with int(…) or string(…))"
        ))),
        _ => Ok(false),
    }
}

/// Whether two numbers of different types are equal as CEL compares them: an int and a uint
/// exactly, an integer and a double as the double the integer rounds to.
#[allow(clippy::cast_precision_loss)] // what CEL does beside a double
fn numbers_equal(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::UInt(u)) | (Value::UInt(u), Value::Int(i)) => {
            i128::from(i) == i128::from(u)
        }
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => i as f64 == f,
        (Value::UInt(u), Value::Float(f)) | (Value::Float(f), Value::UInt(u)) => u as f64 == f,
        (a, b) => a == b,
    }
}

/// The name the format string of `format` is passed through ([`evaluated_form`]).
const FORMAT_CHECKED: &str = "@kspy.format_checked";

/// The largest precision `format` takes (`%.65535f`): past it the formatting kube-cel 0.8
/// calls panics ("Formatting argument out of range"), which a judging thread survives only
/// as a caught panic, and `kspy policy test` printed the panic's raw text on stderr.
pub const MAX_FORMAT_PRECISION: u64 = u16::MAX as u64;

/// `@kspy.format_checked(fmt)`: `fmt` unchanged when every precision of a `%.Nf` or `%.Ne`
/// clause in it is at most [`MAX_FORMAT_PRECISION`], an error naming the clause otherwise.
/// It reads the format string as kube-cel's `format` does (`%%` is a literal `%`; a
/// precision is the digits after `%.`), so what it lets through never reaches that panic.
fn format_checked(fmt: Arc<String>) -> ResolveResult {
    let mut chars = fmt.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        // The character after `%`: `%%`, a verb, or `.` and a precision.
        let Some((dot, '.')) = chars.next() else {
            continue;
        };
        let mut precision: u64 = 0;
        let mut end = dot + 1;
        while let Some(&(at, d)) = chars.peek()
            && let Some(d) = d.to_digit(10)
        {
            precision = precision.saturating_mul(10).saturating_add(u64::from(d));
            end = at + 1;
            chars.next();
        }
        if let Some((_, verb @ ('f' | 'e'))) = chars.next()
            && precision > MAX_FORMAT_PRECISION
        {
            let asked = fmt.get(dot + 1..end).unwrap_or_default();
            return Err(ExecutionError::function_error(
                "format",
                format!(
                    "the precision of a %.N{verb} clause is at most {MAX_FORMAT_PRECISION}, and \
                     this format string asks for {asked}: give a smaller one (%.2{verb})"
                ),
            ));
        }
    }
    Ok(Value::String(fmt))
}

/// `<string>.indexOf(<string>[, <int>])` as Kubernetes' CEL (cel-go's strings extension)
/// has it, and `<list>.indexOf(<value>)` comparing as `==` does. kube-cel 0.8's took an offset
/// out of range for a place to search from or to stop at: `'abc'.indexOf('b', -1)` found 1
/// (from 0), and an offset that is no int was read as 0, where the API server fails. Here,
/// as in cel-go, an offset (in characters) must lie within the string (`0 <= offset <
/// size`), else the evaluation fails, which denies; an empty search string is found at the
/// offset, whatever it is (`'abc'.indexOf('', 5) == 5`, as in cel-go). So, as in cel-go, a
/// non-empty search string in `''` fails: there is no offset within it.
fn index_of(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    match this {
        Value::String(s) => {
            let (search, offset) = search_arguments(ftx, &args)?;
            string_index_of(ftx, &s, &search, offset.unwrap_or(0)).map(Value::Int)
        }
        Value::List(list) => list_index_of(ftx, &list, &args, false),
        other => Err(ftx.error(format!(
            "indexOf takes a string or a list, not a {}",
            value_type(&other)
        ))),
    }
}

/// `<string>.lastIndexOf(<string>[, <int>])` as cel-go has it: the offset, when given, is
/// the last place a match may start, and must lie within the string, else the evaluation
/// fails (kube-cel 0.8 took one past the end as the end: `'abc'.lastIndexOf('c', 5)` found
/// 2); an empty search string is found at the offset, or at the end without one.
/// `<list>.lastIndexOf(<value>)` compares as `==` does.
fn last_index_of(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    match this {
        Value::String(s) => {
            let (search, offset) = search_arguments(ftx, &args)?;
            let offset = match offset {
                Some(offset) => offset,
                None if search.is_empty() => return Ok(Value::Int(char_count(&s))),
                None => char_count(&s) - 1,
            };
            string_last_index_of(ftx, &s, &search, offset).map(Value::Int)
        }
        Value::List(list) => list_index_of(ftx, &list, &args, true),
        other => Err(ftx.error(format!(
            "lastIndexOf takes a string or a list, not a {}",
            value_type(&other)
        ))),
    }
}

/// `<string>.replace(<string>, <string>[, <int>])` as cel-go has it: every occurrence, or the
/// first `n`; a negative `n` replaces them all. kube-cel 0.8 replaced none for a negative `n`
/// (`'a-b-c'.replace('-', '', -1)` stayed `'a-b-c'`) and read a count that is no int as
/// "all", where the API server fails.
fn replace(
    ftx: &FunctionContext,
    This(this): This<Arc<String>>,
    Arguments(args): Arguments,
) -> ResolveResult {
    let (from, to, limit) = match &args[..] {
        [Value::String(from), Value::String(to)] => (from, to, None),
        [Value::String(from), Value::String(to), Value::Int(n)] => {
            (from, to, usize::try_from(*n).ok())
        }
        _ => {
            return Err(ftx.error(format!(
                "replace takes the string to replace, its replacement and, optionally, an int \
                 count (got {})",
                args.iter().map(value_type).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    // The result is charged, a unit a byte, before it is built: `v.replace('', v)` is the
    // square of `v`'s length (an empty `from` matches before each character and at the end).
    let found = if from.is_empty() {
        this.chars().count() + 1
    } else {
        this.matches(from.as_str()).count()
    };
    let replaced = limit.map_or(found, |n| n.min(found));
    let built =
        (this.len() - replaced * from.len()).saturating_add(replaced.saturating_mul(to.len()));
    charge(u64::try_from(built).unwrap_or(u64::MAX))?;
    Ok(Value::String(Arc::new(match limit {
        Some(n) => this.replacen(from.as_str(), to, n),
        None => this.replace(from.as_str(), to),
    })))
}

/// `size(x)` and `x.size()` as CEL has them: a string's size is its number of characters
/// (Unicode code points), a list's its items, a map's its entries, bytes' their bytes. cel
/// 0.13 counted a string's bytes, so `size('本番障害') >= 10` held (12 bytes, 4 characters)
/// where the API server answers `false`, and a size disagreed with the offsets `substring`,
/// `charAt` and `indexOf` take, which count characters.
#[allow(clippy::cast_possible_wrap)] // a size fits an i64
fn size(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    let size = match &this {
        Value::String(s) => {
            // Counting characters reads every byte: charged, where cel-go charges a size as
            // one step, since a loop over `size(v)` of a 1 MB request value read 20 GB
            // uncounted.
            charge_read(s.len())?;
            s.chars().count()
        }
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.map.len(),
        other => {
            return Err(ftx.error(format!(
                "size takes a string, bytes, a list or a map, not a {}",
                value_type(other)
            )));
        }
    };
    Ok(Value::Int(size as i64))
}

/// `<string>.startsWith(<string>)`: cel's, with the bytes it compares (the prefix's, at most
/// the string's) charged to the evaluation's budget ([`charge_read`]).
fn starts_with(This(this): This<Arc<String>>, prefix: Arc<String>) -> ResolveResult {
    charge_read(this.len().min(prefix.len()))?;
    Ok(Value::Bool(this.starts_with(prefix.as_str())))
}

/// `<string>.endsWith(<string>)`: cel's, with the bytes it compares (the suffix's, at most the
/// string's) charged to the evaluation's budget ([`charge_read`]).
fn ends_with(This(this): This<Arc<String>>, suffix: Arc<String>) -> ResolveResult {
    charge_read(this.len().min(suffix.len()))?;
    Ok(Value::Bool(this.ends_with(suffix.as_str())))
}

/// `<string>.contains(<string>)`: cel's, with the bytes its search reads charged to the
/// evaluation's budget ([`charge_read`]): the string and the substring once each, as Rust's
/// substring search is linear in both (cel-go charges the product of their traversal costs,
/// the bound of a naive search). Other receivers (`contains` of a list or a map, which kspy's
/// type check does not offer) are left to cel's own.
fn contains(This(this): This<Value>, arg: Value) -> ResolveResult {
    match (&this, &arg) {
        (Value::String(s), Value::String(sub)) => {
            charge_read(s.len().saturating_add(sub.len()))?;
            Ok(Value::Bool(s.contains(sub.as_str())))
        }
        _ => kube_cel::cel::functions::contains(This(this), arg),
    }
}

/// `<string>.split(<string>[, <int>])` as cel-go has it (Go's `strings.Split` and
/// `strings.SplitN`): every piece, or at most `n` (the last holding the rest); none for `n ==
/// 0`; all for a negative `n`. An empty separator splits between characters: `'abc'.split('')`
/// is `['a', 'b', 'c']` and `''.split('')` is `[]`, where kube-cel 0.8 (Rust's `split`) added
/// an empty piece at each end (`['', 'a', 'b', 'c', '']`). A limit that is no int fails, where
/// kube-cel read it as "all".
fn split(
    ftx: &FunctionContext,
    This(this): This<Arc<String>>,
    Arguments(args): Arguments,
) -> ResolveResult {
    let (separator, limit) = match &args[..] {
        [Value::String(separator)] => (separator, -1),
        [Value::String(separator), Value::Int(n)] => (separator, *n),
        _ => {
            return Err(ftx.error(format!(
                "split takes a string separator and, optionally, an int limit (got {})",
                args.iter().map(value_type).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    charge_list("split", go_split_count(&this, separator, limit))?;
    let pieces = go_split(&this, separator, limit);
    Ok(Value::List(Arc::new(
        pieces
            .into_iter()
            .map(|p| Value::String(Arc::new(p.to_owned())))
            .collect(),
    )))
}

/// How many pieces [`go_split`] gives, counted without building them.
fn go_split_count(s: &str, separator: &str, n: i64) -> usize {
    let all = if separator.is_empty() {
        s.chars().count()
    } else {
        s.matches(separator).count() + 1
    };
    // A negative `n` means no limit.
    usize::try_from(n).map_or(all, |n| n.min(all))
}

/// Go's `strings.SplitN(s, separator, n)`.
fn go_split<'s>(s: &'s str, separator: &str, n: i64) -> Vec<&'s str> {
    // A negative `n` means no limit.
    let limit = usize::try_from(n).ok();
    if limit == Some(0) {
        return Vec::new();
    }
    if !separator.is_empty() {
        return match limit {
            Some(n) => s.splitn(n, separator).collect(),
            None => s.split(separator).collect(),
        };
    }
    // One piece per character, the last holding the rest when `n` is fewer.
    let chars = s.chars().count();
    let pieces = limit.map_or(chars, |n| n.min(chars));
    let mut out = Vec::with_capacity(pieces);
    let mut rest = s;
    while out.len() + 1 < pieces {
        let Some(c) = rest.chars().next() else { break };
        let (piece, after) = rest.split_at(c.len_utf8());
        out.push(piece);
        rest = after;
    }
    if pieces > 0 {
        out.push(rest);
    }
    out
}

/// `<list>.join([<string>])` as cel-go has it: the items, which must be strings, with the
/// separator (none without one) between them. kube-cel 0.8 wrote an item that is no string
/// in Rust's debug form (`[1, 2].join(',')` was `'Int(1),Int(2)'`) and read a separator that
/// is no string as none, where the API server fails.
fn join(
    ftx: &FunctionContext,
    This(items): This<Arc<Vec<Value>>>,
    Arguments(args): Arguments,
) -> ResolveResult {
    let separator = match &args[..] {
        [] => "",
        [Value::String(separator)] => separator.as_str(),
        _ => {
            return Err(ftx.error(format!(
                "join takes a string separator or none (got {})",
                args.iter().map(value_type).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let mut joined = String::new();
    for (i, item) in items.iter().enumerate() {
        let Value::String(s) = item else {
            return Err(ftx.error(format!(
                "join takes a list of strings, and item {i} is a {}: convert the items first \
                 (`….map(x, string(x)).join(…)`)",
                value_type(item)
            )));
        };
        if i > 0 {
            joined.push_str(separator);
        }
        joined.push_str(s);
    }
    Ok(Value::String(Arc::new(joined)))
}

/// The search string and the offset, if any, of `indexOf` and `lastIndexOf` on a string.
fn search_arguments(
    ftx: &FunctionContext,
    args: &[Value],
) -> Result<(Arc<String>, Option<i64>), ExecutionError> {
    match args {
        [Value::String(search)] => Ok((search.clone(), None)),
        [Value::String(search), Value::Int(offset)] => Ok((search.clone(), Some(*offset))),
        _ => Err(ftx.error(format!(
            "{} on a string takes a string to search for and, optionally, an int offset \
             (got {})",
            ftx.name,
            args.iter().map(value_type).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[allow(clippy::cast_possible_wrap)] // a string's length in characters fits an i64
fn char_count(s: &str) -> i64 {
    s.chars().count() as i64
}

/// The error of an offset outside `s` (cel-go's "index out of range").
fn offset_out_of_range(ftx: &FunctionContext, offset: i64, size: i64) -> ExecutionError {
    ftx.error(format!(
        "index out of range: {offset} (the string has {size} characters; an offset is from 0 \
         to {}): check the offset, or the string's size first",
        size - 1
    ))
}

#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn string_index_of(
    ftx: &FunctionContext,
    s: &str,
    search: &str,
    offset: i64,
) -> Result<i64, ExecutionError> {
    if search.is_empty() {
        return Ok(offset);
    }
    let size = char_count(s);
    if offset < 0 || offset >= size {
        return Err(offset_out_of_range(ftx, offset, size));
    }
    // Characters, not bytes: the offset and the answer count characters.
    let start = s
        .char_indices()
        .nth(offset as usize)
        .map_or(s.len(), |(at, _)| at);
    Ok(match s[start..].find(search) {
        Some(at) => offset + s[start..start + at].chars().count() as i64,
        None => -1,
    })
}

#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn string_last_index_of(
    ftx: &FunctionContext,
    s: &str,
    search: &str,
    offset: i64,
) -> Result<i64, ExecutionError> {
    if search.is_empty() {
        return Ok(offset);
    }
    let size = char_count(s);
    if offset < 0 || offset >= size {
        return Err(offset_out_of_range(ftx, offset, size));
    }
    // A match starts at character `offset` at the latest, so it ends before the byte where
    // character `offset + size(search)` starts.
    let end_char = offset as usize + search.chars().count();
    let end = s.char_indices().nth(end_char).map_or(s.len(), |(at, _)| at);
    Ok(match s[..end].rfind(search) {
        Some(at) => s[..at].chars().count() as i64,
        None => -1,
    })
}

/// The first (or last) index of `args[0]` in `list`, comparing as [`equals`] does: an error
/// where no item could equal it, as for [`is_in`].
#[allow(clippy::cast_possible_wrap)] // a list's length fits an i64
fn list_index_of(
    ftx: &FunctionContext,
    list: &[Value],
    args: &[Value],
    last: bool,
) -> ResolveResult {
    let [x] = args else {
        return Err(ftx.error(format!("{} on a list takes one value", ftx.name)));
    };
    let x_type = value_type(x);
    let mut other_type = None;
    let mut comparable = false;
    let mut found = None;
    for (i, item) in list.iter().enumerate() {
        let item_type = value_type(item);
        let equal = match comparability(x_type, item_type) {
            Comparability::SameType | Comparability::Null => {
                if item_type != "null_type" || x_type == "null_type" {
                    comparable = true;
                }
                item == x
            }
            Comparability::Numbers => {
                comparable = true;
                numbers_equal(x.clone(), item.clone())
            }
            Comparability::Never => {
                other_type.get_or_insert(item_type);
                false
            }
        };
        if equal {
            found = Some(i as i64);
            if !last {
                break;
            }
        }
    }
    match (found, other_type) {
        (None, Some(other)) if !comparable => Err(ftx.error(format!(
            "looking for a {x_type} in a list whose items are {other}s: values of different \
             types are never equal, so {} would always be -1; look for a value of the items' \
             type (convert it with int(…) or string(…))",
            ftx.name
        ))),
        _ => Ok(Value::Int(found.unwrap_or(-1))),
    }
}

/// The CEL type name of `v`, as `get_type().name()` gives it.
pub(crate) fn value_type(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Null => "null_type",
        _ => "other value",
    }
}

/// The name a chain of field selections is evaluated through ([`evaluated_form`]).
const SELECT: &str = "@kspy.select";

/// `@kspy.select(value, 'b', 'c')`: `value.b.c`, failing where a value selected from is no map.
/// cel 0.13 answers `false` there instead (`null.name`, `'busybox'.registry`, a list's
/// `.image`), and a negation or `!=` turned that into a guardrail that always held:
/// `!object.spec.containers.securityContext.privileged` (for `all(c, …)`) passed every pod,
/// `target.name != 'vault-agent'` every debug container without a target. CEL, and the
/// Kubernetes API server, make it an error, which denies. Only the value selected is copied
/// out, not each map on the way.
fn select(ftx: &FunctionContext) -> ResolveResult {
    let Some((root, fields)) = ftx.args.split_first() else {
        return Err(ftx.error("internal: @kspy.select takes a value and field names"));
    };
    let mut names = Vec::with_capacity(fields.len());
    for f in fields {
        match &f.expr {
            Expr::Literal(LiteralValue::String(name)) => names.push(name.inner()),
            _ => return Err(ftx.error("internal: @kspy.select takes field names")),
        }
    }
    let value = Value::resolve_val(root, ftx.ptx)?;
    match select_path(value.as_ref(), &names)? {
        Ok(selected) => Value::try_from(selected.as_ref()),
        Err((at, got)) => {
            let field = names[at];
            // Named when the chain starts at a variable: `target.name`, `variables.x.y`.
            let path = match &root.expr {
                Expr::Ident(var) => Some(
                    std::iter::once(var.as_str())
                        .chain(names[..at].iter().copied())
                        .collect::<Vec<_>>()
                        .join("."),
                ),
                _ => None,
            };
            let want = match (path, got == "null_type") {
                (Some(path), true) => format!(
                    "a map to select field {field:?} from ({path} is null: test it first, \
                     `{path} == null || …`)"
                ),
                (Some(path), false) => {
                    format!("a map to select field {field:?} from ({path} is a {got})")
                }
                (None, _) => format!("a map to select field {field:?} from"),
            };
            Err(ExecutionError::UnexpectedType { got, want })
        }
    }
}

/// What `names` select from `value`, borrowed as long as the maps lend it; or the index of
/// the name that met a value that is no map, and that value's type.
#[allow(clippy::type_complexity)] // a value, or where and why there is none
fn select_path<'v>(
    mut value: &'v dyn Val,
    names: &[&str],
) -> Result<Result<std::borrow::Cow<'v, dyn Val>, (usize, String)>, ExecutionError> {
    use kube_cel::cel::common::types::CelString;
    for (i, name) in names.iter().enumerate() {
        let Some(map) = value.downcast_ref::<CelMap>() else {
            return Ok(Err((i, value.get_type().name().to_owned())));
        };
        let key = CelString::from(*name);
        match kube_cel::cel::common::traits::Indexer::get(map, &key)? {
            std::borrow::Cow::Borrowed(v) => value = v,
            std::borrow::Cow::Owned(v) => {
                return Ok(match select_path(v.as_ref(), &names[i + 1..])? {
                    Ok(rest) => Ok(std::borrow::Cow::Owned(rest.into_owned())),
                    Err((at, got)) => Err((i + 1 + at, got)),
                });
            }
        }
    }
    Ok(Ok(std::borrow::Cow::Borrowed(value)))
}

/// The calls [`kube_cel_call`] makes: kube-cel's (and cel's) own functions under names kspy
/// registers its versions over.
const KUBE_CEL_CALLS: [&str; 20] = [
    "sets.contains(a, b)",
    "sets.equivalent(a, b)",
    "sets.intersects(a, b)",
    "a.distinct()",
    "a.compareTo(b)",
    "a.isGreaterThan(b)",
    "a.isLessThan(b)",
    "int(a)",
    "uint(a)",
    "quantity(a)",
    "isQuantity(a)",
    "cidr(a)",
    "isCIDR(a)",
    "isCIDRv4(a)",
    "isCIDRv6(a)",
    "a.containsCIDR(b)",
    "string(a)",
    "double(a)",
    "timestamp(a)",
    "duration(a)",
];

/// `call` (one of [`KUBE_CEL_CALLS`]) evaluated by kube-cel's and cel's own functions, with `a`
/// and `b` bound: for what kspy's version of a function leaves to the one it replaces.
fn kube_cel_call(ftx: &FunctionContext, call: &str, a: Value, b: Option<&Value>) -> ResolveResult {
    use kube_cel::KubeCelExt;
    use std::sync::LazyLock;
    static KUBE_CEL: LazyLock<Context<'static>> = LazyLock::new(|| Context::default().with_all());
    static PROGRAMS: LazyLock<Vec<(&'static str, kube_cel::cel::Program)>> = LazyLock::new(|| {
        KUBE_CEL_CALLS
            .into_iter()
            .filter_map(|call| {
                kube_cel::cel::Program::compile(call)
                    .ok()
                    .map(|program| (call, program))
            })
            .collect()
    });
    let Some((_, program)) = PROGRAMS.iter().find(|(known, _)| *known == call) else {
        return Err(ftx.error(format!("internal: no kube-cel call {call:?}")));
    };
    let mut ctx = KUBE_CEL.new_inner_scope();
    ctx.add_variable_from_value("a", a);
    if let Some(b) = b {
        ctx.add_variable_from_value("b", b.clone());
    }
    program.execute(&ctx)
}

/// Whether `s` is written as Kubernetes' `resource.ParseQuantity` reads a quantity: a sign, digits
/// with or without a fraction, and a suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`, `Ki` …
/// `Ei`, or an exponent `e3`, `E-2`), nothing before or after. kube-cel 0.8 trimmed white space
/// first and read a number with signs or dots anywhere in it, so `quantity(' 1Gi ')` was a
/// quantity where the API server fails.
fn kube_quantity_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let digits_from = |mut at: usize| {
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    if b.is_empty() {
        return false;
    }
    let mut at = usize::from(matches!(b[0], b'+' | b'-'));
    at = digits_from(at);
    if at < b.len() && b[at] == b'.' {
        at = digits_from(at + 1);
    }
    let suffix = &s[at..];
    let mut end = at;
    while end < b.len() && b"eEinumkKMGTP".contains(&b[end]) {
        end += 1;
    }
    if end < b.len() && matches!(b[end], b'+' | b'-') {
        end += 1;
    }
    if digits_from(end) != b.len() {
        return false;
    }
    matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || (suffix.len() > 1 && suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i64>().is_ok())
}

/// `quantity(<string>)`: kube-cel's, given only a string written as Kubernetes writes a
/// quantity ([`kube_quantity_syntax`]).
fn quantity(ftx: &FunctionContext, s: Arc<String>) -> ResolveResult {
    if !kube_quantity_syntax(&s) {
        return Err(ftx.error(format!(
            "{s:?} is no quantity: quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (as Kubernetes writes them: '1Gi', \
             '500m', '1.5', '1e3')"
        )));
    }
    kube_cel_call(ftx, "quantity(a)", Value::String(s), None)
}

/// `isQuantity(<string>)`: whether `quantity()` takes it.
fn is_quantity(ftx: &FunctionContext, s: Arc<String>) -> ResolveResult {
    if !kube_quantity_syntax(&s) {
        return Ok(Value::Bool(false));
    }
    kube_cel_call(ftx, "isQuantity(a)", Value::String(s), None)
}

/// `int(x)` as cel-go has it: a double converts when it lies strictly between the least and
/// the greatest int, truncated; NaN, the infinities and anything at or past the ends fail.
/// cel 0.13 converted NaN to 0 (`int(double('NaN')) <= 10` held) and clamped at the ends. A
/// timestamp converts to its Unix seconds (rounded down, as Go's `Unix()`), a duration to its
/// nanoseconds (failing past an int), both of which cel 0.13 refused. Anything else converts
/// as cel's own `int` does.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn to_int(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match this {
        Value::Float(v) => {
            if v.is_nan() || v <= i64::MIN as f64 || v >= i64::MAX as f64 {
                Err(ftx.error(format!(
                    "integer overflow: {v} is no int (an int lies strictly between \
                     -9223372036854775808 and 9223372036854775807)"
                )))
            } else {
                Ok(Value::Int(v as i64))
            }
        }
        Value::Timestamp(t) => Ok(Value::Int(t.timestamp())),
        Value::Duration(d) => d.num_nanoseconds().map(Value::Int).ok_or_else(|| {
            ftx.error(format!(
                "integer overflow: {} seconds is more nanoseconds than an int holds",
                d.num_seconds()
            ))
        }),
        other => kube_cel_call(ftx, "int(a)", other, None),
    }
}

/// `uint(x)` as cel-go has it: a double converts when it lies from 0 to below 2^64, truncated;
/// NaN, the infinities, negatives and anything at or past 2^64 fail. A string with a sign
/// fails, as Go's `strconv.ParseUint` has it (Rust's reads `'+1'`). Anything else converts as
/// cel's own `uint` does.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn to_uint(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match this {
        Value::Float(v) => {
            if v.is_nan() || v < 0.0 || v >= u64::MAX as f64 {
                Err(ftx.error(format!(
                    "unsigned integer overflow: {v} is no uint (a uint lies from 0 to \
                     18446744073709551615)"
                )))
            } else {
                Ok(Value::UInt(v as u64))
            }
        }
        Value::String(s) if s.starts_with('+') => Err(ftx.error(format!(
            "type conversion error from 'string' to 'uint': {s:?} has a sign (a uint is \
             written in digits only)"
        ))),
        other => kube_cel_call(ftx, "uint(a)", other, None),
    }
}
