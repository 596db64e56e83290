//! `moltvault init`, `key`, `lock`/`unlock` and `status` end to end, plus the helpers the
//! sealed-session tests share (a temporary home with a JSONL-era OpenClaw gateway).
#![allow(clippy::disallowed_methods)]

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;

pub const PASS: &str = "correct horse battery staple";

/// A temporary home: `~/.openclaw` (one agent, `cur1` current), `~/.moltvault`, a passphrase
/// file.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let h = Home { dir };
        fs::create_dir_all(h.sessions()).unwrap();
        fs::write(
            h.state().join("openclaw.json"),
            "{ meta: { lastTouchedVersion: \"2026.5.1\" }, gateway: { port: 18789 } }\n",
        )
        .unwrap();
        chmod(&h.state().join("openclaw.json"), 0o600);
        fs::write(
            h.sessions().join("sessions.json"),
            r#"{"agent:main:main":{"sessionId":"cur1","sessionFile":"cur1.jsonl"}}"#,
        )
        .unwrap();
        fs::write(h.path("pass"), format!("{PASS}\n")).unwrap();
        h
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn state(&self) -> PathBuf {
        self.path(".openclaw")
    }

    pub fn vault(&self) -> PathBuf {
        self.path(".moltvault")
    }

    pub fn sessions(&self) -> PathBuf {
        self.state().join("agents/main/sessions")
    }

    /// The command with a clean environment pointing at this home.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("MOLTVAULT_TESTONLY_WEAKEN_KDF", "1")
            .current_dir(self.dir.path());
        c
    }

    /// Runs `moltvault init` with the test passphrase and a recovery file.
    pub fn init(&self) -> String {
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
        self.recipient()
    }

    pub fn recipient(&self) -> String {
        let cfg = fs::read_to_string(self.vault().join("config.toml")).unwrap();
        cfg.lines()
            .find_map(|l| l.strip_prefix("recipient = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    }

    /// Writes a transcript of `lines` JSONL lines, last modified `days` ago.
    pub fn transcript(&self, name: &str, lines: usize, days: u64) -> (PathBuf, Vec<u8>) {
        let p = self.sessions().join(name);
        let mut body = Vec::new();
        for i in 0..lines {
            body.extend_from_slice(
                format!(
                    "{{\"type\":\"message\",\"id\":\"{i:08x}\",\"message\":{{\"role\":\"user\",\"content\":\"line {i} of {name}\"}}}}\n"
                )
                .as_bytes(),
            );
        }
        fs::write(&p, &body).unwrap();
        chmod(&p, 0o600);
        age_days(&p, days);
        (p, body)
    }
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn age_days(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 86_400);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a failed run: exit 2, stderr containing every needle, no secret on any stream.
pub fn assert_error(out: &Output, needles: &[&str]) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(err.contains("hint: "), "no hint:\n{err}");
    assert!(!err.contains("AGE-SECRET-KEY"), "secret leaked:\n{err}");
    assert!(!err.contains(PASS), "passphrase leaked:\n{err}");
    err
}

/// Every file under `dir` (relative), sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn init_writes_config_key_file_and_recovery_key_with_safe_modes() {
    let h = Home::new();
    let recipient = h.init();
    assert!(recipient.starts_with("age1"));
    assert_eq!(mode(&h.vault()), 0o700);
    assert_eq!(mode(&h.vault().join("keys")), 0o700);
    assert_eq!(mode(&h.vault().join("config.toml")), 0o600);
    assert_eq!(mode(&h.vault().join("keys/passphrase.age")), 0o600);
    assert_eq!(mode(&h.path("rec.txt")), 0o600);
    let rec = fs::read_to_string(h.path("rec.txt")).unwrap();
    assert!(rec.contains("AGE-SECRET-KEY-1"));
    assert!(rec.contains(&recipient));
    // The config is public: no secret in it.
    let cfg = fs::read_to_string(h.vault().join("config.toml")).unwrap();
    assert!(!cfg.contains("AGE-SECRET-KEY"));

    // A second init refuses and changes nothing.
    let before = fs::read(h.vault().join("keys/passphrase.age")).unwrap();
    let out = h
        .cmd()
        .args([
            "init",
            "--passphrase-file",
            "pass",
            "--recovery-file",
            "rec2.txt",
        ])
        .output()
        .unwrap();
    assert_error(
        &out,
        &["a vault already exists", "hint: Use the existing vault"],
    );
    assert_eq!(
        before,
        fs::read(h.vault().join("keys/passphrase.age")).unwrap()
    );
    assert!(!h.path("rec2.txt").exists());
}

#[test]
fn init_prints_the_recovery_key_once_on_stdout_without_a_recovery_file() {
    let h = Home::new();
    let out = h
        .cmd()
        .args(["init"])
        .env("MOLTVAULT_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("AGE-SECRET-KEY-1"), "{stdout}");
    assert!(text(&out.stderr).contains("shown only this once"));
    assert!(!text(&out.stderr).contains("AGE-SECRET-KEY"));
}

#[test]
fn init_without_a_passphrase_source_off_a_tty_fails_clearly() {
    let h = Home::new();
    let out = h.cmd().args(["init"]).output().unwrap();
    assert_error(&out, &["no terminal", "--passphrase-file"]);
    assert!(!h.vault().join("config.toml").exists());
}

#[test]
fn key_list_add_remove_and_export_recovery() {
    let h = Home::new();
    let recipient = h.init();
    fs::write(h.path("pass2"), "second passphrase\n").unwrap();
    let out = h
        .cmd()
        .args(["key", "add", "passphrase", "--name", "backup"])
        .args([
            "--new-passphrase-file",
            "pass2",
            "--passphrase-file",
            "pass",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = fs::read(h.vault().join("keys/passphrase.age")).unwrap();

    let out = h.cmd().args(["key", "list"]).output().unwrap();
    let list = text(&out.stdout);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&recipient, "[RECIPIENT]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]");
    settings.bind(|| {
        insta::assert_snapshot!(list, @r"
        recipient  [RECIPIENT]
        passphrase       passphrase age scrypt                   added [TIME]
        backup           passphrase age scrypt                   added [TIME]
        ");
    });

    // The new passphrase unlocks; the first key file was not rewritten.
    let out = h
        .cmd()
        .args(["key", "export-recovery", "-o", "rec-again.txt"])
        .args(["--passphrase-file", "pass2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&h.path("rec-again.txt")), 0o600);
    let a = fs::read_to_string(h.path("rec.txt")).unwrap();
    let b = fs::read_to_string(h.path("rec-again.txt")).unwrap();
    let key = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY"))
            .unwrap()
            .to_string()
    };
    assert_eq!(key(&a), key(&b));
    assert_eq!(
        before,
        fs::read(h.vault().join("keys/passphrase.age")).unwrap()
    );

    let out = h
        .cmd()
        .args(["key", "remove", "passphrase"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!h.vault().join("keys/passphrase.age").exists());
    let out = h.cmd().args(["key", "remove", "backup"]).output().unwrap();
    assert_error(
        &out,
        &["last unlock method", "Add another unlock method first"],
    );
    // The old passphrase no longer unlocks.
    let out = h
        .cmd()
        .args(["key", "export-recovery", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert_error(&out, &["wrong passphrase", "backup.age"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn keyring_on_a_host_without_a_keyring_session_is_a_clear_error() {
    let h = Home::new();
    h.init();
    let out = h
        .cmd()
        .args(["key", "add", "keyring", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    if out.status.success() {
        // A host with a session keyring: the method must then really be listed.
        let list = text(&h.cmd().args(["key", "list"]).output().unwrap().stdout);
        assert!(list.contains("keyring"), "{list}");
        return;
    }
    assert_error(
        &out,
        &[
            "keyutils keyring store is not available",
            "never falls back silently",
        ],
    );
    let list = text(&h.cmd().args(["key", "list"]).output().unwrap().stdout);
    assert!(!list.contains("keyring"), "{list}");
    assert!(!h.vault().join("keys/keyring.age").exists());
    let out = h
        .cmd()
        .args([
            "key",
            "add",
            "keyring",
            "--store",
            "kwallet",
            "--passphrase-file",
            "pass",
        ])
        .output()
        .unwrap();
    assert_error(&out, &["unknown keyring store kwallet"]);
}

#[test]
fn missing_age_plugin_is_a_clear_error() {
    let h = Home::new();
    h.init();
    let out = h
        .cmd()
        .args([
            "key",
            "add",
            "plugin",
            "--passphrase-file",
            "pass",
            "--recipient",
        ])
        .arg("age1moltvaulttest1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq04rwke")
        .output()
        .unwrap();
    assert_error(
        &out,
        &[
            "age-plugin-moltvaulttest is not on PATH",
            "Install the age plugin",
        ],
    );
    assert_eq!(tree(&h.vault().join("keys")), ["passphrase.age"]);
}

#[test]
fn unlock_errors_name_the_file_and_change_nothing() {
    let h = Home::new();
    h.init();
    fs::write(h.path("wrong"), "not it\n").unwrap();
    let out = h
        .cmd()
        .args(["key", "export-recovery", "--passphrase-file", "wrong"])
        .output()
        .unwrap();
    assert_error(
        &out,
        &["wrong passphrase for", "keys/passphrase.age", "--identity"],
    );
    // No passphrase source and no TTY.
    let out = h.cmd().args(["key", "export-recovery"]).output().unwrap();
    assert_error(&out, &["needs a passphrase", "--passphrase-file"]);
    // A missing or foreign identity file.
    let out = h
        .cmd()
        .args(["key", "export-recovery", "--identity", "nope.txt"])
        .output()
        .unwrap();
    assert_error(&out, &["nope.txt"]);
    fs::write(
        h.path("other.txt"),
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n",
    )
    .unwrap();
    let out = h
        .cmd()
        .args(["key", "export-recovery", "--identity", "other.txt"])
        .output()
        .unwrap();
    if out.status.code() == Some(2) {
        let err = text(&out.stderr);
        assert!(err.contains("other.txt"), "{err}");
    }
    // The key file itself missing.
    fs::remove_file(h.vault().join("keys/passphrase.age")).unwrap();
    let out = h
        .cmd()
        .args(["key", "export-recovery", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert_error(&out, &["no unlock method opened the vault"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn lock_seals_credentials_with_modes_and_unlock_restores_them() {
    let h = Home::new();
    h.init();
    let cfg = h.state().join("openclaw.json");
    let creds = h.state().join("credentials");
    fs::create_dir_all(&creds).unwrap();
    fs::write(creds.join("telegram-allowFrom.json"), "{\"allow\":[1]}").unwrap();
    chmod(&creds.join("telegram-allowFrom.json"), 0o640);
    let before_cfg = fs::read(&cfg).unwrap();

    let out = h.cmd().args(["lock"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!cfg.exists());
    assert!(h.state().join("openclaw.json.age").exists());
    assert!(creds.join("telegram-allowFrom.json.age").exists());
    let status = text(&h.cmd().args(["status"]).output().unwrap().stdout);
    assert!(status.contains("2 file(s) locked"), "{status}");

    // Readable with stock age and the recovery key.
    let age = std::process::Command::new("age")
        .args(["-d", "-i"])
        .arg(h.path("rec.txt"))
        .arg(h.state().join("openclaw.json.age"))
        .output()
        .expect("the age CLI (bash .ci/install-deps)");
    assert!(age.status.success(), "{}", text(&age.stderr));
    assert_eq!(age.stdout, before_cfg);

    let out = h
        .cmd()
        .args(["unlock", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&cfg).unwrap(), before_cfg);
    assert_eq!(mode(&cfg), 0o600);
    assert_eq!(mode(&creds.join("telegram-allowFrom.json")), 0o640);
    assert!(!h.state().join(".moltvault-locked.json").exists());
    let status = text(&h.cmd().args(["status"]).output().unwrap().stdout);
    assert!(status.contains("plain (not locked)"), "{status}");
}

#[test]
fn lock_refuses_while_the_gateway_runs() {
    let h = Home::new();
    h.init();
    // A live writer lock on a transcript is evidence of a running gateway.
    let (p, _) = h.transcript("cur1.jsonl", 3, 0);
    fs::write(
        format!("{}.lock", p.display()),
        format!("{{\"pid\":{},\"createdAt\":1}}", std::process::id()),
    )
    .unwrap();
    let out = h.cmd().args(["lock"]).output().unwrap();
    assert_error(&out, &["is running", "Stop it first"]);
    assert!(h.state().join("openclaw.json").exists());
    assert!(!h.state().join(".moltvault-locked.json").exists());
}

#[test]
fn status_shows_vault_methods_and_counts_without_a_passphrase() {
    let h = Home::new();
    let out = h.cmd().args(["status"]).output().unwrap();
    assert!(text(&out.stdout).contains("run `moltvault init`"));
    h.init();
    h.transcript("old1.jsonl", 5, 3);
    h.transcript("cur1.jsonl", 5, 3);
    let out = h.cmd().args(["seal", "old1"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = h.cmd().args(["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["gateway"]["transcripts"]["sealed"], 1);
    assert_eq!(v["gateway"]["transcripts"]["plain"], 1);
    assert_eq!(v["gateway"]["transcripts"]["plain_current"], 1);
    assert_eq!(v["vault"]["unlock_methods"][0]["kind"], "passphrase");
}

/// A transcript large enough for the two-thread seal pipeline (verified while written).
fn big_transcript(h: &Home, name: &str, bytes: usize) -> (PathBuf, Vec<u8>) {
    let lines = bytes / 96 + 1;
    let (p, body) = h.transcript(name, lines, 3);
    assert!(body.len() >= bytes);
    (p, body)
}

/// A full disk in the middle of a large (pipelined) seal: the writer fails, the verifier stops,
/// the error names the sealed file, and the plaintext is left exactly as it was.
#[test]
fn full_disk_during_a_pipelined_seal_keeps_the_plaintext() {
    use std::process::Command as StdCommand;
    let h = Home::new();
    h.init();
    let mnt = h.path("small-fs");
    fs::create_dir_all(&mnt).unwrap();
    let st = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&mnt)
        .output();
    if !st.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs under CI: {st:?}"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        }
        return;
    }
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = StdCommand::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Umount(mnt.clone());
    let sessions = mnt.join("agents/main/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(mnt.join("openclaw.json"), "{}\n").unwrap();
    // ~330 KB of plaintext leaves ~180 KB free: the ciphertext cannot fit.
    let body: Vec<u8> = (0..5000)
        .flat_map(|i| format!("{{\"type\":\"message\",\"n\":{i:056}}}\n").into_bytes())
        .collect();
    let p = sessions.join("big.jsonl");
    fs::write(&p, &body).unwrap();
    age_days(&p, 3);
    let out = h
        .cmd()
        .arg("--state-dir")
        .arg(&mnt)
        .args(["seal", "big"])
        .output()
        .unwrap();
    assert_error(&out, &["big.jsonl.age", "disk is full"]);
    assert_eq!(fs::read(&p).unwrap(), body);
    assert_eq!(
        tree(&sessions),
        ["big.jsonl"],
        "no sealed or temp file left"
    );
}

/// SIGKILL while large files are sealed with their verifier running, and while small ones are
/// sealed in batches (directory fsync batched): every transcript exists plain or sealed, whole.
#[test]
fn sigkill_during_pipelined_and_batched_seals_never_loses_a_transcript() {
    use sha2::{Digest, Sha256};
    let h = Home::new();
    h.init();
    let vault = moltvault_vault::Vault::open(&h.vault()).unwrap();
    let identity = vault.identity_from_file(&h.path("rec.txt")).unwrap();
    let mut originals = Vec::new();
    for i in 0..3 {
        let (p, body) = big_transcript(&h, &format!("big{i}.jsonl"), (2 + i) << 20);
        originals.push((p, <[u8; 32]>::from(Sha256::digest(&body))));
    }
    for i in 0..40 {
        let (p, body) = h.transcript(&format!("small{i:02}.jsonl"), 5 + i, 3);
        originals.push((p, Sha256::digest(&body).into()));
    }
    let check = |round: u64| {
        for (p, want) in &originals {
            let s = PathBuf::from(format!("{}.age", p.display()));
            if p.exists() {
                let got: [u8; 32] = Sha256::digest(fs::read(p).unwrap()).into();
                assert_eq!(&got, want, "round {round}: {} torn", p.display());
            }
            if s.exists() {
                let (_, got) = moltvault_vault::seal::verify_sealed(&s, &identity)
                    .unwrap_or_else(|e| panic!("round {round}: {} broken: {e}", s.display()));
                assert_eq!(&got, want, "round {round}: {} wrong content", s.display());
            }
            assert!(
                p.exists() || s.exists(),
                "round {round}: {} lost",
                p.display()
            );
        }
    };
    let bin = assert_cmd::cargo::cargo_bin("moltvault");
    for round in 0..16u64 {
        let mut c = std::process::Command::new(&bin);
        c.env_clear()
            .env("HOME", h.dir.path())
            .current_dir(h.dir.path());
        if round % 2 == 0 {
            c.args(["seal", "--all-idle"]);
        } else {
            c.args(["unseal", "--all", "--identity", "rec.txt"]);
        }
        let mut child = c
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + 6 * round));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        check(round);
    }
    // A killed seal may leave both copies of a file; unseal resolves those.
    let out = h
        .cmd()
        .args(["unseal", "--all", "--identity", "rec.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check(99);
    for (p, _) in &originals {
        assert!(p.exists(), "{} back", p.display());
    }
}
