//! Backup / restore / verify benchmark over a generated gateway home, against baselines run in
//! the same process on the same data:
//!
//! - `tar czf - DIR | gpg --symmetric --cipher-algo AES256` (and `gpg -d | tar xz` to restore);
//! - `tar cf - DIR | zstd | age -r R` (the same format without moltvault's checks);
//! - `restic backup` / `restic restore` when `restic` is installed (`apt-get install restic`);
//! - `gpg -d | tar xz && sync`: the gpg restore made durable, as moltvault's restore is.
//!
//! It then times each stage of a verify alone (age decrypt, zstd decode, SHA-256) in process,
//! to show the CPU floor of a verify on this machine.
//!
//! Default corpus ~100 MB, 3 runs each (medians); `MOLTVAULT_BENCH_FULL=1` for ~1 GB, 1 run;
//! `MOLTVAULT_BENCH_RUNS=N` sets the runs; `MOLTVAULT_BENCH_CORPUS=DIR` keeps the generated
//! home under DIR and reuses it. Peak RSS of moltvault is its `ru_maxrss` (`benches/common`).
//! Run: `cargo bench --bench backup`.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

mod common;

use common::{Rng, have, median, run, sh};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MB: f64 = 1_000_000.0;

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
    "line",
    "search",
    "fetch",
    "http",
    "status",
    "ok",
];

/// A gateway home of about `total` bytes: JSONL transcripts (text with some base64-like noise,
/// as tool outputs have), a SQLite store, and small config/credential files.
fn generate(root: &Path, total: usize) {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    fs::create_dir_all(root.join("agents/main/sessions")).unwrap();
    fs::create_dir_all(root.join("agents/main/agent")).unwrap();
    fs::create_dir_all(root.join("credentials")).unwrap();
    fs::write(root.join("openclaw.json"), "{ gateway: { port: 18789 } }\n").unwrap();
    fs::write(root.join("credentials/oauth.json"), "{\"t\":1}\n").unwrap();
    let sqlite_share = total / 10;
    let mut written = 0;
    let mut n = 0;
    while written < total - sqlite_share {
        let path = root.join(format!("agents/main/sessions/{n:05}.jsonl"));
        let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        let target = 200_000 + (rng.next() % 1_800_000) as usize;
        let mut size = 0;
        let mut line = String::new();
        while size < target {
            line.clear();
            line.push_str("{\"type\":\"message\",\"id\":\"");
            line.push_str(&format!("{:016x}", rng.next()));
            line.push_str("\",\"message\":{\"role\":\"toolResult\",\"content\":[{\"type\":\"text\",\"text\":\"");
            for _ in 0..(20 + rng.next() % 120) {
                line.push_str(rng.pick(WORDS));
                line.push(' ');
            }
            if rng.next().is_multiple_of(4) {
                for _ in 0..8 {
                    line.push_str(&format!("{:016x}", rng.next()));
                }
            }
            line.push_str("\"}]}}\n");
            f.write_all(line.as_bytes()).unwrap();
            size += line.len();
        }
        f.flush().unwrap();
        written += size;
        n += 1;
    }
    let c =
        rusqlite::Connection::open(root.join("agents/main/agent/openclaw-agent.sqlite")).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE transcript_events(id INTEGER PRIMARY KEY, event_json TEXT);")
        .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    let mut done = 0;
    while done < sqlite_share {
        let mut s = String::new();
        for _ in 0..60 {
            s.push_str(rng.pick(WORDS));
            s.push(' ');
        }
        done += s.len();
        tx.execute(
            "INSERT INTO transcript_events(event_json) VALUES (?1)",
            [&s],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

struct Row {
    what: String,
    secs: f64,
    bytes: Option<u64>,
    rss_kib: Option<u64>,
}

fn main() {
    let full = std::env::var_os("MOLTVAULT_BENCH_FULL").is_some();
    let total = if full { 1_000_000_000 } else { 100_000_000 };
    let runs: usize = std::env::var("MOLTVAULT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1 } else { 3 });
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_moltvault"));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut state = root.join("home/.openclaw");
    // MOLTVAULT_BENCH_CORPUS=DIR keeps the generated home in DIR (made once, reused after).
    if let Some(keep) = std::env::var_os("MOLTVAULT_BENCH_CORPUS") {
        let keep = PathBuf::from(keep).join(format!("{}MB/.openclaw", total / 1_000_000));
        if !keep.join("openclaw.json").exists() {
            let _ = fs::remove_dir_all(&keep);
            println!(
                "generating a ~{} MB gateway home in {}…",
                total / 1_000_000,
                keep.display()
            );
            generate(&keep, total);
        }
        fs::create_dir_all(root.join("home")).unwrap();
        state = keep;
    } else {
        println!("generating a ~{} MB gateway home…", total / 1_000_000);
        generate(&state, total);
    }
    let input = dir_size(&state);
    let key = root.join("key.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .stderr(Stdio::piped())
        .output();
    let recipient = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stderr)
            .trim()
            .trim_start_matches("Public key: ")
            .to_string(),
        _ => panic!("age-keygen is needed (apt-get install age)"),
    };
    let vault = root.join("vault");
    let mv = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args)
            .env("MOLTVAULT_DIR", &vault)
            .env("HOME", root.join("home"));
        c
    };
    let load_before = loadavg();
    let mut rows: Vec<Row> = Vec::new();
    let mut record = |what: &str, times: Vec<f64>, bytes: Option<u64>, rss: Option<u64>| {
        rows.push(Row {
            what: what.into(),
            secs: median(times),
            bytes,
            rss_kib: rss,
        });
    };

    // moltvault backup
    let dest = root.join("mv-backups");
    let (mut t, mut rss) = (Vec::new(), 0);
    let mut name = String::new();
    for i in 0..runs {
        let _ = fs::remove_dir_all(&dest);
        let (d, r) = run(mv(&[
            "backup",
            "--recipient",
            &recipient,
            "--to",
            dest.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .stderr(Stdio::null()));
        t.push(d.as_secs_f64());
        rss = rss.max(r);
        if i == runs - 1 {
            name = fs::read_dir(&dest)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name()
                .into_string()
                .unwrap();
        }
    }
    let mv_file = dest.join(&name);
    let mv_size = fs::metadata(&mv_file).unwrap().len();
    record("moltvault backup", t, Some(mv_size), Some(rss));

    // Baseline: tar | zstd | age (same format, no manifest, no hashing, no SQLite online copy)
    let plain = root.join("plain.tar.zst.age");
    let mut t = Vec::new();
    for _ in 0..runs {
        let (d, _) = run(&mut sh(&format!(
            "tar cf - -C '{}' .openclaw | zstd -q -3 -T0 | age -r {recipient} -o '{}'",
            state.parent().unwrap().display(),
            plain.display()
        )));
        t.push(d.as_secs_f64());
    }
    record(
        "tar, zstd -T0, age (pipe)",
        t,
        Some(fs::metadata(&plain).unwrap().len()),
        None,
    );

    // Baseline: tar czf | gpg --symmetric AES256
    let gpg_ok = have("gpg");
    let gpg_file = root.join("b.tar.gz.gpg");
    let gpg_home = root.join("gnupg");
    fs::create_dir_all(&gpg_home).unwrap();
    let gpg = format!(
        "gpg --homedir '{}' --batch --yes --passphrase x --pinentry-mode loopback",
        gpg_home.display()
    );
    if gpg_ok {
        let mut t = Vec::new();
        for _ in 0..runs {
            let (d, _) = run(sh(&format!(
                "tar czf - -C '{}' .openclaw | {gpg} --symmetric --cipher-algo AES256 -o '{}'",
                state.parent().unwrap().display(),
                gpg_file.display()
            ))
            .stderr(Stdio::null()));
            t.push(d.as_secs_f64());
        }
        record(
            "tar czf, gpg --symmetric AES256 (pipe)",
            t,
            Some(fs::metadata(&gpg_file).unwrap().len()),
            None,
        );
    } else {
        println!("gpg not found: skipping the gpg baseline (apt-get install gnupg)");
    }

    // restic
    let restic_ok = have("restic");
    let repo = root.join("restic-repo");
    if restic_ok {
        let restic = |args: &str| {
            sh(&format!(
                "RESTIC_PASSWORD=x restic -q -r '{}' {args}",
                repo.display()
            ))
        };
        let mut t = Vec::new();
        for _ in 0..runs {
            // A fresh repository each run: a full first backup, like moltvault's (no dedup).
            let _ = fs::remove_dir_all(&repo);
            run(restic("init").stderr(Stdio::null()));
            let (d, _) =
                run(restic(&format!("backup '{}'", state.display())).stderr(Stdio::null()));
            t.push(d.as_secs_f64());
        }
        record(
            "restic backup (fresh repo each run)",
            t,
            Some(dir_size(&repo)),
            None,
        );
    } else {
        println!("restic not found: skipping (apt-get install restic)");
    }

    // verify
    let mut t = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let (d, r) = run(mv(&[
            "backups",
            "verify",
            mv_file.to_str().unwrap(),
            "--identity",
            key.to_str().unwrap(),
        ])
        .stderr(Stdio::null()));
        t.push(d.as_secs_f64());
        rss = rss.max(r);
    }
    record("moltvault backups verify", t, None, Some(rss));

    // restore
    let mut t = Vec::new();
    let mut rss = 0;
    for i in 0..runs {
        let to = root.join(format!("restored-{i}/.openclaw"));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        let (d, r) = run(mv(&[
            "restore",
            mv_file.to_str().unwrap(),
            "--identity",
            key.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ])
        .stderr(Stdio::null()));
        t.push(d.as_secs_f64());
        rss = rss.max(r);
        fs::remove_dir_all(to.parent().unwrap()).unwrap();
    }
    record("moltvault restore", t, None, Some(rss));

    let mut t = Vec::new();
    for i in 0..runs {
        let to = root.join(format!("plain-restored-{i}"));
        fs::create_dir_all(&to).unwrap();
        let (d, _) = run(&mut sh(&format!(
            "age -d -i '{}' '{}' | zstd -d -q | tar xf - -C '{}'",
            key.display(),
            plain.display(),
            to.display()
        )));
        t.push(d.as_secs_f64());
        fs::remove_dir_all(&to).unwrap();
    }
    record("age -d, zstd -d, tar x (pipe)", t, None, None);

    if gpg_ok {
        let mut t = Vec::new();
        for i in 0..runs {
            let to = root.join(format!("gpg-restored-{i}"));
            fs::create_dir_all(&to).unwrap();
            let (d, _) = run(sh(&format!(
                "{gpg} -d '{}' | tar xzf - -C '{}'",
                gpg_file.display(),
                to.display()
            ))
            .stderr(Stdio::null()));
            t.push(d.as_secs_f64());
            fs::remove_dir_all(&to).unwrap();
        }
        record("gpg -d, tar xz (pipe)", t, None, None);
        // The same, made durable like moltvault's restore (which syncs before its swap).
        let mut t = Vec::new();
        for i in 0..runs {
            let to = root.join(format!("gpg-restored-sync-{i}"));
            fs::create_dir_all(&to).unwrap();
            let (d, _) = run(sh(&format!(
                "{gpg} -d '{}' | tar xzf - -C '{}' && sync",
                gpg_file.display(),
                to.display()
            ))
            .stderr(Stdio::null()));
            t.push(d.as_secs_f64());
            fs::remove_dir_all(&to).unwrap();
        }
        record("gpg -d, tar xz, sync (pipe)", t, None, None);
    }
    if restic_ok {
        let mut t = Vec::new();
        for i in 0..runs {
            let to = root.join(format!("restic-restored-{i}"));
            let (d, _) = run(sh(&format!(
                "RESTIC_PASSWORD=x restic -q -r '{}' restore latest --target '{}'",
                repo.display(),
                to.display()
            ))
            .stderr(Stdio::null()));
            t.push(d.as_secs_f64());
            fs::remove_dir_all(&to).unwrap();
        }
        record("restic restore", t, None, None);
    }

    let bound = verify_bound(&mv_file, &key);
    println!("\nload average before: {load_before}; after: {}", loadavg());
    println!(
        "\ninput: {:.1} MB in {} ({} runs, medians; {} cores)\n",
        input as f64 / MB,
        state.display(),
        runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| operation | median s | MB/s (input) | output MB | ratio out/in | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.0} | {} | {} | {} |",
            r.what,
            r.secs,
            input as f64 / MB / r.secs,
            r.bytes
                .map_or("".into(), |b| format!("{:.1}", b as f64 / MB)),
            r.bytes
                .map_or("".into(), |b| format!("{:.3}", b as f64 / input as f64)),
            r.rss_kib
                .map_or("".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    let get = |w: &str| rows.iter().find(|r| r.what == w).map(|r| r.secs);
    if let (Some(a), Some(b)) = (
        get("moltvault backup"),
        get("tar czf, gpg --symmetric AES256 (pipe)"),
    ) {
        println!("\nbackup: moltvault / tar+gzip+gpg = {:.2}x time", a / b);
    }
    if let (Some(a), Some(b)) = (get("moltvault backup"), get("tar, zstd -T0, age (pipe)")) {
        println!("backup: moltvault / tar+zstd+age = {:.2}x time", a / b);
    }
    if let (Some(a), Some(b)) = (
        get("moltvault backup"),
        get("restic backup (fresh repo each run)"),
    ) {
        println!("backup: moltvault / restic = {:.2}x time", a / b);
    }
    let size = |w: &str| rows.iter().find(|r| r.what == w).and_then(|r| r.bytes);
    if let (Some(a), Some(b)) = (
        size("moltvault backup"),
        size("tar czf, gpg --symmetric AES256 (pipe)"),
    ) {
        println!(
            "size: moltvault / tar+gzip+gpg = {:.3}x",
            a as f64 / b as f64
        );
    }
    if let (Some(t), Some(a)) = (get("moltvault backups verify"), size("moltvault backup")) {
        println!(
            "verify: {:.0} MB/s of content, {:.0} MB/s of archive",
            input as f64 / MB / t,
            a as f64 / MB / t
        );
    }
    if let (Some(a), Some(b)) = (get("moltvault restore"), get("restic restore")) {
        println!("restore: moltvault / restic = {:.2}x time", a / b);
    }
    if let (Some(a), Some(b)) = (get("moltvault restore"), get("gpg -d, tar xz (pipe)")) {
        println!("restore: moltvault / gpg+tar = {:.2}x time", a / b);
    }
    if let (Some(a), Some(b)) = (
        get("moltvault restore"),
        get("age -d, zstd -d, tar x (pipe)"),
    ) {
        println!("restore: moltvault / age+zstd+tar = {:.2}x time", a / b);
    }
    if let (Some(a), Some(b)) = (get("moltvault restore"), get("gpg -d, tar xz, sync (pipe)")) {
        println!(
            "restore: moltvault / gpg+tar+sync (both durable) = {:.2}x time",
            a / b
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let archive_mb = bound.archive as f64 / MB;
    let content_gb = bound.content as f64 / 1e9;
    println!(
        "\nverify's CPU floor, per stage, single thread, in this process on this archive \
         ({archive_mb:.1} MB archive, {:.1} MB decompressed):",
        bound.content as f64 / MB
    );
    println!(
        "  age decrypt {:.0} MB/s of archive; zstd decode {:.0} MB/s of output; SHA-256 {:.0} MB/s",
        archive_mb / bound.age,
        bound.content as f64 / MB / bound.zstd,
        bound.sha_mb_s
    );
    let cpu = bound.age + bound.zstd + content_gb * 1000.0 / bound.sha_mb_s;
    println!(
        "  = {cpu:.2} CPU-s per backup: at best {:.2} s on {cores} cores = {:.0} MB/s of archive \
         (the single-threaded zstd decode alone caps it at {:.0} MB/s of archive)",
        cpu / cores,
        archive_mb / (cpu / cores),
        archive_mb / bound.zstd
    );
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Single-threaded cost of each stage of a verify, measured in process with the same crates.
struct Bound {
    archive: u64,
    content: u64,
    /// Seconds to decrypt the whole archive.
    age: f64,
    /// Seconds to decompress the whole stream.
    zstd: f64,
    /// SHA-256 throughput, MB/s.
    sha_mb_s: f64,
}

fn verify_bound(file: &Path, key: &Path) -> Bound {
    use sha2::Digest;
    use std::io::Read;
    use std::time::Instant;
    let ct = fs::read(file).unwrap();
    let id: age::x25519::Identity = fs::read_to_string(key)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap();
    let t = Instant::now();
    let z = age::decrypt(&id, &ct).unwrap();
    let age = t.elapsed().as_secs_f64();
    let mut buf = vec![0u8; 1 << 20];
    let mut content = 0u64;
    let mut d = zstd::stream::Decoder::new(&z[..]).unwrap();
    let t = Instant::now();
    loop {
        let n = d.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        content += n as u64;
    }
    let zstd = t.elapsed().as_secs_f64();
    // Up to 256 MB of the decompressed stream, to time SHA-256 on.
    let mut sample = Vec::new();
    zstd::stream::Decoder::new(&z[..])
        .unwrap()
        .take(256 << 20)
        .read_to_end(&mut sample)
        .unwrap();
    let t = Instant::now();
    let mut h = sha2::Sha256::new();
    for c in sample.chunks(1 << 20) {
        h.update(c);
    }
    std::hint::black_box(h.finalize());
    let sha_mb_s = sample.len() as f64 / MB / t.elapsed().as_secs_f64();
    Bound {
        archive: ct.len() as u64,
        content,
        age,
        zstd,
        sha_mb_s,
    }
}
