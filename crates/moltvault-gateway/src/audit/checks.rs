//! Config checks (inline secrets, the plugin, log masking, network exposure) and moltvault's own
//! hygiene (backups, sealed sessions, unfinished rotations).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::fsscan::Tree;
use super::{Affected, AuditOptions, Finding, SafeFix, Severity};
use crate::config::Config;
use crate::discover::{Gateway, StoreKind, parse_version};
use crate::secrets::{ConfiguredSecret, Location};

/// The config as read for the audit: a read or parse failure is a finding, not an error.
#[derive(Debug)]
pub(crate) struct ConfigDoc {
    pub path: PathBuf,
    /// The files the config was read from (the main file and its `$include`s).
    pub sources: Vec<PathBuf>,
    /// The effective config (`$include`s merged).
    pub value: Option<Value>,
    /// Why it could not be read (the gateway crate's error: a position, never content).
    pub problem: Option<String>,
}

impl ConfigDoc {
    pub(crate) fn load(path: &Path) -> ConfigDoc {
        match Config::load(path) {
            Ok(c) => ConfigDoc {
                path: path.to_path_buf(),
                sources: c.sources.iter().map(|s| s.path.clone()).collect(),
                value: Some(c.merged),
                problem: None,
            },
            Err(e) => ConfigDoc {
                path: path.to_path_buf(),
                sources: vec![path.to_path_buf()],
                value: None,
                problem: Some(e.to_string()),
            },
        }
    }
}

/// First version with SecretRefs and exec secrets providers.
const SECRET_REFS_SINCE: (u32, u32, u32) = (2026, 2, 26);
/// First version where `logging.redactSensitive` is retired (redaction always on).
const REDACT_ALWAYS_ON_SINCE: (u32, u32, u32) = (2026, 8, 1);

/// Whether the gateway accepts a SecretRef at this config key (FACTS §3.4): not for
/// `hooks.*`, the `env` block or the legacy `browser.controlToken`.
pub fn ref_capable(id: &str) -> bool {
    !(id.starts_with("hooks.")
        || id.starts_with("env.")
        || id.starts_with("env:")
        || id == "browser.controlToken")
}

/// The configured secrets stored as literal values in the config (or its `$include`s).
pub(crate) fn inline_in_config<'a>(
    doc: &ConfigDoc,
    secrets: &'a [ConfiguredSecret],
) -> Vec<&'a ConfiguredSecret> {
    secrets
        .iter()
        .filter(|s| s.value.is_some() && s.active)
        .filter(|s| {
            s.locations.iter().any(|l| {
                matches!(l, Location::Json { file, .. } if doc.sources.iter().any(|p| p == file))
            })
        })
        .collect()
}

/// Findings from the config: inline secrets, the plugin, log masking and network exposure.
pub(crate) fn config_findings(
    doc: &ConfigDoc,
    version: Option<&str>,
    secrets: &[ConfiguredSecret],
    out: &mut Vec<Finding>,
) {
    let Some(cfg) = &doc.value else {
        out.push(Finding::new(
            "config.unreadable",
            Severity::Medium,
            &doc.path,
            format!(
                "the config could not be checked: {}",
                doc.problem.as_deref().unwrap_or("unknown problem")
            ),
            "Fix the file (`openclaw doctor` reports the error too) and run the audit again.",
        ));
        return;
    };
    let v = version.and_then(parse_version);
    let has_refs = v.is_some_and(|v| v >= SECRET_REFS_SINCE);

    for s in inline_in_config(doc, secrets) {
        let capable = ref_capable(&s.id);
        let hint = if capable && has_refs {
            "Move it into the vault with `moltvault secrets import` (the config gets a SecretRef to moltvault's exec provider)."
        } else if capable {
            "Move it to an environment variable and write `${VAR}` here (`moltvault secrets import` does both), or upgrade the gateway to 2026.2.26+ for SecretRefs."
        } else {
            "The gateway accepts no SecretRef here: move it to an environment variable and write `${VAR}` instead (`moltvault exec` can inject it)."
        };
        out.push(Finding::new(
            "config.inline_secret",
            Severity::Medium,
            &doc.path,
            format!("`{}` holds a plaintext secret in the config", s.id),
            hint,
        ));
    }

    let entry = cfg.pointer("/plugins/entries/moltvault-redact");
    let enabled = entry.is_some_and(|e| e.get("enabled").and_then(Value::as_bool) != Some(false));
    let denied = cfg
        .pointer("/plugins/deny")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("moltvault-redact")));
    if !enabled || denied {
        out.push(Finding::new(
            "plugin.not_installed",
            Severity::Medium,
            &doc.path,
            if entry.is_some() {
                "the moltvault-redact plugin is installed but disabled or denied".to_string()
            } else {
                "the moltvault-redact plugin is not installed (plugins.entries.moltvault-redact)"
                    .to_string()
            },
            "Run `moltvault plugin install` so secrets are redacted before transcripts reach disk.",
        ));
    }

    let redact_off = cfg
        .pointer("/logging/redactSensitive")
        .and_then(Value::as_str)
        == Some("off");
    if redact_off && v.is_none_or(|v| v < REDACT_ALWAYS_ON_SINCE) {
        out.push(Finding::new(
            "config.redact_off",
            Severity::High,
            &doc.path,
            "`logging.redactSensitive` is \"off\": the gateway writes raw secrets to transcripts and logs",
            "Set it back with `openclaw config set logging.redactSensitive tools` and keep the moltvault plugin installed.",
        ));
    }

    let bind = cfg
        .pointer("/gateway/bind")
        .and_then(Value::as_str)
        .unwrap_or("loopback");
    let loopback = matches!(bind, "loopback" | "localhost" | "127.0.0.1" | "::1");
    if !loopback {
        let auth = cfg.pointer("/gateway/auth");
        let mode = auth
            .and_then(|a| a.get("mode"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let has_cred = |k: &str| {
            auth.and_then(|a| a.get(k)).is_some_and(|x| match x {
                Value::String(s) => !s.trim().is_empty(),
                Value::Object(_) => true,
                _ => false,
            })
        };
        let no_auth = mode == "none"
            || (mode != "trusted-proxy" && !has_cred("token") && !has_cred("password"));
        if no_auth {
            out.push(Finding::new(
                "gateway.bind_no_auth",
                Severity::Critical,
                &doc.path,
                format!(
                    "the gateway listens beyond loopback (gateway.bind = \"{bind}\") without token or password auth"
                ),
                "Set `gateway.bind` to \"loopback\", or configure `gateway.auth.mode` \"token\" with a token (`openclaw doctor --generate-gateway-token`); an OPENCLAW_GATEWAY_TOKEN in the service environment also counts.",
            ));
        }
    }
}

/// moltvault's own hygiene: backups, idle unsealed transcripts, unfinished rotations.
pub(crate) fn hygiene_findings(
    gateway: &Gateway,
    opts: &AuditOptions,
    tree: &Tree,
    out: &mut Vec<Finding>,
) {
    if let Some(dir) = &opts.backup_dir {
        backup_findings(
            dir,
            opts.backup_marker.as_deref(),
            opts.now,
            opts.backup_max_age,
            out,
        );
    }
    if let Some(vault) = &opts.vault_dir {
        idle_findings(gateway, opts.now, opts.idle_after, out);
        idle_sqlite_findings(gateway, opts.now, opts.idle_after, out);
        rotation_findings(vault, out);
    }
    for (path, why) in &tree.unreadable {
        out.push(Finding::new(
            "fs.unreadable",
            Severity::Low,
            path,
            format!("could not be read ({why}), so it was not audited"),
            "Run the audit as the user who owns the state directory.",
        ));
    }
}

fn days(d: Duration) -> u64 {
    d.as_secs() / 86_400
}

/// The newest backup in `dir` (by modification time): its path, name, size and mtime.
pub(crate) fn newest_backup(dir: &Path) -> Option<(PathBuf, String, u64, SystemTime)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            if !(name.starts_with("moltvault-") && name.ends_with(".tar.zst.age")) {
                return None;
            }
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            Some((e.path(), name, m.len(), m.modified().ok()?))
        })
        .max_by(|a, b| a.3.cmp(&b.3).then_with(|| a.1.cmp(&b.1)))
}

fn backup_findings(
    dir: &Path,
    marker: Option<&Path>,
    now: SystemTime,
    max_age: Duration,
    out: &mut Vec<Finding>,
) {
    let Some((path, name, size, modified)) = newest_backup(dir) else {
        out.push(Finding::new(
            "backup.none",
            Severity::Medium,
            dir,
            "no moltvault backup found (moltvault-*.tar.zst.age)",
            "Run `moltvault backup` (and schedule it: it needs no secret, so cron is fine).",
        ));
        return;
    };
    let age = now.duration_since(modified).unwrap_or_default();
    if age > max_age {
        out.push(Finding::new(
            "backup.stale",
            Severity::Medium,
            dir,
            format!(
                "the newest backup is {} days old (limit {} days)",
                days(age),
                days(max_age)
            ),
            "Run `moltvault backup`, and schedule it so it stays recent.",
        ));
    }
    let Some(marker) = marker else {
        return;
    };
    let (verified, why) = match moltvault_vault::backup::read_verified(marker) {
        Ok(all) => (
            moltvault_vault::backup::find_verified(&all, &name, size).is_some(),
            "it has never been verified end to end (decrypted, decompressed, every hash checked)"
                .to_string(),
        ),
        Err(e) => (
            false,
            format!("its verification could not be looked up ({e})"),
        ),
    };
    if !verified {
        out.push(Finding::new(
            "backup.unverified",
            Severity::Low,
            path,
            format!("the newest backup `{name}` is not known to restore: {why}"),
            "Run `moltvault backups verify` (it writes no plaintext and records the result); `moltvault backups prune` also verifies before deleting.",
        ));
    }
}

fn idle_findings(gateway: &Gateway, now: SystemTime, idle: Duration, out: &mut Vec<Finding>) {
    // Sessions that cannot be listed are reported by the other checks (unreadable files).
    let Ok(sessions) = gateway.sessions() else {
        return;
    };
    let idle_paths = sessions
        .iter()
        .filter(|s| s.store == StoreKind::Jsonl && !s.sealed && s.idle_for(idle, now))
        .filter_map(|s| s.paths.first());
    for (dir, files) in by_parent_dir(idle_paths) {
        let mut f = Finding::new(
            "vault.idle_unsealed",
            Severity::Low,
            dir,
            format!(
                "{} session(s) untouched for more than {} days are not sealed",
                files.len(),
                days(idle)
            ),
            format!(
                "`moltvault audit --fix` seals the ones not current (`moltvault unseal` restores them); `moltvault seal --all-idle --idle {}d --include-current` also takes current ones.",
                days(idle)
            ),
        );
        f.files = files;
        out.push(f.with_fix(SafeFix::Seal));
    }
}

/// `paths` grouped by their parent directory, as affected files of one finding per directory.
fn by_parent_dir<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> BTreeMap<PathBuf, Vec<Affected>> {
    let mut by_dir: BTreeMap<PathBuf, Vec<Affected>> = BTreeMap::new();
    for path in paths {
        let dir = path.parent().unwrap_or(path).to_path_buf();
        by_dir.entry(dir).or_default().push(Affected {
            path: path.clone(),
            mode: None,
            secrets: BTreeMap::new(),
        });
    }
    by_dir
}

/// SQLite sessions (OpenClaw ≥ 2026.8) idle for `idle`: what `moltvault archive --idle` would
/// export and hand to the gateway's CLI for removal ([`crate::archive::plan`]). A session
/// already exported that the gateway cannot remove (an agent's main session, an older
/// generation of a key) is left out: archiving again would change nothing, and its content is
/// covered by the plaintext-secret checks.
fn idle_sqlite_findings(gw: &Gateway, now: SystemTime, idle: Duration, out: &mut Vec<Finding>) {
    if gw.store != StoreKind::Sqlite {
        return;
    }
    let opts = crate::archive::ArchiveOptions {
        idle,
        now,
        include_current: false,
    };
    // A database that cannot be read is reported by the other checks.
    let Ok(plan) = crate::archive::plan(gw, &opts) else {
        return;
    };
    // Deleted-session archives (`.jsonl.deleted.*.zst`) the gateway left in `sessions/`: plain
    // JSONL that `archive` seals in place.
    for (dir, files) in by_parent_dir(plan.files.iter().map(|f| &f.file.path)) {
        let mut f = Finding::new(
            "vault.idle_unsealed",
            Severity::Low,
            dir,
            format!(
                "{} deleted-session archive(s) untouched for more than {} days are not sealed",
                files.len(),
                days(idle)
            ),
            format!(
                "Seal them with `moltvault archive --idle {}d` (the gateway never reopens them).",
                days(idle)
            ),
        );
        f.files = files;
        out.push(f);
    }
    let mut by_db: BTreeMap<PathBuf, Vec<&crate::archive::SqliteCandidate>> = BTreeMap::new();
    for c in &plan.sqlite {
        let exported =
            fs::symlink_metadata(moltvault_vault::seal::sealed_path(&c.export_path)).is_ok();
        if exported && c.removable_key().is_err() {
            continue;
        }
        by_db.entry(c.db.clone()).or_default().push(c);
    }
    for (db, sessions) in by_db {
        let n = sessions.len();
        let removable = sessions
            .iter()
            .filter(|c| c.removable_key().is_ok())
            .count();
        out.push(Finding::new(
            "vault.idle_unsealed",
            Severity::Low,
            db,
            format!(
                "{n} session(s) untouched for more than {} days are still in plaintext in the agent database ({removable} removable through the gateway)",
                days(idle)
            ),
            format!(
                "Archive them with `moltvault archive --idle {}d` while the gateway runs (`openclaw` on PATH; `--dry-run` lists them): each is exported sealed, then removed with `openclaw sessions delete`; the agent's main session stays.",
                days(idle)
            ),
        ));
    }
}

/// `moltvault rotate` keeps `<vault>/rotation/active` (the run id) while a run is unfinished
/// and removes it when the run ends; the run's journal is `rotation/runs/<id>/journal.jsonl`.
fn rotation_findings(vault: &Path, out: &mut Vec<Finding>) {
    let dir = vault.join("rotation");
    let Ok(run) = fs::read_to_string(dir.join("active")) else {
        return;
    };
    let run = run.trim();
    if run.is_empty() {
        return;
    }
    let journal = dir.join("runs").join(run).join("journal.jsonl");
    let path = if journal.is_file() {
        journal
    } else {
        dir.join("active")
    };
    out.push(Finding::new(
        "rotation.unfinished",
        Severity::High,
        path,
        format!(
            "rotation run `{run}` was started and not finished: some secrets may be half-rotated"
        ),
        "Resume it with `moltvault rotate --resume` (or see where it stands with `moltvault rotate --status`).",
    ));
}
