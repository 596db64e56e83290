//! `moltvault audit [--fix]` end to end, on temporary gateway homes of the three lines with
//! every finding planted.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use serde_json::Value;

/// A fake OpenAI-style key, assembled so the repository does not trip secret scanners.
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

fn write(path: &Path, text: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    chmod(path, mode);
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

fn age_days(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 86_400);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A two-line JSONL transcript whose tool result prints `secret`.
fn transcript(secret: &str) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"type":"session","version":3,"id":"s1","timestamp":"2026-11-25T18:00:00.000Z","cwd":"/w"}}"#,
            "\n",
            r#"{{"type":"message","id":"a1b2c3d4","parentId":null,"timestamp":"2026-11-25T18:00:01.000Z","message":{{"role":"toolResult","toolCallId":"call_1","toolName":"exec","content":[{{"type":"text","text":"export OPENAI_API_KEY={}"}}]}}}}"#,
            "\n"
        ),
        secret
    )
    .into_bytes()
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
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    state: PathBuf,
    vault: PathBuf,
    logs: PathBuf,
}

impl Home {
    fn new(state_name: &str) -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        let state = home.join(state_name);
        let vault = home.join(".moltvault");
        let logs = root.join("tmp-logs");
        fs::create_dir_all(&state).unwrap();
        fs::create_dir_all(&logs).unwrap();
        Home {
            _tmp: tmp,
            root,
            home,
            state,
            vault,
            logs,
        }
    }

    /// Creates a real vault (a fast scrypt work factor: tests only).
    fn init_vault(&self) {
        let mut opts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(
            "correct horse battery staple",
        ));
        opts.work_factor = 10;
        moltvault_vault::Vault::init(&self.vault, opts).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("moltvault")
            .unwrap()
            .env_clear()
            .env("HOME", &self.home)
            .env("MOLTVAULT_DIR", &self.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--state-dir")
            .arg(&self.state)
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

/// Clawdbot 2026.1.24: everything open, plaintext everywhere, no plugin, no SecretRefs.
fn clawdbot_home() -> Home {
    let h = Home::new(".clawdbot");
    let (key, token) = (fake_openai_key(), fake_gateway_token());
    let s = &h.state;
    let config = format!(
        r#"{{
  meta: {{ lastTouchedVersion: "2026.1.24-3" }},
  gateway: {{ port: 18789, mode: "local", bind: "loopback", auth: {{ mode: "token", token: "{token}" }} }},
  models: {{ mode: "merge", providers: {{ fake: {{ baseUrl: "http://127.0.0.1:18555/v1", apiKey: "{key}", api: "openai-completions" }} }} }},
}}"#
    );
    write(&s.join("clawdbot.json"), config.as_bytes(), 0o644);
    let bak = format!(r#"{{"models":{{"providers":{{"fake":{{"apiKey":"{key}"}}}}}}}}"#);
    write(&s.join("clawdbot.json.bak"), bak.as_bytes(), 0o644);
    write(
        &s.join(".env"),
        format!("OPENAI_API_KEY={key}\n").as_bytes(),
        0o600,
    );
    write(
        &s.join("agents/main/agent/auth-profiles.json"),
        br#"{"version":1,"profiles":{}}"#,
        0o600,
    );
    let sessions = s.join("agents/main/sessions");
    write(&sessions.join("0411108d.jsonl"), &transcript(&key), 0o644);
    age_days(&sessions.join("0411108d.jsonl"), 30);
    write(&sessions.join("sessions.json"), b"{}", 0o600);
    fs::create_dir_all(s.join("credentials")).unwrap();
    symlink("/etc", s.join("credentials/shared")).unwrap();
    write(
        &h.logs.join("clawdbot-2026-11-25.log"),
        format!("{{\"msg\":\"gateway token {token}\"}}\n").as_bytes(),
        0o644,
    );
    for d in [
        "agents",
        "agents/main",
        "agents/main/sessions",
        "credentials",
    ] {
        chmod(&s.join(d), 0o755);
    }
    chmod(s, 0o755);
    h.init_vault();
    h
}

/// OpenClaw 2026.7.35 (JSONL): bound to the LAN without auth, masking off, an unfinished
/// rotation and a stale backup.
fn openclaw_jsonl_home() -> Home {
    let h = Home::new(".openclaw");
    let (key, token) = (fake_openai_key(), fake_gateway_token());
    let s = &h.state;
    let config = format!(
        r#"{{
  meta: {{ lastTouchedVersion: "2026.7.35" }},
  gateway: {{ bind: "lan", auth: {{ mode: "none" }} }},
  logging: {{ redactSensitive: "off" }},
  models: {{ providers: {{ openai: {{ apiKey: "{key}" }}, byenv: {{ apiKey: "${{OPENAI_API_KEY}}" }} }} }},
  plugins: {{ entries: {{ "moltvault-redact": {{ enabled: true }} }} }},
}}"#
    );
    write(&s.join("openclaw.json"), config.as_bytes(), 0o600);
    let bak = format!(r#"{{"models":{{"providers":{{"openai":{{"apiKey":"{key}"}}}}}}}}"#);
    write(&s.join("openclaw.json.bak"), bak.as_bytes(), 0o644);
    write(&s.join("openclaw.json.last-good"), bak.as_bytes(), 0o600);
    let sessions = s.join("agents/main/sessions");
    for (name, secret) in [
        ("2d048393.jsonl", &key),
        ("2d048393.trajectory.jsonl", &key),
        ("live.jsonl", &token),
    ] {
        write(&sessions.join(name), &transcript(secret), 0o644);
        age_days(&sessions.join(name), 30);
    }
    write(&sessions.join("live.jsonl.lock"), b"{\"pid\":1}", 0o644);
    write(&sessions.join("sessions.json"), b"{}", 0o600);
    write(
        &s.join("agents/main/agent/models.json"),
        format!(r#"{{"providers":{{"openai":{{"apiKey":"{key}"}}}}}}"#).as_bytes(),
        0o600,
    );
    write(
        &s.join("logs/config-audit.jsonl"),
        format!(
            r#"{{"argv":["openclaw","config","set","models.providers.openai.apiKey","{key}"]}}"#
        )
        .as_bytes(),
        0o600,
    );
    fs::create_dir_all(s.join("plugin-skills")).unwrap();
    symlink("/usr/share/doc", s.join("plugin-skills/canvas")).unwrap();
    for d in ["agents", "agents/main", "agents/main/sessions"] {
        chmod(&s.join(d), 0o755);
    }
    chmod(s, 0o700);
    h.init_vault();
    write(
        &h.vault.join("rotation/active"),
        b"20261125T180000Z\n",
        0o600,
    );
    write(
        &h.vault.join("rotation/runs/20261125T180000Z/journal.jsonl"),
        b"{}\n",
        0o600,
    );
    let old = h
        .vault
        .join("backups/moltvault-host-20261001T000000Z.tar.zst.age");
    write(&old, b"age-encryption.org/v1\n", 0o600);
    age_days(&old, 30);
    h
}

/// OpenClaw 2026.9.6 (SQLite): a SecretRef-based config and the plugin, but a world-readable
/// agent database and a deleted-session archive with a secret.
fn openclaw_sqlite_home() -> Home {
    let h = Home::new(".openclaw");
    let s = &h.state;
    let config = r#"{
  "meta": { "lastTouchedVersion": "2026.9.6" },
  "gateway": { "bind": "loopback", "auth": { "mode": "token", "token": { "source": "exec", "provider": "moltvault", "id": "gateway/token" } } },
  "plugins": { "entries": { "moltvault-redact": { "enabled": true } } }
}"#;
    write(&s.join("openclaw.json"), config.as_bytes(), 0o600);
    let agent = s.join("agents/main/agent");
    fs::create_dir_all(&agent).unwrap();
    chmod(&agent, 0o700);
    let db = agent.join("openclaw-agent.sqlite");
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE transcript_events(session_id TEXT, seq INTEGER, event_json TEXT, event_zstd BLOB);")
        .status()
        .expect("sqlite3 is installed by .ci/install-deps");
    assert!(status.success());
    chmod(&db, 0o644);
    write(
        &agent.join("openclaw-agent.generation-lock.sqlite"),
        b"",
        0o644,
    );
    let archive = zstd_compress(&transcript(&fake_openai_key()));
    let sessions = s.join("agents/main/sessions");
    write(
        &sessions.join("1d8ef48d.jsonl.deleted.2026-11-25T18-30-00.000Z.ab12cd34.zst"),
        &archive,
        0o600,
    );
    for d in ["agents", "agents/main", "agents/main/sessions"] {
        chmod(&s.join(d), 0o700);
    }
    chmod(s, 0o700);
    h.init_vault();
    write(
        &h.vault
            .join("backups/moltvault-host-20261125T000000Z.tar.zst.age"),
        b"age-encryption.org/v1\n",
        0o600,
    );
    h
}

#[test]
fn audit_reports_every_planted_finding_on_each_line() {
    let h = clawdbot_home();
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1, "high findings → exit 1");
    assert_eq!(
        check_ids(&v),
        ids(&[
            "backup.none",
            "config.inline_secret",
            "fs.config_backup.perms",
            "fs.dir.perms",
            "fs.secret_file.perms",
            "fs.state_dir.perms",
            "fs.symlink.outside",
            "fs.transcript.perms",
            "plugin.not_installed",
            "secrets.config_backup",
            "secrets.log",
            "secrets.transcript",
            "vault.idle_unsealed",
        ])
    );
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
    assert_eq!(
        check_ids(&v),
        ids(&[
            "backup.stale",
            "config.inline_secret",
            "config.redact_off",
            "fs.config_backup.perms",
            "fs.dir.perms",
            "fs.symlink.plugin_skills",
            "fs.transcript.perms",
            "gateway.bind_no_auth",
            "rotation.unfinished",
            "secrets.config_backup",
            "secrets.log",
            "secrets.models_json",
            "secrets.trajectory",
            "secrets.transcript",
            "vault.idle_unsealed",
        ])
    );
    assert_eq!(v["findings"][0]["check"], "gateway.bind_no_auth");
    assert_eq!(v["findings"][0]["severity"], "critical");

    let h = openclaw_sqlite_home();
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        check_ids(&v),
        ids(&["fs.secret_file.perms", "secrets.archive"])
    );
    // The lock sidecar the gateway creates 0644 is not a secret file.
    let perms = &v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "fs.secret_file.perms")
        .unwrap()["files"];
    assert_eq!(perms.as_array().unwrap().len(), 1, "{perms}");
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
                assert!(!text.contains(&fake_gateway_token()), "{text}");
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
    assert_eq!(
        check_ids(&v),
        ids(&[
            "backup.none",
            "config.inline_secret",
            "fs.symlink.outside",
            "plugin.not_installed",
            "secrets.config_backup",
            "secrets.log",
            // The only idle session was just redacted, which made it recent again.
        ])
    );
    assert_eq!(mode(&h.state), 0o700);
    assert_eq!(mode(&h.state.join("clawdbot.json")), 0o600);
    assert_eq!(mode(&h.state.join("agents/main/sessions")), 0o700);
    // The symlink's target was never touched.
    assert_ne!(mode(Path::new("/etc")), 0o700);
    let t = fs::read_to_string(h.state.join("agents/main/sessions/0411108d.jsonl")).unwrap();
    assert!(!t.contains(&fake_openai_key()));
    assert!(t.contains("[REDACTED:"), "{t}");
    assert_eq!(t.lines().count(), 2);
    let note = fs::read_to_string(h.vault.join("audit-fixes.jsonl")).unwrap();
    assert!(note.contains("0411108d.jsonl"), "{note}");

    let h = openclaw_jsonl_home();
    h.run(&["--fix"]);
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        check_ids(&v),
        ids(&[
            "backup.stale",
            "config.inline_secret",
            "config.redact_off",
            "fs.symlink.plugin_skills",
            "gateway.bind_no_auth",
            "rotation.unfinished",
            "secrets.config_backup",
            "secrets.log",
            "secrets.models_json",
            // The live session is locked by the gateway: left alone.
            "secrets.transcript",
            "vault.idle_unsealed",
        ])
    );
    let t = fs::read_to_string(h.state.join("agents/main/sessions/live.jsonl")).unwrap();
    assert!(
        t.contains(&fake_gateway_token()),
        "a locked transcript is not rewritten"
    );

    let h = openclaw_sqlite_home();
    h.run(&["--fix"]);
    let (code, v) = h.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(check_ids(&v), ids(&["secrets.archive"]));
    assert_eq!(
        mode(&h.state.join("agents/main/agent/openclaw-agent.sqlite")),
        0o600
    );
    assert_eq!(
        mode(
            &h.state
                .join("agents/main/agent/openclaw-agent.generation-lock.sqlite")
        ),
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
    s.add_filter(&regex_escape(&h.root.display().to_string()), "[TMP]");
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
        audit of [TMP]/home/.clawdbot, gateway 2026.1.24-3 (3 files, 543 B scanned for secrets)

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

        high     fs.transcript.perms        agents/main/sessions/0411108d.jsonl
                 a transcript is open to group/others (mode 0644)
                 fix: --fix tightens the permissions
                 hint: `moltvault audit --fix` sets them to 0600 (the gateway creates transcripts with the default umask).

        high     secrets.config_backup      clawdbot.json.bak
                 1 plaintext secret(s) in a config backup (config-models-providers-fake-apikey 1)
                 hint: `moltvault secrets import` scrubs config backups; otherwise delete backups you do not need.

        high     secrets.log                [TMP]/tmp-logs/clawdbot-2026-11-25.log
                 1 plaintext secret(s) in a log file (config-gateway-auth-token 1)
                 hint: Delete or redact old logs (`moltvault redact --in-place <file>`), and set `logging.file` to a private directory.

        high     secrets.transcript         agents/main/sessions/0411108d.jsonl
                 1 plaintext secret(s) in a transcript (config-models-providers-fake-apikey 1)
                 fix: --fix redacts inactive files
                 hint: `moltvault audit --fix` redacts inactive ones (or run `moltvault redact --in-place`); install the plugin so new ones stay clean.

        medium   backup.none                [TMP]/home/.moltvault/backups
                 no moltvault backup found (moltvault-*.tar.zst.age)
                 hint: Run `moltvault backup` (and schedule it: it needs no secret, so cron is fine).

        medium   config.inline_secret       clawdbot.json
                 `gateway.auth.token` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   config.inline_secret       clawdbot.json
                 `models.providers.fake.apiKey` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   fs.dir.perms               . (5 paths)
                 5 directories holding secrets are open to group/others (modes 0755)
                   - agents (0755)
                   - credentials (0755)
                   - agents/main (0755)
                   - agents/main/agent (0755)
                   - agents/main/sessions (0755)
                 fix: --fix tightens the permissions
                 hint: `moltvault audit --fix` sets them to 0700.

        medium   fs.symlink.outside         credentials/shared
                 symlink points outside the state directory, to /etc
                 hint: Check that the target is meant to be shared; moltvault never follows it (back up, redact and seal skip it). Replace it with the real file if it belongs to the gateway.

        medium   plugin.not_installed       clawdbot.json
                 the moltvault-redact plugin is not installed (plugins.entries.moltvault-redact)
                 hint: Run `moltvault plugin install` so secrets are redacted before transcripts reach disk.

        low      vault.idle_unsealed        agents/main/sessions
                 1 session(s) untouched for more than 7 days are not sealed
                   - agents/main/sessions/0411108d.jsonl
                 hint: Seal them with `moltvault seal --idle 7d` (add --include-current for sessions still current).

        14 finding(s): 7 high, 6 medium, 1 low; 6 fixable with `moltvault audit --fix`
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
          chmod     agents/main/sessions/0411108d.jsonl: 0644 -> 0600
          chmod     agents: 0755 -> 0700
          chmod     credentials: 0755 -> 0700
          chmod     agents/main: 0755 -> 0700
          chmod     agents/main/agent: 0755 -> 0700
          chmod     agents/main/sessions: 0755 -> 0700
          redacted  agents/main/sessions/0411108d.jsonl: 1 secret(s)

        audit of [TMP]/home/.clawdbot, gateway 2026.1.24-3 (3 files, 543 B scanned for secrets)

        high     secrets.config_backup      clawdbot.json.bak
                 1 plaintext secret(s) in a config backup (config-models-providers-fake-apikey 1)
                 hint: `moltvault secrets import` scrubs config backups; otherwise delete backups you do not need.

        high     secrets.log                [TMP]/tmp-logs/clawdbot-2026-11-25.log
                 1 plaintext secret(s) in a log file (config-gateway-auth-token 1)
                 hint: Delete or redact old logs (`moltvault redact --in-place <file>`), and set `logging.file` to a private directory.

        medium   backup.none                [TMP]/home/.moltvault/backups
                 no moltvault backup found (moltvault-*.tar.zst.age)
                 hint: Run `moltvault backup` (and schedule it: it needs no secret, so cron is fine).

        medium   config.inline_secret       clawdbot.json
                 `gateway.auth.token` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   config.inline_secret       clawdbot.json
                 `models.providers.fake.apiKey` holds a plaintext secret in the config
                 hint: Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs.

        medium   fs.symlink.outside         credentials/shared
                 symlink points outside the state directory, to /etc
                 hint: Check that the target is meant to be shared; moltvault never follows it (back up, redact and seal skip it). Replace it with the real file if it belongs to the gateway.

        medium   plugin.not_installed       clawdbot.json
                 the moltvault-redact plugin is not installed (plugins.entries.moltvault-redact)
                 hint: Run `moltvault plugin install` so secrets are redacted before transcripts reach disk.

        7 finding(s): 2 high, 5 medium
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
          "scanned_files": 1,
          "scanned_bytes": 368,
          "findings": [
            {
              "check": "secrets.archive",
              "severity": "high",
              "path": "[TMP]/home/.openclaw/agents/main/sessions/1d8ef48d.jsonl.deleted.2026-11-25T18-30-00.000Z.ab12cd34.zst",
              "detail": "1 plaintext secret(s) in a compressed transcript archive",
              "hint": "Run `moltvault redact --in-place` (it re-compresses archives), or seal them with `moltvault seal`.",
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/sessions/1d8ef48d.jsonl.deleted.2026-11-25T18-30-00.000Z.ab12cd34.zst",
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
              "check": "fs.secret_file.perms",
              "severity": "medium",
              "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
              "detail": "a file holding secrets is open to group/others (mode 0644)",
              "hint": "`moltvault audit --fix` sets them to 0600.",
              "fix": {
                "kind": "chmod"
              },
              "files": [
                {
                  "path": "[TMP]/home/.openclaw/agents/main/agent/openclaw-agent.sqlite",
                  "mode": "0644"
                }
              ]
            }
          ],
          "summary": {
            "medium": 1,
            "high": 1
          },
          "fail_on": "high",
          "failed": true
        }
        "#);
    });
}
