#![allow(clippy::disallowed_methods)]

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::checks::ref_capable;
use super::fsscan::{FileKind, classify, lexical_join};
use super::*;
use crate::discover::Gateway;

/// A fake OpenAI-style key, assembled so this file does not trip secret scanners.
fn fake_openai_key() -> String {
    format!(
        "sk-{}-{}",
        "proj", "T3stK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd"
    )
}

/// A fake gateway token (48 hex characters, like the gateway's own).
fn fake_gateway_token() -> String {
    format!(
        "{}{}",
        "9f3c2a7b41d8e6f0", "5a9b3c7d2e1f4a8b6c0d9e7f3a2b1c4d"
    )
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn age(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 86_400);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn transcript_line(secret: &str) -> String {
    format!(
        concat!(
            r#"{{"type":"session","version":3,"id":"s1","timestamp":"2026-11-25T18:00:00.000Z","cwd":"/w"}}"#,
            "\n",
            r#"{{"type":"message","id":"a1b2c3d4","parentId":null,"timestamp":"2026-11-25T18:00:01.000Z","message":{{"role":"toolResult","toolCallId":"call_1","toolName":"exec","content":[{{"type":"text","text":"export OPENAI_API_KEY={}"}}]}}}}"#,
            "\n"
        ),
        secret
    )
}

struct Home {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    state: PathBuf,
    vault: PathBuf,
    backups: PathBuf,
}

/// An OpenClaw 2026.7.35-style home with one instance of every finding planted.
fn planted_home() -> Home {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let state = home.join(".openclaw");
    let key = fake_openai_key();
    let token = fake_gateway_token();
    let config = format!(
        r#"{{
  // JSON5: comments are allowed
  meta: {{ lastTouchedVersion: "2026.7.35" }},
  gateway: {{ bind: "lan", auth: {{ mode: "none" }}, remote: {{ token: "{token}" }} }},
  logging: {{ redactSensitive: "off" }},
  models: {{ providers: {{ openai: {{ apiKey: "{key}", baseUrl: "https://api.openai.com/v1" }},
                          envref: {{ apiKey: "${{OPENAI_API_KEY}}" }} }} }},
}}"#
    );
    write(&state.join("openclaw.json"), &config, 0o600);
    write(
        &state.join("openclaw.json.bak"),
        &format!("{{\"models\":{{\"providers\":{{\"openai\":{{\"apiKey\":\"{key}\"}}}}}}}}\n"),
        0o644,
    );
    let sessions = state.join("agents/main/sessions");
    write(&sessions.join("s1.jsonl"), &transcript_line(&key), 0o644);
    age(&sessions.join("s1.jsonl"), 30);
    write(
        &sessions.join("s2.trajectory.jsonl"),
        &transcript_line(&key),
        0o600,
    );
    age(&sessions.join("s2.trajectory.jsonl"), 30);
    write(
        &sessions.join("live.jsonl"),
        &transcript_line(&token),
        0o600,
    );
    age(&sessions.join("live.jsonl"), 30);
    write(&sessions.join("live.jsonl.lock"), "{\"pid\":1}", 0o644);
    write(&sessions.join("sessions.json"), "{}", 0o600);
    write(
        &state.join("agents/main/agent/models.json"),
        &format!("{{\"providers\":{{\"openai\":{{\"apiKey\":\"{key}\"}}}}}}\n"),
        0o600,
    );
    write(
        &state.join("logs/config-audit.jsonl"),
        &format!(
            "{{\"argv\":[\"openclaw\",\"config\",\"set\",\"gateway.remote.token\",\"{token}\"]}}\n"
        ),
        0o644,
    );
    fs::create_dir_all(state.join("plugin-skills")).unwrap();
    symlink("/usr/share", state.join("plugin-skills/canvas")).unwrap();
    symlink("/etc", state.join("agents/main/escape")).unwrap();
    symlink("sessions/s1.jsonl", state.join("agents/main/inside")).unwrap();
    chmod(&state.join("agents"), 0o755);
    chmod(&state.join("agents/main"), 0o755);
    chmod(&sessions, 0o755);
    chmod(&state, 0o755);

    let vault = home.join(".moltvault");
    write(&vault.join("rotation/active"), "20261125T180000Z\n", 0o600);
    write(
        &vault.join("rotation/runs/20261125T180000Z/journal.jsonl"),
        "{}\n",
        0o600,
    );
    // A finished run leaves its journal but no `active` pointer.
    write(
        &vault.join("rotation/runs/20261001T000000Z/journal.jsonl"),
        "{}\n",
        0o600,
    );
    let backups = vault.join("backups");
    fs::create_dir_all(&backups).unwrap();
    Home {
        _tmp: tmp,
        home,
        state,
        vault,
        backups,
    }
}

fn opts(h: &Home) -> AuditOptions {
    AuditOptions {
        log_paths: Vec::new(),
        vault_dir: Some(h.vault.clone()),
        backup_dir: Some(h.backups.clone()),
        ..AuditOptions::default()
    }
}

fn checks(r: &AuditReport) -> Vec<(&'static str, Severity, String)> {
    r.findings
        .iter()
        .map(|f| (f.check, f.severity, display_path(&f.path, &r.state_dir)))
        .collect()
}

#[test]
fn audit_finds_every_planted_problem_and_fix_leaves_only_human_work() {
    let h = planted_home();
    let gw = Gateway::open(&h.state, &h.home).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let report = audit(&gw, &opts(&h), &rules).unwrap();
    let found = checks(&report);
    let ids: Vec<&str> = found.iter().map(|c| c.0).collect();
    for want in [
        "gateway.bind_no_auth",
        "fs.state_dir.perms",
        "config.redact_off",
        "rotation.unfinished",
        "secrets.transcript",
        "secrets.trajectory",
        "secrets.config_backup",
        "secrets.log",
        "fs.transcript.perms",
        "fs.config_backup.perms",
        "fs.dir.perms",
        "fs.secret_file.perms",
        "fs.symlink.outside",
        "config.inline_secret",
        "plugin.not_installed",
        "backup.none",
        "secrets.models_json",
        "vault.idle_unsealed",
        "fs.symlink.plugin_skills",
    ] {
        assert!(ids.contains(&want), "{want} missing from {found:#?}");
    }
    // Most severe first.
    assert_eq!(report.findings[0].check, "gateway.bind_no_auth");
    assert_eq!(report.findings[0].severity, Severity::Critical);
    // Only the inline secrets of literal values, not the `${VAR}` reference.
    let inline: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.check == "config.inline_secret")
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(inline.len(), 2, "{inline:?}");
    assert!(
        inline
            .iter()
            .any(|d| d.contains("models.providers.openai.apiKey"))
    );
    assert!(!inline.iter().any(|d| d.contains("envref")));
    // Only the active (unfinished) run.
    let rot: Vec<_> = found
        .iter()
        .filter(|c| c.0 == "rotation.unfinished")
        .collect();
    assert_eq!(rot.len(), 1);
    assert!(
        rot[0].2.ends_with("runs/20261125T180000Z/journal.jsonl"),
        "{rot:?}"
    );
    // The in-tree symlink is fine; the one to /etc is not.
    let sym: Vec<_> = found
        .iter()
        .filter(|c| c.0 == "fs.symlink.outside")
        .collect();
    assert_eq!(sym.len(), 1);
    assert_eq!(sym[0].2, "agents/main/escape");

    // The report never carries a secret value.
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(&fake_openai_key()));
    assert!(!json.contains(&fake_gateway_token()));
    // The config's own token is found literally in the log.
    let log = report
        .findings
        .iter()
        .find(|f| f.check == "secrets.log")
        .unwrap();
    assert_eq!(log.secrets.get("config-gateway-remote-token"), Some(&1));

    let outcomes = fix(
        &gw,
        &report,
        &FixOptions {
            rules: &rules,
            key: moltvault_redact::FingerprintKey::from_bytes([3; 32]),
            note: Some(h.vault.join("audit-fixes.jsonl")),
            now: SystemTime::now(),
            vault_dir: None,
            idle_after: Duration::from_secs(7 * 86_400),
        },
    )
    .unwrap();
    assert!(
        outcomes.iter().any(|o| o.path.ends_with("s1.jsonl")
            && matches!(o.action, FixAction::Redacted { .. })),
        "{outcomes:#?}"
    );
    assert!(outcomes.iter().any(|o| o.path.ends_with("live.jsonl")
        && matches!(&o.action, FixAction::Skipped { reason } if reason.contains("lock"))));
    let s1 = fs::read_to_string(h.state.join("agents/main/sessions/s1.jsonl")).unwrap();
    assert!(!s1.contains(&fake_openai_key()));
    assert!(s1.contains("[REDACTED:"));
    assert_eq!(s1.lines().count(), 2, "line count is kept");
    let note = fs::read_to_string(h.vault.join("audit-fixes.jsonl")).unwrap();
    assert_eq!(note.lines().count(), 2, "{note}");
    assert!(!note.contains(&fake_openai_key()));
    // Permissions were tightened through the descriptors; the symlink target was not touched.
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&h.state), 0o700);
    assert_eq!(mode(&h.state.join("agents/main/sessions")), 0o700);
    assert_eq!(mode(&h.state.join("agents/main/sessions/s1.jsonl")), 0o600);
    assert_eq!(mode(&h.state.join("openclaw.json.bak")), 0o600);
    assert_eq!(mode(&h.state.join("logs/config-audit.jsonl")), 0o600);
    assert_ne!(mode(Path::new("/etc")), 0o700);

    let after = audit(&gw, &opts(&h), &rules).unwrap();
    let left: Vec<&str> = after.findings.iter().map(|f| f.check).collect();
    for gone in [
        "fs.state_dir.perms",
        "fs.transcript.perms",
        "fs.config_backup.perms",
        "fs.dir.perms",
        "fs.secret_file.perms",
        "secrets.trajectory",
    ] {
        assert!(!left.contains(&gone), "{gone} still there: {left:?}");
    }
    // The locked transcript still needs a human (or a later run).
    let t: Vec<_> = after
        .findings
        .iter()
        .filter(|f| f.check == "secrets.transcript")
        .collect();
    assert_eq!(t.len(), 1);
    assert!(t[0].path.ends_with("live.jsonl"));
    assert!(left.contains(&"gateway.bind_no_auth"));
    assert!(left.contains(&"secrets.config_backup"));

    // A second fix run changes nothing it already changed.
    let again = fix(
        &gw,
        &after,
        &FixOptions {
            rules: &rules,
            key: moltvault_redact::FingerprintKey::from_bytes([3; 32]),
            note: None,
            now: SystemTime::now(),
            vault_dir: None,
            idle_after: Duration::from_secs(7 * 86_400),
        },
    )
    .unwrap();
    assert!(
        again
            .iter()
            .all(|o| !matches!(o.action, FixAction::Redacted { .. })),
        "{again:#?}"
    );
}

#[test]
fn fix_never_chmods_through_a_symlinked_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(root.join("agents")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    write(&outside.join("victim.jsonl"), "x\n", 0o644);
    symlink(&outside, root.join("agents/main")).unwrap();
    let err = super::fix::tighten(&root, &root.join("agents/main/victim.jsonl")).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(
        fs::metadata(outside.join("victim.jsonl"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
}

#[test]
fn files_are_classified_by_their_place_in_the_state_dir() {
    let k = |p: &str| classify(Path::new(p));
    assert_eq!(k("agents/main/sessions/a.jsonl"), FileKind::Transcript);
    assert_eq!(
        k("agents/main/sessions/a-topic-7.jsonl"),
        FileKind::Transcript
    );
    assert_eq!(
        k("agents/main/sessions/a.jsonl.deleted.2026-01-01T00-00-00.000Z"),
        FileKind::Transcript
    );
    assert_eq!(
        k("agents/main/sessions/a.jsonl.deleted.1700000000000.ab12.zst"),
        FileKind::Archive
    );
    assert_eq!(
        k("agents/main/sessions/cold/ab.jsonl.zst"),
        FileKind::Archive
    );
    assert_eq!(
        k("agents/main/sessions/a.trajectory.jsonl"),
        FileKind::Trajectory
    );
    assert_eq!(k("agents/main/sessions/a.jsonl.age"), FileKind::Sealed);
    assert_eq!(k("agents/main/sessions/a.jsonl.lock"), FileKind::Other);
    assert_eq!(
        k("agents/main/sessions/sessions.json"),
        FileKind::SecretStore
    );
    assert_eq!(k("agents/main/agent/models.json"), FileKind::ModelsJson);
    assert_eq!(
        k("agents/main/agent/openclaw-agent.sqlite-wal"),
        FileKind::SecretStore
    );
    assert_eq!(
        k("agents/main/agent/openclaw-agent.generation-lock.sqlite"),
        FileKind::Other
    );
    assert_eq!(
        k("credentials/whatsapp/x/creds.json"),
        FileKind::SecretStore
    );
    assert_eq!(k("logs/config-audit.jsonl"), FileKind::Log);
    assert_eq!(k(".env"), FileKind::SecretStore);
    assert_eq!(k("workspace/AGENTS.md"), FileKind::Other);
}

#[test]
fn secretref_capable_keys_follow_the_gateway_surface() {
    assert!(ref_capable("gateway.auth.token"));
    assert!(ref_capable("models.providers.a.apiKey"));
    assert!(ref_capable("channels.telegram.accounts.work.botToken"));
    assert!(!ref_capable("hooks.token"));
    assert!(!ref_capable("hooks.gmail.pushToken"));
    assert!(!ref_capable("env.vars.GROQ_API_KEY"));
}

#[test]
fn symlink_targets_are_resolved_lexically() {
    assert_eq!(
        lexical_join(Path::new("/s/agents"), Path::new("../../etc")),
        PathBuf::from("/etc")
    );
    assert_eq!(
        lexical_join(Path::new("/s/a"), Path::new("./b/../c")),
        PathBuf::from("/s/a/c")
    );
}

#[test]
fn severity_parses_and_orders() {
    assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
    assert!("bad".parse::<Severity>().is_err());
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
}

/// Plants the fake key in a 2026.9.6 agent database: a plain event, a zstd event, a
/// trajectory event and the FTS copy (through the virtual table, as the gateway writes it).
fn plant_in_db(db: &Path, key: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
    let plain = format!(
        r#"{{"type":"message","id":"e0000001-0000-4000-8000-000000000001","parentId":null,"timestamp":"2026-11-25T18:00:00.000Z","message":{{"role":"toolResult","toolCallId":"call_x","toolName":"exec","content":[{{"type":"text","text":"OPENAI_API_KEY={key}"}}],"isError":false}}}}"#
    );
    let big = plain.replace("e0000001", "e0000002");
    let z = zstd::bulk::compress(big.as_bytes(), 3).unwrap();
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 100, ?2, 1)",
        rusqlite::params![sid, plain],
    )
    .unwrap();
    let nav = r#"{"version":1,"report":{"kind":"canonical"},"navigation":{},"reset":{},"model":{},"modelBytes":1,"modelWithoutCheckpointBytes":1,"withoutCustomDataBytes":1}"#;
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) VALUES (?1, 101, NULL, 1, ?2, ?3, ?4)",
        rusqlite::params![sid, z, big.len() as i64, nav],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, 100, 'r', ?2, 1)",
        rusqlite::params![sid, format!(r#"{{"type":"tool.result","data":{{"content":"key {key}"}}}}"#)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) VALUES (9000, ?1, ?2, 'm', 'assistant', 't')",
        rusqlite::params![format!("your key is\n{key}\nkeep it safe"), sid],
    )
    .unwrap();
}

#[test]
fn sqlite_transcripts_are_scanned_by_rule_and_fix_redacts_them_in_one_transaction() {
    use moltvault_testutils::homes::{SampleLine, TestHome};
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let db = h.path("agents/main/agent/openclaw-agent.sqlite");
    let key = fake_openai_key();
    plant_in_db(&db, &key);
    let gw = Gateway::open(h.state_dir(), h.home()).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let r = audit(&gw, &AuditOptions::default(), &rules).unwrap();
    let of = |check: &str| -> Option<&Finding> {
        r.findings.iter().find(|f| f.check == check && f.path == db)
    };
    let t = of("secrets.transcript").expect("transcript events finding");
    assert_eq!(t.secrets.values().sum::<u64>(), 2, "{t:#?}");
    assert_eq!(t.severity, Severity::High);
    assert_eq!(t.fix, Some(SafeFix::Redact));
    let traj = of("secrets.trajectory").expect("trajectory finding");
    assert_eq!(traj.secrets.values().sum::<u64>(), 1);
    let copy = of("secrets.db_copy").expect("derived copy finding");
    assert!(copy.secrets.values().sum::<u64>() >= 1, "{copy:#?}");
    // Counts by rule, never the value.
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains(&key));
    assert!(r.scanned_bytes > 0);

    // A quick audit (no content scan) reports none of them.
    let quick = AuditOptions {
        content_scan: false,
        ..AuditOptions::default()
    };
    let q = audit(&gw, &quick, &rules).unwrap();
    assert!(
        q.findings
            .iter()
            .all(|f| f.path != db || !f.check.starts_with("secrets."))
    );

    let out = fix(
        &gw,
        &r,
        &FixOptions {
            rules: &rules,
            key: moltvault_redact::FingerprintKey::from_bytes([7; 32]),
            note: None,
            now: SystemTime::now(),
            vault_dir: None,
            idle_after: Duration::from_secs(7 * 86_400),
        },
    )
    .unwrap();
    let db_fixes: Vec<_> = out.iter().filter(|o| o.path == db).collect();
    assert_eq!(db_fixes.len(), 1, "one transaction per database: {out:#?}");
    let FixAction::RedactedDb {
        secrets,
        rows,
        old_bytes,
    } = &db_fixes[0].action
    else {
        panic!("{:#?}", db_fixes[0]);
    };
    // No gateway runs here, so the database was also rebuilt (unless a gateway process this
    // check cannot tell apart runs on the machine); either way no old byte is in its files.
    if gw.is_running() {
        assert_eq!(old_bytes, "zeroed, WAL truncated");
    } else {
        assert_eq!(old_bytes, "vacuumed");
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(raw) = fs::read(PathBuf::from(p)) {
            assert!(
                !raw.windows(key.len()).any(|w| w == key.as_bytes()),
                "the key's bytes are left in the database file{suffix}"
            );
        }
    }
    assert!(secrets.values().sum::<u64>() >= 4, "{secrets:?}");
    assert_eq!(rows["transcript_events.event_json"], 2);
    assert!(rows.contains_key("trajectory_runtime_events.event_json"));
    assert!(rows.contains_key("session_transcript_fts.text"));

    let after = audit(&gw, &AuditOptions::default(), &rules).unwrap();
    assert!(
        after
            .findings
            .iter()
            .all(|f| f.path != db || !f.check.starts_with("secrets.")),
        "{:#?}",
        after.findings
    );
    // The FTS5 integrity check needs a writable connection.
    let adb = crate::sqlite::AgentDb::open(&db).unwrap();
    assert_eq!(adb.integrity_check().unwrap(), Vec::<String>::new());
    // The zstd event was re-compressed, not turned into plain JSON.
    let zrows: i64 = adb
        .connection()
        .query_row(
            "SELECT count(*) FROM transcript_events WHERE event_zstd IS NOT NULL AND seq = 101",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(zrows, 1);
    let mut text = String::new();
    adb.for_each_event(None, |e| {
        text.push_str(&e.value.to_string());
        Ok(())
    })
    .unwrap();
    assert!(!text.contains(&key));
    assert!(text.contains("[REDACTED:"));
}

#[test]
fn idle_sqlite_sessions_are_reported_with_the_archive_hint_and_no_fix() {
    // (The deleted-session archives of a SQLite-era gateway are covered by the same check; see
    // tests/cli/audit.rs.)
    use moltvault_testutils::homes::{SampleLine, TestHome};
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let vault = h.home().join(".moltvault");
    fs::create_dir_all(&vault).unwrap();
    let db = h.path("agents/main/agent/openclaw-agent.sqlite");
    // A scratch key whose session is idle (the sample's rows are from 2026-11-25).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) \
         VALUES ('agent:main:scratch', '5c7a0000-0000-4000-8000-000000000001', '{}', 1795629600000)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO session_windows (session_id, session_key, created_at, updated_at) \
         VALUES ('5c7a0000-0000-4000-8000-000000000001', 'agent:main:scratch', 0, 1795629600000)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at) \
         VALUES ('5c7a0000-0000-4000-8000-000000000001', 0, '{\"type\":\"session\",\"version\":4,\"id\":\"5c7a0000-0000-4000-8000-000000000001\"}', 1795629600000)",
        [],
    )
    .unwrap();
    drop(conn);
    let gw = Gateway::open(h.state_dir(), h.home()).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let at = |days: u64| AuditOptions {
        vault_dir: Some(vault.clone()),
        content_scan: false,
        idle_after: Duration::from_secs(7 * 86_400),
        now: SystemTime::UNIX_EPOCH
            + Duration::from_millis(1_795_629_600_000)
            + Duration::from_secs(days * 86_400),
        ..AuditOptions::default()
    };
    // (Only the database's finding: the sample's deleted-session archive is judged by its
    // file time, which is when the test copied it.)
    let idle = |r: &AuditReport| -> Vec<Finding> {
        r.findings
            .iter()
            .filter(|f| f.check == "vault.idle_unsealed" && f.path == db)
            .cloned()
            .collect()
    };
    // Three days later: nothing is idle for 7 days yet.
    assert!(idle(&audit(&gw, &at(3), &rules).unwrap()).is_empty());
    // Ten days later: the sample's main session and the scratch session, in the database.
    let r = audit(&gw, &at(10), &rules).unwrap();
    let f = idle(&r);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].path, db);
    assert_eq!(f[0].fix, None, "archiving is never an automatic fix");
    assert!(
        f[0].hint.contains("moltvault archive --idle 7d"),
        "{}",
        f[0].hint
    );
    assert!(f[0].detail.starts_with("2 session(s)"), "{}", f[0].detail);
    assert!(f[0].detail.contains("1 removable"), "{}", f[0].detail);
    // Once the main session is exported it is left out (the gateway cannot remove it); the
    // scratch one stays until the gateway removes it.
    let main_sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
    write(
        &h.path(&format!("agents/main/sessions/{main_sid}.jsonl.age")),
        "age-encryption.org/v1\n",
        0o600,
    );
    let f = idle(&audit(&gw, &at(10), &rules).unwrap());
    assert_eq!(f.len(), 1);
    assert!(f[0].detail.starts_with("1 session(s)"), "{}", f[0].detail);
    // Without a vault the check is off.
    let no_vault = AuditOptions {
        vault_dir: None,
        ..at(10)
    };
    assert!(idle(&audit(&gw, &no_vault, &rules).unwrap()).is_empty());
}

#[test]
fn the_newest_backup_is_unverified_until_a_verification_is_recorded() {
    let h = planted_home();
    let gw = Gateway::open(&h.state, &h.home).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let marker = moltvault_vault::backup::marker_path(&h.vault);
    let o = AuditOptions {
        backup_marker: Some(marker.clone()),
        content_scan: false,
        ..opts(&h)
    };
    let has = |r: &AuditReport, c: &str| r.findings.iter().any(|f| f.check == c);
    // No backup: `backup.none`, nothing to verify.
    let r = audit(&gw, &o, &rules).unwrap();
    assert!(has(&r, "backup.none") && !has(&r, "backup.unverified"));
    let name = "moltvault-host-20261126T010000Z.tar.zst.age";
    let b = h.backups.join(name);
    write(&b, "age-encryption.org/v1\nnot really\n", 0o600);
    let r = audit(&gw, &o, &rules).unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.check == "backup.unverified")
        .expect("unverified finding");
    assert_eq!(f.severity, Severity::Low);
    assert_eq!(f.path, b);
    assert!(f.hint.contains("moltvault backups verify"));
    assert!(!has(&r, "backup.none") && !has(&r, "backup.stale"));
    let size = fs::metadata(&b).unwrap().len();
    let record = |size: u64| moltvault_vault::backup::VerifiedBackup {
        name: name.into(),
        target: h.backups.display().to_string(),
        size,
        sha256: "00".repeat(32),
        files: Some(1),
        verified_at: "2026-11-26T01:05:00Z".into(),
    };
    // A record of another file with that name (another size) does not count.
    moltvault_vault::backup::record_verified(&marker, record(size + 1)).unwrap();
    assert!(has(&audit(&gw, &o, &rules).unwrap(), "backup.unverified"));
    moltvault_vault::backup::record_verified(&marker, record(size)).unwrap();
    assert!(!has(&audit(&gw, &o, &rules).unwrap(), "backup.unverified"));
    // A newer, unverified backup is reported again.
    let newer = h
        .backups
        .join("moltvault-host-20261126T020000Z.tar.zst.age");
    write(&newer, "age-encryption.org/v1\n", 0o600);
    age(&b, 1);
    let r = audit(&gw, &o, &rules).unwrap();
    let f = r.findings.iter().find(|f| f.check == "backup.unverified");
    assert_eq!(f.map(|f| f.path.clone()), Some(newer));
    // A marker that is not ours is a finding, not an error.
    fs::write(&marker, "garbage").unwrap();
    let r = audit(&gw, &o, &rules).unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.check == "backup.unverified")
        .unwrap();
    assert!(f.detail.contains("could not be looked up"), "{}", f.detail);
}

/// `--fix` with a vault seals exactly what `moltvault seal --all-idle` would: idle files, not
/// the current session (named in `sessions.json`), not a locked one, not a recent one; the
/// sealed copy opens to the exact bytes; the second audit no longer reports them. Without a
/// vault the finding stays a hint and nothing is sealed.
#[test]
fn fix_seals_idle_transcripts_with_a_vault_and_only_hints_without() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let state = home.join(".openclaw");
    write(
        &state.join("openclaw.json"),
        r#"{ meta: { lastTouchedVersion: "2026.7.35" } }"#,
        0o600,
    );
    let sessions = state.join("agents/main/sessions");
    let idle_text = transcript_line("nothing secret here");
    for name in [
        "old1.jsonl",
        "old1.trajectory.jsonl",
        "old2.jsonl",
        "cur.jsonl",
        "locked.jsonl",
        "fresh.jsonl",
    ] {
        write(&sessions.join(name), &idle_text, 0o600);
        if name != "fresh.jsonl" {
            age(&sessions.join(name), 30);
        }
    }
    write(&sessions.join("locked.jsonl.lock"), "{\"pid\":1}", 0o600);
    write(
        &sessions.join("sessions.json"),
        r#"{"agent:main:main":{"sessionId":"cur","sessionFile":"cur.jsonl"}}"#,
        0o600,
    );
    let vault_dir = home.join(".moltvault");
    let gw = Gateway::open(&state, &home).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let aopts = AuditOptions {
        vault_dir: Some(vault_dir.clone()),
        ..AuditOptions::default()
    };
    let fopts = |vault: Option<PathBuf>| FixOptions {
        rules: &rules,
        key: moltvault_redact::FingerprintKey::from_bytes([5; 32]),
        note: None,
        now: SystemTime::now(),
        vault_dir: vault,
        idle_after: aopts.idle_after,
    };
    let idle_files = |r: &AuditReport| -> Vec<String> {
        r.findings
            .iter()
            .filter(|f| f.check == "vault.idle_unsealed")
            .flat_map(|f| &f.files)
            .map(|a| a.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let report = audit(&gw, &aopts, &rules).unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.check == "vault.idle_unsealed")
        .expect("idle finding");
    assert_eq!(f.fix, Some(SafeFix::Seal));
    assert_eq!(
        idle_files(&report),
        ["cur.jsonl", "locked.jsonl", "old1.jsonl", "old2.jsonl"]
    );

    // No vault: nothing is sealed, not even attempted.
    let out = fix(&gw, &report, &fopts(None)).unwrap();
    assert!(
        out.iter().all(|o| o.check != "vault.idle_unsealed"),
        "{out:#?}"
    );
    assert!(sessions.join("old1.jsonl").is_file());

    // The selection is the seal command's: idle, not current (the lock is the seal's check).
    let plan = idle_seal_candidates(&gw, aopts.idle_after, SystemTime::now()).unwrap();
    let names: Vec<String> = plan
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "locked.jsonl",
            "old1.jsonl",
            "old1.trajectory.jsonl",
            "old2.jsonl"
        ],
        "{names:?}"
    );

    let mut iopts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(
        "correct horse battery staple",
    ));
    iopts.work_factor = 10;
    let (vault, _recovery) = moltvault_vault::Vault::init(&vault_dir, iopts).unwrap();
    let out = fix(&gw, &report, &fopts(Some(vault_dir.clone()))).unwrap();
    let sealed: Vec<String> = out
        .iter()
        .filter(|o| matches!(o.action, FixAction::Sealed { .. }))
        .map(|o| o.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        sealed,
        ["old1.jsonl", "old1.trajectory.jsonl", "old2.jsonl"],
        "{out:#?}"
    );
    assert!(out.iter().any(|o| o.path.ends_with("locked.jsonl")
        && matches!(&o.action, FixAction::Skipped { reason } if reason.contains("lock"))));
    assert!(
        out.iter().all(|o| o.check == "vault.idle_unsealed"
            || !o.path.starts_with(&sessions)
            || matches!(o.action, FixAction::Chmod { .. })),
        "{out:#?}"
    );
    for plain in ["old1.jsonl", "old1.trajectory.jsonl", "old2.jsonl"] {
        assert!(!sessions.join(plain).exists(), "{plain} plaintext left");
        let sealed = sessions.join(format!("{plain}.age"));
        assert_eq!(
            fs::symlink_metadata(&sealed).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    for plain in ["cur.jsonl", "locked.jsonl", "fresh.jsonl"] {
        assert_eq!(
            fs::read_to_string(sessions.join(plain)).unwrap(),
            idle_text,
            "{plain} must stay plain"
        );
    }
    // The second audit reports only what a human must decide (current and locked).
    let after = audit(&gw, &aopts, &rules).unwrap();
    assert_eq!(idle_files(&after), ["cur.jsonl", "locked.jsonl"]);
    // Reversible: the sealed copy opens to the exact bytes.
    let identity = vault
        .unlock(&moltvault_vault::FixedPassphrase(
            secrecy::SecretString::from("correct horse battery staple"),
        ))
        .unwrap();
    let back =
        moltvault_vault::seal::unseal_file(&sessions.join("old1.jsonl.age"), &identity).unwrap();
    assert_eq!(fs::read_to_string(&back.plain).unwrap(), idle_text);
}
