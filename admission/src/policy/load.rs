//! Reading policy files: every `*.yaml`/`*.yml` under a directory, every document in a file,
//! every error reported with its file, line and column, document, policy and field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compiled::{CompiledPolicy, FieldError, InExpression, Origin};
use super::spec::{API_VERSION, KIND, PolicyDocument, TEST_KIND};
use crate::cel::Projection;

/// The largest policy file read; anything bigger is a mistake, not a policy.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One problem found while loading policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or the origin given to [`PolicySet::from_yaml`]).
    pub file: String,
    /// The 1-based document number, when the problem is inside one.
    pub document: Option<usize>,
    /// The policy name, when known.
    pub policy: Option<String>,
    /// The field path, e.g. `spec.grant.capabilities[0]`.
    pub field: Option<String>,
    /// The 1-based line and column in `file` where the field is written (the mapping that
    /// lacks it, when it is missing; the document, when no field is named), when the problem
    /// is inside a document. A CEL syntax error is placed where it is inside the expression
    /// when the file writes the expression so that this can be told exactly (a plain or quoted
    /// scalar on one line without escapes, a `|` or `>` block), at the field otherwise.
    /// Columns count characters. Looked up only for a load with errors or warnings.
    pub at: Option<(u64, u64)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A file name is whatever the directory holds: one with control characters is quoted,
        // so that it cannot forge lines (or terminal escapes) in the error report.
        if self.file.chars().any(char::is_control) {
            write!(f, "{:?}", self.file)?;
        } else {
            write!(f, "{}", self.file)?;
        }
        // `FILE:LINE:COLUMN`, as compilers write it, so that editors and terminals jump there.
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(p) = &self.policy {
            // A name is only trusted once checked; one that breaks the line is quoted, so a
            // policy file cannot forge lines of its own error report.
            if p.chars().any(|c| c.is_control() || c.is_whitespace()) {
                write!(f, " (policy {p:?})")?;
            } else {
                write!(f, " (policy {p})")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Something found while loading policies that does not stop them loading but is likely a
/// mistake, located as a [`LoadError`] is.
pub type LoadWarning = LoadError;

/// Every problem found while loading a set of policies. Loading is all or nothing: a set with
/// any error is not used, and whoever holds the previous good set keeps it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(Vec<LoadError>);

impl LoadErrors {
    /// The individual errors.
    pub fn errors(&self) -> &[LoadError] {
        &self.0
    }

    pub(crate) fn one(error: LoadError) -> Self {
        LoadErrors(vec![error])
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} in policies:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// A loaded, compiled set of policies.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
    files: Vec<PathBuf>,
    projection: Projection,
    warnings: Vec<LoadWarning>,
}

impl PolicySet {
    /// Loads every `*.yaml` and `*.yml` file under `dir`, recursively, in name order. Entries
    /// whose names start with `.` are skipped: Kubernetes ConfigMap volumes keep a second copy
    /// of every file under `..data` and `..TIMESTAMP` directories.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
        Self::load_dir_as(dir, dir)
    }

    /// [`PolicySet::load_dir`] reading the files under `dir` but naming each, in errors,
    /// warnings and [`PolicySet::files`], as if it were under `shown` (its path relative to
    /// `dir` joined to `shown`). A ConfigMap volume is read from its current generation
    /// directory, `..2026_…`, whose files users know by their links in the volume.
    pub fn load_dir_as(dir: &Path, shown: &Path) -> Result<PolicySet, LoadErrors> {
        let mut files = Vec::new();
        collect_files(dir, &mut files).map_err(|message| {
            LoadErrors::one(LoadError {
                file: shown.display().to_string(),
                document: None,
                policy: None,
                field: None,
                at: None,
                message,
            })
        })?;
        files.sort();
        let named = |file: &Path| match file.strip_prefix(dir) {
            Ok(relative) if dir != shown => shown.join(relative),
            _ => file.to_owned(),
        };
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for file in &files {
            match read_file(file) {
                Ok(text) => sources.push((named(file).display().to_string(), text)),
                Err(message) => errors.push(LoadError {
                    file: named(file).display().to_string(),
                    document: None,
                    policy: None,
                    field: None,
                    at: None,
                    message,
                }),
            }
        }
        let mut set =
            Self::compile_sources(sources.iter().map(|(f, t)| (f.as_str(), t.as_str())), true);
        if let Err(e) = &mut set {
            errors.append(&mut e.0.clone());
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let mut set = set?;
        set.files = files.iter().map(|f| named(f)).collect();
        Ok(set)
    }

    /// Loads policies from one YAML text; `origin` names it in errors.
    pub fn from_yaml(origin: &str, text: &str) -> Result<PolicySet, LoadErrors> {
        Self::from_sources([(origin, text)])
    }

    /// Loads policies from several named YAML texts.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PolicySet, LoadErrors> {
        Self::compile_sources(sources, false)
    }

    /// Compiles `sources`; with `files`, a source holding no document is an error (a file in
    /// the policy directory; a text given in memory may be empty).
    fn compile_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        files: bool,
    ) -> Result<PolicySet, LoadErrors> {
        let mut errors = Vec::new();
        let mut warnings: Vec<LoadWarning> = Vec::new();
        let mut policies: Vec<CompiledPolicy> = Vec::new();
        // The texts read so far, for the line of a policy that another repeats the name of,
        // each parsed for it at most once (a file of many repeats would parse it each time).
        let mut read: Vec<(&str, &str)> = Vec::new();
        let mut parsed: BTreeMap<usize, Positions> = BTreeMap::new();
        // The errors (by index in `errors`) that are inside an expression, and where.
        let mut inside: Vec<(usize, InExpression)> = Vec::new();
        for (file, text) in sources {
            read.push((file, text));
            let errors_before = errors.len();
            let policies_before = policies.len();
            let warnings_before = warnings.len();
            let docs = documents(file, text, &mut errors);
            if files && docs.is_empty() && errors.len() == errors_before {
                // A file truncated by a non-atomic write would otherwise take its policies
                // away without a word, and what they denied would be allowed.
                errors.push(LoadError {
                    file: file.to_owned(),
                    document: None,
                    policy: None,
                    field: None,
                    at: None,
                    message: "the file holds no YAML document (it is empty, or only comments); \
                              remove it, or restore its policies"
                        .into(),
                });
            }
            for (document, value) in docs {
                let origin = Origin {
                    file: file.to_owned(),
                    document,
                };
                if let Some(p) = decode(value, origin, &mut errors, &mut inside) {
                    if let Some(first) = policies.iter().find(|q| q.name == p.name) {
                        // Only on this error: the first one's file is parsed again for its line.
                        let line = read
                            .iter()
                            .position(|(f, _)| *f == first.origin.file)
                            .and_then(|i| {
                                parsed
                                    .entry(i)
                                    .or_insert_with(|| Positions::of(read[i].1))
                                    .find(first.origin.document, Some("metadata.name"))
                            })
                            .map(|(line, column)| format!(":{line}:{column}"))
                            .unwrap_or_default();
                        errors.push(LoadError {
                            file: file.to_owned(),
                            document: Some(document),
                            policy: Some(p.name.clone()),
                            field: Some("metadata.name".into()),
                            at: None,
                            message: format!(
                                "a policy of this name is already defined in {}{line} document {}",
                                first.origin.file, first.origin.document
                            ),
                        });
                    } else {
                        policies.push(p);
                    }
                }
            }
            warnings.extend(policies[policies_before..].iter().flat_map(|p| {
                p.warnings.iter().map(|w| LoadWarning {
                    file: p.origin.file.clone(),
                    document: Some(p.origin.document),
                    policy: Some(p.name.clone()),
                    field: Some(w.field.clone()),
                    at: None,
                    message: w.message.clone(),
                })
            }));
            // What this file's errors and warnings name is placed in it: the text is parsed a
            // second time only when there is something to report, so a clean load pays nothing.
            let mut reported = (errors_before..)
                .zip(&mut errors[errors_before..])
                .map(|(i, e)| (Some(i), e))
                .chain(warnings[warnings_before..].iter_mut().map(|e| (None, e)))
                .filter(|(_, e)| e.document.is_some())
                .peekable();
            if reported.peek().is_some() {
                let positions = Positions::of(text);
                for (i, e) in reported {
                    if let Some(document) = e.document {
                        // Inside its expression when the file's text tells where exactly;
                        // where the field is written otherwise.
                        let within =
                            inside
                                .iter()
                                .find(|(j, _)| Some(*j) == i)
                                .and_then(|(_, at)| {
                                    positions.find_inside(text, document, e.field.as_deref()?, at)
                                });
                        e.at = within.or_else(|| positions.find(document, e.field.as_deref()));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let mut projection = Projection::default();
        for p in &policies {
            projection.union(&p.projection);
        }
        Ok(PolicySet {
            policies,
            files: Vec::new(),
            projection,
            warnings,
        })
    }

    /// What loaded but is likely a mistake, in load order: the set is in force all the same.
    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }

    /// The policies, in load order.
    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    /// The top-level fields of each CEL variable that any policy reads.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// A policy by name.
    pub fn get(&self, name: &str) -> Option<&CompiledPolicy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policy names, in load order.
    pub fn names(&self) -> Vec<&str> {
        self.policies.iter().map(|p| p.name.as_str()).collect()
    }

    /// The files read by [`PolicySet::load_dir`] (named as [`PolicySet::load_dir_as`] shows
    /// them).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// The most directories deep the loader descends below the policy directory.
pub const MAX_DIR_DEPTH: usize = 16;

/// The most files the loader reads from one policy directory.
pub const MAX_FILES: usize = 4096;

/// Lists the policy files under `dir`, following symlinks (ConfigMap volume files are links
/// into `..data`), refusing a directory loop, a tree deeper than [`MAX_DIR_DEPTH`], more than
/// [`MAX_FILES`] files, and a `*.yaml` that is not a regular file (a FIFO would block the
/// reader, a link to a device would never end).
pub fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    collect_below(dir, out, false, &mut Vec::new())
}

/// [`collect_files`], but an entry that is a dangling symlink is listed (whatever its name)
/// instead of stopping the walk: a watcher must see such a link come and go (a ConfigMap's
/// `..data` swap leaves one for a moment), where the loader refuses it.
pub fn collect_files_keeping_dangling(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    collect_below(dir, out, true, &mut Vec::new())
}

fn collect_below(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    keep_dangling: bool,
    above: &mut Vec<PathBuf>,
) -> Result<(), String> {
    if above.len() > MAX_DIR_DEPTH {
        return Err(format!(
            "{} is more than {MAX_DIR_DEPTH} directories deep; flatten the policy directory",
            dir.display()
        ));
    }
    // By canonical path: a symlink back to a directory above would be walked forever (two of
    // them, each pointing at `.`, would double the walk at every level).
    let real = std::fs::canonicalize(dir)
        .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
    if let Some(first) = above.iter().find(|d| **d == real) {
        return Err(format!(
            "{} leads back to {} (a symlink loop); remove the link",
            dir.display(),
            first.display()
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
    above.push(real);
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the directory: {e}"))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks: ConfigMap volume files are links into `..data`.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if keep_dangling && e.kind() == std::io::ErrorKind::NotFound => {
                out.push(path);
                continue;
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if meta.is_dir() {
            collect_below(&path, out, keep_dangling, above)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            if !meta.is_file() {
                return Err(format!(
                    "{} is not a regular file (a FIFO, socket or device); policy files must be \
                     regular files",
                    path.display()
                ));
            }
            if out.len() >= MAX_FILES {
                return Err(format!(
                    "more than {MAX_FILES} policy files under the directory; is it the right one?"
                ));
            }
            out.push(path);
        }
    }
    above.pop();
    Ok(())
}

/// Reads one policy file as UTF-8 text, at most [`MAX_FILE_BYTES`]: counted while reading,
/// not trusted from the file's metadata, which says 0 for devices and files still growing.
pub fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let too_big = |len: u64| {
        format!("the file is {len} bytes or more; policy files are limited to {MAX_FILE_BYTES}")
    };
    // Non-blocking: the listing refused anything but a regular file, but a file swapped for
    // a FIFO since would block a plain open until a writer came (the reload poll with it).
    // A regular file's reads do not heed the flag.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    }
    .map_err(|e| format!("cannot read the file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if !meta.is_file() {
        return Err(
            "not a regular file (a FIFO, socket or device); policy files must be regular files"
                .into(),
        );
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_owned())
}

/// Splits a YAML text into its non-empty documents, as JSON values, numbered as the text has
/// them ([`yaml_documents`]).
fn documents(file: &str, text: &str, errors: &mut Vec<LoadError>) -> Vec<(usize, Value)> {
    match yaml_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            errors.push(LoadError {
                file: file.to_owned(),
                document: None,
                policy: None,
                field: None,
                at: None,
                message: yaml_error(&e, file),
            });
            Vec::new()
        }
    }
}

/// The non-empty documents of a YAML text, each with its 1-based number in the text. The
/// reader drops empty and null documents (`---` twice, a document of comments only), so its
/// list alone would number the documents after one wrongly: each is numbered by the document
/// starts before it instead.
pub(crate) fn yaml_documents(text: &str) -> Result<Vec<(usize, Value)>, serde_saphyr::Error> {
    let docs: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, yaml_options())?;
    let starts = document_starts(text);
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let at = (doc.referenced.line(), doc.referenced.column());
            let number = starts
                .as_ref()
                .map(|starts| starts.iter().filter(|start| **start <= at).count())
                .filter(|n| *n > i)
                // The reader read the text, so its parser does too; if not, number in order.
                .unwrap_or(i + 1);
            (number, doc.value)
        })
        .collect())
}

/// Where each document of `text` starts (its `---`, or its first token), as 1-based line and
/// column; `None` when the parser stops on an error. The parser only reports events, so
/// aliases are not expanded here.
fn document_starts(text: &str) -> Option<Vec<(u64, u64)>> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut starts = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        if let Event::DocumentStart(..) = event {
            let line = u64::try_from(span.start.line()).ok()?;
            let column = u64::try_from(span.start.col()).ok()?.checked_add(1)?;
            starts.push((line, column));
        }
    }
    Some(starts)
}

/// Where each node of a YAML text stands, for pointing an error at the line of the field it
/// names: by 1-based document number (as [`yaml_documents`] numbers them), the field path as
/// `serde_path_to_error` writes it (`spec.cases[1].expect`, `""` for the document itself) and
/// its 1-based line and column. A mapping entry stands where its key is written. Only the
/// parser's events are read, so aliases are not expanded: a field reached through an alias is
/// placed at the alias.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    by_document: BTreeMap<usize, BTreeMap<String, (u64, u64)>>,
    /// The fields whose value is a scalar, by document and path: how it is written, for
    /// placing a position inside it ([`Positions::find_inside`]).
    scalars: BTreeMap<usize, BTreeMap<String, Scalar>>,
}

/// A scalar value as the parser read it.
#[derive(Debug)]
struct Scalar {
    style: serde_saphyr::granit_parser::ScalarStyle,
    /// The 1-based line where the parser places it: its opening quote, its first character
    /// (a plain scalar), or the start of its first line of content (a block scalar).
    line: usize,
    /// The 0-based column of that place, in characters.
    column: usize,
    /// Its value, as the parser read it.
    value: String,
}

/// The most nodes [`Positions::of`] records: a file within the reader's limits has fewer, and
/// one that has more gets no positions past them rather than unbounded memory.
const MAX_POSITIONS: usize = 250_000;

impl Positions {
    /// The positions of `text`'s nodes, as far as it parses: up to a syntax error (reported
    /// with its own line by [`yaml_error`]), positions found before it stand.
    pub(crate) fn of(text: &str) -> Positions {
        use serde_saphyr::granit_parser::{Event, Parser};
        /// What comes next in a mapping.
        enum Next {
            Key,
            /// The value of the entry at this path.
            Value(String),
            /// The value of an entry whose key is a collection: no field.
            Skipped,
        }
        enum Frame {
            Map {
                path: String,
                next: Next,
            },
            Seq {
                path: String,
                next: usize,
            },
            /// A collection that is no field (a complex key, or the value of one).
            Skip,
        }
        let mut positions = Positions::default();
        let mut count = 0usize;
        let mut document = 0usize;
        let mut stack: Vec<Frame> = Vec::new();
        let mut record = |document: usize, path: &str, at: (u64, u64), scalar: Option<Scalar>| {
            if count < MAX_POSITIONS {
                count += 1;
                positions
                    .by_document
                    .entry(document)
                    .or_default()
                    .entry(path.to_owned())
                    .or_insert(at);
                if let Some(scalar) = scalar {
                    positions
                        .scalars
                        .entry(document)
                        .or_default()
                        .entry(path.to_owned())
                        .or_insert(scalar);
                }
            }
        };
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else {
                break;
            };
            let at = (
                u64::try_from(span.start.line()).unwrap_or(u64::MAX),
                u64::try_from(span.start.col())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1),
            );
            // Whether the node opens a collection: a mapping, a sequence.
            let opens = match &event {
                Event::DocumentStart(..) => {
                    document += 1;
                    stack.clear();
                    continue;
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    continue;
                }
                Event::MappingStart(..) => Some(true),
                Event::SequenceStart(..) => Some(false),
                Event::Scalar(..) | Event::Alias(..) => None,
                _ => continue,
            };
            if document == 0 {
                continue;
            }
            // This node's field path; `None` when it is no field (or a key, recorded as its
            // entry).
            let path: Option<String> = match stack.last_mut() {
                None => Some(String::new()),
                Some(Frame::Skip) => None,
                Some(Frame::Seq { path, next }) => {
                    let item = format!("{path}[{next}]");
                    *next += 1;
                    Some(item)
                }
                Some(Frame::Map { path, next }) => match std::mem::replace(next, Next::Key) {
                    Next::Value(entry) => Some(entry),
                    Next::Skipped => None,
                    Next::Key => {
                        if let Event::Scalar(name, ..) = &event {
                            let entry = if path.is_empty() {
                                name.to_string()
                            } else {
                                format!("{path}.{name}")
                            };
                            record(document, &entry, at, None);
                            *next = Next::Value(entry);
                        } else {
                            *next = Next::Skipped;
                        }
                        // A key: an entry, not a field of its own.
                        if opens.is_some() {
                            stack.push(Frame::Skip);
                        }
                        continue;
                    }
                },
            };
            match (path, opens) {
                (Some(path), opens) => {
                    let scalar = match &event {
                        Event::Scalar(value, style, ..) => Some(Scalar {
                            style: *style,
                            line: span.start.line(),
                            column: span.start.col(),
                            value: value.to_string(),
                        }),
                        _ => None,
                    };
                    record(document, &path, at, scalar);
                    match opens {
                        Some(true) => stack.push(Frame::Map {
                            path,
                            next: Next::Key,
                        }),
                        Some(false) => stack.push(Frame::Seq { path, next: 0 }),
                        None => {}
                    }
                }
                (None, Some(_)) => stack.push(Frame::Skip),
                (None, None) => {}
            }
        }
        positions
    }

    /// The line and column in the file of `at`, a place inside the expression that `field` of
    /// `document` holds, when the way the file writes it lets that be told exactly: a plain
    /// scalar on one line, a quoted one on one line without escapes, or a `|` or `>` block
    /// whose first line is neither blank nor more indented than the block. `None` otherwise
    /// (the caller places the
    /// error at the field), and whenever the file's text does not read back as the expression
    /// that was compiled.
    pub(crate) fn find_inside(
        &self,
        text: &str,
        document: usize,
        field: &str,
        at: &InExpression,
    ) -> Option<(u64, u64)> {
        let scalar = self.scalars.get(&document)?.get(field)?;
        if scalar.value != at.source {
            return None;
        }
        // The character offset of `at` in the expression.
        let mut offset = 0usize;
        let mut lines = at.source.split('\n');
        for _ in 1..at.line {
            offset += lines.next()?.chars().count() + 1;
        }
        if at.column == 0 || at.column - 1 > lines.next()?.chars().count() {
            return None;
        }
        offset += at.column - 1;
        // Up to one past a piece's last character: a parser's error at the end of the text
        // is placed there.
        scalar_pieces(text, scalar)?
            .into_iter()
            .find(|p| p.offset <= offset && offset <= p.offset + p.chars)
            .map(|p| {
                (
                    u64::try_from(p.line).unwrap_or(u64::MAX),
                    u64::try_from(p.column + (offset - p.offset)).unwrap_or(u64::MAX),
                )
            })
    }

    /// The line and column of `field` in `document`, or of the nearest field above it that is
    /// written (a missing field is placed at the mapping that lacks it); `None` for the
    /// document itself when the file has no such document.
    pub(crate) fn find(&self, document: usize, field: Option<&str>) -> Option<(u64, u64)> {
        let fields = self.by_document.get(&document)?;
        let mut path = field.unwrap_or("");
        loop {
            if let Some(at) = fields.get(path) {
                return Some(*at);
            }
            if path.is_empty() {
                return None;
            }
            // Up one segment: `a.b[2]` → `a.b` → `a`.
            path = match path.rfind(['.', '[']) {
                Some(i) => &path[..i],
                None => "",
            };
        }
    }
}

/// A run of a scalar's value that the file writes as it is, on one line.
#[derive(Debug, PartialEq, Eq)]
struct Piece {
    /// Where the run starts in the value, in characters.
    offset: usize,
    /// Its length in characters.
    chars: usize,
    /// The 1-based line of the file it is written on.
    line: usize,
    /// The 1-based column, in characters, of its first character.
    column: usize,
}

/// The runs of `scalar`'s value as the file `text` writes them, when they can be told
/// exactly; `None` when the value is written with escapes, folded across the lines of a flow
/// scalar, in a block whose first line is blank or more indented than the block, or
/// otherwise than the checks here read it back.
/// Every character of the value outside the runs is a line break (or, in a `>` scalar, the
/// space a line break folds into).
fn scalar_pieces(text: &str, scalar: &Scalar) -> Option<Vec<Piece>> {
    use serde_saphyr::granit_parser::ScalarStyle;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip(scalar.line.checked_sub(1)?);
    let first = lines.next()?;
    // The first line from the scalar's first token.
    let rest: String = first.chars().skip(scalar.column).collect();
    let value = scalar.value.as_str();
    let one_line = |skip: usize, quote: Option<char>| -> Option<Vec<Piece>> {
        let after = rest.get(skip..)?;
        let written = after.strip_prefix(value)?;
        if value.contains(['\n', '\r']) || quote.is_some_and(|q| !written.starts_with(q)) {
            return None;
        }
        Some(vec![Piece {
            offset: 0,
            chars: value.chars().count(),
            line: scalar.line,
            column: scalar.column + 1 + skip,
        }])
    };
    match scalar.style {
        // One line, as written (a plain scalar over several lines has its breaks folded).
        ScalarStyle::Plain => one_line(0, None),
        // Without the characters an escape would write: then the text between the quotes
        // is the value itself.
        ScalarStyle::SingleQuoted if rest.starts_with('\'') && !value.contains('\'') => {
            one_line(1, Some('\''))
        }
        ScalarStyle::DoubleQuoted if rest.starts_with('"') && !value.contains(['"', '\\']) => {
            one_line(1, Some('"'))
        }
        // The parser places a block scalar at its first line of content, where that line's
        // indentation ends: the block's indentation, unless its first line is more indented
        // than an indentation indicator (`|2`) says, or blank, and then its value starts with
        // a space or a line break.
        ScalarStyle::Literal | ScalarStyle::Folded
            if scalar.column > 0
                && first.chars().take(scalar.column).all(|c| c == ' ')
                && !value.starts_with(char::is_whitespace) =>
        {
            let folded = scalar.style == ScalarStyle::Folded;
            block_pieces(
                value,
                std::iter::once(first).chain(lines),
                scalar.line,
                scalar.column,
                folded,
            )
        }
        _ => None,
    }
}

/// The runs of a block scalar's `value` on its content `lines` (the first of them line
/// `first_line` of the file), indented `indent` spaces: each non-blank line indented as far
/// is a run of the value, and what lies between two runs must be line breaks, or in a folded
/// (`>`) scalar the one space a break folds into. A less indented line ends the scalar.
/// Anything else, or a value left over, is `None`.
fn block_pieces<'t>(
    value: &str,
    lines: impl Iterator<Item = &'t str>,
    first_line: usize,
    indent: usize,
    folded: bool,
) -> Option<Vec<Piece>> {
    let value: Vec<char> = value.chars().collect();
    let mut pieces = Vec::new();
    let mut at = 0usize;
    for (i, line) in lines.enumerate() {
        if line.chars().all(|c| c == ' ') {
            continue;
        }
        let spaces = line.len() - line.trim_start_matches(' ').len();
        if spaces < indent {
            // Less indented: the scalar has ended.
            break;
        }
        let content: Vec<char> = line[indent..].chars().collect();
        let starts_blank = content.first().is_some_and(|c| c.is_whitespace());
        if !pieces.is_empty() {
            // Between two runs: one folded space, or line breaks.
            match value.get(at) {
                Some(' ') if folded && !starts_blank => at += 1,
                Some('\n') => {
                    while value.get(at) == Some(&'\n') {
                        at += 1;
                    }
                }
                _ => return None,
            }
        }
        if value.get(at..at + content.len())? != content.as_slice() {
            return None;
        }
        pieces.push(Piece {
            offset: at,
            chars: content.len(),
            line: first_line + i,
            column: indent + 1,
        });
        at += content.len();
    }
    // Only the final line breaks may be left.
    value[at..].iter().all(|c| *c == '\n').then_some(pieces)
}

/// The most YAML documents one file may hold (the YAML reader's own limit, which guards
/// against separator storms).
pub const MAX_DOCUMENTS: usize = 1024;

/// The most YAML nodes the aliases of one file may repeat, all aliases together. Anchors let
/// policies share a list (images, groups), which a few hundred repeated nodes cover; aliases
/// of aliases multiply ("billion laughs"), and with the reader's own cap (a million) a file
/// of a few hundred bytes took 0.4 s to refuse in a release build, 12 s in a debug one.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// The most text the scalars of one file may hold once its aliases are repeated: twice the
/// largest file. The reader's own cap (64 MiB) let a 1 MiB value repeated by aliases take
/// 64 MiB before it was refused.
pub const MAX_YAML_TEXT_BYTES: usize = 2 * MAX_FILE_BYTES as usize;

/// The YAML reader's options for policy files and suites: its defaults (a document nests at
/// most 64 levels, holds at most 250,000 nodes, and so on), with the limits above.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_total_scalar_bytes = MAX_YAML_TEXT_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_NODES;
    options
}

/// The reader's messages, but for a duplicate key: its own text tells the program reading the
/// file to "set DuplicateKeyPolicy in Options", which the author of a policy file cannot.
struct AuthorMessages;

impl serde_saphyr::MessageFormatter for AuthorMessages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        match err {
            serde_saphyr::Error::DuplicateMappingKey { key, .. } => format!(
                "the key {}appears twice in one mapping, and a policy file says each key once: \
                 merge the two, or remove one",
                key.as_deref()
                    .map(|k| format!("`{k}` "))
                    .unwrap_or_default()
            )
            .into(),
            other => serde_saphyr::DefaultMessageFormatter.format_message(other),
        }
    }
}

/// The reader's error, with its limits said in words: its own text for a breached budget is a
/// debug dump (`budget breached: Documents { documents: 1025 }`). A breach found while an
/// alias is repeated (an alias bomb) comes wrapped in the alias's error, and is said in words
/// too. `file` names the source of the snippet under a syntax error (the reader's own name
/// for it is `<input>`).
pub(crate) fn yaml_error(e: &serde_saphyr::Error, file: &str) -> String {
    use serde_saphyr::Error;
    use serde_saphyr::budget::BudgetBreach;
    let mut cause = e;
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = cause {
        cause = error;
    }
    match cause {
        Error::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        } => format!(
            "the file holds more than {MAX_DOCUMENTS} YAML documents, the most one policy file \
             may hold: split it into several files in the policy directory"
        ),
        Error::Budget {
            breach: BudgetBreach::Depth { depth },
            ..
        } => format!(
            "the YAML nests {depth} levels deep, more than a policy file may: a policy nests a \
             few levels"
        ),
        Error::AliasReplayLimitExceeded { .. } => format!(
            "the file's aliases repeat more than {MAX_ALIAS_NODES} YAML nodes, the most one \
             policy file may: an alias repeats what its anchor names, and aliases of aliases \
             multiply it; write the repeated parts out, or split the file"
        ),
        Error::Budget {
            breach: BudgetBreach::ScalarBytes { .. },
            ..
        } => format!(
            "the file's text, with what its aliases repeat, exceeds {MAX_YAML_TEXT_BYTES} \
             bytes, the most one policy file may: check it for aliases that repeat large values"
        ),
        Error::Budget { breach, .. } => format!(
            "the file exceeds a limit of the YAML reader ({breach:?}): split it into several \
             files, and check it for anchors and aliases that multiply its size"
        ),
        _ => {
            let mut options = serde_saphyr::RenderOptions::new(&AuthorMessages);
            options.source_name = Some(file);
            format!("not valid YAML: {}", e.render_with_options(options))
        }
    }
}

/// Decodes one document; `None` for test-suite documents and for errors (pushed).
/// The API group of kustomize's own files.
const KUSTOMIZE_GROUP: &str = "kustomize.config.k8s.io/";

/// Decodes and compiles one document, its errors added to `errors`; those inside an
/// expression are also listed in `inside`, by their index in `errors`.
fn decode(
    value: Value,
    origin: Origin,
    errors: &mut Vec<LoadError>,
    inside: &mut Vec<(usize, InExpression)>,
) -> Option<CompiledPolicy> {
    let policy = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let error = |field: Option<String>, message: String| LoadError {
        file: origin.file.clone(),
        document: Some(origin.document),
        policy: policy.clone(),
        field,
        at: None,
        message,
    };
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    // A kustomization beside the policies (deploy/base/policies builds them into the
    // ConfigMap) is neither a policy nor a mistake.
    if kind == TEST_KIND || kind == "Kustomization" && api_version.starts_with(KUSTOMIZE_GROUP) {
        return None;
    }
    // A list or a scalar where a policy belongs (a stray `- ` or a lost indentation) has no
    // kind to name: `found ""` would not say what is wrong.
    if !value.is_object() {
        errors.push(error(
            None,
            format!(
                "the document is {}, not a mapping: a {KIND} is a mapping with apiVersion, \
                 kind, metadata and spec",
                json_type(&value)
            ),
        ));
        return None;
    }
    if kind != KIND {
        errors.push(error(
            Some("kind".into()),
            format!(
                "expected kind {KIND} (or {TEST_KIND}), {}",
                found(&value, "kind")
            ),
        ));
        return None;
    }
    if api_version != API_VERSION {
        errors.push(error(
            Some("apiVersion".into()),
            format!("expected {API_VERSION}, {}", found(&value, "apiVersion")),
        ));
        return None;
    }
    // Every mistake at once, not one per run: each error is reported, the member it names
    // taken out, and the document decoded again, up to a bound. A member taken out for its
    // value is then missing: that is no new mistake, and ends the search.
    let mut value = value;
    let mut removed: Vec<Vec<String>> = Vec::new();
    let doc: PolicyDocument = loop {
        match serde_path_to_error::deserialize(&value) {
            Ok(doc) => break doc,
            Err(e) => {
                let mut segments: Vec<String> = e.path().iter().map(|s| s.to_string()).collect();
                let path = e.path().to_string();
                let field = (path != ".").then_some(path);
                let inner = e.into_inner().to_string();
                if let Some(name) = missing_field(&inner) {
                    segments.push(name.to_owned());
                    if removed.contains(&segments) {
                        return None;
                    }
                    segments.pop();
                }
                let mut message = unknown_field_message(&inner).unwrap_or(inner);
                // YAML 1.1 reads unquoted yes/no/on/off/y/n as booleans: `namespaces: [no]`.
                if message.starts_with("invalid type: boolean")
                    && message.contains("expected a string")
                {
                    message.push_str(
                        "; YAML reads unquoted yes, no, on, off, y, n, true and false as \
                         booleans: quote the value (\"no\")",
                    );
                }
                errors.push(error(field, message));
                if removed.len() < MAX_ERRORS_PER_DOCUMENT && remove_at(&mut value, &segments) {
                    removed.push(segments);
                    continue;
                }
                return None;
            }
        }
    };
    match CompiledPolicy::compile(doc, origin.clone()) {
        Ok(_) if !removed.is_empty() => None,
        Ok(mut p) => {
            p.warnings.extend(empty_who_lists(&value, &p));
            Some(p)
        }
        Err(field_errors) => {
            for f in field_errors {
                if let Some(at) = f.inside {
                    inside.push((errors.len(), at));
                }
                errors.push(error(Some(f.field), f.message));
            }
            None
        }
    }
}

/// The `match.users`, `groups` and `serviceAccounts` written as empty lists (`groups: []`)
/// that make a policy which grants serve everyone: an empty list matches anyone, as an
/// omitted field does, so a list emptied by a template or an edit (`groups: {{ .Values.x }}`)
/// turns a grant for a team into one for every user and service account, in silence. One
/// warning each; none when another of the three names someone, or when nothing is granted.
fn empty_who_lists(value: &Value, policy: &CompiledPolicy) -> Vec<FieldError> {
    let Some(m) = value.pointer("/spec/match") else {
        return Vec::new();
    };
    const WHO: [&str; 3] = ["users", "groups", "serviceAccounts"];
    let names_someone = WHO.iter().any(|f| {
        m.get(f)
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty())
    });
    if policy.grant.is_empty() || names_someone {
        return Vec::new();
    }
    WHO.iter()
        .filter(|f| {
            m.get(**f)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        })
        .map(|f| FieldError {
            field: format!("spec.match.{f}"),
            message: "an empty list matches everyone, as an omitted field does, so this \
                      policy's grant applies to every user and service account; name who it is \
                      for, or remove the field to say everyone"
                .into(),
            inside: None,
        })
        .collect()
}

/// What a document has at `key` of its top level: "found \"Pod\"", or that it has none
/// (a `found ""` read as an empty value written out).
fn found(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => format!("found none: the document has no {key}"),
        Some(Value::String(s)) => format!("found {s:?}"),
        Some(other) => format!("found {}", json_type(other)),
    }
}

/// "a list", "a string": a YAML value's type, for what was found where another belongs.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// How many decoding errors one document reports before the rest wait for the next run.
const MAX_ERRORS_PER_DOCUMENT: usize = 20;

/// The field serde's "missing field `name`" names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(name, _)| name)
}

/// serde's "unknown field `capabilites`, expected one of `images`, `capabilities`, …" with the
/// closest expected name first ("did you mean"); `None` for any other message.
pub(crate) fn unknown_field_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    Some(
        match crate::cel_check::closest(name, candidates.iter().copied()) {
            Some(close) => format!("unknown field `{name}` (did you mean `{close}`?){expected}"),
            None => message.to_owned(),
        },
    )
}

/// Removes the member that `path` (serde_path_to_error's segments, the last one the member's
/// key) names; false when the path does not lead to a member (an item of a list is not taken
/// out: the items after it would move), which ends the search for more.
fn remove_at(value: &mut Value, path: &[String]) -> bool {
    let Some((key, parents)) = path.split_last() else {
        return false;
    };
    let mut at = value;
    for segment in parents {
        let next = match at {
            Value::Object(map) => map.get_mut(segment.as_str()),
            Value::Array(list) => segment.parse::<usize>().ok().and_then(|i| list.get_mut(i)),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    at.as_object_mut()
        .is_some_and(|map| map.remove(key.as_str()).is_some())
}

#[cfg(test)]
mod tests {
    use super::{Positions, scalar_pieces};

    /// Each run that [`scalar_pieces`] finds of a scalar's value is written in the file, char
    /// for char, where it says: a place inside an expression is never put on a wrong
    /// character. Where the file writes the value otherwise than it is read back (escapes,
    /// folded flow lines, an indented first block line), there are no runs.
    #[test]
    fn the_runs_of_a_scalar_are_where_the_file_writes_them() {
        let cases: &[(&str, bool)] = &[
            ("e: a == 'é' ) || b\n", true),
            ("x: é\ne: 'a + b ('\n", true),
            ("e: \"a + ('b')\"  # c\n", true),
            ("e: |\n  a &&\n\n    b ||\n  \tc\n\nf: 1\n", true),
            ("e: |-\r\n  a &&\r\n  b\r\n", true),
            ("e: |+\n  a\n\n\n", true),
            (
                "- e: >\n    a &&\n    b\n\n    c\n      d\n    é\n  f: 1\n",
                true,
            ),
            ("e: >-\n  a\n  b\n", true),
            ("e: |  # a comment\n  a\n  b\n", true),
            ("e: !!str |\n  a\n", true),
            ("e: |2\n  a\n   b\n", true),
            // Escapes, or a quote the value holds.
            ("e: 'a ''b'' ('\n", false),
            ("e: \"a \\\"b\\\" (\"\n", false),
            ("e: \"a \\x41 (\"\n", false),
            // Lines folded into one.
            ("e: a &&\n  b\n", false),
            ("e: 'a &&\n  b'\n", false),
            ("e: \"a &&\n  b\"\n", false),
            // A block whose first line is more indented than its indicator says, or blank.
            ("e: |1\n   a\n  b\n", false),
            ("e: |\n\n  a\n", false),
            // Not a scalar of its own: an alias.
            ("a: &x 'q'\ne: *x\n", false),
        ];
        for (text, placed) in cases {
            let positions = Positions::of(text);
            let field = if text.starts_with('-') { "[0].e" } else { "e" };
            let pieces = positions
                .scalars
                .get(&1)
                .and_then(|s| s.get(field))
                .and_then(|s| scalar_pieces(text, s).map(|p| (s, p)));
            assert_eq!(pieces.is_some(), *placed, "{text:?}: {pieces:?}");
            let Some((scalar, pieces)) = pieces else {
                continue;
            };
            let lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
            let value: Vec<char> = scalar.value.chars().collect();
            let mut covered = vec![false; value.len()];
            for p in &pieces {
                for k in 0..p.chars {
                    assert_eq!(
                        lines[p.line - 1].get(p.column - 1 + k),
                        value.get(p.offset + k),
                        "{text:?}: {p:?} at {k}"
                    );
                    covered[p.offset + k] = true;
                }
            }
            // What no run covers is line breaks, or the spaces of folded ones.
            assert!(
                (0..value.len()).all(|i| covered[i] || matches!(value[i], '\n' | ' ')),
                "{text:?}: {pieces:?}"
            );
        }
    }

    /// Broken and odd YAML places what it can and never panics: the positions are read only
    /// to report errors, which must come out whatever the text.
    #[test]
    fn positions_place_fields_in_any_text_without_panicking() {
        let text = "\
a: 1
b:
  - x
  - {c: [1, 2], d: e}
? [complex, key]
: {ignored: 1}
f: &anchor {g: 1}
h: *anchor
---
---
k: v
";
        let p = Positions::of(text);
        assert_eq!(p.find(1, None), Some((1, 1)));
        assert_eq!(p.find(1, Some("a")), Some((1, 1)));
        assert_eq!(p.find(1, Some("b[1].c[1]")), Some((4, 13)));
        assert_eq!(p.find(1, Some("b[1].d")), Some((4, 17)));
        // Missing below: the nearest field above that is written.
        assert_eq!(p.find(1, Some("b[1].nope.deeper[3]")), Some((4, 5)));
        assert_eq!(p.find(1, Some("ignored")), Some((1, 1)));
        assert_eq!(p.find(1, Some("h.g")), Some((8, 1)));
        // An empty document counts, as `yaml_documents` numbers them.
        assert_eq!(p.find(3, Some("k")), Some((11, 1)));
        assert_eq!(p.find(4, None), None);
        for broken in [
            "",
            "a: [1, 2",
            "a: {b: c",
            "- - - -",
            "a:\n\tb: 1",
            "? ? ? a",
            "*nothing",
            "a: b: c",
            "]]]",
            "a: &x [*x]",
            "%YAML 1.2\n---\na: 1\n...\n--- !tag\nb: 2",
            "\u{feff}a: 1\u{0}",
        ] {
            let p = Positions::of(broken);
            let _ = p.find(1, Some("a.b[0]"));
            let _ = p.find(usize::MAX, None);
        }
    }
}
