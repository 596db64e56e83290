//! `moltvault rotate` on secrets that `moltvault secrets import` moved into the vault: the
//! config keeps its exec SecretRefs byte for byte, the store gets the new values, a locked run
//! fails before changing anything, and an interrupted run resumes.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

/// A fake OpenAI project key of the real shape, assembled from fragments so the repository
/// does not trip secret scanners.
fn openai_key(seed: char) -> String {
    let body: String = std::iter::repeat_n(seed, 40).collect();
    format!("{}{}{body}{}{}{body}", "sk-", "proj-", "T3Blbk", "FJ")
}

/// A fake gateway token (64 hex digits).
fn gateway_token(seed: char) -> String {
    std::iter::repeat_n(seed, 64).collect()
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    vault: PathBuf,
    state: PathBuf,
}

impl Env {
    /// A home with a real vault (fast scrypt: tests only) and a gateway whose token and OpenAI
    /// key were imported into the vault's secrets store.
    fn imported(token: &str, key: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        let vault = home.join(".moltvault");
        let mut opts = moltvault_vault::InitOptions::new(secrecy::SecretString::from(PASS));
        opts.work_factor = 10;
        moltvault_vault::Vault::init(&vault, opts).unwrap();
        let state = home.join(".openclaw");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("openclaw.json"),
            format!(
                r#"{{"meta":{{"lastTouchedVersion":"2026.9.6"}},"gateway":{{"port":18997,"auth":{{"mode":"token","token":"{token}"}}}},"models":{{"providers":{{"openai":{{"apiKey":"{key}"}}}}}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(root.join("pass"), format!("{PASS}\n")).unwrap();
        std::fs::write(root.join("openai.txt"), format!("{}\n", openai_key('N'))).unwrap();
        std::fs::write(
            root.join("answers.toml"),
            "\"models.providers.openai.apiKey\" = { file = \"openai.txt\", revoked = true }\n",
        )
        .unwrap();
        let e = Env {
            _tmp: tmp,
            root,
            home,
            vault,
            state,
        };
        let out = e.cmd().args(["secrets", "import"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        e
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        c.env_clear()
            .env("HOME", &self.home)
            .env("MOLTVAULT_DIR", &self.vault)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(&self.root)
            .arg("--state-dir")
            .arg(&self.state);
        c
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.state.join("openclaw.json")).unwrap()
    }

    fn rotate(&self, extra: &[&str], failpoint: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args([
            "rotate",
            "gateway.auth.token",
            "models.providers.openai.apiKey",
            "--answers",
            "answers.toml",
            "--allow-running",
            "--sweep",
            "report",
        ])
        .args(extra);
        if let Some(f) = failpoint {
            c.env("MOLTVAULT_FAILPOINT", f);
        }
        c.output().unwrap()
    }

    /// The values `secrets provide` serves for the config's two SecretRef ids.
    fn provided(&self, ids: &[String]) -> Value {
        let req = serde_json::json!({"protocolVersion": 1, "provider": "moltvault", "ids": ids});
        let out = self
            .cmd()
            .env("MOLTVAULT_PASSPHRASE", PASS)
            .args(["secrets", "provide"])
            .write_stdin(req.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["values"].clone()
    }

    /// The store ids the config's SecretRefs name.
    fn ref_ids(&self) -> Vec<String> {
        let v: Value = serde_json::from_str(&self.config()).unwrap();
        ["/gateway/auth/token", "/models/providers/openai/apiKey"]
            .iter()
            .map(|p| {
                let r = v.pointer(p).unwrap_or_else(|| panic!("{p} in {v}"));
                assert_eq!(r["source"], "exec", "{p} is an exec SecretRef: {r}");
                r["id"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn status(&self) -> Value {
        let out = self
            .cmd()
            .args(["rotate", "status", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every regular file's bytes under `dir`, concatenated (lossy text).
fn all_text(dir: &Path) -> String {
    fn walk(d: &Path, out: &mut String) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, out);
            } else if m.is_file() {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut s = String::new();
    walk(dir, &mut s);
    s
}

fn assert_rotated(e: &Env, before: &str, old: &[&str], outputs: &str) {
    assert_eq!(
        e.config(),
        before,
        "the config keeps its SecretRefs byte for byte"
    );
    let ids = e.ref_ids();
    let values = e.provided(&ids);
    let token = values[&ids[0]].as_str().unwrap();
    assert_eq!(values[&ids[1]], openai_key('N').as_str());
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) && token != old[0],
        "a new generated gateway token"
    );
    let vault_files = all_text(&e.vault);
    for v in old.iter().chain([token, openai_key('N').as_str()].iter()) {
        assert!(!vault_files.contains(v), "no value in clear in the vault");
        assert!(!outputs.contains(v), "no value in any output");
    }
    let status = e.status();
    let items = status["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{status}");
    for it in items {
        assert_eq!(it["state"], "DONE", "{it}");
    }
}

/// The store's metadata (`secrets list --json`), by id.
fn store_meta(e: &Env) -> Vec<Value> {
    let out = e
        .cmd()
        .args(["secrets", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// Each entry keeps its id, provider and origin; its fp8 follows the new value.
fn assert_meta_follows(before: &[Value], after: &[Value]) {
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(after) {
        assert_eq!(
            (&b["id"], &b["provider"], &b["origin"]),
            (&a["id"], &a["provider"], &a["origin"])
        );
        assert_ne!(b["fp8"], a["fp8"], "{b} → {a}");
        assert_eq!(a["fp8"].as_str().unwrap().len(), 8);
    }
}

#[test]
fn rotate_rewrites_values_kept_in_the_vault_and_leaves_the_secretrefs() {
    let (token, key) = (gateway_token('a'), openai_key('O'));
    let e = Env::imported(&token, &key);
    let before = e.config();
    assert!(!before.contains(&token) && !before.contains(&key));

    // Listing needs no unlock: the items show with the store's fp8 and their vault id.
    let out = e.cmd().args(["rotate", "--list"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    assert!(list.contains("gateway.auth.token"), "{list}");
    assert!(list.contains("vault:"), "{list}");
    // With an identity source, they are regular items with a fingerprint.
    let out = e
        .cmd()
        .args(["rotate", "--list", "--json", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gateway.auth.token"), "{v}");
    assert!(ids.contains(&"models.providers.openai.apiKey"), "{v}");

    // Locked: no identity source → a clear error, nothing changed, no run started.
    let store_before = all_text(&e.vault.join("secrets"));
    let out = e.rotate(&[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("locked") && err.contains("--passphrase-file"),
        "{err}"
    );
    assert_eq!(e.config(), before);
    assert_eq!(all_text(&e.vault.join("secrets")), store_before);
    assert!(!e.vault.join("rotation/active").exists());

    let meta = store_meta(&e);
    let out = e.rotate(&["--passphrase-file", "pass"], None);
    let outputs = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{outputs}");
    let report_path = outputs
        .split("report: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap_or_else(|| panic!("a report path in {outputs}"));
    let report = std::fs::read_to_string(report_path.trim()).unwrap();
    assert!(report.contains("openclaw secrets reload"), "{report}");
    assert_rotated(&e, &before, &[&token, &key], &(outputs + &report));
    assert_meta_follows(&meta, &store_meta(&e));
}

#[test]
fn an_interrupted_vault_rotation_resumes() {
    let (token, key) = (gateway_token('b'), openai_key('P'));
    let e = Env::imported(&token, &key);
    let before = e.config();
    let meta = store_meta(&e);
    let out = e.rotate(
        &["--passphrase-file", "pass"],
        Some("after:write:gateway.auth.token:0"),
    );
    assert!(!out.status.success(), "the failpoint kills the run");
    let mut outputs = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let out = e
        .cmd()
        .args([
            "rotate",
            "resume",
            "--answers",
            "answers.toml",
            "--sweep",
            "report",
            "--passphrase-file",
            "pass",
        ])
        .output()
        .unwrap();
    outputs.push_str(&text(&out.stdout));
    outputs.push_str(&text(&out.stderr));
    assert!(out.status.success(), "{outputs}");
    assert_rotated(&e, &before, &[&token, &key], &outputs);
    assert_meta_follows(&meta, &store_meta(&e));
}
