//! Mutated AdmissionReviews through the webhook's own entry (`ParsedReview::from_bytes` on the
//! raw body, `Engine::judge`, `Judgement::encode`), starting from every shipped fixture and
//! the shipped policies. Whatever the body, the engine never panics (not even one it catches
//! itself), always returns, and refuses what is not JSON. The oracles that can catch an
//! allow by accident:
//!
//! - what reads the same ([`meaning_keeping_changes_never_change_an_answer`]): white space,
//!   member order, escapes, a repeated member, and the parts nobody judges (`managedFields`,
//!   `status`, unknown annotations and fields, `userInfo.extra`) give the same answer, message
//!   and patch included;
//! - more privilege ([`added_privilege_is_denied`]): an allowed fixture given a privilege its
//!   policy does not grant is denied, for that privilege, with the Namespace unknown too, and
//!   after kspy's own `/mutate` patch;
//! - a denial stands ([`denials_stand_while_what_they_name_is_untouched`]): a denied fixture
//!   mutated anywhere but in the fields its denial names (and those that say who asks and
//!   which containers are judged) stays denied; changing those fields (the "cure") allows it,
//!   so the exemption is no blanket;
//! - an unknown Namespace never allows more ([`structural_mutations_never_panic`]).
//!
//! Case counts, seeds and replaying a failure: see `fuzz/run.rs`.

mod fuzz;

use fuzz::json::{self, Doc, Style};
use fuzz::library::{Answer, Library, answer};
use fuzz::rng::Rng;
use fuzz::run::{Case, Run};
use kspy_admission::{Endpoint, Verdict};
use serde_json::{Value, json};

/// Where the typed decoding skips and no shipped policy looks.
const UNJUDGED: [&str; 4] = [
    "/request/object/metadata/managedFields",
    "/request/object/status",
    "/request/oldObject/metadata/managedFields",
    "/request/oldObject/status",
];

fn endpoint(rng: &mut Rng) -> Endpoint {
    if rng.one_in(2) {
        Endpoint::Validate
    } else {
        Endpoint::Mutate
    }
}

/// Answers `body` with the declared Namespaces, inside the case's guard.
fn judge(lib: &Library, case: &Case<'_>, body: &[u8], at: Endpoint, what: &str) -> Option<Answer> {
    case.guard(&format!("{what} (/{})", at.as_str()), body, || {
        answer(&lib.engine, body, at, &|r| lib.namespace_of(r).cloned())
    })
}

/// Answers `body` as a webhook whose Namespace lookup failed.
fn judge_without_namespace(
    lib: &Library,
    case: &Case<'_>,
    body: &[u8],
    at: Endpoint,
    what: &str,
) -> Option<Answer> {
    case.guard(
        &format!("{what} (/{}, Namespace unknown)", at.as_str()),
        body,
        || answer(&lib.engine, body, at, &|_| None),
    )
}

/// True when `body` is JSON text (UTF-8, the grammar), whatever serde_json makes of its
/// numbers, lone surrogates or depth.
fn is_json_text(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => true,
        // Out-of-range numbers, lone surrogates and nesting past serde_json's limit are
        // grammatical JSON that serde_json declines: not "not JSON".
        Err(e) => {
            let m = e.to_string();
            m.contains("number out of range")
                || m.contains("surrogate")
                || m.contains("recursion limit")
        }
    }
}

/// Byte-level damage (bits, bytes, spans, truncation, tokens, spans of other fixtures): what
/// is not JSON is refused; what is judged is judged as its JSON reads, the same as the same
/// document written out again by serde_json.
#[test]
fn mutated_bytes_are_refused_or_judged_as_their_json_reads() {
    let lib = Library::load();
    let run = Run::new(
        "mutated_bytes_are_refused_or_judged_as_their_json_reads",
        0x6b73_7079_f001,
        400,
    );
    let donors: Vec<&[u8]> = lib.fixtures.iter().map(|(_, b)| b.as_slice()).collect();
    let (mut refused, mut judged, mut compared) = (0, 0, 0);
    for mut case in run.cases() {
        let (name, body) = case.rng.pick(&lib.fixtures).clone();
        let mut b = body.clone();
        let what = json::mutate_bytes(&mut case.rng, &mut b, &donors);
        let what = format!("{name}: {what}");
        let at = endpoint(&mut case.rng);
        let Some(got) = judge(&lib, &case, &b, at, &what) else {
            refused += 1;
            continue;
        };
        judged += 1;
        if !is_json_text(&b) {
            case.fail(&format!("{what}: not JSON, yet judged: {got:?}"), &b);
        }
        // The same document written out plainly reads the same; a body with a member given
        // twice (kept last by serde_json's Value) may be refused where the original is not,
        // never judged otherwise.
        if let Ok(doc) = serde_json::from_slice::<Value>(&b) {
            let plain = serde_json::to_vec(&doc).expect("encodes");
            if let Some(again) = judge(&lib, &case, &plain, at, &format!("{what}, rewritten")) {
                compared += 1;
                if again != got {
                    case.fail(
                        &format!(
                            "{what}: judged differently once written out again:\n  as sent: {:?}\n  rewritten: {:?}",
                            got.review, again.review
                        ),
                        &b,
                    );
                }
            }
        }
    }
    run.summary(&format!(
        "refused {refused}, judged {judged}, compared {compared}"
    ));
    if run.cases().count() >= 100 {
        assert!(
            refused > 0 && judged > 0,
            "refused {refused}, judged {judged}"
        );
    }
}

/// One change that keeps what the engine judges: returns what it did, or `None` when the
/// document has no place for it.
fn unjudged_change(rng: &mut Rng, doc: &mut Doc, donors: &[Value]) -> Option<String> {
    let v = &mut doc.value;
    match rng.below(6) {
        // Anything in managedFields and status.
        0 | 1 => {
            let roots: Vec<&str> = UNJUDGED
                .iter()
                .copied()
                .filter(|r| v.pointer(r).is_some())
                .collect();
            if roots.is_empty() {
                return None;
            }
            let root = *rng.pick(&roots);
            let mut targets = vec![root.to_owned()];
            targets.extend(
                json::pointers(v.pointer(root).expect("root"))
                    .into_iter()
                    .map(|p| format!("{root}{p}")),
            );
            // Within serde_json's nesting limit: deeper is another test's business.
            let mut sub = Doc::new(v.clone());
            let what = loop {
                let what = json::mutate_value(rng, &mut sub, &targets, donors);
                if sub.splices.is_empty() {
                    break what;
                }
                sub = Doc::new(v.clone());
            };
            *v = sub.value;
            Some(what)
        }
        // An annotation nobody reads, on the new object or the old.
        2 => {
            let which = *rng.pick(&["/request/object", "/request/oldObject"]);
            let meta = v
                .pointer_mut(&format!("{which}/metadata"))?
                .as_object_mut()?;
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| json!({}))
                .as_object_mut()?;
            let mut key = json::hostile_string(rng, Some("example.com/note"));
            if key == "kspy.dev/reason"
                || key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            {
                key.push('x');
            }
            let value = json::hostile_string(rng, Some("a note"));
            let what = format!(
                "{which} annotation {:?}: {}",
                json::short(&json!(key)),
                json::short(&json!(value))
            );
            annotations.insert(key, Value::String(value));
            Some(what)
        }
        // A member no Kubernetes type has, in an object of a Kubernetes type.
        3 => {
            let free_form = [
                "labels",
                "annotations",
                "nodeSelector",
                "limits",
                "requests",
                "overhead",
                "extra",
                "options",
                "fieldsV1",
                "managedFields",
            ];
            let objects: Vec<String> = json::pointers(v)
                .into_iter()
                .filter(|p| {
                    v.pointer(p).is_some_and(Value::is_object)
                        && !p.split('/').any(|s| free_form.contains(&s))
                })
                .collect();
            let at = rng.pick(&objects).clone();
            let key = format!("kspyFuzz{}", rng.below(1000));
            let value = json::hostile_value(rng);
            let what = format!("unknown member {key}: {} at {at}", json::short(&value));
            v.pointer_mut(&at)?.as_object_mut()?.insert(key, value);
            Some(what)
        }
        // Parts of the request no shipped policy reads.
        4 => {
            let request = v.pointer_mut("/request")?.as_object_mut()?;
            let (field, value) = match rng.below(3) {
                0 => ("dryRun", Value::Bool(rng.one_in(2))),
                1 => (
                    "options",
                    json!({"kind": "UpdateOptions", "fuzz": json::hostile_value(rng)}),
                ),
                _ => (
                    "requestKind",
                    json!({"group": "", "version": "v1", "kind": "Pod"}),
                ),
            };
            let what = format!("request.{field} set to {}", json::short(&value));
            request.insert(field.to_owned(), value);
            Some(what)
        }
        _ => {
            let user = v.pointer_mut("/request/userInfo")?.as_object_mut()?;
            let value = json!({json::hostile_string(rng, Some("k")): [json::hostile_string(rng, Some("v"))]});
            let what = format!("userInfo.extra set to {}", json::short(&value));
            user.insert("extra".into(), value);
            Some(what)
        }
    }
}

/// Changes that keep what the engine judges never change an answer: not the verdict, not the
/// message, not the patch, not the warnings or audit annotations. A member written twice
/// (hostile first, real last) is refused or read as the last.
#[test]
fn meaning_keeping_changes_never_change_an_answer() {
    let lib = Library::load();
    let run = Run::new(
        "meaning_keeping_changes_never_change_an_answer",
        0x6b73_7079_f002,
        200,
    );
    let donors: Vec<Value> = lib
        .fixtures
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).expect("fixture"))
        .collect();
    let (mut same, mut refused_repeats) = (0, 0);
    for mut case in run.cases() {
        let (name, body) = case.rng.pick(&lib.fixtures).clone();
        let at = endpoint(&mut case.rng);
        let baseline = judge(&lib, &case, &body, at, &name).expect("fixtures are reviews");
        let mut doc = Doc::new(serde_json::from_slice(&body).expect("fixture"));
        let mut done = Vec::new();
        for _ in 0..case.rng.range(0, 3) {
            if let Some(what) = unjudged_change(&mut case.rng, &mut doc, &donors) {
                done.push(what);
            }
        }
        let style = Style {
            repeat: case.rng.one_in(3),
            ..Style::all_but_repeats()
        };
        let text = json::write(&mut case.rng, &doc.value, style);
        let what = format!("{name}: {} written {style:?}", done.join("; "));
        match judge(&lib, &case, text.as_bytes(), at, &what) {
            None if style.repeat => refused_repeats += 1,
            got => {
                if got.as_ref() != Some(&baseline) {
                    case.fail(
                        &format!(
                            "{what}: answered {:?}, the fixture {:?}",
                            got.map(|a| a.review),
                            baseline.review
                        ),
                        text.as_bytes(),
                    );
                }
                same += 1;
            }
        }
    }
    run.summary(&format!(
        "same {same}, refused for a repeat {refused_repeats}"
    ));
}

/// An added privilege, as a change to the review and what the denial says about it.
struct Escalation {
    what: String,
    /// A substring of the denial message: the denial is for this privilege.
    says: String,
    apply: Box<dyn Fn(&mut Value)>,
}

/// The pointer of the container a fixture's request judges: the new ephemeral container of
/// an attach, a random container of a debug pod.
fn subject_pointer(rng: &mut Rng, doc: &Value) -> String {
    let old: Vec<&str> = doc
        .pointer("/request/oldObject/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    if let Some(ecs) = doc
        .pointer("/request/object/spec/ephemeralContainers")
        .and_then(Value::as_array)
        && doc["request"]["subResource"] == "ephemeralcontainers"
    {
        let new = ecs
            .iter()
            .position(|c| !old.contains(&c["name"].as_str().unwrap_or("")))
            .expect("an attach fixture adds a container");
        return format!("/request/object/spec/ephemeralContainers/{new}");
    }
    let n = doc["request"]["object"]["spec"]["containers"]
        .as_array()
        .map_or(1, Vec::len);
    format!("/request/object/spec/containers/{}", rng.below(n))
}

fn security_context<'v>(
    doc: &'v mut Value,
    subject: &str,
) -> &'v mut serde_json::Map<String, Value> {
    let c = doc.pointer_mut(subject).expect("subject");
    let sc = c
        .as_object_mut()
        .expect("container")
        .entry("securityContext")
        .or_insert_with(|| json!({}));
    if !sc.is_object() {
        *sc = json!({});
    }
    sc.as_object_mut().expect("object")
}

/// A capability spelled as people spell it; the runtime reads each as the capability.
fn spelled(rng: &mut Rng, cap: &str) -> String {
    match rng.below(4) {
        0 => cap.to_owned(),
        1 => cap.to_lowercase(),
        2 => format!("CAP_{cap}"),
        _ => format!("cap_{}", cap.to_lowercase()),
    }
}

/// Images no shipped policy allows, some a character away from allowed ones.
const FOREIGN_IMAGES: &[&str] = &[
    "docker.io/library/alpine:3.20",
    "alpine",
    "registry.example.com.evil.io/debug/tools:1.4",
    "registry.example.com:443/debug/tools:1.4",
    "registry.example.com/debugx/tools:1.4",
    "registry.example.com/debug/tools/nested:1.4",
    "evil.io/registry.example.com/debug/tools:1.4",
    "busybox:1.35",
    "busybox:latest",
    "busybox",
    "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "busybox:1.36@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "nicolaka/netshoot:latest",
    "nicolaka/netshoot:v1.0",
    "docker.io/nicolaka/netshoot2:v0.1",
    "registry.exаmple.com/debug/tools:1.4",
    "registry.example.com/debug/tools:1.4 ",
    "registry.example.com/debug/../../evil/tools:1.4",
    "",
];

/// The privileges each allowed fixture's policies refuse, each with what the denial says.
///
/// | fixture | policy | refuses |
/// | --- | --- | --- |
/// | attach-dev-plain | developer-attach | every capability, privileged and its family, hostPath, host namespaces (shared with the pod), secret volumes, env from Secrets, images off the allow-list, namespaces without a `team` label or of another team, users outside `developers` + `team-checkout` |
/// | attach-sre-ptrace | sre-debug, production-reason | capabilities but SYS_PTRACE/NET_ADMIN/NET_RAW, privileged and its family, hostPath, host namespaces (shared with the pod), a privileged container it traces, images off the list, kube-system, a missing reason, users outside `sre` |
/// | attach-kube-system-privileged | kube-system-privileged | hostPath, images outside registry.example.com/debug/, namespaces but kube-system, users outside `kube-system-admins` |
/// | copy-fork-sre | sre-copy, production-reason | capabilities but SYS_PTRACE, privileged and its family, hostPath, host namespaces, images off the list, kube-system, a missing reason, users outside `sre` |
/// | node-platform-readonly, node-kubectl-tricky-path | platform-node-debug | capabilities but SYS_PTRACE, privileged and its family, writable hostPath, images off the list, production without a reason, users outside `platform-admins` |
///
/// (Every shipped policy grants running as root, so `runAsUser: 0` is no escalation here.)
fn escalations(fixture: &str, rng: &mut Rng, subject: &str) -> Vec<Escalation> {
    let s = subject.to_owned();
    let mut out: Vec<Escalation> = Vec::new();
    let mut add = |what: String, says: &str, apply: Box<dyn Fn(&mut Value)>| {
        out.push(Escalation {
            what,
            says: says.to_owned(),
            apply,
        })
    };
    let attach = fixture.starts_with("attach-");
    let node = fixture.starts_with("node-");
    let kube_system = fixture == "attach-kube-system-privileged.json";

    // Capabilities.
    let granted: &[&str] = match fixture {
        "attach-dev-plain.json" => &[],
        "attach-sre-ptrace.json" => &["SYS_PTRACE", "NET_ADMIN", "NET_RAW"],
        "attach-kube-system-privileged.json" => &["ALL"],
        _ => &["SYS_PTRACE"],
    };
    if !granted.contains(&"ALL") {
        for cap in [
            "SYS_ADMIN",
            "NET_ADMIN",
            "SYS_MODULE",
            "DAC_READ_SEARCH",
            "BPF",
            "ALL",
        ] {
            if granted.contains(&cap) {
                continue;
            }
            let name = spelled(rng, cap);
            let sp = s.clone();
            let keep = rng.one_in(2);
            add(
                format!("capability {name}"),
                &format!("capability {cap}"),
                Box::new(move |d| {
                    let sc = security_context(d, &sp);
                    let caps = sc.entry("capabilities").or_insert_with(|| json!({}));
                    let list = caps
                        .as_object_mut()
                        .expect("capabilities")
                        .entry("add")
                        .or_insert_with(|| json!([]));
                    if !keep {
                        *list = json!([]);
                    }
                    list.as_array_mut().expect("add").push(json!(name.clone()));
                }),
            );
        }
        // The privileged family.
        let family: &[(&str, &str, Value)] = &[
            ("privileged", "privileged: true", json!(true)),
            (
                "allowPrivilegeEscalation",
                "allowPrivilegeEscalation: true",
                json!(true),
            ),
            ("procMount", "procMount: Unmasked", json!("Unmasked")),
            (
                "seccompProfile",
                "seccomp Unconfined",
                json!({"type": "Unconfined"}),
            ),
            (
                "appArmorProfile",
                "AppArmor Unconfined",
                json!({"type": "Unconfined"}),
            ),
            (
                "seLinuxOptions",
                "SELinux options beyond",
                json!({"type": "spc_t"}),
            ),
            (
                "windowsOptions",
                "windowsOptions.hostProcess",
                json!({"hostProcess": true}),
            ),
        ];
        for (field, says, value) in family {
            let sp = s.clone();
            let (field, value) = ((*field).to_owned(), value.clone());
            let pod_level = !matches!(
                field.as_str(),
                "privileged" | "allowPrivilegeEscalation" | "procMount"
            ) && rng.one_in(3);
            add(
                format!(
                    "{} {field}: {value}",
                    if pod_level { "pod" } else { "container" }
                ),
                says,
                Box::new(move |d| {
                    if pod_level {
                        let spec = d
                            .pointer_mut("/request/object/spec")
                            .and_then(Value::as_object_mut)
                            .expect("spec");
                        let sc = spec.entry("securityContext").or_insert_with(|| json!({}));
                        sc.as_object_mut()
                            .expect("pod securityContext")
                            .insert(field.clone(), value.clone());
                    } else {
                        security_context(d, &sp).insert(field.clone(), value.clone());
                    }
                }),
            );
        }
        // The legacy AppArmor annotation.
        let sp = s.clone();
        add(
            "AppArmor unconfined by annotation".into(),
            "AppArmor Unconfined",
            Box::new(move |d| {
                let name = d
                    .pointer(&format!("{sp}/name"))
                    .cloned()
                    .unwrap_or_default();
                let meta = d
                    .pointer_mut("/request/object/metadata")
                    .and_then(Value::as_object_mut)
                    .expect("metadata");
                let a = meta.entry("annotations").or_insert_with(|| json!({}));
                a.as_object_mut().expect("annotations").insert(
                    format!(
                        "container.apparmor.security.beta.kubernetes.io/{}",
                        name.as_str().unwrap_or("")
                    ),
                    json!("unconfined"),
                );
            }),
        );
    }

    // A hostPath volume mounted by the subject.
    let path = (*rng.pick(&[
        "/",
        "/etc",
        "/var/run/docker.sock",
        "//etc/../",
        "/proc/1/root",
        "/var/log",
    ]))
    .to_owned();
    let read_only = if node { false } else { rng.one_in(2) };
    let sp = s.clone();
    add(
        format!("hostPath {path} mounted (readOnly {read_only})"),
        "hostPath",
        Box::new(move |d| {
            let spec = d
                .pointer_mut("/request/object/spec")
                .and_then(Value::as_object_mut)
                .expect("spec");
            let vols = spec.entry("volumes").or_insert_with(|| json!([]));
            vols.as_array_mut().expect("volumes").push(
                json!({"name": "kspy-fuzz-host", "hostPath": {"path": path.clone(), "type": ""}}),
            );
            let c = d
                .pointer_mut(&sp)
                .and_then(Value::as_object_mut)
                .expect("subject");
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            mounts.as_array_mut().expect("mounts").push(
                json!({"name": "kspy-fuzz-host", "mountPath": "/host", "readOnly": read_only}),
            );
        }),
    );
    if node {
        // `/` read-only, but not recursively: writable below.
        let sp = s.clone();
        add(
            "host root mounted recursiveReadOnly: Disabled".into(),
            "writable below",
            Box::new(move |d| {
                let mounts = d
                    .pointer_mut(&format!("{sp}/volumeMounts"))
                    .and_then(Value::as_array_mut)
                    .expect("mounts");
                for m in mounts {
                    if m["name"] == "host-root" {
                        m["recursiveReadOnly"] = json!("Disabled");
                    }
                }
            }),
        );
    }
    if fixture == "attach-dev-plain.json" {
        let sp = s.clone();
        add(
            "the Secret volume mounted".into(),
            "mounting secret volume \"db-credentials\"",
            Box::new(move |d| {
                let c = d
                    .pointer_mut(&sp)
                    .and_then(Value::as_object_mut)
                    .expect("subject");
                c.entry("volumeMounts")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("mounts")
                    .push(
                        json!({"name": "db-credentials", "mountPath": "/creds", "readOnly": true}),
                    );
            }),
        );
        let sp = s.clone();
        add(
            "env from a Secret".into(),
            "environment from secret \"db\"",
            Box::new(move |d| {
                let c = d
                    .pointer_mut(&sp)
                    .and_then(Value::as_object_mut)
                    .expect("subject");
                c.entry("envFrom")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("envFrom")
                    .push(json!({"secretRef": {"name": "db"}}));
            }),
        );
    }
    // Host namespaces: a copy asks for them; an attached container shares its pod's (the old
    // object is the same pod).
    if fixture == "copy-fork-sre.json" || (attach && !kube_system) {
        for field in ["hostPID", "hostNetwork", "hostIPC"] {
            let ns = match field {
                "hostPID" => "host pid namespace",
                "hostNetwork" => "host network namespace",
                _ => "host ipc namespace",
            };
            add(
                format!("pod {field}: true"),
                ns,
                Box::new(move |d| {
                    d["request"]["object"]["spec"][field] = json!(true);
                    if attach {
                        d["request"]["oldObject"]["spec"][field] = json!(true);
                    }
                }),
            );
        }
    }
    // What SYS_PTRACE reaches: the privileges of the container it traces.
    if fixture == "attach-sre-ptrace.json" {
        let sp = s.clone();
        add(
            "a privileged target traced with SYS_PTRACE".into(),
            "privileged: true (held by container \"sidecar\"",
            Box::new(move |d| {
                d.pointer_mut(&sp).expect("subject")["targetContainerName"] = json!("sidecar");
                for pod in ["object", "oldObject"] {
                    d["request"][pod]["spec"]["containers"][1]["securityContext"] =
                        json!({"privileged": true});
                }
            }),
        );
    }
    // SYS_PTRACE in the node's pid namespace reaches every process on it.
    if fixture == "attach-sre-ptrace.json" {
        add(
            "SYS_PTRACE in a hostPID pod".into(),
            "tracing the node's processes",
            Box::new(|d| {
                for pod in ["object", "oldObject"] {
                    d["request"][pod]["spec"]["hostPID"] = json!(true);
                }
            }),
        );
        // An older privileged debug container in the target's process namespace.
        let sp = s.clone();
        add(
            "an older privileged debug container sharing the target".into(),
            "privileged: true (held by container \"debugger-old01\"",
            Box::new(move |d| {
                d.pointer_mut(&sp).expect("subject")["targetContainerName"] = json!("app");
                for pod in ["object", "oldObject"] {
                    d["request"][pod]["spec"]["ephemeralContainers"][0]["targetContainerName"] =
                        json!("app");
                }
            }),
        );
    }
    if fixture == "copy-fork-sre.json" {
        // A privileged init container.
        add(
            "a privileged init container".into(),
            "privileged: true",
            Box::new(|d| {
                d["request"]["object"]["spec"]["initContainers"] = json!([{
                    "name": "init-fuzz", "image": "busybox:1.36",
                    "securityContext": {"privileged": true}
                }]);
            }),
        );
    }

    // An image no policy allows.
    let image = (*rng.pick(FOREIGN_IMAGES)).to_owned();
    // sre-copy allows every image of the platform registry (`registry.example.com/**`).
    let allowed_here =
        fixture == "copy-fork-sre.json" && image.starts_with("registry.example.com/");
    if !allowed_here {
        let sp = s.clone();
        add(
            format!("image {image:?}"),
            if image.is_empty() { "" } else { "image" },
            Box::new(move |d| {
                d.pointer_mut(&sp).expect("subject")["image"] = json!(image.clone());
            }),
        );
    }

    // A namespace no policy that applies covers for this user.
    let namespaces: &[&str] = if kube_system {
        &["default", "prod-payments", "team-checkout", "kube-public"]
    } else if attach && fixture.contains("-dev-") {
        &[
            "default",
            "kube-system",
            "prod-payments",
            "team-billing",
            "team-unknown",
        ]
    } else if node {
        &["prod-payments", "team-unknown"]
    } else {
        &["kube-system", "team-unknown"]
    };
    let ns = (*rng.pick(namespaces)).to_owned();
    add(
        format!("namespace {ns}"),
        "",
        Box::new(move |d| {
            d["request"]["namespace"] = json!(ns.clone());
            d["request"]["object"]["metadata"]["namespace"] = json!(ns.clone());
            if d["request"]["oldObject"].is_object() {
                d["request"]["oldObject"]["metadata"]["namespace"] = json!(ns.clone());
            }
        }),
    );

    // Groups that are not the granted ones.
    let groups: Vec<Value> = match rng.below(4) {
        0 => vec![json!("system:authenticated")],
        1 => vec![json!("SRE"), json!("Platform-Admins"), json!("Developers")],
        2 => vec![
            json!("sre "),
            json!(" platform-admins"),
            json!("kube-system-admins\u{0}"),
        ],
        _ => vec![json!("system:masters")],
    };
    let what = format!("groups {groups:?}");
    add(
        what,
        "no DebugPolicy allows",
        Box::new(move |d| {
            d["request"]["userInfo"]["groups"] = Value::Array(groups.clone());
        }),
    );

    // The reason production asks for, taken away.
    if matches!(fixture, "attach-sre-ptrace.json" | "copy-fork-sre.json") {
        let sp = s.clone();
        add(
            "the stated reason removed".into(),
            "needs a reason",
            Box::new(move |d| {
                if attach {
                    if let Some(c) = d.pointer_mut(&sp).and_then(Value::as_object_mut) {
                        c.remove("env");
                    }
                } else if let Some(a) = d
                    .pointer_mut("/request/object/metadata/annotations")
                    .and_then(Value::as_object_mut)
                {
                    a.insert("kspy.dev/reason".into(), json!("   tiny   "));
                }
            }),
        );
    }
    out
}

/// Applies `/mutate`'s patch of `answer` to the pod in `doc`, as the API server does before
/// it calls `/validate`.
fn with_patch(doc: &Value, answer: &Answer) -> Value {
    let mut doc = doc.clone();
    if let Some(p) = answer.review["response"]["patch"].as_str() {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("base64 patch");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON patch");
        json_patch::patch(&mut doc["request"]["object"], &patch).expect("the patch applies");
    }
    doc
}

/// An allowed fixture given a privilege its policies do not grant (table at [`escalations`])
/// is denied, and the denial names that privilege; also when the Namespace is unknown, and
/// after kspy's own `/mutate` patch. Before the privilege is added, the same review with the
/// same meaning-keeping noise is allowed: the denial is the privilege's.
#[test]
fn added_privilege_is_denied() {
    let lib = Library::load();
    let run = Run::new("added_privilege_is_denied", 0x6b73_7079_f003, 150);
    let allowed = [
        "attach-dev-plain.json",
        "attach-sre-ptrace.json",
        "attach-kube-system-privileged.json",
        "copy-fork-sre.json",
        "node-platform-readonly.json",
        "node-kubectl-tricky-path.json",
    ];
    let donors: Vec<Value> = Vec::new();
    let mut tried = 0;
    for mut case in run.cases() {
        let fixture = *case.rng.pick(&allowed);
        let mut doc = Doc::new(serde_json::from_slice(lib.fixture(fixture)).expect("fixture"));
        // Noise that changes nothing judged.
        let mut noise = Vec::new();
        for _ in 0..case.rng.range(0, 2) {
            if let Some(what) = unjudged_change(&mut case.rng, &mut doc, &donors) {
                noise.push(what);
            }
        }
        let style = Style::all_but_repeats();
        let plain = json::write(&mut case.rng, &doc.value, style);
        let base_what = format!("{fixture} with {}", noise.join("; "));
        let base = judge(
            &lib,
            &case,
            plain.as_bytes(),
            Endpoint::Validate,
            &base_what,
        );
        if base.as_ref().map(|a| a.verdict) != Some(Verdict::Allowed) {
            case.fail(
                &format!("{base_what}: the noise alone changed the answer: {base:?}"),
                plain.as_bytes(),
            );
        }
        let subject = subject_pointer(&mut case.rng, &doc.value);
        let list = escalations(fixture, &mut case.rng, &subject);
        let escalation = case.rng.pick(&list);
        let mut escalated = doc.value.clone();
        (escalation.apply)(&mut escalated);
        let text = json::write(&mut case.rng, &escalated, style);
        let what = format!("{base_what}; {} at {subject}", escalation.what);
        let got = judge(&lib, &case, text.as_bytes(), Endpoint::Validate, &what);
        match &got {
            Some(a) if a.verdict == Verdict::Denied && a.message().contains(&escalation.says) => {}
            _ => case.fail(
                &format!(
                    "{what}: expected a denial saying {:?}, got {:?}",
                    escalation.says,
                    got.map(|a| a.review)
                ),
                text.as_bytes(),
            ),
        }
        let unknown =
            judge_without_namespace(&lib, &case, text.as_bytes(), Endpoint::Validate, &what);
        if unknown.as_ref().map(|a| a.verdict) != Some(Verdict::Denied) {
            case.fail(
                &format!(
                    "{what}: with the Namespace unknown, {:?}",
                    unknown.map(|a| a.review)
                ),
                text.as_bytes(),
            );
        }
        let mutated = judge(&lib, &case, text.as_bytes(), Endpoint::Mutate, &what)
            .expect("judged at /validate, so judged at /mutate");
        let patched = serde_json::to_vec(&with_patch(&escalated, &mutated)).expect("encodes");
        let after = judge(
            &lib,
            &case,
            &patched,
            Endpoint::Validate,
            &format!("{what}, after /mutate's patch"),
        );
        if after.as_ref().map(|a| a.verdict) != Some(Verdict::Denied) {
            case.fail(
                &format!(
                    "{what}: after kspy's own /mutate patch, {:?}",
                    after.map(|a| a.review)
                ),
                &patched,
            );
        }
        tried += 1;
    }
    run.summary(&format!("{tried} escalations denied"));
}

/// A denied fixture: the pointers whose change may lift its denial, and a change of them that
/// does (the cure).
struct Denied {
    fixture: &'static str,
    /// What the denial says.
    says: &'static str,
    /// The fields the denial names, and those that say who asks, where, and which containers
    /// are judged (classification). A mutation overlapping none of them keeps the denial.
    names: Vec<&'static str>,
    cure: fn(&mut Value),
}

/// Fields that say who asks, where, and what kind of request it is: changing them may
/// legitimately change any verdict.
const WHO_AND_WHAT: &[&str] = &[
    "/request/userInfo/groups",
    "/request/namespace",
    "/request/operation",
    "/request/subResource",
    "/request/resource",
    "/request/object/metadata/labels",
    "/request/object/metadata/name",
    "/request/object/metadata/generateName",
    "/request/name",
    "/request/object/spec/nodeName",
    "/request/oldObject/spec/ephemeralContainers",
];

fn denied_fixtures() -> Vec<Denied> {
    const EC0: &str = "/request/object/spec/ephemeralContainers/0";
    vec![
        Denied {
            fixture: "attach-dev-evil-image.json",
            says: "image registry.example.com.evil.io/debug/tools:1.4 is not granted",
            names: vec![
                "/request/object/spec/ephemeralContainers/0/image",
                "/request/object/spec/ephemeralContainers/0/name",
            ],
            cure: |d| {
                d.pointer_mut(EC0).expect("ec")["image"] =
                    json!("registry.example.com/debug/tools:1.4");
            },
        },
        Denied {
            fixture: "attach-dev-ptrace.json",
            says: "capability SYS_PTRACE is not granted",
            names: vec![
                "/request/object/spec/ephemeralContainers/0/securityContext",
                "/request/object/spec/ephemeralContainers/0/name",
            ],
            cure: |d| {
                d.pointer_mut(EC0)
                    .and_then(Value::as_object_mut)
                    .expect("ec")
                    .remove("securityContext");
            },
        },
        Denied {
            fixture: "attach-dev-secret-mount.json",
            says: "mounting secret volume \"db-credentials\"",
            names: vec![
                "/request/object/spec/ephemeralContainers/0/volumeMounts",
                "/request/object/spec/ephemeralContainers/0/name",
                "/request/object/spec/volumes",
            ],
            cure: |d| {
                d.pointer_mut(EC0)
                    .and_then(Value::as_object_mut)
                    .expect("ec")
                    .remove("volumeMounts");
            },
        },
        Denied {
            fixture: "attach-privileged.json",
            says: "privileged: true is not granted",
            names: vec![
                "/request/object/spec/ephemeralContainers/0/securityContext",
                "/request/object/spec/ephemeralContainers/0/name",
            ],
            cure: |d| {
                d.pointer_mut(EC0)
                    .and_then(Value::as_object_mut)
                    .expect("ec")
                    .remove("securityContext");
            },
        },
        Denied {
            fixture: "attach-sre-ptrace-no-reason.json",
            says: "debugging in production needs a reason",
            names: vec![
                "/request/object/spec/ephemeralContainers/0/env",
                "/request/object/spec/ephemeralContainers/0/name",
            ],
            cure: |d| {
                d.pointer_mut(EC0).expect("ec")["env"] =
                    json!([{"name": "KSPY_REASON", "value": "INC-1 looking at a latency spike"}]);
            },
        },
        Denied {
            fixture: "copy-fork-dev.json",
            says: "no DebugPolicy allows user \"bob@example.com\"",
            names: vec![],
            cure: |d| {
                d["request"]["userInfo"]["groups"] = json!(["sre"]);
            },
        },
        Denied {
            fixture: "node-platform-writable.json",
            says: "hostPath / (volume \"host-root\", read-write) is not granted",
            names: vec![
                "/request/object/spec/containers/0/volumeMounts",
                "/request/object/spec/containers/0/name",
                "/request/object/spec/volumes",
            ],
            cure: |d| {
                d["request"]["object"]["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] =
                    json!(true);
            },
        },
        Denied {
            fixture: "node-sre-readonly.json",
            says: "no DebugPolicy allows user \"alice@example.com\"",
            names: vec![],
            cure: |d| {
                d["request"]["userInfo"]["groups"] = json!(["platform-admins"]);
            },
        },
    ]
}

/// A denied fixture mutated anywhere but in what its denial names (and who asks, where, and
/// which containers are judged) is refused or still denied, also with the Namespace unknown.
/// The control: the fixture's cure, a change of only those fields, allows it.
#[test]
fn denials_stand_while_what_they_name_is_untouched() {
    let lib = Library::load();
    let run = Run::new(
        "denials_stand_while_what_they_name_is_untouched",
        0x6b73_7079_f004,
        250,
    );
    let denied = denied_fixtures();
    let donors: Vec<Value> = lib
        .fixtures
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).expect("fixture"))
        .collect();
    // The controls, once.
    for d in &denied {
        let doc: Value = serde_json::from_slice(lib.fixture(d.fixture)).expect("fixture");
        let base = answer(
            &lib.engine,
            lib.fixture(d.fixture),
            Endpoint::Validate,
            &|r| lib.namespace_of(r).cloned(),
        )
        .expect("a review");
        assert!(
            base.verdict == Verdict::Denied && base.message().contains(d.says),
            "{}: {:?}",
            d.fixture,
            base.review
        );
        let mut cured = doc.clone();
        (d.cure)(&mut cured);
        let body = serde_json::to_vec(&cured).expect("encodes");
        let after = answer(&lib.engine, &body, Endpoint::Validate, &|r| {
            lib.namespace_of(r).cloned()
        });
        assert_eq!(
            after.as_ref().map(|a| a.verdict),
            Some(Verdict::Allowed),
            "{}: the cure allows it: {:?}",
            d.fixture,
            after.map(|a| a.review)
        );
    }
    let (mut refused, mut still_denied) = (0, 0);
    for mut case in run.cases() {
        let d = case.rng.pick(&denied);
        let mut doc = Doc::new(serde_json::from_slice(lib.fixture(d.fixture)).expect("fixture"));
        let named: Vec<&str> = d.names.iter().chain(WHO_AND_WHAT).copied().collect();
        let mut done = Vec::new();
        for _ in 0..case.rng.range(1, 3) {
            let mut targets = json::pointers(&doc.value);
            targets.retain(|p| !named.iter().any(|n| json::overlaps(p, n)));
            // Mostly outside managedFields, where the judged fields are.
            if !case.rng.one_in(5) {
                targets.retain(|p| !p.contains("/managedFields"));
            }
            done.push(json::mutate_value(
                &mut case.rng,
                &mut doc,
                &targets,
                &donors,
            ));
        }
        let body = doc.to_bytes();
        let what = format!("{}: {}", d.fixture, done.join("; "));
        let Some(got) = judge(&lib, &case, &body, Endpoint::Validate, &what) else {
            refused += 1;
            continue;
        };
        if got.verdict != Verdict::Denied {
            case.fail(
                &format!(
                    "{what}: the denial ({}) was lifted by a change of nothing it names: {:?}",
                    d.says, got.review
                ),
                &body,
            );
        }
        let unknown = judge_without_namespace(&lib, &case, &body, Endpoint::Validate, &what);
        if unknown.map(|a| a.verdict) != Some(Verdict::Denied) {
            case.fail(
                &format!("{what}: allowed with the Namespace unknown"),
                &body,
            );
        }
        still_denied += 1;
    }
    run.summary(&format!("refused {refused}, still denied {still_denied}"));
    if run.cases().count() >= 100 {
        assert!(
            still_denied > refused / 4,
            "most mutations must reach the engine: refused {refused}, judged {still_denied}"
        );
    }
}

/// What `/mutate` promises of its patch: `add` operations only, on the containers judged
/// (never on an ephemeral container that was there before, which the API server refuses to
/// change), which apply to the object as sent; and mutating the patched review again adds
/// nothing (`reinvocationPolicy: IfNeeded`).
fn check_patch(lib: &Library, case: &Case<'_>, body: &[u8], got: &Answer, what: &str) {
    let Some(encoded) = got.review["response"]["patch"].as_str() else {
        return;
    };
    // A body serde_json cannot hold as a value (nesting past its limit) is not checked here.
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|e| case.fail(&format!("{what}: the patch is not base64: {e}"), body));
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| case.fail(&format!("{what}: the patch is no JSON patch: {e}"), body));
    let attach = doc["request"]["subResource"] == "ephemeralcontainers";
    let old = doc
        .pointer("/request/oldObject/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for op in &patch.0 {
        let json_patch::PatchOperation::Add(add) = op else {
            case.fail(
                &format!("{what}: the patch does more than add: {op:?}"),
                body,
            );
        };
        let path = add.path.to_string();
        let mut parts = path.strip_prefix("/spec/").unwrap_or("").split('/');
        let (list, index) = (
            parts.next(),
            parts.next().and_then(|i| i.parse::<usize>().ok()),
        );
        let container = match (list, index) {
            (Some("ephemeralContainers"), Some(i)) if attach => {
                doc["request"]["object"]["spec"]["ephemeralContainers"].get(i)
            }
            (Some("containers" | "initContainers"), Some(i)) if !attach => {
                doc["request"]["object"]["spec"][list.unwrap_or_default()].get(i)
            }
            _ => None,
        };
        match container {
            None => case.fail(
                &format!("{what}: the patch adds {path}, outside the containers judged"),
                body,
            ),
            Some(c) if attach && old.contains(c) => case.fail(
                &format!("{what}: the patch adds {path} to an ephemeral container already there"),
                body,
            ),
            Some(_) => {}
        }
    }
    let mut patched = doc.clone();
    if let Err(e) = json_patch::patch(&mut patched["request"]["object"], &patch) {
        case.fail(
            &format!("{what}: kspy's patch does not apply to the object it was sent: {e}; patch {patch:?}"),
            body,
        );
    }
    let again = serde_json::to_vec(&patched).expect("encodes");
    let second = judge(
        lib,
        case,
        &again,
        Endpoint::Mutate,
        &format!("{what}, mutated again"),
    );
    match second {
        Some(a) if a.review["response"]["patch"].is_null() => {}
        other => case.fail(
            &format!(
                "{what}: mutating the patched review again gave {:?} (patch {patch:?})",
                other.map(|a| a.review)
            ),
            &again,
        ),
    }
}

/// Structural mutations anywhere, stacked: values of another type, huge and odd numbers,
/// long and odd strings, deep nesting, members removed or unknown, empty and huge arrays
/// (thousands of ephemeral containers), subtrees of other fixtures. Never a panic, always an
/// answer that encodes; and a Namespace that cannot be read never allows what the known one
/// denies.
#[test]
fn structural_mutations_never_panic() {
    let lib = Library::load();
    let run = Run::new("structural_mutations_never_panic", 0x6b73_7079_f005, 200);
    // The webhook's --copy-classifier and --node-classifier, reading the raw object.
    let with_classifiers = kspy_admission::Engine::new(
        kspy_admission::PolicySet::load_dir(&fuzz::library::policies_dir())
            .unwrap_or_else(|e| panic!("{e}")),
        kspy_admission::Settings {
            copy_classifier: Some(
                "has(object.metadata.annotations) && 'kspy.dev/source-pod' in object.metadata.annotations"
                    .into(),
            ),
            node_classifier: Some("has(object.spec.hostPID) && object.spec.hostPID".into()),
            ..kspy_admission::Settings::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let donors: Vec<Value> = lib
        .fixtures
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).expect("fixture"))
        .collect();
    let (mut refused, mut judged, mut denied) = (0, 0, 0);
    for mut case in run.cases() {
        let (name, body) = case.rng.pick(&lib.fixtures).clone();
        let mut doc = Doc::new(serde_json::from_slice(&body).expect("fixture"));
        let mut done = Vec::new();
        if doc.value["request"]["subResource"] == "ephemeralcontainers" && case.rng.one_in(8) {
            // Many new ephemeral containers at once.
            let n = case.rng.size(5000);
            let ecs = doc.value["request"]["object"]["spec"]["ephemeralContainers"]
                .as_array_mut()
                .expect("ephemeral containers");
            let template = ecs.last().cloned().expect("one");
            for i in 0..n {
                let mut c = template.clone();
                c["name"] = json!(format!("debugger-fuzz{i}"));
                ecs.push(c);
            }
            done.push(format!("{n} new ephemeral containers"));
        }
        for _ in 0..case.rng.range(1, 4) {
            let mut targets = json::pointers(&doc.value);
            if !case.rng.one_in(4) {
                targets.retain(|p| !p.contains("/managedFields"));
            }
            done.push(json::mutate_value(
                &mut case.rng,
                &mut doc,
                &targets,
                &donors,
            ));
        }
        let body = doc.to_bytes();
        let what = format!("{name}: {}", done.join("; "));
        let at = endpoint(&mut case.rng);
        let Some(got) = judge(&lib, &case, &body, at, &what) else {
            refused += 1;
            continue;
        };
        judged += 1;
        if at == Endpoint::Mutate {
            check_patch(&lib, &case, &body, &got, &what);
        }
        // CEL classifiers only add debug requests: what the label and name rules classify
        // is judged alike, so a denial stands.
        if case.rng.one_in(3) {
            let classified = case.guard(&format!("{what} (classifiers)"), &body, || {
                answer(&with_classifiers, &body, at, &|r| {
                    lib.namespace_of(r).cloned()
                })
            });
            if got.verdict == Verdict::Denied
                && classified.as_ref().map(|a| a.verdict) != Some(Verdict::Denied)
            {
                case.fail(
                    &format!(
                        "{what}: denied, yet {:?} with CEL classifiers configured",
                        classified.map(|a| a.review)
                    ),
                    &body,
                );
            }
        }
        if at == Endpoint::Validate && got.verdict == Verdict::Denied {
            denied += 1;
            let unknown = judge_without_namespace(&lib, &case, &body, at, &what);
            if unknown.as_ref().map(|a| a.verdict) != Some(Verdict::Denied) {
                case.fail(
                    &format!(
                        "{what}: denied with its Namespace, {:?} without: an unknown Namespace allowed more",
                        unknown.map(|a| a.review)
                    ),
                    &body,
                );
            }
        }
    }
    run.summary(&format!(
        "refused {refused}, judged {judged}, denied at /validate {denied}"
    ));
}
