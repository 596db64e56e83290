//! Applies the safe fixes of an [`AuditReport`]: permissions through `fchmod` on descriptors
//! opened without following any symlink, redaction of inactive transcripts through the
//! atomic write funnel, and (with a vault) sealing of idle transcripts through the batch seal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use moltvault_redact::{LiteralSecret, Mode, Redactor, RedactorOptions, RuleSet};
use moltvault_vault::fsio::{self, AtomicFile, WriteOptions};
use moltvault_vault::seal::{self, BatchConfig, SealOptions};
use rustix::fs::{FileType, Mode as FsMode, OFlags};

use super::plaintext::{literals, open_nofollow};
use super::{AuditReport, SafeFix};
use crate::Result;
use crate::TranscriptKind;
use crate::discover::Gateway;
use crate::sessions::lock_state;

/// Transcripts written more recently than this are left alone: the gateway may be appending.
const ACTIVE_WINDOW: Duration = Duration::from_secs(60);

/// What [`fix`] needs besides the report.
#[derive(Debug)]
pub struct FixOptions<'a> {
    /// The redaction rules.
    pub rules: &'a RuleSet,
    /// The install's fingerprint key, so placeholders match the ones `moltvault redact` writes.
    pub key: moltvault_redact::FingerprintKey,
    /// A JSONL file where each redaction is noted (file, counts by rule, time; no value).
    pub note: Option<PathBuf>,
    /// The time the fix considers "now" (for the active-transcript window and idleness).
    pub now: SystemTime,
    /// moltvault's own directory when a vault exists there: idle transcripts are sealed to its
    /// recipient (no secret needed). `None` leaves them alone (the finding stays a hint).
    pub vault_dir: Option<PathBuf>,
    /// How long a transcript must be untouched to be sealed (the audit's `idle_after`).
    pub idle_after: Duration,
}

/// What one fix did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FixAction {
    /// Permissions changed.
    Chmod {
        /// Mode before, as octal.
        from: String,
        /// Mode after, as octal.
        to: String,
    },
    /// Secrets redacted in place.
    Redacted {
        /// Secrets replaced, by rule id.
        secrets: BTreeMap<String, u64>,
    },
    /// Secrets redacted in an agent database, in one transaction.
    RedactedDb {
        /// Secrets replaced, by rule id.
        secrets: BTreeMap<String, u64>,
        /// Rows rewritten, by `table.column`.
        rows: BTreeMap<String, usize>,
        /// What became of the old bytes: `vacuumed` (gateway stopped: the file was rebuilt),
        /// `zeroed, WAL truncated`, `zeroed, no WAL`, or `zeroed, WAL busy (…)` when the
        /// gateway was reading and part of the WAL still holds old pages.
        old_bytes: String,
    },
    /// Sealed to the vault recipient (`moltvault unseal` restores it); the plaintext is gone.
    Sealed {
        /// The sealed file (`<path>.age`).
        sealed: PathBuf,
        /// Plaintext size in bytes.
        bytes: u64,
    },
    /// Left alone, with the reason.
    Skipped {
        /// Why (the file is active, changed, a symlink, not ours…).
        reason: String,
    },
}

/// One fix applied (or skipped) on one path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FixOutcome {
    /// The check whose finding this fixes.
    pub check: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// What happened.
    #[serde(flatten)]
    pub action: FixAction,
}

/// Applies every safe fix in `report`: permissions first, then redaction of inactive
/// transcripts, then (with `opts.vault_dir`) sealing of idle transcripts: exactly the files
/// [`idle_seal_candidates`] selects before any fix runs, minus those whose transcript's write
/// lock is held. Nothing else is changed; run [`super::audit`] again to see what is left.
///
/// # Errors
/// Fails only when the note cannot be written; a path that cannot be fixed becomes a
/// [`FixAction::Skipped`] outcome.
pub fn fix(
    gateway: &Gateway,
    report: &AuditReport,
    opts: &FixOptions<'_>,
) -> Result<Vec<FixOutcome>> {
    let mut outcomes = Vec::new();
    // Chosen before anything is rewritten: redaction below gives the files a new mtime.
    let sealing = report
        .findings
        .iter()
        .find(|f| f.fix == Some(SafeFix::Seal))
        .zip(opts.vault_dir.as_deref())
        .map(|(f, dir)| {
            let plan = idle_seal_candidates(gateway, opts.idle_after, opts.now);
            (f, dir, plan)
        });
    let mut redacted: BTreeSet<PathBuf> = BTreeSet::new();
    for f in &report.findings {
        if f.fix != Some(SafeFix::Chmod) {
            continue;
        }
        for a in &f.files {
            let action = match tighten(&report.state_dir, &a.path) {
                Ok(a) => a,
                Err(e) => FixAction::Skipped {
                    reason: e.to_string(),
                },
            };
            outcomes.push(FixOutcome {
                check: f.check,
                path: a.path.clone(),
                action,
            });
        }
    }

    let redacting: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.fix == Some(SafeFix::Redact))
        .collect();
    if !redacting.is_empty() {
        let literals = literals(&gateway.configured_secrets().unwrap_or_default());
        let redactor = build_redactor(opts, literals);
        let mut notes = Vec::new();
        let mut dbs_done: Vec<PathBuf> = Vec::new();
        for f in redacting {
            for a in &f.files {
                let is_db = is_agent_db(&a.path);
                if is_db {
                    // The three database findings share one transaction.
                    if dbs_done.contains(&a.path) {
                        continue;
                    }
                    dbs_done.push(a.path.clone());
                }
                let stopped = is_db && !gateway.is_running();
                let run = |r: &Redactor| {
                    if is_db {
                        redact_db(r, &a.path, stopped)
                    } else {
                        redact_file(r, &a.path, opts.now)
                    }
                };
                let action = match redactor.as_ref().map(run) {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => FixAction::Skipped {
                        reason: e.to_string(),
                    },
                    Err(why) => FixAction::Skipped {
                        reason: why.clone(),
                    },
                };
                if let FixAction::Redacted { .. } = &action {
                    redacted.insert(a.path.clone());
                }
                if let FixAction::Redacted { secrets } | FixAction::RedactedDb { secrets, .. } =
                    &action
                {
                    notes.push(serde_json::json!({
                        "time": opts.now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs(),
                        "check": f.check,
                        "path": a.path,
                        "secrets": secrets,
                    }));
                }
                outcomes.push(FixOutcome {
                    check: f.check,
                    path: a.path.clone(),
                    action,
                });
            }
        }
        if let (Some(note), false) = (&opts.note, notes.is_empty()) {
            append_notes(note, &notes)?;
        }
    }
    if let Some((finding, vault_dir, plan)) = sealing {
        let why_not = |reason: String| FixOutcome {
            check: finding.check,
            path: finding.path.clone(),
            action: FixAction::Skipped { reason },
        };
        match (plan, moltvault_vault::Vault::open(vault_dir)) {
            (Ok(plan), Ok(vault)) => {
                seal_idle(finding.check, &plan, &redacted, &vault, &mut outcomes)
            }
            (Err(e), _) => outcomes.push(why_not(format!("the sessions could not be listed: {e}"))),
            (_, Err(e)) => outcomes.push(why_not(format!("the vault could not be opened: {e}"))),
        }
    }
    Ok(outcomes)
}

/// The transcripts `moltvault seal --all-idle --idle <idle>` seals: every unsealed transcript
/// file (transcripts, trajectory sidecars, `.deleted`, `.reset` and `.bak` copies, `.zst`
/// archives) untouched for `idle` at `now`, except the files of each session key's current
/// session (the gateway reopens those every turn). [`idle_transcripts`] also lists those.
///
/// # Errors
/// Fails when the sessions directories or their `sessions.json` cannot be read.
pub fn idle_seal_candidates(
    gateway: &Gateway,
    idle: Duration,
    now: SystemTime,
) -> Result<Vec<PathBuf>> {
    Ok(idle_transcripts(gateway, idle, now)?.idle)
}

/// The unsealed transcript files untouched for a while, split by whether they belong to a
/// session key's current session ([`idle_transcripts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdleTranscripts {
    /// Files of no current session: what `seal --all-idle` seals.
    pub idle: Vec<PathBuf>,
    /// Files of current sessions: left out unless asked for (`seal --include-current`).
    pub current: Vec<PathBuf>,
}

/// Every unsealed transcript file untouched for `idle` at `now`, in the gateway's listing
/// order, split into the files of current sessions and the others.
///
/// # Errors
/// Fails when the sessions directories or their `sessions.json` cannot be read.
pub fn idle_transcripts(
    gateway: &Gateway,
    idle: Duration,
    now: SystemTime,
) -> Result<IdleTranscripts> {
    let current: BTreeSet<PathBuf> = gateway
        .sessions()?
        .into_iter()
        .filter(|s| s.current)
        .flat_map(|s| s.paths)
        .collect();
    let mut out = IdleTranscripts::default();
    for f in gateway.transcript_files()? {
        if f.kind == TranscriptKind::Sealed {
            continue;
        }
        let idle_enough = std::fs::symlink_metadata(&f.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|d| d >= idle);
        if !idle_enough {
            continue;
        }
        if current.contains(&f.path) {
            out.current.push(f.path);
        } else {
            out.idle.push(f.path);
        }
    }
    Ok(out)
}

/// Seals `plan` with the batch seal `moltvault seal` uses (written, verified, made durable,
/// then the plaintext removed). Files whose transcript is locked are skipped. Files this fix
/// just redacted are exempt from the seal's one-minute "recently written" guard (the write was
/// ours; they were idle before it); every other file keeps it.
fn seal_idle(
    check: &'static str,
    plan: &[PathBuf],
    redacted: &BTreeSet<PathBuf>,
    vault: &moltvault_vault::Vault,
    outcomes: &mut Vec<FixOutcome>,
) {
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for p in plan {
        if locked(p) {
            outcomes.push(FixOutcome {
                check,
                path: p.clone(),
                action: FixAction::Skipped {
                    reason: "the gateway holds its write lock".into(),
                },
            });
        } else if redacted.contains(p) {
            ours.push(p.clone());
        } else {
            others.push(p.clone());
        }
    }
    let dirs: BTreeSet<&Path> = plan.iter().filter_map(|p| p.parent()).collect();
    for d in dirs {
        seal::sweep_stale_temps(d);
    }
    let exempt = SealOptions {
        min_idle: Duration::ZERO,
        ..SealOptions::default()
    };
    for (paths, sopts) in [(others, SealOptions::default()), (ours, exempt)] {
        if paths.is_empty() {
            continue;
        }
        let mut done: Vec<(usize, FixAction)> = Vec::new();
        seal::seal_files_with(
            &paths,
            vault.recipient(),
            &sopts,
            &BatchConfig::default(),
            &mut |i, r| {
                let action = match r {
                    Ok(s) => FixAction::Sealed {
                        sealed: s.sealed,
                        bytes: s.bytes,
                    },
                    Err(e) => FixAction::Skipped {
                        reason: e.to_string(),
                    },
                };
                done.push((i, action));
            },
        );
        done.sort_by_key(|(i, _)| *i);
        outcomes.extend(done.into_iter().map(|(i, action)| FixOutcome {
            check,
            path: paths[i].clone(),
            action,
        }));
    }
}

fn build_redactor(
    opts: &FixOptions<'_>,
    literals: Vec<LiteralSecret>,
) -> std::result::Result<Redactor, String> {
    let mut ro = RedactorOptions::new(Mode::All, opts.key.clone());
    ro.literals = literals;
    Redactor::new(opts.rules, ro).map_err(|e| format!("the redaction rules do not load: {e}"))
}

/// Opens `path` without following a symlink in any component below `root` (or, for a path
/// outside `root`, at its last component).
fn open_beneath(root: &Path, path: &Path) -> io::Result<OwnedFd> {
    let (base, rel) = match path.strip_prefix(root) {
        Ok(rel) => (root.to_path_buf(), rel.to_path_buf()),
        Err(_) => {
            let parent = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
            let name = path
                .file_name()
                .ok_or_else(|| io::Error::other("no name"))?;
            (parent.to_path_buf(), PathBuf::from(name))
        }
    };
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(&base, dir_flags, FsMode::empty())?;
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(io::Error::other("unexpected path component"));
        };
        let last = i + 1 == comps.len();
        let flags = if last {
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY
        } else {
            dir_flags | OFlags::NOFOLLOW
        };
        fd = rustix::fs::openat(&fd, *name, flags, FsMode::empty()).map_err(|e| {
            if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                io::Error::other("a path component is a symlink; not followed")
            } else {
                io::Error::from(e)
            }
        })?;
    }
    Ok(fd)
}

/// Removes the group and other bits of a file or directory we own.
pub(crate) fn tighten(root: &Path, path: &Path) -> io::Result<FixAction> {
    let fd = open_beneath(root, path)?;
    let st = rustix::fs::fstat(&fd)?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft != FileType::RegularFile && ft != FileType::Directory {
        return Ok(FixAction::Skipped {
            reason: "not a regular file or directory".into(),
        });
    }
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Ok(FixAction::Skipped {
            reason: "owned by another user".into(),
        });
    }
    let from = st.st_mode & 0o7777;
    let to = from & !0o077;
    if from != to {
        rustix::fs::fchmod(&fd, FsMode::from_raw_mode(to))?;
    }
    Ok(FixAction::Chmod {
        from: format!("{from:04o}"),
        to: format!("{to:04o}"),
    })
}

/// Whether the gateway holds the write lock of this transcript (trajectory sidecars share the
/// transcript's lock).
fn locked(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let transcript = match name.strip_suffix(".trajectory.jsonl") {
        Some(sid) => path.with_file_name(format!("{sid}.jsonl")),
        None => path.to_path_buf(),
    };
    lock_state(&transcript).is_held()
}

/// Redacts one inactive transcript in place, keeping its mode and owner.
fn redact_file(redactor: &Redactor, path: &Path, now: SystemTime) -> io::Result<FixAction> {
    if locked(path) {
        return Ok(FixAction::Skipped {
            reason: "the gateway holds its write lock".into(),
        });
    }
    let file = open_nofollow(path)?;
    let before = file.metadata()?;
    if !before.is_file() {
        return Ok(FixAction::Skipped {
            reason: "not a regular file".into(),
        });
    }
    let mtime = before.modified()?;
    if now.duration_since(mtime).unwrap_or_default() < ACTIVE_WINDOW {
        return Ok(FixAction::Skipped {
            reason: "written in the last minute (active session)".into(),
        });
    }
    let opts = WriteOptions::like_existing(path).map_err(io::Error::other)?;
    let mut out = AtomicFile::create(path, opts).map_err(io::Error::other)?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut sink = |f: moltvault_redact::Finding| {
        *counts.entry(f.rule_id).or_insert(0) += 1;
    };
    redactor
        .redact_jsonl(BufReader::new(file), &mut out, &mut sink)
        .map_err(|e| io::Error::other(e.to_string()))?;
    out.flush()?;
    if counts.is_empty() {
        // Nothing to replace: drop the temp file, leave the original untouched.
        return Ok(FixAction::Skipped {
            reason: "no secret left to redact".into(),
        });
    }
    // The gateway may have appended while we read: then keep the original.
    let after = std::fs::symlink_metadata(path)?;
    if after.ino() != before.ino() || after.len() != before.len() || after.mtime() != before.mtime()
    {
        return Ok(FixAction::Skipped {
            reason: "changed while being redacted; run the audit again".into(),
        });
    }
    out.commit().map_err(io::Error::other)?;
    Ok(FixAction::Redacted { secrets: counts })
}

/// Whether `path` is a per-agent database (`openclaw-agent.sqlite`).
fn is_agent_db(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == crate::sqlite::AGENT_DB_NAME)
}

/// Redacts an agent database in one immediate transaction (transcript events, zstd events,
/// trajectory, FTS and every other derived copy), waiting up to the busy timeout for the
/// gateway's own writes; the gateway's appends land before or after it, never inside. The old
/// bytes are zeroed as they are freed and the WAL is checkpointed; with the gateway stopped
/// the database is also rebuilt (`VACUUM`), which drops what the gateway's own earlier
/// deletes left in free space.
fn redact_db(redactor: &Redactor, path: &Path, gateway_stopped: bool) -> io::Result<FixAction> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Ok(FixAction::Skipped {
            reason: "not a regular file".into(),
        });
    }
    let mut db = crate::sqlite::AgentDb::open(path).map_err(|e| io::Error::other(e.to_string()))?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let report = db
        .redact_prefiltered(
            |t| redactor.may_match(t.as_bytes()),
            |v| {
                let mut sink = |f: moltvault_redact::Finding| {
                    *counts.entry(f.rule_id).or_insert(0) += 1;
                };
                redactor.redact_value(v, &mut sink) > 0
            },
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
    if report.total_changed() == 0 {
        return Ok(FixAction::Skipped {
            reason: "no secret left to redact".into(),
        });
    }
    let old_bytes = match gateway_stopped.then(|| db.vacuum()) {
        Some(Ok(_)) => "vacuumed".to_string(),
        vacuum => {
            let mut s = describe_checkpoint(report.checkpoint);
            if let Some(Err(e)) = vacuum {
                s.push_str(&format!("; VACUUM failed: {e}"));
            }
            s
        }
    };
    Ok(FixAction::RedactedDb {
        secrets: counts,
        rows: report.changed,
        old_bytes,
    })
}

fn describe_checkpoint(c: Option<crate::sqlite::Checkpoint>) -> String {
    use crate::sqlite::Checkpoint;
    match c {
        Some(Checkpoint::Truncated) => "zeroed, WAL truncated".to_string(),
        Some(Checkpoint::NotWal) | None => "zeroed, no WAL".to_string(),
        Some(Checkpoint::Busy {
            frames,
            checkpointed,
        }) => format!(
            "zeroed, WAL busy ({checkpointed} of {frames} frames checkpointed: the gateway was reading; old pages stay in the WAL until its next checkpoint)"
        ),
    }
}

/// Appends notes to the JSONL note file (rewritten atomically, 0600).
fn append_notes(note: &Path, notes: &[serde_json::Value]) -> Result<()> {
    if let Some(dir) = note.parent() {
        fsio::create_secret_dir_all(dir)?;
    }
    let mut data = match std::fs::read(note) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(crate::Error::io(note, e)),
    };
    for n in notes {
        data.extend_from_slice(n.to_string().as_bytes());
        data.push(b'\n');
    }
    fsio::write_atomic(note, &data, WriteOptions::secret_replace())?;
    Ok(())
}
