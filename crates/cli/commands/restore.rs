//! `moltvault restore`: verify a backup completely, then swap it in atomically.

use moltvault_vault::backup::{self, RestoreOptions};

use crate::commands::Ctx;
use crate::commands::backups::{Bar, TargetArgs, gateway_state_dir, locate, reading_identity};
use crate::commands::key::UnlockArgs;
use crate::report::{Status, user_error};
use crate::ui;

/// Restores a backup over the gateway state directory (or `--to DIR`).
///
/// The backup is decrypted into a fresh 0700 staging directory beside the target; only regular
/// files, directories and in-tree symlinks named in its manifest are accepted, and every
/// SHA-256 is checked. Only then is the staging tree swapped in atomically; the previous tree is
/// kept as `<dir>.pre-restore-<time>`. A damaged or tampered backup changes nothing. With
/// `--only`, just the matching files are swapped in, each atomically, and the files they replace
/// are kept under `<dir>.pre-restore-<time>/`. Refuses to run while the gateway is running.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup: a file, a name in the backup directory, or s3://bucket/prefix/NAME.
    backup: String,
    /// Restore into this directory instead of the gateway state dir.
    #[arg(long, value_name = "DIR")]
    to: Option<std::path::PathBuf>,
    /// Restore only entries matching these globs (relative to the state dir).
    #[arg(long, value_name = "GLOB", num_args = 1..)]
    only: Vec<String>,
    /// Verify and list what would be restored; write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    unlock: UnlockArgs,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: RestoreArgs) -> anyhow::Result<Status> {
    let dir = match &args.to {
        Some(d) => d.clone(),
        None => gateway_state_dir(ctx).map_err(|e| {
            user_error(
                format!("cannot find the gateway state directory to restore into: {e:#}"),
                "Pass --to DIR (or --state-dir DIR) to say where to restore.",
            )
        })?,
    };
    if !args.dry_run {
        refuse_running_gateway(ctx, &dir)?;
    }
    let (target, name) = locate(ctx, &args.backup, args.target.from.as_deref())?;
    let identity = reading_identity(ctx, &args.unlock)?;
    let mut opts = RestoreOptions::new(&dir);
    opts.only = args.only.clone();
    opts.dry_run = args.dry_run;
    let bar = Bar::new("restoring", true);
    let r = backup::restore(target.as_ref(), &name, identity.as_age(), &opts, &bar);
    bar.0.finish_and_clear();
    let r = r?;
    for l in &r.leftovers {
        match &l.kept_as {
            None => ui::note(&format!(
                "removed {}, the staging directory of an interrupted restore",
                l.path.display()
            )),
            Some(k) => ui::note(&format!(
                "moved {} to {}: a complete tree from an interrupted restore (the previous or the restored one); delete it once you have checked",
                l.path.display(),
                k.display()
            )),
        }
    }
    if args.json {
        ui::data(&serde_json::to_string_pretty(&r)?);
        return Ok(Status::Ok);
    }
    if r.dry_run {
        for p in &r.restored {
            ui::data(p);
        }
        ui::note(&format!(
            "dry run: {} verified; {} entries would be restored into {}",
            r.verified.name,
            r.restored.len(),
            r.target.display()
        ));
        return Ok(Status::Ok);
    }
    ui::note(&format!(
        "restored {} entries from {} into {}",
        r.restored.len(),
        r.verified.name,
        r.target.display()
    ));
    if let Some(p) = &r.previous {
        ui::note(&format!(
            "the previous files are kept in {} (delete it once the gateway works)",
            p.display()
        ));
    }
    Ok(Status::Ok)
}

/// Refuses to restore over the state dir of a gateway that is running.
fn refuse_running_gateway(ctx: &Ctx, dir: &std::path::Path) -> anyhow::Result<()> {
    let opts = ctx.discover_options();
    let opts = moltvault_gateway::discover::DiscoverOptions {
        state_dir: Some(dir.to_path_buf()),
        ..opts
    };
    let Ok(gw) = moltvault_gateway::discover::discover(&opts) else {
        return Ok(()); // Nothing there yet: nothing can be running on it.
    };
    // Processes that provably serve another state dir (another HOME on this host) are already
    // left out by the gateway crate's heuristic.
    let ev = gw.running_evidence();
    if ev.any() {
        let mut why: Vec<String> = ev
            .processes
            .iter()
            .map(|(pid, name)| format!("process {pid} ({name})"))
            .collect();
        why.extend(
            ev.locked_transcripts
                .iter()
                .map(|p| format!("lock on {}", p.display())),
        );
        why.extend(
            ev.held_locks
                .iter()
                .map(|p| format!("lock held on {}", p.display())),
        );
        return Err(user_error(
            format!(
                "the gateway using {} is running ({})",
                dir.display(),
                why.join(", ")
            ),
            "Stop it first (e.g. `openclaw gateway stop` or `systemctl --user stop openclaw-gateway`), then restore.",
        ));
    }
    Ok(())
}
