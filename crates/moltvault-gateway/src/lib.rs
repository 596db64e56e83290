//! Discovers OpenClaw / Moltbot / Clawdbot gateways and reads what they keep on disk.
//!
//! This crate owns everything moltvault knows about a gateway's state directory:
//!
//! - **Discovery** ([`discover()`]): `--state-dir` beats the environment (`OPENCLAW_STATE_DIR`,
//!   `MOLTBOT_STATE_DIR`, `CLAWDBOT_STATE_DIR`, `OPENCLAW_PROFILE`, passed in as [`GatewayEnv`];
//!   this library reads no environment), which beats the defaults `~/.openclaw`, `~/.clawdbot`,
//!   `~/.moltbot` (a legacy dir left as a symlink by the 2026.1.30 migration is followed and
//!   reported in [`Gateway::via_symlink`]). The result tells the [`Line`] (Clawdbot, Moltbot,
//!   OpenClaw), the [`StoreKind`] (JSONL files or SQLite) and the version when the config or the
//!   agent database records it.
//! - **Transcripts** ([`Gateway::transcript_files`]): live `<sid>.jsonl`, trajectory sidecars,
//!   `.deleted` / `.reset` / `.bak` copies, 2026.9 `.deleted.<ts>.<hash>.zst` archives, cold
//!   archives and moltvault's sealed `*.age` files, each with its [`TranscriptKind`].
//! - **Sessions** ([`Gateway::sessions`]): which transcripts are the current session of a
//!   session key (`sessions.json` or `session_nodes`), their modification time and whether a
//!   writer holds their `.lock`.
//! - **Credential inventory** ([`Gateway::configured_secrets`], [`Gateway::credential_files`]):
//!   every secret the gateway holds (config, backups, `.env`, `models.json`, auth profiles,
//!   paired devices…) with stable ids and all their locations; values are
//!   [`secrecy::SecretString`] and never appear in `Debug` output or errors.
//! - **Config** ([`config`]): JSON5 read with `$include` resolution and atomic edits.
//! - **Relocation** ([`relocate`]): takes imported credentials out of `.env` files and auth
//!   profiles (sibling `keyRef`/`tokenRef` SecretRefs), atomically.
//! - **SQLite store** ([`sqlite`]): OpenClaw ≥ 2026.8 transcripts in `openclaw-agent.sqlite`,
//!   read as JSON entries and redacted in one transaction together with their derived copies.
//! - **Post-turn sweep** ([`sweep`]): what the plugin's hooks never see, redacted after each
//!   turn, incrementally (only what changed since the last sweep's mark).
//! - **Archiving** ([`archive`]): which sessions are idle, and the JSONL export of SQLite
//!   sessions (`moltvault archive`).
//! - **Running check** ([`Gateway::is_running`]): a documented best-effort heuristic.
//!
//! # Example
//!
//! ```no_run
//! use moltvault_gateway::{discover, DiscoverOptions, StoreKind};
//! use secrecy::ExposeSecret;
//!
//! # fn main() -> Result<(), moltvault_gateway::Error> {
//! let gw = discover(&DiscoverOptions::new("/home/me"))?;
//! println!("{} gateway at {}", gw.line.name(), gw.state_dir.display());
//! for f in gw.transcript_files()? {
//!     println!("{} {} {}", f.agent, f.kind.name(), f.path.display());
//! }
//! for s in gw.configured_secrets()? {
//!     // Literal values feed the redaction rule; they are never printed.
//!     let _len = s.value.as_ref().map(|v| v.expose_secret().len());
//!     println!("{} in {} places", s.id, s.locations.len());
//! }
//! if gw.store == StoreKind::Sqlite {
//!     for db in gw.agent_dbs() {
//!         let mut db = moltvault_gateway::sqlite::AgentDb::open(&db)?;
//!         let report = db.redact(|_entry| false)?;
//!         println!("{} rows changed", report.total_changed());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod archive;
pub mod audit;
pub mod config;
pub mod discover;
pub mod engine;
mod error;
pub mod relocate;
pub mod running;
pub mod secrets;
pub mod sessions;
pub mod sqlite;
pub mod sweep;
pub mod transcripts;

pub use discover::{
    CONFIG_FILENAMES, DiscoverOptions, Gateway, GatewayEnv, Line, Origin, STATE_DIRNAMES,
    StoreKind, discover, parse_version,
};
pub use error::{Error, Result};
pub use running::RunningEvidence;
pub use secrets::{
    ConfiguredSecret, Location, SecretKind, SecretRef, parse_dotenv, parse_unit_environment,
    secret_env_name,
};
pub use sessions::{LockState, SessionIndex, SessionInfo, lock_state, pid_alive};
pub use transcripts::{TranscriptFile, TranscriptKind, classify};
