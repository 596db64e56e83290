//! Fuzzes the backup manifest parser: no panic, and whatever it accepts is safe and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moltvault_vault::backup::{EntryKind, Manifest, check_link_target, check_rel_path};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for e in &m.entries {
        // Every accepted path is relative, `..`-free and unique.
        assert!(check_rel_path(&e.path).is_ok(), "{:?}", e.path);
        assert!(!e.path.split('/').any(|c| c == ".." || c == "."));
        assert!(seen.insert(e.path.clone()));
        if e.kind == EntryKind::Symlink {
            let t = e.target.as_deref().expect("symlinks have targets");
            assert!(check_link_target(&e.path, t).is_ok());
            assert!(!t.starts_with('/'));
        }
    }
    // Serializing and parsing again gives the same manifest.
    let again = Manifest::parse(&m.to_json()).expect("re-parse");
    assert_eq!(again, m);
});
