//! Host paths, normalized lexically so `//etc/../` and `/./` cannot slip past a grant.

use std::fmt;

/// An absolute host path in normal form: no `//`, `.`, `..` or trailing `/` (except `/` itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct HostPath(String);

/// Why a host path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host path {path:?}: {reason}")]
pub struct HostPathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl HostPath {
    /// Normalizes an absolute path the way the kernel resolves it lexically: `..` at the root
    /// stays at the root. Relative paths and NUL bytes are refused.
    pub fn parse(path: &str) -> Result<Self, HostPathError> {
        let err = |reason| HostPathError {
            path: path.to_owned(),
            reason,
        };
        if !path.starts_with('/') {
            return Err(err("host paths must be absolute"));
        }
        if path.contains('\0') {
            return Err(err("host paths may not contain NUL"));
        }
        let mut parts: Vec<&str> = Vec::new();
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        Ok(HostPath(format!("/{}", parts.join("/"))))
    }

    /// True when `self` is `prefix` or lies below it, segment by segment: `/var/log` covers
    /// `/var/log/pods` but not `/var/logs`.
    pub fn is_within(&self, prefix: &HostPath) -> bool {
        if prefix.0 == "/" {
            return true;
        }
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// The normalized path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPath {
        HostPath::parse(s).unwrap()
    }

    #[test]
    fn normalizes_lexically() {
        let cases = [
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/var/log/", "/var/log"),
            ("//etc/..", "/"),
            ("//etc/../", "/"),
            ("/var/./log//pods", "/var/log/pods"),
            ("/var/log/../../..", "/"),
            ("/var/log/../lib/kubelet", "/var/lib/kubelet"),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).as_str(), want, "{input}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(p("/var/log/pods").is_within(&p("/var/log")));
        assert!(p("/var/log").is_within(&p("/var/log/")));
        assert!(!p("/var/logs").is_within(&p("/var/log")));
        assert!(!p("/var").is_within(&p("/var/log")));
        assert!(p("/etc").is_within(&p("/")));
        // `/var/log/../../etc` is `/etc`, which `/var/log` does not cover.
        assert!(!p("/var/log/../../etc").is_within(&p("/var/log")));
    }

    #[test]
    fn refuses_relative_and_nul() {
        assert!(HostPath::parse("var/log").is_err());
        assert!(HostPath::parse("").is_err());
        assert!(HostPath::parse("/var\0/log").is_err());
    }
}
