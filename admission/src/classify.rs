//! Which admission requests are debug requests, and who in them is to be judged.
//!
//! - **attach**: `UPDATE` of `pods/ephemeralcontainers`; the subjects are the ephemeral
//!   containers in `object` that are absent by name from `oldObject` (or changed there, which the
//!   API server itself refuses, so such a request is judged rather than waved through).
//! - **copy**: `CREATE` of a pod labelled `kspy.dev/debug: copy`, or with a container named the
//!   way `kubectl debug POD --copy-to=NAME` names its debugger (`debugger-` and five characters
//!   of kubectl's random-name alphabet), or matched by the configured classifier.
//! - **node**: `CREATE` of a pod labelled `kspy.dev/debug: node`, or named `node-debugger-*` with
//!   `nodeName` set (what `kubectl debug node/X` creates), or matched by the configured classifier.
//! - An `UPDATE` of such a copy or node pod (by what it is after the update, or by the
//!   `kspy.dev/debug` label it had before, or by what the configured classifiers say of it
//!   before, since they may read a label or annotation the update removes) that changes a
//!   container's `image`, the one field of
//!   a container a pod update may change: its subjects are the containers whose image changed,
//!   judged as the pod's creation with that image would be. Without this, a copy or node pod
//!   created with an allowed image ran any image after `kubectl set image`, with the host access
//!   it was granted.
//!
//! Everything else is not a debug request.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};
use kube::core::admission::Operation;
use serde_json::Value;

use crate::asks::{Asks, ContainerParts, PodAsks, PodVolumes};
use crate::reach::{TraceReach, TracedContainer, traced_containers};
use crate::review::ParsedReview;

/// The label kspy's CLI puts on debug pods; its value is the action (`copy` or `node`).
pub const DEBUG_LABEL: &str = "kspy.dev/debug";
/// The annotation in which `kspy copy` names the debug container it added to a copy (a copy
/// made with `--set-image` and no `--image` adds none, and has no annotation).
pub const DEBUG_CONTAINER_ANNOTATION: &str = "kspy.dev/debug-container";
/// The name prefix `kubectl debug node/NAME` gives node-debugging pods.
pub const NODE_DEBUGGER_PREFIX: &str = "node-debugger-";
/// The name prefix `kubectl debug` gives a debug container when `--container` is not set.
pub const KUBECTL_DEBUGGER_PREFIX: &str = "debugger-";
/// The characters of the random suffixes kubectl generates (apimachinery's
/// `utilrand.String`: no vowels, no look-alikes such as `0`, `1` and `3`).
const KUBECTL_RANDOM_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// True for a container name `kubectl debug` generates: `debugger-` and five characters of its
/// random alphabet. The shipped webhook configuration sends pods holding such a container to
/// kspy for the same reason (`deploy/base/webhooks.yaml`), so both must agree.
pub fn is_kubectl_debugger_name(name: &str) -> bool {
    name.strip_prefix(KUBECTL_DEBUGGER_PREFIX)
        .is_some_and(|suffix| {
            suffix.len() == 5 && suffix.chars().all(|c| KUBECTL_RANDOM_ALPHABET.contains(c))
        })
}

/// The kind of debug request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// An ephemeral container added to a running pod.
    Attach,
    /// A debug copy of a pod.
    Copy,
    /// A node-debugging pod.
    Node,
}

impl Action {
    /// The lower-case name used in policies, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Attach => "attach",
            Action::Copy => "copy",
            Action::Node => "node",
        }
    }

    /// What a user asks to do, as a verb phrase for messages: "no DebugPolicy allows bob to
    /// debug a node" (the name `node` is not a verb).
    pub fn verb_phrase(self) -> &'static str {
        match self {
            Action::Attach => "attach",
            Action::Copy => "copy",
            Action::Node => "debug a node",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a subject container lives in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    /// `spec.ephemeralContainers`
    Ephemeral,
    /// `spec.containers`
    Containers,
    /// `spec.initContainers`
    InitContainers,
}

impl ContainerList {
    /// The JSON field name of the list in a PodSpec.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Ephemeral => "ephemeralContainers",
            ContainerList::Containers => "containers",
            ContainerList::InitContainers => "initContainers",
        }
    }
}

/// One container being judged.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The container's name.
    pub name: String,
    /// Which list of the pod spec it is in.
    pub list: ContainerList,
    /// Its index in that list (for patch paths).
    pub index: usize,
    /// The container as JSON (its k8s-openapi form), for CEL's `container` and for patching
    /// only what is absent.
    pub container: Value,
    /// What it asks for, normalized.
    pub asks: Asks,
}

/// A classified debug request.
#[derive(Debug, Clone)]
pub struct DebugRequest {
    /// attach, copy or node.
    pub action: Action,
    /// The containers to judge; empty when an attach adds nothing new.
    pub subjects: Vec<Subject>,
    /// Pod-level asks: host namespaces and node for copy and node pods; for an attach, the
    /// host namespaces the debug container shares with its pod.
    pub pod: PodAsks,
}

/// A request kspy cannot judge because the API server sent something it never sends for this
/// operation; judged as a denial (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// `object` or `oldObject` missing where the operation requires it.
    #[error("{operation} of {resource} without request.{field}; the API server always sends it")]
    MissingObject {
        /// `UPDATE pods/ephemeralcontainers`, …
        operation: &'static str,
        /// The resource.
        resource: &'static str,
        /// `object` or `oldObject`.
        field: &'static str,
    },
    /// A debug pod with no container: the API server refuses it, and judging it would judge
    /// nothing, not even its host namespaces.
    #[error("a {action} pod without containers; the API server requires at least one")]
    NoContainers {
        /// Copy or node.
        action: Action,
    },
    /// A pod labelled `kspy.dev/debug` with a value other than `copy` and `node`: it says it
    /// is a debug pod, and letting it through unjudged would trust a typo (`Copy`) with host
    /// namespaces and host paths.
    #[error(
        "the pod is labelled {DEBUG_LABEL}={0:?}, which is neither copy nor node; kspy judges debug pods by that label: set it to copy or node, or remove it"
    )]
    UnknownDebugLabel(String),
    /// The debug containers an attach adds reach, in the process namespaces they join, more
    /// than [`MAX_REACHED`] things the containers there hold: each reaches what each other
    /// one holds, so that grows with the square of their number, and kspy does not judge it.
    #[error(
        "the {subjects} debug containers this request adds reach, in the process namespaces they join, more than {MAX_REACHED} containers and what they hold (each one reaches what the others there hold, and kspy judges at most {MAX_REACHED}, so that no request can exhaust its memory); add fewer debug containers at once"
    )]
    TooMuchReached {
        /// How many debug containers the request adds.
        subjects: usize,
    },
    /// The configured classifier expression failed.
    #[error("the {action} classifier failed: {message}")]
    Classifier {
        /// Which classifier.
        action: Action,
        /// The evaluation error.
        message: String,
    },
}

/// The most an attach's debug containers may reach in the process namespaces they join
/// (counted per container sharing the namespace, per container reached, and per capability,
/// privilege, volume and Secret it holds that the debug container does not): a debug
/// container reaches what every other container in its namespace holds, so N debug
/// containers added at once to one target reach N x N. 700 of them (a 240 KB review), each
/// mounting a Secret volume, reached 490 000 containers and took 240 MB; 1 500 holding
/// nothing were each compared with each, 360 ms. Attaching a few debug containers to a pod
/// of a hundred reaches a few hundred.
pub const MAX_REACHED: usize = 50_000;

/// Which state of the pod a classifier is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// The pod the request creates, or makes of it by an update: `request.object`.
    Requested,
    /// The pod as it was before an UPDATE: `request.oldObject`. An update may change what a
    /// classifier reads (a label, an annotation) in the same request that changes an image, so
    /// a pod that was a copy or node pod stays one for that update.
    BeforeUpdate,
}

/// Answers "is this pod a debug copy / node pod?" for the configured CEL classifiers.
pub trait Classifier {
    /// `Ok(true)` when the configured classifier for `action` holds for the pod in `state`
    /// (bound to CEL's `object`, as for a CREATE); `Ok(false)` when it does not or none is
    /// configured.
    fn matches(
        &self,
        action: Action,
        review: &ParsedReview,
        state: PodState,
    ) -> Result<bool, String>;
}

/// No classifiers beyond the label and name rules.
pub struct NoClassifier;

impl Classifier for NoClassifier {
    fn matches(&self, _: Action, _: &ParsedReview, _: PodState) -> Result<bool, String> {
        Ok(false)
    }
}

/// Classifies a review. `Ok(None)` means "not a debug request".
pub fn classify(
    review: &ParsedReview,
    classifier: &dyn Classifier,
) -> Result<Option<DebugRequest>, ClassifyError> {
    let request = review.request();
    let r = &request.resource;
    if !(r.group.is_empty() && r.version == "v1" && r.resource == "pods") {
        return Ok(None);
    }
    match (&request.operation, request.sub_resource.as_deref()) {
        (Operation::Update, Some("ephemeralcontainers")) => attach(review).map(Some),
        (Operation::Create, None | Some("")) => pod_create(review, classifier),
        (Operation::Update, None | Some("")) => pod_update(review, classifier),
        _ => Ok(None),
    }
}

fn attach(review: &ParsedReview) -> Result<DebugRequest, ClassifyError> {
    let missing = |field| ClassifyError::MissingObject {
        operation: "UPDATE",
        resource: "pods/ephemeralcontainers",
        field,
    };
    let Some(pod) = review.pod() else {
        return Err(missing("object"));
    };
    let Some(old) = review.old_ephemeral_containers() else {
        return Err(missing("oldObject"));
    };
    // By name: an unchanged container has its old name, and comparing each with every old
    // one made a pod with many ephemeral containers quadratic to classify.
    let mut old_by_name: BTreeMap<&str, Vec<&EphemeralContainer>> = BTreeMap::new();
    for o in old {
        old_by_name.entry(o.name.as_str()).or_default().push(o);
    }
    let volumes = PodVolumes::of_running(pod);
    // What a subject reaches in its process namespace (by SYS_PTRACE, or as the user of the
    // processes there), worked out once, and only for a subject that shares one.
    let shares_processes = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.share_process_namespace == Some(true));
    let mut reach: Option<TraceReach> = None;
    let mut subjects = Vec::new();
    let mut reached = 0usize;
    for (index, ec) in ephemeral_containers(pod).iter().enumerate() {
        if old_by_name
            .get(ec.name.as_str())
            .is_some_and(|same_name| same_name.contains(&ec))
        {
            continue;
        }
        let asks = ephemeral_asks(ec, pod, &volumes, shares_processes, &mut reach);
        let sharing = reach.as_ref().map_or(0, |r| r.sharing(&asks));
        reached = reached
            .saturating_add(sharing)
            .saturating_add(asks.traced.iter().map(TracedContainer::size).sum());
        if reached > MAX_REACHED {
            let adds = ephemeral_containers(pod)
                .iter()
                .filter(|ec| {
                    !old_by_name
                        .get(ec.name.as_str())
                        .is_some_and(|same_name| same_name.contains(ec))
                })
                .count();
            return Err(ClassifyError::TooMuchReached { subjects: adds });
        }
        subjects.push(Subject {
            name: ec.name.clone(),
            list: ContainerList::Ephemeral,
            index,
            container: serde_json::to_value(ec).unwrap_or(Value::Null),
            asks,
        });
    }
    Ok(DebugRequest {
        action: Action::Attach,
        subjects,
        pod: PodAsks::inherited(pod),
    })
}

/// What the ephemeral container `ec` of the running `pod` (whose volumes are `volumes`, and
/// whose processes all share one namespace when `shares_processes`) asks for, with what it
/// reaches in the process namespace it joins ([`traced_containers`]; `reach` is worked out
/// on first need and kept for the next container).
pub(crate) fn ephemeral_asks<'p>(
    ec: &EphemeralContainer,
    pod: &'p Pod,
    volumes: &PodVolumes<'p>,
    shares_processes: bool,
    reach: &mut Option<TraceReach>,
) -> Asks {
    let parts = ContainerParts::from_ephemeral(ec);
    let mut asks = Asks::extract(&parts, pod, volumes);
    if !asks.privileged && (asks.target.is_some() || shares_processes) {
        let reach = reach.get_or_insert_with(|| TraceReach::of(pod, volumes));
        asks.traced = traced_containers(&ec.name, &asks, reach);
    }
    asks
}

/// What a container of `pod` (whose volumes are `volumes`) asks for when it reads as
/// `container` in list `list`: a subject as kspy's own `/mutate` defaults leave it. `None` when
/// `container` is no container. Its traced containers are not worked out: only Pod Security
/// reads these asks, and it does not judge tracing.
pub(crate) fn asks_of(
    list: ContainerList,
    container: &Value,
    pod: &Pod,
    volumes: &PodVolumes<'_>,
) -> Option<Asks> {
    use serde::Deserialize;
    Some(match list {
        ContainerList::Ephemeral => {
            let c = EphemeralContainer::deserialize(container).ok()?;
            Asks::extract(&ContainerParts::from_ephemeral(&c), pod, volumes)
        }
        ContainerList::Containers | ContainerList::InitContainers => {
            let c = Container::deserialize(container).ok()?;
            Asks::extract(&ContainerParts::from_container(&c), pod, volumes)
        }
    })
}

fn ephemeral_containers(pod: &Pod) -> &[EphemeralContainer] {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default()
}

fn pod_create(
    review: &ParsedReview,
    classifier: &dyn Classifier,
) -> Result<Option<DebugRequest>, ClassifyError> {
    let Some(pod) = review.pod() else {
        return Err(ClassifyError::MissingObject {
            operation: "CREATE",
            resource: "pods",
            field: "object",
        });
    };
    let Some(action) = pod_action(pod, review, classifier)? else {
        return Ok(None);
    };
    let volumes = PodVolumes::of(pod);
    let subjects: Vec<Subject> = pod_containers(pod)
        .map(|(list, index, c)| pod_subject(pod, &volumes, list, index, c))
        .collect();
    if subjects.is_empty() {
        return Err(ClassifyError::NoContainers { action });
    }
    Ok(Some(DebugRequest {
        action,
        subjects,
        pod: PodAsks::extract(pod),
    }))
}

/// The init containers, then the containers, of `pod`, each with its list and index.
fn pod_containers(pod: &Pod) -> impl Iterator<Item = (ContainerList, usize, &Container)> {
    let spec = pod.spec.as_ref();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let regular = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = init
        .iter()
        .enumerate()
        .map(|(i, c)| (ContainerList::InitContainers, i, c));
    let regular = regular
        .iter()
        .enumerate()
        .map(|(i, c)| (ContainerList::Containers, i, c));
    init.chain(regular)
}

/// Container `c` of a copy or node pod (at `index` of `list`) as a subject, with its asks.
fn pod_subject(
    pod: &Pod,
    volumes: &PodVolumes<'_>,
    list: ContainerList,
    index: usize,
    c: &Container,
) -> Subject {
    Subject {
        name: c.name.clone(),
        list,
        index,
        container: serde_json::to_value(c).unwrap_or(Value::Null),
        asks: Asks::extract(&ContainerParts::from_container(c), pod, volumes),
    }
}

/// An UPDATE of a pod: a debug request when the pod is a copy or node pod (by what it is now,
/// or by the `kspy.dev/debug` label it had, or by what the classifiers say of it as it was:
/// the update may remove what either reads) and the update
/// changes the image of a container or init container. Those containers are the subjects;
/// anything else of a container a pod update may not change (the API server refuses it).
fn pod_update(
    review: &ParsedReview,
    classifier: &dyn Classifier,
) -> Result<Option<DebugRequest>, ClassifyError> {
    let Some(pod) = review.pod() else {
        return Err(ClassifyError::MissingObject {
            operation: "UPDATE",
            resource: "pods",
            field: "object",
        });
    };
    let old = review.old_object();
    // The image the container of that name had; `None` for a container the old pod lacks
    // (judged: the API server refuses adding one, so this only makes kspy fail closed).
    let old_image = |list: ContainerList, name: &str| -> Option<&str> {
        old?["spec"][list.field()]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)?["image"]
            .as_str()
    };
    let changed: Vec<_> = pod_containers(pod)
        .filter(|(list, _, c)| old.is_none() || old_image(*list, &c.name) != c.image.as_deref())
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    let action = match pod_action(pod, review, classifier)? {
        Some(action) => action,
        None => match old
            .and_then(|o| o["metadata"]["labels"][DEBUG_LABEL].as_str())
            .map(label_action)
            .transpose()?
        {
            Some(action) => action,
            // A classifier may read what the update removes (a label, an annotation): a pod
            // it marked stays a debug pod for this update, as one labelled `kspy.dev/debug`.
            None if old.is_some() => {
                match classified_as(review, classifier, PodState::BeforeUpdate)? {
                    Some(action) => action,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        },
    };
    if old.is_none() {
        return Err(ClassifyError::MissingObject {
            operation: "UPDATE",
            resource: "pods",
            field: "oldObject",
        });
    }
    let volumes = PodVolumes::of(pod);
    let subjects = changed
        .into_iter()
        .map(|(list, index, c)| pod_subject(pod, &volumes, list, index, c))
        .collect();
    Ok(Some(DebugRequest {
        action,
        subjects,
        pod: PodAsks::extract(pod),
    }))
}

/// The action a `kspy.dev/debug` label value names; any other value is refused.
fn label_action(value: &str) -> Result<Action, ClassifyError> {
    match value {
        "copy" => Ok(Action::Copy),
        "node" => Ok(Action::Node),
        other => Err(ClassifyError::UnknownDebugLabel(other.to_owned())),
    }
}

fn pod_action(
    pod: &Pod,
    review: &ParsedReview,
    classifier: &dyn Classifier,
) -> Result<Option<Action>, ClassifyError> {
    let label = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(DEBUG_LABEL))
        .map(String::as_str);
    if let Some(value) = label {
        return label_action(value).map(Some);
    }
    let name = pod
        .metadata
        .name
        .as_deref()
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or(review.name());
    let on_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if name.starts_with(NODE_DEBUGGER_PREFIX) && on_node {
        return Ok(Some(Action::Node));
    }
    // `kubectl debug POD --copy-to=NAME` without `--container`: the copy holds a container
    // named by kubectl. A copy that only swaps images (`--set-image`) looks like any pod and
    // is not recognised here; a copy classifier can catch it.
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    if containers
        .unwrap_or_default()
        .iter()
        .any(|c| is_kubectl_debugger_name(&c.name))
    {
        return Ok(Some(Action::Copy));
    }
    classified_as(review, classifier, PodState::Requested)
}

/// The action the configured classifiers mark the pod in `state` with, node first.
fn classified_as(
    review: &ParsedReview,
    classifier: &dyn Classifier,
    state: PodState,
) -> Result<Option<Action>, ClassifyError> {
    for action in [Action::Node, Action::Copy] {
        let hit = classifier
            .matches(action, review, state)
            .map_err(|message| ClassifyError::Classifier { action, message })?;
        if hit {
            return Ok(Some(action));
        }
    }
    Ok(None)
}
