//! The in-memory object store: pods, namespaces (with their ServiceAccounts) and nodes, one
//! resourceVersion counter (as etcd's revision), and the event history watches resume from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use tokio::sync::broadcast;

use super::status::ApiError;

/// How many pod events are kept for watches that resume from a resourceVersion.
const HISTORY: usize = 4096;

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// A change to a pod.
#[derive(Debug, Clone)]
pub struct PodEvent {
    /// Revision of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The pod after the change (for DELETED: the last state).
    pub pod: Arc<Pod>,
    /// The pod before the change (MODIFIED only).
    pub prev: Option<Arc<Pod>>,
}

/// Pods, namespaces and nodes.
pub struct Store {
    rv: u64,
    namespaces: BTreeMap<String, Namespace>,
    nodes: BTreeMap<String, Node>,
    pods: BTreeMap<(String, String), Pod>,
    history: VecDeque<PodEvent>,
    tx: broadcast::Sender<PodEvent>,
    /// `events.k8s.io/v1` Events, as stored (namespace in their metadata).
    events: Vec<serde_json::Value>,
    /// ServiceAccounts (as JSON) by namespace and name; what the ServiceAccount admission
    /// plugin looks up on pod creates.
    service_accounts: BTreeMap<(String, String), serde_json::Value>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl Store {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            rv: 1,
            namespaces: BTreeMap::new(),
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            history: VecDeque::new(),
            tx,
            events: Vec::new(),
            service_accounts: BTreeMap::new(),
        }
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores an Event created in `namespace`: gives it a name (from `generateName`), uid,
    /// resource version and creation time, as the real store does; returns it as stored.
    pub fn add_event(
        &mut self,
        namespace: &str,
        mut event: serde_json::Value,
    ) -> serde_json::Value {
        let rv = self.bump();
        if let Some(meta) = event
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            // Creation has checked that there is a name or a generateName.
            super::defaults::name_from_generate_name(meta);
            meta.insert("namespace".into(), namespace.into());
            meta.insert("uid".into(), format!("event-uid-{rv}").into());
            meta.insert("resourceVersion".into(), rv.to_string().into());
            meta.insert(
                "creationTimestamp".into(),
                format!("{:.0}", k8s_openapi::jiff::Timestamp::now()).into(),
            );
        }
        self.events.push(event.clone());
        event
    }

    /// The Event `name` in `namespace`.
    pub fn event(&self, namespace: &str, name: &str) -> Option<&serde_json::Value> {
        self.events
            .iter()
            .find(|e| e["metadata"]["namespace"] == namespace && e["metadata"]["name"] == name)
    }

    /// Replaces the Event `name` in `namespace` (which exists) with `event` at a new
    /// resource version; returns it as stored.
    pub fn replace_event(
        &mut self,
        namespace: &str,
        name: &str,
        mut event: serde_json::Value,
    ) -> serde_json::Value {
        let rv = self.bump();
        event["metadata"]["resourceVersion"] = rv.to_string().into();
        if let Some(slot) = self
            .events
            .iter_mut()
            .find(|e| e["metadata"]["namespace"] == namespace && e["metadata"]["name"] == name)
        {
            *slot = event.clone();
        }
        event
    }

    /// The Events stored in `namespace`, oldest first.
    pub fn events(&self, namespace: &str) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .filter(|e| e["metadata"]["namespace"] == namespace)
            .cloned()
            .collect()
    }

    /// The current revision.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Subscribes to pod events (call under the same lock as the snapshot to miss nothing).
    pub fn subscribe(&self) -> broadcast::Receiver<PodEvent> {
        self.tx.subscribe()
    }

    fn emit(&mut self, ev: PodEvent) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    /// Events with a revision above `rv`, or 410 when history no longer reaches back that far.
    pub fn events_since(&self, rv: u64) -> Result<Vec<PodEvent>, ApiError> {
        if let Some(first) = self.history.front()
            && rv + 1 < first.rv
            && self.history.len() == HISTORY
        {
            return Err(ApiError::expired(rv, first.rv));
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Adds or replaces a namespace, with its ServiceAccount `default` when it has none (which
    /// the serviceaccounts controller creates in every namespace).
    pub fn put_namespace(&mut self, mut ns: Namespace) -> Namespace {
        let rv = self.bump();
        ns.metadata.resource_version = Some(rv.to_string());
        let name = ns.metadata.name.clone().unwrap_or_default();
        self.namespaces.insert(name.clone(), ns.clone());
        if self.service_account(&name, "default").is_none() {
            self.put_service_account(&name, "default", None);
        }
        ns
    }

    /// Adds or replaces the ServiceAccount `name` in `namespace`, with its
    /// `automountServiceAccountToken` when given.
    pub fn put_service_account(
        &mut self,
        namespace: &str,
        name: &str,
        automount_token: Option<bool>,
    ) -> serde_json::Value {
        let rv = self.bump();
        let mut sa = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": super::defaults::random_uid(),
                "resourceVersion": rv.to_string(),
            }
        });
        if let Some(a) = automount_token {
            sa["automountServiceAccountToken"] = a.into();
        }
        self.service_accounts
            .insert((namespace.to_string(), name.to_string()), sa.clone());
        sa
    }

    /// The ServiceAccount `name` in `namespace`.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&serde_json::Value> {
        self.service_accounts
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// A namespace by name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.get(name)
    }

    /// All namespaces.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.namespaces.values().cloned().collect()
    }

    /// Adds or replaces a node.
    pub fn put_node(&mut self, mut node: Node) -> Node {
        let rv = self.bump();
        node.metadata.resource_version = Some(rv.to_string());
        let name = node.metadata.name.clone().unwrap_or_default();
        self.nodes.insert(name, node.clone());
        node
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// All nodes.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes.values().cloned().collect()
    }

    /// A pod by namespace and name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.get(&(namespace.to_string(), name.to_string()))
    }

    /// Pods of one namespace, or of all.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<Pod> {
        self.pods
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Stores a new pod; 409 AlreadyExists when the name is taken.
    pub fn create_pod(&mut self, mut pod: Pod) -> Result<Pod, ApiError> {
        let k = key(&pod);
        if self.pods.contains_key(&k) {
            return Err(ApiError::already_exists("pods", &k.1));
        }
        let rv = self.bump();
        pod.metadata.resource_version = Some(rv.to_string());
        self.pods.insert(k, pod.clone());
        self.emit(PodEvent {
            rv,
            kind: EventType::Added,
            pod: Arc::new(pod.clone()),
            prev: None,
        });
        Ok(pod)
    }

    /// Replaces a pod; when `expected_rv` is given and differs, 409 Conflict.
    pub fn update_pod(&mut self, mut pod: Pod, expected_rv: Option<&str>) -> Result<Pod, ApiError> {
        let k = key(&pod);
        let Some(current) = self.pods.get(&k) else {
            return Err(ApiError::not_found("pods", &k.1));
        };
        if let Some(want) = expected_rv
            && current.metadata.resource_version.as_deref() != Some(want)
        {
            return Err(ApiError::conflict("pods", &k.1));
        }
        // etcd3's GuaranteedUpdate skips a write whose encoding equals the stored one: the
        // object keeps its resourceVersion and watchers see no MODIFIED.
        pod.metadata.resource_version = current.metadata.resource_version.clone();
        if pod == *current {
            return Ok(pod);
        }
        let prev = Arc::new(current.clone());
        let rv = self.bump();
        pod.metadata.resource_version = Some(rv.to_string());
        self.pods.insert(k, pod.clone());
        self.emit(PodEvent {
            rv,
            kind: EventType::Modified,
            pod: Arc::new(pod.clone()),
            prev: Some(prev),
        });
        Ok(pod)
    }

    /// Changes a pod in place (kubelet status updates, recorded in `managedFields` as the
    /// kubelet's `status` writes); `None` when the pod is gone.
    pub fn modify_pod(
        &mut self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Pod),
    ) -> Option<Pod> {
        let old = self.pod(namespace, name)?.clone();
        let mut pod = old.clone();
        f(&mut pod);
        if let (Ok(old), Ok(mut new)) = (serde_json::to_value(&old), serde_json::to_value(&pod)) {
            super::managed_fields::record_update(&mut new, Some(&old), "kubelet", "status");
            if let Ok(recorded) = serde_json::from_value(new) {
                pod = recorded;
            }
        }
        self.update_pod(pod, None).ok()
    }

    /// Removes a pod and returns its last state.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> Result<Pod, ApiError> {
        let Some(mut pod) = self.pods.remove(&(namespace.to_string(), name.to_string())) else {
            return Err(ApiError::not_found("pods", name));
        };
        let rv = self.bump();
        pod.metadata.resource_version = Some(rv.to_string());
        self.emit(PodEvent {
            rv,
            kind: EventType::Deleted,
            pod: Arc::new(pod.clone()),
            prev: None,
        });
        Ok(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p
    }

    #[test]
    fn revisions_increase_and_history_replays() {
        let mut s = Store::new();
        let a = s.create_pod(pod("a")).unwrap();
        let rv_a: u64 = a
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert!(matches!(s.create_pod(pod("a")), Err(e) if e.code == 409));
        // Writing the same object again is no write at all.
        let same = s
            .update_pod(a.clone(), a.metadata.resource_version.as_deref())
            .unwrap();
        assert_eq!(same.metadata.resource_version, a.metadata.resource_version);
        assert!(s.events_since(rv_a).unwrap().is_empty());
        let mut changed = a.clone();
        changed.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
        let b = s
            .update_pod(changed, a.metadata.resource_version.as_deref())
            .unwrap();
        assert!(matches!(s.update_pod(a, Some("1")), Err(e) if e.reason == "Conflict"));
        let evs = s.events_since(rv_a).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].kind, EventType::Modified);
        assert_eq!(
            evs[0].pod.metadata.resource_version,
            b.metadata.resource_version
        );
        s.delete_pod("ns", "a").unwrap();
        assert!(s.delete_pod("ns", "a").is_err());
    }
}
