//! Counts plaintext secrets (by rule, never a value) in the files where the gateway leaves them:
//! transcripts, trajectory sidecars, archives, logs, config backups and `models.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use moltvault_redact::{FingerprintKey, LiteralSecret, Mode, Redactor, RedactorOptions, RuleSet};
use rayon::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::fsscan::{EntryKind, FileKind, Tree};
use super::{Affected, Finding, SafeFix, Severity};
use crate::secrets::ConfiguredSecret;
use crate::sqlite::{AgentDb, ColumnRole, TextColumn};
use std::ops::RangeInclusive;

/// Where a scanned file came from, which decides the check id, severity and remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Surface {
    Transcript,
    Trajectory,
    Archive,
    Log,
    ConfigBackup,
    ModelsJson,
    /// `transcript_events` of an agent database.
    DbTranscript,
    /// `trajectory_runtime_events` of an agent database.
    DbTrajectory,
    /// The derived copies of an agent database (FTS, memory chunks, archives, queued text).
    DbCopy,
}

impl Surface {
    fn of(kind: FileKind) -> Option<Surface> {
        Some(match kind {
            FileKind::Transcript => Surface::Transcript,
            FileKind::Trajectory => Surface::Trajectory,
            FileKind::Archive => Surface::Archive,
            FileKind::Log => Surface::Log,
            FileKind::ConfigBackup => Surface::ConfigBackup,
            FileKind::ModelsJson => Surface::ModelsJson,
            _ => return None,
        })
    }

    fn check(self) -> &'static str {
        match self {
            Surface::Transcript => "secrets.transcript",
            Surface::Trajectory => "secrets.trajectory",
            Surface::Archive => "secrets.archive",
            Surface::Log => "secrets.log",
            Surface::ConfigBackup => "secrets.config_backup",
            Surface::ModelsJson => "secrets.models_json",
            Surface::DbTranscript => "secrets.transcript",
            Surface::DbTrajectory => "secrets.trajectory",
            Surface::DbCopy => "secrets.db_copy",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Surface::Transcript => "transcript",
            Surface::Trajectory => "trajectory sidecar",
            Surface::Archive => "compressed transcript archive",
            Surface::Log => "log file",
            Surface::ConfigBackup => "config backup",
            Surface::ModelsJson => "models.json catalogue",
            Surface::DbTranscript => "the transcript events of an agent database",
            Surface::DbTrajectory => "the trajectory events of an agent database",
            Surface::DbCopy => {
                "the derived copies (search index, memory, archives) of an agent database"
            }
        }
    }

    fn severity(self) -> Severity {
        match self {
            // models.json is the gateway's own 0600 copy of the configured keys.
            Surface::ModelsJson => Severity::Medium,
            _ => Severity::High,
        }
    }

    fn fix(self) -> Option<SafeFix> {
        matches!(
            self,
            Surface::Transcript
                | Surface::Trajectory
                | Surface::DbTranscript
                | Surface::DbTrajectory
                | Surface::DbCopy
        )
        .then_some(SafeFix::Redact)
    }

    fn hint(self) -> &'static str {
        match self {
            Surface::Transcript | Surface::Trajectory => {
                "`moltvault audit --fix` redacts inactive ones (or run `moltvault redact --in-place`); install the plugin so new ones stay clean."
            }
            Surface::Archive => {
                "Run `moltvault redact --in-place` (it re-compresses archives), or seal them with `moltvault seal`."
            }
            Surface::Log => {
                "Delete or redact old logs (`moltvault redact --in-place <file>`), and set `logging.file` to a private directory."
            }
            Surface::ConfigBackup => {
                "`moltvault secrets import` scrubs config backups; otherwise delete backups you do not need."
            }
            Surface::ModelsJson => {
                "The gateway copies configured keys here: move them to SecretRefs (`moltvault secrets import`) and it stops writing them."
            }
            Surface::DbTranscript | Surface::DbTrajectory | Surface::DbCopy => {
                "`moltvault audit --fix` redacts the database in one SQLite transaction (derived copies included, safe while the gateway runs); install the plugin so new events stay clean."
            }
        }
    }
}

/// A file to scan, or a rowid range of one text column of an agent database.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    surface: Surface,
    rows: Option<(TextColumn, RangeInclusive<i64>)>,
}

/// Rows of one database column read per scan task (tasks run in parallel).
const ROWS_PER_TASK: i64 = 20_000;

/// The scan tasks of the agent databases: each text column, split into rowid ranges.
fn db_targets(dbs: &[PathBuf], out: &mut Vec<Target>, errors: &mut Vec<Finding>) {
    for db in dbs {
        let opened = AgentDb::open_read_only(db);
        let adb = match opened {
            Ok(a) => a,
            Err(e) => {
                errors.push(unscanned(db, &e.to_string()));
                continue;
            }
        };
        for col in adb.text_columns() {
            let bounds = match adb.rowid_bounds(col.table) {
                Ok(b) => b,
                Err(e) => {
                    errors.push(unscanned(db, &e.to_string()));
                    continue;
                }
            };
            let Some((lo, hi)) = bounds else { continue };
            let surface = match col.role {
                ColumnRole::Transcript => Surface::DbTranscript,
                ColumnRole::Trajectory => Surface::DbTrajectory,
                ColumnRole::Derived => Surface::DbCopy,
            };
            let mut at = lo;
            while at <= hi {
                let end = at.saturating_add(ROWS_PER_TASK - 1).min(hi);
                out.push(Target {
                    path: db.clone(),
                    surface,
                    rows: Some((col, at..=end)),
                });
                if end == i64::MAX {
                    break;
                }
                at = end + 1;
            }
        }
    }
}

fn unscanned(path: &Path, why: &str) -> Finding {
    Finding::new(
        "secrets.unscanned",
        Severity::Low,
        path,
        format!("could not be scanned for secrets ({why})"),
        "Check the file (a damaged archive or database?) and run the audit again.",
    )
}

/// Scans one rowid range of a database column, counting findings by rule.
fn scan_rows(
    redactor: &Redactor,
    db: &Path,
    col: &TextColumn,
    rows: RangeInclusive<i64>,
) -> crate::Result<Scanned> {
    let adb = AgentDb::open_read_only(db)?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut sink = |f: moltvault_redact::Finding| {
        *counts.entry(f.rule_id).or_insert(0) += 1;
    };
    let bytes = adb.scan_column(col, rows, redactor, &mut sink)?;
    Ok((counts, bytes))
}

/// The gateway's configured secrets with a literal value, to be matched literally in the files
/// scanned (the strongest rule: it finds the gateway's own tokens whatever their shape).
pub(crate) fn literals(secrets: &[ConfiguredSecret]) -> Vec<LiteralSecret> {
    let mut seen = std::collections::HashSet::new();
    secrets
        .iter()
        .filter_map(|s| {
            let v = s.value.as_ref()?;
            // Short values would match by accident in unrelated text.
            let v = v.expose_secret();
            (v.len() >= 8 && seen.insert(v.to_string()))
                .then(|| LiteralSecret::new(literal_id(&s.id), SecretString::from(v.to_string())))
        })
        .collect()
}

/// `models.providers.openai.apiKey` → `config-models-providers-openai-apikey`.
fn literal_id(key: &str) -> String {
    let mut id = String::from("config-");
    for c in key.chars() {
        id.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        });
    }
    id
}

/// A redactor used only to count: its fingerprints are never shown, so any key will do.
pub(crate) fn counting_redactor(rules: &RuleSet, literals: Vec<LiteralSecret>) -> Option<Redactor> {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).ok()?;
    let mut opts = RedactorOptions::new(Mode::All, FingerprintKey::from_bytes(key));
    opts.literals = literals;
    Redactor::new(rules, opts).ok()
}

/// Opens a regular file for reading without following a symlink (the vault's reader).
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    moltvault_vault::seal::open_regular(path).map_err(|e| io::Error::other(e.to_string()))
}

/// Counts bytes read through it.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Secrets by rule id, and the bytes read (decompressed).
type Scanned = (BTreeMap<String, u64>, u64);

/// Scans one file; returns secrets by rule and the bytes read (decompressed).
pub(crate) fn scan_file(redactor: &Redactor, path: &Path, compressed: bool) -> io::Result<Scanned> {
    let file = open_nofollow(path)?;
    let reader: Box<dyn Read> = if compressed {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(file)
    };
    let mut input = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: reader,
            n: 0,
        },
    );
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut sink = |f: moltvault_redact::Finding| {
        *counts.entry(f.rule_id).or_insert(0) += 1;
    };
    redactor
        .redact_jsonl(&mut input, io::sink(), &mut sink)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let n = input.get_ref().n;
    Ok((counts, n))
}

/// Log files outside the state dir: the given files, and the regular files directly inside the
/// given directories, owned by the current user (never someone else's).
fn external_logs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let mut out = Vec::new();
    let owned_file =
        |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.uid() == uid);
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|f| owned_file(f))
                    .collect();
                files.sort();
                out.extend(files);
            }
            Ok(_) if owned_file(p) => out.push(p.clone()),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Scans every secret-bearing file and adds grouped findings; returns (files, bytes) scanned.
pub(crate) fn secret_findings(
    tree: &Tree,
    dbs: &[PathBuf],
    secrets: &[ConfiguredSecret],
    log_paths: &[PathBuf],
    rules: &RuleSet,
    out: &mut Vec<Finding>,
) -> (u64, u64) {
    let Some(redactor) = counting_redactor(rules, literals(secrets)) else {
        out.push(Finding::new(
            "secrets.unscanned",
            Severity::Medium,
            &tree.root,
            "the secret scanner could not be set up, so file contents were not scanned",
            "Check the redaction rules (`moltvault scan` reports the error).",
        ));
        return (0, 0);
    };
    let mut targets: Vec<Target> = tree
        .entries
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::File(k) => Surface::of(k).map(|surface| Target {
                path: e.path.clone(),
                surface,
                rows: None,
            }),
            _ => None,
        })
        .collect();
    for p in external_logs(log_paths) {
        if !targets.iter().any(|t| t.path == p) {
            targets.push(Target {
                path: p,
                surface: Surface::Log,
                rows: None,
            });
        }
    }
    db_targets(dbs, &mut targets, out);

    let results: Vec<(usize, io::Result<Scanned>)> = targets
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = match &t.rows {
                Some((col, rows)) => scan_rows(&redactor, &t.path, col, rows.clone())
                    .map_err(|e| io::Error::other(e.to_string())),
                None => scan_file(&redactor, &t.path, t.surface == Surface::Archive),
            };
            (i, r)
        })
        .collect();

    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut groups: BTreeMap<(Surface, PathBuf), Vec<Affected>> = BTreeMap::new();
    let mut dbs_failed: Vec<PathBuf> = Vec::new();
    for (i, r) in results {
        let t = &targets[i];
        match r {
            Ok((counts, n)) => {
                if t.rows.is_none() {
                    files += 1;
                }
                bytes += n;
                if counts.is_empty() {
                    continue;
                }
                if t.rows.is_some() {
                    // One finding per database and surface; its ranges add up.
                    let items = groups.entry((t.surface, t.path.clone())).or_default();
                    if items.is_empty() {
                        items.push(Affected {
                            path: t.path.clone(),
                            mode: None,
                            secrets: BTreeMap::new(),
                        });
                    }
                    for (rule, n) in counts {
                        *items[0].secrets.entry(rule).or_insert(0) += n;
                    }
                } else {
                    let dir = t.path.parent().unwrap_or(&tree.root).to_path_buf();
                    groups.entry((t.surface, dir)).or_default().push(Affected {
                        path: t.path.clone(),
                        mode: None,
                        secrets: counts,
                    });
                }
            }
            Err(e) => {
                if t.rows.is_some() {
                    if dbs_failed.contains(&t.path) {
                        continue;
                    }
                    dbs_failed.push(t.path.clone());
                }
                out.push(unscanned(&t.path, &e.to_string()));
            }
        }
    }
    files += dbs.len() as u64;
    for ((surface, dir), items) in groups {
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for a in &items {
            for (rule, n) in &a.secrets {
                *total.entry(rule.clone()).or_insert(0) += n;
            }
        }
        let sum: u64 = total.values().sum();
        let is_db = matches!(
            surface,
            Surface::DbTranscript | Surface::DbTrajectory | Surface::DbCopy
        );
        let detail = if is_db {
            format!("{sum} plaintext secret(s) in {}", surface.what())
        } else if items.len() == 1 {
            format!("{sum} plaintext secret(s) in a {}", surface.what())
        } else {
            format!(
                "{sum} plaintext secret(s) in {} {}s",
                items.len(),
                surface.what()
            )
        };
        let path = if items.len() == 1 {
            items[0].path.clone()
        } else {
            dir
        };
        let mut f = Finding::new(
            surface.check(),
            surface.severity(),
            path,
            detail,
            surface.hint(),
        );
        f.fix = surface.fix();
        f.files = items;
        f.secrets = total;
        out.push(f);
    }
    (files, bytes)
}
