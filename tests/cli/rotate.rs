//! `moltvault rotate` end to end on a sample gateway home holding every kind of secret:
//! inventory, a full scripted run, SIGKILL-style crashes at every durable step followed by
//! `rotate resume`, and the rule that no secret value reaches any output, journal or report.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

/// Deterministic fake secret bodies (xorshift), prefixes assembled from fragments so the
/// repository holds no literal token.
struct Gen(u64);

impl Gen {
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                alphabet[(self.0 % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        self.chars(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            n,
        )
    }
    fn hex(&mut self, n: usize) -> String {
        self.chars(b"0123456789abcdef", n)
    }
    fn digits(&mut self, n: usize) -> String {
        self.chars(b"0123456789", n)
    }
    fn telegram(&mut self, bot: &str) -> String {
        format!("{bot}:{}{}", "AA", self.alnum(33))
    }
    fn discord(&mut self, id: &str) -> String {
        format!("{id}.{}.{}", self.alnum(6), self.alnum(38))
    }
    fn slack_bot(&mut self) -> String {
        format!(
            "{}{}-{}-{}",
            "xox",
            "b-".to_owned() + &self.digits(12),
            self.digits(13),
            self.alnum(24)
        )
    }
    fn slack_app(&mut self) -> String {
        format!(
            "{}{}-1-A{}-{}-{}",
            "xa",
            "pp",
            self.digits(10).to_uppercase(),
            self.digits(13),
            self.hex(64)
        )
    }
    fn anthropic(&mut self) -> String {
        format!("{}{}{}{}", "sk-", "ant-api03-", self.alnum(93), "AA")
    }
    fn openai(&mut self) -> String {
        format!(
            "{}{}{}{}{}",
            "sk-",
            "proj-",
            self.alnum(74),
            "T3Blbk".to_owned() + "FJ",
            self.alnum(74)
        )
    }
    fn gemini(&mut self) -> String {
        format!("{}{}", "AI".to_owned() + "za", self.alnum(35))
    }
    fn openrouter(&mut self) -> String {
        format!("{}{}{}", "sk-", "or-v1-", self.hex(64))
    }
}

/// The old (compromised) values of the sample home and the new values the answers give.
struct Secrets {
    old: BTreeMap<&'static str, String>,
    new: BTreeMap<&'static str, String>,
}

fn secrets() -> Secrets {
    let mut g = Gen(0x5eed_1234_abcd_0001);
    let mut old = BTreeMap::new();
    old.insert("gateway", g.hex(48));
    old.insert("hooks", g.hex(48));
    old.insert("telegram", g.telegram("123456789"));
    old.insert("discord", g.discord("MTIzNDU2Nzg5MDEyMzQ1Njc4"));
    old.insert("slack-bot", g.slack_bot());
    old.insert("slack-app", g.slack_app());
    old.insert("anthropic", g.anthropic());
    old.insert("openai", g.openai());
    old.insert("gemini", g.gemini());
    old.insert("openrouter", g.openrouter());
    old.insert("stale-anthropic", g.anthropic());
    old.insert("device", g.hex(43));
    let mut new = BTreeMap::new();
    new.insert("telegram", g.telegram("123456789"));
    new.insert("discord", g.discord("MTIzNDU2Nzg5MDEyMzQ1Njc4"));
    new.insert("slack-bot", g.slack_bot());
    new.insert("slack-app", g.slack_app());
    new.insert("anthropic", g.anthropic());
    new.insert("openai", g.openai());
    new.insert("gemini", g.gemini());
    new.insert("openrouter", g.openrouter());
    Secrets { old, new }
}

/// A temporary home with an OpenClaw gateway holding every secret kind, a vault, an answers
/// file and a fake `openclaw` on PATH (records `devices clear`).
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(s: &Secrets) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let h = Home { dir };
        let o = &s.old;
        let sd = h.state();
        fs::create_dir_all(sd.join("agents/main/agent")).unwrap();
        fs::create_dir_all(sd.join("agents/main/sessions")).unwrap();
        fs::create_dir_all(sd.join("devices")).unwrap();
        // Port 9 (discard) is closed here: the gateway counts as stopped.
        let cfg = format!(
            r#"// written by hand
{{
  gateway: {{
    port: 9,
    auth: {{ mode: "token", token: "{gw}" }},
    remote: {{ token: "{gw}" }},
  }},
  hooks: {{ enabled: true, token: "{hk}" }},
  channels: {{
    telegram: {{ botToken: "{tg}" }},
    discord: {{ token: "{dc}" }},
    slack: {{ botToken: "{sb}", appToken: "{sa}" }},
  }},
  models: {{ providers: {{
    anthropic: {{ apiKey: "{an}" }},
    openrouter: {{ apiKey: "{or}" }},
    local: {{ apiKey: "${{LOCAL_KEY}}" }},
  }} }},
}}
"#,
            gw = o["gateway"],
            hk = o["hooks"],
            tg = o["telegram"],
            dc = o["discord"],
            sb = o["slack-bot"],
            sa = o["slack-app"],
            an = o["anthropic"],
            or = o["openrouter"],
        );
        write(&sd.join("openclaw.json"), &cfg, 0o600);
        write(
            &sd.join("openclaw.json.bak"),
            &format!(
                "{{\n  \"gateway\": {{ \"auth\": {{ \"token\": \"{}\" }} }},\n  \"models\": {{ \"providers\": {{ \"anthropic\": {{ \"apiKey\": \"{}\" }} }} }}\n}}\n",
                o["gateway"], o["stale-anthropic"]
            ),
            0o600,
        );
        write(
            &sd.join(".env"),
            &format!(
                "# keys\nexport OPENAI_API_KEY=\"{}\"\nGEMINI_API_KEY={}\n",
                o["openai"], o["gemini"]
            ),
            0o600,
        );
        write(
            &h.path(".config/systemd/user/openclaw-gateway.service"),
            &format!(
                "[Unit]\nDescription=OpenClaw Gateway\n\n[Service]\nExecStart=/usr/bin/openclaw gateway\nEnvironment=HOME={} \"OPENCLAW_GATEWAY_TOKEN={}\"\n",
                h.dir.path().display(),
                o["gateway"]
            ),
            0o644,
        );
        write(
            &sd.join("agents/main/agent/auth-profiles.json"),
            &format!(
                "{{\n  \"version\": 1,\n  \"profiles\": {{\n    \"openai:default\": {{ \"type\": \"api_key\", \"provider\": \"openai\", \"key\": \"{}\" }}\n  }}\n}}\n",
                o["openai"]
            ),
            0o600,
        );
        write(
            &sd.join("agents/main/agent/models.json"),
            &format!(
                "{{\n  \"providers\": {{\n    \"anthropic\": {{ \"baseUrl\": \"https://api.anthropic.com\", \"apiKey\": \"{}\" }}\n  }}\n}}\n",
                o["anthropic"]
            ),
            0o600,
        );
        write(
            &sd.join("devices/paired.json"),
            &format!(
                "{{\"dev1\":{{\"deviceId\":\"dev1\",\"tokens\":{{\"operator\":{{\"token\":\"{}\"}}}}}}}}\n",
                o["device"]
            ),
            0o600,
        );
        write(
            &sd.join("agents/main/sessions/s1.jsonl"),
            &format!(
                "{{\"type\":\"message\",\"message\":{{\"role\":\"user\",\"content\":\"my bot token is {} ok\"}}}}\n{{\"type\":\"message\",\"message\":{{\"role\":\"toolResult\",\"content\":\"ANTHROPIC_API_KEY={}\\nOPENAI_API_KEY={}\"}}}}\n",
                o["telegram"], o["anthropic"], o["openai"]
            ),
            0o600,
        );
        // Answers: a file per pasted value, revocation attested.
        let mut answers = String::new();
        for (id, key) in [
            ("channels.telegram.botToken", "telegram"),
            ("channels.discord.token", "discord"),
            ("channels.slack.botToken", "slack-bot"),
            ("channels.slack.appToken", "slack-app"),
            ("models.providers.anthropic.apiKey", "anthropic"),
            ("models.providers.openrouter.apiKey", "openrouter"),
            ("env.OPENAI_API_KEY", "openai"),
            ("env.GEMINI_API_KEY", "gemini"),
        ] {
            // Pasted with a stray newline and quotes: cleaned by the flow.
            write(
                &h.path(&format!("answers/{key}.txt")),
                &format!("\"{}\"\n", s.new[key]),
                0o600,
            );
            answers.push_str(&format!(
                "\"{id}\" = {{ file = \"{key}.txt\", revoked = true }}\n"
            ));
        }
        write(&h.path("answers/answers.toml"), &answers, 0o600);
        write(&h.path("pass"), &format!("{PASS}\n"), 0o600);
        write(
            &h.path("bin/openclaw"),
            &format!(
                "#!/bin/sh\necho \"$@\" >> {}\n",
                h.path("openclaw-calls.log").display()
            ),
            0o755,
        );
        h
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.path(".openclaw")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        c.env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", self.dir.path())
            .env("MOLTVAULT_TESTONLY_WEAKEN_KDF", "1")
            .current_dir(self.dir.path());
        c
    }

    fn init_vault(&self) {
        let out = self
            .cmd()
            .args([
                "init",
                "--passphrase-file",
                "pass",
                "--recovery-file",
                "rec.txt",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    fn rotate_all(&self, failpoint: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args([
            "rotate",
            "--all",
            "--answers",
            "answers/answers.toml",
            "--sweep",
            "redact",
        ]);
        if let Some(f) = failpoint {
            c.env("MOLTVAULT_FAILPOINT", f);
        }
        c.output().unwrap()
    }

    fn resume(&self) -> Output {
        self.cmd()
            .args([
                "rotate",
                "resume",
                "--answers",
                "answers/answers.toml",
                "--sweep",
                "redact",
                "--passphrase-file",
                "pass",
            ])
            .output()
            .unwrap()
    }

    /// Every regular file under the home (the vault and answers included).
    fn all_files(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(&e.path(), out);
                } else if t.is_file() {
                    out.push(e.path());
                }
            }
        }
        let mut v = Vec::new();
        walk(self.dir.path(), &mut v);
        v
    }

    fn journal(&self) -> (Vec<Value>, PathBuf) {
        let runs = self.path(".moltvault/rotation/runs");
        let run = fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
        let j = fs::read_to_string(run.join("journal.jsonl")).unwrap();
        (
            j.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            run,
        )
    }
}

fn write(p: &Path, s: &str, mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, s).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json5(p: &Path) -> Value {
    let t = fs::read_to_string(p).unwrap();
    serde_json::from_str(&t).unwrap_or_else(|_| json5_parse(&t))
}

/// Minimal JSON5 reading for the test: strip `//` comments, quote bare keys, drop trailing
/// commas (enough for the sample config written above).
fn json5_parse(t: &str) -> Value {
    let no_comments: String = t
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let re_key = regex_lite(&no_comments);
    serde_json::from_str(&re_key).unwrap()
}

fn regex_lite(s: &str) -> String {
    // Quote identifiers followed by ':' outside strings; remove ',' before '}' or ']'.
    let mut out = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c);
            if c == '\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let mut j = i;
            while j < b.len() && b[j].is_whitespace() {
                j += 1;
            }
            if j < b.len() && b[j] == ':' {
                out.push_str(&format!("\"{word}\""));
            } else {
                out.push_str(&word);
            }
            continue;
        }
        if c == ',' {
            let mut j = i + 1;
            while j < b.len() && b[j].is_whitespace() {
                j += 1;
            }
            if j < b.len() && (b[j] == '}' || b[j] == ']') {
                i += 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn env_value(p: &Path, key: &str) -> String {
    let t = fs::read_to_string(p).unwrap();
    for l in t.lines() {
        let l = l.trim_start_matches("export ");
        if let Some(v) = l.strip_prefix(&format!("{key}=")) {
            return v.trim_matches('"').to_string();
        }
    }
    panic!("{key} not in {}", p.display());
}

/// Asserts the end state: every location holds the new value (pasted ones exactly the answer,
/// generated ones equal everywhere), no old value anywhere under the home, nothing secret in
/// the journal, report or `outputs`.
fn assert_rotated(h: &Home, s: &Secrets, outputs: &[&Output]) {
    let sd = h.state();
    let cfg = json5(&sd.join("openclaw.json"));
    let n = &s.new;
    assert_eq!(cfg["channels"]["telegram"]["botToken"], n["telegram"]);
    assert_eq!(cfg["channels"]["discord"]["token"], n["discord"]);
    assert_eq!(cfg["channels"]["slack"]["botToken"], n["slack-bot"]);
    assert_eq!(cfg["channels"]["slack"]["appToken"], n["slack-app"]);
    assert_eq!(
        cfg["models"]["providers"]["anthropic"]["apiKey"],
        n["anthropic"]
    );
    assert_eq!(
        cfg["models"]["providers"]["openrouter"]["apiKey"],
        n["openrouter"]
    );
    assert_eq!(
        cfg["models"]["providers"]["local"]["apiKey"],
        "${LOCAL_KEY}"
    );
    let gw = cfg["gateway"]["auth"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let hk = cfg["hooks"]["token"].as_str().unwrap().to_string();
    assert_eq!(gw.len(), 64);
    assert!(gw.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(gw, hk);
    assert_eq!(cfg["gateway"]["remote"]["token"], gw.as_str());
    let bak = json5(&sd.join("openclaw.json.bak"));
    assert_eq!(bak["gateway"]["auth"]["token"], gw.as_str());
    let unit = fs::read_to_string(h.path(".config/systemd/user/openclaw-gateway.service")).unwrap();
    assert!(
        unit.contains(&format!("\"OPENCLAW_GATEWAY_TOKEN={gw}\"")),
        "{unit}"
    );
    assert_eq!(env_value(&sd.join(".env"), "OPENAI_API_KEY"), n["openai"]);
    assert_eq!(env_value(&sd.join(".env"), "GEMINI_API_KEY"), n["gemini"]);
    let ap = json5(&sd.join("agents/main/agent/auth-profiles.json"));
    assert_eq!(ap["profiles"]["openai:default"]["key"], n["openai"]);
    let mj = json5(&sd.join("agents/main/agent/models.json"));
    assert_eq!(mj["providers"]["anthropic"]["apiKey"], n["anthropic"]);
    // Modes kept.
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(sd.join("openclaw.json")), 0o600);
    assert_eq!(
        mode(h.path(".config/systemd/user/openclaw-gateway.service")),
        0o644
    );
    // The JSON5 comment survived the in-place edit.
    assert!(
        fs::read_to_string(sd.join("openclaw.json"))
            .unwrap()
            .starts_with("// written by hand")
    );

    // No old value anywhere on disk (the paired device token is revoked by the gateway, not
    // rewritten, so it stays in devices/paired.json).
    for f in h.all_files() {
        let bytes = fs::read(&f).unwrap();
        let t = String::from_utf8_lossy(&bytes);
        for (k, v) in &s.old {
            if *k == "device" && f.ends_with("devices/paired.json") {
                continue;
            }
            assert!(!t.contains(v.as_str()), "old {k} left in {}", f.display());
        }
    }
    // The transcript copies were redacted with redaction-style placeholders, JSONL intact.
    let tr = fs::read_to_string(sd.join("agents/main/sessions/s1.jsonl")).unwrap();
    assert!(tr.contains("[REDACTED:rotated-telegram:"), "{tr}");
    for l in tr.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    // Journal, report and outputs hold no value, old or new (answers and config excepted).
    let (journal, run) = h.journal();
    let mut secret_free = vec![
        fs::read_to_string(run.join("journal.jsonl")).unwrap(),
        fs::read_to_string(run.join("report.md")).unwrap(),
        fs::read_to_string(run.join("report.json")).unwrap(),
    ];
    for o in outputs {
        secret_free.push(text(&o.stdout));
        secret_free.push(text(&o.stderr));
    }
    for doc in &secret_free {
        for v in s.old.values().chain(s.new.values()).chain([&gw, &hk]) {
            assert!(!doc.contains(v.as_str()), "a secret value leaked:\n{doc}");
            assert!(!doc.contains(&v[v.len() - 12..]), "a secret suffix leaked");
        }
    }
    // Every item DONE, the chain finished.
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in &journal {
        if r["event"] == "state" {
            last.insert(
                r["item"].as_str().unwrap().into(),
                r["to"].as_str().unwrap().into(),
            );
        }
    }
    assert_eq!(last.len(), 10, "{last:?}");
    assert!(last.values().all(|s| s == "DONE"), "{last:?}");
    assert_eq!(journal.last().unwrap()["event"], "finish");
    assert!(!h.path(".moltvault/rotation/active").exists());
    assert_eq!(
        fs::read_dir(run.join("staging")).unwrap().count(),
        0,
        "staged values wiped"
    );
    let report: Value =
        serde_json::from_str(&fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "done");
    let todo = report["todo"].to_string();
    assert!(todo.contains("gateway.remote.token"), "{todo}");
}

#[test]
fn list_shows_every_secret_and_place_without_values() {
    let s = secrets();
    let h = Home::new(&s);
    let out = h
        .cmd()
        .args(["rotate", "--list", "--json"])
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
    for id in [
        "gateway.auth.token",
        "hooks.token",
        "channels.telegram.botToken",
        "channels.discord.token",
        "channels.slack.botToken",
        "channels.slack.appToken",
        "models.providers.anthropic.apiKey",
        "models.providers.openrouter.apiKey",
        "env.OPENAI_API_KEY",
        "env.GEMINI_API_KEY",
        "backup.models.providers.anthropic.apiKey",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let gw = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "gateway.auth.token")
        .unwrap();
    // config auth + remote, the backup, the unit.
    assert_eq!(gw["locations"].as_array().unwrap().len(), 4, "{gw}");
    assert!(gw["fingerprint"].as_str().unwrap().starts_with("fp:"));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for val in s.old.values() {
        assert!(!all.contains(val.as_str()));
    }
    let out = h.cmd().args(["rotate", "--list"]).output().unwrap();
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert!(
        t.contains("openclaw-gateway.service:Environment=OPENCLAW_GATEWAY_TOKEN"),
        "{t}"
    );
    for val in s.old.values() {
        assert!(!t.contains(val.as_str()));
    }
}

#[test]
fn dry_run_writes_nothing() {
    let s = secrets();
    let h = Home::new(&s);
    let before: Vec<(PathBuf, Vec<u8>)> = h
        .all_files()
        .into_iter()
        .map(|f| {
            let b = fs::read(&f).unwrap();
            (f, b)
        })
        .collect();
    let out = h
        .cmd()
        .args(["rotate", "--all", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rotation plan (10 secrets)"),
        "{}",
        text(&out.stdout)
    );
    for (f, b) in before {
        assert_eq!(fs::read(&f).unwrap(), b, "{} changed", f.display());
    }
    assert!(!h.path(".moltvault/rotation").exists());
}

#[test]
fn rotate_all_updates_every_location_and_leaves_no_old_value() {
    let s = secrets();
    let h = Home::new(&s);
    h.init_vault();
    let out = h.rotate_all(None);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_rotated(&h, &s, &[&out]);
    // Devices were revoked through the gateway's own CLI.
    assert_eq!(
        fs::read_to_string(h.path("openclaw-calls.log")).unwrap(),
        "devices clear --yes --pending\n"
    );
    // status and report read the finished run; the report has no value either.
    let st = h
        .cmd()
        .args(["rotate", "status", "--json"])
        .output()
        .unwrap();
    assert!(st.status.success());
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["finished"], "done");
    let rep = h
        .cmd()
        .args(["rotate", "report", "--markdown"])
        .output()
        .unwrap();
    assert!(rep.status.success());
    let md = text(&rep.stdout);
    assert!(md.contains("## What you must still do"), "{md}");
    for val in s.old.values().chain(s.new.values()) {
        assert!(!md.contains(val.as_str()));
    }
    // A second run starts cleanly (no unfinished run) and rotates again.
    let again = h.rotate_all(None);
    assert!(
        !again.status.success(),
        "the answers now equal the current values"
    );
    assert!(
        text(&again.stderr).contains("equals the old"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn incident_mode_refuses_a_running_gateway() {
    let s = secrets();
    let h = Home::new(&s);
    h.init_vault();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = fs::read_to_string(h.state().join("openclaw.json"))
        .unwrap()
        .replace("port: 9,", &format!("port: {port},"));
    fs::write(h.state().join("openclaw.json"), cfg).unwrap();
    let out = h.rotate_all(None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("gateway is running"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
    assert!(!h.path(".moltvault/rotation/active").exists());
    // Scheduled mode only warns, and the report says so.
    let out = h
        .cmd()
        .args([
            "rotate",
            "--all",
            "--mode",
            "scheduled",
            "--answers",
            "answers/answers.toml",
            "--sweep",
            "report",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: the gateway answers on port"));
    let (journal, run) = h.journal();
    assert!(
        journal
            .iter()
            .any(|r| r["name"] == "contain" && r["status"] == "warned")
    );
    // --sweep report leaves the transcript alone and lists it as a to-do.
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("NOT redacted"), "{report}");
    drop(l);
}

#[test]
fn a_tampered_journal_is_an_error() {
    let s = secrets();
    let h = Home::new(&s);
    h.init_vault();
    let out = h.rotate_all(Some("after:journal:12"));
    assert!(!out.status.success());
    let (_, run) = h.journal();
    let j = run.join("journal.jsonl");
    let t = fs::read_to_string(&j).unwrap();
    fs::write(&j, t.replacen("\"PLANNED\"", "\"SKIPPED\"", 1)).unwrap();
    let out = h.resume();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("corrupt"),
        "{}",
        text(&out.stderr)
    );
}

/// Kills `rotate --all` (abort, like SIGKILL: no cleanup) right after every durable step, then
/// `rotate resume` must reach a consistent DONE.
#[test]
fn crash_at_every_step_then_resume_reaches_done() {
    let s = secrets();
    // One clean run to learn how many journal records a run writes.
    let probe = Home::new(&s);
    probe.init_vault();
    assert!(probe.rotate_all(None).status.success());
    let n = probe.journal().0.len();
    assert!(n > 40, "{n}");
    let mut points: Vec<String> = (1..=n).map(|i| format!("after:journal:{i}")).collect();
    // Crashes between a location write and its journal record, and between staging and its
    // record.
    points.push("after:write:gateway.auth.token:0".into());
    points.push("after:write:gateway.auth.token:2".into());
    points.push("after:write:env.OPENAI_API_KEY:1".into());
    points.push("after:staged:channels.telegram.botToken".into());
    // The runs are fsync-bound, not CPU-bound: four at a time.
    let chunk = points.len().div_ceil(4);
    std::thread::scope(|scope| {
        for part in points.chunks(chunk) {
            let (s, probe) = (&s, &probe);
            scope.spawn(move || {
                for fp in part {
                    let h = Home::new(s);
                    // Reuse the probe's vault (init is the slow part).
                    copy_dir(&probe.path(".moltvault"), &h.path(".moltvault"));
                    let _ = fs::remove_dir_all(h.path(".moltvault/rotation"));
                    let first = h.rotate_all(Some(fp));
                    assert_eq!(
                        first.status.code(),
                        None,
                        "{fp}: the failpoint did not fire"
                    );
                    let out = h.resume();
                    assert!(
                        out.status.success(),
                        "{fp}: resume failed\n{}\n{}",
                        text(&out.stdout),
                        text(&out.stderr)
                    );
                    assert_rotated(&h, s, &[&first, &out]);
                }
            });
        }
    });
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Serves `statuses` in order, one request each, on 127.0.0.1; returns the base URL.
fn fake_provider(statuses: Vec<u16>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for st in statuses {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                    break;
                }
            }
            let body = if st == 200 {
                r#"{"data":{"label":"x"}}"#
            } else {
                "{}"
            };
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 {st} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn verify_online_refuses_an_invalid_key_and_records_outcomes() {
    let s = secrets();
    let h = Home::new(&s);
    h.init_vault();
    let run = |url: &str| {
        h.cmd()
            .args([
                "rotate",
                "models.providers.openrouter.apiKey",
                "--answers",
                "answers/answers.toml",
                "--verify-online",
                "--verify-base-url",
                &format!("openrouter={url}"),
            ])
            .output()
            .unwrap()
    };
    // The provider rejects the new key: refused before anything is written.
    let out = run(&fake_provider(vec![401]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("invalid"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        fs::read_to_string(h.state().join("openclaw.json"))
            .unwrap()
            .contains(&s.old["openrouter"])
    );
    let abort = h.cmd().args(["rotate", "abort"]).output().unwrap();
    assert!(abort.status.success(), "{}", text(&abort.stderr));
    // Valid new key; the old one is then rejected: revocation observed, not just attested.
    let out = run(&fake_provider(vec![200, 401]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (journal, _) = h.journal_of_latest();
    let verifies: Vec<(String, String)> = journal
        .iter()
        .filter(|r| r["event"] == "verify")
        .map(|r| {
            (
                r["which"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        verifies,
        [
            ("new".into(), "valid".into()),
            ("old".into(), "invalid".into())
        ]
    );
    assert!(
        journal.iter().any(
            |r| r["to"] == "OLD_REVOKED" && r["note"].as_str().unwrap().starts_with("observed")
        )
    );
    // A non-loopback http base URL is refused outright.
    let out = run("http://192.0.2.1");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("https"), "{}", text(&out.stderr));
}

impl Home {
    fn journal_of_latest(&self) -> (Vec<Value>, PathBuf) {
        let runs = self.path(".moltvault/rotation/runs");
        let mut all: Vec<PathBuf> = fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        all.sort();
        let run = all.pop().unwrap();
        let j = fs::read_to_string(run.join("journal.jsonl")).unwrap();
        (
            j.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            run,
        )
    }
}

#[test]
fn answers_can_come_from_stdin_and_be_skipped() {
    let s = secrets();
    let h = Home::new(&s);
    h.init_vault();
    write(
        &h.path("answers/stdin.toml"),
        "\"env.OPENAI_API_KEY\" = { stdin = true, revoked = true }\n\"env.GEMINI_API_KEY\" = { skip = true }\n",
        0o600,
    );
    let out = h
        .cmd()
        .args([
            "rotate",
            "env.OPENAI_API_KEY",
            "env.GEMINI_API_KEY",
            "--answers",
            "answers/stdin.toml",
        ])
        .write_stdin(format!("Bearer {}\n", s.new["openai"]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("stripped a leading \"Bearer\""), "{err}");
    assert!(!err.contains(&s.new["openai"]));
    assert_eq!(
        env_value(&h.state().join(".env"), "OPENAI_API_KEY"),
        s.new["openai"]
    );
    assert_eq!(
        env_value(&h.state().join(".env"), "GEMINI_API_KEY"),
        s.old["gemini"]
    );
    let st = h
        .cmd()
        .args(["rotate", "status", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    let states: BTreeMap<String, String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().into(),
                i["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(states["env.OPENAI_API_KEY"], "DONE");
    assert_eq!(states["env.GEMINI_API_KEY"], "SKIPPED");
}

/// A secret kept in an `$include`d config file is found by the gateway crate's inventory and
/// rotated there too.
#[test]
fn included_config_files_are_rotated_through_the_gateway_inventory() {
    let s = secrets();
    let h = Home::new(&s);
    h.init_vault();
    let cfg = fs::read_to_string(h.state().join("openclaw.json")).unwrap();
    let dc_line = format!("    discord: {{ token: \"{}\" }},\n", s.old["discord"]);
    assert!(cfg.contains(&dc_line));
    let cfg =
        cfg.replace(&dc_line, "")
            .replacen("{\n", "{\n  \"$include\": \"./discord.json5\",\n", 1);
    write(&h.state().join("openclaw.json"), &cfg, 0o600);
    write(
        &h.state().join("discord.json5"),
        &format!(
            "// included\n{{ channels: {{ discord: {{ token: '{}' }} }} }}\n",
            s.old["discord"]
        ),
        0o600,
    );
    let list = h
        .cmd()
        .args(["rotate", "--list", "--json"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list.stderr));
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    let dc = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["provider"] == "discord")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        dc["locations"].to_string().contains("discord.json5"),
        "{dc}"
    );
    let out = h
        .cmd()
        .args([
            "rotate",
            dc["id"].as_str().unwrap(),
            "--answers",
            "answers/answers.toml",
        ])
        .output()
        .unwrap();
    // The answers file names the item by its config id.
    if !out.status.success() {
        panic!("{}", text(&out.stderr));
    }
    let inc = fs::read_to_string(h.state().join("discord.json5")).unwrap();
    assert!(inc.starts_with("// included"));
    assert!(inc.contains(&format!("'{}'", s.new["discord"])), "{inc}");
    assert!(!inc.contains(&s.old["discord"]));
}
