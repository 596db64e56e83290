//! Tests of the backup module: round trips over a realistic tree, SQLite copies, live JSONL,
//! the malicious-archive corpus, damaged files, and interop with the Debian `age`/`zstd`/`tar`.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::*;

fn id() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

/// A small gateway home: config, transcripts (one with a torn last line), a WAL-mode SQLite DB
/// with an open writer, in-tree and escaping symlinks, a FIFO and a socket.
fn gateway_home(root: &Path) -> PathBuf {
    let s = root.join(".openclaw");
    fs::create_dir_all(s.join("agents/main/sessions")).unwrap();
    fs::create_dir_all(s.join("agents/main/agent")).unwrap();
    fs::create_dir_all(s.join("credentials")).unwrap();
    fs::set_permissions(&s, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(s.join("openclaw.json"), "{ gateway: { port: 18789 } }\n").unwrap();
    fs::set_permissions(s.join("openclaw.json"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(s.join("credentials/oauth.json"), "{\"t\":1}").unwrap();
    fs::set_permissions(
        s.join("credentials/oauth.json"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::write(
        s.join("agents/main/sessions/a.jsonl"),
        "{\"type\":\"session\",\"id\":\"a\"}\n{\"type\":\"message\"}\n{\"type\":\"mess",
    )
    .unwrap();
    fs::write(
        s.join("agents/main/sessions/b.jsonl"),
        "{\"x\":1}\n".repeat(1000),
    )
    .unwrap();
    symlink("sessions/b.jsonl", s.join("agents/main/current.jsonl")).unwrap();
    symlink("/etc/hostname", s.join("agents/main/escape")).unwrap();
    let fifo = s.join("agents/main/pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::net::UnixListener::bind(s.join("gateway.sock")).unwrap();
    s
}

fn sqlite_db(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.execute_batch(
        "CREATE TABLE transcript_events(id INTEGER PRIMARY KEY, event_json TEXT);
         INSERT INTO transcript_events(event_json) VALUES ('{\"a\":1}'), ('{\"b\":2}');",
    )
    .unwrap();
    c
}

fn tree(dir: &Path) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, String, u32)>) {
        let mut names: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", fs::read_link(&p).unwrap().display()),
                    0,
                ));
            } else if m.is_dir() {
                out.push((rel.clone(), "dir".into(), mode));
                walk(base, &p, out);
            } else if m.is_file() {
                out.push((
                    rel,
                    hex::encode(Sha256::digest(fs::read(&p).unwrap())),
                    mode,
                ));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    target: LocalDir,
    id: age::x25519::Identity,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let state = gateway_home(&root);
    Env {
        target: LocalDir::new(root.join("backups")),
        root,
        state,
        id: id(),
        _tmp: tmp,
    }
}

fn opts(e: &Env) -> BackupOptions {
    BackupOptions::new(&e.state, "testhost", e.root.join("vault-tmp"))
}

#[test]
fn backup_then_restore_round_trips_a_gateway_home() {
    let e = env();
    let conn = sqlite_db(&e.state.join("agents/main/agent/openclaw-agent.sqlite"));
    conn.execute(
        "INSERT INTO transcript_events(event_json) VALUES ('{\"live\":true}')",
        [],
    )
    .unwrap();
    assert!(
        e.state
            .join("agents/main/agent/openclaw-agent.sqlite-wal")
            .exists()
    );
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    assert_eq!(s.sqlite_databases, 1);
    assert!(s.name.starts_with("moltvault-testhost-") && s.name.ends_with(".tar.zst.age"));
    let file = e.target.dir().join(&s.name);
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let reasons: Vec<_> = s
        .skipped
        .iter()
        .map(|k| format!("{}: {}", k.path, k.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("agents/main/escape: symlink to /etc/hostname")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("agents/main/pipe: FIFO"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("gateway.sock: socket"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("agents/main/agent/openclaw-agent.sqlite-wal: SQLite sidecar"))
    );

    let v = verify(&e.target, &s.name, &e.id, &NoProgress).unwrap();
    assert_eq!((v.files, v.dirs, v.symlinks), (s.files, s.dirs, s.symlinks));

    // Restore over a changed tree: the old one is kept, the new one is the backup's.
    fs::write(e.state.join("openclaw.json"), "changed").unwrap();
    drop(conn);
    let r = restore(
        &e.target,
        &s.name,
        &e.id,
        &RestoreOptions::new(&e.state),
        &NoProgress,
    )
    .unwrap();
    let prev = r.previous.clone().unwrap();
    assert!(
        prev.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".openclaw.pre-restore-")
    );
    assert_eq!(
        fs::read_to_string(prev.join("openclaw.json")).unwrap(),
        "changed"
    );
    assert_eq!(
        fs::read_to_string(e.state.join("openclaw.json")).unwrap(),
        "{ gateway: { port: 18789 } }\n"
    );
    // The torn last line of a live transcript is not backed up.
    assert_eq!(
        fs::read_to_string(e.state.join("agents/main/sessions/a.jsonl")).unwrap(),
        "{\"type\":\"session\",\"id\":\"a\"}\n{\"type\":\"message\"}\n"
    );
    assert_eq!(
        fs::read_link(e.state.join("agents/main/current.jsonl")).unwrap(),
        Path::new("sessions/b.jsonl")
    );
    assert!(!e.state.join("agents/main/escape").exists());
    assert!(!e.state.join("agents/main/pipe").exists());
    let m = |p: &str| {
        fs::symlink_metadata(e.state.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        (m(""), m("credentials/oauth.json"), m("openclaw.json")),
        (0o700, 0o640, 0o600)
    );
    // The SQLite copy is a consistent, self-contained database with the uncheckpointed row.
    let c = rusqlite::Connection::open(e.state.join("agents/main/agent/openclaw-agent.sqlite"))
        .unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM transcript_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // Nothing left beside the target but it and the kept old tree.
    let mut names: Vec<_> = fs::read_dir(&e.root)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}"); // .openclaw, .openclaw.pre-restore-*, backups, vault-tmp
    assert_eq!(
        fs::read_dir(e.root.join("vault-tmp")).unwrap().count(),
        0,
        "temp SQLite copies are removed"
    );
}

#[test]
fn restore_only_swaps_selected_files_and_keeps_the_replaced_ones() {
    let e = env();
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    fs::write(e.state.join("openclaw.json"), "changed").unwrap();
    fs::write(e.state.join("credentials/oauth.json"), "changed too").unwrap();
    let mut o = RestoreOptions::new(&e.state);
    o.only = vec!["openclaw.json".into()];
    let r = restore(&e.target, &s.name, &e.id, &o, &NoProgress).unwrap();
    assert_eq!(r.restored, ["openclaw.json"]);
    assert_eq!(
        fs::read_to_string(e.state.join("openclaw.json")).unwrap(),
        "{ gateway: { port: 18789 } }\n"
    );
    assert_eq!(
        fs::read_to_string(e.state.join("credentials/oauth.json")).unwrap(),
        "changed too"
    );
    assert_eq!(
        fs::read_to_string(r.previous.unwrap().join("openclaw.json")).unwrap(),
        "changed"
    );
}

#[test]
fn dry_run_and_exclude() {
    let e = env();
    let mut o = opts(&e);
    o.exclude = vec!["agents/*/sessions/**".into(), "credentials".into()];
    let s = create(&o, &e.id.to_public(), &e.target, &NoProgress).unwrap();
    let mut ro = RestoreOptions::new(e.root.join("fresh"));
    ro.dry_run = true;
    let r = restore(&e.target, &s.name, &e.id, &ro, &NoProgress).unwrap();
    assert!(!e.root.join("fresh").exists());
    assert!(
        r.restored
            .iter()
            .all(|p| !p.contains("sessions/") && !p.starts_with("credentials")),
        "{:?}",
        r.restored
    );
    assert!(r.restored.contains(&"openclaw.json".to_string()));
    // Restoring into a directory that does not exist yet creates it.
    let r = restore(
        &e.target,
        &s.name,
        &e.id,
        &RestoreOptions::new(e.root.join("fresh")),
        &NoProgress,
    )
    .unwrap();
    assert!(r.previous.is_none());
    assert!(e.root.join("fresh/openclaw.json").is_file());
}

#[test]
fn the_debian_age_zstd_and_tar_read_a_backup() {
    if Command::new("age").arg("--version").output().is_err() {
        panic!("the `age` CLI is missing: run .ci/install-deps");
    }
    let e = env();
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    let key = e.root.join("key.txt");
    use age::secrecy::ExposeSecret;
    fs::write(&key, format!("{}\n", e.id.to_string().expose_secret())).unwrap();
    let out = e.root.join("out");
    fs::create_dir(&out).unwrap();
    let st = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; age -d -i '{}' '{}' | zstd -d | tar x -C '{}'",
            key.display(),
            e.target.dir().join(&s.name).display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let m: Manifest = Manifest::parse(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count(),
        s.files
    );
    let want = tree_of_restore(&e, &s.name);
    assert_eq!(tree(&out.join("state")), want);
}

fn tree_of_restore(e: &Env, name: &str) -> Vec<(String, String, u32)> {
    let dest = e.root.join(format!("restored-{}", rand_suffix()));
    restore(
        &e.target,
        name,
        &e.id,
        &RestoreOptions::new(&dest),
        &NoProgress,
    )
    .unwrap();
    tree(&dest)
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).unwrap();
    hex::encode(b)
}

#[test]
fn wrong_key_truncation_and_bit_flips_are_rejected_and_change_nothing() {
    let e = env();
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    let good = fs::read(e.target.dir().join(&s.name)).unwrap();
    let before = tree(&e.state);
    let err = verify(&e.target, &s.name, &id(), &NoProgress).unwrap_err();
    assert!(matches!(err, BackupError::Decrypt { .. }), "{err}");

    let bad_dir = LocalDir::new(e.root.join("bad"));
    fs::create_dir(bad_dir.dir()).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [10, 200, good.len() / 2, good.len() - 17, good.len() - 1] {
        cases.push((format!("truncated at {cut}"), good[..cut].to_vec()));
    }
    for at in [
        150,
        300,
        good.len() / 3,
        good.len() / 2,
        good.len() - 20,
        good.len() - 1,
    ] {
        let mut b = good.clone();
        b[at] ^= 0x20;
        cases.push((format!("bit flipped at {at}"), b));
    }
    let mut appended = good.clone();
    appended.extend_from_slice(b"junk");
    cases.push(("junk appended".into(), appended));
    for (what, bytes) in cases {
        fs::write(bad_dir.dir().join(&s.name), &bytes).unwrap();
        let err = restore(
            &bad_dir,
            &s.name,
            &e.id,
            &RestoreOptions::new(&e.state),
            &NoProgress,
        )
        .expect_err(&what);
        assert!(
            matches!(
                err,
                BackupError::Decrypt { .. } | BackupError::Corrupt { .. }
            ),
            "{what}: {err:?}"
        );
        assert_eq!(tree(&e.state), before, "{what}: the target changed");
        let extra: Vec<_> = fs::read_dir(&e.root)
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("moltvault-restore") || n.contains("pre-restore"))
            .collect();
        assert!(extra.is_empty(), "{what}: staging left behind: {extra:?}");
    }
}

// ---- The malicious-archive corpus -------------------------------------------------------

/// One raw tar member: name bytes written straight into the header (bypassing the builder's
/// own path checks), type, link name, data, and an optional lying size.
struct Raw {
    name: Vec<u8>,
    kind: tar::EntryType,
    link: Option<&'static str>,
    data: Vec<u8>,
}

fn raw(name: &str, kind: tar::EntryType, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        link: None,
        data: data.to_vec(),
    }
}

fn header_for(r: &Raw) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(r.kind);
    h.set_mode(0o644);
    h.set_size(r.data.len() as u64);
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..r.name.len()].copy_from_slice(&r.name);
    if let Some(l) = r.link {
        let ln = &mut h.as_old_mut().linkname;
        ln.fill(0);
        ln[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    h
}

fn file_entry(path: &str, data: &[u8]) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        kind: EntryKind::File,
        mode: "0600".into(),
        mtime: None,
        size: Some(data.len() as u64),
        sha256: Some(hex::encode(Sha256::digest(data))),
        target: None,
        captured: None,
    }
}

fn manifest_of(entries: Vec<ManifestEntry>) -> Vec<u8> {
    Manifest {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        created_by: "test".into(),
        created: "2026-11-25T20:00:00Z".into(),
        host: "h".into(),
        source_name: ".openclaw".into(),
        root_mode: "0700".into(),
        entries,
        skipped: vec![],
    }
    .to_json()
}

/// Encrypts a hand-made archive: manifest first (unless `manifest` is None), then `members`.
fn evil(
    recipient: &age::x25519::Recipient,
    manifest: Option<Vec<u8>>,
    members: Vec<Raw>,
    tail: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    {
        let mut b = tar::Builder::new(&mut t);
        if let Some(m) = manifest {
            let r = raw(MANIFEST_MEMBER, tar::EntryType::Regular, &m);
            b.append(&header_for(&r), &m[..]).unwrap();
        }
        for r in &members {
            b.append(&header_for(r), &r.data[..]).unwrap();
        }
        b.finish().unwrap();
    }
    t.extend_from_slice(tail);
    let z = zstd::encode_all(&t[..], 19).unwrap();
    age::encrypt(recipient, &z).unwrap()
}

#[test]
fn malicious_archives_are_rejected_with_nothing_written_outside_staging() {
    let e = env();
    let r = e.id.to_public();
    let before = tree(&e.state);
    let outside = e.root.join("victim.txt");
    fs::write(&outside, "victim").unwrap();
    let f = |p: &str| file_entry(p, b"abc");
    let dir = |p: &str| ManifestEntry {
        kind: EntryKind::Dir,
        size: None,
        sha256: None,
        mode: "0700".into(),
        ..f(p)
    };
    let link = |p: &str, t: &str| ManifestEntry {
        kind: EntryKind::Symlink,
        size: None,
        sha256: None,
        target: Some(t.into()),
        mode: "0777".into(),
        ..f(p)
    };
    let reg = |p: &str| raw(p, tar::EntryType::Regular, b"abc");
    let mut pax = Vec::new();
    {
        // A PAX header announcing a size that differs from the ustar header's.
        let rec = "size=64\n";
        let line = format!("{} {rec}", rec.len() + 3);
        pax.extend_from_slice(line.as_bytes());
    }
    let mut symlink_then_file = raw("state/l", tar::EntryType::Symlink, b"");
    symlink_then_file.link = Some("/");
    let mut in_tree_link = raw("state/l", tar::EntryType::Symlink, b"");
    in_tree_link.link = Some("d");
    let mut hard = raw("state/x", tar::EntryType::Link, b"");
    hard.link = Some("../../victim.txt");
    let bomb_manifest = manifest_of(vec![f("x")]);

    let corpus: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot path",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![reg("state/../x")],
                b"",
            ),
            "`..`",
        ),
        (
            "dotdot in manifest",
            evil(
                &r,
                Some(manifest_of(vec![f("../victim.txt")])),
                vec![reg("state/../victim.txt")],
                b"",
            ),
            "`..`",
        ),
        (
            "absolute path",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![reg("/tmp/x")],
                b"",
            ),
            "outside state/",
        ),
        (
            "absolute in manifest",
            evil(
                &r,
                Some(manifest_of(vec![f("/tmp/x")])),
                vec![reg("state//tmp/x")],
                b"",
            ),
            "absolute",
        ),
        (
            "escaping symlink in manifest",
            evil(
                &r,
                Some(manifest_of(vec![link("l", "/etc")])),
                vec![symlink_then_file],
                b"",
            ),
            "absolute target",
        ),
        (
            "symlink then a file through it",
            evil(
                &r,
                Some(manifest_of(vec![link("l", "d"), f("l/x")])),
                vec![in_tree_link, reg("state/l/x")],
                b"",
            ),
            "parent",
        ),
        (
            "symlink where the manifest has a dir",
            {
                let mut l = raw("state/d", tar::EntryType::Symlink, b"");
                l.link = Some("/");
                evil(
                    &r,
                    Some(manifest_of(vec![dir("d"), f("d/x")])),
                    vec![l, reg("state/d/x")],
                    b"",
                )
            },
            "type differs",
        ),
        (
            "hard link",
            evil(&r, Some(manifest_of(vec![f("x")])), vec![hard], b""),
            "hard links",
        ),
        (
            "char device",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![raw("state/x", tar::EntryType::Char, b"")],
                b"",
            ),
            "device",
        ),
        (
            "fifo",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![raw("state/x", tar::EntryType::Fifo, b"")],
                b"",
            ),
            "device files and FIFOs",
        ),
        (
            "duplicate entry",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![reg("state/x"), reg("state/x")],
                b"",
            ),
            "twice",
        ),
        (
            "entry missing from the manifest",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![reg("state/x"), reg("state/y")],
                b"",
            ),
            "not listed",
        ),
        (
            "manifest entry missing from the archive",
            evil(
                &r,
                Some(manifest_of(vec![f("x"), f("y")])),
                vec![reg("state/x")],
                b"",
            ),
            "not in the archive",
        ),
        (
            "no manifest",
            evil(&r, None, vec![reg("state/x")], b""),
            "first entry",
        ),
        (
            "manifest not first",
            {
                let m = manifest_of(vec![f("x")]);
                evil(
                    &r,
                    None,
                    vec![
                        reg("state/x"),
                        raw(MANIFEST_MEMBER, tar::EntryType::Regular, &m),
                    ],
                    b"",
                )
            },
            "first entry",
        ),
        (
            "wrong content",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![raw("state/x", tar::EntryType::Regular, b"abd")],
                b"",
            ),
            "SHA-256",
        ),
        (
            "size differs from the manifest",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![raw("state/x", tar::EntryType::Regular, b"abcd")],
                b"",
            ),
            "size differs",
        ),
        (
            "PAX size trick",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![
                    raw("state/x", tar::EntryType::XHeader, &pax),
                    reg("state/x"),
                ],
                b"",
            ),
            "size differs",
        ),
        (
            "zip-bomb-like expansion",
            evil(
                &r,
                Some(bomb_manifest),
                vec![reg("state/x")],
                &vec![0u8; 8 << 20],
            ),
            "zip-bomb",
        ),
        (
            "data after the end",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![reg("state/x")],
                &[0u8, 0, 7],
            ),
            "follows the end",
        ),
        (
            "global PAX header",
            evil(
                &r,
                Some(manifest_of(vec![f("x")])),
                vec![
                    raw(
                        "pax_global_header",
                        tar::EntryType::XGlobalHeader,
                        b"9 a=bcd\n",
                    ),
                    reg("state/x"),
                ],
                b"",
            ),
            "not accepted",
        ),
    ];
    let dir_t = LocalDir::new(e.root.join("evil"));
    fs::create_dir(dir_t.dir()).unwrap();
    for (i, (what, bytes, needle)) in corpus.into_iter().enumerate() {
        let name = format!("moltvault-evil-20261125T2000{:02}Z.tar.zst.age", i);
        fs::write(dir_t.dir().join(&name), &bytes).unwrap();
        assert!(
            verify(&dir_t, &name, &e.id, &NoProgress).is_err(),
            "{what}: verify accepted it"
        );
        let err = restore(
            &dir_t,
            &name,
            &e.id,
            &RestoreOptions::new(&e.state),
            &NoProgress,
        )
        .expect_err(what);
        let msg = format!("{err}");
        assert!(msg.contains(needle), "{what}: unexpected error {msg:?}");
        assert!(
            !msg.contains("abc"),
            "{what}: content leaked into the error"
        );
        assert_eq!(tree(&e.state), before, "{what}: the target changed");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "victim", "{what}");
        let mut names: Vec<_> = fs::read_dir(&e.root)
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".openclaw", "evil", "victim.txt"],
            "{what}: something was written outside staging"
        );
    }
}

#[test]
fn a_well_formed_hand_made_archive_with_an_in_tree_symlink_restores() {
    // The control for the corpus above: the same builder, a valid shape.
    let e = env();
    let f = file_entry("d/x", b"abc");
    let d = ManifestEntry {
        kind: EntryKind::Dir,
        size: None,
        sha256: None,
        mode: "0755".into(),
        ..file_entry("d", b"")
    };
    let l = ManifestEntry {
        kind: EntryKind::Symlink,
        size: None,
        sha256: None,
        target: Some("d/x".into()),
        ..file_entry("l", b"")
    };
    let mut lr = raw("state/l", tar::EntryType::Symlink, b"");
    lr.link = Some("d/x");
    let bytes = evil(
        &e.id.to_public(),
        Some(manifest_of(vec![d, f, l])),
        vec![
            raw("state/d/", tar::EntryType::Directory, b""),
            raw("state/d/x", tar::EntryType::Regular, b"abc"),
            lr,
        ],
        b"",
    );
    let t = LocalDir::new(e.root.join("ok"));
    fs::create_dir(t.dir()).unwrap();
    let name = "moltvault-ok-20261125T200000Z.tar.zst.age";
    fs::write(t.dir().join(name), bytes).unwrap();
    let dest = e.root.join("dest");
    restore(&t, name, &e.id, &RestoreOptions::new(&dest), &NoProgress).unwrap();
    assert_eq!(fs::read_to_string(dest.join("l")).unwrap(), "abc");
    assert_eq!(
        fs::metadata(dest.join("d")).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn prune_verifies_before_deleting_and_never_deletes_newer_than_verified() {
    let e = env();
    let mut o = opts(&e);
    let mut names = Vec::new();
    for (d, h) in [(20, 1), (21, 1), (22, 1), (23, 1), (23, 9)] {
        o.time = Some(
            time::Date::from_calendar_date(2026, time::Month::November, d)
                .unwrap()
                .with_hms(h, 0, 0)
                .unwrap()
                .assume_utc(),
        );
        names.push(
            create(&o, &e.id.to_public(), &e.target, &NoProgress)
                .unwrap()
                .name,
        );
    }
    let policy = KeepPolicy {
        last: 2,
        ..Default::default()
    };
    let dry = prune(&e.target, None, policy, true, &NoProgress).unwrap();
    assert_eq!(dry.deleted.len(), 3);
    assert_eq!(list_backups(&e.target).unwrap().len(), 5);

    // Damage the newest: prune falls back to the next kept one and deletes only older ones.
    let newest = e.target.dir().join(&names[4]);
    let mut b = fs::read(&newest).unwrap();
    let n = b.len();
    b[n / 2] ^= 1;
    fs::write(&newest, b).unwrap();
    let rep = prune(&e.target, Some(&e.id), policy, false, &NoProgress).unwrap();
    assert_eq!(rep.verified.as_deref(), Some(names[3].as_str()));
    let left: Vec<_> = list_backups(&e.target)
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(left, [names[3].clone(), names[4].clone()]);

    // Nothing verifies (wrong key): nothing is deleted.
    let err = prune(
        &e.target,
        Some(&id()),
        KeepPolicy {
            last: 1,
            ..Default::default()
        },
        false,
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::NothingVerified { .. }));
    assert_eq!(list_backups(&e.target).unwrap().len(), 2);
}

#[test]
fn a_file_changed_in_place_during_the_backup_fails_it_and_leaves_no_file() {
    // Simulated with a progress hook that rewrites a file between the hash pass and the write.
    struct Meddler(PathBuf, std::cell::Cell<bool>);
    impl Progress for Meddler {
        fn set_total(&self, total: u64) {
            if total > 0 && !self.1.replace(true) {
                let mut f = fs::OpenOptions::new().write(true).open(&self.0).unwrap();
                f.write_all(b"X").unwrap();
            }
        }
        fn advance(&self, _n: u64) {}
    }
    let e = env();
    let m = Meddler(e.state.join("openclaw.json"), Default::default());
    let err = create(&opts(&e), &e.id.to_public(), &e.target, &m).unwrap_err();
    assert!(matches!(err, BackupError::Changed { .. }), "{err}");
    assert_eq!(list_backups(&e.target).unwrap().len(), 0);
    assert_eq!(
        fs::read_dir(e.target.dir()).unwrap().count(),
        0,
        "no temp file left"
    );
}

#[test]
fn backup_error_messages_name_the_file() {
    let e = env();
    let err = verify(
        &e.target,
        "moltvault-x-20261125T200000Z.tar.zst.age",
        &e.id,
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no backup named moltvault-x-20261125T200000Z.tar.zst.age on the target"
    );
}

/// Copies a directory tree (files, dirs, modes; symlinks as symlinks).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_file() {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The tables of a SQLite database and their row counts (the online-backup copy of a database
/// holds the same rows, not necessarily the same page layout).
fn sqlite_rows(path: &Path) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "{}", path.display());
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    names
        .into_iter()
        .map(|t| {
            let n = c
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

/// Backup → wipe → restore of the real sample homes of the three gateway lines (JSONL and
/// SQLite) gives byte-identical files with their modes, and SQLite stores with the same rows.
#[test]
fn the_three_gateway_lines_round_trip_byte_identically() {
    let homes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homes");
    for line in [
        "clawdbot-2026.1.24",
        "openclaw-2026.7.35",
        "openclaw-2026.9.6",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join(".openclaw");
        copy_tree(&homes.join(line), &state);
        let is_db = |p: &str| p.ends_with(".sqlite");
        let split = |t: Vec<(String, String, u32)>| -> (Vec<_>, Vec<_>) {
            t.into_iter().partition(|(p, _, _)| !is_db(p))
        };
        let (before, dbs) = split(tree(&state));
        assert!(before.len() > 3, "{line}: sample home is empty");
        let db_rows: Vec<_> = dbs
            .iter()
            .map(|(p, _, _)| sqlite_rows(&state.join(p)))
            .collect();
        let target = LocalDir::new(tmp.path().join("backups"));
        let key = id();
        let opts = BackupOptions::new(&state, "testhost", tmp.path().join("vault-tmp"));
        let s = create(&opts, &key.to_public(), &target, &NoProgress).unwrap();
        fs::remove_dir_all(&state).unwrap();
        restore(
            &target,
            &s.name,
            &key,
            &RestoreOptions::new(&state),
            &NoProgress,
        )
        .unwrap();
        let (after, dbs_after) = split(tree(&state));
        assert_eq!(after, before, "{line}");
        assert_eq!(
            dbs_after.iter().map(|(p, _, m)| (p, m)).collect::<Vec<_>>(),
            dbs.iter().map(|(p, _, m)| (p, m)).collect::<Vec<_>>(),
            "{line}"
        );
        for ((p, _, _), rows) in dbs.iter().zip(&db_rows) {
            assert_eq!(&sqlite_rows(&state.join(p)), rows, "{line}: {p}");
        }
    }
}

/// A SQLite store that a writer keeps appending to during the backup is copied consistently:
/// the restored database passes `integrity_check` and holds every row committed before the
/// backup started.
#[test]
fn a_sqlite_store_written_during_the_backup_restores_consistent() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = env();
    let db = e.state.join("agents/main/agent/openclaw-agent.sqlite");
    let conn = sqlite_db(&db);
    for i in 0..2000 {
        conn.execute(
            "INSERT INTO transcript_events(event_json) VALUES (?1)",
            [format!("{{\"seed\":{i}}}")],
        )
        .unwrap();
    }
    drop(conn);
    let committed_before = 2002i64;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.execute(
                    "INSERT INTO transcript_events(event_json) VALUES (?1)",
                    [format!("{{\"live\":{n},\"pad\":\"{}\"}}", "x".repeat(512))],
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    // Let the writer get going, then back up while it writes.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer ran during the backup");
    restore(
        &e.target,
        &s.name,
        &e.id,
        &RestoreOptions::new(&e.state),
        &NoProgress,
    )
    .unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: i64 = c
        .query_row("SELECT count(*) FROM transcript_events", [], |r| r.get(0))
        .unwrap();
    assert!(
        n >= committed_before && n <= committed_before + written as i64,
        "restored {n} rows"
    );
}

/// Sets a path's mtime (not following symlinks) `secs` seconds into the past.
fn age_by(p: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    let f = fs::File::open(p).unwrap();
    f.set_modified(t).unwrap();
}

fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(p).unwrap().mtime()
}

#[test]
fn restore_gives_back_directory_and_symlink_mtimes() {
    let e = env();
    let set = |p: &Path, t: i64| {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: t,
                    tv_nsec: 0,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: t,
                    tv_nsec: 0,
                },
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    };
    let paths = [
        "agents/main/sessions/b.jsonl",
        "agents/main/current.jsonl",
        "agents/main/sessions",
        "agents/main",
        "agents",
        "credentials",
    ];
    for (i, p) in paths.iter().enumerate() {
        set(&e.state.join(p), 1_700_000_000 + i as i64 * 1000);
    }
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    let to = e.root.join("restored/.openclaw");
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    restore(
        &e.target,
        &s.name,
        &e.id,
        &RestoreOptions::new(&to),
        &NoProgress,
    )
    .unwrap();
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(mtime(&to.join(p)), 1_700_000_000 + i as i64 * 1000, "{p}");
    }
}

#[test]
fn leftovers_of_killed_restores_are_cleaned_only_when_stale_and_unlocked() {
    // The target is `.openclaw`, so its leftovers are hidden `..openclaw.moltvault-*` dirs.
    let e = env();
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    let mk = |name: &str, old: bool| {
        let p = e.root.join(name);
        fs::create_dir_all(p.join("sub")).unwrap();
        fs::write(p.join("sub/f"), "partial").unwrap();
        if old {
            age_by(&p, 3600);
        }
        p
    };
    let stale_staging = mk("..openclaw.moltvault-restore-0123456789ab", true);
    let stale_swap = mk("..openclaw.moltvault-swap-0123456789ab", true);
    let fresh_staging = mk("..openclaw.moltvault-restore-aaaaaaaaaaaa", false);
    let held = mk("..openclaw.moltvault-restore-bbbbbbbbbbbb", true);
    let other_target = mk("..other.moltvault-restore-0123456789ab", true);
    let held_lock = leftovers::open_dir(&held).unwrap();
    assert!(leftovers::try_lock(&held_lock).unwrap());

    let mut o = RestoreOptions::new(&e.state);
    o.time = Some(time::macros::datetime!(2026-11-25 20:00:00 UTC));
    let r = restore(&e.target, &s.name, &e.id, &o, &NoProgress).unwrap();

    assert!(!stale_staging.exists(), "a stale staging dir is removed");
    assert!(!stale_swap.exists(), "a stale swap dir is moved");
    let kept = e
        .root
        .join(".openclaw.interrupted-restore-20261125T200000Z");
    assert_eq!(fs::read_to_string(kept.join("sub/f")).unwrap(), "partial");
    assert!(fresh_staging.exists(), "a recent one may be a run starting");
    assert!(held.exists(), "a locked one belongs to a live run");
    assert!(
        other_target.exists(),
        "another target's leftovers are not ours"
    );
    let mut got = r.leftovers.clone();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        got,
        vec![
            Leftover {
                path: stale_staging,
                kept_as: None
            },
            Leftover {
                path: stale_swap,
                kept_as: Some(kept)
            },
        ]
    );
    // No staging or swap dir of this run survives it.
    let ours: Vec<_> = fs::read_dir(&e.root)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("..openclaw.moltvault-"))
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
}

#[test]
fn a_second_restore_into_a_directory_being_restored_is_refused() {
    let e = env();
    let s = create(&opts(&e), &e.id.to_public(), &e.target, &NoProgress).unwrap();
    let lock = leftovers::open_dir(&e.state).unwrap();
    assert!(leftovers::try_lock(&lock).unwrap());
    let before = tree(&e.state);
    let err = restore(
        &e.target,
        &s.name,
        &e.id,
        &RestoreOptions::new(&e.state),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::Busy(_)), "{err}");
    assert_eq!(tree(&e.state), before);
    drop(lock);
    restore(
        &e.target,
        &s.name,
        &e.id,
        &RestoreOptions::new(&e.state),
        &NoProgress,
    )
    .unwrap();
}

#[test]
fn leftovers_of_killed_backups_are_removed_by_the_next_backup() {
    let e = env();
    let o = opts(&e);
    fs::create_dir_all(e.target.dir()).unwrap();
    fs::create_dir_all(&o.temp_dir).unwrap();
    let partial = e
        .target
        .dir()
        .join(".moltvault-testhost-20261125T190000Z.tar.zst.age.mvtmp-0123456789ab");
    let held = e
        .target
        .dir()
        .join(".moltvault-testhost-20261125T190001Z.tar.zst.age.mvtmp-0123456789ab");
    let unrelated = e.target.dir().join(".something.mvtmp-0123456789ab");
    let sqlite_tmp = o.temp_dir.join(".moltvault-backup-abcdef");
    for p in [&partial, &held, &unrelated] {
        fs::write(p, "partial ciphertext").unwrap();
        age_by(p, 3600);
    }
    fs::create_dir_all(&sqlite_tmp).unwrap();
    fs::write(sqlite_tmp.join("db-1.sqlite"), "plaintext copy").unwrap();
    age_by(&sqlite_tmp, 3600);
    let held_f = fs::File::open(&held).unwrap();
    assert!(leftovers::try_lock(&held_f).unwrap());

    create(&o, &e.id.to_public(), &e.target, &NoProgress).unwrap();
    assert!(!partial.exists());
    assert!(
        !sqlite_tmp.exists(),
        "SQLite plaintext copies must not linger"
    );
    assert!(
        held.exists(),
        "a locked temp file belongs to a running backup"
    );
    assert!(unrelated.exists(), "not ours");
    // The run's own temp file and temp dir are gone too.
    let left: Vec<_> = fs::read_dir(e.target.dir())
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tar.zst.age.mvtmp-"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(fs::read_dir(&o.temp_dir).unwrap().count(), 0);
}
