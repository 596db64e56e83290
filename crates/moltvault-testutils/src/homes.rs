//! Temporary gateway homes for each supported line, built from the real sample files in
//! `examples/homes/` (themselves copied from what the real gateways wrote).
//!
//! ```
//! use moltvault_testutils::homes::{SampleLine, TestHome};
//! let home = TestHome::new(SampleLine::OpenClaw2026_7_35);
//! assert!(home.state_dir().join("openclaw.json").is_file());
//! ```
//!
//! The OpenClaw 2026.9.6 agent database is built fresh by [`build_agent_db_2026_9_6`] from the
//! real DDL and the real `transcript_events` / `session_nodes` rows of that run, plus derived
//! rows (FTS, trajectory, memory index, the deleted-session archive) made from those events the
//! way the gateway makes them. The committed copy under `examples/homes/` is the same build.

// Test scaffolding: files are planted directly, not through the production write funnel.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The bundled sample homes (`examples/homes`).
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homes")
}

/// The raw inputs of the database generator (`crates/moltvault-testutils/data`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A gateway release for which real sample files exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleLine {
    /// clawdbot 2026.1.24-3: `~/.clawdbot`, `clawdbot.json`, JSONL, `auth-profiles.json`, `.env`.
    Clawdbot2026_1_24,
    /// openclaw 2026.7.35: the last JSONL release, with trajectory sidecars.
    OpenClaw2026_7_35,
    /// openclaw 2026.9.6: SQLite transcripts, a zstd deleted-session archive.
    OpenClaw2026_9_6,
}

impl SampleLine {
    /// Every sample line.
    pub const ALL: [SampleLine; 3] = [
        SampleLine::Clawdbot2026_1_24,
        SampleLine::OpenClaw2026_7_35,
        SampleLine::OpenClaw2026_9_6,
    ];

    /// The directory name under `examples/homes/`.
    pub fn example_name(self) -> &'static str {
        match self {
            SampleLine::Clawdbot2026_1_24 => "clawdbot-2026.1.24",
            SampleLine::OpenClaw2026_7_35 => "openclaw-2026.7.35",
            SampleLine::OpenClaw2026_9_6 => "openclaw-2026.9.6",
        }
    }

    /// The default state dir name under `$HOME`.
    pub fn state_dirname(self) -> &'static str {
        match self {
            SampleLine::Clawdbot2026_1_24 => ".clawdbot",
            _ => ".openclaw",
        }
    }

    /// The config file name.
    pub fn config_name(self) -> &'static str {
        match self {
            SampleLine::Clawdbot2026_1_24 => "clawdbot.json",
            _ => "openclaw.json",
        }
    }

    /// The version string the config records (`meta.lastTouchedVersion`).
    pub fn version(self) -> &'static str {
        match self {
            SampleLine::Clawdbot2026_1_24 => "2026.1.24-3",
            SampleLine::OpenClaw2026_7_35 => "2026.7.35",
            SampleLine::OpenClaw2026_9_6 => "2026.9.6",
        }
    }
}

/// A temporary `$HOME` holding one gateway state dir; removed on drop.
#[derive(Debug)]
pub struct TestHome {
    dir: tempfile::TempDir,
    home: PathBuf,
    state_dir: PathBuf,
    line: Option<SampleLine>,
}

impl TestHome {
    /// A home whose default state dir (`~/.openclaw` or `~/.clawdbot`) holds a copy of the
    /// sample for `line`, with the modes the gateway gave each file.
    pub fn new(line: SampleLine) -> TestHome {
        let mut h = TestHome::empty();
        h.state_dir = h.home.join(line.state_dirname());
        h.line = Some(line);
        copy_tree(&examples_dir().join(line.example_name()), &h.state_dir);
        if line == SampleLine::OpenClaw2026_9_6 {
            let db = h.state_dir.join("agents/main/agent/openclaw-agent.sqlite");
            let _ = fs::remove_file(&db);
            build_agent_db_2026_9_6(&db);
        }
        apply_gateway_modes(&h.state_dir);
        h
    }

    /// A home with no gateway at all (its state dir path is `~/.openclaw`, not created).
    pub fn empty() -> TestHome {
        let dir = tempfile::tempdir().expect("create temp dir");
        let home = dir.path().join("home");
        fs::create_dir_all(&home).expect("create home");
        let state_dir = home.join(".openclaw");
        TestHome {
            dir,
            home,
            state_dir,
            line: None,
        }
    }

    /// The temp root (parent of the home; a scratch place outside it).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The gateway state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The sample line, if any.
    pub fn line(&self) -> Option<SampleLine> {
        self.line
    }

    /// A path inside the state dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.state_dir.join(rel)
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.path(self.line.map_or("openclaw.json", SampleLine::config_name))
    }

    /// Writes a file inside the state dir (parents created) with `mode`.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let p = self.path(rel);
        write_file(&p, contents.as_ref(), mode);
        p
    }

    /// Moves the state dir to `~/<new_name>` (e.g. `.openclaw`) and leaves `~/<legacy_name>`
    /// as a symlink to it, as the 2026.1.30 migration does; returns the symlink.
    pub fn migrate_to(&mut self, new_name: &str) -> PathBuf {
        let old = self.state_dir.clone();
        let new = self.home.join(new_name);
        fs::rename(&old, &new).expect("rename state dir");
        std::os::unix::fs::symlink(&new, &old).expect("symlink legacy dir");
        self.state_dir = new;
        old
    }

    /// Adds a JSONL transcript `agents/<agent>/sessions/<sid>.jsonl` with a header and `lines`.
    pub fn add_session(&self, agent: &str, sid: &str, lines: &[&str]) -> PathBuf {
        let mut text = format!(
            "{{\"type\":\"session\",\"version\":3,\"id\":\"{sid}\",\"timestamp\":\"2026-11-25T18:00:00.000Z\",\"cwd\":\"/home/user/clawd\"}}\n"
        );
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        self.write(&format!("agents/{agent}/sessions/{sid}.jsonl"), text, 0o644)
    }

    /// Makes `sid` the current session of `key` in the agent's `sessions.json`.
    pub fn set_current(&self, agent: &str, key: &str, sid: &str) {
        let p = self.path(&format!("agents/{agent}/sessions/sessions.json"));
        let mut v: Value = fs::read_to_string(&p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({}));
        v[key] = json!({ "sessionId": sid, "updatedAt": 1_795_629_677_865_u64 });
        write_file(
            &p,
            serde_json::to_string_pretty(&v).unwrap().as_bytes(),
            0o600,
        );
    }

    /// Writes `<transcript>.lock` naming `pid` (as the gateway's session write lock does).
    pub fn add_lock(&self, transcript: &Path, pid: u32) -> PathBuf {
        let p = PathBuf::from(format!("{}.lock", transcript.display()));
        write_file(
            &p,
            format!("{{\"pid\":{pid},\"createdAt\":\"2026-11-25T18:00:00.000Z\"}}").as_bytes(),
            0o644,
        );
        p
    }

    /// Sets a file's modification time.
    pub fn set_mtime(&self, path: &Path, t: SystemTime) {
        let f = fs::File::options()
            .write(true)
            .open(path)
            .expect("open to set mtime");
        f.set_modified(t).expect("set mtime");
    }

    /// Copies the config to `<config><suffix>` (e.g. `.bak`, `.bak.1`, `.last-good`).
    pub fn add_config_backup(&self, suffix: &str) -> PathBuf {
        let src = self.config_path();
        let dst = PathBuf::from(format!("{}{suffix}", src.display()));
        fs::copy(&src, &dst).expect("copy config");
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o600)).expect("chmod");
        dst
    }

    /// Reads the config as JSON (the samples are plain JSON).
    pub fn config(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.config_path()).expect("read config"))
            .expect("config is JSON")
    }

    /// Sets `pointer` (RFC 6901, objects created on the way) in the config to `value`; this is
    /// how tests plant extra secrets (`/channels/telegram/botToken`, `/hooks/token`, ...).
    pub fn set_config(&self, pointer: &str, value: Value) {
        let mut doc = self.config();
        let mut cur = &mut doc;
        let segs: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = segs.split_last().expect("non-empty pointer");
        for s in parents {
            if cur.get(s).is_none() {
                cur[s.as_str()] = json!({});
            }
            cur = cur.get_mut(s).expect("just created");
        }
        cur[last.as_str()] = value;
        write_file(
            &self.config_path(),
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
            0o600,
        );
    }

    /// Appends `KEY=value` to the state dir's `.env`.
    pub fn add_env(&self, key: &str, value: &str) {
        let p = self.path(".env");
        let mut text = fs::read_to_string(&p).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{key}={value}\n"));
        write_file(&p, text.as_bytes(), 0o600);
    }
}

/// A secret planted by [`TestHome::plant_secrets`]: the inventory id it must get and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantedSecret {
    /// The id `configured_secrets` reports for it.
    pub id: &'static str,
    /// The fake value (format-valid for its redaction rule).
    pub value: String,
}

impl TestHome {
    /// Plants one secret of each channel / hooks / remote kind into the config and a gateway
    /// token into `.env`, with format-valid fake values from `seed`; returns what was planted.
    pub fn plant_secrets(&self, seed: u64) -> Vec<PlantedSecret> {
        use crate::secrets::{FakeRng, contextual_secrets, provider_secrets};
        let mut r = FakeRng::new(seed);
        let mut all = provider_secrets(&mut r);
        all.extend(contextual_secrets(&mut r));
        let by_rule = |rule: &str| {
            all.iter()
                .find(|f| f.rule == rule)
                .map(|f| f.secret.clone())
                .unwrap_or_else(|| panic!("testutils has no fake for {rule}"))
        };
        let planted = vec![
            ("channels.telegram.botToken", by_rule("telegram-bot-token")),
            ("channels.discord.token", by_rule("discord-bot-token")),
            ("channels.slack.botToken", by_rule("slack-bot-token")),
            ("channels.slack.appToken", by_rule("slack-app-token")),
            (
                "channels.slack.signingSecret",
                by_rule("slack-signing-secret"),
            ),
            ("hooks.token", r.hex(48)),
            ("gateway.remote.token", r.hex(48)),
        ];
        for (id, v) in &planted {
            self.set_config(
                &format!("/{}", id.replace('.', "/")),
                Value::String(v.clone()),
            );
        }
        let env_tok = r.hex(48);
        self.add_env("OPENCLAW_GATEWAY_TOKEN", &env_tok);
        planted
            .into_iter()
            .map(|(id, value)| PlantedSecret { id, value })
            .chain(std::iter::once(PlantedSecret {
                id: "env:OPENCLAW_GATEWAY_TOKEN",
                value: env_tok,
            }))
            .collect()
    }
}

fn write_file(p: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().expect("has parent")).expect("create parent");
    fs::write(p, contents).expect("write file");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for e in fs::read_dir(from).expect("read example dir") {
        let e = e.expect("dir entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).expect("copy file");
        }
    }
}

/// Sets the modes the real gateways used (samples' `state-tree*.txt`): state dir and agent dirs
/// 0700, secrets 0600, transcripts 0644 in 0755 session dirs.
fn apply_gateway_modes(state: &Path) {
    fn walk(dir: &Path, state: &Path) {
        for e in fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(state)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let is_dir = e.file_type().unwrap().is_dir();
            let mode = if is_dir {
                if rel.ends_with("/agent") || rel == "logs" || rel == "identity" {
                    0o700
                } else {
                    0o755
                }
            } else if rel.ends_with(".jsonl") && !rel.contains(".trajectory.") {
                0o644
            } else {
                0o600
            };
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
            if is_dir {
                walk(&p, state);
            }
        }
    }
    fs::set_permissions(state, fs::Permissions::from_mode(0o700)).expect("chmod");
    walk(state, state);
}

/// Splits the sample DDL into statements, ordered so every table exists before its indexes and
/// triggers; SQLite's internal and FTS5 shadow tables are left for SQLite to create.
fn ordered_schema(ddl: &str) -> Vec<String> {
    let mut tables = Vec::new();
    let mut virtuals = Vec::new();
    let mut indexes = Vec::new();
    let mut triggers = Vec::new();
    let mut cur = String::new();
    for line in ddl.lines() {
        cur.push_str(line);
        cur.push('\n');
        let t = cur.trim();
        let complete =
            t.ends_with(';') && (!t.starts_with("CREATE TRIGGER") || t.ends_with("END;"));
        if !complete {
            continue;
        }
        let stmt = std::mem::take(&mut cur).trim().to_owned();
        if stmt.starts_with("CREATE TABLE '") || stmt.starts_with("CREATE TABLE sqlite_") {
            continue;
        } else if stmt.starts_with("CREATE TABLE") {
            tables.push(stmt);
        } else if stmt.starts_with("CREATE VIRTUAL TABLE") {
            virtuals.push(stmt);
        } else if stmt.starts_with("CREATE INDEX") || stmt.starts_with("CREATE UNIQUE INDEX") {
            indexes.push(stmt);
        } else if stmt.starts_with("CREATE TRIGGER") {
            triggers.push(stmt);
        }
    }
    [tables, virtuals, indexes, triggers].concat()
}

/// Creates an empty database with the real 2026.9.6 agent schema (WAL mode, like the gateway).
pub fn create_agent_schema_2026_9_6(path: &Path) -> Connection {
    let ddl =
        fs::read_to_string(data_dir().join("openclaw-2026.9.6/openclaw-agent.sqlite.schema.sql"))
            .expect("read schema");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("create db dir");
    }
    let conn = Connection::open(path).expect("create db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    let tx = conn.unchecked_transaction().expect("tx");
    for stmt in ordered_schema(&ddl) {
        tx.execute_batch(&stmt)
            .unwrap_or_else(|e| panic!("schema statement failed: {e}\n{stmt}"));
    }
    tx.commit().expect("commit schema");
    conn
}

/// The deleted-session archive of the 2026.9.6 sample (its file name and zstd bytes).
pub fn deleted_archive_2026_9_6() -> (String, Vec<u8>) {
    let dir = examples_dir().join("openclaw-2026.9.6/agents/main/sessions");
    let e = fs::read_dir(&dir)
        .expect("read sessions dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".zst"))
        .expect("sample archive present");
    (
        e.file_name().to_string_lossy().into_owned(),
        fs::read(e.path()).expect("read archive"),
    )
}

fn ms(ts: &str) -> i64 {
    // `2026-11-25T17:59:25.413Z` → ms since the epoch (days from civil, UTC).
    let (date, time) = ts.split_once('T').unwrap_or((ts, "00:00:00.000Z"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap_or(0)).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = time.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: i64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let mi: i64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let s: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    days * 86_400_000 + h * 3_600_000 + mi * 60_000 + (s * 1000.0).round() as i64
}

/// Text of a message's content (string, or the `text` blocks of an array).
fn content_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A `navigation_json` that satisfies the table's CHECK for zstd rows.
fn navigation_json(bytes: usize) -> String {
    json!({
        "version": 1,
        "report": {"kind": "canonical"},
        "navigation": {},
        "reset": {},
        "model": {},
        "modelBytes": bytes,
        "modelWithoutCheckpointBytes": bytes,
        "withoutCustomDataBytes": bytes
    })
    .to_string()
}

/// Builds the 2026.9.6 sample agent database at `path` (which must not exist).
///
/// Real rows: `schema_meta` values (schema 23, app 2026.9.6), both `session_nodes` rows, and the
/// ten `transcript_events` of session `0800f919…` (the tool result stored as `event_zstd`, the
/// way the gateway stores large events). Derived rows, made from those events as the gateway
/// makes them: `session_windows`, `transcript_event_identities`, `session_transcript_fts`
/// (user and assistant text), `trajectory_runtime_events` (`tool.call`, `tool.result`,
/// `model.completed`), one `memory_index_chunks` chunk of the session text, and the
/// `session_transcript_archives` row of the deleted session whose `.zst` file is in `sessions/`.
pub fn build_agent_db_2026_9_6(path: &Path) {
    let conn = create_agent_schema_2026_9_6(path);
    let base = data_dir().join("openclaw-2026.9.6");
    let sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
    let events_text =
        fs::read_to_string(base.join(format!("transcript_events.{sid}.jsonl"))).expect("events");
    let nodes: Value = serde_json::from_str(
        &fs::read_to_string(base.join("session_nodes.entry_json.json")).expect("nodes"),
    )
    .expect("nodes json");
    let tx = conn.unchecked_transaction().expect("tx");
    let t0 = 1_795_629_541_000_i64;
    tx.execute(
        "INSERT INTO schema_meta (meta_key, role, schema_version, agent_id, app_version, created_at, updated_at) \
         VALUES ('primary', 'agent', 23, 'main', '2026.9.6', ?1, ?1)",
        [t0],
    )
    .expect("schema_meta");
    let Value::Object(nodes) = nodes else {
        panic!("session_nodes sample is an object")
    };
    for (key, entry) in &nodes {
        let cur = entry["sessionId"].as_str().expect("sessionId");
        let updated = entry["updatedAt"].as_i64().unwrap_or(t0);
        tx.execute(
            "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, created_at, display_name) \
             VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            params![key, cur, entry.to_string(), updated, entry.get("displayName").and_then(Value::as_str)],
        )
        .expect("session_nodes");
        tx.execute(
            "INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at, transcript_updated_at, display_name) \
             VALUES (?1, ?2, 'initial', ?3, ?3, ?3, ?4)",
            params![cur, key, updated, entry.get("displayName").and_then(Value::as_str)],
        )
        .expect("session_windows");
    }
    let mut memory_text = String::new();
    let mut traj_seq = 0_i64;
    for (i, line) in events_text.lines().enumerate() {
        let seq = i64::try_from(i).unwrap() + 1;
        let ev: Value = serde_json::from_str(line).expect("event json");
        let created = ev["timestamp"].as_str().map_or(t0, ms);
        let msg = ev.get("message").cloned().unwrap_or(Value::Null);
        let role = msg.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "toolResult" {
            let z = zstd::bulk::compress(line.as_bytes(), 3).expect("zstd");
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) \
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)",
                params![sid, seq, created, z, line.len() as i64, navigation_json(line.len())],
            )
            .expect("zstd event");
        } else {
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![sid, seq, line, created],
            )
            .expect("event");
        }
        if let Some(id) = ev.get("id").and_then(Value::as_str).filter(|_| seq > 1) {
            tx.execute(
                "INSERT INTO transcript_event_identities (session_id, event_id, seq, event_type, parent_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![sid, id, seq, ev["type"].as_str(), ev.get("parentId").and_then(Value::as_str), created],
            )
            .expect("identity");
        }
        let text = content_text(&msg);
        if matches!(role, "user" | "assistant") && !text.is_empty() {
            tx.execute(
                "INSERT INTO session_transcript_fts_rows (session_id, message_id) VALUES (?1, ?2)",
                params![sid, ev["id"].as_str()],
            )
            .expect("fts row");
            let rowid = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![rowid, text, sid, ev["id"].as_str(), role, ev["timestamp"].as_str()],
            )
            .expect("fts");
        }
        if !text.is_empty() {
            memory_text.push_str(&format!("{role}: {text}\n"));
        }
        let run_id = msg
            .pointer("/__openclaw/runId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut traj = Vec::new();
        if role == "assistant" {
            for block in msg["content"].as_array().into_iter().flatten() {
                if block["type"] == "toolCall" {
                    traj.push(json!({"type": "tool.call", "ts": ev["timestamp"], "data": {
                        "toolCallId": block["id"], "name": block["name"], "args": block["arguments"]}}));
                }
            }
            if msg["stopReason"] == "stop" {
                traj.push(json!({"type": "model.completed", "ts": ev["timestamp"], "data": {"text": text}}));
            }
        } else if role == "toolResult" {
            traj.push(json!({"type": "tool.result", "ts": ev["timestamp"], "data": {
                "toolCallId": msg["toolCallId"], "content": msg["content"], "details": msg["details"]}}));
        }
        for t in traj {
            traj_seq += 1;
            tx.execute(
                "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sid, traj_seq, run_id, t.to_string(), created],
            )
            .expect("trajectory");
        }
    }
    let hash = hex::encode(Sha256::digest(memory_text.as_bytes()));
    tx.execute(
        "INSERT INTO memory_index_chunks (id, path, source, start_line, end_line, hash, model, text, embedding, updated_at) \
         VALUES (?1, ?2, 'sessions', 1, 10, ?3, 'fake-embedding', ?4, zeroblob(16), ?5)",
        params![format!("{sid}:1-10"), format!("sessions/{sid}.jsonl"), hash, memory_text, t0],
    )
    .expect("memory chunk");
    let (name, blob) = deleted_archive_2026_9_6();
    let deleted_sid = name.split(".jsonl").next().unwrap_or_default();
    tx.execute(
        "INSERT INTO session_transcript_archives (session_id, generation, session_key, reason, encoding, archive_blob, archive_sha256, archive_name, created_at, published_at) \
         VALUES (?1, 'g1', 'agent:main:plugintest', 'deleted', 'zstd', ?2, ?3, ?4, ?5, ?5)",
        params![deleted_sid, blob, hex::encode(Sha256::digest(&blob)), name, 1_795_630_616_790_i64],
    )
    .expect("archive");
    tx.commit().expect("commit");
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").ok();
    drop(conn);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod db");
}

/// Builds the 2026.7.35 agent database that holds only `auth_profile_store` (the real dump of
/// an `onboard --auth-choice openai-api-key` run; 2026.7.35 keeps transcripts in JSONL).
pub fn build_auth_store_db_2026_7_35(path: &Path) {
    let dump: Value = serde_json::from_str(
        &fs::read_to_string(data_dir().join("openclaw-2026.7.35/auth_profile_store.dump.json"))
            .expect("dump"),
    )
    .expect("dump json");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("create db dir");
    }
    let conn = Connection::open(path).expect("create db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.execute_batch(dump["schema"].as_str().expect("schema"))
        .expect("schema");
    for row in dump["rows"].as_array().expect("rows") {
        conn.execute(
            "INSERT INTO auth_profile_store (store_key, store_json, updated_at) VALUES (?1, ?2, ?3)",
            params![
                row["store_key"].as_str(),
                row["store_json"].to_string(),
                row["updated_at"].as_i64()
            ],
        )
        .expect("row");
    }
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").ok();
    drop(conn);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod db");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut out = Vec::new();
        for (table, order) in [
            ("transcript_events", "session_id, seq"),
            ("session_nodes", "session_key"),
            ("session_windows", "session_id"),
            ("trajectory_runtime_events", "session_id, seq"),
            ("memory_index_chunks", "id"),
            ("session_transcript_archives", "session_id"),
            ("session_transcript_fts", "rowid"),
            ("auth_profile_store", "store_key"),
        ] {
            let ok = conn
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE name = ?1",
                    [table],
                    |_| Ok(()),
                )
                .is_ok();
            if !ok {
                continue;
            }
            let sql = format!("SELECT * FROM {table} ORDER BY {order}");
            let mut st = conn.prepare(&sql).unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    let mut s = String::from(table);
                    for i in 0..n {
                        let v: rusqlite::types::Value = r.get(i)?;
                        s.push_str(&format!("|{v:?}"));
                    }
                    Ok(s)
                })
                .unwrap();
            out.extend(rows.map(Result::unwrap));
        }
        out
    }

    #[test]
    fn generated_db_matches_the_committed_example_and_is_sound() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a.sqlite");
        build_agent_db_2026_9_6(&fresh);
        let committed =
            examples_dir().join("openclaw-2026.9.6/agents/main/agent/openclaw-agent.sqlite");
        assert_eq!(
            dump(&fresh),
            dump(&committed),
            "run `cargo test -p moltvault-testutils -- --ignored regenerate` to refresh"
        );
        let conn = Connection::open(&fresh).unwrap();
        let ic: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ic, "ok");
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM transcript_events WHERE event_zstd IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        let fts: i64 = conn
            .query_row(
                "SELECT count(*) FROM session_transcript_fts WHERE session_transcript_fts MATCH 'echo'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(fts, 1);
    }

    #[test]
    fn auth_store_db_matches_the_committed_example() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a.sqlite");
        build_auth_store_db_2026_7_35(&fresh);
        let committed =
            examples_dir().join("openclaw-2026.7.35/agents/main/agent/openclaw-agent.sqlite");
        assert_eq!(dump(&fresh), dump(&committed));
    }

    /// Rewrites the committed example databases from the generators.
    #[test]
    #[ignore = "writes into examples/homes; run by hand after changing the generator"]
    fn regenerate_example_dbs() {
        let p = examples_dir().join("openclaw-2026.9.6/agents/main/agent/openclaw-agent.sqlite");
        let _ = fs::remove_file(&p);
        build_agent_db_2026_9_6(&p);
        let p = examples_dir().join("openclaw-2026.7.35/agents/main/agent/openclaw-agent.sqlite");
        let _ = fs::remove_file(&p);
        build_auth_store_db_2026_7_35(&p);
        // The committed copies use a rollback journal, so that reading an example home (e.g.
        // `moltvault scan --state-dir examples/homes/...`) leaves no -wal/-shm files behind;
        // TestHome builds its databases in WAL mode, as the gateway runs them.
        for p in ["openclaw-2026.9.6", "openclaw-2026.7.35"] {
            let db = examples_dir().join(format!("{p}/agents/main/agent/openclaw-agent.sqlite"));
            let conn = Connection::open(&db).unwrap();
            conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
            drop(conn);
            for suffix in ["-wal", "-shm"] {
                let _ = fs::remove_file(examples_dir().join(format!(
                    "{p}/agents/main/agent/openclaw-agent.sqlite{suffix}"
                )));
            }
        }
    }

    #[test]
    fn homes_have_the_sample_layouts() {
        for line in SampleLine::ALL {
            let h = TestHome::new(line);
            assert!(h.config_path().is_file(), "{line:?}");
            assert_eq!(
                h.config()["meta"]["lastTouchedVersion"].as_str(),
                Some(line.version())
            );
            let mode = fs::metadata(h.state_dir()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
        let t = h.path("agents/main/sessions/2d048393-6d30-4ed3-8093-352886778a8f.jsonl");
        assert_eq!(fs::metadata(t).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn ms_converts_iso_timestamps() {
        assert_eq!(ms("1970-01-01T00:00:01.500Z"), 1500);
        assert_eq!(ms("2026-11-25T17:59:25.413Z"), 1_795_629_565_413);
    }
}
