//! The OS keyring unlock cache.
//!
//! The store is chosen explicitly (no platform-default guessing): on Linux the kernel keyutils
//! store, which is RAM-only (gone at reboot) — a cache, never the only copy. The keyring holds
//! a random age identity; `keys/<id>.age` is the vault identity encrypted to it, so the
//! keyring entry alone opens nothing once the key file is removed.

use std::path::Path;
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{Identity, read_wrapped, write_wrapped};

const SERVICE: &str = "moltvault";

/// A credential store the vault can cache its unlock key in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyringStore {
    /// The Linux kernel keyutils store (the user's session/persistent keyring; RAM-only).
    Keyutils,
}

impl KeyringStore {
    /// The store's name as the user types it.
    pub fn label(self) -> &'static str {
        match self {
            KeyringStore::Keyutils => "keyutils",
        }
    }

    /// Parses a store name (`keyutils`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "keyutils" => Some(KeyringStore::Keyutils),
            _ => None,
        }
    }
}

fn open_store(store: KeyringStore) -> Result<Arc<keyring_core::CredentialStore>> {
    match store {
        KeyringStore::Keyutils => {
            #[cfg(target_os = "linux")]
            {
                let s: Arc<keyring_core::CredentialStore> =
                    linux_keyutils_keyring_store::Store::new()
                        .map_err(|e| unavailable(store, &e))?;
                Ok(s)
            }
            #[cfg(not(target_os = "linux"))]
            {
                Err(Error::KeyringUnavailable {
                    store: store.label(),
                    detail: "keyutils exists only on Linux".into(),
                })
            }
        }
    }
}

fn unavailable(store: KeyringStore, e: &keyring_core::Error) -> Error {
    Error::KeyringUnavailable {
        store: store.label(),
        detail: e.to_string(),
    }
}

fn entry(
    store: &Arc<keyring_core::CredentialStore>,
    kind: KeyringStore,
    user: &str,
) -> Result<keyring_core::Entry> {
    keyring_core::Entry::new_in_store(store, SERVICE, user).map_err(|e| unavailable(kind, &e))
}

/// Wraps `identity` for a keyring method: a random identity goes into the store, the vault
/// identity is encrypted to it at `key_path`.
pub(crate) fn wrap(
    store: KeyringStore,
    user: &str,
    identity: &Identity,
    key_path: &Path,
) -> Result<()> {
    let s = open_store(store)?;
    wrap_in(&s, store, user, identity, key_path)
}

pub(crate) fn wrap_in(
    s: &Arc<keyring_core::CredentialStore>,
    kind: KeyringStore,
    user: &str,
    identity: &Identity,
    key_path: &Path,
) -> Result<()> {
    let wrapping = age::x25519::Identity::generate();
    let secret: SecretString = wrapping.to_string();
    let e = entry(s, kind, user)?;
    e.set_password(secret.expose_secret())
        .map_err(|err| unavailable(kind, &err))?;
    // Read it back: a store that accepts writes it cannot return is no cache at all.
    let back = Zeroizing::new(e.get_password().map_err(|err| unavailable(kind, &err))?);
    if back.as_str() != secret.expose_secret() {
        let _ = e.delete_credential();
        return Err(Error::KeyringUnavailable {
            store: kind.label(),
            detail: "the store returned a different value than was stored".into(),
        });
    }
    let rcpt = wrapping.to_public();
    if let Err(err) = write_wrapped(key_path, identity, &[&rcpt as &dyn age::Recipient]) {
        let _ = e.delete_credential();
        return Err(err);
    }
    Ok(())
}

/// Unwraps the vault identity through the keyring.
pub(crate) fn unwrap(store: KeyringStore, user: &str, key_path: &Path) -> Result<Identity> {
    let s = open_store(store)?;
    unwrap_in(&s, store, user, key_path)
}

pub(crate) fn unwrap_in(
    s: &Arc<keyring_core::CredentialStore>,
    kind: KeyringStore,
    user: &str,
    key_path: &Path,
) -> Result<Identity> {
    let e = entry(s, kind, user)?;
    let secret = Zeroizing::new(e.get_password().map_err(|err| match err {
        keyring_core::Error::NoEntry => Error::KeyringEmpty {
            store: kind.label(),
        },
        other => unavailable(kind, &other),
    })?);
    let wrapping: age::x25519::Identity =
        secret.parse().map_err(|_| Error::KeyringUnavailable {
            store: kind.label(),
            detail: "the stored value is not an age identity".into(),
        })?;
    read_wrapped(key_path, &[&wrapping as &dyn age::Identity])
}

/// Deletes the keyring entry of a method.
pub(crate) fn forget(store: KeyringStore, user: &str) -> Result<()> {
    let s = open_store(store)?;
    entry(&s, store, user)?
        .delete_credential()
        .map_err(|e| unavailable(store, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_a_store_and_empty_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<keyring_core::CredentialStore> = keyring_core::mock::Store::new().unwrap();
        let id = Identity::generate();
        let path = dir.path().join("keyring.age");
        wrap_in(&store, KeyringStore::Keyutils, "v/keyring", &id, &path).unwrap();
        let back = unwrap_in(&store, KeyringStore::Keyutils, "v/keyring", &path).unwrap();
        assert_eq!(back.to_public().to_string(), id.to_public().to_string());
        assert!(matches!(
            unwrap_in(&store, KeyringStore::Keyutils, "v/other", &path),
            Err(Error::KeyringEmpty { .. })
        ));
    }
}
