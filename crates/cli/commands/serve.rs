//! `moltvault serve`: the redaction engine as a long-lived child of the gateway plugin
//! (`--stdio`), and the plugin's post-turn sweep of the files its hooks never see (`--sweep`).
//!
//! The protocol (docs/plugin.md, "Protocol") is a JSON header line each way, answered in order,
//! followed by `len` raw bytes when the header has a `len`. Protocol 2's `patch` request carries
//! a JSON skeleton of the message whose long strings travel as raw UTF-8 after it; the reply is
//! `changed:false`, or the JSON pointers and new texts of the strings that changed. Protocol 1
//! (`redact` with the whole message, answered with the whole redacted message) is still served
//! for plugin files older than the binary.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::{Value, json};

use moltvault_gateway::engine::{Engine, EngineSource, Mode, PROTOCOL};

use crate::commands::Ctx;
use crate::report::Status;

/// The largest request payload accepted (a bigger one ends the connection).
const MAX_PAYLOAD: u64 = 1 << 30;

/// Runs the redaction engine for the gateway plugin.
///
/// `--stdio` answers redaction requests (the plugin protocol, docs/plugin.md) on stdin/stdout
/// until stdin closes; the plugin keeps one such child per gateway process. `--sweep` waits until the
/// session's files have been quiet for `--settle-ms`, then redacts in place what the hooks cannot
/// reach: JSONL transcripts and `*.trajectory.jsonl` sidecars (under the gateway's own
/// `.jsonl.lock`), and the SQLite agent database (with `--mode all` every table holding
/// transcript text, FTS index included, old bytes zeroed and the WAL checkpointed; with
/// `--mode tools` its `trajectory_runtime_events` rows only). The engine uses
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

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Tools => Mode::Tools,
            ModeArg::All => Mode::All,
        }
    }
}

pub fn run(ctx: &Ctx, args: ServeArgs) -> anyhow::Result<Status> {
    // An explicit --state-dir must exist; otherwise a missing gateway only means no literals.
    let gateway = match ctx.gateway() {
        Ok(gw) => Some(gw),
        Err(e) if ctx.state_dir.is_some() => return Err(e),
        Err(_) => None,
    };
    // One engine construction for both bridges (the addon calls the same function).
    let source = EngineSource::load(gateway.as_ref(), &ctx.vault_dir, args.rules.as_deref())?;
    if args.stdio {
        let engine = source.engine(args.mode.into())?;
        let state_dir = gateway.as_ref().map(|gw| gw.state_dir.clone());
        let mut on_hello = |client: &Value| {
            if let Some(dir) = &state_dir {
                // Best effort: a status aid, never a reason to fail redaction.
                let _ =
                    moltvault_gateway::engine::record_load(dir, client, env!("CARGO_PKG_VERSION"));
            }
        };
        // The addon bridge's engine inputs (docs/plugin.md, "The addon"): the key's dir and the
        // gateway's literal secrets, read here so the gateway process never opens its own
        // databases with a second SQLite. Sent only on the plugin's private pipe.
        let vault_dir = std::path::absolute(&ctx.vault_dir).unwrap_or(ctx.vault_dir.clone());
        let inputs = || {
            use secrecy::ExposeSecret;
            let literals: Vec<Value> = source
                .literals()
                .iter()
                .map(|l| json!({"id": l.id, "value": l.value.expose_secret()}))
                .collect();
            json!({"vaultDir": vault_dir.to_string_lossy(), "literals": literals})
        };
        exit_with_parent();
        widen_pipes();
        // Big reads: a 1 MB message arrives as 1-2 MB through the pipe.
        let input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock());
        serve_lines(&engine, input, crate::ui::stdout(), &mut on_hello, &inputs)
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
    let transcripts = source.engine(args.mode.into())?;
    let sidecars = source.engine(Mode::All)?;
    let opts = SweepOptions {
        state_dir: gateway.state_dir.clone(),
        agent: args.agent,
        settle: Duration::from_millis(args.settle_ms),
        recent: Duration::from_secs(args.recent_secs),
        max_wait: Duration::from_secs(300),
        transcript_mode: args.mode.into(),
    };
    let report = sweep(&transcripts, &sidecars, &opts)?;
    crate::ui::note(&format!(
        "swept {} file(s) and {} row(s): {} redaction(s)",
        report.files, report.rows, report.redactions
    ));
    if report.wal_busy {
        crate::ui::note(
            "the agent database's WAL could not be truncated (the gateway was reading): old pages stay in it until the gateway's next checkpoint",
        );
    }
    Ok(Status::Ok)
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

/// Grows the plugin's pipes (stdin, stdout) to 1 MiB, the default unprivileged maximum, so a
/// megabyte message crosses in a few wake-ups instead of sixteen 64 KiB ones. Best effort: not
/// a pipe, or a lower limit, leaves the size as it is.
fn widen_pipes() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        for fd in [
            std::os::fd::AsFd::as_fd(&std::io::stdin()),
            std::os::fd::AsFd::as_fd(&std::io::stdout()),
        ] {
            let _ = rustix::pipe::fcntl_setpipe_size(fd, 1 << 20);
        }
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
    inputs: &dyn Fn() -> Value,
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(1 << 16);
    let mut payload = Vec::with_capacity(1 << 16);
    let mut reply = Vec::with_capacity(1 << 16);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let header: Option<Value> = serde_json::from_slice(&line).ok();
        let id = header
            .as_ref()
            .and_then(|h| h.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        reply.clear();
        // A protocol-2 frame: the header says how many payload bytes follow.
        if let Some(len) = header
            .as_ref()
            .and_then(|h| h.get("len"))
            .and_then(Value::as_u64)
        {
            if len > MAX_PAYLOAD {
                // Unread bytes would be taken for the next request: end the connection.
                let e = format!("a payload of {len} bytes is over the {MAX_PAYLOAD}-byte limit");
                write_error(&mut output, id, &e)?;
                return Ok(());
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            // Grows once to the biggest request seen; no per-request zeroing.
            if payload.len() < len {
                payload.resize(len, 0);
            }
            match input.read_exact(&mut payload[..len]) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            if let Some(h) = &header {
                answer_framed(engine, h, &payload[..len], &mut reply);
            }
            if payload.len() > 1 << 26 {
                payload = Vec::with_capacity(1 << 16);
            }
        } else {
            let raw = header.as_ref().is_some_and(|h| {
                h.get("op").and_then(Value::as_str) == Some("redact")
                    && h.get("raw") == Some(&Value::Bool(true))
            });
            if raw {
                // Protocol 1: `{"op":"redact","raw":true}` is followed by the value on a line
                // of its own.
                payload.clear();
                if input.read_until(b'\n', &mut payload)? == 0 {
                    write_error(&mut output, id, "redact: the value line is missing")?;
                    return Ok(());
                }
                if payload.last() == Some(&b'\n') {
                    payload.pop();
                }
                answer_raw(engine, id, &payload, &mut reply);
            } else {
                let text = String::from_utf8_lossy(&line);
                let rep = answer(engine, header, &text, on_hello, inputs);
                serde_json::to_writer(&mut reply, &rep).map_err(std::io::Error::other)?;
                reply.push(b'\n');
            }
        }
        output.write_all(&reply)?;
        output.flush()?;
    }
}

fn write_error(output: &mut impl Write, id: Value, error: &str) -> std::io::Result<()> {
    serde_json::to_writer(
        &mut *output,
        &json!({"id": id, "ok": false, "error": error}),
    )?;
    output.write_all(b"\n")?;
    output.flush()
}

fn push_json(out: &mut Vec<u8>, v: &Value) {
    // Writing a Value to memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Protocol 1, `raw`: the whole message in, the whole redacted message out.
fn answer_raw(engine: &Engine, id: Value, value: &[u8], out: &mut Vec<u8>) {
    match engine.redact_raw(value) {
        Ok(None) => push_json(out, &json!({"id": id, "ok": true, "changed": false})),
        Ok(Some((value, findings))) => {
            out.extend_from_slice(b"{\"id\":");
            push_json(out, &id);
            out.extend_from_slice(b",\"ok\":true,\"changed\":true,\"findings\":");
            push_json(out, &Value::Array(findings));
            out.extend_from_slice(b",\"value\":");
            out.extend_from_slice(&value);
            out.push(b'}');
        }
        Err(e) => push_json(
            out,
            &json!({"id": id, "ok": false, "error": format!("{e:#}")}),
        ),
    }
    out.push(b'\n');
}

/// A framed request (protocol 2); writes the whole reply frame into `out`.
fn answer_framed(engine: &Engine, header: &Value, payload: &[u8], out: &mut Vec<u8>) {
    let id = header.get("id").cloned().unwrap_or(Value::Null);
    let op = header.get("op").and_then(Value::as_str).unwrap_or("");
    let result = match op {
        "patch" => patch_request(engine, header, payload).map(|r| (id.clone(), r)),
        other => Err(format!("unknown op {other:?} with a payload")),
    };
    match result {
        Ok((id, None)) => push_json(out, &json!({"id": id, "ok": true, "changed": false})),
        Ok((id, Some(p))) => {
            push_json(out, &p.header(id));
            out.push(b'\n');
            out.extend_from_slice(&p.bytes);
            return;
        }
        // Errors name positions and sizes only, never request text.
        Err(e) => push_json(out, &json!({"id": id, "ok": false, "error": e})),
    }
    out.push(b'\n');
}

/// Reads the sizes of a `patch` request's header and lets the engine answer it.
fn patch_request(
    engine: &Engine,
    header: &Value,
    payload: &[u8],
) -> Result<Option<moltvault_gateway::engine::Patch>, String> {
    let sk_len = header
        .get("skeleton")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("patch: the header has no skeleton length")?;
    let lens = match header.get("strings") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|n| n.as_u64().and_then(|n| usize::try_from(n).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or("patch: a string length is not a number")?,
        Some(_) => return Err("patch: strings is not a list of lengths".into()),
    };
    engine
        .patch(sk_len, &lens, payload)
        .map_err(|e| e.to_string())
}

fn answer(
    engine: &Engine,
    parsed: Option<Value>,
    line: &str,
    on_hello: &mut dyn FnMut(&Value),
    inputs: &dyn Fn() -> Value,
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
            // A client that names no protocol is a protocol-1 plugin.
            let protocol = req
                .get("protocol")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, PROTOCOL);
            let mut info = engine.info();
            if let Value::Object(m) = &mut info {
                m.insert("id".into(), id);
                m.insert("ok".into(), true.into());
                m.insert("protocol".into(), protocol.into());
                m.insert("protocols".into(), json!([1, PROTOCOL]));
                m.insert("version".into(), env!("CARGO_PKG_VERSION").into());
                m.insert("pid".into(), std::process::id().into());
            }
            info
        }
        "ping" => json!({"id": id, "ok": true}),
        // The addon bridge builds the same engine in the gateway process from these.
        "inputs" => {
            let mut v = inputs();
            if let Value::Object(m) = &mut v {
                m.insert("id".into(), id);
                m.insert("ok".into(), true.into());
            }
            v
        }
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
        "patch" => json!({"id": id, "ok": false, "error": "patch needs a payload (len)"}),
        other => json!({"id": id, "ok": false, "error": format!("unknown op {other:?}")}),
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
    /// Only files (and rows) changed this recently are swept.
    pub recent: Duration,
    /// The sweep gives up waiting for quiet after this long and sweeps anyway (under the lock).
    pub max_wait: Duration,
    /// The mode transcripts are redacted in. In `all` mode the agent database is redacted
    /// whole (every derived copy); in `tools` mode only its trajectory rows are (user and
    /// assistant text is deliberately kept there).
    pub transcript_mode: Mode,
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
    /// The WAL checkpoint after the database redaction was busy (old pages may stay in the
    /// WAL until the gateway's next checkpoint).
    pub wal_busy: bool,
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
        let (rows, n, busy) = if opts.transcript_mode == Mode::All {
            redact_agent_db(sidecars, &db)?
        } else {
            let (rows, n) = redact_trajectory_rows(sidecars, &db)?;
            (rows, n, false)
        };
        report.rows += rows;
        report.redactions += n;
        report.wal_busy = busy;
    }
    Ok(report)
}

/// Redacts the whole agent database with [`AgentDb::redact_prefiltered`] (the same pass as
/// `moltvault redact` and `audit --fix`): transcript and trajectory events, zstd events, the
/// full-text index and every other derived copy, in one immediate transaction that waits on
/// the gateway's writes (busy timeout); freed bytes are zeroed (`secure_delete`, FTS5
/// `secure-delete`) and the WAL is checkpointed. Returns rows rewritten, redactions, and
/// whether the checkpoint was busy.
///
/// [`AgentDb::redact_prefiltered`]: moltvault_gateway::sqlite::AgentDb::redact_prefiltered
fn redact_agent_db(engine: &Engine, db: &Path) -> anyhow::Result<(usize, usize, bool)> {
    let mut adb = moltvault_gateway::sqlite::AgentDb::open(db)?;
    let mut total = 0usize;
    let report = adb.redact_prefiltered(
        |t| engine.redactor().may_match(t.as_bytes()),
        |v| {
            let n = engine.redact_findings(v).len();
            total += n;
            n > 0
        },
    )?;
    let busy = matches!(
        report.checkpoint,
        Some(moltvault_gateway::sqlite::Checkpoint::Busy { .. })
    );
    Ok((report.total_changed(), total, busy))
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
        .redactor()
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

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use moltvault_testutils::homes::{SampleLine, TestHome};

    /// A fake OpenAI-style key, assembled so the repository does not trip secret scanners.
    fn fake_key() -> String {
        format!(
            "sk-{}-{}",
            "proj", "SweepK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab"
        )
    }

    /// Plants the key in a user message event, the FTS copy and a trajectory row of the real
    /// 2026.9.6 sample database.
    fn plant(db: &Path) {
        let conn = rusqlite::Connection::open(db).unwrap();
        let sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
        let key = fake_key();
        let ev = json!({"type": "message", "id": "e1", "parentId": null,
            "timestamp": "2026-11-25T18:00:00.000Z",
            "message": {"role": "user", "content": [{"type": "text", "text": format!("my key is {key}")}]}});
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 100, ?2, 1795629600000)",
            rusqlite::params![sid, ev.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) VALUES (9000, ?1, ?2, 'e1', 'user', 't')",
            rusqlite::params![format!("my key is {key}"), sid],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, 100, 'r', ?2, 1795629600000)",
            rusqlite::params![sid, json!({"type": "tool.result", "data": {"content": format!("key {key}")}}).to_string()],
        )
        .unwrap();
    }

    fn holders(db: &Path) -> Vec<&'static str> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let like = format!("%{}%", fake_key());
        let mut out = Vec::new();
        for (table, col) in [
            ("transcript_events", "event_json"),
            ("session_transcript_fts", "text"),
            ("trajectory_runtime_events", "event_json"),
        ] {
            let n: i64 = conn
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

    fn run_sweep(mode: Mode) -> (TestHome, SweepReport) {
        let home = TestHome::new(SampleLine::OpenClaw2026_9_6);
        let db = home.path("agents/main/agent/openclaw-agent.sqlite");
        plant(&db);
        let source =
            EngineSource::with_literals(&home.root().join("vault"), None, Vec::new()).unwrap();
        let transcripts = source.engine(mode).unwrap();
        let sidecars = source.engine(Mode::All).unwrap();
        let opts = SweepOptions {
            state_dir: home.state_dir().to_path_buf(),
            agent: "main".into(),
            settle: Duration::ZERO,
            recent: Duration::from_secs(900),
            max_wait: Duration::from_secs(5),
            transcript_mode: mode,
        };
        let report = sweep(&transcripts, &sidecars, &opts).unwrap();
        (home, report)
    }

    #[test]
    fn sweep_in_all_mode_redacts_every_copy_in_the_agent_database() {
        let (home, report) = run_sweep(Mode::All);
        let db = home.path("agents/main/agent/openclaw-agent.sqlite");
        assert!(holders(&db).is_empty(), "{:?}", holders(&db));
        assert_eq!(report.rows, 3, "{report:?}");
        assert_eq!(report.redactions, 3, "{report:?}");
        assert!(!report.wal_busy);
        // The FTS index no longer finds the key's distinctive tail; the database is sound.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let hits: i64 = conn
            .query_row(
                "SELECT count(*) FROM session_transcript_fts WHERE session_transcript_fts MATCH 'SweepK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hits, 0);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // And the raw bytes of the database files hold no copy of it.
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(raw) = std::fs::read(format!("{}{suffix}", db.display())) {
                let key = fake_key();
                assert!(
                    !raw.windows(key.len()).any(|w| w == key.as_bytes()),
                    "openclaw-agent.sqlite{suffix}"
                );
            }
        }
    }

    #[test]
    fn sweep_in_tools_mode_redacts_only_trajectory_rows() {
        let (home, report) = run_sweep(Mode::Tools);
        let db = home.path("agents/main/agent/openclaw-agent.sqlite");
        // User text is deliberately kept in tools mode; the flight recorder is redacted.
        assert_eq!(
            holders(&db),
            ["transcript_events", "session_transcript_fts"]
        );
        assert_eq!(report.rows, 1, "{report:?}");
    }
}
