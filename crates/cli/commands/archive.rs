//! `moltvault archive`: seals sessions idle for a while (JSONL store) or exports them to sealed
//! JSONL and hands their removal to the gateway's own CLI (SQLite store).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use moltvault_gateway::archive::{self, ArchiveOptions, ArchivePlan, SqliteCandidate};
use moltvault_gateway::{Gateway, TranscriptKind};
use moltvault_vault::Vault;
use moltvault_vault::fsio::{self, AtomicFile, WriteOptions};
use moltvault_vault::seal::{self, SealOptions};

use crate::commands::Ctx;
use crate::commands::seal::parse_duration;
use crate::env;
use crate::report::{Status, user_error};
use crate::ui;

/// Archives sessions idle for longer than `--idle`, encrypted to the vault recipient (no
/// passphrase needed).
///
/// JSONL store (Clawdbot, OpenClaw ≤ 2026.7): each idle transcript file — live transcripts,
/// trajectory sidecars, `.deleted`/`.reset`/`.bak` copies and `.jsonl.deleted.*.zst` archives —
/// is sealed in place as `<name>.age`, exactly as `moltvault seal` does. Current sessions of a
/// session key are skipped unless --include-current; a file whose `.lock` is held, or written
/// in the last minute, never is.
///
/// SQLite store (OpenClaw ≥ 2026.8): each session with no event newer than the cut-off is
/// exported to `agents/<id>/sessions/<sid>.jsonl.age` (the JSONL entry schema, encrypted as it
/// is written, then decrypted and compared before it counts), and then removed through the
/// gateway's own CLI, `openclaw sessions delete <key> --agent <id> --yes --json`, which needs the
/// running gateway. Sessions that command cannot remove (an older generation of a key, an
/// agent's main session, no gateway CLI, gateway not answering) stay in the database and the
/// report says why; the sealed export is kept either way. The `.jsonl.deleted.*.zst` archive
/// the gateway leaves on deletion is sealed too.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// How long a session must be idle (`30m`, `12h`, `7d`, `2w`).
    #[arg(long, value_name = "DURATION")]
    idle: String,
    /// List what would be archived; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// JSONL store: also seal idle current sessions (their conversations restart without
    /// history until unsealed).
    #[arg(long)]
    include_current: bool,
    /// SQLite store: the gateway CLI used to remove exported sessions (default: `openclaw` on
    /// PATH).
    #[arg(long, value_name = "PATH")]
    gateway_cli: Option<PathBuf>,
    /// SQLite store: export only; leave every session in the database.
    #[arg(long)]
    keep_in_db: bool,
}

/// How long the gateway CLI may take to delete one session.
const GATEWAY_CLI_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(ctx: &Ctx, args: ArchiveArgs) -> anyhow::Result<Status> {
    let idle = parse_duration(&args.idle)?;
    let gw = ctx.gateway()?;
    // Archiving needs only the public recipient; --dry-run needs no vault at all.
    let vault = if args.dry_run {
        None
    } else {
        Some(Vault::open(&ctx.vault_dir)?)
    };
    let plan = archive::plan(
        &gw,
        &ArchiveOptions {
            idle,
            now: SystemTime::now(),
            include_current: args.include_current,
        },
    )?;
    let cli = if plan.sqlite.is_empty() || args.keep_in_db {
        None
    } else {
        args.gateway_cli.clone().or_else(find_gateway_cli)
    };
    if args.dry_run {
        dry_run(&gw, &plan, cli.as_deref(), args.keep_in_db);
        return Ok(Status::Ok);
    }
    let Some(vault) = vault else {
        return Err(user_error(
            "no vault to archive to",
            "Run `moltvault init` first.",
        ));
    };
    let mut failed: Vec<anyhow::Error> = Vec::new();

    // JSONL store (and the 2026.9 deleted-session archives): seal in place.
    let opts = SealOptions {
        sync_removal: false,
        ..SealOptions::default()
    };
    let dirs: BTreeSet<&Path> = plan
        .files
        .iter()
        .filter_map(|f| f.file.path.parent())
        .collect();
    for d in &dirs {
        seal::sweep_stale_temps(d);
    }
    let mut sealed = 0usize;
    for f in &plan.files {
        match seal::seal_file(&f.file.path, vault.recipient(), &opts) {
            Ok(s) => {
                sealed += 1;
                ui::data(&format!("sealed    {}", rel(&gw, &s.sealed)));
            }
            Err(e) => failed.push(anyhow::Error::from(e)),
        }
    }
    for d in dirs {
        fsio::sync_dir(d)?;
    }

    // SQLite store: export, verify, then let the gateway remove the session.
    let (mut exported, mut removed) = (0usize, 0usize);
    for c in &plan.sqlite {
        match export_sealed(c, vault.recipient()) {
            Ok(Some((dest, events))) => {
                exported += 1;
                ui::data(&format!(
                    "exported  {} ({events} events, verified) -> {}",
                    c.session_id,
                    rel(&gw, &dest)
                ));
            }
            Ok(None) => ui::data(&format!(
                "exported  {} already -> {}",
                c.session_id,
                rel(&gw, &seal::sealed_path(&c.export_path))
            )),
            Err(e) => {
                failed.push(e.context(format!("cannot export session {}", c.session_id)));
                continue;
            }
        }
        if args.keep_in_db {
            continue;
        }
        match remove_through_gateway(&gw, c, cli.as_deref()) {
            Ok(key) => {
                removed += 1;
                ui::data(&format!(
                    "removed   {key} through `openclaw sessions delete`"
                ));
                // The gateway keeps a plaintext `.jsonl.deleted.*.zst` archive: seal it.
                for s in seal_deleted_archives(&gw, c, vault.recipient(), &mut failed) {
                    ui::data(&format!("sealed    {}", rel(&gw, &s)));
                    sealed += 1;
                }
            }
            Err(why) => ui::data(&format!(
                "kept      {} in the database: {why}",
                c.session_id
            )),
        }
    }
    for s in &plan.skipped {
        ui::note(&format!("skipped {}: {}", rel(&gw, &s.path), s.reason));
    }
    ui::note(&format!(
        "sealed {sealed} file(s); exported {exported} SQLite session(s), {removed} removed from the database"
    ));
    let n = failed.len();
    match failed.into_iter().next() {
        Some(first) => Err(first.context(format!(
            "{n} item(s) could not be archived; the rest are done"
        ))),
        None => Ok(Status::Ok),
    }
}

fn rel(gw: &Gateway, p: &Path) -> String {
    moltvault_gateway::audit::display_path(p, &gw.state_dir)
}

fn dry_run(gw: &Gateway, plan: &ArchivePlan, cli: Option<&Path>, keep_in_db: bool) {
    for f in &plan.files {
        ui::data(&format!("would seal    {}", rel(gw, &f.file.path)));
    }
    for c in &plan.sqlite {
        let dest = seal::sealed_path(&c.export_path);
        let then = if keep_in_db {
            "keep it in the database (--keep-in-db)".to_string()
        } else {
            match (c.removable_key(), cli) {
                (Ok(k), Some(_)) => format!("remove `{k}` with `openclaw sessions delete`"),
                (Ok(_), None) => "keep it in the database: no gateway CLI found".to_string(),
                (Err(why), _) => format!("keep it in the database: {why}"),
            }
        };
        ui::data(&format!(
            "would export {} ({} events) -> {}, then {then}",
            c.session_id,
            c.events,
            rel(gw, &dest)
        ));
    }
    for s in &plan.skipped {
        ui::note(&format!("skipped {}: {}", rel(gw, &s.path), s.reason));
    }
    ui::note(&format!(
        "{} file(s) would be sealed, {} SQLite session(s) exported",
        plan.files.len(),
        plan.sqlite.len()
    ));
}

/// `openclaw` on PATH, if any.
fn find_gateway_cli() -> Option<PathBuf> {
    let path: OsString = env::var(env::PATH)?;
    std::env::split_paths(&path)
        .map(|d| d.join("openclaw"))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

/// Exports one session to `<sid>.jsonl.age`, encrypted as it is written (no plaintext reaches
/// disk) to the vault recipient and to a throwaway key that then decrypts the committed file
/// to compare it with what was exported. `None` when the export already exists.
fn export_sealed(
    c: &SqliteCandidate,
    recipient: &age::x25519::Recipient,
) -> anyhow::Result<Option<(PathBuf, u64)>> {
    let dest = seal::sealed_path(&c.export_path);
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(None);
    }
    if let Some(dir) = dest.parent() {
        fsio::create_secret_dir_all(dir)?;
    }
    let check = moltvault_vault::Identity::generate();
    let check_rcpt = check.to_public();
    let mut out = AtomicFile::create(&dest, WriteOptions::secret_new())?;
    let exported = {
        let mut w = seal::encrypt_to_many(&mut out, &[recipient, &check_rcpt])
            .with_context(|| format!("cannot write {}", dest.display()))?;
        let e = archive::export_session(&c.db, &c.session_id, &mut w)?;
        w.finish()
            .with_context(|| format!("cannot write {}", dest.display()))?;
        e
    };
    // The export carries the conversation's age, so idle checks stay meaningful.
    if let Some(t) = c.last_activity {
        let _ = out.as_file().set_modified(t);
    }
    out.commit()?;
    let verified = seal::verify_sealed(&dest, &check);
    match verified {
        Ok((n, sha)) if n == exported.bytes && sha == exported.sha256 => {
            Ok(Some((dest, exported.events)))
        }
        other => {
            let _ = fsio::remove_durably(&dest);
            match other {
                Err(e) => Err(e.into()),
                Ok(_) => Err(anyhow::anyhow!(
                    "the sealed export {} does not decrypt to what was exported; it was removed",
                    dest.display()
                )),
            }
        }
    }
}

/// Removes an exported session through `openclaw sessions delete`; returns the key removed, or
/// why it was not.
fn remove_through_gateway(
    gw: &Gateway,
    c: &SqliteCandidate,
    cli: Option<&Path>,
) -> Result<String, String> {
    let key = c.removable_key()?;
    let cli = cli.ok_or_else(|| {
        "no gateway CLI found (`openclaw` is not on PATH; pass --gateway-cli)".to_string()
    })?;
    let mut cmd = Command::new(cli);
    cmd.args([
        "sessions", "delete", key, "--agent", &c.agent, "--yes", "--json",
    ])
    .env("OPENCLAW_STATE_DIR", &gw.state_dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(cfg) = &gw.config_path {
        cmd.env("OPENCLAW_CONFIG_PATH", cfg);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > GATEWAY_CLI_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`openclaw sessions delete` did not finish in {} s",
                    GATEWAY_CLI_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("cannot wait for {}: {e}", cli.display())),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot read {}: {e}", cli.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let envelope = parse_envelope(&stdout);
    let ok = envelope.as_ref().is_some_and(|v| {
        v["results"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|r| r["key"].as_str() == Some(key) && r["ok"] == true)
        })
    });
    if ok && out.status.success() {
        return Ok(key.to_string());
    }
    let why = envelope
        .as_ref()
        .and_then(|v| {
            v["results"]
                .as_array()?
                .iter()
                .find_map(|r| r["error"].as_str().or(r["message"].as_str()))
                .or(v["error"]["message"].as_str())
                .or(v["error"].as_str())
                .map(str::to_owned)
        })
        .or_else(|| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| format!("it exited with {}", out.status));
    Err(format!(
        "`openclaw sessions delete {key}` failed (it needs the running gateway): {why}"
    ))
}

/// The JSON envelope printed by `openclaw … --json` (the last stdout line that parses, or the
/// whole output).
fn parse_envelope(stdout: &str) -> Option<serde_json::Value> {
    serde_json::from_str(stdout.trim()).ok().or_else(|| {
        let start = stdout.find("\n{").map(|i| i + 1)?;
        serde_json::from_str(stdout[start..].trim()).ok()
    })
}

/// Seals the `.jsonl.deleted.*.zst` archives of a session the gateway just deleted.
fn seal_deleted_archives(
    gw: &Gateway,
    c: &SqliteCandidate,
    recipient: &age::x25519::Recipient,
    failed: &mut Vec<anyhow::Error>,
) -> Vec<PathBuf> {
    let files = match gw.transcript_files() {
        Ok(f) => f,
        Err(e) => {
            failed.push(e.into());
            return Vec::new();
        }
    };
    let opts = SealOptions {
        // Just written by the gateway, and final: a deleted session is never reopened.
        min_idle: Duration::ZERO,
        ..SealOptions::default()
    };
    files
        .into_iter()
        .filter(|f| {
            f.agent == c.agent
                && f.session_id == c.session_id
                && matches!(f.kind, TranscriptKind::DeletedZst | TranscriptKind::Deleted)
        })
        .filter_map(|f| match seal::seal_file(&f.path, recipient, &opts) {
            Ok(s) => Some(s.sealed),
            Err(e) => {
                failed.push(e.into());
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_json_envelope_is_found_after_log_lines() {
        let out = "[plugins] loaded\n{\"ok\":true,\"operation\":\"delete\",\"dryRun\":false,\"results\":[{\"key\":\"k\",\"ok\":true}]}\n";
        let v = parse_envelope(out).unwrap();
        assert_eq!(v["operation"], "delete");
        assert!(parse_envelope("no json here").is_none());
    }
}
