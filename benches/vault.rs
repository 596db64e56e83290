//! Vault benchmark over generated transcripts, against the Debian `age` CLI in the same run:
//!
//! 1. `moltvault seal` + `moltvault unseal` of one large transcript vs `age -e -r … && sync` +
//!    `age -d -i … && sync` (ratio = moltvault throughput / age throughput; target ≥ 0.9);
//!    the `age` timings without the `sync` are printed too, with moltvault's ratio to them.
//!    moltvault does more per byte: it also decrypt-verifies the sealed copy against the
//!    plaintext before removing it (pipelined on a second thread) and fsyncs.
//! 2. Peak RSS of the moltvault processes (`wait4` rusage of the children; target < 32 MB).
//! 3. `moltvault grep -c` over sealed sessions vs `age -d -i K f | grep -c` per file (target:
//!    within 1.5x).
//! 4. `moltvault seal --all-idle` over thousands of small transcripts (target ≥ 2,000 files/s),
//!    then `moltvault unseal --all` of them.
//!
//! Default (< 1 min): a 64 MiB transcript, 16 × 4 MiB sessions, 2,000 small files, 3 runs each,
//! medians. `MOLTVAULT_BENCH_FULL=1`: a 1 GB transcript, 64 × 16 MiB, 5,000 small files.
//! `MOLTVAULT_BENCH_ONLY=big,grep,small,strategies` runs only those sections;
//! `MOLTVAULT_BENCH_RUNS=n` sets the runs (the implementations take turns going first).
//! `MOLTVAULT_BENCH_BASELINE_BIN=/path/to/older/moltvault` also measures an older build on the
//! same data in the same run (before/after figures). `MOLTVAULT_BENCH_DIR` picks the
//! filesystem (default `target/`). Run: `cargo bench --bench vault`.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{Rng, have, mb_per_s, median, run, sh};

const WORDS: &[&str] = &[
    "the",
    "agent",
    "tool",
    "call",
    "result",
    "file",
    "read",
    "write",
    "error",
    "session",
    "message",
    "assistant",
    "user",
    "gateway",
    "config",
    "token",
    "model",
    "reply",
    "shell",
    "output",
    "exit",
    "code",
    "path",
    "json",
    "needle",
];

/// Writes a JSONL transcript of about `bytes` bytes, last modified three days ago.
fn transcript(path: &Path, bytes: usize, rng: &mut Rng) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut n = 0usize;
    let mut i = 0u64;
    let mut text = String::new();
    while n < bytes {
        text.clear();
        for _ in 0..(8 + rng.below(40)) {
            text.push_str(rng.pick(WORDS));
            text.push(' ');
        }
        let line = format!(
            "{{\"type\":\"message\",\"id\":\"{i:016x}\",\"message\":{{\"role\":\"assistant\",\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}]}}}}\n"
        );
        f.write_all(line.as_bytes()).unwrap();
        n += line.len();
        i += 1;
    }
    let f = f.into_inner().unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400))
        .unwrap();
}

/// A gateway home with an initialised vault (weak KDF: the bench measures sealing, not scrypt).
struct Home {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Home {
    fn new(bin: &Path) -> Home {
        let h = Home {
            dir: tempfile::tempdir_in(
                std::env::var_os("MOLTVAULT_BENCH_DIR").unwrap_or_else(|| "target".into()),
            )
            .unwrap(),
            bin: bin.to_path_buf(),
        };
        fs::create_dir_all(h.sessions()).unwrap();
        fs::write(h.dir.path().join(".openclaw/openclaw.json"), "{}\n").unwrap();
        fs::write(h.dir.path().join("pass"), "bench passphrase\n").unwrap();
        run(h.cmd().args([
            "init",
            "--passphrase-file",
            "pass",
            "--recovery-file",
            "rec.txt",
        ]));
        h
    }
    fn sessions(&self) -> PathBuf {
        self.dir.path().join(".openclaw/agents/main/sessions")
    }
    fn rec(&self) -> PathBuf {
        self.dir.path().join("rec.txt")
    }
    fn recipient(&self) -> String {
        let cfg = fs::read_to_string(self.dir.path().join(".moltvault/config.toml")).unwrap();
        cfg.lines()
            .find_map(|l| l.strip_prefix("recipient = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    }
    /// A command of `bin` (this build or the baseline one) in this home.
    fn cmd_of(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("MOLTVAULT_TESTONLY_WEAKEN_KDF", "1")
            .current_dir(self.dir.path());
        c
    }
    fn cmd(&self) -> Command {
        self.cmd_of(&self.bin)
    }
    fn count_sealed(&self) -> usize {
        fs::read_dir(self.sessions())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "age")
            })
            .count()
    }
}

/// One implementation under test: this build, or an older one for before/after figures.
struct Impl {
    name: &'static str,
    bin: PathBuf,
}

fn main() {
    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some();
    let only = std::env::var("MOLTVAULT_BENCH_ONLY").unwrap_or_default();
    let (big, sessions, session_size, small) = if full {
        (1_000_000_000usize, 64usize, 16usize << 20, 5000usize)
    } else {
        (64usize << 20, 16usize, 4usize << 20, 2000usize)
    };
    let runs = std::env::var("MOLTVAULT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if full { 1 } else { 3 });
    let want = |section: &str| only.is_empty() || only.split(',').any(|o| o == section);
    assert!(
        have("age"),
        "the bench compares against the `age` CLI: apt-get install age"
    );
    let this = PathBuf::from(env!("CARGO_BIN_EXE_moltvault"));
    let mut impls = vec![Impl {
        name: "moltvault",
        bin: this.clone(),
    }];
    if let Some(b) = std::env::var_os("MOLTVAULT_BENCH_BASELINE_BIN") {
        impls.push(Impl {
            name: "baseline",
            bin: PathBuf::from(b),
        });
    }
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    println!(
        "vault bench ({}): {runs} run(s) each, medians; dir {}",
        if full { "full" } else { "default" },
        std::env::var("MOLTVAULT_BENCH_DIR").unwrap_or_else(|_| "target".into())
    );

    if want("big") {
        // 1 + 2: one large transcript, every implementation and age interleaved run by run.
        let h = Home::new(&this);
        let p = h.sessions().join("big.jsonl");
        transcript(&p, big, &mut rng);
        let size = fs::metadata(&p).unwrap().len();
        let rec = h.rec();
        let r = h.recipient();
        let mut seal_t = vec![Vec::new(); impls.len()];
        let mut unseal_t = vec![Vec::new(); impls.len()];
        let mut rss = vec![0u64; impls.len()];
        let (mut age_e, mut age_d) = (Vec::new(), Vec::new());
        let (mut age_e_nosync, mut age_d_nosync) = (Vec::new(), Vec::new());
        for run_no in 0..runs {
            // Each timed command starts from a settled disk (nothing left to write back, no
            // pending discard of the previous command's deleted file): untimed `sync`s.
            let settle = || run(&mut sh("sync"));
            // The implementations take turns going first: on ext4 the first seal after the
            // previous run's `age` commands measured ~1.5 s slower (same binary in both slots).
            for k in (0..impls.len()).map(|j| (j + run_no) % impls.len()) {
                let im = &impls[k];
                settle();
                let (a, ra) = run(h.cmd_of(&im.bin).args(["seal", "big"]));
                settle();
                let (b, rb) = run(h
                    .cmd_of(&im.bin)
                    .args(["unseal", "big", "--identity"])
                    .arg(&rec));
                rss[k] = rss[k].max(ra).max(rb);
                seal_t[k].push(a);
                unseal_t[k].push(b);
            }
            // Each `age` command also without the `sync` (reported beside the ratio, which
            // stays against the synced figures: moltvault makes its copies durable). At most
            // two copies of the file exist at any time, as for moltvault.
            let pd = p.display();
            let kd = rec.display();
            settle();
            age_e_nosync.push(run(&mut sh(&format!("age -e -r {r} -o '{pd}.age' '{pd}'"))).0);
            run(&mut sh(&format!("rm '{pd}.age'")));
            settle();
            age_e.push(
                run(&mut sh(&format!(
                    "age -e -r {r} -o '{pd}.age' '{pd}' && sync -f '{pd}.age' && rm '{pd}'"
                )))
                .0,
            );
            settle();
            age_d_nosync.push(run(&mut sh(&format!("age -d -i '{kd}' -o '{pd}' '{pd}.age'"))).0);
            run(&mut sh(&format!("rm '{pd}'")));
            settle();
            age_d.push(
                run(&mut sh(&format!(
                    "age -d -i '{kd}' -o '{pd}' '{pd}.age' && sync -f '{pd}' && rm '{pd}.age'"
                )))
                .0,
            );
            // `age -d` wrote the plaintext just now: make it idle again for the next seal.
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400))
                .unwrap();
        }
        let (ae, ad) = (median(age_e.clone()), median(age_d.clone()));
        let mib = size as f64 / (1u64 << 20) as f64;
        println!(
            "seal+unseal of a {mib:.0} MiB transcript ({size} bytes); MB/s = 2 x size / (seal + unseal)"
        );
        println!(
            "  age CLI     encrypt {:.3}s  decrypt {:.3}s  total {:.3}s  {:.0} MB/s",
            ae.as_secs_f64(),
            ad.as_secs_f64(),
            (ae + ad).as_secs_f64(),
            mb_per_s(2 * size, ae + ad)
        );
        let (aen, adn) = (median(age_e_nosync), median(age_d_nosync));
        let ours = median(seal_t[0].clone()) + median(unseal_t[0].clone());
        println!(
            "  age CLI without sync: encrypt {:.3}s  decrypt {:.3}s  total {:.3}s  {:.0} MB/s  ({} vs these {:.2}; the ratios below are against age with sync)",
            aen.as_secs_f64(),
            adn.as_secs_f64(),
            (aen + adn).as_secs_f64(),
            mb_per_s(2 * size, aen + adn),
            impls[0].name,
            (aen + adn).as_secs_f64() / ours.as_secs_f64()
        );
        for (k, im) in impls.iter().enumerate() {
            let (s, u) = (median(seal_t[k].clone()), median(unseal_t[k].clone()));
            println!(
                "  {:<10}  seal    {:.3}s  unseal  {:.3}s  total {:.3}s  {:.0} MB/s  ratio vs age {:.2} (target >= 0.9)  peak RSS {:.1} MB (target < 32)",
                im.name,
                s.as_secs_f64(),
                u.as_secs_f64(),
                (s + u).as_secs_f64(),
                mb_per_s(2 * size, s + u),
                (ae + ad).as_secs_f64() / (s + u).as_secs_f64(),
                rss[k] as f64 / 1024.0
            );
        }
        if runs > 1 {
            let each = |t: &[Duration]| {
                t.iter()
                    .map(|d| format!("{:.2}", d.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "  each run (s): age -e {} / -d {}",
                each(&age_e),
                each(&age_d)
            );
            for (k, im) in impls.iter().enumerate() {
                println!(
                    "                {:<10} seal {} / unseal {}",
                    im.name,
                    each(&seal_t[k]),
                    each(&unseal_t[k])
                );
            }
        }
        drop(h);
    }

    if want("grep") {
        // 3: grep over sealed sessions.
        let h = Home::new(&this);
        for i in 0..sessions {
            transcript(
                &h.sessions().join(format!("s{i:03}.jsonl")),
                session_size,
                &mut rng,
            );
        }
        run(h.cmd().args(["seal", "--all-idle"]));
        let total = (sessions * session_size) as u64;
        let mut mg = Vec::new();
        let mut ag = Vec::new();
        for _ in 0..runs {
            mg.push(
                run(h
                    .cmd()
                    .args(["grep", "-c", "needle needle", "--identity"])
                    .arg(h.rec()))
                .0,
            );
            ag.push(
            run(&mut sh(&format!(
                "for f in '{}'/*.age; do age -d -i '{}' \"$f\" | grep -c 'needle needle' || true; done",
                h.sessions().display(),
                h.rec().display()
            )))
            .0,
        );
        }
        let (mg, ag) = (median(mg), median(ag));
        println!(
            "grep over {sessions} sealed sessions ({:.0} MB): moltvault {:.2}s, age -d | grep -c {:.2}s, moltvault/age {:.2} (target <= 1.5)",
            total as f64 / 1e6,
            mg.as_secs_f64(),
            ag.as_secs_f64(),
            mg.as_secs_f64() / ag.as_secs_f64()
        );
        drop(h);
    }

    if want("small") {
        // 4: thousands of small files (a fresh home per run and implementation, same corpus seed).
        let mut rates = vec![Vec::new(); impls.len()];
        let mut unseal_rates = vec![Vec::new(); impls.len()];
        // Homes are removed only after the section: on ext4 without a journal every new inode
        // is allocated after a scan over the recently (< 30 s) freed inodes of its group, so
        // removing the previous run's 2,000 files would slow down the next run's seal.
        let mut keep = Vec::new();
        for run_no in 0..runs {
            // Turns going first, as above: with the same binary in both slots, the first
            // measured 1,857 files/s and the second 2,569 (medians of 3, ext4).
            for k in (0..impls.len()).map(|j| (j + run_no) % impls.len()) {
                let im = &impls[k];
                let h = Home::new(&this);
                let mut rng = Rng::new(0x5eed + run_no as u64);
                for i in 0..small {
                    transcript(
                        &h.sessions().join(format!("m{i:05}.jsonl")),
                        1500 + rng.below(3000) as usize,
                        &mut rng,
                    );
                }
                // Idle transcripts are long on disk: flush the freshly generated corpus so the
                // measured syncs carry only the seal's own writes (same for every implementation).
                run(&mut sh("sync"));
                let (d, _) = run(h.cmd_of(&im.bin).args(["seal", "--all-idle"]));
                assert_eq!(h.count_sealed(), small);
                rates[k].push(small as f64 / d.as_secs_f64());
                // And back: `unseal --all` of the same files (settled first, like the seal).
                run(&mut sh("sync"));
                let (d, _) = run(h
                    .cmd_of(&im.bin)
                    .args(["unseal", "--all", "--identity"])
                    .arg(h.rec()));
                assert_eq!(h.count_sealed(), 0);
                unseal_rates[k].push(small as f64 / d.as_secs_f64());
                keep.push(h);
            }
        }
        for (k, im) in impls.iter().enumerate() {
            println!(
                "seal --all-idle of {small} small transcripts (1.5-4.5 KB), {:<10} {:.0} files/s (target >= 2000)",
                im.name,
                median(rates[k].clone())
            );
        }
        for (k, im) in impls.iter().enumerate() {
            println!(
                "unseal --all of the same {small} sealed transcripts,         {:<10} {:.0} files/s",
                im.name,
                median(unseal_rates[k].clone())
            );
        }
    }

    // 5: the batch strategies side by side, through the library (no process start or gateway
    // discovery): which sync and how many workers.
    if want("strategies") {
        strategies(&this, small, runs);
    }
}

/// Seals `small` fresh small transcripts with each strategy, interleaved run by run, and
/// prints the median files/s of each.
fn strategies(this: &Path, small: usize, runs: usize) {
    use moltvault_vault::fsio::BatchSync;
    use moltvault_vault::seal::{self, BatchConfig, SealOptions};
    let h = Home::new(this);
    let vault = moltvault_vault::Vault::open(&h.dir.path().join(".moltvault")).unwrap();
    let recipient = vault.recipient().clone();
    let cfg = |workers, batch, sync| {
        Some(BatchConfig {
            workers,
            batch,
            sync,
            hook: None,
        })
    };
    let variants: Vec<(&str, Option<BatchConfig<'static>>)> = vec![
        ("seal_file one by one (fsync each)", None),
        (
            "batch 256, 1 worker, fsync x1",
            cfg(1, 256, BatchSync::Fsync { threads: 1 }),
        ),
        (
            "batch 256, 4 workers, fsync x8",
            cfg(4, 256, BatchSync::Fsync { threads: 8 }),
        ),
        (
            "batch 256, 4 workers, adaptive (default)",
            cfg(
                4,
                256,
                BatchSync::Adaptive {
                    threads: 8,
                    foreign: 16 << 20,
                },
            ),
        ),
        (
            "batch 256, 1 worker, syncfs",
            cfg(1, 256, BatchSync::Syncfs),
        ),
        (
            "batch 256, 2 workers, syncfs",
            cfg(2, 256, BatchSync::Syncfs),
        ),
        (
            "batch 256, 4 workers, syncfs",
            cfg(4, 256, BatchSync::Syncfs),
        ),
        (
            "batch 256, 8 workers, syncfs",
            cfg(8, 256, BatchSync::Syncfs),
        ),
        (
            "batch 1024, 4 workers, syncfs",
            cfg(4, 1024, BatchSync::Syncfs),
        ),
    ];
    let opts = SealOptions {
        now: SystemTime::now(),
        ..SealOptions::default()
    };
    let mut rates = vec![Vec::new(); variants.len()];
    for run_no in 0..runs {
        for (k, (_, cfg)) in variants.iter().enumerate() {
            let dir = h.dir.path().join(format!("strategy-{run_no}-{k}"));
            fs::create_dir(&dir).unwrap();
            let mut rng = Rng::new(0x5eed + run_no as u64);
            let plains: Vec<PathBuf> = (0..small)
                .map(|i| {
                    let p = dir.join(format!("m{i:05}.jsonl"));
                    transcript(&p, 1500 + rng.below(3000) as usize, &mut rng);
                    p
                })
                .collect();
            // The corpus is written: flush it so that the measured syncs carry only the seal's
            // own writes.
            run(&mut sh("sync"));
            let start = std::time::Instant::now();
            match cfg {
                None => {
                    for p in &plains {
                        seal::seal_file(p, &recipient, &opts).unwrap();
                    }
                }
                Some(cfg) => seal::seal_files_with(&plains, &recipient, &opts, cfg, &mut |_, r| {
                    r.unwrap();
                }),
            }
            rates[k].push(small as f64 / start.elapsed().as_secs_f64());
        }
    }
    // Removed only now (see the `small` section): freed inodes slow down the next creations.
    drop(h);
    println!("library seal of {small} small transcripts (1.5-4.5 KB), by strategy:");
    for (k, (name, _)) in variants.iter().enumerate() {
        println!("  {name:<36} {:>6.0} files/s", median(rates[k].clone()));
    }
}
