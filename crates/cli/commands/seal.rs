//! `moltvault seal` / `moltvault unseal`: inactive transcripts ⇄ `<name>.age` beside them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use moltvault_gateway::audit::idle_transcripts;
use moltvault_gateway::{Gateway, TranscriptFile, TranscriptKind};
use moltvault_vault::Vault;
use moltvault_vault::seal::{self, BatchConfig, BatchStep, SealOptions};

use crate::commands::Ctx;
use crate::commands::key::{UnlockArgs, unlock};
use crate::report::{Status, user_error};
use crate::ui;

/// Seals inactive transcripts: each file (`<sid>.jsonl`, trajectory sidecars, `.deleted`,
/// `.reset` and `.bak` copies, `.zst` archives) becomes `<name>.age` beside it, encrypted to the
/// vault recipient (no passphrase needed). The sealed copy is written to a temp file,
/// decrypted back and compared with the plaintext, fsynced and renamed, and only then is the
/// plaintext removed.
///
/// The current session of a session key is refused: the gateway reopens it every turn and would
/// append plaintext. `--include-current` takes idle current ones too; those conversations then
/// restart without their history until unsealed. A file whose `.lock` is held, or that was
/// written in the last minute, is never sealed.
#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Session ids (every file of the session) or transcript file paths.
    #[arg(value_name = "SESSION")]
    sessions: Vec<String>,
    /// Seal every transcript untouched for `--idle`.
    #[arg(long, conflicts_with = "sessions")]
    all_idle: bool,
    /// With `--all-idle`: how long a transcript must be untouched (`30m`, `12h`, `7d`, `2w`).
    #[arg(long, value_name = "DURATION", default_value = "1d")]
    idle: String,
    /// Also seal idle current sessions (their conversations restart without history).
    #[arg(long)]
    include_current: bool,
    /// List what would be sealed; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Unseals sealed transcripts back to plaintext, restoring their mode; unlocks the vault once.
///
/// Each file is decrypted to a temp file beside it and kept only once the whole file
/// authenticated, so a damaged file leaves nothing behind; the sealed file is removed only
/// once the plaintext is durable.
#[derive(Debug, clap::Args)]
pub struct UnsealArgs {
    /// Session ids or sealed file paths.
    #[arg(value_name = "SESSION")]
    sessions: Vec<String>,
    /// Unseal every sealed transcript.
    #[arg(long, conflicts_with = "sessions")]
    all: bool,
    #[command(flatten)]
    unlock: UnlockArgs,
}

/// Parses `90s`, `30m`, `12h`, `7d`, `2w` (a bare number is seconds).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| bad_duration(s))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad_duration(s)),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

fn bad_duration(s: &str) -> anyhow::Error {
    user_error(
        format!("{s:?} is not a duration"),
        "Write a number and a unit: 90s, 30m, 12h, 7d or 2w.",
    )
}

/// Resolves command-line names (session ids or paths) to transcript files.
pub fn resolve(
    files: &[TranscriptFile],
    names: &[String],
    sealed_only: bool,
) -> anyhow::Result<Vec<TranscriptFile>> {
    let mut out = Vec::new();
    for name in names {
        let as_path = Path::new(name);
        let found: Vec<&TranscriptFile> = if name.contains('/') || as_path.exists() {
            let abs = std::path::absolute(as_path).unwrap_or_else(|_| as_path.to_path_buf());
            files
                .iter()
                .filter(|f| f.path == abs || f.path == as_path)
                .collect()
        } else {
            files.iter().filter(|f| f.session_id == *name).collect()
        };
        let found: Vec<&TranscriptFile> = found
            .into_iter()
            .filter(|f| !sealed_only || f.kind == TranscriptKind::Sealed)
            .collect();
        if found.is_empty() {
            if name.contains('/') || as_path.exists() {
                // Name what is wrong with the path itself (a symlink, a directory...).
                seal::open_regular(as_path)?;
            }
            return Err(user_error(
                format!(
                    "no {}transcript named {name}",
                    if sealed_only { "sealed " } else { "" }
                ),
                "Pass a session id (the file name without .jsonl) or a transcript path under the gateway's agents/<id>/sessions/ directory; `moltvault status` lists them.",
            ));
        }
        for f in found {
            if !out.iter().any(|o: &TranscriptFile| o.path == f.path) {
                out.push(f.clone());
            }
        }
    }
    Ok(out)
}

/// The paths of current sessions (the gateway appends to them).
fn current_paths(gw: &Gateway) -> anyhow::Result<BTreeSet<PathBuf>> {
    let mut set = BTreeSet::new();
    for s in gw.sessions()? {
        if s.current {
            set.extend(s.paths.iter().cloned());
        }
    }
    Ok(set)
}

pub fn run_seal(ctx: &Ctx, args: SealArgs) -> anyhow::Result<Status> {
    if args.sessions.is_empty() && !args.all_idle {
        return Err(user_error(
            "nothing to seal",
            "Name sessions (`moltvault seal <session-id>`), or pass --all-idle [--idle 7d].",
        ));
    }
    let vault = Vault::open(&ctx.vault_dir)?;
    let gw = ctx.gateway()?;
    let mut selected = Vec::new();
    let mut skipped = 0usize;
    // Whether current sessions are among the selected files.
    let mut takes_current = false;
    if args.all_idle {
        // The same selection as `audit --fix`'s sealing.
        let idle = parse_duration(&args.idle)?;
        let found = idle_transcripts(&gw, idle, SystemTime::now())?;
        selected = found.idle;
        if args.include_current {
            takes_current = !found.current.is_empty();
            selected.extend(found.current);
        } else {
            skipped = found.current.len();
        }
    } else {
        let files: Vec<TranscriptFile> = gw
            .transcript_files()?
            .into_iter()
            .filter(|f| f.kind != TranscriptKind::Sealed)
            .collect();
        let current = current_paths(&gw)?;
        for f in resolve(&files, &args.sessions, false)? {
            if current.contains(&f.path) && !args.include_current {
                return Err(user_error(
                    format!(
                        "{} is the current session of a session key; the gateway reopens it every turn and would append plaintext",
                        f.path.display()
                    ),
                    "Seal it once the conversation has moved on (`/new` or a reset), or pass --include-current: the conversation then restarts without its history until you unseal it.",
                ));
            }
            takes_current |= current.contains(&f.path);
            selected.push(f.path);
        }
    }
    if takes_current {
        ui::warn(
            "sealing current sessions: those conversations restart without their history until `moltvault unseal`",
        );
    }
    if args.dry_run {
        for f in &selected {
            ui::data(&f.display().to_string());
        }
        ui::note(&format!("{} file(s) would be sealed", selected.len()));
        return Ok(Status::Ok);
    }
    // Sealed in batches per directory: every sealed copy is written and verified, the batch is
    // made durable with one sync, linked, the directory fsynced once, and only then do the
    // batch's plaintexts go.
    sweep(&selected);
    let paths = selected;
    let (ok, failed, first_err) = batch(&paths, "sealing", |cfg, done| {
        seal::seal_files_with(
            &paths,
            vault.recipient(),
            &SealOptions::default(),
            cfg,
            &mut |_, r| done(r.map(|s| format!("sealed {}", s.sealed.display()))),
        )
    });
    let mut summary = format!("sealed {ok} file(s)");
    if skipped > 0 {
        summary.push_str(&format!(
            ", skipped {skipped} current session file(s) (--include-current takes them)"
        ));
    }
    ui::note(&summary);
    match first_err {
        Some(e) if failed > 0 => Err(e.context(format!("{failed} file(s) could not be sealed"))),
        _ => Ok(Status::Ok),
    }
}

pub fn run_unseal(ctx: &Ctx, args: UnsealArgs) -> anyhow::Result<Status> {
    if args.sessions.is_empty() && !args.all {
        return Err(user_error(
            "nothing to unseal",
            "Name sessions (`moltvault unseal <session-id>`), or pass --all.",
        ));
    }
    let vault = Vault::open(&ctx.vault_dir)?;
    let gw = ctx.gateway()?;
    let files: Vec<TranscriptFile> = gw.transcript_files()?;
    let selected = if args.all {
        files
            .into_iter()
            .filter(|f| f.kind == TranscriptKind::Sealed)
            .collect()
    } else {
        resolve(&files, &args.sessions, true)?
    };
    if selected.is_empty() {
        ui::note("nothing is sealed");
        return Ok(Status::Ok);
    }
    let identity = unlock(&vault, &args.unlock)?;
    // Unsealed in batches per directory, like seal: every plaintext is decrypted to its temp
    // file and authenticated, the batch made durable together and linked, the directory
    // fsynced once, and only then do the batch's sealed files go.
    let paths: Vec<PathBuf> = selected.into_iter().map(|f| f.path).collect();
    sweep(&paths);
    let (ok, failed, first_err) = batch(&paths, "unsealing", |cfg, done| {
        seal::unseal_files_with(&paths, &identity, cfg, &mut |_, r| {
            done(r.map(|u| format!("unsealed {}", u.plain.display())))
        })
    });
    ui::note(&format!("unsealed {ok} file(s)"));
    match first_err {
        Some(e) if failed > 0 => Err(e.context(format!("{failed} file(s) could not be unsealed"))),
        _ => Ok(Status::Ok),
    }
}

/// Runs one batched seal or unseal over `paths` with a progress bar and the failpoint hook;
/// `run` gets the batch config and reports each file's line or error. Returns the files done,
/// the files failed and the first error.
fn batch(
    paths: &[PathBuf],
    verb: &str,
    run: impl FnOnce(&BatchConfig<'_>, &mut dyn FnMut(Result<String, moltvault_vault::Error>)),
) -> (usize, usize, Option<anyhow::Error>) {
    let bar = ui::progress(paths.len() as u64, verb, false);
    let (mut ok, mut failed, mut first_err) = (0usize, 0usize, None);
    let failpoint = failpoint();
    let crash = |step: BatchStep, _: &Path| crash_at(failpoint.as_deref(), step);
    let cfg = BatchConfig {
        hook: failpoint.is_some().then_some(&crash as seal::BatchHook<'_>),
        ..BatchConfig::default()
    };
    run(&cfg, &mut |r| {
        match r {
            Ok(line) => {
                ok += 1;
                bar.suspend(|| ui::note(&line));
            }
            Err(e) => {
                failed += 1;
                let e = anyhow::Error::from(e);
                let text = crate::report::render(&e);
                bar.suspend(|| ui::warn(text.trim_start_matches("error: ")));
                first_err.get_or_insert(e);
            }
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    (ok, failed, first_err)
}

/// The seal crash point of `MOLTVAULT_FAILPOINT` (`before:<step>`; debug builds only).
fn failpoint() -> Option<String> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let v = crate::env::var(crate::env::MOLTVAULT_FAILPOINT)?;
    v.to_str()?.strip_prefix("before:").map(str::to_owned)
}

/// The failpoint name of a batch step.
fn step_name(step: BatchStep) -> &'static str {
    match step {
        BatchStep::Sync => "sync",
        BatchStep::Link => "link",
        BatchStep::SyncDir => "sync-dir",
        BatchStep::RemovePlain => "remove-plain",
        _ => "other",
    }
}

/// Removes the temp files a killed run left in the directories of `paths`.
fn sweep(paths: &[PathBuf]) {
    let dirs: BTreeSet<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    for d in dirs {
        seal::sweep_stale_temps(d);
    }
}

/// The batch hook of `MOLTVAULT_FAILPOINT=before:<step>` (debug builds): aborts the process
/// just before `step`, like a power cut would.
fn crash_at(failpoint: Option<&str>, step: BatchStep) -> std::io::Result<()> {
    if failpoint == Some(step_name(step)) {
        std::process::abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        for bad in ["", "d", "7x", "-1d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
