//! Fuzzes restore with well-formed tar structure: the input describes a tree and a list of
//! damages (`moltvault_testutils::archive`), so the fuzzer spends its time on manifests,
//! member names, links, ordering and truncation instead of on tar checksums.
//! Invariants: no panic, nothing written outside the staging directory, and an accepted archive
//! restored exactly the content its manifest lists. (That faithful archives are accepted is the
//! property test `crates/moltvault-vault/tests/backup_hostile.rs`.)
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use moltvault_testutils::archive::{Damage, Entry, Node, Tree};
use moltvault_vault::backup::{Limits, NoProgress, read_archive};
use sha2::{Digest, Sha256};

#[derive(Debug, Arbitrary)]
enum In {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Arbitrary)]
enum Hurt {
    DropMember(usize),
    DropFromManifest(usize),
    WrongHash(usize),
    WrongSize(usize, u64),
    RawName(usize, Vec<u8>),
    HardLink(String, String),
    Swap(usize, usize),
    Fifo(String),
    Manifest(Vec<u8>),
    Truncate(u16),
    Trailing(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    entries: Vec<(String, In, u16)>,
    damages: Vec<Hurt>,
}

fuzz_target!(|input: Input| {
    thread_local! {
        static ID: age::x25519::Identity = age::x25519::Identity::generate();
    }
    let tree = Tree {
        entries: input
            .entries
            .into_iter()
            .take(64)
            .map(|(path, node, mode)| Entry {
                path,
                node: match node {
                    In::Dir => Node::Dir,
                    In::File(d) => Node::File(d),
                    In::Symlink(t) => Node::Symlink(t),
                },
                mode: u32::from(mode) & 0o7777,
            })
            .collect(),
    };
    let damages: Vec<Damage> = input
        .damages
        .into_iter()
        .take(4)
        .map(|d| match d {
            Hurt::DropMember(i) => Damage::DropMember(i),
            Hurt::DropFromManifest(i) => Damage::DropFromManifest(i),
            Hurt::WrongHash(i) => Damage::WrongHash(i),
            Hurt::WrongSize(i, by) => Damage::WrongSize(i, by),
            Hurt::RawName(i, n) => Damage::RawName(i, n),
            Hurt::HardLink(n, t) => Damage::HardLink(n, t),
            Hurt::Swap(i, j) => Damage::Swap(i, j),
            Hurt::Fifo(n) => Damage::Fifo(n),
            Hurt::Manifest(m) => Damage::Manifest(m),
            Hurt::Truncate(p) => Damage::Truncate(p),
            Hurt::Trailing(b) => Damage::Trailing(b),
        })
        .collect();
    let tar = tree.tar(&damages);
    let ct = ID.with(|id| {
        let z = zstd::encode_all(&tar[..], 1).unwrap();
        age::encrypt(&id.to_public(), &z).unwrap()
    });
    let root = tempfile::tempdir().unwrap();
    let staging = root.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let result = ID.with(|id| {
        read_archive(
            &ct[..],
            "fuzz",
            id,
            Some(&staging),
            None,
            Limits::default(),
            &NoProgress,
        )
    });
    for e in std::fs::read_dir(root.path()).unwrap() {
        assert_eq!(e.unwrap().file_name(), "staging", "wrote outside staging");
    }
    if let Ok(report) = result {
        let m = report
            .manifest
            .expect("an accepted backup has its manifest");
        for e in &m.entries {
            let p = staging.join(&e.path);
            let meta = std::fs::symlink_metadata(&p).expect("a listed entry was restored");
            if let Some(want) = &e.sha256 {
                assert!(meta.is_file(), "{:?}", e.path);
                let got = hex::encode(Sha256::digest(std::fs::read(&p).unwrap()));
                assert_eq!(&got, want, "{:?}", e.path);
            }
        }
    }
});
