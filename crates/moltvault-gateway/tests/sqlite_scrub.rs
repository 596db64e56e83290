//! Redaction of an agent database leaves no old secret bytes anywhere in its files: not in
//! freed cells or freelist pages of the database, not in FTS5 index segments, not in the WAL.
//! Checked by grepping the raw bytes of `.sqlite`, `-wal` and `-shm`, against a database built
//! from the real 2026.9.6 DDL and rows, with a control run showing that a plain `UPDATE` does
//! leave the bytes behind (so the check is not vacuous).

#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::{Path, PathBuf};

use moltvault_gateway::sqlite::{AgentDb, Checkpoint};
use moltvault_testutils::homes::{SampleLine, TestHome};
use rusqlite::{Connection, params};
use serde_json::Value;

const SID: &str = "0800f919-15e3-4b0e-a722-ad7259e4e455";
const PLACEHOLDER: &str = "[REDACTED:test:00000000]";

/// A secret of letters and digits only, so the FTS tokenizer keeps it as one term; assembled
/// from fragments.
fn secret() -> String {
    format!("{}{}{}", "MvScrub", "Q7w3Zr9Kx2Lp", "5Tn8Vb4Hc6Jd1Fg0")
}

/// The byte strings that must not survive: the secret, and the tail of its lowercased FTS term
/// (index leaves store terms prefix-compressed, so the tail is what is contiguous).
fn needles(s: &str) -> Vec<Vec<u8>> {
    let lower = s.to_lowercase();
    vec![
        s.as_bytes().to_vec(),
        lower.as_bytes()[lower.len() - 16..].to_vec(),
    ]
}

fn replace_strings(v: &mut Value, needle: &str, with: &str) -> bool {
    match v {
        Value::String(s) if s.contains(needle) => {
            *s = s.replace(needle, with);
            true
        }
        Value::Array(a) => a
            .iter_mut()
            .fold(false, |acc, x| replace_strings(x, needle, with) | acc),
        Value::Object(m) => m
            .iter_mut()
            .fold(false, |acc, (_, x)| replace_strings(x, needle, with) | acc),
        _ => false,
    }
}

/// Which of the database's files hold one of `needles`, byte-wise.
fn raw_hits(db: &Path, needles: &[Vec<u8>]) -> Vec<String> {
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let Ok(bytes) = fs::read(PathBuf::from(&p)) else {
            continue;
        };
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == &n[..]) {
                out.push(format!("{}{suffix}: {}", "db", String::from_utf8_lossy(n)));
            }
        }
    }
    out
}

/// Plants the secret where the gateway keeps transcript text: plain events (one large enough to
/// spill onto overflow pages), trajectory, the FTS copy and a memory chunk (whose triggers
/// feed `memory_index_chunks_fts`), all through `conn` in WAL mode.
fn plant(conn: &Connection, s: &str) {
    let event = |seq: i64, pad: usize| {
        format!(
            r#"{{"type":"message","id":"e{seq}","parentId":null,"timestamp":"2026-11-25T18:00:00.000Z","message":{{"role":"toolResult","toolCallId":"c","toolName":"exec","content":[{{"type":"text","text":"token {s} {}"}}],"isError":false}}}}"#,
            "x".repeat(pad)
        )
    };
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 200, ?2, 1795629600000)",
        params![SID, event(200, 10)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 201, ?2, 1795629600000)",
        params![SID, event(201, 20_000)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, 200, 'r', ?2, 1795629600000)",
        params![SID, format!(r#"{{"type":"tool.result","data":{{"content":"token {s}"}}}}"#)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) VALUES (9100, ?1, ?2, 'm', 'assistant', 't')",
        params![format!("the token is {s} keep it safe"), SID],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO memory_index_chunks (id, path, source, start_line, end_line, hash, model, text, embedding, updated_at) \
         VALUES ('scrub-chunk', 'sessions/x', 'sessions', 1, 2, 'h', 'm', ?1, x'00', 0)",
        params![format!("memory of token {s}")],
    )
    .unwrap();
}

fn db_of(h: &TestHome) -> PathBuf {
    h.path("agents/main/agent/openclaw-agent.sqlite")
}

#[test]
fn redaction_leaves_no_secret_bytes_in_the_database_fts_or_wal() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_of(&h);
    let s = secret();
    let needles = needles(&s);
    // The gateway's connection: WAL mode, kept open (idle) during the redaction.
    let gateway = Connection::open(&path).unwrap();
    let mode: String = gateway
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    plant(&gateway, &s);
    // Not vacuous: the bytes are on disk (WAL and, once checkpointed, the database).
    assert!(!raw_hits(&path, &needles).is_empty());
    gateway
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert!(
        raw_hits(&path, &needles)
            .iter()
            .any(|h| h.starts_with("db:")),
        "the planted rows should be in the database file after a checkpoint"
    );

    let mut db = AgentDb::open(&path).unwrap();
    let report = db.redact(|v| replace_strings(v, &s, PLACEHOLDER)).unwrap();
    for col in [
        "transcript_events.event_json",
        "trajectory_runtime_events.event_json",
        "session_transcript_fts.text",
        "memory_index_chunks.text",
    ] {
        assert!(report.changed.contains_key(col), "{col}: {report:?}");
    }
    assert_eq!(report.checkpoint, Some(Checkpoint::Truncated), "{report:?}");
    assert_eq!(
        report.fts_scrubbed,
        vec!["session_transcript_fts", "memory_index_chunks_fts"]
    );

    let hits = raw_hits(&path, &needles);
    assert!(hits.is_empty(), "old bytes left: {hits:?}");
    assert!(db.integrity_check().unwrap().is_empty());
    // The FTS tables' own option is back to what it was (off), and search finds the
    // placeholder's row but not the secret.
    for t in ["session_transcript_fts", "memory_index_chunks_fts"] {
        let v: Option<i64> = gateway
            .query_row(
                &format!("SELECT v FROM {t}_config WHERE k = 'secure-delete'"),
                [],
                |r| r.get(0),
            )
            .unwrap_or(None);
        assert_ne!(v, Some(1), "{t}: secure-delete left on");
    }
    let found: i64 = gateway
        .query_row(
            "SELECT COUNT(*) FROM session_transcript_fts WHERE session_transcript_fts MATCH ?1",
            [s.to_lowercase()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, 0);
    // The gateway's connection keeps working after the WAL was truncated under it.
    gateway
        .execute(
            "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) VALUES (9101, 'after', ?1, 'm2', 'user', 't')",
            [SID],
        )
        .unwrap();
    // (A fresh connection: FTS5's integrity-check on a connection that cached the index
    // structure before another connection's write can report a spurious checksum mismatch.)
    let problems = AgentDb::open(&path).unwrap().integrity_check().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_plain_update_leaves_the_bytes_behind_control() {
    // The same rewrite without secure_delete, FTS secure-delete or a checkpoint: the old bytes
    // survive in freed space, which is what the redaction above must prevent.
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_of(&h);
    let s = secret();
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "secure_delete", "OFF").unwrap();
    plant(&conn, &s);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    for (table, col) in [
        ("transcript_events", "event_json"),
        ("trajectory_runtime_events", "event_json"),
        ("session_transcript_fts", "text"),
        ("memory_index_chunks", "text"),
    ] {
        conn.execute(
            &format!("UPDATE {table} SET {col} = replace({col}, ?1, ?2) WHERE {col} LIKE '%' || ?1 || '%'"),
            params![s, PLACEHOLDER],
        )
        .unwrap();
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM transcript_events WHERE event_json LIKE '%' || ?1 || '%'",
            [&s],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the rows themselves are clean");
    assert!(
        !raw_hits(&path, &needles(&s)).is_empty(),
        "a plain UPDATE was expected to leave old bytes in the file"
    );
}

#[test]
fn a_reader_holding_the_wal_makes_the_checkpoint_busy_then_it_completes() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_of(&h);
    let s = secret();
    let gateway = Connection::open(&path).unwrap();
    gateway
        .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    plant(&gateway, &s);
    // The gateway reads in a long transaction while moltvault redacts.
    gateway.execute_batch("BEGIN").unwrap();
    let _: i64 = gateway
        .query_row("SELECT COUNT(*) FROM transcript_events", [], |r| r.get(0))
        .unwrap();
    let mut db = AgentDb::open(&path).unwrap();
    let report = db.redact(|v| replace_strings(v, &s, PLACEHOLDER)).unwrap();
    assert!(
        matches!(report.checkpoint, Some(Checkpoint::Busy { .. })),
        "{report:?}"
    );
    gateway.execute_batch("COMMIT").unwrap();
    assert_eq!(db.checkpoint_truncate().unwrap(), Checkpoint::Truncated);
    let hits = raw_hits(&path, &needles(&s));
    assert!(hits.is_empty(), "old bytes left: {hits:?}");
    assert!(db.integrity_check().unwrap().is_empty());
}

#[test]
fn vacuum_drops_bytes_the_gateway_itself_left_in_free_space() {
    // The gateway deleted a row holding the secret without secure_delete: no live row holds it,
    // so redaction cannot see it; VACUUM (gateway stopped) removes it.
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_of(&h);
    let s = secret();
    {
        let gateway = Connection::open(&path).unwrap();
        gateway
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        gateway.pragma_update(None, "secure_delete", "OFF").unwrap();
        plant(&gateway, &s);
        gateway
            .execute("DELETE FROM trajectory_runtime_events WHERE seq = 200", [])
            .unwrap();
        gateway
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut db = AgentDb::open(&path).unwrap();
    db.redact(|v| replace_strings(v, &s, PLACEHOLDER)).unwrap();
    assert_eq!(db.vacuum().unwrap(), Checkpoint::Truncated);
    let hits = raw_hits(&path, &needles(&s));
    assert!(hits.is_empty(), "old bytes left: {hits:?}");
    assert!(db.integrity_check().unwrap().is_empty());
}
