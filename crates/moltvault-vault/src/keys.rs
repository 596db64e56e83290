//! The vault identity, its unlock methods and the vault config.
//!
//! Layout of a vault directory (0700):
//!
//! ```text
//! config.toml          public: format version, the vault recipient, the unlock methods
//! keys/<id>.age        the vault identity, age-encrypted once per unlock method
//! ```
//!
//! Each key file is a standard age file whose plaintext is an age identity file
//! (`AGE-SECRET-KEY-1…`): a passphrase key file opens with stock `age -d`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{DecryptFailure, Error, Result};
use crate::fsio::{self, WriteOptions};
use crate::keyring::{self, KeyringStore};
use crate::seal::io_err;

/// The vault config file name inside the vault directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The directory of wrapped key files inside the vault directory.
pub const KEYS_DIR: &str = "keys";
/// The default (and minimum) scrypt work factor (log2 N) of passphrase key files.
pub const DEFAULT_WORK_FACTOR: u8 = 18;
/// The highest scrypt work factor accepted when opening a key file (a DoS cap).
pub const MAX_WORK_FACTOR: u8 = 22;
const CONFIG_VERSION: u32 = 1;

/// The vault identity (an age X25519 secret key): zeroized on drop, redacted in `Debug`.
pub struct Identity(age::x25519::Identity);

impl Identity {
    /// Generates a fresh identity.
    pub fn generate() -> Self {
        Identity(age::x25519::Identity::generate())
    }

    /// The age identity, for APIs that take one.
    pub fn as_age(&self) -> &age::x25519::Identity {
        &self.0
    }

    /// The matching public recipient.
    pub fn to_public(&self) -> age::x25519::Recipient {
        self.0.to_public()
    }

    /// The identity as an age identity file (comment lines plus `AGE-SECRET-KEY-1…`).
    pub fn to_identity_file(&self) -> SecretString {
        let key = self.0.to_string();
        SecretString::from(format!(
            "# moltvault vault identity\n# public key: {}\n{}\n",
            self.0.to_public(),
            key.expose_secret()
        ))
    }

    /// Parses the first `AGE-SECRET-KEY-1…` line of an identity file's text.
    fn from_identity_text(text: &str) -> Option<Self> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .and_then(|l| age::x25519::Identity::from_str(l).ok())
            .map(Identity)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity([REDACTED], recipient: {})", self.0.to_public())
    }
}

/// The recovery key `init` hands out once: the vault identity as an age identity file.
///
/// It opens every sealed file and backup with stock `age -d -i <file>`; moltvault keeps no copy
/// of it outside the wrapped key files.
pub struct RecoveryKey(SecretString);

impl RecoveryKey {
    /// The identity file text, to be saved by the user.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey([REDACTED])")
    }
}

/// How `unlock` talks to the user: every question goes through here (the CLI implements it
/// with a hidden prompt, `--passphrase-file` or `MOLTVAULT_PASSPHRASE`).
pub trait Unlocker {
    /// Returns the passphrase to try against the passphrase key files, or `None` if there is
    /// none to give. Asked at most once per unlock.
    fn passphrase(&self, prompt: &str) -> Option<SecretString>;

    /// A recovery identity file supplied out of band (tried first), if any.
    fn identity_file(&self) -> Option<&Path> {
        None
    }

    /// Restricts unlocking to the method with this id, if any.
    fn only_method(&self) -> Option<&str> {
        None
    }

    /// Receives a status line (which method opened the vault, which failed).
    fn note(&self, _message: &str) {}
}

/// An [`Unlocker`] with a fixed passphrase (tests, automation through the library).
pub struct FixedPassphrase(pub SecretString);

impl std::fmt::Debug for FixedPassphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedPassphrase([REDACTED])")
    }
}

impl Unlocker for FixedPassphrase {
    fn passphrase(&self, _prompt: &str) -> Option<SecretString> {
        Some(self.0.clone())
    }
}

/// The kind of an unlock method, as stored in `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MethodKind {
    /// A passphrase (age scrypt); the key file opens with `age -d`.
    Passphrase,
    /// An OS keyring cache: the key file is encrypted to a random identity held in the store.
    Keyring {
        /// The store holding the wrapping identity.
        store: KeyringStore,
    },
    /// An age plugin (YubiKey, TPM, Secure Enclave...).
    Plugin {
        /// The plugin recipient (`age1NAME1…`).
        recipient: String,
        /// The plugin identity (`AGE-PLUGIN-NAME-1…`), if the plugin needs one to decrypt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
    },
}

/// One way to unlock the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockMethod {
    /// A short name, unique in the vault (`passphrase`, `keyring`, `yubikey`...).
    pub id: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: MethodKind,
    /// When it was added (RFC 3339).
    pub added: String,
}

impl UnlockMethod {
    /// A one-word label of the kind.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            MethodKind::Passphrase => "passphrase",
            MethodKind::Keyring { .. } => "keyring",
            MethodKind::Plugin { .. } => "plugin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    version: u32,
    recipient: String,
    created: String,
    #[serde(default, rename = "unlock")]
    methods: Vec<UnlockMethod>,
}

/// Options of [`Vault::init`].
pub struct InitOptions {
    /// The passphrase of the first unlock method (id `passphrase`).
    pub passphrase: SecretString,
    /// scrypt work factor (log2 N) for the passphrase key file; values below 18 are only for
    /// tests.
    pub work_factor: u8,
}

impl std::fmt::Debug for InitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitOptions")
            .field("passphrase", &"[REDACTED]")
            .field("work_factor", &self.work_factor)
            .finish()
    }
}

impl InitOptions {
    /// Options with `passphrase` and the default work factor.
    pub fn new(passphrase: SecretString) -> Self {
        InitOptions {
            passphrase,
            work_factor: DEFAULT_WORK_FACTOR,
        }
    }
}

/// An opened vault: its directory and public config. Opening needs no secret.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
    recipient: age::x25519::Recipient,
    config: Config,
}

impl Vault {
    /// Creates a vault in `dir`: a fresh identity, `config.toml`, and a passphrase key file.
    /// Returns the vault and the recovery key, which the caller must hand to the user.
    ///
    /// # Errors
    /// Fails if a vault already exists there, the passphrase is empty, or a write fails.
    pub fn init(dir: &Path, opts: InitOptions) -> Result<(Vault, RecoveryKey)> {
        if opts.passphrase.expose_secret().is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let config_path = dir.join(CONFIG_FILE);
        if fs::symlink_metadata(&config_path).is_ok() {
            return Err(Error::AlreadyInitialized {
                dir: dir.to_path_buf(),
            });
        }
        fsio::create_secret_dir_all(&dir.join(KEYS_DIR))?;
        let identity = Identity::generate();
        let recipient = identity.to_public();
        let now = now_rfc3339();
        let method = UnlockMethod {
            id: "passphrase".into(),
            kind: MethodKind::Passphrase,
            added: now.clone(),
        };
        let key_path = dir.join(KEYS_DIR).join("passphrase.age");
        // A leftover key file from an init that crashed before writing the config is stale.
        if fs::symlink_metadata(&key_path).is_ok() {
            fsio::remove_durably(&key_path)?;
        }
        write_passphrase_key(&key_path, &identity, &opts.passphrase, opts.work_factor)?;
        let config = Config {
            version: CONFIG_VERSION,
            recipient: recipient.to_string(),
            created: now,
            methods: vec![method],
        };
        // The config goes last: a vault exists only once it is written.
        write_config(&config_path, &config, false)?;
        let recovery = RecoveryKey(identity.to_identity_file());
        Ok((
            Vault {
                dir: dir.to_path_buf(),
                recipient,
                config,
            },
            recovery,
        ))
    }

    /// Opens the vault in `dir` from its public config (no secret needed).
    ///
    /// # Errors
    /// [`Error::NotInitialized`] without a config, [`Error::Config`] if it is damaged.
    pub fn open(dir: &Path) -> Result<Vault> {
        let path = dir.join(CONFIG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialized {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let config: Config = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            detail: e.message().to_string(),
        })?;
        if config.version != CONFIG_VERSION {
            return Err(Error::Config {
                path,
                detail: format!("unsupported version {}", config.version),
            });
        }
        let recipient =
            age::x25519::Recipient::from_str(&config.recipient).map_err(|_| Error::Config {
                path: path.clone(),
                detail: "the recipient is not an age X25519 recipient".into(),
            })?;
        Ok(Vault {
            dir: dir.to_path_buf(),
            recipient,
            config,
        })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public recipient everything is encrypted to.
    pub fn recipient(&self) -> &age::x25519::Recipient {
        &self.recipient
    }

    /// When the vault was created (RFC 3339).
    pub fn created(&self) -> &str {
        &self.config.created
    }

    /// The unlock methods, in the order they were added.
    pub fn methods(&self) -> &[UnlockMethod] {
        &self.config.methods
    }

    /// The key file of a method.
    pub fn key_file(&self, id: &str) -> PathBuf {
        self.dir.join(KEYS_DIR).join(format!("{id}.age"))
    }

    /// Unlocks the vault identity: a recovery identity file if the unlocker gives one, then
    /// keyring methods, then passphrase methods (one question), then plugin methods.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] when the passphrase opened no key file,
    /// [`Error::PassphraseNeeded`] when none was given, [`Error::Locked`] otherwise, or the
    /// error of the recovery identity file.
    pub fn unlock(&self, unlocker: &dyn Unlocker) -> Result<Identity> {
        if let Some(path) = unlocker.identity_file() {
            return self.identity_from_file(path);
        }
        let only = unlocker.only_method();
        if let Some(id) = only
            && !self.config.methods.iter().any(|m| m.id == id)
        {
            return Err(Error::UnknownMethod { id: id.to_string() });
        }
        let wanted = |m: &&UnlockMethod| only.is_none_or(|id| id == m.id);
        let mut attempts = Vec::new();
        for m in self.config.methods.iter().filter(wanted) {
            if let MethodKind::Keyring { store } = &m.kind {
                match keyring::unwrap(*store, &self.keyring_user(&m.id), &self.key_file(&m.id))
                    .and_then(|id| self.check(id, &self.key_file(&m.id)))
                {
                    Ok(id) => {
                        unlocker.note(&format!("unlocked with {} ({})", m.id, store.label()));
                        return Ok(id);
                    }
                    Err(e) => {
                        unlocker.note(&format!("{} did not unlock: {e}", m.id));
                        attempts.push(format!("{}: {e}", m.id));
                    }
                }
            }
        }
        let pass_methods: Vec<&UnlockMethod> = self
            .config
            .methods
            .iter()
            .filter(wanted)
            .filter(|m| m.kind == MethodKind::Passphrase)
            .collect();
        let mut wrong: Option<PathBuf> = None;
        let mut needed = false;
        if !pass_methods.is_empty() {
            match unlocker.passphrase("vault passphrase: ") {
                None => {
                    needed = true;
                    attempts.push("passphrase: none given".into());
                }
                Some(pass) => {
                    for m in &pass_methods {
                        let path = self.key_file(&m.id);
                        match read_passphrase_key(&path, &pass).and_then(|id| self.check(id, &path))
                        {
                            Ok(id) => {
                                unlocker.note(&format!("unlocked with {}", m.id));
                                return Ok(id);
                            }
                            Err(Error::WrongPassphrase { path }) => {
                                attempts.push(format!("{}: wrong passphrase", m.id));
                                wrong.get_or_insert(path);
                            }
                            Err(e) => attempts.push(format!("{}: {e}", m.id)),
                        }
                    }
                }
            }
        }
        for m in self.config.methods.iter().filter(wanted) {
            if let MethodKind::Plugin {
                recipient,
                identity,
            } = &m.kind
            {
                let path = self.key_file(&m.id);
                match crate::plugin::unwrap(recipient, identity.as_deref(), &path)
                    .and_then(|id| self.check(id, &path))
                {
                    Ok(id) => {
                        unlocker.note(&format!("unlocked with {}", m.id));
                        return Ok(id);
                    }
                    Err(e) => attempts.push(format!("{}: {e}", m.id)),
                }
            }
        }
        if let Some(path) = wrong {
            return Err(Error::WrongPassphrase { path });
        }
        if needed && attempts.len() == 1 {
            return Err(Error::PassphraseNeeded);
        }
        Err(Error::Locked {
            dir: self.dir.clone(),
            attempts,
        })
    }

    /// Reads a recovery identity file and checks it is this vault's identity.
    ///
    /// # Errors
    /// Fails if the file cannot be read, holds no identity, or another identity.
    pub fn identity_from_file(&self, path: &Path) -> Result<Identity> {
        let file = crate::seal::open_regular(path)?;
        let mut text = Zeroizing::new(String::new());
        file.take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| io_err("read", path, e))?;
        let id = Identity::from_identity_text(&text).ok_or_else(|| Error::BadIdentityFile {
            path: path.to_path_buf(),
        })?;
        self.check(id, path)
    }

    fn check(&self, id: Identity, path: &Path) -> Result<Identity> {
        if id.to_public().to_string() == self.recipient.to_string() {
            Ok(id)
        } else {
            Err(Error::WrongIdentity {
                path: path.to_path_buf(),
                recipient: self.recipient.to_string(),
            })
        }
    }

    fn keyring_user(&self, id: &str) -> String {
        // One entry per vault and method; the recipient is public, its prefix is unique enough.
        format!(
            "{}/{id}",
            &self.config.recipient[..24.min(self.config.recipient.len())]
        )
    }

    /// Adds a passphrase unlock method (writes one small key file; no data is re-encrypted).
    ///
    /// # Errors
    /// Fails on a duplicate or invalid id, an empty passphrase, or a write failure.
    pub fn add_passphrase(
        &mut self,
        identity: &Identity,
        id: &str,
        passphrase: &SecretString,
        work_factor: u8,
    ) -> Result<()> {
        if passphrase.expose_secret().is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        self.add_method(id, MethodKind::Passphrase, |path| {
            write_passphrase_key(path, identity, passphrase, work_factor)
        })
    }

    /// Adds an OS keyring unlock method: the identity is wrapped to a random key kept in
    /// `store`.
    ///
    /// # Errors
    /// [`Error::KeyringUnavailable`] when the store cannot be used on this host (never a
    /// silent fallback), or the errors of [`Vault::add_passphrase`].
    pub fn add_keyring(
        &mut self,
        identity: &Identity,
        id: &str,
        store: KeyringStore,
    ) -> Result<()> {
        let user = self.keyring_user(id);
        self.add_method(id, MethodKind::Keyring { store }, |path| {
            keyring::wrap(store, &user, identity, path)
        })
    }

    /// Adds an age plugin unlock method for `recipient` (`age1NAME1…`), with the plugin's
    /// identity string if it needs one to decrypt.
    ///
    /// # Errors
    /// [`Error::BadRecipient`], [`Error::PluginMissing`] when `age-plugin-NAME` is not on
    /// `PATH`, [`Error::Plugin`] when it fails, or the errors of [`Vault::add_passphrase`].
    pub fn add_plugin(
        &mut self,
        identity: &Identity,
        id: &str,
        recipient: &str,
        plugin_identity: Option<&str>,
    ) -> Result<()> {
        let kind = MethodKind::Plugin {
            recipient: recipient.to_string(),
            identity: plugin_identity.map(str::to_string),
        };
        self.add_method(id, kind, |path| {
            crate::plugin::wrap(recipient, identity, path)
        })
    }

    fn add_method(
        &mut self,
        id: &str,
        kind: MethodKind,
        write_key: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        validate_id(id)?;
        if self.config.methods.iter().any(|m| m.id == id) {
            return Err(Error::MethodExists { id: id.to_string() });
        }
        fsio::create_secret_dir_all(&self.dir.join(KEYS_DIR))?;
        let path = self.key_file(id);
        // An orphan key file (a crash between key file and config) is not a method: replace it.
        if fs::symlink_metadata(&path).is_ok() {
            fsio::remove_durably(&path)?;
        }
        write_key(&path)?;
        let mut config = self.config.clone();
        config.methods.push(UnlockMethod {
            id: id.to_string(),
            kind,
            added: now_rfc3339(),
        });
        if let Err(e) = write_config(&self.dir.join(CONFIG_FILE), &config, true) {
            let _ = fsio::remove_durably(&path);
            return Err(e);
        }
        self.config = config;
        Ok(())
    }

    /// Removes an unlock method: the config first, then its key file (and keyring entry).
    ///
    /// # Errors
    /// [`Error::UnknownMethod`], [`Error::LastMethod`], or a write failure.
    pub fn remove_method(&mut self, id: &str) -> Result<()> {
        let Some(pos) = self.config.methods.iter().position(|m| m.id == id) else {
            return Err(Error::UnknownMethod { id: id.to_string() });
        };
        if self.config.methods.len() == 1 {
            return Err(Error::LastMethod { id: id.to_string() });
        }
        let mut config = self.config.clone();
        let removed = config.methods.remove(pos);
        write_config(&self.dir.join(CONFIG_FILE), &config, true)?;
        self.config = config;
        let path = self.key_file(id);
        if fs::symlink_metadata(&path).is_ok() {
            fsio::remove_durably(&path)?;
        }
        if let MethodKind::Keyring { store } = removed.kind {
            // Best effort: the key file is gone, so the keyring entry alone opens nothing.
            let _ = keyring::forget(store, &self.keyring_user(id));
        }
        Ok(())
    }
}

fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            path: PathBuf::from(id),
            detail: "a method name is 1-32 characters of a-z, 0-9, - and _".into(),
        })
    }
}

fn write_config(path: &Path, config: &Config, replace: bool) -> Result<()> {
    let mut text = String::from(
        "# moltvault vault config: public data only (the recipient is a public key).\n",
    );
    text.push_str(&toml::to_string(config).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?);
    let opts = if replace {
        WriteOptions::secret_replace()
    } else {
        WriteOptions::secret_new()
    };
    fsio::write_atomic(path, text.as_bytes(), opts)?;
    Ok(())
}

/// Writes the identity file encrypted with a passphrase (age scrypt at `work_factor`).
fn write_passphrase_key(
    path: &Path,
    identity: &Identity,
    passphrase: &SecretString,
    work_factor: u8,
) -> Result<()> {
    let mut r = age::scrypt::Recipient::new(passphrase.clone());
    r.set_work_factor(work_factor.clamp(1, MAX_WORK_FACTOR));
    write_wrapped(path, identity, &[&r as &dyn age::Recipient])
}

/// Writes the identity file encrypted to `recipients` as a new 0600 file.
pub(crate) fn write_wrapped(
    path: &Path,
    identity: &Identity,
    recipients: &[&dyn age::Recipient],
) -> Result<()> {
    let mut out = fsio::AtomicFile::create(path, WriteOptions::secret_new())?;
    let text = identity.to_identity_file();
    let enc = age::Encryptor::with_recipients(recipients.iter().copied()).map_err(|e| {
        Error::Encrypt {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| fsio::FsError::io("write", path, e))?;
    w.write_all(text.expose_secret().as_bytes())
        .map_err(|e| fsio::FsError::io("write", path, e))?;
    w.finish()
        .map_err(|e| fsio::FsError::io("write", path, e))?;
    out.commit()?;
    Ok(())
}

/// Reads a key file with `identities` and parses the vault identity from it.
pub(crate) fn read_wrapped(path: &Path, identities: &[&dyn age::Identity]) -> Result<Identity> {
    let file = match crate::seal::open_regular(path) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingKeyFile {
                path: path.to_path_buf(),
            });
        }
        other => other?,
    };
    let dec = age::Decryptor::new(std::io::BufReader::new(file)).map_err(|e| Error::Decrypt {
        path: path.to_path_buf(),
        kind: DecryptFailure::from_age(&e),
    })?;
    let mut r = dec
        .decrypt(identities.iter().copied())
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys
                if identities.len() == 1 && is_scrypt_file(path) =>
            {
                Error::WrongPassphrase {
                    path: path.to_path_buf(),
                }
            }
            e => Error::Decrypt {
                path: path.to_path_buf(),
                kind: DecryptFailure::from_age(&e),
            },
        })?;
    let mut text = Zeroizing::new(String::new());
    r.read_to_string(&mut text).map_err(|e| Error::Decrypt {
        path: path.to_path_buf(),
        kind: DecryptFailure::from_io(&e),
    })?;
    Identity::from_identity_text(&text).ok_or_else(|| Error::BadIdentityFile {
        path: path.to_path_buf(),
    })
}

fn is_scrypt_file(path: &Path) -> bool {
    fs::read(path)
        .map(|b| b.windows(9).take(200).any(|w| w == b"-> scrypt"))
        .unwrap_or(false)
}

fn read_passphrase_key(path: &Path, passphrase: &SecretString) -> Result<Identity> {
    let mut id = age::scrypt::Identity::new(passphrase.clone());
    id.set_max_work_factor(MAX_WORK_FACTOR);
    read_wrapped(path, &[&id as &dyn age::Identity])
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn weak(pass: &str) -> InitOptions {
        InitOptions {
            passphrase: SecretString::from(pass),
            work_factor: 10,
        }
    }

    #[test]
    fn init_open_unlock_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (v, recovery) = Vault::init(dir.path(), weak("pw one")).unwrap();
        let opened = Vault::open(dir.path()).unwrap();
        assert_eq!(opened.recipient().to_string(), v.recipient().to_string());
        let id = opened
            .unlock(&FixedPassphrase(SecretString::from("pw one")))
            .unwrap();
        assert_eq!(id.to_public().to_string(), v.recipient().to_string());
        assert!(recovery.expose().contains("AGE-SECRET-KEY-1"));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(dir.path().join("keys/passphrase.age"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        assert!(matches!(
            Vault::init(dir.path(), weak("x")),
            Err(Error::AlreadyInitialized { .. })
        ));
    }

    #[test]
    fn default_work_factor_is_at_least_18_in_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        Vault::init(dir.path(), InitOptions::new(SecretString::from("pw"))).unwrap();
        let bytes = fs::read(dir.path().join("keys/passphrase.age")).unwrap();
        let header = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        let line = header
            .lines()
            .find(|l| l.starts_with("-> scrypt "))
            .unwrap();
        let log_n: u8 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(log_n >= 18, "{line}");
    }

    #[test]
    fn wrong_passphrase_and_missing_passphrase_are_distinct_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (v, _) = Vault::init(dir.path(), weak("right")).unwrap();
        match v.unlock(&FixedPassphrase(SecretString::from("wrong"))) {
            Err(Error::WrongPassphrase { path }) => assert!(path.ends_with("passphrase.age")),
            other => panic!("{other:?}"),
        }
        struct NoPass;
        impl Unlocker for NoPass {
            fn passphrase(&self, _: &str) -> Option<SecretString> {
                None
            }
        }
        assert!(matches!(v.unlock(&NoPass), Err(Error::PassphraseNeeded)));
        fs::remove_file(dir.path().join("keys/passphrase.age")).unwrap();
        match v.unlock(&FixedPassphrase(SecretString::from("right"))) {
            Err(Error::Locked { attempts, .. }) => {
                assert!(attempts[0].contains("missing"), "{attempts:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn adding_and_removing_methods_never_touches_other_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut v, _) = Vault::init(dir.path(), weak("first")).unwrap();
        let id = v
            .unlock(&FixedPassphrase(SecretString::from("first")))
            .unwrap();
        let before = fs::read(dir.path().join("keys/passphrase.age")).unwrap();
        v.add_passphrase(&id, "backup-pass", &SecretString::from("second"), 10)
            .unwrap();
        assert!(matches!(
            v.add_passphrase(&id, "backup-pass", &SecretString::from("x"), 10),
            Err(Error::MethodExists { .. })
        ));
        let v2 = Vault::open(dir.path()).unwrap();
        assert_eq!(v2.methods().len(), 2);
        v2.unlock(&FixedPassphrase(SecretString::from("second")))
            .unwrap();
        let mut v2 = v2;
        v2.remove_method("passphrase").unwrap();
        assert!(!dir.path().join("keys/passphrase.age").exists());
        assert!(matches!(
            v2.remove_method("backup-pass"),
            Err(Error::LastMethod { .. })
        ));
        assert!(matches!(
            v2.unlock(&FixedPassphrase(SecretString::from("first"))),
            Err(Error::WrongPassphrase { .. })
        ));
        assert_ne!(
            before,
            fs::read(dir.path().join("keys/backup-pass.age")).unwrap()
        );
    }

    #[test]
    fn recovery_identity_file_unlocks_and_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (v, recovery) = Vault::init(dir.path(), weak("pw")).unwrap();
        let rec = dir.path().join("recovery.txt");
        fs::write(&rec, recovery.expose()).unwrap();
        assert_eq!(
            v.identity_from_file(&rec).unwrap().to_public().to_string(),
            v.recipient().to_string()
        );
        let other = dir.path().join("other.txt");
        fs::write(
            &other,
            Identity::generate().to_identity_file().expose_secret(),
        )
        .unwrap();
        assert!(matches!(
            v.identity_from_file(&other),
            Err(Error::WrongIdentity { .. })
        ));
        fs::write(&other, "hello\n").unwrap();
        assert!(matches!(
            v.identity_from_file(&other),
            Err(Error::BadIdentityFile { .. })
        ));
    }

    #[test]
    fn keyring_on_this_host_is_an_error_or_works_never_silent() {
        let dir = tempfile::tempdir().unwrap();
        let (mut v, _) = Vault::init(dir.path(), weak("pw")).unwrap();
        let id = v
            .unlock(&FixedPassphrase(SecretString::from("pw")))
            .unwrap();
        match v.add_keyring(&id, "keyring", KeyringStore::Keyutils) {
            Err(Error::KeyringUnavailable { store, .. }) => {
                assert_eq!(store, "keyutils");
                assert_eq!(Vault::open(dir.path()).unwrap().methods().len(), 1);
                assert!(!dir.path().join("keys/keyring.age").exists());
            }
            Ok(()) => {
                // A host with a usable session keyring: it must then really unlock.
                let v2 = Vault::open(dir.path()).unwrap();
                struct NoPass;
                impl Unlocker for NoPass {
                    fn passphrase(&self, _: &str) -> Option<SecretString> {
                        None
                    }
                }
                v2.unlock(&NoPass).unwrap();
                let mut v2 = v2;
                v2.remove_method("keyring").unwrap();
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn plugin_missing_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut v, _) = Vault::init(dir.path(), weak("pw")).unwrap();
        let id = v
            .unlock(&FixedPassphrase(SecretString::from("pw")))
            .unwrap();
        // A syntactically valid recipient for a plugin that is not installed.
        let rcpt = "age1moltvaulttest1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq04rwke";
        match v.add_plugin(&id, "yubi", rcpt, None) {
            Err(Error::PluginMissing { binary }) => assert_eq!(binary, "age-plugin-moltvaulttest"),
            Err(Error::BadRecipient { .. }) => panic!("test recipient does not parse"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            v.add_plugin(&id, "yubi", "age1notbech32", None),
            Err(Error::BadRecipient { .. })
        ));
        assert_eq!(v.methods().len(), 1);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let id = Identity::generate();
        let secret = id.as_age().to_string();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(secret.expose_secret()), "{dbg}");
        assert!(dbg.contains("REDACTED"));
        let rk = RecoveryKey(id.to_identity_file());
        assert!(!format!("{rk:?}").contains("AGE-SECRET-KEY"));
        let opts = InitOptions::new(SecretString::from("hunter2-pass"));
        assert!(!format!("{opts:?}").contains("hunter2"));
        let fp = FixedPassphrase(SecretString::from("hunter2-pass"));
        assert!(!format!("{fp:?}").contains("hunter2"));
    }
}
