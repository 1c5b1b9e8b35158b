//! Strategic merge patch for Pods (`application/strategic-merge-patch+json`).
//!
//! Follows `k8s.io/apimachinery/pkg/util/strategicpatch`: maps merge recursively and `null`
//! deletes a key; lists whose Go field carries `patchStrategy:"merge"` merge element by
//! element on their `patchMergeKey` (e.g. `spec.ephemeralContainers` by `name`), other
//! lists are replaced. Directives honoured: `$patch: replace|delete|merge` in maps and list
//! elements, `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`.
//! The merge keys are those of the core/v1 Pod types (see [`list_strategy`]).

use serde_json::{Map, Value};

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// The patch (or a nested map of it) is not a JSON object.
    #[error("strategic merge patch must be a JSON object, got {0}")]
    NotAnObject(String),
    /// A list element lacks the list's merge key.
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The offending element, as JSON.
        element: String,
        /// The merge key.
        key: String,
    },
    /// An unknown `$patch` value.
    #[error("unknown patch type: {0} in map: {1}")]
    UnknownDirective(String, String),
}

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the original (`atomic`, the default).
    Replace,
    /// Elements are merged by this key.
    MergeByKey(&'static str),
    /// A set of primitives: the patch's values are added.
    MergePrimitives,
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The merge strategy of the list at `path` (field names from the Pod root, no indices).
pub fn list_strategy(path: &[String]) -> ListStrategy {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["metadata", "ownerReferences"] => ListStrategy::MergeByKey("uid"),
        ["metadata", "finalizers"] => ListStrategy::MergePrimitives,
        ["spec", "volumes"] => ListStrategy::MergeByKey("name"),
        ["spec", c] if CONTAINER_LISTS.contains(c) => ListStrategy::MergeByKey("name"),
        ["spec", "imagePullSecrets"] => ListStrategy::MergeByKey("name"),
        ["spec", "hostAliases"] => ListStrategy::MergeByKey("ip"),
        ["spec", "topologySpreadConstraints"] => ListStrategy::MergeByKey("topologyKey"),
        ["spec", "schedulingGates"] => ListStrategy::MergeByKey("name"),
        ["spec", "resourceClaims"] => ListStrategy::MergeByKey("name"),
        ["spec", c, "ports"] if CONTAINER_LISTS.contains(c) => {
            ListStrategy::MergeByKey("containerPort")
        }
        ["spec", c, "env"] if CONTAINER_LISTS.contains(c) => ListStrategy::MergeByKey("name"),
        ["spec", c, "volumeMounts"] if CONTAINER_LISTS.contains(c) => {
            ListStrategy::MergeByKey("mountPath")
        }
        ["spec", c, "volumeDevices"] if CONTAINER_LISTS.contains(c) => {
            ListStrategy::MergeByKey("devicePath")
        }
        ["status", "conditions"] => ListStrategy::MergeByKey("type"),
        _ => ListStrategy::Replace,
    }
}

/// Applies `patch` to `original` (both whole objects) and returns the result.
pub fn apply(original: &Value, patch: &Value) -> Result<Value, StrategicError> {
    let Value::Object(p) = patch else {
        return Err(StrategicError::NotAnObject(patch.to_string()));
    };
    let mut out = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut path = Vec::new();
    match merge_map(&mut out, p, &mut path)? {
        MapOutcome::Keep => Ok(Value::Object(out)),
        MapOutcome::Delete => Ok(Value::Object(Map::new())),
    }
}

enum MapOutcome {
    Keep,
    Delete,
}

fn merge_map(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<MapOutcome, StrategicError> {
    if let Some(directive) = patch.get("$patch") {
        match directive.as_str() {
            Some("delete") => return Ok(MapOutcome::Delete),
            Some("replace") => {
                let mut fresh = Map::new();
                let mut rest = patch.clone();
                rest.remove("$patch");
                merge_map(&mut fresh, &rest, path)?;
                *orig = fresh;
                return Ok(MapOutcome::Keep);
            }
            Some("merge") => {}
            other => {
                return Err(StrategicError::UnknownDirective(
                    other
                        .map(str::to_string)
                        .unwrap_or_else(|| directive.to_string()),
                    Value::Object(patch.clone()).to_string(),
                ));
            }
        }
    }

    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (orig.get_mut(field), v) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                orig.remove(k);
            }
            Value::Object(pm) => {
                let mut child = match orig.get(k) {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                path.push(k.clone());
                let outcome = merge_map(&mut child, pm, path)?;
                path.pop();
                match outcome {
                    MapOutcome::Keep => {
                        orig.insert(k.clone(), Value::Object(child));
                    }
                    MapOutcome::Delete => {
                        orig.remove(k);
                    }
                }
            }
            Value::Array(items) => {
                path.push(k.clone());
                let merged = merge_list(orig.get(k), items, path)?;
                path.pop();
                orig.insert(k.clone(), Value::Array(merged));
            }
            other => {
                orig.insert(k.clone(), other.clone());
            }
        }
    }

    for (k, v) in patch {
        if let (Some(field), Value::Array(order)) = (k.strip_prefix("$setElementOrder/"), v)
            && let Some(Value::Array(list)) = orig.get_mut(field)
        {
            path.push(field.to_string());
            reorder(list, order, list_strategy(path));
            path.pop();
        }
    }

    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(MapOutcome::Keep)
}

fn clean(v: &Value, path: &mut Vec<String>) -> Result<Option<Value>, StrategicError> {
    match v {
        Value::Object(m) => {
            let mut fresh = Map::new();
            match merge_map(&mut fresh, m, path)? {
                MapOutcome::Keep => Ok(Some(Value::Object(fresh))),
                MapOutcome::Delete => Ok(None),
            }
        }
        other => Ok(Some(other.clone())),
    }
}

fn merge_list(
    orig: Option<&Value>,
    patch: &[Value],
    path: &mut Vec<String>,
) -> Result<Vec<Value>, StrategicError> {
    let original: Vec<Value> = match orig {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    match list_strategy(path) {
        ListStrategy::Replace => {
            let mut out = Vec::new();
            for item in patch {
                if let Some(v) = clean(item, path)? {
                    out.push(v);
                }
            }
            Ok(out)
        }
        ListStrategy::MergePrimitives => {
            let mut out = original;
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(out)
        }
        ListStrategy::MergeByKey(key) => {
            // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
            if patch
                .iter()
                .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                let mut out = Vec::new();
                for item in patch.iter().filter(|i| i.get("$patch").is_none()) {
                    if let Some(v) = clean(item, path)? {
                        out.push(v);
                    }
                }
                return Ok(out);
            }
            let mut out = original;
            for item in patch {
                let Value::Object(pm) = item else {
                    return Err(StrategicError::NotAnObject(item.to_string()));
                };
                let Some(kv) = pm.get(key) else {
                    return Err(StrategicError::MissingMergeKey {
                        element: item.to_string(),
                        key: key.to_string(),
                    });
                };
                let pos = out.iter().position(|o| o.get(key) == Some(kv));
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.retain(|o| o.get(key) != Some(kv));
                    continue;
                }
                match pos {
                    Some(i) => {
                        let mut m = match &out[i] {
                            Value::Object(m) => m.clone(),
                            _ => Map::new(),
                        };
                        match merge_map(&mut m, pm, path)? {
                            MapOutcome::Keep => out[i] = Value::Object(m),
                            MapOutcome::Delete => {
                                out.remove(i);
                            }
                        }
                    }
                    None => {
                        if let Some(v) = clean(item, path)? {
                            out.push(v);
                        }
                    }
                }
            }
            Ok(out)
        }
    }
}

/// `$setElementOrder`: elements named in `order` come first, in that order; others keep theirs.
fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let ident = |v: &Value| -> Option<Value> {
        match strategy {
            ListStrategy::MergeByKey(k) => v.get(k).cloned(),
            _ => Some(v.clone()),
        }
    };
    let wanted: Vec<Value> = order.iter().filter_map(ident).collect();
    let mut ordered = Vec::with_capacity(list.len());
    for w in &wanted {
        if let Some(i) = list.iter().position(|x| ident(x).as_ref() == Some(w)) {
            ordered.push(list.remove(i));
        }
    }
    ordered.append(list);
    *list = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}, "finalizers": ["a"]},
            "spec": {
                "containers": [{"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}]}],
                "ephemeralContainers": [{"name": "dbg1", "image": "busybox"}],
                "tolerations": [{"key": "x"}]
            }
        })
    }

    #[test]
    fn ephemeral_containers_merge_by_name() {
        let out = apply(
            &pod(),
            &json!({"spec": {"ephemeralContainers": [{"name": "dbg2", "image": "alpine"}]}}),
        )
        .unwrap();
        let ecs = out["spec"]["ephemeralContainers"].as_array().unwrap();
        assert_eq!(ecs.len(), 2);
        assert_eq!(ecs[0]["name"], "dbg1");
        assert_eq!(ecs[1]["name"], "dbg2");
        // Same name merges into the existing element.
        let out = apply(
            &pod(),
            &json!({"spec": {"ephemeralContainers": [{"name": "dbg1", "tty": true}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ephemeralContainers"][0],
            json!({"name": "dbg1", "image": "busybox", "tty": true})
        );
    }

    #[test]
    fn nested_merge_keys_nulls_and_atomic_lists() {
        let out = apply(
            &pod(),
            &json!({
                "metadata": {"labels": {"tier": null}, "finalizers": ["b"]},
                "spec": {
                    "containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}],
                    "tolerations": [{"key": "y"}]
                }
            }),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            out["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx");
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
    }

    #[test]
    fn directives() {
        let out = apply(
            &pod(),
            &json!({"spec": {"ephemeralContainers": [{"name": "dbg1", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["ephemeralContainers"], json!([]));
        let out = apply(
            &pod(),
            &json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"new": "1"}));
        let out = apply(
            &pod(),
            &json!({"spec": {
                "$setElementOrder/ephemeralContainers": [{"name": "dbg2"}, {"name": "dbg1"}],
                "ephemeralContainers": [{"name": "dbg2", "image": "alpine"}]
            }}),
        )
        .unwrap();
        assert_eq!(out["spec"]["ephemeralContainers"][0]["name"], "dbg2");
        let out = apply(
            &pod(),
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let err = apply(
            &pod(),
            &json!({"spec": {"ephemeralContainers": [{"image": "x"}]}}),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("does not contain declared merge key: name")
        );
        assert!(apply(&pod(), &json!([1])).is_err());
    }
}
