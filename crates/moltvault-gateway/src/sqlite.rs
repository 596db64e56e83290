//! The per-agent SQLite store of OpenClaw ≥ 2026.8 (`agents/<id>/agent/openclaw-agent.sqlite`).
//!
//! Each `transcript_events` row is one former JSONL line: `event_json` (TEXT) or, for large
//! events, `event_zstd` (a zstd frame of the same UTF-8 JSON, `event_utf8_bytes` long). The
//! database also keeps derived plaintext copies of transcript text, which [`AgentDb::redact`]
//! rewrites in the same transaction:
//!
//! | table.column | content |
//! |---|---|
//! | `transcript_events.event_json` / `event_zstd` | the transcript entries |
//! | `trajectory_runtime_events.event_json` | flight recorder: tool args, tool results, model output |
//! | `acp_parent_stream_events.event_json` | streamed events relayed to a parent session |
//! | `session_transcript_fts.text` | FTS5 copy of user/assistant text (updated through the FTS table) |
//! | `memory_index_chunks.text` | memory index chunks (triggers keep `memory_index_chunks_fts` in step) |
//! | `session_transcript_archives.archive_blob`, `session_transcript_cold_archives.archive_blob` | JSONL archives (identity or zstd) |
//! | `session_pending_inputs.message_json`, `context_engine_turn_outbox.payload_json`, `session_input_completions.outcome_json`, `session_goal_operations.result_json` | queued / relayed messages |
//! | `conversation_deliveries.reply_text`, `session_suggestions.text`, `session_progress_cards.markdown` / `steps_json` | outgoing text |
//! | `session_nodes.entry_json` / `display_name`, `session_windows.display_name` | session metadata (display names are built from the first user message) |
//!
//! Not rewritten: `memory_index_chunks.embedding` (vectors, not text; the chunk's `hash` goes
//! stale so the gateway re-indexes it) and `transcript_events.navigation_json` byte counters.
//! Archive rows get a new `archive_sha256`, computed over the stored blob (the gateway's exact
//! definition of that hash is not documented).
//!
//! A redaction leaves no old bytes in the database's files: the redacting connection runs with
//! `PRAGMA secure_delete=ON` (freed cells and pages are zeroed), the FTS5 tables' own
//! `secure-delete` option is on for the transaction (deleted terms leave the index segments in
//! place) and set back afterwards, and the WAL is checkpointed with `TRUNCATE` after the commit
//! ([`RedactReport::checkpoint`] says whether the gateway's readers let it finish).
//! [`AgentDb::vacuum`] (gateway stopped) also drops what the gateway's own deletes left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// File name of the per-agent database.
pub const AGENT_DB_NAME: &str = "openclaw-agent.sqlite";

/// How long a statement waits for the gateway's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest event the gateway stores (`event_utf8_bytes` upper bound).
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// A session as the SQLite store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSession {
    /// The session id (one transcript generation).
    pub session_id: String,
    /// The session key it belongs to (`agent:main:main`), if recorded.
    pub session_key: Option<String>,
    /// Whether it is the `current_session_id` of some `session_nodes` row.
    pub current: bool,
    /// Last transcript or row update, in milliseconds since the epoch.
    pub updated_at_ms: Option<i64>,
    /// Number of transcript events.
    pub events: u64,
}

/// One transcript event (one former JSONL line).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptEvent {
    /// The session id.
    pub session_id: String,
    /// Position in the session.
    pub seq: i64,
    /// The entry, decoded from `event_json` or `event_zstd`.
    pub value: Value,
}

/// What [`AgentDb::redact`] changed: rows rewritten per `table.column`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactReport {
    /// Rows rewritten, by `table.column`.
    pub changed: BTreeMap<String, usize>,
    /// Rows examined.
    pub scanned: usize,
    /// FTS5 tables whose old index entries were removed in place (their `secure-delete`
    /// option on for the transaction, or an `optimize` merge where that option is missing).
    pub fts_scrubbed: Vec<String>,
    /// The WAL checkpoint run after the commit (`None` when nothing changed).
    pub checkpoint: Option<Checkpoint>,
}

/// The outcome of `PRAGMA wal_checkpoint(TRUNCATE)` after a redaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The database is not in WAL mode: the redaction was written to the database file itself.
    NotWal,
    /// Every WAL frame was copied into the database and the WAL truncated to zero bytes: no old
    /// page is left in the WAL, and the database pages holding the old bytes were overwritten.
    Truncated,
    /// Another connection (the gateway) held a read transaction or the write lock, so the WAL
    /// could not be fully checkpointed; `remaining` frames are still only in the WAL. SQLite
    /// (or the gateway) checkpoints them later; run the redaction again, or stop the gateway,
    /// to finish.
    Busy {
        /// Frames in the WAL.
        frames: i64,
        /// Frames copied into the database.
        checkpointed: i64,
    },
}

impl RedactReport {
    /// Total rows rewritten.
    pub fn total_changed(&self) -> usize {
        self.changed.values().sum()
    }
}

/// An open per-agent database.
#[derive(Debug)]
pub struct AgentDb {
    conn: Connection,
    path: PathBuf,
}

/// How a text column is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Json,
    Text,
}

/// FTS5 tables whose index holds terms of the rewritten text: `session_transcript_fts`
/// (updated directly) and `memory_index_chunks_fts` (kept in step by triggers).
const FTS_TABLES: &[&str] = &["session_transcript_fts", "memory_index_chunks_fts"];

/// An FTS5 table's `secure-delete` option, turned on for one redaction transaction and set
/// back afterwards.
struct FtsScrub {
    table: &'static str,
    /// The option's value before (`None`: never set, i.e. off).
    before: Option<i64>,
    /// Whether turning it on worked (SQLite ≥ 3.44); otherwise an `optimize` merge drops the
    /// old entries instead.
    on: bool,
}

impl FtsScrub {
    fn begin(tx: &rusqlite::Transaction<'_>, table: &'static str) -> FtsScrub {
        let before: Option<i64> = tx
            .query_row(
                &format!("SELECT v FROM \"{table}_config\" WHERE k = 'secure-delete'"),
                [],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        let on = before == Some(1)
            || tx
                .execute(
                    &format!(
                        "INSERT INTO \"{table}\"(\"{table}\", rank) VALUES('secure-delete', 1)"
                    ),
                    [],
                )
                .is_ok();
        FtsScrub { table, before, on }
    }

    /// Sets the option back; without it, merges the index when rows changed. Returns whether
    /// old entries were removed.
    fn finish(&self, tx: &rusqlite::Transaction<'_>, changed: bool, path: &Path) -> Result<bool> {
        let t = self.table;
        if self.on && self.before != Some(1) {
            let v = self.before.unwrap_or(0);
            tx.execute(
                &format!("INSERT INTO \"{t}\"(\"{t}\", rank) VALUES('secure-delete', ?1)"),
                [v],
            )
            .map_err(sql_err(path, "restoring the FTS secure-delete option"))?;
        }
        if changed && !self.on {
            tx.execute(
                &format!("INSERT INTO \"{t}\"(\"{t}\") VALUES('optimize')"),
                [],
            )
            .map_err(sql_err(path, "merging the FTS index"))?;
        }
        Ok(changed)
    }
}

/// Derived copies rewritten by [`AgentDb::redact`] besides `transcript_events` and the archives.
const TEXT_COLUMNS: &[(&str, &str, Col)] = &[
    ("trajectory_runtime_events", "event_json", Col::Json),
    ("acp_parent_stream_events", "event_json", Col::Json),
    ("session_transcript_fts", "text", Col::Text),
    ("memory_index_chunks", "text", Col::Text),
    ("session_pending_inputs", "message_json", Col::Json),
    ("context_engine_turn_outbox", "payload_json", Col::Json),
    ("session_input_completions", "outcome_json", Col::Json),
    ("session_goal_operations", "result_json", Col::Json),
    ("conversation_deliveries", "reply_text", Col::Text),
    ("session_suggestions", "text", Col::Text),
    ("session_progress_cards", "markdown", Col::Text),
    ("session_progress_cards", "steps_json", Col::Json),
    ("session_nodes", "entry_json", Col::Json),
    ("session_nodes", "display_name", Col::Text),
    ("session_windows", "display_name", Col::Text),
];

fn sql_err(path: &Path, op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    move |e| Error::sqlite(&path, op, e)
}

impl AgentDb {
    /// Opens an existing database read-only.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if it cannot be opened.
    pub fn open_read_only(path: &Path) -> Result<AgentDb> {
        Self::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }

    /// Opens an existing database for reading and writing (never creates one).
    ///
    /// # Errors
    /// [`Error::Sqlite`] if it cannot be opened.
    pub fn open(path: &Path) -> Result<AgentDb> {
        Self::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<AgentDb> {
        let conn = Connection::open_with_flags(path, flags).map_err(sql_err(path, "opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql_err(path, "setting busy_timeout"))?;
        Ok(AgentDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection (for callers that need a query this type does not offer).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Whether a table (or virtual table) exists.
    pub fn has_table(&self, name: &str) -> bool {
        self.conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE name = ?1 AND type = 'table'",
                [name],
                |_| Ok(()),
            )
            .optional()
            .ok()
            .flatten()
            .is_some()
    }

    /// The app version that last migrated the schema (`schema_meta.app_version`), if recorded.
    pub fn app_version(&self) -> Option<String> {
        if !self.has_table("schema_meta") {
            return None;
        }
        self.conn
            .query_row(
                "SELECT app_version FROM schema_meta WHERE app_version IS NOT NULL \
                 ORDER BY updated_at DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }

    /// `(archive_name, session_id)` of every cold archive row.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on query failure.
    pub fn cold_archive_names(&self) -> Result<Vec<(String, String)>> {
        if !self.has_table("session_transcript_cold_archives") {
            return Ok(Vec::new());
        }
        let op = "listing cold archives";
        let mut st = self
            .conn
            .prepare("SELECT archive_name, session_id FROM session_transcript_cold_archives")
            .map_err(sql_err(&self.path, op))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_err(&self.path, op))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(sql_err(&self.path, op))
    }

    /// The auth-profile store rows: `(store_key, parsed store_json)`.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on query failure, [`Error::BadRow`] when a row is not JSON.
    pub fn auth_profile_store(&self) -> Result<Vec<(String, Value)>> {
        if !self.has_table("auth_profile_store") {
            return Ok(Vec::new());
        }
        let op = "reading auth_profile_store";
        let mut st = self
            .conn
            .prepare("SELECT store_key, store_json FROM auth_profile_store ORDER BY store_key")
            .map_err(sql_err(&self.path, op))?;
        let rows: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_err(&self.path, op))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err(&self.path, op))?;
        rows.into_iter()
            .map(|(k, j)| {
                let v = serde_json::from_str(&j).map_err(|_| Error::BadRow {
                    path: self.path.clone(),
                    table: "auth_profile_store",
                    what: format!("store_json of row `{k}`"),
                })?;
                Ok((k, v))
            })
            .collect()
    }

    /// Lists the sessions: every `session_windows` row plus any session that only has events.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on query failure.
    pub fn sessions(&self) -> Result<Vec<DbSession>> {
        let op = "listing sessions";
        let mut out: Vec<DbSession> = Vec::new();
        let has_nodes = self.has_table("session_nodes");
        let has_events = self.has_table("transcript_events");
        if self.has_table("session_windows") {
            let current = if has_nodes {
                "EXISTS (SELECT 1 FROM session_nodes n WHERE n.current_session_id = w.session_id)"
            } else {
                "0"
            };
            let count = if has_events {
                "(SELECT COUNT(*) FROM transcript_events e WHERE e.session_id = w.session_id)"
            } else {
                "0"
            };
            let sql = format!(
                "SELECT w.session_id, w.session_key, {current}, \
                 max(w.updated_at, coalesce(w.transcript_updated_at, 0)), {count} \
                 FROM session_windows w ORDER BY w.session_id"
            );
            let mut st = self.conn.prepare(&sql).map_err(sql_err(&self.path, op))?;
            let rows = st
                .query_map([], |r| {
                    Ok(DbSession {
                        session_id: r.get(0)?,
                        session_key: r.get(1)?,
                        current: r.get::<_, i64>(2)? != 0,
                        updated_at_ms: r.get(3)?,
                        events: r.get::<_, i64>(4)?.max(0).unsigned_abs(),
                    })
                })
                .map_err(sql_err(&self.path, op))?;
            for r in rows {
                out.push(r.map_err(sql_err(&self.path, op))?);
            }
        }
        if has_events {
            let mut st = self
                .conn
                .prepare(
                    "SELECT session_id, max(created_at), COUNT(*) FROM transcript_events \
                     GROUP BY session_id ORDER BY session_id",
                )
                .map_err(sql_err(&self.path, op))?;
            let rows: Vec<(String, Option<i64>, i64)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql_err(&self.path, op))?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql_err(&self.path, op))?;
            for (sid, at, n) in rows {
                if out.iter().any(|s| s.session_id == sid) {
                    continue;
                }
                let current = has_nodes
                    && self
                        .conn
                        .query_row(
                            "SELECT 1 FROM session_nodes WHERE current_session_id = ?1",
                            [&sid],
                            |_| Ok(()),
                        )
                        .optional()
                        .map_err(sql_err(&self.path, op))?
                        .is_some();
                out.push(DbSession {
                    session_id: sid,
                    session_key: None,
                    current,
                    updated_at_ms: at,
                    events: n.max(0).unsigned_abs(),
                });
            }
        }
        Ok(out)
    }

    /// Reads the transcript of one session, in `seq` order, decoding `event_zstd` rows.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on query failure, [`Error::BadRow`] for rows that do not decode.
    pub fn events(&self, session_id: &str) -> Result<Vec<TranscriptEvent>> {
        let mut out = Vec::new();
        self.for_each_event(Some(session_id), |ev| {
            out.push(ev);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every transcript event (of one session, or of all), in order.
    ///
    /// # Errors
    /// Errors of the query, of decoding, or returned by `f`.
    pub fn for_each_event(
        &self,
        session_id: Option<&str>,
        mut f: impl FnMut(TranscriptEvent) -> Result<()>,
    ) -> Result<()> {
        self.for_each_event_text(session_id, |sid, seq, text| {
            let value = serde_json::from_str(text).map_err(|_| bad_event(&self.path, sid, seq))?;
            f(TranscriptEvent {
                session_id: sid.to_owned(),
                seq,
                value,
            })
        })
    }

    /// Calls `f(session_id, seq, text)` with every transcript event (of one session, or of
    /// all), in order, as the gateway stored it: the `event_json` text byte for byte, or the
    /// decompressed `event_zstd` frame. Nothing is parsed.
    ///
    /// # Errors
    /// Errors of the query, a zstd row that does not decode ([`Error::BadRow`]), or returned by
    /// `f`.
    pub fn for_each_event_text(
        &self,
        session_id: Option<&str>,
        mut f: impl FnMut(&str, i64, &str) -> Result<()>,
    ) -> Result<()> {
        let op = "reading events";
        let sql = match session_id {
            Some(_) => {
                "SELECT session_id, seq, event_json, event_zstd, event_utf8_bytes \
                 FROM transcript_events WHERE session_id = ?1 ORDER BY seq"
            }
            None => {
                "SELECT session_id, seq, event_json, event_zstd, event_utf8_bytes \
                 FROM transcript_events ORDER BY session_id, seq"
            }
        };
        let mut st = self.conn.prepare(sql).map_err(sql_err(&self.path, op))?;
        let mut rows = match session_id {
            Some(s) => st.query([s]),
            None => st.query([]),
        }
        .map_err(sql_err(&self.path, op))?;
        while let Some(r) = rows.next().map_err(sql_err(&self.path, op))? {
            let sid: String = r.get(0).map_err(sql_err(&self.path, op))?;
            let seq: i64 = r.get(1).map_err(sql_err(&self.path, op))?;
            let json: Option<String> = r.get(2).map_err(sql_err(&self.path, op))?;
            let zst: Option<Vec<u8>> = r.get(3).map_err(sql_err(&self.path, op))?;
            let len: Option<i64> = r.get(4).map_err(sql_err(&self.path, op))?;
            let text = decode_event(&self.path, &sid, seq, json, zst, len)?;
            f(&sid, seq, &text)?;
        }
        Ok(())
    }

    /// Writes the session's events as JSONL (one entry per line), as the JSONL era stored them.
    ///
    /// # Errors
    /// Query/decoding errors, and I/O errors of `out`.
    pub fn export_jsonl(&self, session_id: &str, out: &mut dyn std::io::Write) -> Result<()> {
        self.for_each_event(Some(session_id), |ev| {
            let line = serde_json::to_string(&ev.value).map_err(|e| Error::json(&self.path, &e))?;
            writeln!(out, "{line}").map_err(|e| Error::io(&self.path, e))
        })
    }

    /// Rewrites, in ONE immediate transaction, every transcript event and derived plaintext copy
    /// for which `f` reports a change (see the module docs for the columns).
    ///
    /// `f` receives JSON entries as parsed values and plain-text columns (FTS text, memory
    /// chunks, display names) as a [`Value::String`]; it returns whether it changed the value.
    /// JSON columns that do not parse are passed as a string too, so they are never skipped.
    /// Concurrent writers wait on the busy timeout; the gateway's own appends land either
    /// before the transaction (and are redacted) or after it.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (the transaction is rolled back, nothing changes), [`Error::BadRow`].
    pub fn redact(&mut self, f: impl FnMut(&mut Value) -> bool) -> Result<RedactReport> {
        self.redact_prefiltered(|_| true, f)
    }

    /// As [`AgentDb::redact`], skipping every value (a JSON entry, a text, one line of an
    /// archive) for which `prefilter` returns false, before it is parsed: pass a raw-text gate
    /// that is false only when `f` could not change the value (e.g.
    /// `moltvault_redact::Redactor::may_match`). This is what makes redaction cost close to a read
    /// when few rows hold a secret.
    ///
    /// # Errors
    /// As [`AgentDb::redact`].
    pub fn redact_prefiltered(
        &mut self,
        prefilter: impl Fn(&str) -> bool,
        f: impl FnMut(&mut Value) -> bool,
    ) -> Result<RedactReport> {
        let (report, _) = self.redact_pass(Tables::All, None, prefilter, f)?;
        Ok(report)
    }

    /// As [`AgentDb::redact_prefiltered`], visiting only the rows added or changed since the
    /// pass that produced `since` (see [`SweepMark`]); with `since` `None`, or whenever the mark
    /// cannot vouch for the rows under it, every row of the table is visited instead. Returns
    /// the report and the mark to pass to the next call, both taken inside the redaction
    /// transaction, so no row the gateway adds meanwhile can fall under the new mark unseen.
    ///
    /// # Errors
    /// As [`AgentDb::redact`].
    pub fn redact_incremental(
        &mut self,
        tables: Tables,
        since: Option<&SweepMark>,
        prefilter: impl Fn(&str) -> bool,
        f: impl FnMut(&mut Value) -> bool,
    ) -> Result<IncrementalReport> {
        let mut planner = Planner::new(since);
        let (report, mark) = self.redact_pass(tables, Some(&mut planner), prefilter, f)?;
        Ok(IncrementalReport {
            report,
            mark: mark.unwrap_or_default(),
            full: planner.full,
        })
    }

    /// The one redaction transaction behind [`AgentDb::redact_prefiltered`] (every row of every
    /// table, `planner` `None`) and [`AgentDb::redact_incremental`].
    fn redact_pass(
        &mut self,
        tables: Tables,
        mut planner: Option<&mut Planner<'_>>,
        prefilter: impl Fn(&str) -> bool,
        f: impl FnMut(&mut Value) -> bool,
    ) -> Result<(RedactReport, Option<SweepMark>)> {
        let mut rw = Rewrite { pre: &prefilter, f };
        let path = self.path.clone();
        let mut report = RedactReport::default();
        let present: Vec<String> = {
            let op = "listing tables";
            let mut st = self
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .map_err(sql_err(&path, op))?;
            st.query_map([], |r| r.get(0))
                .map_err(sql_err(&path, op))?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql_err(&path, op))?
        };
        let has = |t: &str| present.iter().any(|p| p == t) && tables.covers(t);
        // Freed cells and pages are overwritten with zeros, so a rewritten row's old bytes do
        // not stay in the page's free space or on the freelist (per connection; no lock).
        self.conn
            .pragma_update(None, "secure_delete", "ON")
            .map_err(sql_err(&path, "turning on secure_delete"))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, "starting the redaction transaction"))?;
        // What to visit is decided inside the transaction: the gateway cannot write between
        // the plan and the reads.
        if let Some(p) = planner.as_deref_mut() {
            p.begin(&tx, &path, &present)?;
        }
        let mut sel = |table: &str| -> Result<Sel> {
            match planner.as_deref_mut() {
                Some(p) => p.plan(&tx, &path, table),
                None => Ok(Sel::All),
            }
        };
        let mut plans: Vec<(&'static str, Sel)> = Vec::new();
        for t in SWEPT_TABLES {
            if has(t) {
                plans.push((t, sel(t)?));
            }
        }
        let plan = |t: &str| {
            plans
                .iter()
                .find(|(p, _)| *p == t)
                .map_or(Sel::All, |(_, s)| s.clone())
        };
        // FTS5 keeps deleted terms in old index segments until they merge; with its
        // 'secure-delete' option a delete removes them from the segments in place.
        let fts: Vec<FtsScrub> = FTS_TABLES
            .iter()
            .filter(|t| has(t))
            .map(|t| FtsScrub::begin(&tx, t))
            .collect();

        if has("transcript_events") {
            let n = redact_events(&tx, &path, &plan("transcript_events"), &mut rw, &mut report)?;
            if n > 0 {
                report
                    .changed
                    .insert("transcript_events.event_json".to_owned(), n);
            }
        }
        for (table, col, kind) in TEXT_COLUMNS {
            if !has(table) {
                continue;
            }
            let s = plan(table);
            let n = redact_column(&tx, &path, table, col, *kind, &s, &mut rw, &mut report)?;
            if n > 0 {
                report.changed.insert(format!("{table}.{col}"), n);
            }
        }
        for table in [
            "session_transcript_archives",
            "session_transcript_cold_archives",
        ] {
            if !has(table) {
                continue;
            }
            let n = redact_archives(&tx, &path, table, &plan(table), &mut rw, &mut report)?;
            if n > 0 {
                report.changed.insert(format!("{table}.archive_blob"), n);
            }
        }
        for f in &fts {
            let changed = f.table == "session_transcript_fts"
                && report.changed.contains_key("session_transcript_fts.text")
                || f.table == "memory_index_chunks_fts"
                    && report.changed.contains_key("memory_index_chunks.text");
            if f.finish(&tx, changed, &path)? {
                report.fts_scrubbed.push(f.table.to_owned());
            }
        }
        let mark = match planner {
            Some(p) => Some(p.mark(&tx, &path, &present, tables)?),
            None => None,
        };
        tx.commit()
            .map_err(sql_err(&path, "committing the redaction"))?;
        if report.total_changed() > 0 {
            report.checkpoint = Some(self.checkpoint_truncate()?);
        }
        Ok((report, mark))
    }

    /// Runs `PRAGMA wal_checkpoint(TRUNCATE)`: copies every WAL frame into the database and
    /// truncates the WAL, unless another connection is reading or writing (then
    /// [`Checkpoint::Busy`]; it waits up to the busy timeout for writers, never for readers).
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the pragma fails for another reason.
    pub fn checkpoint_truncate(&self) -> Result<Checkpoint> {
        let mode: String = self
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(sql_err(&self.path, "reading the journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Checkpoint::NotWal);
        }
        let (busy, frames, checkpointed): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql_err(&self.path, "checkpointing the WAL"))?;
        Ok(if busy == 0 && frames <= 0 {
            Checkpoint::Truncated
        } else {
            Checkpoint::Busy {
                frames,
                checkpointed,
            }
        })
    }

    /// Rebuilds the database with `VACUUM` and truncates its WAL: every free page and every
    /// page's unused space is dropped, so no byte of a deleted or rewritten row survives in
    /// the file, whoever deleted it (the gateway's own updates leave old bytes behind that
    /// [`AgentDb::redact`] cannot see). Needs the write lock for the whole rebuild and
    /// temporary space the size of the database: run it only while the gateway is stopped.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (e.g. busy: another connection is using the database).
    pub fn vacuum(&self) -> Result<Checkpoint> {
        self.conn
            .pragma_update(None, "secure_delete", "ON")
            .map_err(sql_err(&self.path, "turning on secure_delete"))?;
        self.conn
            .execute_batch("VACUUM")
            .map_err(sql_err(&self.path, "vacuuming"))?;
        self.checkpoint_truncate()
    }

    /// Runs `PRAGMA integrity_check` and the FTS5 `integrity-check` of the full-text indexes;
    /// returns the problems found (empty when the database is sound).
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the checks cannot run.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let op = "checking integrity";
        let mut st = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(sql_err(&self.path, op))?;
        let mut out: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(sql_err(&self.path, op))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err(&self.path, op))?;
        out.retain(|s| s != "ok");
        for fts in ["session_transcript_fts", "memory_index_chunks_fts"] {
            if self.has_table(fts) {
                let sql = format!("INSERT INTO {fts}({fts}) VALUES('integrity-check')");
                if let Err(err) = self.conn.execute(&sql, []) {
                    out.push(format!("{fts}: {err}"));
                }
            }
        }
        Ok(out)
    }
}

/// What a text-bearing column of the agent database holds, for reports that group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnRole {
    /// `transcript_events`: the transcript entries themselves.
    Transcript,
    /// `trajectory_runtime_events`: the flight recorder (tool args and results, model output).
    Trajectory,
    /// Every other copy: full-text index, memory chunks, archives, queued and outgoing text.
    Derived,
}

/// How the values of a [`TextColumn`] are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// A JSON document per row (TEXT).
    Json,
    /// Plain text per row (TEXT).
    Text,
    /// `transcript_events`: `event_json` TEXT, or a zstd frame in `event_zstd`.
    Event,
    /// A JSONL archive per row (`archive_blob`, identity or zstd).
    Archive,
}

/// A text-bearing column that [`AgentDb::redact`] rewrites and [`AgentDb::for_each_text`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextColumn {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// How its values are stored.
    pub encoding: TextEncoding,
    /// What it holds.
    pub role: ColumnRole,
}

impl TextColumn {
    /// `table.column`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// One value read by [`AgentDb::for_each_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextValue<'a> {
    /// One JSON document (a transcript event, a trajectory event…), on one line.
    Json(&'a str),
    /// Plain text (may span lines).
    Text(&'a str),
    /// A JSONL archive (several lines).
    Jsonl(&'a str),
}

impl AgentDb {
    /// Every text-bearing column present in this database, transcript events first.
    pub fn text_columns(&self) -> Vec<TextColumn> {
        let mut out = Vec::new();
        if self.has_table("transcript_events") {
            out.push(TextColumn {
                table: "transcript_events",
                column: "event_json",
                encoding: TextEncoding::Event,
                role: ColumnRole::Transcript,
            });
        }
        for (table, column, kind) in TEXT_COLUMNS {
            if self.has_table(table) {
                out.push(TextColumn {
                    table,
                    column,
                    encoding: match kind {
                        Col::Json => TextEncoding::Json,
                        Col::Text => TextEncoding::Text,
                    },
                    role: if *table == "trajectory_runtime_events" {
                        ColumnRole::Trajectory
                    } else {
                        ColumnRole::Derived
                    },
                });
            }
        }
        for table in [
            "session_transcript_archives",
            "session_transcript_cold_archives",
        ] {
            if self.has_table(table) {
                out.push(TextColumn {
                    table,
                    column: "archive_blob",
                    encoding: TextEncoding::Archive,
                    role: ColumnRole::Derived,
                });
            }
        }
        out
    }

    /// The smallest and largest rowid of a table (`None` when it is empty), so a reader can
    /// split a large table into ranges read in parallel.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on query failure.
    pub fn rowid_bounds(&self, table: &str) -> Result<Option<(i64, i64)>> {
        let sql = format!("SELECT min(rowid), max(rowid) FROM \"{table}\"");
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_err(&self.path, "reading rowid bounds"))?;
        Ok(lo.zip(hi))
    }

    /// Scans the values of `col` whose rowid lies in `rows` with `redactor`, read-only: values
    /// are gathered as JSONL records (a plain-text value becomes one JSON string record, so a
    /// secret spanning lines is still one value; an archive value is its JSONL lines) and
    /// scanned in batches of a few MiB. Each finding's `line` is its record's 1-based position
    /// within `rows`. Returns the bytes read.
    ///
    /// # Errors
    /// As [`AgentDb::for_each_text`]; a scanner error is reported as [`Error::Io`] on the
    /// database.
    pub fn scan_column(
        &self,
        col: &TextColumn,
        rows: std::ops::RangeInclusive<i64>,
        redactor: &moltvault_redact::Redactor,
        sink: &mut dyn moltvault_redact::FindingSink,
    ) -> Result<u64> {
        const BATCH_BYTES: usize = 4 << 20;
        let path = self.path.clone();
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES + (64 << 10));
        let (mut first, mut count) = (0u64, 0u64);
        let mut flush = |buf: &mut Vec<u8>, first: u64| -> Result<()> {
            if buf.is_empty() {
                return Ok(());
            }
            let mut shifted = |mut f: moltvault_redact::Finding| {
                f.line += first;
                sink.finding(f);
            };
            let res = redactor.redact_jsonl_bytes(buf, std::io::sink(), &mut shifted);
            buf.clear();
            res.map(|_| ())
                .map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))
        };
        let bytes = self.for_each_text(col, rows, |v| {
            match v {
                TextValue::Json(t) => buf.extend_from_slice(t.as_bytes()),
                TextValue::Text(t) => {
                    buf.extend_from_slice(Value::from(t).to_string().as_bytes());
                }
                TextValue::Jsonl(t) => {
                    let t = t.trim_end_matches('\n');
                    count += t.bytes().filter(|&b| b == b'\n').count() as u64;
                    buf.extend_from_slice(t.as_bytes());
                }
            }
            buf.push(b'\n');
            count += 1;
            if buf.len() >= BATCH_BYTES {
                flush(&mut buf, first)?;
                first = count;
            }
            Ok(())
        })?;
        flush(&mut buf, first)?;
        Ok(bytes)
    }

    /// Calls `f` with every value of `col` whose rowid lies in `rows`, decoding zstd events and
    /// archives; returns the bytes passed to `f`. Values that are NULL or not text are skipped.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on query failure, [`Error::BadRow`] for a row that does not decode,
    /// and what `f` returns.
    pub fn for_each_text(
        &self,
        col: &TextColumn,
        rows: std::ops::RangeInclusive<i64>,
        mut f: impl FnMut(TextValue<'_>) -> Result<()>,
    ) -> Result<u64> {
        let op = "reading text columns";
        let (lo, hi) = (*rows.start(), *rows.end());
        let mut bytes = 0u64;
        match col.encoding {
            TextEncoding::Event => {
                let mut st = self
                    .conn
                    .prepare(
                        "SELECT session_id, seq, event_json, event_zstd, event_utf8_bytes \
                         FROM transcript_events WHERE rowid BETWEEN ?1 AND ?2",
                    )
                    .map_err(sql_err(&self.path, op))?;
                let mut q = st.query([lo, hi]).map_err(sql_err(&self.path, op))?;
                while let Some(r) = q.next().map_err(sql_err(&self.path, op))? {
                    // Plain rows are borrowed straight from SQLite: no copy, no parse.
                    if let Ok(rusqlite::types::ValueRef::Text(t)) = r.get_ref(2) {
                        let Ok(text) = std::str::from_utf8(t) else {
                            continue;
                        };
                        bytes += text.len() as u64;
                        f(TextValue::Json(text))?;
                        continue;
                    }
                    let sid: String = r.get(0).map_err(sql_err(&self.path, op))?;
                    let seq: i64 = r.get(1).map_err(sql_err(&self.path, op))?;
                    let zst: Option<Vec<u8>> = r.get(3).map_err(sql_err(&self.path, op))?;
                    let len: Option<i64> = r.get(4).map_err(sql_err(&self.path, op))?;
                    let text = decode_event(&self.path, &sid, seq, None, zst, len)?;
                    bytes += text.len() as u64;
                    f(TextValue::Json(&text))?;
                }
            }
            TextEncoding::Json | TextEncoding::Text => {
                let sql = format!(
                    "SELECT \"{}\" FROM \"{}\" WHERE rowid BETWEEN ?1 AND ?2",
                    col.column, col.table
                );
                let mut st = self.conn.prepare(&sql).map_err(sql_err(&self.path, op))?;
                let mut q = st.query([lo, hi]).map_err(sql_err(&self.path, op))?;
                while let Some(r) = q.next().map_err(sql_err(&self.path, op))? {
                    let Ok(rusqlite::types::ValueRef::Text(t)) = r.get_ref(0) else {
                        continue;
                    };
                    let Ok(text) = std::str::from_utf8(t) else {
                        continue;
                    };
                    bytes += text.len() as u64;
                    // A JSON column whose value spans lines is not one JSONL record.
                    if col.encoding == TextEncoding::Json && !text.contains('\n') {
                        f(TextValue::Json(text))?;
                    } else {
                        f(TextValue::Text(text))?;
                    }
                }
            }
            TextEncoding::Archive => {
                let cold = col.table == "session_transcript_cold_archives";
                let sql = if cold {
                    "SELECT rowid, 'zstd', archive_blob FROM session_transcript_cold_archives \
                     WHERE archive_blob IS NOT NULL AND rowid BETWEEN ?1 AND ?2"
                } else {
                    "SELECT rowid, encoding, archive_blob FROM session_transcript_archives \
                     WHERE rowid BETWEEN ?1 AND ?2"
                };
                let mut st = self.conn.prepare(sql).map_err(sql_err(&self.path, op))?;
                let mut q = st.query([lo, hi]).map_err(sql_err(&self.path, op))?;
                while let Some(r) = q.next().map_err(sql_err(&self.path, op))? {
                    let rowid: i64 = r.get(0).map_err(sql_err(&self.path, op))?;
                    let enc: String = r.get(1).map_err(sql_err(&self.path, op))?;
                    let blob: Vec<u8> = r.get(2).map_err(sql_err(&self.path, op))?;
                    let text = decode_archive(&self.path, col.table, rowid, &enc, blob)?;
                    bytes += text.len() as u64;
                    f(TextValue::Jsonl(&text))?;
                }
            }
        }
        Ok(bytes)
    }
}

fn bad_event(path: &Path, sid: &str, seq: i64) -> Error {
    Error::BadRow {
        path: path.to_path_buf(),
        table: "transcript_events",
        what: format!("event {seq} of session {sid}"),
    }
}

fn decode_event(
    path: &Path,
    sid: &str,
    seq: i64,
    json: Option<String>,
    zst: Option<Vec<u8>>,
    len: Option<i64>,
) -> Result<String> {
    match (json, zst) {
        (Some(j), _) => Ok(j),
        (None, Some(z)) => {
            let cap = len
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(MAX_EVENT_BYTES)
                .min(MAX_EVENT_BYTES);
            let raw = zstd::bulk::decompress(&z, cap).map_err(|_| bad_event(path, sid, seq))?;
            String::from_utf8(raw).map_err(|_| bad_event(path, sid, seq))
        }
        (None, None) => Err(bad_event(path, sid, seq)),
    }
}

type EventUpdate = (i64, Option<String>, Option<(Vec<u8>, i64)>);

fn redact_events(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    sel: &Sel,
    rw: &mut Rewrite<'_, impl FnMut(&mut Value) -> bool>,
    report: &mut RedactReport,
) -> Result<usize> {
    let op = "reading events";
    let mut updates: Vec<EventUpdate> = Vec::new();
    {
        let base = "SELECT rowid, session_id, seq, event_json, event_zstd, event_utf8_bytes \
                    FROM transcript_events";
        for_rows(tx, path, base, None, sel, op, |r| {
            report.scanned += 1;
            let rowid: i64 = r.get(0).map_err(sql_err(path, op))?;
            let sid: String = r.get(1).map_err(sql_err(path, op))?;
            let seq: i64 = r.get(2).map_err(sql_err(path, op))?;
            let json: Option<String> = r.get(3).map_err(sql_err(path, op))?;
            let zst: Option<Vec<u8>> = r.get(4).map_err(sql_err(path, op))?;
            let len: Option<i64> = r.get(5).map_err(sql_err(path, op))?;
            let was_zstd = json.is_none();
            let text = decode_event(path, &sid, seq, json, zst, len)?;
            let Some(new) = apply(&text, Col::Json, rw) else {
                return Ok(());
            };
            if was_zstd {
                let z = zstd::bulk::compress(new.as_bytes(), 3).map_err(|e| Error::io(path, e))?;
                let n = i64::try_from(new.len()).unwrap_or(i64::MAX);
                updates.push((rowid, None, Some((z, n))));
            } else {
                updates.push((rowid, Some(new), None));
            }
            Ok(())
        })?;
    }
    let op = "rewriting events";
    for (rowid, json, zst) in &updates {
        match (json, zst) {
            (Some(j), _) => tx.execute(
                "UPDATE transcript_events SET event_json = ?1 WHERE rowid = ?2",
                params![j, rowid],
            ),
            (None, Some((z, n))) => tx.execute(
                "UPDATE transcript_events SET event_zstd = ?1, event_utf8_bytes = ?2 \
                 WHERE rowid = ?3",
                params![z, n, rowid],
            ),
            (None, None) => Ok(0),
        }
        .map_err(sql_err(path, op))?;
    }
    Ok(updates.len())
}

#[allow(clippy::too_many_arguments)]
fn redact_column(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    table: &str,
    col: &str,
    kind: Col,
    sel: &Sel,
    rw: &mut Rewrite<'_, impl FnMut(&mut Value) -> bool>,
    report: &mut RedactReport,
) -> Result<usize> {
    let op = "reading derived copies";
    let mut updates: Vec<(i64, String)> = Vec::new();
    {
        let base = format!("SELECT rowid, {col} FROM {table}");
        let cond = format!("{col} IS NOT NULL");
        for_rows(tx, path, &base, Some(&cond), sel, op, |r| {
            report.scanned += 1;
            let rowid: i64 = r.get(0).map_err(sql_err(path, op))?;
            let Ok(text) = r.get::<_, String>(1) else {
                return Ok(());
            };
            if let Some(new) = apply(&text, kind, rw) {
                updates.push((rowid, new));
            }
            Ok(())
        })?;
    }
    // For the FTS5 table this UPDATE goes through the virtual table, which removes the old terms
    // from the index and adds the new ones; for memory_index_chunks the schema's triggers do the
    // same for memory_index_chunks_fts.
    let sql = format!("UPDATE {table} SET {col} = ?1 WHERE rowid = ?2");
    for (rowid, new) in &updates {
        tx.execute(&sql, params![new, rowid])
            .map_err(sql_err(path, "rewriting derived copies"))?;
    }
    Ok(updates.len())
}

fn redact_archives(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    table: &'static str,
    sel: &Sel,
    rw: &mut Rewrite<'_, impl FnMut(&mut Value) -> bool>,
    report: &mut RedactReport,
) -> Result<usize> {
    let cold = table == "session_transcript_cold_archives";
    let (base, cond) = if cold {
        (
            "SELECT rowid, 'zstd', archive_blob FROM session_transcript_cold_archives",
            Some("archive_blob IS NOT NULL"),
        )
    } else {
        (
            "SELECT rowid, encoding, archive_blob FROM session_transcript_archives",
            None,
        )
    };
    let op = "reading archives";
    let mut updates: Vec<(i64, Vec<u8>, usize)> = Vec::new();
    {
        for_rows(tx, path, base, cond, sel, op, |r| {
            report.scanned += 1;
            let rowid: i64 = r.get(0).map_err(sql_err(path, op))?;
            let enc: String = r.get(1).map_err(sql_err(path, op))?;
            let blob: Vec<u8> = r.get(2).map_err(sql_err(path, op))?;
            let text = decode_archive(path, table, rowid, &enc, blob)?;
            if let Some(new) = apply_jsonl(&text, rw) {
                let stored = if enc == "zstd" {
                    zstd::stream::encode_all(new.as_bytes(), 3).map_err(|e| Error::io(path, e))?
                } else {
                    new.clone().into_bytes()
                };
                updates.push((rowid, stored, new.len()));
            }
            Ok(())
        })?;
    }
    let op = "rewriting archives";
    for (rowid, blob, raw_len) in &updates {
        let sha = hex::encode(Sha256::digest(blob));
        let raw_len = i64::try_from(*raw_len).unwrap_or(i64::MAX);
        let blob_len = i64::try_from(blob.len()).unwrap_or(i64::MAX);
        if cold {
            tx.execute(
                "UPDATE session_transcript_cold_archives SET archive_blob = ?1, \
                 archive_sha256 = ?2, raw_bytes = ?3, archive_bytes = ?4 WHERE rowid = ?5",
                params![blob, sha, raw_len, blob_len, rowid],
            )
        } else {
            tx.execute(
                "UPDATE session_transcript_archives SET archive_blob = ?1, \
                 archive_sha256 = ?2 WHERE rowid = ?3",
                params![blob, sha, rowid],
            )
        }
        .map_err(sql_err(path, op))?;
    }
    Ok(updates.len())
}

/// Applies `f` to one column value; returns the new text when `f` changed it.
fn apply(
    text: &str,
    kind: Col,
    rw: &mut Rewrite<'_, impl FnMut(&mut Value) -> bool>,
) -> Option<String> {
    if !(rw.pre)(text) {
        return None;
    }
    let f = &mut rw.f;
    if kind == Col::Json
        && let Ok(mut v) = serde_json::from_str::<Value>(text)
    {
        return f(&mut v).then(|| v.to_string());
    }
    let mut v = Value::String(text.to_owned());
    if !f(&mut v) {
        return None;
    }
    match v {
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// What a redaction pass does to each value: a raw-text prefilter, then the rewrite itself.
struct Rewrite<'a, F> {
    pre: &'a dyn Fn(&str) -> bool,
    f: F,
}

/// Decodes an archive row's blob (`identity` or `zstd`) into its JSONL text.
fn decode_archive(
    path: &Path,
    table: &'static str,
    rowid: i64,
    enc: &str,
    blob: Vec<u8>,
) -> Result<String> {
    let bad = || Error::BadRow {
        path: path.to_path_buf(),
        table,
        what: format!("archive_blob of row {rowid}"),
    };
    let raw = if enc == "zstd" {
        zstd::stream::decode_all(&blob[..]).map_err(|_| bad())?
    } else {
        blob
    };
    String::from_utf8(raw).map_err(|_| bad())
}

/// Applies `f` to every line of a JSONL text; returns the new text when a line changed.
fn apply_jsonl(text: &str, rw: &mut Rewrite<'_, impl FnMut(&mut Value) -> bool>) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.trim().is_empty() {
            out.push_str(line);
            continue;
        }
        match apply(body, Col::Json, rw) {
            Some(new) => {
                changed = true;
                out.push_str(&new);
            }
            None => out.push_str(body),
        }
        out.push_str(nl);
    }
    changed.then_some(out)
}

/// Which tables a redaction pass covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tables {
    /// Every table that holds transcript text (the module docs list them).
    All,
    /// Only `trajectory_runtime_events` (the flight recorder the plugin's hooks never see).
    Trajectory,
}

impl Tables {
    fn covers(self, table: &str) -> bool {
        match self {
            Tables::All => true,
            Tables::Trajectory => table == "trajectory_runtime_events",
        }
    }
}

/// Every table a pass may rewrite, each once.
const SWEPT_TABLES: &[&str] = &[
    "transcript_events",
    "trajectory_runtime_events",
    "acp_parent_stream_events",
    "session_transcript_fts",
    "memory_index_chunks",
    "session_pending_inputs",
    "context_engine_turn_outbox",
    "session_input_completions",
    "session_goal_operations",
    "conversation_deliveries",
    "session_suggestions",
    "session_progress_cards",
    "session_nodes",
    "session_windows",
    "session_transcript_archives",
    "session_transcript_cold_archives",
];

/// How [`AgentDb::redact_incremental`] finds a table's new and changed rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Rows are appended (rowid = max + 1) and rewritten in place only by a transcript
    /// rewrite, which the gateway logs in `transcript_rewrite_watermarks`: rows above the
    /// mark's rowid, plus every row of a rewritten session.
    Append(SessionLink),
    /// `memory_index_chunks`: appended, or upserted in place with a new `updated_at`.
    Stamped,
    /// `session_transcript_cold_archives`: one row per session whose blob can be replaced in
    /// place; a row is new when its `archive_sha256` is.
    Digest,
    /// Small per-session tables updated in place all the time: always read whole.
    Whole,
}

/// How the rows of one session are found in an [`Strategy::Append`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionLink {
    /// A `session_id` column (the leading column of the primary key).
    Column,
    /// `session_transcript_fts` rows, through `session_transcript_fts_rows(id, session_id)`.
    FtsRows,
}

fn strategy(table: &str) -> Strategy {
    match table {
        "transcript_events"
        | "trajectory_runtime_events"
        | "acp_parent_stream_events"
        | "session_transcript_archives" => Strategy::Append(SessionLink::Column),
        "session_transcript_fts" => Strategy::Append(SessionLink::FtsRows),
        "memory_index_chunks" => Strategy::Stamped,
        "session_transcript_cold_archives" => Strategy::Digest,
        _ => Strategy::Whole,
    }
}

/// The version of [`SweepMark`]'s layout; a mark of another version is not trusted.
const MARK_VERSION: u32 = 1;

/// Where an incremental redaction of one database stopped: per table the largest rowid seen
/// and a digest of that row, the gateway's transcript rewrite generations, the newest memory
/// chunk stamp and the cold archives' digests. Serialized by the caller between passes
/// (`moltvault_gateway::sweep` keeps it in moltvault's own directory); it holds no transcript
/// text, only rowids, session ids, timestamps and digests.
///
/// A mark vouches for the rows under it only while the gateway keeps appending: when the row
/// at a table's mark is gone or differs (the gateway deleted the newest rows, so rowids can be
/// handed out again, or a `VACUUM` renumbered them), that table is read whole again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepMark {
    version: u32,
    tables: BTreeMap<String, TableMark>,
    #[serde(default)]
    rewrites: BTreeMap<String, String>,
    #[serde(default)]
    memory_at: Option<i64>,
    #[serde(default)]
    cold: BTreeMap<String, String>,
}

/// One table's part of a [`SweepMark`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TableMark {
    /// The largest rowid when the pass committed (`None`: the table was empty).
    rowid: Option<i64>,
    /// A digest of every column of that row, as the pass left it.
    tail: Option<String>,
}

/// Why [`AgentDb::redact_incremental`] read a table whole instead of from its mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// No mark was given (the first sweep of this database).
    NoMark,
    /// The mark was written by another version of this code.
    MarkVersion,
    /// The database has no `transcript_rewrite_watermarks` table, so in-place rewrites of old
    /// rows cannot be told apart.
    NoRewriteLog,
    /// The mark has no entry for this table.
    NewTable(&'static str),
    /// The row at this table's mark is gone or changed: rowids may have been reused.
    TableChanged(&'static str),
    /// A transcript rewrite touched this table and its rows cannot be found by session.
    Rewritten(&'static str),
    /// The caller's periodic full pass was due (set by `moltvault_gateway::sweep`, which then
    /// passes no mark).
    Scheduled,
}

impl std::fmt::Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FullReason::NoMark => f.write_str("no mark from an earlier sweep of this database"),
            FullReason::Scheduled => f.write_str("the periodic full pass was due"),
            FullReason::MarkVersion => f.write_str("the sweep mark is from another version"),
            FullReason::NoRewriteLog => {
                f.write_str("the database does not log transcript rewrites")
            }
            FullReason::NewTable(t) => write!(f, "{t} has no sweep mark yet"),
            FullReason::TableChanged(t) => {
                write!(
                    f,
                    "{t} changed under its sweep mark (rows deleted or renumbered)"
                )
            }
            FullReason::Rewritten(t) => write!(f, "{t} was rewritten"),
        }
    }
}

/// What [`AgentDb::redact_incremental`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalReport {
    /// The rows examined and rewritten.
    pub report: RedactReport,
    /// The mark to pass to the next call.
    pub mark: SweepMark,
    /// Why some table was read whole (the first reason found); `None` when every table with
    /// a mark was read from it.
    pub full: Option<FullReason>,
}

/// Which rows of one table a pass visits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sel {
    /// Every row.
    All,
    /// Rows whose rowid is above `after` (none by range when `None`), and the rows in `also`.
    Some {
        after: Option<i64>,
        also: std::collections::BTreeSet<i64>,
    },
}

/// Runs `base` (a `SELECT … FROM <one table>`) restricted to `cond` and to the rows of `sel`,
/// calling `each` per row: one range query above the mark, then one lookup per extra rowid.
#[allow(clippy::too_many_arguments)]
fn for_rows(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    base: &str,
    cond: Option<&str>,
    sel: &Sel,
    op: &'static str,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
) -> Result<()> {
    let cond = cond.unwrap_or("1");
    let mut run = |sql: String, arg: Option<i64>| -> Result<()> {
        let mut st = tx.prepare_cached(&sql).map_err(sql_err(path, op))?;
        let mut rows = match arg {
            Some(a) => st.query([a]),
            None => st.query([]),
        }
        .map_err(sql_err(path, op))?;
        while let Some(r) = rows.next().map_err(sql_err(path, op))? {
            each(r)?;
        }
        Ok(())
    };
    match sel {
        Sel::All => run(format!("{base} WHERE {cond}"), None),
        Sel::Some { after, also } => {
            if let Some(w) = after {
                run(format!("{base} WHERE ({cond}) AND rowid > ?1"), Some(*w))?;
            }
            for r in also {
                if after.is_some_and(|w| *r > w) {
                    continue;
                }
                run(format!("{base} WHERE ({cond}) AND rowid = ?1"), Some(*r))?;
            }
            Ok(())
        }
    }
}

/// A digest of one row's identity and text columns (`None` when the row does not exist).
fn row_digest(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    table: &str,
    rowid: i64,
) -> Result<Option<String>> {
    use rusqlite::types::ValueRef;
    let op = "reading the sweep mark's row";
    // The row's identity and text, not the metadata the gateway updates after the insert
    // (publish attempts, navigation counters, a chunk's re-index): a changed digest costs a
    // whole-table read. Another schema without these columns digests every column.
    let cols = match table {
        "transcript_events" => "session_id, seq, event_json, event_zstd, created_at",
        "session_transcript_archives" => {
            "session_id, generation, session_key, reason, encoding, archive_blob, archive_sha256, created_at"
        }
        "memory_index_chunks" => "id, path, source, start_line, end_line",
        _ => "*",
    };
    let sql = format!("SELECT {cols} FROM \"{table}\" WHERE rowid = ?1");
    let mut st = match tx.prepare_cached(&sql) {
        Ok(st) => st,
        Err(_) => tx
            .prepare_cached(&format!("SELECT * FROM \"{table}\" WHERE rowid = ?1"))
            .map_err(sql_err(path, op))?,
    };
    let n = st.column_count();
    let mut rows = st.query([rowid]).map_err(sql_err(path, op))?;
    let Some(r) = rows.next().map_err(sql_err(path, op))? else {
        return Ok(None);
    };
    let mut h = Sha256::new();
    for i in 0..n {
        let v = r.get_ref(i).map_err(sql_err(path, op))?;
        let (tag, bytes): (u8, Vec<u8>) = match v {
            ValueRef::Null => (0, Vec::new()),
            ValueRef::Integer(i) => (1, i.to_le_bytes().to_vec()),
            ValueRef::Real(f) => (2, f.to_le_bytes().to_vec()),
            ValueRef::Text(t) => (3, t.to_vec()),
            ValueRef::Blob(b) => (4, b.to_vec()),
        };
        h.update([tag]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(Some(hex::encode(&h.finalize()[..16])))
}

fn max_rowid(tx: &rusqlite::Transaction<'_>, path: &Path, table: &str) -> Result<Option<i64>> {
    // `ORDER BY … LIMIT 1` rather than `max(rowid)`: an FTS5 table answers it from its index
    // instead of a scan.
    tx.query_row(
        &format!("SELECT rowid FROM \"{table}\" ORDER BY rowid DESC LIMIT 1"),
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql_err(path, "reading the largest rowid"))
}

fn rowids(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<i64>> {
    let op = "finding changed rows";
    let mut st = tx.prepare_cached(sql).map_err(sql_err(path, op))?;
    st.query_map(args, |r| r.get(0))
        .map_err(sql_err(path, op))?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err(path, op))
}

fn string_map(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    sql: &str,
) -> Result<BTreeMap<String, String>> {
    let op = "reading the sweep state";
    let mut st = tx.prepare(sql).map_err(sql_err(path, op))?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err(path, op))?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err(path, op))
}

const REWRITES_SQL: &str = "SELECT session_id, generation FROM transcript_rewrite_watermarks";
const COLD_SQL: &str = "SELECT session_id, archive_sha256 FROM session_transcript_cold_archives \
                        WHERE archive_blob IS NOT NULL";

/// Decides, inside the redaction transaction, which rows an incremental pass visits.
struct Planner<'a> {
    prev: Option<&'a SweepMark>,
    /// Every table is read whole.
    whole: bool,
    /// Sessions the gateway rewrote since the mark (their generation changed).
    rewritten: Vec<String>,
    has_fts_rows: bool,
    full: Option<FullReason>,
}

impl<'a> Planner<'a> {
    fn new(prev: Option<&'a SweepMark>) -> Self {
        Planner {
            prev,
            whole: false,
            rewritten: Vec::new(),
            has_fts_rows: false,
            full: None,
        }
    }

    fn fall_back(&mut self, why: FullReason) {
        self.full.get_or_insert(why);
    }

    fn begin(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        path: &Path,
        present: &[String],
    ) -> Result<()> {
        let has = |t: &str| present.iter().any(|p| p == t);
        self.has_fts_rows = has("session_transcript_fts_rows");
        let Some(prev) = self.prev else {
            self.whole = true;
            self.fall_back(FullReason::NoMark);
            return Ok(());
        };
        if prev.version != MARK_VERSION {
            self.whole = true;
            self.fall_back(FullReason::MarkVersion);
            return Ok(());
        }
        if !has("transcript_rewrite_watermarks") {
            self.whole = true;
            self.fall_back(FullReason::NoRewriteLog);
            return Ok(());
        }
        let now = string_map(tx, path, REWRITES_SQL)?;
        self.rewritten = now
            .into_iter()
            .filter(|(sid, generation)| prev.rewrites.get(sid) != Some(generation))
            .map(|(sid, _)| sid)
            .collect();
        Ok(())
    }

    fn plan(&mut self, tx: &rusqlite::Transaction<'_>, path: &Path, table: &str) -> Result<Sel> {
        let Some(prev) = self.prev.filter(|_| !self.whole) else {
            return Ok(Sel::All);
        };
        // `table` comes from SWEPT_TABLES: keep the 'static name for the reasons.
        let name = SWEPT_TABLES
            .iter()
            .copied()
            .find(|t| *t == table)
            .unwrap_or("?");
        let st = strategy(table);
        match st {
            Strategy::Whole => Ok(Sel::All),
            Strategy::Digest => {
                let now = string_map(tx, path, COLD_SQL)?;
                let mut also = std::collections::BTreeSet::new();
                for (sid, sha) in now {
                    if prev.cold.get(&sid) != Some(&sha) {
                        also.extend(rowids(
                            tx,
                            path,
                            "SELECT rowid FROM session_transcript_cold_archives WHERE session_id = ?1",
                            [&sid],
                        )?);
                    }
                }
                Ok(Sel::Some { after: None, also })
            }
            Strategy::Append(_) | Strategy::Stamped => {
                let Some(tm) = prev.tables.get(table) else {
                    self.fall_back(FullReason::NewTable(name));
                    return Ok(Sel::All);
                };
                let Some(w) = tm.rowid else {
                    // Empty at the mark: every row is new.
                    return Ok(Sel::All);
                };
                if tm.tail.is_none() || row_digest(tx, path, table, w)? != tm.tail {
                    self.fall_back(FullReason::TableChanged(name));
                    return Ok(Sel::All);
                }
                let mut also = std::collections::BTreeSet::new();
                if st == Strategy::Stamped {
                    if let Some(at) = prev.memory_at {
                        also.extend(rowids(
                            tx,
                            path,
                            "SELECT rowid FROM memory_index_chunks WHERE updated_at >= ?1 AND rowid <= ?2",
                            [at, w],
                        )?);
                    }
                } else if let Strategy::Append(link) = st {
                    for sid in &self.rewritten {
                        let sql = match link {
                            SessionLink::Column => {
                                format!(
                                    "SELECT rowid FROM \"{table}\" WHERE session_id = ?1 AND rowid <= ?2"
                                )
                            }
                            SessionLink::FtsRows if self.has_fts_rows => {
                                "SELECT id FROM session_transcript_fts_rows \
                                 WHERE session_id = ?1 AND id <= ?2"
                                    .to_owned()
                            }
                            SessionLink::FtsRows => {
                                self.fall_back(FullReason::Rewritten(name));
                                return Ok(Sel::All);
                            }
                        };
                        also.extend(rowids(tx, path, &sql, params![sid, w])?);
                    }
                }
                Ok(Sel::Some {
                    after: Some(w),
                    also,
                })
            }
        }
    }

    /// The mark after the pass (read in the same transaction, after the rewrites).
    fn mark(
        &self,
        tx: &rusqlite::Transaction<'_>,
        path: &Path,
        present: &[String],
        tables: Tables,
    ) -> Result<SweepMark> {
        let has = |t: &str| present.iter().any(|p| p == t) && tables.covers(t);
        let mut mark = SweepMark {
            version: MARK_VERSION,
            ..SweepMark::default()
        };
        for t in SWEPT_TABLES {
            if !has(t) {
                continue;
            }
            match strategy(t) {
                Strategy::Append(_) | Strategy::Stamped => {
                    let rowid = max_rowid(tx, path, t)?;
                    let tail = match rowid {
                        Some(w) => row_digest(tx, path, t, w)?,
                        None => None,
                    };
                    mark.tables
                        .insert((*t).to_owned(), TableMark { rowid, tail });
                }
                Strategy::Digest => mark.cold = string_map(tx, path, COLD_SQL)?,
                Strategy::Whole => {}
            }
        }
        if has("memory_index_chunks") {
            mark.memory_at = tx
                .query_row("SELECT max(updated_at) FROM memory_index_chunks", [], |r| {
                    r.get(0)
                })
                .map_err(sql_err(path, "reading the memory index stamp"))?;
        }
        if present.iter().any(|p| p == "transcript_rewrite_watermarks") {
            mark.rewrites = string_map(tx, path, REWRITES_SQL)?;
        }
        Ok(mark)
    }
}
