//! `moltvault backup`: one encrypted file holding the gateway's whole state directory.

use std::path::PathBuf;
use std::time::Instant;

use moltvault_vault::backup::{self, BackupOptions, LocalDir};

use crate::commands::Ctx;
use crate::commands::backups::{Bar, gateway_state_dir, human_bytes, open_target};
use crate::report::{Status, user_error};
use crate::ui;

/// Backs up the gateway state directory into one encrypted file.
///
/// The file is `moltvault-<host>-<UTC time>.tar.zst.age`: a tar stream (a `manifest.json` with
/// the size, mode and SHA-256 of every entry first), zstd-compressed, encrypted with age to the
/// vault's public recipient — so no passphrase is needed and the command is safe in cron. SQLite
/// databases are copied through SQLite's online backup API; live transcripts are read up to
/// their last complete line; symlinks are stored as links; sockets and FIFOs are skipped. The
/// backup appears only once complete (0600). Read it back with `moltvault restore`, or without
/// moltvault: `age -d -i KEY FILE | zstd -d | tar x`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to put it: a directory, or s3://bucket/prefix (default `<vault dir>/backups`).
    #[arg(long, value_name = "DEST")]
    to: Option<String>,
    /// Leave out entries matching this glob (relative to the state dir; repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Leave out session transcripts (`agents/*/sessions/`, the per-agent SQLite store).
    #[arg(long)]
    no_sessions: bool,
    /// Encrypt to this age recipient instead of the vault's.
    #[arg(long, value_name = "AGE1…")]
    recipient: Option<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The globs `--no-sessions` adds.
const SESSION_GLOBS: [&str; 2] = ["agents/*/sessions", "agents/*/agent/openclaw-agent.sqlite*"];

pub fn run(ctx: &Ctx, args: BackupArgs) -> anyhow::Result<Status> {
    let state = gateway_state_dir(ctx)?;
    let recipient: age::x25519::Recipient = match &args.recipient {
        Some(r) => r.parse().map_err(|e| {
            user_error(
                format!("--recipient: not an age X25519 recipient ({e})"),
                "Give a recipient of the form age1…, or leave the option out to use the vault's.",
            )
        })?,
        None => moltvault_vault::Vault::open(&ctx.vault_dir)?
            .recipient()
            .clone(),
    };
    let target = open_target(ctx, args.to.as_deref())?;
    let mut opts = BackupOptions::new(&state, hostname(), ctx.vault_dir.join("tmp"));
    opts.created_by = format!("moltvault {}", env!("CARGO_PKG_VERSION"));
    opts.exclude = args.exclude.clone();
    if args.no_sessions {
        opts.exclude
            .extend(SESSION_GLOBS.iter().map(|s| s.to_string()));
    }
    // A backup directory (or the vault) inside the state dir is never backed up into itself.
    let local = args.to.as_deref().filter(|s| !s.contains("://"));
    let dest_dir = local.map_or_else(
        || crate::commands::backups::default_backup_dir(ctx),
        PathBuf::from,
    );
    // Created now (0700) so it can be recognised inside the state dir by its canonical path.
    if !args.to.as_deref().is_some_and(|t| t.contains("://")) {
        moltvault_vault::fsio::create_secret_dir_all(&dest_dir)?;
    }
    for p in [dest_dir, ctx.vault_dir.clone()] {
        if let Ok(c) = std::fs::canonicalize(&p) {
            opts.skip_paths.push(c);
        }
        opts.skip_paths.push(p);
    }
    if let Ok(c) = std::fs::canonicalize(&state) {
        opts.source = c;
    }
    let started = Instant::now();
    let bar = Bar::new("backing up", true);
    let result = backup::create(&opts, &recipient, target.as_ref(), &bar);
    bar.0.finish_and_clear();
    let s = result?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        v["source"] = state.display().to_string().into();
        v["seconds"] = serde_json::json!((secs * 1000.0).round() / 1000.0);
        ui::data(&serde_json::to_string_pretty(&v)?);
        return Ok(Status::Ok);
    }
    for k in &s.skipped {
        ui::note(&format!("skipped {}: {}", k.path, k.reason));
    }
    ui::note(&format!(
        "backed up {} files, {} dirs, {} symlinks ({}, {} SQLite) from {} in {:.1}s: {} encrypted",
        s.files,
        s.dirs,
        s.symlinks,
        human_bytes(s.content_bytes),
        s.sqlite_databases,
        state.display(),
        secs,
        human_bytes(s.backup_bytes),
    ));
    let shown = match args.to.as_deref() {
        Some(t) if t.contains("://") => format!("{}/{}", t.trim_end_matches('/'), s.name),
        _ => {
            let dir = local.map_or_else(
                || crate::commands::backups::default_backup_dir(ctx),
                PathBuf::from,
            );
            LocalDir::new(dir).dir().join(&s.name).display().to_string()
        }
    };
    ui::data(&shown);
    Ok(Status::Ok)
}

/// This machine's host name (for the backup's name), or "host".
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}
