//! The rotation run: plan, contain, then per secret PLANNED → NEW_STAGED → APPLIED →
//! RELOADED → VERIFIED → OLD_REVOKED → DONE, journaled ahead of every action, resumable after
//! a crash by re-reading each location rather than trusting the journal.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::catalogue::{Catalogue, Class, Origin, Provider};
use crate::error::{Error, Result, read_err};
use crate::fingerprint::{Fingerprint, FingerprintKey};
use crate::inventory::{self, InventoryOptions, Role};
use crate::journal::{Event, Journal, PlanItem, State};
use crate::stage::{self, Sealer};
use crate::sweep::{self, OldValue};
use crate::validate;
use crate::verify::{Outcome, Verifier};

/// How the run treats a running gateway and revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The gateway must be stopped first (or `allow_running`); downtime is accepted.
    Incident,
    /// The gateway may run; a warning is recorded.
    Scheduled,
}

impl Mode {
    /// The journal spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Incident => "incident",
            Mode::Scheduled => "scheduled",
        }
    }
}

/// What the sweep does with residue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepMode {
    /// Ask the prompter.
    Ask,
    /// Redact without asking.
    Redact,
    /// Only report.
    Report,
}

/// Inputs of a run.
#[derive(Debug)]
pub struct RotateOptions {
    /// `<vault_dir>/rotation`: lock, active-run pointer, runs.
    pub rotation_dir: PathBuf,
    /// Where the gateway lives.
    pub inventory: InventoryOptions,
    /// Incident or scheduled.
    pub mode: Mode,
    /// Item ids to rotate; empty = all.
    pub items: Vec<String>,
    /// Rotate even though the gateway answers on its port (incident mode).
    pub allow_running: bool,
    /// Online verification, if asked for.
    pub verifier: Option<Verifier>,
    /// Residue handling.
    pub sweep: SweepMode,
}

/// How the flow talks to the user (the CLI implements it with prompts or an answers file).
pub trait Prompter {
    /// Shows a status or instruction line.
    fn say(&mut self, msg: &str);
    /// Shows a warning.
    fn warn(&mut self, msg: &str);
    /// Asks for the new value of a pasted secret; `None` skips the item. `rejected` says why
    /// the previous answer was refused.
    ///
    /// # Errors
    /// Fails when no answer can be obtained (no terminal, answers file missing the item).
    fn new_value(
        &mut self,
        item: &PlanItem,
        provider: &Provider,
        rejected: Option<&str>,
    ) -> Result<Option<SecretString>>;
    /// Asks whether the old value was revoked in the provider's console.
    fn confirm_revoked(&mut self, item: &PlanItem, provider: &Provider) -> bool;
    /// Asks whether to redact the residue found in `files` files.
    fn confirm_redact(&mut self, files: usize) -> bool;
    /// Called after each durable step (`journal:<seq>`, `write:<item>:<i>`, `staged:<item>`);
    /// used by crash tests.
    fn checkpoint(&mut self, _label: &str) {}
    /// Whether the user asked to stop (Ctrl-C): the run stops after the current step.
    fn interrupted(&self) -> bool {
        false
    }
}

/// System actions: probing and reloading the gateway service, revoking devices.
pub trait Host {
    /// Whether something answers on the gateway's loopback port.
    fn gateway_running(&self, port: u16) -> bool;
    /// Reloads the service manager after a unit file changed.
    ///
    /// # Errors
    /// Returns what the user must run instead.
    fn daemon_reload(&self) -> std::result::Result<String, String>;
    /// Revokes every paired device and node through the gateway's own CLI.
    ///
    /// # Errors
    /// Returns why it could not (the user then follows the catalogue's steps).
    fn revoke_devices(&self) -> std::result::Result<String, String>;
}

/// The real host: a TCP probe, `systemctl --user daemon-reload` and the `openclaw` CLI when
/// they are found.
#[derive(Debug, Clone, Default)]
pub struct SystemHost {
    /// The `openclaw` executable, if known.
    pub openclaw: Option<PathBuf>,
    /// The `systemctl` executable, if known.
    pub systemctl: Option<PathBuf>,
}

impl Host for SystemHost {
    fn gateway_running(&self, port: u16) -> bool {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
    }

    fn daemon_reload(&self) -> std::result::Result<String, String> {
        let manual = "run `systemctl --user daemon-reload` before starting the gateway".to_string();
        let Some(sc) = &self.systemctl else {
            return Err(manual);
        };
        match std::process::Command::new(sc)
            .args(["--user", "daemon-reload"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => Ok("systemctl --user daemon-reload ran".into()),
            _ => Err(manual),
        }
    }

    fn revoke_devices(&self) -> std::result::Result<String, String> {
        let Some(oc) = &self.openclaw else {
            return Err("the openclaw CLI was not found".into());
        };
        match std::process::Command::new(oc)
            .args(["devices", "clear", "--yes", "--pending"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => Ok("openclaw devices clear --yes --pending ran".into()),
            Ok(s) => Err(format!(
                "openclaw devices clear exited with {}",
                s.code().unwrap_or(-1)
            )),
            Err(_) => Err("the openclaw CLI could not be run".into()),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every item is DONE or SKIPPED; the report is written.
    Done {
        /// Run id.
        run: String,
    },
    /// Some items wait for the user; `rotate resume` continues.
    NeedsUser {
        /// Run id.
        run: String,
        /// The waiting item ids.
        items: Vec<String>,
    },
    /// Ctrl-C: stopped after a completed step; `rotate resume` continues.
    Interrupted {
        /// Run id.
        run: String,
    },
}

/// A plan computed without writing anything (`--dry-run`, `--list`).
#[derive(Debug)]
pub struct Plan {
    /// Items to rotate, in order.
    pub items: Vec<PlanItem>,
    /// Stale copies only found in backups (redacted by the sweep).
    pub stale: Vec<PlanItem>,
    /// Paired device / node tokens (revoked, not rotated).
    pub devices: Vec<PlanItem>,
    /// Inventory notes.
    pub notes: Vec<String>,
    /// The gateway port probed for containment.
    pub port: u16,
}

fn runs_dir(rotation_dir: &Path) -> PathBuf {
    rotation_dir.join("runs")
}

fn active_file(rotation_dir: &Path) -> PathBuf {
    rotation_dir.join("active")
}

/// The run directory of a run id.
pub fn run_dir(rotation_dir: &Path, run: &str) -> PathBuf {
    runs_dir(rotation_dir).join(run)
}

/// The id of the unfinished run, if any.
///
/// # Errors
/// Fails when the pointer exists but cannot be read.
pub fn active_run(rotation_dir: &Path) -> Result<Option<String>> {
    let p = active_file(rotation_dir);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(&p, e)),
    }
}

/// The most recent run (active first, else the newest directory).
///
/// # Errors
/// Fails when the rotation directory cannot be read.
pub fn latest_run(rotation_dir: &Path) -> Result<Option<String>> {
    if let Some(r) = active_run(rotation_dir)? {
        return Ok(Some(r));
    }
    let mut runs: Vec<String> = match std::fs::read_dir(runs_dir(rotation_dir)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Ok(None),
    };
    runs.sort();
    Ok(runs.pop())
}

/// The single-writer lock (`flock` on `<rotation_dir>/lock`, pid in `lock.pid`).
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// Takes the lock without waiting.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process holds it.
    pub fn acquire(rotation_dir: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        moltvault_vault::fsio::create_secret_dir_all(rotation_dir)?;
        let path = rotation_dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| read_err(&path, e))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let pid = std::fs::read_to_string(rotation_dir.join("lock.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            return Err(Error::Locked { path, pid });
        }
        moltvault_vault::fsio::write_atomic(
            rotation_dir.join("lock.pid"),
            std::process::id().to_string().as_bytes(),
            moltvault_vault::fsio::WriteOptions::secret_replace(),
        )?;
        Ok(Lock { _file: file })
    }
}

fn gateway_port(state_dir: &Path) -> u16 {
    for name in ["openclaw.json", "clawdbot.json", "moltbot.json"] {
        let p = state_dir.join(name);
        if let Ok(v) = inventory::parse_json(&p) {
            if let Some(port) = v.pointer("/gateway/port").and_then(|v| v.as_u64()) {
                return u16::try_from(port).unwrap_or(18789);
            }
            return 18789;
        }
    }
    18789
}

/// Computes the plan: what would be rotated, in order, with every location. Writes nothing.
///
/// # Errors
/// Fails when discovery fails or an asked-for item does not exist.
pub fn plan(
    opts: &RotateOptions,
    catalogue: &Catalogue,
    key: &FingerprintKey,
) -> Result<(Plan, HashMap<String, SecretString>)> {
    let inv = inventory::discover(&opts.inventory, catalogue, key)?;
    // A locked vault item asked for (or --all with one) is an error, not a silent skip.
    if let Some(l) = inv
        .locked
        .iter()
        .find(|l| opts.items.is_empty() || opts.items.contains(&l.item))
    {
        return Err(Error::VaultLocked {
            item: l.item.clone(),
        });
    }
    let mut items = Vec::new();
    let mut stale = Vec::new();
    let mut devices = Vec::new();
    let mut olds = HashMap::new();
    for s in inv.secrets {
        let p = catalogue
            .get(&s.provider)
            .ok_or_else(|| Error::Catalogue(format!("no provider {}", s.provider)))?;
        let item = PlanItem {
            id: s.id.clone(),
            provider: s.provider.clone(),
            class: p.class,
            origin: p.origin,
            old_fp: s.fingerprint,
            locations: s.locations.clone(),
        };
        olds.insert(s.id.clone(), s.value);
        if item.provider == "device-token" {
            devices.push(item);
        } else if s.locations.iter().all(|l| l.role == Role::Backup) {
            stale.push(item);
        } else {
            items.push(item);
        }
    }
    for want in &opts.items {
        if !items.iter().any(|i| &i.id == want) {
            return Err(Error::UnknownItem(want.clone()));
        }
    }
    if !opts.items.is_empty() {
        items.retain(|i| opts.items.contains(&i.id));
    }
    items.sort_by_key(|i| i.class);
    Ok((
        Plan {
            items,
            stale,
            devices,
            notes: inv.notes,
            port: gateway_port(&opts.inventory.state_dir),
        },
        olds,
    ))
}

fn new_run_id() -> Result<String> {
    let mut r = [0u8; 3];
    getrandom::getrandom(&mut r).map_err(|_| Error::Random)?;
    let t = time::OffsetDateTime::now_utc();
    // Sortable to the microsecond, so "latest" is well defined.
    Ok(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond(),
        hex::encode(r)
    ))
}

/// Generates a gateway-format token: 32 CSPRNG bytes as 64 lowercase hex digits.
///
/// # Errors
/// [`Error::Random`] when the OS RNG fails.
pub fn generate_token() -> Result<SecretString> {
    let mut b = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(b.as_mut()).map_err(|_| Error::Random)?;
    Ok(SecretString::from(hex::encode(b.as_ref())))
}

/// Everything a run needs besides its options.
pub struct Env<'a> {
    /// The provider catalogue.
    pub catalogue: &'a Catalogue,
    /// The fingerprint key.
    pub key: &'a FingerprintKey,
    /// Encrypts staged values.
    pub sealer: &'a Sealer,
    /// Talks to the user.
    pub prompter: &'a mut dyn Prompter,
    /// System actions.
    pub host: &'a dyn Host,
}

struct Run<'a, 'e> {
    opts: &'a RotateOptions,
    env: &'a mut Env<'e>,
    journal: Journal,
    dir: PathBuf,
    items: Vec<PlanItem>,
    olds: HashMap<String, SecretString>,
    news: HashMap<String, SecretString>,
}

/// Starts a new run (refuses when one is unfinished).
///
/// # Errors
/// [`Error::Unfinished`], [`Error::Locked`], [`Error::GatewayRunning`], discovery, journal and
/// write errors.
pub fn start(opts: &RotateOptions, env: &mut Env<'_>) -> Result<RunOutcome> {
    let _lock = Lock::acquire(&opts.rotation_dir)?;
    if let Some(run) = active_run(&opts.rotation_dir)? {
        return Err(Error::Unfinished { run });
    }
    let (plan, olds) = plan(opts, env.catalogue, env.key)?;
    let running = env.host.gateway_running(plan.port);
    if running && opts.mode == Mode::Incident && !opts.allow_running {
        return Err(Error::GatewayRunning { port: plan.port });
    }
    let run = new_run_id()?;
    let dir = run_dir(&opts.rotation_dir, &run);
    moltvault_vault::fsio::create_secret_dir_all(&dir.join("staging"))?;
    let mut journal = Journal::create(&dir.join("journal.jsonl"), &run);
    let mut all_items = plan.items.clone();
    all_items.extend(plan.stale.iter().cloned());
    all_items.extend(plan.devices.iter().cloned());
    journal.append(Event::Plan {
        mode: opts.mode.as_str().into(),
        version: env!("CARGO_PKG_VERSION").into(),
        catalogue: env.catalogue.version,
        items: all_items,
    })?;
    moltvault_vault::fsio::write_atomic(
        active_file(&opts.rotation_dir),
        run.as_bytes(),
        moltvault_vault::fsio::WriteOptions::secret_replace(),
    )?;
    env.prompter.checkpoint("journal:1");
    let mut r = Run {
        opts,
        env,
        journal,
        dir,
        items: plan.items,
        olds,
        news: HashMap::new(),
    };
    let note = if running {
        format!(
            "the gateway answers on port {}; it keeps the old values until restarted",
            plan.port
        )
    } else {
        format!("the gateway is not running (port {} is closed)", plan.port)
    };
    let status = if running { "warned" } else { "done" };
    if running {
        r.env.prompter.warn(&note);
    }
    r.log(Event::Task {
        name: "contain".into(),
        status: status.into(),
        note,
    })?;
    r.drive()
}

/// Resumes the unfinished run.
///
/// # Errors
/// [`Error::NoRun`] when there is none; journal (tampering), lock and write errors.
pub fn resume(opts: &RotateOptions, env: &mut Env<'_>) -> Result<RunOutcome> {
    let _lock = Lock::acquire(&opts.rotation_dir)?;
    let run =
        active_run(&opts.rotation_dir)?.ok_or_else(|| Error::NoRun(opts.rotation_dir.clone()))?;
    let dir = run_dir(&opts.rotation_dir, &run);
    let journal = Journal::open(&dir.join("journal.jsonl"))?;
    if journal.finished().is_some() {
        // Interrupted between the final record and clearing the pointer.
        moltvault_vault::fsio::remove_durably(&active_file(&opts.rotation_dir))?;
        crate::report::write(&opts.rotation_dir, &run, env.catalogue)?;
        return Ok(RunOutcome::Done { run });
    }
    let items: Vec<PlanItem> = journal
        .plan()
        .map(|(_, items)| items.to_vec())
        .unwrap_or_default();
    // Old values are recovered only from locations that still hold them (never persisted).
    let mut olds = HashMap::new();
    for it in &items {
        for loc in &it.locations {
            if let Ok(Some(v)) = inventory::read_location_in(loc, opts.inventory.vault.as_ref())
                && env.key.fingerprint(v.expose_secret().as_bytes()) == it.old_fp
            {
                olds.insert(it.id.clone(), v);
                break;
            }
        }
    }
    let items = items
        .into_iter()
        .filter(|i| {
            i.provider != "device-token" && !i.locations.iter().all(|l| l.role == Role::Backup)
        })
        .collect();
    let mut r = Run {
        opts,
        env,
        journal,
        dir,
        items,
        olds,
        news: HashMap::new(),
    };
    r.drive()
}

/// Abandons the unfinished run: wipes staged values and closes the journal. Refused while an
/// item is half-applied (some locations new, some old), since that would lose the new value.
///
/// # Errors
/// [`Error::NoRun`], [`Error::Conflict`] for a half-applied item, journal and I/O errors.
pub fn abort(rotation_dir: &Path, key: &FingerprintKey) -> Result<String> {
    let _lock = Lock::acquire(rotation_dir)?;
    let run = active_run(rotation_dir)?.ok_or_else(|| Error::NoRun(rotation_dir.to_path_buf()))?;
    let dir = run_dir(rotation_dir, &run);
    let mut journal = Journal::open(&dir.join("journal.jsonl"))?;
    let items: Vec<PlanItem> = journal.plan().map(|(_, i)| i.to_vec()).unwrap_or_default();
    for it in &items {
        let (_, new_fp) = journal.item_state(&it.id);
        let Some(new_fp) = new_fp else { continue };
        let (mut old_n, mut new_n) = (0, 0);
        for loc in &it.locations {
            if let Ok(Some(v)) = inventory::read_location(loc) {
                let fp = key.fingerprint(v.expose_secret().as_bytes());
                if fp == it.old_fp {
                    old_n += 1;
                } else if fp == new_fp {
                    new_n += 1;
                }
            }
        }
        if old_n > 0 && new_n > 0 {
            return Err(Error::Conflict {
                item: it.id.clone(),
                location: "some of its locations (half-applied: run `moltvault rotate resume`)"
                    .into(),
            });
        }
    }
    for (i, _) in items.iter().enumerate() {
        stage::wipe(&dir.join("staging").join(format!("{i}.age")))?;
    }
    journal.append(Event::Finish {
        outcome: "aborted".into(),
    })?;
    moltvault_vault::fsio::remove_durably(&active_file(rotation_dir))?;
    Ok(run)
}

impl Run<'_, '_> {
    fn log(&mut self, e: Event) -> Result<()> {
        let seq = self.journal.append(e)?.seq;
        self.env.prompter.checkpoint(&format!("journal:{seq}"));
        Ok(())
    }

    fn provider(&self, id: &str) -> Result<Provider> {
        self.env
            .catalogue
            .get(id)
            .cloned()
            .ok_or_else(|| Error::Catalogue(format!("no provider {id}")))
    }

    fn staging(&self, item: &str) -> PathBuf {
        let idx = self
            .journal
            .plan()
            .and_then(|(_, items)| items.iter().position(|i| i.id == item))
            .unwrap_or(0);
        self.dir.join("staging").join(format!("{idx}.age"))
    }

    /// The state to continue from: NEEDS_USER resumes at the last progress state.
    fn progress(&self, item: &str) -> (State, Option<Fingerprint>) {
        let mut st = State::Planned;
        let mut fp = None;
        for r in self.journal.records() {
            if let Event::State {
                item: i,
                to,
                new_fp,
                ..
            } = &r.event
                && i == item
            {
                if *to != State::NeedsUser {
                    st = *to;
                }
                if new_fp.is_some() {
                    fp = *new_fp;
                }
            }
        }
        (st, fp)
    }

    fn set(
        &mut self,
        item: &str,
        from: State,
        to: State,
        new_fp: Option<Fingerprint>,
        note: Option<String>,
    ) -> Result<()> {
        self.log(Event::State {
            item: item.into(),
            from,
            to,
            new_fp,
            note,
        })
    }

    fn task_done(&self, name: &str) -> bool {
        self.journal.records().iter().any(|r| {
            matches!(&r.event, Event::Task { name: n, status, .. } if n == name && status != "needs-user")
        })
    }

    fn drive(&mut self) -> Result<RunOutcome> {
        let run = self.journal.run().to_string();
        // Phase A: stage and apply, in class order; devices are revoked after gateway auth and
        // hooks, before channels and providers (rotation.md §0.3).
        let items = self.items.clone();
        for it in &items {
            if it.class > Class::Hooks {
                self.devices_task()?;
            }
            if self.env.prompter.interrupted() {
                return Ok(RunOutcome::Interrupted { run });
            }
            self.stage_and_apply(it)?;
        }
        self.devices_task()?;
        if self.env.prompter.interrupted() {
            return Ok(RunOutcome::Interrupted { run });
        }
        // Phase B: one reload for the run, then every applied item is RELOADED.
        let applied: Vec<&PlanItem> = items
            .iter()
            .filter(|i| self.progress(&i.id).0 == State::Applied)
            .collect();
        if !applied.is_empty() && !self.task_done("reload") {
            let units = items
                .iter()
                .any(|i| i.locations.iter().any(|l| l.role == Role::Unit));
            let (status, note) = if units {
                match self.env.host.daemon_reload() {
                    Ok(n) => ("done", n),
                    Err(n) => ("needs-user", n),
                }
            } else {
                ("done", "no service unit changed".to_string())
            };
            let vault = items
                .iter()
                .any(|i| i.locations.iter().any(|l| l.role == Role::Vault));
            let mut note = format!(
                "{note}; the gateway reads the new values when it (re)starts: `openclaw gateway restart` (or `systemctl --user restart openclaw-gateway`)"
            );
            if vault {
                note.push_str(
                    "; values kept in the moltvault secrets store: a running gateway picks them up with `openclaw secrets reload`",
                );
            }
            self.log(Event::Task {
                name: "reload".into(),
                status: status.into(),
                note,
            })?;
        }
        for it in &items {
            if self.progress(&it.id).0 == State::Applied && self.state(&it.id) != State::NeedsUser {
                self.set(&it.id, State::Applied, State::Reloaded, None, None)?;
            }
        }
        // Phase C: verify, revoke, finish each item.
        for it in &items {
            if self.env.prompter.interrupted() {
                return Ok(RunOutcome::Interrupted { run });
            }
            self.finish_item(it)?;
        }
        let waiting: Vec<String> = items
            .iter()
            .filter(|i| !self.state(&i.id).is_terminal())
            .map(|i| i.id.clone())
            .collect();
        if !waiting.is_empty() {
            return Ok(RunOutcome::NeedsUser {
                run,
                items: waiting,
            });
        }
        // Phase D: sweep, finish, report.
        if !self.task_done("sweep") {
            self.sweep()?;
        }
        self.log(Event::Finish {
            outcome: "done".into(),
        })?;
        moltvault_vault::fsio::remove_durably(&active_file(&self.opts.rotation_dir))?;
        crate::report::write(&self.opts.rotation_dir, &run, self.env.catalogue)?;
        Ok(RunOutcome::Done { run })
    }

    fn state(&self, item: &str) -> State {
        self.journal.item_state(item).0
    }

    fn devices_task(&mut self) -> Result<()> {
        if self.task_done("revoke-devices")
            || self
                .journal
                .records()
                .iter()
                .any(|r| matches!(&r.event, Event::Task { name, .. } if name == "revoke-devices"))
        {
            return Ok(());
        }
        let n = self
            .journal
            .plan()
            .map(|(_, items)| {
                items
                    .iter()
                    .filter(|i| i.provider == "device-token")
                    .count()
            })
            .unwrap_or(0);
        if n == 0 {
            return self.log(Event::Task {
                name: "revoke-devices".into(),
                status: "skipped".into(),
                note: "no paired device or node tokens found".into(),
            });
        }
        let (status, note) = match self.env.host.revoke_devices() {
            Ok(note) => ("done", note),
            Err(why) => {
                let steps = self.provider("device-token")?.steps.join(" ");
                self.env.prompter.warn(&format!(
                    "{n} paired device/node tokens must be revoked: {steps}"
                ));
                ("needs-user", format!("{why}; {steps}"))
            }
        };
        self.log(Event::Task {
            name: "revoke-devices".into(),
            status: status.into(),
            note,
        })
    }

    fn others(&self, item: &str) -> Vec<SecretString> {
        self.olds
            .iter()
            .chain(self.news.iter())
            .filter(|(k, _)| k.as_str() != item)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn stage_and_apply(&mut self, it: &PlanItem) -> Result<()> {
        let provider = self.provider(&it.provider)?;
        let (mut st, mut new_fp) = self.progress(&it.id);
        if st.is_terminal() || st >= State::Applied {
            return Ok(());
        }
        if st == State::Planned {
            let staging = self.staging(&it.id);
            // A crash after staging but before its journal record leaves a usable staged value.
            let staged = if staging.exists() {
                self.env.sealer.unstage(&it.id, &staging).ok()
            } else {
                None
            };
            let (value, note) = match staged {
                Some(v) => (
                    v,
                    "recovered the staged value after an interruption".to_string(),
                ),
                None => match self.obtain(it, &provider)? {
                    Some(x) => x,
                    None => return Ok(()),
                },
            };
            if !staging.exists() {
                self.env.sealer.stage(&it.id, &staging, &value)?;
                self.env.prompter.checkpoint(&format!("staged:{}", it.id));
            }
            let fp = self.env.key.fingerprint(value.expose_secret().as_bytes());
            self.news.insert(it.id.clone(), value);
            self.set(
                &it.id,
                State::Planned,
                State::NewStaged,
                Some(fp),
                Some(note),
            )?;
            st = State::NewStaged;
            new_fp = Some(fp);
        }
        debug_assert_eq!(st, State::NewStaged);
        let new_fp = new_fp.expect("staged items have a fingerprint");
        let value = match self.news.get(&it.id) {
            Some(v) => v.clone(),
            None => {
                let v = self.env.sealer.unstage(&it.id, &self.staging(&it.id))?;
                if self.env.key.fingerprint(v.expose_secret().as_bytes()) != new_fp {
                    return Err(Error::Stage {
                        op: "decrypt",
                        item: it.id.clone(),
                        detail: "the staged value does not match the journal".into(),
                    });
                }
                self.news.insert(it.id.clone(), v.clone());
                v
            }
        };
        for (i, loc) in it.locations.iter().enumerate() {
            if self.env.prompter.interrupted() {
                return Ok(());
            }
            let logged = self.journal.records().iter().any(|r| {
                matches!(&r.event, Event::Applied { item, index } if item == &it.id && *index == i)
            });
            // Never trust the journal alone: write_location re-reads and only replaces the old
            // value (a location already holding the new one is a no-op).
            match inventory::write_location_in(
                &it.id,
                loc,
                &it.locations,
                self.env.key,
                it.old_fp,
                &value,
                self.opts.inventory.vault.as_ref(),
            ) {
                Ok(_) => {}
                Err(Error::Conflict { location, .. }) => {
                    let note = format!(
                        "{location} holds neither the old nor the new value (changed by someone else?): fix it, then `moltvault rotate resume`"
                    );
                    self.env.prompter.warn(&note);
                    return self.set(&it.id, st, State::NeedsUser, None, Some(note));
                }
                Err(e) => return Err(e),
            }
            self.env
                .prompter
                .checkpoint(&format!("write:{}:{i}", it.id));
            if !logged {
                self.log(Event::Applied {
                    item: it.id.clone(),
                    index: i,
                })?;
            }
        }
        self.set(
            &it.id,
            State::NewStaged,
            State::Applied,
            None,
            Some(format!("{} locations", it.locations.len())),
        )
    }

    fn obtain(
        &mut self,
        it: &PlanItem,
        provider: &Provider,
    ) -> Result<Option<(SecretString, String)>> {
        let old = self.olds.get(&it.id).cloned();
        let others = self.others(&it.id);
        let other_refs: Vec<&SecretString> = others.iter().collect();
        match provider.origin {
            Origin::Generated => loop {
                let v = generate_token()?;
                if validate::validate(
                    self.env.catalogue,
                    &it.provider,
                    &v,
                    old.as_ref(),
                    &other_refs,
                )
                .is_ok()
                {
                    self.env
                        .prompter
                        .say(&format!("{}: generated a new {}", it.id, provider.name));
                    return Ok(Some((v, "generated: 32 random bytes, hex".into())));
                }
            },
            Origin::Manual => {
                self.set(
                    &it.id,
                    State::Planned,
                    State::NeedsUser,
                    None,
                    Some(provider.steps.join(" ")),
                )?;
                Ok(None)
            }
            Origin::Pasted => {
                let mut rejected: Option<String> = None;
                for _ in 0..3 {
                    let raw =
                        match self
                            .env
                            .prompter
                            .new_value(it, provider, rejected.as_deref())?
                        {
                            Some(r) => r,
                            None => {
                                self.set(
                                    &it.id,
                                    State::Planned,
                                    State::Skipped,
                                    None,
                                    Some("skipped by the user".into()),
                                )?;
                                return Ok(None);
                            }
                        };
                    let norm = match validate::normalise(raw.expose_secret()) {
                        Ok(n) => n,
                        Err(why) => {
                            rejected = Some(why);
                            continue;
                        }
                    };
                    for n in &norm.notes {
                        self.env.prompter.say(&format!("{}: {n}", it.id));
                    }
                    let checked = match validate::validate(
                        self.env.catalogue,
                        &it.provider,
                        &norm.value,
                        old.as_ref(),
                        &other_refs,
                    ) {
                        Ok(c) => c,
                        Err(why) => {
                            rejected = Some(why);
                            continue;
                        }
                    };
                    for w in &checked.warnings {
                        self.env.prompter.warn(&format!("{}: {w}", it.id));
                    }
                    let mut note = format!("offline checks passed: {}", checked.passed.join(", "));
                    if !checked.warnings.is_empty() {
                        note.push_str(&format!("; warnings: {}", checked.warnings.join("; ")));
                    }
                    if let Some(ver) = &self.opts.verifier
                        && ver.supports(provider)
                    {
                        let r = ver.verify(provider, &norm.value);
                        self.log(Event::Verify {
                            item: it.id.clone(),
                            which: "new".into(),
                            outcome: r.outcome.as_str().into(),
                            status: r.status,
                            code: r.code.clone(),
                        })?;
                        if r.outcome == Outcome::Invalid {
                            rejected = Some(format!(
                                "the provider says this key is invalid (HTTP {})",
                                r.status.unwrap_or(0)
                            ));
                            continue;
                        }
                        if r.outcome != Outcome::Valid {
                            self.env.prompter.warn(&format!(
                                "{}: online check: {}",
                                it.id,
                                r.outcome.as_str()
                            ));
                        }
                    }
                    return Ok(Some((norm.value, note)));
                }
                let why = rejected.unwrap_or_default();
                self.env
                    .prompter
                    .warn(&format!("{}: value rejected: {why}", it.id));
                self.set(
                    &it.id,
                    State::Planned,
                    State::NeedsUser,
                    None,
                    Some(format!("value rejected: {why}")),
                )?;
                Ok(None)
            }
        }
    }

    fn finish_item(&mut self, it: &PlanItem) -> Result<()> {
        let provider = self.provider(&it.provider)?;
        let (mut st, new_fp) = self.progress(&it.id);
        if st.is_terminal() || st < State::Reloaded {
            return Ok(());
        }
        let Some(new_fp) = new_fp else { return Ok(()) };
        if st == State::Reloaded {
            for loc in &it.locations {
                let fp = inventory::read_location_in(loc, self.opts.inventory.vault.as_ref())?
                    .map(|v| self.env.key.fingerprint(v.expose_secret().as_bytes()));
                if fp != Some(new_fp) {
                    let note = format!("{loc} does not hold the new value any more");
                    self.env.prompter.warn(&format!("{}: {note}", it.id));
                    return self.set(&it.id, st, State::NeedsUser, None, Some(note));
                }
            }
            self.set(
                &it.id,
                State::Reloaded,
                State::Verified,
                None,
                Some("every location re-read holds the new value".into()),
            )?;
            st = State::Verified;
        }
        if st == State::Verified {
            let method = match provider.origin {
                Origin::Generated => Some("local: the gateway stops accepting it once restarted"),
                _ if provider.revoke_is_reissue => {
                    Some("implied: re-issuing revoked the old value")
                }
                _ => None,
            };
            let method = match method {
                Some(m) => m.to_string(),
                None => {
                    let observed = match (&self.opts.verifier, self.olds.get(&it.id)) {
                        (Some(v), Some(old)) if v.supports(&provider) => {
                            let r = v.verify(&provider, old);
                            self.log(Event::Verify {
                                item: it.id.clone(),
                                which: "old".into(),
                                outcome: r.outcome.as_str().into(),
                                status: r.status,
                                code: r.code.clone(),
                            })?;
                            r.outcome == Outcome::Invalid
                        }
                        _ => false,
                    };
                    if observed {
                        "observed: the provider rejects the old value".to_string()
                    } else if self.env.prompter.confirm_revoked(it, &provider) {
                        "user-attested".to_string()
                    } else {
                        let note = format!(
                            "revoke the old value: {} {}",
                            provider.console_url.clone().unwrap_or_default(),
                            provider.steps.join(" ")
                        );
                        return self.set(&it.id, st, State::NeedsUser, None, Some(note));
                    }
                }
            };
            self.set(
                &it.id,
                State::Verified,
                State::OldRevoked,
                None,
                Some(method),
            )?;
            st = State::OldRevoked;
        }
        if st == State::OldRevoked {
            stage::wipe(&self.staging(&it.id))?;
            self.set(&it.id, State::OldRevoked, State::Done, None, None)?;
        }
        Ok(())
    }

    fn sweep(&mut self) -> Result<()> {
        let plan_items: Vec<PlanItem> = self
            .journal
            .plan()
            .map(|(_, i)| i.to_vec())
            .unwrap_or_default();
        let olds: Vec<OldValue> = plan_items
            .iter()
            .filter(|i| {
                i.provider != "device-token"
                    && (matches!(self.state(&i.id), State::Done)
                        || i.locations.iter().all(|l| l.role == Role::Backup))
            })
            .map(|i| OldValue {
                item: i.id.clone(),
                provider: i.provider.clone(),
                fp: i.old_fp,
                value: self.olds.get(&i.id).cloned(),
            })
            .collect();
        let sd = &self.opts.inventory.state_dir;
        let mut files: Vec<PathBuf> = plan_items
            .iter()
            .flat_map(|i| i.locations.iter().map(|l| l.path.clone()))
            .filter(|p| !p.starts_with(sd))
            .collect();
        files.sort();
        files.dedup();
        let exclude = vec![self.opts.rotation_dir.clone()];
        let found = sweep::find_residue(
            std::slice::from_ref(sd),
            &files,
            &exclude,
            &olds,
            self.env.key,
        )?;
        let mut redacted_paths = BTreeMap::new();
        if !found.is_empty() {
            let n_files = found
                .iter()
                .map(|r| &r.path)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            self.env.prompter.say(&format!(
                "residue: {} old value copies in {n_files} files",
                found.iter().map(|r| r.count).sum::<usize>()
            ));
            let redact = match self.opts.sweep {
                SweepMode::Redact => true,
                SweepMode::Report => false,
                SweepMode::Ask => self.env.prompter.confirm_redact(n_files),
            };
            if redact {
                for r in &found {
                    if r.redactable && !redacted_paths.contains_key(&r.path) {
                        let n = sweep::redact_file(&r.path, &olds, self.env.key)?;
                        redacted_paths.insert(r.path.clone(), n);
                    }
                }
            }
        }
        for r in found {
            let redacted = redacted_paths.contains_key(&r.path);
            self.log(Event::Residue {
                path: r.path,
                item: r.item,
                count: r.count,
                redacted,
            })?;
        }
        self.log(Event::Task {
            name: "sweep".into(),
            status: "done".into(),
            note: format!(
                "searched {} and {} files outside it for {} old values",
                sd.display(),
                files.len(),
                olds.len()
            ),
        })
    }
}

/// A run's current state, from its journal.
#[derive(Debug)]
pub struct Status {
    /// Run id.
    pub run: String,
    /// incident / scheduled.
    pub mode: String,
    /// `done` / `aborted` when finished.
    pub finished: Option<String>,
    /// Per item: id, provider, state, last note.
    pub items: Vec<(String, String, State, Option<String>)>,
    /// Run-level tasks: name, status, note.
    pub tasks: Vec<(String, String, String)>,
    /// The journal's chain head.
    pub head: String,
}

/// Reads the status of a run (the active one, or the latest).
///
/// # Errors
/// [`Error::NoRun`] when there is none; journal errors (tampering).
pub fn status(rotation_dir: &Path) -> Result<Status> {
    let run = latest_run(rotation_dir)?.ok_or_else(|| Error::NoRun(rotation_dir.to_path_buf()))?;
    let j = Journal::open(&run_dir(rotation_dir, &run).join("journal.jsonl"))?;
    let (mode, items) = j
        .plan()
        .map(|(m, i)| (m.to_string(), i.to_vec()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for it in items.iter().filter(|i| i.provider != "device-token") {
        let mut note = None;
        for r in j.records() {
            if let Event::State { item, note: n, .. } = &r.event
                && item == &it.id
            {
                note.clone_from(n);
            }
        }
        out.push((
            it.id.clone(),
            it.provider.clone(),
            j.item_state(&it.id).0,
            note,
        ));
    }
    let tasks = j
        .records()
        .iter()
        .filter_map(|r| match &r.event {
            Event::Task { name, status, note } => {
                Some((name.clone(), status.clone(), note.clone()))
            }
            _ => None,
        })
        .collect();
    Ok(Status {
        run,
        mode,
        finished: j.finished().map(str::to_string),
        items: out,
        tasks,
        head: j.head().to_string(),
    })
}

/// Writes `bytes` to a sink the caller gives; used by the CLI to render plans without printing
/// from the library.
pub fn render_plan(plan: &Plan, catalogue: &Catalogue, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "rotation plan ({} secrets):", plan.items.len())?;
    for it in &plan.items {
        let name = catalogue.get(&it.provider).map_or("", |p| p.name.as_str());
        writeln!(out, "  {} ({name}) {}", it.id, it.old_fp)?;
        for l in &it.locations {
            writeln!(out, "      {l}")?;
        }
    }
    if !plan.devices.is_empty() {
        writeln!(
            out,
            "  + revoke {} paired device/node tokens (after gateway auth and hooks)",
            plan.devices.len()
        )?;
    }
    if !plan.stale.is_empty() {
        writeln!(
            out,
            "  + {} stale values only in backups (the sweep redacts them)",
            plan.stale.len()
        )?;
    }
    for n in &plan.notes {
        writeln!(out, "  note: {n}")?;
    }
    Ok(())
}
