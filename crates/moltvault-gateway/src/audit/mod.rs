//! Audits a gateway install and applies the fixes that are safe to apply unattended.
//!
//! [`audit`] only reads: it walks the state directory without following symlinks, checks
//! permissions, counts plaintext secrets (by rule, never a value) in the files where the gateway
//! leaves them, reads the config for risky settings and looks at moltvault's own hygiene
//! (backups, sealed sessions, unfinished rotations). Each [`Finding`] has a stable check id, a
//! [`Severity`], the path concerned, and either a [`SafeFix`] or a hint for a human.
//!
//! [`fix`] applies only the safe, reversible fixes: permissions are tightened with `fchmod` on a
//! descriptor opened without following any symlink, plaintext secrets in inactive transcripts
//! are redacted through the redaction engine and the atomic write funnel, and (with a vault)
//! idle JSONL transcripts are sealed like `moltvault seal --all-idle` seals them.
//!
//! ```no_run
//! use moltvault_gateway::audit::{self, AuditOptions, Severity};
//! use moltvault_gateway::Gateway;
//! let gateway = Gateway::open("/home/me/.openclaw", "/home/me")?;
//! let rules = moltvault_redact::RuleSet::builtin();
//! let report = audit::audit(&gateway, &AuditOptions::default(), &rules)?;
//! for f in &report.findings {
//!     assert!(f.severity >= Severity::Info);
//! }
//! # Ok::<(), moltvault_gateway::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

mod checks;
mod fix;
mod fsscan;
mod plaintext;

pub use checks::ref_capable;
pub use fix::{
    FixAction, FixOptions, FixOutcome, IdleTranscripts, fix, idle_seal_candidates, idle_transcripts,
};

use crate::Result;
use crate::discover::Gateway;

/// How bad a finding is, from `info` (worth knowing) to `critical` (act now).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do.
    Info,
    /// Defence in depth.
    Low,
    /// A weakness that another mistake would turn into a leak.
    Medium,
    /// Secrets are exposed or about to be.
    High,
    /// Anyone on the network or the host can get in or read secrets now.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name used in output and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown severity `{s}` (info, low, medium, high, critical)"))
    }
}

/// A fix [`fix`] may apply without asking: reversible and unable to lose data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SafeFix {
    /// Removes the group and other permission bits (files become 0600, directories 0700).
    Chmod,
    /// Redacts the plaintext secrets in inactive transcripts with the redaction engine.
    Redact,
    /// Seals idle transcripts to the vault recipient (never a current or locked one), as
    /// `moltvault seal --all-idle` does; `moltvault unseal` reverses it.
    Seal,
}

/// One file or directory a finding concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Affected {
    /// The path (absolute).
    pub path: PathBuf,
    /// Its permission bits, for permission findings.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_mode")]
    pub mode: Option<u32>,
    /// Plaintext secrets found in it, by rule id, for secret findings.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, u64>,
}

fn ser_mode<S: serde::Serializer>(
    mode: &Option<u32>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match mode {
        Some(m) => s.serialize_str(&format!("{m:04o}")),
        None => s.serialize_none(),
    }
}

/// One problem found by [`audit`]. It names paths and counts, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Stable check id (`fs.transcript.perms`, `secrets.transcript`, …; see `docs/audit.md`).
    pub check: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The file or directory concerned (a directory when the finding groups several files).
    pub path: PathBuf,
    /// What is wrong, in one sentence.
    pub detail: String,
    /// What to do about it, in one sentence.
    pub hint: String,
    /// The fix [`fix`] applies, if one is safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<SafeFix>,
    /// The files concerned, when the finding groups several (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Affected>,
    /// Plaintext secrets by rule id, summed over `files` (secret findings only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, u64>,
}

impl Finding {
    fn new(
        check: &'static str,
        severity: Severity,
        path: impl Into<PathBuf>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            severity,
            path: path.into(),
            detail: detail.into(),
            hint: hint.into(),
            fix: None,
            files: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    fn with_fix(mut self, fix: SafeFix) -> Self {
        self.fix = Some(fix);
        self
    }
}

/// What [`audit`] looks at besides the gateway's state directory and config.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Files or directories holding the gateway's file logs outside the state dir (the
    /// default `/tmp/openclaw`, `logging.file`); only files owned by the current user are read.
    pub log_paths: Vec<PathBuf>,
    /// moltvault's own directory, when a vault has been initialised there (enables the
    /// sealed-sessions and rotation checks).
    pub vault_dir: Option<PathBuf>,
    /// Where `moltvault backup` writes by default; `None` skips the backup check.
    pub backup_dir: Option<PathBuf>,
    /// The verified-backup marker (`<vault dir>/verified-backups.json`, written by
    /// `moltvault backups verify` and `prune`); `None` skips the `backup.unverified` check.
    pub backup_marker: Option<PathBuf>,
    /// A backup older than this is reported.
    pub backup_max_age: Duration,
    /// Sessions untouched for this long should be archived (with a vault): JSONL transcripts
    /// sealed, SQLite sessions exported and removed by `moltvault archive`.
    pub idle_after: Duration,
    /// The time the audit considers "now".
    pub now: SystemTime,
    /// Whether file and database contents are scanned for plaintext secrets (the slow part);
    /// `false` gives the quick audit `moltvault status` shows.
    pub content_scan: bool,
}

impl Default for AuditOptions {
    /// No extra logs, no vault, no backup dir or marker, 7-day backup age and idle limit, now,
    /// with the content scan.
    fn default() -> Self {
        AuditOptions {
            log_paths: Vec::new(),
            vault_dir: None,
            backup_dir: None,
            backup_marker: None,
            backup_max_age: Duration::from_secs(7 * 86_400),
            idle_after: Duration::from_secs(7 * 86_400),
            now: SystemTime::now(),
            content_scan: true,
        }
    }
}

/// What [`audit`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditReport {
    /// The state directory audited.
    pub state_dir: PathBuf,
    /// The config file read, if any.
    pub config: Option<PathBuf>,
    /// The gateway version the checks assumed, if known.
    pub version: Option<String>,
    /// Files whose content was scanned for plaintext secrets.
    pub scanned_files: u64,
    /// Bytes scanned (decompressed size for archives).
    pub scanned_bytes: u64,
    /// The findings, most severe first.
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// The findings at or above `severity`.
    pub fn at_least(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= severity)
    }

    /// How many findings there are of each severity.
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut m = BTreeMap::new();
        for f in &self.findings {
            *m.entry(f.severity).or_insert(0) += 1;
        }
        m
    }
}

/// Audits `gateway`, scanning file contents with `rules` (plus the gateway's own configured
/// secrets, matched literally).
///
/// # Errors
/// Fails only when the state directory itself cannot be read; an unreadable file inside it
/// or a config that does not parse becomes a finding instead.
pub fn audit(
    gateway: &Gateway,
    opts: &AuditOptions,
    rules: &moltvault_redact::RuleSet,
) -> Result<AuditReport> {
    let mut tree = fsscan::walk(&gateway.state_dir)?;
    let state_dir = tree.root.clone();
    let config_path = gateway.config_path.clone();
    if let Some(p) = &config_path {
        fsscan::mark_config(&mut tree, p, &gateway.config_backups());
    }
    let config = config_path.as_deref().map(checks::ConfigDoc::load);
    let version = gateway.version.clone();
    let mut findings = Vec::new();
    let secrets = match gateway.configured_secrets() {
        Ok(s) => s,
        Err(e) => {
            // A config that does not parse is reported by the config check below.
            if config.as_ref().is_none_or(|c| c.problem.is_none()) {
                findings.push(Finding::new(
                    "secrets.inventory",
                    Severity::Low,
                    &state_dir,
                    format!("the gateway's credential files could not all be read: {e}"),
                    "Fix or remove the file named; until then its secrets are not matched literally.",
                ));
            }
            Vec::new()
        }
    };

    fsscan::permission_findings(&tree, &mut findings);
    fsscan::symlink_findings(&tree, &mut findings);
    let (scanned_files, scanned_bytes) = if opts.content_scan {
        // Agent databases are read through SQLite (never a symlinked one).
        let dbs: Vec<PathBuf> = gateway
            .agent_dbs()
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        plaintext::secret_findings(&tree, &dbs, &secrets, &opts.log_paths, rules, &mut findings)
    } else {
        (0, 0)
    };
    if let Some(doc) = &config {
        checks::config_findings(doc, version.as_deref(), &secrets, &mut findings);
    }
    checks::hygiene_findings(gateway, opts, &tree, &mut findings);

    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.check.cmp(b.check))
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(AuditReport {
        state_dir,
        config: config_path,
        version,
        scanned_files,
        scanned_bytes,
        findings,
    })
}

/// Shows `path` relative to `base` when it is inside it.
pub fn display_path(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests;
