//! `moltvault secrets …` and `moltvault exec` end to end: the store, the exec provider protocol
//! (values, unknown ids, malformed and huge requests, a locked vault) and `install-provider`.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::Instant;

use assert_cmd::Command;
use serde_json::Value;

/// A fake API key, assembled so the repository does not trip secret scanners.
fn fake_key(n: usize) -> String {
    format!(
        "sk-{}-{n:04}{}",
        "proj", "AbCdEfGhIjKlMnOpQrStUvWx0123456789"
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    vault: PathBuf,
    creds: PathBuf,
    state: PathBuf,
}

impl Env {
    /// A home with a real vault (fast scrypt: tests only), its recovery identity saved as a
    /// systemd-style credential, and a 2026.7.35 gateway config.
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        let vault = home.join(".moltvault");
        let mut opts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(
            "correct horse battery staple",
        ));
        opts.work_factor = 10;
        let (_, recovery) = moltvault_vault::Vault::init(&vault, opts).unwrap();
        let creds = root.join("credentials");
        std::fs::create_dir_all(&creds).unwrap();
        std::fs::write(creds.join("moltvault-identity"), recovery.expose()).unwrap();
        let state = home.join(".openclaw");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("openclaw.json"),
            r#"{"meta":{"lastTouchedVersion":"2026.7.35"},"gateway":{"bind":"loopback"}}"#,
        )
        .unwrap();
        Env {
            _tmp: tmp,
            home,
            vault,
            creds,
            state,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        c.env_clear()
            .env("HOME", &self.home)
            .env("MOLTVAULT_DIR", &self.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--state-dir")
            .arg(&self.state);
        c
    }

    fn set(&self, id: &str, value: &str) {
        let out = self
            .cmd()
            .args(["secrets", "set", id])
            .write_stdin(format!("{value}\n"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    fn provide(&self, request: &[u8], with_credential: bool) -> Output {
        let mut c = self.cmd();
        if with_credential {
            c.env("CREDENTIALS_DIRECTORY", &self.creds);
        }
        c.args(["secrets", "provide"])
            .write_stdin(request.to_vec())
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", text(b)))
}

#[test]
fn set_list_get_rm_never_show_a_value_unless_revealed() {
    let e = Env::new();
    let key = fake_key(1);
    e.set("providers/openai/apiKey", &key);
    let out = e
        .cmd()
        .args(["secrets", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list = json(&out.stdout);
    assert_eq!(list[0]["id"], "providers/openai/apiKey");
    assert_eq!(list[0]["fp8"].as_str().unwrap().len(), 8);
    assert!(!text(&out.stdout).contains(&key));
    let out = e
        .cmd()
        .args(["secrets", "get", "providers/openai/apiKey"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!text(&out.stdout).contains(&key));
    let out = e
        .cmd()
        .args([
            "secrets",
            "get",
            "providers/openai/apiKey",
            "--reveal",
            "--identity",
        ])
        .arg(e.creds.join("moltvault-identity"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{key}\n"));
    // The value is never taken from argv.
    let out = e
        .cmd()
        .args(["secrets", "set", "x", &key])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = e
        .cmd()
        .args(["secrets", "set", "../x"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a valid secret id"));
    let out = e
        .cmd()
        .args(["secrets", "rm", "providers/openai/apiKey"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = e
        .cmd()
        .args(["secrets", "rm", "providers/openai/apiKey"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn provider_answers_the_gateway_protocol() {
    let e = Env::new();
    let ids: Vec<String> = (0..20).map(|i| format!("providers/p{i}/apiKey")).collect();
    for (i, id) in ids.iter().enumerate() {
        e.set(id, &fake_key(i));
    }
    let mut asked = ids.clone();
    asked.push("missing/id".into());
    let req = serde_json::json!({"protocolVersion": 1, "provider": "moltvault", "ids": asked});
    let out = e.provide(req.to_string().as_bytes(), true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resp = json(&out.stdout);
    assert_eq!(resp["protocolVersion"], 1);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(resp["values"][id], fake_key(i).as_str());
    }
    assert_eq!(resp["errors"]["missing/id"]["code"], "NOT_FOUND");
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));

    // Cold start for 20 ids, through the real binary (debug build here; docs/secrets.md has
    // the release figure).
    let bin = assert_cmd::cargo::cargo_bin("moltvault");
    let t = Instant::now();
    let mut child = StdCommand::new(bin)
        .env_clear()
        .env("HOME", &e.home)
        .env("MOLTVAULT_DIR", &e.vault)
        .env("CREDENTIALS_DIRECTORY", &e.creds)
        .args(["secrets", "provide"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let req = serde_json::json!({"protocolVersion": 1, "provider": "moltvault", "ids": ids});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let elapsed = t.elapsed();
    assert!(out.status.success());
    assert_eq!(json(&out.stdout)["values"].as_object().unwrap().len(), 20);
    assert!(elapsed.as_millis() < 2000, "{elapsed:?}");
}

#[test]
fn provider_edge_cases_are_protocol_errors_never_crashes_or_leaks() {
    let e = Env::new();
    let key = fake_key(7);
    e.set("gateway/token", &key);

    // Locked: no credential, no keyring, no passphrase → a per-id LOCKED error, exit 0.
    let req = br#"{"protocolVersion":1,"provider":"moltvault","ids":["gateway/token","nope"]}"#;
    let out = e.provide(req, false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resp = json(&out.stdout);
    assert_eq!(resp["values"], serde_json::json!({}));
    assert_eq!(resp["errors"]["gateway/token"]["code"], "LOCKED");
    assert!(
        resp["errors"]["gateway/token"]["message"]
            .as_str()
            .unwrap()
            .contains("moltvault-identity")
    );
    assert_eq!(resp["errors"]["nope"]["code"], "NOT_FOUND");

    let huge = vec![b'x'; (1 << 20) + 10];
    let many: Vec<String> = (0..600).map(|i| format!("id{i}")).collect();
    let too_many = serde_json::json!({"protocolVersion": 1, "ids": many}).to_string();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "INVALID_REQUEST"),
        (b"{not json".to_vec(), "INVALID_REQUEST"),
        (
            br#"{"protocolVersion":2,"ids":["gateway/token"]}"#.to_vec(),
            "UNSUPPORTED_PROTOCOL_VERSION",
        ),
        (
            br#"{"protocolVersion":1,"ids":"gateway/token"}"#.to_vec(),
            "INVALID_REQUEST",
        ),
        (huge, "REQUEST_TOO_LARGE"),
        (too_many.into_bytes(), "TOO_MANY_IDS"),
    ];
    for (input, code) in cases {
        let out = e.provide(&input, true);
        assert_eq!(out.status.code(), Some(2), "{code}");
        let resp = json(&out.stdout);
        assert_eq!(resp["error"]["code"], code);
        for stream in [&out.stdout, &out.stderr] {
            assert!(!text(stream).contains(&key));
            assert!(!text(stream).contains("panicked"));
        }
    }
}

#[test]
fn install_provider_writes_an_absolute_non_symlink_command() {
    let e = Env::new();
    let out = e
        .cmd()
        .args(["secrets", "install-provider"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(e.state.join("openclaw.json")).unwrap())
            .unwrap();
    let p = &cfg["secrets"]["providers"]["moltvault"];
    assert_eq!(p["source"], "exec");
    let command = Path::new(p["command"].as_str().unwrap());
    assert!(command.is_absolute());
    assert!(
        !std::fs::symlink_metadata(command)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(p["args"][2], "secrets");
    assert_eq!(p["args"][3], "provide");
    assert_eq!(p["jsonOnly"], true);

    // A symlinked command is refused.
    let link = e.home.join("mv-link");
    std::os::unix::fs::symlink(command, &link).unwrap();
    let out = e
        .cmd()
        .args(["secrets", "install-provider", "--command"])
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("symlink"));

    // Older gateways have no exec providers.
    std::fs::write(
        e.state.join("openclaw.json"),
        r#"{"meta":{"lastTouchedVersion":"2026.1.30"}}"#,
    )
    .unwrap();
    let out = e
        .cmd()
        .args(["secrets", "install-provider"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("moltvault exec"));
}

#[test]
fn exec_runs_a_command_with_env_named_secrets() {
    let e = Env::new();
    let key = fake_key(3);
    e.set("OPENAI_API_KEY", &key);
    e.set("providers/other", "not-exported");
    let out = e
        .cmd()
        .arg("exec")
        .arg("--identity")
        .arg(e.creds.join("moltvault-identity"))
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "test \"$OPENAI_API_KEY\" = '{key}' && test -z \"${{providers_other:-}}\" && exit 7"
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(&key) && !text(&out.stderr).contains(&key));
}

#[test]
fn import_moves_inline_secrets_to_secretrefs_and_scrubs_backups() {
    let e = Env::new();
    let (key, token, hook) = (fake_key(11), fake_key(12), fake_key(13));
    let config = format!(
        r#"{{
  // written by hand: JSON5
  meta: {{ lastTouchedVersion: "2026.7.35" }},
  gateway: {{ bind: "loopback", auth: {{ mode: "token", token: "{token}" }} }},
  hooks: {{ enabled: true, token: "{hook}" }},
  models: {{ providers: {{ openai: {{ apiKey: "{key}" }}, byenv: {{ apiKey: "${{OPENAI_API_KEY}}" }} }} }},
}}"#
    );
    std::fs::write(e.state.join("openclaw.json"), &config).unwrap();
    let bak = format!(r#"{{"models":{{"providers":{{"openai":{{"apiKey":"{key}"}}}}}}}}"#);
    std::fs::write(e.state.join("openclaw.json.bak"), &bak).unwrap();
    std::fs::write(e.state.join(".env"), format!("OPENAI_API_KEY={key}\n")).unwrap();

    let out = e
        .cmd()
        .args(["secrets", "import", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("would move gateway.auth.token"));
    assert_eq!(
        std::fs::read_to_string(e.state.join("openclaw.json")).unwrap(),
        config,
        "--dry-run changes nothing"
    );

    let out = e.cmd().args(["secrets", "import"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for stream in [&out.stdout, &out.stderr] {
        for v in [&key, &token, &hook] {
            assert!(!text(stream).contains(v.as_str()));
        }
    }
    let cfg_text = std::fs::read_to_string(e.state.join("openclaw.json")).unwrap();
    let cfg: Value = serde_json::from_str(&cfg_text).unwrap();
    assert_eq!(
        cfg["gateway"]["auth"]["token"],
        serde_json::json!({"source": "exec", "provider": "moltvault", "id": "gateway.auth.token"})
    );
    assert_eq!(
        cfg["models"]["providers"]["openai"]["apiKey"]["id"],
        "models.providers.openai.apiKey"
    );
    // `${OPENAI_API_KEY}` named a `.env` variable that moved into the vault: now a SecretRef.
    assert_eq!(
        cfg["models"]["providers"]["byenv"]["apiKey"],
        serde_json::json!({"source": "exec", "provider": "moltvault", "id": "OPENAI_API_KEY"})
    );
    // The `.env` line is gone; its backup (0600) says where it went, without the value.
    assert_eq!(std::fs::read_to_string(e.state.join(".env")).unwrap(), "");
    let env_bak = e.state.join(".env.moltvault-bak");
    let env_bak_text = std::fs::read_to_string(&env_bak).unwrap();
    assert!(env_bak_text.starts_with("# OPENAI_API_KEY=… moved to the moltvault vault"));
    assert!(!env_bak_text.contains(&key));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&env_bak).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    // hooks.token accepts no SecretRef: an env reference for `moltvault exec`.
    assert_eq!(cfg["hooks"]["token"], "${MOLTVAULT_HOOKS_TOKEN}");
    assert_eq!(cfg["secrets"]["providers"]["moltvault"]["source"], "exec");
    // No plaintext left in the config or any backup of it.
    for name in [
        "openclaw.json",
        "openclaw.json.bak",
        "openclaw.json.moltvault-bak",
    ] {
        let t = std::fs::read_to_string(e.state.join(name)).unwrap();
        for v in [&key, &token, &hook] {
            assert!(!t.contains(v.as_str()), "{name} still holds a value");
        }
    }
    // The gateway can now resolve them through the provider.
    let req = br#"{"protocolVersion":1,"provider":"moltvault","ids":["gateway.auth.token","models.providers.openai.apiKey"]}"#;
    let resp = json(&e.provide(req, true).stdout);
    assert_eq!(resp["values"]["gateway.auth.token"], token.as_str());
    assert_eq!(
        resp["values"]["models.providers.openai.apiKey"],
        key.as_str()
    );
    // And the env-style ones through `exec`.
    let out = e
        .cmd()
        .arg("exec")
        .arg("--identity")
        .arg(e.creds.join("moltvault-identity"))
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "test \"$MOLTVAULT_HOOKS_TOKEN\" = '{hook}' && test \"$OPENAI_API_KEY\" = '{key}'"
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn import_on_a_gateway_without_secretrefs_writes_env_references() {
    let e = Env::new();
    let token = fake_key(21);
    std::fs::write(
        e.state.join("openclaw.json"),
        format!(
            r#"{{"meta":{{"lastTouchedVersion":"2026.1.30"}},"gateway":{{"auth":{{"mode":"token","token":"{token}"}}}}}}"#
        ),
    )
    .unwrap();
    let out = e.cmd().args(["secrets", "import"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(e.state.join("openclaw.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["gateway"]["auth"]["token"],
        "${MOLTVAULT_GATEWAY_AUTH_TOKEN}"
    );
    assert!(
        cfg.get("secrets").is_none(),
        "no provider entry on old lines"
    );
    let out = e
        .cmd()
        .args(["secrets", "list", "--json"])
        .output()
        .unwrap();
    let list = json(&out.stdout);
    assert_eq!(list[0]["id"], "MOLTVAULT_GATEWAY_AUTH_TOKEN");
    assert_eq!(list[0]["origin"], "config:gateway.auth.token");
    // Nothing left to import the second time.
    let out = e.cmd().args(["secrets", "import"]).output().unwrap();
    assert!(text(&out.stdout).contains("no inline secrets"));
}

/// Creates the 2026.9 global database with the shared auth-profile store row.
fn write_shared_auth_store(state: &Path, doc: &Value) {
    std::fs::create_dir_all(state.join("state")).unwrap();
    let conn = rusqlite::Connection::open(state.join("state/openclaw.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE config_machine_state (state_key TEXT NOT NULL PRIMARY KEY, value_json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL) STRICT;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO config_machine_state VALUES ('authProfiles.store', ?1, 0)",
        [doc.to_string()],
    )
    .unwrap();
}

fn shared_auth_store(state: &Path) -> String {
    let conn = rusqlite::Connection::open(state.join("state/openclaw.sqlite")).unwrap();
    conn.query_row(
        "SELECT value_json FROM config_machine_state WHERE state_key = 'authProfiles.store'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn import_turns_auth_profile_keys_into_sibling_refs_and_leaves_oauth_alone() {
    let e = Env::new();
    let (shared_key, agent_token, access, refresh) =
        (fake_key(31), fake_key(32), fake_key(33), fake_key(34));
    // 2026.9: the provider is bound to its profile by id (not a key: never imported).
    std::fs::write(
        e.state.join("openclaw.json"),
        r#"{"meta":{"lastTouchedVersion":"2026.9.6"},
            "auth":{"profiles":{"fake:manual":{"provider":"fake","mode":"api_key"}}},
            "models":{"providers":{"fake":{"baseUrl":"http://127.0.0.1:9/v1","apiKey":"fake:manual"}}}}"#,
    )
    .unwrap();
    write_shared_auth_store(
        &e.state,
        &serde_json::json!({"version":1,"profiles":{
            "fake:manual":{"type":"api_key","provider":"fake","key":shared_key}}}),
    );
    let agent_dir = e.state.join("agents/main/agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::write(
        agent_dir.join("auth-profiles.json"),
        serde_json::json!({"version":1,"profiles":{
            "anthropic:manual":{"type":"token","provider":"anthropic","token":agent_token},
            "openai:oauth":{"type":"oauth","provider":"openai","access":access,"refresh":refresh,"expires":1}}})
        .to_string(),
    )
    .unwrap();

    let out = e.cmd().args(["secrets", "import"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for v in [&shared_key, &agent_token, &access, &refresh] {
        assert!(!all.contains(v.as_str()));
    }
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(e.state.join("openclaw.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["models"]["providers"]["fake"]["apiKey"], "fake:manual",
        "a profile binding is not a key"
    );
    assert_eq!(cfg["secrets"]["providers"]["moltvault"]["source"], "exec");

    let shared: Value = serde_json::from_str(&shared_auth_store(&e.state)).unwrap();
    let p = &shared["profiles"]["fake:manual"];
    assert!(p.get("key").is_none());
    assert_eq!(
        p["keyRef"],
        serde_json::json!({"source":"exec","provider":"moltvault","id":"auth-profiles/shared/fake:manual/key"})
    );
    let ap: Value = serde_json::from_str(
        &std::fs::read_to_string(agent_dir.join("auth-profiles.json")).unwrap(),
    )
    .unwrap();
    let t = &ap["profiles"]["anthropic:manual"];
    assert!(t.get("token").is_none());
    assert_eq!(
        t["tokenRef"]["id"],
        "auth-profiles/main/anthropic:manual/token"
    );
    // OAuth material accepts no SecretRef: untouched, and not stored.
    assert_eq!(ap["profiles"]["openai:oauth"]["access"], access.as_str());

    let req = br#"{"protocolVersion":1,"provider":"moltvault","ids":["auth-profiles/shared/fake:manual/key","auth-profiles/main/anthropic:manual/token"]}"#;
    let resp = json(&e.provide(req, true).stdout);
    assert_eq!(
        resp["values"]["auth-profiles/shared/fake:manual/key"],
        shared_key.as_str()
    );
    assert_eq!(
        resp["values"]["auth-profiles/main/anthropic:manual/token"],
        agent_token.as_str()
    );
    let list = json(
        &e.cmd()
            .args(["secrets", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn import_scrubs_superseded_values_from_config_backups() {
    let e = Env::new();
    let (old, new) = (fake_key(41), fake_key(42));
    std::fs::write(
        e.state.join("openclaw.json"),
        format!(r#"{{"meta":{{"lastTouchedVersion":"2026.9.6"}},"models":{{"providers":{{"p":{{"apiKey":"{new}"}}}}}}}}"#),
    )
    .unwrap();
    std::fs::write(
        e.state.join("openclaw.json.bak.1"),
        format!(r#"{{"models":{{"providers":{{"p":{{"apiKey":"{old}"}}}}}}}}"#),
    )
    .unwrap();
    let out = e.cmd().args(["secrets", "import"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bak = std::fs::read_to_string(e.state.join("openclaw.json.bak.1")).unwrap();
    assert!(
        !bak.contains(&old),
        "the superseded key is still in the backup"
    );
    assert!(bak.contains("[REDACTED:superseded:"), "{bak}");
    // The old value is not imported: only the live one is.
    let list = json(
        &e.cmd()
            .args(["secrets", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(list.as_array().unwrap().len(), 1);
}

/// Issue 8 point 4 (a secret that lives in the vault), without an unlock source: `rotate` lists
/// it and refuses to run rather than touch anything, and never writes a plaintext value back
/// into the config; `secrets set` replaces the value by hand and the provider serves the new one
/// at once. The unlocked rotation itself is tested in `rotate_vault.rs`.
#[test]
fn rotating_a_vault_held_secret_keeps_the_secretref_and_set_replaces_the_value() {
    let e = Env::new();
    let (old, new) = (fake_key(51), fake_key(52));
    std::fs::write(
        e.state.join("openclaw.json"),
        format!(
            r#"{{"meta":{{"lastTouchedVersion":"2026.9.6"}},"gateway":{{"port":18999,"auth":{{"mode":"token","token":"{old}"}}}}}}"#
        ),
    )
    .unwrap();
    let out = e.cmd().args(["secrets", "import"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let imported = std::fs::read_to_string(e.state.join("openclaw.json")).unwrap();

    let out = e.cmd().args(["rotate", "--list"]).output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("is a SecretRef"), "{all}");
    assert!(!all.contains(&old));
    let out = e
        .cmd()
        .args(["rotate", "--all", "--dry-run"])
        .output()
        .unwrap();
    assert!(!text(&out.stdout).contains(&old) && !text(&out.stderr).contains(&old));
    assert_eq!(
        std::fs::read_to_string(e.state.join("openclaw.json")).unwrap(),
        imported,
        "rotate left the SecretRef as it was"
    );

    e.set("gateway.auth.token", &new);
    let req = br#"{"protocolVersion":1,"provider":"moltvault","ids":["gateway.auth.token"]}"#;
    let resp = json(&e.provide(req, true).stdout);
    assert_eq!(resp["values"]["gateway.auth.token"], new.as_str());
}
