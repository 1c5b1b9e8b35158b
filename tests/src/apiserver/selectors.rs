//! List options: `labelSelector`, `fieldSelector`, `watch`, `resourceVersion`,
//! `timeoutSeconds`, `allowWatchBookmarks`, `sendInitialEvents`, `limit`, `continue`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;

use super::status::ApiError;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch);
            }
            ')' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    /// Parses the query-string form (`app=web,tier!=db,env in (a,b),!legacy`).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "unable to parse requirement: invalid label selector: {s:?}"
            ))
        };
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(LabelReq::NotExists(k.trim().to_string()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(LabelReq::NotEq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push(LabelReq::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(LabelReq::NotIn(
                    k.trim().into(),
                    set_values(rest).ok_or_else(bad)?,
                ));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(LabelReq::In(
                    k.trim().into(),
                    set_values(rest).ok_or_else(bad)?,
                ));
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                reqs.push(LabelReq::Exists(part));
            } else {
                return Err(bad());
            }
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => labels.get(k) == Some(v),
            LabelReq::NotEq(k, v) => labels.get(k) != Some(v),
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            LabelReq::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// A parsed pod field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
];

fn pod_field(pod: &Pod, field: &str) -> String {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    match field {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.restartPolicy" => spec.and_then(|s| s.restart_policy.clone()),
        "spec.schedulerName" => spec.and_then(|s| s.scheduler_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.phase" => status.and_then(|s| s.phase.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        _ => None,
    }
    .unwrap_or_default()
}

impl FieldSelector {
    /// Parses `metadata.name=web,status.phase!=Failed`; unknown fields are a 400 like the real server's.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            if !POD_FIELDS.contains(&k) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            reqs.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Whether the pod satisfies every requirement.
    pub fn matches(&self, pod: &Pod) -> bool {
        self.0
            .iter()
            .all(|(k, eq, v)| (pod_field(pod, k) == *v) == *eq)
    }
}

/// List and watch options from the query string.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`
    pub labels: LabelSelector,
    /// `fieldSelector`
    pub fields: FieldSelector,
    /// `watch=true|1`
    pub watch: bool,
    /// `resourceVersion`
    pub resource_version: Option<String>,
    /// `timeoutSeconds`
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`
    pub allow_bookmarks: bool,
    /// `sendInitialEvents`
    pub send_initial_events: bool,
    /// `limit`: the most items one page holds; absent or 0 for all.
    pub limit: Option<usize>,
    /// `continue`: where the page starts, from the previous page's `metadata.continue`.
    pub continue_after: Option<ContinueKey>,
}

/// Where a paged list goes on: after the object of this namespace and name. The token is
/// opaque to clients; like the real server's, it is base64 of a small JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueKey {
    /// The namespace of the last object of the previous page.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ContinueKey {
    /// The token a page ends with when `last` is its last object.
    pub fn token(namespace: &str, name: &str) -> String {
        use base64::Engine as _;
        let key =
            serde_json::json!({"v": "meta.k8s.io/v1", "start": format!("{namespace}/{name}\u{0}")});
        base64::engine::general_purpose::URL_SAFE.encode(key.to_string())
    }

    /// Reads a token; a 400 with the real server's wording when it is not one.
    fn parse(token: &str) -> Result<Self, ApiError> {
        use base64::Engine as _;
        let invalid =
            |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .map_err(|e| invalid(&e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
        if value["v"] != "meta.k8s.io/v1" {
            return Err(invalid("continue key has an unknown version"));
        }
        let start = value["start"]
            .as_str()
            .and_then(|s| s.strip_suffix('\u{0}'))
            .and_then(|s| s.split_once('/'))
            .ok_or_else(|| invalid("continue key has no valid start"))?;
        Ok(Self {
            namespace: start.0.to_owned(),
            name: start.1.to_owned(),
        })
    }
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true" || v == "1")
}

impl ListOptions {
    /// Parses the query parameters.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        Ok(Self {
            labels: q
                .get("labelSelector")
                .map(|s| LabelSelector::parse(s))
                .transpose()?
                .unwrap_or_default(),
            fields: q
                .get("fieldSelector")
                .map(|s| FieldSelector::parse(s))
                .transpose()?
                .unwrap_or_default(),
            watch: truthy(q.get("watch")),
            resource_version: q.get("resourceVersion").filter(|s| !s.is_empty()).cloned(),
            timeout_seconds: q.get("timeoutSeconds").and_then(|s| s.parse().ok()),
            allow_bookmarks: truthy(q.get("allowWatchBookmarks")),
            send_initial_events: truthy(q.get("sendInitialEvents")),
            limit: match q.get("limit").filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => match s.parse::<i64>() {
                    // As the real server: a limit of 0 or below lists everything.
                    Ok(n) => usize::try_from(n).ok().filter(|n| *n > 0),
                    Err(e) => {
                        return Err(ApiError::bad_request(format!(
                            "limit: invalid value {s:?}: {e}"
                        )));
                    }
                },
            },
            continue_after: q
                .get("continue")
                .filter(|s| !s.is_empty())
                .map(|t| ContinueKey::parse(t))
                .transpose()?,
        })
    }

    /// Whether a pod is selected.
    pub fn selects(&self, pod: &Pod) -> bool {
        let empty = BTreeMap::new();
        self.labels
            .matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
            && self.fields.matches(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels: BTreeMap<String, String> =
            [("app".into(), "web".into()), ("env".into(), "prod".into())].into();
        for (sel, want) in [
            ("app=web", true),
            ("app==web,env=prod", true),
            ("app!=web", false),
            ("env in (prod, dev)", true),
            ("env notin (prod)", false),
            ("app", true),
            ("!app", false),
            ("!legacy", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&labels),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn field_selectors() {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        assert!(
            FieldSelector::parse("metadata.name=web")
                .unwrap()
                .matches(&p)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=web")
                .unwrap()
                .matches(&p)
        );
        assert_eq!(FieldSelector::parse("spec.bogus=1").unwrap_err().code, 400);
    }
}
