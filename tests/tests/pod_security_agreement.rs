//! kspy's Pod Security warnings against the in-process API server's PodSecurity admission
//! (a port of upstream's checks, `tests/src/apiserver/pod_security.rs`): for an attach of a
//! hardened debug container to pods that each break one rule, kspy warns exactly when
//! PodSecurity refuses. A rule kspy did not know would let users meet the refusal without
//! kspy's explanation; one it got wrong would warn about requests that pass.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use kspy_admission::Action;
use kspy_admission::asks::{Asks, ContainerParts, PodAsks, PodVolumes};
use kspy_admission::pod_security::{self as kspy_psa, AddedContainer};
use kspy_e2e::apiserver::pod_security as fake_psa;
use serde_json::{Value, json};

/// A pod that meets `restricted`, with a hardened debug container `dbg` added.
fn hardened() -> Value {
    let restricted = json!({
        "runAsUser": 1000, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}
    });
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
            "containers": [{"name": "app", "image": "web:1", "securityContext": restricted.clone(),
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36",
                                     "securityContext": restricted}]
        }
    })
}

/// A change to a pod's JSON.
type Change = Box<dyn Fn(&mut Value)>;

/// One change to [`hardened`] each, named: most break one rule, some break none.
fn variants() -> Vec<(&'static str, Change)> {
    fn app(p: &mut Value) -> &mut Value {
        &mut p["spec"]["containers"][0]["securityContext"]
    }
    fn dbg(p: &mut Value) -> &mut Value {
        &mut p["spec"]["ephemeralContainers"][0]["securityContext"]
    }
    fn volume(p: &mut Value, v: Value) {
        p["spec"]["volumes"].as_array_mut().unwrap().push(v);
    }
    vec![
        (
            "app privileged",
            Box::new(|p| app(p)["privileged"] = json!(true)),
        ),
        (
            "dbg privileged",
            Box::new(|p| dbg(p)["privileged"] = json!(true)),
        ),
        (
            "app adds SYS_PTRACE",
            Box::new(|p| app(p)["capabilities"]["add"] = json!(["SYS_PTRACE"])),
        ),
        (
            "dbg adds SYS_PTRACE",
            Box::new(|p| dbg(p)["capabilities"]["add"] = json!(["SYS_PTRACE"])),
        ),
        (
            "dbg adds NET_ADMIN",
            Box::new(|p| dbg(p)["capabilities"]["add"] = json!(["NET_ADMIN"])),
        ),
        (
            "dbg adds CHOWN",
            Box::new(|p| dbg(p)["capabilities"]["add"] = json!(["CHOWN"])),
        ),
        // The runtime's spelling of a baseline capability, not Pod Security's.
        (
            "dbg adds CAP_CHOWN",
            Box::new(|p| dbg(p)["capabilities"]["add"] = json!(["CAP_CHOWN"])),
        ),
        (
            "dbg adds NET_BIND_SERVICE",
            Box::new(|p| dbg(p)["capabilities"]["add"] = json!(["NET_BIND_SERVICE"])),
        ),
        ("hostPID", Box::new(|p| p["spec"]["hostPID"] = json!(true))),
        (
            "hostNetwork",
            Box::new(|p| p["spec"]["hostNetwork"] = json!(true)),
        ),
        ("hostIPC", Box::new(|p| p["spec"]["hostIPC"] = json!(true))),
        (
            "unmounted hostPath",
            Box::new(|p| volume(p, json!({"name": "h", "hostPath": {"path": "/srv"}}))),
        ),
        (
            "hostPath mounted by dbg",
            Box::new(|p| {
                volume(p, json!({"name": "h", "hostPath": {"path": "/srv"}}));
                p["spec"]["ephemeralContainers"][0]["volumeMounts"] =
                    json!([{"name": "h", "mountPath": "/h"}]);
            }),
        ),
        (
            "app hostPort",
            Box::new(|p| {
                p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 80}])
            }),
        ),
        (
            "unsafe sysctl",
            Box::new(|p| {
                p["spec"]["securityContext"]["sysctls"] =
                    json!([{"name": "kernel.msgmax", "value": "1"}])
            }),
        ),
        (
            "safe sysctl",
            Box::new(|p| {
                p["spec"]["securityContext"]["sysctls"] =
                    json!([{"name": "net.ipv4.tcp_syncookies", "value": "1"}])
            }),
        ),
        (
            "sysctls safe since 1.32",
            Box::new(|p| {
                p["spec"]["securityContext"]["sysctls"] = json!([
                    {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 16777216"},
                    {"name": "net.ipv4.tcp_wmem", "value": "4096 65536 16777216"}
                ])
            }),
        ),
        (
            "app probe host",
            Box::new(|p| {
                p["spec"]["containers"][0]["livenessProbe"] =
                    json!({"httpGet": {"host": "169.254.169.254", "port": 80}})
            }),
        ),
        (
            "app preStop host",
            Box::new(|p| {
                p["spec"]["containers"][0]["lifecycle"] =
                    json!({"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 22}}})
            }),
        ),
        (
            "dbg procMount Unmasked",
            Box::new(|p| dbg(p)["procMount"] = json!("Unmasked")),
        ),
        (
            "dbg seccomp Unconfined",
            Box::new(|p| dbg(p)["seccompProfile"] = json!({"type": "Unconfined"})),
        ),
        (
            "pod seccomp Unconfined",
            Box::new(|p| {
                p["spec"]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"})
            }),
        ),
        // Set at the pod level and overridden by every container: refused as the pod's.
        (
            "pod seccomp Unconfined, containers RuntimeDefault",
            Box::new(|p| {
                p["spec"]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
                app(p)["seccompProfile"] = json!({"type": "RuntimeDefault"});
                dbg(p)["seccompProfile"] = json!({"type": "RuntimeDefault"});
            }),
        ),
        (
            "pod AppArmor Unconfined, containers RuntimeDefault",
            Box::new(|p| {
                p["spec"]["securityContext"]["appArmorProfile"] = json!({"type": "Unconfined"});
                app(p)["appArmorProfile"] = json!({"type": "RuntimeDefault"});
                dbg(p)["appArmorProfile"] = json!({"type": "RuntimeDefault"});
            }),
        ),
        (
            "pod runAsNonRoot false, containers true",
            Box::new(|p| {
                p["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
                app(p)["runAsNonRoot"] = json!(true);
                dbg(p)["runAsNonRoot"] = json!(true);
            }),
        ),
        (
            "dbg AppArmor Unconfined",
            Box::new(|p| dbg(p)["appArmorProfile"] = json!({"type": "Unconfined"})),
        ),
        (
            "app AppArmor annotation unconfined",
            Box::new(|p| {
                p["metadata"]["annotations"] =
                    json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"});
            }),
        ),
        (
            "app SELinux type",
            Box::new(|p| app(p)["seLinuxOptions"] = json!({"type": "spc_t"})),
        ),
        (
            "dbg SELinux container type",
            Box::new(|p| dbg(p)["seLinuxOptions"] = json!({"type": "container_t"})),
        ),
        (
            "dbg hostProcess",
            Box::new(|p| dbg(p)["windowsOptions"] = json!({"hostProcess": true})),
        ),
        (
            "dbg escalation allowed",
            Box::new(|p| {
                dbg(p)
                    .as_object_mut()
                    .unwrap()
                    .remove("allowPrivilegeEscalation");
            }),
        ),
        (
            "app escalation allowed",
            Box::new(|p| {
                app(p)
                    .as_object_mut()
                    .unwrap()
                    .remove("allowPrivilegeEscalation");
            }),
        ),
        (
            "dbg keeps capabilities",
            Box::new(|p| {
                dbg(p).as_object_mut().unwrap().remove("capabilities");
            }),
        ),
        (
            "dbg runAsNonRoot false",
            Box::new(|p| dbg(p)["runAsNonRoot"] = json!(false)),
        ),
        (
            "pod runAsNonRoot unset",
            Box::new(|p| {
                p["spec"]["securityContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("runAsNonRoot");
            }),
        ),
        (
            "dbg runAsUser 0",
            Box::new(|p| dbg(p)["runAsUser"] = json!(0)),
        ),
        // Both containers set runAsUser 1000: the pod's 0 is refused all the same.
        (
            "pod runAsUser 0",
            Box::new(|p| p["spec"]["securityContext"]["runAsUser"] = json!(0)),
        ),
        (
            "pod seccomp unset",
            Box::new(|p| {
                p["spec"]["securityContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("seccompProfile");
            }),
        ),
        (
            "nfs volume",
            Box::new(|p| volume(p, json!({"name": "n", "nfs": {"server": "s", "path": "/"}}))),
        ),
        (
            "gitRepo volume",
            Box::new(|p| volume(p, json!({"name": "g", "gitRepo": {"repository": "r"}}))),
        ),
        (
            "secret and projected volumes",
            Box::new(|p| {
                volume(p, json!({"name": "s", "secret": {"secretName": "s"}}));
                volume(p, json!({"name": "pr", "projected": {"sources": []}}));
            }),
        ),
        // A Windows pod cannot set the Linux-only fields, and restricted does not ask for them.
        ("windows pod, non-root", Box::new(windows)),
        // Pod Security reads runAsNonRoot, not the account name (the kubelet refuses that).
        (
            "windows pod, non-root, ContainerAdministrator",
            Box::new(|p| {
                windows(p);
                p["spec"]["securityContext"]["windowsOptions"] =
                    json!({"runAsUserName": "ContainerAdministrator"});
            }),
        ),
        (
            "windows pod, root",
            Box::new(|p| {
                windows(p);
                p["spec"]["securityContext"] = json!({});
            }),
        ),
    ]
}

/// Makes [`hardened`] a Windows pod, without the fields the API server refuses there.
fn windows(p: &mut Value) {
    p["spec"]["os"] = json!({"name": "windows"});
    p["spec"]["securityContext"] = json!({"runAsNonRoot": true});
    for c in ["containers", "ephemeralContainers"] {
        p["spec"][c][0]["securityContext"] = json!({});
    }
}

/// kspy's warnings for the attach of `dbg` to `pod` in a namespace at `level`.
fn kspy_warnings(level: kspy_psa::Level, pod: &Value) -> Vec<String> {
    kspy_warnings_at(level, kspy_psa::Version::Latest, pod)
}

/// [`kspy_warnings`] in a namespace pinned to `version`.
fn kspy_warnings_at(
    level: kspy_psa::Level,
    version: kspy_psa::Version,
    pod: &Value,
) -> Vec<String> {
    let typed: Pod = serde_json::from_value(pod.clone()).expect("a Pod");
    let spec = typed.spec.as_ref().expect("a spec");
    let dbg: &EphemeralContainer = &spec.ephemeral_containers.as_ref().expect("dbg")[0];
    let volumes = PodVolumes::of(&typed);
    let asks = Asks::extract(&ContainerParts::from_ephemeral(dbg), &typed, &volumes);
    let json = serde_json::to_value(dbg).expect("JSON");
    kspy_psa::warnings(
        kspy_psa::Enforced { level, version },
        "ns",
        "web",
        Action::Attach,
        &typed,
        &PodAsks::inherited(&typed),
        &[AddedContainer {
            name: "dbg",
            asks: &asks,
            container: &json,
        }],
    )
}

#[test]
fn kspy_warns_exactly_when_pod_security_refuses() {
    let mut disagreements = Vec::new();
    let mut refused_counts = Vec::new();
    for (level, kspy_level) in [
        ("baseline", kspy_psa::Level::Baseline),
        ("restricted", kspy_psa::Level::Restricted),
    ] {
        let labels: BTreeMap<String, String> =
            [(fake_psa::ENFORCE_LABEL.to_string(), level.to_string())].into();
        assert!(fake_psa::admit(&labels, "web", &hardened()).is_ok());
        assert_eq!(kspy_warnings(kspy_level, &hardened()), Vec::<String>::new());
        // Agreement on "admit everything" would prove nothing: most variants break a rule of
        // each level, and restricted refuses all that baseline does and more.
        let mut refused_here = 0;
        let variants = variants();
        for (what, change) in &variants {
            let mut pod = hardened();
            change(&mut pod);
            let refused = fake_psa::admit(&labels, "web", &pod).err();
            refused_here += usize::from(refused.is_some());
            let warned = kspy_warnings(kspy_level, &pod);
            if refused.is_some() == warned.is_empty() {
                disagreements.push(format!(
                    "{level}, {what}: PodSecurity {}; kspy {:?}",
                    refused.map_or("admits".to_string(), |e| e.message),
                    warned
                ));
            }
        }
        refused_counts.push((level, refused_here, variants.len()));
    }
    let [(_, baseline, total), (_, restricted, _)] = refused_counts[..] else {
        panic!("two levels: {refused_counts:?}");
    };
    assert!(
        baseline >= total / 2 && restricted > baseline && restricted < total,
        "refused at baseline {baseline}, at restricted {restricted}, of {total} variants: the \
         variants no longer break each level's rules"
    );
    assert!(
        disagreements.is_empty(),
        "kspy and PodSecurity disagree:\n{}",
        disagreements.join("\n")
    );
}

/// The same agreement in namespaces pinned to older versions (`enforce-version`), whose checks
/// differ: sysctls, runAsUser (1.23), the Windows relaxation (1.25), container_engine_t (1.31),
/// probe hosts (1.34). From 1.22, the first Pod Security release: the port evaluates
/// `capabilities_restricted` at any version, where upstream has it from 1.22 only.
#[test]
fn kspy_warns_exactly_when_pod_security_refuses_at_a_pinned_version() {
    let mut extra: Vec<(&str, Change)> = vec![
        (
            "app adds CHOWN, drops nothing",
            Box::new(|p| {
                p["spec"]["containers"][0]["securityContext"]["capabilities"] =
                    json!({"add": ["CHOWN"]})
            }),
        ),
        (
            "app container_engine_t",
            Box::new(|p| {
                p["spec"]["containers"][0]["securityContext"]["seLinuxOptions"] =
                    json!({"type": "container_engine_t"})
            }),
        ),
    ];
    for sysctl in [
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_rmem",
    ] {
        extra.push((
            sysctl,
            Box::new(move |p| {
                p["spec"]["securityContext"]["sysctls"] = json!([{"name": sysctl, "value": "1"}])
            }),
        ));
    }
    let mut disagreements = Vec::new();
    for minor in [22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34] {
        for (level, kspy_level) in [
            ("baseline", kspy_psa::Level::Baseline),
            ("restricted", kspy_psa::Level::Restricted),
        ] {
            let labels: BTreeMap<String, String> = [
                (fake_psa::ENFORCE_LABEL.to_string(), level.to_string()),
                (
                    fake_psa::ENFORCE_VERSION_LABEL.to_string(),
                    format!("v1.{minor}"),
                ),
            ]
            .into();
            let version = kspy_psa::Version::Minor(minor);
            for (what, change) in variants().iter().chain(&extra) {
                let mut pod = hardened();
                change(&mut pod);
                let refused = fake_psa::admit(&labels, "web", &pod).err();
                let warned = kspy_warnings_at(kspy_level, version, &pod);
                if refused.is_some() == warned.is_empty() {
                    disagreements.push(format!(
                        "{level} v1.{minor}, {what}: PodSecurity {}; kspy {:?}",
                        refused.map_or("admits".to_string(), |e| e.message),
                        warned
                    ));
                }
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "kspy and PodSecurity disagree:\n{}",
        disagreements.join("\n")
    );
}
