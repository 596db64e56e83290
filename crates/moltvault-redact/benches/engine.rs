//! Engine-only benchmark of the redaction crate (builds in seconds, unlike the root bench):
//! scan / redact / redact_value over the generated corpus of `benches/redact_corpus.rs`.
//!
//! `cargo bench -p moltvault-redact --bench engine -- [scan|redact|gate|gated|quality|dump] [MB] [REPS]`
//! (REPS timed runs, median reported; default 5);
//! made for `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*work*'`.
#![allow(clippy::print_stdout, clippy::disallowed_methods, missing_docs)]

#[path = "../../../benches/redact_corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::time::Instant;

use moltvault_redact::{CountSink, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};

fn redactor(mode: Mode) -> Redactor {
    Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(mode, FingerprintKey::from_bytes([5; 32])),
    )
    .unwrap()
}

#[inline(never)]
fn work(what: &str, r: &Redactor, data: &[u8], out: &mut Vec<u8>) -> u64 {
    match what {
        "scan" => r.scan_jsonl(data, &mut CountSink::default()).unwrap().gated,
        "redact" => {
            out.clear();
            r.redact_jsonl(data, &mut *out, &mut CountSink::default())
                .unwrap()
                .gated
        }
        // The gate alone (stage A on every record, as `may_match`).
        "gate" => data
            .split(|&b| b == b'\n')
            .filter(|l| r.may_match(l))
            .count() as u64,
        _ => 0,
    }
}

/// This thread's CPU time: on a shared machine it counts only the time we ran, not the time
/// other processes held the core.
fn cpu_now() -> f64 {
    // The first field of schedstat is the time spent on a CPU, in nanoseconds.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns * 1e-9)
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let what = args.get(1).map(String::as_str).unwrap_or("scan");
    let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let (data, _) = corpus::corpus(1, mb << 20, true, 2000);
    let r = redactor(Mode::All);
    if what == "dump" {
        // Writes the corpus itself to stdout (for experiments with other tools).
        use std::io::Write;
        std::io::stdout().write_all(&data).unwrap();
        return;
    }
    if what == "gated" {
        // Writes the records that pass the gate to stdout, for inspection.
        for line in data.split(|&b| b == b'\n') {
            let s = r.scan_jsonl(line, &mut CountSink::default()).unwrap();
            if s.gated > 0 {
                println!("{}", String::from_utf8_lossy(line));
            }
        }
        return;
    }
    if what == "quality" {
        // False positives on clean text and recall on a dense corpus, as the root bench does.
        let (clean, _) = corpus::corpus(2, mb << 20, false, 1);
        let mut fps: Vec<moltvault_redact::Finding> = Vec::new();
        r.scan_jsonl(&clean[..], &mut fps).unwrap();
        println!(
            "false positives: {} in {:.1} MB",
            fps.len(),
            clean.len() as f64 / 1e6
        );
        for f in fps.iter().take(5) {
            println!("  {f:?}");
        }
        let (d, planted) = corpus::corpus(3, mb << 20, true, 20);
        let mut out = Vec::new();
        r.redact_jsonl(&d[..], &mut out, &mut CountSink::default())
            .unwrap();
        let survived = planted
            .iter()
            .filter(|p| {
                let probe = p
                    .secret
                    .split(['\n', '"', '\\', '/', '\r'])
                    .max_by_key(|s| s.len())
                    .unwrap_or(&p.secret);
                memchr::memmem::find(&out, probe.as_bytes()).is_some()
            })
            .count();
        println!(
            "recall: {} of {} planted redacted",
            planted.len() - survived,
            planted.len()
        );
        return;
    }
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut out = Vec::with_capacity(data.len() + 4096);
    // Same-run baseline: copying the corpus into the output buffer.
    let mut copy = Vec::new();
    let mut speeds = Vec::new();
    let mut cpu = Vec::new();
    let mut gated = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        out.clear();
        out.extend_from_slice(&data);
        copy.push(data.len() as f64 / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        let c = cpu_now();
        gated = work(what, &r, &data, &mut out);
        cpu.push(data.len() as f64 / (cpu_now() - c) / 1e9);
        speeds.push(data.len() as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    speeds.sort_by(|a, b| a.total_cmp(b));
    copy.sort_by(|a, b| a.total_cmp(b));
    cpu.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{what}: {:.1} MB, median {:.2} GB/s wall, {:.2} GB/s of CPU time (wall min {:.2}, max {:.2}; memcpy {:.2} GB/s), gated {gated}",
        data.len() as f64 / 1e6,
        speeds[speeds.len() / 2],
        cpu[cpu.len() / 2],
        speeds[0],
        speeds[speeds.len() - 1],
        copy[copy.len() / 2],
    );
}
