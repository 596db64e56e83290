//! `moltvault redact` end to end: stdout, stdin, --in-place (mode kept, zstd archives),
//! symlinks refused, kill -9 safety, bad rule files.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use moltvault_testutils::secrets::{FakeRng, provider_secrets};

/// A temp home with a fixed install key, so fingerprints in snapshots are stable.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        fs::create_dir_all(&vault).unwrap();
        fs::set_permissions(&vault, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(vault.join("install.key"), [7u8; 32]).unwrap();
        fs::set_permissions(vault.join("install.key"), fs::Permissions::from_mode(0o600)).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("moltvault").unwrap();
        c.env_clear()
            .env("HOME", self.path())
            .env("MOLTVAULT_DIR", self.path().join("vault"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.path());
        c
    }

    pub fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.add_filter(&regex_escape(&self.path().display().to_string()), "[TMP]");
        s
    }
}

pub fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// The fake GitHub token used in snapshots (built from fragments).
pub fn gh_token() -> String {
    format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    )
}

/// A three-record transcript: a user turn, a tool call and a tool result holding `secret`.
pub fn transcript(secret: &str) -> String {
    format!(
        concat!(
            r#"{{"type":"session","version":3,"id":"s1","timestamp":"2026-11-25T18:00:00.000Z","cwd":"/w"}}"#,
            "\n",
            r#"{{"type":"message","id":"a1","parentId":null,"message":{{"role":"user","content":[{{"type":"text","text":"token {s}"}}]}}}}"#,
            "\n",
            r#"{{"type":"message","id":"a2","parentId":"a1","message":{{"role":"toolResult","toolCallId":"call_1","toolName":"exec","content":[{{"type":"text","text":"export GITHUB_TOKEN={s}\ndone"}}]}}}}"#,
            "\n"
        ),
        s = secret
    )
}

#[test]
fn redacts_a_file_to_stdout_then_in_place_keeping_mode() {
    let h = Home::new();
    let f = h.path().join("s.jsonl");
    fs::write(&f, transcript(&gh_token())).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let out = h.cmd().args(["redact", "s.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // The user's own text is kept verbatim (tool output only by default); the snapshot names
    // the token instead of holding it, so the repository stays clean for scanners.
    let stdout = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&gh_token(), "<gh_token>");
    insta::assert_snapshot!(stdout, @r#"
    {"type":"session","version":3,"id":"s1","timestamp":"2026-11-25T18:00:00.000Z","cwd":"/w"}
    {"type":"message","id":"a1","parentId":null,"message":{"role":"user","content":[{"type":"text","text":"token <gh_token>"}]}}
    {"type":"message","id":"a2","parentId":"a1","message":{"role":"toolResult","toolCallId":"call_1","toolName":"exec","content":[{"type":"text","text":"export GITHUB_TOKEN=[REDACTED:github-pat:db6eb671]\ndone"}]}}
    "#);
    // The file is untouched until --in-place.
    assert_eq!(fs::read_to_string(&f).unwrap(), transcript(&gh_token()));

    let out = h
        .cmd()
        .args(["redact", "--in-place", "--mode", "all", "s.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    s.jsonl: 2 secrets redacted in 2 of 3 records
    2 secrets redacted in 1 of 1 file
    ");
    let after = fs::read_to_string(&f).unwrap();
    assert!(!after.contains(&gh_token()));
    assert_eq!(after.lines().count(), 3);
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Idempotent: a second run changes nothing and says so.
    let out = h
        .cmd()
        .args(["redact", "--in-place", "--mode", "all", "s.jsonl"])
        .output()
        .unwrap();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @"0 secrets redacted in 0 of 1 file");
    assert_eq!(fs::read_to_string(&f).unwrap(), after);
}

#[test]
fn filters_stdin_and_writes_output_file() {
    let h = Home::new();
    let out = h
        .cmd()
        .args(["redact", "--mode", "all"])
        .write_stdin(transcript(&gh_token()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&gh_token()));
    assert_eq!(text.matches("[REDACTED:github-pat:db6eb671]").count(), 2);

    fs::write(h.path().join("in.jsonl"), transcript(&gh_token())).unwrap();
    let out = h
        .cmd()
        .args(["redact", "in.jsonl", "-o", "out.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @"in.jsonl: 1 secret redacted in 1 of 3 records");
    let o = h.path().join("out.jsonl");
    assert_eq!(
        fs::metadata(&o).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        fs::read_to_string(&o)
            .unwrap()
            .contains("[REDACTED:github-pat:db6eb671]")
    );
}

#[test]
fn refuses_symlinks() {
    let h = Home::new();
    fs::write(h.path().join("real.jsonl"), transcript(&gh_token())).unwrap();
    std::os::unix::fs::symlink(h.path().join("real.jsonl"), h.path().join("link.jsonl")).unwrap();
    let out = h
        .cmd()
        .args(["redact", "--in-place", "link.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _g = h.settings().bind_to_scope();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    error: link.jsonl is a symlink; moltvault does not follow symlinks
    hint: Pass the real file the symlink points to.
    0 secrets redacted in 0 of 1 file
    error: 1 file(s) could not be redacted (see the errors above)
    hint: Fix the errors above and run the command again; the other files are done.
    ");
    assert_eq!(
        fs::read_to_string(h.path().join("real.jsonl")).unwrap(),
        transcript(&gh_token())
    );
}

#[test]
fn zstd_archives_are_rewritten_as_zstd() {
    let h = Home::new();
    let name = "1d8ef48d.jsonl.deleted.2026-11-25T18-16-56.790Z.e8ca0931.zst";
    let f = h.path().join(name);
    fs::write(
        &f,
        zstd::encode_all(transcript(&gh_token()).as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let out = h
        .cmd()
        .args(["redact", "--in-place", "--mode", "all", name])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = zstd::decode_all(&fs::read(&f).unwrap()[..]).unwrap();
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain.contains("[REDACTED:github-pat:db6eb671]"), "{plain}");
    assert!(!plain.contains(&gh_token()));
    assert_eq!(plain.lines().count(), 3);
}

#[test]
fn bad_rule_file_names_file_rule_and_line() {
    let h = Home::new();
    fs::write(
        h.path().join("rules.toml"),
        "[[rules]]\nid = \"acme\"\ndescription = \"x\"\nregex = 'acme_('\nkeywords = [\"acme_\"]\n",
    )
    .unwrap();
    let out = h
        .cmd()
        .args(["redact", "--rules", "rules.toml"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    error: invalid rule `acme` in rules.toml (line 2): bad regex: unclosed group
    hint: Fix that rule in the file named above (the format is in docs/redaction.md), or pass another file with --rules.
    ");
}

#[test]
fn empty_stdin_gives_empty_output() {
    let h = Home::new();
    let out = h.cmd().args(["redact"]).write_stdin("").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

/// kill -9 in the middle of `redact --in-place` on a big file leaves the old or the new file,
/// never a mix.
#[test]
fn kill_during_in_place_leaves_old_or_new_file() {
    let h = Home::new();
    let f: PathBuf = h.path().join("big.jsonl");
    let mut rng = FakeRng::new(99);
    let secrets = provider_secrets(&mut rng);
    let mut data = String::new();
    let mut i = 0;
    while data.len() < 24 << 20 {
        let text = if i % 50 == 0 {
            secrets[i / 50 % secrets.len()].text.clone()
        } else {
            format!(
                "line {i} of tool output: {}",
                "lorem ipsum dolor sit amet ".repeat(8)
            )
        };
        data.push_str(
            &transcript(&text)
                .lines()
                .nth(2)
                .unwrap()
                .replace("export GITHUB_TOKEN=", ""),
        );
        data.push('\n');
        i += 1;
    }
    fs::write(&f, &data).unwrap();
    // The fully redacted result, for comparison.
    let full = h
        .cmd()
        .args(["redact", "big.jsonl"])
        .output()
        .unwrap()
        .stdout;
    assert_ne!(full, data.as_bytes());
    for delay in [30u64, 120, 400] {
        fs::write(&f, &data).unwrap();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("moltvault"))
            .env_clear()
            .env("HOME", h.path())
            .env("MOLTVAULT_DIR", h.path().join("vault"))
            .current_dir(h.path())
            .args(["redact", "--in-place", "big.jsonl"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let now = fs::read(&f).unwrap();
        assert!(
            now == data.as_bytes() || now == full,
            "mixed file after kill at {delay} ms"
        );
    }
    // No temp file is left visible as a transcript (temp names start with a dot).
    for e in fs::read_dir(h.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.starts_with('.') || !name.contains("mvtmp"), "{name}");
    }
    let _ = std::io::stdout().flush();
}
