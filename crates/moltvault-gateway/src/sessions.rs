//! Sessions: which transcripts are current, idle, or locked by a writer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::discover::{Gateway, StoreKind};
use crate::error::{Error, Result};
use crate::transcripts::{TranscriptFile, TranscriptKind};

/// A session (one transcript generation) of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub id: String,
    /// The agent id.
    pub agent: String,
    /// The session keys (`agent:main:main`, ...) whose current session this is.
    pub keys: Vec<String>,
    /// The files of this session: the transcript, then its trajectory sidecar (JSONL store), or
    /// the agent database (SQLite store).
    pub paths: Vec<PathBuf>,
    /// Whether it is the current session of some session key (`sessions.json`, or
    /// `session_nodes.current_session_id`). The gateway appends to current sessions.
    pub current: bool,
    /// Whether the transcript is sealed (`<sid>.jsonl.age`).
    pub sealed: bool,
    /// Last modification (newest file mtime, or the row's update time).
    pub modified: Option<SystemTime>,
    /// Whether a writer holds the transcript's `<file>.lock` (its pid is alive).
    pub locked: bool,
    /// Where it is stored.
    pub store: StoreKind,
}

impl SessionInfo {
    /// Whether the session was not modified for at least `idle` at `now`.
    pub fn idle_for(&self, idle: Duration, now: SystemTime) -> bool {
        self.modified
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|d| d >= idle)
    }
}

/// The state of a transcript's `<file>.lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// No lock file.
    Free,
    /// A lock file whose pid is alive (or that cannot be read: treated as held).
    Held {
        /// The writer's pid, if the lock names one.
        pid: Option<u32>,
    },
    /// A lock file left by a process that no longer exists.
    Stale {
        /// The dead writer's pid.
        pid: u32,
    },
}

impl LockState {
    /// Whether a writer may be active.
    pub fn is_held(self) -> bool {
        matches!(self, LockState::Held { .. })
    }
}

/// Reads the lock of a transcript: `<path>.lock`, JSON `{pid, createdAt, starttime?}`.
pub fn lock_state(transcript: &Path) -> LockState {
    let lock = PathBuf::from(format!("{}.lock", transcript.display()));
    let Ok(text) = fs::read_to_string(&lock) else {
        return if fs::symlink_metadata(&lock).is_ok() {
            LockState::Held { pid: None }
        } else {
            LockState::Free
        };
    };
    let pid = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("pid").and_then(Value::as_u64))
        .and_then(|p| u32::try_from(p).ok());
    match pid {
        Some(pid) if pid_alive(pid) => LockState::Held { pid: Some(pid) },
        Some(pid) => LockState::Stale { pid },
        None => LockState::Held { pid: None },
    }
}

/// Whether a process with this pid exists (EPERM counts as alive).
pub fn pid_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// The session index of an agent in the JSONL era (`sessions/sessions.json`).
#[derive(Debug, Clone, Default)]
pub struct SessionIndex {
    /// session id → session keys whose current session it is.
    pub keys_by_session: BTreeMap<String, Vec<String>>,
    /// File names named by `sessionFile` entries (they can differ from `<sid>.jsonl`).
    pub current_files: BTreeSet<String>,
}

impl SessionIndex {
    /// Reads `sessions.json` of a sessions directory (an absent file gives an empty index).
    ///
    /// # Errors
    /// Read and parse errors of `sessions.json`.
    pub fn load(sessions_dir: &Path) -> Result<SessionIndex> {
        let path = sessions_dir.join("sessions.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SessionIndex::default());
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::json(&path, &e))?;
        let mut idx = SessionIndex::default();
        if let Value::Object(map) = v {
            for (key, entry) in map {
                if let Some(sid) = entry.get("sessionId").and_then(Value::as_str) {
                    idx.keys_by_session
                        .entry(sid.to_owned())
                        .or_default()
                        .push(key);
                }
                if let Some(f) = entry.get("sessionFile").and_then(Value::as_str)
                    && let Some(name) = Path::new(f).file_name().and_then(|n| n.to_str())
                {
                    idx.current_files.insert(name.to_owned());
                }
            }
        }
        Ok(idx)
    }

    /// Whether a transcript file is (or is the sidecar or sealed copy of) a current session.
    pub fn is_current(&self, file: &TranscriptFile) -> bool {
        let live = matches!(
            file.kind,
            TranscriptKind::Jsonl | TranscriptKind::Trajectory
        ) || matches!(
            file.sealed_of,
            Some(TranscriptKind::Jsonl | TranscriptKind::Trajectory)
        );
        if !live {
            return false;
        }
        let name = file.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        self.keys_by_session.contains_key(&file.session_id)
            || self
                .current_files
                .contains(name.strip_suffix(".age").unwrap_or(name))
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(p).ok()?.modified().ok()
}

impl Gateway {
    /// Lists the sessions of every agent with their current / locked / modified state.
    ///
    /// JSONL store: one entry per `<sid>.jsonl` (or its sealed copy), with the trajectory
    /// sidecar in `paths`; archives (`.deleted`, `.reset`, `.bak`, cold) are not sessions, see
    /// [`Gateway::transcript_files`]. SQLite store: one entry per session row; `locked` is
    /// always false there (SQLite serialises writers; see [`Gateway::is_running`]).
    ///
    /// # Errors
    /// Listing, `sessions.json` and database errors.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>> {
        let mut out = Vec::new();
        let files = self.transcript_files()?;
        for agent in self.agents() {
            let idx = SessionIndex::load(&self.sessions_dir(&agent))?;
            let mut by_sid: BTreeMap<String, SessionInfo> = BTreeMap::new();
            for f in files.iter().filter(|f| f.agent == agent) {
                let inner = f.sealed_of.unwrap_or(f.kind);
                if !matches!(inner, TranscriptKind::Jsonl | TranscriptKind::Trajectory) {
                    continue;
                }
                let e = by_sid
                    .entry(f.session_id.clone())
                    .or_insert_with(|| SessionInfo {
                        id: f.session_id.clone(),
                        agent: agent.clone(),
                        keys: idx
                            .keys_by_session
                            .get(&f.session_id)
                            .cloned()
                            .unwrap_or_default(),
                        paths: Vec::new(),
                        current: false,
                        sealed: false,
                        modified: None,
                        locked: false,
                        store: StoreKind::Jsonl,
                    });
                e.current |= idx.is_current(f);
                if inner == TranscriptKind::Jsonl {
                    e.paths.insert(0, f.path.clone());
                    e.sealed = f.kind == TranscriptKind::Sealed;
                    e.locked |= lock_state(&f.path).is_held();
                    if e.sealed {
                        let plain = f.path.with_extension("");
                        e.locked |= lock_state(&plain).is_held();
                    }
                } else {
                    e.paths.push(f.path.clone());
                }
                e.modified = e.modified.max(mtime(&f.path));
            }
            // A sidecar without its transcript is not a session of its own.
            out.extend(by_sid.into_values().filter(|s| {
                s.paths
                    .first()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.contains(".trajectory."))
            }));
            let db = self.agent_dir(&agent).join(crate::sqlite::AGENT_DB_NAME);
            if self.store == StoreKind::Sqlite && db.is_file() {
                let adb = crate::sqlite::AgentDb::open_read_only(&db)?;
                for s in adb.sessions()? {
                    out.push(SessionInfo {
                        id: s.session_id,
                        agent: agent.clone(),
                        keys: s.session_key.into_iter().filter(|_| s.current).collect(),
                        paths: vec![db.clone()],
                        current: s.current,
                        sealed: false,
                        modified: s
                            .updated_at_ms
                            .and_then(|ms| u64::try_from(ms).ok())
                            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                        locked: false,
                        store: StoreKind::Sqlite,
                    });
                }
            }
        }
        Ok(out)
    }
}
