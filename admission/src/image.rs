//! Container image references, normalized the way container runtimes resolve them.
//!
//! Policies match images with globs on the *normalized* reference, so `busybox`,
//! `docker.io/busybox` and `index.docker.io/library/busybox:latest` are one image, and
//! `registry.example.com.evil.io/x` can never pass for `registry.example.com/x`.

use std::fmt;

/// The default registry for references that name none, as Docker and containerd resolve it.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The repository namespace Docker Hub uses for single-component names (`busybox`).
const OFFICIAL_NAMESPACE: &str = "library";
/// The tag a reference gets when it names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository name the distribution spec allows.
const MAX_NAME_LEN: usize = 255;

/// A normalized image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ImageRefError {
    /// The reference as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ImageRef {
    /// Parses and normalizes a reference as a container runtime would: the registry defaults to
    /// `docker.io` (and `index.docker.io` becomes `docker.io`), single-component Docker Hub
    /// names get `library/`, a reference with neither tag nor digest gets `:latest`, and a tag
    /// beside a digest is dropped (the runtime pulls by the digest and ignores it).
    ///
    /// Anything outside the distribution reference grammar is an error, never a guess.
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        let err = |reason| ImageRefError {
            reference: reference.to_owned(),
            reason,
        };
        if reference.is_empty() {
            return Err(err("the reference is empty"));
        }
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err("it contains white space or control characters"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(err)?;
                (rest, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        // A tag is the part after the last ':' that comes after the last '/'; a ':' before
        // the last '/' is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &rest[at + 1..];
                check_tag(tag).map_err(err)?;
                (&rest[..at], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(err("the repository name is empty"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if is_registry(first) => (first, path),
            _ => (DEFAULT_REGISTRY, name),
        };
        check_registry(registry).map_err(err)?;
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path.to_owned()
        };
        for component in repository.split('/') {
            check_path_component(component).map_err(err)?;
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(err("the repository name is longer than 255 characters"));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            // Runtimes pull `name:tag@digest` by the digest alone and never check the tag, so
            // keeping it would let a grant of `busybox:1.36*` admit any busybox digest.
            (_, Some(_)) => None,
            (Some(_), None) => tag,
        };
        Ok(ImageRef {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io` or `registry.example.com:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one (always, unless it is pinned by digest alone).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component names a registry when it looks like a host.
pub(crate) fn is_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if host.is_empty() {
        return Err("the registry host is empty");
    }
    let host_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !host_ok {
        return Err("the registry host is not a valid host name");
    }
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("the registry port is not a number");
    }
    Ok(())
}

/// A path component: lower-case alphanumerics separated by `.`, `_`, `__` or runs of `-`.
fn check_path_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("the repository name has an empty path component");
    }
    if component
        .chars()
        .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err("repository names may only contain lower-case letters, digits and . _ -");
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("repository path components must start and end with a letter or digit");
    }
    // Separators: '.', '_', '__' or any run of '-'; never mixed or repeated otherwise.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let valid = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !valid {
            return Err("repository path components use an invalid separator");
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || tag.len() > 128 {
        return Err("the tag must be 1-128 characters and start with a letter, digit or _");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("the tag may only contain letters, digits and _ . -");
    }
    Ok(())
}

fn check_digest(digest: &str) -> Result<(), &'static str> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err("the digest must be algorithm:hex");
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        });
    if !algorithm_ok {
        return Err("the digest algorithm is invalid");
    }
    if encoded.len() < 32 || !encoded.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("the digest must have at least 32 hexadecimal characters");
    }
    if algorithm == "sha256" && encoded.len() != 64 {
        return Err("a sha256 digest has exactly 64 hexadecimal characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_a_runtime() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            (
                "docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
            ),
            ("nicolaka/netshoot", "docker.io/nicolaka/netshoot:latest"),
            (
                "registry.example.com/debug/tools:v1",
                "registry.example.com/debug/tools:v1",
            ),
            ("localhost/tools", "localhost/tools:latest"),
            ("localhost:5000/tools:2", "localhost:5000/tools:2"),
            (
                "registry.example.com:5000/a/b/c",
                "registry.example.com:5000/a/b/c:latest",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ImageRef::parse(input).unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn digests_pin_without_default_tag() {
        let r = ImageRef::parse(&format!("busybox@{DIGEST}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{DIGEST}"));
        // The tag beside a digest is what the runtime ignores: it is not part of the image.
        let r = ImageRef::parse(&format!("busybox:1.36@{DIGEST}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(DIGEST));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{DIGEST}"));
    }

    #[test]
    fn lookalike_registries_stay_distinct() {
        let r = ImageRef::parse("registry.example.com.evil.io/debug/tools").unwrap();
        assert_eq!(r.registry(), "registry.example.com.evil.io");
        assert_eq!(r.name(), "registry.example.com.evil.io/debug/tools");
        // Without a dot the first component is a Docker Hub namespace, not a registry.
        let r = ImageRef::parse("registry/debug").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "registry/debug");
    }

    #[test]
    fn hostile_references_are_refused() {
        for bad in [
            "",
            " busybox",
            "busybox\n",
            "BusyBox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "busybox@md5",
            "a//b",
            "../../etc/passwd",
            "registry.example.com/../x",
            "registry..example.com/x",
            "registry.example.com:port/x",
            "-bad.io/x",
            "x/y_-z",
            "docker.io/",
            "/busybox",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("registry.example.com/{}", "a".repeat(300));
        assert!(ImageRef::parse(&long).is_err());
    }

    #[test]
    fn errors_name_the_reference_and_reason() {
        let e = ImageRef::parse("BusyBox").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\"BusyBox\""), "{text}");
        assert!(text.contains("lower-case"), "{text}");
    }
}
