//! `moltvault lock` / `moltvault unlock`: seal the gateway's credential files while it is stopped.

use std::path::PathBuf;

use moltvault_vault::Vault;
use moltvault_vault::lock;

use crate::commands::Ctx;
use crate::commands::key::{self, unlock};
use crate::report::{Status, user_error};
use crate::ui;

/// Seals the gateway's credential files (config and its backups, `.env`, `credentials/**`,
/// auth profiles, paired devices, identity…) in place while the gateway is stopped, recording
/// their modes in `<state dir>/.moltvault-locked.json`. Needs no passphrase.
///
/// SQLite databases and files outside the state directory are left alone (listed as skipped).
/// Run `moltvault unlock` before starting the gateway again.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// List what would be locked; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Restores the credential files `moltvault lock` sealed, with their original modes.
#[derive(Debug, clap::Args)]
#[group(id = "unlock-command")]
pub struct UnlockArgs {
    #[command(flatten)]
    unlock: key::UnlockArgs,
}

fn is_database(p: &std::path::Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".sqlite")
        || name.ends_with(".sqlite-wal")
        || name.ends_with(".sqlite-shm")
        || name.ends_with(".db")
}

pub fn run_lock(ctx: &Ctx, args: LockArgs) -> anyhow::Result<Status> {
    let vault = Vault::open(&ctx.vault_dir)?;
    let gw = ctx.gateway()?;
    if gw.is_running() {
        return Err(user_error(
            format!("the gateway in {} is running", gw.state_dir.display()),
            "Stop it first (`openclaw gateway stop`, or `systemctl --user stop openclaw-gateway`), then run `moltvault lock` again; it reads these files while it runs.",
        ));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    let mut skipped: Vec<(PathBuf, &str)> = Vec::new();
    for p in gw.credential_files() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            skipped.push((p, "a symlink"));
        } else if !meta.is_file() {
            continue;
        } else if !p.starts_with(&gw.state_dir) {
            skipped.push((p, "outside the state directory"));
        } else if is_database(&p) {
            skipped.push((p, "a database (protect it with `moltvault backup`)"));
        } else if !moltvault_vault::seal::is_sealed_path(&p) {
            files.push(p);
        }
    }
    for (p, why) in &skipped {
        ui::note(&format!("skipped {} ({why})", p.display()));
    }
    if args.dry_run {
        for f in &files {
            ui::data(&f.display().to_string());
        }
        ui::note(&format!("{} file(s) would be locked", files.len()));
        return Ok(Status::Ok);
    }
    let report = lock::lock_files(&gw.state_dir, &files, vault.recipient())?;
    ui::note(&format!(
        "locked {} file(s){}; run `moltvault unlock` before starting the gateway",
        report.done.len(),
        if report.already.is_empty() {
            String::new()
        } else {
            format!(" ({} already locked)", report.already.len())
        }
    ));
    Ok(Status::Ok)
}

pub fn run_unlock(ctx: &Ctx, args: UnlockArgs) -> anyhow::Result<Status> {
    let vault = Vault::open(&ctx.vault_dir)?;
    let gw = ctx.gateway()?;
    let Some(manifest) = lock::read_manifest(&gw.state_dir)? else {
        ui::note("nothing is locked");
        return Ok(Status::Ok);
    };
    if manifest.files.is_empty() {
        ui::note("nothing is locked");
        return Ok(Status::Ok);
    }
    let identity = unlock(&vault, &args.unlock)?;
    let report = lock::unlock_files(&gw.state_dir, &identity)?;
    ui::note(&format!(
        "unlocked {} file(s) with their original modes",
        report.done.len() + report.already.len()
    ));
    Ok(Status::Ok)
}
