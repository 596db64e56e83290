//! The residue sweep: after rotation, find the files that still hold an old value (by literal
//! search when the value is still in memory, else by keyed fingerprint of token-shaped
//! substrings) and optionally redact them in place.

use std::path::{Path, PathBuf};

use regex::bytes::Regex;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Result, read_err};
use crate::fingerprint::{Fingerprint, FingerprintKey};

/// Files larger than this are reported as skipped, not searched.
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// An old value to look for.
pub struct OldValue {
    /// The item it belonged to.
    pub item: String,
    /// The item's provider id (names the placeholder rule: `rotated-<provider>`).
    pub provider: String,
    /// Its fingerprint.
    pub fp: Fingerprint,
    /// The value, when still held in memory (a resumed run may only know the fingerprint).
    pub value: Option<SecretString>,
}

impl std::fmt::Debug for OldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OldValue")
            .field("item", &self.item)
            .field("fp", &self.fp)
            .field("value", &self.value.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// A file holding copies of an old value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residue {
    /// The file.
    pub path: PathBuf,
    /// The item.
    pub item: String,
    /// How many copies.
    pub count: usize,
    /// Whether it is a text file the sweep can redact (binary files, e.g. SQLite, are only
    /// reported).
    pub redactable: bool,
}

struct Matcher<'a> {
    olds: &'a [OldValue],
    literal: Option<Regex>,
    candidates: Regex,
    key: &'a FingerprintKey,
    need_fp: bool,
}

/// A match: byte span and index into `olds`.
type Span = (usize, usize, usize);

impl<'a> Matcher<'a> {
    fn new(olds: &'a [OldValue], key: &'a FingerprintKey) -> Self {
        let lits: Vec<String> = olds
            .iter()
            .filter_map(|o| o.value.as_ref())
            .map(|v| regex::escape(v.expose_secret()))
            .collect();
        let literal = (!lits.is_empty())
            .then(|| Regex::new(&lits.join("|")).expect("escaped literals compile"));
        Matcher {
            olds,
            literal,
            candidates: Regex::new(r"[A-Za-z0-9_\-.:+/=]{12,512}").expect("static regex"),
            key,
            need_fp: olds.iter().any(|o| o.value.is_none()),
        }
    }

    fn find(&self, hay: &[u8]) -> Vec<Span> {
        let mut spans = Vec::new();
        if let Some(re) = &self.literal {
            for m in re.find_iter(hay) {
                if let Some(i) = self.olds.iter().position(|o| {
                    o.value
                        .as_ref()
                        .is_some_and(|v| v.expose_secret().as_bytes() == m.as_bytes())
                }) {
                    spans.push((m.start(), m.end(), i));
                }
            }
        }
        if self.need_fp {
            for m in self.candidates.find_iter(hay) {
                let run = m.as_bytes();
                let mut cuts = vec![0];
                for (i, b) in run.iter().enumerate() {
                    if matches!(b, b'=' | b'/' | b':' | b'.') {
                        cuts.push(i);
                        cuts.push(i + 1);
                    }
                    if cuts.len() > 24 {
                        break;
                    }
                }
                cuts.push(run.len());
                'outer: for &a in &cuts {
                    for &b in cuts.iter().rev() {
                        if b <= a || b - a < 12 {
                            continue;
                        }
                        let fp = self.key.fingerprint(&run[a..b]);
                        if let Some(i) = self
                            .olds
                            .iter()
                            .position(|o| o.value.is_none() && o.fp == fp)
                        {
                            spans.push((m.start() + a, m.start() + b, i));
                            break 'outer;
                        }
                    }
                }
            }
        }
        spans.sort();
        spans.dedup_by(|b, a| b.0 < a.1);
        spans
    }
}

/// Searches `roots` (recursively, not following symlinks) and `files` for old values,
/// skipping paths under `exclude`.
///
/// # Errors
/// Fails when a directory cannot be listed or a file read.
pub fn find_residue(
    roots: &[PathBuf],
    files: &[PathBuf],
    exclude: &[PathBuf],
    olds: &[OldValue],
    key: &FingerprintKey,
) -> Result<Vec<Residue>> {
    let mut out = Vec::new();
    if olds.is_empty() {
        return Ok(out);
    }
    let m = Matcher::new(olds, key);
    let mut all = Vec::new();
    for r in roots {
        walk(r, exclude, &mut all)?;
    }
    for f in files {
        if f.is_file() && !all.contains(f) {
            all.push(f.clone());
        }
    }
    all.sort();
    for path in all {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| read_err(&path, e))?;
        if !meta.is_file() || meta.len() > MAX_FILE {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
        let spans = m.find(&bytes);
        if spans.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(&bytes).is_ok() && !bytes.contains(&0);
        let mut counts = std::collections::BTreeMap::new();
        for (_, _, i) in &spans {
            *counts.entry(*i).or_insert(0usize) += 1;
        }
        for (i, count) in counts {
            out.push(Residue {
                path: path.clone(),
                item: olds[i].item.clone(),
                count,
                redactable: text,
            });
        }
    }
    Ok(out)
}

/// Replaces every old value in a text file with `[REDACTED:rotated-<provider>:<fp8>]` (the
/// placeholder format of `moltvault redact`), atomically, keeping the
/// file's mode. Returns how many copies were replaced.
///
/// # Errors
/// Fails when the file cannot be read or written.
pub fn redact_file(path: &Path, olds: &[OldValue], key: &FingerprintKey) -> Result<usize> {
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let m = Matcher::new(olds, key);
    let spans = m.find(&bytes);
    if spans.is_empty() {
        return Ok(0);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut last = 0;
    for (a, b, i) in &spans {
        out.extend_from_slice(&bytes[last..*a]);
        out.extend_from_slice(
            format!(
                "[REDACTED:rotated-{}:{}]",
                olds[*i].provider,
                olds[*i].fp.fp8()
            )
            .as_bytes(),
        );
        last = *b;
    }
    out.extend_from_slice(&bytes[last..]);
    let opts = moltvault_vault::fsio::WriteOptions::like_existing(path)?;
    moltvault_vault::fsio::write_atomic(path, &out, opts)?;
    Ok(spans.len())
}

fn walk(dir: &Path, exclude: &[PathBuf], out: &mut Vec<PathBuf>) -> Result<()> {
    if exclude.iter().any(|e| dir.starts_with(e)) {
        return Ok(());
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_err(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let ft = entry.file_type().map_err(|e| read_err(&entry.path(), e))?;
        let p = entry.path();
        if ft.is_dir() {
            walk(&p, exclude, out)?;
        } else if ft.is_file() && !exclude.iter().any(|e| p.starts_with(e)) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_literal_and_by_fingerprint_and_redacts() {
        let d = tempfile::tempdir().unwrap();
        let k = FingerprintKey::from_bytes([3; 32]);
        let v1 = "first-old-secret-0123456789";
        let v2 = "second-old-secret-abcdefghij";
        let f = d.path().join("t.jsonl");
        std::fs::write(
            &f,
            format!("{{\"text\":\"KEY={v1} and {v2}.\"}}\n{{\"x\":\"{v1}\"}}\n"),
        )
        .unwrap();
        std::fs::write(d.path().join("clean.txt"), "nothing here").unwrap();
        let olds = vec![
            OldValue {
                item: "a".into(),
                provider: "generic".into(),
                fp: k.fingerprint(v1.as_bytes()),
                value: Some(SecretString::from(v1)),
            },
            OldValue {
                item: "b".into(),
                provider: "generic".into(),
                fp: k.fingerprint(v2.as_bytes()),
                value: None,
            },
        ];
        let r = find_residue(&[d.path().into()], &[], &[], &olds, &k).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].item.as_str(), r[0].count), ("a", 2));
        assert_eq!((r[1].item.as_str(), r[1].count), ("b", 1));
        assert_eq!(redact_file(&f, &olds, &k).unwrap(), 3);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(v1) && !text.contains(v2), "{text}");
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(
            find_residue(&[d.path().into()], &[], &[], &olds, &k)
                .unwrap()
                .is_empty()
        );
    }
}
