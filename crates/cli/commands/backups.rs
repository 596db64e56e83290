//! `moltvault backups list|verify|prune`, and the helpers `backup` and `restore` share:
//! where backups live, unlocking for reading them, progress bars, the gateway's state dir.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use moltvault_vault::backup::{self, BackupTarget, KeepPolicy, LocalDir, Progress};
use secrecy::ExposeSecret as _;

use crate::commands::Ctx;
use crate::commands::key::{self, UnlockArgs};
use crate::report::{Status, user_error};
use crate::{env, ui};

/// Lists, verifies and prunes backups.
///
/// `verify` decrypts, decompresses and checks every hash of a backup without writing any
/// plaintext. `prune` applies a retention policy; it deletes nothing until a backup newer than
/// every one it deletes has been verified end to end. Both record each backup that verified
/// (name, size, SHA-256 of the file, time) in `<vault dir>/verified-backups.json`, which
/// `audit` and `status` read.
#[derive(Debug, clap::Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    command: BackupsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BackupsCommand {
    List(ListArgs),
    Verify(VerifyArgs),
    Prune(PruneArgs),
}

/// Where the backups are: a directory or `s3://bucket/prefix` (default `<vault dir>/backups`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// The backup directory or `s3://bucket/prefix`.
    #[arg(long = "from", visible_alias = "target", value_name = "DEST")]
    pub from: Option<String>,
}

/// Lists the backups, oldest first.
#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Print a JSON array instead of lines.
    #[arg(long)]
    json: bool,
}

/// Decrypts, decompresses and checks every hash of backups, writing no plaintext; records each
/// one that verified in `<vault dir>/verified-backups.json`.
#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Backup names or files (default: the newest backup).
    backups: Vec<String>,
    /// Verify every backup on the target.
    #[arg(long, conflicts_with = "backups")]
    all: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    unlock: UnlockArgs,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
}

/// Deletes backups a retention policy does not keep, after verifying a newer one.
#[derive(Debug, clap::Args)]
struct PruneArgs {
    /// Keep the N newest backups.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: usize,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: usize,
    /// Keep the newest backup of each of the last N weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: usize,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: usize,
    /// Say what would be deleted; verify and delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    unlock: UnlockArgs,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: BackupsArgs) -> anyhow::Result<Status> {
    match args.command {
        BackupsCommand::List(a) => list(ctx, a),
        BackupsCommand::Verify(a) => verify(ctx, a),
        BackupsCommand::Prune(a) => prune(ctx, a),
    }
}

fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<Status> {
    let target = open_target(ctx, a.target.from.as_deref())?;
    let all = backup::list_backups(target.as_ref())?;
    if a.json {
        ui::data(&serde_json::to_string_pretty(&all)?);
    } else {
        if all.is_empty() {
            ui::note(&format!("no backups in {}", target.describe()));
        }
        for b in &all {
            ui::data(&format!(
                "{}  {:>12}  {}",
                b.name,
                human_bytes(b.size),
                b.host
            ));
        }
    }
    Ok(Status::Ok)
}

fn verify(ctx: &Ctx, a: VerifyArgs) -> anyhow::Result<Status> {
    let mut jobs: Vec<(Box<dyn BackupTarget>, String)> = Vec::new();
    if a.backups.is_empty() {
        let target = open_target(ctx, a.target.from.as_deref())?;
        let all = backup::list_backups(target.as_ref())?;
        let names: Vec<String> = if a.all {
            all.iter().map(|b| b.name.clone()).collect()
        } else {
            all.last().map(|b| b.name.clone()).into_iter().collect()
        };
        if names.is_empty() {
            return Err(user_error(
                format!("no backups in {}", target.describe()),
                "Make one with `moltvault backup`, or point --from at the backup directory.",
            ));
        }
        let shared: std::rc::Rc<dyn BackupTarget> = std::rc::Rc::from(target);
        for n in names {
            jobs.push((Box::new(SharedTarget(shared.clone())), n));
        }
    } else {
        for b in &a.backups {
            jobs.push(locate(ctx, b, a.target.from.as_deref())?);
        }
    }
    let identity = reading_identity(ctx, &a.unlock)?;
    let mut reports = Vec::new();
    for (target, name) in &jobs {
        let bar = Bar::new("verifying", true);
        // Read through a hashing wrapper, so the verified file's digest can be recorded.
        let hashing = backup::HashingTarget::new(target.as_ref());
        let r = backup::verify(&hashing, name, identity.as_age(), &bar);
        bar.0.finish_and_clear();
        let r = r?;
        if !a.json {
            ui::note(&format!(
                "ok  {}  {} files, {} dirs, {} symlinks, {} checked",
                r.name,
                r.files,
                r.dirs,
                r.symlinks,
                human_bytes(r.content_bytes)
            ));
        }
        record_verified(ctx, &hashing, name, Some(r.files));
        reports.push(r);
    }
    if a.json {
        ui::data(&serde_json::to_string_pretty(&reports)?);
    }
    Ok(Status::Ok)
}

fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<Status> {
    let policy = KeepPolicy {
        last: a.keep_last,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
    };
    if policy.is_empty() {
        return Err(user_error(
            "no --keep-* option was given",
            "Say what to keep, e.g. `moltvault backups prune --keep-last 3 --keep-daily 7`; prune never deletes every backup.",
        ));
    }
    let target = open_target(ctx, a.target.from.as_deref())?;
    let identity = if a.dry_run {
        None
    } else {
        Some(reading_identity(ctx, &a.unlock)?)
    };
    let bar = Bar::new("verifying before pruning", true);
    let hashing = backup::HashingTarget::new(target.as_ref());
    let r = backup::prune(
        &hashing,
        identity.as_ref().map(|i| i.as_age() as &dyn age::Identity),
        policy,
        a.dry_run,
        &bar,
    );
    bar.0.finish_and_clear();
    let r = r?;
    if let Some(v) = &r.verified {
        record_verified(ctx, &hashing, v, None);
    }
    if a.json {
        ui::data(&serde_json::to_string_pretty(&r)?);
        return Ok(Status::Ok);
    }
    if let Some(v) = &r.verified {
        ui::note(&format!("verified {v}"));
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    for b in &r.deleted {
        ui::data(&format!("{verb} {}", b.name));
    }
    for b in &r.kept {
        ui::data(&format!("keep {}", b.name));
    }
    ui::note(&format!(
        "{} kept, {} {verb}",
        r.kept.len(),
        r.deleted.len()
    ));
    Ok(Status::Ok)
}

/// Records a backup that was just verified in the vault's verified-backup marker
/// (`<vault dir>/verified-backups.json`, read by `audit` and `status`). Without a vault dir
/// (verifying with `--identity` on a new machine) nothing is recorded; a marker that cannot be
/// written is a warning, not a failed verification.
fn record_verified(
    ctx: &Ctx,
    hashing: &backup::HashingTarget<'_>,
    name: &str,
    files: Option<usize>,
) {
    if !ctx.vault_dir.is_dir() {
        return;
    }
    let marker = backup::marker_path(&ctx.vault_dir);
    match backup::record_from(hashing, name, files, &marker) {
        Ok(Some(_)) => {}
        Ok(None) => ui::warn(&format!(
            "{name} verified, but it was not read to its end: not recorded as verified"
        )),
        Err(e) => ui::warn(&format!(
            "{name} verified, but {} could not be updated: {e}",
            marker.display()
        )),
    }
}

/// A target shared by several verify jobs.
struct SharedTarget(std::rc::Rc<dyn BackupTarget>);

impl BackupTarget for SharedTarget {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn list_names(&self) -> Result<Vec<(String, u64)>, backup::BackupError> {
        self.0.list_names()
    }
    fn open(&self, name: &str) -> Result<Box<dyn std::io::Read + '_>, backup::BackupError> {
        self.0.open(name)
    }
    fn create(
        &self,
        name: &str,
    ) -> Result<Box<dyn backup::BackupUpload + '_>, backup::BackupError> {
        self.0.create(name)
    }
    fn delete(&self, name: &str) -> Result<(), backup::BackupError> {
        self.0.delete(name)
    }
}

/// The default backup directory.
pub fn default_backup_dir(ctx: &Ctx) -> PathBuf {
    ctx.vault_dir.join("backups")
}

/// Opens a target from `--to`/`--from` (a directory or `s3://bucket/prefix`).
pub fn open_target(ctx: &Ctx, spec: Option<&str>) -> anyhow::Result<Box<dyn BackupTarget>> {
    match spec {
        None => Ok(Box::new(LocalDir::new(default_backup_dir(ctx)))),
        Some(s) if s.starts_with("s3://") => open_s3(s),
        Some(s) if s.contains("://") => Err(user_error(
            format!("{s}: unsupported backup location"),
            "Use a directory or s3://bucket/prefix.",
        )),
        Some(s) => Ok(Box::new(LocalDir::new(s))),
    }
}

#[cfg(feature = "s3")]
fn open_s3(url: &str) -> anyhow::Result<Box<dyn BackupTarget>> {
    let cfg = backup::S3Config {
        endpoint: env::var(env::AWS_ENDPOINT_URL).and_then(|v| v.into_string().ok()),
        region: env::var(env::AWS_REGION)
            .or_else(|| env::var(env::AWS_DEFAULT_REGION))
            .and_then(|v| v.into_string().ok()),
        access_key_id: env::var(env::AWS_ACCESS_KEY_ID).and_then(|v| v.into_string().ok()),
        secret_access_key: env::var(env::AWS_SECRET_ACCESS_KEY)
            .and_then(|v| v.into_string().ok())
            .map(secrecy::SecretString::from),
        session_token: env::var(env::AWS_SESSION_TOKEN)
            .and_then(|v| v.into_string().ok())
            .map(secrecy::SecretString::from),
    };
    Ok(Box::new(backup::S3Target::open(url, cfg)?))
}

#[cfg(not(feature = "s3"))]
fn open_s3(url: &str) -> anyhow::Result<Box<dyn BackupTarget>> {
    Err(user_error(
        format!("{url}: this moltvault was built without S3 support"),
        "Rebuild with the default `s3` cargo feature, or back up to a directory.",
    ))
}

/// Resolves a backup argument: a file path, an `s3://bucket/prefix/NAME` URL, or a bare name
/// on `--from` (default the backup directory).
pub fn locate(
    ctx: &Ctx,
    spec: &str,
    from: Option<&str>,
) -> anyhow::Result<(Box<dyn BackupTarget>, String)> {
    if let Some(rest) = spec.strip_prefix("s3://") {
        let (dir, name) = rest.rsplit_once('/').ok_or_else(|| {
            user_error(
                format!("{spec}: no backup name after the bucket"),
                "Give s3://bucket/prefix/moltvault-<host>-<time>.tar.zst.age.",
            )
        })?;
        return Ok((
            open_target(ctx, Some(&format!("s3://{dir}")))?,
            name.to_string(),
        ));
    }
    let p = Path::new(spec);
    if spec.contains('/') || (from.is_none() && p.is_file()) {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| user_error(format!("{spec}: not a file"), "Give the backup file."))?
            .to_string();
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        return Ok((Box::new(LocalDir::new(dir)), name));
    }
    Ok((open_target(ctx, from)?, spec.to_string()))
}

/// The identity for reading backups: `--identity FILE` works even without a vault (disaster
/// recovery on a new machine); otherwise the vault is unlocked as usual.
pub fn reading_identity(ctx: &Ctx, unlock: &UnlockArgs) -> anyhow::Result<ReadKey> {
    let has_vault = ctx
        .vault_dir
        .join(moltvault_vault::keys::CONFIG_FILE)
        .exists();
    if let (Some(file), false) = (&unlock.identity, has_vault) {
        return Ok(ReadKey::File(identity_file(file)?));
    }
    let vault = moltvault_vault::Vault::open(&ctx.vault_dir)?;
    Ok(ReadKey::Vault(key::unlock(&vault, unlock)?))
}

/// The key backups are read with: the vault's, or a bare identity file's.
pub enum ReadKey {
    /// The unlocked vault identity.
    Vault(moltvault_vault::Identity),
    /// An identity file given with `--identity` where there is no vault.
    File(age::x25519::Identity),
}

impl ReadKey {
    /// The age identity.
    pub fn as_age(&self) -> &age::x25519::Identity {
        match self {
            ReadKey::Vault(i) => i.as_age(),
            ReadKey::File(i) => i,
        }
    }
}

/// Reads an age X25519 identity file (`AGE-SECRET-KEY-1…`, `#` comments allowed).
fn identity_file(path: &Path) -> anyhow::Result<age::x25519::Identity> {
    use std::io::Read as _;
    let mut f = moltvault_vault::seal::open_regular(path)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    (&mut f)
        .take(1 << 20)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let secret = secrecy::SecretString::from(
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .unwrap_or_default()
            .to_string(),
    );
    let id: age::x25519::Identity = secret.expose_secret().parse().map_err(|_| {
        user_error(
            format!("{} holds no age X25519 identity", path.display()),
            "Pass the recovery key file that `moltvault init` saved (a line starting with AGE-SECRET-KEY-1).",
        )
    })?;
    Ok(id)
}

/// The gateway state dir: `--state-dir`, else discovery (environment, default dirs).
pub fn gateway_state_dir(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    match &ctx.state_dir {
        Some(d) => Ok(d.clone()),
        None => Ok(ctx.gateway()?.state_dir),
    }
}

/// A progress bar on a TTY (hidden otherwise) fed by the library's [`Progress`] callbacks.
pub struct Bar(pub indicatif::ProgressBar);

impl Bar {
    /// A byte-counting bar.
    pub fn new(what: &str, bytes: bool) -> Self {
        Bar(ui::progress(0, what, bytes))
    }
}

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

/// Formats a byte count for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
