//! Keyed fingerprints: how rotation names a secret without revealing it.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::error::{Error, Result, read_err};

/// The per-install key fingerprints are computed with (HMAC-SHA256), so a leaked report or
/// journal does not allow guessing low-entropy secrets offline. It is the same key, file and
/// MAC as `moltvault redact`'s placeholders (`<vault dir>/install.key`), so the first 8 hex
/// digits of a rotation fingerprint are the `fp8` tag redaction writes for the same value.
pub struct FingerprintKey(SecretBox<[u8; 32]>);

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([REDACTED])")
    }
}

impl FingerprintKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FingerprintKey(SecretBox::new(Box::new(bytes)))
    }

    /// Loads the key from `path` (32 raw bytes or 64 hex characters), creating it 0600 with
    /// fresh random bytes when the file does not exist.
    ///
    /// # Errors
    /// Fails when the file cannot be read or written, or holds something else than a key.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let raw = if bytes.len() == 32 {
                    bytes
                } else {
                    hex::decode(String::from_utf8_lossy(&bytes).trim()).map_err(|_| {
                        Error::Parse {
                            path: path.to_path_buf(),
                            format: "a 32-byte key",
                            detail: "not 32 bytes nor 64 hex characters".into(),
                        }
                    })?
                };
                let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| Error::Parse {
                    path: path.to_path_buf(),
                    format: "a 32-byte key",
                    detail: format!("{} bytes", raw.len()),
                })?;
                Ok(Self::from_bytes(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(|_| Error::Random)?;
                if let Some(dir) = path.parent() {
                    moltvault_vault::fsio::create_secret_dir_all(dir)?;
                }
                match moltvault_vault::fsio::write_atomic(
                    path,
                    zeroize::Zeroizing::new(hex::encode(key)).as_bytes(),
                    moltvault_vault::fsio::WriteOptions::secret_new(),
                ) {
                    Ok(()) => Ok(Self::from_bytes(key)),
                    // Another command created it first: use theirs.
                    Err(moltvault_vault::fsio::FsError::Exists(_)) => Self::load_or_create(path),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(read_err(path, e)),
        }
    }

    /// Computes the fingerprint of `value`.
    pub fn fingerprint(&self, value: &[u8]) -> Fingerprint {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.expose_secret()).expect("any key length works");
        mac.update(value);
        let out = mac.finalize().into_bytes();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&out[..8]);
        Fingerprint(fp)
    }
}

/// A 64-bit keyed fingerprint, shown as `fp:` and 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 8]);

impl Fingerprint {
    /// The first 8 hex digits: the tag `moltvault redact` puts in its placeholders.
    pub fn fp8(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parses `fp:` followed by 16 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let h = s.strip_prefix("fp:")?;
        let v = hex::decode(h).ok()?;
        Some(Fingerprint(v.as_slice().try_into().ok()?))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fp:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fingerprint::parse(&s).ok_or_else(|| serde::de::Error::custom("not a fingerprint"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_keyed_and_debug_hides_the_key() {
        let a = FingerprintKey::from_bytes([1; 32]);
        let b = FingerprintKey::from_bytes([2; 32]);
        assert_eq!(a.fingerprint(b"x"), a.fingerprint(b"x"));
        assert_ne!(a.fingerprint(b"x"), b.fingerprint(b"x"));
        assert_ne!(a.fingerprint(b"x"), a.fingerprint(b"y"));
        let fp = a.fingerprint(b"x");
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        assert_eq!(fp.to_string().len(), 3 + 16);
        assert_eq!(format!("{a:?}"), "FingerprintKey([REDACTED])");
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/fp.key");
        let k1 = FingerprintKey::load_or_create(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let k2 = FingerprintKey::load_or_create(&p).unwrap();
        assert_eq!(k1.fingerprint(b"v"), k2.fingerprint(b"v"));
    }
}
