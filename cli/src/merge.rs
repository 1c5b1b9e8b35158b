//! Strategic merge of a partial container spec (`--custom FILE`) onto a container, with the
//! merge keys Kubernetes declares for `Container`:
//!
//! - objects merge field by field; a `null` value removes the field;
//! - `env` merges by `name`, `volumeMounts` by `mountPath`, `volumeDevices` by `devicePath`,
//!   `ports` by `containerPort`, `resizePolicy` by `resourceName`;
//! - every other list (`args`, `envFrom`, `capabilities.add`, …) is replaced whole.
//!
//! This is what `kubectl debug --custom` does (it calls `StrategicMergePatch` with
//! `corev1.Container`), without the `$patch` directives nobody writes in these files.

use serde_json::{Map, Value};

/// The merge key of a list field of a container, if it is merged by key.
fn merge_key(path: &[&str]) -> Option<&'static str> {
    match path {
        ["env"] => Some("name"),
        ["volumeMounts"] => Some("mountPath"),
        ["volumeDevices"] => Some("devicePath"),
        ["ports"] => Some("containerPort"),
        ["resizePolicy"] => Some("resourceName"),
        _ => None,
    }
}

/// Merges `patch` onto `base` (both container objects as JSON).
pub fn merge_container(base: &mut Value, patch: &Value) {
    merge_at(base, patch, &mut Vec::new());
}

fn merge_at<'a>(base: &mut Value, patch: &'a Value, path: &mut Vec<&'a str>) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => merge_objects(b, p, path),
        (base, patch) => *base = strip_nulls(patch),
    }
}

fn merge_objects<'a>(
    base: &mut Map<String, Value>,
    patch: &'a Map<String, Value>,
    path: &mut Vec<&'a str>,
) {
    for (key, pv) in patch {
        if pv.is_null() {
            base.remove(key);
            continue;
        }
        path.push(key.as_str());
        match (base.get_mut(key), pv) {
            (Some(Value::Array(bl)), Value::Array(pl)) => match merge_key(path) {
                Some(k) => merge_keyed_lists(bl, pl, k),
                None => *bl = pl.iter().map(strip_nulls).collect(),
            },
            (Some(bv @ Value::Object(_)), Value::Object(_)) => merge_at(bv, pv, path),
            _ => {
                base.insert(key.clone(), strip_nulls(pv));
            }
        }
        path.pop();
    }
}

fn merge_keyed_lists(base: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key);
        match id.and_then(|id| base.iter_mut().find(|b| b.get(key) == Some(id))) {
            Some(existing) => {
                if let (Value::Object(e), Value::Object(p)) = (existing, item) {
                    merge_objects(e, p, &mut Vec::new());
                }
            }
            None => base.push(strip_nulls(item)),
        }
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_and_null_removes() {
        let mut base = json!({"name": "d", "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_PTRACE"]}}, "tty": true});
        merge_container(
            &mut base,
            &json!({"securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true}, "tty": null}),
        );
        assert_eq!(
            base,
            json!({"name": "d", "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true, "capabilities": {"add": ["SYS_PTRACE"]}}})
        );
    }

    #[test]
    fn plain_lists_are_replaced() {
        let mut base =
            json!({"securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}, "args": ["a"]});
        merge_container(
            &mut base,
            &json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}, "args": ["b", "c"]}),
        );
        assert_eq!(
            base,
            json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}, "args": ["b", "c"]})
        );
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let mut base = json!({
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]
        });
        merge_container(
            &mut base,
            &json!({
                "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"mountPath": "/data", "readOnly": false}]
            }),
        );
        assert_eq!(
            base,
            json!({
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": false}, {"name": "cache", "mountPath": "/cache"}]
            })
        );
    }

    #[test]
    fn nested_lists_named_like_keyed_ones_are_replaced() {
        // Only top-level container fields carry merge keys.
        let mut base = json!({"securityContext": {"env": [{"name": "A"}]}});
        merge_container(
            &mut base,
            &json!({"securityContext": {"env": [{"name": "B"}]}}),
        );
        assert_eq!(base, json!({"securityContext": {"env": [{"name": "B"}]}}));
    }
}
