//! Property tests of reading untrusted backups (the stable twin of the `backup_archive`
//! fuzzer): faithful archives of generated trees restore exactly, and damaged or hostile ones
//! (dropped members, wrong hashes and sizes, `..` and absolute names, hard links, FIFOs,
//! reordering, truncation, trailing bytes) never panic, never write outside the staging
//! directory, and are either refused or restore exactly what their manifest promises.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use moltvault_testutils::archive::{Damage, Entry, Node, Tree};
use moltvault_vault::backup::{Limits, NoProgress, VerifyReport, read_archive};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// A tree of up to three directory levels with files and sibling symlinks, listed parents first.
fn tree() -> impl Strategy<Value = Tree> {
    let name = "[a-z0-9_][a-z0-9_.-]{0,10}";
    let leaf = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Node::File),
        1 => Just(Node::Dir),
        1 => Just(Node::Symlink(String::new())),
    ];
    proptest::collection::vec(
        (proptest::collection::vec(name, 1..4), leaf, 0o400u32..0o777),
        0..12,
    )
    .prop_map(|items| {
        let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
        let mut order = Vec::new();
        for (parts, node, mode) in items {
            // Every ancestor is a directory (unless something else already took its name).
            let mut prefix = String::new();
            let mut blocked = false;
            for part in &parts[..parts.len() - 1] {
                prefix = if prefix.is_empty() {
                    part.clone()
                } else {
                    format!("{prefix}/{part}")
                };
                match by_path.get(&prefix) {
                    Some(Entry {
                        node: Node::Dir, ..
                    }) => {}
                    Some(_) => {
                        blocked = true;
                        break;
                    }
                    None => {
                        by_path.insert(
                            prefix.clone(),
                            Entry {
                                path: prefix.clone(),
                                node: Node::Dir,
                                mode: 0o700,
                            },
                        );
                        order.push(prefix.clone());
                    }
                }
            }
            let path = parts.join("/");
            if blocked || by_path.contains_key(&path) {
                continue;
            }
            let node = match node {
                // A link to the first file already in the same directory, if any.
                Node::Symlink(_) => {
                    let dir = path.rsplit_once('/').map(|(d, _)| d);
                    let sibling = order.iter().find(|p| {
                        p.rsplit_once('/').map(|(d, _)| d) == dir
                            && matches!(by_path[*p].node, Node::File(_))
                    });
                    match sibling {
                        Some(s) => Node::Symlink(s.rsplit('/').next().unwrap_or(s).to_string()),
                        None => continue,
                    }
                }
                other => other,
            };
            let mode = if node == Node::Dir {
                mode | 0o700
            } else {
                mode
            };
            by_path.insert(
                path.clone(),
                Entry {
                    path: path.clone(),
                    node,
                    mode,
                },
            );
            order.push(path);
        }
        Tree {
            entries: order.into_iter().map(|p| by_path[&p].clone()).collect(),
        }
    })
}

fn damage() -> impl Strategy<Value = Damage> {
    let hostile = prop_oneof![
        Just(b"state/../escape".to_vec()),
        Just(b"../escape".to_vec()),
        Just(b"/tmp/escape".to_vec()),
        Just(b"state//x".to_vec()),
        Just(b"state/./x".to_vec()),
        Just(b"state/a\0b".to_vec()),
        Just(b"manifest.json".to_vec()),
        Just(format!("state/{}", "d/".repeat(80)).into_bytes()),
        proptest::collection::vec(any::<u8>(), 1..40),
    ];
    prop_oneof![
        any::<usize>().prop_map(Damage::DropMember),
        any::<usize>().prop_map(Damage::DropFromManifest),
        any::<usize>().prop_map(Damage::WrongHash),
        (any::<usize>(), 1u64..5).prop_map(|(i, by)| Damage::WrongSize(i, by)),
        (any::<usize>(), hostile).prop_map(|(i, n)| Damage::RawName(i, n)),
        (
            "[a-z]{1,6}",
            prop_oneof![Just("/etc/passwd"), Just("../x"), Just("state/a")]
        )
            .prop_map(|(n, t)| Damage::HardLink(n, t.to_string())),
        "[a-z]{1,6}".prop_map(Damage::Fifo),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Damage::Swap(i, j)),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Damage::Manifest),
        (0u16..1000).prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 1..600).prop_map(Damage::Trailing),
    ]
}

/// Compresses, encrypts and reads `tar` into a fresh staging directory; returns the result,
/// the root holding the staging directory, and the staging path.
fn read(tar: &[u8]) -> (Result<VerifyReport, String>, tempfile::TempDir) {
    let id = age::x25519::Identity::generate();
    let z = zstd::encode_all(tar, 1).unwrap();
    let ct = age::encrypt(&id.to_public(), &z).unwrap();
    let root = tempfile::tempdir().unwrap();
    let staging = root.path().join("staging");
    fs::create_dir(&staging).unwrap();
    let r = read_archive(
        &ct[..],
        "prop",
        &id,
        Some(&staging),
        None,
        Limits::default(),
        &NoProgress,
    )
    .map_err(|e| e.to_string());
    (r, root)
}

/// Every path under `dir` (relative, `/`-separated), with what is there.
fn listing(dir: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            let node = if meta.file_type().is_symlink() {
                Node::Symlink(fs::read_link(&p).unwrap().to_string_lossy().into_owned())
            } else if meta.is_dir() {
                stack.push(p.clone());
                Node::Dir
            } else {
                Node::File(fs::read(&p).unwrap())
            };
            out.insert(rel, node);
        }
    }
    out
}

fn only_staging(root: &Path) -> bool {
    fs::read_dir(root)
        .unwrap()
        .all(|e| e.unwrap().file_name() == "staging")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_faithful_archive_restores_exactly(t in tree()) {
        let (r, root) = read(&t.tar(&[]));
        let report = r.map_err(TestCaseError::fail)?;
        let staging = root.path().join("staging");
        let want: BTreeMap<String, Node> =
            t.entries.iter().map(|e| (e.path.clone(), e.node.clone())).collect();
        prop_assert_eq!(listing(&staging), want);
        prop_assert_eq!(
            report.files,
            t.entries.iter().filter(|e| matches!(e.node, Node::File(_))).count()
        );
        for e in &t.entries {
            if let Node::File(_) = e.node {
                let mode = fs::metadata(staging.join(&e.path)).unwrap().permissions().mode();
                prop_assert_eq!(mode & 0o777, e.mode & 0o777, "{}", e.path);
            }
        }
        prop_assert!(only_staging(root.path()));
    }

    #[test]
    fn a_damaged_archive_is_refused_or_restores_what_its_manifest_promises(
        t in tree(),
        damages in proptest::collection::vec(damage(), 1..3),
    ) {
        let tar = t.tar(&damages);
        let (r, root) = read(&tar);
        prop_assert!(only_staging(root.path()), "wrote outside staging");
        let staging = root.path().join("staging");
        let cut = damages.iter().any(|d| matches!(d, Damage::Truncate(_)));
        let dropped = damages
            .iter()
            .any(|d| matches!(d, Damage::DropFromManifest(_) | Damage::DropMember(_)));
        let has_file = t.entries.iter().any(|e| matches!(e.node, Node::File(_)));
        let must_fail = damages.iter().any(|d| match d {
            Damage::WrongHash(_) => has_file,
            Damage::WrongSize(..) => has_file && !dropped,
            Damage::DropMember(_) => !t.entries.is_empty() && damages.len() == 1,
            Damage::RawName(_, name) => {
                !t.entries.is_empty()
                    && (name.starts_with(b"/") || name.windows(2).any(|w| w == b".."))
            }
            // (Unless a later `DropMember` took the added member out again.)
            Damage::HardLink(..) | Damage::Fifo(_) => !damages.iter().any(|d| matches!(d, Damage::DropMember(_))),
            Damage::Manifest(_) => true,
            // Zero bytes after the end are tar padding; anything else is refused. (A cut that
            // loses only end-of-archive blocks loses nothing the manifest lists, and age and
            // zstd authenticate the stream itself, so it may be accepted.)
            Damage::Trailing(bytes) => !cut && bytes.iter().any(|&b| b != 0),
            _ => false,
        });
        match r {
            Ok(report) => {
                prop_assert!(!must_fail, "accepted {:?}", damages);
                // Whatever was accepted is exactly what the accepted manifest lists.
                let m = report.manifest.expect("an accepted backup has its manifest");
                let got = listing(&staging);
                prop_assert_eq!(got.len(), m.entries.len());
                for e in &m.entries {
                    match got.get(&e.path) {
                        Some(Node::File(data)) => {
                            prop_assert_eq!(
                                Some(hex::encode(Sha256::digest(data))),
                                e.sha256.clone()
                            );
                        }
                        Some(Node::Symlink(target)) => prop_assert_eq!(Some(target), e.target.as_ref()),
                        Some(Node::Dir) => {}
                        None => prop_assert!(false, "{} listed but not restored", e.path),
                    }
                }
            }
            Err(msg) => {
                // The error names no content; it is one line.
                prop_assert!(!msg.contains('\n'), "{msg}");
            }
        }
    }
}
