//! `moltvault status` end to end: the one-screen summary (human and JSON) of each of the three
//! sample gateway lines, as golden snapshots.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use moltvault_testutils::homes::{SampleLine, TestHome};
use serde_json::{Value, json};

struct Home {
    t: TestHome,
    vault: PathBuf,
}

impl Home {
    /// A copy of a real sample home, a vault with one passphrase method (fast KDF: tests
    /// only), the plugin configured, a backup and an unfinished rotation.
    fn new(line: SampleLine) -> Home {
        let t = TestHome::new(line);
        let vault = t.home().join(".moltvault");
        let mut opts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(
            "correct horse battery staple",
        ));
        opts.work_factor = 10;
        moltvault_vault::Vault::init(&vault, opts).unwrap();
        Home { t, vault }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("moltvault")
            .unwrap()
            .env_clear()
            .env("HOME", self.t.home())
            .env("MOLTVAULT_DIR", &self.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--state-dir")
            .arg(self.t.state_dir())
            .arg("status")
            .args(args)
            .output()
            .unwrap()
    }

    fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.add_filter(&regex_escape(&self.t.root().display().to_string()), "[TMP]");
        s.add_filter(r"age1[0-9a-z]{58}", "[RECIPIENT]");
        s.add_filter(r#""created": "[^"]*""#, r#""created": "[TIME]""#);
        s.add_filter(r#"pid \d+|"loaded_by_pid": \d+"#, "pid [PID]");
        s
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn stdout(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Plugin installed (config entry), a backup in the default dir, an unfinished rotation.
fn furnish(h: &Home) {
    h.t.set_config(
        "/plugins/entries/moltvault-redact",
        json!({"enabled": true, "config": {}}),
    );
    let b = h
        .vault
        .join("backups/moltvault-host-20261125T000000Z.tar.zst.age");
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    fs::write(&b, "age-encryption.org/v1\n").unwrap();
    fs::create_dir_all(h.vault.join("rotation")).unwrap();
    fs::write(h.vault.join("rotation/active"), "run-20261125\n").unwrap();
}

#[test]
fn clawdbot_status() {
    let h = Home::new(SampleLine::Clawdbot2026_1_24);
    let out = stdout(&h.run(&[]));
    h.settings().bind(|| {
        insta::assert_snapshot!(out, @r#"
        vault       [TMP]/home/.moltvault
        recipient   [RECIPIENT]
        unlock      passphrase (passphrase, age scrypt)
        gateway     clawdbot 2026.1.24-3 at [TMP]/home/.clawdbot (JSONL store, not running)
        sessions    2 plain transcript file(s) (1 current), 0 sealed
        credentials plain (not locked)
        backup      none in [TMP]/home/.moltvault/backups (run `moltvault backup`)
        plugin      installed, never loaded
        findings    4 medium, 1 low (quick audit, no content scan: `moltvault audit` for secrets in files)
        rotation    none unfinished
        "#);
    });
    let v: Value = serde_json::from_str(&stdout(&h.run(&["--json"]))).unwrap();
    h.settings().bind(|| {
        insta::assert_json_snapshot!(v, @r#"
        {
          "vault": {
            "dir": "[TMP]/home/.moltvault",
            "initialized": true,
            "recipient": "[RECIPIENT]",
            "created": "[TIME]",
            "unlock_methods": [
              {
                "id": "passphrase",
                "kind": "passphrase",
                "detail": "age scrypt"
              }
            ]
          },
          "gateway": {
            "state_dir": "[TMP]/home/.clawdbot",
            "config": "[TMP]/home/.clawdbot/clawdbot.json",
            "line": "clawdbot",
            "version": "2026.1.24-3",
            "store": "jsonl",
            "running": false,
            "transcripts": {
              "plain": 2,
              "plain_current": 1,
              "sealed": 0
            },
            "sqlite_sessions": {
              "total": 0,
              "current": 0,
              "databases": 0
            },
            "locked_credentials": []
          },
          "backup": {
            "dir": "[TMP]/home/.moltvault/backups",
            "last": null,
            "verified": null,
            "verified_at": null
          },
          "plugin": {
            "installed": true,
            "enabled": true,
            "loaded": "never",
            "loaded_by_pid": null,
            "loaded_at": null
          },
          "findings": {
            "content_scan": false,
            "total": 5,
            "by_severity": {
              "critical": 0,
              "high": 0,
              "info": 0,
              "low": 1,
              "medium": 4
            },
            "checks": [
              "backup.none",
              "config.inline_secret",
              "fs.dir.perms",
              "fs.transcript.perms"
            ]
          },
          "rotation": {
            "unfinished": false,
            "run": null
          }
        }
        "#);
    });
}

#[test]
fn openclaw_jsonl_status() {
    let h = Home::new(SampleLine::OpenClaw2026_7_35);
    furnish(&h);
    let out = stdout(&h.run(&[]));
    h.settings().bind(|| {
        insta::assert_snapshot!(out, @r#"
        vault       [TMP]/home/.moltvault
        recipient   [RECIPIENT]
        unlock      passphrase (passphrase, age scrypt)
        gateway     openclaw 2026.7.35 at [TMP]/home/.openclaw (JSONL store, not running)
        sessions    6 plain transcript file(s) (5 current), 0 sealed
        credentials plain (not locked)
        backup      last 2026-11-25T00:00:00Z (moltvault-host-20261125T000000Z.tar.zst.age), unverified (run `moltvault backups verify`)
        plugin      installed, never loaded
        findings    1 high, 4 medium, 2 low (quick audit, no content scan: `moltvault audit` for secrets in files)
        rotation    run `run-20261125` unfinished: `moltvault rotate --resume`
        "#);
    });
    let v: Value = serde_json::from_str(&stdout(&h.run(&["--json"]))).unwrap();
    h.settings().bind(|| {
        insta::assert_json_snapshot!(v, @r#"
        {
          "vault": {
            "dir": "[TMP]/home/.moltvault",
            "initialized": true,
            "recipient": "[RECIPIENT]",
            "created": "[TIME]",
            "unlock_methods": [
              {
                "id": "passphrase",
                "kind": "passphrase",
                "detail": "age scrypt"
              }
            ]
          },
          "gateway": {
            "state_dir": "[TMP]/home/.openclaw",
            "config": "[TMP]/home/.openclaw/openclaw.json",
            "line": "openclaw",
            "version": "2026.7.35",
            "store": "jsonl",
            "running": false,
            "transcripts": {
              "plain": 6,
              "plain_current": 5,
              "sealed": 0
            },
            "sqlite_sessions": {
              "total": 0,
              "current": 0,
              "databases": 1
            },
            "locked_credentials": []
          },
          "backup": {
            "dir": "[TMP]/home/.moltvault/backups",
            "last": {
              "name": "moltvault-host-20261125T000000Z.tar.zst.age",
              "time": "2026-11-25T00:00:00Z",
              "size": 22
            },
            "verified": false,
            "verified_at": null
          },
          "plugin": {
            "installed": true,
            "enabled": true,
            "loaded": "never",
            "loaded_by_pid": null,
            "loaded_at": null
          },
          "findings": {
            "content_scan": false,
            "total": 7,
            "by_severity": {
              "critical": 0,
              "high": 1,
              "info": 0,
              "low": 2,
              "medium": 4
            },
            "checks": [
              "backup.unverified",
              "config.inline_secret",
              "fs.dir.perms",
              "fs.secret_file.perms",
              "fs.transcript.perms",
              "rotation.unfinished"
            ]
          },
          "rotation": {
            "unfinished": true,
            "run": "run-20261125"
          }
        }
        "#);
    });
}

#[test]
fn openclaw_sqlite_status() {
    let h = Home::new(SampleLine::OpenClaw2026_9_6);
    furnish(&h);
    // The sample's sessions were recorded on 2026-11-25: move their activity to now, so the
    // quick audit's idle-session check does not depend on the day the tests run.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    rusqlite::Connection::open(h.t.path("agents/main/agent/openclaw-agent.sqlite"))
        .unwrap()
        .execute_batch(&format!(
            "UPDATE session_windows SET updated_at = {now}, transcript_updated_at = {now}; \
             UPDATE transcript_events SET created_at = {now};"
        ))
        .unwrap();
    let out = stdout(&h.run(&[]));
    h.settings().bind(|| {
        insta::assert_snapshot!(out, @r#"
        vault       [TMP]/home/.moltvault
        recipient   [RECIPIENT]
        unlock      passphrase (passphrase, age scrypt)
        gateway     openclaw 2026.9.6 at [TMP]/home/.openclaw (SQLite store, not running)
        sessions    1 plain transcript file(s) (0 current), 0 sealed; 2 in SQLite (2 current, 1 database(s))
        credentials plain (not locked)
        backup      last 2026-11-25T00:00:00Z (moltvault-host-20261125T000000Z.tar.zst.age), unverified (run `moltvault backups verify`)
        plugin      installed, never loaded
        findings    1 high, 2 medium, 2 low (quick audit, no content scan: `moltvault audit` for secrets in files)
        rotation    run `run-20261125` unfinished: `moltvault rotate --resume`
        "#);
    });
    let v: Value = serde_json::from_str(&stdout(&h.run(&["--json"]))).unwrap();
    h.settings().bind(|| {
        insta::assert_json_snapshot!(v, @r#"
        {
          "vault": {
            "dir": "[TMP]/home/.moltvault",
            "initialized": true,
            "recipient": "[RECIPIENT]",
            "created": "[TIME]",
            "unlock_methods": [
              {
                "id": "passphrase",
                "kind": "passphrase",
                "detail": "age scrypt"
              }
            ]
          },
          "gateway": {
            "state_dir": "[TMP]/home/.openclaw",
            "config": "[TMP]/home/.openclaw/openclaw.json",
            "line": "openclaw",
            "version": "2026.9.6",
            "store": "sqlite",
            "running": false,
            "transcripts": {
              "plain": 1,
              "plain_current": 0,
              "sealed": 0
            },
            "sqlite_sessions": {
              "total": 2,
              "current": 2,
              "databases": 1
            },
            "locked_credentials": []
          },
          "backup": {
            "dir": "[TMP]/home/.moltvault/backups",
            "last": {
              "name": "moltvault-host-20261125T000000Z.tar.zst.age",
              "time": "2026-11-25T00:00:00Z",
              "size": 22
            },
            "verified": false,
            "verified_at": null
          },
          "plugin": {
            "installed": true,
            "enabled": true,
            "loaded": "never",
            "loaded_by_pid": null,
            "loaded_at": null
          },
          "findings": {
            "content_scan": false,
            "total": 5,
            "by_severity": {
              "critical": 0,
              "high": 1,
              "info": 0,
              "low": 2,
              "medium": 2
            },
            "checks": [
              "backup.unverified",
              "config.inline_secret",
              "fs.dir.perms",
              "rotation.unfinished"
            ]
          },
          "rotation": {
            "unfinished": true,
            "run": "run-20261125"
          }
        }
        "#);
    });
}

#[test]
fn status_without_vault_or_gateway_says_what_to_do() {
    let t = TestHome::empty();
    let out = Command::cargo_bin("moltvault")
        .unwrap()
        .env_clear()
        .env("HOME", t.home())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("status")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("run `moltvault init`"), "{text}");
    assert!(text.contains("gateway     not found"), "{text}");
}
