//! Kubeconfig files for the harness: one cluster, one token user and context per identity.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::identity::Identity;

/// Name of the cluster entry in every kubeconfig the harness writes.
pub const CLUSTER_NAME: &str = "kspy-e2e";

/// Renders a kubeconfig with every identity as a user and context; `current` is the current context.
pub fn render(
    server_url: &str,
    ca_pem: &str,
    identities: &[Identity],
    current: &str,
    namespace: &str,
) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut out = String::new();
    out.push_str("apiVersion: v1\nkind: Config\npreferences: {}\n");
    out.push_str(&format!(
        "clusters:\n- name: {CLUSTER_NAME}\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\n"
    ));
    out.push_str("users:\n");
    for id in identities {
        out.push_str(&format!(
            "- name: {}\n  user:\n    token: {}\n",
            id.name, id.token
        ));
    }
    out.push_str("contexts:\n");
    for id in identities {
        out.push_str(&format!(
            "- name: {}\n  context:\n    cluster: {CLUSTER_NAME}\n    user: {}\n    namespace: {namespace}\n",
            id.name, id.name
        ));
    }
    out.push_str(&format!("current-context: {current}\n"));
    out
}

/// Writes `kubeconfig` (all contexts, current = first identity) and `kubeconfig-<user>` per
/// identity into `dir`; returns the path of the shared file.
pub fn write_all(
    dir: &Path,
    server_url: &str,
    ca_pem: &str,
    identities: &[Identity],
    namespace: &str,
) -> std::io::Result<PathBuf> {
    let first = identities
        .first()
        .map(|i| i.name.as_str())
        .unwrap_or("admin");
    let main = dir.join("kubeconfig");
    std::fs::write(
        &main,
        render(server_url, ca_pem, identities, first, namespace),
    )?;
    for id in identities {
        std::fs::write(
            path_for(dir, &id.name),
            render(
                server_url,
                ca_pem,
                std::slice::from_ref(id),
                &id.name,
                namespace,
            ),
        )?;
    }
    Ok(main)
}

/// Path of the single-identity kubeconfig for `user` in `dir`.
pub fn path_for(dir: &Path, user: &str) -> PathBuf {
    dir.join(format!("kubeconfig-{user}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_with_kube_rs() {
        let ids = vec![Identity::new("alice"), Identity::new("bob")];
        let text = render("https://127.0.0.1:1", "PEM", &ids, "bob", "default");
        let kc: kube::config::Kubeconfig = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("bob"));
        assert_eq!(kc.auth_infos.len(), 2);
    }
}
