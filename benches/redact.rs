//! Redaction benchmark: throughput (scan, redact end to end), 2-thread speedup, peak RSS when
//! streaming a large file, per-value latency, recall and false positives, and detect-secrets
//! on the same corpus as a baseline.
//!
//! `cargo bench --bench redact` runs a small corpus (< 1 min);
//! `MOLTVAULT_BENCH_FULL=1 cargo bench --bench redact` runs the full sizes;
//! `MOLTVAULT_BENCH_REPS=n` sets the timed runs per figure (medians are reported).
#![allow(clippy::print_stdout, clippy::disallowed_methods, missing_docs)]

#[path = "redact_corpus.rs"]
mod corpus;

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use moltvault_redact::{CountSink, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use moltvault_vault::fsio::{AtomicFile, WriteOptions};
use serde_json::json;

fn redactor(mode: Mode) -> Redactor {
    Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(mode, FingerprintKey::from_bytes([5; 32])),
    )
    .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes back the dirty pages of `dir`'s filesystem (untimed, before each timed run that
/// writes): otherwise a run pays for the writeback of the runs before it (the kernel throttles
/// a writer once enough dirty data piles up), and the order of the runs decides the figures.
fn settle(dir: &Path) {
    rustix::fs::syncfs(File::open(dir).unwrap()).unwrap();
}

/// The longest piece of a secret with no JSON-escapable character: present in the output iff
/// the secret survived, whatever the escaping depth.
fn probe(secret: &str) -> &str {
    secret
        .split(['\n', '"', '\\', '/', '\r'])
        .max_by_key(|s| s.len())
        .unwrap_or(secret)
}

fn main() {
    // Child mode: stream one file through the redactor and report the peak RSS.
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--rss-child" {
        let r = redactor(Mode::All);
        let f = File::open(&args[2]).unwrap();
        let out = BufWriter::new(std::io::sink());
        let s = r.redact_jsonl(f, out, &mut CountSink::default()).unwrap();
        println!("{} {}", vm_hwm_kb(), s.bytes);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }

    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some();
    let size = if full { 256 << 20 } else { 24 << 20 };
    let reps = std::env::var("MOLTVAULT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 5 } else { 3 });
    println!(
        "# moltvault redaction benchmark ({} corpus)",
        if full { "full" } else { "small" }
    );
    let t = Instant::now();
    let (data, planted) = corpus::corpus(1, size, true, 2000);
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    println!(
        "corpus: {:.1} MB, {lines} records, {} planted secrets, generated in {:.1}s",
        data.len() as f64 / 1e6,
        planted.len(),
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, &data).unwrap();

    let r = redactor(Mode::All);
    // Every timed write goes to a new file, as `redact --in-place` writes a new temp file:
    // truncating the previous run's output would wait for its writeback. Outputs are removed
    // after their run (untimed) so that the page cache does not fill up over the runs.
    // Baseline in the same run: copying the file (read + write) through the same buffers.
    let copy = median(
        (0..reps)
            .map(|i| {
                settle(dir.path());
                let t = Instant::now();
                let mut f = File::open(&path).unwrap();
                let mut w =
                    BufWriter::new(File::create(dir.path().join(format!("copy{i}"))).unwrap());
                std::io::copy(&mut f, &mut w).unwrap();
                drop(w);
                let g = gbps(data.len(), t.elapsed());
                std::fs::remove_file(dir.path().join(format!("copy{i}"))).unwrap();
                g
            })
            .collect(),
    );

    // 1. Scan throughput (single core, file in page cache).
    let mut stats = Default::default();
    let scan = median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                stats = r
                    .scan_jsonl(File::open(&path).unwrap(), &mut CountSink::default())
                    .unwrap();
                gbps(data.len(), t.elapsed())
            })
            .collect(),
    );
    println!(
        "scan:   {scan:.2} GB/s (median of {reps}); gated {} of {} records ({:.1}%), {} raw-text fallbacks",
        stats.gated,
        stats.lines,
        100.0 * stats.gated as f64 / stats.lines as f64,
        stats.raw_fallback
    );

    // The floor of any redactor that reads and writes through its own buffers: a read/write
    // loop with the redactor's 128 KiB blocks (`io::copy` above may copy inside the kernel).
    let rw = median(
        (0..reps)
            .map(|i| {
                settle(dir.path());
                let t = Instant::now();
                let mut f = File::open(&path).unwrap();
                let mut w = File::create(dir.path().join(format!("rw{i}"))).unwrap();
                let mut buf = vec![0u8; 1 << 17];
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut w, &buf[..n]).unwrap();
                }
                let g = gbps(data.len(), t.elapsed());
                std::fs::remove_file(dir.path().join(format!("rw{i}"))).unwrap();
                g
            })
            .collect(),
    );

    // 2. Redact end to end: read + match + write, as `moltvault redact --in-place` writes: a
    // temp file with space reserved for about the input's size (`AtomicFile::reserve`) and a
    // buffer smaller than the redactor's 128 KiB blocks, which runs of unchanged records
    // bypass. The fsync and rename of the commit are not timed (the target is for a corpus in
    // the page cache); the first run's output is committed afterwards for the recall check.
    // Alternated run by run with the same loop writing a plain new file (no reservation).
    let (mut red, mut plain) = (Vec::new(), Vec::new());
    for i in 0..reps {
        for reserved in [i % 2 == 0, i % 2 != 0] {
            settle(dir.path());
            let t = Instant::now();
            let dest = dir
                .path()
                .join(format!("out{i}{}", if reserved { "" } else { "-plain" }));
            if reserved {
                let mut out = AtomicFile::create(&dest, WriteOptions::secret_new()).unwrap();
                out.reserve(data.len() as u64);
                let mut w = BufWriter::with_capacity(1 << 16, &mut out);
                r.redact_jsonl(
                    File::open(&path).unwrap(),
                    &mut w,
                    &mut CountSink::default(),
                )
                .unwrap();
                drop(w);
                red.push(gbps(data.len(), t.elapsed()));
                if i == 0 {
                    out.commit().unwrap();
                }
            } else {
                let w = BufWriter::with_capacity(1 << 16, File::create(&dest).unwrap());
                r.redact_jsonl(File::open(&path).unwrap(), w, &mut CountSink::default())
                    .unwrap();
                plain.push(gbps(data.len(), t.elapsed()));
                std::fs::remove_file(&dest).unwrap();
            }
        }
    }
    let (red, plain) = (median(red), median(plain));
    println!(
        "redact: {red:.2} GB/s end to end (same loop into a plain new file, no space reserved: \
         {plain:.2} GB/s; baselines: plain file copy {copy:.2} GB/s, ratio {:.2}; \
         read/write loop with 128 KiB buffers {rw:.2} GB/s, ratio {:.2})",
        red / copy,
        red / rw
    );

    // 3. Recall on planted secrets: a denser corpus (one secret per ~20 records) so that
    // every format is planted many times.
    let out = std::fs::read(dir.path().join("out0")).unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), lines);
    let (rdata, rplanted) = corpus::corpus(3, if full { 64 << 20 } else { 16 << 20 }, true, 20);
    let mut rout = Vec::new();
    r.redact_jsonl(&rdata[..], &mut rout, &mut CountSink::default())
        .unwrap();
    let (mut pt, mut pf, mut ct, mut cf) = (0, 0, 0, 0);
    let mut missed = Vec::new();
    for p in planted.iter().chain(&rplanted) {
        let o = if std::ptr::eq(p, &rplanted[0]) || rplanted.iter().any(|x| std::ptr::eq(x, p)) {
            &rout
        } else {
            &out
        };
        let survived = memchr::memmem::find(o, probe(&p.secret).as_bytes()).is_some();
        if p.provider {
            pt += 1;
            pf += usize::from(!survived);
        } else {
            ct += 1;
            cf += usize::from(!survived);
        }
        if survived && missed.len() < 5 {
            missed.push(format!("line {} ({} chars)", p.line, p.secret.len()));
        }
    }
    println!(
        "recall: provider-format {pf}/{pt} ({:.2}%), contextual {cf}/{ct} ({:.2}%){}",
        100.0 * pf as f64 / pt.max(1) as f64,
        100.0 * cf as f64 / ct.max(1) as f64,
        if missed.is_empty() {
            String::new()
        } else {
            format!("; missed e.g. {missed:?}")
        }
    );

    // 4. False positives on decoy-rich clean text.
    let (clean, _) = corpus::corpus(2, if full { 100 << 20 } else { 20 << 20 }, false, 1);
    let mut fps = Vec::new();
    r.scan_jsonl(&clean[..], &mut fps).unwrap();
    let per10 = fps.len() as f64 / (clean.len() as f64 / 10e6);
    if let Some(d) = std::env::var_os("MOLTVAULT_BENCH_DUMP") {
        std::fs::write(Path::new(&d).join("clean.jsonl"), &clean).unwrap();
        std::fs::write(Path::new(&d).join("corpus.jsonl"), &data).unwrap();
    }
    let mut by_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &fps {
        *by_rule.entry(f.rule_id.as_str()).or_default() += 1;
    }
    println!(
        "false positives: {} in {:.0} MB of clean decoy-rich text = {per10:.2} per 10 MB {by_rule:?}",
        fps.len(),
        clean.len() as f64 / 1e6
    );

    // 5. Two threads over many files.
    let nfiles = 16;
    let part = data.len() / nfiles;
    let files: Vec<_> = (0..nfiles)
        .map(|i| {
            let (d, _) = corpus::corpus(100 + i as u64, part, true, 2000);
            let p = dir.path().join(format!("f{i}.jsonl"));
            std::fs::write(&p, &d).unwrap();
            (p, d.len())
        })
        .collect();
    let total: usize = files.iter().map(|f| f.1).sum();
    let pools: Vec<rayon::ThreadPool> = [1, 2]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    let once = |pool: &rayon::ThreadPool| {
        let t = Instant::now();
        pool.install(|| {
            use rayon::prelude::*;
            files.par_iter().for_each(|(p, _)| {
                let w = BufWriter::new(std::io::sink());
                r.redact_jsonl(File::open(p).unwrap(), w, &mut CountSink::default())
                    .unwrap();
            });
        });
        gbps(total, t.elapsed())
    };
    // One thread and two take turns, so that both see the same phases of a machine whose
    // speed drifts; the speedup is the median of the per-turn ratios.
    let (mut one, mut two, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let (a, b) = (once(&pools[0]), once(&pools[1]));
        one.push(a);
        two.push(b);
        ratio.push(b / a);
    }
    println!(
        "parallel: 1 thread {:.2} GB/s, 2 threads {:.2} GB/s (medians), speedup {:.2}x (median \
         of {reps} turns)",
        median(one),
        median(two),
        median(ratio)
    );

    // 6. Peak RSS streaming one large file (a child process, so the corpus is not counted).
    let big = dir.path().join("big.jsonl");
    {
        let mut w = BufWriter::new(File::create(&big).unwrap());
        for _ in 0..if full { 8 } else { 2 } {
            std::io::Write::write_all(&mut w, &data).unwrap();
        }
    }
    let exe = std::env::current_exe().unwrap();
    let o = std::process::Command::new(exe)
        .arg("--rss-child")
        .arg(&big)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    let mut it = s.split_whitespace();
    let (kb, bytes): (u64, u64) = (
        it.next().and_then(|x| x.parse().ok()).unwrap_or(0),
        it.next().and_then(|x| x.parse().ok()).unwrap_or(0),
    );
    println!(
        "peak RSS streaming a {:.0} MB file: {:.1} MB (VmHWM)",
        bytes as f64 / 1e6,
        kb as f64 / 1024.0
    );

    // 7. Per-value API latency (the gateway plugin path).
    let tr = redactor(Mode::Tools);
    for (label, n, iters) in [
        ("4 KB", 4 << 10, 20_000usize),
        ("16 KB", 16 << 10, 10_000),
        ("1 MB", 1 << 20, if full { 400 } else { 100 }),
    ] {
        let mut rr = moltvault_testutils::secrets::FakeRng::new(3);
        let mut text = String::new();
        while text.len() < n {
            text.push_str(&format!(
                "{} {} line of output {}\n",
                rr.uuid(),
                rr.hex(40),
                rr.below(1000)
            ));
        }
        text.truncate(n);
        let mut secret_text = text.clone();
        secret_text.insert_str(
            n / 2,
            &format!(
                " GITHUB_TOKEN={}{} ",
                ["gh", "p_"].concat(),
                rr.github_body()
            ),
        );
        for (kind, t) in [("clean", &text), ("1 secret", &secret_text)] {
            let v = json!({"type":"message","id":"x","message":{"role":"toolResult","toolCallId":"c",
                "content":[{"type":"text","text":t}],"details":{"exitCode":0}}});
            let mut times = Vec::with_capacity(iters);
            for _ in 0..iters {
                let mut vv = v.clone();
                let t0 = Instant::now();
                tr.redact_value(&mut vv, &mut CountSink::default());
                times.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "redact_value {label} {kind}: p50 {:.1} µs, p99 {:.1} µs",
                times[times.len() / 2],
                times[times.len() * 99 / 100]
            );
        }
    }

    // 8. A widely used scanner on the same corpus: detect-secrets (PyPI).
    baseline((&data, &rdata), &rplanted, dir.path(), scan);
    let mut s = String::new();
    let _ = File::open("/proc/loadavg").and_then(|mut f| f.read_to_string(&mut s));
    println!("load average during the run: {}", s.trim());
}

/// Runs detect-secrets on the first `max` bytes of a corpus (whole records); returns the bytes
/// scanned, the time and the flagged line numbers, or `None` when it is not installed.
fn detect_secrets(
    data: &[u8],
    max: usize,
    dir: &Path,
) -> Option<(usize, Duration, std::collections::HashSet<usize>)> {
    let n = data.len().min(max);
    let n = data[..n]
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(n);
    let p = dir.join("ds.jsonl");
    std::fs::write(&p, &data[..n]).unwrap();
    let t = Instant::now();
    // Run from the file's directory with a relative name: given a path outside the current
    // git work tree, detect-secrets reports nothing at all.
    let o = std::process::Command::new("detect-secrets")
        .args(["scan", "--all-files", "ds.jsonl"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let el = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let lines = v["results"]["ds.jsonl"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["line_number"].as_u64())
        .map(|l| l as usize)
        .collect();
    Some((n, el, lines))
}

/// detect-secrets 1.5.0 on the same corpora: its speed on the benchmark corpus (the lines it
/// flags there are nearly all decoys) and its recall on the dense one.
fn baseline((data, rdata): (&[u8], &[u8]), rplanted: &[corpus::Planted], dir: &Path, ours: f64) {
    // detect-secrets is slow (about 0.3 MB/s here): give it a prefix of each corpus.
    let Some((n, el, flagged)) = detect_secrets(data, 1 << 20, dir) else {
        println!(
            "baseline: detect-secrets is not installed (pip install detect-secrets==1.5.0); skipped"
        );
        return;
    };
    let speed = n as f64 / el.as_secs_f64() / 1e9;
    println!(
        "baseline detect-secrets 1.5.0 on {:.1} MB: {:.4} GB/s ({:.1} s); moltvault scan is {:.0}x faster; \
         it flagged {} of {} lines",
        n as f64 / 1e6,
        speed,
        el.as_secs_f64(),
        ours / speed,
        flagged.len(),
        data[..n].iter().filter(|&&b| b == b'\n').count()
    );
    if let Some((rn, _, rflagged)) = detect_secrets(rdata, 2 << 20, dir) {
        let nlines = rdata[..rn].iter().filter(|&&b| b == b'\n').count();
        let (mut pt, mut pf, mut ct, mut cf) = (0, 0, 0, 0);
        for p in rplanted.iter().filter(|p| p.line <= nlines) {
            let found = usize::from(rflagged.contains(&p.line));
            if p.provider {
                pt += 1;
                pf += found;
            } else {
                ct += 1;
                cf += found;
            }
        }
        println!(
            "baseline detect-secrets recall on the dense corpus ({:.1} MB, line-level): provider-format {pf}/{pt}, contextual {cf}/{ct}",
            rn as f64 / 1e6
        );
    }
}
