//! `moltvault audit`: checks the gateway install and applies the safe fixes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use moltvault_gateway::audit::{
    self, AuditOptions, AuditReport, Finding, FixAction, FixOptions, FixOutcome, SafeFix, Severity,
};

use crate::commands::Ctx;
use crate::report::Status;
use crate::ui;

/// Audits the gateway install: permissions of the state directory, transcripts and secret files,
/// symlinks leading out of it, plaintext secrets left in transcripts, trajectory sidecars, logs,
/// config backups and models.json (counts by rule, never a value), inline secrets in the config,
/// the redaction plugin, log masking, network exposure without auth, backups (none recent, newest
/// never verified), idle sessions not archived (JSONL files and SQLite rows) and unfinished
/// rotations.
///
/// `--fix` applies only safe, reversible fixes (permissions, redaction of inactive transcripts,
/// and with a vault the sealing of idle JSONL transcripts that are not current or locked, as
/// `moltvault seal --all-idle` does; `moltvault unseal` restores them) and prints what it did; everything else gets a hint. Exits 1 when a finding at or above
/// `--fail-on` remains, 2 on error.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Apply the safe fixes, then audit again and report what is left.
    #[arg(long)]
    pub fix: bool,
    /// Exit 1 when a finding at or above this severity remains (info, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub fail_on: Severity,
    /// Report when the newest backup is older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub backup_max_age: u64,
    /// With a vault, report sessions untouched for more than this many days that are not
    /// archived (JSONL transcripts not sealed, SQLite sessions still in the agent database).
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub idle_days: u64,
    /// Where the gateway writes its file logs (repeatable; files or directories). Default:
    /// /tmp/openclaw and /tmp/clawdbot, plus the config's `logging.file`.
    #[arg(long, value_name = "PATH")]
    pub log_dir: Vec<PathBuf>,
}

const DAY: u64 = 86_400;

pub fn run(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<Status> {
    let gateway = ctx.gateway()?;
    let vault_dir = moltvault_vault::Vault::open(&ctx.vault_dir)
        .map(|v| v.dir().to_path_buf())
        .ok();
    let mut log_paths = if args.log_dir.is_empty() {
        vec![
            PathBuf::from("/tmp/openclaw"),
            PathBuf::from("/tmp/clawdbot"),
        ]
    } else {
        args.log_dir.clone()
    };
    if let Ok(Some(cfg)) = gateway.config()
        && let Some(f) = cfg.get("logging.file").and_then(|v| v.as_str())
    {
        log_paths.push(PathBuf::from(f));
    }
    let opts = AuditOptions {
        log_paths,
        vault_dir,
        backup_dir: Some(crate::commands::backups::default_backup_dir(ctx)),
        backup_marker: Some(moltvault_vault::backup::marker_path(&ctx.vault_dir)),
        backup_max_age: Duration::from_secs(args.backup_max_age * DAY),
        idle_after: Duration::from_secs(args.idle_days * DAY),
        now: SystemTime::now(),
        content_scan: true,
    };
    // The plugin's rules: built-in plus its configured rules file (or the vault's rules.toml).
    let plugin_rules = crate::commands::redact::plugin_rules_file(&gateway);
    let rules = crate::commands::redact::load_rules(ctx, plugin_rules.as_deref())?;
    let mut report = audit::audit(&gateway, &opts, &rules)?;
    let mut fixes = None;
    if args.fix {
        let fix_opts = FixOptions {
            rules: &rules,
            key: crate::commands::secrets::fingerprint_key(ctx)?,
            note: Some(ctx.vault_dir.join("audit-fixes.jsonl")),
            now: SystemTime::now(),
            vault_dir: opts.vault_dir.clone(),
            idle_after: opts.idle_after,
        };
        fixes = Some(audit::fix(&gateway, &report, &fix_opts)?);
        report = audit::audit(&gateway, &opts, &rules)?;
    }

    let failed = report.at_least(args.fail_on).next().is_some();
    let mut out = ui::stdout();
    if args.json {
        let doc = JsonReport {
            report: &report,
            fixes: fixes.as_deref(),
            summary: report.counts(),
            fail_on: args.fail_on,
            failed,
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        if let Some(fixes) = &fixes {
            render_fixes(&mut out, &report.state_dir, fixes)?;
        }
        render_report(&mut out, &report, args.fail_on)?;
    }
    out.flush()?;
    Ok(if failed { Status::Findings } else { Status::Ok })
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a AuditReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixes: Option<&'a [FixOutcome]>,
    summary: BTreeMap<Severity, usize>,
    fail_on: Severity,
    failed: bool,
}

/// How many affected files a human report lists per finding.
const LIST_MAX: usize = 5;

fn render_report(out: &mut impl Write, r: &AuditReport, fail_on: Severity) -> std::io::Result<()> {
    let base = &r.state_dir;
    writeln!(
        out,
        "audit of {}{} ({} files, {} scanned for secrets)",
        base.display(),
        r.version
            .as_deref()
            .map(|v| format!(", gateway {v}"))
            .unwrap_or_default(),
        r.scanned_files,
        human_bytes(r.scanned_bytes),
    )?;
    for f in &r.findings {
        render_finding(out, base, f)?;
    }
    writeln!(out)?;
    let counts = r.counts();
    if counts.is_empty() {
        writeln!(out, "no findings")?;
        return Ok(());
    }
    let by_sev: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
    let fixable = r.findings.iter().filter(|f| f.fix.is_some()).count();
    write!(
        out,
        "{} finding(s): {}",
        r.findings.len(),
        by_sev.join(", ")
    )?;
    if fixable > 0 {
        write!(out, "; {fixable} fixable with `moltvault audit --fix`")?;
    }
    writeln!(out)?;
    let failing = r.at_least(fail_on).count();
    if failing > 0 {
        writeln!(out, "{failing} at or above {fail_on} (--fail-on)")?;
    }
    Ok(())
}

fn render_finding(out: &mut impl Write, base: &Path, f: &Finding) -> std::io::Result<()> {
    let mut path = audit::display_path(&f.path, base);
    if f.files.len() > 1 {
        path.push_str(&format!(" ({} paths)", f.files.len()));
    }
    writeln!(out)?;
    writeln!(out, "{:<8} {:<26} {path}", f.severity, f.check)?;
    let mut detail = f.detail.clone();
    if !f.secrets.is_empty() {
        let rules: Vec<String> = f.secrets.iter().map(|(r, n)| format!("{r} {n}")).collect();
        detail.push_str(&format!(" ({})", rules.join(", ")));
    }
    writeln!(out, "         {detail}")?;
    if f.files.len() > 1 || (f.files.len() == 1 && f.files[0].path != f.path) {
        for a in f.files.iter().take(LIST_MAX) {
            let mut line = format!("           - {}", audit::display_path(&a.path, base));
            if let Some(m) = a.mode {
                line.push_str(&format!(" ({m:04o})"));
            }
            let n: u64 = a.secrets.values().sum();
            if n > 0 {
                line.push_str(&format!(" ({n})"));
            }
            writeln!(out, "{line}")?;
        }
        if f.files.len() > LIST_MAX {
            writeln!(out, "           … and {} more", f.files.len() - LIST_MAX)?;
        }
    }
    match f.fix {
        Some(SafeFix::Chmod) => writeln!(out, "         fix: --fix tightens the permissions")?,
        Some(SafeFix::Redact) if f.path.extension().is_some_and(|e| e == "sqlite") => writeln!(
            out,
            "         fix: --fix redacts the database in one transaction"
        )?,
        Some(SafeFix::Redact) => writeln!(out, "         fix: --fix redacts inactive files")?,
        Some(SafeFix::Seal) => writeln!(
            out,
            "         fix: --fix seals the idle files of sessions not current or locked"
        )?,
        None => {}
    }
    writeln!(out, "         hint: {}", f.hint)
}

fn render_fixes(out: &mut impl Write, base: &Path, fixes: &[FixOutcome]) -> std::io::Result<()> {
    if fixes.is_empty() {
        writeln!(out, "nothing to fix automatically")?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "applied fixes:")?;
    for f in fixes {
        let path = audit::display_path(&f.path, base);
        match &f.action {
            FixAction::Chmod { from, to } if from == to => {
                writeln!(out, "  chmod     {path}: already {to}")?
            }
            FixAction::Chmod { from, to } => writeln!(out, "  chmod     {path}: {from} -> {to}")?,
            FixAction::Redacted { secrets } => {
                let n: u64 = secrets.values().sum();
                writeln!(out, "  redacted  {path}: {n} secret(s)")?
            }
            FixAction::RedactedDb {
                secrets,
                rows,
                old_bytes,
            } => {
                let n: u64 = secrets.values().sum();
                let r: usize = rows.values().sum();
                let tables: Vec<String> = rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
                writeln!(
                    out,
                    "  redacted  {path}: {n} secret(s) in {r} row(s), one transaction ({}); old bytes {old_bytes}",
                    tables.join(", ")
                )?
            }
            FixAction::Sealed { sealed, bytes } => {
                let name = sealed.file_name().unwrap_or_default().to_string_lossy();
                writeln!(
                    out,
                    "  sealed    {path}: {} -> {name} (`moltvault unseal` restores it)",
                    human_bytes(*bytes)
                )?
            }
            FixAction::Skipped { reason } => writeln!(out, "  skipped   {path}: {reason}")?,
        }
    }
    writeln!(out)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
