//! Linux capabilities as Kubernetes spells them, normalized.

use std::fmt;

/// Every capability Linux defines (capabilities(7)), without the `CAP_` prefix.
pub const KNOWN: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// A capability name: upper-case, `CAP_` prefix stripped; `ALL` stands for every capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Capability(String);

/// Looked up by name in sets of capabilities (`set.contains("SETUID")`): its order, equality
/// and hash are its name's.
impl std::borrow::Borrow<str> for Capability {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Why a capability name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// Not of the form `[A-Z0-9_]+` after normalization.
    #[error("{0:?} is not a capability name (letters, digits and _ only)")]
    Malformed(String),
    /// Well-formed, but Linux has no such capability.
    #[error("{0:?} is not a Linux capability; did you mean one of: {1}?")]
    Unknown(String, String),
}

impl Capability {
    /// The capability standing for all capabilities.
    pub fn all() -> Self {
        Capability("ALL".to_owned())
    }

    /// Normalizes a name as the container runtime reads it: case-insensitive, optional `CAP_`.
    /// Unknown but well-formed names are kept: the request asks for them and no grant covers
    /// them unless a policy lists them.
    ///
    /// Upper case as containerd and CRI-O make it (Go's `strings.ToUpper`, one character for
    /// one by Unicode's simple mapping): that turns the long s `ſ` into `S` and the dotless `ı`
    /// into `I`, so `ſys_admin` is SYS_ADMIN to the runtime, and must be to kspy too. Read as
    /// a malformed name instead, it was no capability a container held: one tracing that
    /// container was not charged with it.
    pub fn normalize(name: &str) -> Result<Self, CapabilityError> {
        let upper = upper_as_go(name.trim());
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if bare.is_empty()
            || !bare
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(CapabilityError::Malformed(name.to_owned()));
        }
        Ok(Capability(bare.to_owned()))
    }

    /// Like [`Capability::normalize`], but also refuses names Linux does not define — for
    /// policy files, where an unknown name is a typo that would silently grant nothing.
    pub fn parse_known(name: &str) -> Result<Self, CapabilityError> {
        let cap = Self::normalize(name)?;
        if cap.is_all() || KNOWN.contains(&cap.0.as_str()) {
            return Ok(cap);
        }
        let close: Vec<&str> = KNOWN
            .iter()
            .copied()
            .filter(|k| k.contains(&cap.0) || cap.0.contains(k) || shares_prefix(k, &cap.0))
            .take(3)
            .collect();
        let hint = if close.is_empty() {
            "SYS_PTRACE, NET_ADMIN, NET_RAW".to_owned()
        } else {
            close.join(", ")
        };
        Err(CapabilityError::Unknown(name.to_owned(), hint))
    }

    /// True for `ALL`.
    pub fn is_all(&self) -> bool {
        self.0 == "ALL"
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` in upper case one character for one, as Go's `strings.ToUpper` does: a character
/// whose upper case is several characters (`ß`, `ﬅ`) stays as it is, since Go has no such
/// mapping.
fn upper_as_go(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        })
        .collect()
}

fn shares_prefix(a: &str, b: &str) -> bool {
    a.len() >= 6 && b.len() >= 6 && a[..6] == b[..6]
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_normalize_to_one_name() {
        for spelling in [
            "SYS_PTRACE",
            "sys_ptrace",
            "CAP_SYS_PTRACE",
            "cap_sys_ptrace",
            " Sys_Ptrace ",
        ] {
            assert_eq!(
                Capability::normalize(spelling).unwrap().as_str(),
                "SYS_PTRACE"
            );
        }
        // Upper-cased by Unicode's simple mapping, as the runtimes (Go) do: the long s and the
        // dotless i become ASCII letters.
        for spelling in [
            "\u{17f}ys_admin",
            "sys_adm\u{131}n",
            "cap_\u{17f}y\u{17f}_admin",
        ] {
            assert_eq!(
                Capability::normalize(spelling).unwrap().as_str(),
                "SYS_ADMIN",
                "{spelling}"
            );
        }
        // No mapping to several characters, which Go does not make either.
        assert!(matches!(
            Capability::normalize("SYS_ADMIN\u{df}"),
            Err(CapabilityError::Malformed(_))
        ));
        assert!(Capability::normalize("all").unwrap().is_all());
        assert!(Capability::normalize("CAP_ALL").unwrap().is_all());
    }

    #[test]
    fn malformed_and_unknown_names() {
        assert!(matches!(
            Capability::normalize(""),
            Err(CapabilityError::Malformed(_))
        ));
        assert!(matches!(
            Capability::normalize("CAP_"),
            Err(CapabilityError::Malformed(_))
        ));
        assert!(matches!(
            Capability::normalize("SYS PTRACE"),
            Err(CapabilityError::Malformed(_))
        ));
        assert!(matches!(
            Capability::normalize("sys-ptrace"),
            Err(CapabilityError::Malformed(_))
        ));
        // Requests may carry unknown names (they then need a grant); policies may not.
        assert_eq!(
            Capability::normalize("SYS_PTRAC").unwrap().as_str(),
            "SYS_PTRAC"
        );
        let err = Capability::parse_known("SYS_PTRAC").unwrap_err();
        assert!(err.to_string().contains("SYS_PTRACE"), "{err}");
    }
}
