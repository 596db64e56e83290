//! Fuzzes archive reading and restore: the input is taken as the tar stream of a backup (it is
//! zstd-compressed and age-encrypted here, so the fuzzer explores tar and manifest structure).
//! Invariants: no panic, and nothing is ever written outside the staging directory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moltvault_vault::backup::{Limits, NoProgress, read_archive};

fn count_outside(root: &Path, staging: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p != staging {
            n += 1;
        }
    }
    n
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static ID: age::x25519::Identity = age::x25519::Identity::generate();
    }
    let ct = ID.with(|id| {
        let z = zstd::encode_all(data, 1).unwrap();
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
    assert_eq!(
        count_outside(root.path(), &staging),
        0,
        "wrote outside staging"
    );
    if let Ok(report) = result {
        // An accepted archive restored exactly what its manifest lists.
        let m = report.manifest.expect("manifest");
        for e in &m.entries {
            assert!(
                std::fs::symlink_metadata(staging.join(&e.path)).is_ok(),
                "{:?}",
                e.path
            );
        }
    }
});
