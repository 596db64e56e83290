//! `moltvault status`: one screen on the gateway, the vault, sessions, backups, the plugin,
//! open audit findings and unfinished rotations.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use moltvault_gateway::audit::{self, AuditOptions, Severity};
use moltvault_gateway::{Gateway, StoreKind, TranscriptKind};
use moltvault_vault::{Error as VaultError, Vault};
use serde_json::{Value, json};

use crate::commands::Ctx;
use crate::commands::key::method_detail;
use crate::report::Status;
use crate::ui;

/// Shows, on one screen: the gateway (line, version, store, state dir, running?), the vault
/// (recipient, unlock methods), sessions (plain, sealed, in SQLite), locked credential files,
/// the last backup (verified when, or unverified), the plugin (installed, loaded), open audit
/// findings by severity and any unfinished rotation.
///
/// The findings come from a quick audit without the content scan (permissions, config,
/// plugin, backups, idle sessions, rotation); run `moltvault audit` for plaintext secrets.
/// Reads only public data: needs no passphrase. Always exits 0.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

const DAY: u64 = 86_400;

pub fn run(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<Status> {
    let vault = match Vault::open(&ctx.vault_dir) {
        Ok(v) => Some(v),
        Err(VaultError::NotInitialized { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let gw = ctx.gateway().ok();
    let doc = json!({
        "vault": vault_json(ctx, vault.as_ref()),
        "gateway": gw.as_ref().map_or(Value::Null, gateway_json),
        "backup": backup_json(ctx),
        "plugin": gw.as_ref().map_or(Value::Null, plugin_json),
        "findings": gw.as_ref().map_or(Value::Null, |g| findings_json(ctx, g, vault.is_some())),
        "rotation": rotation_json(ctx),
    });
    if args.json {
        ui::data(&serde_json::to_string_pretty(&doc)?);
    } else {
        render(ctx, &doc);
    }
    Ok(Status::Ok)
}

fn vault_json(ctx: &Ctx, vault: Option<&Vault>) -> Value {
    match vault {
        Some(v) => json!({
            "dir": v.dir(),
            "initialized": true,
            "recipient": v.recipient().to_string(),
            "created": v.created(),
            "unlock_methods": v.methods().iter().map(|m| json!({
                "id": m.id, "kind": m.kind_label(), "detail": method_detail(&m.kind),
            })).collect::<Vec<_>>(),
        }),
        None => json!({ "dir": ctx.vault_dir, "initialized": false }),
    }
}

fn gateway_json(gw: &Gateway) -> Value {
    let files = gw.transcript_files().unwrap_or_default();
    let sealed = files
        .iter()
        .filter(|f| f.kind == TranscriptKind::Sealed)
        .count();
    let sessions = gw.sessions().unwrap_or_default();
    let current: Vec<_> = sessions
        .iter()
        .filter(|s| s.current)
        .flat_map(|s| s.paths.iter().cloned())
        .collect();
    let plain = files.len() - sealed;
    let plain_current = files
        .iter()
        .filter(|f| f.kind != TranscriptKind::Sealed && current.contains(&f.path))
        .count();
    let sqlite: Vec<_> = sessions
        .iter()
        .filter(|s| s.store == StoreKind::Sqlite)
        .collect();
    let locked = moltvault_vault::lock::read_manifest(&gw.state_dir)
        .ok()
        .flatten()
        .map(|m| m.files)
        .unwrap_or_default();
    json!({
        "state_dir": gw.state_dir,
        "config": gw.config_path,
        "line": gw.line.name(),
        "version": gw.version,
        "store": match gw.store { StoreKind::Jsonl => "jsonl", StoreKind::Sqlite => "sqlite" },
        "running": gw.is_running(),
        "transcripts": {
            "plain": plain,
            "plain_current": plain_current,
            "sealed": sealed,
        },
        "sqlite_sessions": {
            "total": sqlite.len(),
            "current": sqlite.iter().filter(|s| s.current).count(),
            "databases": gw.agent_dbs().len(),
        },
        "locked_credentials": locked.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
    })
}

/// The newest backup in the default backup directory, and whether `moltvault backups verify`
/// (or `prune`) recorded it as verified in `<vault dir>/verified-backups.json`.
fn backup_json(ctx: &Ctx) -> Value {
    let dir = crate::commands::backups::default_backup_dir(ctx);
    let target = moltvault_vault::backup::LocalDir::new(dir.clone());
    let last = moltvault_vault::backup::list_backups(&target)
        .ok()
        .and_then(|mut v| v.pop());
    let marker = moltvault_vault::backup::marker_path(&ctx.vault_dir);
    let records = moltvault_vault::backup::read_verified(&marker).unwrap_or_default();
    let verified_at = last.as_ref().and_then(|b| {
        moltvault_vault::backup::find_verified(&records, &b.name, b.size)
            .map(|r| r.verified_at.clone())
    });
    json!({
        "dir": dir,
        "last": last.as_ref().map(|b| json!({
            "name": b.name,
            "time": b.time.format(&time::format_description::well_known::Rfc3339).ok(),
            "size": b.size,
        })),
        "verified": last.as_ref().map(|_| verified_at.is_some()),
        "verified_at": verified_at,
    })
}

fn plugin_json(gw: &Gateway) -> Value {
    let cfg = gw.config().ok().flatten();
    let get = |k: &str| cfg.as_ref().and_then(|c| c.get(k)).cloned();
    let entry = get("plugins.entries.moltvault-redact");
    let enabled = entry
        .as_ref()
        .is_some_and(|e| e.get("enabled") != Some(&Value::Bool(false)))
        && get("plugins.enabled") != Some(Value::Bool(false));
    let record = std::fs::read_to_string(crate::commands::plugin::load_record_path(gw))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let pid = record
        .as_ref()
        .and_then(|r| r.get("pid"))
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok());
    let loaded = match (&record, pid) {
        (Some(_), Some(p)) if moltvault_gateway::pid_alive(p) => "running",
        (Some(_), _) => "exited",
        (None, _) => "never",
    };
    json!({
        "installed": entry.is_some(),
        "enabled": enabled,
        "loaded": loaded,
        "loaded_by_pid": pid,
        "loaded_at": record.as_ref().and_then(|r| r.get("at")).cloned(),
    })
}

fn findings_json(ctx: &Ctx, gw: &Gateway, has_vault: bool) -> Value {
    let opts = AuditOptions {
        log_paths: Vec::new(),
        vault_dir: has_vault.then(|| ctx.vault_dir.clone()),
        backup_dir: Some(crate::commands::backups::default_backup_dir(ctx)),
        backup_marker: Some(moltvault_vault::backup::marker_path(&ctx.vault_dir)),
        backup_max_age: Duration::from_secs(7 * DAY),
        idle_after: Duration::from_secs(7 * DAY),
        now: SystemTime::now(),
        content_scan: false,
    };
    let rules = moltvault_redact::RuleSet::builtin();
    match audit::audit(gw, &opts, &rules) {
        Ok(r) => {
            let counts = r.counts();
            let by: BTreeMap<&str, usize> = Severity::ALL
                .iter()
                .map(|s| (s.as_str(), counts.get(s).copied().unwrap_or(0)))
                .collect();
            json!({
                "content_scan": false,
                "total": r.findings.len(),
                "by_severity": by,
                "checks": r.findings.iter().map(|f| f.check).collect::<std::collections::BTreeSet<_>>(),
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// `moltvault rotate` keeps `<vault>/rotation/active` while a run is unfinished.
fn rotation_json(ctx: &Ctx) -> Value {
    let active = std::fs::read_to_string(ctx.vault_dir.join("rotation").join("active"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    json!({ "unfinished": active.is_some(), "run": active })
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn render(ctx: &Ctx, doc: &Value) {
    let v = &doc["vault"];
    if v["initialized"] == true {
        ui::data(&format!("vault       {}", s(v, "dir")));
        ui::data(&format!("recipient   {}", s(v, "recipient")));
        for m in v["unlock_methods"].as_array().into_iter().flatten() {
            ui::data(&format!(
                "unlock      {} ({}, {})",
                s(m, "id"),
                s(m, "kind"),
                s(m, "detail")
            ));
        }
    } else {
        ui::data(&format!(
            "vault       none in {} (run `moltvault init`)",
            ctx.vault_dir.display()
        ));
    }
    let g = &doc["gateway"];
    if g.is_null() {
        ui::data("gateway     not found (pass --state-dir)");
    } else {
        ui::data(&format!(
            "gateway     {}{} at {} ({} store, {})",
            s(g, "line"),
            g["version"]
                .as_str()
                .map(|v| format!(" {v}"))
                .unwrap_or_default(),
            s(g, "state_dir"),
            if g["store"] == "sqlite" {
                "SQLite"
            } else {
                "JSONL"
            },
            if g["running"] == true {
                "running"
            } else {
                "not running"
            }
        ));
        let t = &g["transcripts"];
        let mut line = format!(
            "sessions    {} plain transcript file(s) ({} current), {} sealed",
            t["plain"], t["plain_current"], t["sealed"]
        );
        let q = &g["sqlite_sessions"];
        if g["store"] == "sqlite" {
            line.push_str(&format!(
                "; {} in SQLite ({} current, {} database(s))",
                q["total"], q["current"], q["databases"]
            ));
        }
        ui::data(&line);
        let locked = g["locked_credentials"].as_array().map_or(0, Vec::len);
        ui::data(&format!(
            "credentials {}",
            if locked == 0 {
                "plain (not locked)".to_string()
            } else {
                format!("{locked} file(s) locked")
            }
        ));
    }
    let b = &doc["backup"];
    match b["last"].as_object() {
        Some(last) => ui::data(&format!(
            "backup      last {} ({}), {}",
            last.get("time").and_then(Value::as_str).unwrap_or("?"),
            last.get("name").and_then(Value::as_str).unwrap_or("?"),
            match b["verified_at"].as_str() {
                Some(at) => format!("verified {at}"),
                None => "unverified (run `moltvault backups verify`)".to_string(),
            }
        )),
        None => ui::data(&format!(
            "backup      none in {} (run `moltvault backup`)",
            s(b, "dir")
        )),
    }
    let p = &doc["plugin"];
    if !p.is_null() {
        let installed = match (p["installed"] == true, p["enabled"] == true) {
            (false, _) => "not installed (run `moltvault plugin install`)".to_string(),
            (true, false) => "installed but disabled".to_string(),
            (true, true) => "installed".to_string(),
        };
        let loaded = match s(p, "loaded") {
            "running" => format!("loaded by the running gateway (pid {})", p["loaded_by_pid"]),
            "exited" => "last loaded by a gateway that has exited".to_string(),
            _ => "never loaded".to_string(),
        };
        ui::data(&format!("plugin      {installed}, {loaded}"));
    }
    let f = &doc["findings"];
    if let Some(by) = f["by_severity"].as_object() {
        let parts: Vec<String> = Severity::ALL
            .iter()
            .rev()
            .filter_map(|sev| {
                let n = by.get(sev.as_str()).and_then(Value::as_u64).unwrap_or(0);
                (n > 0).then(|| format!("{n} {sev}"))
            })
            .collect();
        ui::data(&format!(
            "findings    {} (quick audit, no content scan: `moltvault audit` for secrets in files)",
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        ));
    } else if let Some(e) = f["error"].as_str() {
        ui::data(&format!("findings    audit failed: {e}"));
    }
    let r = &doc["rotation"];
    ui::data(&match r["run"].as_str() {
        Some(run) => {
            format!("rotation    run `{run}` unfinished: `moltvault rotate --resume`")
        }
        None => "rotation    none unfinished".to_string(),
    });
}
