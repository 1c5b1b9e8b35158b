//! `kspy ls [POD]`: the ephemeral containers of a pod, a namespace, or every namespace, with
//! their image, target, state, age and added capabilities.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterArgs};
use crate::errors::{Action, KspyError};
use crate::output::{self, Output};
use crate::wait::{State, container_status, state_of};

/// `kspy ls` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LsArgs {
    /// Only this pod
    #[arg(value_name = "POD", value_parser = crate::args::parse_object_name)]
    pub pod: Option<String>,
    /// Cluster, context and namespace.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Every namespace
    #[arg(short = 'A', long, conflicts_with = "pod", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "false", hide_default_value = true,
          default_missing_value = "true", value_parser = crate::args::parse_bool,
          action = clap::ArgAction::Set)]
    pub all_namespaces: bool,
    /// Print as JSON or YAML instead of a table
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
}

/// One ephemeral container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Target container, if any.
    pub target: Option<String>,
    /// State (`Running`, `Terminated (Completed, exit code 0)`, `ErrImagePull`…).
    pub state: String,
    /// Seconds since the container started, when it did.
    pub age_seconds: Option<i64>,
    /// Added capabilities, and `privileged` when privileged.
    pub capabilities: Vec<String>,
}

/// The rows for `pods`, `now` in seconds since the epoch.
pub fn rows(pods: &[Pod], now: i64) -> Vec<Row> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(ecs) = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
        else {
            continue;
        };
        for c in ecs {
            let state = match state_of(pod, &c.name) {
                State::Waiting { reason, .. } => reason,
                other => other.describe(),
            };
            let started = container_status(pod, &c.name)
                .and_then(|s| s.state.as_ref())
                .and_then(|s| {
                    s.running
                        .as_ref()
                        .and_then(|r| r.started_at.as_ref())
                        .or_else(|| s.terminated.as_ref().and_then(|t| t.started_at.as_ref()))
                });
            let sc = c.security_context.as_ref();
            let mut capabilities: Vec<String> = sc
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|c| c.add.clone())
                .unwrap_or_default();
            if sc.and_then(|s| s.privileged).unwrap_or(false) {
                capabilities.push("privileged".into());
            }
            out.push(Row {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                target: c.target_container_name.clone(),
                state,
                age_seconds: started.map(|t| (now - t.0.as_second()).max(0)),
                capabilities,
            });
        }
    }
    out
}

/// Age as kubectl shows it: `42s`, `5m`, `3h`, `2d`.
pub fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 3 * 3600 => format!("{}m", s / 60),
        Some(s) if s < 2 * 86400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

/// The table, columns aligned; with a NAMESPACE column when `all`.
pub fn table(rows: &[Row], all: bool) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header = vec![
        "POD",
        "NAME",
        "IMAGE",
        "TARGET",
        "STATE",
        "AGE",
        "CAPABILITIES",
    ];
    if all {
        header.insert(0, "NAMESPACE");
    }
    lines.push(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        let mut line = vec![
            r.pod.clone(),
            r.name.clone(),
            r.image.clone(),
            r.target.clone().unwrap_or_else(|| "-".into()),
            r.state.clone(),
            age(r.age_seconds),
            if r.capabilities.is_empty() {
                "-".into()
            } else {
                r.capabilities.join(",")
            },
        ];
        if all {
            line.insert(0, r.namespace.clone());
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let last = line.len() - 1;
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

/// Runs `kspy ls`.
pub async fn run(args: LsArgs) -> Result<ExitCode, KspyError> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let pods: Vec<Pod> = match &args.pod {
        Some(name) => vec![cluster.get_pod(name).await?],
        None => {
            let (api, ns) = if args.all_namespaces {
                (Api::<Pod>::all(cluster.client.clone()), None)
            } else {
                (cluster.pods(), Some(cluster.namespace.clone()))
            };
            api.list(&ListParams::default())
                .await
                .map_err(|e| cluster.explain(&Action::ListPods { ns }, e))?
                .items
        }
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let rows = rows(&pods, now);
    match args.output {
        Some(format) => output::print(&rows, format)?,
        None if rows.is_empty() => {
            let scope = match (&args.pod, args.all_namespaces) {
                (Some(p), _) => format!("pod {}/{p}", cluster.namespace),
                (None, true) => "any namespace".to_string(),
                (None, false) => format!("namespace {}", cluster.namespace),
            };
            eprintln!("no ephemeral containers in {scope}");
        }
        None => output::write_stdout(table(&rows, args.all_namespaces))?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden;

    #[test]
    fn rows_from_fixture() {
        let pod = golden::fixture_pod("pod-web.json");
        // 2026-01-01T00:10:00Z; the fixture's debugger-old01 started at 00:00:00.
        let now = 1_767_226_200;
        let rows = rows(&[pod], now);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "debugger-old01");
        assert_eq!(rows[0].state, "Running");
        assert_eq!(rows[0].target.as_deref(), Some("app"));
        assert_eq!(rows[0].capabilities, vec!["SYS_PTRACE"]);
        assert_eq!(age(rows[0].age_seconds), "10m");
        assert_eq!(rows[1].state, "Terminated (Completed, exit code 0)");
        assert_eq!(rows[1].capabilities, vec!["privileged"]);
        let t = table(&rows, false);
        let mut lines = t.lines();
        let header = lines.next().expect("header");
        assert!(header.starts_with("POD "), "{header}");
        let first = lines.next().expect("row");
        // Columns line up: NAME starts at the same offset in header and row.
        assert_eq!(header.find("NAME"), first.find("debugger-old01"));
        assert!(first.ends_with("SYS_PTRACE"));
    }

    #[test]
    fn ages() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(42)), "42s");
        assert_eq!(age(Some(600)), "10m");
        assert_eq!(age(Some(4 * 3600)), "4h");
        assert_eq!(age(Some(3 * 86400)), "3d");
    }
}
