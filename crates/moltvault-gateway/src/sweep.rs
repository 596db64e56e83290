//! The gateway plugin's post-turn sweep: redacts in place what the plugin's hooks never see.
//!
//! After each agent turn the plugin starts `moltvault serve --sweep`, which calls [`sweep`]:
//! it waits until the agent's session files have been quiet for [`SweepOptions::settle`] (and no
//! live gateway holds a transcript's `.jsonl.lock`), then
//!
//! - rewrites the agent's JSONL transcripts and `*.trajectory.jsonl` sidecars changed within
//!   [`SweepOptions::recent`] (JSONL line, ≤ 2026.7), each under the gateway's own transcript
//!   lock (taken with the gateway's `{pid, createdAt}` format, so a turn waits for it);
//! - redacts the agent database `openclaw-agent.sqlite` (SQLite line, ≥ 2026.8): in `all` mode
//!   every table holding transcript text, FTS index included; in `tools` mode its
//!   `trajectory_runtime_events` rows only (see [`crate::sqlite`]).
//!
//! # Incremental
//!
//! A sweep runs after every turn, so it must not cost a read of the whole agent history. With
//! [`SweepOptions::marks_dir`] set, each pass records where it stopped and the next one reads
//! only what is new:
//!
//! - **Database**: a [`SweepMark`] per database and scope (per table the largest rowid and a
//!   digest of that row, the gateway's transcript rewrite generations, …), taken inside the
//!   redaction transaction and stored in `<marks dir>/<sha256(canonical db path)>-<scope>.json`
//!   (0600, atomically, with the database file's device and inode). A mark that does not
//!   match (another file at that path, rows deleted or renumbered under it, a layout from
//!   another version) makes the pass read the table whole: rows are never skipped on a guess.
//! - **JSONL files**: per file its inode, the length swept, its modification time and a digest
//!   of the last bytes swept; a file that only grew is read from there (and rewritten whole
//!   only when the new lines hold a secret), an unchanged one is not read at all, anything
//!   else is read whole.
//!
//! With [`SweepOptions::full_every`], a pass also reads everything when the last full one is
//! older than that: the safety net for an old row the gateway might update in place without
//! logging a rewrite. Without a marks dir every pass is a full one, as `moltvault redact` and
//! `audit --fix` do.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::engine::{Engine, Mode};
use crate::sqlite::{AgentDb, Checkpoint, FullReason, SweepMark, Tables};

/// Errors of a sweep. Messages name files, never their content.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Reading or rewriting the agent database, or writing a file, failed.
    #[error(transparent)]
    Gateway(#[from] crate::Error),
    /// A transcript file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSONL file does not redact (the redactor's own error).
    #[error("cannot redact {path}")]
    Redact {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: moltvault_redact::Error,
    },
    /// A transcript lock stayed held by a live gateway process for the whole wait.
    #[error("{path} is held by a running gateway")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A transcript lock cannot be created.
    #[error("cannot create {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<moltvault_vault::fsio::FsError> for SweepError {
    fn from(e: moltvault_vault::fsio::FsError) -> Self {
        SweepError::Gateway(crate::Error::Write(e))
    }
}

/// What [`sweep`] covers and how long it waits.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The gateway state directory.
    pub state_dir: PathBuf,
    /// The agent id.
    pub agent: String,
    /// How long files must be unchanged before they are rewritten.
    pub settle: Duration,
    /// Only JSONL files changed this recently are swept.
    pub recent: Duration,
    /// The sweep gives up waiting for quiet after this long and sweeps anyway (under the lock).
    pub max_wait: Duration,
    /// The mode transcripts are redacted in. In `all` mode every table of the agent database
    /// holding transcript text is redacted (every derived copy); in `tools` mode only its
    /// trajectory rows are (user and assistant text is deliberately kept there).
    pub transcript_mode: Mode,
    /// Where the sweep keeps its marks (moltvault's own directory, e.g. `~/.moltvault/sweep`);
    /// `None`: every pass reads everything.
    pub marks_dir: Option<PathBuf>,
    /// With marks: read everything at least this often anyway, the safety net for an old row
    /// the gateway might update in place without logging a rewrite. `None`: only when a mark
    /// cannot vouch for its rows.
    pub full_every: Option<Duration>,
}

/// How the agent database was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbPass {
    /// There is no agent database.
    Absent,
    /// Only rows added or changed since the last sweep were read.
    Incremental,
    /// At least one table was read whole, for this reason.
    Full(FullReason),
}

/// What a sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Files rewritten.
    pub files: usize,
    /// JSONL bytes read.
    pub file_bytes: u64,
    /// Database rows rewritten.
    pub rows: usize,
    /// Database rows examined.
    pub rows_scanned: usize,
    /// Redactions made.
    pub redactions: usize,
    /// The WAL checkpoint after the database redaction was busy (old pages may stay in the
    /// WAL until the gateway's next checkpoint).
    pub wal_busy: bool,
    /// How the agent database was read.
    pub db: DbPass,
}

impl Default for SweepReport {
    fn default() -> Self {
        SweepReport {
            files: 0,
            file_bytes: 0,
            rows: 0,
            rows_scanned: 0,
            redactions: 0,
            wal_busy: false,
            db: DbPass::Absent,
        }
    }
}

/// The agent database of `agent` under `state_dir`.
pub fn agent_db_path(state_dir: &Path, agent: &str) -> PathBuf {
    state_dir
        .join("agents")
        .join(agent)
        .join("agent")
        .join(crate::sqlite::AGENT_DB_NAME)
}

/// Redacts the session side files of one agent in place once they have settled.
///
/// `transcripts` redacts JSONL transcripts (the plugin's mode); `sidecars` (mode `all`) redacts
/// trajectory sidecars and the agent database.
///
/// # Errors
/// Fails when a file or the database cannot be read or written, or a transcript lock stays
/// held; files already rewritten stay so.
pub fn sweep(
    transcripts: &Engine,
    sidecars: &Engine,
    opts: &SweepOptions,
) -> Result<SweepReport, SweepError> {
    let sessions = opts
        .state_dir
        .join("agents")
        .join(&opts.agent)
        .join("sessions");
    let db = agent_db_path(&opts.state_dir, &opts.agent);
    let start = Instant::now();
    let cutoff = SystemTime::now()
        .checked_sub(opts.recent)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // Wait for quiet: no JSONL file written for `settle` and no transcript lock held by a live
    // process. (A SQLite store is written all the time; its rows are updated under SQLite's own
    // locking after `settle`.)
    std::thread::sleep(opts.settle);
    loop {
        let files = jsonl_files(&sessions, cutoff);
        let newest = files
            .iter()
            .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
            .max();
        let quiet = newest.is_none_or(|t| t.elapsed().unwrap_or_default() >= opts.settle);
        let locked = files.iter().any(|f| lock::held(&lock::path_for(f)));
        if (quiet && !locked) || start.elapsed() >= opts.max_wait {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut report = SweepReport::default();
    sweep_jsonl(transcripts, sidecars, &sessions, cutoff, opts, &mut report)?;
    if db.is_file() {
        let tables = if opts.transcript_mode == Mode::All {
            Tables::All
        } else {
            Tables::Trajectory
        };
        let d = redact_agent_db(
            sidecars,
            &db,
            tables,
            opts.marks_dir.as_deref(),
            opts.full_every,
        )?;
        report.rows += d.rows;
        report.rows_scanned += d.scanned;
        report.redactions += d.redactions;
        report.wal_busy = d.wal_busy;
        report.db = d.pass;
    }
    Ok(report)
}

/// What [`redact_agent_db`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSweep {
    /// Rows rewritten.
    pub rows: usize,
    /// Rows examined.
    pub scanned: usize,
    /// Redactions made.
    pub redactions: usize,
    /// The WAL checkpoint after the commit was busy.
    pub wal_busy: bool,
    /// How the database was read.
    pub pass: DbPass,
}

/// Redacts an agent database with `engine` behind its raw-byte gate, in one immediate
/// transaction that waits on the gateway's writes (busy timeout); freed bytes are zeroed and
/// the WAL is checkpointed (see [`AgentDb::redact_prefiltered`]). With `marks_dir`, only the
/// rows added or changed since the mark stored there are read, and the new mark replaces it
/// (see the module docs); without it every row is read. With `full_every`, a mark whose last
/// full pass is older than that is ignored, so everything is read again.
///
/// # Errors
/// [`SweepError::Gateway`] when the database cannot be read or rewritten, or the mark cannot
/// be written (the redaction itself is committed by then; the next pass then starts from the
/// older mark).
pub fn redact_agent_db(
    engine: &Engine,
    db: &Path,
    tables: Tables,
    marks_dir: Option<&Path>,
    full_every: Option<Duration>,
) -> Result<DbSweep, SweepError> {
    let mut adb = AgentDb::open(db)?;
    let mut total = 0usize;
    let pre = |t: &str| engine.redactor().may_match(t.as_bytes());
    let f = |v: &mut serde_json::Value| {
        let n = engine.redact_findings(v).len();
        total += n;
        n > 0
    };
    let (report, pass) = match marks_dir {
        None => {
            let r = match tables {
                Tables::All => adb.redact_prefiltered(pre, f)?,
                Tables::Trajectory => adb.redact_incremental(tables, None, pre, f)?.report,
            };
            (r, DbPass::Full(FullReason::NoMark))
        }
        Some(dir) => {
            let store = MarkFile::for_db(dir, db, tables);
            let loaded = store.as_ref().and_then(MarkFile::load);
            let now = unix_now();
            let due = match (&loaded, full_every) {
                (Some((_, at)), Some(every)) => now.saturating_sub(*at) >= every.as_secs(),
                _ => false,
            };
            let prev = loaded.as_ref().filter(|_| !due).map(|(m, _)| m);
            let inc = adb.redact_incremental(tables, prev, pre, f)?;
            // When every table was read, the clock of the periodic full pass starts again.
            let whole = prev.is_none()
                || matches!(
                    inc.full,
                    Some(FullReason::MarkVersion | FullReason::NoRewriteLog)
                );
            let full_at = match &loaded {
                Some((_, at)) if !whole => *at,
                _ => now,
            };
            if let Some(store) = &store {
                store.save(&inc.mark, full_at)?;
            }
            let pass = match inc.full {
                _ if due => DbPass::Full(FullReason::Scheduled),
                Some(why) => DbPass::Full(why),
                None => DbPass::Incremental,
            };
            (inc.report, pass)
        }
    };
    let wal_busy = matches!(report.checkpoint, Some(Checkpoint::Busy { .. }));
    Ok(DbSweep {
        rows: report.total_changed(),
        scanned: report.scanned,
        redactions: total,
        wal_busy,
        pass,
    })
}

/// Where the mark of one database and scope lives, and the identity of the database file it
/// was taken on.
#[derive(Debug)]
struct MarkFile {
    path: PathBuf,
    db: PathBuf,
    dev: u64,
    ino: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredMark {
    db: PathBuf,
    dev: u64,
    ino: u64,
    /// When every table was last read whole (seconds since the epoch).
    #[serde(default)]
    full_at: u64,
    mark: SweepMark,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn path_key(p: &Path) -> String {
    hex::encode(&Sha256::digest(p.as_os_str().as_bytes())[..12])
}

impl MarkFile {
    /// `None` when the database cannot be resolved (the pass is then a full one).
    fn for_db(dir: &Path, db: &Path, tables: Tables) -> Option<MarkFile> {
        let canon = std::fs::canonicalize(db).ok()?;
        let meta = std::fs::metadata(&canon).ok()?;
        let scope = match tables {
            Tables::All => "all",
            Tables::Trajectory => "trajectory",
        };
        Some(MarkFile {
            path: dir.join(format!("{}-{scope}.json", path_key(&canon))),
            db: canon,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The stored mark, if it was taken on this very database file; anything unreadable
    /// counts as no mark (a full pass).
    fn load(&self) -> Option<(SweepMark, u64)> {
        let text = std::fs::read(&self.path).ok()?;
        let stored: StoredMark = serde_json::from_slice(&text).ok()?;
        (stored.db == self.db && stored.dev == self.dev && stored.ino == self.ino)
            .then_some((stored.mark, stored.full_at))
    }

    fn save(&self, mark: &SweepMark, full_at: u64) -> Result<(), SweepError> {
        let stored = StoredMark {
            db: self.db.clone(),
            dev: self.dev,
            ino: self.ino,
            full_at,
            mark: mark.clone(),
        };
        save_json(&self.path, &stored)
    }
}

fn save_json(path: &Path, v: &impl serde::Serialize) -> Result<(), SweepError> {
    if let Some(dir) = path.parent() {
        moltvault_vault::fsio::create_secret_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec(v).map_err(|e| crate::Error::json(path, &e))?;
    moltvault_vault::fsio::write_atomic(
        path,
        &bytes,
        moltvault_vault::fsio::WriteOptions::secret_replace(),
    )?;
    Ok(())
}

/// How much of a JSONL file the last sweep covered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileMark {
    dev: u64,
    ino: u64,
    /// Bytes swept (always the end of a complete line).
    len: u64,
    /// Modification time when swept, in nanoseconds since the epoch.
    mtime_ns: i128,
    /// Digest of the last (up to) [`TAIL_BYTES`] bytes before `len`.
    tail: String,
}

const TAIL_BYTES: u64 = 4096;

/// The JSONL marks of one sessions directory (file name → mark).
type FileMarks = BTreeMap<String, FileMark>;

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

fn tail_digest(bytes: &[u8]) -> String {
    let from = bytes.len().saturating_sub(TAIL_BYTES as usize);
    hex::encode(&Sha256::digest(&bytes[from..])[..16])
}

fn sweep_jsonl(
    transcripts: &Engine,
    sidecars: &Engine,
    sessions: &Path,
    cutoff: SystemTime,
    opts: &SweepOptions,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let files = jsonl_files(sessions, cutoff);
    let store = opts.marks_dir.as_ref().and_then(|d| {
        let canon = std::fs::canonicalize(sessions).ok()?;
        Some(d.join(format!("{}-jsonl.json", path_key(&canon))))
    });
    let loaded: Option<FileMarks> = store
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut marks = loaded.clone().unwrap_or_default();
    // Group each sidecar with its transcript: the transcript's lock covers both.
    let mut done = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for f in &files {
        let lock_path = lock::path_for(f);
        if !done.insert(lock_path.clone()) {
            continue;
        }
        let _guard = lock::acquire(&lock_path, Duration::from_secs(30))?;
        for g in files.iter().filter(|g| lock::path_for(g) == lock_path) {
            let engine = if is_sidecar(g) { sidecars } else { transcripts };
            let name = g
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            seen.insert(name.clone());
            let prev = store.as_ref().and_then(|_| marks.get(&name));
            let (n, read, mark) = redact_jsonl_file(engine, g, prev)?;
            report.file_bytes += read;
            if n > 0 {
                report.files += 1;
                report.redactions += n;
            }
            match mark {
                Some(m) => marks.insert(name, m),
                None => marks.remove(&name),
            };
        }
    }
    if let Some(p) = &store {
        // Marks of files gone or no longer recent are dropped: such a file is read whole if it
        // changes again.
        marks.retain(|k, _| seen.contains(k));
        // Written only when it changed (a SQLite-era agent has no JSONL files at all).
        if loaded.as_ref() != Some(&marks) {
            save_json(p, &marks)?;
        }
    }
    Ok(())
}

fn is_sidecar(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".trajectory.jsonl"))
}

/// The plain (not archived) JSONL files of a sessions dir changed since `cutoff`.
fn jsonl_files(dir: &Path, cutoff: SystemTime) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter(|p| {
            p.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= cutoff)
        })
        .collect();
    out.sort();
    out
}

/// Redacts one JSONL file in place (atomically, mode and owner kept, unchanged lines byte for
/// byte), reading only what was appended since `prev` when the file provably only grew.
/// Returns the redactions, the bytes read and the file's new mark.
fn redact_jsonl_file(
    engine: &Engine,
    path: &Path,
    prev: Option<&FileMark>,
) -> Result<(usize, u64, Option<FileMark>), SweepError> {
    let read_err = |e| SweepError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let same_file = prev.filter(|m| m.dev == meta.dev() && m.ino == meta.ino());
    if let Some(m) = same_file
        && m.len == meta.len()
        && m.mtime_ns == mtime_ns(&meta)
    {
        // Not written since the last sweep.
        return Ok((0, 0, Some(m.clone())));
    }
    // Resume after the swept prefix when the file only grew: same inode, longer, and the bytes
    // just before the old end are those the last sweep left.
    let mut start = 0u64;
    if let Some(m) = same_file
        && m.len <= meta.len()
        && m.len > 0
    {
        let from = m.len.saturating_sub(TAIL_BYTES);
        let mut tail = vec![0; usize::try_from(m.len - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from)).map_err(read_err)?;
        file.read_exact(&mut tail).map_err(read_err)?;
        if tail_digest(&tail) == m.tail {
            start = m.len;
        }
    }
    file.seek(SeekFrom::Start(start)).map_err(read_err)?;
    let mut input =
        Vec::with_capacity(usize::try_from(meta.len() - start.min(meta.len())).unwrap_or(0));
    file.read_to_end(&mut input).map_err(read_err)?;
    let read = input.len() as u64;
    // A last line without its newline may still be written to: it is redacted now and read
    // again next time.
    let complete = input.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::with_capacity(input.len());
    let mut findings = moltvault_redact::CountSink::default();
    engine
        .redactor()
        .redact_jsonl_bytes(&input, &mut out, &mut findings)
        .map_err(|e| SweepError::Redact {
            path: path.to_path_buf(),
            source: e,
        })?;
    let n = findings.0 as usize;
    let swept_end;
    let tail;
    if n > 0 {
        // Rewrite the whole file: the swept prefix as it is, then the redacted lines.
        let mut whole = Vec::with_capacity(usize::try_from(start).unwrap_or(0) + input.len());
        if start > 0 {
            let mut prefix = vec![0; usize::try_from(start).unwrap_or(0)];
            file.seek(SeekFrom::Start(0)).map_err(read_err)?;
            file.read_exact(&mut prefix).map_err(read_err)?;
            whole.extend_from_slice(&prefix);
        }
        let out_complete = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        whole.extend_from_slice(&out);
        let end = whole.len() - (out.len() - out_complete);
        swept_end = end as u64;
        tail = tail_digest(&whole[..end]);
        let opts = moltvault_vault::fsio::WriteOptions::like_existing(path)?;
        moltvault_vault::fsio::write_atomic(path, &whole, opts)?;
    } else {
        swept_end = start + complete as u64;
        let mut last = Vec::new();
        let from = swept_end.saturating_sub(TAIL_BYTES);
        if from < start {
            // Part of the tail lies in the prefix we did not read.
            let mut head = vec![0; usize::try_from(start - from).unwrap_or(0)];
            file.seek(SeekFrom::Start(from)).map_err(read_err)?;
            file.read_exact(&mut head).map_err(read_err)?;
            last.extend_from_slice(&head);
            last.extend_from_slice(&input[..complete]);
        } else {
            let off = usize::try_from(from - start).unwrap_or(0);
            last.extend_from_slice(&input[off..complete]);
        }
        tail = tail_digest(&last);
    }
    // The mark describes the file as it is now (after a rewrite: the new inode).
    let now = std::fs::metadata(path).map_err(read_err)?;
    let mark = FileMark {
        dev: now.dev(),
        ino: now.ino(),
        len: swept_end,
        mtime_ns: if swept_end == now.len() {
            mtime_ns(&now)
        } else {
            // A partial line remains: the file must be looked at again.
            -1
        },
        tail,
    };
    Ok((n, read, Some(mark)))
}

/// The gateway's transcript write lock (`<file>.jsonl.lock`, JSON `{pid, createdAt}`), which the
/// sweep takes so no turn appends while a file is being rewritten.
mod lock {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant, SystemTime};

    use super::SweepError;

    /// The lock that guards `file`: a sidecar `<sid>.trajectory.jsonl` shares `<sid>.jsonl.lock`.
    pub fn path_for(file: &Path) -> PathBuf {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = name
            .strip_suffix(".trajectory.jsonl")
            .map(|s| format!("{s}.jsonl"))
            .unwrap_or(name);
        file.with_file_name(format!("{base}.lock"))
    }

    /// Whether `lock` exists and names a live process (an unreadable or torn lock counts as
    /// held by someone else).
    pub fn held(lock: &Path) -> bool {
        let Ok(text) = std::fs::read_to_string(lock) else {
            return std::fs::symlink_metadata(lock).is_ok();
        };
        let pid = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("pid").and_then(serde_json::Value::as_u64))
            .and_then(|p| u32::try_from(p).ok());
        match pid {
            Some(pid) => crate::sessions::pid_alive(pid),
            None => true,
        }
    }

    /// A held lock, removed on drop.
    #[derive(Debug)]
    pub struct Guard(PathBuf);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `SystemTime` as the gateway writes `createdAt` (`2026-11-25T18:00:00.000Z`).
    pub fn rfc3339(t: SystemTime) -> String {
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            d.subsec_millis()
        )
    }

    /// Takes the lock, waiting up to `wait` for a live holder; a stale lock is taken over.
    pub fn acquire(lock: &Path, wait: Duration) -> Result<Guard, SweepError> {
        let start = Instant::now();
        let cannot = |e| SweepError::Lock {
            path: lock.to_path_buf(),
            source: e,
        };
        loop {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(lock);
            match created {
                Ok(mut f) => {
                    let guard = Guard(lock.to_path_buf());
                    let body = serde_json::json!({
                        "pid": std::process::id(),
                        "createdAt": rfc3339(SystemTime::now()),
                    });
                    f.write_all(body.to_string().as_bytes()).map_err(cannot)?;
                    return Ok(guard);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !held(lock) {
                        let _ = std::fs::remove_file(lock);
                        continue;
                    }
                    if start.elapsed() >= wait {
                        return Err(SweepError::Locked {
                            path: lock.to_path_buf(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(cannot(e)),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::engine::EngineSource;
    use moltvault_testutils::homes::{SampleLine, TestHome};
    use serde_json::json;

    const SID: &str = "0800f919-15e3-4b0e-a722-ad7259e4e455";

    /// A fake OpenAI-style key, assembled so the repository does not trip secret scanners.
    fn fake_key(tag: &str) -> String {
        format!(
            "sk-{}-{tag}{}",
            "proj", "SweepK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab"
        )
    }

    fn conn(db: &Path) -> rusqlite::Connection {
        rusqlite::Connection::open(db).unwrap()
    }

    fn add_event(db: &Path, seq: i64, text: &str) {
        let ev = json!({"type": "message", "id": format!("e{seq}"), "parentId": null,
            "timestamp": "2026-11-25T18:00:00.000Z",
            "message": {"role": "user", "content": [{"type": "text", "text": text}]}});
        conn(db)
            .execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, ?2, ?3, 1795629600000)",
                rusqlite::params![SID, seq, ev.to_string()],
            )
            .unwrap();
    }

    /// Rewrites row 100 in place, as compaction or an edit does: a user message holding
    /// `content`.
    fn rewrite_row_100(db: &Path, content: &str) {
        let ev = json!({"type": "message", "id": "e100", "message": {"role": "user", "content": content}});
        conn(db)
            .execute(
                "UPDATE transcript_events SET event_json = ?1 WHERE session_id = ?2 AND seq = 100",
                rusqlite::params![ev.to_string(), SID],
            )
            .unwrap();
    }

    /// Plants the key in a user message event, the FTS copy and a trajectory row of the real
    /// 2026.9.6 sample database.
    fn plant(db: &Path, key: &str, seq: i64) {
        add_event(db, seq, &format!("my key is {key}"));
        let c = conn(db);
        c.execute(
            "INSERT INTO session_transcript_fts (text, session_id, message_id, role, timestamp) VALUES (?1, ?2, 'e1', 'user', 't')",
            rusqlite::params![format!("my key is {key}"), SID],
        )
        .unwrap();
        c.execute(
            "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, ?2, 'r', ?3, 1795629600000)",
            rusqlite::params![SID, seq, json!({"type": "tool.result", "data": {"content": format!("key {key}")}}).to_string()],
        )
        .unwrap();
    }

    fn holders(db: &Path, key: &str) -> Vec<&'static str> {
        let c = conn(db);
        let like = format!("%{key}%");
        let mut out = Vec::new();
        for (table, col) in [
            ("transcript_events", "event_json"),
            ("session_transcript_fts", "text"),
            ("trajectory_runtime_events", "event_json"),
        ] {
            let n: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM {table} WHERE {col} LIKE ?1"),
                    [&like],
                    |r| r.get(0),
                )
                .unwrap();
            if n > 0 {
                out.push(table);
            }
        }
        out
    }

    struct Fixture {
        home: TestHome,
        transcripts: Engine,
        sidecars: Engine,
        opts: SweepOptions,
    }

    impl Fixture {
        fn new(line: SampleLine, mode: Mode, marks: bool) -> Fixture {
            let home = TestHome::new(line);
            let source =
                EngineSource::with_literals(&home.root().join("vault"), None, Vec::new()).unwrap();
            let opts = SweepOptions {
                state_dir: home.state_dir().to_path_buf(),
                agent: "main".into(),
                settle: Duration::ZERO,
                recent: Duration::from_secs(900),
                max_wait: Duration::from_secs(5),
                transcript_mode: mode,
                marks_dir: marks.then(|| home.root().join("vault/sweep")),
                full_every: Some(Duration::from_secs(86_400)),
            };
            Fixture {
                transcripts: source.engine(mode).unwrap(),
                sidecars: source.engine(Mode::All).unwrap(),
                home,
                opts,
            }
        }

        fn db(&self) -> PathBuf {
            agent_db_path(self.home.state_dir(), "main")
        }

        fn sweep(&self) -> SweepReport {
            sweep(&self.transcripts, &self.sidecars, &self.opts).unwrap()
        }
    }

    #[test]
    fn sweep_in_all_mode_redacts_every_copy_in_the_agent_database() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        let key = fake_key("a");
        plant(&db, &key, 100);
        let report = fx.sweep();
        assert!(holders(&db, &key).is_empty(), "{:?}", holders(&db, &key));
        assert_eq!(report.rows, 3, "{report:?}");
        assert_eq!(report.redactions, 3, "{report:?}");
        assert!(!report.wal_busy);
        assert_eq!(report.db, DbPass::Full(FullReason::NoMark));
        // The FTS index no longer finds the key's distinctive tail; the database is sound.
        let c = conn(&db);
        let hits: i64 = c
            .query_row(
                "SELECT count(*) FROM session_transcript_fts WHERE session_transcript_fts MATCH 'SweepK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hits, 0);
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // And the raw bytes of the database files hold no copy of it.
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(raw) = std::fs::read(format!("{}{suffix}", db.display())) {
                assert!(
                    !raw.windows(key.len()).any(|w| w == key.as_bytes()),
                    "openclaw-agent.sqlite{suffix}"
                );
            }
        }
    }

    #[test]
    fn sweep_in_tools_mode_redacts_only_trajectory_rows() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::Tools, true);
        let key = fake_key("t");
        plant(&fx.db(), &key, 100);
        let report = fx.sweep();
        // User text is deliberately kept in tools mode; the flight recorder is redacted.
        assert_eq!(
            holders(&fx.db(), &key),
            ["transcript_events", "session_transcript_fts"]
        );
        assert_eq!(report.rows, 1, "{report:?}");
        // The next turn's trajectory row is found from the mark.
        let key2 = fake_key("u");
        plant(&fx.db(), &key2, 101);
        let report = fx.sweep();
        assert_eq!(report.db, DbPass::Incremental);
        assert_eq!((report.rows, report.rows_scanned), (1, 1), "{report:?}");
        assert_eq!(
            holders(&fx.db(), &key2),
            ["transcript_events", "session_transcript_fts"]
        );
    }

    /// Rows read on every pass: the small per-session tables (one per non-NULL text value,
    /// as the pass counts them) and the newest memory chunks.
    fn whole_rows(db: &Path) -> usize {
        let c = conn(db);
        let mut n = 0i64;
        for (t, col) in [
            ("session_pending_inputs", "message_json"),
            ("context_engine_turn_outbox", "payload_json"),
            ("session_input_completions", "outcome_json"),
            ("session_goal_operations", "result_json"),
            ("conversation_deliveries", "reply_text"),
            ("session_suggestions", "text"),
            ("session_progress_cards", "markdown"),
            ("session_progress_cards", "steps_json"),
            ("session_nodes", "entry_json"),
            ("session_nodes", "display_name"),
            ("session_windows", "display_name"),
        ] {
            n += c
                .query_row(
                    &format!("SELECT count(*) FROM {t} WHERE {col} IS NOT NULL"),
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap();
        }
        // Memory chunks stamped with the newest `updated_at` are read again (an upsert in
        // the same millisecond would carry the same stamp).
        n += c
            .query_row(
                "SELECT count(*) FROM memory_index_chunks WHERE updated_at = (SELECT max(updated_at) FROM memory_index_chunks)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        usize::try_from(n).unwrap()
    }

    #[test]
    fn the_second_sweep_reads_only_the_rows_of_the_new_turn() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        for seq in 100..400 {
            add_event(&db, seq, &format!("ordinary line {seq}"));
        }
        let first = fx.sweep();
        assert_eq!(first.db, DbPass::Full(FullReason::NoMark));
        assert!(first.rows_scanned > 300, "{first:?}");
        // Nothing new: only the small per-session tables are read.
        let idle = fx.sweep();
        assert_eq!(idle.db, DbPass::Incremental);
        assert_eq!(idle.rows_scanned, whole_rows(&db), "{idle:?}");
        // One turn: three new rows (event, FTS copy, trajectory), each with the key.
        let key = fake_key("n");
        plant(&db, &key, 400);
        let turn = fx.sweep();
        assert_eq!(turn.db, DbPass::Incremental);
        assert_eq!(turn.rows_scanned, whole_rows(&db) + 3, "{turn:?}");
        assert_eq!((turn.rows, turn.redactions), (3, 3), "{turn:?}");
        assert!(holders(&db, &key).is_empty());
        // The mark is moltvault's own secret-mode file.
        let dir = fx.opts.marks_dir.clone().unwrap();
        let marks: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert!(
            marks
                .iter()
                .any(|e| e.file_name().to_string_lossy().ends_with("-all.json"))
        );
        for e in &marks {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{:?}", e.path());
            let text = std::fs::read_to_string(e.path()).unwrap();
            assert!(
                !text.contains("ordinary line"),
                "a mark holds no transcript text"
            );
        }
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_rewritten_old_row_is_swept_when_the_gateway_logs_the_rewrite() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        add_event(&db, 100, "nothing yet");
        add_event(&db, 101, "the newest row stays the same");
        fx.sweep();
        // The gateway's exact rewrite of an old row (compaction, edit) rotates the session's
        // generation in transcript_rewrite_watermarks.
        let key = fake_key("r");
        rewrite_row_100(&db, &format!("now {key}"));
        let c = conn(&db);
        assert_eq!(fx.sweep().db, DbPass::Incremental);
        // An update of an old row that the gateway does not log is not seen by an incremental
        // pass (every rewrite path of 2026.9 logs it; `moltvault redact` reads everything).
        assert_eq!(holders(&db, &key), ["transcript_events"]);
        c.execute(
            "INSERT INTO transcript_rewrite_watermarks (session_id, generation, updated_at) VALUES (?1, 'g2', 1)
             ON CONFLICT(session_id) DO UPDATE SET generation = 'g2', updated_at = 1",
            [SID],
        )
        .unwrap();
        let report = fx.sweep();
        // With the log entry, every row of the rewritten session is read again.
        assert_eq!(report.db, DbPass::Incremental);
        assert_eq!(report.rows, 1, "{report:?}");
        assert!(holders(&db, &key).is_empty());
    }

    #[test]
    fn the_periodic_full_pass_catches_an_unlogged_update() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        add_event(&db, 100, "old");
        add_event(&db, 101, "newest");
        fx.sweep();
        let key = fake_key("p");
        rewrite_row_100(&db, &key);
        assert_eq!(fx.sweep().db, DbPass::Incremental);
        assert_eq!(holders(&db, &key), ["transcript_events"]);
        // A day later (the stored time of the last full pass moved back) everything is read.
        let dir = fx.opts.marks_dir.clone().unwrap();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("-all.json") {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                v["full_at"] = json!(unix_now() - 86_401);
                std::fs::write(e.path(), v.to_string()).unwrap();
            }
        }
        assert_eq!(fx.sweep().db, DbPass::Full(FullReason::Scheduled));
        assert!(holders(&db, &key).is_empty());
        // And the clock starts again.
        assert_eq!(fx.sweep().db, DbPass::Incremental);
    }

    #[test]
    fn reused_rowids_make_the_table_read_whole() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        for seq in 100..110 {
            add_event(&db, seq, &format!("line {seq}"));
        }
        fx.sweep();
        // The gateway deletes the newest rows; new rows then get their rowids again.
        let c = conn(&db);
        c.execute(
            "DELETE FROM transcript_events WHERE seq >= 105 AND session_id = ?1",
            [SID],
        )
        .unwrap();
        let key = fake_key("x");
        add_event(&db, 200, &format!("reused {key}"));
        for seq in 201..210 {
            add_event(&db, seq, &format!("line {seq}"));
        }
        let report = fx.sweep();
        assert_eq!(
            report.db,
            DbPass::Full(FullReason::TableChanged("transcript_events"))
        );
        assert!(holders(&db, &key).is_empty());
        // And a vacuumed database (rowids may be renumbered) is caught the same way or, when
        // nothing moved, stays incremental: never a row skipped.
        let key2 = fake_key("v");
        add_event(&db, 300, &format!("after vacuum {key2}"));
        c.execute_batch("VACUUM").unwrap();
        fx.sweep();
        assert!(holders(&db, &key2).is_empty());
    }

    #[test]
    fn metadata_updates_of_the_newest_row_keep_the_sweep_incremental() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        add_event(&db, 100, "newest");
        fx.sweep();
        // The gateway updates the navigation counters of rows it already wrote.
        conn(&db)
            .execute(
                "UPDATE transcript_events SET navigation_json = NULL WHERE session_id = ?1 AND seq = 100",
                [SID],
            )
            .unwrap();
        assert_eq!(fx.sweep().db, DbPass::Incremental);
        // Its text changing is a different matter: the table is read whole.
        let key = fake_key("m");
        rewrite_row_100(&db, &key);
        assert_eq!(
            fx.sweep().db,
            DbPass::Full(FullReason::TableChanged("transcript_events"))
        );
        assert!(holders(&db, &key).is_empty());
    }

    #[test]
    fn another_database_at_the_same_path_gets_a_full_pass() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_9_6, Mode::All, true);
        let db = fx.db();
        fx.sweep();
        // A restore puts another file (another inode) at the path.
        let copy = db.with_extension("copy");
        std::fs::copy(&db, &copy).unwrap();
        std::fs::rename(&copy, &db).unwrap();
        let report = fx.sweep();
        assert_eq!(report.db, DbPass::Full(FullReason::NoMark));
        // A mark that does not parse counts as none.
        let dir = fx.opts.marks_dir.clone().unwrap();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            std::fs::write(e.path(), b"{not json").unwrap();
        }
        assert_eq!(fx.sweep().db, DbPass::Full(FullReason::NoMark));
        // Without a marks dir every sweep is a full one.
        let mut full = fx.opts.clone();
        full.marks_dir = None;
        let r = sweep(&fx.transcripts, &fx.sidecars, &full).unwrap();
        assert_eq!(r.db, DbPass::Full(FullReason::NoMark));
    }

    fn jsonl_line(text: &str) -> String {
        json!({"type": "message", "message": {"role": "toolResult", "content": [{"type": "text", "text": text}]}})
            .to_string()
            + "\n"
    }

    #[test]
    fn jsonl_files_are_read_from_where_the_last_sweep_stopped() {
        let fx = Fixture::new(SampleLine::OpenClaw2026_7_35, Mode::All, true);
        let sessions = fx.home.path("agents/main/sessions");
        let f = sessions.join("s1.trajectory.jsonl");
        let mut body = String::new();
        for i in 0..200 {
            body.push_str(&jsonl_line(&format!("line {i}")));
        }
        std::fs::write(&f, &body).unwrap();
        let first = fx.sweep();
        assert!(first.file_bytes >= body.len() as u64, "{first:?}");
        // Unchanged: not read.
        let idle = fx.sweep();
        assert_eq!(idle.file_bytes, 0, "{idle:?}");
        // Appended: only the new line is read, and the file is rewritten with it redacted.
        let key = fake_key("j");
        let added = jsonl_line(&format!("key {key}"));
        let mut fh = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        std::io::Write::write_all(&mut fh, added.as_bytes()).unwrap();
        drop(fh);
        let turn = fx.sweep();
        assert_eq!(turn.file_bytes, added.len() as u64, "{turn:?}");
        assert_eq!((turn.files, turn.redactions), (1, 1), "{turn:?}");
        let now = std::fs::read_to_string(&f).unwrap();
        assert!(!now.contains(&key));
        assert!(
            now.starts_with(&body),
            "the swept prefix is kept byte for byte"
        );
        // The rewrite (a new inode) is the mark's starting point: the next append is read alone.
        let more = jsonl_line("and one more");
        let mut fh = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        std::io::Write::write_all(&mut fh, more.as_bytes()).unwrap();
        drop(fh);
        assert_eq!(fx.sweep().file_bytes, more.len() as u64);
        // A file rewritten in place under the mark (same length, other bytes) is read whole.
        let text = std::fs::read_to_string(&f).unwrap();
        let key2 = fake_key("k");
        let swapped = text.replacen("line 199", &key2, 1);
        std::fs::write(&f, &swapped).unwrap();
        let r = fx.sweep();
        assert_eq!(r.file_bytes, swapped.len() as u64, "{r:?}");
        assert!(!std::fs::read_to_string(&f).unwrap().contains(&key2));
    }

    #[test]
    fn the_lock_is_written_in_the_gateway_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_629_600_123);
        assert_eq!(lock::rfc3339(t), "2026-11-25T18:00:00.123Z");
        assert_eq!(
            lock::rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            lock::path_for(Path::new("/s/abc.trajectory.jsonl")),
            Path::new("/s/abc.jsonl.lock")
        );
        assert_eq!(
            lock::path_for(Path::new("/s/abc.jsonl")),
            Path::new("/s/abc.jsonl.lock")
        );
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("abc.jsonl.lock");
        // A dead writer's lock is taken over; ours is released on drop.
        std::fs::write(&l, r#"{"pid":999999999,"createdAt":"x"}"#).unwrap();
        let g = lock::acquire(&l, Duration::from_millis(200)).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&l).unwrap()).unwrap();
        assert_eq!(body["pid"], std::process::id());
        assert!(lock::held(&l));
        // Held by a live process (this one): a second taker gives up after the wait.
        assert!(matches!(
            lock::acquire(&l, Duration::from_millis(200)),
            Err(SweepError::Locked { .. })
        ));
        drop(g);
        assert!(!l.exists());
    }
}
