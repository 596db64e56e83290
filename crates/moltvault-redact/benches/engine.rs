//! Engine-only benchmark of the redaction crate (builds in seconds, unlike the root bench):
//! scan / redact / redact_value over the generated corpus of `benches/redact_corpus.rs`.
//!
//! `cargo bench -p moltvault-redact --bench engine -- [scan|redact|scan-bytes|redact-bytes|gate|gated|quality|dump|par] [MB] [REPS]`
//! (REPS timed runs, median reported; default 5);
//! made for `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*work*'`.
//!
//! `… -- value [ITERS]`: `redact_value` latency (p50/p99, wall and CPU time) on the gateway
//! plugin's shape: a tool-result message whose shell-like text (build/test output, listings,
//! logs, environment dumps) is held twice (`content[0].text` and `details.aggregated`), at
//! 4 KB, 16 KB and 1 MB, clean and with one `GITHUB_TOKEN=…` in the middle.
#![allow(clippy::print_stdout, clippy::disallowed_methods, missing_docs)]

#[path = "../../../benches/redact_corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::time::Instant;

use moltvault_redact::{CountSink, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use serde_json::{Value, json};

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
        // The same, on the bytes in memory (as on a mapped file): no read copy.
        "scan-bytes" => {
            r.redact_jsonl_bytes(data, std::io::sink(), &mut CountSink::default())
                .unwrap()
                .gated
        }
        "redact-bytes" => {
            out.clear();
            r.redact_jsonl_bytes(data, &mut *out, &mut CountSink::default())
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

/// Shell-like tool output of about `bytes` bytes (deterministic): the plugin bench's word
/// lines, plus listings, log lines and environment dumps with credential-like names.
fn shell_text(bytes: usize, seed: u32) -> String {
    const WORDS: &[&str] = &[
        "build",
        "ok",
        "src/main.rs",
        "warning:",
        "compiling",
        "serde_json",
        "v1.0.133",
        "Finished",
        "target/debug",
        "PASS",
        "test",
        "127.0.0.1:8080",
        "GET",
        "/v1/models",
        "200",
        "ms",
        "drwxr-xr-x",
        "root",
        "node_modules",
        "README.md",
    ];
    const ENV: &[&str] = &[
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
        "HOME=/home/user",
        "OPENAI_API_KEY=${OPENAI_API_KEY}",
        "max_tokens: 4096",
        "TOKEN_TTL=3600",
        "export NODE_ENV=production",
        "GIT_ASKPASS=/usr/lib/git-core/git-gui--askpass",
        "SLACK_BOT_TOKEN=xoxb-your-token-here",
        "\"usage\": {\"input_tokens\": 1203, \"output_tokens\": 88}",
    ];
    let mut x = seed;
    let mut rnd = |n: usize| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as usize % n
    };
    let mut s = String::with_capacity(bytes + 128);
    while s.len() < bytes {
        match rnd(20) {
            0 => s.push_str(&format!("{}\n", ENV[rnd(ENV.len())])),
            1 => s.push_str(&format!(
                "2026-11-25T18:{:02}:{:02}Z INFO req={} took={}ms path=/api/v1/items/{}\n",
                rnd(60),
                rnd(60),
                rnd(1 << 30),
                rnd(900),
                rnd(99999)
            )),
            2 => s.push_str(&format!(
                "-rw-r--r-- 1 user user {} Nov 25 18:00 {}\n",
                rnd(99999),
                WORDS[rnd(WORDS.len())]
            )),
            _ => {
                let w = |r: &mut dyn FnMut(usize) -> usize| WORDS[r(WORDS.len())];
                let line = format!(
                    "{} {} {} {} {}\n",
                    w(&mut rnd),
                    w(&mut rnd),
                    w(&mut rnd),
                    rnd(100_000),
                    w(&mut rnd)
                );
                s.push_str(&line);
            }
        }
    }
    s.truncate(bytes);
    s
}

/// The plugin's tool-result message, its text held twice.
fn tool_message(bytes: usize, secret: bool) -> Value {
    let mut text = shell_text(bytes, 7);
    if secret {
        // Assembled from pieces so that this file holds no token a scanner would flag.
        let tok = ["gh", "p_", "A1b2C3d4E5f6G7h8I9j0", "K1l2M3n4O50Zb5Hm"].concat();
        let mut at = text.len() / 2;
        while !text.is_char_boundary(at) {
            at += 1;
        }
        text.insert_str(at, &format!("\nexport GITHUB_TOKEN={tok}\n"));
    }
    json!({
        "role": "toolResult",
        "toolCallId": "call_bench",
        "toolName": "exec",
        "content": [{"type": "text", "text": text}],
        "details": {"status": "completed", "exitCode": 0, "durationMs": 12,
            "aggregated": text, "cwd": "/home/user/ws"},
        "isError": false,
        "timestamp": 1_795_630_124_788u64,
    })
}

/// `redact_value` latency on the plugin's message shape.
fn value_mode(iters: usize) {
    let r = redactor(Mode::Tools);
    for (label, bytes) in [("4 KB", 4 << 10), ("16 KB", 16 << 10), ("1 MB", 1 << 20)] {
        for secret in [false, true] {
            let msg = tool_message(bytes, secret);
            let n = if bytes >= 1 << 20 {
                (iters / 20).max(20)
            } else {
                iters
            };
            let mut wall = Vec::with_capacity(n);
            let mut found = 0;
            let (mut busy, mut cpu) = (0.0, 0.0);
            for i in 0..n + n / 10 {
                let mut v = msg.clone();
                let c = cpu_now();
                let t = Instant::now();
                found = r.redact_value(&mut v, &mut CountSink::default());
                let w = t.elapsed().as_secs_f64();
                let c = cpu_now() - c;
                // The first tenth warms the caches.
                if i >= n / 10 {
                    wall.push(w * 1e6);
                    busy += w;
                    cpu += c;
                }
            }
            wall.sort_by(|a, b| a.total_cmp(b));
            let p = |q: f64| wall[((wall.len() as f64 * q) as usize).min(wall.len() - 1)];
            println!(
                "value {label} {}: p50 {:.1} µs, p99 {:.1} µs ({n} runs, {found} found; on CPU {:.0}% of the timed wall time)",
                if secret { "secret" } else { "clean" },
                p(0.5),
                p(0.99),
                // Below 100%: the thread was preempted or waiting.
                100.0 * (cpu / busy).min(1.0),
            );
        }
    }
}

/// Wall-clock GB/s of scanning `pieces` with `threads` threads, each taking the next piece.
fn scan_pieces(r: &Redactor, pieces: &[&[u8]], threads: usize) -> f64 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(p) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) {
                    r.scan_jsonl(*p, &mut CountSink::default()).unwrap();
                }
            });
        }
    });
    total as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn par_mode(r: &Redactor, data: &[u8], reps: usize) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut pieces = Vec::new();
    let mut rest = data;
    let size = data.len() / 32 + 1;
    while !rest.is_empty() {
        let cut = memchr::memchr(b'\n', &rest[size.min(rest.len() - 1)..])
            .map_or(rest.len(), |i| size.min(rest.len() - 1) + i + 1);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let (mut one, mut many) = (Vec::new(), Vec::new());
    // Alternated, so drifting load hits both alike.
    for _ in 0..reps.max(1) {
        one.push(scan_pieces(r, &pieces, 1));
        many.push(scan_pieces(r, &pieces, threads));
    }
    one.sort_by(|a, b| a.total_cmp(b));
    many.sort_by(|a, b| a.total_cmp(b));
    let (a, b) = (one[one.len() / 2], many[many.len() / 2]);
    println!(
        "par: {:.1} MB in {} pieces, median 1 thread {a:.2} GB/s, {threads} threads {b:.2} GB/s, speedup {:.2}x",
        data.len() as f64 / 1e6,
        pieces.len(),
        b / a
    );
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let what = args.get(1).map(String::as_str).unwrap_or("scan");
    if what == "value" {
        value_mode(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000));
        return;
    }
    let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    // `MOLTVAULT_BENCH_CORPUS=FILE`: a corpus written earlier by `dump` (saves generating it,
    // so that `perf stat` counts the work).
    let data = match std::env::var_os("MOLTVAULT_BENCH_CORPUS") {
        Some(f) => std::fs::read(f).unwrap(),
        None => corpus::corpus(1, mb << 20, true, 2000).0,
    };
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
    if what == "par" {
        // Scaling over many files: the corpus cut into 32 line-aligned pieces, scanned by one
        // thread, then by as many threads as the machine has (each taking the next piece).
        let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
        par_mode(&r, &data, reps);
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
