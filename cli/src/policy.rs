//! `kspy policy …`: the offline policy commands. They run exactly the engine the webhook runs
//! (`kspy-admission`), so what passes here is what the cluster will decide.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kspy_admission::policy::Mode;
use kspy_admission::testing::{declared_namespaces, run_dir};
use kspy_admission::{Endpoint, Engine, NoPolicyVerdict, ParsedReview, PolicySet, Settings};

/// `kspy policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load and compile every policy file under DIR and list the policies.
    #[command(after_help = "Examples:
  # Check the shipped library; a broken file is reported with file, document, policy and field
  kspy policy check policies/")]
    Check {
        /// Directory of policy files (every *.yaml and *.yml under it).
        dir: PathBuf,
    },
    /// Judge one AdmissionReview offline and print the AdmissionReview the webhook would return.
    #[command(
        after_help = "Prints the whole response review (apiVersion, kind, response), the patch
base64-encoded as the API server receives it. Exits 0 whatever the verdict; non-zero only when the
policies or the review cannot be read.

Examples:
  # What would /validate answer?
  kspy policy eval --policies policies/ policies/fixtures/attach-sre-ptrace.json
  # What would /mutate inject?
  kspy policy eval --policies policies/ --mutate policies/fixtures/attach-dev-plain.json"
    )]
    Eval {
        /// Directory of policy files.
        #[arg(long, value_name = "DIR")]
        policies: PathBuf,
        /// Answer as /mutate (defaults patch) instead of /validate (verdict).
        #[arg(long)]
        mutate: bool,
        /// A Namespace (YAML or JSON) to judge with; by default the namespaces declared by the
        /// test suites under --policies, looked up by the review's namespace.
        #[arg(long, value_name = "FILE")]
        namespace: Option<PathBuf>,
        /// Allow requests no policy applies to, as the webhook's --no-policy-allows does.
        #[arg(long)]
        no_policy_allows: bool,
        /// The AdmissionReview JSON file ("-" for standard input).
        review: PathBuf,
    },
    /// Run the DebugPolicyTest cases that live beside the policies.
    #[command(
        after_help = "Prints a table of cases, and for each failure what was expected and
what came. Exits 1 when any case fails.

Examples:
  kspy policy test policies/"
    )]
    Test {
        /// Directory of policies and their tests.
        dir: PathBuf,
    },
    /// Explain a policy in words: whom it serves, what it grants, what it checks.
    #[command(after_help = "Examples:
  kspy policy explain --policies policies/ sre-debug")]
    Explain {
        /// Directory of policy files.
        #[arg(long, value_name = "DIR")]
        policies: PathBuf,
        /// The policy name.
        name: String,
    },
}

/// Runs a `kspy policy` subcommand.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PolicyCommand::Check { dir } => check(&dir, &mut out),
        PolicyCommand::Eval {
            policies,
            mutate,
            namespace,
            no_policy_allows,
            review,
        } => eval(
            &policies,
            mutate,
            namespace.as_deref(),
            no_policy_allows,
            &review,
            &mut out,
        ),
        PolicyCommand::Test { dir } => test(&dir, &mut out),
        PolicyCommand::Explain { policies, name } => explain(&policies, &name, &mut out),
    }
}

fn load(dir: &Path) -> anyhow::Result<PolicySet> {
    PolicySet::load_dir(dir)
        .map_err(|e| anyhow::anyhow!("{e}\nhint: fix the fields named above; nothing was loaded"))
}

fn check(dir: &Path, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let set = load(dir)?;
    writeln!(
        out,
        "{} policies in {} files under {}:",
        set.len(),
        set.files().len(),
        dir.display()
    )?;
    for p in set.policies() {
        writeln!(
            out,
            "  {:<28} {:<8} {}",
            p.name,
            format!("{:?}", p.mode),
            p.origin.file
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(
    dir: &Path,
    mutate: bool,
    namespace_file: Option<&Path>,
    no_policy_allows: bool,
    review_path: &Path,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        no_policy: if no_policy_allows {
            NoPolicyVerdict::Allow
        } else {
            NoPolicyVerdict::Deny
        },
        ..Settings::default()
    };
    let engine = Engine::new(load(dir)?, settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = if review_path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        std::fs::read(review_path)
            .with_context(|| format!("cannot read {}", review_path.display()))?
    };
    let review = ParsedReview::from_slice(&body).with_context(|| {
        format!(
            "{} is not a reviewable AdmissionReview",
            review_path.display()
        )
    })?;
    let namespaces: BTreeMap<String, Namespace> = match namespace_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let ns: Namespace = serde_saphyr::from_str(&text)
                .with_context(|| format!("{} is not a Namespace", path.display()))?;
            let name = ns.metadata.name.clone().unwrap_or_default();
            [(name, ns)].into_iter().collect()
        }
        None => declared_namespaces(dir).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let namespace = match (namespace_file, review.namespace()) {
        (Some(_), _) => namespaces.values().next(),
        (None, Some(n)) => namespaces.get(n),
        (None, None) => None,
    };
    let endpoint = if mutate {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    };
    let judgement = engine.judge(&review, endpoint, namespace);
    let encoded = judgement
        .encode()
        .context("cannot encode the AdmissionReview")?;
    let review: serde_json::Value = serde_json::from_slice(&encoded)?;
    serde_json::to_writer_pretty(&mut *out, &review)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

fn test(dir: &Path, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let report = run_dir(dir, Settings::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.results.is_empty() {
        anyhow::bail!(
            "no DebugPolicyTest cases under {}\nhint: put `kind: DebugPolicyTest` documents beside your policies",
            dir.display()
        );
    }
    let width = report
        .results
        .iter()
        .map(|r| r.suite.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:>3}  {:<width$}  {:<6}  CASE",
        "#", "SUITE", "RESULT"
    )?;
    for (i, r) in report.results.iter().enumerate() {
        let result = if r.passed() { "pass" } else { "FAIL" };
        writeln!(
            out,
            "{:>3}  {:<width$}  {:<6}  {}",
            i + 1,
            r.suite,
            result,
            r.case
        )?;
    }
    let failed = report.failed();
    for r in report.results.iter().filter(|r| !r.passed()) {
        writeln!(
            out,
            "\nFAIL {} / {} ({})",
            r.suite,
            r.case,
            r.file.display()
        )?;
        for f in &r.failures {
            writeln!(out, "  - {f}")?;
        }
    }
    writeln!(
        out,
        "\n{} passed, {failed} failed",
        report.results.len() - failed
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn explain(dir: &Path, name: &str, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let set = load(dir)?;
    let Some(p) = set.get(name) else {
        anyhow::bail!(
            "no policy named {name:?} under {}; the policies are: {}",
            dir.display(),
            set.names().join(", ")
        );
    };
    writeln!(
        out,
        "{} ({:?}, {} document {})",
        p.name, p.mode, p.origin.file, p.origin.document
    )?;
    if let Some(d) = &p.description {
        writeln!(out, "  {d}")?;
    }
    writeln!(out, "applies {}", p.matcher.describe())?;
    for (n, c) in &p.conditions {
        writeln!(out, "  when {n}: {}", c.source())?;
    }
    let g = &p.grant;
    if p.mode != Mode::Enforce {
        writeln!(out, "grants nothing ({:?} mode only reports)", p.mode)?;
    } else if g.is_empty() {
        writeln!(out, "grants nothing: a guardrail, its validations deny")?;
    } else {
        writeln!(out, "grants:")?;
        let images: Vec<&str> = g.images.iter().map(|i| i.as_str()).collect();
        if !images.is_empty() {
            writeln!(out, "  images        {}", images.join(", "))?;
        }
        let caps: Vec<&str> = g.capabilities.iter().map(|c| c.as_str()).collect();
        if !caps.is_empty() {
            writeln!(out, "  capabilities  {}", caps.join(", "))?;
        }
        writeln!(
            out,
            "  run as root   {}",
            if g.run_as_root { "yes" } else { "no" }
        )?;
        writeln!(
            out,
            "  privileged    {}",
            if g.privileged { "yes" } else { "no" }
        )?;
        writeln!(out, "  pod volumes   {:?}", g.mount_volumes)?;
        let ns: Vec<&str> = g.host_namespaces.iter().map(|h| h.as_str()).collect();
        if !ns.is_empty() {
            writeln!(out, "  host ns       {}", ns.join(", "))?;
        }
        for h in &g.host_paths {
            writeln!(
                out,
                "  host path     {}{}",
                h.prefix,
                if h.read_only { " (read-only)" } else { "" }
            )?;
        }
    }
    for (i, v) in p.validations.iter().enumerate() {
        writeln!(
            out,
            "checks {}: {}\n  message: {}",
            i + 1,
            v.expression.source(),
            v.message.as_deref().unwrap_or("(the rule)")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
