//! `moltvault seal`, `unseal`, `cat` and `grep` end to end: interop with the Debian `age` CLI,
//! damaged and hostile input, a full disk, and SIGKILL at many points.
#![allow(clippy::disallowed_methods, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::vault::{Home, PASS, assert_error, chmod, mode, text, tree};

fn age_cli() -> StdCommand {
    // The real thing, installed by .ci/install-deps.
    assert!(
        StdCommand::new("age").arg("--version").output().is_ok(),
        "the `age` CLI is missing: run bash .ci/install-deps"
    );
    StdCommand::new("age")
}

fn sealed(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.age", p.display()))
}

#[test]
fn seal_unseal_round_trip_keeps_bytes_mode_and_mtime_and_refuses_current() {
    let h = Home::new();
    h.init();
    let (old, old_body) = h.transcript("old1.jsonl", 2000, 3);
    let (reset, _) = h.transcript("old1.jsonl.reset.2026-11-01T10-00-00.000Z", 50, 3);
    let (traj, _) = h.transcript("old2.trajectory.jsonl", 50, 3);
    let (cur, _) = h.transcript("cur1.jsonl", 10, 3);
    chmod(&old, 0o640);
    let mtime = fs::metadata(&old).unwrap().modified().unwrap();

    // The current session is refused by name, with a hint.
    let out = h.cmd().args(["seal", "cur1"]).output().unwrap();
    assert_error(&out, &["current session", "--include-current"]);
    assert!(cur.exists());

    let out = h
        .cmd()
        .args(["seal", "--all-idle", "--idle", "2d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("sealed 3 file(s), skipped 1 current"));
    for p in [&old, &reset, &traj] {
        assert!(!p.exists(), "{} still plain", p.display());
        assert!(sealed(p).exists());
    }
    assert!(cur.exists() && !sealed(&cur).exists());
    assert_eq!(mode(&sealed(&old)), 0o600, "sealed files are 0600");
    let ct = fs::read(sealed(&old)).unwrap();
    assert!(
        !ct.windows(8).any(|w| w == b"line 1 o"),
        "plaintext in sealed file"
    );

    // Stock age opens it with the recovery key.
    let age = age_cli()
        .args(["-d", "-i", "rec.txt"])
        .arg(sealed(&old))
        .current_dir(h.dir.path())
        .output()
        .unwrap();
    assert!(age.status.success(), "{}", text(&age.stderr));
    assert_eq!(age.stdout, old_body);

    let out = h
        .cmd()
        .args(["unseal", "old1", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&old).unwrap(), old_body);
    assert_eq!(mode(&old), 0o640);
    assert_eq!(fs::metadata(&old).unwrap().modified().unwrap(), mtime);
    assert!(!sealed(&old).exists() && !sealed(&reset).exists());
    assert!(
        sealed(&traj).exists(),
        "only the named session was unsealed"
    );

    // --include-current takes idle current sessions, with a warning.
    let out = h
        .cmd()
        .args(["seal", "--all-idle", "--include-current"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("restart without their history"));
    assert!(sealed(&cur).exists());
    assert!(
        tree(&h.sessions())
            .iter()
            .all(|f| f.ends_with(".age") || f == "sessions.json"),
        "{:?}",
        tree(&h.sessions())
    );
}

#[test]
fn recently_written_and_locked_transcripts_are_never_sealed() {
    let h = Home::new();
    h.init();
    let (fresh, _) = h.transcript("fresh.jsonl", 5, 0);
    let (locked, _) = h.transcript("locked.jsonl", 5, 3);
    fs::write(
        format!("{}.lock", locked.display()),
        format!("{{\"pid\":{},\"createdAt\":1}}", std::process::id()),
    )
    .unwrap();
    let out = h.cmd().args(["seal", "fresh"]).output().unwrap();
    assert_error(&out, &["fresh.jsonl was written", "Wait a minute"]);
    let out = h.cmd().args(["seal", "locked"]).output().unwrap();
    assert_error(&out, &["locked by a running process", "locked.jsonl.lock"]);
    assert!(fresh.exists() && locked.exists());
    assert!(!sealed(&fresh).exists() && !sealed(&locked).exists());
}

#[test]
fn cat_and_grep_read_sealed_and_plain_transcripts_without_writing_plaintext() {
    let h = Home::new();
    h.init();
    let (a, a_body) = h.transcript("aaa.jsonl", 300, 3);
    h.transcript("bbb.jsonl", 300, 3);
    // A zstd archive of a deleted session, sealed too.
    let zst = h
        .sessions()
        .join("ccc.jsonl.deleted.2026-11-01T00-00-00.000Z.ab12cd.zst");
    let z = zstd::encode_all(
        &b"{\"type\":\"message\",\"text\":\"needle in zst\"}\n"[..],
        3,
    )
    .unwrap();
    fs::write(&zst, z).unwrap();
    crate::vault::age_days(&zst, 3);
    let out = h.cmd().args(["seal", "aaa", "ccc"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files_before = tree(h.dir.path());

    let out = h
        .cmd()
        .args(["cat", "aaa", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, a_body);

    let out = h
        .cmd()
        .args(["grep", "line 7[0-9] of", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert_eq!(o.lines().count(), 20, "{o}");
    assert!(o.contains("aaa.jsonl.age:71:"), "{o}");
    assert!(o.contains("bbb.jsonl:71:"), "{o}");

    let out = h
        .cmd()
        .args(["grep", "-c", "needle", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert!(o.contains(".zst.age:1"), "{o}");

    // No match: grep's exit 1. Unknown agent: nothing searched.
    let out = h
        .cmd()
        .args(["grep", "no such text", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = h
        .cmd()
        .args(["grep", "line", "--agent", "other", "--since", "2026-01-01"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(tree(h.dir.path()), files_before, "cat/grep wrote files");
    assert!(!a.exists());
}

#[test]
fn age_cli_interop_in_both_directions() {
    let h = Home::new();
    let recipient = h.init();
    // age -e -r <recipient> output opens with moltvault (binary and armored).
    let (p, body) = h.transcript("fromage.jsonl", 100, 3);
    let st = age_cli()
        .args(["-e", "-r", &recipient, "-o"])
        .arg(sealed(&p))
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_file(&p).unwrap();
    let (q, qbody) = h.transcript("armored.jsonl", 10, 3);
    let st = age_cli()
        .args(["-a", "-e", "-r", &recipient, "-o"])
        .arg(sealed(&q))
        .arg(&q)
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_file(&q).unwrap();
    let out = h
        .cmd()
        .args(["cat", "armored", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, qbody, "{}", text(&out.stderr));
    let out = h
        .cmd()
        .args(["unseal", "--all", "--identity", "rec.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&p).unwrap(), body);
    assert_eq!(
        mode(&p),
        0o600,
        "a file sealed by age records no mode: unseal defaults to 0600"
    );
}

/// The passphrase key file is a standard age scrypt file (work factor 2^18) that stock `age -d`
/// opens. age reads passphrases only from a terminal, so it is driven through a pty (python3).
#[test]
fn passphrase_key_file_opens_with_stock_age_through_a_pty() {
    let h = Home::new();
    let out = h
        .cmd()
        .env_remove("MOLTVAULT_TESTONLY_WEAKEN_KDF")
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
    let key_file = h.vault().join("keys/passphrase.age");
    let head = fs::read(&key_file).unwrap();
    let head = text(&head[..200.min(head.len())]);
    assert!(
        head.contains("-> scrypt ") && head.contains(" 18\n"),
        "{head}"
    );
    const DRIVER: &str = r#"
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp("age", ["age", "-d", sys.argv[1]])
out, sent = b"", False
while True:
    r, _, _ = select.select([fd], [], [], 60)
    if not r:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not sent and b"passphrase" in out.lower():
        os.write(fd, os.environ["PW"].encode() + b"\n")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
"#;
    let _ = age_cli();
    let py = StdCommand::new("python3")
        .args(["-c", DRIVER])
        .arg(&key_file)
        .env("PW", PASS)
        .output()
        .expect("python3 drives age through a pty");
    let o = text(&py.stdout);
    assert!(py.status.success(), "age -d failed: {o}");
    let rec = fs::read_to_string(h.path("rec.txt")).unwrap();
    let secret = rec
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    assert!(
        o.contains(secret),
        "age -d did not reveal the vault identity"
    );
}

#[test]
fn damaged_or_foreign_sealed_files_fail_clearly_and_change_nothing() {
    let h = Home::new();
    h.init();
    let (p, body) = h.transcript("dmg.jsonl", 3000, 3); // several 64 KiB chunks
    assert!(body.len() > 3 * 65536);
    let out = h.cmd().args(["seal", "dmg"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = sealed(&p);
    let good = fs::read(&s).unwrap();

    let check = |bytes: &[u8], needles: &[&str]| {
        fs::write(&s, bytes).unwrap();
        let before = tree(h.dir.path());
        let out = h
            .cmd()
            .args(["unseal", "dmg", "--passphrase-file", "pass"])
            .output()
            .unwrap();
        let mut all = vec!["dmg.jsonl.age"];
        all.extend_from_slice(needles);
        assert_error(&out, &all);
        assert_eq!(tree(h.dir.path()), before, "unseal changed files");
        assert_eq!(fs::read(&s).unwrap(), bytes);
        assert!(!p.exists());
    };
    check(
        &good[..good.len() - 1],
        &["damaged", "restore it from a backup"],
    );
    check(&good[..good.len() / 2], &["cannot decrypt"]);
    check(&good[..30], &["cannot decrypt"]);
    for off in [5, 60, 150, good.len() / 3, good.len() / 2, good.len() - 20] {
        let mut b = good.clone();
        b[off] ^= 0x10;
        check(&b, &["cannot decrypt"]);
    }
    // `cat` of a truncated file prints the authenticated chunks, then fails at the end.
    fs::write(&s, &good[..good.len() - 1]).unwrap();
    let out = h
        .cmd()
        .args(["cat", "dmg", "--passphrase-file", "pass"])
        .output()
        .unwrap();
    assert_error(&out, &["dmg.jsonl.age", "damaged"]);
    assert!(out.stdout.len() < body.len());
    assert!(body.starts_with(&out.stdout));

    // Sealed to someone else.
    let other = age_cli().arg("--version").output().map(|_| ()).ok();
    assert!(other.is_some());
    let keygen = StdCommand::new("age-keygen").output().unwrap();
    let other_rcpt = text(&keygen.stderr)
        .trim()
        .strip_prefix("Public key: ")
        .unwrap()
        .to_string();
    fs::write(h.path("plain.tmp"), b"x\n").unwrap();
    fs::remove_file(&s).unwrap();
    let st = age_cli()
        .args(["-e", "-r", &other_rcpt, "-o"])
        .arg(&s)
        .arg(h.path("plain.tmp"))
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = fs::read(&s).unwrap();
    check(&bytes, &["encrypted to another key", "different key"]);
}

#[test]
fn symlinks_in_place_of_sessions_are_refused() {
    let h = Home::new();
    h.init();
    let (target, _) = h.transcript("real.jsonl", 5, 3);
    let outside = h.path("outside.jsonl");
    fs::write(&outside, b"{}\n").unwrap();
    let link = h.sessions().join("link.jsonl");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let out = h.cmd().args(["seal"]).arg(&link).output().unwrap();
    assert_error(&out, &["link.jsonl", "symlink", "does not follow symlinks"]);
    assert!(outside.exists() && link.is_symlink());
    // --all-idle never touches the link or its target.
    let out = h.cmd().args(["seal", "--all-idle"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(link.is_symlink() && outside.exists());
    assert!(sealed(&target).exists());
    // A symlink named like a sealed file.
    let slink = h.sessions().join("evil.jsonl.age");
    std::os::unix::fs::symlink(sealed(&target), &slink).unwrap();
    let out = h
        .cmd()
        .args(["unseal", "--passphrase-file", "pass"])
        .arg(&slink)
        .output()
        .unwrap();
    assert_error(&out, &["evil.jsonl.age", "symlink"]);
    assert!(!h.sessions().join("evil.jsonl").exists());
}

/// A 64 KiB tmpfs holds the state dir: sealing a 40 KB transcript cannot fit its sealed copy.
#[test]
fn full_disk_fails_cleanly_and_keeps_the_plaintext() {
    let h = Home::new();
    h.init();
    let mnt = h.path("tiny");
    fs::create_dir_all(&mnt).unwrap();
    let st = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .output();
    if !st.as_ref().is_ok_and(|o| o.status.success()) {
        // CI runs as root and must exercise the real full disk; elsewhere say so and stop.
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs under CI: {st:?}"
        );
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
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
    let p = sessions.join("big.jsonl");
    let body: Vec<u8> = (0..600)
        .flat_map(|i| format!("{{\"type\":\"message\",\"n\":{i:056}}}\n").into_bytes())
        .collect();
    assert!(body.len() > 40_000);
    fs::write(&p, &body).unwrap();
    crate::vault::age_days(&p, 3);
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

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// SIGKILL `seal --all-idle` and `unseal --all` at increasing delays over many files: every
/// transcript must always exist plain or sealed, whole.
#[test]
fn sigkill_at_many_points_never_loses_or_tears_a_transcript() {
    let h = Home::new();
    h.init();
    let vault = moltvault_vault::Vault::open(&h.vault()).unwrap();
    let identity = vault.identity_from_file(&h.path("rec.txt")).unwrap();
    let mut originals = Vec::new();
    for i in 0..24 {
        let (p, body) = h.transcript(&format!("s{i:02}.jsonl"), 400 + i * 60, 3);
        originals.push((p, sha(&body)));
    }
    let check = |round: usize| {
        for (p, want) in &originals {
            let s = sealed(p);
            let plain = p.exists();
            if plain {
                assert_eq!(
                    &sha(&fs::read(p).unwrap()),
                    want,
                    "round {round}: {} torn",
                    p.display()
                );
            }
            if s.exists() {
                let (_, got) = moltvault_vault::seal::verify_sealed(&s, &identity)
                    .unwrap_or_else(|e| panic!("round {round}: {} broken: {e}", s.display()));
                assert_eq!(&got, want, "round {round}: {} wrong content", s.display());
            }
            assert!(plain || s.exists(), "round {round}: {} lost", p.display());
        }
    };
    let bin = assert_cmd::cargo::cargo_bin("moltvault");
    for round in 0..30 {
        let mut c = StdCommand::new(&bin);
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
        std::thread::sleep(Duration::from_millis(3 * round as u64));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        check(round);
    }
    // Finish the job: everything comes back plain and whole, with no temp file left.
    let out = h
        .cmd()
        .args(["unseal", "--all", "--identity", "rec.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check(99);
    for (p, _) in &originals {
        assert!(p.exists() && !sealed(p).exists());
    }
    let stray: Vec<String> = tree(&h.sessions())
        .into_iter()
        .filter(|f| f.contains("mvtmp"))
        .collect();
    // A temp file can survive only if the kill hit between its creation and the next run that
    // touched the same file; the final unseal --all touched none that were already plain.
    for f in &stray {
        let b = fs::read(h.sessions().join(f)).unwrap();
        assert!(
            b.starts_with(b"age-encryption.org/v1") || b.is_empty(),
            "a stray temp holds plaintext: {f}"
        );
    }
}

/// `seal --all-idle` killed (abort, like a power cut) right before each step of a batch —
/// after the temp files are written and verified, before they are synced, linked, the
/// directory fsynced, or the plaintexts removed — leaves every transcript whole, plain or
/// sealed, and the next run finishes the job and sweeps the temp files.
#[test]
fn a_crash_before_any_batch_step_leaves_every_transcript_whole() {
    let bin = assert_cmd::cargo::cargo_bin("moltvault");
    for step in ["sync", "link", "sync-dir", "remove-plain"] {
        let h = Home::new();
        h.init();
        let vault = moltvault_vault::Vault::open(&h.vault()).unwrap();
        let identity = vault.identity_from_file(&h.path("rec.txt")).unwrap();
        let originals: Vec<(PathBuf, [u8; 32])> = (0..20)
            .map(|i| {
                let (p, body) = h.transcript(&format!("c{i:02}.jsonl"), 200 + i * 40, 3);
                (p, sha(&body))
            })
            .collect();
        let out = StdCommand::new(&bin)
            .env_clear()
            .env("HOME", h.dir.path())
            .env("MOLTVAULT_FAILPOINT", format!("before:{step}"))
            .current_dir(h.dir.path())
            .args(["seal", "--all-idle"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{step}: the failpoint must fire");
        let whole = |when: &str| {
            for (p, want) in &originals {
                let s = sealed(p);
                if p.exists() {
                    assert_eq!(
                        &sha(&fs::read(p).unwrap()),
                        want,
                        "{when}: {} torn",
                        p.display()
                    );
                }
                if s.exists() {
                    let (_, got) = moltvault_vault::seal::verify_sealed(&s, &identity)
                        .unwrap_or_else(|e| panic!("{when}: {} broken: {e}", s.display()));
                    assert_eq!(&got, want, "{when}: {}", s.display());
                }
                assert!(p.exists() || s.exists(), "{when}: {} lost", p.display());
            }
        };
        whole(step);
        // Before the names are durable no plaintext may be gone.
        assert!(
            originals.iter().all(|(p, _)| p.exists()),
            "{step}: a plaintext went before its sealed copy was durable"
        );
        // The next run seals everything (a crash after linking left sealed copies beside
        // their plaintexts: those are conflicts until unsealed, never data loss).
        let out = h.cmd().args(["seal", "--all-idle"]).output().unwrap();
        whole(&format!("{step} then seal"));
        if matches!(step, "sync" | "link") {
            assert!(out.status.success(), "{step}: {}", text(&out.stderr));
            assert!(
                originals
                    .iter()
                    .all(|(p, _)| !p.exists() && sealed(p).exists())
            );
        }
        let stray: Vec<String> = tree(&h.sessions())
            .into_iter()
            .filter(|f| f.contains("mvtmp"))
            .collect();
        assert!(stray.is_empty(), "{step}: temp files left: {stray:?}");
    }
}

/// `unseal --all` killed (abort) right before each step of a batch — plaintexts decrypted and
/// authenticated in their temp files, before they are synced, linked, the directory fsynced,
/// or the sealed files removed — never removes a sealed file before its plaintext is durable;
/// every transcript stays whole, and the next run finishes the job and sweeps the temp files.
#[test]
fn a_crash_before_any_unseal_batch_step_leaves_every_transcript_whole() {
    let bin = assert_cmd::cargo::cargo_bin("moltvault");
    for step in ["sync", "link", "sync-dir", "remove-plain"] {
        let h = Home::new();
        h.init();
        let vault = moltvault_vault::Vault::open(&h.vault()).unwrap();
        let identity = vault.identity_from_file(&h.path("rec.txt")).unwrap();
        let originals: Vec<(PathBuf, [u8; 32])> = (0..20)
            .map(|i| {
                let (p, body) = h.transcript(&format!("u{i:02}.jsonl"), 200 + i * 40, 3);
                (p, sha(&body))
            })
            .collect();
        let out = h.cmd().args(["seal", "--all-idle"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(originals.iter().all(|(p, _)| !p.exists()));
        let out = StdCommand::new(&bin)
            .env_clear()
            .env("HOME", h.dir.path())
            .env("MOLTVAULT_FAILPOINT", format!("before:{step}"))
            .current_dir(h.dir.path())
            .args(["unseal", "--all", "--identity", "rec.txt"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{step}: the failpoint must fire");
        let whole = |when: &str| {
            for (p, want) in &originals {
                let s = sealed(p);
                if p.exists() {
                    assert_eq!(
                        &sha(&fs::read(p).unwrap()),
                        want,
                        "{when}: {} torn",
                        p.display()
                    );
                }
                if s.exists() {
                    let (_, got) = moltvault_vault::seal::verify_sealed(&s, &identity)
                        .unwrap_or_else(|e| panic!("{when}: {} broken: {e}", s.display()));
                    assert_eq!(&got, want, "{when}: {}", s.display());
                }
                assert!(p.exists() || s.exists(), "{when}: {} lost", p.display());
            }
        };
        whole(step);
        // Before the plaintexts' names are durable no sealed file may be gone.
        assert!(
            originals.iter().all(|(p, _)| sealed(p).exists()),
            "{step}: a sealed file went before its plaintext was durable"
        );
        if matches!(step, "sync" | "link") {
            assert!(originals.iter().all(|(p, _)| !p.exists()), "{step}");
        }
        // The next run finishes: identical plaintexts left beside their sealed copies merge.
        let out = h
            .cmd()
            .args(["unseal", "--all", "--identity", "rec.txt"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{step}: {}", text(&out.stderr));
        whole(&format!("{step} then unseal"));
        assert!(
            originals
                .iter()
                .all(|(p, _)| p.exists() && !sealed(p).exists()),
            "{step}: everything plain again"
        );
        let stray: Vec<String> = tree(&h.sessions())
            .into_iter()
            .filter(|f| f.contains("mvtmp"))
            .collect();
        assert!(stray.is_empty(), "{step}: temp files left: {stray:?}");
    }
}
