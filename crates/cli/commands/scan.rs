//! `moltvault scan`: lists the secrets in transcripts (rule, file, line, pointer, fingerprint).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use moltvault_redact::Finding;
use rayon::prelude::*;

use super::redact::{ModeArg, build_redactor, open_transcript};
use crate::commands::Ctx;
use crate::report::{Status, user_error};
use crate::ui;

/// Scans transcripts for secrets and lists every finding, never the secret itself.
///
/// Each finding gives the rule, the file, the line, the JSON pointer of the string and the
/// secret's keyed fingerprint. A summary by rule follows on stderr. Exits 1 when anything is
/// found. With no PATH, scans every transcript of the detected gateway (every agent's
/// sessions, trajectory sidecars, .bak/.reset/.deleted copies and .zst archives, and on
/// OpenClaw ≥ 2026.8 every agent database: transcript events, trajectory rows and their derived
/// copies); a directory PATH is searched for transcript files, and a `.sqlite` PATH is read as an
/// agent database (read-only). A database finding names `<db>#<table>.<column>` and the value's
/// position in rowid order.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Transcript files or directories to scan.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print findings as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Which strings to look at: tool output only, or every string.
    #[arg(long, value_enum, default_value_t = ModeArg::All)]
    pub mode: ModeArg,
    /// Extra rules and allowlist (TOML); default `<vault dir>/rules.toml` when it exists.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

/// Whether a file name looks like a transcript (or a copy or archive of one).
fn is_transcript_name(name: &str) -> bool {
    match moltvault_gateway::classify(name) {
        Some((kind, _, _)) => kind != moltvault_gateway::TranscriptKind::Sealed,
        None => false,
    }
}

/// Collects transcript files under `dir` (symlinks are not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e
            .file_type()
            .with_context(|| format!("cannot read {}", e.path().display()))?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() && is_transcript_name(&e.file_name().to_string_lossy()) {
            out.push(e.path());
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct JsonFinding<'a> {
    file: String,
    line: u64,
    rule: &'a str,
    pointer: &'a str,
    fingerprint: &'a str,
}

pub fn run(ctx: &Ctx, args: ScanArgs) -> anyhow::Result<Status> {
    let (r, gateway) = build_redactor(ctx, args.rules.as_deref(), args.mode.into())?;
    let mut files = Vec::new();
    let mut dbs = Vec::new();
    if args.paths.is_empty() {
        let Some(gw) = gateway else {
            return Err(user_error(
                "no gateway found and no PATH given",
                "Pass transcript files or directories, or point --state-dir at the gateway's state directory.",
            ));
        };
        files.extend(
            gw.transcript_files()?
                .into_iter()
                .filter(|f| f.kind != moltvault_gateway::TranscriptKind::Sealed)
                .map(|f| f.path),
        );
        dbs = gw.agent_dbs();
    } else {
        for p in &args.paths {
            let meta =
                fs::symlink_metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
            if meta.is_dir() {
                walk(p, &mut files)?;
            } else if p.extension().is_some_and(|e| e == "sqlite") {
                dbs.push(p.clone());
            } else {
                files.push(p.clone());
            }
        }
    }

    let total: u64 = files
        .iter()
        .filter_map(|p| fs::symlink_metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ui::progress(total, "scanning", true);
    let results: Vec<(PathBuf, anyhow::Result<Vec<Finding>>)> = files
        .par_iter()
        .map(|p| {
            let res = (|| {
                let (reader, _) = open_transcript(p)?;
                let mut found = Vec::new();
                r.scan_jsonl(reader, &mut found)
                    .with_context(|| format!("cannot scan {}", p.display()))?;
                Ok(found)
            })();
            bar.inc(fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0));
            (p.clone(), res)
        })
        .collect();
    bar.finish_and_clear();
    let mut results = results;
    for db in &dbs {
        results.extend(scan_db(&r, db));
    }
    let columns = results.len() - files.len();

    let mut out = ui::stdout();
    let mut by_rule: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut n, mut files_with, mut failed) = (0u64, 0u64, 0usize);
    for (p, res) in &results {
        let found = match res {
            Ok(f) => f,
            Err(e) => {
                ui::error(&crate::report::render(e));
                failed += 1;
                continue;
            }
        };
        if !found.is_empty() {
            files_with += 1;
        }
        let mut seen_rules: Vec<&str> = Vec::new();
        for f in found {
            n += 1;
            let e = by_rule.entry(f.rule_id.clone()).or_default();
            e.0 += 1;
            if !seen_rules.contains(&f.rule_id.as_str()) {
                seen_rules.push(&f.rule_id);
                e.1 += 1;
            }
            let file = p.display().to_string();
            let line = if args.json {
                serde_json::to_string(&JsonFinding {
                    file,
                    line: f.line,
                    rule: &f.rule_id,
                    pointer: &f.pointer,
                    fingerprint: &f.fingerprint,
                })?
            } else {
                let ptr = if f.pointer.is_empty() {
                    "-"
                } else {
                    &f.pointer
                };
                format!("{file}:{}: {} {ptr} {}", f.line, f.rule_id, f.fingerprint)
            };
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
    }
    out.flush().context("cannot write to stdout")?;
    drop(out);

    if !by_rule.is_empty() {
        let w = by_rule.keys().map(|k| k.len()).max().unwrap_or(4).max(4);
        let mut table = format!("{:<w$}  {:>8}  {:>5}", "rule", "findings", "files");
        for (rule, (count, nfiles)) in &by_rule {
            table.push_str(&format!("\n{rule:<w$}  {count:>8}  {nfiles:>5}"));
        }
        ui::note(&table);
    }
    ui::note(&format!(
        "{n} finding{} in {files_with} of {} file{}{}",
        if n == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if dbs.is_empty() {
            String::new()
        } else {
            format!(
                " and {columns} text column{} of {} agent database{}",
                if columns == 1 { "" } else { "s" },
                dbs.len(),
                if dbs.len() == 1 { "" } else { "s" }
            )
        }
    ));
    if failed > 0 {
        return Err(user_error(
            format!("{failed} file(s) or database(s) could not be scanned (see the errors above)"),
            "Fix the errors above and run the scan again.",
        ));
    }
    Ok(if n > 0 { Status::Findings } else { Status::Ok })
}

/// Scans every text column of one agent database (read-only; the gateway may keep writing):
/// one result per column, named `<db>#<table>.<column>`, whose findings' `line` is the
/// record's position in rowid order.
fn scan_db(
    r: &moltvault_redact::Redactor,
    db: &Path,
) -> Vec<(PathBuf, anyhow::Result<Vec<Finding>>)> {
    use moltvault_gateway::sqlite::AgentDb;
    let adb = match AgentDb::open_read_only(db) {
        Ok(a) => a,
        Err(e) => return vec![(db.to_path_buf(), Err(e.into()))],
    };
    adb.text_columns()
        .into_iter()
        .map(|col| {
            let name = PathBuf::from(format!("{}#{}", db.display(), col.name()));
            let res = (|| -> anyhow::Result<Vec<Finding>> {
                let mut found = Vec::new();
                if let Some((lo, hi)) = adb.rowid_bounds(col.table)? {
                    adb.scan_column(&col, lo..=hi, r, &mut found)?;
                }
                Ok(found)
            })();
            (name, res)
        })
        .collect()
}
