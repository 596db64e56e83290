//! The install key: 32 random bytes in `<vault dir>/install.key` (0600) that key the HMAC
//! fingerprints in redaction placeholders, so the same secret gets the same tag on this install
//! while the tag reveals nothing to anyone without the file.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};

use crate::fsio::{self, FsError, WriteOptions};
use crate::{Error, Result};

/// The file name of the install key inside the moltvault directory.
pub const INSTALL_KEY_FILE: &str = "install.key";

/// The 32-byte fingerprint key (zeroized on drop, `Debug` redacted).
pub struct InstallKey(SecretBox<[u8; 32]>);

impl InstallKey {
    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for InstallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallKey([REDACTED])")
    }
}

/// The path of the install key in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(INSTALL_KEY_FILE)
}

/// Loads `<dir>/install.key`, creating `dir` (0700) and the key (0600, random) if missing.
///
/// # Errors
/// Fails when the file is a symlink, is not exactly 32 bytes, cannot be read, or cannot be
/// created; [`Error::Config`] names the file when its content is wrong.
pub fn load_or_create(dir: &Path) -> Result<InstallKey> {
    let p = path(dir);
    match read(&p) {
        Ok(k) => return Ok(k),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fsio::create_secret_dir_all(dir)?;
    let mut bytes = SecretBox::new(Box::new([0u8; 32]));
    getrandom::getrandom(&mut bytes.expose_secret_mut()[..]).map_err(|e| Error::Io {
        op: "generate",
        path: p.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    match fsio::write_atomic(&p, &bytes.expose_secret()[..], WriteOptions::secret_new()) {
        Ok(()) => Ok(InstallKey(bytes)),
        // Another process created it first: use theirs.
        Err(FsError::Exists(_)) => read(&p),
        Err(e) => Err(e.into()),
    }
}

fn read(p: &Path) -> Result<InstallKey> {
    let io = |source| Error::Io {
        op: "read",
        path: p.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(p)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                Error::Fs(FsError::Symlink(p.to_path_buf()))
            } else {
                io(e)
            }
        })?;
    let meta = f.metadata().map_err(io)?;
    if meta.len() != 32 || !meta.is_file() {
        return Err(Error::Config {
            path: p.to_path_buf(),
            detail: format!("the install key must be 32 bytes, found {}", meta.len()),
        });
    }
    let mut key = SecretBox::new(Box::new([0u8; 32]));
    f.read_exact(&mut key.expose_secret_mut()[..]).map_err(io)?;
    Ok(InstallKey(key))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn creates_once_0600_then_loads_the_same_key() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("mv");
        let a = load_or_create(&dir).unwrap();
        let meta = std::fs::metadata(path(&dir)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let b = load_or_create(&dir).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_ne!(a.expose(), &[0u8; 32]);
        assert_eq!(format!("{a:?}"), "InstallKey([REDACTED])");
    }

    #[test]
    fn refuses_symlink_and_bad_length() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("elsewhere"), [1u8; 32]).unwrap();
        std::os::unix::fs::symlink(d.path().join("elsewhere"), path(d.path())).unwrap();
        assert!(matches!(
            load_or_create(d.path()),
            Err(Error::Fs(FsError::Symlink(_)))
        ));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(path(d.path()), b"short").unwrap();
        let e = load_or_create(d.path()).unwrap_err();
        assert!(e.to_string().contains("install.key"), "{e}");
    }
}
