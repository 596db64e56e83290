//! Benchmarks `moltvault audit` over a generated gateway home.
//!
//! Default: ~100 MB of transcripts and trajectory sidecars (a run takes well under a minute).
//! `MOLTVAULT_BENCH_FULL=1`: ~1 GB (the target is under 3 s on 2 cores).
//! The baseline, measured in the same run over the same files, is a parallel plain read of every
//! byte (the I/O floor): the ratio says what the scanning costs on top of reading.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moltvault_gateway::Gateway;
use moltvault_gateway::audit::{self, AuditOptions};
use rayon::prelude::*;

/// One realistic transcript entry: a tool result of a few KB, as the gateway writes them.
fn entry(i: usize, secret: Option<&str>) -> String {
    let mut text = String::with_capacity(3000);
    for j in 0..40 {
        text.push_str(&format!(
            "drwxr-xr-x  2 user user 4096 Nov 25 18:{:02} src/module_{i}_{j}/lib.rs\\n",
            j % 60
        ));
    }
    if let Some(s) = secret {
        text.push_str(&format!("export OPENAI_API_KEY={s}\\n"));
    }
    format!(
        concat!(
            r#"{{"type":"message","id":"{:08x}","parentId":"{:08x}","timestamp":"2026-11-25T18:00:01.000Z","#,
            r#""message":{{"role":"toolResult","toolCallId":"call_{}","toolName":"exec","#,
            r#""content":[{{"type":"text","text":"{}"}}],"details":{{"exitCode":0}}}}}}"#,
            "\n"
        ),
        i,
        i.saturating_sub(1),
        i,
        text
    )
}

fn generate(state: &Path, total: u64) -> (u64, usize) {
    let sessions = state.join("agents/main/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(
        state.join("openclaw.json"),
        r#"{"meta":{"lastTouchedVersion":"2026.7.35"},"gateway":{"bind":"loopback","auth":{"mode":"token","token":"0123456789abcdef0123456789abcdef0123456789abcdef"}}}"#,
    )
    .unwrap();
    let secret = format!(
        "sk-{}-{}",
        "proj", "B3nchK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab"
    );
    let per_file: u64 = 4 << 20;
    let mut written = 0u64;
    let mut files = 0usize;
    while written < total {
        let name = if files % 4 == 3 {
            format!("{files:08}.trajectory.jsonl")
        } else {
            format!("{files:08}.jsonl")
        };
        let mut f = std::io::BufWriter::new(fs::File::create(sessions.join(name)).unwrap());
        let mut n = 0u64;
        let mut i = 0usize;
        while n < per_file {
            let s = (i % 500 == 7).then_some(secret.as_str());
            let line = entry(i, s);
            f.write_all(line.as_bytes()).unwrap();
            n += line.len() as u64;
            i += 1;
        }
        f.flush().unwrap();
        written += n;
        files += 1;
    }
    (written, files)
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some_and(|v| v == "1");
    let total: u64 = if full { 1 << 30 } else { 100 << 20 };
    let runs = if full { 3 } else { 5 };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().to_path_buf();
    let state = home.join(".openclaw");
    let t = Instant::now();
    let (bytes, files) = generate(&state, total);
    println!(
        "generated {files} files, {:.0} MiB in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let gateway = Gateway::open(&state, &home).unwrap();
    let rules = moltvault_redact::RuleSet::builtin();
    let opts = AuditOptions::default();
    let paths = files_of(&state.join("agents/main/sessions"));

    // Warm the page cache once so both measurements read from memory.
    let _ = audit::audit(&gateway, &opts, &rules).unwrap();

    let mut base = Vec::new();
    let mut aud = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let n: usize = paths.par_iter().map(|p| fs::read(p).unwrap().len()).sum();
        base.push(t.elapsed());
        assert_eq!(n as u64, bytes);
        let t = Instant::now();
        let r = audit::audit(&gateway, &opts, &rules).unwrap();
        aud.push(t.elapsed());
        found = r
            .findings
            .iter()
            .flat_map(|f| f.secrets.values())
            .sum::<u64>();
    }
    let (b, a) = (median(base), median(aud));
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "threads {} | baseline (parallel read): median {:.3} s ({:.0} MiB/s) | audit: median {:.3} s ({:.0} MiB/s) | ratio {:.1}x | {found} secrets found",
        rayon::current_num_threads(),
        b.as_secs_f64(),
        mib / b.as_secs_f64(),
        a.as_secs_f64(),
        mib / a.as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64(),
    );
}
