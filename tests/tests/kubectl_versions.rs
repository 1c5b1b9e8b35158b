//! Every `kubectl debug` variant of every kubectl on the machine, against kspy's webhook with
//! the shipped policy library (`policies/`) and the deployed webhook configurations.
//!
//! For each kubectl (`/usr/bin/kubectl` and the Cloud SDK's `kubectl.1.NN`) and each variant
//! its `debug --help` offers — an ephemeral container with each `--profile`, `--target`,
//! `--custom`, `-it`; `--copy-to` with `--set-image`, `--share-processes=false`,
//! `--same-node`, `--replace`, `--custom`; `node/NAME` with each profile — the case checks, from
//! what the in-process API server recorded, that kspy's `/validate` judged the request as the
//! debug request it is (its answer names the action: a request kspy takes for an ordinary pod
//! is answered at once, without one), that the verdict is the shipped policies' verdict, and
//! that a refusal's message reaches the user through that kubectl.

use std::path::{Path, PathBuf};

use kspy_e2e::apiserver::ApiServer;
use kspy_e2e::identity::Identity;
use kspy_e2e::scenario::{self, workspace_root};
use kspy_e2e::{fixtures, tools};
use serde_json::Value;

/// The namespace of the cases: a team namespace (`developer-attach` applies to team-checkout's
/// developers), not production (no reason needed), no Pod Security level (kspy's verdict alone
/// decides).
const NS: &str = "shop";

/// Who runs a case: a developer of the namespace's team, an SRE, a platform admin.
#[derive(Clone, Copy, Debug)]
enum Who {
    Dev,
    Sre,
    Platform,
}

impl Who {
    fn user(self) -> &'static str {
        match self {
            Who::Dev => "dana",
            Who::Sre => "sam",
            Who::Platform => "pat",
        }
    }
}

/// What the case expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// kspy judges the request as `action` and allows it; kubectl succeeds.
    Allowed(&'static str),
    /// kspy judges the request as `action` and denies it; kubectl fails, showing every part.
    Denied(&'static str, &'static [&'static str]),
    /// No review reaches kspy: the pod looks like any pod (documented in
    /// deploy/base/webhooks.yaml: a copy with only `--set-image`, or whose debug container
    /// the user named).
    NotSent,
}

/// One `kubectl debug` variant.
struct Case {
    /// Short name for the table.
    name: &'static str,
    who: Who,
    /// Arguments after `debug`; `{n}` is replaced by a name unique to the case, `{custom}` by
    /// the path of the `--custom` file.
    args: &'static [&'static str],
    /// The oldest kubectl minor version that has the flags.
    since: u32,
    /// `--custom` file contents, if any.
    custom: Option<&'static str>,
    expect: Expect,
}

const CASES: &[Case] = &[
    // --- ephemeral containers: developer-attach (busybox:1.36*, no capabilities, no Secrets)
    Case {
        name: "attach legacy --attach=false",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--attach=false"],
        since: 27,
        custom: None,
        expect: Expect::Allowed("attach"),
    },
    Case {
        name: "attach -it --profile=general",
        who: Who::Dev,
        args: &["{pod}", "-it", "--image=busybox:1.36", "--profile=general"],
        since: 27,
        custom: None,
        expect: Expect::Denied(
            "attach",
            &["capability SYS_PTRACE is not granted", "sre-debug"],
        ),
    },
    Case {
        name: "attach --profile=baseline",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--profile=baseline"],
        since: 27,
        custom: None,
        expect: Expect::Allowed("attach"),
    },
    Case {
        name: "attach --profile=restricted",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--profile=restricted"],
        since: 27,
        custom: None,
        expect: Expect::Allowed("attach"),
    },
    Case {
        name: "attach --profile=netadmin",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--profile=netadmin"],
        since: 27,
        custom: None,
        expect: Expect::Denied("attach", &["capability NET_ADMIN is not granted"]),
    },
    Case {
        name: "attach --profile=sysadmin",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--profile=sysadmin"],
        since: 30,
        custom: None,
        expect: Expect::Denied("attach", &["privileged"]),
    },
    Case {
        name: "attach --target=app",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--target=app"],
        since: 27,
        custom: None,
        expect: Expect::Allowed("attach"),
    },
    Case {
        name: "attach image off the allow-list",
        who: Who::Dev,
        args: &["{pod}", "--image=alpine:3.19"],
        since: 27,
        custom: None,
        expect: Expect::Denied("attach", &["image docker.io/library/alpine:3.19"]),
    },
    Case {
        name: "attach --custom adding SYS_ADMIN",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}"#),
        expect: Expect::Denied("attach", &["capability SYS_ADMIN is not granted"]),
    },
    Case {
        name: "attach --custom mounting a Secret volume",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"volumeMounts": [{"name": "creds", "mountPath": "/x"}]}"#),
        expect: Expect::Denied("attach", &["mounting secret volume \"creds\""]),
    },
    Case {
        name: "attach --custom running privileged",
        who: Who::Dev,
        args: &[
            "{pod}",
            "--image=busybox:1.36",
            "--profile=baseline",
            "--custom={custom}",
        ],
        since: 31,
        custom: Some(r#"{"securityContext": {"privileged": true}}"#),
        expect: Expect::Denied("attach", &["privileged"]),
    },
    Case {
        name: "attach --custom env from a Secret",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(
            r#"{"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "web-creds", "key": "t"}}}]}"#,
        ),
        expect: Expect::Denied("attach", &["environment from secret \"web-creds\""]),
    },
    Case {
        name: "attach --custom envFrom a Secret",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"envFrom": [{"secretRef": {"name": "web-creds"}}]}"#),
        expect: Expect::Denied("attach", &["environment from secret \"web-creds\""]),
    },
    Case {
        name: "attach --custom seccomp Unconfined",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"securityContext": {"seccompProfile": {"type": "Unconfined"}}}"#),
        expect: Expect::Denied("attach", &["seccomp Unconfined"]),
    },
    Case {
        name: "attach --custom AppArmor Unconfined",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}"#),
        expect: Expect::Denied("attach", &["AppArmor Unconfined"]),
    },
    Case {
        name: "attach --custom SELinux spc_t",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}"#),
        expect: Expect::Denied("attach", &["SELinux options"]),
    },
    Case {
        name: "attach --custom CAP_-spelled capability",
        who: Who::Dev,
        args: &["{pod}", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(r#"{"securityContext": {"capabilities": {"add": ["cap_sys_admin"]}}}"#),
        expect: Expect::Denied("attach", &["SYS_ADMIN"]),
    },
    Case {
        name: "attach SRE --profile=general --target=app",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--image=busybox:1.36",
            "--profile=general",
            "--target=app",
        ],
        since: 27,
        custom: None,
        expect: Expect::Allowed("attach"),
    },
    Case {
        name: "attach SRE --profile=sysadmin",
        who: Who::Sre,
        args: &["{pod}", "--image=busybox:1.36", "--profile=sysadmin"],
        since: 30,
        custom: None,
        expect: Expect::Denied("attach", &["privileged", "kube-system-privileged"]),
    },
    // --- copies: sre-copy (platform images and the debug allow-list, SYS_PTRACE)
    Case {
        name: "copy-to",
        who: Who::Sre,
        args: &["{pod}", "--copy-to={n}", "--image=busybox:1.36"],
        since: 27,
        custom: None,
        expect: Expect::Allowed("copy"),
    },
    Case {
        name: "copy-to by a developer",
        who: Who::Dev,
        args: &["{pod}", "--copy-to={n}", "--image=busybox:1.36"],
        since: 27,
        custom: None,
        expect: Expect::Denied("copy", &["no DebugPolicy allows user \"dana\""]),
    },
    Case {
        name: "copy-to --profile=general",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--profile=general",
        ],
        since: 27,
        custom: None,
        expect: Expect::Allowed("copy"),
    },
    Case {
        name: "copy-to --profile=netadmin",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--profile=netadmin",
        ],
        since: 27,
        custom: None,
        expect: Expect::Denied("copy", &["capability NET_ADMIN is not granted"]),
    },
    Case {
        name: "copy-to --profile=sysadmin",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--profile=sysadmin",
        ],
        since: 30,
        custom: None,
        expect: Expect::Denied("copy", &["privileged"]),
    },
    Case {
        name: "copy-to --share-processes=false",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--share-processes=false",
        ],
        since: 27,
        custom: None,
        expect: Expect::Allowed("copy"),
    },
    Case {
        name: "copy-to --same-node",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--same-node",
        ],
        since: 27,
        custom: None,
        expect: Expect::Allowed("copy"),
    },
    Case {
        name: "copy-to --set-image off the list",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--set-image=app=evil.example.org/x:1",
        ],
        since: 27,
        custom: None,
        expect: Expect::Denied("copy", &["image evil.example.org/x:1 is not granted"]),
    },
    Case {
        name: "copy-to --replace",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--replace",
        ],
        since: 27,
        custom: None,
        expect: Expect::Allowed("copy"),
    },
    Case {
        name: "copy-to --custom adding SYS_ADMIN",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--custom={custom}",
        ],
        since: 31,
        custom: Some(r#"{"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}"#),
        expect: Expect::Denied("copy", &["capability SYS_ADMIN is not granted"]),
    },
    Case {
        name: "copy-to --container=tools (documented: not recognised)",
        who: Who::Sre,
        args: &[
            "{pod}",
            "--copy-to={n}",
            "--image=busybox:1.36",
            "--container=tools",
        ],
        since: 27,
        custom: None,
        expect: Expect::NotSent,
    },
    Case {
        name: "copy-to --set-image only (documented: not recognised)",
        who: Who::Sre,
        args: &["{pod}", "--copy-to={n}", "--set-image=app=busybox:1.36"],
        since: 27,
        custom: None,
        expect: Expect::NotSent,
    },
    // --- node pods: platform-node-debug (host namespaces, / read-only, SYS_PTRACE)
    Case {
        name: "node legacy",
        who: Who::Platform,
        args: &["node/node-1", "--image=busybox:1.36"],
        since: 27,
        custom: None,
        expect: Expect::Denied(
            "node",
            &["hostPath / (volume \"host-root\", read-write) is not granted"],
        ),
    },
    Case {
        name: "node --custom mounting / read-only",
        who: Who::Platform,
        args: &["node/node-1", "--image=busybox:1.36", "--custom={custom}"],
        since: 31,
        custom: Some(
            r#"{"volumeMounts": [{"name": "host-root", "mountPath": "/host", "readOnly": true}]}"#,
        ),
        expect: Expect::Allowed("node"),
    },
    Case {
        name: "node --custom / read-only, adding SYS_PTRACE",
        who: Who::Platform,
        args: &[
            "node/node-1",
            "--image=busybox:1.36",
            "--profile=general",
            "--custom={custom}",
        ],
        since: 31,
        custom: Some(
            r#"{"volumeMounts": [{"name": "host-root", "mountPath": "/host", "readOnly": true}], "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}"#,
        ),
        expect: Expect::Denied("node", &["tracing the node's processes"]),
    },
    Case {
        name: "node by an SRE",
        who: Who::Sre,
        args: &["node/node-1", "--image=busybox:1.36"],
        since: 27,
        custom: None,
        expect: Expect::Denied("node", &["no DebugPolicy allows user \"sam\""]),
    },
    Case {
        name: "node --profile=general",
        who: Who::Platform,
        args: &["node/node-1", "--image=busybox:1.36", "--profile=general"],
        since: 27,
        custom: None,
        expect: Expect::Denied(
            "node",
            &["hostPath / (volume \"host-root\", read-write) is not granted"],
        ),
    },
    Case {
        name: "node --profile=baseline",
        who: Who::Platform,
        args: &["node/node-1", "--image=busybox:1.36", "--profile=baseline"],
        since: 27,
        custom: None,
        expect: Expect::Allowed("node"),
    },
    Case {
        name: "node --profile=restricted",
        who: Who::Platform,
        args: &[
            "node/node-1",
            "--image=busybox:1.36",
            "--profile=restricted",
        ],
        since: 27,
        custom: None,
        expect: Expect::Allowed("node"),
    },
    Case {
        name: "node --profile=netadmin",
        who: Who::Platform,
        args: &["node/node-1", "--image=busybox:1.36", "--profile=netadmin"],
        since: 27,
        custom: None,
        expect: Expect::Denied("node", &["capability NET_ADMIN is not granted"]),
    },
    Case {
        name: "node --profile=sysadmin",
        who: Who::Platform,
        args: &["node/node-1", "--image=busybox:1.36", "--profile=sysadmin"],
        since: 30,
        custom: None,
        expect: Expect::Denied("node", &["privileged"]),
    },
    Case {
        name: "node --custom adding SYS_ADMIN",
        who: Who::Platform,
        args: &[
            "node/node-1",
            "--image=busybox:1.36",
            "--profile=baseline",
            "--custom={custom}",
        ],
        since: 31,
        custom: Some(r#"{"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}"#),
        expect: Expect::Denied("node", &["capability SYS_ADMIN is not granted"]),
    },
];

/// The in-process server with the case identities, namespace `shop` and one `web`-shaped pod
/// per case (ephemeral containers and `--replace` change the pod), and kspy's webhook with the
/// shipped policies behind the deployed webhook configurations.
async fn world() -> (ApiServer, kspy_webhook::RunningServer) {
    let mut builder = ApiServer::builder()
        .identity(Identity::new("dana").groups(&["developers", "team-checkout"]))
        .identity(Identity::new("sam").groups(&["sre"]))
        .identity(Identity::new("pat").groups(&["platform-admins"]))
        .namespace(NS, &[("team", "checkout")]);
    for i in 0..CASES.len() {
        builder = builder.pod(fixtures::web_pod(NS, &format!("web-{i}")));
    }
    let server = builder.start().await.expect("API server starts");
    let (webhook, _) = scenario::wire_kspy(&server, workspace_root().join("policies"))
        .await
        .expect("kspy's webhook starts");
    (server, webhook)
}

/// kspy's `/validate` answers (request, response) recorded since `from`.
fn validate_answers(server: &ApiServer, from: usize) -> Vec<(Value, Value)> {
    server
        .reviews()
        .into_iter()
        .skip(from)
        .filter(|r| r.webhook == "validate.kspy.dev")
        .filter_map(|r| Some((r.request, r.response?)))
        .collect()
}

/// Runs every case with `kubectl`; returns the table rows (case, outcome).
async fn run_cases(kubectl: &Path) -> Vec<(String, String)> {
    let Some((1, minor, _)) = tools::kubectl_version(kubectl).await else {
        panic!("{} does not report a 1.x version", kubectl.display());
    };
    let (server, _webhook) = world().await;
    let dir = server.dir().to_path_buf();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        if minor < case.since {
            rows.push((case.name.to_string(), "n/a (flag missing)".to_string()));
            continue;
        }
        let custom = dir.join(format!("custom-{i}.json"));
        if let Some(text) = case.custom {
            std::fs::write(&custom, text).expect("custom file written");
        }
        let pod = format!("web-{i}");
        let copy = format!("copy-{i}");
        let mut args: Vec<String> = vec![
            "--kubeconfig".into(),
            server.kubeconfig_for(case.who.user()).display().to_string(),
            "-n".into(),
            NS.into(),
            "debug".into(),
        ];
        args.extend(case.args.iter().map(|a| {
            a.replace("{pod}", &pod)
                .replace("{n}", &copy)
                .replace("{custom}", &custom.display().to_string())
        }));
        let from_reviews = server.reviews().len();
        let from_requests = server.requests().len();
        let out = tools::run(
            kubectl,
            &args,
            &[("HOME".into(), dir.display().to_string())],
            Some(Vec::new()),
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("kubectl runs");
        let protobuf = server
            .requests()
            .into_iter()
            .skip(from_requests)
            .any(|r| r.method == "POST" && r.content_type.contains("protobuf"));
        let answers = validate_answers(&server, from_reviews);
        let verdicts: Vec<String> = answers
            .iter()
            .map(|(_, resp)| {
                let r = &resp["response"];
                format!(
                    "allowed={} action={} message={}",
                    r["allowed"], r["auditAnnotations"]["action"], r["status"]["message"]
                )
            })
            .collect();
        let context = format!(
            "kubectl 1.{minor} debug {:?}: kspy answered {verdicts:#?}\n{}",
            args[4..].to_vec(),
            out.all()
        );
        let outcome = match case.expect {
            Expect::Allowed(action) | Expect::Denied(action, _) => {
                let allowed = matches!(case.expect, Expect::Allowed(_));
                // kspy's /validate judged it as `action`, with the expected verdict.
                let judged = answers.iter().any(|(_, resp)| {
                    resp["response"]["auditAnnotations"]["action"].as_str() == Some(action)
                        && resp["response"]["allowed"].as_bool() == Some(allowed)
                });
                let mut problems = Vec::new();
                if !judged {
                    problems.push(format!(
                        "kspy did not judge it as {action} ({})",
                        if allowed { "allowed" } else { "denied" }
                    ));
                }
                if out.success() != allowed {
                    problems.push(format!(
                        "kubectl {} where the policies {}",
                        if out.success() { "succeeded" } else { "failed" },
                        if allowed { "allow it" } else { "deny it" }
                    ));
                }
                if let Expect::Denied(_, parts) = case.expect {
                    if !out.stderr.contains("denied the request") {
                        problems.push("kubectl did not show kspy's denial".into());
                    }
                    // kubectl may print the message's quotes escaped.
                    let stderr = out.stderr.replace("\\\"", "\"");
                    for part in parts {
                        if !stderr.contains(part) {
                            problems.push(format!("kubectl did not show {part:?}"));
                        }
                    }
                }
                if problems.is_empty() {
                    let why = answers
                        .iter()
                        .find_map(|(_, r)| r["response"]["status"]["message"].as_str())
                        .map(|m| {
                            let m = m.replace('\n', " ");
                            let start = m.find(": ").map_or(0, |i| i + 2);
                            let short: String = m[start..].chars().take(70).collect();
                            format!(": {short}")
                        })
                        .unwrap_or_default();
                    format!(
                        "{} as {action}{why}",
                        if allowed { "allowed" } else { "denied" }
                    )
                } else {
                    failures.push(format!("{}: {}\n{context}", case.name, problems.join("; ")));
                    "FAIL".into()
                }
            }
            Expect::NotSent => {
                if answers.is_empty() && out.success() {
                    "not sent to kspy (documented)".into()
                } else {
                    failures.push(format!(
                        "{}: expected to pass unjudged, as documented\n{context}",
                        case.name
                    ));
                    "FAIL".into()
                }
            }
        };
        // Pod creates of kubectl 1.32 and later are protobuf (decoded as kube-apiserver does).
        let outcome = if protobuf {
            format!("[protobuf] {outcome}")
        } else {
            outcome
        };
        rows.push((case.name.to_string(), outcome));
    }
    assert!(
        failures.is_empty(),
        "kubectl 1.{minor} ({}):\n{}",
        kubectl.display(),
        failures.join("\n\n")
    );
    rows
}

/// The kubectl of `name`: `/usr/bin/kubectl` for `dispatcher`, else the Cloud SDK's
/// `kubectl.1.NN` beside the others; `None` when the machine lacks it.
fn kubectl_named(name: &str) -> Option<PathBuf> {
    if name == "dispatcher" {
        return Some(PathBuf::from("/usr/bin/kubectl")).filter(|p| p.exists());
    }
    tools::versioned_kubectls()
        .into_iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(name))
}

async fn check(name: &str) {
    let Some(kubectl) = kubectl_named(name) else {
        if tools::machine_has_kubectl() {
            // Another kubectl's test covers the machine; this version is simply not here.
            println!("{name} is not installed: nothing to check");
        } else {
            tools::skip_without_kubectl(&format!("no {name} on this machine"));
        }
        return;
    };
    let rows = run_cases(&kubectl).await;
    println!("{name} ({}):", kubectl.display());
    for (case, outcome) in rows {
        println!("  {case:<55} {outcome}");
    }
}

macro_rules! per_kubectl {
    ($($test:ident => $name:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            check($name).await;
        }
    )*};
}

per_kubectl! {
    kubectl_1_27_debug_variants_are_judged => "kubectl.1.27",
    kubectl_1_28_debug_variants_are_judged => "kubectl.1.28",
    kubectl_1_29_debug_variants_are_judged => "kubectl.1.29",
    kubectl_1_30_debug_variants_are_judged => "kubectl.1.30",
    kubectl_1_31_debug_variants_are_judged => "kubectl.1.31",
    kubectl_1_32_debug_variants_are_judged => "kubectl.1.32",
    kubectl_1_33_debug_variants_are_judged => "kubectl.1.33",
    usr_bin_kubectl_debug_variants_are_judged => "dispatcher",
}
