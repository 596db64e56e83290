//! Locked credentials: while the gateway is stopped, its credential files are sealed in place
//! (`<file>.age`) and their original modes recorded in a small manifest, so `unlock` puts back
//! exactly what was there.
//!
//! The manifest (`<state dir>/.moltvault-locked.json`, public: paths and modes only) is written
//! before the first file is sealed and removed after the last one is restored, so a crash at
//! any point leaves every file plain or sealed and the manifest still naming it.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio::{self, WriteOptions};
use crate::keys::Identity;
use crate::seal::{self, SealOptions, io_err, sealed_path};

/// The manifest's file name inside the gateway state directory.
pub const MANIFEST_FILE: &str = ".moltvault-locked.json";

/// One locked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedFile {
    /// Path relative to the state directory.
    pub path: PathBuf,
    /// Original permission bits.
    pub mode: u32,
}

/// The lock manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// The locked files.
    pub files: Vec<LockedFile>,
}

/// The manifest path for a state directory.
pub fn manifest_path(state_dir: &Path) -> PathBuf {
    state_dir.join(MANIFEST_FILE)
}

/// Reads the manifest, if the state directory is locked.
///
/// # Errors
/// [`Error::Manifest`] if it exists but is damaged or names an unsafe path.
pub fn read_manifest(state_dir: &Path) -> Result<Option<Manifest>> {
    let path = manifest_path(state_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path, e)),
    };
    let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Manifest {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    for f in &m.files {
        if !is_safe_relative(&f.path) || f.mode > 0o7777 {
            return Err(Error::Manifest {
                path: path.clone(),
                detail: format!("unsafe entry {}", f.path.display()),
            });
        }
    }
    Ok(Some(m))
}

fn write_manifest(state_dir: &Path, m: &Manifest) -> Result<()> {
    let path = manifest_path(state_dir);
    let text = serde_json::to_string_pretty(m).map_err(|e| Error::Manifest {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    fsio::write_atomic(&path, text.as_bytes(), WriteOptions::secret_replace())?;
    Ok(())
}

fn is_safe_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// What a lock or unlock did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockReport {
    /// Files sealed or restored now (relative paths).
    pub done: Vec<PathBuf>,
    /// Files that were already in the wanted state.
    pub already: Vec<PathBuf>,
}

/// Seals each of `files` (absolute, inside `state_dir`) to `recipient`, recording modes.
///
/// # Errors
/// Fails on a file outside the state directory, a symlink, or any seal error; files sealed
/// before the failure stay sealed and listed, so `unlock` restores them.
pub fn lock_files(
    state_dir: &Path,
    files: &[PathBuf],
    recipient: &age::x25519::Recipient,
) -> Result<LockReport> {
    let mut manifest = read_manifest(state_dir)?.unwrap_or(Manifest {
        version: 1,
        files: Vec::new(),
    });
    let mut todo = Vec::new();
    let mut report = LockReport::default();
    for f in files {
        let rel = f
            .strip_prefix(state_dir)
            .ok()
            .filter(|r| is_safe_relative(r))
            .ok_or_else(|| Error::NotRegularFile {
                path: f.clone(),
                symlink: false,
            })?
            .to_path_buf();
        let meta = match fs::symlink_metadata(f) {
            Ok(m) => m,
            Err(_) if fs::symlink_metadata(sealed_path(f)).is_ok() => {
                report.already.push(rel);
                continue;
            }
            Err(e) => return Err(io_err("inspect", f, e)),
        };
        if !meta.is_file() {
            return Err(Error::NotRegularFile {
                path: f.clone(),
                symlink: meta.file_type().is_symlink(),
            });
        }
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        manifest.files.retain(|e| e.path != rel);
        manifest.files.push(LockedFile {
            path: rel.clone(),
            mode,
        });
        todo.push((f.clone(), rel));
    }
    if todo.is_empty() {
        return Ok(report);
    }
    // Intent first: the manifest names every file before any is sealed.
    write_manifest(state_dir, &manifest)?;
    let opts = SealOptions {
        min_idle: Duration::ZERO,
        respect_lock: false,
        ..SealOptions::default()
    };
    for (abs, rel) in todo {
        seal::seal_file(&abs, recipient, &opts)?;
        report.done.push(rel);
    }
    Ok(report)
}

/// Restores every file the manifest lists, with its recorded mode, then removes the manifest.
///
/// # Errors
/// Fails on the first file that cannot be restored; the manifest then still lists what is
/// left.
pub fn unlock_files(state_dir: &Path, identity: &Identity) -> Result<LockReport> {
    let mut report = LockReport::default();
    let Some(mut manifest) = read_manifest(state_dir)? else {
        return Ok(report);
    };
    while let Some(entry) = manifest.files.first().cloned() {
        let abs = state_dir.join(&entry.path);
        let sealed = sealed_path(&abs);
        if fs::symlink_metadata(&sealed).is_ok() {
            seal::unseal_file(&sealed, identity)?;
            seal::set_mode(&abs, entry.mode)?;
            report.done.push(entry.path.clone());
        } else if fs::symlink_metadata(&abs).is_ok() {
            seal::set_mode(&abs, entry.mode)?;
            report.already.push(entry.path.clone());
        } else {
            return Err(io_err(
                "find",
                &sealed,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        manifest.files.remove(0);
        if manifest.files.is_empty() {
            fsio::remove_durably(&manifest_path(state_dir))?;
        } else {
            write_manifest(state_dir, &manifest)?;
        }
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn lock_then_unlock_restores_content_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        fs::create_dir_all(state.join("credentials")).unwrap();
        let a = state.join("openclaw.json");
        let b = state.join("credentials/telegram.json");
        fs::write(&a, b"{\"gateway\":{}}").unwrap();
        fs::write(&b, b"{\"token\":\"t\"}").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&b, fs::Permissions::from_mode(0o640)).unwrap();
        let id = Identity::generate();
        let r = lock_files(state, &[a.clone(), b.clone()], &id.to_public()).unwrap();
        assert_eq!(r.done.len(), 2);
        assert!(!a.exists() && !b.exists());
        let m = read_manifest(state).unwrap().unwrap();
        assert_eq!(m.files[1].mode, 0o640);
        // Locking again is a no-op for already sealed files.
        let again = lock_files(state, &[a.clone(), b.clone()], &id.to_public()).unwrap();
        assert_eq!(again.already.len(), 2);
        let wrong = Identity::generate();
        assert!(unlock_files(state, &wrong).is_err());
        assert!(read_manifest(state).unwrap().is_some());
        let r = unlock_files(state, &id).unwrap();
        assert_eq!(r.done.len(), 2);
        assert_eq!(fs::read(&b).unwrap(), b"{\"token\":\"t\"}");
        assert_eq!(fs::metadata(&b).unwrap().mode() & 0o777, 0o640);
        assert!(read_manifest(state).unwrap().is_none());
    }

    #[test]
    fn manifest_with_unsafe_paths_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            manifest_path(dir.path()),
            r#"{"version":1,"files":[{"path":"../etc/passwd","mode":420}]}"#,
        )
        .unwrap();
        assert!(matches!(
            read_manifest(dir.path()),
            Err(Error::Manifest { .. })
        ));
    }
}
