//! Vault benchmark over generated transcripts, against the Debian `age` CLI in the same run:
//!
//! 1. `moltvault seal` + `moltvault unseal` of one large transcript vs `age -e -r` + `age -d -i`
//!    (ratio = age time / moltvault time; target ≥ 0.9). moltvault does more per byte: it also
//!    hashes, fsyncs and decrypt-verifies before removing the plaintext.
//! 2. Peak RSS of the moltvault processes (wait4 rusage of the children; target < 32 MB).
//! 3. `moltvault grep -c` over sealed sessions vs `age -d -i K f | grep -c` per file (target:
//!    within 1.5x).
//! 4. `moltvault seal --all-idle` over thousands of small transcripts (target ≥ 2,000 files/s).
//!
//! Default: a 64 MiB transcript, 16 × 4 MiB sessions, 2,000 small files, 3 runs each (medians).
//! `MOLTVAULT_BENCH_FULL=1`: 1 GiB, 64 × 16 MiB, 5,000 files. Run: `cargo bench --bench vault`.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const MIB: f64 = 1024.0 * 1024.0;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

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
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut n = 0usize;
    let mut i = 0u64;
    while n < bytes {
        let mut text = String::new();
        for _ in 0..(8 + rng.next() % 40) {
            text.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
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

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let h = Home {
            dir: tempfile::tempdir_in(
                std::env::var_os("MOLTVAULT_BENCH_DIR").unwrap_or_else(|| "target".into()),
            )
            .unwrap(),
        };
        fs::create_dir_all(h.sessions()).unwrap();
        fs::write(h.dir.path().join(".openclaw/openclaw.json"), "{}\n").unwrap();
        fs::write(h.dir.path().join("pass"), "bench passphrase\n").unwrap();
        let out = h
            .cmd()
            .args([
                "init",
                "--passphrase-file",
                "pass",
                "--recovery-file",
                "rec.txt",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moltvault"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("MOLTVAULT_TESTONLY_WEAKEN_KDF", "1")
            .current_dir(self.dir.path());
        c
    }
}

fn run(mut c: Command) -> Duration {
    let t = Instant::now();
    let out = c.stdout(Stdio::null()).output().unwrap();
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs a command, sampling its peak RSS (`VmHWM` in `/proc/<pid>/status`, KiB) while it runs.
fn run_rss(mut c: Command) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = fs::read_to_string(&status_path)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let d = t.elapsed();
    assert!(status.success(), "{c:?} failed");
    (d, peak)
}

fn main() {
    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some();
    let (big, sessions, session_size, small) = if full {
        (1usize << 30, 64usize, 16usize << 20, 5000usize)
    } else {
        (64usize << 20, 16usize, 4usize << 20, 2000usize)
    };
    let runs = if full { 1 } else { 3 };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    println!(
        "vault bench ({}): {} runs each, medians",
        if full { "full" } else { "default" },
        runs
    );

    // 1 + 2: one large transcript.
    let h = Home::new();
    let p = h.sessions().join("big.jsonl");
    transcript(&p, big, &mut rng);
    let size = fs::metadata(&p).unwrap().len() as f64;
    let rec = h.rec();
    let mut mv = Vec::new();
    let mut rss_kib = 0;
    for _ in 0..runs {
        let mut seal = h.cmd();
        seal.args(["seal", "big"]);
        let mut unseal = h.cmd();
        unseal.args(["unseal", "big", "--identity"]).arg(&rec);
        let (a, ra) = run_rss(seal);
        let (b, rb) = run_rss(unseal);
        rss_kib = rss_kib.max(ra).max(rb);
        mv.push(a + b);
    }
    let r = h.recipient();
    let mut ag = Vec::new();
    for _ in 0..runs {
        let enc = sh(&format!(
            "age -e -r {r} -o '{p}.age' '{p}' && sync -f '{p}.age' && rm '{p}'",
            p = p.display()
        ));
        let dec = sh(&format!(
            "age -d -i '{k}' -o '{p}' '{p}.age' && sync -f '{p}' && rm '{p}.age'",
            k = rec.display(),
            p = p.display()
        ));
        ag.push(run(enc) + run(dec));
    }
    let (mv, ag) = (median(mv), median(ag));
    println!(
        "seal+unseal {:.0} MiB: moltvault {:.2}s ({:.0} MiB/s), age CLI {:.2}s ({:.0} MiB/s), ratio age/moltvault {:.2} (target >= 0.9)",
        size / MIB,
        mv.as_secs_f64(),
        2.0 * size / MIB / mv.as_secs_f64(),
        ag.as_secs_f64(),
        2.0 * size / MIB / ag.as_secs_f64(),
        ag.as_secs_f64() / mv.as_secs_f64()
    );
    println!(
        "peak RSS of moltvault seal/unseal: {:.1} MB (target < 32 MB)",
        rss_kib as f64 / 1024.0
    );
    drop(h);

    // 3: grep over sealed sessions.
    let h = Home::new();
    for i in 0..sessions {
        transcript(
            &h.sessions().join(format!("s{i:03}.jsonl")),
            session_size,
            &mut rng,
        );
    }
    let mut c = h.cmd();
    c.args(["seal", "--all-idle"]);
    run(c);
    let total = (sessions * session_size) as f64;
    let mut mg = Vec::new();
    let mut ag = Vec::new();
    for _ in 0..runs {
        let mut c = h.cmd();
        c.args(["grep", "-c", "needle needle", "--identity"])
            .arg(rec_of(&h));
        mg.push(run(c));
        ag.push(run(sh(&format!(
            "for f in '{}'/*.age; do age -d -i '{}' \"$f\" | grep -c 'needle needle' || true; done",
            h.sessions().display(),
            h.rec().display()
        ))));
    }
    let (mg, ag) = (median(mg), median(ag));
    println!(
        "grep over {sessions} sealed sessions ({:.0} MiB): moltvault {:.2}s, age -d | grep -c {:.2}s, moltvault/age {:.2} (target <= 1.5)",
        total / MIB,
        mg.as_secs_f64(),
        ag.as_secs_f64(),
        mg.as_secs_f64() / ag.as_secs_f64()
    );
    drop(h);

    // 4: thousands of small files.
    let mut rates = Vec::new();
    for _ in 0..runs {
        let h = Home::new();
        for i in 0..small {
            transcript(
                &h.sessions().join(format!("m{i:05}.jsonl")),
                1500 + (rng.next() % 3000) as usize,
                &mut rng,
            );
        }
        let mut c = h.cmd();
        c.args(["seal", "--all-idle"]);
        let d = run(c);
        rates.push(Duration::from_secs_f64(d.as_secs_f64()));
        let sealed = fs::read_dir(h.sessions())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "age")
            })
            .count();
        assert_eq!(sealed, small);
    }
    let d = median(rates);
    println!(
        "seal --all-idle of {small} small transcripts: {:.2}s, {:.0} files/s (target >= 2000)",
        d.as_secs_f64(),
        small as f64 / d.as_secs_f64()
    );
}

fn rec_of(h: &Home) -> PathBuf {
    h.rec()
}
