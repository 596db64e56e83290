//! `moltvault serve`: the redaction engine as a long-lived child of the gateway plugin
//! (`--stdio`), and the plugin's post-turn sweep of the files its hooks never see (`--sweep`).
//!
//! The protocol (docs/plugin.md, "Protocol") is a JSON header line each way, answered in order,
//! followed by `len` raw bytes when the header has a `len`. Protocol 2's `patch` request carries
//! a JSON skeleton of the message whose long strings travel as raw UTF-8 after it; the reply is
//! `changed:false`, or the JSON pointers and new texts of the strings that changed. Protocol 1
//! (`redact` with the whole message, answered with the whole redacted message) is still served
//! for plugin files older than the binary.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use moltvault_gateway::engine::{Engine, EngineSource, Mode, PROTOCOL};
use moltvault_gateway::sweep::{self, DbPass, SweepOptions};

use crate::commands::Ctx;
use crate::commands::redact::ModeArg;
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
/// `--mode tools` its `trajectory_runtime_events` rows only). Each sweep reads only what
/// changed since the last one (marks kept in the moltvault dir, under `sweep/`); `moltvault
/// redact` does a full pass. The engine uses the built-in rules, `--rules`, and the gateway's
/// own configured secrets (matched literally).
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
        // Incremental: each sweep reads only what the last one did not (docs/plugin.md).
        marks_dir: Some(ctx.vault_dir.join("sweep")),
        // And a full pass once a day, in case the gateway ever updates an old row unlogged.
        full_every: Some(Duration::from_secs(24 * 3600)),
    };
    let report = sweep::sweep(&transcripts, &sidecars, &opts)?;
    crate::ui::note(&format!(
        "swept {} file(s) and {} row(s): {} redaction(s)",
        report.files, report.rows, report.redactions
    ));
    if let DbPass::Full(why) = &report.db {
        crate::ui::note(&format!("read whole tables of the agent database: {why}"));
    }
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
