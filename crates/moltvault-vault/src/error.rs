//! The vault's one error type.

use std::io;
use std::path::PathBuf;

use crate::fsio::FsError;

/// Everything that can go wrong in the vault; each variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No vault was found at the directory.
    #[error("no vault in {dir} (config.toml is missing)")]
    NotInitialized {
        /// The vault directory.
        dir: PathBuf,
    },
    /// `init` found an existing vault.
    #[error("a vault already exists in {dir}")]
    AlreadyInitialized {
        /// The vault directory.
        dir: PathBuf,
    },
    /// The vault config could not be parsed.
    #[error("cannot read the vault config {path}: {detail}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it (never contains a secret: the config holds none).
        detail: String,
    },
    /// A write through the funnel failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A read or other I/O on a path failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The passphrase did not open the key file.
    #[error("wrong passphrase for {path}")]
    WrongPassphrase {
        /// The passphrase-wrapped key file.
        path: PathBuf,
    },
    /// A passphrase was needed but none was supplied.
    #[error("the vault needs a passphrase to unlock and none was given")]
    PassphraseNeeded,
    /// A new passphrase was empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// No unlock method could open the vault.
    #[error("no unlock method opened the vault in {dir}")]
    Locked {
        /// The vault directory.
        dir: PathBuf,
        /// Why each method failed, one line per method (no secrets).
        attempts: Vec<String>,
    },
    /// A key file is missing.
    #[error("key file {path} is missing")]
    MissingKeyFile {
        /// The key file.
        path: PathBuf,
    },
    /// A key file did not contain a valid vault identity.
    #[error("{path} does not hold the vault identity for recipient {recipient}")]
    WrongIdentity {
        /// The key or identity file.
        path: PathBuf,
        /// The vault's recipient.
        recipient: String,
    },
    /// An identity file could not be parsed.
    #[error("{path} is not an age identity file")]
    BadIdentityFile {
        /// The file.
        path: PathBuf,
    },
    /// The OS keyring store cannot be used on this host.
    #[error("the {store} keyring store is not available on this host: {detail}")]
    KeyringUnavailable {
        /// The store that was chosen.
        store: &'static str,
        /// What the store reported.
        detail: String,
    },
    /// The keyring entry for this vault is gone (for example after a reboot: keyutils is RAM-only).
    #[error("the {store} keyring holds no key for this vault")]
    KeyringEmpty {
        /// The store that was chosen.
        store: &'static str,
    },
    /// An age plugin binary is not on `$PATH`.
    #[error("the age plugin {binary} is not on PATH")]
    PluginMissing {
        /// The plugin binary name (`age-plugin-NAME`).
        binary: String,
    },
    /// A recipient string could not be parsed.
    #[error("{value} is not a valid {kind} recipient")]
    BadRecipient {
        /// What was expected (`age X25519`, `age plugin`).
        kind: &'static str,
        /// The offending recipient (public, so safe to show).
        value: String,
    },
    /// An age plugin failed.
    #[error("the age plugin {plugin} failed: {detail}")]
    Plugin {
        /// The plugin name.
        plugin: String,
        /// What it reported.
        detail: String,
    },
    /// An unlock method with this id already exists.
    #[error("an unlock method named {id} already exists")]
    MethodExists {
        /// The method id.
        id: String,
    },
    /// No unlock method has this id.
    #[error("no unlock method named {id}")]
    UnknownMethod {
        /// The method id.
        id: String,
    },
    /// Removing the method would leave the vault with none.
    #[error("{id} is the last unlock method; removing it would lock the vault for good")]
    LastMethod {
        /// The method id.
        id: String,
    },
    /// An encrypted file could not be decrypted.
    #[error("cannot decrypt {path}: {kind}")]
    Decrypt {
        /// The encrypted file.
        path: PathBuf,
        /// The kind of damage.
        kind: DecryptFailure,
    },
    /// Encryption failed.
    #[error("cannot encrypt to {path}")]
    Encrypt {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Decrypt-verify after sealing found different content.
    #[error("verification of {path} failed: its decrypted content differs from the original")]
    VerifyMismatch {
        /// The sealed file.
        path: PathBuf,
    },
    /// The path is not a regular file (a symlink, a directory, a device...).
    #[error("{path} is not a regular file{}", if *.symlink { " (it is a symlink)" } else { "" })]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// Whether it is a symlink.
        symlink: bool,
    },
    /// A session's write lock is held by a running process.
    #[error("{path} is locked by a running process ({lock})")]
    LockHeld {
        /// The transcript.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The file was modified too recently to be inactive.
    #[error("{path} was written {secs} s ago; it may still be in use")]
    RecentlyWritten {
        /// The file.
        path: PathBuf,
        /// Seconds since its last modification.
        secs: u64,
    },
    /// Both the plaintext and the sealed copy exist.
    #[error("both {plain} and {sealed} exist")]
    Conflict {
        /// The plaintext file.
        plain: PathBuf,
        /// The sealed file.
        sealed: PathBuf,
    },
    /// A credential lock manifest is damaged.
    #[error("the lock manifest {path} is damaged: {detail}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// How an age file failed to decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptFailure {
    /// The file is not an age file, or its header is damaged.
    #[error("not an age file, or its header is damaged")]
    BadHeader,
    /// The header MAC does not match (tampered header or wrong key).
    #[error("the header is tampered with")]
    BadMac,
    /// The file was encrypted to a different recipient.
    #[error("it was encrypted to a different key")]
    NotForUs,
    /// The file ends before its final chunk.
    #[error("the file is truncated")]
    Truncated,
    /// A payload chunk failed authentication.
    #[error("the content is damaged or tampered with")]
    Damaged,
    /// The passphrase work factor is above the accepted maximum.
    #[error("its passphrase work factor is too high")]
    ExcessiveWork,
    /// The plugin that can decrypt it is missing.
    #[error("the age plugin it needs is missing")]
    MissingPlugin,
    /// Reading the file failed.
    #[error("read error")]
    Io,
}

impl DecryptFailure {
    /// Classifies an age header error.
    pub(crate) fn from_age(e: &age::DecryptError) -> Self {
        match e {
            age::DecryptError::InvalidMac => DecryptFailure::BadMac,
            age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                DecryptFailure::NotForUs
            }
            age::DecryptError::ExcessiveWork { .. } => DecryptFailure::ExcessiveWork,
            age::DecryptError::MissingPlugin { .. } => DecryptFailure::MissingPlugin,
            age::DecryptError::Io(io) => Self::from_io(io),
            _ => DecryptFailure::BadHeader,
        }
    }

    /// Classifies an error from reading a decrypted stream ([`crate::seal::OpenReader`]).
    pub fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => DecryptFailure::Truncated,
            io::ErrorKind::InvalidData => DecryptFailure::Damaged,
            _ => DecryptFailure::Io,
        }
    }
}

/// The vault's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
