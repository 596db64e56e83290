//! Leftovers of a backup or restore that was killed (`kill -9`, power loss), and the locks that
//! tell them apart from the files of a run still in progress.
//!
//! Every temp file and directory a backup or restore creates is held under an exclusive
//! `flock(2)` for as long as the process lives; the kernel drops the lock when the process dies,
//! however it dies. So a leftover is *provably stale* when its name has one of our patterns and
//! its lock can be taken. A fresh one, caught in the microseconds between its creation and its
//! lock, is also recent: anything modified in the last [`STALE_AFTER`] is left alone.
//!
//! | pattern (hidden, beside) | made by | on the next run |
//! |---|---|---|
//! | `.moltvault-….tar.zst.age.mvtmp-*` (backup dir) | `backup` to a local dir: the partial backup | removed |
//! | `.moltvault-backup-*` (moltvault's temp dir) | `backup`: SQLite copies | removed |
//! | `.<dir>.moltvault-restore-*` (target's parent) | `restore`: the staging tree, before the swap | removed |
//! | `.<dir>.moltvault-swap-*` (target's parent) | `restore`: a complete tree during the swap | renamed `<dir>.interrupted-restore-<time>` |

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How old (by mtime) an unlocked leftover must be before it is touched.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Takes an exclusive `flock(2)` on `f` without waiting; `false` if another process holds one.
///
/// # Errors
/// Fails if the lock call fails for another reason than contention.
pub(crate) fn try_lock(f: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Opens a directory (never through a symlink) to lock it.
pub(crate) fn open_dir(p: &Path) -> io::Result<File> {
    use rustix::fs::OFlags;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::DIRECTORY | OFlags::NOFOLLOW).bits() as i32)
        .open(p)
}

/// Opens `p` (a file or a directory, never a symlink) and locks it, if it is an unlocked
/// leftover older than [`STALE_AFTER`]; returns the locked handle, to hold while removing it.
fn lock_if_stale(p: &Path, want_dir: bool) -> Option<File> {
    let meta = fs::symlink_metadata(p).ok()?;
    if meta.is_dir() != want_dir || (!want_dir && !meta.is_file()) {
        return None;
    }
    let age = SystemTime::now()
        .duration_since(meta.modified().ok()?)
        .unwrap_or_default();
    if age < STALE_AFTER {
        return None;
    }
    let f = if want_dir {
        open_dir(p).ok()?
    } else {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(p)
            .ok()?
    };
    try_lock(&f).ok()?.then_some(f)
}

/// The names in `dir` that start with `prefix` and contain `infix`.
fn matching(dir: &Path, prefix: &str, infix: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(prefix) && n[prefix.len()..].contains(infix))
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Removes the partial backups (`.moltvault-….tar.zst.age.mvtmp-*`) that killed backups left
/// in the local backup directory `dir`; returns what was removed.
pub(crate) fn clean_backup_temps(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for p in matching(dir, ".moltvault-", ".tar.zst.age.mvtmp-") {
        if let Some(_lock) = lock_if_stale(&p, false)
            && fs::remove_file(&p).is_ok()
        {
            removed.push(p);
        }
    }
    if !removed.is_empty() {
        let _ = crate::fsio::sync_dir(dir);
    }
    removed
}

/// Removes the private temp directories (SQLite copies) that killed backups left in
/// `temp_dir`; returns what was removed.
pub(crate) fn clean_sqlite_temps(temp_dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for p in matching(temp_dir, ".moltvault-backup-", "") {
        if let Some(_lock) = lock_if_stale(&p, true)
            && fs::remove_dir_all(&p).is_ok()
        {
            removed.push(p);
        }
    }
    removed
}

/// A leftover of a killed restore that a later restore cleaned up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    /// The leftover's path.
    pub path: PathBuf,
    /// Where it was moved (a complete tree, kept); `None` when it was removed (a staging tree).
    pub kept_as: Option<PathBuf>,
}

/// Cleans what killed restores of `<parent>/<name>` left: staging trees are removed, complete
/// trees caught mid-swap are renamed `<name>.interrupted-restore-<stamp>` (they hold either the
/// previous tree or the restored one; nothing is deleted that might be the only copy).
pub(crate) fn clean_restore_leftovers(parent: &Path, name: &str, stamp: &str) -> Vec<Leftover> {
    let mut done = Vec::new();
    let prefix = format!(".{name}.moltvault-");
    for p in matching(parent, &prefix, "") {
        let rest = &p.file_name().and_then(|n| n.to_str()).unwrap_or_default()[prefix.len()..];
        if rest.starts_with("restore-") {
            if let Some(_lock) = lock_if_stale(&p, true) {
                let _ = super::reader::make_writable(&p);
                if fs::remove_dir_all(&p).is_ok() {
                    done.push(Leftover {
                        path: p,
                        kept_as: None,
                    });
                }
            }
        } else if rest.starts_with("swap-")
            && let Some(_lock) = lock_if_stale(&p, true)
        {
            let mut to = parent.join(format!("{name}.interrupted-restore-{stamp}"));
            let mut n = 1;
            while fs::symlink_metadata(&to).is_ok() {
                n += 1;
                to = parent.join(format!("{name}.interrupted-restore-{stamp}-{n}"));
            }
            if fs::rename(&p, &to).is_ok() {
                done.push(Leftover {
                    path: p,
                    kept_as: Some(to),
                });
            }
        }
    }
    if !done.is_empty() {
        let _ = crate::fsio::sync_dir(parent);
    }
    done
}
