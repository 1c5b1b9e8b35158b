//! `kspy certs …`: certificates for the webhook.
//!
//! `kspy certs generate --service NAME --namespace NS --out DIR [--days N] [--force]` writes a
//! private CA and a serving certificate for the webhook Service (`ca.crt`, `tls.crt`, `tls.key`,
//! `ca-bundle.b64`) and prints the `caBundle` to put into the webhook configurations; it refuses
//! to replace files already in DIR unless `--force` is given.
//! `kspy certs inspect FILE` shows a certificate's names and expiry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::errors::KspyError;

/// `--service`: a Service name (DNS-1035 label: it starts with a letter).
fn parse_service(s: &str) -> Result<String, String> {
    let ok = (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(
            "a Service name is at most 63 lower-case letters, digits and '-', starting with a \
             letter and ending with a letter or digit"
                .to_string(),
        )
    }
}

/// `kspy certs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Generate a CA and a serving certificate for the webhook Service.
    ///
    /// The serving certificate is valid for NAME.NS.svc (the name the API server calls),
    /// NAME.NS.svc.cluster.local, NAME.NS and NAME; add --extra-san for a cluster domain other
    /// than cluster.local. tls.crt and tls.key go into the webhook's TLS Secret; the caBundle
    /// printed at the end (also written to ca-bundle.b64: ca.crt, base64-encoded) goes into
    /// clientConfig.caBundle of both kspy webhook configurations, as it is (the self-signed
    /// overlay of deploy/ copies it from ca.crt for you).
    ///
    /// The CA's private key is not written: rotating means a new CA. Generating again over
    /// the old files (--force) and applying both refuses debug requests for the minute or so
    /// until every pod serves the new certificate; deploy/README.md ("Certificates and
    /// rotation") shows a rotation without that window.
    #[command(after_help = "Examples:
  # A CA and a serving certificate for the Service kspy-webhook in namespace kspy-system
  {prog} certs generate --service kspy-webhook --namespace kspy-system --out certs/

  # Replace them with a new CA (see above for the window this opens), valid for 90 days
  {prog} certs generate --service kspy-webhook --namespace kspy-system --out certs/ --days 90 --force")]
    Generate {
        /// Name of the webhook's Service.
        // Checked as the command line is read, as every other name is: a usage error (exit
        // code 2), not a failure to generate.
        #[arg(long, value_parser = parse_service)]
        service: String,
        /// Namespace of the webhook's Service.
        #[arg(long, value_parser = crate::args::parse_namespace)]
        namespace: String,
        /// Directory to write ca.crt, tls.crt, tls.key and ca-bundle.b64 into (created if
        /// missing; files already there are replaced only with --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace ca.crt, tls.crt, tls.key and ca-bundle.b64 when they already exist in --out.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_value = "false", hide_default_value = true, default_missing_value = "true",
              value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
        force: bool,
        /// Validity of the CA and the serving certificate, in days.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
        /// Extra subject alternative name (IP address or DNS name) for the serving
        /// certificate; repeatable.
        #[arg(long = "extra-san", value_name = "NAME")]
        extra_sans: Vec<String>,
    },
    /// Show a PEM certificate's subject alternative names and expiry, and the subject and
    /// expiry of each further certificate of a chain.
    #[command(after_help = "Examples:
  # The names and expiry of the serving certificate
  {prog} certs inspect certs/tls.crt

  # The certificate a running webhook's Secret holds
  kubectl -n kspy-system get secret kspy-webhook-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d > tls.crt
  {prog} certs inspect tls.crt")]
    Inspect {
        /// PEM file holding the certificate (the first one is shown).
        file: PathBuf,
    },
}

/// Runs a `kspy certs` subcommand.
pub fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        CertsCommand::Generate {
            service,
            namespace,
            out: dir,
            days,
            extra_sans,
            force,
        } => {
            if !force {
                refuse_existing(&dir)?;
            }
            generate(&mut out, &service, &namespace, &dir, days, &extra_sans)?;
        }
        CertsCommand::Inspect { file } => inspect(&mut out, &file)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The output files already present in `dir` (a symbolic link counts, even a dangling one).
fn existing_outputs(dir: &Path) -> Vec<PathBuf> {
    [
        kspy_certs::CA_CERT_FILE,
        kspy_certs::CERT_FILE,
        kspy_certs::KEY_FILE,
        kspy_certs::CA_BUNDLE_FILE,
    ]
    .iter()
    .map(|name| dir.join(name))
    .filter(|path| std::fs::symlink_metadata(path).is_ok())
    .collect()
}

/// Refuses to overwrite certificates already in `dir`: replacing a CA by accident breaks every
/// webhook configuration whose caBundle names the old one.
fn refuse_existing(dir: &Path) -> Result<(), KspyError> {
    let existing = existing_outputs(dir);
    if existing.is_empty() {
        return Ok(());
    }
    Err(KspyError::new(format!(
        "{} already holds certificate files; not replacing them",
        dir.display()
    ))
    .details(existing.iter().map(|p| p.display().to_string()))
    .hint(
        "pass --force to replace them (then update the Secret and the webhook configurations' \
         caBundle together), or choose another --out directory",
    ))
}

fn generate(
    out: &mut impl Write,
    service: &str,
    namespace: &str,
    dir: &Path,
    days: u32,
    extra_sans: &[String],
) -> anyhow::Result<()> {
    // Said before generating, in words: creating the directory over a file failed with
    // "File exists", as if a certificate were in the way.
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(KspyError::new(format!(
            "--out {} is a file, not a directory",
            dir.display()
        ))
        .hint(
            "--out names the directory to write ca.crt, tls.crt, tls.key and ca-bundle.b64 \
             into (created when missing)",
        )
        .into());
    }
    // A symbolic link to nothing: creating the directory failed with "File exists" too.
    if std::fs::metadata(dir).is_err()
        && let Ok(target) = std::fs::read_link(dir)
    {
        return Err(KspyError::new(format!(
            "--out {} is a symbolic link to {}, which does not exist",
            dir.display(),
            target.display()
        ))
        .hint(
            "create the directory the link points to, remove the link, or choose another \
             --out directory",
        )
        .into());
    }
    let validity = Duration::from_secs(u64::from(days) * 86_400);
    let certs = kspy_certs::generate_with_sans(service, namespace, validity, extra_sans)
        .context("generating certificates")?;
    let files = certs
        .write_to(dir)
        .with_context(|| format!("writing certificates to {}", dir.display()))?;
    let expires = kspy_certs::format_unix_utc(certs.not_after_unix());
    writeln!(out, "wrote {}  (CA certificate)", files.ca_cert.display())?;
    writeln!(
        out,
        "wrote {}  (serving certificate for {}; expires {expires})",
        files.cert.display(),
        certs.sans.join(", ")
    )?;
    writeln!(
        out,
        "wrote {}  (private key, mode 0600)",
        files.key.display()
    )?;
    writeln!(out, "wrote {}  (caBundle)", files.ca_bundle.display())?;
    writeln!(out)?;
    writeln!(
        out,
        "Create the serving Secret, or replace it when rotating (`create` alone fails on one that exists):\n  kubectl -n {namespace} create secret tls {service}-tls --cert={} --key={} --dry-run=client -o yaml | kubectl apply -f -",
        files.cert.display(),
        files.key.display()
    )?;
    writeln!(
        out,
        "Set clientConfig.caBundle of the kspy webhook configurations to:"
    )?;
    writeln!(out, "{}", certs.ca_bundle_b64())?;
    Ok(())
}

fn inspect(out: &mut impl Write, file: &Path) -> anyhow::Result<()> {
    let pem = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let what = file.display().to_string();
    let chain = kspy_certs::parse_certs(&pem, &what)?;
    let not_after = kspy_certs::not_after_unix(&chain[0], &what)?;
    let sans = kspy_certs::subject_alt_names(&chain[0], &what)?;
    writeln!(out, "file:      {what}")?;
    writeln!(out, "chain:     {} certificate(s)", chain.len())?;
    writeln!(
        out,
        "names:     {}",
        if sans.is_empty() {
            "(none)".to_owned()
        } else {
            sans.join(", ")
        }
    )?;
    writeln!(out, "not after: {}", kspy_certs::format_unix_utc(not_after))?;
    // The rest of a chain: an intermediate that expires first ends every handshake then,
    // and the webhook's expiry metric gives that earliest date.
    for (i, der) in chain.iter().enumerate().skip(1) {
        let what = format!("{what} (certificate {} of the chain)", i + 1);
        let subject = kspy_certs::identity(der, &what)?.subject;
        let not_after = kspy_certs::not_after_unix(der, &what)?;
        writeln!(
            out,
            "chain {}:   {subject}, not after {}",
            i + 1,
            kspy_certs::format_unix_utc(not_after)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_into_a_file_says_out_is_no_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("certs");
        std::fs::write(&file, "").expect("write");
        let e =
            generate(&mut Vec::new(), "kspy-webhook", "kspy", &file, 7, &[]).expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!("--out {} is a file, not a directory", file.display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn generate_through_a_dangling_link_says_where_it_points() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("certs");
        let target = dir.path().join("missing/certs");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let e =
            generate(&mut Vec::new(), "kspy-webhook", "kspy", &link, 7, &[]).expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!(
                "--out {} is a symbolic link to {}, which does not exist",
                link.display(),
                target.display()
            )
        );
        assert!(!target.exists(), "nothing was created");
    }

    #[test]
    fn generate_writes_files_and_prints_the_ca_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_dir = dir.path().join("certs");
        let mut printed = Vec::new();
        generate(&mut printed, "kspy-webhook", "kspy", &out_dir, 7, &[]).expect("generate");
        let printed = String::from_utf8(printed).expect("utf8");
        let bundle = std::fs::read_to_string(out_dir.join("ca-bundle.b64")).expect("bundle");
        assert!(printed.lines().any(|l| l == bundle), "{printed}");
        for file in ["ca.crt", "tls.crt", "tls.key", "ca-bundle.b64"] {
            assert!(out_dir.join(file).is_file(), "{file} missing");
            assert!(
                printed.contains(&out_dir.join(file).display().to_string()),
                "{printed}"
            );
        }
        assert!(
            printed.contains("kspy-webhook.kspy.svc.cluster.local"),
            "{printed}"
        );
        // The Secret line works on a first install and on a rotation alike (the base mounts
        // Secret kspy-webhook-tls).
        let secret_line = printed
            .lines()
            .find(|l| l.contains("create secret tls"))
            .unwrap_or_else(|| panic!("no Secret line: {printed}"));
        assert!(
            secret_line
                .trim_start()
                .starts_with("kubectl -n kspy create secret tls kspy-webhook-tls ")
                && secret_line.ends_with("--dry-run=client -o yaml | kubectl apply -f -"),
            "{secret_line}"
        );

        let mut shown = Vec::new();
        inspect(&mut shown, &out_dir.join("tls.crt")).expect("inspect");
        let shown = String::from_utf8(shown).expect("utf8");
        assert!(shown.contains("kspy-webhook.kspy.svc"), "{shown}");
    }

    #[test]
    fn inspect_shows_each_certificate_of_a_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = kspy_certs::generate("kspy-webhook", "kspy", Duration::from_secs(86_400))
            .expect("generate");
        let chain = dir.path().join("chain.crt");
        std::fs::write(&chain, format!("{}{}", certs.cert_pem, certs.ca_cert_pem)).expect("write");
        let mut shown = Vec::new();
        inspect(&mut shown, &chain).expect("inspect");
        let shown = String::from_utf8(shown).expect("utf8");
        let expiry = kspy_certs::format_unix_utc(certs.not_after_unix());
        assert!(shown.contains("chain:     2 certificate(s)"), "{shown}");
        assert!(
            shown.contains(&format!(
                "chain 2:   O=kspy, CN=kspy CA for kspy-webhook.kspy, not after {expiry}"
            )),
            "{shown}"
        );
    }

    #[test]
    fn bad_names_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut printed = Vec::new();
        let err =
            generate(&mut printed, "Bad_Name", "kspy", dir.path(), 7, &[]).expect_err("bad name");
        assert!(format!("{err:#}").contains("Bad_Name"), "{err:#}");
        assert!(printed.is_empty());
    }
}
