//! Writing a backup: a first pass walks the tree and hashes every entry (SQLite databases are
//! first copied through SQLite's online backup API into a private temp dir), then one streaming
//! pass writes tar → zstd → age, re-hashing as it goes so a file changed in between is caught.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::manifest::{EntryKind, FORMAT_NAME, FORMAT_VERSION, Manifest, ManifestEntry, Skipped};
use super::{
    BACKUP_SUFFIX, BackupError, BackupTarget, MANIFEST_MEMBER, Progress, STATE_PREFIX,
    check_link_target, format_mode, glob_set,
};

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The directory to back up (the gateway state dir).
    pub source: PathBuf,
    /// Host name put in the backup's name and manifest.
    pub host: String,
    /// A private directory for SQLite copies (created 0700 if missing); never inside `source`.
    pub temp_dir: PathBuf,
    /// Globs (relative to `source`, `/`-separated) of entries to leave out.
    pub exclude: Vec<String>,
    /// Absolute paths to leave out (the backup destination when it is inside `source`).
    pub skip_paths: Vec<PathBuf>,
    /// The time the backup is named after; now when `None`.
    pub time: Option<OffsetDateTime>,
    /// zstd compression level.
    pub zstd_level: i32,
    /// zstd's minimum match length (`ZSTD_c_minMatch`; 0 keeps the level's own). Transcript
    /// text is made of words and JSON keys: ignoring matches shorter than 6 bytes (the level's
    /// own minimum is 5) saves offsets that cost more than the literals they replace, and
    /// gives a smaller backup than `gzip -6` at level 6 (level 3 is 5 % larger).
    pub zstd_min_match: u32,
    /// zstd's window log (`ZSTD_c_windowLog`; 0 keeps the level's own). A 1 MiB window (20)
    /// loses nothing on transcripts (their repeats are short and near) and halves the
    /// compressor's and decompressor's memory.
    pub zstd_window_log: u32,
    /// zstd's hash log (`ZSTD_c_hashLog`; 0 keeps the level's own). A smaller table (17)
    /// stays in the CPU cache: as small or smaller output, less time.
    pub zstd_hash_log: u32,
    /// zstd worker threads (0 = single-threaded).
    pub zstd_threads: u32,
    /// Threads hashing files in the first pass (at least 1).
    pub hash_threads: usize,
    /// The program version recorded in the manifest.
    pub created_by: String,
}

impl BackupOptions {
    /// Default options for backing up `source`, naming the backup after `host`.
    pub fn new(
        source: impl Into<PathBuf>,
        host: impl Into<String>,
        temp_dir: impl Into<PathBuf>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        BackupOptions {
            source: source.into(),
            host: host.into(),
            temp_dir: temp_dir.into(),
            exclude: Vec::new(),
            skip_paths: Vec::new(),
            time: None,
            zstd_level: 6,
            zstd_min_match: 6,
            zstd_window_log: 20,
            zstd_hash_log: 17,
            zstd_threads: if cores > 1 { cores } else { 0 },
            hash_threads: cores as usize,
            created_by: format!("moltvault-vault {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What a finished backup holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    /// The backup's file (object) name.
    pub name: String,
    /// Where it was written.
    pub target: String,
    /// Regular files stored.
    pub files: usize,
    /// Directories stored.
    pub dirs: usize,
    /// Symlinks stored (as links).
    pub symlinks: usize,
    /// SQLite databases copied through the online backup API.
    pub sqlite_databases: usize,
    /// Bytes of file content stored (before compression).
    pub content_bytes: u64,
    /// Size of the encrypted backup.
    pub backup_bytes: u64,
    /// What was left out, and why.
    pub skipped: Vec<Skipped>,
}

/// Builds the name of a backup: `moltvault-<host>-<YYYYMMDDTHHMMSSZ>.tar.zst.age`.
pub fn backup_name(host: &str, time: OffsetDateTime) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    let t = time.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "moltvault-{host}-{}{BACKUP_SUFFIX}",
        t.format(&fmt).expect("fixed format")
    )
}

/// Backs up `opts.source` to a new backup on `target`, encrypted to `recipient`.
///
/// The backup appears on the target only once complete (atomic rename or multipart completion).
///
/// # Errors
/// Fails if the source cannot be read, a SQLite copy fails, a file changes in place during the
/// backup, or the target cannot be written; nothing is left on the target then.
pub fn create(
    opts: &BackupOptions,
    recipient: &dyn age::Recipient,
    target: &dyn BackupTarget,
    progress: &dyn Progress,
) -> Result<BackupSummary, BackupError> {
    // Names have a one-second resolution: a second backup within the same second waits for
    // the next one rather than failing (cron jobs and scripts run back to back).
    let mut attempt = 0;
    let (time, name, upload) = loop {
        let time = opts.time.unwrap_or_else(OffsetDateTime::now_utc);
        let name = backup_name(&opts.host, time);
        match target.create(&name) {
            Ok(u) => break (time, name, u),
            Err(BackupError::Exists(_)) if opts.time.is_none() && attempt < 2 => {
                attempt += 1;
                let into_second = u64::from(OffsetDateTime::now_utc().millisecond());
                std::thread::sleep(Duration::from_millis(1001 - into_second.min(1000)));
            }
            Err(e) => return Err(e),
        }
    };
    let counter = CountingWriter {
        inner: upload,
        count: 0,
    };
    let (counter, mut summary) = write_archive(opts, time, recipient, counter, progress)?;
    let size = counter.count;
    counter.inner.commit()?;
    summary.name = name;
    summary.target = target.describe();
    summary.backup_bytes = size;
    Ok(summary)
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One entry found by the walk, with where its bytes come from.
struct Planned {
    entry: ManifestEntry,
    /// The file to read content from (the SQLite copy for databases).
    source: PathBuf,
    /// The path named in errors (the original file).
    shown: PathBuf,
}

/// Writes the whole backup stream (tar → zstd → age) to `out` and returns it.
///
/// # Errors
/// See [`create`].
pub fn write_archive<W: Write>(
    opts: &BackupOptions,
    time: OffsetDateTime,
    recipient: &dyn age::Recipient,
    out: W,
    progress: &dyn Progress,
) -> Result<(W, BackupSummary), BackupError> {
    let root_meta =
        fs::metadata(&opts.source).map_err(|e| BackupError::io("read", &opts.source, e))?;
    if !root_meta.is_dir() {
        return Err(BackupError::io(
            "back up",
            &opts.source,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    crate::fsio::create_secret_dir_all(&opts.temp_dir)?;
    // SQLite copies left by killed backups (plaintext: they must not linger).
    super::leftovers::clean_sqlite_temps(&opts.temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix(".moltvault-backup-")
        .tempdir_in(&opts.temp_dir)
        .map_err(|e| BackupError::io("create a temp dir in", &opts.temp_dir, e))?;
    set_mode(tmp.path(), 0o700)?;
    // Locked until this function returns or the process dies (see `leftovers`).
    let tmp_lock = super::leftovers::open_dir(tmp.path())
        .map_err(|e| BackupError::io("open", tmp.path(), e))?;
    super::leftovers::try_lock(&tmp_lock).map_err(|e| BackupError::io("lock", tmp.path(), e))?;

    let exclude = glob_set(&opts.exclude)?;
    let mut walk = Walk {
        opts,
        exclude,
        tmp: tmp.path(),
        planned: Vec::new(),
        skipped: Vec::new(),
        sqlite: 0,
    };
    walk.dir(&opts.source, "")?;
    let Walk {
        mut planned,
        skipped,
        sqlite,
        ..
    } = walk;
    hash_all(&mut planned, opts.hash_threads)?;

    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        created_by: opts.created_by.clone(),
        created: time
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .expect("rfc3339"),
        host: opts.host.clone(),
        source_name: opts
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        root_mode: format_mode(root_meta.mode()),
        entries: planned.iter().map(|p| p.entry.clone()).collect(),
        skipped: skipped.clone(),
    };
    manifest.validate()?;
    let total = manifest.total_size();
    progress.set_total(total);

    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient))
        .map_err(BackupError::Encrypt)?;
    let sink = |e: io::Error| BackupError::io("write", "the backup stream", e);
    let age_w = encryptor
        .wrap_output(BufWriter::with_capacity(1 << 20, out))
        .map_err(sink)?;
    let mut z = zstd::stream::Encoder::new(age_w, opts.zstd_level).map_err(sink)?;
    z.include_checksum(true).map_err(sink)?;
    if opts.zstd_min_match > 0 {
        z.set_parameter(zstd::zstd_safe::CParameter::MinMatch(opts.zstd_min_match))
            .map_err(sink)?;
    }
    if opts.zstd_window_log > 0 {
        z.window_log(opts.zstd_window_log).map_err(sink)?;
    }
    if opts.zstd_hash_log > 0 {
        z.set_parameter(zstd::zstd_safe::CParameter::HashLog(opts.zstd_hash_log))
            .map_err(sink)?;
    }
    if opts.zstd_threads > 0 {
        z.multithread(opts.zstd_threads).map_err(sink)?;
    }
    let mut tar = tar::Builder::new(z);

    let mjson = manifest.to_json();
    let mut h = header(tar::EntryType::Regular, 0o600, time.unix_timestamp());
    h.set_size(mjson.len() as u64);
    tar.append_data(&mut h, MANIFEST_MEMBER, &mjson[..])
        .map_err(sink)?;

    let (mut files, mut dirs, mut links) = (0, 0, 0);
    for p in &planned {
        let e = &p.entry;
        let member = format!("{STATE_PREFIX}/{}", e.path);
        let mtime = e.mtime.unwrap_or(0);
        match e.kind {
            EntryKind::Dir => {
                dirs += 1;
                let mut h = header(tar::EntryType::Directory, e.mode_bits(), mtime);
                h.set_size(0);
                tar.append_data(&mut h, format!("{member}/"), io::empty())
                    .map_err(sink)?;
            }
            EntryKind::Symlink => {
                links += 1;
                let mut h = header(tar::EntryType::Symlink, 0o777, mtime);
                h.set_size(0);
                let t = e.target.as_deref().unwrap_or_default();
                tar.append_link(&mut h, &member, t).map_err(sink)?;
            }
            EntryKind::File => {
                files += 1;
                let size = e.size.unwrap_or(0);
                let f = open_nofollow(&p.source)?;
                let mut r = HashingReader {
                    inner: f.take(size),
                    hasher: Sha256::new(),
                    count: 0,
                    progress,
                };
                let mut h = header(tar::EntryType::Regular, e.mode_bits(), mtime);
                h.set_size(size);
                tar.append_data(&mut h, &member, &mut r).map_err(|err| {
                    if r.count < size {
                        BackupError::Changed {
                            path: p.source.clone(),
                        }
                    } else {
                        sink(err)
                    }
                })?;
                if r.count != size
                    || hex::encode(r.hasher.finalize()) != e.sha256.as_deref().unwrap_or_default()
                {
                    return Err(BackupError::Changed {
                        path: opts.source.join(&e.path),
                    });
                }
            }
        }
    }
    let z = tar.into_inner().map_err(sink)?;
    let age_w = z.finish().map_err(sink)?;
    let buf = age_w.finish().map_err(sink)?;
    let out = buf.into_inner().map_err(|e| sink(e.into_error()))?;
    drop(tmp);
    drop(tmp_lock);
    let summary = BackupSummary {
        name: String::new(),
        target: String::new(),
        files,
        dirs,
        symlinks: links,
        sqlite_databases: sqlite,
        content_bytes: total,
        backup_bytes: 0,
        skipped,
    };
    Ok((out, summary))
}

fn header(kind: tar::EntryType, mode: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o777);
    h.set_mtime(mtime.max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A reader that fails, rather than returns a short read, when the file ends early: the tar
/// header already announced the size, so a short member would corrupt the archive.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

struct Walk<'a> {
    opts: &'a BackupOptions,
    exclude: globset::GlobSet,
    tmp: &'a Path,
    planned: Vec<Planned>,
    skipped: Vec<Skipped>,
    sqlite: usize,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl Walk<'_> {
    fn skip(&mut self, rel: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            path: rel.to_string(),
            reason: reason.into(),
        });
    }

    fn dir(&mut self, dir: &Path, rel: &str) -> Result<(), BackupError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(|e| BackupError::io("list", dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| BackupError::io("list", dir, e))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let Some(name) = name.to_str() else {
                self.skip(
                    &format!("{rel}{}", name.to_string_lossy()),
                    "the name is not UTF-8",
                );
                continue;
            };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if self.exclude.is_match(&child) || self.opts.skip_paths.iter().any(|p| p == &path) {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed since the listing (a rotated log, a finished temp file).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackupError::io("inspect", &path, e)),
            };
            let ft = meta.file_type();
            let mode = format_mode(meta.mode());
            let mtime = Some(meta.mtime());
            if ft.is_dir() {
                self.planned.push(Planned {
                    entry: entry(&child, EntryKind::Dir, mode, mtime),
                    source: path.clone(),
                    shown: path.clone(),
                });
                self.dir(&path, &child)?;
            } else if ft.is_symlink() {
                let target =
                    fs::read_link(&path).map_err(|e| BackupError::io("read link", &path, e))?;
                match target.to_str() {
                    Some(t) if check_link_target(&child, t).is_ok() => {
                        let mut e = entry(&child, EntryKind::Symlink, "0777".into(), mtime);
                        e.target = Some(t.to_string());
                        self.planned.push(Planned {
                            entry: e,
                            source: path.clone(),
                            shown: path.clone(),
                        });
                    }
                    _ => self.skip(
                        &child,
                        format!(
                            "symlink to {} points outside the backed-up directory; not stored",
                            target.display()
                        ),
                    ),
                }
            } else if ft.is_file() {
                if let Some(db) = sqlite_sidecar_of(&path) {
                    self.skip(
                        &child,
                        format!("SQLite sidecar; its content is in the online backup of {db}"),
                    );
                    continue;
                }
                self.file(&path, &child, mode, mtime)?;
            } else {
                use std::os::unix::fs::FileTypeExt;
                let what = if ft.is_socket() {
                    "socket"
                } else if ft.is_fifo() {
                    "FIFO"
                } else {
                    "device file"
                };
                self.skip(&child, format!("{what}; special files are not backed up"));
            }
        }
        Ok(())
    }

    fn file(
        &mut self,
        path: &Path,
        rel: &str,
        mode: String,
        mtime: Option<i64>,
    ) -> Result<(), BackupError> {
        let mut f = match open_nofollow(path) {
            Ok(f) => f,
            Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut e = entry(rel, EntryKind::File, mode, mtime);
        let mut magic = [0u8; 16];
        let is_sqlite =
            read_prefix(&mut f, &mut magic).map_err(|e| BackupError::io("read", path, e))? == 16
                && &magic == SQLITE_MAGIC;
        let source = if is_sqlite {
            drop(f);
            self.sqlite += 1;
            let copy = self.tmp.join(format!("db-{}.sqlite", self.sqlite));
            sqlite_online_copy(path, &copy)?;
            e.captured = Some("sqlite-online-backup".into());
            f = open_nofollow(&copy)?;
            copy
        } else {
            path.to_path_buf()
        };
        let len = f
            .metadata()
            .map_err(|e| BackupError::io("inspect", &source, e))?
            .len();
        let size = if rel.ends_with(".jsonl") && !is_sqlite {
            let complete =
                complete_lines_len(&mut f, len).map_err(|e| BackupError::io("read", path, e))?;
            if complete != len {
                e.captured = Some("jsonl-complete-lines".into());
            }
            complete
        } else {
            len
        };
        // Hashed later, on several threads ([`hash_all`]).
        e.size = Some(size);
        self.planned.push(Planned {
            entry: e,
            source,
            shown: path.to_path_buf(),
        });
        Ok(())
    }
}

/// Hashes the first `size` bytes of every planned file into its `sha256`, on `threads`
/// threads (the files are independent; the first error in tree order wins).
fn hash_all(planned: &mut [Planned], threads: usize) -> Result<(), BackupError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let todo: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].entry.kind == EntryKind::File)
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<String, BackupError>)>> = Mutex::new(Vec::new());
    let work = || {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = todo.get(k) else { break };
            let p = &planned[i];
            let r = hash_prefix(p, &mut buf);
            let failed = r.is_err();
            results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((i, r));
            if failed {
                // Let the other threads stop early too.
                next.fetch_max(todo.len(), Ordering::Relaxed);
                break;
            }
        }
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads.max(1).min(todo.len().max(1)))
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        work();
        for h in helpers {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    for (i, r) in results {
        planned[i].entry.sha256 = Some(r?);
    }
    Ok(())
}

/// The SHA-256 of the first `size` bytes of a planned file; fails if it is now shorter.
fn hash_prefix(p: &Planned, buf: &mut [u8]) -> Result<String, BackupError> {
    let size = p.entry.size.unwrap_or(0);
    let f = open_nofollow(&p.source)?;
    let mut hasher = Sha256::new();
    let mut r = f.take(size);
    let mut n_total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BackupError::io("read", &p.source, e)),
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
    if n_total != size {
        return Err(BackupError::Changed {
            path: p.shown.clone(),
        });
    }
    Ok(hex::encode(hasher.finalize()))
}

fn entry(path: &str, kind: EntryKind, mode: String, mtime: Option<i64>) -> ManifestEntry {
    ManifestEntry {
        path: path.to_string(),
        kind,
        mode,
        mtime,
        size: None,
        sha256: None,
        target: None,
        captured: None,
    }
}

fn read_prefix(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The length of the longest prefix of the first `len` bytes that ends with a newline: a live
/// transcript is backed up up to its last complete line.
fn complete_lines_len(f: &mut File, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn memrchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().rposition(|&c| c == b)
}

/// If `path` is a `-wal`, `-shm` or `-journal` file beside a SQLite database, returns the
/// database's file name.
fn sqlite_sidecar_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let base = ["-wal", "-shm", "-journal"]
        .iter()
        .find_map(|s| name.strip_suffix(s))?;
    let db = path.with_file_name(base);
    let mut f = open_nofollow(&db).ok()?;
    let mut magic = [0u8; 16];
    (read_prefix(&mut f, &mut magic).ok()? == 16 && &magic == SQLITE_MAGIC)
        .then(|| base.to_string())
}

/// Copies a live SQLite database through SQLite's online backup API, retrying while it is busy.
fn sqlite_online_copy(db: &Path, dest: &Path) -> Result<(), BackupError> {
    use rusqlite::{Connection, OpenFlags};
    let err = |source| BackupError::Sqlite {
        path: db.to_path_buf(),
        source,
    };
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    src.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    let mut dst = Connection::open(dest).map_err(err)?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst).map_err(err)?;
        let mut busy = 0;
        loop {
            match b.step(1024).map_err(err)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    busy += 1;
                    if busy > 200 {
                        return Err(err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("the database stayed locked for 20 s".into()),
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {}
            }
        }
    }
    // A single self-contained file: no WAL beside the copy.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(err)?;
    dst.close().map_err(|(_, e)| err(e))?;
    Ok(())
}

pub(crate) fn open_nofollow(path: &Path) -> Result<File, BackupError> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| BackupError::io("open", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| BackupError::io("set the mode of", path, e))
}
