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
//! (`webhook/bench/instructions.sh`); here each pattern is compiled once ([`Regexes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};
use regex::Regex;

use crate::cel::MAX_VARIABLE_BYTES;

/// The longest list `lists.range` builds: what a policy's variables may hold together, at
/// the 8 bytes an integer counts for there.
pub const MAX_RANGE: i64 = (MAX_VARIABLE_BYTES / 8) as i64;

/// Registers kspy's versions over kube-cel's in `ctx`.
pub(crate) fn register(ctx: &mut Context<'_>) {
    ctx.add_function("sum", sum);
    ctx.add_function("lists.range", lists_range);
    ctx.add_function("matches", matches);
    ctx.add_function("find", find);
    ctx.add_function("findAll", find_all);
}

/// The most patterns kept compiled. Policies hold a handful of constant patterns; one taken
/// from request data could make each request's differ, so past this many a pattern is
/// compiled for its call only, and memory stays bounded.
pub(crate) const MAX_CACHED_REGEXES: usize = 256;

/// Compiled regular expressions by pattern, shared by every judging thread.
pub(crate) struct Regexes;

impl Regexes {
    /// `pattern` compiled, from the cache when it was compiled before; the `regex` crate's
    /// error when it does not compile (not cached: an invalid pattern fails each time).
    pub(crate) fn get(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Mutex::default);
        if let Some(re) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pattern)
        {
            return Ok(re.clone());
        }
        // Compiled outside the lock: another thread's lookups do not wait for it.
        let re = Arc::new(Regex::new(pattern)?);
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < MAX_CACHED_REGEXES {
            cache.insert(pattern.to_owned(), re.clone());
        }
        Ok(re)
    }
}

/// `<string>.matches(<string>)`: cel's, with the pattern compiled once.
fn matches(
    ftx: &FunctionContext,
    This(this): This<Arc<String>>,
    pattern: Arc<String>,
) -> Result<bool, ExecutionError> {
    match Regexes::get(&pattern) {
        Ok(re) => Ok(re.is_match(&this)),
        Err(err) => Err(ftx.error(format!("'{pattern}' not a valid regex:\n{err}"))),
    }
}

/// `<string>.find(<string>)`: kube-cel's, with the pattern compiled once. The first match,
/// or `""`.
fn find(This(this): This<Arc<String>>, pattern: Arc<String>) -> ResolveResult {
    let re = Regexes::get(&pattern)
        .map_err(|e| ExecutionError::function_error("find", format!("invalid regex: {e}")))?;
    let found = re
        .find(&this)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(Value::String(Arc::new(found)))
}

/// `<string>.findAll(<string>[, <int>])`: kube-cel's, with the pattern compiled once. Every
/// match, or the first `n` of them; a negative `n` takes them all.
fn find_all(This(this): This<Arc<String>>, Arguments(args): Arguments) -> ResolveResult {
    let Some(Value::String(pattern)) = args.first() else {
        return Err(ExecutionError::function_error(
            "findAll",
            "expected string pattern",
        ));
    };
    let re = Regexes::get(pattern)
        .map_err(|e| ExecutionError::function_error("findAll", format!("invalid regex: {e}")))?;
    let limit = match args.get(1) {
        Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let found = re
        .find_iter(&this)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
        .collect();
    Ok(Value::List(Arc::new(found)))
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

/// `lists.range(n)`: `[0, 1, …, n - 1]`, for `n` from 0 to [`MAX_RANGE`].
fn lists_range(n: i64) -> ResolveResult {
    if n < 0 {
        return Err(ExecutionError::function_error(
            "lists.range",
            "range argument must be non-negative",
        ));
    }
    if n > MAX_RANGE {
        return Err(ExecutionError::function_error(
            "lists.range",
            format!("lists.range({n}) would build a list of more than {MAX_RANGE} items"),
        ));
    }
    Ok(Value::List(Arc::new((0..n).map(Value::Int).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_compiled_once_and_an_invalid_one_each_time() {
        let a = Regexes::get("^kspy-[a-z]+$").expect("valid");
        let b = Regexes::get("^kspy-[a-z]+$").expect("valid");
        assert!(Arc::ptr_eq(&a, &b), "the second lookup compiled again");
        assert!(a.is_match("kspy-cache"));
        let err = Regexes::get("(unclosed").expect_err("invalid");
        assert!(err.to_string().contains("unclosed"), "{err}");
    }
}
