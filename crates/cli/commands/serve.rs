//! `moltvault serve`: the redaction engine as a long-lived child of the gateway plugin
//! (`--stdio`), and the plugin's post-turn sweep of the files its hooks never see (`--sweep`).
//!
//! The protocol is one JSON object per line each way, answered in order (docs/plugin.md):
//! `{"id":1,"op":"hello"}`, `{"id":2,"op":"redact","value":<message>}`, `{"id":3,"op":"ping"}`.
//! A `redact` reply carries the value only when something was redacted, so the common case costs
//! the plugin one tiny `JSON.parse`.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::{Value, json};

use moltvault_redact::{
    Finding, FingerprintKey, LiteralSecret, Mode, Redactor, RedactorOptions, RuleSet,
};

use crate::commands::Ctx;
use crate::report::Status;

/// The plugin protocol version; the plugin refuses an engine that speaks another.
pub const PROTOCOL: u32 = 1;

/// Runs the redaction engine for the gateway plugin.
///
/// `--stdio` answers redaction requests (one JSON object per line) on stdin/stdout until stdin
/// closes; the plugin keeps one such child per gateway process. `--sweep` waits until the
/// session's files have been quiet for `--settle-ms`, then redacts in place what the hooks cannot
/// reach: JSONL transcripts and `*.trajectory.jsonl` sidecars (under the gateway's own
/// `.jsonl.lock`), and `trajectory_runtime_events` rows of the SQLite stores. The engine uses
/// the built-in rules, `--rules`, and the gateway's own configured secrets (matched literally).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Speaks the plugin protocol on stdin/stdout.
    #[arg(long, required_unless_present = "sweep", conflicts_with = "sweep")]
    pub stdio: bool,
    /// Runs one post-turn sweep of the session's side files, then exits.
    #[arg(long)]
    pub sweep: bool,
    /// What to redact: `tools` (tool results and tool-call arguments) or `all` (every string).
    #[arg(long, value_enum, default_value_t = ModeArg::All)]
    pub mode: ModeArg,
    /// An extra rules file, added to the built-in rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The agent whose files the sweep covers.
    #[arg(long, value_name = "ID", default_value = "main", requires = "sweep")]
    pub agent: String,
    /// The session key of the turn (the sweep then also covers that session's archives).
    #[arg(long, value_name = "KEY", requires = "sweep")]
    pub session_key: Option<String>,
    /// How long the files must be unchanged before the sweep rewrites them.
    #[arg(long, value_name = "MS", default_value_t = 1500, requires = "sweep")]
    pub settle_ms: u64,
    /// Files changed within this many seconds are swept.
    #[arg(long, value_name = "SECS", default_value_t = 900, requires = "sweep")]
    pub recent_secs: u64,
}

/// The redaction mode, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Tool results and tool-call arguments only.
    Tools,
    /// Every string.
    All,
}

pub fn run(ctx: &Ctx, args: ServeArgs) -> anyhow::Result<Status> {
    // An explicit --state-dir must exist; otherwise a missing gateway only means no literals.
    let gateway = match ctx.gateway() {
        Ok(gw) => Some(gw),
        Err(e) if ctx.state_dir.is_some() => return Err(e),
        Err(_) => None,
    };
    let key = crate::commands::secrets::fingerprint_key(ctx)?;
    let rules = load_rules(args.rules.as_deref())?;
    let literals = match &gateway {
        Some(gw) => literal_secrets(gw)?,
        None => Vec::new(),
    };
    if args.stdio {
        let engine = Engine::new(&rules, args.mode, key, literals)?;
        let record = gateway.as_ref().map(super::plugin::load_record_path);
        let mut on_hello = |client: &Value| {
            if let Some(path) = &record {
                // Best effort: a status aid, never a reason to fail redaction.
                let _ = write_load_record(path, client);
            }
        };
        exit_with_parent();
        // Big reads: a 1 MB message arrives as 2 MB of JSON through a 64 KB pipe.
        let input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock());
        serve_lines(&engine, input, crate::ui::stdout(), &mut on_hello)
            .context("the plugin connection failed")?;
        return Ok(Status::Ok);
    }
    let gateway = gateway.ok_or_else(|| {
        crate::report::user_error(
            "no gateway state directory found to sweep",
            "Pass --state-dir, or set plugins.entries.moltvault-redact.config.stateDir.",
        )
    })?;
    // Transcripts in the configured mode; sidecars (trajectory events are not transcript
    // entries) in `all` mode.
    let transcripts = Engine::new(&rules, args.mode, key.clone(), clone_literals(&literals))?;
    let sidecars = Engine::new(&rules, ModeArg::All, key, literals)?;
    let opts = SweepOptions {
        state_dir: gateway.state_dir.clone(),
        agent: args.agent,
        settle: Duration::from_millis(args.settle_ms),
        recent: Duration::from_secs(args.recent_secs),
        max_wait: Duration::from_secs(300),
    };
    let report = sweep(&transcripts, &sidecars, &opts)?;
    crate::ui::note(&format!(
        "swept {} file(s) and {} row(s): {} redaction(s)",
        report.files, report.rows, report.redactions
    ));
    Ok(Status::Ok)
}

/// The gateway's own configured secrets (tokens, keys, current and in config backups), matched
/// literally. Values shorter than 8 bytes are left to the rules: they would match ordinary text.
fn literal_secrets(gw: &moltvault_gateway::Gateway) -> anyhow::Result<Vec<LiteralSecret>> {
    use secrecy::ExposeSecret;
    Ok(gw
        .configured_secrets()?
        .into_iter()
        .filter_map(|s| {
            let v = s.value?;
            (v.expose_secret().len() >= 8).then(|| LiteralSecret::new(s.id, v))
        })
        .collect())
}

/// Exits when the process that started us is gone. The plugin's named pipes are opened
/// read-write, so stdin never reaches EOF when the gateway dies.
fn exit_with_parent() {
    let parent = rustix::process::getppid();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if rustix::process::getppid() != parent {
                std::process::exit(0);
            }
        }
    });
}

fn clone_literals(l: &[LiteralSecret]) -> Vec<LiteralSecret> {
    l.iter()
        .map(|x| LiteralSecret::new(x.id.clone(), x.value.clone()))
        .collect()
}

fn load_rules(file: Option<&Path>) -> anyhow::Result<RuleSet> {
    match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the rules file {}", p.display()))?;
            Ok(RuleSet::with_user_file(p, &text)?)
        }
        None => Ok(RuleSet::builtin()),
    }
}

/// The redaction engine the protocol and the sweep use: moltvault-redact with the built-in
/// rules, `--rules`, and the gateway's own configured secrets matched literally.
#[derive(Debug)]
pub struct Engine {
    redactor: Redactor,
    mode: ModeArg,
    rules: usize,
    literals: usize,
}

impl Engine {
    /// Builds the engine.
    ///
    /// # Errors
    /// Fails when a literal secret is too short to match safely.
    pub fn new(
        rules: &RuleSet,
        mode: ModeArg,
        key: FingerprintKey,
        literals: Vec<LiteralSecret>,
    ) -> anyhow::Result<Engine> {
        let n_literals = literals.len();
        let opts = RedactorOptions {
            mode: match mode {
                ModeArg::Tools => Mode::Tools,
                ModeArg::All => Mode::All,
            },
            key,
            literals,
        };
        Ok(Engine {
            redactor: Redactor::new(rules, opts)?,
            mode,
            rules: rules.rules().len(),
            literals: n_literals,
        })
    }

    /// Redacts `value` in place; returns the findings as protocol objects (never the secret).
    pub fn redact(&self, value: &mut Value) -> Vec<Value> {
        let mut findings: Vec<Finding> = Vec::new();
        self.redactor.redact_value(value, &mut findings);
        findings
            .into_iter()
            .map(|f| json!({"rule": f.rule_id, "pointer": f.pointer, "fp": f.fingerprint}))
            .collect()
    }

    /// Redacts one JSON value given as bytes (one line, no newline): `None` when it holds no
    /// secret, else the redacted bytes and the findings. Unchanged bytes are kept as they are.
    ///
    /// # Errors
    /// Fails only when the engine's writer fails (it writes to memory).
    pub fn redact_raw(&self, json: &[u8]) -> anyhow::Result<Option<(Vec<u8>, Vec<Value>)>> {
        let mut out = Vec::with_capacity(json.len() + 64);
        let mut findings: Vec<Finding> = Vec::new();
        self.redactor.redact_jsonl(json, &mut out, &mut findings)?;
        if findings.is_empty() {
            return Ok(None);
        }
        let findings = findings
            .into_iter()
            .map(|f| json!({"rule": f.rule_id, "pointer": f.pointer, "fp": f.fingerprint}))
            .collect();
        Ok(Some((out, findings)))
    }

    fn describe(&self) -> Value {
        json!({
            "mode": if self.mode == ModeArg::All { "all" } else { "tools" },
            "rules": self.rules,
            "literals": self.literals,
        })
    }
}

/// Answers protocol requests from `input` on `output` until `input` ends.
///
/// # Errors
/// Fails only when reading or writing the pipe fails; a bad request gets an error reply.
pub fn serve_lines(
    engine: &Engine,
    mut input: impl BufRead,
    mut output: impl Write,
    on_hello: &mut dyn FnMut(&Value),
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(1 << 16);
    let mut payload = Vec::with_capacity(1 << 16);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let header: Option<Value> = serde_json::from_str(&text).ok();
        // `{"op":"redact","raw":true}` is followed by the value on a line of its own: the
        // engine's byte gate then runs on the raw JSON, and a clean value is never parsed.
        let raw = header.as_ref().is_some_and(|h| {
            h.get("op").and_then(Value::as_str) == Some("redact")
                && h.get("raw") == Some(&Value::Bool(true))
        });
        if raw {
            let id = header
                .as_ref()
                .and_then(|h| h.get("id"))
                .cloned()
                .unwrap_or(Value::Null);
            payload.clear();
            if input.read_until(b'\n', &mut payload)? == 0 {
                let reply =
                    json!({"id": id, "ok": false, "error": "redact: the value line is missing"});
                serde_json::to_writer(&mut output, &reply)?;
                output.write_all(b"\n")?;
                output.flush()?;
                return Ok(());
            }
            if payload.last() == Some(&b'\n') {
                payload.pop();
            }
            match engine.redact_raw(&payload) {
                Ok(None) => {
                    serde_json::to_writer(
                        &mut output,
                        &json!({"id": id, "ok": true, "changed": false}),
                    )?;
                }
                Ok(Some((value, findings))) => {
                    output.write_all(b"{\"id\":")?;
                    serde_json::to_writer(&mut output, &id)?;
                    output.write_all(b",\"ok\":true,\"changed\":true,\"findings\":")?;
                    serde_json::to_writer(&mut output, &findings)?;
                    output.write_all(b",\"value\":")?;
                    output.write_all(&value)?;
                    output.write_all(b"}")?;
                }
                Err(e) => {
                    serde_json::to_writer(
                        &mut output,
                        &json!({"id": id, "ok": false, "error": format!("{e:#}")}),
                    )?;
                }
            }
        } else {
            let reply = answer(engine, header, &text, on_hello);
            serde_json::to_writer(&mut output, &reply)?;
        }
        output.write_all(b"\n")?;
        output.flush()?;
    }
}

fn answer(
    engine: &Engine,
    parsed: Option<Value>,
    line: &str,
    on_hello: &mut dyn FnMut(&Value),
) -> Value {
    let parsed = match parsed {
        Some(v) => Ok(v),
        None => serde_json::from_str::<Value>(line),
    };
    let mut req: Value = match parsed {
        Ok(v) => v,
        // The line may hold a secret: the error names only the position.
        Err(e) => {
            return json!({"id": null, "ok": false, "error": format!("request is not JSON (line {}, column {})", e.line(), e.column())});
        }
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let op = req
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match op.as_str() {
        "hello" => {
            if let Some(client) = req.get("client") {
                on_hello(client);
            }
            let mut info = engine.describe();
            if let Value::Object(m) = &mut info {
                m.insert("id".into(), id);
                m.insert("ok".into(), true.into());
                m.insert("protocol".into(), PROTOCOL.into());
                m.insert("version".into(), env!("CARGO_PKG_VERSION").into());
                m.insert("pid".into(), std::process::id().into());
            }
            info
        }
        "ping" => json!({"id": id, "ok": true}),
        "redact" => {
            let Some(mut value) = req.get_mut("value").map(Value::take) else {
                return json!({"id": id, "ok": false, "error": "redact needs a value"});
            };
            let findings = engine.redact(&mut value);
            if findings.is_empty() {
                json!({"id": id, "ok": true, "changed": false})
            } else {
                json!({"id": id, "ok": true, "changed": true, "value": value, "findings": findings})
            }
        }
        other => json!({"id": id, "ok": false, "error": format!("unknown op {other:?}")}),
    }
}

/// Records which gateway process loaded the plugin (for `moltvault plugin status`).
fn write_load_record(path: &Path, client: &Value) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let rec = json!({
        "pid": client.get("pid").and_then(Value::as_i64),
        "process": client.get("process").and_then(Value::as_str),
        "plugin": client.get("plugin").and_then(Value::as_str),
        "hooks": client.get("hooks"),
        "engine": env!("CARGO_PKG_VERSION"),
        "at": now,
    });
    if let Some(dir) = path.parent() {
        moltvault_vault::fsio::create_secret_dir_all(dir)?;
    }
    let mut text = serde_json::to_vec_pretty(&rec)?;
    text.push(b'\n');
    moltvault_vault::fsio::write_atomic(
        path,
        &text,
        moltvault_vault::fsio::WriteOptions::secret_replace(),
    )?;
    Ok(())
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
    /// Only files (and rows) changed this recently are swept.
    pub recent: Duration,
    /// The sweep gives up waiting for quiet after this long and sweeps anyway (under the lock).
    pub max_wait: Duration,
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Files rewritten.
    pub files: usize,
    /// Database rows rewritten.
    pub rows: usize,
    /// Redactions made.
    pub redactions: usize,
}

/// Redacts the session side files of one agent in place once they have settled.
///
/// # Errors
/// Fails when a file or database cannot be read or written; files already rewritten stay so.
pub fn sweep(
    transcripts: &Engine,
    sidecars: &Engine,
    opts: &SweepOptions,
) -> anyhow::Result<SweepReport> {
    let sessions = opts
        .state_dir
        .join("agents")
        .join(&opts.agent)
        .join("sessions");
    let db = opts
        .state_dir
        .join("agents")
        .join(&opts.agent)
        .join("agent")
        .join("openclaw-agent.sqlite");
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
    // Group each sidecar with its transcript: the transcript's lock covers both.
    let files = jsonl_files(&sessions, cutoff);
    let mut done = BTreeSet::new();
    for f in &files {
        let lock_path = lock::path_for(f);
        if !done.insert(lock_path.clone()) {
            continue;
        }
        let _guard = lock::acquire(&lock_path, Duration::from_secs(30))?;
        for g in files.iter().filter(|g| lock::path_for(g) == lock_path) {
            let engine = if is_sidecar(g) { sidecars } else { transcripts };
            let n = redact_jsonl_file(engine, g)?;
            if n > 0 {
                report.files += 1;
                report.redactions += n;
            }
        }
    }
    if db.is_file() {
        let (rows, n) = redact_trajectory_rows(sidecars, &db)?;
        report.rows += rows;
        report.redactions += n;
    }
    Ok(report)
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
/// byte); returns the redactions.
fn redact_jsonl_file(engine: &Engine, path: &Path) -> anyhow::Result<usize> {
    let input = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::with_capacity(input.len());
    let mut findings = moltvault_redact::CountSink::default();
    engine
        .redactor
        .redact_jsonl(input.as_slice(), &mut out, &mut findings)
        .with_context(|| format!("cannot redact {}", path.display()))?;
    if findings.0 > 0 {
        let opts = moltvault_vault::fsio::WriteOptions::like_existing(path)?;
        moltvault_vault::fsio::write_atomic(path, &out, opts)?;
    }
    Ok(findings.0 as usize)
}

/// Redacts the `trajectory_runtime_events` rows (the flight recorder the hooks never see).
fn redact_trajectory_rows(engine: &Engine, db: &Path) -> anyhow::Result<(usize, usize)> {
    let conn =
        rusqlite::Connection::open(db).with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Overwrite the old row bytes in the pages we touch instead of leaving them in free space.
    conn.pragma_update(None, "secure_delete", "ON")?;
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='trajectory_runtime_events'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if !has_table {
        return Ok((0, 0));
    }
    // Every row: redaction is idempotent, and only changed rows are written.
    let rows: Vec<(i64, String)> = {
        let mut st = conn.prepare("SELECT rowid, event_json FROM trajectory_runtime_events")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut changed = Vec::new();
    let mut total = 0;
    for (rowid, text) in rows {
        let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let found = engine.redact(&mut v);
        if !found.is_empty() {
            total += found.len();
            changed.push((rowid, serde_json::to_string(&v)?));
        }
    }
    if !changed.is_empty() {
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        for (rowid, text) in &changed {
            tx.execute(
                "UPDATE trajectory_runtime_events SET event_json = ?1 WHERE rowid = ?2",
                rusqlite::params![text, rowid],
            )?;
        }
        tx.commit()?;
        // Move the rewritten pages into the main file so the WAL no longer holds old copies.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    Ok((changed.len(), total))
}

/// The gateway's transcript write lock (`<file>.jsonl.lock`, JSON `{pid, createdAt}`), which the
/// sweep takes so no turn appends while a file is being rewritten.
mod lock {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

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

    /// Whether `lock` exists and names a live process.
    pub fn held(lock: &Path) -> bool {
        let Ok(text) = std::fs::read_to_string(lock) else {
            return false;
        };
        let pid = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("pid").and_then(serde_json::Value::as_i64));
        match pid {
            Some(pid) => pid_alive(pid),
            // Unreadable or torn: treat as held by someone else.
            None => true,
        }
    }

    fn pid_alive(pid: i64) -> bool {
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
    }

    /// A held lock, removed on drop.
    #[derive(Debug)]
    pub struct Guard(PathBuf);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Takes the lock, waiting up to `wait` for a live holder; a stale lock is taken over.
    pub fn acquire(lock: &Path, wait: Duration) -> anyhow::Result<Guard> {
        let start = Instant::now();
        loop {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(lock);
            match created {
                Ok(mut f) => {
                    let body = serde_json::json!({
                        "pid": std::process::id(),
                        "createdAt": time::OffsetDateTime::now_utc()
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default(),
                    });
                    f.write_all(body.to_string().as_bytes())?;
                    return Ok(Guard(lock.to_path_buf()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !held(lock) {
                        let _ = std::fs::remove_file(lock);
                        continue;
                    }
                    if start.elapsed() >= wait {
                        anyhow::bail!("{} is held by a running gateway", lock.display());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).with_context_path(lock),
            }
        }
    }

    trait WithPath<T> {
        fn with_context_path(self, p: &Path) -> anyhow::Result<T>;
    }
    impl<T> WithPath<T> for Result<T, std::io::Error> {
        fn with_context_path(self, p: &Path) -> anyhow::Result<T> {
            anyhow::Context::with_context(self, || format!("cannot create {}", p.display()))
        }
    }
}
