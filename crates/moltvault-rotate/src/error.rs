//! The one error type of this crate.

use std::path::PathBuf;

use moltvault_vault::fsio::FsError;

/// Errors of planning, applying, journaling and reporting a rotation.
///
/// No variant ever carries a secret value: locations are named by path and key, secrets by
/// item id and fingerprint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file write through the funnel failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file that should hold JSON / JSON5 could not be parsed.
    #[error("cannot parse {path} as {format}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it should be ("JSON", "JSON5", "TOML").
        format: &'static str,
        /// Parser detail (never a value: parsers report positions).
        detail: String,
    },
    /// The built-in or a user-given provider catalogue is invalid.
    #[error("invalid rotation catalogue: {0}")]
    Catalogue(String),
    /// Another rotation holds the lock.
    #[error("another rotation is running (lock {path} held by pid {pid})")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as written in the lock file (0 if unknown).
        pid: u32,
    },
    /// An unfinished rotation exists and a new one was asked for.
    #[error("rotation {run} is unfinished")]
    Unfinished {
        /// The run id.
        run: String,
    },
    /// There is no rotation to resume, abort or report on.
    #[error("no rotation run found in {0}")]
    NoRun(PathBuf),
    /// The journal's hash chain does not verify: it was edited, truncated or reordered.
    #[error("rotation journal {path} is corrupt at record {seq}: {why}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// The first bad record (1-based).
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// A pasted value failed offline validation.
    #[error("the new value for {item} was rejected: {why}")]
    Invalid {
        /// The item id.
        item: String,
        /// Which check failed (never the value).
        why: String,
    },
    /// An item id given on the command line is not in the inventory.
    #[error("unknown item {0}")]
    UnknownItem(String),
    /// No answer was available for an item that needs a pasted value.
    #[error("no new value given for {0}")]
    NoAnswer(String),
    /// Staging (age encryption of the new value) failed.
    #[error("cannot {op} the staged value of {item}")]
    Stage {
        /// "encrypt" or "decrypt".
        op: &'static str,
        /// The item id.
        item: String,
        /// The age error, as text (age errors carry no secret).
        detail: String,
    },
    /// A location does not hold the value the journal says it should.
    #[error("{location} holds neither the old nor the new value of {item}")]
    Conflict {
        /// The item id.
        item: String,
        /// The location (path and key).
        location: String,
    },
    /// A base URL given for online verification is not allowed.
    #[error("verification base URL for {provider} must be https:// (or http:// on loopback)")]
    BaseUrl {
        /// The provider id.
        provider: String,
    },
    /// The gateway is running and the mode forbids rotating under it.
    #[error("the gateway is running (port {port} answers on loopback)")]
    GatewayRunning {
        /// The port that answered.
        port: u16,
    },
    /// A random number could not be drawn from the OS.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The moltvault secrets store could not be read or written.
    #[error(transparent)]
    Vault(#[from] moltvault_vault::Error),
    /// An item stored in the moltvault vault needs its value but the vault is locked.
    #[error("{item} is stored in the moltvault vault, which is locked")]
    VaultLocked {
        /// The item id.
        item: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read_err(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source,
    }
}
