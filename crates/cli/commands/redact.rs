//! `moltvault redact`: rewrites transcripts with secrets replaced by `[REDACTED:<rule>:<fp8>]`.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use moltvault_redact::{
    FindingSink, FingerprintKey, LiteralSecret, Mode, Redactor, RedactorOptions, RuleSet, Stats,
};
use moltvault_vault::fsio::{AtomicFile, WriteOptions};

use crate::commands::Ctx;
use crate::report::{Status, user_error};
use crate::ui;

/// Redacts secrets in session transcripts (JSONL; `.jsonl.deleted.*.zst` archives too; with no
/// PATH, also the SQLite store of OpenClaw ≥ 2026.8).
///
/// Every secret becomes `[REDACTED:<rule>:<fp8>]`, where fp8 is a keyed fingerprint: the same
/// secret always gets the same tag. Records without secrets are copied byte for byte.
///
/// With PATHs and neither --in-place nor -o, writes the redacted text to stdout. With no PATH,
/// filters stdin to stdout when stdin is not a terminal; on a terminal, redacts every
/// transcript of the detected gateway (needs --in-place), and every agent database in one
/// SQLite transaction each (transcript events, zstd events, trajectory, full-text and memory
/// copies), waiting for the gateway's own writes.
#[derive(Debug, clap::Args)]
pub struct RedactArgs {
    /// Transcript files to redact.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Rewrite each file in place (atomically, keeping its mode and owner).
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// Write the redacted transcript to FILE (one PATH, or stdin).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Which strings to redact: tool output only, or every string.
    #[arg(long, value_enum, default_value_t = ModeArg::Tools)]
    pub mode: ModeArg,
    /// Extra rules and allowlist (TOML); default `<vault dir>/rules.toml` when it exists.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

/// The `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Tool results, tool-call arguments and `details.*`.
    Tools,
    /// Every string except structural fields (ids, timestamps, signatures).
    All,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Tools => Mode::Tools,
            ModeArg::All => Mode::All,
        }
    }
}

/// Builds the redactor: rules (built-in + user file), the install key, and the gateway's own
/// configured secrets as literal rules when a gateway is found.
pub(crate) fn build_redactor(
    ctx: &Ctx,
    rules: Option<&Path>,
    mode: Mode,
) -> anyhow::Result<(Redactor, Option<moltvault_gateway::Gateway>)> {
    let set = load_rules(ctx, rules)?;
    let key = moltvault_vault::install_key::load_or_create(&ctx.vault_dir)?;
    let mut opts = RedactorOptions::new(mode, FingerprintKey::from_bytes(*key.expose()));
    let gateway = ctx.gateway().ok();
    if let Some(gw) = &gateway {
        // The gateway's own secrets are the strongest rule; an unreadable config only loses them.
        if let Ok(secrets) = gw.configured_secrets() {
            for s in secrets {
                if let Some(v) = s.value
                    && secrecy::ExposeSecret::expose_secret(&v).len() >= 8
                {
                    opts.literals.push(LiteralSecret::new(s.id, v));
                }
            }
        }
    }
    Ok((Redactor::new(&set, opts)?, gateway))
}

/// The rule set: built-in rules plus the user file (`rules`, else `<vault dir>/rules.toml`
/// when it exists) — the rules the plugin's `moltvault serve` loads too.
pub(crate) fn load_rules(ctx: &Ctx, rules: Option<&Path>) -> anyhow::Result<RuleSet> {
    let default_rules = ctx.vault_dir.join("rules.toml");
    let rules_path = match rules {
        Some(p) => Some(p.to_path_buf()),
        None => default_rules.exists().then_some(default_rules),
    };
    Ok(match &rules_path {
        Some(p) => {
            let text = fs::read_to_string(p)
                .with_context(|| format!("cannot read the rule file {}", p.display()))?;
            RuleSet::with_user_file(p, &text)?
        }
        None => RuleSet::builtin(),
    })
}

/// The rules file the installed plugin is configured with
/// (`plugins.entries.moltvault-redact.config.rulesFile`), if any.
pub(crate) fn plugin_rules_file(gw: &moltvault_gateway::Gateway) -> Option<PathBuf> {
    let cfg = gw.config().ok()??;
    cfg.get("plugins.entries.moltvault-redact.config.rulesFile")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
}

/// Whether a file starts with the zstd magic number.
pub(crate) fn is_zstd(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path)?;
    let n = f.read(&mut magic)?;
    Ok(n == 4 && magic == [0x28, 0xB5, 0x2F, 0xFD])
}

/// Opens a transcript for reading (decompressing zstd), refusing symlinks.
pub(crate) fn open_transcript(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, bool)> {
    let meta =
        fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(user_error(
            format!(
                "{} is a symlink; moltvault does not follow symlinks",
                path.display()
            ),
            "Pass the real file the symlink points to.",
        ));
    }
    if !meta.is_file() {
        return Err(user_error(
            format!("{} is not a regular file", path.display()),
            "Pass transcript files (.jsonl), or a directory to `moltvault scan`.",
        ));
    }
    let zstd = is_zstd(path).with_context(|| format!("cannot read {}", path.display()))?;
    let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let r: Box<dyn Read + Send> = if zstd {
        Box::new(
            zstd::stream::read::Decoder::new(f)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
    } else {
        // The redactor reads 128 KiB blocks itself: a buffer here would only add a copy.
        Box::new(f)
    };
    Ok((r, zstd))
}

/// Size, mtime and inode: what tells us a file changed while we read it.
fn stamp(path: &Path) -> anyhow::Result<(u64, i64, i64, u64)> {
    let m =
        fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

/// Counts findings without keeping them.
struct Count(u64);

impl FindingSink for Count {
    fn finding(&mut self, _f: moltvault_redact::Finding) {
        self.0 += 1;
    }
}

/// Redacts one file in place; the file is replaced only if something was redacted and it did
/// not change meanwhile.
pub(crate) fn redact_in_place(r: &Redactor, path: &Path) -> anyhow::Result<Stats> {
    let before = stamp(path)?;
    let (reader, zstd) = open_transcript(path)?;
    let opts = WriteOptions::like_existing(path)?;
    let mut out = AtomicFile::create(path, opts)?;
    let stats = if zstd {
        let mut enc = zstd::stream::write::Encoder::new(&mut out, 3)
            .with_context(|| format!("cannot write {}", path.display()))?;
        enc.include_checksum(true)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let s = r
            .redact_jsonl(reader, &mut enc, &mut Count(0))
            .with_context(|| format!("cannot redact {}", path.display()))?;
        enc.finish()
            .with_context(|| format!("cannot write {}", path.display()))?;
        s
    } else {
        // The redacted copy is about the file's size.
        out.reserve(before.0);
        // Smaller than the redactor's blocks: runs of unchanged records bypass the buffer,
        // which only gathers the pieces of changed ones.
        let mut w = io::BufWriter::with_capacity(1 << 16, &mut out);
        let s = r
            .redact_jsonl(reader, &mut w, &mut Count(0))
            .with_context(|| format!("cannot redact {}", path.display()))?;
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
        s
    };
    if stats.changed == 0 {
        // Nothing to redact: leave the file (and its mtime) alone.
        return Ok(stats);
    }
    if stamp(path)? != before {
        return Err(user_error(
            format!(
                "{} changed while it was being redacted; it was left unchanged",
                path.display()
            ),
            "Run the command again once the gateway is idle (or stop it for a moment).",
        ));
    }
    out.commit()?;
    Ok(stats)
}

fn summary(path: &str, s: &Stats) -> String {
    format!(
        "{path}: {} secret{} redacted in {} of {} records",
        s.findings,
        if s.findings == 1 { "" } else { "s" },
        s.changed,
        s.lines
    )
}

pub fn run(ctx: &Ctx, args: RedactArgs) -> anyhow::Result<Status> {
    let (r, gateway) = build_redactor(ctx, args.rules.as_deref(), args.mode.into())?;

    if args.paths.is_empty() {
        if !io::stdin().is_terminal() {
            let mut count = Count(0);
            return match &args.output {
                Some(dest) => {
                    let mut out = AtomicFile::create(dest, WriteOptions::secret_replace())?;
                    r.redact_jsonl(io::stdin().lock(), &mut out, &mut count)?;
                    out.commit()?;
                    Ok(Status::Ok)
                }
                None => {
                    r.redact_jsonl(io::stdin().lock(), ui::stdout(), &mut count)?;
                    Ok(Status::Ok)
                }
            };
        }
        let Some(gw) = gateway else {
            return Err(user_error(
                "no gateway found and no PATH given",
                "Pass transcript files, pipe a transcript on stdin, or point --state-dir at the gateway's state directory.",
            ));
        };
        if !args.in_place {
            return Err(user_error(
                format!(
                    "redacting the transcripts of the gateway in {} rewrites them",
                    gw.state_dir.display()
                ),
                "Pass --in-place to rewrite them, or run `moltvault scan` to only list the findings.",
            ));
        }
        let files: Vec<PathBuf> = gw
            .transcript_files()?
            .into_iter()
            .filter(|f| {
                !matches!(
                    f.kind,
                    moltvault_gateway::TranscriptKind::Sealed
                        | moltvault_gateway::TranscriptKind::Cold
                )
            })
            .map(|f| f.path)
            .collect();
        let files_status = redact_files_in_place(&r, &files);
        // SQLite store: each agent database in one transaction, derived copies included.
        let dbs: Vec<PathBuf> = gw
            .agent_dbs()
            .into_iter()
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        for db in dbs {
            let mut adb = moltvault_gateway::sqlite::AgentDb::open(&db)?;
            if adb.text_columns().is_empty() {
                continue;
            }
            let mut count = Count(0);
            let rep = adb.redact_prefiltered(
                |t| r.may_match(t.as_bytes()),
                |v| r.redact_value(v, &mut count) > 0,
            )?;
            ui::note(&format!(
                "{}: {} secret{} redacted in {} row{} (one transaction)",
                db.display(),
                count.0,
                if count.0 == 1 { "" } else { "s" },
                rep.total_changed(),
                if rep.total_changed() == 1 { "" } else { "s" },
            ));
        }
        return files_status;
    }

    if args.in_place {
        return redact_files_in_place(&r, &args.paths);
    }
    if let Some(dest) = &args.output {
        if args.paths.len() != 1 {
            return Err(user_error(
                "-o takes exactly one input PATH",
                "Redact one file per -o, or use --in-place for several files.",
            ));
        }
        let (reader, zstd) = open_transcript(&args.paths[0])?;
        let mut out = AtomicFile::create(dest, WriteOptions::secret_replace())?;
        if !zstd && let Ok(m) = fs::metadata(&args.paths[0]) {
            // The redacted copy is about the file's size.
            out.reserve(m.len());
        }
        let mut w = io::BufWriter::with_capacity(1 << 16, &mut out);
        let s = r.redact_jsonl(reader, &mut w, &mut Count(0))?;
        w.flush()?;
        drop(w);
        out.commit()?;
        ui::note(&summary(&args.paths[0].display().to_string(), &s));
        return Ok(Status::Ok);
    }
    let mut stdout = ui::stdout();
    for p in &args.paths {
        let (reader, _) = open_transcript(p)?;
        r.redact_jsonl(reader, &mut stdout, &mut Count(0))
            .with_context(|| format!("cannot redact {}", p.display()))?;
    }
    Ok(Status::Ok)
}

fn redact_files_in_place(r: &Redactor, files: &[PathBuf]) -> anyhow::Result<Status> {
    use rayon::prelude::*;
    let total: u64 = files
        .iter()
        .filter_map(|p| fs::symlink_metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ui::progress(total, "redacting", true);
    let results: Vec<(PathBuf, anyhow::Result<Stats>)> = files
        .par_iter()
        .map(|p| {
            let res = redact_in_place(r, p);
            bar.inc(fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0));
            (p.clone(), res)
        })
        .collect();
    bar.finish_and_clear();
    let mut failed = 0usize;
    let (mut secrets, mut changed_files) = (0u64, 0u64);
    for (p, res) in results {
        match res {
            Ok(s) => {
                if s.findings > 0 {
                    changed_files += 1;
                    secrets += s.findings;
                    ui::note(&summary(&p.display().to_string(), &s));
                }
            }
            Err(e) => {
                ui::error(&crate::report::render(&e));
                failed += 1;
            }
        }
    }
    ui::note(&format!(
        "{secrets} secret{} redacted in {changed_files} of {} file{}",
        if secrets == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    ));
    if failed > 0 {
        return Err(user_error(
            format!("{failed} file(s) could not be redacted (see the errors above)"),
            "Fix the errors above and run the command again; the other files are done.",
        ));
    }
    Ok(Status::Ok)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A file appended to while it is being rewritten is left as the writer left it.
    #[test]
    fn file_changed_during_rewrite_is_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("s.jsonl");
        let tok = format!(
            "{}{}",
            ["gh", "p_"].concat(),
            "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
        );
        let line = format!("{{\"t\":\"x {tok} {}\"}}\n", "y".repeat(200));
        fs::write(&f, line.repeat(60_000)).unwrap();
        let r = Redactor::new(
            &RuleSet::builtin(),
            RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([0; 32])),
        )
        .unwrap();
        let f2 = f.clone();
        let appender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let mut h = fs::OpenOptions::new().append(true).open(&f2).unwrap();
            h.write_all(b"{\"t\":\"appended\"}\n").unwrap();
        });
        let res = redact_in_place(&r, &f);
        appender.join().unwrap();
        let err = res.expect_err("the change must be detected");
        assert!(
            err.to_string()
                .contains("changed while it was being redacted"),
            "{err}"
        );
        let now = fs::read_to_string(&f).unwrap();
        assert!(now.ends_with("{\"t\":\"appended\"}\n"));
        assert_eq!(now.matches(&tok).count(), 60_000);
    }
}
