//! `moltvault status`: what is plain, sealed and locked, and how the vault unlocks.

use moltvault_gateway::TranscriptKind;
use moltvault_vault::{Error as VaultError, Vault};

use crate::commands::Ctx;
use crate::commands::key::method_detail;
use crate::report::Status;
use crate::ui;

/// Shows the vault (recipient, unlock methods), how many transcripts are plain or sealed, and
/// which credential files are locked. Reads only public data: needs no passphrase.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<Status> {
    let vault = match Vault::open(&ctx.vault_dir) {
        Ok(v) => Some(v),
        Err(VaultError::NotInitialized { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let vault_json = match &vault {
        Some(v) => serde_json::json!({
            "dir": v.dir(),
            "recipient": v.recipient().to_string(),
            "created": v.created(),
            "unlock_methods": v.methods().iter().map(|m| serde_json::json!({
                "id": m.id, "kind": m.kind_label(), "detail": method_detail(&m.kind),
            })).collect::<Vec<_>>(),
        }),
        None => serde_json::json!({ "dir": ctx.vault_dir, "initialized": false }),
    };
    let gw = ctx.gateway().ok();
    let gw_json = match &gw {
        None => serde_json::Value::Null,
        Some(gw) => {
            let files = gw.transcript_files().unwrap_or_default();
            let sealed = files
                .iter()
                .filter(|f| f.kind == TranscriptKind::Sealed)
                .count();
            let current: Vec<_> = gw
                .sessions()
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.current)
                .flat_map(|s| s.paths)
                .collect();
            let plain = files.len() - sealed;
            let plain_current = files
                .iter()
                .filter(|f| f.kind != TranscriptKind::Sealed && current.contains(&f.path))
                .count();
            let locked = moltvault_vault::lock::read_manifest(&gw.state_dir)
                .ok()
                .flatten()
                .map(|m| m.files)
                .unwrap_or_default();
            serde_json::json!({
                "state_dir": gw.state_dir,
                "line": gw.line.name(),
                "running": gw.is_running(),
                "transcripts": {
                    "plain": plain,
                    "plain_current": plain_current,
                    "sealed": sealed,
                },
                "locked_credentials": locked.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
            })
        }
    };
    if args.json {
        let out = serde_json::json!({ "vault": vault_json, "gateway": gw_json });
        ui::data(&serde_json::to_string_pretty(&out)?);
        return Ok(Status::Ok);
    }
    match &vault {
        Some(v) => {
            ui::data(&format!("vault       {}", v.dir().display()));
            ui::data(&format!("recipient   {}", v.recipient()));
            for m in v.methods() {
                ui::data(&format!(
                    "unlock      {} ({}, {})",
                    m.id,
                    m.kind_label(),
                    method_detail(&m.kind)
                ));
            }
        }
        None => ui::data(&format!(
            "vault       none in {} (run `moltvault init`)",
            ctx.vault_dir.display()
        )),
    }
    if gw_json.is_null() {
        ui::data("gateway     not found (pass --state-dir)");
        return Ok(Status::Ok);
    }
    let t = &gw_json["transcripts"];
    ui::data(&format!(
        "gateway     {} {}{}",
        gw_json["line"].as_str().unwrap_or(""),
        gw_json["state_dir"].as_str().unwrap_or(""),
        if gw_json["running"] == true {
            " (running)"
        } else {
            ""
        }
    ));
    ui::data(&format!(
        "transcripts {} plain ({} current), {} sealed",
        t["plain"], t["plain_current"], t["sealed"]
    ));
    let locked = gw_json["locked_credentials"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    ui::data(&format!(
        "credentials {}",
        if locked == 0 {
            "plain (not locked)".to_string()
        } else {
            format!("{locked} file(s) locked")
        }
    ));
    Ok(Status::Ok)
}
