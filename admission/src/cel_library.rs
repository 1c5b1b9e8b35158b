//! Library functions kspy registers in place of kube-cel's own, where kube-cel 0.8's would
//! take a judgement down or answer wrongly on what a request can hold. Each keeps its
//! name, receiver and results; only what failed becomes an evaluation error, which denies.
//!
//! Found by the mutation tests (`admission/tests/mutated_policies.rs`):
//! - `sum()` added integers unchecked: `[9223372036854775807, 1].sum()` panicked in a debug
//!   build and wrapped to a negative number in a release one, so a guardrail such as
//!   `….sum() <= limit` held for a sum past any limit.

use std::sync::Arc;

use kube_cel::cel::extractors::This;
use kube_cel::cel::{Context, ExecutionError, ResolveResult, Value};

/// Registers kspy's versions over kube-cel's in `ctx`.
pub(crate) fn register(ctx: &mut Context<'_>) {
    ctx.add_function("sum", sum);
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
