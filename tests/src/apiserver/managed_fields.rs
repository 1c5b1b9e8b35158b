//! `metadata.managedFields`, as the API server's field manager records them for every create,
//! update and patch (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager`,
//! `sigs.k8s.io/structured-merge-diff`): one `Update` entry per manager, API version and
//! subresource, with the time and the `FieldsV1` set of the fields the manager set.
//!
//! The set is computed, as the real one, from the request's object after decoding and
//! defaulting and before admission (so webhooks see it, and what admission plugins add is
//! owned by nobody), against the live object: the fields added or changed. Faithful enough
//! for a client to meet real shapes: `f:` for fields and map keys, `k:{…}` for the items of
//! Pod's associative lists (containers by name, volume mounts by mountPath, ports by
//! containerPort and protocol, …), `.` for a non-leaf field that did not exist before, leaves
//! as `{}`; other lists are atomic. Left out as upstream does: `apiVersion`, `kind`, the
//! system fields of `metadata` (`stripMetaManager`), and what the endpoint resets (`status`
//! on the pod itself; all but `spec.ephemeralContainers` on `ephemeralcontainers`; all but
//! `status` on `status`). A manager loses the fields another manager's update changes; an
//! entry left empty is dropped. Not modelled: server-side apply (`Apply` entries), and a
//! request's own `managedFields` (ignored, not honoured).

use serde_json::{Map, Value, json};

/// The `fieldManager` of a request, else the User-Agent's product (`managerOrUserAgent`:
/// the part before the first `/`).
pub fn manager(field_manager: Option<&str>, user_agent: &str) -> String {
    match field_manager {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => user_agent.split('/').next().unwrap_or_default().to_string(),
    }
}

/// The key fields of Pod's associative lists (`x-kubernetes-list-map-keys`), by field name.
fn list_keys(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "containerStatuses"
        | "initContainerStatuses"
        | "ephemeralContainerStatuses"
        | "resizePolicy" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "ports" => &["containerPort", "protocol"],
        "conditions" => &["type"],
        "hostAliases" | "podIPs" | "hostIPs" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "readinessGates" => &["conditionType"],
        _ => return None,
    })
}

/// `k:{"name":"app"}`: the item's key fields, as compact JSON with sorted keys.
fn item_key(item: &Value, keys: &[&str]) -> String {
    let fields: Map<String, Value> = keys
        .iter()
        .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    format!("k:{}", Value::Object(fields))
}

/// The FieldsV1 set of what `new` adds or changes relative to `old` (`None`: nothing).
fn changed(new: &Value, old: Option<&Value>) -> Option<Value> {
    let old = old.filter(|o| !o.is_null());
    if old == Some(new) {
        return None;
    }
    let Some(fields) = new.as_object().filter(|m| !m.is_empty()) else {
        // A scalar, an empty object or an atomic list: a leaf.
        return Some(json!({}));
    };
    let old_fields = old.and_then(Value::as_object);
    let mut out = Map::new();
    for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
        let before = old_fields.and_then(|o| o.get(k));
        let sub = match (v, list_keys(k)) {
            (Value::Array(items), Some(keys)) if !items.is_empty() => {
                changed_items(items, before, keys)
            }
            _ => changed(v, before),
        };
        if let Some(sub) = sub {
            out.insert(format!("f:{k}"), sub);
        }
    }
    if out.is_empty() {
        return None;
    }
    if old.is_none() {
        out.insert(".".into(), json!({}));
    }
    Some(Value::Object(out))
}

/// [`changed`] for an associative list: its items by key.
fn changed_items(items: &[Value], old: Option<&Value>, keys: &[&str]) -> Option<Value> {
    let old = old.filter(|o| !o.is_null());
    let old_items = old.and_then(Value::as_array);
    let mut out = Map::new();
    for item in items {
        let key = item_key(item, keys);
        let before = old_items
            .into_iter()
            .flatten()
            .find(|o| item_key(o, keys) == key);
        if let Some(sub) = changed(item, before) {
            out.insert(key, sub);
        }
    }
    if out.is_empty() {
        return None;
    }
    if old.is_none() {
        out.insert(".".into(), json!({}));
    }
    Some(Value::Object(out))
}

/// What the endpoint keeps of a set: `stripMetaManager`'s removals, then the fields the
/// subresource's strategy resets.
fn strip(mut set: Value, subresource: &str) -> Option<Value> {
    let top = set.as_object_mut()?;
    top.remove("f:apiVersion");
    top.remove("f:kind");
    if let Some(meta) = top.get_mut("f:metadata").and_then(Value::as_object_mut) {
        for k in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
        ] {
            meta.remove(&format!("f:{k}"));
        }
        meta.remove(".");
        if meta.is_empty() {
            top.remove("f:metadata");
        }
    }
    match subresource {
        "status" => top.retain(|k, _| k == "f:status"),
        "ephemeralcontainers" => {
            let eph = top
                .get("f:spec")
                .and_then(|s| s.get("f:ephemeralContainers"))
                .cloned();
            top.clear();
            if let Some(eph) = eph {
                top.insert("f:spec".into(), json!({ "f:ephemeralContainers": eph }));
            }
        }
        _ => {
            top.remove("f:status");
        }
    }
    top.remove(".");
    (!top.is_empty()).then_some(set)
}

/// `a ∪ b` of two FieldsV1 sets.
fn union(a: &mut Value, b: &Value) {
    let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) else {
        return;
    };
    for (k, v) in b {
        match a.get_mut(k) {
            Some(existing) => union(existing, v),
            None => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `a − b`: the leaves of `b` leave `a`; a node left without members goes too. Returns
/// whether `a` is empty afterwards.
fn subtract(a: &mut Value, b: &Value) -> bool {
    let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object()) else {
        return false;
    };
    for (k, bv) in bm {
        let Some(av) = am.get_mut(k) else { continue };
        let a_leaf = av.as_object().is_some_and(Map::is_empty);
        let b_leaf = bv.as_object().is_some_and(Map::is_empty);
        if a_leaf {
            // A leaf of `a` goes when `b` has the same path (leaf or node).
            am.remove(k);
        } else if !b_leaf && subtract(av, bv) {
            am.remove(k);
        }
    }
    // A node holding only its "." marker lost everything it described.
    if am.len() == 1 && am.contains_key(".") {
        am.clear();
    }
    am.is_empty()
}

/// Records an `Update` by `manager` on `subresource` ("" for the object itself): `new` gets
/// `old`'s entries, with this manager's fields (what `new` adds or changes relative to `old`)
/// merged into its entry (`time` now), and removed from the other managers' entries. `old`
/// is `None` on create.
pub fn record_update(new: &mut Value, old: Option<&Value>, manager: &str, subresource: &str) {
    // On create the live object is the Go zero value, which has metadata, spec and
    // spec.containers (not omitempty): those are not "added".
    let zero = json!({"metadata": {}, "spec": {"containers": []}, "status": {}});
    let base = old.unwrap_or(&zero);
    let mut entries: Vec<Value> = base["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut probe = new.clone();
    if let Some(meta) = probe.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let set = changed(&probe, Some(base)).and_then(|s| strip(s, subresource));
    if let Some(set) = &set {
        entries.retain_mut(|e| {
            let same = e["manager"] == manager
                && e["operation"] == "Update"
                && e["apiVersion"] == "v1"
                && e["subresource"].as_str().unwrap_or_default() == subresource;
            same || !subtract(&mut e["fieldsV1"], set)
        });
        let now = format!("{:.0}", k8s_openapi::jiff::Timestamp::now());
        match entries.iter_mut().find(|e| {
            e["manager"] == manager
                && e["operation"] == "Update"
                && e["apiVersion"] == "v1"
                && e["subresource"].as_str().unwrap_or_default() == subresource
        }) {
            Some(e) => {
                union(&mut e["fieldsV1"], set);
                e["time"] = json!(now);
            }
            None => {
                let mut e = json!({
                    "manager": manager,
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": now,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": set,
                });
                if !subresource.is_empty() {
                    e["subresource"] = json!(subresource);
                }
                entries.push(e);
            }
        }
        // sortEncodedManagedFields: operation, time, manager, apiVersion, subresource.
        entries.sort_by_key(|e| {
            ["operation", "time", "manager", "apiVersion", "subresource"]
                .map(|k| e[k].as_str().unwrap_or_default().to_string())
        });
    }
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_ephemeral_patch() {
        let mut pod = json!({
            "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                "securityContext": {}
            }
        });
        record_update(&mut pod, None, "kubectl-create", "");
        let e = &pod["metadata"]["managedFields"][0];
        assert_eq!(e["manager"], "kubectl-create");
        assert_eq!(
            e["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}, "f:protocol": {}
                        }}
                    }},
                    "f:securityContext": {}
                }
            })
        );
        let old = pod.clone();
        pod["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": "busybox"}]);
        record_update(&mut pod, Some(&old), "kubectl", "ephemeralcontainers");
        let entries = pod["metadata"]["managedFields"].as_array().unwrap().clone();
        assert_eq!(entries.len(), 2);
        let e = entries.iter().find(|e| e["manager"] == "kubectl").unwrap();
        assert_eq!(e["subresource"], "ephemeralcontainers");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:spec": {"f:ephemeralContainers": {".": {}, "k:{\"name\":\"dbg\"}": {
                ".": {}, "f:image": {}, "f:name": {}
            }}}})
        );
        // Another manager changing the image takes it over.
        let old = pod.clone();
        pod["spec"]["containers"][0]["image"] = json!("nginx:2");
        record_update(&mut pod, Some(&old), "deployer", "");
        let create = pod["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "kubectl-create")
            .unwrap()
            .clone();
        assert!(
            create["fieldsV1"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
                .get("f:image")
                .is_none()
        );
        assert_eq!(manager(None, "kubectl/v1.33.0 (linux/amd64)"), "kubectl");
        assert_eq!(manager(Some("kspy"), "kube-rs/1"), "kspy");
    }
}
