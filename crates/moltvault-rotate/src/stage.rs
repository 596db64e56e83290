//! Staging: the new value of a secret is written encrypted (age) before any location is
//! touched, so it is durable from the moment the old value may be revoked.

use std::io::{Read, Write};
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, Result, read_err};

/// Encrypts staged values to a recipient and decrypts them on resume.
pub struct Sealer {
    recipient: Box<dyn age::Recipient + Send + Sync>,
    identity: Option<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("can_decrypt", &self.identity.is_some())
            .finish()
    }
}

impl Sealer {
    /// A sealer encrypting to `recipient` and decrypting with `identity` (needed to resume).
    pub fn new(
        recipient: Box<dyn age::Recipient + Send + Sync>,
        identity: Option<Box<dyn age::Identity + Send + Sync>>,
    ) -> Self {
        Sealer {
            recipient,
            identity,
        }
    }

    /// Encrypts `value` and writes it to `path` (0600, must not exist yet).
    ///
    /// # Errors
    /// Fails when encryption or the write fails.
    pub fn stage(&self, item: &str, path: &Path, value: &SecretString) -> Result<()> {
        let err = |detail: String| Error::Stage {
            op: "encrypt",
            item: item.to_string(),
            detail,
        };
        let enc = age::Encryptor::with_recipients(std::iter::once(
            self.recipient.as_ref() as &dyn age::Recipient
        ))
        .map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).map_err(|e| err(e.to_string()))?;
        w.write_all(value.expose_secret().as_bytes())
            .map_err(|e| err(e.to_string()))?;
        w.finish().map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent() {
            moltvault_vault::fsio::create_secret_dir_all(dir)?;
        }
        moltvault_vault::fsio::write_atomic(
            path,
            &out,
            moltvault_vault::fsio::WriteOptions::secret_replace(),
        )?;
        Ok(())
    }

    /// Reads back a staged value.
    ///
    /// # Errors
    /// Fails when the file cannot be read or decrypted (no identity, wrong key).
    pub fn unstage(&self, item: &str, path: &Path) -> Result<SecretString> {
        let err = |detail: String| Error::Stage {
            op: "decrypt",
            item: item.to_string(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
        let id = self
            .identity
            .as_ref()
            .ok_or_else(|| err("no identity to decrypt with (unlock the vault)".into()))?;
        let dec = age::Decryptor::new_buffered(&bytes[..]).map_err(|e| err(e.to_string()))?;
        let mut r = dec
            .decrypt(std::iter::once(id.as_ref() as &dyn age::Identity))
            .map_err(|e| err(e.to_string()))?;
        let mut plain = Zeroizing::new(Vec::new());
        r.read_to_end(&mut plain).map_err(|e| err(e.to_string()))?;
        let s = std::str::from_utf8(&plain).map_err(|_| err("not UTF-8".into()))?;
        Ok(SecretString::from(s.to_string()))
    }
}

/// Wipes a staged file: overwrite with zeros, fsync, unlink (best effort on SSD / CoW).
///
/// # Errors
/// Fails when the file cannot be removed.
pub fn wipe(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_file()
            && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path)
        {
            let zeros = vec![0u8; meta.len() as usize];
            let _ = f.write_all(&zeros);
            let _ = f.sync_all();
        }
        moltvault_vault::fsio::remove_durably(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_value_is_encrypted_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let s = Sealer::new(Box::new(id.to_public()), Some(Box::new(id)));
        let p = d.path().join("staging/0.age");
        let v = SecretString::from("a-very-secret-value-123".to_string());
        s.stage("x", &p, &v).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw.windows(10).any(|w| w == b"very-secre"));
        assert_eq!(
            s.unstage("x", &p).unwrap().expose_secret(),
            v.expose_secret()
        );
        wipe(&p).unwrap();
        assert!(!p.exists());
        let other = age::x25519::Identity::generate();
        let s2 = Sealer::new(Box::new(other.to_public()), Some(Box::new(other)));
        s.stage("x", &p, &v).unwrap();
        assert!(s2.unstage("x", &p).is_err());
    }
}
