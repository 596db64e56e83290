//! Helpers shared by the bench binaries (`mod common;` from `benches/<name>.rs`).
//!
//! The API is kept stable: benches rely on it. Everything here panics on failure — a bench that
//! cannot set itself up has nothing useful to report.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// xorshift64: deterministic pseudo-random numbers without a dependency, so every run of a
/// bench generates the same corpus from the same seed.
pub struct Rng(pub u64);

impl Rng {
    /// Creates a generator from `seed` (a zero seed is replaced: xorshift would stay at zero).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// Returns the next pseudo-random number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Returns a number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Returns one of `words`, uniformly.
    pub fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len() as u64) as usize]
    }
}

/// Returns the median of `v` (the upper one for an even count); works for `Duration`, `f64`,
/// integers. Panics on an empty vector.
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    assert!(!v.is_empty(), "median of nothing");
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable values"));
    v[v.len() / 2]
}

/// Runs `cmd` to completion with stdout discarded and returns (wall time, peak RSS in KiB).
///
/// The peak RSS is the child's `ru_maxrss` from `wait4(2)`: exact (not sampled), and for a
/// shell it is the largest of the shell and every descendant it waited for, so `sh -c 'a | b'`
/// reports the larger of `a` and `b`. Panics, with the child's stderr, if it fails.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std cannot see
pub fn run(cmd: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    // Drain stderr on a thread so a chatty child cannot block on a full pipe.
    let mut err = child.stderr.take().expect("piped stderr");
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (status, maxrss_kib) = wait4(child.id());
    let wall = start.elapsed();
    let stderr = drain.join().unwrap_or_default();
    assert!(status.success(), "{cmd:?} failed ({status}): {stderr}");
    (wall, maxrss_kib)
}

/// Waits for the child `pid` with `wait4(2)`, returning its status and `ru_maxrss` (KiB).
///
/// The one `unsafe` of the benches: neither std nor rustix exposes a child's rusage, and
/// sampling `/proc/<pid>/status` misses short peaks and the children of a shell.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> (ExitStatus, u64) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data that wait4 fills in; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our own child, which std has not reaped
        // (we never call `Child::wait` on it).
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
    }
    (
        ExitStatus::from_raw(status),
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
    )
}

/// Returns a `bash -c` command running `script` with `set -eo pipefail`, so a failure anywhere
/// in a pipeline fails the measured run.
pub fn sh(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(format!("set -eo pipefail; {script}"));
    c
}

/// Returns whether `tool` is on `PATH` (baselines that are not installed are skipped).
pub fn have(tool: &str) -> bool {
    Command::new("bash")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns the throughput in MB/s (10^6 bytes) of `bytes` processed in `d`.
pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}
