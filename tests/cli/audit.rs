//! `moltvault audit [--fix]` end to end, on temporary gateway homes of the three lines (the
//! real files each gateway wrote, from `moltvault-testutils`) with every finding planted.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use moltvault_testutils::homes::{SampleLine, TestHome};
use serde_json::{Value, json};

/// A fake OpenAI-style key, assembled so the repository does not trip secret scanners.
fn fake_openai_key() -> String {
    format!(
        "sk-{}-{}",
        "proj", "T3stK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd"
    )
}

/// The gateway token of the sample configs (replaced by the sample's author).
const SAMPLE_TOKEN: &str = "FAKE-gateway-token-replaced-in-sample-0000000000";
/// The raw secret the real gateways wrote into the sample transcripts.
fn sample_raw_secret() -> String {
    format!("sk-test-{}", "1234567890abcdef")
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * 86_400)
}

/// Compresses with the real `zstd` CLI (installed by .ci/install-deps), as the gateway's archives are.
fn zstd_compress(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("zstd")
        .args(["-q", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("zstd is installed by .ci/install-deps");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

struct Home {
    t: TestHome,
    vault: PathBuf,
    logs: PathBuf,
}

impl Home {
    /// A copy of a real sample home (with the gateway's modes), a real vault (a fast scrypt
    /// work factor: tests only) and an empty log dir.
    fn new(line: SampleLine) -> Home {
        let t = TestHome::new(line);
        let vault = t.home().join(".moltvault");
        let logs = t.root().join("tmp-logs");
        fs::create_dir_all(&logs).unwrap();
        let mut opts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(
            "correct horse battery staple",
        ));
        opts.work_factor = 10;
        moltvault_vault::Vault::init(&vault, opts).unwrap();
        Home { t, vault, logs }
    }

    fn state(&self) -> &Path {
        self.t.state_dir()
    }

    /// Ages every transcript (and sidecar) of the main agent.
    fn age_sessions(&self, days: u64) {
        for e in fs::read_dir(self.t.path("agents/main/sessions")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                self.t.set_mtime(&p, days_ago(days));
            }
        }
    }

    /// Runs another moltvault verb on this home (`cat`, `unseal`…).
    fn mv(&self, args: &[&str]) -> Output {
        Command::cargo_bin("moltvault")
            .unwrap()
            .env_clear()
            .env("HOME", self.t.home())
            .env("MOLTVAULT_DIR", &self.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .output()
            .unwrap()
    }

    /// A file holding the vault's passphrase, for `cat` / `unseal`.
    fn pass_file(&self) -> PathBuf {
        let p = self.t.root().join("pass.txt");
        fs::write(&p, "correct horse battery staple\n").unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("moltvault")
            .unwrap()
            .env_clear()
            .env("HOME", self.t.home())
            .env("MOLTVAULT_DIR", &self.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--state-dir")
            .arg(self.state())
            .arg("audit")
            .arg("--log-dir")
            .arg(&self.logs)
            .args(args)
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), v)
    }
}

/// What `--fix` cannot fix on each home: the findings that need a human.
const CLAWDBOT_AFTER_FIX: [&str; 7] = [
    "backup.none",
    "config.inline_secret",
    "fs.symlink.outside",
    "plugin.not_installed",
    "secrets.config_backup",
    "secrets.log",
    "secrets.models_json",
];
const OPENCLAW_JSONL_AFTER_FIX: [&str; 12] = [
    "backup.stale",
    // A fake backup file: never verified (`moltvault backups verify` would record it).
    "backup.unverified",
    "config.inline_secret",
    "config.redact_off",
    "fs.symlink.plugin_skills",
    "gateway.bind_no_auth",
    "rotation.unfinished",
    "secrets.config_backup",
    "secrets.log",
    "secrets.models_json",
    // The raw-secret session is locked by a live writer: left alone.
    "secrets.transcript",
    // Sessions without secrets were not rewritten, so they are still idle.
    "vault.idle_unsealed",
];
const OPENCLAW_SQLITE_AFTER_FIX: [&str; 3] = [
    "backup.unverified",
    "config.inline_secret",
    "secrets.archive",
];

fn check_ids(v: &Value) -> BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Clawdbot 2026.1.24 (its raw-secret transcripts as written): everything opened up, no
/// plugin, a readable config backup, a log holding the gateway token, a symlink out.
fn clawdbot_home() -> Home {
    let h = Home::new(SampleLine::Clawdbot2026_1_24);
    let t = &h.t;
    t.set_config("/plugins", json!({}));
    chmod(&t.config_path(), 0o644);
    chmod(&t.add_config_backup(".bak"), 0o644);
    t.add_env("OPENAI_API_KEY", &fake_openai_key());
    h.age_sessions(30);
    fs::create_dir_all(t.path("credentials")).unwrap();
    symlink("/etc", t.path("credentials/shared")).unwrap();
    chmod(&t.path("credentials"), 0o755);
    fs::write(
        h.logs.join("clawdbot-2026-11-25.log"),
        format!("{{\"msg\":\"gateway token {SAMPLE_TOKEN}\"}}\n"),
    )
    .unwrap();
    chmod(h.state(), 0o755);
    h
}

/// OpenClaw 2026.7.35 (JSONL, trajectory sidecars): bound to the LAN without auth, masking
/// off, the raw-secret session locked by a live writer, an unfinished rotation, a stale backup.
fn openclaw_jsonl_home() -> Home {
    let h = Home::new(SampleLine::OpenClaw2026_7_35);
    let t = &h.t;
    t.set_config("/gateway/bind", json!("lan"));
    t.set_config("/gateway/auth", json!({"mode": "none"}));
    t.set_config("/logging/redactSensitive", json!("off"));
    chmod(&t.add_config_backup(".bak"), 0o644);
    t.add_lock(
        &t.path("agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl"),
        1,
    );
    let sidecar = format!(
        r#"{{"type":"prompt","text":"OPENAI_API_KEY={}"}}"#,
        fake_openai_key()
    );
    t.write(
        "agents/main/sessions/e52e27a7-c658-471f-90a8-811dd2effa5a.trajectory.jsonl",
        format!("{sidecar}\n"),
        0o600,
    );
    h.age_sessions(30);
    t.write(
        "logs/gateway.log",
        format!("{{\"msg\":\"apiKey {}\"}}\n", fake_openai_key()),
        0o600,
    );
    fs::create_dir_all(t.path("plugin-skills")).unwrap();
    symlink("/usr/share/doc", t.path("plugin-skills/canvas")).unwrap();
    let v = &h.vault;
    fs::create_dir_all(v.join("rotation/runs/20261125T180000Z")).unwrap();
    fs::write(v.join("rotation/active"), "20261125T180000Z\n").unwrap();
    fs::write(
        v.join("rotation/runs/20261125T180000Z/journal.jsonl"),
        "{}\n",
    )
    .unwrap();
    let old = v.join("backups/moltvault-host-20261001T000000Z.tar.zst.age");
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    fs::write(&old, "age-encryption.org/v1\n").unwrap();
    t.set_mtime(&old, days_ago(30));
    h
}

/// OpenClaw 2026.9.6 (SQLite): the plugin and masking did their job, but the agent database is
/// world-readable and a deleted-session archive holds a secret.
fn openclaw_sqlite_home() -> Home {
    let h = Home::new(SampleLine::OpenClaw2026_9_6);
    let t = &h.t;
    chmod(&t.path("agents/main/agent/openclaw-agent.sqlite"), 0o644);
    t.write(
        "agents/main/agent/openclaw-agent.generation-lock.sqlite",
        b"",
        0o644,
    );
    let line = format!(
        r#"{{"type":"message","id":"a1","parentId":null,"timestamp":"2026-11-25T18:00:01.000Z","message":{{"role":"toolResult","toolCallId":"c1","toolName":"exec","content":[{{"type":"text","text":"export OPENAI_API_KEY={}"}}]}}}}"#,
        fake_openai_key()
    );
    t.write(
        "agents/main/sessions/5f0c1e2d.jsonl.deleted.2026-11-25T18-30-00.000Z.ab12cd34.zst",
        zstd_compress(format!("{line}\n").as_bytes()),
        0o600,
    );
    plant_in_agent_db(&t.path("agents/main/agent/openclaw-agent.sqlite"));
    touch_agent_db(&t.path("agents/main/agent/openclaw-agent.sqlite"));
    let recent = h
        .vault
        .join("backups/moltvault-host-20261125T000000Z.tar.zst.age");
    fs::create_dir_all(recent.parent().unwrap()).unwrap();
    fs::write(&recent, "age-encryption.org/v1\n").unwrap();
    h
}

/// Moves every session's activity in the sample database to now, so the idle-session check
/// does not depend on the day the tests run (the sample was recorded on 2026-11-25).
pub fn touch_agent_db(db: &Path) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "UPDATE session_windows SET updated_at = {now}, transcript_updated_at = {now}; \
         UPDATE transcript_events SET created_at = {now};"
    ))
    .unwrap();
}

/// Plants the fake key where a 2026.9.6 gateway keeps transcript text: a plain event, a zstd
/// event (how the gateway stores large ones), a trajectory event and the FTS copy.
pub fn plant_in_agent_db(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sid = "0800f919-15e3-4b0e-a722-ad7259e4e455";
    let key = fake_openai_key();
    let event = |id: &str| {
        format!(
            r#"{{"type":"message","id":"{id}","parentId":null,"timestamp":"2026-11-25T18:00:00.000Z","message":{{"role":"toolResult","toolCallId":"call_x","toolName":"exec","content":[{{"type":"text","text":"OPENAI_API_KEY={key}"}}],"isError":false}}}}"#
        )
    };
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?1, 100, ?2, 1795629600000)",
        rusqlite::params![sid, event("e0000001-0000-4000-8000-000000000001")],
    )
    .unwrap();
    let big = event("e0000002-0000-4000-8000-000000000002");
    let nav = r#"{"version":1,"report":{"kind":"canonical"},"navigation":{},"reset":{},"model":{},"modelBytes":1,"modelWithoutCheckpointBytes":1,"withoutCustomDataBytes":1}"#;
    conn.execute(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) VALUES (?1, 101, NULL, 1795629600000, ?2, ?3, ?4)",
        rusqlite::params![sid, zstd_compress(big.as_bytes()), big.len() as i64, nav],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?1, 100, 'r', ?2, 1795629600000)",
        rusqlite::params![sid, format!(r#"{{"type":"tool.result","data":{{"content":"key {key}"}}}}"#)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO session_transcript_fts (rowid, text, session_id, message_id, role, timestamp) VALUES (9000, ?1, ?2, 'm', 'assistant', 't')",
        rusqlite::params![format!("your key is\n{key}"), sid],
    )
    .unwrap();
}

#[test]
fn audit_reports_every_planted_finding_on_each_line() {
    let h = clawdbot_home();
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1, "high findings → exit 1");
    let mut want = ids(&CLAWDBOT_AFTER_FIX);
    want.extend(ids(&[
        "fs.config_backup.perms",
        "fs.dir.perms",
        "fs.secret_file.perms",
        "fs.state_dir.perms",
        "fs.transcript.perms",
        "secrets.transcript",
        "vault.idle_unsealed",
    ]));
    assert_eq!(check_ids(&v), want);
    // Before SecretRefs, the hint points at `${VAR}`.
    let inline = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "config.inline_secret")
        .unwrap();
    assert!(inline["hint"].as_str().unwrap().contains("${VAR}"));

    let h = openclaw_jsonl_home();
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    let mut want = ids(&OPENCLAW_JSONL_AFTER_FIX);
    want.extend(ids(&[
        "fs.config_backup.perms",
        "fs.dir.perms",
        "fs.secret_file.perms",
        "fs.transcript.perms",
        "secrets.trajectory",
    ]));
    assert_eq!(check_ids(&v), want);
    assert_eq!(v["findings"][0]["check"], "gateway.bind_no_auth");
    assert_eq!(v["findings"][0]["severity"], "critical");
    // The raw token the gateway wrote with masking off is counted by rule, in the right file.
    let t = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "secrets.transcript")
        .unwrap();
    assert!(
        t["path"]
            .as_str()
            .unwrap()
            .ends_with("9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl"),
        "{t}"
    );

    let h = openclaw_sqlite_home();
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    let mut want = ids(&OPENCLAW_SQLITE_AFTER_FIX);
    want.extend(ids(&[
        "fs.dir.perms",
        "fs.secret_file.perms",
        "secrets.transcript",
        "secrets.trajectory",
        "secrets.db_copy",
    ]));
    assert_eq!(check_ids(&v), want);
    // The database's plaintext copies are counted by rule, per surface.
    let of = |check: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .unwrap()
            .clone()
    };
    let t = of("secrets.transcript");
    assert!(
        t["path"]
            .as_str()
            .unwrap()
            .ends_with("openclaw-agent.sqlite"),
        "{t}"
    );
    assert_eq!(t["secrets"]["openai-project-key"], 2, "{t}");
    assert_eq!(of("secrets.trajectory")["secrets"]["openai-project-key"], 1);
    assert_eq!(of("secrets.db_copy")["secrets"]["openai-project-key"], 1);
    // The database (and its WAL files) are; the lock sidecar the gateway creates 0644 is not.
    let perms = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "fs.secret_file.perms")
        .unwrap()
        .to_string();
    assert!(perms.contains("openclaw-agent.sqlite\""), "{perms}");
    assert!(!perms.contains("generation-lock"), "{perms}");
}

#[test]
fn no_output_carries_a_secret_value() {
    for h in [
        clawdbot_home(),
        openclaw_jsonl_home(),
        openclaw_sqlite_home(),
    ] {
        for args in [&["--json"][..], &[], &["--fix"], &["--fix", "--json"]] {
            let out = h.run(args);
            for stream in [&out.stdout, &out.stderr] {
                let text = String::from_utf8_lossy(stream);
                assert!(!text.contains(&fake_openai_key()), "{text}");
                assert!(!text.contains(SAMPLE_TOKEN), "{text}");
                assert!(!text.contains(&sample_raw_secret()), "{text}");
            }
        }
    }
}

#[test]
fn fix_then_audit_leaves_only_what_needs_a_human() {
    let h = clawdbot_home();
    let out = h.run(&["--fix"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = h.json(&[]);
    assert_eq!(check_ids(&v), ids(&CLAWDBOT_AFTER_FIX));
    assert_eq!(mode(h.state()), 0o700);
    assert_eq!(mode(&h.t.config_path()), 0o600);
    assert_eq!(mode(&h.t.path("agents/main/sessions")), 0o700);
    // The symlink's target was never touched.
    assert_ne!(mode(Path::new("/etc")), 0o700);
    // Redacted, then sealed (idle, not current): the plaintext is gone, and the sealed copy
    // holds the redacted text.
    let sessions = h.t.path("agents/main/sessions");
    assert!(
        !sessions
            .join("0411108d-0e9f-44e4-af76-64d56e3df898.jsonl")
            .exists()
    );
    assert_eq!(
        mode(&sessions.join("0411108d-0e9f-44e4-af76-64d56e3df898.jsonl.age")),
        0o600
    );
    let pass = h.pass_file();
    let out = h.mv(&[
        "cat",
        "0411108d-0e9f-44e4-af76-64d56e3df898",
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(!t.contains(&sample_raw_secret()));
    assert!(t.contains("[REDACTED:"), "{t}");
    let note = fs::read_to_string(h.vault.join("audit-fixes.jsonl")).unwrap();
    assert!(note.contains("0411108d"), "{note}");

    let h = openclaw_jsonl_home();
    h.run(&["--fix"]);
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(check_ids(&v), ids(&OPENCLAW_JSONL_AFTER_FIX));
    let t = fs::read_to_string(
        h.t.path("agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl"),
    )
    .unwrap();
    assert!(
        t.contains(&sample_raw_secret()),
        "a transcript locked by a live writer is not rewritten"
    );

    let h = openclaw_sqlite_home();
    let out = h.run(&["--fix"]);
    let fixed = String::from_utf8_lossy(&out.stdout);
    assert!(
        fixed.contains("redacted  agents/main/agent/openclaw-agent.sqlite: 4 secret(s) in 4 row(s), one transaction"),
        "{fixed}"
    );
    // No gateway runs: the database was rebuilt (unless a gateway process that cannot be told
    // apart from this home's runs on the machine), and no byte of the key is left in its files.
    let running = moltvault_gateway::Gateway::open(h.state(), h.t.home())
        .unwrap()
        .is_running();
    let want = if running {
        "; old bytes zeroed, WAL truncated"
    } else {
        "; old bytes vacuumed"
    };
    assert!(fixed.contains(want), "{fixed}");
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(raw) =
            fs::read(h.t.path(&format!("agents/main/agent/openclaw-agent.sqlite{suffix}")))
        {
            let key = fake_openai_key();
            assert!(
                !raw.windows(key.len()).any(|w| w == key.as_bytes()),
                "key bytes left in openclaw-agent.sqlite{suffix}"
            );
        }
    }
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(check_ids(&v), ids(&OPENCLAW_SQLITE_AFTER_FIX));
    assert_eq!(
        mode(&h.t.path("agents/main/agent/openclaw-agent.sqlite")),
        0o600
    );
    assert_eq!(
        mode(&h.t.path("agents/main/agent/openclaw-agent.generation-lock.sqlite")),
        0o644
    );
}

#[test]
fn fail_on_sets_the_exit_threshold() {
    let h = openclaw_sqlite_home();
    assert_eq!(h.run(&["--fail-on", "critical"]).status.code(), Some(0));
    assert_eq!(h.run(&["--fail-on", "high"]).status.code(), Some(1));
    let out = h.run(&["--fail-on", "severe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown severity"));
}

fn settings(h: &Home) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&h.t.root().display().to_string()), "[TMP]");
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[test]
fn human_report_and_fix_output() {
    let h = clawdbot_home();
    let out = h.run(&[]);
    settings(&h).bind(|| {
        insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout), @r#"
        audit of [TMP]/home/.clawdbot, gateway 2026.1.24-3 (5 files, 7.2 KiB scanned for secrets)

        high     fs.config_backup.perms     clawdbot.json.bak
                 a config backup is open to group/others (mode 0644)
                 fix: --fix tightens the permissions
                 hint: Config backups hold the same secrets as the config: `moltvault audit --fix` sets them to 0600.

        high     fs.secret_file.perms       clawdbot.json
                 a file holding secrets is open to group/others (mode 0644)
                 fix: --fix tightens the permissions
                 hint: `moltvault audit --fix` sets them to 0600.

        high     fs.state_dir.perms         .
                 the state directory is open to group/others (mode 0755)
                 fix: --fix tightens the permissions
                 hint: `moltvault audit --fix` sets it to 0700 (or run `chmod 700` on it).

        high     fs.transcript.perms        agents/main/sessions (2 paths)
                 2 transcripts are open to group/others (modes 0644)
                   - agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl (0644)
                   - agents/main/sessions/cb-plugin-1.jsonl (0644)
                 fix: --fix tightens the permissions
                 hint: `moltvault audit --fix` sets them to 0600 (the gateway creates transcripts with the default umask).

        high     secrets.config_backup      clawdbot.json.bak
                 2 plaintext secret(s) in a config backup (config-gateway-auth-token 1, config-models-providers-fake-apikey 1)
                 hint: `moltvault secrets import` scrubs config backups; otherwise delete backups you do not need.

        high     secrets.log                [TMP]/tmp-logs/clawdbot-2026-11-25.log
                 1 plaintext secret(s) in a log file (config-gateway-auth-token 1)
                 hint: Delete or redact old logs (`moltvault redact --in-place <file>`), and set `logging.file` to a private directory.

        high     secrets.transcript         agents/main/sessions (2 paths)
                 8 plaintext secret(s) in 2 transcripts (generic-sk-key 8)
                   - agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl (4)
                   - agents/main/sessions/cb-plugin-1.jsonl (4)
                 fix: --fix redacts inactive files
                 hint: `moltvault audit --fix` redacts inactive ones (or run `moltvault redact --in-place`); install the plugin so new ones stay clean.

        medium   backup.none                [TMP]/home/.moltvault/backups
                 no moltvault backup found (moltvault-*.tar.zst.age)
                 hint: Run `moltvault backup` (and schedule it: it needs no secret, so cron is fine).

        medium   config.inline_secret       clawdbot.json
                 `models.providers.fake.apiKey` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   config.inline_secret       clawdbot.json
                 `gateway.auth.token` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   fs.dir.perms               . (4 paths)
                 4 directories holding secrets are open to group/others (modes 0755)
                   - agents (0755)
                   - credentials (0755)
                   - agents/main (0755)
                   - agents/main/sessions (0755)
                 fix: --fix tightens the permissions
                 hint: `moltvault audit --fix` sets them to 0700.

        medium   fs.symlink.outside         credentials/shared
                 symlink points outside the state directory, to /etc
                 hint: Check that the target is meant to be shared; moltvault never follows it (back up, redact and seal skip it). Replace it with the real file if it belongs to the gateway.

        medium   plugin.not_installed       clawdbot.json
                 the moltvault-redact plugin is not installed (plugins.entries.moltvault-redact)
                 hint: Run `moltvault plugin install` so secrets are redacted before transcripts reach disk.

        medium   secrets.models_json        agents/main/agent/models.json
                 1 plaintext secret(s) in a models.json catalogue (config-models-providers-fake-apikey 1)
                 hint: The gateway copies configured keys here: move them to SecretRefs (`moltvault secrets import`) and it stops writing them.

        low      vault.idle_unsealed        agents/main/sessions (2 paths)
                 2 session(s) untouched for more than 7 days are not sealed
                   - agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl
                   - agents/main/sessions/cb-plugin-1.jsonl
                 fix: --fix seals the idle files of sessions not current or locked
                 hint: `moltvault audit --fix` seals the ones not current (`moltvault unseal` restores them); `moltvault seal --all-idle --idle 7d --include-current` also takes current ones.

        15 finding(s): 7 high, 7 medium, 1 low; 7 fixable with `moltvault audit --fix`
        7 at or above high (--fail-on)
        "#);
    });
    let out = h.run(&["--fix"]);
    settings(&h).bind(|| {
        insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout), @r#"
        applied fixes:
          chmod     clawdbot.json.bak: 0644 -> 0600
          chmod     clawdbot.json: 0644 -> 0600
          chmod     .: 0755 -> 0700
          chmod     agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl: 0644 -> 0600
          chmod     agents/main/sessions/cb-plugin-1.jsonl: 0644 -> 0600
          chmod     agents: 0755 -> 0700
          chmod     credentials: 0755 -> 0700
          chmod     agents/main: 0755 -> 0700
          chmod     agents/main/sessions: 0755 -> 0700
          redacted  agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl: 4 secret(s)
          redacted  agents/main/sessions/cb-plugin-1.jsonl: 4 secret(s)
          sealed    agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl: 2.4 KiB -> 0411108d-0e9f-44e4-af76-64d56e3df898.jsonl.age (`moltvault unseal` restores it)

        audit of [TMP]/home/.clawdbot, gateway 2026.1.24-3 (4 files, 4.9 KiB scanned for secrets)

        high     secrets.config_backup      clawdbot.json.bak
                 2 plaintext secret(s) in a config backup (config-gateway-auth-token 1, config-models-providers-fake-apikey 1)
                 hint: `moltvault secrets import` scrubs config backups; otherwise delete backups you do not need.

        high     secrets.log                [TMP]/tmp-logs/clawdbot-2026-11-25.log
                 1 plaintext secret(s) in a log file (config-gateway-auth-token 1)
                 hint: Delete or redact old logs (`moltvault redact --in-place <file>`), and set `logging.file` to a private directory.

        medium   backup.none                [TMP]/home/.moltvault/backups
                 no moltvault backup found (moltvault-*.tar.zst.age)
                 hint: Run `moltvault backup` (and schedule it: it needs no secret, so cron is fine).

        medium   config.inline_secret       clawdbot.json
                 `models.providers.fake.apiKey` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   config.inline_secret       clawdbot.json
                 `gateway.auth.token` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   fs.symlink.outside         credentials/shared
                 symlink points outside the state directory, to /etc
                 hint: Check that the target is meant to be shared; moltvault never follows it (back up, redact and seal skip it). Replace it with the real file if it belongs to the gateway.

        medium   plugin.not_installed       clawdbot.json
                 the moltvault-redact plugin is not installed (plugins.entries.moltvault-redact)
                 hint: Run `moltvault plugin install` so secrets are redacted before transcripts reach disk.

        medium   secrets.models_json        agents/main/agent/models.json
                 1 plaintext secret(s) in a models.json catalogue (config-models-providers-fake-apikey 1)
                 hint: The gateway copies configured keys here: move them to SecretRefs (`moltvault secrets import`) and it stops writing them.

        8 finding(s): 2 high, 6 medium
        2 at or above high (--fail-on)
        "#);
    });
}

#[test]
fn json_report() {
    let h = openclaw_sqlite_home();
    let out = h.run(&["--json"]);
    settings(&h).bind(|| {
        insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout), @r#"
        {
          "state_dir": "[TMP]/home/.openclaw",
          "config": "[TMP]/home/.openclaw/openclaw.json",
          "version": "2026.9.6",
          "scanned_files": 3,
          "scanned_bytes": 43131,
          "findings": [
            {
              "check": "secrets.archive",
              "severity": "high",
              "path": "[TMP]/home/.openclaw/agents/main/sessions/5f0c1e2d.jsonl.deleted.2026-11-25T18-30-00.000Z.ab12cd34.zst",
              "detail": "1 plaintext secret(s) in a compressed transcript archive",
              "hint": "Run `moltvault redact --in-place` (it re-compresses archives), or seal them with `moltvault seal`.",
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/sessions/5f0c1e2d.jsonl.deleted.2026-11-25T18-30-00.000Z.ab12cd34.zst",
                  "secrets": {
                    "openai-project-key": 1
                  }
                }
              ],
              "secrets": {
                "openai-project-key": 1
              }
            },
            {
              "check": "secrets.db_copy",
              "severity": "high",
              "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
              "detail": "1 plaintext secret(s) in the derived copies (search index, memory, archives) of an agent database",
              "hint": "`moltvault audit --fix` redacts the database in one SQLite transaction (derived copies included, safe while the gateway runs); install the plugin so new events stay clean.",
              "fix": {
                "kind": "redact"
              },
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
                  "secrets": {
                    "openai-project-key": 1
                  }
                }
              ],
              "secrets": {
                "openai-project-key": 1
              }
            },
            {
              "check": "secrets.trajectory",
              "severity": "high",
              "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
              "detail": "1 plaintext secret(s) in the trajectory events of an agent database",
              "hint": "`moltvault audit --fix` redacts the database in one SQLite transaction (derived copies included, safe while the gateway runs); install the plugin so new events stay clean.",
              "fix": {
                "kind": "redact"
              },
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
                  "secrets": {
                    "openai-project-key": 1
                  }
                }
              ],
              "secrets": {
                "openai-project-key": 1
              }
            },
            {
              "check": "secrets.transcript",
              "severity": "high",
              "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
              "detail": "2 plaintext secret(s) in the transcript events of an agent database",
              "hint": "`moltvault audit --fix` redacts the database in one SQLite transaction (derived copies included, safe while the gateway runs); install the plugin so new events stay clean.",
              "fix": {
                "kind": "redact"
              },
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
                  "secrets": {
                    "openai-project-key": 2
                  }
                }
              ],
              "secrets": {
                "openai-project-key": 2
              }
            },
            {
              "check": "config.inline_secret",
              "severity": "medium",
              "path": "[TMP]/home/.openclaw/openclaw.json",
              "detail": "`gateway.auth.token` holds a plaintext secret in the config",
              "hint": "Move it into the vault with `moltvault secrets import` (the config gets a SecretRef to moltvault's exec provider)."
            },
            {
              "check": "config.inline_secret",
              "severity": "medium",
              "path": "[TMP]/home/.openclaw/openclaw.json",
              "detail": "`models.providers.custom-127-0-0-1-18555.apiKey` holds a plaintext secret in the config",
              "hint": "Move it into the vault with `moltvault secrets import` (the config gets a SecretRef to moltvault's exec provider)."
            },
            {
              "check": "fs.secret_file.perms",
              "severity": "medium",
              "path": "[TMP]/home/.openclaw",
              "detail": "3 files holding secrets are open to group/others (modes 0644)",
              "hint": "`moltvault audit --fix` sets them to 0600.",
              "fix": {
                "kind": "chmod"
              },
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
                  "mode": "0644"
                },
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite-shm",
                  "mode": "0644"
                },
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite-wal",
                  "mode": "0644"
                }
              ]
            },
            {
              "check": "backup.unverified",
              "severity": "low",
              "path": "[TMP]/home/.moltvault/backups/moltvault-host-20261125T000000Z.tar.zst.age",
              "detail": "the newest backup `moltvault-host-20261125T000000Z.tar.zst.age` is not known to restore: it has never been verified end to end (decrypted, decompressed, every hash checked)",
              "hint": "Run `moltvault backups verify` (it writes no plaintext and records the result); `moltvault backups prune` also verifies before deleting."
            },
            {
              "check": "fs.dir.perms",
              "severity": "low",
              "path": "[TMP]/home/.openclaw",
              "detail": "3 directories holding secrets are open to group/others (modes 0755)",
              "hint": "`moltvault audit --fix` sets them to 0700.",
              "fix": {
                "kind": "chmod"
              },
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents",
                  "mode": "0755"
                },
                {
                  "path": "[TMP]/home/.openclaw/agents/main",
                  "mode": "0755"
                },
                {
                  "path": "[TMP]/home/.openclaw/agents/main/sessions",
                  "mode": "0755"
                }
              ]
            }
          ],
          "summary": {
            "low": 2,
            "medium": 3,
            "high": 4
          },
          "fail_on": "high",
          "failed": true
        }
        "#);
    });
}

/// `moltvault redact --in-place` with no PATH (on a terminal: `script` gives it one) redacts
/// the agent database too, in one transaction, leaving it sound.
#[test]
fn redact_in_place_rewrites_the_agent_database() {
    let h = openclaw_sqlite_home();
    let bin = assert_cmd::cargo::cargo_bin("moltvault");
    let cmd = format!(
        "{} --state-dir {} redact --in-place --mode all",
        bin.display(),
        h.state().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_clear()
        .env("HOME", h.t.home())
        .env("MOLTVAULT_DIR", &h.vault)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) gives the command a terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("openclaw-agent.sqlite: 4 secrets redacted in 4 rows (one transaction)"),
        "{text}"
    );
    assert!(!text.contains(&fake_openai_key()));
    let (_, v) = h.json(&[]);
    let ids = check_ids(&v);
    for c in [
        "secrets.transcript",
        "secrets.trajectory",
        "secrets.db_copy",
    ] {
        assert!(!ids.contains(c), "{c} left: {ids:?}");
    }
    let conn =
        rusqlite::Connection::open(h.t.path("agents/main/agent/openclaw-agent.sqlite")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn idle_sqlite_sessions_are_reported_with_the_archive_hint() {
    let h = openclaw_sqlite_home();
    // Every session is idle for 0 days; none has been exported yet.
    let (_, v) = h.json(&["--idle-days", "0"]);
    let idle: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "vault.idle_unsealed")
        .collect();
    // The database's sessions, and the deleted-session archive in `sessions/`.
    assert_eq!(idle.len(), 2, "{idle:#?}");
    let zst = idle
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("agents/main/sessions")
        })
        .expect("the deleted-session archive");
    assert!(
        zst["files"][0]["path"].as_str().unwrap().ends_with(".zst"),
        "{zst}"
    );
    let f = idle
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("openclaw-agent.sqlite")
        })
        .expect("the database's sessions");
    assert!(
        f["path"]
            .as_str()
            .unwrap()
            .ends_with("agents/main/agent/openclaw-agent.sqlite"),
        "{f}"
    );
    assert_eq!(f["severity"], "low");
    assert!(
        f.get("fix").is_none(),
        "archiving is never an automatic fix: {f}"
    );
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("moltvault archive --idle 0d"),
        "{f}"
    );
    // The default (7 days): the sessions were just touched, nothing is idle.
    let (_, v) = h.json(&[]);
    assert!(!check_ids(&v).contains("vault.idle_unsealed"));
    // `--fix` does not archive: the sessions are still in the database afterwards.
    h.run(&["--fix", "--idle-days", "0"]);
    let (_, v) = h.json(&["--idle-days", "0"]);
    assert!(check_ids(&v).contains("vault.idle_unsealed"));
}

#[test]
fn backups_verify_records_the_backup_and_the_audit_stops_reporting_it() {
    let h = clawdbot_home();
    let pass = h.t.root().join("pass.txt");
    fs::write(&pass, "correct horse battery staple\n").unwrap();
    let mv = |args: &[&str]| {
        Command::cargo_bin("moltvault")
            .unwrap()
            .env_clear()
            .env("HOME", h.t.home())
            .env("MOLTVAULT_DIR", &h.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--state-dir")
            .arg(h.state())
            .args(args)
            .output()
            .unwrap()
    };
    let out = mv(&["backup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = h.json(&[]);
    let ids = check_ids(&v);
    assert!(
        ids.contains("backup.unverified") && !ids.contains("backup.none"),
        "{ids:?}"
    );

    let out = mv(&[
        "backups",
        "verify",
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = h.vault.join("verified-backups.json");
    assert_eq!(mode(&marker), 0o600);
    let m: Value = serde_json::from_str(&fs::read_to_string(&marker).unwrap()).unwrap();
    let rec = &m["verified"][0];
    let name = rec["name"].as_str().unwrap();
    let file = h.vault.join("backups").join(name);
    let bytes = fs::read(&file).unwrap();
    assert_eq!(rec["size"], bytes.len() as u64);
    use sha2::Digest as _;
    assert_eq!(rec["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    assert!(rec["verified_at"].as_str().unwrap().ends_with('Z'), "{rec}");
    let (_, v) = h.json(&[]);
    assert!(!check_ids(&v).contains("backup.unverified"));
    let status = String::from_utf8_lossy(&mv(&["status"]).stdout).into_owned();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("backup      last ") && l.contains(", verified 20")),
        "{status}"
    );
}

/// With a vault, `--fix` seals what `moltvault seal --all-idle` would: every idle file of the
/// sessions that are no longer current; the live session stays plain, the second audit stops
/// reporting the sealed ones, and `cat` / `unseal` give the exact bytes back. Without a vault
/// nothing is sealed.
#[test]
fn fix_seals_idle_sessions_when_a_vault_exists() {
    let h = Home::new(SampleLine::OpenClaw2026_7_35);
    let sessions = h.t.path("agents/main/sessions");
    // Only the main session key is still current; the other conversations moved on.
    let index: Value =
        serde_json::from_str(&fs::read_to_string(sessions.join("sessions.json")).unwrap()).unwrap();
    let main = json!({"agent:main:main": index["agent:main:main"].clone()});
    fs::write(sessions.join("sessions.json"), main.to_string()).unwrap();
    h.age_sessions(30);
    let live = "e52e27a7-c658-471f-90a8-811dd2effa5a.jsonl";
    let idle = [
        "2d048393-6d30-4ed3-8093-352886778a8f.jsonl",
        "2d048393-6d30-4ed3-8093-352886778a8f.trajectory.jsonl",
        "5ae532ee-dfd0-4559-a05b-420f95c02e92.jsonl",
        "9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl",
        "e2c99222-a852-41df-9afc-7a944fceddab.jsonl",
    ];
    let before: Vec<Vec<u8>> = idle
        .iter()
        .map(|n| fs::read(sessions.join(n)).unwrap())
        .collect();
    let live_before = fs::read(sessions.join(live)).unwrap();

    let (_, v) = h.json(&[]);
    let finding = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "vault.idle_unsealed")
        .expect("idle finding")
        .clone();
    assert_eq!(finding["fix"]["kind"], "seal", "{finding}");

    let (_, v) = h.json(&["--fix"]);
    let mut sealed: Vec<String> = v["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "sealed")
        .map(|f| {
            assert_eq!(f["check"], "vault.idle_unsealed");
            let p = f["path"].as_str().unwrap();
            assert_eq!(f["sealed"].as_str().unwrap(), format!("{p}.age"));
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    sealed.sort();
    assert_eq!(sealed, idle, "{:#}", v["fixes"]);
    // The second audit (the one `--fix` prints) reports only the live session.
    let left: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "vault.idle_unsealed")
        .collect();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["files"].as_array().unwrap().len(), 1);
    assert!(
        left[0]["files"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with(live)
    );
    assert_eq!(fs::read(sessions.join(live)).unwrap(), live_before);
    for n in idle {
        assert!(!sessions.join(n).exists(), "{n}: plaintext left");
        assert_eq!(mode(&sessions.join(format!("{n}.age"))), 0o600);
    }

    // Reversible: `cat` prints the exact bytes, `unseal` puts them back.
    let pass = h.pass_file();
    let pass = pass.to_str().unwrap();
    let out = h.mv(&[
        "cat",
        "5ae532ee-dfd0-4559-a05b-420f95c02e92",
        "--passphrase-file",
        pass,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, before[2]);
    let out = h.mv(&["unseal", "--all", "--passphrase-file", pass]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (n, bytes) in idle.iter().zip(&before) {
        let back = fs::read(sessions.join(n)).unwrap();
        if String::from_utf8_lossy(bytes).contains(&sample_raw_secret()) {
            // `--fix` redacted it (secrets.transcript) before sealing it.
            let back = String::from_utf8(back).unwrap();
            assert!(
                !back.contains(&sample_raw_secret()) && back.contains("[REDACTED:"),
                "{n}"
            );
            assert_eq!(
                back.lines().count(),
                bytes.split(|b| *b == b'\n').count() - 1
            );
        } else {
            assert_eq!(&back, bytes, "{n}");
        }
    }

    // No vault: no idle finding to fix, nothing sealed.
    fs::remove_dir_all(&h.vault).unwrap();
    h.age_sessions(30);
    let (_, v) = h.json(&["--fix"]);
    assert!(
        !v["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["action"] == "sealed"),
        "{:#}",
        v["fixes"]
    );
    for n in idle {
        assert!(sessions.join(n).is_file(), "{n}");
    }
}
