//! `moltvault archive --idle D` end to end on temporary homes of the JSONL and SQLite lines:
//! idle vs active sessions, `--dry-run`, exports re-read with `moltvault cat`, and removal
//! through the gateway CLI's `sessions delete` protocol.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use moltvault_testutils::homes::{SampleLine, TestHome, data_dir};
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

struct Home {
    t: TestHome,
    vault: PathBuf,
    bin: PathBuf,
}

impl Home {
    fn new(line: SampleLine) -> Home {
        let t = TestHome::new(line);
        let vault = t.home().join(".moltvault");
        let mut opts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(PASS));
        opts.work_factor = 10;
        moltvault_vault::Vault::init(&vault, opts).unwrap();
        fs::write(t.root().join("pass"), format!("{PASS}\n")).unwrap();
        let bin = t.root().join("bin");
        fs::create_dir_all(&bin).unwrap();
        Home { t, vault, bin }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("moltvault")
            .unwrap()
            .env_clear()
            .env("HOME", self.t.home())
            .env("MOLTVAULT_DIR", &self.vault)
            .env("MOLTVAULT_TESTONLY_WEAKEN_KDF", "1")
            // Only our bin dir and the system's: never a real `openclaw` by accident.
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .arg("--state-dir")
            .arg(self.t.state_dir())
            .args(args)
            .output()
            .unwrap()
    }

    fn cat(&self, session: &str) -> Output {
        let pass = self.t.root().join("pass");
        self.run(&["cat", session, "--passphrase-file", pass.to_str().unwrap()])
    }

    fn sessions(&self) -> PathBuf {
        self.t.path("agents/main/sessions")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> (String, String) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{o}\nstderr:\n{e}");
    (o, e)
}

fn days_ago(d: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(d * 86_400)
}

fn sealed(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.age", p.display()))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn jsonl_idle_transcripts_are_sealed_in_place_and_active_ones_left() {
    let h = Home::new(SampleLine::OpenClaw2026_7_35);
    let s = h.sessions();
    // The sample's sessions.json makes every transcript but 9ab6be67 a current session.
    let old = s.join("9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl");
    let current = s.join("2d048393-6d30-4ed3-8093-352886778a8f.jsonl");
    let traj = s.join("2d048393-6d30-4ed3-8093-352886778a8f.trajectory.jsonl");
    let locked = s.join("e2c99222-a852-41df-9afc-7a944fceddab.jsonl");
    let recent = s.join("5ae532ee-dfd0-4559-a05b-420f95c02e92.jsonl");
    for e in fs::read_dir(&s).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            h.t.set_mtime(&p, days_ago(30));
        }
    }
    h.t.set_mtime(&recent, days_ago(1));
    h.t.add_lock(&locked, std::process::id());
    let before = fs::read(&old).unwrap();

    // --dry-run lists and changes nothing.
    let (o, e) = ok(&h.run(&["archive", "--idle", "7d", "--dry-run"]));
    assert_eq!(
        o.trim(),
        "would seal    agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl"
    );
    assert!(e.contains("write lock"), "{e}");
    assert!(e.contains("current session of a session key"), "{e}");
    assert!(old.exists() && !sealed(&old).exists());

    let (o, e) = ok(&h.run(&["archive", "--idle", "7d"]));
    assert!(e.contains("sealed 1 file(s)"), "{o}\n{e}");
    assert!(!old.exists() && sealed(&old).exists());
    assert_eq!(mode(&sealed(&old)), 0o600);
    assert!(current.exists() && traj.exists(), "current session sealed");
    // The sealed transcript reads back byte for byte, without plaintext on disk.
    let out = h.cat("9ab6be67-3620-4259-9e0f-eb11b5840f8e");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, before);

    // --include-current takes idle current sessions too, never the locked or the recent one.
    let (o, _) = ok(&h.run(&["archive", "--idle", "7d", "--include-current"]));
    for p in [&current, &traj] {
        assert!(!p.exists() && sealed(p).exists(), "{}\n{o}", p.display());
    }
    assert!(
        recent.exists() && !sealed(&recent).exists(),
        "active session sealed"
    );
    assert!(
        locked.exists() && !sealed(&locked).exists(),
        "locked session sealed"
    );

    // A second run finds nothing new.
    let (o, _) = ok(&h.run(&["archive", "--idle", "7d", "--include-current"]));
    assert!(!o.contains("sealed    "), "{o}");
}

/// Adds a second session with events to the 2026.9.6 database: the current session of
/// `agent:main:plugintest` (the sample's main session is `agent:main:main`, which the gateway
/// protects from deletion).
fn add_plugintest_events(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sid = "98ab1d64-e2c2-4b96-92fd-f5436cb8eaf1";
    let lines = vec![
        format!(
            r#"{{"type":"session","version":4,"id":"{sid}","timestamp":"2026-11-25T18:20:00.000Z","cwd":"/home/user/.openclaw/workspace"}}"#
        ),
        r#"{"type":"message","id":"7b1c0e52-0000-4000-8000-000000000001","parentId":null,"timestamp":"2026-11-25T18:20:01.000Z","message":{"role":"user","content":"hello","timestamp":1795630801000}}"#.to_string(),
    ];
    for (i, l) in lines.iter().enumerate() {
        conn.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, ?2, ?3, 1795630801000)",
            rusqlite::params![sid, i as i64 + 1, l],
        )
        .unwrap();
    }
    lines
}

/// A stand-in for the gateway CLI that speaks `openclaw sessions delete … --json` the way
/// 2026.9.6 documents it: it records its arguments, leaves the `.jsonl.deleted.*.zst` archive a
/// real delete leaves, and prints the JSON envelope.
fn fake_gateway_cli(h: &Home, archive_zst: &Path) {
    let script = format!(
        r#"#!/bin/sh
echo "$OPENCLAW_STATE_DIR $*" >> "{log}"
cp "{zst}" "$OPENCLAW_STATE_DIR/agents/main/sessions/98ab1d64-e2c2-4b96-92fd-f5436cb8eaf1.jsonl.deleted.2026-11-25T23-00-00.000Z.0123456789abcdef.zst"
echo "[plugins] moltvault-redact: ready"
echo '{{"ok":true,"operation":"delete","dryRun":false,"results":[{{"key":"agent:main:plugintest","ok":true,"status":"deleted"}}]}}'
"#,
        log = h.t.root().join("cli.log").display(),
        zst = archive_zst.display(),
    );
    let p = h.bin.join("openclaw");
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn sqlite_idle_sessions_are_exported_sealed_and_removed_through_the_gateway_cli() {
    let h = Home::new(SampleLine::OpenClaw2026_9_6);
    let db = h.t.path("agents/main/agent/openclaw-agent.sqlite");
    let plugintest = add_plugintest_events(&db);
    let main_sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
    let test_sid = "98ab1d64-e2c2-4b96-92fd-f5436cb8eaf1";
    // The sample's own deleted-session archive: idle for a month.
    let deleted = fs::read_dir(h.sessions())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".zst"))
        .unwrap();
    h.t.set_mtime(&deleted, days_ago(30));
    let zst_copy = h.t.root().join("gateway-archive.zst");
    fs::copy(&deleted, &zst_copy).unwrap();

    // Events are from 18:00-18:20 UTC on 2026-11-25: not idle for a year.
    let (o, _) = ok(&h.run(&["archive", "--idle", "52w", "--dry-run"]));
    assert!(!o.contains("would export"), "{o}");

    // No gateway CLI on PATH: the dry run says what would stay.
    let (o, _) = ok(&h.run(&["archive", "--idle", "1m", "--dry-run"]));
    assert!(
        o.contains(&format!("would export {main_sid} (10 events)")),
        "{o}"
    );
    assert!(
        o.contains("agent's main session, which the gateway protects"),
        "{o}"
    );
    assert!(o.contains("no gateway CLI found"), "{o}");
    assert!(
        o.contains("would seal    agents/main/sessions/1d8ef48d"),
        "{o}"
    );
    assert!(!h.sessions().join(format!("{main_sid}.jsonl.age")).exists());

    fake_gateway_cli(&h, &zst_copy);
    let (o, e) = ok(&h.run(&["archive", "--idle", "1m"]));
    assert!(
        o.contains(&format!("exported  {main_sid} (10 events, verified)")),
        "{o}"
    );
    assert!(
        o.contains(&format!("exported  {test_sid} (2 events, verified)")),
        "{o}"
    );
    assert!(
        o.contains("removed   agent:main:plugintest through `openclaw sessions delete`"),
        "{o}"
    );
    assert!(
        o.contains(&format!(
            "kept      {main_sid} in the database: `agent:main:main`"
        )),
        "{o}"
    );
    assert!(e.contains("2 SQLite session(s), 1 removed"), "{e}");
    // The gateway CLI ran once, on this state dir, with the documented arguments.
    let log = fs::read_to_string(h.t.root().join("cli.log")).unwrap();
    assert_eq!(
        log.trim(),
        format!(
            "{} sessions delete agent:main:plugintest --agent main --yes --json",
            h.t.state_dir().display()
        )
    );
    // Exports are sealed (0600, nothing plaintext) and read back as the events stored.
    let export = h.sessions().join(format!("{main_sid}.jsonl.age"));
    assert_eq!(mode(&export), 0o600);
    assert!(!h.sessions().join(format!("{main_sid}.jsonl")).exists());
    let out = h.cat(main_sid);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sample = fs::read_to_string(data_dir().join(format!(
        "openclaw-2026.9.6/transcript_events.{main_sid}.jsonl"
    )))
    .unwrap();
    let parse = |t: &str| -> Vec<Value> {
        t.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(parse(&text(&out.stdout)), parse(&sample));
    let out = h.run(&[
        "cat",
        &h.sessions()
            .join(format!("{test_sid}.jsonl.age"))
            .display()
            .to_string(),
        "--passphrase-file",
        h.t.root().join("pass").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(parse(&text(&out.stdout)), parse(&plugintest.join("\n")));
    // Both deleted-session archives (the old one, and the one the delete left) are sealed.
    let names: Vec<String> = fs::read_dir(h.sessions())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".zst")), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".zst.age")).count(),
        2,
        "{names:?}"
    );
    // Sessions stay in the database (the real gateway removes the deleted one itself).
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM transcript_events WHERE session_id = ?1",
            [main_sid],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 10);

    // Run again: the exports exist, nothing is written twice.
    let (o, _) = ok(&h.run(&["archive", "--idle", "1m", "--keep-in-db"]));
    assert!(o.contains(&format!("exported  {main_sid} already")), "{o}");
}

#[test]
fn a_failing_gateway_cli_keeps_the_session_and_the_export() {
    let h = Home::new(SampleLine::OpenClaw2026_9_6);
    let db = h.t.path("agents/main/agent/openclaw-agent.sqlite");
    add_plugintest_events(&db);
    let p = h.bin.join("openclaw");
    fs::write(
        &p,
        "#!/bin/sh\necho 'gateway closed (1006): connect ECONNREFUSED 127.0.0.1:18789' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    let (o, _) = ok(&h.run(&["archive", "--idle", "1m"]));
    assert!(o.contains("kept      98ab1d64-e2c2-4b96-92fd-f5436cb8eaf1 in the database: `openclaw sessions delete agent:main:plugintest` failed (it needs the running gateway): gateway closed (1006)"), "{o}");
    assert!(
        h.sessions()
            .join("98ab1d64-e2c2-4b96-92fd-f5436cb8eaf1.jsonl.age")
            .exists()
    );
}

#[test]
fn archive_needs_a_vault_and_a_valid_duration() {
    let h = Home::new(SampleLine::Clawdbot2026_1_24);
    let out = h.run(&["archive", "--idle", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a duration"));
    fs::remove_dir_all(&h.vault).unwrap();
    let out = h.run(&["archive", "--idle", "7d"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // --dry-run needs no vault.
    ok(&h.run(&["archive", "--idle", "7d", "--dry-run"]));
}
