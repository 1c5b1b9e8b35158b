//! Issue point 6: defaults — a JSON patch over the new debug containers only, never touching a
//! field the user set, and stable when the API server reinvokes the webhook.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kspy_admission::Endpoint;
use serde_json::{Value, json};

const DEFAULTS: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: defaults}
spec:
  grant: {images: ['**'], runAsRoot: true, mountVolumes: nonSecret}
  defaults:
    targetContainer: first
    mountTargetVolumes: readOnly
    imagePullPolicy: IfNotPresent
    env: [{name: KSPY_SESSION, value: debug}]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [NET_RAW, SETUID, SETGID]}}
    podSecurity: conform
"#;

fn mutate(
    yaml: &str,
    review: &Value,
    ns: Option<&k8s_openapi::api::core::v1::Namespace>,
) -> Vec<Value> {
    let j = judge(&engine(yaml), review, Endpoint::Mutate, ns);
    assert!(j.response.allowed);
    patch_of(&j)
}

/// Applies a patch to the review's object, as the API server does, and returns the new review.
fn apply(review: &Value, patch: &[Value]) -> Value {
    let p: json_patch::Patch = serde_json::from_value(Value::Array(patch.to_vec())).unwrap();
    let mut r = review.clone();
    json_patch::patch(&mut r["request"]["object"], &p).unwrap();
    r
}

#[test]
fn fills_only_what_is_unset_on_new_containers() {
    let old = vec![json!({"name": "old", "image": "busybox"})];
    let r = attach("ns", "u", &[], old, vec![debugger("new", "busybox")]);
    let patch = mutate(DEFAULTS, &r, None);
    assert_eq!(
        patch,
        [
            json!({"op": "add", "path": "/spec/ephemeralContainers/1/targetContainerName", "value": "app"}),
            json!({"op": "add", "path": "/spec/ephemeralContainers/1/volumeMounts", "value": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}]}),
            json!({"op": "add", "path": "/spec/ephemeralContainers/1/imagePullPolicy", "value": "IfNotPresent"}),
            json!({"op": "add", "path": "/spec/ephemeralContainers/1/env", "value": [{"name": "KSPY_SESSION", "value": "debug"}]}),
            json!({"op": "add", "path": "/spec/ephemeralContainers/1/securityContext", "value": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["NET_RAW", "SETUID", "SETGID"]}}}),
        ]
    );
    // The patched object is still a valid Pod, and the old container is untouched.
    let patched = apply(&r, &patch);
    let pod: Pod = serde_json::from_value(patched["request"]["object"].clone()).unwrap();
    let ecs = pod.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(
        serde_json::to_value(&ecs[0]).unwrap(),
        json!({"name": "old", "image": "busybox"})
    );
    assert_eq!(ecs[1].target_container_name.as_deref(), Some("app"));
}

#[test]
fn never_overrides_a_users_choice() {
    let mut d = debugger("new", "busybox");
    d["targetContainerName"] = json!("sidecar");
    d["imagePullPolicy"] = json!("Always");
    d["env"] = json!([{"name": "KSPY_SESSION", "value": "mine"}]);
    d["volumeMounts"] = json!([{"name": "config", "mountPath": "/etc/web", "readOnly": false}]);
    d["securityContext"] = json!({"allowPrivilegeEscalation": true, "runAsUser": 1000});
    let r = attach("ns", "u", &[], vec![], vec![d]);
    let patch = mutate(DEFAULTS, &r, None);
    // Only the nested field the user did not set; the sidecar has no mounts to mirror.
    assert_eq!(
        patch,
        [
            json!({"op": "add", "path": "/spec/ephemeralContainers/0/securityContext/capabilities", "value": {"drop": ["NET_RAW", "SETUID", "SETGID"]}})
        ]
    );
}

/// The runtimes add a container's capabilities before they drop its drop list, so a default
/// drop naming a capability the user adds would take it away in silence: the default drops
/// only what the container does not add, however it spells it.
#[test]
fn a_default_drop_never_takes_away_a_capability_the_user_adds() {
    let mut d = debugger("new", "busybox");
    d["targetContainerName"] = json!("sidecar");
    d["imagePullPolicy"] = json!("Always");
    d["env"] = json!([{"name": "KSPY_SESSION", "value": "mine"}]);
    d["securityContext"] = json!({"capabilities": {"add": ["net_raw", "CAP_SETUID"]}});
    let r = attach("ns", "u", &[], vec![], vec![d]);
    let patch = mutate(DEFAULTS, &r, None);
    assert_eq!(
        patch,
        [
            json!({"op": "add", "path": "/spec/ephemeralContainers/0/securityContext/allowPrivilegeEscalation", "value": false}),
            json!({"op": "add", "path": "/spec/ephemeralContainers/0/securityContext/capabilities/drop", "value": ["SETGID"]}),
        ]
    );
}

/// A seccomp or AppArmor profile is a union over its `type`: a default never completes the
/// profile the user chose (a `localhostProfile` beside `RuntimeDefault` is Invalid).
#[test]
fn a_profile_the_user_chose_is_never_completed() {
    const LOCALHOST: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: localhost-profiles}
spec:
  grant: {images: ['**'], runAsRoot: true}
  defaults:
    securityContext:
      seccompProfile: {type: Localhost, localhostProfile: profiles/debug.json}
      appArmorProfile: {type: Localhost, localhostProfile: debug}
"#;
    let mut d = debugger("new", "busybox");
    d["securityContext"] = json!({
        "seccompProfile": {"type": "RuntimeDefault"},
        "appArmorProfile": {"type": "RuntimeDefault"},
    });
    let r = attach("ns", "u", &[], vec![], vec![d]);
    assert_eq!(mutate(LOCALHOST, &r, None), Vec::<Value>::new());
    // Where the user chose nothing, the profile is added whole.
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    assert_eq!(
        mutate(LOCALHOST, &r, None),
        [
            json!({"op": "add", "path": "/spec/ephemeralContainers/0/securityContext", "value": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/debug.json"},
            "appArmorProfile": {"type": "Localhost", "localhostProfile": "debug"}}})
        ]
    );
}

#[test]
fn restricted_namespaces_get_what_the_level_requires() {
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let restricted = namespace(
        "ns",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let patch = mutate(DEFAULTS, &r, Some(&restricted));
    let sc = patch
        .iter()
        .find(|op| op["path"] == "/spec/ephemeralContainers/0/securityContext")
        .map(|op| op["value"].clone())
        .unwrap();
    assert_eq!(
        sc,
        json!({
            "allowPrivilegeEscalation": false,
            // The level's ALL, not the policy's list: restricted refuses a container that
            // does not drop ALL, and ALL covers the list.
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    // A value Pod Security admission cannot parse makes it enforce restricted: the same
    // defaults, not none.
    for label in ["Restricted", "latest", ""] {
        let odd = namespace("ns", &[("pod-security.kubernetes.io/enforce", label)]);
        let odd_patch = mutate(DEFAULTS, &r, Some(&odd));
        assert_eq!(odd_patch, patch, "{label:?}");
    }
}

/// The kubelet starts a `runAsNonRoot` container only when it can tell the user is not root,
/// so a conforming default names a user unless the container or its Pod already does.
#[test]
fn conforming_names_a_user_only_when_none_is_named() {
    let restricted = namespace(
        "ns",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let sc_of = |patch: &[Value]| {
        patch
            .iter()
            .find(|op| op["path"] == "/spec/ephemeralContainers/0/securityContext")
            .map(|op| op["value"].clone())
            .unwrap_or_else(|| panic!("no securityContext added: {patch:?}"))
    };
    // The Pod names one: inherited, not overridden.
    let mut r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    r["request"]["object"]["spec"]["securityContext"] = json!({"runAsUser": 1000});
    let sc = sc_of(&mutate(DEFAULTS, &r, Some(&restricted)));
    assert_eq!(sc["runAsNonRoot"], true, "{sc}");
    assert!(sc.get("runAsUser").is_none(), "{sc}");
    // The container names one: left as chosen.
    let mut d = debugger("new", "busybox");
    d["securityContext"] = json!({"runAsUser": 2000});
    let r = attach("ns", "u", &[], vec![], vec![d]);
    let patch = mutate(DEFAULTS, &r, Some(&restricted));
    assert!(
        !patch.iter().any(|op| op["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/runAsUser"))),
        "{patch:?}"
    );
    // Outside restricted namespaces no user is chosen.
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let baseline = namespace("ns", &[("pod-security.kubernetes.io/enforce", "baseline")]);
    let sc = sc_of(&mutate(DEFAULTS, &r, Some(&baseline)));
    assert!(sc.get("runAsUser").is_none(), "{sc}");
}

/// Two debug containers added in one request, both targeting `app`, in a restricted
/// namespace: each gets its own conforming user. Both given 65534, each would read the other's
/// files through /proc/PID/root as the same user, and `/validate` (which the API server calls
/// with the patch applied) would deny the first for the second's Secret mount that only the
/// second was granted: the defaults turning an allowed request into a denied one.
#[test]
fn two_debug_containers_added_at_once_get_different_users() {
    const POLICIES: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: base}
spec:
  grant: {images: ['busybox*'], mountVolumes: nonSecret}
  defaults: {targetContainer: first, podSecurity: conform}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: creds-for-b}
spec:
  conditions: [{name: b, expression: "container.name == 'b'"}]
  grant: {mountVolumes: all}
"#;
    let restricted = namespace(
        "ns",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let mut b = debugger("b", "busybox");
    b["volumeMounts"] = json!([{"name": "creds", "mountPath": "/creds", "readOnly": true}]);
    let r = attach("ns", "u", &[], vec![], vec![debugger("a", "busybox"), b]);
    let e = engine(POLICIES);
    let j = judge(&e, &r, Endpoint::Mutate, Some(&restricted));
    assert!(j.response.allowed);
    let patched = apply(&r, &patch_of(&j));
    let pod: Pod = serde_json::from_value(patched["request"]["object"].clone()).unwrap();
    let users: Vec<Option<i64>> = pod
        .spec
        .unwrap()
        .ephemeral_containers
        .unwrap()
        .iter()
        .map(|c| c.security_context.as_ref().and_then(|sc| sc.run_as_user))
        .collect();
    assert_eq!(users, [Some(65534), Some(65533)]);
    // As the API server calls /validate: with kspy's own patch applied.
    let v = judge(&e, &patched, Endpoint::Validate, Some(&restricted));
    assert!(v.response.allowed, "{}", v.response.result.message);
}

/// A debug copy repeats the source pod's containers, whose images already run as the users
/// they pick under the pod's `runAsNonRoot`: conform names a user only for the debug container
/// the copy adds, which would otherwise not start as non-root.
#[test]
fn conforming_leaves_a_copys_own_containers_their_image_users() {
    let restricted = namespace(
        "ns",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let copy = |debugger: &str, annotation: Option<&str>| {
        let mut pod = pod("ns");
        pod["metadata"]["name"] = json!("web-copy");
        pod["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
        if let Some(name) = annotation {
            pod["metadata"]["annotations"] = json!({"kspy.dev/debug-container": name});
        }
        pod["spec"]["securityContext"] = json!({"runAsNonRoot": true});
        pod["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": debugger, "image": "busybox:1.36"}));
        create("ns", "u", &[], pod)
    };
    let users = |patch: &[Value]| -> Vec<(String, Value)> {
        (0..3)
            .map(|i| {
                let sc = patch
                    .iter()
                    .find(|op| op["path"] == format!("/spec/containers/{i}/securityContext"))
                    .map(|op| op["value"].clone())
                    .unwrap_or_else(|| panic!("container {i}: no securityContext: {patch:?}"));
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
                (i.to_string(), sc["runAsUser"].clone())
            })
            .collect()
    };
    let expected = |debugger_user: Value| {
        vec![
            ("0".to_owned(), Value::Null),
            ("1".to_owned(), Value::Null),
            ("2".to_owned(), debugger_user),
        ]
    };
    // Named by `kspy copy`'s annotation, or by kubectl's debugger name.
    for (debugger, annotation) in [("dbg", Some("dbg")), ("debugger-bcdfg", None)] {
        let patch = mutate(DEFAULTS, &copy(debugger, annotation), Some(&restricted));
        assert_eq!(users(&patch), expected(json!(65534)), "{debugger}");
    }
    // A container nothing marks as the debugger is taken for one of the source's.
    let patch = mutate(DEFAULTS, &copy("dbg", None), Some(&restricted));
    assert_eq!(users(&patch), expected(Value::Null));
    // Where the pod does not say runAsNonRoot, conform adds it to every container, and a user
    // with it: an image that runs as root would not start otherwise.
    let mut r = copy("dbg", Some("dbg"));
    r["request"]["object"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("securityContext");
    let patch = mutate(DEFAULTS, &r, Some(&restricted));
    let got = users(&patch);
    assert!(got.iter().all(|(_, u)| u.is_i64()), "{got:?}");
}

/// The API server refuses `allowPrivilegeEscalation: false` beside `privileged: true` or an
/// added `CAP_SYS_ADMIN`; a default must not make a granted request Invalid.
#[test]
fn no_escalation_default_for_privileged_containers() {
    let privileged = DEFAULTS.replace(
        "runAsRoot: true",
        "runAsRoot: true, privileged: true, capabilities: [ALL]",
    );
    for sc in [
        json!({"privileged": true}),
        json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}}),
    ] {
        let mut d = debugger("new", "busybox");
        d["securityContext"] = sc.clone();
        let r = attach("ns", "u", &[], vec![], vec![d]);
        let patch = mutate(&privileged, &r, None);
        assert!(
            !patch
                .iter()
                .any(|op| op.to_string().contains("allowPrivilegeEscalation")),
            "{sc}: {patch:?}"
        );
        // The other defaults still apply.
        assert!(
            patch.iter().any(|op| op["path"]
                == "/spec/ephemeralContainers/0/securityContext/capabilities/drop"
                || op["path"] == "/spec/ephemeralContainers/0/securityContext/capabilities"),
            "{sc}: {patch:?}"
        );
    }
    // A capability other than the literal CAP_SYS_ADMIN keeps the default, as the API server
    // accepts it.
    let mut d = debugger("new", "busybox");
    d["securityContext"] = json!({"capabilities": {"add": ["SYS_PTRACE"]}});
    let r = attach("ns", "u", &[], vec![], vec![d]);
    let patch = mutate(&privileged, &r, None);
    assert!(
        patch.iter().any(|op| op["path"]
            == "/spec/ephemeralContainers/0/securityContext/allowPrivilegeEscalation"),
        "{patch:?}"
    );
}

#[test]
fn reinvocation_is_a_no_op() {
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let restricted = namespace(
        "ns",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let first = mutate(DEFAULTS, &r, Some(&restricted));
    assert!(!first.is_empty());
    let again = apply(&r, &first);
    let second = mutate(DEFAULTS, &again, Some(&restricted));
    assert!(second.is_empty(), "{second:?}");
}

#[test]
fn secret_mounts_are_mirrored_only_when_granted() {
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let all = DEFAULTS.replace("mountVolumes: nonSecret", "mountVolumes: all");
    let patch = mutate(&all, &r, None);
    let mounts = patch
        .iter()
        .find(|op| op["path"] == "/spec/ephemeralContainers/0/volumeMounts")
        .unwrap();
    assert_eq!(mounts["value"].as_array().unwrap().len(), 2);
    // Not granted: not mirrored, and the user is told.
    let j = judge(&engine(DEFAULTS), &r, Endpoint::Mutate, None);
    let warnings = j.response.warnings.unwrap_or_default();
    assert!(
        warnings[0].contains("volume \"creds\" of container \"app\" was not mounted"),
        "{warnings:?}"
    );
    // And what keeps the Secret out of reach.
    assert!(
        warnings[0].contains(
            "could read the target's copy through /proc/PID/root as the target's user is refused"
        ),
        "{warnings:?}"
    );

    // A Windows debug container joins no process of its target's, and Windows has no /proc:
    // the warning says how it reaches the target there (not at all but by the mount).
    let mut r = r;
    edit_pods(&mut r, |pod| pod["spec"]["os"] = json!({"name": "windows"}));
    let j = judge(&engine(DEFAULTS), &r, Endpoint::Mutate, None);
    let warnings = j.response.warnings.unwrap_or_default();
    let creds = warnings
        .iter()
        .find(|w| w.contains("volume \"creds\" of container \"app\" was not mounted"))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(
        creds.ends_with(
            "no applicable policy grants mounting it; a Windows debug container shares only the \
             pod's network with its target, not its processes or files, so it cannot read the \
             volume at all"
        ),
        "{creds}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("/proc")),
        "{warnings:?}"
    );
}

/// A debug container's block devices take their paths and volumes: the API server refuses a
/// mount at a devicePath, and a volume both mounted and used as a device, so mirroring one
/// of the target's mounts there broke the request kspy allowed.
#[test]
fn mounts_are_not_mirrored_onto_the_debug_containers_block_devices() {
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let app_mount = r["request"]["object"]["spec"]["containers"][0]["volumeMounts"][0].clone();
    let (volume, path) = (&app_mount["name"], &app_mount["mountPath"]);
    let mirrored = |devices: Value| {
        let mut r = r.clone();
        r["request"]["object"]["spec"]["ephemeralContainers"][0]["volumeDevices"] = devices;
        let patch = mutate(DEFAULTS, &r, None);
        let ops: Vec<&Value> = patch
            .iter()
            .filter(|op| {
                op["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/volumeMounts"))
            })
            .collect();
        ops.first().map(|op| op["value"].clone())
    };
    // The target's mount is mirrored when nothing stands in its way.
    assert_eq!(
        mirrored(json!([{"name": "other", "devicePath": "/dev/xvdb"}])),
        Some(json!([{"name": volume, "mountPath": path, "readOnly": true}]))
    );
    assert_eq!(
        mirrored(json!([{"name": "other", "devicePath": path}])),
        None
    );
    assert_eq!(
        mirrored(json!([{"name": volume, "devicePath": "/dev/xvdb"}])),
        None
    );
}

#[test]
fn sub_path_mounts_are_not_mirrored() {
    // The API server refuses subPath on an ephemeral container: mirroring one would break the
    // very request kspy allowed.
    let mut r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let app = &mut r["request"]["object"]["spec"]["containers"][0];
    let mounts = app["volumeMounts"].as_array_mut().unwrap();
    let first = mounts[0]["name"].clone();
    mounts[0]["subPath"] = json!("web.conf");
    mounts.push(json!({"name": first, "mountPath": "/logs", "subPathExpr": "$(POD)"}));
    let j = judge(&engine(DEFAULTS), &r, Endpoint::Mutate, None);
    let patch = patch_of(&j);
    for op in &patch {
        assert!(
            !op.to_string().contains("subPath"),
            "no subPath is copied: {op}"
        );
    }
    let warnings = j.response.warnings.unwrap_or_default();
    assert!(
        warnings.iter().any(|w| w.contains(&format!(
            "volume {first} of container \"app\" was not mounted"
        )) && w.contains("subPath")),
        "{warnings:?}"
    );
    // What the API server accepts: the patched review still validates as a pod update.
    let patched = apply(&r, &patch);
    let ec = &patched["request"]["object"]["spec"]["ephemeralContainers"][0];
    assert!(ec["volumeMounts"].as_array().is_none_or(|m| {
        m.iter()
            .all(|m| m.get("subPath").is_none() && m.get("subPathExpr").is_none())
    }));
}

#[test]
fn sole_target_only_with_one_container() {
    let sole = DEFAULTS.replace("targetContainer: first", "targetContainer: sole");
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let patch = mutate(&sole, &r, None);
    assert!(!patch.iter().any(|op| {
        op["path"]
            .as_str()
            .unwrap()
            .ends_with("targetContainerName")
    }));
}

#[test]
fn no_applicable_policy_no_patch() {
    let only_sre = DEFAULTS.replace("  grant:", "  match: {groups: [sre]}\n  grant:");
    let r = attach(
        "ns",
        "u",
        &["dev"],
        vec![],
        vec![debugger("new", "busybox")],
    );
    assert!(mutate(&only_sre, &r, None).is_empty());
}

const NODE: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: node}
spec:
  match: {actions: [node]}
  grant:
    images: ['**']
    runAsRoot: true
    hostNamespaces: [pid, network, ipc]
    # Root in the node's pid namespace reads other pods' files through /proc.
    mountVolumes: all
    hostPaths: [{path: /, readOnly: true}]
"#;

/// A node-debugging pod mounting the host's `/` at `/host` with the mount set as given.
fn node_pod(mount: Value) -> Value {
    create(
        "default",
        "admin",
        &[],
        json!({
            "metadata": {"name": "node-debugger-n1", "labels": {"kspy.dev/debug": "node"}},
            "spec": {
                "nodeName": "n1", "hostPID": true,
                "containers": [{"name": "debugger", "image": "busybox:1.36", "volumeMounts": [mount]}],
                "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}]
            }
        }),
    )
}

/// A read-only mount of the host's `/` leaves the filesystems mounted below it writable unless
/// it is recursive: `/mutate` asks for that where the user left it unset and the API server
/// allows it, and `/validate` does not count `recursiveReadOnly: Disabled` as read-only.
#[test]
fn read_only_host_mounts_are_made_recursive() {
    let at = "/spec/containers/0/volumeMounts/0/recursiveReadOnly";
    let mount = json!({"name": "host-root", "mountPath": "/host", "readOnly": true});
    let patch = mutate(NODE, &node_pod(mount.clone()), None);
    assert_eq!(
        patch,
        [json!({"op": "add", "path": at, "value": "IfPossible"})]
    );
    // Applied, it is still granted; mutating again adds nothing.
    let patched = apply(&node_pod(mount.clone()), &patch);
    assert!(
        judge(&engine(NODE), &patched, Endpoint::Validate, None)
            .response
            .allowed
    );
    assert!(mutate(NODE, &patched, None).is_empty());
    // Left alone: a writable mount, a propagating one (the API server refuses the pair), and a
    // choice already made.
    for m in [
        json!({"name": "host-root", "mountPath": "/host", "readOnly": false}),
        json!({"name": "host-root", "mountPath": "/host", "readOnly": true, "mountPropagation": "HostToContainer"}),
        json!({"name": "host-root", "mountPath": "/host", "readOnly": true, "recursiveReadOnly": "Enabled"}),
    ] {
        let j = judge(&engine(NODE), &node_pod(m.clone()), Endpoint::Mutate, None);
        assert!(!patch_of(&j).iter().any(|op| op["path"] == at), "{m}");
    }
    // Disabled is a writable view of what lies below: not covered by a read-only grant.
    let disabled = json!({"name": "host-root", "mountPath": "/host", "readOnly": true, "recursiveReadOnly": "Disabled"});
    let j = judge(&engine(NODE), &node_pod(disabled), Endpoint::Validate, None);
    assert!(!j.response.allowed);
    let message = &j.response.result.message;
    assert!(message.contains("hostPath"), "{message}");
    assert!(message.contains("recursiveReadOnly: Disabled"), "{message}");
    assert!(!message.contains("read-write"), "{message}");
}

/// The precedence the README states: policies in load order (file names sorted), the first to
/// set a field wins, `targetContainer: none` counts as set, env merged with the first value
/// per name winning, securityContext merged field by field but for its profiles, taken whole.
#[test]
fn the_first_policy_in_load_order_wins_each_default() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/defaults-precedence");
    let set = kspy_admission::PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.names(), ["first", "second"]);
    let engine = kspy_admission::Engine::new(set, kspy_admission::Settings::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
    let j = judge(&engine, &r, Endpoint::Mutate, None);
    assert_eq!(
        patch_of(&j),
        [
            json!({"op": "add", "path": "/spec/ephemeralContainers/0/env", "value": [
                {"name": "TEAM", "value": "first"}, {"name": "PAGER", "value": "on"}]}),
            json!({"op": "add", "path": "/spec/ephemeralContainers/0/securityContext", "value": {
                "runAsNonRoot": true, "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}}}),
        ]
    );
}

/// Replaces the `creds` volume of the attach review's pod with `volume`.
fn with_creds_volume(r: &mut Value, volume: Value) {
    for obj in ["object", "oldObject"] {
        r["request"][obj]["spec"]["volumes"][1] = volume.clone();
    }
}

#[test]
fn only_what_the_validating_pass_grants_is_mirrored_whatever_the_volume_kind() {
    // Under `mountVolumes: nonSecret`, /mutate must not mirror a volume /validate then counts as
    // a secret: the default would turn an allowed attach into a denied one.
    let cases = [
        (
            json!({"name": "creds", "csi": {"driver": "secrets-store.csi.k8s.io"}}),
            false,
        ),
        (
            json!({"name": "creds", "projected": {"sources": [{"podCertificate": {"signerName": "x/y"}}]}}),
            false,
        ),
        (json!({"name": "creds", "someFutureKind": {"x": 1}}), false),
        (json!({"name": "creds", "emptyDir": {}}), true),
        (
            json!({"name": "creds", "projected": {"sources": [{"configMap": {"name": "c"}}]}}),
            true,
        ),
    ];
    for (volume, mirrored) in cases {
        let mut r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
        with_creds_volume(&mut r, volume.clone());
        let patch = mutate(DEFAULTS, &r, None);
        let mounts = patch
            .iter()
            .find(|op| op["path"] == "/spec/ephemeralContainers/0/volumeMounts")
            .map(|op| op["value"].to_string())
            .unwrap_or_default();
        assert_eq!(mounts.contains("creds"), mirrored, "{volume}: {mounts}");
        // And the patched request passes the validating pass.
        let patched = apply(&r, &patch);
        let j = judge(&engine(DEFAULTS), &patched, Endpoint::Validate, None);
        assert!(
            j.response.allowed,
            "{volume}: {:?}",
            j.response.result.message
        );
    }
}

#[test]
fn a_sidecar_targets_mounts_are_mirrored_too() {
    // A restartable init container can be the target (`kubectl debug -c sidecar`).
    let mut d = debugger("new", "busybox");
    d["targetContainerName"] = json!("mesh");
    let mut r = attach("ns", "u", &[], vec![], vec![d]);
    for obj in ["object", "oldObject"] {
        r["request"][obj]["spec"]["initContainers"] = json!([{
            "name": "mesh", "image": "envoy:1", "restartPolicy": "Always",
            "volumeMounts": [{"name": "config", "mountPath": "/etc/mesh"}]
        }]);
    }
    let patch = mutate(DEFAULTS, &r, None);
    assert!(
        patch.contains(
            &json!({"op": "add", "path": "/spec/ephemeralContainers/0/volumeMounts",
            "value": [{"name": "config", "mountPath": "/etc/mesh", "readOnly": true}]})
        ),
        "{patch:?}"
    );
}

/// A pod naming its user at the pod level (as many charts do) and mounting a Secret: a
/// `targetContainer` default would put the debug container, running as that same user, in the
/// target's process namespace, where it reads the target's Secret mounts through
/// /proc/PID/root, and `/validate` (which the API server calls with the patch applied) denies
/// that. The same request without the default is allowed, so the default is not given: the
/// container runs without a target, and the user is told why.
#[test]
fn no_target_default_that_validate_would_deny() {
    const POLICY: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: dev}
spec:
  grant: {images: ['busybox*'], runAsRoot: true, mountVolumes: nonSecret}
  defaults:
    targetContainer: first
    mountTargetVolumes: readOnly
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [SETUID, SETGID]}}
    podSecurity: conform
"#;
    let e = engine(POLICY);
    for level in ["baseline", "restricted"] {
        let ns = namespace("ns", &[("pod-security.kubernetes.io/enforce", level)]);
        let mut r = attach("ns", "u", &[], vec![], vec![debugger("new", "busybox")]);
        edit_pods(&mut r, |p| {
            p["spec"]["securityContext"] = json!({"runAsUser": 1000, "runAsNonRoot": true});
        });
        assert!(
            judge(&e, &r, Endpoint::Validate, Some(&ns))
                .response
                .allowed
        );
        let j = judge(&e, &r, Endpoint::Mutate, Some(&ns));
        let patch = patch_of(&j);
        assert!(
            !patch.iter().any(|op| op["path"].as_str().is_some_and(|p| p
                .ends_with("/targetContainerName")
                || p.ends_with("/volumeMounts"))),
            "{level}: {patch:?}"
        );
        let warnings = j.response.warnings.unwrap_or_default();
        assert!(
            warnings.iter().any(|w| w.contains(
                "container \"new\" was not given targetContainerName \"app\": with it, \
                 mounting secret volume \"creds\" (mounted by container \"app\""
            )),
            "{level}: {warnings:?}"
        );
        let patched = apply(&r, &patch);
        let v = judge(&e, &patched, Endpoint::Validate, Some(&ns));
        assert!(v.response.allowed, "{level}: {}", v.response.result.message);
        // Reinvoked on its own patch, it adds nothing.
        let again = patch_of(&judge(&e, &patched, Endpoint::Mutate, Some(&ns)));
        assert!(again.is_empty(), "{level}: {again:?}");
    }
    // A user of its own keeps the target out of reach: the default is given.
    let mut d = debugger("new", "busybox");
    d["securityContext"] = json!({"runAsUser": 2000});
    let mut r = attach("ns", "u", &[], vec![], vec![d]);
    edit_pods(&mut r, |p| {
        p["spec"]["securityContext"] = json!({"runAsUser": 1000, "runAsNonRoot": true});
    });
    let patch = patch_of(&judge(&e, &r, Endpoint::Mutate, None));
    assert!(
        patch
            .iter()
            .any(|op| op["path"] == "/spec/ephemeralContainers/0/targetContainerName"),
        "{patch:?}"
    );
    let v = judge(&e, &apply(&r, &patch), Endpoint::Validate, None);
    assert!(v.response.allowed, "{}", v.response.result.message);
}
