//! The credential inventory: every secret the gateway holds, where it lives, and the files that
//! hold secrets.

use std::fs;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::Config;
use crate::discover::Gateway;
use crate::error::{Error, Result};

/// What a configured secret is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `gateway.auth.token` (or `*_GATEWAY_TOKEN`).
    GatewayToken,
    /// `gateway.auth.password` (or `*_GATEWAY_PASSWORD`).
    GatewayPassword,
    /// `gateway.remote.token`: the token this host uses to reach a remote gateway.
    RemoteToken,
    /// `gateway.remote.password`.
    RemotePassword,
    /// `hooks.token` / `hooks.gmail.pushToken`.
    HooksToken,
    /// A channel credential (bot token, app token, signing secret...).
    ChannelToken {
        /// The channel (`telegram`, `discord`, `slack`, ...).
        channel: String,
    },
    /// A model provider API key (config, `models.json` or a provider env var).
    ProviderKey {
        /// The provider id.
        provider: String,
    },
    /// A credential of an auth profile (`auth-profiles.json` or `auth_profile_store`).
    AuthProfile {
        /// The provider of the profile.
        provider: String,
    },
    /// A paired device's or the CLI's device token.
    DeviceToken,
    /// A paired node's token.
    NodeToken,
    /// The device identity private key.
    DeviceKey,
    /// A secret-looking variable of a `.env` file, the config `env` block or the service unit.
    EnvSecret,
    /// Any other secret-looking config value (`skills.entries.*.apiKey`, `talk.apiKey`, ...).
    Other,
}

/// Where one copy of a secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A JSON / JSON5 file, at a JSON pointer.
    Json {
        /// The file.
        file: PathBuf,
        /// RFC 6901 pointer to the string.
        pointer: String,
    },
    /// A `KEY=value` line of a dotenv file or an `Environment=` line of a service unit.
    Env {
        /// The file.
        file: PathBuf,
        /// The variable name.
        key: String,
    },
    /// A whole file holds the secret (e.g. `channels.telegram.tokenFile`).
    File {
        /// The file.
        file: PathBuf,
    },
    /// A JSON column of a SQLite row.
    Sqlite {
        /// The database.
        file: PathBuf,
        /// The table.
        table: String,
        /// The row's primary key.
        row_key: String,
        /// Pointer into the row's JSON.
        pointer: String,
    },
}

impl Location {
    /// The file this location is in.
    pub fn file(&self) -> &Path {
        match self {
            Location::Json { file, .. }
            | Location::Env { file, .. }
            | Location::File { file }
            | Location::Sqlite { file, .. } => file,
        }
    }
}

/// A reference the gateway resolves at runtime instead of a literal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// `"${VAR}"` / `"$VAR"` (or the legacy `secretref-env:VAR`).
    EnvVar(String),
    /// A SecretRef object `{source, provider, id}` (2026.2.26+).
    Ref {
        /// `env`, `file`, `exec` or `store`.
        source: String,
        /// The provider alias.
        provider: String,
        /// The id the provider resolves.
        id: String,
    },
}

/// A secret the gateway holds, with every place it is stored. `Debug` never shows the value.
#[derive(Debug, Clone)]
pub struct ConfiguredSecret {
    /// Stable id: `gateway.auth.token`, `models.providers.fake.apiKey`, `env:OPENAI_API_KEY`,
    /// `auth-profile:anthropic:manual`, ...
    pub id: String,
    /// What it is for.
    pub kind: SecretKind,
    /// The literal value, when stored in plaintext (`None` for references).
    pub value: Option<SecretString>,
    /// The reference, when the gateway resolves it at runtime instead.
    pub reference: Option<SecretRef>,
    /// Every place this value (or reference) is stored.
    pub locations: Vec<Location>,
    /// Whether a live source holds it (false: found only in config backups such as
    /// `openclaw.json.bak.2`, i.e. an old value).
    pub active: bool,
}

#[derive(Default)]
struct Inventory {
    items: Vec<ConfiguredSecret>,
    /// The home directory, for `~/` in `tokenFile` paths.
    home: PathBuf,
    /// Auth profile ids (`auth.profiles` keys and every store's profiles): 2026.9 writes a
    /// profile id as `models.providers.<id>.apiKey` to bind the provider to that profile.
    profile_ids: std::collections::BTreeSet<String>,
}

enum Found {
    Value(String),
    Ref(SecretRef),
}

impl Inventory {
    fn add(&mut self, id: String, kind: SecretKind, found: Found, loc: Location, active: bool) {
        let (value, reference) = match found {
            Found::Value(v) if v.trim().is_empty() => return,
            Found::Value(v) => (Some(v), None),
            Found::Ref(r) => (None, Some(r)),
        };
        if let Some(existing) = self.items.iter_mut().find(|s| {
            s.id == id
                && s.reference == reference
                && s.value.as_ref().map(|v| v.expose_secret()) == value.as_deref()
        }) {
            if !existing.locations.contains(&loc) {
                existing.locations.push(loc);
            }
            existing.active |= active;
            return;
        }
        self.items.push(ConfiguredSecret {
            id,
            kind,
            value: value.map(SecretString::from),
            reference,
            locations: vec![loc],
            active,
        });
    }
}

/// Escapes one RFC 6901 pointer segment.
fn esc(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn as_ref(v: &Value) -> Option<SecretRef> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if let Some(var) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                return Some(SecretRef::EnvVar(var.to_owned()));
            }
            if let Some(var) = s.strip_prefix("secretref-env:") {
                return Some(SecretRef::EnvVar(var.to_owned()));
            }
            let var = s.strip_prefix('$')?;
            (!var.is_empty()
                && var
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| SecretRef::EnvVar(var.to_owned()))
        }
        Value::Object(m) => {
            let source = m.get("source")?.as_str()?;
            let id = m.get("id")?.as_str()?;
            matches!(source, "env" | "file" | "exec" | "store").then(|| SecretRef::Ref {
                source: source.to_owned(),
                provider: m
                    .get("provider")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned(),
                id: id.to_owned(),
            })
        }
        _ => None,
    }
}

fn found(v: &Value) -> Option<Found> {
    if let Some(r) = as_ref(v) {
        return Some(Found::Ref(r));
    }
    v.as_str().map(|s| Found::Value(s.to_owned()))
}

const CHANNEL_SECRET_KEYS: [&str; 6] = [
    "botToken",
    "token",
    "appToken",
    "userToken",
    "signingSecret",
    "webhookSecret",
];

/// Whether a config key name looks like it holds a secret.
fn secret_key_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "apikey",
        "token",
        "password",
        "secret",
        "privatekey",
        "passphrase",
    ]
    .iter()
    .any(|s| k.ends_with(s))
}

/// Whether an environment variable name looks like it holds a secret.
pub fn secret_env_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let hit = [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "PRIVATE",
    ]
    .iter()
    .any(|w| n.contains(w));
    let excluded = ["_URL", "_PATH", "_FILE", "_DIR", "_PORT", "_MODE", "_ID"]
        .iter()
        .any(|s| n.ends_with(s));
    hit && !excluded
}

fn env_kind(name: &str) -> SecretKind {
    let n = name.to_ascii_uppercase();
    if n.ends_with("GATEWAY_TOKEN") {
        SecretKind::GatewayToken
    } else if n.ends_with("GATEWAY_PASSWORD") {
        SecretKind::GatewayPassword
    } else if let Some(ch) = ["TELEGRAM", "DISCORD", "SLACK"]
        .iter()
        .find(|c| n.starts_with(&format!("{c}_")))
    {
        SecretKind::ChannelToken {
            channel: ch.to_ascii_lowercase(),
        }
    } else if let Some(p) = n
        .strip_suffix("_API_KEY")
        .or_else(|| n.strip_suffix("_OAUTH_TOKEN"))
    {
        SecretKind::ProviderKey {
            provider: p.to_ascii_lowercase().replace('_', "-"),
        }
    } else {
        SecretKind::EnvSecret
    }
}

/// Classifies a config path (segments) as a secret-bearing key.
fn classify_config(path: &[String]) -> Option<SecretKind> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["gateway", "auth", "token"] => Some(SecretKind::GatewayToken),
        ["gateway", "auth", "password"] => Some(SecretKind::GatewayPassword),
        ["gateway", "remote", "token"] => Some(SecretKind::RemoteToken),
        ["gateway", "remote", "password"] => Some(SecretKind::RemotePassword),
        ["hooks", "token"] | ["hooks", "gmail", "pushToken"] => Some(SecretKind::HooksToken),
        ["channels", ch, .., last] if CHANNEL_SECRET_KEYS.contains(last) => {
            Some(SecretKind::ChannelToken {
                channel: (*ch).to_owned(),
            })
        }
        ["models", "providers", prov, "apiKey"] => Some(SecretKind::ProviderKey {
            provider: (*prov).to_owned(),
        }),
        ["models", "providers", prov, "headers", h] if header_is_secret(h) => {
            Some(SecretKind::ProviderKey {
                provider: (*prov).to_owned(),
            })
        }
        ["env", "vars", name] | ["env", name] if secret_env_name(name) => Some(env_kind(name)),
        ["meta" | "wizard", ..] => None,
        [.., last] if secret_key_name(last) => Some(SecretKind::Other),
        _ => None,
    }
}

fn header_is_secret(h: &str) -> bool {
    let h = h.to_ascii_lowercase();
    h == "authorization" || h.contains("key") || h.contains("token") || h.contains("secret")
}

/// Walks a config document, recording secrets. `cfg` is the config path of `v`, `ptr` its JSON
/// pointer in `file`.
fn walk_config(
    inv: &mut Inventory,
    v: &Value,
    cfg: &mut Vec<String>,
    file: &Path,
    ptr: &str,
    active: bool,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == crate::config::INCLUDE_KEY {
                    continue;
                }
                cfg.push(k.clone());
                let cptr = format!("{ptr}/{}", esc(k));
                if k == "tokenFile" && cfg.first().map(String::as_str) == Some("channels") {
                    if let Some(p) = child.as_str() {
                        record_token_file(inv, cfg, file, p, active);
                    }
                } else if let Some(kind) = classify_config(cfg) {
                    if let Some(f) = found(child) {
                        inv.add(
                            cfg.join("."),
                            kind,
                            f,
                            Location::Json {
                                file: file.to_path_buf(),
                                pointer: cptr.clone(),
                            },
                            active,
                        );
                    } else {
                        walk_config(inv, child, cfg, file, &cptr, active);
                    }
                } else {
                    walk_config(inv, child, cfg, file, &cptr, active);
                }
                cfg.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                cfg.push(i.to_string());
                walk_config(inv, child, cfg, file, &format!("{ptr}/{i}"), active);
                cfg.pop();
            }
        }
        _ => {}
    }
}

fn record_token_file(inv: &mut Inventory, cfg: &[String], config: &Path, p: &str, active: bool) {
    let base = config.parent().unwrap_or(Path::new("."));
    let path = match p.strip_prefix("~/") {
        Some(rest) => inv.home.join(rest),
        None => base.join(p),
    };
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return;
    };
    if !meta.is_file() {
        return;
    }
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    let channel = cfg.get(1).cloned().unwrap_or_default();
    inv.add(
        cfg.join("."),
        SecretKind::ChannelToken { channel },
        Found::Value(text.trim().to_owned()),
        Location::File { file: path },
        active,
    );
}

/// Parses dotenv text into `(key, value)` pairs (`export`, quotes and comments handled).
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (k, v) = line.split_once('=')?;
            Some((k.trim().to_owned(), unquote(v.trim())))
        })
        .collect()
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_owned();
        }
    }
    // An unquoted value ends at an inline comment.
    match v.find(" #") {
        Some(i) => v[..i].trim_end().to_owned(),
        None => v.to_owned(),
    }
}

fn record_env_file(inv: &mut Inventory, file: &Path, pairs: Vec<(String, String)>) {
    for (k, v) in pairs {
        if !secret_env_name(&k) {
            continue;
        }
        let f = match as_ref(&Value::String(v.clone())) {
            Some(r) => Found::Ref(r),
            None => Found::Value(v),
        };
        inv.add(
            format!("env:{k}"),
            env_kind(&k),
            f,
            Location::Env {
                file: file.to_path_buf(),
                key: k.clone(),
            },
            true,
        );
    }
}

/// Parses the `Environment=` lines of a systemd unit into `(key, value)` pairs.
pub fn parse_unit_environment(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("Environment=") else {
            continue;
        };
        // Each assignment may be quoted; several may share a line.
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        let mut items = Vec::new();
        for c in rest.chars() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, ' ') => items.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        items.push(cur);
        for it in items {
            if let Some((k, v)) = it.split_once('=') {
                out.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    out
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::json(path, &e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The global database, relative to the state dir (2026.6.1 and later).
pub const GLOBAL_DB: &str = "state/openclaw.sqlite";
/// The table of the global database holding the shared auth-profile store (2026.9).
pub const SHARED_AUTH_TABLE: &str = "config_machine_state";
/// The `state_key` of the shared auth-profile store's row.
pub const SHARED_AUTH_KEY: &str = "authProfiles.store";

/// Reads the shared auth-profile store document of 2026.9 gateways: the `value_json` of the
/// `config_machine_state` row `authProfiles.store` in `state/openclaw.sqlite` (observed live on
/// 2026.9.6 after `openclaw models auth paste-api-key`). `None` when the table or row is absent.
fn shared_auth_profile_store(db: &Path) -> Result<Option<Value>> {
    use rusqlite::OptionalExtension;
    let op = "reading the shared auth-profile store";
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite(db, op, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| Error::sqlite(db, op, e))?;
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [SHARED_AUTH_TABLE],
            |r| r.get(0),
        )
        .map_err(|e| Error::sqlite(db, op, e))?;
    if !has_table {
        return Ok(None);
    }
    let json: Option<String> = conn
        .query_row(
            "SELECT value_json FROM config_machine_state WHERE state_key = ?1",
            [SHARED_AUTH_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| Error::sqlite(db, op, e))?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|_| Error::BadRow {
            path: db.to_path_buf(),
            table: SHARED_AUTH_TABLE,
            what: format!("value_json of row `{SHARED_AUTH_KEY}`"),
        })
    })
    .transpose()
}

/// Records the credentials of an auth-profile store document (`{version, profiles:{…}}`).
fn record_auth_store(inv: &mut Inventory, doc: &Value, loc: &dyn Fn(String) -> Location) {
    let Some(profiles) = doc.get("profiles").and_then(Value::as_object) else {
        return;
    };
    for (name, p) in profiles {
        inv.profile_ids.insert(name.clone());
        let provider = p
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or_else(|| name.split(':').next().unwrap_or(name))
            .to_owned();
        for (field, suffix) in [
            ("key", ""),
            ("token", ""),
            ("access", ""),
            ("refresh", ":refresh"),
            ("keyRef", ""),
            ("tokenRef", ""),
        ] {
            let Some(v) = p.get(field) else { continue };
            let Some(f) = found(v) else { continue };
            inv.add(
                format!("auth-profile:{name}{suffix}"),
                SecretKind::AuthProfile {
                    provider: provider.clone(),
                },
                f,
                loc(format!("/profiles/{}/{field}", esc(name))),
                true,
            );
        }
    }
}

/// Records every string under a key named like a secret (`token`, `privateKeyPem`, ...) of a
/// JSON document with no known schema, with ids `<prefix>:<pointer>`.
fn record_generic(
    inv: &mut Inventory,
    v: &Value,
    file: &Path,
    ptr: &str,
    prefix: &str,
    kind: &SecretKind,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let cptr = format!("{ptr}/{}", esc(k));
                let lk = k.to_ascii_lowercase();
                let secretish = secret_key_name(k)
                    || lk == "access"
                    || lk == "refresh"
                    || lk == "privatekeypem";
                match child {
                    Value::String(s) if secretish && !s.is_empty() => inv.add(
                        format!("{prefix}:{cptr}"),
                        kind.clone(),
                        Found::Value(s.clone()),
                        Location::Json {
                            file: file.to_path_buf(),
                            pointer: cptr.clone(),
                        },
                        true,
                    ),
                    _ => record_generic(inv, child, file, &cptr, prefix, kind),
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                record_generic(inv, child, file, &format!("{ptr}/{i}"), prefix, kind);
            }
        }
        _ => {}
    }
}

/// Names of a config's backup copies that the gateway (and moltvault) leave beside it.
fn is_config_backup(config_name: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(config_name) else {
        return false;
    };
    rest.starts_with(".bak") || rest == ".last-good" || rest == crate::config::BACKUP_SUFFIX
}

impl Gateway {
    /// Lists the backup copies of the config (`.bak`, `.bak.N`, `.last-good`, `.moltvault-bak`).
    pub fn config_backups(&self) -> Vec<PathBuf> {
        let Some(cfg) = &self.config_path else {
            return Vec::new();
        };
        let (Some(dir), Some(name)) = (cfg.parent(), cfg.file_name().and_then(|n| n.to_str()))
        else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| is_config_backup(name, n))
            })
            .map(|e| e.path())
            .collect();
        out.sort();
        out
    }

    /// The systemd user units of the gateway service that exist (they can carry
    /// `Environment=…_GATEWAY_TOKEN=` lines).
    pub fn service_units(&self) -> Vec<PathBuf> {
        let dir = self.home.join(".config/systemd/user");
        let mut out: Vec<PathBuf> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    ["openclaw", "clawdbot", "moltbot"]
                        .iter()
                        .any(|l| n.starts_with(l))
                        && n.contains("gateway")
                        && n.ends_with(".service")
                })
            })
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        out
    }

    /// The dotenv files the gateway loads that exist: `<state>/.env` and
    /// `~/.config/openclaw/gateway.env`.
    pub fn env_files(&self) -> Vec<PathBuf> {
        [
            self.state_dir.join(".env"),
            self.home.join(".config/openclaw/gateway.env"),
        ]
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
    }

    /// Identity files (device private key, CLI device tokens): in the state dir and, for old
    /// lines, hard-coded under `$HOME/.clawdbot/identity/`.
    fn identity_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in [
            self.state_dir.join("identity"),
            self.home.join(".clawdbot/identity"),
        ] {
            for name in ["device.json", "device-auth.json"] {
                let p = dir.join(name);
                if p.is_file() && !out.iter().any(|o: &PathBuf| same_file(o, &p)) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Lists every secret the gateway holds, with all the places each is stored.
    ///
    /// Sources: the config and its `$include`s (gateway/hooks/channel tokens, provider keys, the
    /// `env` block, other `*apiKey`/`*token`/`*password`/`*secret` keys), config backups (as
    /// extra locations of the same value, or as inactive old values), dotenv files, the service
    /// unit's `Environment=` lines, `agents/*/agent/models.json`, `auth-profiles.json`, the
    /// `auth_profile_store` table, `devices/paired.json`, `nodes/paired.json`, identity files and
    /// `credentials/oauth.json`. `${VAR}` strings and SecretRef objects are recorded as
    /// [`ConfiguredSecret::reference`], never resolved. Unparseable backup copies are skipped.
    ///
    /// # Errors
    /// Read/parse errors of the live config, `models.json`, `auth-profiles.json`, the paired-device
    /// files, or an agent database.
    pub fn configured_secrets(&self) -> Result<Vec<ConfiguredSecret>> {
        let mut inv = Inventory {
            home: self.home.clone(),
            ..Inventory::default()
        };
        if let Some(cfg_path) = &self.config_path {
            let cfg = Config::load(cfg_path)?;
            if let Some(profiles) = cfg.get("auth.profiles").and_then(Value::as_object) {
                inv.profile_ids.extend(profiles.keys().cloned());
            }
            for src in &cfg.sources {
                let mut path = src.mount.clone();
                walk_config(&mut inv, &src.value, &mut path, &src.path, "", true);
            }
            for bak in self.config_backups() {
                let Ok(text) = fs::read_to_string(&bak) else {
                    continue;
                };
                let Ok(v) = crate::config::parse_json5(&bak, &text) else {
                    continue;
                };
                walk_config(&mut inv, &v, &mut Vec::new(), &bak, "", false);
            }
        }
        for f in self.env_files() {
            let text = fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
            record_env_file(&mut inv, &f, parse_dotenv(&text));
        }
        for unit in self.service_units() {
            let text = fs::read_to_string(&unit).map_err(|e| Error::io(&unit, e))?;
            record_env_file(&mut inv, &unit, parse_unit_environment(&text));
        }
        for agent in self.agents() {
            let dir = self.agent_dir(&agent);
            let models = dir.join("models.json");
            if let Some(doc) = read_json(&models)?
                && let Some(provs) = doc.get("providers")
            {
                let mut cfg = vec!["models".to_owned(), "providers".to_owned()];
                walk_config(&mut inv, provs, &mut cfg, &models, "/providers", true);
            }
            let ap = dir.join("auth-profiles.json");
            if let Some(doc) = read_json(&ap)? {
                record_auth_store(&mut inv, &doc, &|pointer| Location::Json {
                    file: ap.clone(),
                    pointer,
                });
            }
            let db = dir.join(crate::sqlite::AGENT_DB_NAME);
            if db.is_file() {
                let adb = crate::sqlite::AgentDb::open_read_only(&db)?;
                for (key, doc) in adb.auth_profile_store()? {
                    record_auth_store(&mut inv, &doc, &|pointer| Location::Sqlite {
                        file: db.clone(),
                        table: "auth_profile_store".to_owned(),
                        row_key: key.clone(),
                        pointer,
                    });
                }
            }
        }
        // 2026.9: the shared auth-profile store is a row of the global database.
        let global = self.state_dir.join(GLOBAL_DB);
        if global.is_file()
            && let Some(doc) = shared_auth_profile_store(&global)?
        {
            record_auth_store(&mut inv, &doc, &|pointer| Location::Sqlite {
                file: global.clone(),
                table: SHARED_AUTH_TABLE.to_owned(),
                row_key: SHARED_AUTH_KEY.to_owned(),
                pointer,
            });
        }
        for (rel, prefix, kind) in [
            ("devices/paired.json", "device", SecretKind::DeviceToken),
            ("devices/pending.json", "device", SecretKind::DeviceToken),
            ("nodes/paired.json", "node", SecretKind::NodeToken),
            ("nodes/pending.json", "node", SecretKind::NodeToken),
            ("credentials/oauth.json", "oauth", SecretKind::Other),
        ] {
            let p = self.state_dir.join(rel);
            if let Some(doc) = read_json(&p)? {
                record_generic(&mut inv, &doc, &p, "", prefix, &kind);
            }
        }
        for p in self.identity_files() {
            if let Some(doc) = read_json(&p)? {
                let kind = if p.ends_with("device.json") {
                    SecretKind::DeviceKey
                } else {
                    SecretKind::DeviceToken
                };
                record_generic(&mut inv, &doc, &p, "", "identity", &kind);
            }
        }
        // A provider `apiKey` naming an auth profile is a binding, not a key (2026.9
        // `models auth paste-api-key` writes `apiKey: "<provider>:manual"`).
        let ids = std::mem::take(&mut inv.profile_ids);
        inv.items.retain(|s| {
            !(matches!(s.kind, SecretKind::ProviderKey { .. })
                && s.id.ends_with(".apiKey")
                && s.value
                    .as_ref()
                    .is_some_and(|v| ids.contains(v.expose_secret())))
        });
        Ok(inv.items)
    }

    /// Lists the files besides transcripts that hold secrets and exist (DESIGN §2): the config
    /// and its backups, `$include`d files, dotenv files, service units, `models.json`,
    /// `auth-profiles.json` (and its doctor backups), agent databases, everything under
    /// `credentials/`, paired devices and nodes, identity files, `exec-approvals.json` and the
    /// global `state/openclaw.sqlite`. Symlinks are listed but not followed into.
    pub fn credential_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        let mut push = |p: PathBuf| {
            if fs::symlink_metadata(&p).is_ok() && !out.contains(&p) {
                out.push(p);
            }
        };
        if let Some(cfg) = &self.config_path {
            push(cfg.clone());
            if let Ok(c) = Config::load(cfg) {
                for inc in c.includes() {
                    push(inc.to_path_buf());
                }
            }
        }
        for p in self.config_backups() {
            push(p);
        }
        for p in self.env_files() {
            push(p);
        }
        for p in self.service_units() {
            push(p);
        }
        for agent in self.agents() {
            let dir = self.agent_dir(&agent);
            push(dir.join("models.json"));
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name();
                let name = name.to_str().unwrap_or("");
                if name.starts_with("auth-profiles.json")
                    || name.starts_with("auth-state.json")
                    || name == crate::sqlite::AGENT_DB_NAME
                {
                    push(e.path());
                }
            }
        }
        let mut creds = Vec::new();
        walk_files(&self.state_dir.join("credentials"), &mut creds);
        creds.sort();
        for p in creds {
            push(p);
        }
        for rel in [
            "devices/paired.json",
            "devices/pending.json",
            "nodes/paired.json",
            "nodes/pending.json",
            "exec-approvals.json",
            "state/openclaw.sqlite",
            "config-journal-fingerprint.key",
        ] {
            push(self.state_dir.join(rel));
        }
        for p in self.identity_files() {
            push(p);
        }
        push(self.home.join(".clawdbot/exec-approvals.json"));
        out.retain(|p| fs::symlink_metadata(p).is_ok());
        out
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => walk_files(&e.path(), out),
            Ok(_) => out.push(e.path()),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(secret_env_name("OPENAI_API_KEY"));
        assert!(secret_env_name("OPENCLAW_GATEWAY_TOKEN"));
        assert!(!secret_env_name("OPENCLAW_GATEWAY_URL"));
        assert!(!secret_env_name("PATH"));
        assert_eq!(
            env_kind("OPENAI_API_KEY"),
            SecretKind::ProviderKey {
                provider: "openai".into()
            }
        );
        assert_eq!(env_kind("CLAWDBOT_GATEWAY_TOKEN"), SecretKind::GatewayToken);
    }

    #[test]
    fn dotenv_and_units_parse() {
        let pairs = parse_dotenv("# c\nexport A_TOKEN=\"x y\"\nB_KEY=z # note\n\nbad\n");
        assert_eq!(
            pairs,
            vec![
                ("A_TOKEN".to_owned(), "x y".to_owned()),
                ("B_KEY".to_owned(), "z".to_owned())
            ]
        );
        let u = parse_unit_environment(
            "[Service]\nEnvironment=\"OPENCLAW_GATEWAY_TOKEN=abc\" HOME=/h\nEnvironment=X=1\n",
        );
        assert_eq!(u.len(), 3);
        assert_eq!(u[0], ("OPENCLAW_GATEWAY_TOKEN".into(), "abc".into()));
    }

    #[test]
    fn refs_are_recognised() {
        assert_eq!(
            as_ref(&Value::String("${OPENAI_API_KEY}".into())),
            Some(SecretRef::EnvVar("OPENAI_API_KEY".into()))
        );
        assert_eq!(
            as_ref(&Value::String("$OPENAI_API_KEY".into())),
            Some(SecretRef::EnvVar("OPENAI_API_KEY".into()))
        );
        assert_eq!(as_ref(&Value::String("$notavar".into())), None);
        let obj: Value = serde_json::json!({"source":"exec","provider":"vault","id":"a/b"});
        assert!(matches!(as_ref(&obj), Some(SecretRef::Ref { .. })));
    }

    #[test]
    fn config_paths_classify() {
        let c = |s: &str| classify_config(&crate::config::split_path(s));
        assert_eq!(c("gateway.auth.token"), Some(SecretKind::GatewayToken));
        assert_eq!(c("gateway.auth.mode"), None);
        assert_eq!(
            c("channels.telegram.accounts.a.botToken"),
            Some(SecretKind::ChannelToken {
                channel: "telegram".into()
            })
        );
        assert_eq!(c("models.providers.x.models.0.maxTokens"), None);
        assert_eq!(c("meta.lastTouchedVersion"), None);
        assert_eq!(c("skills.entries.s.apiKey"), Some(SecretKind::Other));
    }
}
