//! Where the policy files are read from.
//!
//! A ConfigMap (or Secret, or projected) volume is written by the kubelet's atomic writer:
//! each version of the data is a generation directory `..2026_11_28_14_50_03.123`, a link
//! `..data -> ..2026_…` names the current one, and each key is a link `KEY -> ..data/KEY`.
//! An update writes a new generation, renames `..data` onto it, and only then adds the links
//! of new keys and removes those of deleted ones. Reading through the key links therefore
//! sees, between those steps, a set that was never in the ConfigMap: the changed keys
//! without the added ones. A generation directory is never changed once `..data` names it,
//! so the files are read from the generation itself, whole or not at all.

use std::path::{Component, Path, PathBuf};

/// The directory the policy files of a policy directory are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicySource {
    /// A kubelet-written volume: its current generation directory, `DIR/..2026_…`.
    Generation(PathBuf),
    /// Any other directory: read as it is.
    Plain,
}

impl PolicySource {
    /// What `dir` is now: [`PolicySource::Generation`] when it is laid out as the kubelet's
    /// atomic writer lays it out (`..data` a link to a `..`-named directory beside it, and
    /// every entry whose name does not start with `.` a link to `..data/…`); otherwise
    /// [`PolicySource::Plain`]. A directory with files of its own beside `..data` is plain:
    /// those files would not be in the generation.
    pub(crate) fn of(dir: &Path) -> PolicySource {
        Self::generation(dir).map_or(PolicySource::Plain, PolicySource::Generation)
    }

    fn generation(dir: &Path) -> Option<PathBuf> {
        let target = std::fs::read_link(dir.join("..data")).ok()?;
        let mut parts = target.components();
        let (Some(Component::Normal(name)), None) = (parts.next(), parts.next()) else {
            return None;
        };
        if !name.to_str().is_some_and(|n| n.starts_with("..")) {
            return None;
        }
        let generation = dir.join(name);
        if !std::fs::symlink_metadata(&generation).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        for entry in std::fs::read_dir(dir).ok()? {
            let entry = entry.ok()?;
            if entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let link = std::fs::read_link(entry.path()).ok()?;
            if link.components().next() != Some(Component::Normal("..data".as_ref())) {
                return None;
            }
        }
        Some(generation)
    }

    /// The directory to read the files from.
    pub(crate) fn root<'a>(&'a self, dir: &'a Path) -> &'a Path {
        match self {
            PolicySource::Generation(generation) => generation,
            PolicySource::Plain => dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn volume(root: &Path) -> PathBuf {
        let dir = root.join("pol");
        std::fs::create_dir_all(dir.join("..2026_a")).expect("generation");
        std::fs::write(dir.join("..2026_a/a.yaml"), "a").expect("write");
        symlink("..2026_a", dir.join("..data")).expect("..data");
        symlink("..data/a.yaml", dir.join("a.yaml")).expect("link");
        dir
    }

    #[test]
    fn a_kubelet_volume_is_read_from_its_current_generation() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = volume(root.path());
        assert_eq!(
            PolicySource::of(&dir),
            PolicySource::Generation(dir.join("..2026_a"))
        );
        // A key's link missing, or dangling, is the kubelet mid-update: still a generation.
        std::fs::remove_file(dir.join("a.yaml")).expect("unlink");
        symlink("..data/b.yaml", dir.join("b.yaml")).expect("dangling");
        assert_eq!(
            PolicySource::of(&dir),
            PolicySource::Generation(dir.join("..2026_a"))
        );
    }

    #[test]
    fn anything_else_is_read_as_it_is() {
        let root = tempfile::tempdir().expect("tempdir");
        let plain = root.path().join("plain");
        std::fs::create_dir(&plain).expect("dir");
        assert_eq!(PolicySource::of(&plain), PolicySource::Plain);
        assert_eq!(PolicySource::of(&plain).root(&plain), plain);

        // A file of its own beside `..data`: not in the generation, so not a generation.
        let dir = volume(root.path());
        std::fs::write(dir.join("own.yaml"), "own").expect("write");
        assert_eq!(PolicySource::of(&dir), PolicySource::Plain);
        std::fs::remove_file(dir.join("own.yaml")).expect("rm");
        // `..data` leaving the directory, or naming a link, or a missing directory.
        for target in ["../elsewhere", "/tmp", "..2026_missing", "a.yaml"] {
            std::fs::remove_file(dir.join("..data")).expect("rm");
            symlink(target, dir.join("..data")).expect("..data");
            assert_eq!(PolicySource::of(&dir), PolicySource::Plain, "{target}");
        }
        symlink("..2026_a", dir.join("..2026_link")).expect("link");
        std::fs::remove_file(dir.join("..data")).expect("rm");
        symlink("..2026_link", dir.join("..data")).expect("..data");
        assert_eq!(PolicySource::of(&dir), PolicySource::Plain);
    }
}
