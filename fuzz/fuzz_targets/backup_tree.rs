//! Fuzzes restore with well-formed tar structure: the input describes a tree and a list of
//! damages (`moltvault_testutils::archive`), so the fuzzer spends its time on manifests,
//! member names, links, ordering and truncation instead of on tar checksums.
//! Invariants: no panic, nothing written outside the staging directory, and an accepted archive
//! restored exactly the content its manifest lists. (That faithful archives are accepted is the
//! property test `crates/moltvault-vault/tests/backup_hostile.rs`.)
#![no_main]

#[path = "common/restore.rs"]
mod restore;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use moltvault_testutils::archive::{Damage, Entry, Node, Tree};

#[derive(Debug, Arbitrary)]
struct Input {
    entries: Vec<(String, Node, u16)>,
    damages: Vec<Damage>,
}

fuzz_target!(|input: Input| {
    let tree = Tree {
        entries: input
            .entries
            .into_iter()
            .take(64)
            .map(|(path, node, mode)| Entry {
                path,
                node,
                mode: u32::from(mode) & 0o7777,
            })
            .collect(),
    };
    let damages: Vec<Damage> = input.damages.into_iter().take(4).collect();
    restore::restore_and_check(&tree.tar(&damages));
});
