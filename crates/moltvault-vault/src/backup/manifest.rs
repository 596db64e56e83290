//! The backup manifest: the first member of every backup archive, listing each entry's path,
//! type, size, mode and SHA-256. Parsing is strict because the bytes come from an untrusted file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::BackupError;

/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "moltvault-backup";
/// The manifest version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// The most entries a manifest may list.
pub const MAX_ENTRIES: usize = 1_000_000;
/// The longest entry path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// The deepest entry path accepted, in components.
pub const MAX_DEPTH: usize = 64;

/// What a manifest entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (stored as a link, never followed).
    Symlink,
}

/// One entry of the backed-up tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Path relative to the backed-up directory, `/`-separated.
    pub path: String,
    /// What the entry is.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits as four octal digits ("0600").
    pub mode: String,
    /// Modification time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Size in bytes (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Lower-case hex SHA-256 of the content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Link target (symlinks only); relative and inside the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How the content was captured when it was not a plain read ("sqlite-online-backup",
    /// "jsonl-complete-lines").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
}

impl ManifestEntry {
    /// Returns the permission bits as a number.
    pub fn mode_bits(&self) -> u32 {
        parse_mode(&self.mode).unwrap_or(0o600)
    }
}

/// Something left out of the backup, with the reason (a socket, a FIFO, a device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// Path relative to the backed-up directory.
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// The manifest of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for this code.
    pub version: u32,
    /// The moltvault version that wrote it.
    pub created_by: String,
    /// UTC creation time, RFC 3339.
    pub created: String,
    /// Host name of the machine backed up.
    pub host: String,
    /// File name of the backed-up directory (".openclaw").
    pub source_name: String,
    /// Mode of the backed-up directory itself.
    pub root_mode: String,
    /// Every entry, in archive order (a directory before what it holds).
    pub entries: Vec<ManifestEntry>,
    /// What was not backed up, and why.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

impl Manifest {
    /// Parses and validates a manifest from untrusted bytes.
    ///
    /// # Errors
    /// Fails with [`BackupError::Manifest`] if the bytes are not a valid version-1 manifest:
    /// bad JSON, unknown fields, unsafe or duplicate paths, an entry whose parent is not a
    /// directory entry, a symlink leaving the tree, a missing size or hash.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BackupError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(bad("manifest is larger than 64 MiB"));
        }
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("manifest is not valid JSON: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// Serializes the manifest as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// Sum of the sizes of every file entry.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| e.size)
            .fold(0u64, u64::saturating_add)
    }

    /// Checks every invariant [`Manifest::parse`] promises.
    ///
    /// # Errors
    /// See [`Manifest::parse`].
    pub fn validate(&self) -> Result<(), BackupError> {
        if self.format != FORMAT_NAME {
            return Err(bad(format!(
                "not a moltvault backup manifest ({:?})",
                self.format
            )));
        }
        if self.version != FORMAT_VERSION {
            return Err(bad(format!(
                "manifest version {} is not supported (this moltvault reads version {FORMAT_VERSION})",
                self.version
            )));
        }
        parse_mode(&self.root_mode).ok_or_else(|| bad("root_mode is not an octal mode"))?;
        if self.entries.len() > MAX_ENTRIES {
            return Err(bad("manifest lists more than 1,000,000 entries"));
        }
        let mut kinds: BTreeMap<&str, EntryKind> = BTreeMap::new();
        for e in &self.entries {
            check_rel_path(&e.path).map_err(|r| bad(format!("entry {:?}: {r}", e.path)))?;
            parse_mode(&e.mode).ok_or_else(|| bad(format!("entry {:?}: bad mode", e.path)))?;
            if let Some((parent, _)) = e.path.rsplit_once('/')
                && kinds.get(parent) != Some(&EntryKind::Dir)
            {
                return Err(bad(format!(
                    "entry {:?} comes before, or without, a directory entry for its parent",
                    e.path
                )));
            }
            match e.kind {
                EntryKind::File => {
                    if e.size.is_none() || e.target.is_some() {
                        return Err(bad(format!(
                            "file entry {:?} needs a size and no target",
                            e.path
                        )));
                    }
                    let ok = e.sha256.as_deref().is_some_and(|h| {
                        h.len() == 64
                            && h.bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                    if !ok {
                        return Err(bad(format!("file entry {:?} has no valid sha256", e.path)));
                    }
                }
                EntryKind::Dir => {
                    if e.size.is_some() || e.sha256.is_some() || e.target.is_some() {
                        return Err(bad(format!("directory entry {:?} has file fields", e.path)));
                    }
                }
                EntryKind::Symlink => {
                    if e.size.is_some() || e.sha256.is_some() {
                        return Err(bad(format!("symlink entry {:?} has file fields", e.path)));
                    }
                    let t = e
                        .target
                        .as_deref()
                        .ok_or_else(|| bad(format!("symlink entry {:?} has no target", e.path)))?;
                    check_link_target(&e.path, t)
                        .map_err(|r| bad(format!("symlink {:?} -> {t:?}: {r}", e.path)))?;
                }
            }
            if kinds.insert(&e.path, e.kind).is_some() {
                return Err(bad(format!("entry {:?} is listed twice", e.path)));
            }
        }
        Ok(())
    }

    /// The set of paths listed, for membership checks.
    pub fn paths(&self) -> BTreeSet<&str> {
        self.entries.iter().map(|e| e.path.as_str()).collect()
    }
}

fn bad(reason: impl Into<String>) -> BackupError {
    BackupError::Manifest {
        reason: reason.into(),
    }
}

/// Parses a four-digit octal mode ("0644"); only permission bits, no setuid/setgid/sticky.
pub fn parse_mode(s: &str) -> Option<u32> {
    if s.len() != 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    let m = u32::from_str_radix(s, 8).ok()?;
    (m <= 0o777).then_some(m)
}

/// Formats permission bits as four octal digits, dropping setuid/setgid/sticky.
pub fn format_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o777)
}

/// Checks that `p` is a safe relative path: UTF-8 `/`-separated normal components only.
///
/// # Errors
/// Returns the reason as text.
pub fn check_rel_path(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty path");
    }
    if p.len() > MAX_PATH_BYTES {
        return Err("path is too long");
    }
    if p.contains('\0') {
        return Err("path contains a NUL byte");
    }
    if p.starts_with('/') {
        return Err("absolute path");
    }
    if p.ends_with('/') || p.contains("//") {
        return Err("path has an empty component");
    }
    let mut depth = 0;
    for part in p.split('/') {
        if part == ".." {
            return Err("path contains `..`");
        }
        if part == "." {
            return Err("path contains `.`");
        }
        depth += 1;
    }
    if depth > MAX_DEPTH {
        return Err("path is too deep");
    }
    // Belt and braces: the platform's own parse must agree that every component is normal.
    if !Path::new(p)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err("path is not a plain relative path");
    }
    Ok(())
}

/// Checks that a symlink at `link` pointing to `target` stays inside the tree: `target` is
/// relative, made of leading `..` components then normal ones, and never climbs above the root.
///
/// Because every directory on the way down is a real directory or another such link, the
/// link resolves inside the tree however the links chain.
///
/// # Errors
/// Returns the reason as text.
pub fn check_link_target(link: &str, target: &str) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("empty target");
    }
    if target.len() > MAX_PATH_BYTES || target.contains('\0') {
        return Err("target is too long or contains NUL");
    }
    if target.starts_with('/') {
        return Err("absolute target leaves the tree");
    }
    let parent_depth = link.matches('/').count();
    let mut ups = 0;
    let mut seen_normal = false;
    for part in target.split('/') {
        match part {
            "" => return Err("target has an empty component"),
            "." => return Err("target contains `.`"),
            ".." if seen_normal => return Err("target has `..` after a name"),
            ".." => ups += 1,
            _ => seen_normal = true,
        }
    }
    if ups > parent_depth {
        return Err("target leaves the tree");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: EntryKind::File,
            mode: "0600".into(),
            mtime: Some(1),
            size: Some(3),
            sha256: Some("a".repeat(64)),
            target: None,
            captured: None,
        }
    }

    fn dir(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: "0700".into(),
            mtime: None,
            size: None,
            sha256: None,
            target: None,
            captured: None,
        }
    }

    fn link(path: &str, target: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: EntryKind::Symlink,
            mode: "0777".into(),
            mtime: None,
            size: None,
            sha256: None,
            target: Some(target.into()),
            captured: None,
        }
    }

    fn manifest(entries: Vec<ManifestEntry>) -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            created_by: "moltvault test".into(),
            created: "2026-11-25T20:00:00Z".into(),
            host: "h".into(),
            source_name: ".openclaw".into(),
            root_mode: "0700".into(),
            entries,
            skipped: vec![],
        }
    }

    fn reject(entries: Vec<ManifestEntry>) -> String {
        let m = manifest(entries);
        match Manifest::parse(&m.to_json()) {
            Err(BackupError::Manifest { reason }) => reason,
            other => panic!("expected a manifest error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_well_formed_tree() {
        let m = manifest(vec![
            dir("agents"),
            dir("agents/main"),
            file("agents/main/a.jsonl"),
            link("agents/current", "main"),
            link("agents/main/up", "../../openclaw.json"),
            file("openclaw.json"),
        ]);
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn rejects_unsafe_paths_and_shapes() {
        assert!(reject(vec![file("../x")]).contains("`..`"));
        assert!(reject(vec![file("/etc/passwd")]).contains("absolute"));
        assert!(reject(vec![file("a/./b")]).contains("`.`"));
        assert!(reject(vec![file("a//b")]).contains("empty component"));
        assert!(reject(vec![file("x"), file("x")]).contains("twice"));
        assert!(reject(vec![file("d/x")]).contains("parent"));
        assert!(reject(vec![link("l", "x"), file("l/x")]).contains("parent"));
        assert!(reject(vec![link("l", "/etc")]).contains("absolute"));
        assert!(reject(vec![link("l", "..")]).contains("leaves the tree"));
        assert!(reject(vec![dir("d"), link("d/l", "../../x")]).contains("leaves the tree"));
        assert!(reject(vec![dir("d"), link("d/l", "a/../../..")]).contains("after a name"));
        let mut f = file("x");
        f.sha256 = Some("zz".into());
        assert!(reject(vec![f]).contains("sha256"));
        let mut f = file("x");
        f.mode = "4755".into();
        assert!(reject(vec![f]).contains("mode"));
    }

    #[test]
    fn rejects_unknown_fields_and_versions() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&manifest(vec![file("x")]).to_json()).unwrap();
        v["entries"][0]["hardlink"] = "y".into();
        assert!(Manifest::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut m = manifest(vec![]);
        m.version = 2;
        assert!(Manifest::parse(&m.to_json()).is_err());
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn manifest_round_trips(names in proptest::collection::btree_set(arb_name(), 0..20),
                                sizes in proptest::collection::vec(0u64..u64::MAX, 20),
                                modes in proptest::collection::vec(0u32..0o777, 20)) {
            let mut entries = vec![dir("d")];
            for (i, n) in names.iter().enumerate() {
                let mut f = file(&format!("d/{n}"));
                f.size = Some(sizes[i]);
                f.mode = format_mode(modes[i]);
                entries.push(f);
            }
            entries.push(link("l", "d"));
            let m = manifest(entries);
            let back = Manifest::parse(&m.to_json()).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_json(), m.to_json());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::parse(&bytes);
        }

        #[test]
        fn accepted_link_targets_stay_inside(depth in 0usize..4, ups in 0usize..6,
                                             names in proptest::collection::vec(arb_name(), 0..3)) {
            let link: Vec<String> = (0..=depth).map(|i| format!("d{i}")).collect();
            let link = link.join("/");
            let mut t: Vec<String> = std::iter::repeat_n("..".to_string(), ups).collect();
            t.extend(names.iter().cloned());
            if t.is_empty() { return Ok(()); }
            let target = t.join("/");
            let ok = check_link_target(&link, &target).is_ok();
            // Lexical resolution from the link's parent must never go above the root.
            let mut level = depth as isize;
            let mut inside = true;
            for p in &t { if p == ".." { level -= 1; if level < 0 { inside = false; } } }
            prop_assert!(!ok || inside);
        }
    }
}
