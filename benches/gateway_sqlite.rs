//! Benchmarks the SQLite transcript store (OpenClaw ≥ 2026.8): redaction in one transaction
//! against a plain read of every event, over a database with the real 2026.9.6 schema.
//!
//! Default: 20 000 events of ~3 KB (~60 MB), 5 % holding a secret, 10 % stored as zstd (a run
//! takes well under a minute). `MOLTVAULT_BENCH_FULL=1`: 200 000 events (~600 MB).
//! `MOLTVAULT_BENCH_SECRET_EVERY=N`: one event in N holds a secret (default 20; the redaction
//! issue's transcript corpus has about one secret line in 2 000).
//! Baseline, measured in the same run on the same database: `for_each_event` (read + decode +
//! JSON parse of every row). The first rows use a trivial substring replace, so their ratio is
//! the store's own cost (decode, re-encode, UPDATE, FTS upkeep, commit); the last two run the
//! real engine (built-in rules, every string), parsing every row vs. behind its raw-byte gate
//! (`AgentDb::redact_prefiltered` with `Redactor::may_match`), as `audit --fix` and `redact` do.
//!
//! Last, the gateway plugin's post-turn sweep (`moltvault_gateway::sweep::redact_agent_db`, the
//! plugin engine): one turn added, then the full pass every sweep made before against the
//! incremental pass from the previous sweep's mark, on two copies of the same database.
//! `MOLTVAULT_BENCH_CASE=sweep` runs only that case.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use moltvault_gateway::sqlite::AgentDb;
use moltvault_redact::{FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use serde_json::Value;

const SECRET: &str = "sk-bench-0123456789abcdefghij";

fn entry(i: usize, secret: bool) -> String {
    let mut text = String::with_capacity(3000);
    for j in 0..40 {
        text.push_str(&format!(
            "drwxr-xr-x  2 user user 4096 Nov 25 18:{:02} src/module_{i}_{j}/lib.rs\n",
            j % 60
        ));
    }
    if secret {
        text.push_str(&format!("export OPENAI_API_KEY={SECRET}\n"));
    }
    serde_json::json!({
        "type": "message", "id": format!("{i:08x}"), "parentId": format!("{:08x}", i.saturating_sub(1)),
        "timestamp": "2026-11-25T18:00:01.000Z",
        "message": {"role": "toolResult", "toolCallId": format!("call_{i}"), "toolName": "exec",
                    "content": [{"type": "text", "text": text}], "details": {"exitCode": 0}}
    })
    .to_string()
}

fn generate(path: &Path, events: usize, every: usize) {
    let conn = moltvault_testutils::homes::create_agent_schema_2026_9_6(path);
    let tx = conn.unchecked_transaction().unwrap();
    tx.execute(
        "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) VALUES ('agent:main:main', 's0', '{}', 0)",
        (),
    )
    .unwrap();
    let sessions = (events / 500).max(1);
    for s in 0..sessions {
        tx.execute(
            "INSERT INTO session_windows (session_id, session_key, created_at, updated_at) VALUES (?1, 'agent:main:main', 0, 0)",
            (format!("s{s}"),),
        )
        .unwrap();
    }
    for i in 0..events {
        let sid = format!("s{}", i % sessions);
        let line = entry(i, i % every == 0);
        if i % 10 == 5 {
            let nav = serde_json::json!({"version":1,"report":{"kind":"canonical"},"navigation":{},
                "reset":{},"model":{},"modelBytes":line.len(),"modelWithoutCheckpointBytes":line.len(),
                "withoutCustomDataBytes":line.len()})
            .to_string();
            let z = zstd::bulk::compress(line.as_bytes(), 3).unwrap();
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) VALUES (?1, ?2, NULL, 0, ?3, ?4, ?5)",
                (&sid, i as i64, z, line.len() as i64, nav),
            )
            .unwrap();
        } else {
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, ?2, ?3, 0)",
                (&sid, i as i64, &line),
            )
            .unwrap();
        }
        if i % 4 == 0 {
            tx.execute(
                "INSERT INTO session_transcript_fts (text, session_id, message_id, role, timestamp) VALUES (?1, ?2, ?3, 'assistant', '')",
                (format!("step {i} done {}", if i % every == 0 { SECRET } else { "ok" }), &sid, format!("{i:08x}")),
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
}

fn replace(v: &mut Value) -> bool {
    match v {
        Value::String(s) if s.contains(SECRET) => {
            *s = s.replace(SECRET, "[REDACTED:bench:00000000]");
            true
        }
        Value::Array(a) => a.iter_mut().fold(false, |acc, x| replace(x) | acc),
        Value::Object(m) => m.iter_mut().fold(false, |acc, (_, x)| replace(x) | acc),
        _ => false,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some();
    let events: usize = if full { 200_000 } else { 20_000 };
    let every: usize = std::env::var("MOLTVAULT_BENCH_SECRET_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(20);
    let planted = events.div_ceil(every);
    let runs = 5;
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.sqlite");
    let t = Instant::now();
    generate(&pristine, events, every);
    let size = fs::metadata(&pristine).unwrap().len();
    println!(
        "generated {events} events ({planted} with a secret), {:.1} MB, in {:.1?}",
        size as f64 / 1e6,
        t.elapsed()
    );

    if std::env::var("MOLTVAULT_BENCH_CASE").as_deref() != Ok("sweep") {
        redaction_cases(dir.path(), &pristine, size, events, planted, runs);
    }
    sweep_case(dir.path(), &pristine, size, runs);
}

/// One agent turn as the 2026.9 gateway stores it: a user message, a tool call, its result
/// (holding a secret), the assistant's reply, their FTS copies and trajectory rows, and the
/// session rows' stamps. Returns the rows it added.
fn one_turn(db: &Path, turn: usize) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    let seq0: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq), 0) + 1 FROM transcript_events WHERE session_id = 's0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut rows = 0;
    for k in 0..4usize {
        let line = entry(1_000_000 + turn * 4 + k, k == 2);
        tx.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES ('s0', ?1, ?2, 1)",
            (seq0 + k as i64, &line),
        )
        .unwrap();
        tx.execute(
            "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES ('s0', ?1, 'r', ?2, 1)",
            (seq0 + k as i64, &line),
        )
        .unwrap();
        rows += 2;
    }
    for text in [
        format!("turn {turn} question"),
        format!("turn {turn} answer"),
    ] {
        tx.execute(
            "INSERT INTO session_transcript_fts_rows (id, session_id, message_id) VALUES ((SELECT coalesce(max(rowid), 0) + 1 FROM session_transcript_fts), 's0', ?1)",
            (format!("t{turn}"),),
        )
        .unwrap();
        tx.execute(
            "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) VALUES (last_insert_rowid(), ?1, 's0', 'm', 'user', '')",
            (text,),
        )
        .unwrap();
        rows += 1;
    }
    tx.execute(
        "UPDATE session_windows SET updated_at = ?1 WHERE session_id = 's0'",
        (turn as i64,),
    )
    .unwrap();
    tx.commit().unwrap();
    rows
}

/// The plugin's post-turn sweep of the agent database (`moltvault serve --sweep`, mode all):
/// the full pass every sweep did before (every row of every table) against the incremental
/// one (rows added since the last sweep's mark), one turn added before each, on two copies of
/// the same database, both primed by a first sweep.
fn sweep_case(dir: &Path, pristine: &Path, size: u64, runs: usize) {
    use moltvault_gateway::engine::{EngineSource, Mode as EngineMode};
    use moltvault_gateway::sqlite::Tables;
    use moltvault_gateway::sweep::{DbPass, redact_agent_db};

    let source = EngineSource::with_literals(&dir.join("vault"), None, Vec::new()).unwrap();
    let engine = source.engine(EngineMode::All).unwrap();
    let marks = dir.join("vault/sweep");
    let full_db = dir.join("sweep-full.sqlite");
    let inc_db = dir.join("sweep-incremental.sqlite");
    for db in [&full_db, &inc_db] {
        fs::copy(pristine, db).unwrap();
    }
    // Prime both: the first sweep of a database reads it whole either way.
    redact_agent_db(&engine, &full_db, Tables::All, None, None).unwrap();
    let first = redact_agent_db(&engine, &inc_db, Tables::All, Some(&marks), None).unwrap();
    assert!(matches!(first.pass, DbPass::Full(_)));
    let (mut full, mut inc) = (Vec::new(), Vec::new());
    let (mut full_scanned, mut inc_scanned) = (0, 0);
    for run in 0..runs {
        one_turn(&full_db, run);
        let t = Instant::now();
        let r = redact_agent_db(&engine, &full_db, Tables::All, None, None).unwrap();
        full.push(t.elapsed());
        full_scanned = r.scanned;
        assert!(r.rows >= 2, "the turn's secret was not redacted: {r:?}");

        let added = one_turn(&inc_db, run);
        let t = Instant::now();
        let r = redact_agent_db(&engine, &inc_db, Tables::All, Some(&marks), None).unwrap();
        inc.push(t.elapsed());
        inc_scanned = r.scanned;
        assert_eq!(r.pass, DbPass::Incremental);
        assert!(r.rows >= 2, "the turn's secret was not redacted: {r:?}");
        assert!(r.scanned >= added);
    }
    let (full, inc) = (median(full), median(inc));
    let mb = size as f64 / 1e6;
    println!("sweep after one turn on a {mb:.1} MB agent database, median of {runs} runs:");
    println!("  full pass (before)     : {full:>10.2?}  ({full_scanned} rows read)");
    println!(
        "  incremental (after)    : {inc:>10.2?}  ({inc_scanned} rows read)  {:.0}x faster",
        full.as_secs_f64() / inc.as_secs_f64()
    );
}

fn redaction_cases(
    dir: &Path,
    pristine: &Path,
    size: u64,
    events: usize,
    planted: usize,
    runs: usize,
) {
    let engine = Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([7; 32])),
    )
    .unwrap();
    let mut sink = Vec::new();
    let (mut read, mut first, mut again) = (Vec::new(), Vec::new(), Vec::new());
    let (mut parsed, mut gated) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let work = dir.join(format!("run{run}.sqlite"));
        fs::copy(pristine, &work).unwrap();
        let mut db = AgentDb::open(&work).unwrap();

        let t = Instant::now();
        let mut n = 0usize;
        db.for_each_event(None, |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        read.push(t.elapsed());
        assert_eq!(n, events);

        let t = Instant::now();
        let r = db.redact(replace).unwrap();
        first.push(t.elapsed());
        assert_eq!(r.changed["transcript_events.event_json"], planted);

        let t = Instant::now();
        let r = db.redact(replace).unwrap();
        again.push(t.elapsed());
        assert_eq!(r.total_changed(), 0);
        drop(db);
        fs::remove_file(&work).unwrap();

        // The real engine, parsing every row, then behind its gate (fresh copies each).
        let mut changed = [0usize; 2];
        for (i, times) in [&mut parsed, &mut gated].into_iter().enumerate() {
            fs::copy(pristine, &work).unwrap();
            let mut db = AgentDb::open(&work).unwrap();
            let t = Instant::now();
            let mut f = |v: &mut Value| engine.redact_value(v, &mut sink) > 0;
            let r = if i == 0 {
                db.redact(&mut f).unwrap()
            } else {
                db.redact_prefiltered(|t| engine.may_match(t.as_bytes()), &mut f)
                    .unwrap()
            };
            times.push(t.elapsed());
            changed[i] = r.total_changed();
            drop(db);
            fs::remove_file(&work).unwrap();
        }
        assert!(changed[0] >= planted, "the engine missed planted secrets");
        assert_eq!(changed[0], changed[1], "the gate changed the outcome");
        sink.clear();
    }
    let (parsed, gated) = (median(parsed), median(gated));
    let (read, first, again) = (median(read), median(first), median(again));
    let mb = size as f64 / 1e6;
    println!("median of {runs} runs over {mb:.1} MB:");
    println!(
        "  baseline read+parse all events : {read:>10.2?}  ({:.0} MB/s)",
        mb / read.as_secs_f64()
    );
    println!(
        "  redact (planted rows rewritten): {first:>10.2?}  ratio {:.2}x",
        first.as_secs_f64() / read.as_secs_f64()
    );
    println!(
        "  redact again (nothing to do)   : {again:>10.2?}  ratio {:.2}x",
        again.as_secs_f64() / read.as_secs_f64()
    );
    println!(
        "  engine, every row parsed       : {parsed:>10.2?}  ({:.0} MB/s)",
        mb / parsed.as_secs_f64()
    );
    println!(
        "  engine behind its gate         : {gated:>10.2?}  ({:.0} MB/s, {:.2}x faster)",
        mb / gated.as_secs_f64(),
        parsed.as_secs_f64() / gated.as_secs_f64()
    );
}
