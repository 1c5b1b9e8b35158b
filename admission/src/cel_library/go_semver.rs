//! `semver()` and its comparisons, as Kubernetes' CEL library has them.

use std::sync::Arc;

use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::{FunctionContext, ResolveResult, Value};

use super::{kube_cel_call, value_type};

/// A semantic version as Kubernetes' CEL holds it (Go's blang/semver): equal and ordered by
/// precedence, which leaves build metadata out (`1.2.3+build` equals `1.2.3`), and parsed with
/// Kubernetes' normalization when asked. kube-cel 0.8 ordered by the `semver` crate's `Ord`,
/// which breaks a tie on build metadata: `semver('1.2.3+patched').isGreaterThan(semver('1.2.3'))`
/// was true where Kubernetes answers false, so a guardrail requiring a version past a known bad
/// one let the bad one through with a build suffix; and its normalization took what
/// Kubernetes' refuses (`V1.2.3`, `1.2-beta`, `1.2.3.4` as `1.2.3`).
#[derive(Debug, Clone)]
struct GoSemver(semver::Version);

impl PartialEq for GoSemver {
    fn eq(&self, other: &Self) -> bool {
        self.0.cmp_precedence(&other.0).is_eq()
    }
}

impl Eq for GoSemver {}

impl kube_cel::cel::objects::Opaque for GoSemver {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Semver"
    }
}

/// Kubernetes' `normalizeAndParse` before the parse: a leading `v` removed, leading zeros
/// removed from each of the first three dot-separated parts, and a missing minor or patch
/// number added (not to a short version with a pre-release or build).
fn go_semver_normalize(s: &str) -> Result<String, String> {
    let s = s.strip_prefix('v').unwrap_or(s);
    let mut parts: Vec<String> = s
        .splitn(3, '.')
        .map(|p| {
            if p.len() <= 1 {
                return p.to_owned();
            }
            let trimmed = p.trim_start_matches('0');
            if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
                trimmed.to_owned()
            } else {
                format!("0{trimmed}")
            }
        })
        .collect();
    if parts.len() < 3 {
        if parts.last().is_some_and(|p| p.contains(['+', '-'])) {
            return Err("short version cannot contain PreRelease/Build meta data".to_owned());
        }
        parts.resize(3, "0".to_owned());
    }
    Ok(parts.join("."))
}

/// The version `semver(s[, normalize])` reads, or why there is none.
fn go_semver(args: &[Value]) -> Result<Result<GoSemver, String>, String> {
    let (s, normalize) = match args {
        [Value::String(s)] => (s, false),
        [Value::String(s), Value::Bool(normalize)] => (s, *normalize),
        _ => {
            return Err(format!(
                "takes a string and, optionally, a bool (normalize) (got {})",
                args.iter().map(value_type).collect::<Vec<_>>().join(", ")
            ));
        }
    };
    let text = if normalize {
        match go_semver_normalize(s) {
            Ok(text) => text,
            Err(err) => return Ok(Err(format!("invalid semver {s:?}: {err}"))),
        }
    } else {
        s.to_string()
    };
    Ok(semver::Version::parse(&text)
        .map(GoSemver)
        .map_err(|err| format!("invalid semver {s:?}: {err}")))
}

/// `semver(<string>[, <bool>])`.
pub(super) fn semver_value(ftx: &FunctionContext, Arguments(args): Arguments) -> ResolveResult {
    match go_semver(&args) {
        Ok(Ok(v)) => Ok(Value::Opaque(Arc::new(v))),
        Ok(Err(err)) => Err(ftx.error(err)),
        Err(usage) => Err(ftx.error(format!("semver {usage}"))),
    }
}

/// `isSemver(<string>[, <bool>])`: whether `semver()` takes it.
pub(super) fn is_semver(ftx: &FunctionContext, Arguments(args): Arguments) -> ResolveResult {
    match go_semver(&args) {
        Ok(v) => Ok(Value::Bool(v.is_ok())),
        Err(usage) => Err(ftx.error(format!("isSemver {usage}"))),
    }
}

/// The [`GoSemver`] in `v`, if it holds one.
fn as_semver(v: &Value) -> Option<&GoSemver> {
    match v {
        Value::Opaque(o) => o.downcast_ref::<GoSemver>(),
        _ => None,
    }
}

/// `<Semver>.major()`, `.minor()`, `.patch()`: as Go's `int64(…)` of the number.
#[allow(clippy::cast_possible_wrap)] // as Kubernetes converts it
fn semver_part(
    ftx: &FunctionContext,
    this: &Value,
    part: fn(&semver::Version) -> u64,
) -> ResolveResult {
    match as_semver(this) {
        Some(v) => Ok(Value::Int(part(&v.0) as i64)),
        None => Err(ftx.error(format!(
            "{} takes a semver (semver('1.2.3')), not a {}",
            ftx.name,
            value_type(this)
        ))),
    }
}

pub(super) fn semver_major(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    semver_part(ftx, &this, |v| v.major)
}

pub(super) fn semver_minor(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    semver_part(ftx, &this, |v| v.minor)
}

pub(super) fn semver_patch(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    semver_part(ftx, &this, |v| v.patch)
}

/// `a.compareTo(b)`, `a.isGreaterThan(b)`, `a.isLessThan(b)`: by precedence for two
/// semvers ([`GoSemver`]); kube-cel's own for anything else (quantities), which it is asked
/// through a context of its own, since these names are registered here over its functions.
fn compared_by(
    ftx: &FunctionContext,
    this: Value,
    args: &[Value],
    answer: fn(std::cmp::Ordering) -> Value,
) -> ResolveResult {
    let [other] = args else {
        return Err(ftx.error(format!("{} takes one value to compare with", ftx.name)));
    };
    match (as_semver(&this), as_semver(other)) {
        (Some(a), Some(b)) => Ok(answer(a.0.cmp_precedence(&b.0))),
        (Some(_), None) | (None, Some(_)) => Err(ftx.error(format!(
            "{} compares two semvers (or two quantities), and only one side here is a semver",
            ftx.name
        ))),
        (None, None) => kube_cel_call(ftx, &format!("a.{}(b)", ftx.name), this, Some(other)),
    }
}

pub(super) fn compare_to(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    compared_by(ftx, this, &args, |o| {
        Value::Int(match o {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        })
    })
}

pub(super) fn is_greater_than(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    compared_by(ftx, this, &args, |o| Value::Bool(o.is_gt()))
}

pub(super) fn is_less_than(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    compared_by(ftx, this, &args, |o| Value::Bool(o.is_lt()))
}
