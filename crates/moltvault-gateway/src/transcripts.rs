//! Transcript files on disk: live JSONL, trajectory sidecars, archives and sealed copies.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::discover::Gateway;
use crate::error::{Error, Result};

/// What a transcript file is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TranscriptKind {
    /// `<sid>.jsonl` (also `<sid>-topic-<n>.jsonl`): a transcript the gateway may still append to.
    Jsonl,
    /// `<sid>.trajectory.jsonl`: the trajectory sidecar (2026.4.22 – 2026.7.x).
    Trajectory,
    /// `<sid>.jsonl.deleted.<ts>`: archived by a session delete.
    Deleted,
    /// `<sid>.jsonl.deleted.<ts>.<hash>.zst`: zstd archive left by a 2026.9 session delete.
    DeletedZst,
    /// `<sid>.jsonl.reset.<ts>`: archived by a session reset.
    Reset,
    /// `<sid>.jsonl.bak.<ts>`: backup copy made by the gateway.
    Bak,
    /// `*.age`: sealed by moltvault; [`TranscriptFile::sealed_of`] says what is inside.
    Sealed,
    /// `sessions/cold/<sha256>.jsonl.zst`: an immutable cold archive (2026.8+).
    Cold,
}

impl TranscriptKind {
    /// Whether the plaintext of this kind is zstd-compressed.
    pub fn is_zstd(self) -> bool {
        matches!(self, TranscriptKind::DeletedZst | TranscriptKind::Cold)
    }

    /// A short lowercase name for reports (`jsonl`, `trajectory`, `deleted-zst`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TranscriptKind::Jsonl => "jsonl",
            TranscriptKind::Trajectory => "trajectory",
            TranscriptKind::Deleted => "deleted",
            TranscriptKind::DeletedZst => "deleted-zst",
            TranscriptKind::Reset => "reset",
            TranscriptKind::Bak => "bak",
            TranscriptKind::Sealed => "sealed",
            TranscriptKind::Cold => "cold",
        }
    }
}

/// One transcript file of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptFile {
    /// The file.
    pub path: PathBuf,
    /// The agent id.
    pub agent: String,
    /// The session id from the file name (the sha256 name for cold archives whose session is
    /// not known).
    pub session_id: String,
    /// What the file is.
    pub kind: TranscriptKind,
    /// For [`TranscriptKind::Sealed`]: the kind of the plaintext file that was sealed.
    pub sealed_of: Option<TranscriptKind>,
}

impl TranscriptFile {
    /// Opens the plaintext JSONL of this file, decompressing zstd archives on the fly.
    ///
    /// # Errors
    /// [`Error::Sealed`] for sealed files (open those through the vault), I/O errors otherwise.
    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        if self.kind == TranscriptKind::Sealed {
            return Err(Error::Sealed {
                path: self.path.clone(),
            });
        }
        let f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if self.kind.is_zstd() {
            let d = zstd::stream::read::Decoder::new(f).map_err(|e| Error::io(&self.path, e))?;
            Ok(Box::new(d))
        } else {
            Ok(Box::new(BufReader::new(f)))
        }
    }
}

/// Classifies a file name found in a sessions directory; `None` for non-transcripts
/// (`sessions.json`, `*.lock`, `*.trajectory-path.json`, temp files, ...).
pub fn classify(file_name: &str) -> Option<(TranscriptKind, String, Option<TranscriptKind>)> {
    if file_name.starts_with('.') {
        return None;
    }
    if let Some(inner) = file_name.strip_suffix(".age") {
        let (kind, sid, _) = classify(inner)?;
        return Some((TranscriptKind::Sealed, sid, Some(kind)));
    }
    let idx = file_name.find(".jsonl")?;
    let (stem, rest) = (&file_name[..idx], &file_name[idx + ".jsonl".len()..]);
    if stem.is_empty() {
        return None;
    }
    let kind = if rest.is_empty() {
        if let Some(sid) = stem.strip_suffix(".trajectory") {
            return Some((TranscriptKind::Trajectory, sid.to_owned(), None));
        }
        TranscriptKind::Jsonl
    } else if let Some(r) = rest.strip_prefix(".deleted.") {
        if r.ends_with(".zst") {
            TranscriptKind::DeletedZst
        } else {
            TranscriptKind::Deleted
        }
    } else if rest.starts_with(".reset.") {
        TranscriptKind::Reset
    } else if rest.starts_with(".bak.") || rest == ".bak" {
        TranscriptKind::Bak
    } else {
        // `.lock`, `.tmp`, `.moltvault-*` and anything unknown.
        return None;
    };
    let sid = stem.strip_suffix(".trajectory").unwrap_or(stem);
    Some((kind, sid.to_owned(), None))
}

fn cold_name(name: &str) -> Option<(TranscriptKind, String, Option<TranscriptKind>)> {
    if let Some(inner) = name.strip_suffix(".age") {
        let (_, sid, _) = cold_name(inner)?;
        return Some((TranscriptKind::Sealed, sid, Some(TranscriptKind::Cold)));
    }
    let stem = name.strip_suffix(".jsonl.zst")?;
    (!stem.is_empty() && !stem.starts_with('.'))
        .then(|| (TranscriptKind::Cold, stem.to_owned(), None))
}

impl Gateway {
    /// Lists every transcript file of every agent (sorted by path).
    ///
    /// Symlinks are skipped: moltvault never follows one it did not expect.
    ///
    /// # Errors
    /// I/O errors while listing a sessions directory (a missing one is not an error).
    pub fn transcript_files(&self) -> Result<Vec<TranscriptFile>> {
        let mut out = Vec::new();
        for agent in self.agents() {
            let dir = self.sessions_dir(&agent);
            list_dir(&dir, &agent, false, &mut out)?;
            list_dir(&dir.join("cold"), &agent, true, &mut out)?;
            relocated_trajectories(&dir, &agent, &mut out);
        }
        self.name_cold_archives(&mut out);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Fills in the real session id of cold archives from the agent database, when known.
    fn name_cold_archives(&self, files: &mut [TranscriptFile]) {
        if !files.iter().any(|f| f.kind == TranscriptKind::Cold) {
            return;
        }
        for agent in self.agents() {
            let db = self.agent_dir(&agent).join(crate::sqlite::AGENT_DB_NAME);
            let Ok(db) = crate::sqlite::AgentDb::open_read_only(&db) else {
                continue;
            };
            let Ok(names) = db.cold_archive_names() else {
                continue;
            };
            for f in files
                .iter_mut()
                .filter(|f| f.agent == agent && f.kind == TranscriptKind::Cold)
            {
                let name = f.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if let Some((_, sid)) = names.iter().find(|(n, _)| n == name) {
                    f.session_id.clone_from(sid);
                }
            }
        }
    }
}

/// Adds trajectory sidecars moved out of the sessions dir (`OPENCLAW_TRAJECTORY_DIR`), found
/// through the `<sid>.trajectory-path.json` pointers the gateway leaves beside transcripts.
/// Only regular files (not symlinks) whose name is `<sid>.trajectory.jsonl` are taken.
fn relocated_trajectories(dir: &Path, agent: &str, out: &mut Vec<TranscriptFile>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(sid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".trajectory-path.json"))
        else {
            continue;
        };
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(file) = v.get("runtimeFile").and_then(|f| f.as_str()) else {
            continue;
        };
        let file = PathBuf::from(file);
        let expected = format!("{sid}.trajectory.jsonl");
        let named_right = file.file_name().and_then(|n| n.to_str()) == Some(expected.as_str());
        let regular = fs::symlink_metadata(&file).is_ok_and(|m| m.is_file());
        if !(named_right && regular && file.is_absolute()) || file.parent() == Some(dir) {
            continue;
        }
        if out.iter().any(|f| f.path == file) {
            continue;
        }
        out.push(TranscriptFile {
            path: file,
            agent: agent.to_owned(),
            session_id: sid.to_owned(),
            kind: TranscriptKind::Trajectory,
            sealed_of: None,
        });
    }
}

fn list_dir(dir: &Path, agent: &str, cold: bool, out: &mut Vec<TranscriptFile>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if !ft.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let classified = if cold {
            cold_name(name)
        } else {
            classify(name)
        };
        let Some((kind, sid, sealed_of)) = classified else {
            continue;
        };
        out.push(TranscriptFile {
            path: entry.path(),
            agent: agent.to_owned(),
            session_id: sid,
            kind,
            sealed_of,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TranscriptKind as K;

    #[test]
    fn names_classify() {
        let c = classify;
        assert_eq!(c("abc.jsonl"), Some((K::Jsonl, "abc".into(), None)));
        assert_eq!(
            c("abc-topic-7.jsonl"),
            Some((K::Jsonl, "abc-topic-7".into(), None))
        );
        assert_eq!(
            c("abc.trajectory.jsonl"),
            Some((K::Trajectory, "abc".into(), None))
        );
        assert_eq!(
            c("1d8e.jsonl.deleted.2026-11-25T18-16-56.790Z.e8ca0931.zst"),
            Some((K::DeletedZst, "1d8e".into(), None))
        );
        assert_eq!(
            c("abc.jsonl.deleted.2026-01-01T00-00-00.000Z"),
            Some((K::Deleted, "abc".into(), None))
        );
        assert_eq!(
            c("abc.jsonl.reset.2026-01-01T00-00-00.000Z"),
            Some((K::Reset, "abc".into(), None))
        );
        assert_eq!(
            c("abc.jsonl.bak.1700000000"),
            Some((K::Bak, "abc".into(), None))
        );
        assert_eq!(
            c("abc.jsonl.age"),
            Some((K::Sealed, "abc".into(), Some(K::Jsonl)))
        );
        assert_eq!(
            c("abc.trajectory.jsonl.age"),
            Some((K::Sealed, "abc".into(), Some(K::Trajectory)))
        );
        for not in [
            "sessions.json",
            "abc.jsonl.lock",
            "abc.trajectory-path.json",
            ".abc.jsonl.mvtmp-0011",
            "abc.txt",
        ] {
            assert_eq!(c(not), None, "{not}");
        }
    }
}
