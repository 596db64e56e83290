//! `moltvault rotate`: guided, resumable rotation of every secret the gateway holds.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use moltvault_rotate::{
    Catalogue, Env, ExtraSecret, FingerprintKey, Host, InventoryOptions, Key, Location, Mode,
    PlanItem, Prompter, Provider, Role, RotateOptions, RunOutcome, Sealer, SweepMode, SystemHost,
    VaultAccess, Verifier,
};
use secrecy::SecretString;

use crate::commands::Ctx;
use crate::commands::key::{UnlockArgs, unlock};
use crate::env;
use crate::report::{Status, user_error};
use crate::ui;

/// Rotates the gateway's secrets after an incident, in a safe order, resumably.
///
/// Order: contain (the gateway must be stopped in incident mode), gateway auth, hooks, revoke
/// paired devices, channel tokens, model-provider keys, reload, verify, sweep. Gateway and hook
/// tokens are generated (32 random bytes); provider keys are pasted at a hidden prompt, or read
/// from `--answers FILE` for automation (never from argv), cleaned and validated offline.
/// Every step is journaled (fingerprints only) under `<vault dir>/rotation/`; after a crash or
/// Ctrl-C run `moltvault rotate resume`. `--list` shows every secret and where it is stored.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RotateArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// List every secret with every place it is stored and its fingerprint (never the value).
    #[arg(long)]
    list: bool,
    /// With --list or --dry-run: print JSON.
    #[arg(long)]
    json: bool,
    /// Rotate every secret found.
    #[arg(long, conflicts_with = "items")]
    all: bool,
    /// Item ids to rotate (see --list).
    #[arg(value_name = "ITEM")]
    items: Vec<String>,
    /// Show the plan and stop: no writes, no network.
    #[arg(long)]
    dry_run: bool,
    /// `incident` refuses to run while the gateway answers on its port; `scheduled` warns.
    #[arg(long, value_enum, default_value_t = ModeArg::Incident)]
    mode: ModeArg,
    /// Rotate even though the gateway is running (incident mode).
    #[arg(long)]
    allow_running: bool,
    #[command(flatten)]
    flow: FlowArgs,
}

/// Options shared by a new run and `resume`.
#[derive(Debug, Clone, clap::Args)]
struct FlowArgs {
    /// Scripted answers (TOML or JSON): item id → file holding the new value, `"-"` (one line
    /// of stdin), or a table `{ file = "…", stdin = true, skip = true, revoked = true }`.
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Check each pasted key with one read-only call to its provider.
    #[arg(long)]
    verify_online: bool,
    /// Override a provider's verification base URL: `PROVIDER=URL` (HTTPS, or HTTP on
    /// loopback). Also `MOLTVAULT_VERIFY_BASE_URL`.
    #[arg(long, value_name = "PROVIDER=URL")]
    verify_base_url: Vec<String>,
    /// What to do with old values left in transcripts and other files.
    #[arg(long, value_enum, default_value_t = SweepArg::Ask)]
    sweep: SweepArg,
    #[command(flatten)]
    unlock: UnlockArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Incident,
    Scheduled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SweepArg {
    /// Ask at the terminal (without one, or with --answers: only report).
    Ask,
    /// Redact without asking.
    Redact,
    /// Only list the files in the report.
    Report,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Shows the current (or last) run: each secret's state and the run's steps.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Continues an interrupted run; each location is re-read, not trusted from the journal.
    Resume(FlowArgs),
    /// Abandons the unfinished run (refused while a secret is half-applied).
    Abort,
    /// Writes the run's incident report (Markdown and JSON) and prints its path.
    Report {
        /// Print the JSON report on stdout.
        #[arg(long)]
        json: bool,
        /// Print the Markdown report on stdout.
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
}

fn rotation_dir(ctx: &Ctx) -> PathBuf {
    ctx.vault_dir.join("rotation")
}

/// The install key shared with every other verb (`<vault dir>/install.key`), so rotation
/// fingerprints start with the same fp8 tag redaction placeholders carry.
fn fingerprint_key(ctx: &Ctx) -> anyhow::Result<FingerprintKey> {
    let key = moltvault_vault::install_key::load_or_create(&ctx.vault_dir)?;
    Ok(FingerprintKey::from_bytes(*key.expose()))
}

fn inventory_options(
    ctx: &Ctx,
    identity: Option<moltvault_vault::Identity>,
) -> anyhow::Result<InventoryOptions> {
    let gw = ctx.gateway()?;
    // Without an initialised vault there is no secrets store to rotate in.
    let vault = moltvault_vault::Vault::open(&ctx.vault_dir)
        .ok()
        .map(|v| VaultAccess {
            dir: ctx.vault_dir.clone(),
            recipient: v.recipient().clone(),
            identity,
        });
    Ok(InventoryOptions {
        state_dir: gw.state_dir.clone(),
        home: ctx.home.clone(),
        extra: from_gateway_inventory(&gw),
        vault,
    })
}

/// Unlocks the vault for secrets kept in its store (`moltvault secrets import`) when an
/// identity source is given (`--identity`, `--passphrase-file`, `MOLTVAULT_PASSPHRASE`), or at
/// a terminal when the store holds secrets; `None` otherwise (store items then stay locked).
fn vault_identity(
    ctx: &Ctx,
    unlock_args: &UnlockArgs,
) -> anyhow::Result<Option<moltvault_vault::Identity>> {
    let Ok(vault) = moltvault_vault::Vault::open(&ctx.vault_dir) else {
        return Ok(None);
    };
    let given = unlock_args.identity.is_some()
        || unlock_args.passphrase_file.is_some()
        || env::var(env::MOLTVAULT_PASSPHRASE).is_some();
    let interactive = std::io::stdin().is_terminal()
        && moltvault_vault::secrets_store::SecretsStore::open(&ctx.vault_dir)
            .is_ok_and(|s| !s.list().is_empty());
    if given || interactive {
        Ok(Some(unlock(&vault, unlock_args)?))
    } else {
        Ok(None)
    }
}

/// The gateway crate's credential inventory, as extra input: its `$include`d config files and
/// other places join the rotation when they read back the same value; SQLite rows and token
/// files are listed for the user. Paired-device and identity secrets are revoked, not rotated.
fn from_gateway_inventory(gw: &moltvault_gateway::Gateway) -> Vec<ExtraSecret> {
    use moltvault_gateway::{Location as G, SecretKind};
    let list = match gw.configured_secrets() {
        Ok(l) => l,
        Err(e) => {
            ui::warn(&format!(
                "the gateway inventory could not be read ({e}); rotating what moltvault rotate finds itself"
            ));
            return Vec::new();
        }
    };
    let role_of = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "models.json" {
            Role::Models
        } else if name == "auth-profiles.json" {
            Role::AuthProfile
        } else if name.contains(".bak") {
            Role::Backup
        } else {
            Role::Config
        }
    };
    list.into_iter()
        .filter(|c| {
            !matches!(
                c.kind,
                SecretKind::DeviceToken | SecretKind::NodeToken | SecretKind::DeviceKey
            )
        })
        .filter_map(|c| {
            let value = c.value?;
            let mut locations = Vec::new();
            let mut elsewhere = Vec::new();
            for l in c.locations {
                match l {
                    G::Json { file, pointer } => locations.push(Location {
                        role: role_of(&file),
                        key: Key::Json { pointer },
                        path: file,
                    }),
                    G::Env { file, key } => {
                        let unit = file.extension().is_some_and(|e| e == "service");
                        locations.push(Location {
                            role: if unit { Role::Unit } else { Role::EnvFile },
                            key: if unit {
                                Key::Systemd { name: key }
                            } else {
                                Key::Env { name: key }
                            },
                            path: file,
                        });
                    }
                    G::File { file } => {
                        elsewhere.push(format!("{} (the whole file)", file.display()))
                    }
                    G::Sqlite {
                        file,
                        table,
                        row_key,
                        ..
                    } => {
                        elsewhere.push(format!("{} (table {table}, row {row_key})", file.display()))
                    }
                }
            }
            Some(ExtraSecret {
                id: c.id,
                value,
                locations,
                elsewhere,
            })
        })
        .collect()
}

pub fn run(ctx: &Ctx, args: RotateArgs) -> anyhow::Result<Status> {
    let catalogue = Catalogue::builtin()?;
    match args.action {
        Some(Action::Status { json }) => return status(ctx, json),
        Some(Action::Abort) => {
            let key = fingerprint_key(ctx)?;
            let run = moltvault_rotate::abort(&rotation_dir(ctx), &key)?;
            ui::note(&format!(
                "rotation {run} aborted; staged values wiped. Locations already rotated keep their new values."
            ));
            return Ok(Status::Ok);
        }
        Some(Action::Report { json, markdown }) => return report(ctx, &catalogue, json, markdown),
        Some(Action::Resume(flow)) => {
            return drive(ctx, &catalogue, &flow, None);
        }
        None => {}
    }
    if args.list {
        return list(ctx, &catalogue, args.json, &args.flow.unlock);
    }
    if !args.all && args.items.is_empty() {
        return Err(user_error(
            "nothing to rotate",
            "Pass --all, or item ids from `moltvault rotate --list`.",
        ));
    }
    let key = fingerprint_key(ctx)?;
    let opts = options(
        ctx,
        &args.flow,
        args.mode,
        args.allow_running,
        args.items.clone(),
        vault_identity(ctx, &args.flow.unlock)?,
    )?;
    if args.dry_run {
        let (plan, _) = moltvault_rotate::plan(&opts, &catalogue, &key)?;
        if args.json {
            let v = serde_json::json!({
                "items": plan.items,
                "stale_backup_copies": plan.stale,
                "paired_device_tokens": plan.devices.len(),
                "notes": plan.notes,
                "gateway_port": plan.port,
            });
            ui::data(&serde_json::to_string_pretty(&v)?);
        } else {
            let mut buf = Vec::new();
            moltvault_rotate::render_plan(&plan, &catalogue, &mut buf)?;
            ui::data(String::from_utf8_lossy(&buf).trim_end());
            ui::note("dry run: nothing was written and no network call was made");
        }
        return Ok(Status::Ok);
    }
    drive(ctx, &catalogue, &args.flow, Some(opts))
}

fn options(
    ctx: &Ctx,
    flow: &FlowArgs,
    mode: ModeArg,
    allow_running: bool,
    items: Vec<String>,
    identity: Option<moltvault_vault::Identity>,
) -> anyhow::Result<RotateOptions> {
    let verifier = if flow.verify_online {
        let mut overrides = BTreeMap::new();
        let from_env = env::var(env::MOLTVAULT_VERIFY_BASE_URL)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        for spec in from_env
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
            .chain(flow.verify_base_url.iter().cloned())
        {
            let (p, u) = spec.split_once('=').ok_or_else(|| {
                user_error(
                    format!("{spec:?} is not PROVIDER=URL"),
                    "Write the provider id from the catalogue, `=`, and a base URL, e.g. openai=https://api.openai.com.",
                )
            })?;
            overrides.insert(p.trim().to_string(), u.trim().to_string());
        }
        Some(Verifier::new(Duration::from_secs(10), overrides)?)
    } else {
        None
    };
    Ok(RotateOptions {
        rotation_dir: rotation_dir(ctx),
        inventory: inventory_options(ctx, identity)?,
        mode: match mode {
            ModeArg::Incident => Mode::Incident,
            ModeArg::Scheduled => Mode::Scheduled,
        },
        items,
        allow_running,
        verifier,
        sweep: match flow.sweep {
            SweepArg::Ask => SweepMode::Ask,
            SweepArg::Redact => SweepMode::Redact,
            SweepArg::Report => SweepMode::Report,
        },
    })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var(env::PATH)?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn drive(
    ctx: &Ctx,
    catalogue: &Catalogue,
    flow: &FlowArgs,
    opts: Option<RotateOptions>,
) -> anyhow::Result<Status> {
    let key = fingerprint_key(ctx)?;
    let resuming = opts.is_none();
    let vault = moltvault_vault::Vault::open(&ctx.vault_dir)?;
    let recipient = vault.recipient().clone();
    // A resume reads back staged values: it always unlocks (once), and the same identity
    // reads the secrets store.
    let opts = match opts {
        Some(o) => o,
        None => {
            let id = unlock(&vault, &flow.unlock)?;
            options(ctx, flow, ModeArg::Incident, true, Vec::new(), Some(id))?
        }
    };
    let identity: Option<Box<dyn age::Identity + Send + Sync>> = opts
        .inventory
        .vault
        .as_ref()
        .and_then(|v| v.identity.as_ref())
        .map(|i| Box::new(i.as_age().clone()) as Box<dyn age::Identity + Send + Sync>);
    let sealer = Sealer::new(Box::new(recipient), identity);
    let answers = match &flow.answers {
        Some(p) => Some(Answers::load(p)?),
        None => None,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second Ctrl-C is not special: the current step still finishes first.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let mut prompter = CliPrompter {
        answers,
        stdin: None,
        interrupted,
        failpoint: if cfg!(debug_assertions) {
            env::var(env::MOLTVAULT_FAILPOINT).map(|v| v.to_string_lossy().into_owned())
        } else {
            None
        },
    };
    let host = SystemHost {
        openclaw: find_in_path("openclaw"),
        systemctl: find_in_path("systemctl"),
    };
    let mut env = Env {
        catalogue,
        key: &key,
        sealer: &sealer,
        prompter: &mut prompter,
        host: &host as &dyn Host,
    };
    let outcome = if resuming {
        moltvault_rotate::resume(&opts, &mut env)?
    } else {
        moltvault_rotate::start(&opts, &mut env)?
    };
    match outcome {
        RunOutcome::Done { run } => {
            let dir = moltvault_rotate::run_dir(&opts.rotation_dir, &run);
            ui::note(&format!(
                "rotation {run} done; report: {}",
                dir.join("report.md").display()
            ));
            Ok(Status::Ok)
        }
        RunOutcome::NeedsUser { run, items } => {
            ui::warn(&format!(
                "rotation {run} waits for you on: {}",
                items.join(", ")
            ));
            ui::note(
                "see `moltvault rotate status`, do what it says, then `moltvault rotate resume`",
            );
            Ok(Status::Findings)
        }
        RunOutcome::Interrupted { run } => {
            ui::warn(&format!(
                "rotation {run} stopped after a completed step; continue with `moltvault rotate resume`"
            ));
            Ok(Status::Findings)
        }
    }
}

fn list(
    ctx: &Ctx,
    catalogue: &Catalogue,
    json: bool,
    unlock_args: &UnlockArgs,
) -> anyhow::Result<Status> {
    let key = fingerprint_key(ctx)?;
    // Listing needs no unlock: store items are shown with the store's fp8 unless an identity
    // source is given.
    let given = unlock_args.identity.is_some()
        || unlock_args.passphrase_file.is_some()
        || env::var(env::MOLTVAULT_PASSPHRASE).is_some();
    let identity = if given {
        vault_identity(ctx, unlock_args)?
    } else {
        None
    };
    let inv = moltvault_rotate::discover(&inventory_options(ctx, identity)?, catalogue, &key)?;
    if json {
        let items: Vec<_> = inv
            .secrets
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "provider": s.provider,
                    "name": catalogue.get(&s.provider).map(|p| p.name.clone()),
                    "fingerprint": s.fingerprint,
                    "fp8": s.fingerprint.fp8(),
                    "stale_backup_copy": s.only_in_backups(),
                    "locations": s.locations,
                })
            })
            .collect();
        ui::data(&serde_json::to_string_pretty(&serde_json::json!({
            "secrets": items,
            "locked_vault_items": inv.locked.iter().map(|l| serde_json::json!({
                "id": l.item,
                "vault_id": l.id,
                "provider": l.provider,
                "fp8": l.fp8,
                "locations": [format!("vault:{}", l.id)],
            })).collect::<Vec<_>>(),
            "notes": inv.notes,
        }))?);
    } else {
        for s in &inv.secrets {
            let name = catalogue.get(&s.provider).map_or("", |p| p.name.as_str());
            let stale = if s.only_in_backups() {
                " [stale: only in backups]"
            } else {
                ""
            };
            ui::data(&format!("{} ({name}) {}{stale}", s.id, s.fingerprint));
            for l in &s.locations {
                ui::data(&format!("    {l}"));
            }
        }
        for l in &inv.locked {
            ui::data(&format!(
                "{} ({}) fp {} [vault locked: unlock to rotate]\n    vault:{}",
                l.item, l.provider, l.fp8, l.id
            ));
        }
        for n in &inv.notes {
            ui::note(&format!("note: {n}"));
        }
        if inv.secrets.is_empty() && inv.locked.is_empty() {
            ui::note("no secrets found");
        }
    }
    Ok(Status::Ok)
}

fn status(ctx: &Ctx, json: bool) -> anyhow::Result<Status> {
    let st = moltvault_rotate::status(&rotation_dir(ctx))?;
    if json {
        let v = serde_json::json!({
            "run": st.run,
            "mode": st.mode,
            "finished": st.finished,
            "journal_head": st.head,
            "items": st.items.iter().map(|(id, p, s, n)| serde_json::json!({
                "id": id, "provider": p, "state": s, "note": n
            })).collect::<Vec<_>>(),
            "tasks": st.tasks.iter().map(|(n, s, note)| serde_json::json!({
                "name": n, "status": s, "note": note
            })).collect::<Vec<_>>(),
        });
        ui::data(&serde_json::to_string_pretty(&v)?);
    } else {
        ui::data(&format!(
            "run {} ({}): {}",
            st.run,
            st.mode,
            st.finished.as_deref().unwrap_or("unfinished")
        ));
        for (id, _, s, n) in &st.items {
            let note = n.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            ui::data(&format!("  {:<12} {id}{note}", s.as_str()));
        }
        for (n, s, note) in &st.tasks {
            ui::data(&format!("  step {n}: {s} ({note})"));
        }
    }
    Ok(Status::Ok)
}

fn report(ctx: &Ctx, catalogue: &Catalogue, json: bool, markdown: bool) -> anyhow::Result<Status> {
    let rd = rotation_dir(ctx);
    let run = moltvault_rotate::latest_run(&rd)?
        .ok_or_else(|| moltvault_rotate::Error::NoRun(rd.clone()))?;
    let (md_path, json_path) = moltvault_rotate::report::write(&rd, &run, catalogue)?;
    if json {
        ui::data(
            std::fs::read_to_string(&json_path)
                .with_context(|| format!("cannot read {}", json_path.display()))?
                .trim_end(),
        );
    } else if markdown {
        ui::data(
            std::fs::read_to_string(&md_path)
                .with_context(|| format!("cannot read {}", md_path.display()))?
                .trim_end(),
        );
    } else {
        ui::data(&md_path.display().to_string());
        ui::data(&json_path.display().to_string());
    }
    Ok(Status::Ok)
}

/// One scripted answer.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    /// A file holding the new value.
    #[serde(default)]
    file: Option<PathBuf>,
    /// Read the new value from the next line of stdin.
    #[serde(default)]
    stdin: bool,
    /// Skip this item.
    #[serde(default)]
    skip: bool,
    /// The old value has been revoked in the provider's console.
    #[serde(default)]
    revoked: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum RawAnswer {
    Path(String),
    Table(Answer),
}

/// The `--answers` file: item id → answer.
#[derive(Debug)]
struct Answers {
    items: BTreeMap<String, Answer>,
    base: PathBuf,
}

impl Answers {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let raw: BTreeMap<String, RawAnswer> = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text)
                .with_context(|| format!("cannot parse {} as JSON", path.display()))?
        } else {
            toml::from_str(&text)
                .with_context(|| format!("cannot parse {} as TOML", path.display()))?
        };
        let items = raw
            .into_iter()
            .map(|(k, v)| {
                let a = match v {
                    RawAnswer::Path(p) if p == "-" => Answer {
                        stdin: true,
                        ..Answer::default()
                    },
                    RawAnswer::Path(p) => Answer {
                        file: Some(PathBuf::from(p)),
                        ..Answer::default()
                    },
                    RawAnswer::Table(t) => t,
                };
                (k, a)
            })
            .collect();
        Ok(Answers {
            items,
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        })
    }
}

struct CliPrompter {
    answers: Option<Answers>,
    stdin: Option<std::io::StdinLock<'static>>,
    interrupted: Arc<AtomicBool>,
    failpoint: Option<String>,
}

impl CliPrompter {
    fn scripted(&mut self, item: &PlanItem) -> moltvault_rotate::Result<Option<SecretString>> {
        let answers = self.answers.as_ref().expect("scripted only with answers");
        let Some(a) = answers.items.get(&item.id).cloned() else {
            return Err(moltvault_rotate::Error::NoAnswer(item.id.clone()));
        };
        if a.skip {
            return Ok(None);
        }
        if let Some(f) = &a.file {
            let p = if f.is_absolute() {
                f.clone()
            } else {
                answers.base.join(f)
            };
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(&p).map_err(|source| {
                moltvault_rotate::Error::Read {
                    path: p.clone(),
                    source,
                }
            })?);
            return Ok(Some(SecretString::from(text.to_string())));
        }
        if a.stdin {
            let lock = self.stdin.get_or_insert_with(|| std::io::stdin().lock());
            let mut line = zeroize::Zeroizing::new(String::new());
            lock.read_line(&mut line)
                .map_err(|source| moltvault_rotate::Error::Read {
                    path: PathBuf::from("<stdin>"),
                    source,
                })?;
            return Ok(Some(SecretString::from(line.to_string())));
        }
        Err(moltvault_rotate::Error::NoAnswer(item.id.clone()))
    }
}

impl Prompter for CliPrompter {
    fn say(&mut self, msg: &str) {
        ui::note(msg);
    }

    fn warn(&mut self, msg: &str) {
        ui::warn(msg);
    }

    fn new_value(
        &mut self,
        item: &PlanItem,
        provider: &Provider,
        rejected: Option<&str>,
    ) -> moltvault_rotate::Result<Option<SecretString>> {
        if let Some(why) = rejected {
            ui::warn(&format!("{}: the value was refused: {why}", item.id));
            if self.answers.is_some() {
                // A scripted answer does not change on a retry.
                return Err(moltvault_rotate::Error::Invalid {
                    item: item.id.clone(),
                    why: why.to_string(),
                });
            }
        }
        if self.answers.is_some() {
            return self.scripted(item);
        }
        ui::note(&format!("\n{} — {}", item.id, provider.name));
        if let Some(u) = provider.console_url.as_deref().filter(|u| !u.is_empty()) {
            ui::note(&format!("  console: {u}"));
        }
        for (i, s) in provider.steps.iter().enumerate() {
            ui::note(&format!("  {}. {s}", i + 1));
        }
        let v = ui::prompt_hidden(&format!(
            "Paste the new value for {} (hidden; empty to skip): ",
            item.id
        ))
        .map_err(|_| moltvault_rotate::Error::NoAnswer(item.id.clone()))?;
        if secrecy::ExposeSecret::expose_secret(&v).trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(v))
    }

    fn confirm_revoked(&mut self, item: &PlanItem, provider: &Provider) -> bool {
        if let Some(a) = &self.answers {
            return a.items.get(&item.id).is_some_and(|a| a.revoked);
        }
        if !std::io::stdin().is_terminal() {
            return false;
        }
        ui::note(&format!(
            "{}: revoke the old {} now{}",
            item.id,
            provider.name,
            provider
                .console_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(|u| format!(" at {u}"))
                .unwrap_or_default()
        ));
        ui::prompt_hidden("Type yes once the old value is revoked (input hidden): ")
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).trim() == "yes")
            .unwrap_or(false)
    }

    fn confirm_redact(&mut self, files: usize) -> bool {
        if self.answers.is_some() || !std::io::stdin().is_terminal() {
            return false;
        }
        ui::prompt_hidden(&format!(
            "Redact the old values in these {files} files? Type yes (input hidden): "
        ))
        .map(|s| secrecy::ExposeSecret::expose_secret(&s).trim() == "yes")
        .unwrap_or(false)
    }

    fn checkpoint(&mut self, label: &str) {
        if let Some(fp) = &self.failpoint
            && fp.strip_prefix("after:") == Some(label)
        {
            // Test-only crash injection (debug builds): die like a power cut would.
            std::process::abort();
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}
