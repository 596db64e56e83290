//! `moltvault backup`, `backups list|verify|prune` and `restore` end to end: a real vault, real
//! SQLite, the Debian `age`/`zstd`/`tar`, SIGKILL at several points, the committed golden
//! backup, and a real S3-compatible server (s3s-fs) on loopback.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";

/// A temp world: HOME, a vault dir, a gateway state dir.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    vault: PathBuf,
    pass: PathBuf,
    recovery: PathBuf,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let state = root.join("home/.openclaw");
        fs::create_dir_all(&state).unwrap();
        let pass = root.join("pass.txt");
        fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
        let w = World {
            state,
            vault: root.join("home/.moltvault"),
            recovery: root.join("recovery.txt"),
            pass,
            root,
            _tmp: tmp,
        };
        w.gateway_home();
        w
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        for v in [
            "OPENCLAW_STATE_DIR",
            "OPENCLAW_CONFIG_PATH",
            "OPENCLAW_HOME",
            "OPENCLAW_PROFILE",
            "MOLTBOT_STATE_DIR",
            "CLAWDBOT_STATE_DIR",
            "CLAWDBOT_CONFIG_PATH",
            "MOLTVAULT_PASSPHRASE",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ] {
            c.env_remove(v);
        }
        // A private TMPDIR: a real gateway running on this machine keeps its lock files in
        // the system temp dir, which must not make these tests see "the gateway is running".
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        c.env("HOME", self.root.join("home"))
            .env("TMPDIR", tmp)
            .env("MOLTVAULT_DIR", &self.vault)
            .env("MOLTVAULT_TESTONLY_WEAKEN_KDF", "1")
            .env("NO_COLOR", "1");
        c
    }

    fn std_cmd(&self) -> StdCommand {
        let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("moltvault"));
        c.env("HOME", self.root.join("home"))
            .env("TMPDIR", self.root.join("tmp"))
            .env("MOLTVAULT_DIR", &self.vault)
            .env_remove("OPENCLAW_STATE_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn init(&self) {
        self.cmd()
            .args(["init", "--passphrase-file"])
            .arg(&self.pass)
            .arg("--recovery-file")
            .arg(&self.recovery)
            .assert()
            .success();
    }

    /// An OpenClaw home: config, transcripts (one torn), a WAL SQLite store, credentials, an
    /// in-tree symlink.
    fn gateway_home(&self) {
        let s = &self.state;
        for d in ["agents/main/sessions", "agents/main/agent", "credentials"] {
            fs::create_dir_all(s.join(d)).unwrap();
        }
        fs::write(s.join("openclaw.json"), "{ gateway: { port: 18789 } }\n").unwrap();
        chmod(&s.join("openclaw.json"), 0o600);
        fs::write(s.join("credentials/oauth.json"), "{\"token\":\"t\"}").unwrap();
        chmod(&s.join("credentials/oauth.json"), 0o600);
        fs::write(
            s.join("agents/main/sessions/a.jsonl"),
            "{\"type\":\"session\"}\n{\"type\":\"message\"}\n{\"type\":\"mes",
        )
        .unwrap();
        symlink("sessions/a.jsonl", s.join("agents/main/latest.jsonl")).unwrap();
        let c =
            rusqlite::Connection::open(s.join("agents/main/agent/openclaw-agent.sqlite")).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(
            "CREATE TABLE transcript_events(id INTEGER PRIMARY KEY, event_json TEXT);
             INSERT INTO transcript_events(event_json) VALUES ('{\"a\":1}');",
        )
        .unwrap();
    }

    fn backup_dir(&self) -> PathBuf {
        self.vault.join("backups")
    }

    fn backups(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.backup_dir())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn backup(&self) -> String {
        let out = self
            .cmd()
            .args(["backup", "--json", "--state-dir"])
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["name"].as_str().unwrap().to_string()
    }
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Path → (kind/hash, mode) of a whole tree, symlinks as links.
fn tree(dir: &Path) -> BTreeMap<String, (String, u32)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, (String, u32)>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    (format!("-> {}", fs::read_link(&p).unwrap().display()), 0),
                );
            } else if m.is_dir() {
                out.insert(rel, ("dir".into(), mode));
                walk(base, &p, out);
            } else {
                use sha2_free::sha256_hex;
                out.insert(rel, (sha256_hex(&fs::read(&p).unwrap()), mode));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// SHA-256 through the `sha256sum` coreutil, so this test binary needs no hashing crate.
mod sha2_free {
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub fn sha256_hex(data: &[u8]) -> String {
        let mut c = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(data).unwrap();
        let out = c.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    }
}

/// Incompressible bytes (xorshift), so archives of a known size take measurable time.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn backup_list_verify_restore_round_trip_with_a_real_vault() {
    let w = World::new();
    w.init();
    let out = w
        .cmd()
        .args(["backup", "--state-dir"])
        .arg(&w.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let names = w.backups();
    assert_eq!(names.len(), 1);
    let name = &names[0];
    let file = w.backup_dir().join(name);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        file.display().to_string(),
        "stdout is the backup's path"
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        stderr(&out).contains("backed up 4 files, 5 dirs, 1 symlinks"),
        "{}",
        stderr(&out)
    );

    let list = w
        .cmd()
        .args(["backups", "list", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], name.as_str());

    w.cmd()
        .args(["backups", "verify", "--passphrase-file"])
        .arg(&w.pass)
        .assert()
        .success()
        .stderr(predicates::str::contains(format!("ok  {name}  4 files")));

    // Restore over a changed tree; the old tree is kept beside it.
    let before = tree(&w.state);
    fs::write(w.state.join("openclaw.json"), "broken").unwrap();
    fs::remove_file(w.state.join("credentials/oauth.json")).unwrap();
    let out = w
        .cmd()
        .args(["restore", name, "--passphrase-file"])
        .arg(&w.pass)
        .arg("--state-dir")
        .arg(&w.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let after = tree(&w.state);
    for (p, v) in &before {
        if p.ends_with(".sqlite") || p.contains(".sqlite-") || p.ends_with("a.jsonl") {
            continue; // the SQLite copy and the torn transcript differ by design
        }
        assert_eq!(after.get(p), Some(v), "{p}");
    }
    assert_eq!(
        fs::read_to_string(w.state.join("agents/main/sessions/a.jsonl")).unwrap(),
        "{\"type\":\"session\"}\n{\"type\":\"message\"}\n"
    );
    let kept: Vec<_> = fs::read_dir(w.state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".openclaw.pre-restore-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        fs::read_to_string(
            w.state
                .parent()
                .unwrap()
                .join(&kept[0])
                .join("openclaw.json")
        )
        .unwrap(),
        "broken"
    );
}

#[test]
fn stock_age_zstd_and_tar_read_a_backup_with_the_recovery_key() {
    let w = World::new();
    w.init();
    let name = w.backup();
    let out_dir = w.root.join("plain");
    fs::create_dir(&out_dir).unwrap();
    let st = StdCommand::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; age -d -i '{}' '{}' | zstd -d -q | tar x -C '{}'",
            w.recovery.display(),
            w.backup_dir().join(&name).display(),
            out_dir.display()
        ))
        .status()
        .expect("bash, age, zstd and tar (run .ci/install-deps)");
    assert!(st.success());
    let m: Value =
        serde_json::from_slice(&fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "moltvault-backup");
    assert_eq!(m["version"], 1);
    assert_eq!(
        fs::read_to_string(out_dir.join("state/openclaw.json")).unwrap(),
        "{ gateway: { port: 18789 } }\n"
    );
    let c =
        rusqlite::Connection::open(out_dir.join("state/agents/main/agent/openclaw-agent.sqlite"))
            .unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM transcript_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn damaged_backup_is_an_error_with_a_hint_and_changes_nothing() {
    let w = World::new();
    w.init();
    let name = w.backup();
    let file = w.backup_dir().join(&name);
    let mut b = fs::read(&file).unwrap();
    let n = b.len();
    b[n - 40] ^= 0x01;
    fs::write(&file, b).unwrap();
    let before = tree(&w.state);
    let out = w
        .cmd()
        .args(["restore", &name, "--passphrase-file"])
        .arg(&w.pass)
        .arg("--state-dir")
        .arg(&w.state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out).replace(&name, "[BACKUP]");
    let first_and_hint: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
        .collect();
    insta::assert_snapshot!(first_and_hint.join("\n"), @r"
    error: backup [BACKUP] is damaged: its encrypted data is truncated or was modified (age authentication failed)
    hint: The backup file is damaged or incomplete, so nothing was restored or changed. Use another backup (`moltvault backups list`) and check the disk or bucket it is stored on.
    ");
    assert_eq!(tree(&w.state), before);
    let out = w
        .cmd()
        .args(["backups", "verify", "--passphrase-file"])
        .arg(&w.pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn restore_dry_run_and_only() {
    let w = World::new();
    w.init();
    let name = w.backup();
    let out = w
        .cmd()
        .args(["restore", &name, "--dry-run", "--passphrase-file"])
        .arg(&w.pass)
        .arg("--to")
        .arg(w.root.join("elsewhere"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap(), @r"
    agents/main/agent/openclaw-agent.sqlite
    agents/main/latest.jsonl
    agents/main/sessions/a.jsonl
    credentials/oauth.json
    openclaw.json
    ");
    assert!(!w.root.join("elsewhere").exists());

    fs::write(w.state.join("openclaw.json"), "changed").unwrap();
    fs::write(w.state.join("credentials/oauth.json"), "changed too").unwrap();
    w.cmd()
        .args([
            "restore",
            &name,
            "--only",
            "openclaw.json",
            "--passphrase-file",
        ])
        .arg(&w.pass)
        .arg("--state-dir")
        .arg(&w.state)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(w.state.join("openclaw.json")).unwrap(),
        "{ gateway: { port: 18789 } }\n"
    );
    assert_eq!(
        fs::read_to_string(w.state.join("credentials/oauth.json")).unwrap(),
        "changed too"
    );
}

#[test]
fn restore_refuses_a_running_gateway() {
    let w = World::new();
    w.init();
    let name = w.backup();
    // A process that looks like the gateway serving this state dir.
    let mut gw = StdCommand::new("bash")
        .arg("-c")
        .arg("exec -a openclaw-gateway sleep 30")
        .env("OPENCLAW_STATE_DIR", &w.state)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = w
        .cmd()
        .args(["restore", &name, "--passphrase-file"])
        .arg(&w.pass)
        .arg("--state-dir")
        .arg(&w.state)
        .output()
        .unwrap();
    gw.kill().unwrap();
    gw.wait().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is running"), "{}", stderr(&out));
}

#[test]
fn prune_keeps_by_policy_and_verifies_first() {
    let w = World::new();
    w.init();
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(w.backup());
    }
    assert_eq!(w.backups(), names);
    let out = w
        .cmd()
        .args(["backups", "prune", "--keep-last", "1", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.backups().len(), 3);
    let out = w
        .cmd()
        .args([
            "backups",
            "prune",
            "--keep-last",
            "1",
            "--json",
            "--passphrase-file",
        ])
        .arg(&w.pass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], names[2].as_str());
    assert_eq!(w.backups(), [names[2].clone()]);
    let out = w.cmd().args(["backups", "prune"]).output().unwrap();
    assert!(stderr(&out).contains("no --keep-* option"));
}

/// Runs `args` and SIGKILLs it after `ms` milliseconds; returns whether it was still running
/// (so really killed mid-way).
fn run_and_kill(w: &World, args: &[&str], extra: &[&Path], ms: u64) -> bool {
    let mut c = w.std_cmd();
    c.args(args);
    for p in extra {
        c.arg(p);
    }
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    running
}

#[test]
fn sigkill_during_backup_restore_and_prune_leaves_a_consistent_state() {
    let w = World::new();
    w.init();
    fs::write(w.state.join("big.bin"), noise(24 << 20, 7)).unwrap();
    let good = w.backup();
    let delays = [30u64, 150, 400, 900];

    // Backup: either a complete, verifiable backup appears, or none.
    let mut killed = 0;
    for ms in delays {
        killed += usize::from(run_and_kill(
            &w,
            &["backup", "--state-dir"],
            &[&w.state],
            ms,
        ));
    }
    assert!(
        killed >= 2,
        "backups finished too fast to be killed mid-way"
    );
    for n in w.backups() {
        w.cmd()
            .args(["backups", "verify", &n, "--passphrase-file"])
            .arg(&w.pass)
            .assert()
            .success();
    }

    // Restore: the state dir is the old tree or the backup's, never a mix. SQLite's `-shm`
    // (its shared-memory WAL index, no data) is left out of the comparison: the restore's
    // running-gateway check opens the store read-only, and any reader may rewrite it.
    let tree = |d: &Path| {
        let mut t = tree(d);
        t.retain(|k, _| !k.ends_with("-shm"));
        t
    };
    let old = tree(&w.state);
    fs::write(w.state.join("openclaw.json"), "old state").unwrap();
    let mut old_changed = tree(&w.state);
    let pass = w.pass.clone();
    let mut killed_restores = 0;
    for ms in delays {
        let mut args = vec!["restore", &good, "--passphrase-file"];
        let p = pass.to_str().unwrap();
        args.push(p);
        args.push("--state-dir");
        killed_restores += usize::from(run_and_kill(&w, &args, &[&w.state], ms));
        let now = tree(&w.state);
        let restored = now.get("openclaw.json") == old.get("openclaw.json");
        if restored {
            // The full new tree is in place.
            assert_eq!(now.get("big.bin"), old.get("big.bin"), "after {ms} ms");
            // Put an "old" state back for the next round.
            fs::write(w.state.join("openclaw.json"), "old state").unwrap();
            old_changed = tree(&w.state);
        } else {
            assert_eq!(
                now, old_changed,
                "after {ms} ms the state dir is neither old nor new"
            );
        }
    }

    assert!(
        killed_restores >= 2,
        "restores finished too fast to be killed mid-way"
    );

    // What the killed runs left (partial backups, staging trees) is cleaned up by the next
    // run once it is stale; complete trees caught mid-swap are kept under a visible name.
    let hidden = |dir: &Path, pat: &str| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with('.') && n.contains(pat)
            })
            .collect()
    };
    let parent = w.state.parent().unwrap().to_path_buf();
    let state_name = w.state.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers: Vec<PathBuf> = [
        hidden(&w.backup_dir(), ".mvtmp-"),
        hidden(&parent, &format!(".{state_name}.moltvault-")),
    ]
    .concat();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for p in &leftovers {
        fs::File::open(p)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    w.backup();
    let p = pass.to_str().unwrap();
    w.cmd()
        .args(["restore", &good, "--passphrase-file", p, "--state-dir"])
        .arg(&w.state)
        .assert()
        .success();
    assert_eq!(hidden(&w.backup_dir(), ".mvtmp-"), Vec::<PathBuf>::new());
    assert_eq!(
        hidden(&parent, &format!(".{state_name}.moltvault-")),
        Vec::<PathBuf>::new()
    );

    // Prune: whatever it managed to delete, the newest backup survives and every survivor verifies.
    let newest = w.backups().last().unwrap().clone();
    for ms in [20u64, 200, 600] {
        let p = pass.to_str().unwrap();
        run_and_kill(
            &w,
            &[
                "backups",
                "prune",
                "--keep-last",
                "1",
                "--passphrase-file",
                p,
            ],
            &[],
            ms,
        );
        assert!(w.backups().contains(&newest));
    }
    for n in w.backups() {
        w.cmd()
            .args(["backups", "verify", &n, "--passphrase-file"])
            .arg(&w.pass)
            .assert()
            .success();
    }
}

// ---- The golden backup -------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-backup-v1")
}

const GOLDEN_NAME: &str = "moltvault-golden-20261125T000000Z.tar.zst.age";

fn tree_lines(t: &BTreeMap<String, (String, u32)>) -> String {
    t.iter()
        .map(|(p, (h, m))| format!("{m:04o} {h} {p}\n"))
        .collect()
}

#[test]
fn the_golden_v1_backup_restores_byte_identically() {
    let w = World::new();
    let dest = w.root.join("golden");
    // No vault at all: the recovery key alone must do (disaster recovery on a new machine).
    let out = w
        .cmd()
        .arg("restore")
        .arg(golden_dir().join(GOLDEN_NAME))
        .arg("--identity")
        .arg(golden_dir().join("key.txt"))
        .arg("--to")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let want = fs::read_to_string(golden_dir().join("expected-tree.txt")).unwrap();
    assert_eq!(tree_lines(&tree(&dest)), want);
    let out = w
        .cmd()
        .args(["backups", "verify"])
        .arg(golden_dir().join(GOLDEN_NAME))
        .arg("--identity")
        .arg(golden_dir().join("key.txt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Regenerates the golden backup (never needed for v1; kept to document how it was made):
/// `MOLTVAULT_REGENERATE_GOLDEN=1 cargo test --test cli regenerate_golden -- --ignored`.
#[test]
#[ignore]
fn regenerate_golden_backup() {
    if std::env::var_os("MOLTVAULT_REGENERATE_GOLDEN").is_none() {
        return;
    }
    use moltvault_vault::backup::{self, BackupOptions, LocalDir, NoProgress};
    let w = World::new();
    let s = &w.state;
    fs::write(
        s.join("agents/main/sessions/b.trajectory.jsonl"),
        "{\"t\":1}\n",
    )
    .unwrap();
    fs::write(s.join(".env"), "OPENAI_API_KEY=placeholder\n").unwrap();
    chmod(&s.join(".env"), 0o600);
    fs::create_dir_all(s.join("workspace/notes")).unwrap();
    fs::write(
        s.join("workspace/notes/long-name-".to_string() + &"x".repeat(120) + ".md"),
        "# long path\n",
    )
    .unwrap();
    fs::write(s.join("workspace/empty.txt"), "").unwrap();
    chmod(&s.join("workspace"), 0o755);
    let key = fs::read_to_string(golden_dir().join("key.txt")).unwrap();
    let id: age::x25519::Identity = key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .parse()
        .unwrap();
    let mut o = BackupOptions::new(s, "golden", w.root.join("tmp"));
    o.time = Some(time::macros::datetime!(2026-11-25 00:00:00 UTC));
    o.created_by = "moltvault 0.1.0".into();
    let t = LocalDir::new(golden_dir());
    let _ = fs::remove_file(golden_dir().join(GOLDEN_NAME));
    backup::create(&o, &id.to_public(), &t, &NoProgress).unwrap();
    let dest = w.root.join("restored");
    backup::restore(
        &t,
        GOLDEN_NAME,
        &id,
        &backup::RestoreOptions::new(&dest),
        &NoProgress,
    )
    .unwrap();
    fs::write(
        golden_dir().join("expected-tree.txt"),
        tree_lines(&tree(&dest)),
    )
    .unwrap();
}

// ---- S3 against a real S3-compatible server on loopback -------------------------------------

/// s3s-fs serving `root` on 127.0.0.1 (a random port) from a background thread.
fn s3_server(root: &Path) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    let root = root.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let fs = s3s_fs::FileSystem::new(&root).unwrap();
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single("testkey", "testsecret"));
            let service = b.build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let conn = http
                    .serve_connection(TokioIo::new(sock), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

#[test]
fn s3_backup_list_verify_restore_prune_against_s3s_fs() {
    let w = World::new();
    w.init();
    // > 8 MiB of incompressible data, so the upload takes several multipart parts.
    fs::write(w.state.join("big.bin"), noise(12 << 20, 3)).unwrap();
    let store = w.root.join("s3");
    fs::create_dir_all(store.join("bucket")).unwrap();
    let endpoint = s3_server(&store);
    let s3 = |c: &mut Command| {
        c.env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "testkey")
            .env("AWS_SECRET_ACCESS_KEY", "testsecret")
            .env("AWS_REGION", "us-east-1");
    };
    let mut names = Vec::new();
    for _ in 0..2 {
        let mut c = w.cmd();
        s3(&mut c);
        let out = c
            .args([
                "backup",
                "--json",
                "--to",
                "s3://bucket/gw/backups",
                "--state-dir",
            ])
            .arg(&w.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        names.push(v["name"].as_str().unwrap().to_string());
        assert!(v["backup_bytes"].as_u64().unwrap() > 12 << 20);
    }
    // The objects are real files in the server's store, byte for byte what was uploaded.
    let obj = store.join("bucket/gw/backups").join(&names[0]);
    assert!(fs::metadata(&obj).unwrap().len() > 12 << 20);
    assert!(w.backups().is_empty(), "nothing was written locally");

    let mut c = w.cmd();
    s3(&mut c);
    let out = c
        .args([
            "backups",
            "list",
            "--json",
            "--from",
            "s3://bucket/gw/backups",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);

    let mut c = w.cmd();
    s3(&mut c);
    c.args([
        "backups",
        "verify",
        "--all",
        "--from",
        "s3://bucket/gw/backups",
        "--passphrase-file",
    ])
    .arg(&w.pass)
    .assert()
    .success();

    fs::write(w.state.join("openclaw.json"), "changed").unwrap();
    let mut c = w.cmd();
    s3(&mut c);
    let out = c
        .arg("restore")
        .arg(format!("s3://bucket/gw/backups/{}", names[1]))
        .arg("--passphrase-file")
        .arg(&w.pass)
        .arg("--state-dir")
        .arg(&w.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(w.state.join("openclaw.json")).unwrap(),
        "{ gateway: { port: 18789 } }\n"
    );
    assert_eq!(
        fs::read(w.state.join("big.bin")).unwrap(),
        noise(12 << 20, 3)
    );

    let mut c = w.cmd();
    s3(&mut c);
    c.args([
        "backups",
        "prune",
        "--keep-last",
        "1",
        "--from",
        "s3://bucket/gw/backups",
        "--passphrase-file",
    ])
    .arg(&w.pass)
    .assert()
    .success();
    assert!(!obj.exists());
    assert!(store.join("bucket/gw/backups").join(&names[1]).exists());

    // Wrong credentials: a clear error, with the hint naming the variables.
    let mut c = w.cmd();
    s3(&mut c);
    let out = c
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .args(["backups", "list", "--from", "s3://bucket/gw/backups"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("hint: Check AWS_ENDPOINT_URL"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("testsecret"));
}

#[test]
fn a_backup_directory_inside_the_state_dir_is_not_backed_up_into_itself() {
    let w = World::new();
    w.init();
    let inside = w.state.join("backups");
    for _ in 0..2 {
        w.cmd()
            .args(["backup", "--to"])
            .arg(&inside)
            .arg("--state-dir")
            .arg(&w.state)
            .assert()
            .success();
    }
    let second = fs::read_dir(&inside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .max()
        .unwrap();
    let out = w
        .cmd()
        .arg("restore")
        .arg(inside.join(second))
        .args(["--dry-run", "--passphrase-file"])
        .arg(&w.pass)
        .arg("--to")
        .arg(w.root.join("x"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(!listed.contains("backups/"), "{listed}");
    assert!(listed.contains("openclaw.json"));
}

#[test]
fn no_sessions_leaves_transcripts_and_the_agent_store_out() {
    let w = World::new();
    w.init();
    let out = w
        .cmd()
        .args([
            "backup",
            "--no-sessions",
            "--exclude",
            "credentials/**",
            "--json",
            "--state-dir",
        ])
        .arg(&w.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sqlite_databases"], 0);
    let name = v["name"].as_str().unwrap();
    let out = w
        .cmd()
        .args(["restore", name, "--dry-run", "--passphrase-file"])
        .arg(&w.pass)
        .arg("--to")
        .arg(w.root.join("x"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The symlink into the sessions dir stays (as a link; it dangles until sessions return).
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap(), @r"
    agents/main/latest.jsonl
    openclaw.json
    ");
}

#[test]
fn a_gateway_serving_another_home_does_not_block_a_restore() {
    let w = World::new();
    w.init();
    let name = w.backup();
    let other_home = w.root.join("other-home");
    fs::create_dir_all(other_home.join(".openclaw")).unwrap();
    let mut gw = StdCommand::new("bash")
        .arg("-c")
        .arg("exec -a openclaw-gateway sleep 30")
        .env("HOME", &other_home)
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("CLAWDBOT_STATE_DIR")
        .env_remove("MOLTBOT_STATE_DIR")
        .env_remove("OPENCLAW_HOME")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = w
        .cmd()
        .args(["restore", &name, "--passphrase-file"])
        .arg(&w.pass)
        .arg("--state-dir")
        .arg(&w.state)
        .output()
        .unwrap();
    gw.kill().unwrap();
    gw.wait().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
