//! What every restore fuzz target checks, given the tar stream of a backup.

use moltvault_vault::backup::{Limits, NoProgress, read_archive};
use sha2::{Digest, Sha256};

thread_local! {
    static ID: age::x25519::Identity = age::x25519::Identity::generate();
}

/// Compresses and encrypts `tar` as a backup file holds it, restores it into a fresh staging
/// directory, and checks: no panic, nothing written outside staging, and an accepted archive
/// restored every entry its manifest lists, each file with the listed SHA-256.
pub fn restore_and_check(tar: &[u8]) {
    let ct = ID.with(|id| {
        let z = zstd::encode_all(tar, 1).unwrap();
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
}
