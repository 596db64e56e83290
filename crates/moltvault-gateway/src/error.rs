//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use moltvault_vault::fsio::FsError;

/// Errors of gateway discovery, the session stores, the config reader/editor and the credential
/// inventory. Messages name the file concerned and never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No gateway state directory exists in any of the places looked at.
    #[error("no gateway state directory found (looked at: {})", PathList(.looked))]
    NotFound {
        /// Every place looked at, in order.
        looked: Vec<PathBuf>,
    },
    /// An explicitly given state dir (`--state-dir` or an environment variable) is not a directory.
    #[error("gateway state directory {path} (from {origin}) does not exist or is not a directory")]
    StateDirMissing {
        /// The path given.
        path: PathBuf,
        /// Where it came from: `--state-dir` or the environment variable's name.
        origin: String,
    },
    /// An explicitly given config file does not exist.
    #[error("gateway config {path} (from {origin}) does not exist")]
    ConfigMissing {
        /// The path given.
        path: PathBuf,
        /// Where it came from: `--config` or the environment variable's name.
        origin: String,
    },
    /// Reading a file or directory failed.
    #[error("cannot read {path}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A JSON / JSON5 file does not parse. Only the position is kept: parser messages can quote
    /// the offending line, which may hold a secret.
    #[error("cannot parse {path}: invalid JSON5 at line {line}, column {column}")]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// One-based line of the error (0 when unknown).
        line: usize,
        /// One-based column of the error (0 when unknown).
        column: usize,
    },
    /// A `$include` chain is deeper than the gateway allows, or loops.
    #[error("{path}: $include nesting is deeper than {max} levels or loops")]
    IncludeDepth {
        /// The file whose include exceeded the limit.
        path: PathBuf,
        /// The limit (the gateway's `MAX_INCLUDE_DEPTH`).
        max: usize,
    },
    /// A config path cannot be set or removed in this document.
    #[error("cannot edit `{key}` in {path}: {reason}")]
    ConfigPath {
        /// The config file.
        path: PathBuf,
        /// The dotted config path.
        key: String,
        /// Why (e.g. "`plugins` is not an object").
        reason: String,
    },
    /// The file changed on disk between reading and replacing it.
    #[error("{path} changed while moltvault was editing it; nothing was written")]
    Changed {
        /// The file concerned.
        path: PathBuf,
    },
    /// The file is sealed (age-encrypted) and has to be opened through the vault.
    #[error("{path} is sealed; read it with `moltvault cat` or unseal it first")]
    Sealed {
        /// The sealed file.
        path: PathBuf,
    },
    /// Writing through the atomic write funnel failed.
    #[error(transparent)]
    Write(#[from] FsError),
    /// A SQLite operation on a gateway database failed.
    #[error("sqlite error on {path} while {op}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A row of a gateway database holds data that does not decode.
    #[error("{path}: {what} does not decode (table {table})")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// What failed, without row content.
        what: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json5(path: &Path, err: &json5::Error) -> Self {
        let (line, column) = match err {
            json5::Error::Message {
                location: Some(l), ..
            } => (l.line, l.column),
            json5::Error::Message { location: None, .. } => (0, 0),
        };
        Error::Parse {
            path: path.to_path_buf(),
            line,
            column,
        }
    }

    pub(crate) fn json(path: &Path, err: &serde_json::Error) -> Self {
        Error::Parse {
            path: path.to_path_buf(),
            line: err.line(),
            column: err.column(),
        }
    }

    pub(crate) fn sqlite(path: &Path, op: &'static str, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

struct PathList<'a>(&'a [PathBuf]);

impl fmt::Display for PathList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", p.display())?;
        }
        Ok(())
    }
}
