//! Walks the state directory without following symlinks, classifies what it finds, and turns
//! permissions and symlinks into findings.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::{Affected, Finding, SafeFix, Severity};
use crate::transcripts::{self, TranscriptKind};
use crate::{Error, Result};

/// What a file under the state directory is, as far as the audit cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A plaintext JSONL transcript, live or archived (`.deleted.`, `.bak.`, `.reset.`).
    Transcript,
    /// A `<sid>.trajectory.jsonl` sidecar.
    Trajectory,
    /// A zstd-compressed transcript archive (`.jsonl.deleted.*.zst`, `cold/*.jsonl.zst`).
    Archive,
    /// A sealed (age-encrypted) transcript.
    Sealed,
    /// The gateway config.
    Config,
    /// A rotated copy of the config (`.bak`, `.bak.N`, `.last-good`, …).
    ConfigBackup,
    /// `agents/<id>/agent/models.json`: the provider catalogue with resolved keys.
    ModelsJson,
    /// A file in `logs/`.
    Log,
    /// Any other file the gateway keeps secrets in (credentials, auth profiles, databases, …).
    SecretStore,
    /// Anything else.
    Other,
}

impl FileKind {
    pub(crate) fn is_session_data(self) -> bool {
        matches!(
            self,
            FileKind::Transcript | FileKind::Trajectory | FileKind::Archive
        )
    }
}

/// What an entry of the walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A directory; `secret_area` when it is one where the gateway keeps secrets.
    Dir { secret_area: bool },
    /// A symbolic link (never followed).
    Symlink,
    /// A regular file.
    File(FileKind),
}

/// One entry of the walk.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Absolute path.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Its `lstat` metadata.
    pub meta: Metadata,
}

/// The walked state directory.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The state directory (canonical).
    pub root: PathBuf,
    /// Its metadata.
    pub root_meta: Metadata,
    /// Every entry under it, in walk order.
    pub entries: Vec<Entry>,
    /// Paths that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Tree {
    /// Whether the state directory is closed to group and others.
    pub fn root_private(&self) -> bool {
        self.root_meta.mode() & 0o077 == 0
    }
}

/// Top-level directories where the gateway keeps secrets: they should be 0700.
const SECRET_AREAS: &[&str] = &[
    "agents",
    "credentials",
    "devices",
    "nodes",
    "identity",
    "state",
    "logs",
    "memory",
    "cron",
    "cache",
    "tmp",
];

/// Directories the walk does not descend into: user workspaces, plugin installs, browser
/// profiles and media, which hold no gateway secrets and can be huge.
fn skip_descend(rel: &Path) -> bool {
    let mut comps = rel.components();
    let first = comps.next().map(|c| c.as_os_str().to_string_lossy());
    let top_skip = match first.as_deref() {
        Some(t) => {
            rel.components().count() == 1
                && (t.starts_with("workspace")
                    || matches!(
                        t,
                        "extensions" | "npm" | "git" | "sandboxes" | "browser" | "media"
                    ))
        }
        None => false,
    };
    let name = rel.file_name().and_then(OsStr::to_str).unwrap_or("");
    top_skip || matches!(name, "node_modules" | ".git")
}

/// Walks `root` (following it, since the user named it) and everything below it (never
/// following a symlink), then adds the config and its backups when they live elsewhere.
///
/// # Errors
/// Fails when `root` cannot be read.
pub(crate) fn walk(root: &Path) -> Result<Tree> {
    let root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let root_meta = fs::metadata(&root).map_err(|e| Error::io(&root, e))?;
    if !root_meta.is_dir() {
        return Err(Error::io(
            &root,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut tree = Tree {
        root: root.clone(),
        root_meta,
        entries: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                tree.unreadable.push((dir, e.to_string()));
                continue;
            }
        };
        let mut children: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            // DirEntry::metadata is lstat: symlinks are seen as symlinks.
            let meta = match child.metadata() {
                Ok(m) => m,
                Err(e) => {
                    tree.unreadable.push((path, e.to_string()));
                    continue;
                }
            };
            let rel = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_dir() {
                EntryKind::Dir {
                    secret_area: in_secret_area(&rel),
                }
            } else if ft.is_file() {
                EntryKind::File(classify(&rel))
            } else {
                continue;
            };
            if matches!(kind, EntryKind::Dir { .. }) && !skip_descend(&rel) {
                stack.push(path.clone());
            }
            tree.entries.push(Entry { path, kind, meta });
        }
    }
    Ok(tree)
}

/// Marks the config and its backups, adding them when they are outside the state dir.
pub(crate) fn mark_config(tree: &mut Tree, config: &Path, backups: &[PathBuf]) {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let wanted: Vec<(PathBuf, FileKind)> = std::iter::once((canon(config), FileKind::Config))
        .chain(backups.iter().map(|b| (canon(b), FileKind::ConfigBackup)))
        .collect();
    for (path, kind) in wanted {
        if let Some(e) = tree.entries.iter_mut().find(|e| e.path == path) {
            if matches!(e.kind, EntryKind::File(_)) {
                e.kind = EntryKind::File(kind);
            }
            continue;
        }
        if let Ok(meta) = fs::symlink_metadata(&path)
            && meta.is_file()
        {
            tree.entries.push(Entry {
                path,
                kind: EntryKind::File(kind),
                meta,
            });
        }
    }
}

fn in_secret_area(rel: &Path) -> bool {
    rel.components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .is_some_and(|t| SECRET_AREAS.contains(&t))
}

/// Classifies a file by its path relative to the state dir.
pub(crate) fn classify(rel: &Path) -> FileKind {
    let name = rel.file_name().and_then(OsStr::to_str).unwrap_or("");
    let comps: Vec<&str> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let top = comps.first().copied().unwrap_or("");
    let in_sessions = comps.len() >= 4 && top == "agents" && comps[2] == "sessions";
    if in_sessions {
        // Cold archives are named by their content hash: only their place says what they are.
        if comps.len() == 5 && comps[3] == "cold" && name.ends_with(".jsonl.zst") {
            return FileKind::Archive;
        }
        return match transcripts::classify(name) {
            Some((TranscriptKind::Trajectory, ..)) => FileKind::Trajectory,
            Some((k, ..)) if k.is_zstd() => FileKind::Archive,
            Some((TranscriptKind::Sealed, ..)) => FileKind::Sealed,
            Some(_) => FileKind::Transcript,
            None if name == "sessions.json" => FileKind::SecretStore,
            None => FileKind::Other,
        };
    }
    match top {
        "agents" if comps.len() >= 4 && comps[2] == "agent" => {
            if name == "models.json" {
                FileKind::ModelsJson
            } else if is_secret_db(name) || matches!(name, "auth-profiles.json" | "auth-state.json")
            {
                FileKind::SecretStore
            } else {
                FileKind::Other
            }
        }
        "credentials" | "devices" | "nodes" | "identity" => FileKind::SecretStore,
        "state" | "memory" if is_secret_db(name) => FileKind::SecretStore,
        "logs" => FileKind::Log,
        _ if comps.len() == 1 => match name {
            ".env" | "exec-approvals.json" | "config-journal-fingerprint.key" => {
                FileKind::SecretStore
            }
            _ => FileKind::Other,
        },
        _ => FileKind::Other,
    }
}

/// SQLite databases holding secrets (not the lock/writer sidecars the gateway creates 0644).
fn is_secret_db(name: &str) -> bool {
    let base = name
        .strip_suffix("-wal")
        .or_else(|| name.strip_suffix("-shm"))
        .unwrap_or(name);
    base.ends_with(".sqlite")
        && !base.contains("lock")
        && !base.contains("-writer")
        && !base.contains("reindex")
}

fn open_bits(meta: &Metadata) -> u32 {
    meta.mode() & 0o077
}

fn affected(e: &Entry) -> Affected {
    Affected {
        path: e.path.clone(),
        mode: Some(e.meta.mode() & 0o7777),
        secrets: BTreeMap::new(),
    }
}

/// Builds one grouped permission finding, when `items` is not empty.
fn group(
    check: &'static str,
    severity: Severity,
    path: PathBuf,
    items: Vec<Affected>,
    (one, many): (&str, &str),
    hint: &str,
) -> Option<Finding> {
    if items.is_empty() {
        return None;
    }
    let modes: std::collections::BTreeSet<String> = items
        .iter()
        .filter_map(|a| a.mode.map(|m| format!("{m:04o}")))
        .collect();
    let modes: Vec<String> = modes.into_iter().collect();
    let (detail, path) = if items.len() == 1 {
        (
            format!("{one} is open to group/others (mode {})", modes.join(", ")),
            items[0].path.clone(),
        )
    } else {
        (
            format!(
                "{} {many} are open to group/others (modes {})",
                items.len(),
                modes.join(", ")
            ),
            path,
        )
    };
    let mut f = Finding::new(check, severity, path, detail, hint).with_fix(SafeFix::Chmod);
    f.files = items;
    Some(f)
}

/// Permission findings: the state dir, directories and files that hold secrets.
pub(crate) fn permission_findings(tree: &Tree, out: &mut Vec<Finding>) {
    let root_mode = tree.root_meta.mode() & 0o7777;
    if root_mode & 0o077 != 0 {
        let severity = if root_mode & 0o002 != 0 {
            Severity::Critical
        } else {
            Severity::High
        };
        let mut f = Finding::new(
            "fs.state_dir.perms",
            severity,
            &tree.root,
            format!("the state directory is open to group/others (mode {root_mode:04o})"),
            "`moltvault audit --fix` sets it to 0700 (or run `chmod 700` on it).",
        )
        .with_fix(SafeFix::Chmod);
        f.files = vec![Affected {
            path: tree.root.clone(),
            mode: Some(root_mode),
            secrets: BTreeMap::new(),
        }];
        out.push(f);
    }
    // Inside a private state dir an open mode is defence in depth; otherwise it is a leak.
    let inner = if tree.root_private() {
        Severity::Medium
    } else {
        Severity::High
    };

    let dirs: Vec<Affected> = tree
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir { secret_area: true } && open_bits(&e.meta) != 0)
        .map(affected)
        .collect();
    out.extend(group(
        "fs.dir.perms",
        if tree.root_private() {
            Severity::Low
        } else {
            Severity::Medium
        },
        tree.root.clone(),
        dirs,
        ("a directory holding secrets", "directories holding secrets"),
        "`moltvault audit --fix` sets them to 0700.",
    ));

    // Transcripts, grouped by their sessions directory.
    let mut by_dir: BTreeMap<PathBuf, Vec<Affected>> = BTreeMap::new();
    for e in &tree.entries {
        if let EntryKind::File(k) = e.kind
            && k.is_session_data()
            && open_bits(&e.meta) != 0
        {
            let dir = e.path.parent().unwrap_or(&tree.root).to_path_buf();
            by_dir.entry(dir).or_default().push(affected(e));
        }
    }
    for (dir, items) in by_dir {
        out.extend(group(
            "fs.transcript.perms",
            inner,
            dir,
            items,
            ("a transcript", "transcripts"),
            "`moltvault audit --fix` sets them to 0600 (the gateway creates transcripts with the default umask).",
        ));
    }

    let backups: Vec<Affected> = tree
        .entries
        .iter()
        .filter(|e| {
            e.kind == EntryKind::File(FileKind::ConfigBackup) && open_bits(&e.meta) & 0o044 != 0
        })
        .map(affected)
        .collect();
    let backup_sev = if backups
        .iter()
        .all(|a| parent_private(&a.path) && tree.root_private())
    {
        inner
    } else {
        Severity::High
    };
    out.extend(group(
        "fs.config_backup.perms",
        backup_sev,
        tree.root.clone(),
        backups,
        ("a config backup", "config backups"),
        "Config backups hold the same secrets as the config: `moltvault audit --fix` sets them to 0600.",
    ));

    let stores: Vec<Affected> = tree
        .entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::File(
                    FileKind::Config | FileKind::SecretStore | FileKind::ModelsJson | FileKind::Log
                )
            ) && open_bits(&e.meta) != 0
        })
        .map(affected)
        .collect();
    out.extend(group(
        "fs.secret_file.perms",
        inner,
        tree.root.clone(),
        stores,
        ("a file holding secrets", "files holding secrets"),
        "`moltvault audit --fix` sets them to 0600.",
    ));
}

fn parent_private(path: &Path) -> bool {
    path.parent()
        .and_then(|p| fs::metadata(p).ok())
        .is_some_and(|m| m.mode() & 0o077 == 0)
}

/// Symlinks inside the state dir whose target lies outside it (never followed, never fixed).
pub(crate) fn symlink_findings(tree: &Tree, out: &mut Vec<Finding>) {
    let mut expected = Vec::new();
    for e in tree.entries.iter().filter(|e| e.kind == EntryKind::Symlink) {
        let Ok(target) = fs::read_link(&e.path) else {
            continue;
        };
        let parent = e.path.parent().unwrap_or(&tree.root);
        let resolved = lexical_join(parent, &target);
        if resolved.starts_with(&tree.root) {
            continue;
        }
        let rel = e.path.strip_prefix(&tree.root).unwrap_or(&e.path);
        let in_plugin_skills = rel
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == "plugin-skills");
        if in_plugin_skills {
            // The gateway links bundled plugin skills out of its npm install: expected.
            expected.push(Affected {
                path: e.path.clone(),
                mode: None,
                secrets: BTreeMap::new(),
            });
            continue;
        }
        out.push(Finding::new(
            "fs.symlink.outside",
            Severity::Medium,
            &e.path,
            format!(
                "symlink points outside the state directory, to {}",
                resolved.display()
            ),
            "Check that the target is meant to be shared; moltvault never follows it (back up, redact and seal skip it). Replace it with the real file if it belongs to the gateway.",
        ));
    }
    if !expected.is_empty() {
        let mut f = Finding::new(
            "fs.symlink.plugin_skills",
            Severity::Info,
            tree.root.join("plugin-skills"),
            format!(
                "{} plugin skill link(s) point into the gateway's install (expected)",
                expected.len()
            ),
            "Nothing to do; moltvault does not follow them.",
        );
        f.files = expected;
        out.push(f);
    }
}

/// Joins `target` to `base` and removes `.`/`..` without touching the file system.
pub(crate) fn lexical_join(base: &Path, target: &Path) -> PathBuf {
    let joined = if target.is_absolute() {
        target.to_path_buf()
    } else {
        base.join(target)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
