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

use std::sync::Arc;

use kube_cel::cel::extractors::This;
use kube_cel::cel::{Context, ExecutionError, ResolveResult, Value};

use crate::cel::MAX_VARIABLE_BYTES;

/// The longest list `lists.range` builds: what a policy's variables may hold together, at
/// the 8 bytes an integer counts for there.
pub const MAX_RANGE: i64 = (MAX_VARIABLE_BYTES / 8) as i64;

/// Registers kspy's versions over kube-cel's in `ctx`.
pub(crate) fn register(ctx: &mut Context<'_>) {
    ctx.add_function("sum", sum);
    ctx.add_function("lists.range", lists_range);
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
