//! Field selections checked against the Kubernetes types the variables hold.
//!
//! `container.securityContext.privilged` compiles, then fails at every evaluation (denying
//! every request) or, as `has(container.securityContext.privilged)`, is false at every one,
//! which can turn a validation into one that never fires. The CEL variables `object`,
//! `oldObject`, `namespaceObject`, `container` and `target` hold Kubernetes objects whose
//! fields [`crate::kube_shape`] knows, so a selection of a field their type lacks is found at
//! load. Paths are followed through `[…]`, through the variables of `all`, `exists`,
//! `filter` and the other macros, and through a policy's `variables.NAME` whose expression
//! selects such a value (`sc: container.securityContext`), as far as the value's type is
//! known; beyond that (a function's result, a literal) nothing is checked.

use kube_cel::cel::common::ast::{Expr, IdedExpr, LiteralValue};

use crate::cel_check::{closest, entry_children};
use crate::kube_shape::{self, Shape};

/// A selection of a field the value's Kubernetes type does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKubeField {
    /// The value selected from, as a path from its variable: `object.spec.containers[*]`.
    pub path: String,
    /// The field selected.
    pub field: String,
    /// The variable the value comes from: `container` for `variables.sc` holding
    /// `container.securityContext`.
    pub root: &'static str,
    /// A field of the type with a close name.
    pub suggestion: Option<String>,
    /// True when kspy builds the value itself from its Kubernetes types (`container`,
    /// `target`, `namespaceObject`), so the field can never be there; false for what the API
    /// server sent as it was (`object`, `oldObject`, the parts of `request`), which a newer
    /// cluster may give fields these types lack.
    pub never_present: bool,
}

/// What the fields check found in one expression.
pub(crate) struct FieldCheck {
    /// Every selection of a field its value's type lacks, in the order written.
    pub unknown: Vec<UnknownKubeField>,
    /// The Kubernetes type of the expression's value, when known: a policy variable holding
    /// it passes it on to the expressions that read `variables.NAME`.
    pub value: Option<Typed>,
}

/// Checks the selections in `e`, with `variables` the policy's variables `e` may read and the
/// types of those whose value's type is known.
pub(crate) fn check(e: &IdedExpr, variables: &[(String, Option<Typed>)]) -> FieldCheck {
    let mut unknown = Vec::new();
    let value = walk(e, &mut Vec::new(), variables, &mut unknown);
    FieldCheck { unknown, value }
}

/// A value whose Kubernetes type is known.
#[derive(Debug, Clone)]
pub(crate) struct Typed {
    shape: &'static Shape,
    path: String,
    root: &'static str,
    never_present: bool,
}

/// `variables.NAME` (or `variables['NAME']`) when `operand` is the policy's `variables` and
/// not a macro variable of that name: NAME's value, as its own expression typed it.
fn policy_variable(
    operand: &Expr,
    name: &str,
    bound: &[(String, Option<Typed>)],
    variables: &[(String, Option<Typed>)],
) -> Option<Typed> {
    let Expr::Ident(ident) = operand else {
        return None;
    };
    if ident != "variables" || bound.iter().any(|(b, _)| b == ident) {
        return None;
    }
    let (_, typed) = variables.iter().find(|(v, _)| v == name)?;
    // Named as the reader wrote it: `variables.sc` lacks `privilged`, and the variable's own
    // expression says what it holds.
    typed.clone().map(|t| Typed {
        path: format!("variables.{name}"),
        ..t
    })
}
/// The shape a variable's value has, and whether kspy builds it from the types.
fn variable(name: &str) -> Option<Typed> {
    let (root, shape, never_present) = match name {
        "object" => ("object", &*kube_shape::POD, false),
        "oldObject" => ("oldObject", &*kube_shape::POD, false),
        // Its own fields are kspy's list, checked before (`CelError::UnknownField`); theirs
        // are as the API server sent them.
        "request" => ("request", &*kube_shape::REQUEST, false),
        "namespaceObject" => ("namespaceObject", &*kube_shape::NAMESPACE, true),
        "container" => ("container", &*kube_shape::DEBUG_CONTAINER, true),
        "target" => ("target", &*kube_shape::CONTAINER, true),
        _ => return None,
    };
    Some(Typed {
        shape: shape.as_ref()?,
        path: name.to_owned(),
        root,
        never_present,
    })
}

/// Checks `e` and what it contains, and returns `e`'s type when known. `bound` holds the
/// macro variables in scope, innermost last, with their element types. Recursion is bounded
/// by the depth check that runs before.
fn walk(
    e: &IdedExpr,
    bound: &mut Vec<(String, Option<Typed>)>,
    variables: &[(String, Option<Typed>)],
    found: &mut Vec<UnknownKubeField>,
) -> Option<Typed> {
    match &e.expr {
        Expr::Ident(name) => match bound.iter().rev().find(|(b, _)| b == name) {
            Some((_, typed)) => typed.clone(),
            None => variable(name),
        },
        // `has(x.f)` is a select too (its `test` flag set), checked as a read.
        Expr::Select(s) => {
            if let Some(value) = policy_variable(&s.operand.expr, &s.field, bound, variables) {
                return Some(value);
            }
            let operand = walk(&s.operand, bound, variables, found)?;
            select(operand, &s.field, found)
        }
        Expr::Call(call) => {
            if call.func_name == "_[_]"
                && let [operand, key] = call.args.as_slice()
                && let Expr::Literal(LiteralValue::String(name)) = &key.expr
                && let Some(value) = policy_variable(&operand.expr, name.inner(), bound, variables)
            {
                return Some(value);
            }
            if let Some(t) = call.target.as_deref() {
                walk(t, bound, variables, found);
            }
            let mut args = call.args.iter().map(|a| walk(a, bound, variables, found));
            let operand = args.next().flatten();
            // The key's own selections are checked too.
            args.for_each(drop);
            match (call.func_name.as_str(), operand, call.args.get(1)) {
                ("_[_]", Some(operand), Some(key)) => index(operand, &key.expr, found),
                _ => None,
            }
        }
        Expr::Comprehension(c) => {
            let range = walk(&c.iter_range, bound, variables, found);
            walk(&c.accu_init, bound, variables, found);
            // The variable ranges over a list's elements (or a map's keys, untyped). The
            // parser kspy uses expands no two-variable forms; were one here, both would go
            // untyped.
            let element = range
                .filter(|_| c.iter_var2.is_none())
                .and_then(|r| match r.shape {
                    Shape::List(e) => Some(Typed {
                        shape: e,
                        path: format!("{}[*]", r.path),
                        root: r.root,
                        never_present: r.never_present,
                    }),
                    _ => None,
                });
            let before = bound.len();
            bound.push((c.iter_var.clone(), element));
            if let Some(second) = &c.iter_var2 {
                bound.push((second.clone(), None));
            }
            bound.push((c.accu_var.clone(), None));
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                walk(part, bound, variables, found);
            }
            bound.truncate(before);
            None
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk(x, bound, variables, found);
            }
            None
        }
        Expr::Map(m) => {
            entry_children(&m.entries, &mut |x| drop(walk(x, bound, variables, found)));
            None
        }
        Expr::Struct(s) => {
            entry_children(&s.entries, &mut |x| drop(walk(x, bound, variables, found)));
            None
        }
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

/// `operand.field`: the field's type, or a finding when an object type lacks it.
fn select(operand: Typed, field: &str, found: &mut Vec<UnknownKubeField>) -> Option<Typed> {
    match operand.shape {
        Shape::Object(fields) => match fields.get(field) {
            Some(shape) => Some(Typed {
                shape,
                path: format!("{}.{field}", operand.path),
                root: operand.root,
                never_present: operand.never_present,
            }),
            None => {
                // `request`'s own fields are kspy's list (refused when read directly, by
                // `CelError::UnknownField`): read through a variable, the same field is never
                // there either.
                let requests_own = kube_shape::REQUEST
                    .as_ref()
                    .is_some_and(|request| std::ptr::eq(operand.shape, request));
                found.push(UnknownKubeField {
                    suggestion: closest(field, fields.keys().copied()),
                    path: operand.path,
                    field: field.to_owned(),
                    root: operand.root,
                    never_present: operand.never_present || requests_own,
                });
                None
            }
        },
        Shape::Map(value) => Some(Typed {
            shape: value,
            path: format!("{}[*]", operand.path),
            root: operand.root,
            never_present: operand.never_present,
        }),
        Shape::List(_) | Shape::Scalar => None,
    }
}

/// `operand[key]`: a list's element, a map's value, or an object's field named by a literal.
fn index(operand: Typed, key: &Expr, found: &mut Vec<UnknownKubeField>) -> Option<Typed> {
    match (operand.shape, key) {
        (Shape::List(element) | Shape::Map(element), _) => Some(Typed {
            shape: element,
            path: format!("{}[*]", operand.path),
            root: operand.root,
            never_present: operand.never_present,
        }),
        (Shape::Object(_), Expr::Literal(LiteralValue::String(field))) => {
            select(operand, field.inner(), found)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_cel::cel::Program;

    fn found(source: &str) -> Vec<(String, String, Option<String>, bool)> {
        let program = Program::compile(source).expect("parses");
        check(program.expression(), &[])
            .unknown
            .into_iter()
            .map(|f| (f.path, f.field, f.suggestion, f.never_present))
            .collect()
    }

    fn one(
        path: &str,
        field: &str,
        suggestion: Option<&str>,
        never: bool,
    ) -> Vec<(String, String, Option<String>, bool)> {
        vec![(path.into(), field.into(), suggestion.map(Into::into), never)]
    }

    #[test]
    fn fields_the_types_have_pass() {
        for source in [
            "container.securityContext.privileged == true",
            "has(container.securityContext) && container.securityContext.capabilities.add.all(c, c != 'SYS_ADMIN')",
            "container.targetContainerName == target.name",
            "object.spec.containers.all(c, c.securityContext.runAsNonRoot)",
            "object.metadata.labels['team'] == namespaceObject.metadata.labels.team",
            "object.spec.volumes.exists(v, has(v.hostPath) && v.hostPath.path == '/')",
            "object.spec.containers[0].resources.limits.cpu == '1'",
            "object.metadata.annotations.all(k, k.startsWith('x'))",
            "container['securityContext']['privileged']",
            "'sre' in request.userInfo.groups && request.kind.kind == 'Pod'",
            "request.userInfo.extra['idp'].exists(i, i == 'sso')",
            // Open values and function results are not followed.
            "object.spec.containers.filter(c, c.tty).all(c, c.anything)",
            "variables.x.anything && request.userInfo.username != ''",
            // A macro variable named as a variable shadows it.
            "[1].all(object, object.nothing == 1)",
        ] {
            assert_eq!(found(source), vec![], "{source}");
        }
    }

    #[test]
    fn a_field_the_type_lacks_is_found_with_its_path_and_a_suggestion() {
        assert_eq!(
            found("container.securityContext.privilged"),
            one(
                "container.securityContext",
                "privilged",
                Some("privileged"),
                true
            )
        );
        assert_eq!(
            found("has(target.securityContext.runAsUsr)"),
            one(
                "target.securityContext",
                "runAsUsr",
                Some("runAsUser"),
                true
            )
        );
        assert_eq!(
            found("object.spec.containers.all(c, c.securityContext.privilged)"),
            one(
                "object.spec.containers[*].securityContext",
                "privilged",
                Some("privileged"),
                false
            )
        );
        assert_eq!(
            found("object.spec.initContainers.exists(c, c.imag == '')"),
            one(
                "object.spec.initContainers[*]",
                "imag",
                Some("image"),
                false
            )
        );
        assert_eq!(
            found("namespaceObject.metadata['label']"),
            one("namespaceObject.metadata", "label", Some("labels"), true)
        );
        assert_eq!(
            found("oldObject.spec.ephemeralContainers[0].targetContainerNme"),
            one(
                "oldObject.spec.ephemeralContainers[*]",
                "targetContainerNme",
                Some("targetContainerName"),
                false
            )
        );
        // `target` is a container of the Pod, which names no target of its own.
        assert_eq!(
            found("target.targetContainerName == ''"),
            one("target", "targetContainerName", None, true)
        );
        assert_eq!(
            found("'sre' in request.userInfo.group"),
            one("request.userInfo", "group", Some("groups"), false)
        );
        assert_eq!(found("object.spc.x || container.zzz").len(), 2);
        // Inside list and map literals too.
        assert_eq!(
            found("{'k': [container.securityContext.privilged]}.k"),
            one(
                "container.securityContext",
                "privilged",
                Some("privileged"),
                true
            )
        );
    }
}
