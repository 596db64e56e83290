//! Owns moltvault's keys, age encryption at rest, sealed sessions, locked credentials, backups
//! and the one funnel through which every file moltvault writes goes ([`fsio`]).
//!
//! # Key API
//!
//! - [`Vault::init`]`(dir, `[`InitOptions`]`) -> (Vault, `[`RecoveryKey`]`)` creates one age
//!   X25519 vault identity, writes the public recipient to `<dir>/config.toml` and the identity
//!   wrapped under a passphrase to `<dir>/keys/passphrase.age` (age scrypt, work factor 2^18,
//!   readable by stock `age -d`). The recovery key is the identity itself: hand it to the user.
//! - [`Vault::open`]`(dir)` reads the public config; [`Vault::recipient`] is all that sealing
//!   and backing up need (no secret, cron-safe).
//! - [`Vault::unlock`]`(&dyn `[`Unlocker`]`) -> `[`Identity`] asks the unlocker (the CLI's
//!   hidden prompt, `--passphrase-file`, `MOLTVAULT_PASSPHRASE`) and tries every unlock method.
//! - [`Vault::add_passphrase`], [`Vault::add_keyring`], [`Vault::add_plugin`],
//!   [`Vault::remove_method`] manage unlock methods without re-encrypting any data.
//! - [`seal::encrypt_to`]`(writer, recipient) -> `[`seal::SealWriter`] (call `finish`) and
//!   [`seal::decrypt_reader`]`(reader, &Identity) -> `[`seal::OpenReader`] stream age v1.
//! - [`seal::seal_file`] / [`seal::unseal_file`] / [`seal::open_sealed`] seal transcripts in
//!   place; [`lock`] seals credential files with a mode manifest.
//!
//! ```
//! use std::io::{Read, Write};
//! use moltvault_vault::{FixedPassphrase, InitOptions, Vault, seal};
//! use secrecy::SecretString;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut opts = InitOptions::new(SecretString::from("correct horse"));
//! opts.work_factor = 10; // tests only: the default is 18
//! let (vault, _recovery) = Vault::init(dir.path(), opts)?;
//!
//! // Sealing needs only the public recipient.
//! let vault = Vault::open(dir.path())?;
//! let mut w = seal::encrypt_to(Vec::new(), vault.recipient())?;
//! w.write_all(b"{\"type\":\"message\"}\n")?;
//! let sealed = w.finish()?;
//!
//! // Reading needs the identity.
//! let identity = vault.unlock(&FixedPassphrase(SecretString::from("correct horse")))?;
//! let mut plain = String::new();
//! seal::decrypt_reader(&sealed[..], &identity)?.read_to_string(&mut plain)?;
//! assert_eq!(plain, "{\"type\":\"message\"}\n");
//! # Ok(()) }
//! ```

pub mod backup;
pub mod error;
pub mod fsio;
pub mod install_key;
pub mod keyring;
pub mod keys;
pub mod lock;
mod plugin;
pub mod seal;
pub mod secrets_store;

pub use error::{DecryptFailure, Error, Result};
pub use keyring::KeyringStore;
pub use keys::{
    FixedPassphrase, Identity, InitOptions, MethodKind, RecoveryKey, UnlockMethod, Unlocker, Vault,
};
