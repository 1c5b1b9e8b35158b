//! Client identities: bearer tokens mapped to a user, groups and permissions.
//!
//! Authentication works like a static token file: the token in the kubeconfig names the
//! user, its uid and groups (`system:authenticated` is added, as the real authenticator
//! does). Authorization is a tiny RBAC stand-in: either everything, or a list of rules.

/// One permission rule: verbs on resources (with `/subresource`), optionally limited to namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Verbs (`get`, `list`, `watch`, `create`, `delete`, `patch`, `update`) or `*`.
    pub verbs: Vec<String>,
    /// Resources such as `pods`, `pods/ephemeralcontainers`, `pods/attach`, or `*`.
    pub resources: Vec<String>,
    /// Namespaces the rule applies in; empty means all.
    pub namespaces: Vec<String>,
}

impl Rule {
    /// A rule for `verbs` on `resources` in every namespace.
    pub fn new(verbs: &[&str], resources: &[&str]) -> Self {
        Self {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            namespaces: Vec::new(),
        }
    }

    /// Limits the rule to the given namespaces.
    pub fn in_namespaces(mut self, namespaces: &[&str]) -> Self {
        self.namespaces = namespaces.iter().map(|s| s.to_string()).collect();
        self
    }

    fn allows(&self, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
        let verb_ok = self.verbs.iter().any(|v| v == "*" || v == verb);
        let res_ok = self.resources.iter().any(|r| {
            r == "*"
                || r == resource
                || (r.ends_with("/*") && resource.starts_with(&r[..r.len() - 1]))
        });
        let ns_ok = self.namespaces.is_empty()
            || namespace.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        verb_ok && res_ok && ns_ok
    }
}

/// What an identity may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissions {
    /// Everything (like `cluster-admin`).
    All,
    /// Only what the rules allow.
    Rules(Vec<Rule>),
}

/// A user known to the API server through its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User name (`userInfo.username`), also the kubeconfig user and context name.
    pub name: String,
    /// `userInfo.uid`.
    pub uid: String,
    /// Groups as configured; `system:authenticated` is added when reported.
    pub groups: Vec<String>,
    /// The bearer token written to the kubeconfig.
    pub token: String,
    /// Authorization.
    pub permissions: Permissions,
}

impl Identity {
    /// An identity with all permissions, token `<name>-token` and uid `uid-<name>`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            groups: Vec::new(),
            token: format!("{name}-token"),
            permissions: Permissions::All,
        }
    }

    /// Sets the groups.
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Restricts the identity to the given rules.
    pub fn rules(mut self, rules: Vec<Rule>) -> Self {
        self.permissions = Permissions::Rules(rules);
        self
    }

    /// The user an API server with `--anonymous-auth=true` (the default) gives a request that
    /// carries no credentials: `system:anonymous` in `system:unauthenticated`, with no uid
    /// (apiserver/pkg/authentication/request/anonymous). No permission is granted to it here,
    /// as a default RBAC grants it nothing but the public-info paths.
    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            token: String::new(),
            permissions: Permissions::Rules(Vec::new()),
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.groups.iter().any(|g| g == "system:unauthenticated")
    }

    /// Groups as the authenticator reports them (with `system:authenticated`, except for the
    /// anonymous user).
    pub fn reported_groups(&self) -> Vec<String> {
        let mut g = self.groups.clone();
        if !self.is_anonymous() && !g.iter().any(|x| x == "system:authenticated") {
            g.push("system:authenticated".to_string());
        }
        g
    }

    /// Whether `verb` on `resource` (e.g. `pods/ephemeralcontainers`) is allowed in `namespace`.
    pub fn may(&self, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
        if self.groups.iter().any(|g| g == "system:masters") {
            return true;
        }
        match &self.permissions {
            Permissions::All => true,
            Permissions::Rules(rules) => rules.iter().any(|r| r.allows(verb, resource, namespace)),
        }
    }

    /// The default identities of a harness: `admin` (system:masters), `kspy-webhook` (what
    /// the webhook's ServiceAccount is granted), `alice` (group `sre`), `bob` (group `dev`) and
    /// `eve` (may read pods but not add ephemeral containers).
    pub fn defaults() -> Vec<Identity> {
        vec![
            Identity::new("admin").groups(&["system:masters"]),
            // kspy's webhook, with what deploy/base/rbac.yaml grants its ServiceAccount.
            Identity::new("kspy-webhook").rules(vec![
                Rule::new(&["get"], &["namespaces"]),
                Rule::new(&["create", "patch"], &["events"]),
            ]),
            Identity::new("alice").groups(&["sre"]),
            Identity::new("bob").groups(&["dev"]),
            Identity::new("eve")
                .groups(&["viewers"])
                .rules(vec![Rule::new(
                    &["get", "list", "watch"],
                    &["pods", "namespaces", "nodes"],
                )]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_verbs_resources_namespaces() {
        let id = Identity::new("x").rules(vec![
            Rule::new(&["get"], &["pods"]),
            Rule::new(&["patch"], &["pods/*"]).in_namespaces(&["prod"]),
        ]);
        assert!(id.may("get", "pods", Some("a")));
        assert!(!id.may("list", "pods", Some("a")));
        assert!(id.may("patch", "pods/ephemeralcontainers", Some("prod")));
        assert!(!id.may("patch", "pods/ephemeralcontainers", Some("dev")));
        assert!(
            Identity::new("root")
                .groups(&["system:masters"])
                .may("delete", "pods", None)
        );
    }
}
