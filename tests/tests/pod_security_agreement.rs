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
        // Pod Security reads every AppArmor annotation, whatever container it names.
        (
            "AppArmor annotation unconfined for no container",
            Box::new(|p| {
                p["metadata"]["annotations"] = json!({
                    "container.apparmor.security.beta.kubernetes.io/gone": "unconfined",
                    "container.apparmor.security.beta.kubernetes.io/left": "runtime/default"
                });
            }),
        ),
        (
            "AppArmor annotations allowed for no container",
            Box::new(|p| {
                p["metadata"]["annotations"] = json!({
                    "container.apparmor.security.beta.kubernetes.io/gone": "localhost/k8s",
                    "container.apparmor.security.beta.kubernetes.io/left": ""
                });
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
        // Allowed since Kubernetes 1.33, at every policy version.
        (
            "image volume",
            Box::new(|p| {
                volume(
                    p,
                    json!({"name": "i", "image": {"reference": "busybox:1.36"}}),
                )
            }),
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
/// differ: allowPrivilegeEscalation (1.8+), seccomp (the annotations before 1.19, the fields and
/// restricted's profile from 1.19), capabilities_restricted (1.22+, baseline's capabilities
/// before), sysctls, runAsUser (1.23), the Windows relaxation (1.25), container_engine_t
/// (1.31), probe hosts (1.34); and a version newer than any check, evaluated as the newest.
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
    for (what, annotation) in [
        (
            "pod seccomp annotation unconfined",
            "seccomp.security.alpha.kubernetes.io/pod",
        ),
        (
            "app seccomp annotation unconfined",
            "container.seccomp.security.alpha.kubernetes.io/app",
        ),
    ] {
        extra.push((
            what,
            Box::new(move |p| {
                p["metadata"]["annotations"] = json!({ annotation: "unconfined" });
            }),
        ));
    }
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
    let minors = [0, 7, 8, 18, 19, 21].into_iter().chain(22..=34).chain([40]);
    for minor in minors {
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

/// The `enforce-version` label read alike: kspy's `enforced_version` and the port's parser,
/// each against `api.ParseVersion`, which takes `latest` and `v1.N` only (no sign, no leading
/// zero) and evaluates anything else as `latest`. The pod breaks only a rule newer than v1.5
/// (a sysctl safe since 1.27), so a label read as `v1.5` by one and `latest` by the other
/// shows as a disagreement.
#[test]
fn the_version_label_is_read_as_pod_security_reads_it() {
    use k8s_openapi::api::core::v1::Namespace;

    let mut pod = hardened();
    pod["spec"]["securityContext"]["sysctls"] =
        json!([{"name": "net.ipv4.ip_local_reserved_ports", "value": "8080"}]);
    let mut disagreements = Vec::new();
    let mut pinned = 0;
    for label in [
        "latest",
        "v1.5",
        "v1.0",
        "v1.+5",
        "v1.+27",
        "v1.05",
        "v1.",
        "1.5",
        "V1.5",
        "v1.5 ",
        "v2.5",
        "v1.-0",
        "v1.5.0",
        "v1.99999999999999999999",
    ] {
        let labels: BTreeMap<String, String> = [
            (fake_psa::ENFORCE_LABEL.to_string(), "baseline".to_string()),
            (
                fake_psa::ENFORCE_VERSION_LABEL.to_string(),
                label.to_string(),
            ),
        ]
        .into();
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": "ns", "labels": labels}
        }))
        .expect("a Namespace");
        let version = kspy_psa::enforced_version(Some(&namespace));
        pinned += usize::from(version != kspy_psa::Version::Latest);
        let refused = fake_psa::admit(&labels, "web", &pod).err();
        let warned = kspy_warnings_at(kspy_psa::Level::Baseline, version, &pod);
        if refused.is_some() == warned.is_empty() {
            disagreements.push(format!(
                "{label:?}: PodSecurity {}; kspy ({version:?}) {warned:?}",
                refused.map_or("admits".to_string(), |e| e.message),
            ));
        }
    }
    // Only `v1.5` and `v1.0` are versions: the rest are latest, which admits the pod.
    assert_eq!(pinned, 2, "labels read as a pinned version");
    assert!(
        disagreements.is_empty(),
        "kspy and PodSecurity read the version label apart:\n{}",
        disagreements.join("\n")
    );
}
