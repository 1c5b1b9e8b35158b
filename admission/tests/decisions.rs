//! Issue point 5: verdicts — default deny, grants adding up, modes, and messages that say who
//! could have been granted what.

mod common;

use common::*;
use kspy_admission::{Endpoint, NoPolicyVerdict, Settings, Verdict};
use serde_json::json;

const TEAM: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: images}
spec:
  match: {actions: [attach], groups: [dev, sre]}
  grant:
    images: [busybox:1.36*, registry.example.com/debug/*]
    runAsRoot: true
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: tracing}
spec:
  match: {actions: [attach], groups: [sre], namespaces: [prod-*]}
  grant:
    capabilities: [SYS_PTRACE]
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: digest-warning}
spec:
  mode: Warn
  validations:
    - expression: "container.image.contains('@sha256:')"
      message: pin debug images by digest
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: audit-tty}
spec:
  mode: Audit
  validations:
    - expression: "!has(container.tty) || !container.tty"
      message: interactive session
"#;

/// Adds `volume` to the pod of the attach review `r`, before and after alike.
fn add_pod_volume(r: &mut serde_json::Value, volume: serde_json::Value) {
    edit_pods(r, |pod| {
        pod["spec"]["volumes"]
            .as_array_mut()
            .expect("volumes")
            .push(volume.clone());
    });
}

fn ptrace(name: &str, image: &str, cap: &str) -> serde_json::Value {
    let mut d = debugger(name, image);
    d["securityContext"] = json!({"capabilities": {"add": [cap]}});
    d
}

#[test]
fn grants_add_up_across_applicable_policies() {
    let e = engine(TEAM);
    for cap in ["SYS_PTRACE", "sys_ptrace", "CAP_SYS_PTRACE"] {
        let r = attach(
            "prod-eu",
            "alice",
            &["sre"],
            vec![],
            vec![ptrace("d", "docker.io/library/busybox:1.36.1", cap)],
        );
        let j = validate(&e, &r);
        assert!(j.response.allowed, "{cap}: {}", j.response.result.message);
        assert_eq!(j.verdict, Verdict::Allowed);
        // The image came from one policy, the capability from another.
        let grants = &j.response.audit_annotations["grants"];
        assert!(
            grants.contains("images: image docker.io/library/busybox:1.36.1"),
            "{grants}"
        );
        assert!(
            grants.contains("tracing: capability SYS_PTRACE"),
            "{grants}"
        );
        // Warn and Audit policies report without denying.
        let warnings = j.response.warnings.clone().unwrap_or_default();
        assert_eq!(
            warnings,
            ["policy digest-warning: pin debug images by digest"]
        );
        assert_eq!(
            j.response.audit_annotations["audit-audit-tty"],
            "interactive session"
        );
    }
}

/// The audit log's `reason` is the `KSPY_REASON` the debug container sees. Given twice, the
/// kubelet sets the last (later entries replace earlier ones of the same name); the audit
/// log recorded the first, so a throwaway first entry hid the stated reason (or the reverse).
#[test]
fn the_audited_reason_is_the_one_the_container_sees() {
    let e = engine(TEAM);
    let mut debugger = ptrace("d", "docker.io/library/busybox:1.36.1", "SYS_PTRACE");
    debugger["env"] = json!([
        {"name": "KSPY_REASON", "value": "x"},
        {"name": "OTHER", "value": "y"},
        {"name": "KSPY_REASON", "value": "INC-4211 checkout latency"},
    ]);
    let r = attach("prod-eu", "alice", &["sre"], vec![], vec![debugger]);
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
    assert_eq!(
        j.response.audit_annotations["reason"],
        "INC-4211 checkout latency"
    );
}

/// Two debug containers in one request, one of them interactive and neither pinned by digest:
/// the Warn policy's warning and the Audit policy's annotation say which container each finding
/// is about, as a denial does, instead of "interactive session" (or "pin …; pin …") with no
/// container to tell them apart. A single debug container is reported as before.
#[test]
fn warn_and_audit_findings_name_the_container_when_there_are_several() {
    let e = engine(TEAM);
    let mut quiet = debugger(
        "quiet",
        "registry.example.com/debug/tools@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );
    quiet["stdin"] = json!(false);
    quiet["tty"] = json!(false);
    let r = attach(
        "prod-eu",
        "alice",
        &["sre"],
        vec![],
        vec![debugger("talky", "busybox:1.36"), quiet],
    );
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
    assert_eq!(
        j.response.warnings.clone().unwrap_or_default(),
        ["container \"talky\": policy digest-warning: pin debug images by digest"]
    );
    assert_eq!(
        j.response.audit_annotations["audit-audit-tty"],
        "container \"talky\": interactive session"
    );
}

#[test]
fn a_missing_grant_names_who_has_it() {
    let e = engine(TEAM);
    let r = attach(
        "prod-eu",
        "bob",
        &["dev"],
        vec![],
        vec![ptrace("d", "busybox:1.36", "SYS_PTRACE")],
    );
    let j = validate(&e, &r);
    assert!(!j.response.allowed);
    assert_eq!(j.verdict, Verdict::Denied);
    assert_eq!(j.response.result.code, 403);
    let m = &j.response.result.message;
    assert!(
        m.contains("capability SYS_PTRACE is not granted by the policies that apply (images); tracing grants it to groups [sre] in namespaces [prod-*]"),
        "{m}"
    );
}

/// A granting policy whose CEL fails to evaluate denies with that failure as the reason, not
/// also with "no DebugPolicy allows", which would name the failed policy as one for everyone.
#[test]
fn a_grant_that_failed_to_evaluate_is_the_reason_not_a_missing_policy() {
    let e = engine(&policy(
        "everyone",
        "  match: {actions: [attach]}\n  grant: {images: ['**'], runAsRoot: true}\n  validations:\n    - expression: \"object.metadata.labels['absent'] == 'x'\"\n      message: needs the label",
    ));
    let j = validate(
        &e,
        &attach(
            "ns",
            "bob",
            &["dev"],
            vec![],
            vec![debugger("d", "busybox")],
        ),
    );
    assert!(!j.response.allowed);
    let m = &j.response.result.message;
    assert!(
        m.contains("policy everyone: validation 1 (object.metadata.labels['absent'] == 'x') failed to evaluate"),
        "{m}"
    );
    assert!(!m.contains("no DebugPolicy allows"), "{m}");
    assert_eq!(m.lines().filter(|l| l.starts_with("- ")).count(), 1, "{m}");
    // Without the failure the same policy allows.
    let fine = engine(&policy(
        "everyone",
        "  match: {actions: [attach]}\n  grant: {images: ['**'], runAsRoot: true}",
    ));
    let j = validate(
        &fine,
        &attach(
            "ns",
            "bob",
            &["dev"],
            vec![],
            vec![debugger("d", "busybox")],
        ),
    );
    assert!(j.response.allowed, "{:?}", j.response.result.message);
}

#[test]
fn every_reason_is_listed() {
    let e = engine(TEAM);
    let mut d = ptrace("d", "registry.example.com.evil.io/debug/x", "NET_ADMIN");
    d["securityContext"]["privileged"] = json!(true);
    let j = validate(&e, &attach("prod-eu", "alice", &["sre"], vec![], vec![d]));
    let m = &j.response.result.message;
    for want in [
        "image registry.example.com.evil.io/debug/x:latest is not granted",
        "capability NET_ADMIN is not granted",
        "privileged: true is not granted",
        "no policy grants it to anyone",
    ] {
        assert!(m.contains(want), "{want}\n{m}");
    }
    assert_eq!(m.lines().filter(|l| l.starts_with("- ")).count(), 3, "{m}");
}

/// `volumeDevices` hand the container a pod volume as a raw block device: the volume's data,
/// writable. They are judged as writable mounts of that volume, so a policy granting no
/// volumes denies them, and one granting non-secret volumes allows a PVC's.
#[test]
fn target_is_the_targeted_container_a_sidecar_init_container_included() {
    // A guardrail a policy may add beyond what kspy judges (README, "Asks"): a debug container
    // runs as a user other than its target's, both named.
    let other_user = format!(
        "{TEAM}---\n{}",
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: other-user}
spec:
  validations:
    - expression: >-
        target != null && has(target.securityContext) && has(target.securityContext.runAsUser)
        && has(container.securityContext) && has(container.securityContext.runAsUser)
        && container.securityContext.runAsUser != target.securityContext.runAsUser
      message: run as a user other than the target's
"#
    );
    let e = engine(&other_user);
    for (user, allowed) in [(1000, false), (2000, true)] {
        let mut d = debugger("d", "busybox:1.36");
        d["targetContainerName"] = json!("proxy");
        d["securityContext"] = json!({"runAsUser": user});
        let mut r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
        edit_pods(&mut r, |pod| {
            pod["spec"]["initContainers"] = json!([{
                "name": "proxy", "image": "envoy", "restartPolicy": "Always",
                "securityContext": {"runAsUser": 1000}
            }]);
        });
        let j = validate(&e, &r);
        assert_eq!(
            j.response.allowed, allowed,
            "user {user}: {}",
            j.response.result.message
        );
    }
}

#[test]
fn a_user_other_than_root_is_only_that_user_without_privilege_escalation() {
    let e = engine(
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: non-root}
spec:
  match: {actions: [attach], groups: [dev]}
  grant:
    images: [busybox:1.36*]
"#,
    );
    let judged = |sc: serde_json::Value| {
        let mut d = debugger("d", "busybox:1.36");
        d["securityContext"] = sc;
        validate(&e, &attach("team-a", "alice", &["dev"], vec![], vec![d]))
    };
    // A setuid-root program in the image makes user 1000 root again.
    let j = judged(json!({"runAsUser": 1000}));
    assert!(!j.response.allowed);
    let m = &j.response.result.message;
    assert!(
        m.contains("becoming root through a setuid program (allowPrivilegeEscalation is not false"),
        "{m}"
    );
    assert!(!m.contains("running as root"), "{m}");
    let j = judged(json!({"runAsNonRoot": true, "allowPrivilegeEscalation": true}));
    assert!(!j.response.allowed);
    // With no escalation, the user given is the user it runs as.
    for sc in [
        json!({"runAsUser": 1000, "allowPrivilegeEscalation": false}),
        json!({"runAsNonRoot": true, "allowPrivilegeEscalation": false}),
    ] {
        let j = judged(sc.clone());
        assert!(j.response.allowed, "{sc}: {}", j.response.result.message);
    }
    // Root is root, said once.
    let j = judged(json!({"allowPrivilegeEscalation": false}));
    let m = &j.response.result.message;
    assert!(m.contains("running as root is not granted"), "{m}");
    assert!(!m.contains("setuid"), "{m}");

    // Windows has no setuid programs, and a Windows pod cannot set allowPrivilegeEscalation
    // (the API server refuses it): runAsNonRoot is the whole answer there.
    let mut d = debugger("d", "busybox:1.36");
    d["securityContext"] = json!({"runAsNonRoot": true});
    let mut r = attach("team-a", "alice", &["dev"], vec![], vec![d]);
    edit_pods(&mut r, |pod| pod["spec"]["os"] = json!({"name": "windows"}));
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
    edit_pods(&mut r, |pod| pod["spec"]["os"] = json!({"name": "linux"}));
    assert!(!validate(&e, &r).response.allowed);
}

/// A Windows debug container that may run as an administrator is denied for that, in
/// Windows terms: "running as root" sent its user to `runAsUser`, which the API server
/// refuses in a Windows pod, and did not say that the account was the reason.
#[test]
fn a_windows_administrator_is_denied_as_one_not_as_root() {
    let e = engine(
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: non-root}
spec:
  match: {actions: [attach], groups: [dev]}
  grant:
    images: [busybox:1.36*]
"#,
    );
    let judged = |sc: serde_json::Value, os: &str| {
        let mut d = debugger("d", "busybox:1.36");
        d["securityContext"] = sc;
        let mut r = attach("team-a", "alice", &["dev"], vec![], vec![d]);
        edit_pods(&mut r, |pod| pod["spec"]["os"] = json!({"name": os}));
        validate(&e, &r)
    };
    for (sc, said) in [
        (
            json!({"runAsNonRoot": true, "windowsOptions": {"runAsUserName": "ContainerAdministrator"}}),
            r#"running as Windows account "ContainerAdministrator", an administrator in the container (every account but ContainerUser counts as one; set windowsOptions.runAsUserName: ContainerUser) is not granted"#,
        ),
        (
            json!({"runAsNonRoot": true, "windowsOptions": {"runAsUserName": r"NT AUTHORITY\SYSTEM"}}),
            r#"running as Windows account "NT AUTHORITY\\SYSTEM", an administrator"#,
        ),
        (
            json!({}),
            "running as a Windows administrator (without runAsNonRoot: true the image's default account runs it, ContainerAdministrator in Windows Server Core images; set runAsNonRoot: true and windowsOptions.runAsUserName: ContainerUser) is not granted",
        ),
    ] {
        let j = judged(sc.clone(), "windows");
        assert!(!j.response.allowed, "{sc}");
        let m = &j.response.result.message;
        assert!(m.contains(said), "{sc}: {m}");
        assert!(!m.contains("running as root"), "{sc}: {m}");
    }
    // On Linux, root is root.
    let j = judged(json!({"allowPrivilegeEscalation": false}), "linux");
    let m = &j.response.result.message;
    assert!(m.contains("running as root is not granted"), "{m}");
    assert!(!m.contains("Windows"), "{m}");
}

#[test]
fn volume_devices_are_judged_as_mounts_of_their_volume() {
    let e = engine(TEAM);
    let mut d = debugger("d", "busybox:1.36");
    d["volumeDevices"] = json!([{"name": "data", "devicePath": "/dev/xvda"}]);
    let mut r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
    add_pod_volume(
        &mut r,
        json!({"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
    );
    let j = validate(&e, &r);
    assert!(
        !j.response.allowed,
        "a raw device of a volume no policy grants"
    );
    let m = &j.response.result.message;
    assert!(m.contains("mounting volume \"data\" is not granted"), "{m}");

    let grants_volumes = format!(
        "{TEAM}---\n{}",
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: volumes}
spec:
  match: {actions: [attach], groups: [sre]}
  grant: {mountVolumes: nonSecret}
"#
    );
    let j = validate(&engine(&grants_volumes), &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
}

/// In the node's pid namespace every container's processes are in view, and the kernel opens
/// their files and environment (`/proc/PID/root`, `/proc/PID/environ`) to a process of the
/// same user holding every capability they hold: a root debug container reaches each root
/// container with no more than the runtime's default capabilities, and holding SETUID, every
/// user's. Their Secret mounts and service-account tokens are other pods' secrets, which a
/// grant of the host pid namespace alone does not cover.
#[test]
fn in_the_nodes_pid_namespace_root_reaches_other_pods_files() {
    let monitoring = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: monitoring}
spec:
  match: {actions: [attach, node], groups: [monitoring]}
  grant:
    images: [busybox:1.36*]
    runAsRoot: true
    hostNamespaces: [pid]
    mountVolumes: nonSecret
"#;
    let e = engine(monitoring);
    // node-exporter-like: a pod sharing the node's pid namespace.
    let attach_to_host_pid = |d: serde_json::Value| {
        let mut r = attach("monitoring", "mia", &["monitoring"], vec![], vec![d]);
        edit_pods(&mut r, |pod| pod["spec"]["hostPID"] = json!(true));
        r
    };
    let j = validate(&e, &attach_to_host_pid(debugger("d", "busybox:1.36")));
    let m = &j.response.result.message;
    assert!(!j.response.allowed, "root in the node's pid namespace");
    assert!(
        m.contains("reading other containers' files and environment on the node")
            && m.contains("mountVolumes: all")
            && m.contains("run it as a non-root user with allowPrivilegeEscalation: false"),
        "{m}"
    );
    // A non-root user reaches only processes of that user, which kspy cannot tell apart
    // (README, "Asks"), as for a target whose image picks its user.
    let mut non_root = debugger("d", "busybox:1.36");
    non_root["securityContext"] = json!({"runAsUser": 65534, "allowPrivilegeEscalation": false});
    let j = validate(&e, &attach_to_host_pid(non_root));
    assert!(j.response.allowed, "{}", j.response.result.message);

    // A node pod likewise.
    let mut node = pod("monitoring");
    node["metadata"]["labels"] = json!({"kspy.dev/debug": "node"});
    node["spec"] = json!({"nodeName": "n1", "hostPID": true, "automountServiceAccountToken": false,
        "containers": [{"name": "d", "image": "busybox:1.36"}]});
    let r = create("monitoring", "mia", &["monitoring"], node);
    let j = validate(&e, &r);
    let m = &j.response.result.message;
    assert!(
        !j.response.allowed,
        "a root node pod in the node's pid namespace"
    );
    assert!(m.contains("reading other containers' files"), "{m}");
    // Granted with what it reaches.
    let e = engine(&monitoring.replace("mountVolumes: nonSecret", "mountVolumes: all"));
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
    let j = validate(&e, &attach_to_host_pid(debugger("d", "busybox:1.36")));
    assert!(j.response.allowed, "{}", j.response.result.message);
}

/// The kubelet runs a probe's or lifecycle hook's `httpGet` and `tcpSocket` itself, from the
/// node's network, against the `host` they name (the pod's IP when none): a copy naming one
/// makes the node call what it likes (its own loopback services, the cloud's metadata
/// endpoint). Pod Security's baseline forbids it (Kubernetes 1.34), and kspy judges it as it
/// judges host ports: as privileged.
#[test]
fn a_probe_or_hook_naming_a_host_is_judged_as_privileged() {
    let copies = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: copies}
spec:
  match: {actions: [copy], groups: [sre]}
  grant: {images: ['**'], runAsRoot: true, mountVolumes: all}
"#;
    let e = engine(copies);
    let copy_with = |probe_on: &str, handler: serde_json::Value| {
        let mut copy = pod("prod-eu");
        copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
        copy["spec"]["containers"][1][probe_on] = handler;
        create("prod-eu", "alice", &["sre"], copy)
    };
    // Without a host, the kubelet calls the pod itself.
    let own = json!({"httpGet": {"path": "/healthz", "port": 8080}});
    let j = validate(&e, &copy_with("livenessProbe", own));
    assert!(j.response.allowed, "{}", j.response.result.message);
    for (on, handler, host) in [
        (
            "livenessProbe",
            json!({"httpGet": {"host": "169.254.169.254", "path": "/latest/meta-data/", "port": 80}}),
            "169.254.169.254",
        ),
        (
            "readinessProbe",
            json!({"tcpSocket": {"host": "127.0.0.1", "port": 10250}}),
            "127.0.0.1",
        ),
        (
            "lifecycle",
            json!({"postStart": {"httpGet": {"host": "10.0.0.1", "path": "/", "port": 6443}}}),
            "10.0.0.1",
        ),
    ] {
        let j = validate(&e, &copy_with(on, handler));
        let m = &j.response.result.message;
        assert!(!j.response.allowed, "{on} naming host {host}");
        assert!(
            m.contains(&format!("host {host}")) && m.contains("Pod Security's baseline forbids"),
            "{m}"
        );
    }
}

/// A flexVolume's content is whatever its driver puts there, and the drivers were the way to
/// hand credentials to pods before CSI (Azure Key Vault's `azure/kv` mounts vault secrets):
/// like an inline CSI volume, a grant of non-secret volumes does not cover it.
#[test]
fn a_flex_volume_is_judged_as_a_secret_volume() {
    let grants_volumes = format!(
        "{TEAM}---\n{}",
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: volumes}
spec:
  match: {actions: [attach], groups: [sre]}
  grant: {mountVolumes: nonSecret}
"#
    );
    let e = engine(&grants_volumes);
    let mut d = debugger("d", "busybox:1.36");
    d["volumeMounts"] = json!([{"name": "vault", "mountPath": "/kv", "readOnly": true}]);
    let mut r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
    add_pod_volume(
        &mut r,
        json!({"name": "vault", "flexVolume": {"driver": "azure/kv", "readOnly": true,
               "secretRef": {"name": "kvcreds"},
               "options": {"keyvaultname": "prod", "keyvaultobjectnames": "db-password"}}}),
    );
    let j = validate(&e, &r);
    let m = &j.response.result.message;
    assert!(
        !j.response.allowed,
        "a flexVolume on a grant of non-secret volumes"
    );
    assert!(
        m.contains(r#"mounting secret volume "vault" is not granted"#),
        "{m}"
    );
}

/// An `image` volume brings its image onto the node when a container first uses it, and the
/// container can run what it holds: its image is judged as the container's own image is.
#[test]
fn image_volumes_the_kubelet_pulls_for_the_request_need_an_image_grant() {
    let policy = format!(
        "{TEAM}---\n{}",
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: volumes}
spec:
  match: {groups: [sre]}
  grant: {mountVolumes: nonSecret}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: copies}
spec:
  match: {actions: [copy], groups: [sre]}
  grant: {images: ['registry.example.com/**'], runAsRoot: true, mountVolumes: nonSecret}
"#
    );
    let e = engine(&policy);
    let evil = json!({"name": "tools", "image": {"reference": "evil.example.net/miner:1"}});
    let mount = json!([{"name": "tools", "mountPath": "/tools"}]);

    // A copy: every image volume it mounts is pulled for it.
    let mut copy = pod("prod-eu");
    copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    copy["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(evil.clone());
    copy["spec"]["containers"][1]["image"] = json!("registry.example.com/envoy:1");
    copy["spec"]["containers"][1]["volumeMounts"] = mount.clone();
    let j = validate(&e, &create("prod-eu", "alice", &["sre"], copy));
    let m = &j.response.result.message;
    assert!(
        !j.response.allowed,
        "an image volume from outside the allow-list"
    );
    assert!(
        m.contains(r#"image evil.example.net/miner:1 (of image volume "tools", whose files the container can run) is not granted"#),
        "{m}"
    );

    // An attached container using an image volume no container of the pod uses yet.
    let mut d = debugger("d", "busybox:1.36");
    d["volumeMounts"] = mount.clone();
    let mut r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
    add_pod_volume(&mut r, evil);
    let j = validate(&e, &r);
    assert!(
        !j.response.allowed,
        "the kubelet pulls it for the debug container"
    );
    assert!(
        j.response
            .result
            .message
            .contains("image evil.example.net/miner:1 (of image volume"),
        "{}",
        j.response.result.message
    );

    // One the pod's own container uses was pulled with the pod: mounting it is a volume ask.
    edit_pods(&mut r, |pod| {
        pod["spec"]["containers"][1]["volumeMounts"] = mount.clone();
    });
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);

    // An invalid reference is never granted, and the denial says what is wrong with it.
    edit_pods(&mut r, |pod| {
        pod["spec"]["containers"][1]["volumeMounts"] = json!([]);
        pod["spec"]["volumes"][2]["image"]["reference"] = json!("Evil");
    });
    let j = validate(&e, &r);
    let m = &j.response.result.message;
    assert!(!j.response.allowed);
    assert!(
        m.contains(r#"image volume "tools": invalid image reference "Evil""#)
            && m.contains("no policy grants what is not valid"),
        "{m}"
    );
}

#[test]
fn default_deny_and_audit_only() {
    let r = attach(
        "prod-eu",
        "mallory",
        &["contractors"],
        vec![],
        vec![debugger("d", "busybox:1.36")],
    );
    let j = validate(&engine(TEAM), &r);
    assert!(!j.response.allowed);
    assert!(j.response.result.message.contains("no DebugPolicy allows user \"mallory\" (groups contractors) to attach in namespace \"prod-eu\""));
    assert!(
        j.response
            .result
            .message
            .contains("images (to groups [dev, sre] for [attach])")
    );

    let audit_only = Settings {
        no_policy: NoPolicyVerdict::Allow,
        ..Settings::default()
    };
    let j = validate(&engine_with(TEAM, audit_only), &r);
    assert!(j.response.allowed);
    assert_eq!(
        j.response.audit_annotations["no-policy"],
        "allowed-audit-only"
    );
    let warnings = j.response.warnings.unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("allowed only because kspy runs audit-only")),
        "{warnings:?}"
    );
}

/// `--no-policy-allows` lets through what no policy allows, and says so, only when nothing
/// else denies: a request a guardrail denies was not "allowed only because" of it.
#[test]
fn audit_only_warns_only_when_it_turned_a_denial_into_an_allow() {
    let guardrail = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: production-reason}
spec:
  match:
    namespaceSelector:
      matchLabels: {env: production}
  validations:
    - expression: "has(container.env)"
      message: a reason is needed in production
"#;
    let audit_only = Settings {
        no_policy: NoPolicyVerdict::Allow,
        ..Settings::default()
    };
    let e = engine_with(&format!("{TEAM}---{guardrail}"), audit_only);
    let r = attach(
        "prod-eu",
        "mallory",
        &["contractors"],
        vec![],
        vec![debugger("d", "busybox:1.36")],
    );
    let production = namespace("prod-eu", &[("env", "production")]);
    let j = judge(&e, &r, Endpoint::Validate, Some(&production));
    assert!(!j.response.allowed);
    assert!(
        j.response
            .result
            .message
            .contains("a reason is needed in production"),
        "{}",
        j.response.result.message
    );
    let warnings = j.response.warnings.clone().unwrap_or_default();
    assert!(
        !warnings.iter().any(|w| w.contains("audit-only")),
        "{warnings:?}"
    );
    assert!(
        !j.response.audit_annotations.contains_key("no-policy"),
        "{:?}",
        j.response.audit_annotations
    );

    // Elsewhere the guardrail does not apply: audit-only is what allowed it, and it says so.
    let staging = namespace("prod-eu", &[("env", "staging")]);
    let j = judge(&e, &r, Endpoint::Validate, Some(&staging));
    assert!(j.response.allowed);
    let warnings = j.response.warnings.clone().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("allowed only because kspy runs audit-only")),
        "{warnings:?}"
    );
    assert_eq!(
        j.response.audit_annotations["no-policy"],
        "allowed-audit-only"
    );
}

#[test]
fn hostile_inputs_are_denied_with_reasons() {
    let e = engine(TEAM);
    for (image, want) in [
        ("BusyBox", "invalid image reference \"BusyBox\""),
        ("busybox:1.36 ", "white space"),
        ("", "invalid image reference \"\""),
    ] {
        let j = validate(
            &e,
            &attach(
                "prod-eu",
                "alice",
                &["sre"],
                vec![],
                vec![debugger("d", image)],
            ),
        );
        assert!(!j.response.allowed, "{image:?}");
        assert!(
            j.response.result.message.contains(want),
            "{image:?}: {}",
            j.response.result.message
        );
    }
    let j = validate(
        &e,
        &attach(
            "prod-eu",
            "alice",
            &["sre"],
            vec![],
            vec![ptrace("d", "busybox:1.36", "SYS PTRACE")],
        ),
    );
    assert!(
        j.response
            .result
            .message
            .contains("capability \"SYS PTRACE\" (not a capability name)")
    );
}

#[test]
fn selinux_and_host_process_belong_to_the_privileged_family() {
    let e = engine(TEAM);
    let privileged =
        engine(&TEAM.replace("runAsRoot: true", "runAsRoot: true\n    privileged: true"));
    let judged =
        |e: &kspy_admission::Engine, container_sc: serde_json::Value, pod_sc: serde_json::Value| {
            let mut d = debugger("d", "busybox:1.36");
            d["securityContext"] = container_sc;
            let mut r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
            r["request"]["object"]["spec"]["securityContext"] = pod_sc;
            validate(e, &r).response
        };
    let none = json!(null);
    // What Pod Security's baseline allows is no privilege.
    for sc in [
        json!({"seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"}}),
        json!({"seLinuxOptions": {"type": "container_init_t"}}),
        json!({"seLinuxOptions": {"type": ""}}),
        json!({"windowsOptions": {"hostProcess": false}}),
    ] {
        let r = judged(&e, sc.clone(), none.clone());
        assert!(r.allowed, "{sc}: {}", r.result.message);
    }
    // An unconfined SELinux type, a user or role, HostProcess: privileged, at either level.
    for (container_sc, pod_sc, want) in [
        (
            json!({"seLinuxOptions": {"type": "spc_t"}}),
            none.clone(),
            "SELinux options",
        ),
        (
            json!({"seLinuxOptions": {"type": "unconfined_t"}}),
            none.clone(),
            "SELinux options",
        ),
        (
            json!({"seLinuxOptions": {"user": "system_u"}}),
            none.clone(),
            "SELinux options",
        ),
        (
            json!({"seLinuxOptions": {"role": "system_r"}}),
            none.clone(),
            "SELinux options",
        ),
        (
            none.clone(),
            json!({"seLinuxOptions": {"type": "spc_t"}}),
            "SELinux options",
        ),
        (
            json!({"windowsOptions": {"hostProcess": true}}),
            none.clone(),
            "hostProcess",
        ),
        (
            none.clone(),
            json!({"windowsOptions": {"hostProcess": true}}),
            "hostProcess",
        ),
    ] {
        let r = judged(&e, container_sc.clone(), pod_sc.clone());
        assert!(!r.allowed, "{container_sc} {pod_sc}");
        assert!(r.result.message.contains(want), "{}", r.result.message);
        let r = judged(&privileged, container_sc.clone(), pod_sc.clone());
        assert!(r.allowed, "granted privileged: {}", r.result.message);
    }
}

#[test]
fn a_grant_of_all_capabilities_covers_each_one() {
    let all = engine(&TEAM.replace("capabilities: [SYS_PTRACE]", "capabilities: [ALL]"));
    for cap in ["SYS_ADMIN", "NET_ADMIN", "CAP_SYS_PTRACE", "ALL"] {
        let r = attach(
            "prod-eu",
            "alice",
            &["sre"],
            vec![],
            vec![ptrace("d", "busybox:1.36", cap)],
        );
        let j = validate(&all, &r);
        assert!(j.response.allowed, "{cap}: {}", j.response.result.message);
    }
    // Listing one capability grants that one, never ALL.
    let one = engine(TEAM);
    let r = attach(
        "prod-eu",
        "alice",
        &["sre"],
        vec![],
        vec![ptrace("d", "busybox:1.36", "ALL")],
    );
    assert!(!validate(&one, &r).response.allowed);
}

#[test]
fn a_tag_beside_a_digest_grants_nothing() {
    // The runtime pulls `busybox:1.36@sha256:…` by the digest and ignores the tag: a grant of
    // `busybox:1.36*` must not admit whatever digest is labelled 1.36.
    let e = engine(TEAM);
    let digest = format!("sha256:{}", "ab".repeat(32));
    for image in [
        format!("busybox:1.36@{digest}"),
        format!("busybox@{digest}"),
    ] {
        let r = attach(
            "prod-eu",
            "alice",
            &["sre"],
            vec![],
            vec![debugger("d", &image)],
        );
        let j = validate(&e, &r);
        assert!(!j.response.allowed, "{image}");
        assert!(
            j.response.result.message.contains(&format!(
                "image docker.io/library/busybox@{digest} is not granted"
            )),
            "{}",
            j.response.result.message
        );
    }
    let pinned = engine(&TEAM.replace("busybox:1.36*", &format!("busybox@{digest}")));
    let r = attach(
        "prod-eu",
        "alice",
        &["sre"],
        vec![],
        vec![debugger("d", &format!("busybox:1.36@{digest}"))],
    );
    assert!(validate(&pinned, &r).response.allowed);
}

/// A reference pinned by digest has no tag, so a pattern naming a tag never matches it, even
/// when a wildcard before the `:` could stretch over the `@sha256` and the tag's pattern over
/// the digest's hex: `tools@sha256:1…` is not a 1.x release of tools.
#[test]
fn a_pattern_with_a_tag_never_matches_a_digest() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: releases}
spec:
  match: {actions: [attach]}
  grant:
    images: ["registry.example.com/debug/*:1*"]
    runAsRoot: true
"#;
    let e = engine(policy);
    let judged = |image: &str| {
        let r = attach(
            "prod-eu",
            "alice",
            &["sre"],
            vec![],
            vec![debugger("d", image)],
        );
        validate(&e, &r)
    };
    let j = judged("registry.example.com/debug/tools:1.4");
    assert!(j.response.allowed, "{}", j.response.result.message);
    let digest = format!("sha256:1{}", "a".repeat(63));
    let pinned = format!("registry.example.com/debug/tools@{digest}");
    let j = judged(&pinned);
    let m = &j.response.result.message;
    assert!(!j.response.allowed, "{pinned} is no tag 1*");
    assert!(m.contains(&format!("image {pinned} is not granted")), "{m}");
    // What to do: the tag pattern cannot match a digest; grant the digest or the repository.
    assert!(
        m.contains("pinned by digest, it has no tag")
            && m.contains(r#"registry.example.com/debug/*:1*"#),
        "{m}"
    );
}

/// `index.docker.io` is Docker Hub only as the registry: a mirror laying out its paths by
/// upstream host keeps it as a path, and a grant of that path grants no other.
#[test]
fn index_docker_io_is_docker_hub_only_as_the_registry() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: mirror}
spec:
  match: {actions: [attach]}
  grant:
    images: ["mirror.example.com/index.docker.io/library/*", "index.docker.io/library/busybox"]
    runAsRoot: true
"#;
    let e = engine(policy);
    let judged = |image: &str| {
        let r = attach(
            "prod-eu",
            "alice",
            &["sre"],
            vec![],
            vec![debugger("d", image)],
        );
        validate(&e, &r)
    };
    for granted in [
        "mirror.example.com/index.docker.io/library/busybox:1.36",
        "busybox:1.36",
    ] {
        let j = judged(granted);
        assert!(
            j.response.allowed,
            "{granted}: {}",
            j.response.result.message
        );
    }
    let j = judged("mirror.example.com/docker.io/library/busybox:1.36");
    let m = &j.response.result.message;
    assert!(!j.response.allowed, "another path of the mirror");
    assert!(
        m.contains("image mirror.example.com/docker.io/library/busybox:1.36 is not granted"),
        "{m}"
    );
}

#[test]
fn host_paths_are_judged_after_normalization() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: node}
spec:
  match: {actions: [node]}
  grant:
    images: ['**']
    runAsRoot: true
    hostNamespaces: [pid]
    # Root in the node's pid namespace reads other pods' files through /proc.
    mountVolumes: all
    hostPaths: [/var/log, {path: /, readOnly: true}]
"#;
    let e = engine(policy);
    let node_pod = |path: &str, read_only: bool, host_network: bool| {
        let mut p = pod("default");
        p["metadata"]["labels"] = json!({"kspy.dev/debug": "node"});
        p["spec"] = json!({
            "nodeName": "n1", "hostPID": true, "hostNetwork": host_network,
            "containers": [{"name": "d", "image": "busybox", "volumeMounts": [{"name": "h", "mountPath": "/host", "readOnly": read_only}]}],
            "volumes": [{"name": "h", "hostPath": {"path": path}}]
        });
        create("default", "admin", &["platform"], p)
    };
    let cases = [
        ("/var/log/pods", false, false, true),
        ("/var/log/../../etc", false, false, false),
        ("/var/log/../../etc", true, false, true),
        ("//etc/..", false, false, false),
        ("/var/logs", false, false, false),
        ("/./var/./log/", false, false, true),
        ("/var/log", false, true, false),
    ];
    for (path, ro, net, allowed) in cases {
        let j = validate(&e, &node_pod(path, ro, net));
        assert_eq!(
            j.response.allowed, allowed,
            "{path} ro={ro} net={net}: {}",
            j.response.result.message
        );
    }
    let j = validate(&e, &node_pod("/var/log", false, true));
    assert!(
        j.response
            .result
            .message
            .contains("host network namespace is not granted")
    );
}

/// `DirectoryOrCreate` and `FileOrCreate` have the kubelet create a missing path on the node
/// when it sets the volume up, which a read-only mount does not stop: such a mount is judged
/// as a write, unless a container of the running pod already uses the volume.
#[test]
fn host_paths_the_kubelet_creates_are_writes() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: read-only-root}
spec:
  grant:
    images: ['**']
    runAsRoot: true
    hostPaths: [{path: /, readOnly: true}]
"#;
    let e = engine(policy);
    let volume =
        |kind: &str| json!({"name": "h", "hostPath": {"path": "/etc/nologin", "type": kind}});
    let mount = json!([{"name": "h", "mountPath": "/h", "readOnly": true}]);
    let node_pod = |kind: &str| {
        let mut p = pod("default");
        p["metadata"]["labels"] = json!({"kspy.dev/debug": "node"});
        p["spec"] = json!({"nodeName": "n1", "volumes": [volume(kind)],
            "containers": [{"name": "d", "image": "busybox", "volumeMounts": mount.clone()}]});
        create("default", "admin", &["platform"], p)
    };
    for (kind, allowed) in [
        ("", true),
        ("File", true),
        ("Directory", true),
        ("FileOrCreate", false),
        ("DirectoryOrCreate", false),
    ] {
        let j = validate(&e, &node_pod(kind));
        assert_eq!(
            j.response.allowed, allowed,
            "{kind}: {}",
            j.response.result.message
        );
    }
    let j = validate(&e, &node_pod("FileOrCreate"));
    let m = &j.response.result.message;
    assert!(
        m.contains(r#"hostPath /etc/nologin (volume "h", mounted read-only, but type FileOrCreate has the kubelet create the path on the node"#),
        "{m}"
    );

    // Attached: created already when a container of the pod uses it, by the debug container
    // when none does.
    let mut d = debugger("d", "busybox");
    d["volumeMounts"] = mount.clone();
    let mut r = attach("default", "admin", &["platform"], vec![], vec![d]);
    add_pod_volume(&mut r, volume("DirectoryOrCreate"));
    let j = validate(&e, &r);
    assert!(!j.response.allowed, "the debug container has it created");
    edit_pods(&mut r, |pod| {
        pod["spec"]["containers"][1]["volumeMounts"] = mount.clone();
    });
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
}

/// Tracing a process runs code as it: with SYS_PTRACE the debug container takes over its
/// target's user, mounts and environment, which need the grants they would need in the debug
/// container itself.
#[test]
fn tracing_reaches_the_targets_user_volumes_and_secrets() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: trace-only}
spec:
  match: {actions: [attach]}
  grant:
    images: ['busybox:*']
    capabilities: [SYS_PTRACE]
    mountVolumes: nonSecret
"#;
    let e = engine(policy);
    let mut d = ptrace("d", "busybox:1.36", "SYS_PTRACE");
    d["targetContainerName"] = json!("app");
    d["securityContext"]["runAsUser"] = json!(1000);
    d["securityContext"]["allowPrivilegeEscalation"] = json!(false);
    let mut r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
    edit_pods(&mut r, |pod| {
        pod["spec"]["containers"][0]["env"] =
            json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "t"}}}]);
    });
    let j = validate(&e, &r);
    let m = &j.response.result.message;
    assert!(
        !j.response.allowed,
        "the target runs as root and holds Secrets"
    );
    for reached in [
        r#"running as root (held by container "app", whose processes SYS_PTRACE lets the debug container trace and take over) is not granted"#,
        r#"mounting secret volume "creds" (mounted by container "app""#,
        r#"environment from secret "api" (held by container "app""#,
    ] {
        assert!(m.contains(reached), "{reached}\n{m}");
    }
    assert!(
        !m.contains(r#"volume "config""#),
        "a ConfigMap is granted: {m}"
    );

    // A target running as another user, without Secrets, holds nothing beyond the grants.
    edit_pods(&mut r, |pod| {
        let app = &mut pod["spec"]["containers"][0];
        app["securityContext"] = json!({"runAsUser": 10001, "allowPrivilegeEscalation": false});
        app["env"] = json!([]);
        app["volumeMounts"] = json!([{"name": "config", "mountPath": "/etc/web"}]);
    });
    let j = validate(&e, &r);
    assert!(j.response.allowed, "{}", j.response.result.message);
}

/// Root without SETUID and SETGID still becomes the target's user when no_new_privs is unset:
/// holding CHOWN and FOWNER (both runtimes' defaults) it gives a program of its own to that user,
/// sets its setuid bit and runs it, and then reads the target's Secret mounts through
/// /proc/PID/root. Only `allowPrivilegeEscalation: false`, or dropping FOWNER too, stops it
/// (without CHOWN a file of that user's in a shared volume does).
#[test]
fn root_without_setuid_becomes_the_targets_user_through_a_setuid_program() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: dev}
spec:
  match: {actions: [attach]}
  grant:
    images: ['busybox:*']
    runAsRoot: true
    mountVolumes: nonSecret
"#;
    let e = engine(policy);
    let judged = |sc: serde_json::Value| {
        let mut d = debugger("d", "busybox:1.36");
        d["targetContainerName"] = json!("app");
        d["securityContext"] = sc;
        let mut r = attach("team-a", "bob", &["dev"], vec![], vec![d]);
        edit_pods(&mut r, |pod| {
            pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 10001});
        });
        validate(&e, &r)
    };
    let j = judged(json!({"capabilities": {"drop": ["SETUID", "SETGID"]}}));
    let m = &j.response.result.message;
    assert!(
        !j.response.allowed,
        "a setuid program makes it the target's user"
    );
    for part in [
        r#"mounting secret volume "creds" (mounted by container "app""#,
        "by running a program it made setuid to that user, which FOWNER allows",
        "set allowPrivilegeEscalation: false",
    ] {
        assert!(m.contains(part), "{part}\n{m}");
    }
    for way_out in [
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["SETUID", "SETGID"]}}),
        json!({"capabilities": {"drop": ["SETUID", "SETGID", "FOWNER"]}}),
    ] {
        let j = judged(way_out.clone());
        assert!(
            j.response.allowed,
            "{way_out}: {}",
            j.response.result.message
        );
    }
}

#[test]
fn namespace_selectors_need_the_namespace() {
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: labelled}
spec:
  match: {namespaceSelector: {matchLabels: {debug: allowed}}}
  grant: {images: ['**'], runAsRoot: true}
"#;
    let e = engine(policy);
    let r = attach("ns", "u", &[], vec![], vec![debugger("d", "busybox")]);
    let yes = namespace("ns", &[("debug", "allowed")]);
    let no = namespace("ns", &[("debug", "no")]);
    assert!(
        judge(&e, &r, kspy_admission::Endpoint::Validate, Some(&yes))
            .response
            .allowed
    );
    assert!(
        !judge(&e, &r, kspy_admission::Endpoint::Validate, Some(&no))
            .response
            .allowed
    );
    // Unknown namespace: the selector cannot hold, so nothing is granted (fail closed).
    assert!(!validate(&e, &r).response.allowed);
}

#[test]
fn a_guardrail_selecting_namespaces_by_label_is_not_skipped_for_an_unknown_namespace() {
    // A grant for everyone, and a guardrail for production namespaces only. When the
    // Namespace cannot be read, no one can tell whether the guardrail applies; skipping it
    // would allow what it exists to deny.
    let policies = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: anyone}
spec:
  grant: {images: ['**'], runAsRoot: true}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: production-reason}
spec:
  match: {namespaceSelector: {matchLabels: {env: production}}}
  validations:
    - expression: "has(container.env) && container.env.exists(e, e.name == 'KSPY_REASON')"
      message: say why
"#;
    let e = engine(policies);
    let r = attach("shop", "u", &[], vec![], vec![debugger("d", "busybox")]);
    let validate_in = |ns: Option<&k8s_openapi::api::core::v1::Namespace>| {
        judge(&e, &r, kspy_admission::Endpoint::Validate, ns).response
    };
    let production = namespace("shop", &[("env", "production")]);
    let staging = namespace("shop", &[("env", "staging")]);
    assert!(!validate_in(Some(&production)).allowed);
    assert!(validate_in(Some(&staging)).allowed);

    let unknown = validate_in(None);
    assert!(!unknown.allowed);
    let message = unknown.result.message;
    assert!(
        message.contains("policy production-reason applies in namespaces labelled env=production")
            && message.contains("are unknown")
            && message.contains("RBAC `get` on namespaces"),
        "{message}"
    );

    // A Warn-mode guardrail warns, it never denies: an unknown Namespace does not deny either.
    let warn_only = engine(&policies.replace("validations:", "mode: Warn\n  validations:"));
    assert!(
        judge(&warn_only, &r, kspy_admission::Endpoint::Validate, None)
            .response
            .allowed
    );
}

/// A policy that selects namespaces by label in CEL, reading `namespaceObject` (the README's
/// `has(a.b) ? a.b : x` idiom included), is judged as one with a `namespaceSelector` when the
/// Namespace is unknown: `namespaceObject` is null then, and `has()` over it is false, so a
/// guarded condition was false (the guardrail skipped, the request allowed) or a negated one
/// true (the policy granting in namespaces it excludes).
#[test]
fn a_policy_reading_namespace_labels_in_cel_is_undetermined_for_an_unknown_namespace() {
    let policies = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: anyone}
spec:
  grant: {images: ['**'], runAsRoot: true}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: production-reason}
spec:
  conditions:
    - name: production
      expression: >-
        has(namespaceObject.metadata.labels) && 'env' in namespaceObject.metadata.labels
        && namespaceObject.metadata.labels['env'] == 'production'
  validations:
    - expression: "has(container.env) && container.env.exists(e, e.name == 'KSPY_REASON')"
      message: say why
"#;
    let e = engine(policies);
    let r = attach("shop", "u", &[], vec![], vec![debugger("d", "busybox")]);
    let validate_in = |e: &kspy_admission::Engine,
                       ns: Option<&k8s_openapi::api::core::v1::Namespace>| {
        judge(e, &r, kspy_admission::Endpoint::Validate, ns).response
    };
    let production = namespace("shop", &[("env", "production")]);
    let staging = namespace("shop", &[("env", "staging")]);
    assert!(!validate_in(&e, Some(&production)).allowed);
    assert!(validate_in(&e, Some(&staging)).allowed);
    let unknown = validate_in(&e, None);
    assert!(
        !unknown.allowed,
        "a guardrail was skipped for want of the Namespace"
    );
    let message = unknown.result.message;
    assert!(
        message.contains("policy production-reason reads namespaceObject")
            && message.contains("are unknown")
            && message.contains("RBAC `get` on namespaces"),
        "{message}"
    );

    // A grant for namespaces not labelled frozen: with the Namespace unknown, no one can tell.
    let not_frozen = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: not-frozen}
spec:
  conditions:
    - name: not-frozen
      expression: >-
        !(has(namespaceObject.metadata.labels) && 'frozen' in namespaceObject.metadata.labels)
  grant: {images: ['**'], runAsRoot: true}
"#;
    let e = engine(not_frozen);
    let frozen = namespace("shop", &[("frozen", "true")]);
    assert!(validate_in(&e, Some(&staging)).allowed);
    assert!(!validate_in(&e, Some(&frozen)).allowed);
    assert!(
        !validate_in(&e, None).allowed,
        "a grant held in a namespace whose labels are unknown"
    );
}

#[test]
fn guardrails_are_not_offered_as_policies_that_allow() {
    let policies = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: sre-only}
spec:
  match: {groups: [sre]}
  grant: {images: ['**'], runAsRoot: true}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: reason-required}
spec:
  validations: [{expression: "true", message: never}]
"#;
    let r = attach(
        "shop",
        "bob",
        &["dev"],
        vec![],
        vec![debugger("d", "busybox")],
    );
    let message = validate(&engine(policies), &r).response.result.message;
    assert!(
        message.contains("(policies for attach: sre-only (to groups [sre]))"),
        "{message}"
    );
    assert!(!message.contains("reason-required"), "{message}");
}

#[test]
fn a_namespace_without_labels_is_known_and_has_none() {
    // `NotIn` and `DoesNotExist` hold for a Namespace without labels; they must not be read
    // as "Namespace unknown".
    let policy = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: not-frozen}
spec:
  match: {namespaceSelector: {matchExpressions: [{key: frozen, operator: DoesNotExist}]}}
  grant: {images: ['**'], runAsRoot: true}
"#;
    let e = engine(policy);
    let r = attach("ns", "u", &[], vec![], vec![debugger("d", "busybox")]);
    let mut bare = namespace("ns", &[]);
    bare.metadata.labels = None;
    assert!(
        judge(&e, &r, kspy_admission::Endpoint::Validate, Some(&bare))
            .response
            .allowed
    );
    let frozen = namespace("ns", &[("frozen", "yes")]);
    assert!(
        !judge(&e, &r, kspy_admission::Endpoint::Validate, Some(&frozen))
            .response
            .allowed
    );
}

#[test]
fn pod_security_levels_warn_before_the_api_server_rejects() {
    let e = engine(TEAM);
    let r = attach(
        "prod-eu",
        "alice",
        &["sre"],
        vec![],
        vec![ptrace("d", "busybox:1.36", "SYS_PTRACE")],
    );
    let baseline = namespace(
        "prod-eu",
        &[("pod-security.kubernetes.io/enforce", "baseline")],
    );
    let j = judge(&e, &r, kspy_admission::Endpoint::Validate, Some(&baseline));
    assert!(j.response.allowed);
    let w = j.response.warnings.unwrap_or_default().join("\n");
    assert!(w.contains("enforces Pod Security \"baseline\", which forbids in container \"d\": capability SYS_PTRACE"), "{w}");

    // Restricted wants `drop: ["ALL"]` exactly as written, as Pod Security compares it.
    let restricted = namespace(
        "prod-eu",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let conforming = |drop: &str| {
        let mut d = debugger("d", "busybox:1.36");
        d["securityContext"] = serde_json::json!({
            "allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 1000,
            "capabilities": {"drop": [drop]}, "seccompProfile": {"type": "RuntimeDefault"}
        });
        let r = attach("prod-eu", "alice", &["sre"], vec![], vec![d]);
        let j = judge(
            &e,
            &r,
            kspy_admission::Endpoint::Validate,
            Some(&restricted),
        );
        j.response.warnings.unwrap_or_default().join("\n")
    };
    // The line about the debug container (the pod's own containers have one of their own).
    let line_of_d = |w: String| {
        w.lines()
            .find(|l| l.contains(r#"forbids in container "d""#))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(!line_of_d(conforming("ALL")).contains("capabilities not dropping ALL"));
    let w = line_of_d(conforming("all"));
    assert!(w.contains("capabilities not dropping ALL"), "{w}");
}

/// CEL variables are bound with only the fields the policy set reads; expressions that read
/// fields, test their presence or use a variable whole all see what the whole value holds.
#[test]
fn projected_variables_behave_like_whole_ones() {
    let fields_only = policy(
        "fields",
        r#"
  match: {actions: [attach]}
  grant: {images: ["**"], runAsRoot: true}
  validations:
    - expression: >-
        request.userInfo.username == 'alice' && request.subResource == 'ephemeralcontainers'
        && has(request.userInfo.groups) && !has(container.workingDir)
        && container.name == 'd'
      message: fields differ
"#,
    );
    let whole = policy(
        "whole",
        r#"
  match: {actions: [attach]}
  validations:
    - expression: "size(container) >= 2 && request['namespace'] == 'prod-eu'"
      message: whole values differ
"#,
    );
    let r = attach(
        "prod-eu",
        "alice",
        &["dev"],
        vec![],
        vec![debugger("d", "busybox")],
    );
    for yaml in [fields_only.clone(), format!("{fields_only}{whole}")] {
        let j = validate(&engine(&yaml), &r);
        assert!(j.response.allowed, "{}", j.response.result.message);
    }
    let bob = attach(
        "prod-eu",
        "bob",
        &["dev"],
        vec![],
        vec![debugger("d", "busybox")],
    );
    let j = validate(&engine(&fields_only), &bob);
    assert!(!j.response.allowed);
    assert!(j.response.result.message.contains("fields differ"));
}

/// A user or group name may hold `/` (an OIDC user `https://issuer#sub`, a Keycloak group
/// `/platform/sre`): there it is an ordinary character, so `*` matches across it. A guardrail
/// for `users: ['*']` skipped such users, allowing what it was written to deny.
#[test]
fn user_and_group_patterns_match_names_holding_a_slash() {
    let guard = |field: &str, pattern: &str| {
        format!(
            "{}---\n{}",
            policy(
                "everyone",
                "  match: {actions: [attach]}\n  grant: {images: ['**'], runAsRoot: true}"
            ),
            policy(
                "guard",
                &format!(
                    "  match: {{{field}: ['{pattern}']}}\n  validations:\n    - expression: 'false'\n      message: stopped by the guardrail"
                )
            )
        )
    };
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("users", "*", "https://issuer.example.com#1234", &[]),
        (
            "users",
            "oidc:*",
            "oidc:https://issuer.example.com/realms/x#1234",
            &[],
        ),
        (
            "users",
            "*@example.com",
            "https://issuer.example.com#bob@example.com",
            &[],
        ),
        ("groups", "*", "alice", &["/platform/sre"]),
        ("groups", "/platform/*", "alice", &["/platform/sre/oncall"]),
    ];
    for (field, pattern, user, groups) in cases {
        let e = engine(&guard(field, pattern));
        let r = attach("ns", user, groups, vec![], vec![debugger("d", "busybox")]);
        let j = validate(&e, &r);
        assert!(
            !j.response.allowed,
            "{field} {pattern:?} vs {user:?} {groups:?}"
        );
        assert!(
            j.response
                .result
                .message
                .contains("stopped by the guardrail"),
            "{}",
            j.response.result.message
        );
    }
    // Namespaces and service accounts keep their segments.
    let e = engine(&policy(
        "sa",
        "  match: {serviceAccounts: ['ci/*']}\n  grant: {images: ['**'], runAsRoot: true}",
    ));
    let r = attach(
        "ns",
        "system:serviceaccount:ci:deployer",
        &[],
        vec![],
        vec![debugger("d", "busybox")],
    );
    assert!(validate(&e, &r).response.allowed);
}

/// `serviceAccounts` match only user names the API server reads as a service account's:
/// `system:serviceaccount:NS:NAME`, exactly two non-empty parts.
#[test]
fn service_accounts_match_only_service_account_user_names() {
    let e = engine(&policy(
        "ci",
        "  match: {serviceAccounts: ['ci/*']}\n  grant: {images: ['**'], runAsRoot: true}",
    ));
    let judged = |user: &str| {
        let r = attach("ns", user, &[], vec![], vec![debugger("d", "busybox")]);
        validate(&e, &r).response.allowed
    };
    assert!(judged("system:serviceaccount:ci:deployer"));
    for user in [
        "system:serviceaccount:ci:deployer:x",
        "system:serviceaccount:ci:",
        "system:serviceaccount:ci:Deployer",
        "system:serviceaccount:ci",
        "system:serviceaccounts:ci:deployer",
    ] {
        assert!(!judged(user), "{user}");
    }
}

/// A container of a copy or node pod using a DRA resource claim (`resources.claims`) gets
/// devices a driver prepares, with the mounts and environment their CDI specs add, which kspy
/// cannot see into; a claim the pod names may be another pod's, its device with it. It was not
/// judged at all; it is now judged as a Secret volume is (as an inline CSI volume is).
#[test]
fn a_resource_claim_of_a_copy_is_judged_as_a_secret_volume() {
    let copies = |volumes: &str| {
        engine(&policy(
            "copies",
            &format!(
                "  match: {{actions: [copy]}}\n  grant: {{images: ['**'], runAsRoot: true, mountVolumes: {volumes}}}"
            ),
        ))
    };
    let mut copy = json!({
        "metadata": {"name": "web-1-debug", "labels": {"kspy.dev/debug": "copy"}},
        "spec": {
            "resourceClaims": [{"name": "gpu", "resourceClaimName": "web-1-gpu"}],
            "containers": [
                {"name": "app", "image": "registry.example.com/shop/web:1"},
                {"name": "debugger", "image": "busybox:1.36",
                 "resources": {"claims": [{"name": "gpu"}, {"name": "gpu"}]}}
            ]
        }
    });
    let j = validate(&copies("nonSecret"), &create("ns", "u", &[], copy.clone()));
    assert!(!j.response.allowed, "the claim went unjudged");
    let message = &j.response.result.message;
    assert!(
        message.contains(
            "container \"debugger\": resource claim \"gpu\" (resources.claims: devices a DRA \
             driver prepares"
        ),
        "{message}"
    );
    assert!(!message.contains("container \"app\""), "{message}");
    assert!(
        validate(&copies("all"), &create("ns", "u", &[], copy.clone()))
            .response
            .allowed
    );
    copy["spec"]["containers"][1]["resources"] = json!({});
    assert!(
        validate(&copies("nonSecret"), &create("ns", "u", &[], copy))
            .response
            .allowed
    );
}
