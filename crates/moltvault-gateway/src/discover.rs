//! Finding the gateway's state directory and config, and telling which line and store it is.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// Config file names a state dir may hold, in the order the gateway probes them.
pub const CONFIG_FILENAMES: [&str; 4] = [
    "openclaw.json",
    "clawdbot.json",
    "moltbot.json",
    "moldbot.json",
];

/// Default state dir names under the home directory, in the order the gateway probes them.
pub const STATE_DIRNAMES: [&str; 4] = [".openclaw", ".clawdbot", ".moltbot", ".moldbot"];

/// The gateway-related environment variables, read by the CLI and handed to [`discover`]
/// (this library reads no environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayEnv {
    /// `OPENCLAW_STATE_DIR`.
    pub openclaw_state_dir: Option<PathBuf>,
    /// `OPENCLAW_CONFIG_PATH`.
    pub openclaw_config_path: Option<PathBuf>,
    /// `OPENCLAW_HOME`: replaces the home directory for every default.
    pub openclaw_home: Option<PathBuf>,
    /// `OPENCLAW_PROFILE`: selects `~/.openclaw-<profile>`.
    pub openclaw_profile: Option<String>,
    /// `MOLTBOT_STATE_DIR`.
    pub moltbot_state_dir: Option<PathBuf>,
    /// `CLAWDBOT_STATE_DIR`.
    pub clawdbot_state_dir: Option<PathBuf>,
    /// `CLAWDBOT_CONFIG_PATH`.
    pub clawdbot_config_path: Option<PathBuf>,
}

/// Inputs of [`discover`].
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// `--state-dir`: beats the environment and the defaults.
    pub state_dir: Option<PathBuf>,
    /// An explicit config file: beats the environment and the files in the state dir.
    pub config_path: Option<PathBuf>,
    /// The gateway environment variables.
    pub env: GatewayEnv,
    /// The user's home directory.
    pub home: PathBuf,
    /// The system temp dir (where 2026.9 keeps `openclaw-state-locks-<uid>/`); `/tmp` if `None`.
    pub tmp_dir: Option<PathBuf>,
}

impl DiscoverOptions {
    /// Options with only the home directory set: defaults everywhere else.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        DiscoverOptions {
            state_dir: None,
            config_path: None,
            env: GatewayEnv::default(),
            home: home.into(),
            tmp_dir: None,
        }
    }

    /// Options pinned to one state directory (as `--state-dir` does).
    pub fn with_state_dir(home: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        DiscoverOptions {
            state_dir: Some(state_dir.into()),
            ..DiscoverOptions::new(home)
        }
    }
}

/// The product line (name) of a gateway install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Line {
    /// Clawdbot (≤ 2026.1.24): `~/.clawdbot`, `clawdbot.json`.
    Clawdbot,
    /// Moltbot (2026.1.27): `~/.moltbot`, `moltbot.json`.
    Moltbot,
    /// OpenClaw (≥ 2026.1.29): `~/.openclaw`, `openclaw.json`.
    OpenClaw,
}

impl Line {
    /// The command / product name (`clawdbot`, `moltbot`, `openclaw`).
    pub fn name(self) -> &'static str {
        match self {
            Line::Clawdbot => "clawdbot",
            Line::Moltbot => "moltbot",
            Line::OpenClaw => "openclaw",
        }
    }
}

/// Where session transcripts are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// `agents/<id>/sessions/<sid>.jsonl` files (every release up to 2026.7.x).
    Jsonl,
    /// `agents/<id>/agent/openclaw-agent.sqlite` (2026.8.1 and later).
    Sqlite,
}

/// How the state directory was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--state-dir`.
    Flag,
    /// An environment variable (its name).
    Env(&'static str),
    /// A default directory under the home directory.
    Default,
}

/// A discovered gateway install.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The state directory (symlinks resolved, e.g. a migrated `~/.clawdbot` → `~/.openclaw`).
    pub state_dir: PathBuf,
    /// The path the state dir was reached through when that was a symlink (the legacy dir left
    /// by the 2026.1.30 migration).
    pub via_symlink: Option<PathBuf>,
    /// How the state dir was chosen.
    pub origin: Origin,
    /// The config file, if one exists.
    pub config_path: Option<PathBuf>,
    /// The product line.
    pub line: Line,
    /// The transcript store.
    pub store: StoreKind,
    /// The gateway version that last wrote the config (`meta.lastTouchedVersion`) or, failing
    /// that, the app version recorded in an agent database.
    pub version: Option<String>,
    /// The home directory (some old files live under `$HOME/.clawdbot` whatever the state dir).
    pub home: PathBuf,
    /// The system temp dir.
    pub tmp_dir: PathBuf,
}

/// Finds the gateway: `--state-dir` beats the environment, which beats the default dirs.
///
/// Environment order: `OPENCLAW_STATE_DIR`, `MOLTBOT_STATE_DIR`, `CLAWDBOT_STATE_DIR`, then
/// `OPENCLAW_PROFILE` (`<home>/.openclaw-<profile>`). Defaults (under `OPENCLAW_HOME` or the
/// home dir): `.openclaw`, then the first existing of `.clawdbot`, `.moltbot`, `.moldbot`.
///
/// # Errors
/// [`Error::StateDirMissing`] when an explicit dir does not exist, [`Error::NotFound`] (with the
/// places looked at) when no default exists, [`Error::ConfigMissing`] when an explicit config
/// file does not exist, and I/O errors resolving the state dir. A config that does not parse
/// does not fail discovery (the version is then taken from the agent database, if any); it
/// fails [`Gateway::config`] and [`Gateway::configured_secrets`].
pub fn discover(opts: &DiscoverOptions) -> Result<Gateway> {
    let env = &opts.env;
    let explicit: [(Option<&PathBuf>, Origin); 4] = [
        (opts.state_dir.as_ref(), Origin::Flag),
        (
            env.openclaw_state_dir.as_ref(),
            Origin::Env("OPENCLAW_STATE_DIR"),
        ),
        (
            env.moltbot_state_dir.as_ref(),
            Origin::Env("MOLTBOT_STATE_DIR"),
        ),
        (
            env.clawdbot_state_dir.as_ref(),
            Origin::Env("CLAWDBOT_STATE_DIR"),
        ),
    ];
    let home = env
        .openclaw_home
        .clone()
        .unwrap_or_else(|| opts.home.clone());
    let mut chosen: Option<(PathBuf, Origin)> = None;
    for (dir, origin) in explicit {
        if let Some(dir) = dir {
            let dir = expand_tilde(dir, &home);
            if !dir.is_dir() {
                return Err(Error::StateDirMissing {
                    path: dir,
                    origin: match origin {
                        Origin::Flag => "--state-dir".to_owned(),
                        Origin::Env(n) => n.to_owned(),
                        Origin::Default => "default".to_owned(),
                    },
                });
            }
            chosen = Some((dir, origin));
            break;
        }
    }
    if chosen.is_none()
        && let Some(profile) = env.openclaw_profile.as_deref().filter(|p| !p.is_empty())
    {
        let dir = home.join(format!(".openclaw-{profile}"));
        if !dir.is_dir() {
            return Err(Error::StateDirMissing {
                path: dir,
                origin: "OPENCLAW_PROFILE".to_owned(),
            });
        }
        chosen = Some((dir, Origin::Env("OPENCLAW_PROFILE")));
    }
    let (given, origin) = match chosen {
        Some(c) => c,
        None => {
            let looked: Vec<PathBuf> = STATE_DIRNAMES.iter().map(|n| home.join(n)).collect();
            match looked.iter().find(|d| d.is_dir()) {
                Some(d) => (d.clone(), Origin::Default),
                None => return Err(Error::NotFound { looked }),
            }
        }
    };
    let is_link = fs::symlink_metadata(&given)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    let state_dir = fs::canonicalize(&given).map_err(|e| Error::io(&given, e))?;
    let via_symlink = is_link.then_some(given);

    let explicit_config = opts
        .config_path
        .as_ref()
        .map(|p| (p, "--config"))
        .or_else(|| {
            env.openclaw_config_path
                .as_ref()
                .map(|p| (p, "OPENCLAW_CONFIG_PATH"))
        })
        .or_else(|| {
            env.clawdbot_config_path
                .as_ref()
                .map(|p| (p, "CLAWDBOT_CONFIG_PATH"))
        });
    let config_path = match explicit_config {
        Some((p, origin)) => {
            let p = expand_tilde(p, &home);
            if !p.is_file() {
                return Err(Error::ConfigMissing {
                    path: p,
                    origin: origin.to_owned(),
                });
            }
            Some(p)
        }
        None => CONFIG_FILENAMES
            .iter()
            .map(|n| state_dir.join(n))
            .find(|p| p.is_file()),
    };

    // A config that does not parse must not stop discovery: backups, audits and restores are
    // most needed exactly then. The error surfaces from `Gateway::config` and the inventory.
    let config_version = config_path.as_deref().and_then(config_version);
    let mut gw = Gateway {
        line: Line::OpenClaw,
        store: StoreKind::Jsonl,
        version: config_version,
        via_symlink,
        origin,
        config_path,
        home: opts.home.clone(),
        tmp_dir: opts
            .tmp_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/tmp")),
        state_dir,
    };
    let db_version = gw.agent_db_app_version();
    let has_sqlite_transcripts = gw.agent_dbs().iter().any(|db| db_has_transcripts(db));
    if gw.version.is_none() {
        gw.version = db_version;
    }
    gw.line = detect_line(&gw);
    gw.store = if has_sqlite_transcripts
        || gw
            .version
            .as_deref()
            .and_then(parse_version)
            .is_some_and(|v| v >= (2026, 8, 0))
    {
        StoreKind::Sqlite
    } else {
        StoreKind::Jsonl
    };
    Ok(gw)
}

impl Gateway {
    /// Discovers the gateway in exactly `state_dir` (a shortcut for `--state-dir`).
    ///
    /// # Errors
    /// See [`discover`].
    pub fn open(state_dir: impl Into<PathBuf>, home: impl Into<PathBuf>) -> Result<Gateway> {
        discover(&DiscoverOptions::with_state_dir(home, state_dir))
    }

    /// Lists the agent ids (directories under `agents/`), sorted.
    pub fn agents(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.state_dir.join("agents"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    /// The sessions directory of an agent (`agents/<id>/sessions`).
    pub fn sessions_dir(&self, agent: &str) -> PathBuf {
        self.state_dir.join("agents").join(agent).join("sessions")
    }

    /// The private directory of an agent (`agents/<id>/agent`).
    pub fn agent_dir(&self, agent: &str) -> PathBuf {
        self.state_dir.join("agents").join(agent).join("agent")
    }

    /// The per-agent SQLite databases (`agents/<id>/agent/openclaw-agent.sqlite`) that exist.
    pub fn agent_dbs(&self) -> Vec<PathBuf> {
        self.agents()
            .iter()
            .map(|a| self.agent_dir(a).join(crate::sqlite::AGENT_DB_NAME))
            .filter(|p| p.is_file())
            .collect()
    }

    /// Parses the config file (JSON5, `$include`s resolved).
    ///
    /// # Errors
    /// Read and parse errors of the config or an included file; `Ok(None)` if there is no config.
    pub fn config(&self) -> Result<Option<crate::config::Config>> {
        match &self.config_path {
            Some(p) => crate::config::Config::load(p).map(Some),
            None => Ok(None),
        }
    }

    fn agent_db_app_version(&self) -> Option<String> {
        self.agent_dbs().iter().find_map(|db| {
            crate::sqlite::AgentDb::open_read_only(db)
                .ok()?
                .app_version()
        })
    }
}

fn db_has_transcripts(db: &Path) -> bool {
    crate::sqlite::AgentDb::open_read_only(db)
        .map(|d| d.has_table("transcript_events"))
        .unwrap_or(false)
}

fn config_version(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let v: Value = json5::from_str(&text).ok()?;
    v.pointer("/meta/lastTouchedVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn detect_line(gw: &Gateway) -> Line {
    if let Some(v) = gw.version.as_deref().and_then(parse_version) {
        return if v < (2026, 1, 27) {
            Line::Clawdbot
        } else if v < (2026, 1, 29) {
            Line::Moltbot
        } else {
            Line::OpenClaw
        };
    }
    let name = gw
        .config_path
        .as_ref()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match name {
        "clawdbot.json" => return Line::Clawdbot,
        "moltbot.json" | "moldbot.json" => return Line::Moltbot,
        "openclaw.json" => return Line::OpenClaw,
        _ => {}
    }
    let dir = gw
        .via_symlink
        .as_deref()
        .unwrap_or(&gw.state_dir)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if dir.starts_with(".clawdbot") {
        Line::Clawdbot
    } else if dir.starts_with(".moltbot") || dir.starts_with(".moldbot") {
        Line::Moltbot
    } else {
        Line::OpenClaw
    }
}

/// Parses `2026.9.6`, `2026.1.24-3` or `2026.7.2-beta.7` into `(year, month, patch)`.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

pub(crate) fn expand_tilde(p: &Path, home: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2026.9.6"), Some((2026, 9, 6)));
        assert_eq!(parse_version("2026.1.24-3"), Some((2026, 1, 24)));
        assert_eq!(parse_version("2026.7.2-beta.7"), Some((2026, 7, 2)));
        assert_eq!(parse_version("garbage"), None);
    }
}
