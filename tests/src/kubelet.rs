//! Kubelet stand-in: moves container statuses along as a node would and runs a
//! [`shell`](crate::shell) process per started container.
//!
//! New pods are scheduled to the harness node, go Pending (`ContainerCreating`) and, after
//! [`KubeletConfig::start_delay`], Running. An admitted ephemeral container gets
//! `Waiting(ContainerCreating)` at once and `Running` after the delay — unless its image
//! matches an [`ImageRule`]: by default an image containing `nonexistent` stays
//! `Waiting(ErrImagePull)` with containerd's message, and one containing `oneshot` prints a
//! line and terminates with exit code 0 (its output stays readable through `pods/log`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::apiserver::store::Store;
use crate::shell::{self, Process};

/// What happens to a container, chosen by its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageBehavior {
    /// Runs the interactive shell stand-in.
    Interactive,
    /// The pull fails: stays Waiting with this reason and message.
    PullError {
        /// e.g. `ErrImagePull`
        reason: String,
        /// The runtime's message.
        message: String,
    },
    /// Runs, prints `output`, exits with `code`.
    RunAndExit {
        /// What it prints.
        output: String,
        /// Exit code.
        code: i32,
    },
}

/// An image substring and what containers with such an image do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRule {
    /// Substring of the image reference.
    pub contains: String,
    /// Behaviour.
    pub behavior: ImageBehavior,
}

/// Kubelet timings and per-image behaviour.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Node every pod is scheduled to.
    pub node_name: String,
    /// Time between ContainerCreating and Running.
    pub start_delay: Duration,
    /// First matching rule wins; no match means [`ImageBehavior::Interactive`].
    pub images: Vec<ImageRule>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            node_name: "node-1".into(),
            start_delay: Duration::from_millis(150),
            images: vec![
                ImageRule {
                    contains: "nonexistent".into(),
                    behavior: ImageBehavior::PullError {
                        reason: "ErrImagePull".into(),
                        message: "rpc error: code = NotFound desc = failed to pull and unpack image: not found".into(),
                    },
                },
                ImageRule {
                    contains: "oneshot".into(),
                    behavior: ImageBehavior::RunAndExit { output: "oneshot: done\n".into(), code: 0 },
                },
            ],
        }
    }
}

impl KubeletConfig {
    fn behavior(&self, image: &str) -> ImageBehavior {
        self.images
            .iter()
            .find(|r| image.contains(&r.contains))
            .map(|r| r.behavior.clone())
            .unwrap_or(ImageBehavior::Interactive)
    }
}

type Key = (String, String, String);

/// The kubelet of the harness's single node.
pub struct Kubelet {
    config: KubeletConfig,
    store: Arc<Mutex<Store>>,
    processes: Mutex<HashMap<Key, Arc<Process>>>,
}

fn now() -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", Timestamp::now())
        .unwrap_or_default()
}

fn container_id() -> String {
    format!(
        "containerd://{:016x}{:016x}",
        crate::apiserver::defaults::random_u64(),
        crate::apiserver::defaults::random_u64()
    )
}

fn status(name: &str, image: &str, state: Value, ready: bool) -> Option<ContainerStatus> {
    let mut s = json!({"name": name, "image": image, "imageID": "", "ready": ready, "restartCount": 0, "state": state});
    if state_is_started(&s["state"]) {
        s["containerID"] = json!(container_id());
        s["started"] = json!(true);
        s["imageID"] = json!(format!("{image}@sha256:{:064x}", 0));
    } else {
        s["started"] = json!(false);
    }
    serde_json::from_value(s).ok()
}

fn state_is_started(state: &Value) -> bool {
    state.get("running").is_some() || state.get("terminated").is_some()
}

/// (name, image, stdin, tty) of a container, ephemeral or not.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    image: String,
    tty: bool,
}

fn set_status(list: &mut Option<Vec<ContainerStatus>>, s: ContainerStatus) {
    let l = list.get_or_insert_with(Vec::new);
    match l.iter_mut().find(|x| x.name == s.name) {
        Some(x) => *x = s,
        None => l.push(s),
    }
}

impl Kubelet {
    /// A kubelet updating pods in `store`.
    pub fn new(config: KubeletConfig, store: Arc<Mutex<Store>>) -> Self {
        Self {
            config,
            store,
            processes: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KubeletConfig {
        &self.config
    }

    /// The process of a container that was started, running or ended.
    pub fn process(&self, namespace: &str, pod: &str, container: &str) -> Option<Arc<Process>> {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            ))
            .cloned()
    }

    fn modify(&self, ns: &str, name: &str, f: impl FnOnce(&mut Pod)) -> Option<Pod> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .modify_pod(ns, name, f)
    }

    fn start_process(
        self: &Arc<Self>,
        ns: &str,
        pod: &str,
        spec: &Spec,
        ephemeral: bool,
        behavior: &ImageBehavior,
    ) {
        let (greeting, exit_now) = match behavior {
            ImageBehavior::RunAndExit { output, code } => (Some(output.clone()), Some(*code)),
            _ => (None, None),
        };
        let me = Arc::downgrade(self);
        let (ns2, pod2, c2, image) = (
            ns.to_string(),
            pod.to_string(),
            spec.name.clone(),
            spec.image.clone(),
        );
        let p = shell::spawn(spec.tty, greeting, exit_now, move |code| {
            if let Some(k) = me.upgrade() {
                k.container_exited(&ns2, &pod2, &c2, &image, ephemeral, code);
            }
        });
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((ns.to_string(), pod.to_string(), spec.name.clone()), p);
    }

    fn container_exited(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        image: &str,
        ephemeral: bool,
        code: i32,
    ) {
        let t = now();
        let reason = if code == 0 { "Completed" } else { "Error" };
        let state = json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": t, "finishedAt": t,
                                          "containerID": container_id()}});
        let Some(st) = status(container, image, state, false) else {
            return;
        };
        self.modify(ns, pod, |p| {
            let s = p.status.get_or_insert_with(Default::default);
            if ephemeral {
                set_status(&mut s.ephemeral_container_statuses, st);
            } else {
                set_status(&mut s.container_statuses, st);
                let all_done = s
                    .container_statuses
                    .iter()
                    .flatten()
                    .all(|c| c.state.as_ref().is_some_and(|st| st.terminated.is_some()));
                if all_done {
                    s.phase = Some(if code == 0 {
                        "Succeeded".into()
                    } else {
                        "Failed".into()
                    });
                }
            }
        });
    }

    fn specs(pod: &Pod) -> (Vec<Spec>, Vec<Spec>) {
        let Some(spec) = pod.spec.as_ref() else {
            return (Vec::new(), Vec::new());
        };
        let regular = spec
            .containers
            .iter()
            .map(|c| Spec {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                tty: c.tty.unwrap_or(false),
            })
            .collect();
        let eph = spec
            .ephemeral_containers
            .iter()
            .flatten()
            .map(|c| Spec {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                tty: c.tty.unwrap_or(false),
            })
            .collect();
        (regular, eph)
    }

    fn pod_running_status(&self, p: &mut Pod, started: &[(Spec, ImageBehavior)]) {
        let t = now();
        if let Some(spec) = p.spec.as_mut()
            && spec.node_name.as_deref().is_none_or(str::is_empty)
        {
            spec.node_name = Some(self.config.node_name.clone());
        }
        let s = p.status.get_or_insert_with(Default::default);
        let mut all_ready = true;
        for (c, b) in started {
            let st = match b {
                ImageBehavior::PullError { reason, message } => {
                    all_ready = false;
                    status(
                        &c.name,
                        &c.image,
                        json!({"waiting": {"reason": reason, "message": message}}),
                        false,
                    )
                }
                _ => status(
                    &c.name,
                    &c.image,
                    json!({"running": {"startedAt": t}}),
                    true,
                ),
            };
            if let Some(st) = st {
                set_status(&mut s.container_statuses, st);
            }
        }
        let cond = |ty: &str, ok: bool| json!({"type": ty, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": t});
        s.phase = Some(if all_ready {
            "Running".into()
        } else {
            "Pending".into()
        });
        s.host_ip = Some("10.0.0.1".into());
        s.pod_ip = Some(format!(
            "10.244.0.{}",
            2 + crate::apiserver::defaults::random_u64() % 250
        ));
        s.start_time = serde_json::from_value(json!(t)).ok();
        s.qos_class = Some("BestEffort".into());
        s.conditions = serde_json::from_value(json!([
            cond("PodReadyToStartContainers", true),
            cond("Initialized", true),
            cond("Ready", all_ready),
            cond("ContainersReady", all_ready),
            cond("PodScheduled", true)
        ]))
        .ok();
    }

    /// A new pod: scheduled and started. `immediate` (seeded pods) skips ContainerCreating.
    pub fn pod_created(self: &Arc<Self>, pod: &Pod, immediate: bool) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let (regular, _) = Self::specs(pod);
        let planned: Vec<(Spec, ImageBehavior)> = regular
            .into_iter()
            .map(|c| (c.clone(), self.config.behavior(&c.image)))
            .collect();
        let run = {
            let me = self.clone();
            let (ns, name) = (ns.clone(), name.clone());
            move || {
                let interactive = |b: &ImageBehavior| matches!(b, ImageBehavior::Interactive);
                let one_shot = |b: &ImageBehavior| matches!(b, ImageBehavior::RunAndExit { .. });
                for (c, b) in planned.iter().filter(|(_, b)| interactive(b)) {
                    me.start_process(&ns, &name, c, false, b);
                }
                me.modify(&ns, &name, |p| me.pod_running_status(p, &planned));
                for (c, b) in planned.iter().filter(|(_, b)| one_shot(b)) {
                    me.start_process(&ns, &name, c, false, b);
                }
            }
        };
        if immediate {
            run();
            return;
        }
        let me = self.clone();
        let pending: Vec<(String, String)> = Self::specs(pod)
            .0
            .into_iter()
            .map(|c| (c.name, c.image))
            .collect();
        let delay = self.config.start_delay;
        tokio::spawn(async move {
            me.modify(&ns, &name, |p| {
                if let Some(spec) = p.spec.as_mut()
                    && spec.node_name.as_deref().is_none_or(str::is_empty)
                {
                    spec.node_name = Some(me.config.node_name.clone());
                }
                let s = p.status.get_or_insert_with(Default::default);
                s.phase = Some("Pending".into());
                for (c, image) in &pending {
                    if let Some(st) = status(
                        c,
                        image,
                        json!({"waiting": {"reason": "ContainerCreating"}}),
                        false,
                    ) {
                        set_status(&mut s.container_statuses, st);
                    }
                }
            });
            tokio::time::sleep(delay).await;
            run();
        });
    }

    /// Ephemeral containers newly admitted to `pod` (by name): they are started.
    pub fn ephemeral_added(self: &Arc<Self>, pod: &Pod, names: &[String]) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let (_, eph) = Self::specs(pod);
        for c in eph.into_iter().filter(|c| names.contains(&c.name)) {
            let me = self.clone();
            let (ns, name) = (ns.clone(), name.clone());
            let behavior = self.config.behavior(&c.image);
            let delay = self.config.start_delay;
            tokio::spawn(async move {
                if let Some(st) = status(
                    &c.name,
                    &c.image,
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    false,
                ) {
                    me.modify(&ns, &name, |p| {
                        set_status(
                            &mut p
                                .status
                                .get_or_insert_with(Default::default)
                                .ephemeral_container_statuses,
                            st,
                        )
                    });
                }
                tokio::time::sleep(delay).await;
                let state = match &behavior {
                    ImageBehavior::PullError { reason, message } => {
                        json!({"waiting": {"reason": reason, "message": message}})
                    }
                    _ => json!({"running": {"startedAt": now()}}),
                };
                // An interactive process exists before the status says Running, so a client
                // that attaches on seeing Running always finds it; a one-shot one starts
                // after, so its Terminated status comes last.
                if matches!(behavior, ImageBehavior::Interactive) {
                    me.start_process(&ns, &name, &c, true, &behavior);
                }
                if let Some(st) = status(&c.name, &c.image, state, false) {
                    me.modify(&ns, &name, |p| {
                        set_status(
                            &mut p
                                .status
                                .get_or_insert_with(Default::default)
                                .ephemeral_container_statuses,
                            st,
                        )
                    });
                }
                if matches!(behavior, ImageBehavior::RunAndExit { .. }) {
                    me.start_process(&ns, &name, &c, true, &behavior);
                }
            });
        }
    }

    /// A pod was deleted: its processes go.
    pub fn pod_deleted(&self, namespace: &str, name: &str) {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(ns, p, _), _| !(ns == namespace && p == name));
    }
}
