//! The OpenClaw ≥ 2026.8 SQLite store: reading events and redacting them with their derived
//! copies, against a database built from the real 2026.9.6 DDL and rows.

#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use moltvault_gateway::sqlite::AgentDb;
use moltvault_testutils::homes::{SampleLine, TestHome, data_dir};
use rusqlite::{Connection, params};
use serde_json::Value;

const SID: &str = "0800f919-15e3-4b0e-a722-ad7259e4e455";

fn db_path(h: &TestHome) -> PathBuf {
    h.path("agents/main/agent/openclaw-agent.sqlite")
}

/// Replaces `needle` in every string of `v`; reports whether anything changed. Keys named
/// `id`/`parentId` are left alone, as the real redactor does.
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
            .filter(|(k, _)| *k != "id" && *k != "parentId")
            .fold(false, |acc, (_, x)| replace_strings(x, needle, with) | acc),
        _ => false,
    }
}

/// Adds the session row that `transcript_events` rows reference (foreign keys are on).
fn add_window(path: &std::path::Path, sid: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute(
        "INSERT INTO session_windows (session_id, session_key, created_at, updated_at) \
         VALUES (?1, 'agent:main:main', 0, 0)",
        [sid],
    )
    .unwrap();
}

fn count_like(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn events_read_back_as_the_jsonl_entries_including_zstd_rows() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let db = AgentDb::open_read_only(&db_path(&h)).unwrap();
    let events = db.events(SID).unwrap();
    let want: Vec<Value> = fs::read_to_string(
        data_dir().join(format!("openclaw-2026.9.6/transcript_events.{SID}.jsonl")),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(events.len(), 10);
    assert_eq!(
        events.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
        want
    );
    assert_eq!(events[0].value["version"], 4);
    let mut out = Vec::new();
    db.export_jsonl(SID, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 10);
    assert_eq!(db.app_version().as_deref(), Some("2026.9.6"));
    let sessions = db.sessions().unwrap();
    let s = sessions.iter().find(|s| s.session_id == SID).unwrap();
    assert_eq!(s.events, 10);
    assert!(s.current);
}

#[test]
fn redaction_rewrites_events_and_every_derived_copy_in_one_transaction() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_path(&h);
    let mut db = AgentDb::open(&path).unwrap();
    let marker = "hello-from-tool";
    let report = db
        .redact(|v| replace_strings(v, marker, "[REDACTED:test:00000000]"))
        .unwrap();
    let changed = &report.changed;
    assert_eq!(
        changed.get("transcript_events.event_json"),
        Some(&3),
        "{changed:?}"
    );
    assert!(
        changed.contains_key("session_transcript_fts.text"),
        "{changed:?}"
    );
    assert!(
        changed.contains_key("trajectory_runtime_events.event_json"),
        "{changed:?}"
    );
    assert_eq!(
        changed.get("memory_index_chunks.text"),
        Some(&1),
        "{changed:?}"
    );
    assert_eq!(
        changed.get("session_transcript_archives.archive_blob"),
        Some(&1),
        "{changed:?}"
    );
    assert!(db.integrity_check().unwrap().is_empty());

    // Nothing of the marker remains anywhere: events (including the zstd one), FTS index
    // (searching finds nothing), the memory FTS mirror, trajectory, archive.
    let mut left = 0;
    db.for_each_event(None, |ev| {
        left += usize::from(ev.value.to_string().contains(marker));
        Ok(())
    })
    .unwrap();
    assert_eq!(left, 0);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM session_transcript_fts WHERE session_transcript_fts MATCH '\"hello-from-tool\"'"
        ),
        0
    );
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM session_transcript_fts WHERE session_transcript_fts MATCH 'REDACTED'"
        ),
        1,
        "the final assistant text; the user text never held the marker"
    );
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM memory_index_chunks_fts WHERE memory_index_chunks_fts MATCH '\"hello-from-tool\"'"
        ),
        0
    );
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM trajectory_runtime_events WHERE event_json LIKE '%hello-from-tool%'"
        ),
        0
    );
    let blob: Vec<u8> = conn
        .query_row(
            "SELECT archive_blob FROM session_transcript_archives",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let text = String::from_utf8(zstd::stream::decode_all(&blob[..]).unwrap()).unwrap();
    assert!(!text.contains(marker));
    assert!(text.contains("[REDACTED:test:00000000]"));
    let (sha, stored): (String, Vec<u8>) = conn
        .query_row(
            "SELECT archive_sha256, archive_blob FROM session_transcript_archives",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    use sha2::Digest;
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&stored)));
    // The zstd row stays zstd with a matching byte count; ids and parent links are untouched.
    let (n, z): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT event_utf8_bytes, event_zstd FROM transcript_events WHERE event_zstd IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(zstd::stream::decode_all(&z[..]).unwrap().len() as i64, n);
    let ids: i64 = count_like(
        &conn,
        "SELECT count(*) FROM transcript_events e JOIN transcript_event_identities i \
         ON i.session_id = e.session_id AND i.seq = e.seq \
         WHERE e.event_json IS NOT NULL AND json_extract(e.event_json, '$.id') = i.event_id",
    );
    assert_eq!(
        ids, 8,
        "ids of the 8 plain-JSON events after the header still match"
    );

    // Idempotent.
    let again = db
        .redact(|v| replace_strings(v, marker, "[REDACTED:test:00000000]"))
        .unwrap();
    assert_eq!(again.total_changed(), 0);
    assert!(again.scanned > 10);
}

#[test]
fn a_failed_redaction_changes_nothing() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_path(&h);
    // A corrupt zstd event makes the pass fail after some rows were already rewritten in the
    // transaction; the rollback must leave every row as it was.
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE transcript_events SET event_zstd = x'00010203' WHERE event_zstd IS NOT NULL",
        [],
    )
    .unwrap();
    let before: Vec<String> = conn
        .prepare("SELECT coalesce(event_json, '') FROM transcript_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut db = AgentDb::open(&path).unwrap();
    let err = db
        .redact(|v| replace_strings(v, "echo", "ECHO"))
        .unwrap_err();
    assert!(err.to_string().contains("transcript_events"), "{err}");
    let after: Vec<String> = conn
        .prepare("SELECT coalesce(event_json, '') FROM transcript_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(before, after);
}

#[test]
fn redaction_while_another_connection_appends_loses_nothing() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_path(&h);
    let marker = "hello-from-tool";
    add_window(&path, "bulk");
    add_window(&path, "appended");
    // Make the database larger so the redaction transaction takes a while.
    {
        let conn = Connection::open(&path).unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..3000 {
            tx.execute(
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, ?2, ?3, 0)",
                params![
                    "bulk",
                    i,
                    format!(r#"{{"type":"message","id":"b{i}","message":{{"role":"toolResult","content":[{{"type":"text","text":"{marker} #{i}"}}]}}}}"#)
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let start = Arc::new(Barrier::new(2));
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (path, start, stop) = (path.clone(), start.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            start.wait();
            let mut n = 0_i64;
            while !stop.load(Ordering::Relaxed) || n < 50 {
                conn.execute(
                    "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES ('appended', ?1, ?2, 0)",
                    params![n, format!(r#"{{"type":"message","id":"a{n}","message":{{"role":"user","content":"{marker} live {n}"}}}}"#)],
                )
                .unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let mut db = AgentDb::open(&path).unwrap();
    start.wait();
    std::thread::sleep(Duration::from_millis(20));
    let report = db.redact(|v| replace_strings(v, marker, "[R]")).unwrap();
    stop.store(true, Ordering::Relaxed);
    let appended = appender.join().unwrap();
    assert!(report.changed["transcript_events.event_json"] >= 3003);

    let conn = Connection::open(&path).unwrap();
    // Every append landed.
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM transcript_events WHERE session_id = 'appended'"
        ),
        appended
    );
    // Rows committed before the redaction are clean; later ones are caught by the next pass.
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM transcript_events WHERE session_id IN ('bulk', '0800f919-15e3-4b0e-a722-ad7259e4e455') AND event_json LIKE '%hello-from-tool%'"
        ),
        0
    );
    let second = db.redact(|v| replace_strings(v, marker, "[R]")).unwrap();
    let _ = second;
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM transcript_events WHERE event_json LIKE '%hello-from-tool%'"
        ),
        0
    );
    assert!(db.integrity_check().unwrap().is_empty());
}

/// Helper run in a child process by the next test: appends 200 events to the database named by
/// `MOLTVAULT_TEST_APPEND_DB`, one transaction each (as the gateway does).
#[test]
#[ignore = "helper process for redaction_from_another_process_while_this_one_appends"]
fn appender_process_helper() {
    let Some(path) = std::env::var_os("MOLTVAULT_TEST_APPEND_DB") else {
        return;
    };
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    for n in 0..200 {
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES ('proc', ?1, ?2, 0)",
            params![n, format!(r#"{{"type":"message","id":"p{n}","message":{{"role":"user","content":"hello-from-tool {n}"}}}}"#)],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn redaction_from_another_process_while_this_one_appends() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_path(&h);
    add_window(&path, "proc");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["appender_process_helper", "--exact", "--ignored", "--quiet"])
        .env("MOLTVAULT_TEST_APPEND_DB", &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut db = AgentDb::open(&path).unwrap();
    let mut passes = 0;
    while child.try_wait().unwrap().is_none() {
        db.redact(|v| replace_strings(v, "hello-from-tool", "[R]"))
            .unwrap();
        passes += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    db.redact(|v| replace_strings(v, "hello-from-tool", "[R]"))
        .unwrap();
    assert!(passes > 1, "redaction ran while the other process appended");
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM transcript_events WHERE session_id = 'proc'"
        ),
        200
    );
    assert_eq!(
        count_like(
            &conn,
            "SELECT count(*) FROM transcript_events WHERE event_json LIKE '%hello-from-tool%'"
        ),
        0
    );
    assert!(db.integrity_check().unwrap().is_empty());
}

#[test]
fn unparseable_json_columns_are_redacted_as_text() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let path = db_path(&h);
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO trajectory_runtime_events (session_id, seq, event_json, created_at) VALUES (?1, 999, 'not json hello-from-tool', 0)",
        [SID],
    )
    .unwrap();
    let mut db = AgentDb::open(&path).unwrap();
    db.redact(|v| replace_strings(v, "hello-from-tool", "[R]"))
        .unwrap();
    let t: String = conn
        .query_row(
            "SELECT event_json FROM trajectory_runtime_events WHERE seq = 999",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(t, "not json [R]");
}
