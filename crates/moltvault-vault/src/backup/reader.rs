//! Reading a backup: verify (decrypt, decompress, check every hash, write nothing) and restore
//! (the same checks while writing into a fresh 0700 staging directory, then an atomic swap).
//!
//! Nothing in the archive is trusted. The entry loop is ours, not `tar::Archive::unpack`: only
//! regular files, directories and in-tree symlinks named in the manifest are accepted, sizes
//! must match the manifest, the decompressed volume is capped relative to the manifest's sizes,
//! and the staging tree is used only after the age stream ended with a valid final chunk.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::manifest::{EntryKind, MAX_MANIFEST_BYTES, Manifest};
use super::{BackupError, BackupTarget, MANIFEST_MEMBER, Progress, STATE_PREFIX, glob_set};
use crate::fsio;

/// Caps applied while reading an untrusted backup.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes allowed beyond the manifest's file sizes and per-entry tar overhead.
    pub slack_bytes: u64,
    /// Tar overhead allowed per manifest entry (headers, long names, padding).
    pub per_entry_overhead: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            slack_bytes: 1 << 20,
            per_entry_overhead: 12 << 10,
        }
    }
}

/// What a verify found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// The backup's name.
    pub name: String,
    /// The manifest's creation time.
    pub created: String,
    /// The host it came from.
    pub host: String,
    /// Regular files checked.
    pub files: usize,
    /// Directories.
    pub dirs: usize,
    /// Symlinks.
    pub symlinks: usize,
    /// Bytes of file content checked.
    pub content_bytes: u64,
    /// Entries the backup had left out when it was made.
    pub skipped: usize,
    /// The manifest itself.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// Options for [`restore`].
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The directory to restore (replace) — the gateway state dir.
    pub target_dir: PathBuf,
    /// Globs of paths (relative to the backed-up dir) to restore; empty restores everything.
    pub only: Vec<String>,
    /// Check everything and report, writing nothing.
    pub dry_run: bool,
    /// The time the kept old tree is named after; now when `None`.
    pub time: Option<OffsetDateTime>,
    /// Caps on the untrusted archive.
    pub limits: Limits,
}

impl RestoreOptions {
    /// Restores the whole backup into `target_dir`.
    pub fn new(target_dir: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            target_dir: target_dir.into(),
            only: Vec::new(),
            dry_run: false,
            time: None,
            limits: Limits::default(),
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The verification of the whole backup.
    pub verified: VerifyReport,
    /// The directory restored.
    pub target: PathBuf,
    /// Files and symlinks written (or that would be, on a dry run).
    pub restored: Vec<String>,
    /// Where the previous tree (or the replaced files, with `only`) now lives.
    pub previous: Option<PathBuf>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Leftovers of earlier, killed restores of the same directory that were cleaned up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<super::leftovers::Leftover>,
}

/// Decrypts, decompresses and checks a backup on `target` without writing anything.
///
/// # Errors
/// Fails with [`BackupError::Decrypt`] if the identity does not open it, and with
/// [`BackupError::Corrupt`], [`BackupError::Unsafe`], [`BackupError::Manifest`] or
/// [`BackupError::HashMismatch`] if anything in it is wrong.
pub fn verify(
    target: &dyn BackupTarget,
    name: &str,
    identity: &dyn age::Identity,
    progress: &dyn Progress,
) -> Result<VerifyReport, BackupError> {
    let input = target.open(name)?;
    announce_size(target, name, progress);
    read_archive(
        input,
        name,
        identity,
        None,
        None,
        Limits::default(),
        progress,
    )
}

/// Restores a backup from `target` into `opts.target_dir`.
///
/// The backup is decrypted and checked into a fresh 0700 staging directory beside the target
/// (same filesystem); only when everything verified is it swapped in atomically
/// (`renameat2(RENAME_EXCHANGE)`), the old tree being kept as `<dir>.pre-restore-<time>`. With
/// `only`, the selected files are swapped in one by one (each atomically) and the files they
/// replace are moved under `<dir>.pre-restore-<time>/`. On any error the staging directory is
/// deleted and the target is untouched.
///
/// # Errors
/// The errors of [`verify`], plus I/O errors on the staging or target directory.
pub fn restore(
    target: &dyn BackupTarget,
    name: &str,
    identity: &dyn age::Identity,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, BackupError> {
    let only = if opts.only.is_empty() {
        None
    } else {
        Some(glob_set(&opts.only)?)
    };
    let dest = opts.target_dir.clone();
    let dest_name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            BackupError::io("restore into", &dest, io::Error::other("no directory name"))
        })?
        .to_string();
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(m) = fs::symlink_metadata(&dest) {
        if m.file_type().is_symlink() {
            return Err(fsio::FsError::Symlink(dest).into());
        }
        if !m.is_dir() {
            return Err(BackupError::io(
                "restore into",
                &dest,
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
    }
    let time = opts.time.unwrap_or_else(OffsetDateTime::now_utc);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = time
        .to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .expect("fixed format");
    // The target is locked for the whole restore: a second restore into it fails at once,
    // and after the swap the lock (which follows the inode) marks the old tree as in use.
    let dest_lock = if opts.dry_run {
        None
    } else {
        match super::leftovers::open_dir(&dest) {
            Ok(f) => {
                if !super::leftovers::try_lock(&f).map_err(|e| BackupError::io("lock", &dest, e))? {
                    return Err(BackupError::Busy(dest));
                }
                Some(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(BackupError::io("open", &dest, e)),
        }
    };
    let leftovers = if opts.dry_run {
        Vec::new()
    } else {
        super::leftovers::clean_restore_leftovers(&parent, &dest_name, &stamp)
    };
    let input = target.open(name)?;
    announce_size(target, name, progress);
    if opts.dry_run {
        let report = read_archive(
            input,
            name,
            identity,
            None,
            only.as_ref(),
            opts.limits,
            progress,
        )?;
        let restored = selected(report.manifest.as_ref(), only.as_ref());
        return Ok(RestoreReport {
            verified: report,
            target: dest,
            restored,
            previous: None,
            dry_run: true,
            leftovers,
        });
    }
    let staging = Staging::create(&parent, &dest_name)?;
    let report = read_archive(
        input,
        name,
        identity,
        Some(staging.path()),
        only.as_ref(),
        opts.limits,
        progress,
    )?;
    let manifest = report
        .manifest
        .as_ref()
        .expect("read_archive returns the manifest");
    let restored = selected(Some(manifest), only.as_ref());
    let mut previous = parent.join(format!("{dest_name}.pre-restore-{stamp}"));
    let mut n = 1;
    while fs::symlink_metadata(&previous).is_ok() {
        n += 1;
        previous = parent.join(format!("{dest_name}.pre-restore-{stamp}-{n}"));
    }
    let previous = match only {
        None => swap_whole(staging, &dest, &previous, &parent, dest_lock.as_ref())?,
        Some(_) => swap_selected(staging, manifest, &restored, &dest, &previous)?,
    };
    Ok(RestoreReport {
        verified: report,
        target: dest,
        restored,
        previous,
        dry_run: false,
        leftovers,
    })
}

/// Tells the progress callback how many (encrypted) bytes are coming, when the target knows.
fn announce_size(target: &dyn BackupTarget, name: &str, progress: &dyn Progress) {
    if let Ok(all) = target.list_names()
        && let Some((_, size)) = all.iter().find(|(n, _)| n == name)
    {
        progress.set_total(*size);
    }
}

fn selected(m: Option<&Manifest>, only: Option<&globset::GlobSet>) -> Vec<String> {
    m.map(|m| {
        m.entries
            .iter()
            .filter(|e| e.kind != EntryKind::Dir && only.is_none_or(|g| g.is_match(&e.path)))
            .map(|e| e.path.clone())
            .collect()
    })
    .unwrap_or_default()
}

/// A fresh private directory beside the target, locked (see [`super::leftovers`]) for as long
/// as this process lives, removed on drop unless taken.
struct Staging {
    path: Option<PathBuf>,
    /// `.<name>.moltvault-swap-<id>`: where the tree goes just before the swap.
    swap_name: PathBuf,
    _lock: fs::File,
}

impl Staging {
    fn create(parent: &Path, name: &str) -> Result<Staging, BackupError> {
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).map_err(|e| {
            BackupError::io("create staging in", parent, io::Error::other(e.to_string()))
        })?;
        let id = hex::encode(r);
        let p = parent.join(format!(".{name}.moltvault-restore-{id}"));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(|e| BackupError::io("create the staging directory", &p, e))?;
        let staging = Staging {
            _lock: super::leftovers::open_dir(&p)
                .map_err(|e| BackupError::io("open the staging directory", &p, e))?,
            path: Some(p),
            swap_name: parent.join(format!(".{name}.moltvault-swap-{id}")),
        };
        let p = staging.path();
        // Held until this process ends: the next run then knows this directory is stale.
        if !super::leftovers::try_lock(&staging._lock)
            .map_err(|e| BackupError::io("lock the staging directory", p, e))?
        {
            return Err(BackupError::io(
                "lock the staging directory",
                p,
                io::Error::from(io::ErrorKind::WouldBlock),
            ));
        }
        fs::set_permissions(p, fs::Permissions::from_mode(0o700))
            .map_err(|e| BackupError::io("set the mode of", p, e))?;
        Ok(staging)
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("staging present")
    }

    /// Renames the (verified, durable) staging tree to its swap name, still locked.
    fn move_to_swap_name(&mut self) -> Result<(), BackupError> {
        let from = self.path().to_path_buf();
        fs::rename(&from, &self.swap_name).map_err(|e| BackupError::io("rename", &from, e))?;
        self.path = Some(self.swap_name.clone());
        Ok(())
    }

    /// Gives up ownership: the directory is no longer removed on drop (the lock stays held
    /// until the handle is dropped).
    fn take(&mut self) -> PathBuf {
        self.path.take().expect("staging present")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = make_writable(p);
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Restored directories may be read-only (0500); removal needs them writable.
pub(crate) fn make_writable(p: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(p)?;
    if m.is_dir() {
        fs::set_permissions(p, fs::Permissions::from_mode(0o700))?;
        for e in fs::read_dir(p)? {
            make_writable(&e?.path())?;
        }
    }
    Ok(())
}

fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(io::Error::from)
}

/// Swaps the verified staging tree in for `dest`, keeping the old tree as `previous`.
///
/// The order, for `kill -9` at any instant: the staging tree is already durable (one
/// `syncfs` in [`finish_staging`]); it is renamed `.<dir>.moltvault-swap-<id>` (a crash leaves
/// a complete tree under that name, never deleted automatically); then exchanged with `dest`
/// in one atomic `renameat2(RENAME_EXCHANGE)` (a crash leaves the old or the new tree at
/// `dest`, never a mix or nothing, and the other one under the swap name); then the old tree
/// is renamed `previous` and the parent fsynced. The old tree is locked (`dest_lock`) from
/// before the exchange, so a concurrent run never mistakes it for a leftover.
fn swap_whole(
    mut staging: Staging,
    dest: &Path,
    previous: &Path,
    parent: &Path,
    dest_lock: Option<&fs::File>,
) -> Result<Option<PathBuf>, BackupError> {
    if dest_lock.is_none() && fs::symlink_metadata(dest).is_err() {
        let s = staging.take();
        fsio::rename_durably(&s, dest)?;
        return Ok(None);
    }
    staging.move_to_swap_name()?;
    match exchange(staging.path(), dest) {
        Ok(()) => {
            // The swap name now holds the old tree.
            let s = staging.take();
            fs::rename(&s, previous).map_err(|e| BackupError::io("rename", &s, e))?;
        }
        Err(e) if matches!(e.raw_os_error(), Some(22) | Some(38) | Some(95)) => {
            // No RENAME_EXCHANGE on this filesystem: two renames, the old tree kept first.
            fs::rename(dest, previous).map_err(|e| BackupError::io("rename", dest, e))?;
            if let Err(e) = fs::rename(staging.path(), dest) {
                // Put the old tree back: the target is never left missing.
                let _ = fs::rename(previous, dest);
                return Err(BackupError::io("rename", staging.path(), e));
            }
            let _ = staging.take();
        }
        Err(e) => return Err(BackupError::io("swap in", dest, e)),
    }
    fsio::sync_dir(parent)?;
    Ok(Some(previous.to_path_buf()))
}

fn swap_selected(
    staging: Staging,
    manifest: &Manifest,
    restored: &[String],
    dest: &Path,
    previous: &Path,
) -> Result<Option<PathBuf>, BackupError> {
    let dirs: BTreeMap<&str, u32> = manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| (e.path.as_str(), e.mode_bits()))
        .collect();
    let mut moved_any = false;
    ensure_real_dir(dest, 0o700)?;
    for rel in restored {
        // Parents inside the target must be real directories: never write through a symlink.
        let mut cur = dest.to_path_buf();
        let parts: Vec<&str> = rel.split('/').collect();
        let mut prefix = String::new();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            cur.push(part);
            ensure_real_dir(&cur, dirs.get(prefix.as_str()).copied().unwrap_or(0o700))?;
        }
        let from = staging.path().join(rel);
        let to = dest.join(rel);
        match fs::symlink_metadata(&to) {
            Ok(m) if m.is_dir() => {
                return Err(BackupError::io(
                    "restore",
                    &to,
                    io::Error::new(io::ErrorKind::IsADirectory, "a directory is in the way"),
                ));
            }
            Ok(_) => {
                // The old file is linked under `previous` (durably) before the restored one
                // replaces it in one rename: at every instant it exists in one place or both,
                // and never only inside the staging directory, which the next run removes.
                let keep = previous.join(rel);
                if let Some(p) = keep.parent() {
                    fsio::create_secret_dir_all(p)?;
                }
                fs::hard_link(&to, &keep).map_err(|e| BackupError::io("keep", &to, e))?;
                // Every directory from the link up to the one holding `previous` may be new.
                let top = previous.parent().unwrap_or(previous);
                for d in keep.ancestors().skip(1) {
                    fsio::sync_dir(d)?;
                    if d == top {
                        break;
                    }
                }
                fs::rename(&from, &to).map_err(|e| BackupError::io("rename", &from, e))?;
                moved_any = true;
            }
            Err(_) => {
                fs::rename(&from, &to).map_err(|e| BackupError::io("rename", &from, e))?;
            }
        }
        if let Some(p) = to.parent() {
            fsio::sync_dir(p)?;
        }
    }
    drop(staging);
    Ok(moved_any.then(|| previous.to_path_buf()))
}

fn ensure_real_dir(p: &Path, mode: u32) -> Result<(), BackupError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(BackupError::io(
            "restore into",
            p,
            io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a real directory (a symlink or a file)",
            ),
        )),
        Err(_) => {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(p)
                .map_err(|e| BackupError::io("create directory", p, e))?;
            fs::set_permissions(p, fs::Permissions::from_mode(mode))
                .map_err(|e| BackupError::io("set the mode of", p, e))
        }
    }
}

/// Counts decompressed bytes and fails past a cap that is raised once the manifest is known.
struct Capped<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    cap: Rc<Cell<u64>>,
}

#[derive(Debug)]
struct CapExceeded;

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the archive expands beyond what its manifest announces")
    }
}

impl std::error::Error for CapExceeded {}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.cap.get().saturating_sub(self.read.get());
        if left == 0 {
            // One more byte would exceed the cap: look whether the stream really has more.
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => Err(io::Error::other(CapExceeded)),
            };
        }
        let n = buf.len().min(left.min(usize::MAX as u64) as usize);
        let got = self.inner.read(&mut buf[..n])?;
        self.read.set(self.read.get() + got as u64);
        Ok(got)
    }
}

/// Which layer of the stream an I/O error came from.
#[derive(Debug, Clone, Copy)]
enum Layer {
    Age,
    Zstd,
}

/// An I/O error tagged with the layer it came from.
#[derive(Debug)]
struct Tagged {
    layer: Layer,
    source: io::Error,
}

impl std::fmt::Display for Tagged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.layer {
            Layer::Age => write!(f, "age: {}", self.source),
            Layer::Zstd => write!(f, "zstd: {}", self.source),
        }
    }
}

impl std::error::Error for Tagged {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Tags the errors of one layer (age, zstd) so a damaged backup is reported precisely.
struct TagErrors<R> {
    inner: R,
    layer: Layer,
}

impl<R: Read> Read for TagErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if has_in_chain::<Tagged>(&e) {
                e
            } else {
                io::Error::new(
                    e.kind(),
                    Tagged {
                        layer: self.layer,
                        source: e,
                    },
                )
            }
        })
    }
}

/// Finds an error of type `T` in an I/O error's chain of causes.
fn find_in_chain<T: std::error::Error + 'static>(e: &io::Error) -> Option<&T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> =
        e.get_ref().map(|i| i as &(dyn std::error::Error + 'static));
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        cur = match c.downcast_ref::<io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

fn has_in_chain<T: std::error::Error + 'static>(e: &io::Error) -> bool {
    find_in_chain::<T>(e).is_some()
}

/// Counts ciphertext bytes for progress.
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Reads a whole backup stream, checking everything; with `staging`, writes the selected
/// entries there (the caller owns the directory and deletes it on error).
///
/// # Errors
/// See [`verify`]. Additionally fails with I/O errors writing into `staging`.
pub fn read_archive(
    input: impl Read,
    name: &str,
    identity: &dyn age::Identity,
    staging: Option<&Path>,
    only: Option<&globset::GlobSet>,
    limits: Limits,
    progress: &dyn Progress,
) -> Result<VerifyReport, BackupError> {
    let input = Counting {
        inner: input,
        progress,
    };
    let dec = age::Decryptor::new_buffered(io::BufReader::new(input)).map_err(|source| {
        BackupError::Decrypt {
            backup: name.to_string(),
            source,
        }
    })?;
    let mut plain =
        dec.decrypt(std::iter::once(identity))
            .map_err(|source| BackupError::Decrypt {
                backup: name.to_string(),
                source,
            })?;
    // Opened before anything is written into staging: `syncfs` on it then reports every
    // writeback error of the restore (see `sync_tree`).
    let anchor = match staging {
        Some(st) => Some(fs::File::open(st).map_err(|e| BackupError::io("open", st, e))?),
        None => None,
    };

    // Three threads: this one reads and decrypts (age), a second decompresses (zstd) and
    // checks the tar structure against the manifest, a third hashes (and, restoring, writes)
    // the content. Decrypted data reaches the second in order through a bounded channel; an
    // error of this one is passed along in its place, after the data before it.
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(QUEUED_PLAIN);
        let (recycle_tx, recycle) = mpsc::channel::<Vec<u8>>();
        let parser = s.spawn(move || {
            let plain = TagErrors {
                inner: ChannelReader {
                    rx,
                    recycle: recycle_tx,
                    cur: Vec::new(),
                    pos: 0,
                    end: 0,
                },
                layer: Layer::Age,
            };
            parse_stream(plain, name, staging, anchor, only, limits)
        });
        loop {
            let mut buf = recycle.try_recv().unwrap_or_else(|_| vec![0; PLAIN_CHUNK]);
            let (n, err) = fill_until_error(&mut plain, &mut buf);
            if n > 0 && tx.send(Ok((buf, n))).is_err() {
                break; // the parser stopped: its result says why
            }
            match err {
                Some(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
                None if n == 0 => break,
                None => {}
            }
        }
        drop(tx);
        parser
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Decrypted bytes per message to the parsing thread.
const PLAIN_CHUNK: usize = 256 << 10;
/// Messages queued to the parsing thread.
const QUEUED_PLAIN: usize = 8;

/// Reads until `buf` is full, the stream ends or fails; returns the bytes read and the error.
fn fill_until_error(r: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The decrypted stream, as sent by the decrypting thread.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    recycle: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            match self.rx.recv() {
                Ok(Ok((b, n))) => {
                    let done = std::mem::replace(&mut self.cur, b);
                    if !done.is_empty() {
                        let _ = self.recycle.send(done);
                    }
                    self.pos = 0;
                    self.end = n;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is gone after the end of the stream (or after sending its error).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decompresses and checks the decrypted stream (see [`read_archive`]).
fn parse_stream(
    plain: impl Read,
    name: &str,
    staging: Option<&Path>,
    anchor: Option<fs::File>,
    only: Option<&globset::GlobSet>,
    limits: Limits,
) -> Result<VerifyReport, BackupError> {
    let corrupt = |reason: &str, e: io::Error| corrupt_error(name, reason, e);
    let unsafe_entry = |entry: &str, reason: &str| BackupError::Unsafe {
        backup: name.to_string(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let z = zstd::stream::Decoder::new(plain)
        .map_err(|e| corrupt("not a zstd stream inside the age encryption", e))?;
    let read = Rc::new(Cell::new(0u64));
    let cap = Rc::new(Cell::new(MAX_MANIFEST_BYTES + (64 << 10)));
    let z = TagErrors {
        inner: z,
        layer: Layer::Zstd,
    };
    let capped = Capped {
        inner: z,
        read: read.clone(),
        cap: cap.clone(),
    };
    let mut archive = tar::Archive::new(capped);
    let mut entries = archive
        .entries()
        .map_err(|e| corrupt("cannot read the tar stream", e))?;

    // 1. The manifest, first.
    let mut first = match entries.next() {
        Some(r) => r.map_err(|e| corrupt("cannot read the first tar entry", e))?,
        None => {
            return Err(corrupt(
                "the archive is empty",
                io::Error::other("no entries"),
            ));
        }
    };
    let fpath = first.path_bytes().into_owned();
    if fpath != MANIFEST_MEMBER.as_bytes() || first.header().entry_type() != tar::EntryType::Regular
    {
        return Err(unsafe_entry(
            &String::from_utf8_lossy(&fpath),
            "the first entry must be the regular file manifest.json",
        ));
    }
    if first.size() > MAX_MANIFEST_BYTES {
        return Err(unsafe_entry(
            MANIFEST_MEMBER,
            "the manifest is larger than 64 MiB",
        ));
    }
    let mut mbytes = Vec::new();
    first
        .read_to_end(&mut mbytes)
        .map_err(|e| corrupt("cannot read the manifest", e))?;
    drop(first);
    let manifest = Manifest::parse(&mbytes)?;
    let n_entries = manifest.entries.len() as u64;
    cap.set(
        read.get()
            .saturating_add(manifest.total_size())
            .saturating_add(n_entries.saturating_mul(limits.per_entry_overhead))
            .saturating_add(limits.slack_bytes),
    );
    let by_path: BTreeMap<&str, &super::ManifestEntry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut report = VerifyReport {
        name: name.to_string(),
        created: manifest.created.clone(),
        host: manifest.host.clone(),
        files: 0,
        dirs: 0,
        symlinks: 0,
        content_bytes: 0,
        skipped: manifest.skipped.len(),
        manifest: None,
    };

    // 2.–4. Every other entry, nothing missing, a clean end. This thread decrypts, decompresses
    // and checks the tar structure; a second one hashes (and, restoring, writes) the content,
    // so the two halves of the work use two cores. A hash mismatch found by the second thread
    // stops the first at its next send; the second thread's error wins, being the earlier one
    // in the stream.
    let (parsed, sunk) = std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUED_CHUNKS);
        let (recycle_tx, recycle) = mpsc::channel::<Vec<u8>>();
        let worker = s.spawn(move || sink(rx, recycle_tx, name, staging));
        let parsed = (|| -> Result<(), BackupError> {
            let send = |job: Job| tx.send(job).map_err(|_| WorkerStopped);
            for entry in entries {
                let mut entry = entry.map_err(|e| corrupt("cannot read a tar entry", e))?;
                let raw = entry.path_bytes().into_owned();
                let shown = String::from_utf8_lossy(&raw).into_owned();
                let Ok(p) = std::str::from_utf8(&raw) else {
                    return Err(unsafe_entry(&shown, "the path is not UTF-8"));
                };
                let kind = entry.header().entry_type();
                let want = match kind {
                    tar::EntryType::Regular => EntryKind::File,
                    tar::EntryType::Directory => EntryKind::Dir,
                    tar::EntryType::Symlink => EntryKind::Symlink,
                    tar::EntryType::Link => {
                        return Err(unsafe_entry(&shown, "hard links are not accepted"));
                    }
                    tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                        return Err(unsafe_entry(
                            &shown,
                            "device files and FIFOs are not accepted",
                        ));
                    }
                    _ => return Err(unsafe_entry(&shown, "this tar entry type is not accepted")),
                };
                let rel = p
                    .strip_prefix(STATE_PREFIX)
                    .and_then(|r| r.strip_prefix('/'))
                    .map(|r| {
                        if want == EntryKind::Dir {
                            r.strip_suffix('/').unwrap_or(r)
                        } else {
                            r
                        }
                    })
                    .ok_or_else(|| unsafe_entry(&shown, "the entry is outside state/"))?;
                super::check_rel_path(rel).map_err(|r| unsafe_entry(&shown, r))?;
                let Some(m) = by_path.get(rel) else {
                    return Err(unsafe_entry(
                        &shown,
                        "the entry is not listed in the manifest",
                    ));
                };
                if m.kind != want {
                    return Err(unsafe_entry(
                        &shown,
                        "the entry's type differs from the manifest's",
                    ));
                }
                if !seen.insert(rel.to_string()) {
                    return Err(unsafe_entry(
                        &shown,
                        "the entry appears twice in the archive",
                    ));
                }
                let write = staging.is_some()
                    && only.is_none_or(|g| g.is_match(rel) || want == EntryKind::Dir);
                match want {
                    EntryKind::Dir => {
                        report.dirs += 1;
                        if entry.size() != 0 {
                            return Err(unsafe_entry(&shown, "a directory entry carries data"));
                        }
                        if write && only.is_none() {
                            send(Job::Dir(rel.to_string()))?;
                        }
                    }
                    EntryKind::Symlink => {
                        report.symlinks += 1;
                        let t = entry
                            .link_name_bytes()
                            .map(|t| t.into_owned())
                            .unwrap_or_default();
                        if Some(t.as_slice()) != m.target.as_deref().map(str::as_bytes)
                            || entry.size() != 0
                        {
                            return Err(unsafe_entry(
                                &shown,
                                "the link target differs from the manifest's",
                            ));
                        }
                        if write {
                            links.push((rel.to_string(), m.target.clone().unwrap_or_default()));
                        }
                    }
                    EntryKind::File => {
                        report.files += 1;
                        let size = m.size.unwrap_or(0);
                        if entry.size() != size {
                            return Err(unsafe_entry(
                                &shown,
                                "the entry's size differs from the manifest's",
                            ));
                        }
                        send(Job::File {
                            rel: rel.to_string(),
                            write,
                            sha256: m.sha256.clone().unwrap_or_default(),
                            mtime: m.mtime,
                        })?;
                        let mut n_total = 0u64;
                        loop {
                            // Recycled buffers keep their full length: no zeroing per chunk.
                            let mut buf = recycle.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
                            let n = fill(&mut entry, &mut buf)
                                .map_err(|e| corrupt("cannot read a file's content", e))?;
                            if n == 0 {
                                break;
                            }
                            n_total += n as u64;
                            send(Job::Data(buf, n))?;
                        }
                        if n_total != size {
                            return Err(corrupt(
                                "a file ends before its announced size",
                                io::Error::from(io::ErrorKind::UnexpectedEof),
                            ));
                        }
                        send(Job::End)?;
                        report.content_bytes += size;
                    }
                }
            }

            // 3. Nothing missing.
            if let Some(missing) = manifest.entries.iter().find(|e| !seen.contains(&e.path)) {
                return Err(BackupError::Corrupt {
                    backup: name.to_string(),
                    reason: format!("{} is in the manifest but not in the archive", missing.path),
                    source: None,
                });
            }

            Ok(())
        })();
        drop(tx);
        let sunk = worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (parsed, sunk)
    });
    sunk?;
    parsed?;

    // 4. The end: only tar padding may follow, then zstd's checksum and age's final
    // chunk must check out. Reading to EOF is what makes age and zstd verify them.
    let mut rest = archive.into_inner();
    let mut tail = [0u8; 8192];
    loop {
        let n = rest
            .read(&mut tail)
            .map_err(|e| corrupt("the end of the stream is damaged or truncated", e))?;
        if n == 0 {
            break;
        }
        if tail[..n].iter().any(|&b| b != 0) {
            return Err(unsafe_entry("", "data follows the end of the tar archive"));
        }
    }

    // 5. Only now, with everything verified: symlinks, then modes and times (deepest first),
    // then the whole staging tree is made durable at once.
    if let (Some(st), Some(anchor)) = (staging, anchor) {
        finish_staging(st, &anchor, &manifest, &links, only.is_none())?;
    }
    report.manifest = Some(manifest);
    Ok(report)
}

/// Classifies a stream error: the zip-bomb guard, a damaged age or zstd layer, or `reason`.
fn corrupt_error(name: &str, reason: &str, e: io::Error) -> BackupError {
    if has_in_chain::<CapExceeded>(&e) {
        return BackupError::Unsafe {
            backup: name.to_string(),
            entry: String::new(),
            reason: "the archive expands beyond what its manifest announces (zip-bomb guard)"
                .into(),
        };
    }
    let layer = find_in_chain::<Tagged>(&e).map(|t| t.layer);
    let reason = match layer {
        Some(Layer::Age) => {
            "its encrypted data is truncated or was modified (age authentication failed)"
        }
        Some(Layer::Zstd) => "its compressed data is invalid (zstd)",
        None => reason,
    };
    BackupError::Corrupt {
        backup: name.to_string(),
        reason: reason.to_string(),
        source: Some(e),
    }
}

/// Bytes of file content per message to the hashing thread.
const CHUNK: usize = 1 << 20;
/// Messages queued to the hashing thread (bounds memory to a few MiB).
const QUEUED_CHUNKS: usize = 4;

/// Work for the hashing (and, restoring, writing) thread, in archive order.
enum Job {
    /// Create this directory in staging.
    Dir(String),
    /// A file starts: its path, whether to write it, its expected SHA-256 and mtime.
    File {
        rel: String,
        write: bool,
        sha256: String,
        mtime: Option<i64>,
    },
    /// The next bytes of the current file: the first `n` bytes of the buffer.
    Data(Vec<u8>, usize),
    /// The current file is complete.
    End,
}

/// The hashing thread stopped (it found an error, which it returns from `join`).
struct WorkerStopped;

impl From<WorkerStopped> for BackupError {
    fn from(_: WorkerStopped) -> Self {
        // Never surfaces: the worker's own error takes precedence.
        BackupError::io(
            "hash",
            "the backup stream",
            io::Error::other("the hashing thread stopped"),
        )
    }
}

/// Reads until `buf` is full or the entry ends; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    match fill_until_error(r, buf) {
        (n, None) => Ok(n),
        (_, Some(e)) => Err(e),
    }
}

/// The current file of the hashing thread.
struct Current {
    rel: String,
    out: Option<(fs::File, PathBuf)>,
    hasher: Sha256,
    sha256: String,
    mtime: Option<i64>,
}

/// The hashing thread: hashes every file, checks it against the manifest and, restoring,
/// writes it into `staging` (no fsync per file: [`finish_staging`] syncs the tree at once).
fn sink(
    rx: mpsc::Receiver<Job>,
    recycle: mpsc::Sender<Vec<u8>>,
    name: &str,
    staging: Option<&Path>,
) -> Result<(), BackupError> {
    let mut made: HashSet<String> = HashSet::new();
    let mut cur: Option<Current> = None;
    for job in rx {
        match job {
            Job::Dir(rel) => {
                if let Some(st) = staging {
                    mkdirs(st, &rel, &mut made)?;
                }
            }
            Job::File {
                rel,
                write,
                sha256,
                mtime,
            } => {
                let out = match staging {
                    Some(st) if write => {
                        if let Some((parent, _)) = rel.rsplit_once('/') {
                            mkdirs(st, parent, &mut made)?;
                        }
                        let p = st.join(&rel);
                        let f = fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                            .open(&p)
                            .map_err(|e| BackupError::io("create", &p, e))?;
                        Some((f, p))
                    }
                    _ => None,
                };
                cur = Some(Current {
                    rel,
                    out,
                    hasher: Sha256::new(),
                    sha256,
                    mtime,
                });
            }
            Job::Data(buf, n) => {
                let c = cur.as_mut().expect("data follows a file");
                c.hasher.update(&buf[..n]);
                if let Some((f, p)) = c.out.as_mut() {
                    f.write_all(&buf[..n])
                        .map_err(|e| BackupError::io("write", p.as_path(), e))?;
                }
                let _ = recycle.send(buf);
            }
            Job::End => {
                let c = cur.take().expect("end follows a file");
                if hex::encode(c.hasher.finalize()) != c.sha256 {
                    return Err(BackupError::HashMismatch {
                        backup: name.to_string(),
                        entry: c.rel,
                    });
                }
                if let Some((f, p)) = &c.out {
                    if let Some(t) = c.mtime {
                        f.set_modified(unix_time(t))
                            .map_err(|e| BackupError::io("set the time of", p.as_path(), e))?;
                    }
                    // Start writing it to disk now, while the rest is decoded: the final
                    // `syncfs` then has little left to wait for. Durability still comes from
                    // that sync, before the swap.
                    fsio::start_writeback(f, 0, 0);
                }
            }
        }
    }
    Ok(())
}

fn unix_time(t: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)
}

/// Completes a verified staging tree: creates the symlinks, sets modes and mtimes (deepest
/// first, so setting a child never touches its parent's mtime afterwards), and makes the whole
/// tree durable with one `syncfs(2)` — files were written without a per-file fsync.
///
/// Crash-safety: the staging directory is private and not reachable under the target's name
/// until the caller swaps it in, which happens only after this returns; so a crash before the
/// sync leaves at most a stale staging directory, and a swap never exposes a file whose data is
/// not on disk.
fn finish_staging(
    st: &Path,
    anchor: &fs::File,
    manifest: &Manifest,
    links: &[(String, String)],
    whole: bool,
) -> Result<(), BackupError> {
    let by_path: BTreeMap<&str, &super::ManifestEntry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    let mut made = HashSet::new();
    for (rel, target) in links {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            mkdirs(st, parent, &mut made)?;
        }
        let p = st.join(rel);
        std::os::unix::fs::symlink(target, &p)
            .map_err(|e| BackupError::io("create symlink", &p, e))?;
        if let Some(t) = by_path.get(rel.as_str()).and_then(|e| e.mtime) {
            set_mtime_nofollow(&p, t)?;
        }
    }
    let mut written: Vec<&super::ManifestEntry> = manifest
        .entries
        .iter()
        .filter(|e| e.kind != EntryKind::Symlink)
        .filter(|e| {
            fs::symlink_metadata(st.join(&e.path)).is_ok_and(|m| !m.file_type().is_symlink())
        })
        .collect();
    written.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    for e in written {
        let p = st.join(&e.path);
        fs::set_permissions(&p, fs::Permissions::from_mode(e.mode_bits()))
            .map_err(|err| BackupError::io("set the mode of", &p, err))?;
        if e.kind == EntryKind::Dir
            && let Some(t) = e.mtime
        {
            set_mtime_nofollow(&p, t)?;
        }
    }
    if whole {
        let root_mode = super::parse_mode(&manifest.root_mode).unwrap_or(0o700);
        fs::set_permissions(st, fs::Permissions::from_mode(root_mode))
            .map_err(|e| BackupError::io("set the mode of", st, e))?;
    }
    sync_tree(st, anchor)
}

/// Sets the mtime of `p` itself (never a symlink's target), leaving its atime alone.
fn set_mtime_nofollow(p: &Path, t: i64) -> Result<(), BackupError> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT, utimensat};
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: t.max(0),
            tv_nsec: 0,
        },
    };
    utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| BackupError::io("set the time of", p, e.into()))
}

/// Makes everything written under `dir` durable: one `syncfs(2)` of its filesystem (data and
/// metadata of every file, directory and link in the tree, in one journal commit), instead of
/// an fsync per file. `anchor` was opened on `dir` before the first write, so `syncfs` reports
/// any writeback error since (Linux ≥ 5.8; older kernels get an fsync of every file and
/// directory instead, since their `syncfs` reports nothing).
fn sync_tree(dir: &Path, anchor: &fs::File) -> Result<(), BackupError> {
    if fsio::syncfs_reports_errors() {
        return rustix::fs::syncfs(anchor)
            .map_err(|e| BackupError::io("sync the filesystem of", dir, e.into()));
    }
    fsync_tree(dir)
}

fn fsync_tree(p: &Path) -> Result<(), BackupError> {
    let m = fs::symlink_metadata(p).map_err(|e| BackupError::io("inspect", p, e))?;
    if m.is_dir() {
        for e in fs::read_dir(p).map_err(|e| BackupError::io("list", p, e))? {
            fsync_tree(&e.map_err(|e| BackupError::io("list", p, e))?.path())?;
        }
    } else if !m.is_file() {
        return Ok(());
    }
    fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::io("fsync", p, e))
}

/// Creates `rel`'s directories under `root` one component at a time, refusing anything that
/// is not a real directory (the staging tree is private and holds no symlink yet). `made`
/// remembers what exists already, so each directory is checked once.
fn mkdirs(root: &Path, rel: &str, made: &mut HashSet<String>) -> Result<(), BackupError> {
    if made.contains(rel) {
        return Ok(());
    }
    let mut cur = root.to_path_buf();
    let mut prefix = String::new();
    for part in rel.split('/') {
        cur.push(part);
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if made.contains(&prefix) {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BackupError::io(
                    "create directory",
                    &cur,
                    io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                ));
            }
            Err(_) => fs::DirBuilder::new()
                .mode(0o700)
                .create(&cur)
                .map_err(|e| BackupError::io("create directory", &cur, e))?,
        }
        made.insert(prefix.clone());
    }
    Ok(())
}
