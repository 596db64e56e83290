//! `moltvault plugin install|status|uninstall` and `moltvault serve --stdio|--sweep`, against a
//! temporary OpenClaw state dir, real files and a real SQLite database; the JS plugin itself is
//! tested against this binary with `node --test` when a Node.js is on PATH.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use moltvault_testutils::secrets::{FakeRng, provider_secrets};
use serde_json::{Value, json};

const PLUGIN_FILES: &[&str] = &[
    "package.json",
    "openclaw.plugin.json",
    "clawdbot.plugin.json",
    "moltbot.plugin.json",
    "index.js",
    "bridge.js",
    "bridge-worker.js",
    "codec.js",
];

/// A temp home with an onboarded-looking OpenClaw state dir whose config holds a gateway token.
struct Home {
    dir: tempfile::TempDir,
    token: String,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".openclaw");
        std::fs::create_dir_all(state.join("agents/main/sessions")).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let token = FakeRng::new(7).hex(48);
        let cfg = json!({
            "gateway": {"mode": "local", "auth": {"mode": "token", "token": token}},
            "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
            "meta": {"lastTouchedVersion": "2026.7.35"}
        });
        std::fs::write(
            state.join("openclaw.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .unwrap();
        Home { dir, token }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join(".openclaw")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("MOLTVAULT_DIR", self.dir.path().join(".moltvault"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        c
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state().join("openclaw.json")).unwrap()).unwrap()
    }
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("moltvault")
}

fn repo_plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/openclaw")
}

#[test]
fn install_copies_the_embedded_plugin_and_enables_it_in_the_config() {
    let home = Home::new();
    let out = home
        .cmd()
        .args(["plugin", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "not installed yet is a finding");

    let out = home.cmd().args(["plugin", "install"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = home.state().join("extensions/moltvault-redact");
    for f in PLUGIN_FILES {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(repo_plugin_dir().join(f)).unwrap(),
            "{f} differs from plugins/openclaw"
        );
    }
    let cfg = home.config();
    let entry = &cfg["plugins"]["entries"]["moltvault-redact"];
    assert_eq!(entry["enabled"], true);
    assert_eq!(entry["config"]["mode"], "all");
    assert_eq!(entry["config"]["failPolicy"], "withhold");
    assert_eq!(
        entry["config"]["binary"],
        bin().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(
        cfg["plugins"]["load"]["paths"],
        json!([dir.to_str().unwrap()])
    );
    // The gateway's own settings survive, and the previous config is kept.
    assert_eq!(cfg["gateway"]["auth"]["token"], home.token.as_str());
    assert!(home.state().join("openclaw.json.moltvault-bak").is_file());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&home.token),
        "install output leaks the gateway token"
    );
    assert!(
        stderr.contains("1 gateway secrets") || stderr.contains("gateway secrets"),
        "{stderr}"
    );

    // Installing again changes nothing.
    let before = std::fs::read(home.state().join("openclaw.json")).unwrap();
    assert!(
        home.cmd()
            .args(["plugin", "install"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let after: Value =
        serde_json::from_slice(&std::fs::read(home.state().join("openclaw.json")).unwrap())
            .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&before).unwrap(), after);

    let out = home
        .cmd()
        .args(["plugin", "status", "--json"])
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{st}");
    assert_eq!(st["enabled"], true);
    assert_eq!(st["files_current"], true);
    assert_eq!(st["engine"]["protocol"], 1);
    assert!(st["engine"]["literals"].as_u64().unwrap() >= 1);
    assert!(st["last_load"].is_null(), "no gateway has loaded it yet");
}

/// The addon `cargo build` leaves next to this binary, if it was built (`cargo test` does not
/// build it; tests/e2e/plugin.sh does, and runs the JS tests with it).
fn built_addon() -> Option<PathBuf> {
    Some(bin().parent()?.join("libmoltvault_node.so")).filter(|p| p.is_file())
}

/// A moltvault binary in a directory of its own (a hard link, so no copy), where the test
/// decides whether an addon sits next to it.
fn lone_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(bin().parent().unwrap()).unwrap();
    let b = dir.path().join("moltvault");
    std::fs::hard_link(bin(), &b).unwrap();
    (dir, b)
}

fn status_json(home: &Home) -> (Option<i32>, Value) {
    let out = home
        .cmd()
        .args(["plugin", "status", "--json"])
        .output()
        .unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[test]
fn install_copies_the_addon_found_next_to_the_binary_and_status_names_the_bridge() {
    let home = Home::new();
    let (bin_dir, binary) = lone_binary();
    let fake_addon = b"\x7fELF not really an addon\n";
    std::fs::write(bin_dir.path().join("libmoltvault_node.so"), fake_addon).unwrap();
    let out = home
        .cmd()
        .args(["plugin", "install", "--binary"])
        .arg(&binary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bridge: addon (moltvault.node from"),
        "{stderr}"
    );
    let dir = home.state().join("extensions/moltvault-redact");
    assert_eq!(
        std::fs::read(dir.join("moltvault.node")).unwrap(),
        fake_addon
    );
    let cfg = home.config()["plugins"]["entries"]["moltvault-redact"]["config"].clone();
    assert_eq!(cfg["bridge"], "auto");
    assert_eq!(cfg["engineVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        cfg["vaultDir"],
        home.dir.path().join(".moltvault").to_str().unwrap()
    );
    assert!(
        cfg.get("addon").is_none(),
        "a copy install loads moltvault.node beside index.js"
    );
    let (code, st) = status_json(&home);
    assert_eq!(code, Some(0), "{st}");
    assert_eq!(st["bridge"], "addon", "{st}");

    // Without an addon next to the binary, the plugin is installed without one (and an old
    // copy is removed): the stdio bridge.
    std::fs::remove_file(bin_dir.path().join("libmoltvault_node.so")).unwrap();
    let out = home
        .cmd()
        .args(["plugin", "install", "--binary"])
        .arg(&binary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bridge: stdio (moltvault serve --stdio; no addon next to"),
        "{stderr}"
    );
    assert!(!dir.join("moltvault.node").exists());
    let (code, st) = status_json(&home);
    assert_eq!(code, Some(0), "{st}");
    assert_eq!(st["bridge"], "stdio");
    assert!(
        st["bridge_note"].as_str().unwrap().contains("no addon at"),
        "{st}"
    );

    // `--bridge addon` insists on one.
    let before = std::fs::read(home.state().join("openclaw.json")).unwrap();
    let out = home
        .cmd()
        .args(["plugin", "install", "--bridge", "addon", "--binary"])
        .arg(&binary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo build -p moltvault-node"));
    assert_eq!(
        std::fs::read(home.state().join("openclaw.json")).unwrap(),
        before
    );
}

#[test]
fn install_takes_the_addon_from_the_flag_or_the_environment() {
    let home = Home::new();
    let (bin_dir, binary) = lone_binary();
    let a = bin_dir.path().join("elsewhere.so");
    std::fs::write(&a, b"addon one").unwrap();
    let out = home
        .cmd()
        .args(["plugin", "install", "--binary"])
        .arg(&binary)
        .arg("--addon")
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = home
        .state()
        .join("extensions/moltvault-redact/moltvault.node");
    assert_eq!(std::fs::read(&node).unwrap(), b"addon one");

    std::fs::write(&a, b"addon two").unwrap();
    let out = home
        .cmd()
        .env("MOLTVAULT_ADDON", &a)
        .args(["plugin", "install", "--binary"])
        .arg(&binary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&node).unwrap(), b"addon two");

    // An explicit addon that does not exist is an error, and nothing changes.
    let before = std::fs::read(home.state().join("openclaw.json")).unwrap();
    let out = home
        .cmd()
        .args([
            "plugin",
            "install",
            "--addon",
            "/nonexistent/moltvault.node",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/moltvault.node"));
    assert_eq!(
        std::fs::read(home.state().join("openclaw.json")).unwrap(),
        before
    );

    // A linked checkout is not written into: the config names the addon instead.
    let out = home
        .cmd()
        .args(["plugin", "install", "--link"])
        .arg(repo_plugin_dir())
        .arg("--addon")
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!repo_plugin_dir().join("moltvault.node").exists());
    assert_eq!(
        home.config()["plugins"]["entries"]["moltvault-redact"]["config"]["addon"],
        a.canonicalize().unwrap().to_str().unwrap()
    );

    // Uninstall removes the copied addon with the rest.
    assert!(
        home.cmd()
            .args(["plugin", "uninstall"])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(!home.state().join("extensions/moltvault-redact").exists());
}

#[test]
fn status_notices_stale_plugin_files() {
    let home = Home::new();
    assert!(
        home.cmd()
            .args(["plugin", "install"])
            .output()
            .unwrap()
            .status
            .success()
    );
    std::fs::write(
        home.state().join("extensions/moltvault-redact/index.js"),
        "// old\n",
    )
    .unwrap();
    let out = home.cmd().args(["plugin", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("differ from this moltvault version"),
        "{text}"
    );
}

#[test]
fn install_link_points_the_gateway_at_a_checkout() {
    let home = Home::new();
    let out = home
        .cmd()
        .args(["plugin", "install", "--link"])
        .arg(repo_plugin_dir())
        .args(["--mode", "tools", "--fail-policy", "passthrough"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = home.config();
    let d = repo_plugin_dir().canonicalize().unwrap();
    assert_eq!(
        cfg["plugins"]["load"]["paths"],
        json!([d.to_str().unwrap()])
    );
    assert_eq!(
        cfg["plugins"]["entries"]["moltvault-redact"]["config"]["mode"],
        "tools"
    );
    assert!(!home.state().join("extensions/moltvault-redact").exists());
}

#[test]
fn install_refuses_a_broken_engine_and_changes_nothing() {
    let home = Home::new();
    let before = std::fs::read(home.state().join("openclaw.json")).unwrap();
    let out = home
        .cmd()
        .args(["plugin", "install", "--binary", "/bin/false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not start"));
    assert_eq!(
        std::fs::read(home.state().join("openclaw.json")).unwrap(),
        before
    );
}

#[test]
fn uninstall_removes_the_entries_and_the_files() {
    let home = Home::new();
    let mut cfg = home.config();
    cfg["plugins"] = json!({"allow": ["other"], "load": {"paths": ["/opt/other-plugin"]}});
    std::fs::write(
        home.state().join("openclaw.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    assert!(
        home.cmd()
            .args(["plugin", "install"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let cfg = home.config();
    assert_eq!(
        cfg["plugins"]["allow"],
        json!(["other", "moltvault-redact"])
    );
    assert_eq!(cfg["plugins"]["load"]["paths"].as_array().unwrap().len(), 2);

    let out = home.cmd().args(["plugin", "uninstall"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = home.config();
    assert!(cfg["plugins"]["entries"].get("moltvault-redact").is_none());
    assert_eq!(cfg["plugins"]["allow"], json!(["other"]));
    assert_eq!(
        cfg["plugins"]["load"]["paths"],
        json!(["/opt/other-plugin"])
    );
    assert!(!home.state().join("extensions/moltvault-redact").exists());
}

/// A running `moltvault serve --stdio` child.
struct Serve {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Serve {
    fn start(home: &Home) -> Serve {
        let mut child = StdCommand::new(bin())
            .env_clear()
            .env("HOME", home.dir.path())
            .env("MOLTVAULT_DIR", home.dir.path().join(".moltvault"))
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Serve { child, out }
    }

    fn call_raw(&mut self, line: &str) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        let mut reply = String::new();
        self.out.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    }

    fn call(&mut self, req: Value) -> Value {
        self.call_raw(&req.to_string())
    }

    /// One protocol-2 frame: the header (its `len` set here) and the payload; returns the reply
    /// header and payload.
    fn call_framed(&mut self, mut header: Value, payload: &[u8]) -> (Value, Vec<u8>) {
        header["len"] = json!(payload.len());
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(header.to_string().as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.write_all(payload).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let rep: Value = serde_json::from_str(&line).unwrap();
        let mut body = vec![0; rep["len"].as_u64().unwrap_or(0) as usize];
        self.out.read_exact(&mut body).unwrap();
        (rep, body)
    }

    /// A `patch` request: the skeleton and the long strings it references as `{"$mv": i}`.
    fn patch(&mut self, id: u64, skeleton: &Value, strings: &[&str]) -> (Value, Vec<u8>) {
        let mut payload = skeleton.to_string().into_bytes();
        let sk = payload.len();
        for s in strings {
            payload.extend_from_slice(s.as_bytes());
        }
        let lens: Vec<usize> = strings.iter().map(|s| s.len()).collect();
        self.call_framed(
            json!({"id": id, "op": "patch", "skeleton": sk, "strings": lens}),
            &payload,
        )
    }
}

/// The `[pointer, new text]` pairs of a `changed` patch reply.
fn patch_entries(rep: &Value, body: &[u8]) -> Vec<(String, String)> {
    let mut at = 0;
    let out = rep["patch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = e[1].as_u64().unwrap() as usize;
            let text = String::from_utf8(body[at..at + n].to_vec()).unwrap();
            at += n;
            (e[0].as_str().unwrap().to_string(), text)
        })
        .collect();
    assert_eq!(at, body.len(), "the payload is exactly the patch texts");
    out
}

impl Drop for Serve {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn serve_redacts_messages_with_the_engine_and_the_gateway_token() {
    let home = Home::new();
    let mut serve = Serve::start(&home);
    let hello = serve.call(
        json!({"id": 1, "op": "hello", "client": {"pid": std::process::id(), "process": "test"}}),
    );
    assert_eq!(hello["ok"], true);
    assert_eq!(hello["protocol"], 1);
    assert!(hello["rules"].as_u64().unwrap() > 10, "{hello}");
    assert_eq!(
        hello["literals"], 1,
        "the gateway token is loaded from the config"
    );
    // The hello with a client records who loaded the plugin.
    let rec: Value = serde_json::from_slice(
        &std::fs::read(home.state().join("moltvault/plugin-loaded.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["pid"], std::process::id());

    let mut rng = FakeRng::new(11);
    let secrets = provider_secrets(&mut rng);
    let planted: String = secrets
        .iter()
        .map(|s| format!("{}\n", s.text))
        .collect::<String>()
        + &home.token;
    let msg = json!({
        "role": "toolResult", "toolCallId": "call_abc", "toolName": "exec",
        "content": [{"type": "text", "text": planted}],
        "details": {"aggregated": planted, "exitCode": 0}, "isError": false, "timestamp": 1
    });
    let rep = serve.call(json!({"id": 2, "op": "redact", "value": msg}));
    assert_eq!(rep["ok"], true, "{rep}");
    assert_eq!(rep["changed"], true);
    let text = rep["value"].to_string();
    for s in &secrets {
        assert!(!text.contains(&s.secret), "{} survived", s.rule);
    }
    assert!(!text.contains(&home.token), "the gateway token survived");
    assert!(text.contains("[REDACTED:gateway-auth-token:"), "{text}");
    assert_eq!(rep["value"]["toolCallId"], "call_abc");
    let findings = rep["findings"].as_array().unwrap();
    assert!(findings.len() >= secrets.len());
    assert!(!rep["findings"].to_string().contains(&home.token));

    // Clean: a tiny reply without the value.
    let rep =
        serve.call(json!({"id": 3, "op": "redact", "value": {"role": "user", "content": "hi"}}));
    assert_eq!(rep, json!({"id": 3, "ok": true, "changed": false}));
    // Idempotent: the redacted value comes back unchanged.
    let again =
        serve.call(json!({"id": 4, "op": "redact", "value": rep_value_of(&serve_redacted(&home))}));
    assert_eq!(again["changed"], false, "{again}");
}

fn serve_redacted(home: &Home) -> Value {
    let mut s = Serve::start(home);
    let gh = provider_secrets(&mut FakeRng::new(3))
        .into_iter()
        .find(|s| s.rule == "github-pat")
        .unwrap();
    s.call(json!({"id": 1, "op": "redact", "value": {"role": "user", "content": gh.text}}))
}

fn rep_value_of(rep: &Value) -> Value {
    assert_eq!(rep["changed"], true, "{rep}");
    rep["value"].clone()
}

#[test]
fn serve_negotiates_the_protocol_in_the_hello() {
    let home = Home::new();
    let mut serve = Serve::start(&home);
    // A protocol-1 plugin names no version and keeps protocol 1.
    let old = serve.call(json!({"id": 1, "op": "hello"}));
    assert_eq!(
        (old["protocol"].clone(), old["protocols"].clone()),
        (json!(1), json!([1, 2]))
    );
    let new = serve.call(json!({"id": 2, "op": "hello", "protocol": 2}));
    assert_eq!(new["protocol"], 2);
    let future = serve.call(json!({"id": 3, "op": "hello", "protocol": 9}));
    assert_eq!(
        future["protocol"], 2,
        "the engine answers with the newest it speaks"
    );
}

#[test]
fn serve_gives_the_addon_its_inputs_the_vault_dir_and_the_gateway_literals() {
    let home = Home::new();
    let mut serve = Serve::start(&home);
    let hello = serve.call(json!({"id": 1, "op": "hello", "protocol": 2}));
    let rep = serve.call(json!({"id": 2, "op": "inputs"}));
    assert_eq!(rep["ok"], true);
    assert_eq!(
        rep["vaultDir"],
        home.dir.path().join(".moltvault").to_str().unwrap()
    );
    let lits = rep["literals"].as_array().unwrap();
    assert_eq!(lits.len() as u64, hello["literals"].as_u64().unwrap());
    assert!(
        lits.iter().any(|l| l["value"] == home.token.as_str()),
        "the gateway token is one of the literals"
    );
    assert!(lits.iter().all(|l| l["id"].is_string()));
}

#[test]
fn serve_patch_redacts_long_and_short_strings_and_answers_with_a_patch() {
    let home = Home::new();
    let mut serve = Serve::start(&home);
    let gh = provider_secrets(&mut FakeRng::new(21))
        .into_iter()
        .find(|s| s.rule == "github-pat")
        .unwrap();
    // 150 KB, referenced twice (content and details): big enough for the two-thread split.
    let filler = "Finished target/debug 200 ok ✓ naïve\n".repeat(4000);
    let long = format!("{filler}export T={} done\n{filler}", gh.text);
    let skeleton = json!({
        "role": "toolResult", "toolCallId": "call_7", "toolName": "exec",
        "content": [{"type": "text", "text": {"$mv": 0}}, {"type": "text", "text": format!("inline {}", home.token)}],
        "details": {"aggregated": {"$mv": 0}, "exitCode": 0, "nested": [[{"a/b": format!("x {}", gh.text)}]]},
        "isError": false
    });
    let (rep, body) = serve.patch(5, &skeleton, &[&long]);
    assert_eq!(
        (rep["id"].clone(), rep["ok"].clone(), rep["changed"].clone()),
        (json!(5), json!(true), json!(true)),
        "{rep}"
    );
    let entries = patch_entries(&rep, &body);
    let pointers: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/content/0/text",
            "/content/1/text",
            "/details/aggregated",
            "/details/nested/0/0/a~1b"
        ]
    );
    for (_, text) in &entries {
        assert!(
            !text.contains(&gh.secret) && !text.contains(&home.token),
            "{text:.200}"
        );
        assert!(text.contains("[REDACTED:"));
    }
    let (_, redacted) = &entries[0];
    assert!(redacted.starts_with(&filler) && redacted.ends_with(&format!("done\n{filler}")));
    assert_eq!(
        entries[0].1, entries[2].1,
        "both copies redacted the same way"
    );
    assert_eq!(rep["findings"].as_array().unwrap().len(), 4);
    let wire = rep.to_string() + &String::from_utf8_lossy(&body);
    assert!(!wire.contains(&gh.secret) && !wire.contains(&home.token));

    // A clean message: a header, no payload.
    let (rep, body) = serve.patch(
        6,
        &json!({"role": "toolResult", "content": [{"type": "text", "text": {"$mv": 0}}]}),
        &[&filler],
    );
    assert_eq!(rep, json!({"id": 6, "ok": true, "changed": false}));
    assert!(body.is_empty());
    // Structural fields are never patched, however secret-looking.
    let (rep, _) = serve.patch(
        7,
        &json!({"role": "user", "id": gh.text, "content": "hi"}),
        &[],
    );
    assert_eq!(rep["changed"], false, "{rep}");
}

#[test]
fn serve_patch_rejects_bad_frames_without_echoing_them_and_keeps_serving() {
    let home = Home::new();
    let mut serve = Serve::start(&home);
    let gh = provider_secrets(&mut FakeRng::new(22))
        .into_iter()
        .find(|s| s.rule == "github-pat")
        .unwrap();
    let secret_sk = json!({"content": {"$mv": 0}, "x": gh.text}).to_string();
    let bad_ref = json!({"content": {"$mv": 1}, "x": gh.text}).to_string();
    let cases: Vec<(Value, Vec<u8>, &str)> = vec![
        // The lengths do not add up to the payload.
        (
            json!({"id": 1, "op": "patch", "skeleton": 3, "strings": [5]}),
            secret_sk.clone().into_bytes(),
            "add up",
        ),
        // A reference to a string that was not sent.
        (
            json!({"id": 2, "op": "patch", "skeleton": bad_ref.len(), "strings": [3]}),
            [bad_ref.as_bytes(), b"abc"].concat(),
            "names no string",
        ),
        // A string that is not UTF-8.
        (
            json!({"id": 3, "op": "patch", "skeleton": secret_sk.len(), "strings": [3]}),
            [secret_sk.as_bytes(), &[0xff, 0xfe, b'a']].concat(),
            "not UTF-8",
        ),
        // A skeleton that is not JSON.
        (
            json!({"id": 4, "op": "patch", "skeleton": secret_sk.len() - 1, "strings": []}),
            secret_sk.as_bytes()[..secret_sk.len() - 1].to_vec(),
            "not JSON",
        ),
        (
            json!({"id": 5, "op": "frobnicate"}),
            secret_sk.clone().into_bytes(),
            "unknown op",
        ),
        (
            json!({"id": 6, "op": "patch"}),
            secret_sk.clone().into_bytes(),
            "skeleton length",
        ),
    ];
    for (header, payload, want) in cases {
        let (rep, body) = serve.call_framed(header.clone(), &payload);
        assert_eq!(rep["ok"], false, "{header}: {rep}");
        assert_eq!(rep["id"], header["id"]);
        assert!(
            rep["error"].as_str().unwrap().contains(want),
            "{header}: {rep}"
        );
        assert!(!rep.to_string().contains(&gh.secret));
        assert!(body.is_empty());
    }
    // Without strings, nothing is a reference: a message's own `{"$mv": 0}` is data.
    let (rep, body) = serve.patch(9, &json!({"args": {"$mv": 0}, "x": gh.text}), &[]);
    let entries = patch_entries(&rep, &body);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "/x");
    // A patch without a payload, over the line protocol.
    assert_eq!(serve.call(json!({"id": 7, "op": "patch"}))["ok"], false);
    // Every payload was consumed: the stream is still in step.
    assert_eq!(
        serve.call(json!({"id": 8, "op": "ping"})),
        json!({"id": 8, "ok": true})
    );
}

#[test]
fn serve_answers_bad_requests_without_echoing_them() {
    let home = Home::new();
    let mut serve = Serve::start(&home);
    let gh = provider_secrets(&mut FakeRng::new(5))
        .into_iter()
        .find(|s| s.rule == "github-pat")
        .unwrap();
    let rep = serve.call_raw(&format!(
        "{{\"id\":1,\"op\":\"redact\",\"value\":\"{}",
        gh.secret
    ));
    assert_eq!(rep["ok"], false);
    assert!(!rep.to_string().contains(&gh.secret));
    let rep = serve.call(json!({"id": 2, "op": "frobnicate"}));
    assert_eq!(rep["ok"], false);
    let rep = serve.call(json!({"id": 3, "op": "redact"}));
    assert_eq!(rep["ok"], false);
    // Still serving.
    assert_eq!(
        serve.call(json!({"id": 4, "op": "ping"})),
        json!({"id": 4, "ok": true})
    );
}

#[test]
fn sweep_redacts_transcripts_sidecars_and_trajectory_rows_in_place() {
    let home = Home::new();
    let sessions = home.state().join("agents/main/sessions");
    let gh = provider_secrets(&mut FakeRng::new(9))
        .into_iter()
        .find(|s| s.rule == "github-pat")
        .unwrap();
    let transcript = sessions.join("s1.jsonl");
    let lines = [
        json!({"type": "session", "version": 3, "id": "s1", "timestamp": "t", "cwd": "/w"}).to_string(),
        json!({"type": "message", "id": "a1b2c3d4", "parentId": null, "message": {"role": "assistant", "content": [{"type": "text", "text": format!("said {}", gh.text)}], "api": "cli"}}).to_string(),
        json!({"type": "message", "id": "e5f6a7b8", "parentId": "a1b2c3d4", "message": {"role": "user", "content": "clean line"}}).to_string(),
    ];
    std::fs::write(&transcript, lines.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&transcript, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sidecar = sessions.join("s1.trajectory.jsonl");
    std::fs::write(
        &sidecar,
        json!({"type": "tool.result", "data": {"content": home.token}}).to_string() + "\n",
    )
    .unwrap();

    let db_path = home.state().join("agents/main/agent/openclaw-agent.sqlite");
    std::fs::create_dir_all(db_path.parent().unwrap()).unwrap();
    {
        let db = rusqlite::Connection::open(&db_path).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE trajectory_runtime_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL, run_id TEXT,
               event_json TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq)) STRICT;",
        )
        .unwrap();
        let ev = json!({"type": "tool.call", "data": {"args": {"command": format!("echo {}", gh.text)}}}).to_string();
        db.execute(
            "INSERT INTO trajectory_runtime_events VALUES ('s1', 1, 'r1', ?1, 1795630124788)",
            [ev],
        )
        .unwrap();
        db.execute("INSERT INTO trajectory_runtime_events VALUES ('s1', 2, 'r1', '{\"type\":\"x\"}', 1795630124789)", []).unwrap();
    }

    let out = home
        .cmd()
        .args(["serve", "--sweep", "--settle-ms", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("swept 2 file(s) and 1 row(s)"), "{stderr}");

    let t = std::fs::read_to_string(&transcript).unwrap();
    assert!(
        !t.contains(&gh.secret) && t.contains("[REDACTED:github-pat:"),
        "{t}"
    );
    let new_lines: Vec<&str> = t.lines().collect();
    assert_eq!(new_lines.len(), 3);
    assert_eq!(
        new_lines[0], lines[0],
        "unchanged lines are kept byte for byte"
    );
    assert_eq!(new_lines[2], lines[2]);
    assert_eq!(
        std::fs::metadata(&transcript).unwrap().permissions().mode() & 0o777,
        0o644,
        "the transcript keeps its mode"
    );
    assert!(
        !std::fs::read_to_string(&sidecar)
            .unwrap()
            .contains(&home.token)
    );
    assert!(
        !sessions.join("s1.jsonl.lock").exists(),
        "the sweep releases the lock"
    );
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let ev: String = db
        .query_row(
            "SELECT event_json FROM trajectory_runtime_events WHERE seq = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !ev.contains(&gh.secret) && ev.contains("[REDACTED:"),
        "{ev}"
    );

    // Idempotent: a second sweep changes nothing.
    let out = home
        .cmd()
        .args(["serve", "--sweep", "--settle-ms", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("swept 0 file(s) and 0 row(s)"));
}

#[test]
fn sweep_waits_for_a_live_transcript_lock() {
    let home = Home::new();
    let sessions = home.state().join("agents/main/sessions");
    let gh = provider_secrets(&mut FakeRng::new(13))
        .into_iter()
        .find(|s| s.rule == "github-pat")
        .unwrap();
    std::fs::write(
        sessions.join("s2.jsonl"),
        json!({"type": "message", "id": "x", "message": {"role": "user", "content": gh.text}})
            .to_string()
            + "\n",
    )
    .unwrap();
    // A lock held by this (live) test process: the sweep must wait for its release.
    let lock = sessions.join("s2.jsonl.lock");
    std::fs::write(
        &lock,
        json!({"pid": std::process::id(), "createdAt": "now"}).to_string(),
    )
    .unwrap();
    let mut child = StdCommand::new(bin())
        .env_clear()
        .env("HOME", home.dir.path())
        .env("MOLTVAULT_DIR", home.dir.path().join(".moltvault"))
        .args(["serve", "--sweep", "--settle-ms", "0"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sweep did not wait for the lock"
    );
    assert!(
        std::fs::read_to_string(sessions.join("s2.jsonl"))
            .unwrap()
            .contains(&gh.secret)
    );
    std::fs::remove_file(&lock).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        !std::fs::read_to_string(sessions.join("s2.jsonl"))
            .unwrap()
            .contains(&gh.secret)
    );
}

/// The JS plugin against this binary (`node --test`), when Node.js ≥ 20 is available.
#[test]
#[allow(clippy::print_stderr)] // says why it skipped
fn js_plugin_tests_pass_against_this_binary() {
    let Ok(v) = StdCommand::new("node").arg("--version").output() else {
        eprintln!("skipped: no node on PATH");
        return;
    };
    let major: u32 = String::from_utf8_lossy(&v.stdout)
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        eprintln!("skipped: node {major} is older than 20");
        return;
    }
    let home = Home::new();
    let out = StdCommand::new("node")
        .arg("--test")
        .arg(repo_plugin_dir().join("test/plugin.test.mjs"))
        .env("MOLTVAULT_BIN", bin())
        .env("MOLTVAULT_TEST_STATE_DIR", home.state())
        .env("MOLTVAULT_TEST_GATEWAY_TOKEN", &home.token)
        .envs(built_addon().map(|a| ("MOLTVAULT_TEST_ADDON", a)))
        .env("HOME", home.dir.path())
        .env("MOLTVAULT_DIR", home.dir.path().join(".moltvault"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
