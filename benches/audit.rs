//! Benchmarks `moltvault audit` over a generated gateway home.
//!
//! Default: ~100 MB (a run takes well under a minute); `MOLTVAULT_BENCH_FULL=1`: ~1 GB (the
//! target is under 3 s on 2 cores). Three quarters are JSONL transcripts and trajectory
//! sidecars, one quarter an OpenClaw 2026.9.6 agent database (the real schema) holding the same
//! entries as `transcript_events` rows (one in four zstd-compressed, as the gateway stores large
//! events) plus trajectory and full-text copies.
//! The baseline, measured in the same run over the same data, is a parallel plain read of every
//! file plus one `SELECT` of every text row (the I/O floor): the ratio says what the scanning
//! costs on top of reading.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moltvault_gateway::Gateway;
use moltvault_gateway::audit::{self, AuditOptions};
use rayon::prelude::*;

/// One realistic transcript entry: a tool result of a few KB, as the gateway writes them.
fn entry(i: usize, secret: Option<&str>) -> String {
    let mut text = String::with_capacity(3000);
    for j in 0..40 {
        text.push_str(&format!(
            "drwxr-xr-x  2 user user 4096 Nov 25 18:{:02} src/module_{i}_{j}/lib.rs\\n",
            j % 60
        ));
    }
    if let Some(s) = secret {
        text.push_str(&format!("export OPENAI_API_KEY={s}\\n"));
    }
    format!(
        concat!(
            r#"{{"type":"message","id":"{:08x}","parentId":"{:08x}","timestamp":"2026-11-25T18:00:01.000Z","#,
            r#""message":{{"role":"toolResult","toolCallId":"call_{}","toolName":"exec","#,
            r#""content":[{{"type":"text","text":"{}"}}],"details":{{"exitCode":0}}}}}}"#,
            "\n"
        ),
        i,
        i.saturating_sub(1),
        i,
        text
    )
}

fn generate(state: &Path, total: u64) -> (u64, usize) {
    let sessions = state.join("agents/main/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(
        state.join("openclaw.json"),
        r#"{"meta":{"lastTouchedVersion":"2026.7.35"},"gateway":{"bind":"loopback","auth":{"mode":"token","token":"0123456789abcdef0123456789abcdef0123456789abcdef"}}}"#,
    )
    .unwrap();
    let secret = format!(
        "sk-{}-{}",
        "proj", "B3nchK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab"
    );
    let per_file: u64 = 4 << 20;
    let mut written = 0u64;
    let mut files = 0usize;
    while written < total {
        let name = if files % 4 == 3 {
            format!("{files:08}.trajectory.jsonl")
        } else {
            format!("{files:08}.jsonl")
        };
        let mut f = std::io::BufWriter::new(fs::File::create(sessions.join(name)).unwrap());
        let mut n = 0u64;
        let mut i = 0usize;
        while n < per_file {
            let s = (i % 500 == 7).then_some(secret.as_str());
            let line = entry(i, s);
            f.write_all(line.as_bytes()).unwrap();
            n += line.len() as u64;
            i += 1;
        }
        f.flush().unwrap();
        written += n;
        files += 1;
    }
    (written, files)
}

/// Fills an agent database with ~`total` bytes of event JSON; returns the bytes written.
fn generate_db(db: &Path, total: u64) -> u64 {
    let conn = moltvault_testutils::homes::create_agent_schema_2026_9_6(db);
    let secret = format!(
        "sk-{}-{}",
        "proj", "B3nchK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab"
    );
    let nav = r#"{"version":1,"report":{"kind":"canonical"},"navigation":{},"reset":{},"model":{},"modelBytes":1,"modelWithoutCheckpointBytes":1,"withoutCustomDataBytes":1}"#;
    let tx = conn.unchecked_transaction().unwrap();
    let mut written = 0u64;
    let mut i = 0usize;
    while written < total {
        let sid = format!("{:08x}-0000-4000-8000-000000000000", i / 2000);
        if i.is_multiple_of(2000) {
            // Events and trajectory rows belong to a session window (foreign keys).
            let key = format!("agent:main:bench-{}", i / 2000);
            tx.execute(
                "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, created_at) VALUES (?1, ?2, '{}', 1, 1)",
                rusqlite::params![key, sid],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at) VALUES (?1, ?2, 'initial', 1, 1)",
                rusqlite::params![sid, key],
            )
            .unwrap();
        }
        let s = (i % 500 == 7).then_some(secret.as_str());
        let line = entry(i, s);
        let line = line.trim_end();
        let seq = (i % 2000) as i64;
        if i % 4 == 3 {
            let z = zstd::bulk::compress(line.as_bytes(), 3).unwrap();
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) VALUES (?1, ?2, NULL, 1, ?3, ?4, ?5)",
                rusqlite::params![sid, seq, z, line.len() as i64, nav],
            )
            .unwrap();
        } else {
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, ?2, ?3, 1)",
                rusqlite::params![sid, seq, line],
            )
            .unwrap();
        }
        written += line.len() as u64;
        if i.is_multiple_of(10) {
            let t = format!(r#"{{"type":"tool.result","data":{{"n":{i},"text":"ok {i}"}}}}"#);
            tx.execute(
                "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, ?2, 'r', ?3, 1)",
                rusqlite::params![sid, i as i64, t],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO session_transcript_fts (text, session_id, message_id, role, timestamp) VALUES (?1, ?2, 'm', 'assistant', 't')",
                rusqlite::params![format!("the listing of module {i} looks fine"), sid],
            )
            .unwrap();
            written += t.len() as u64 + 40;
        }
        i += 1;
    }
    tx.commit().unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    written
}

/// Reads every text row of the database once (the SQLite I/O floor).
fn read_db(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut n = 0u64;
    for sql in [
        "SELECT coalesce(length(event_json), 0) + coalesce(length(event_zstd), 0) FROM transcript_events",
        "SELECT length(event_json) FROM trajectory_runtime_events",
        "SELECT length(text) FROM session_transcript_fts",
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            n += r.get::<_, i64>(0).unwrap() as u64;
        }
    }
    n
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some_and(|v| v == "1");
    let total: u64 = if full { 1 << 30 } else { 100 << 20 };
    let runs = if full { 3 } else { 5 };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().to_path_buf();
    let state = home.join(".openclaw");
    let t = Instant::now();
    let (file_bytes, files) = generate(&state, total / 4 * 3);
    let db = state.join("agents/main/agent/openclaw-agent.sqlite");
    let db_bytes = generate_db(&db, total / 4);
    let bytes = file_bytes + db_bytes;
    println!(
        "generated {files} files ({:.0} MiB) and an agent database ({:.0} MiB of event text, {:.0} MiB on disk) in {:.1} s",
        file_bytes as f64 / (1 << 20) as f64,
        db_bytes as f64 / (1 << 20) as f64,
        fs::metadata(&db).unwrap().len() as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let gateway = Gateway::open(&state, &home).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let opts = AuditOptions::default();
    let paths = files_of(&state.join("agents/main/sessions"));

    // Warm the page cache once so both measurements read from memory.
    let _ = audit::audit(&gateway, &opts, &rules).unwrap();

    let mut base = Vec::new();
    let mut aud = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let (n, _) = rayon::join(
            || {
                paths
                    .par_iter()
                    .map(|p| fs::read(p).unwrap().len())
                    .sum::<usize>()
            },
            || read_db(&db),
        );
        base.push(t.elapsed());
        assert_eq!(n as u64, file_bytes);
        let t = Instant::now();
        let r = audit::audit(&gateway, &opts, &rules).unwrap();
        aud.push(t.elapsed());
        found = r
            .findings
            .iter()
            .flat_map(|f| f.secrets.values())
            .sum::<u64>();
    }
    let (b, a) = (median(base), median(aud));
    let mib = bytes as f64 / (1 << 20) as f64;
    let r = audit::audit(&gateway, &opts, &rules).unwrap();
    let db_found: u64 = r
        .findings
        .iter()
        .filter(|f| f.path == db)
        .flat_map(|f| f.secrets.values())
        .sum();
    assert!(db_found > 0, "the planted database secrets are found");
    println!(
        "threads {} | baseline (parallel read + SELECT): median {:.3} s ({:.0} MiB/s) | audit: median {:.3} s ({:.0} MiB/s) | ratio {:.1}x | {found} secrets found ({db_found} in the database)",
        rayon::current_num_threads(),
        b.as_secs_f64(),
        mib / b.as_secs_f64(),
        a.as_secs_f64(),
        mib / a.as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64(),
    );
}
