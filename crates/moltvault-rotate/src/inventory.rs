//! The credential inventory: every secret of a gateway home with every place it is stored,
//! and reading / writing one such place ([`Location`]).
//!
//! Sinks searched (rotation.md §4.1): the config (`openclaw.json`, legacy `clawdbot.json` /
//! `moltbot.json`) and its `.bak*` backups, the config `env` block, `.env` / `openclaw.env` /
//! `~/.config/openclaw/gateway.env`, systemd user units `*-gateway*.service` (`Environment=` and
//! the files named by `EnvironmentFile=`), `agents/*/agent/auth-profiles.json`,
//! `agents/*/agent/models.json`, and the paired device / node stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::catalogue::Catalogue;
use crate::error::{Error, Result, read_err};
use crate::fingerprint::{Fingerprint, FingerprintKey};

/// Config file names, newest first.
const CONFIG_NAMES: &[&str] = &["openclaw.json", "clawdbot.json", "moltbot.json"];

/// What kind of file a location is in (also the order in which an item's id is chosen).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The gateway config.
    Config,
    /// The moltvault secrets store (the config holds an exec SecretRef to it).
    Vault,
    /// An env file (`.env`, `openclaw.env`, an `EnvironmentFile=`).
    EnvFile,
    /// A systemd user unit's `Environment=` line.
    Unit,
    /// An agent's `auth-profiles.json`.
    AuthProfile,
    /// An agent's generated `models.json`.
    Models,
    /// The paired devices / nodes store.
    Devices,
    /// A config backup (`openclaw.json.bak`, `.bak.1`…).
    Backup,
}

/// How the value is addressed inside its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Key {
    /// A JSON pointer in a JSON / JSON5 file.
    Json {
        /// The RFC 6901 pointer.
        pointer: String,
    },
    /// A `KEY=value` line of an env file.
    Env {
        /// The variable name.
        name: String,
    },
    /// A `KEY=value` assignment on an `Environment=` line of a systemd unit.
    Systemd {
        /// The variable name.
        name: String,
    },
    /// An entry of the moltvault secrets store (the location's path is the store's index).
    Vault {
        /// The store id (the exec SecretRef id).
        id: String,
    },
}

/// One place a secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// The kind of file.
    pub role: Role,
    /// Where in the file.
    pub key: Key,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Key::Json { pointer } => write!(f, "{}#{}", self.path.display(), pointer),
            Key::Env { name } => write!(f, "{}:{}", self.path.display(), name),
            Key::Systemd { name } => write!(f, "{}:Environment={}", self.path.display(), name),
            Key::Vault { id } => write!(f, "vault:{id}"),
        }
    }
}

/// One secret: a distinct value of one provider, with all the places it is stored.
pub struct Secret {
    /// Stable id, from its most authoritative location (`gateway.auth.token`,
    /// `env.OPENAI_API_KEY`, `auth-profiles.main.anthropic:manual`, …).
    pub id: String,
    /// Catalogue provider id.
    pub provider: String,
    /// The value (kept in memory only).
    pub value: SecretString,
    /// Keyed fingerprint of the value.
    pub fingerprint: Fingerprint,
    /// Every place it is stored, most authoritative first.
    pub locations: Vec<Location>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("value", &"[REDACTED]")
            .field("fingerprint", &self.fingerprint)
            .field("locations", &self.locations)
            .finish()
    }
}

impl Secret {
    /// Whether every copy is in a backup (a stale value the live gateway no longer uses).
    pub fn only_in_backups(&self) -> bool {
        self.locations.iter().all(|l| l.role == Role::Backup)
    }
}

/// Where to look.
#[derive(Debug, Default)]
pub struct InventoryOptions {
    /// The gateway state dir (`~/.openclaw`).
    pub state_dir: PathBuf,
    /// The user's home (for `~/.config/systemd/user` and `~/.config/openclaw`).
    pub home: PathBuf,
    /// Secrets found by another inventory (the gateway crate's `configured_secrets`), merged:
    /// their extra locations join the secret with the same value (when they read back the same
    /// value), the rest becomes notes.
    pub extra: Vec<ExtraSecret>,
    /// The moltvault vault: config SecretRefs to its exec provider become [`Key::Vault`]
    /// locations (when unlocked) or [`Inventory::locked`] items (when not).
    pub vault: Option<VaultAccess>,
}

/// Access to the moltvault secrets store for reading and rewriting [`Key::Vault`] locations.
pub struct VaultAccess {
    /// The vault directory (holding `secrets/`).
    pub dir: PathBuf,
    /// The vault's public key: new values are encrypted to it (no unlock needed).
    pub recipient: age::x25519::Recipient,
    /// The unlocked identity, needed to read a stored value; `None` when locked.
    pub identity: Option<moltvault_vault::Identity>,
}

impl std::fmt::Debug for VaultAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultAccess")
            .field("dir", &self.dir)
            .field("unlocked", &self.identity.is_some())
            .finish()
    }
}

/// A config SecretRef to the moltvault store that could not be read because the vault is
/// locked (no value, no fingerprint: the store's fp8 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedRef {
    /// The item id it would have (the config key, e.g. `gateway.auth.token`).
    pub item: String,
    /// The store id.
    pub id: String,
    /// The store's provider label.
    pub provider: String,
    /// The store's fp8 of the value.
    pub fp8: String,
}

/// A secret found by another inventory, to merge into this one.
pub struct ExtraSecret {
    /// Its id in that inventory.
    pub id: String,
    /// The value.
    pub value: SecretString,
    /// Places this crate can read and rewrite.
    pub locations: Vec<Location>,
    /// Places it cannot rewrite (a SQLite row, a token file), described for the user.
    pub elsewhere: Vec<String>,
}

impl std::fmt::Debug for ExtraSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraSecret")
            .field("id", &self.id)
            .field("value", &"[REDACTED]")
            .field("locations", &self.locations)
            .field("elsewhere", &self.elsewhere)
            .finish()
    }
}

/// Every secret found, plus notes on what was skipped.
#[derive(Debug, Default)]
pub struct Inventory {
    /// The secrets, in rotation order (class, then id).
    pub secrets: Vec<Secret>,
    /// What was seen but not handled (SecretRefs, `${VAR}` references), no values.
    pub notes: Vec<String>,
    /// Config SecretRefs to the moltvault store that need an unlocked vault to rotate.
    pub locked: Vec<LockedRef>,
}

struct Found {
    provider: String,
    value: String,
    loc: Location,
    slot: String,
}

/// Discovers the inventory.
///
/// # Errors
/// Fails when a file that exists cannot be read or parsed.
pub fn discover(
    opts: &InventoryOptions,
    catalogue: &Catalogue,
    key: &FingerprintKey,
) -> Result<Inventory> {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let mut locked = Vec::new();
    let sd = &opts.state_dir;
    for name in CONFIG_NAMES {
        let path = sd.join(name);
        if path.is_file() {
            scan_config(&path, Role::Config, catalogue, &mut found, &mut notes)?;
            if let Some(vault) = &opts.vault {
                scan_vault_refs(&path, vault, catalogue, &mut found, &mut notes, &mut locked)?;
            }
        }
        let mut backups: Vec<PathBuf> = list_dir(sd)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}.bak")))
            })
            .collect();
        backups.sort();
        for b in backups {
            if b.is_file() {
                // A backup that does not parse is residue for the sweep, not an error.
                let _ = scan_config(&b, Role::Backup, catalogue, &mut found, &mut notes);
            }
        }
    }
    let mut env_files = vec![
        sd.join(".env"),
        sd.join("openclaw.env"),
        opts.home.join(".config/openclaw/gateway.env"),
    ];
    let unit_dir = opts.home.join(".config/systemd/user");
    let mut units: Vec<PathBuf> = list_dir(&unit_dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("gateway") && n.ends_with(".service"))
        })
        .collect();
    units.sort();
    for u in &units {
        let text = read_text(u)?;
        for (name, value) in systemd_env(&text) {
            if let Some(p) = catalogue.for_env(&name) {
                found.push(Found {
                    provider: p.id.clone(),
                    value,
                    slot: format!("env.{name}"),
                    loc: Location {
                        path: u.clone(),
                        role: Role::Unit,
                        key: Key::Systemd { name },
                    },
                });
            }
        }
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("EnvironmentFile=") {
                let p = rest.trim().trim_start_matches('-');
                let p = p.replace("%h", &opts.home.to_string_lossy());
                env_files.push(PathBuf::from(p));
            }
        }
    }
    env_files.dedup();
    for f in &env_files {
        if !f.is_file() {
            continue;
        }
        let text = read_text(f)?;
        for (name, value) in env_lines(&text) {
            if let Some(p) = catalogue.for_env(&name) {
                found.push(Found {
                    provider: p.id.clone(),
                    value,
                    slot: format!("env.{name}"),
                    loc: Location {
                        path: f.clone(),
                        role: Role::EnvFile,
                        key: Key::Env { name },
                    },
                });
            }
        }
    }
    for agent_dir in list_dir(&sd.join("agents")) {
        let agent = agent_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ap = agent_dir.join("agent/auth-profiles.json");
        if ap.is_file() {
            let v = parse_json(&ap)?;
            if let Some(Value::Object(profiles)) = v.get("profiles") {
                for (pid, prof) in profiles {
                    let prov = prof.get("provider").and_then(Value::as_str).unwrap_or("");
                    for field in ["key", "token"] {
                        if let Some(Value::String(s)) = prof.get(field) {
                            if is_reference(s) {
                                continue;
                            }
                            if let Some(p) = catalogue.for_profile(prov, s) {
                                found.push(Found {
                                    provider: p.id.clone(),
                                    value: s.clone(),
                                    slot: format!("auth-profiles.{agent}.{pid}"),
                                    loc: Location {
                                        path: ap.clone(),
                                        role: Role::AuthProfile,
                                        key: Key::Json {
                                            pointer: format!(
                                                "/profiles/{}/{field}",
                                                escape_pointer(pid)
                                            ),
                                        },
                                    },
                                });
                            }
                        }
                    }
                }
            }
        }
        let mj = agent_dir.join("agent/models.json");
        if mj.is_file() {
            let v = parse_json(&mj)?;
            if let Some(Value::Object(provs)) = v.get("providers") {
                for (pname, prov) in provs {
                    if let Some(Value::String(s)) = prov.get("apiKey") {
                        if is_reference(s) {
                            continue;
                        }
                        let cfg_ptr = format!("/models/providers/{}/apiKey", escape_pointer(pname));
                        if let Some(p) = catalogue.for_pointer(&cfg_ptr) {
                            found.push(Found {
                                provider: p.id.clone(),
                                value: s.clone(),
                                slot: format!("models.providers.{pname}.apiKey"),
                                loc: Location {
                                    path: mj.clone(),
                                    role: Role::Models,
                                    key: Key::Json {
                                        pointer: format!(
                                            "/providers/{}/apiKey",
                                            escape_pointer(pname)
                                        ),
                                    },
                                },
                            });
                        }
                    }
                }
            }
        }
    }
    for store in ["devices/paired.json", "nodes/paired.json"] {
        let path = sd.join(store);
        if !path.is_file() {
            continue;
        }
        let v = parse_json(&path)?;
        let mut leaves = Vec::new();
        collect_strings(&v, String::new(), &mut leaves);
        for (ptr, s) in leaves {
            let last = ptr.rsplit('/').next().unwrap_or("");
            if last == "token" && s.len() >= 16 {
                let what = store.split('/').next().unwrap_or("devices");
                found.push(Found {
                    provider: "device-token".into(),
                    value: s,
                    slot: format!("{what}{}", ptr.replace('/', ".")),
                    loc: Location {
                        path: path.clone(),
                        role: Role::Devices,
                        key: Key::Json { pointer: ptr },
                    },
                });
            }
        }
    }

    // Group by (provider, value): one secret per distinct value of one provider.
    let mut groups: BTreeMap<(String, String), Vec<Found>> = BTreeMap::new();
    for f in found {
        groups
            .entry((f.provider.clone(), f.value.clone()))
            .or_default()
            .push(f);
    }
    let mut secrets = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for ((provider, value), mut fs) in groups {
        fs.sort_by(|a, b| a.loc.role.cmp(&b.loc.role).then(a.slot.cmp(&b.slot)));
        let mut id = fs[0].slot.clone();
        if fs[0].loc.role == Role::Backup {
            id = format!("backup.{id}");
        }
        let mut n = 2;
        let base = id.clone();
        while !ids.insert(id.clone()) {
            id = format!("{base}#{n}");
            n += 1;
        }
        let value = SecretString::from(value);
        let fingerprint = key.fingerprint(value.expose_secret().as_bytes());
        let mut locations: Vec<Location> = Vec::new();
        for f in fs {
            if !locations.contains(&f.loc) {
                locations.push(f.loc);
            }
        }
        secrets.push(Secret {
            id,
            provider,
            value,
            fingerprint,
            locations,
        });
    }
    merge_extra(
        &opts.extra,
        &mut secrets,
        &mut notes,
        key,
        catalogue,
        &mut ids,
    );
    secrets.sort_by(|a, b| {
        let ca = catalogue.get(&a.provider).map(|p| p.class);
        let cb = catalogue.get(&b.provider).map(|p| p.class);
        let da = a.provider == "device-token";
        let db = b.provider == "device-token";
        (ca, da, &a.id).cmp(&(cb, db, &b.id))
    });
    Ok(Inventory {
        secrets,
        notes,
        locked,
    })
}

/// The names of the config's exec providers that run `moltvault … secrets provide`.
fn moltvault_providers(config: &Value) -> Vec<String> {
    let Some(Value::Object(m)) = config.pointer("/secrets/providers") else {
        return Vec::new();
    };
    m.iter()
        .filter(|(_, p)| {
            let args: Vec<&str> = p
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            p.get("source").and_then(Value::as_str) == Some("exec")
                && args.ends_with(&["secrets", "provide"])
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Turns the config's exec SecretRefs to moltvault's provider whose id is in the store into
/// [`Key::Vault`] locations (revealing the value with the unlocked identity), or into
/// [`LockedRef`]s when the vault is locked.
fn scan_vault_refs(
    path: &Path,
    vault: &VaultAccess,
    catalogue: &Catalogue,
    found: &mut Vec<Found>,
    notes: &mut Vec<String>,
    locked: &mut Vec<LockedRef>,
) -> Result<()> {
    let v = parse_json(path)?;
    let names = moltvault_providers(&v);
    if names.is_empty() {
        return Ok(());
    }
    let store = moltvault_vault::secrets_store::SecretsStore::open(&vault.dir)?;
    let mut refs = Vec::new();
    collect_secret_refs(&v, String::new(), &mut refs);
    for ptr in refs {
        let Some(r) = v.pointer(&ptr) else { continue };
        let source = r.get("source").and_then(Value::as_str);
        let provider = r.get("provider").and_then(Value::as_str).unwrap_or("");
        let Some(id) = r.get("id").and_then(Value::as_str) else {
            continue;
        };
        if source != Some("exec") || !names.iter().any(|n| n == provider) {
            continue;
        }
        let Some(meta) = store.get(id) else { continue };
        let Some(p) = catalogue
            .for_pointer(&ptr)
            .or_else(|| catalogue.get(&meta.provider))
        else {
            continue;
        };
        let slot = ptr
            .trim_start_matches('/')
            .split('/')
            .map(unescape_pointer)
            .collect::<Vec<_>>()
            .join(".");
        let generic = format!("{}#{ptr} is a SecretRef:", path.display());
        notes.retain(|n| !n.starts_with(&generic));
        let Some(identity) = &vault.identity else {
            notes.push(format!(
                "{}#{ptr} is a SecretRef to the moltvault store (id {id}, fp {}): unlock the vault (--passphrase-file, --identity or MOLTVAULT_PASSPHRASE) to rotate it",
                path.display(),
                meta.fp8
            ));
            locked.push(LockedRef {
                item: slot,
                id: id.to_string(),
                provider: meta.provider.clone(),
                fp8: meta.fp8.clone(),
            });
            continue;
        };
        let Some(value) = store.reveal(id, identity)? else {
            continue;
        };
        notes.push(format!(
            "{}#{ptr} is a SecretRef to the moltvault store (id {id}): the store's value is rotated, the config keeps the reference",
            path.display()
        ));
        found.push(Found {
            provider: p.id.clone(),
            value: value.expose_secret().to_string(),
            slot,
            loc: Location {
                path: store.dir().join(moltvault_vault::secrets_store::INDEX_FILE),
                role: Role::Vault,
                key: Key::Vault { id: id.to_string() },
            },
        });
    }
    Ok(())
}

/// Merges another inventory's findings: verified extra locations join the secret with the same
/// value; places that cannot be rewritten and unknown secrets become notes (never values).
fn merge_extra(
    extra: &[ExtraSecret],
    secrets: &mut Vec<Secret>,
    notes: &mut Vec<String>,
    key: &FingerprintKey,
    catalogue: &Catalogue,
    ids: &mut std::collections::HashSet<String>,
) {
    for x in extra {
        let v = x.value.expose_secret();
        if v.is_empty() {
            continue;
        }
        if !secrets.iter().any(|s| s.value.expose_secret() == v) {
            // Not found here (e.g. in an `$include`d file): adopt it when its id names a
            // catalogue slot and at least one of its places reads back the value.
            let provider = match x.id.strip_prefix("env:") {
                Some(name) => catalogue.for_env(name),
                None => catalogue.for_pointer(&format!("/{}", x.id.replace('.', "/"))),
            };
            let readable = x
                .locations
                .iter()
                .any(|l| matches!(read_location(l), Ok(Some(cur)) if cur.expose_secret() == v));
            if let Some(p) = provider.filter(|_| readable) {
                let mut id = x.id.clone();
                while !ids.insert(id.clone()) {
                    id.push_str("#gw");
                }
                secrets.push(Secret {
                    id,
                    provider: p.id.clone(),
                    value: x.value.clone(),
                    fingerprint: key.fingerprint(v.as_bytes()),
                    locations: Vec::new(),
                });
            }
        }
        let Some(s) = secrets.iter_mut().find(|s| s.value.expose_secret() == v) else {
            let mut files: Vec<String> = x
                .locations
                .iter()
                .map(|l| l.path.display().to_string())
                .chain(x.elsewhere.iter().cloned())
                .collect();
            files.sort();
            files.dedup();
            notes.push(format!(
                "{} ({}) is not rotated by moltvault: rotate it by hand where it is stored: {}",
                x.id,
                key.fingerprint(v.as_bytes()),
                files.join(", ")
            ));
            continue;
        };
        for loc in &x.locations {
            let known = s.locations.iter().any(|l| {
                l == loc
                    || (l.path == loc.path
                        && matches!((&l.key, &loc.key),
                            (Key::Json { pointer: a }, Key::Json { pointer: b }) if a == b))
            });
            if known {
                continue;
            }
            // Only a place that reads back the same value now can be rewritten safely.
            match read_location(loc) {
                Ok(Some(cur)) if cur.expose_secret() == v => s.locations.push(loc.clone()),
                _ => notes.push(format!(
                    "{}: {loc} could not be read back; update it by hand",
                    s.id
                )),
            }
        }
        for e in &x.elsewhere {
            notes.push(format!(
                "{}: also stored in {e}; moltvault does not rewrite it: update it by hand (or run `moltvault redact`)",
                s.id
            ));
        }
    }
}

fn scan_config(
    path: &Path,
    role: Role,
    catalogue: &Catalogue,
    found: &mut Vec<Found>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let v = parse_json(path)?;
    let mut leaves = Vec::new();
    collect_strings(&v, String::new(), &mut leaves);
    for (ptr, s) in leaves {
        let provider = if let Some(name) = ptr
            .strip_prefix("/env/vars/")
            .or_else(|| ptr.strip_prefix("/env/"))
            .filter(|n| !n.contains('/'))
        {
            catalogue.for_env(name)
        } else {
            catalogue.for_pointer(&ptr)
        };
        let Some(p) = provider else { continue };
        if is_reference(&s) {
            if role == Role::Config {
                notes.push(format!(
                    "{}#{ptr} refers to an environment variable; the variable's own sink is rotated",
                    path.display()
                ));
            }
            continue;
        }
        found.push(Found {
            provider: p.id.clone(),
            value: s,
            slot: ptr
                .trim_start_matches('/')
                .split('/')
                .map(unescape_pointer)
                .collect::<Vec<_>>()
                .join("."),
            loc: Location {
                path: path.to_path_buf(),
                role,
                key: Key::Json { pointer: ptr },
            },
        });
    }
    // SecretRef objects ({source, provider, id}) are noted: their store is rotated instead.
    let mut refs = Vec::new();
    collect_secret_refs(&v, String::new(), &mut refs);
    if role == Role::Config {
        for r in refs {
            notes.push(format!(
                "{}#{r} is a SecretRef: rotate the value in its secret store, then run `openclaw secrets reload`",
                path.display()
            ));
        }
    }
    Ok(())
}

fn is_reference(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}')
}

fn collect_strings(v: &Value, ptr: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((ptr, s.clone())),
        Value::Object(m) => {
            for (k, v) in m {
                collect_strings(v, format!("{ptr}/{}", escape_pointer(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                collect_strings(v, format!("{ptr}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn collect_secret_refs(v: &Value, ptr: String, out: &mut Vec<String>) {
    if let Value::Object(m) = v {
        if m.contains_key("source") && m.contains_key("id") && m.len() <= 4 {
            out.push(ptr);
            return;
        }
        for (k, v) in m {
            collect_secret_refs(v, format!("{ptr}/{}", escape_pointer(k)), out);
        }
    }
}

fn escape_pointer(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(k: &str) -> String {
    k.replace("~1", "/").replace("~0", "~")
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

pub(crate) fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| read_err(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Fs(moltvault_vault::fsio::FsError::Symlink(
            path.to_path_buf(),
        )));
    }
    std::fs::read_to_string(path).map_err(|e| read_err(path, e))
}

pub(crate) fn parse_json(path: &Path) -> Result<Value> {
    let text = read_text(path)?;
    parse_json_text(path, &text)
}

fn parse_json_text(path: &Path, text: &str) -> Result<Value> {
    serde_json::from_str(text).or_else(|_| {
        json5::from_str::<Value>(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            format: "JSON5",
            // json5 errors quote positions, not content.
            detail: e.to_string().chars().take(120).collect(),
        })
    })
}

/// Parses `KEY=value` lines (with optional `export ` and quotes).
fn env_lines(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
        if let Some((k, v)) = l.split_once('=') {
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            out.push((k.to_string(), unquote(v.trim()).to_string()));
        }
    }
    out
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Parses the assignments of every `Environment=` line of a unit.
fn systemd_env(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("Environment=") else {
            continue;
        };
        for word in split_systemd_words(rest) {
            if let Some((k, v)) = word.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn split_systemd_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Reads the value a location holds now (`None` when the key or file is gone).
///
/// # Errors
/// Fails when the file exists but cannot be read or parsed.
pub fn read_location(loc: &Location) -> Result<Option<SecretString>> {
    read_location_in(loc, None)
}

/// Reads the value a location holds now, with access to the moltvault vault for
/// [`Key::Vault`] locations (`None` when the key, file or store entry is gone).
///
/// # Errors
/// Fails when the file exists but cannot be read or parsed, and for a [`Key::Vault`] location
/// with [`Error::VaultLocked`] when `vault` is `None` or locked.
pub fn read_location_in(
    loc: &Location,
    vault: Option<&VaultAccess>,
) -> Result<Option<SecretString>> {
    if let Key::Vault { id } = &loc.key {
        let Some((vault, identity)) = vault.and_then(|v| v.identity.as_ref().map(|i| (v, i)))
        else {
            return Err(Error::VaultLocked { item: id.clone() });
        };
        let store = moltvault_vault::secrets_store::SecretsStore::open(&vault.dir)?;
        return Ok(store.reveal(id, identity)?);
    }
    if !loc.path.exists() {
        return Ok(None);
    }
    let text = read_text(&loc.path)?;
    let v = match &loc.key {
        Key::Json { pointer } => parse_json_text(&loc.path, &text)?
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string),
        Key::Env { name } => env_lines(&text)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v),
        Key::Systemd { name } => systemd_env(&text)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v),
        Key::Vault { .. } => None,
    };
    Ok(v.map(SecretString::from))
}

/// Replaces the value at a location with `new`, if it currently holds the value whose
/// fingerprint is `old_fp` (so a resumed run needs no copy of the old value), through the
/// atomic write funnel, keeping the file's mode and owner and the rest of its text.
///
/// Returns `false` (and writes nothing) when the location already holds `new`.
///
/// # Errors
/// [`Error::Conflict`] when the location holds neither value; I/O and parse errors otherwise.
///
/// `siblings` are all the locations of the same item: when every copy of the old value in a
/// JSON file is one of them, all are replaced in the text at once (keeping JSON5 comments and
/// formatting); otherwise only `loc`'s key is rewritten.
pub fn write_location(
    item: &str,
    loc: &Location,
    siblings: &[Location],
    key: &FingerprintKey,
    old_fp: Fingerprint,
    new: &SecretString,
) -> Result<bool> {
    write_location_in(item, loc, siblings, key, old_fp, new, None)
}

/// [`write_location`] with access to the moltvault vault: a [`Key::Vault`] location is
/// replaced in the secrets store (keeping its provider and origin, with the new value's fp8);
/// the config's SecretRef is left as it is.
///
/// # Errors
/// As [`write_location`], plus [`Error::VaultLocked`] and store errors for a vault location.
pub fn write_location_in(
    item: &str,
    loc: &Location,
    siblings: &[Location],
    key: &FingerprintKey,
    old_fp: Fingerprint,
    new: &SecretString,
    vault: Option<&VaultAccess>,
) -> Result<bool> {
    let old = match read_location_in(loc, vault)? {
        Some(c) if c.expose_secret() == new.expose_secret() => return Ok(false),
        Some(c) if key.fingerprint(c.expose_secret().as_bytes()) == old_fp => c,
        _ => {
            return Err(Error::Conflict {
                item: item.to_string(),
                location: loc.to_string(),
            });
        }
    };
    if let (Key::Vault { id }, Some(vault)) = (&loc.key, vault) {
        let mut store = moltvault_vault::secrets_store::SecretsStore::open(&vault.dir)?;
        let meta = store.get(id).cloned().ok_or_else(|| Error::Conflict {
            item: item.to_string(),
            location: loc.to_string(),
        })?;
        let fp8 = key.fingerprint(new.expose_secret().as_bytes()).fp8();
        store.set(
            id,
            new,
            &vault.recipient,
            moltvault_vault::secrets_store::NewSecret {
                provider: meta.provider,
                origin: meta.origin,
                fp8,
            },
        )?;
        return Ok(true);
    }
    let text = read_text(&loc.path)?;
    let (o, n) = (old.expose_secret(), new.expose_secret());
    let updated = match &loc.key {
        Key::Json { pointer } => {
            let same_item: Vec<&str> = siblings
                .iter()
                .filter(|l| l.path == loc.path)
                .filter_map(|l| match &l.key {
                    Key::Json { pointer } => Some(pointer.as_str()),
                    _ => None,
                })
                .chain([pointer.as_str()])
                .collect();
            rewrite_json(&loc.path, &text, pointer, &same_item, o, n)?
        }
        Key::Env { name } => rewrite_lines(&text, |line| {
            let l = line.trim_start();
            let body = l.strip_prefix("export ").unwrap_or(l).trim_start();
            match body.split_once('=') {
                Some((k, v)) if k.trim() == name && unquote(v.trim()) == o => {
                    Some(line.replacen(o, n, 1))
                }
                _ => None,
            }
        }),
        Key::Systemd { name } => rewrite_lines(&text, |line| {
            if !line.trim_start().starts_with("Environment=") {
                return None;
            }
            let needle = format!("{name}={o}");
            line.contains(&needle)
                .then(|| line.replace(&needle, &format!("{name}={n}")))
        }),
        Key::Vault { .. } => {
            return Err(Error::VaultLocked {
                item: item.to_string(),
            });
        }
    };
    let opts = moltvault_vault::fsio::WriteOptions::like_existing(&loc.path)?;
    moltvault_vault::fsio::write_atomic(&loc.path, updated.as_bytes(), opts)?;
    Ok(true)
}

fn rewrite_lines(text: &str, mut f: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for chunk in text.split_inclusive('\n') {
        let (line, nl) = match chunk.strip_suffix('\n') {
            Some(l) => (l, "\n"),
            None => (chunk, ""),
        };
        match f(line) {
            Some(new) => out.push_str(&new),
            None => out.push_str(line),
        }
        out.push_str(nl);
    }
    out
}

/// Rewrites one JSON value: in place in the text when every occurrence of the old literal in
/// the file is at `pointer` or another location of the same item (keeps JSON5 comments and
/// formatting), else by re-serialising strict JSON.
fn rewrite_json(
    path: &Path,
    text: &str,
    pointer: &str,
    same_item: &[&str],
    old: &str,
    new: &str,
) -> Result<String> {
    let v = parse_json_text(path, text)?;
    let mut leaves = Vec::new();
    collect_strings(&v, String::new(), &mut leaves);
    let equal: Vec<&String> = leaves
        .iter()
        .filter(|(_, s)| s == old)
        .map(|(p, _)| p)
        .collect();
    let lit_old = serde_json::to_string(old).expect("strings serialise");
    let lit_new = serde_json::to_string(new).expect("strings serialise");
    // JSON5 also allows single-quoted strings.
    let sq_old = format!("'{old}'");
    let sq_new = format!("'{new}'");
    let occurrences = text.matches(&lit_old).count() + text.matches(&sq_old).count();
    if !equal.is_empty()
        && equal.iter().all(|p| same_item.contains(&p.as_str()))
        && occurrences == equal.len()
    {
        return Ok(text.replace(&lit_old, &lit_new).replace(&sq_old, &sq_new));
    }
    let mut strict: Value = serde_json::from_str(text).map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        format: "strict JSON (the value occurs more than once in a JSON5 file)",
        detail: String::new(),
    })?;
    match strict.pointer_mut(pointer) {
        Some(slot) => *slot = Value::String(new.to_string()),
        None => {
            return Err(Error::Conflict {
                item: pointer.to_string(),
                location: path.display().to_string(),
            });
        }
    }
    let mut out = serde_json::to_string_pretty(&strict).expect("values serialise");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn key() -> FingerprintKey {
        FingerprintKey::from_bytes([7; 32])
    }

    #[test]
    fn vault_refs_are_locations_when_unlocked_and_locked_items_otherwise() {
        use moltvault_vault::secrets_store::{NewSecret, SecretsStore};
        let d = tempfile::tempdir().unwrap();
        let sd = d.path().join(".openclaw");
        std::fs::create_dir_all(&sd).unwrap();
        let vault_dir = d.path().join("vault");
        let identity = moltvault_vault::Identity::generate();
        let recipient = identity.to_public();
        let (old, new) = ("b".repeat(64), "c".repeat(64));
        let k = key();
        let mut store = SecretsStore::open(&vault_dir).unwrap();
        let meta = || NewSecret {
            provider: "gateway".into(),
            origin: "config:gateway.auth.token".into(),
            fp8: "00000000".into(),
        };
        store
            .set("gw", &SecretString::from(old.clone()), &recipient, meta())
            .unwrap();
        #[allow(clippy::disallowed_methods)]
        std::fs::write(
            sd.join("openclaw.json"),
            r#"{"gateway":{"auth":{"token":{"source":"exec","provider":"mv","id":"gw"}}},
                "secrets":{"providers":{"mv":{"source":"exec","command":"/bin/mv",
                "args":["--vault-dir","/v","secrets","provide"]}}}}"#,
        )
        .unwrap();
        let opts = |identity| InventoryOptions {
            state_dir: sd.clone(),
            home: d.path().into(),
            extra: vec![],
            vault: Some(VaultAccess {
                dir: vault_dir.clone(),
                recipient: recipient.clone(),
                identity,
            }),
        };
        let cat = Catalogue::builtin().unwrap();

        let locked = discover(&opts(None), &cat, &k).unwrap();
        assert!(locked.secrets.is_empty());
        assert_eq!(locked.locked[0].item, "gateway.auth.token");
        assert_eq!(locked.locked[0].fp8, "00000000");
        let access = opts(None).vault.unwrap();
        assert!(!format!("{access:?}").contains("AGE-SECRET-KEY"));

        let unlocked = opts(Some(identity));
        let access = unlocked.vault.as_ref();
        let inv = discover(&unlocked, &cat, &k).unwrap();
        assert!(inv.locked.is_empty());
        let s = &inv.secrets[0];
        assert_eq!(s.id, "gateway.auth.token");
        assert_eq!(s.locations.len(), 1);
        let loc = &s.locations[0];
        assert_eq!(loc.to_string(), "vault:gw");
        assert_eq!(loc.role, Role::Vault);
        assert_eq!(s.fingerprint, k.fingerprint(old.as_bytes()));
        // No access: a clear error, not a silent skip; another identity cannot read it.
        assert!(matches!(read_location(loc), Err(Error::VaultLocked { .. })));
        let other = opts(Some(moltvault_vault::Identity::generate()));
        assert!(read_location_in(loc, other.vault.as_ref()).is_err());

        let new = SecretString::from(new);
        let old_fp = s.fingerprint;
        assert!(write_location_in("g", loc, &[], &k, old_fp, &new, access).unwrap());
        let now = read_location_in(loc, access).unwrap().unwrap();
        assert_eq!(now.expose_secret(), new.expose_secret());
        let m = SecretsStore::open(&vault_dir)
            .unwrap()
            .get("gw")
            .cloned()
            .unwrap();
        assert_eq!(
            (m.provider.as_str(), m.origin.as_str()),
            ("gateway", "config:gateway.auth.token")
        );
        assert_eq!(m.fp8, k.fingerprint(new.expose_secret().as_bytes()).fp8());
        // Again (a resumed run): the new value is there already, nothing is written.
        assert!(!write_location_in("g", loc, &[], &k, old_fp, &new, access).unwrap());
        // Changed behind the run: a conflict, the store is left alone.
        let third = SecretString::from("d".repeat(64));
        assert!(matches!(
            write_location_in("g", loc, &[], &k, k.fingerprint(b"x"), &third, access),
            Err(Error::Conflict { .. })
        ));
        let now = read_location_in(loc, access).unwrap().unwrap();
        assert_eq!(now.expose_secret(), new.expose_secret());
    }

    #[test]
    fn discovers_config_env_unit_profiles_and_groups_by_value() {
        let d = tempfile::tempdir().unwrap();
        let sd = d.path().join(".openclaw");
        std::fs::create_dir_all(sd.join("agents/main/agent")).unwrap();
        let gw = "a".repeat(48);
        std::fs::write(
            sd.join("openclaw.json"),
            format!(
                "{{\"gateway\":{{\"auth\":{{\"token\":\"{gw}\"}},\"port\":1}},\"models\":{{\"providers\":{{\"x\":{{\"apiKey\":\"${{X_KEY}}\"}}}}}}}}"
            ),
        )
        .unwrap();
        std::fs::write(
            sd.join("openclaw.json.bak"),
            format!("{{\"gateway\":{{\"auth\":{{\"token\":\"{gw}\"}}}}}}"),
        )
        .unwrap();
        std::fs::write(sd.join(".env"), "export OPENAI_API_KEY=\"sk-one\"\n").unwrap();
        std::fs::write(
            sd.join("included.json5"),
            format!("{{ auth: {{ token: '{gw}' }} }}"),
        )
        .unwrap();
        let units = d.path().join(".config/systemd/user");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(
            units.join("openclaw-gateway.service"),
            format!("[Service]\nEnvironment=\"OPENCLAW_GATEWAY_TOKEN={gw}\" HOME=/x\n"),
        )
        .unwrap();
        std::fs::write(
            sd.join("agents/main/agent/auth-profiles.json"),
            "{\"profiles\":{\"openai:default\":{\"provider\":\"openai\",\"key\":\"sk-one\"}}}",
        )
        .unwrap();
        let inv = discover(
            &InventoryOptions {
                state_dir: sd.clone(),
                home: d.path().into(),
                extra: vec![
                    ExtraSecret {
                        id: "includes".into(),
                        value: SecretString::from(gw.clone()),
                        locations: vec![Location {
                            path: sd.join("included.json5"),
                            role: Role::Config,
                            key: Key::Json {
                                pointer: "/auth/token".into(),
                            },
                        }],
                        elsewhere: vec!["agent.sqlite auth_profile_store".into()],
                    },
                    ExtraSecret {
                        id: "mystery".into(),
                        value: SecretString::from("zzzzzzzzzzzzzzzzzzzzzz"),
                        locations: vec![],
                        elsewhere: vec!["somewhere".into()],
                    },
                ],
                vault: None,
            },
            &Catalogue::builtin().unwrap(),
            &key(),
        )
        .unwrap();
        let ids: Vec<&str> = inv.secrets.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["gateway.auth.token", "env.OPENAI_API_KEY"]);
        assert_eq!(inv.secrets[0].locations.len(), 4, "{:?}", inv.secrets[0]);
        assert_eq!(inv.secrets[1].locations.len(), 2);
        assert_eq!(inv.notes.len(), 3, "{:?}", inv.notes);
        assert!(!inv.notes.concat().contains("zzzz"));
        assert!(!format!("{:?}", inv.secrets[0]).contains(&gw));
    }

    #[test]
    fn writes_keep_formatting_and_refuse_conflicts() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        let text = "// comment\n{\n  gateway: { auth: { token: \"old-token-value\" }, remote: { token: 'old-token-value' } }, // x\n}\n";
        std::fs::write(&p, text).unwrap();
        let loc = Location {
            path: p.clone(),
            role: Role::Config,
            key: Key::Json {
                pointer: "/gateway/auth/token".into(),
            },
        };
        let remote = Location {
            key: Key::Json {
                pointer: "/gateway/remote/token".into(),
            },
            ..loc.clone()
        };
        let k = key();
        let old = k.fingerprint(b"old-token-value");
        let new = SecretString::from("new-token-value");
        assert!(write_location("g", &loc, std::slice::from_ref(&remote), &k, old, &new).unwrap());
        assert!(!write_location("g", &remote, std::slice::from_ref(&loc), &k, old, &new).unwrap());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            text.replace("old-token-value", "new-token-value")
        );
        assert!(!write_location("g", &loc, &[], &k, old, &new).unwrap());
        let other = k.fingerprint(b"other");
        assert!(matches!(
            write_location("g", &loc, &[], &k, other, &SecretString::from("z")),
            Err(Error::Conflict { .. })
        ));
        let u = d.path().join("u.service");
        std::fs::write(
            &u,
            "[Service]\nEnvironment=A=1 OPENCLAW_GATEWAY_TOKEN=old-token-value\n",
        )
        .unwrap();
        let loc = Location {
            path: u.clone(),
            role: Role::Unit,
            key: Key::Systemd {
                name: "OPENCLAW_GATEWAY_TOKEN".into(),
            },
        };
        assert!(write_location("g", &loc, &[], &k, old, &new).unwrap());
        assert_eq!(
            std::fs::read_to_string(&u).unwrap(),
            "[Service]\nEnvironment=A=1 OPENCLAW_GATEWAY_TOKEN=new-token-value\n"
        );
    }

    #[test]
    fn same_value_in_two_slots_of_different_kinds_is_rewritten_by_pointer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        std::fs::write(
            &p,
            "{\"gateway\":{\"auth\":{\"token\":\"same\"}},\"hooks\":{\"token\":\"same\"}}",
        )
        .unwrap();
        let loc = Location {
            path: p.clone(),
            role: Role::Config,
            key: Key::Json {
                pointer: "/hooks/token".into(),
            },
        };
        let k = key();
        write_location(
            "h",
            &loc,
            &[],
            &k,
            k.fingerprint(b"same"),
            &SecretString::from("fresh"),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["gateway"]["auth"]["token"], "same");
        assert_eq!(v["hooks"]["token"], "fresh");
    }
}
