//! Fuzzes archive reading and restore: the input is taken as the tar stream of a backup (it is
//! zstd-compressed and age-encrypted here, so the fuzzer explores tar and manifest structure).
//! Invariants: no panic, nothing is ever written outside the staging directory, and an accepted
//! archive restored exactly what its manifest lists.
#![no_main]

#[path = "common/restore.rs"]
mod restore;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| restore::restore_and_check(data));
