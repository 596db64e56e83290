//! Idle sessions: which ones `moltvault archive` takes, and the JSONL export of SQLite sessions.
//!
//! [`plan`] decides, without writing anything, what archiving sessions idle for a duration
//! means on this gateway:
//!
//! - **JSONL store** (≤ 2026.7.x): every unsealed transcript file untouched for the duration
//!   (live transcripts, trajectory sidecars, `.deleted` / `.reset` / `.bak` copies and the
//!   2026.9 `.jsonl.deleted.<ts>.<hash>.zst` archives) is sealed in place. Current sessions of a
//!   session key are skipped unless asked for (the gateway would reopen them and append
//!   plaintext), and so is any file whose `.lock` is held.
//! - **SQLite store** (≥ 2026.8): each session with no event and no row update newer than the
//!   cut-off is exported with [`export_session`] to `<sessions dir>/<sid>.jsonl` — sealed by the
//!   caller, so only `<sid>.jsonl.age` reaches disk — in the entry schema JSONL lines use. The
//!   gateway keeps only deleted-session `.zst` archives in that directory and looks for names
//!   ending in `.jsonl`, so a `.jsonl.age` file is invisible to it. Removing the session from
//!   the database is the gateway's job (`openclaw sessions delete <key>`), never moltvault's:
//!   [`SqliteCandidate::removable_key`] says when that command can remove it.
//! - Cold archives (`sessions/cold/*.jsonl.zst`) are authoritative history the database points
//!   at: they are never touched.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};

use crate::discover::{Gateway, StoreKind};
use crate::error::{Error, Result};
use crate::sessions::{SessionIndex, lock_state};
use crate::sqlite::AgentDb;
use crate::transcripts::{TranscriptFile, TranscriptKind};

/// What [`plan`] needs.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Sessions with no activity for at least this long are taken.
    pub idle: Duration,
    /// "Now".
    pub now: SystemTime,
    /// Also take idle current sessions of the JSONL store (their conversations restart
    /// without history until unsealed).
    pub include_current: bool,
}

/// A JSONL-store file to seal in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCandidate {
    /// The transcript file.
    pub file: TranscriptFile,
    /// Its last modification.
    pub modified: SystemTime,
}

/// A SQLite-store session to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteCandidate {
    /// The agent id.
    pub agent: String,
    /// The agent database.
    pub db: PathBuf,
    /// The session id.
    pub session_id: String,
    /// The session key whose current session this is, if any.
    pub session_key: Option<String>,
    /// Transcript events.
    pub events: u64,
    /// Last event or row update.
    pub last_activity: Option<SystemTime>,
    /// Where the export goes before it is sealed (`<sessions dir>/<sid>.jsonl`; only its
    /// `.age` form is ever written).
    pub export_path: PathBuf,
}

impl SqliteCandidate {
    /// The session key `openclaw sessions delete` can remove this session by, or why not.
    ///
    /// The command works on session keys (it deletes a key's live session), so only a session
    /// that is the current one of a key can go through it, and the gateway protects each
    /// agent's main session (`agent:<id>:main`).
    ///
    /// # Errors
    /// The reason, as a sentence, when the gateway's CLI cannot remove it.
    pub fn removable_key(&self) -> std::result::Result<&str, String> {
        match &self.session_key {
            None => Err(
                "it is an older generation of its session key, and `openclaw sessions delete` only removes a key's current session"
                    .to_string(),
            ),
            Some(k) if k == &format!("agent:{}:main", self.agent) => Err(format!(
                "`{k}` is the agent's main session, which the gateway protects from deletion"
            )),
            Some(k) => Ok(k),
        }
    }
}

/// Something [`plan`] left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file, or the database for SQLite sessions.
    pub path: PathBuf,
    /// The session id.
    pub session_id: String,
    /// Why it is left alone.
    pub reason: String,
}

/// What archiving would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePlan {
    /// JSONL-store files to seal in place.
    pub files: Vec<FileCandidate>,
    /// SQLite sessions to export (then remove through the gateway's CLI when it can).
    pub sqlite: Vec<SqliteCandidate>,
    /// Idle sessions left alone, with the reason.
    pub skipped: Vec<Skipped>,
}

fn ms_to_time(ms: i64) -> Option<SystemTime> {
    u64::try_from(ms)
        .ok()
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Decides what archiving sessions idle for `opts.idle` takes (see the module docs).
///
/// # Errors
/// Listing, `sessions.json` and database errors.
pub fn plan(gw: &Gateway, opts: &ArchiveOptions) -> Result<ArchivePlan> {
    let mut out = ArchivePlan::default();
    let cutoff_ok = |t: Option<SystemTime>| {
        t.and_then(|t| opts.now.duration_since(t).ok())
            .is_some_and(|d| d >= opts.idle)
    };
    let files = gw.transcript_files()?;
    for agent in gw.agents() {
        let idx = SessionIndex::load(&gw.sessions_dir(&agent))?;
        for f in files.iter().filter(|f| f.agent == agent) {
            if matches!(f.kind, TranscriptKind::Sealed | TranscriptKind::Cold) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&f.path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let Ok(modified) = meta.modified() else {
                continue;
            };
            if !cutoff_ok(Some(modified)) {
                continue;
            }
            let lock_of = match f.kind {
                TranscriptKind::Trajectory => {
                    f.path.with_file_name(format!("{}.jsonl", f.session_id))
                }
                _ => f.path.clone(),
            };
            let skip = if lock_state(&lock_of).is_held() {
                Some("the gateway holds its write lock".to_string())
            } else if idx.is_current(f) && !opts.include_current {
                Some(
                    "it is the current session of a session key; the gateway reopens it every turn (--include-current takes it)"
                        .to_string(),
                )
            } else {
                None
            };
            match skip {
                Some(reason) => out.skipped.push(Skipped {
                    path: f.path.clone(),
                    session_id: f.session_id.clone(),
                    reason,
                }),
                None => out.files.push(FileCandidate {
                    file: f.clone(),
                    modified,
                }),
            }
        }
        let db = gw.agent_dir(&agent).join(crate::sqlite::AGENT_DB_NAME);
        let is_db = std::fs::symlink_metadata(&db).is_ok_and(|m| m.is_file());
        if gw.store != StoreKind::Sqlite || !is_db {
            continue;
        }
        let adb = AgentDb::open_read_only(&db)?;
        for s in adb.sessions()? {
            if s.events == 0 {
                continue;
            }
            let last_event: Option<i64> = adb
                .connection()
                .query_row(
                    "SELECT max(created_at) FROM transcript_events WHERE session_id = ?1",
                    [&s.session_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| Error::sqlite(&db, "reading the last event time", e))?
                .flatten();
            let last = s.updated_at_ms.max(last_event).and_then(ms_to_time);
            if !cutoff_ok(last) {
                continue;
            }
            out.sqlite.push(SqliteCandidate {
                agent: agent.clone(),
                db: db.clone(),
                export_path: gw
                    .sessions_dir(&agent)
                    .join(format!("{}.jsonl", s.session_id)),
                session_key: s.session_key.filter(|_| s.current),
                session_id: s.session_id,
                events: s.events,
                last_activity: last,
            });
        }
    }
    Ok(out)
}

/// What [`export_session`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Events (lines) written.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the bytes written, to compare with a decrypted copy.
    pub sha256: [u8; 32],
}

struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hash: Sha256,
    bytes: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one session of an agent database as JSONL, one event per line in `seq` order: the
/// entry schema of the JSONL era, header first. Each line is the event exactly as the gateway
/// stored it — the `event_json` bytes verbatim, or the decompressed `event_zstd` frame — after
/// checking that it is one JSON document; an event stored across several lines (not something
/// the gateway writes) is re-serialised compactly so the export stays one event per line.
///
/// # Errors
/// Database errors, a row that does not decode or is not JSON ([`Error::BadRow`]), or writing
/// to `out`.
pub fn export_session(db: &Path, session_id: &str, out: &mut dyn Write) -> Result<Exported> {
    let adb = AgentDb::open_read_only(db)?;
    let mut w = Hashing {
        inner: out,
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut events = 0u64;
    adb.for_each_event_text(Some(session_id), |sid, seq, text| {
        let bad = || Error::BadRow {
            path: db.to_path_buf(),
            table: "transcript_events",
            what: format!("event {seq} of session {sid}"),
        };
        let compact;
        let line = if text.contains(['\n', '\r']) {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
            compact = serde_json::to_string(&v).map_err(|e| Error::json(db, &e))?;
            compact.as_str()
        } else {
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|_| bad())?;
            text
        };
        w.write_all(line.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|e| Error::io(db, e))?;
        events += 1;
        Ok(())
    })?;
    w.flush().map_err(|e| Error::io(db, e))?;
    Ok(Exported {
        events,
        bytes: w.bytes,
        sha256: w.hash.finalize().into(),
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use moltvault_testutils::homes::{SampleLine, TestHome};

    #[test]
    fn sqlite_sessions_are_taken_when_idle_and_export_reproduces_every_event() {
        let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
        let gw = Gateway::open(h.state_dir(), h.home()).unwrap();
        let sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
        // The sample's events are from 2026-11-25 18:xx; "now" a day later makes them idle.
        let events_at = UNIX_EPOCH + Duration::from_millis(1_795_629_541_000);
        let later = |secs| ArchiveOptions {
            idle: Duration::from_secs(3600),
            now: events_at + Duration::from_secs(secs),
            include_current: false,
        };
        let p = plan(&gw, &later(86_400 * 2)).unwrap();
        let c = p
            .sqlite
            .iter()
            .find(|c| c.session_id == sid)
            .expect("idle session planned");
        assert_eq!(c.events, 10);
        assert_eq!(
            c.export_path,
            h.path(&format!("agents/main/sessions/{sid}.jsonl"))
        );
        // The sample's deleted-session archive is idle too and is sealed in place.
        assert!(
            p.files
                .iter()
                .any(|f| f.file.kind == TranscriptKind::DeletedZst),
            "{p:#?}"
        );
        // Not idle yet: nothing.
        let p = plan(&gw, &later(60)).unwrap();
        assert!(p.sqlite.iter().all(|c| c.session_id != sid), "{p:#?}");

        let mut buf = Vec::new();
        let e = export_session(&c.db, sid, &mut buf).unwrap();
        assert_eq!(e.events, 10);
        assert_eq!(e.bytes, buf.len() as u64);
        let sample = std::fs::read_to_string(
            moltvault_testutils::homes::data_dir()
                .join(format!("openclaw-2026.9.6/transcript_events.{sid}.jsonl")),
        )
        .unwrap();
        // Same entries as the gateway stored them (the zstd tool result included).
        let ours: Vec<serde_json::Value> = String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let theirs: Vec<serde_json::Value> = sample
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ours, theirs);
        assert_eq!(ours[0]["type"], "session");
    }

    /// A `navigation_json` the 2026.9.6 schema's CHECK accepts (required on zstd rows).
    const NAV: &str = r#"{"version":1,"report":{"kind":"canonical"},"navigation":{},"reset":{},"model":{},"modelBytes":1,"modelWithoutCheckpointBytes":1,"withoutCustomDataBytes":1}"#;

    #[test]
    fn export_writes_the_stored_event_bytes_verbatim() {
        let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
        let db = h.path("agents/main/agent/openclaw-agent.sqlite");
        let sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
        // Spacing, an escaped character and a number format that re-serialising would change.
        let odd = r#"{"type":"custom", "id":"e9000000-0000-4000-8000-000000000001","parentId":null,"data":{"n":1.50,"s":"caf\u00e9 \/"}}"#;
        let big = format!(
            r#"{{"type":"message","id":"e9000000-0000-4000-8000-000000000002","message":{{"role":"toolResult","content":[{{"type":"text","text":"{}"}}],"x":1e3}}}}"#,
            "z".repeat(5000)
        );
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 500, ?2, 0)",
            rusqlite::params![sid, odd],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) VALUES (?1, 501, NULL, 0, ?2, ?3, ?4)",
            rusqlite::params![sid, zstd::bulk::compress(big.as_bytes(), 3).unwrap(), big.len() as i64, NAV],
        )
        .unwrap();
        // A multi-line event (not written by the gateway) is kept on one line.
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 502, ?2, 0)",
            rusqlite::params![sid, "{\"type\":\"custom\",\n \"id\":\"e3\"}"],
        )
        .unwrap();
        drop(conn);
        let mut buf = Vec::new();
        let e = export_session(&db, sid, &mut buf).unwrap();
        assert_eq!(e.events, 13);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 13);
        assert_eq!(lines[10], odd);
        assert_eq!(lines[11], big);
        assert_eq!(lines[12], r#"{"type":"custom","id":"e3"}"#);
        assert_eq!(e.sha256, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));

        // A stored event that is not JSON is an error, not a silently broken export.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 503, 'not json', 0)",
            [sid],
        )
        .unwrap();
        let err = export_session(&db, sid, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::BadRow { .. }), "{err:?}");
    }

    #[test]
    fn removal_goes_only_through_keys_the_gateway_can_delete() {
        let mut c = SqliteCandidate {
            agent: "main".into(),
            db: PathBuf::from("/x"),
            session_id: "s".into(),
            session_key: Some("agent:main:scratch".into()),
            events: 1,
            last_activity: None,
            export_path: PathBuf::from("/x.jsonl"),
        };
        assert_eq!(c.removable_key(), Ok("agent:main:scratch"));
        c.session_key = Some("agent:main:main".into());
        assert!(c.removable_key().unwrap_err().contains("protects"));
        c.session_key = None;
        assert!(c.removable_key().unwrap_err().contains("older generation"));
    }

    #[test]
    fn jsonl_current_and_locked_sessions_are_skipped() {
        let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
        let gw = Gateway::open(h.state_dir(), h.home()).unwrap();
        let opts = ArchiveOptions {
            idle: Duration::from_secs(0),
            now: SystemTime::now() + Duration::from_secs(3600),
            include_current: false,
        };
        let p = plan(&gw, &opts).unwrap();
        let idx = SessionIndex::load(&gw.sessions_dir("main")).unwrap();
        assert!(p.files.iter().all(|f| !idx.is_current(&f.file)));
        assert!(
            p.skipped
                .iter()
                .any(|s| s.reason.contains("current session"))
        );
        let victim = p.files[0].file.path.clone();
        h.add_lock(&victim, std::process::id());
        let p = plan(&gw, &opts).unwrap();
        assert!(p.files.iter().all(|f| f.file.path != victim));
        assert!(
            p.skipped
                .iter()
                .any(|s| s.path == victim && s.reason.contains("lock"))
        );
    }
}
