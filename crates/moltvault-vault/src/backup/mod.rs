//! Encrypted backups of a gateway state directory, and safe restores.
//!
//! A backup is one file: a `tar` stream whose first member is `manifest.json` (path, type, size,
//! mode and SHA-256 of every entry), then the tree under `state/`, compressed with zstd (frame
//! checksum on) and encrypted with age to the vault's X25519 recipient. Writing one needs no
//! secret. It stays readable without moltvault:
//! `age -d -i key B | zstd -d | tar x`. The format is specified in `docs/formats/backup-v1.md`.
//!
//! Reading ([`verify`], [`restore`]) never trusts the archive: entries are checked against the
//! manifest (types, safe relative paths, sizes, hashes, no duplicates, nothing missing, a cap on
//! the decompressed volume), and a restore writes into a fresh 0700 staging directory that is
//! swapped in only after the age stream ended cleanly and every hash matched.
//!
//! ```no_run
//! use moltvault_vault::backup::{self, BackupOptions, NoProgress};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let id = age::x25519::Identity::generate();
//! let opts = BackupOptions::new("/home/me/.openclaw", "myhost", "/home/me/.moltvault/tmp");
//! let target = backup::LocalDir::new("/srv/backups");
//! let made = backup::create(&opts, &id.to_public(), &target, &NoProgress)?;
//! let report = backup::verify(&target, &made.name, &id, &NoProgress)?;
//! assert_eq!(report.files, made.files);
//! # Ok(()) }
//! ```

mod leftovers;
mod manifest;
mod reader;
mod retention;
#[cfg(feature = "s3")]
mod s3;
mod target;
mod verified;
mod writer;

use std::path::PathBuf;

pub use leftovers::{Leftover, STALE_AFTER};
pub use manifest::{
    EntryKind, FORMAT_NAME, FORMAT_VERSION, MAX_DEPTH, MAX_ENTRIES, MAX_MANIFEST_BYTES,
    MAX_PATH_BYTES, Manifest, ManifestEntry, Skipped, check_link_target, check_rel_path,
    format_mode, parse_mode,
};
pub use reader::{
    Limits, RestoreOptions, RestoreReport, VerifyReport, read_archive, restore, verify,
};
pub use retention::{BackupInfo, KeepPolicy, PruneReport, parse_backup_name, plan_prune, prune};
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3Target};
pub use target::{BackupTarget, BackupUpload, LocalDir, list_backups};
pub use verified::{
    HashingTarget, MAX_RECORDS, VERIFIED_FILE, VerifiedBackup, find_verified, marker_path,
    read_verified, record_from, record_verified, verify_and_record,
};
pub use writer::{BackupOptions, BackupSummary, backup_name, create, write_archive};

/// The name of the manifest member, always the first in the archive.
pub const MANIFEST_MEMBER: &str = "manifest.json";
/// The directory every backed-up entry sits under inside the archive.
pub const STATE_PREFIX: &str = "state";
/// The file-name suffix of every backup.
pub const BACKUP_SUFFIX: &str = ".tar.zst.age";

/// Receives progress from long operations; the CLI draws a bar, libraries never print.
pub trait Progress {
    /// Sets the total amount of work, in bytes.
    fn set_total(&self, total: u64);
    /// Reports `n` more bytes done.
    fn advance(&self, n: u64);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _total: u64) {}
    fn advance(&self, _n: u64) {}
}

/// Errors of backup, verify, restore and prune; each names the file or entry concerned.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// An I/O operation on `path` failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The write funnel failed.
    #[error(transparent)]
    Fs(#[from] crate::fsio::FsError),
    /// SQLite's online backup of a database failed.
    #[error("cannot copy the SQLite database {path} through SQLite's online backup")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file changed in place while it was being backed up (not just appended to).
    #[error("{path} changed while it was being backed up")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The age encryption could not be set up.
    #[error("cannot encrypt the backup")]
    Encrypt(#[source] age::EncryptError),
    /// The backup's age header could not be opened with the given identity.
    #[error("cannot decrypt backup {backup}")]
    Decrypt {
        /// The backup's name.
        backup: String,
        /// The age error (wrong key, not an age file, damaged header).
        #[source]
        source: age::DecryptError,
    },
    /// The backup is damaged: truncated, bit-flipped, or not a moltvault backup.
    #[error("backup {backup} is damaged: {reason}")]
    Corrupt {
        /// The backup's name.
        backup: String,
        /// What was found.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The archive holds an entry that a restore must never write.
    #[error("backup {backup} holds an unsafe entry {entry:?}: {reason}")]
    Unsafe {
        /// The backup's name.
        backup: String,
        /// The entry's path as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The manifest is invalid.
    #[error("invalid backup manifest: {reason}")]
    Manifest {
        /// What is wrong with it.
        reason: String,
    },
    /// A file's content does not match the manifest's SHA-256.
    #[error("backup {backup}: {entry} does not match its SHA-256 in the manifest")]
    HashMismatch {
        /// The backup's name.
        backup: String,
        /// The entry's path.
        entry: String,
    },
    /// The name is not a backup name (`moltvault-<host>-<UTC time>.tar.zst.age`).
    #[error("{0:?} is not a moltvault backup name")]
    BadName(String),
    /// A backup with this name already exists (backups are write-once).
    #[error("a backup named {0} already exists on the target")]
    Exists(String),
    /// Another moltvault restore is writing into this directory.
    #[error("another moltvault restore is running into {0}")]
    Busy(PathBuf),
    /// No backup with this name exists on the target.
    #[error("no backup named {0} on the target")]
    NotFound(String),
    /// A glob given to --exclude or --only is invalid.
    #[error("invalid glob {glob:?}")]
    Glob {
        /// The glob.
        glob: String,
        /// The parse error.
        #[source]
        source: globset::Error,
    },
    /// Prune found no backup that verifies, so it deletes nothing.
    #[error("no backup on the target verifies, so nothing was deleted")]
    NothingVerified {
        /// The newest verification error.
        #[source]
        source: Box<BackupError>,
    },
    /// The remote object store failed.
    #[error("remote store: cannot {op} {name}")]
    Remote {
        /// What was being done.
        op: &'static str,
        /// The object concerned.
        name: String,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackupError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BackupError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Builds a glob set from patterns.
///
/// # Errors
/// Fails with [`BackupError::Glob`] on an invalid pattern.
pub fn glob_set(patterns: &[String]) -> Result<globset::GlobSet, BackupError> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let g = globset::GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|source| BackupError::Glob {
                glob: p.clone(),
                source,
            })?;
        b.add(g);
    }
    b.build().map_err(|source| BackupError::Glob {
        glob: patterns.join(" "),
        source,
    })
}

#[cfg(test)]
mod tests;
