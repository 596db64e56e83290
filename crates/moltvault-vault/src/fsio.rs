//! The one funnel for file writes: every file moltvault creates or replaces goes through
//! [`AtomicFile`], so a crash at any instant leaves either the old or the new content.
//!
//! The sequence is: create a uniquely named temp file in the destination's directory with its
//! final mode (never chmod after), write, `fsync`, rename over the destination, `fsync` the
//! directory. Secret files are created 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Mode of files that hold a secret or a transcript.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of directories that hold secrets.
pub const SECRET_DIR_MODE: u32 = 0o700;

/// Errors of the write funnel; each names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An I/O operation on `path` failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done ("create", "write", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The destination exists and the caller asked not to replace it.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// The destination is a symlink, which moltvault never writes through.
    #[error("{0} is a symlink; moltvault does not write through symlinks")]
    Symlink(PathBuf),
}

impl FsError {
    /// Wraps an I/O error with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FsError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// How [`AtomicFile`] treats an existing destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Fail with [`FsError::Exists`] if the destination exists.
    Never,
    /// Replace an existing regular file (never a symlink).
    Allow,
}

/// Options for [`AtomicFile::create`].
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Permission bits given to the file at creation.
    pub mode: u32,
    /// Whether an existing destination may be replaced.
    pub replace: Replace,
    /// When replacing, keep the destination's owner (needs privilege when it differs).
    pub keep_owner: bool,
}

impl WriteOptions {
    /// A new secret file (0600) that must not exist yet.
    pub fn secret_new() -> Self {
        WriteOptions {
            mode: SECRET_FILE_MODE,
            replace: Replace::Never,
            keep_owner: false,
        }
    }

    /// A secret file (0600) that may replace an existing one.
    pub fn secret_replace() -> Self {
        WriteOptions {
            mode: SECRET_FILE_MODE,
            replace: Replace::Allow,
            keep_owner: false,
        }
    }

    /// Replaces an existing file, keeping its mode and owner.
    ///
    /// # Errors
    /// Fails if `path` cannot be inspected or is a symlink.
    pub fn like_existing(path: &Path) -> Result<Self, FsError> {
        let meta = fs::symlink_metadata(path).map_err(|e| FsError::io("inspect", path, e))?;
        if meta.file_type().is_symlink() {
            return Err(FsError::Symlink(path.to_path_buf()));
        }
        Ok(WriteOptions {
            mode: meta.mode() & 0o7777,
            replace: Replace::Allow,
            keep_owner: true,
        })
    }
}

/// A file being written atomically; dropped without [`AtomicFile::commit`] it leaves no trace.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    opts: WriteOptions,
}

impl AtomicFile {
    /// Creates the temp file beside `dest` with `opts.mode`.
    ///
    /// # Errors
    /// Fails if `dest` exists and may not be replaced, is a symlink, or the temp file cannot be
    /// created.
    pub fn create(dest: impl AsRef<Path>, opts: WriteOptions) -> Result<Self, FsError> {
        let dest = dest.as_ref().to_path_buf();
        check_dest(&dest, opts.replace)?;
        let dir = parent_dir(&dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut suffix = [0u8; 6];
        getrandom::getrandom(&mut suffix)
            .map_err(|e| FsError::io("create", &dest, io::Error::other(e.to_string())))?;
        let tmp = dir.join(format!(".{name}.mvtmp-{}", hex::encode(suffix)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)
            .map_err(|e| FsError::io("create", &tmp, e))?;
        // The umask may have removed bits the caller asked for (never added any); restore them
        // on the still-private temp file so the final file has exactly `opts.mode`.
        let got = file
            .metadata()
            .map_err(|e| FsError::io("inspect", &tmp, e))?
            .mode()
            & 0o7777;
        if got != opts.mode {
            rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(opts.mode))
                .map_err(|e| FsError::io("set mode of", &tmp, e.into()))?;
        }
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest,
            opts,
        })
    }

    /// The temp file being written (to set metadata such as mtime or xattrs before commit).
    pub fn as_file(&self) -> &File {
        self.file.as_ref().expect("file present until commit")
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Opens the temp file again for reading (positioned reads of what was written so far,
    /// e.g. to verify it while it is being written), checking it is still the same inode.
    ///
    /// # Errors
    /// Fails if the temp file cannot be opened or was replaced.
    pub fn reopen_read(&self) -> Result<File, FsError> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&self.tmp)
            .map_err(|e| FsError::io("open", &self.tmp, e))?;
        let a = f
            .metadata()
            .map_err(|e| FsError::io("inspect", &self.tmp, e))?;
        let b = self
            .as_file()
            .metadata()
            .map_err(|e| FsError::io("inspect", &self.tmp, e))?;
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(FsError::io(
                "open",
                &self.tmp,
                io::Error::other("the temp file was replaced"),
            ));
        }
        Ok(f)
    }

    /// Flushes, fsyncs, renames over the destination and fsyncs the directory.
    ///
    /// # Errors
    /// Fails if any step fails; the destination is then unchanged and the temp file removed.
    pub fn commit(self) -> Result<(), FsError> {
        self.commit_inner(true)
    }

    /// Like [`AtomicFile::commit`] but leaves the directory fsync to the caller, who batches
    /// several commits and then calls [`sync_dir`] once: the file's content is durable when
    /// this returns, its name only after that `sync_dir`. Until then a crash may lose the new
    /// name (never expose a partial file), so nothing may depend on it — e.g. removing the
    /// only other copy of the data — before the caller's `sync_dir` succeeds.
    ///
    /// # Errors
    /// As [`AtomicFile::commit`].
    pub fn commit_without_dir_sync(self) -> Result<(), FsError> {
        self.commit_inner(false)
    }

    fn commit_inner(mut self, dir_sync: bool) -> Result<(), FsError> {
        let file = self.file.take().expect("file present until commit");
        let result = (|| {
            if self.opts.keep_owner
                && let Ok(meta) = fs::symlink_metadata(&self.dest)
            {
                let (uid, gid) = (meta.uid(), meta.gid());
                let cur = file
                    .metadata()
                    .map_err(|e| FsError::io("inspect", &self.tmp, e))?;
                if cur.uid() != uid || cur.gid() != gid {
                    rustix::fs::fchown(
                        &file,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    )
                    .map_err(|e| FsError::io("set owner of", &self.tmp, e.into()))?;
                }
            }
            file.sync_all()
                .map_err(|e| FsError::io("fsync", &self.tmp, e))?;
            drop(file);
            check_dest(&self.dest, self.opts.replace)?;
            if self.opts.replace == Replace::Never {
                // link(2) fails if the destination appeared meanwhile: no silent overwrite.
                fs::hard_link(&self.tmp, &self.dest).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        FsError::Exists(self.dest.clone())
                    } else {
                        FsError::io("create", &self.dest, e)
                    }
                })?;
                fs::remove_file(&self.tmp).map_err(|e| FsError::io("remove", &self.tmp, e))?;
            } else {
                fs::rename(&self.tmp, &self.dest)
                    .map_err(|e| FsError::io("rename", &self.dest, e))?;
            }
            if dir_sync {
                sync_dir(parent_dir(&self.dest))
            } else {
                Ok(())
            }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .expect("file present until commit")
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("file present until commit")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `data` to `dest` atomically.
///
/// # Errors
/// See [`AtomicFile::create`] and [`AtomicFile::commit`].
pub fn write_atomic(
    dest: impl AsRef<Path>,
    data: &[u8],
    opts: WriteOptions,
) -> Result<(), FsError> {
    let mut f = AtomicFile::create(dest.as_ref(), opts)?;
    f.write_all(data)
        .map_err(|e| FsError::io("write", dest.as_ref(), e))?;
    f.commit()
}

/// Creates `dir` and its missing parents with mode 0700 (existing dirs are left as they are).
///
/// # Errors
/// Fails if a directory cannot be created or a path component is not a directory.
pub fn create_secret_dir_all(dir: &Path) -> Result<(), FsError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(SECRET_DIR_MODE)
        .create(dir)
        .map_err(|e| FsError::io("create directory", dir, e))
}

/// Removes a file and fsyncs its directory, so the removal survives a crash.
///
/// # Errors
/// Fails if the file cannot be removed.
pub fn remove_durably(path: &Path) -> Result<(), FsError> {
    fs::remove_file(path).map_err(|e| FsError::io("remove", path, e))?;
    sync_dir(parent_dir(path))
}

/// Renames `from` to `to` and fsyncs the directories involved.
///
/// # Errors
/// Fails if the rename or a directory fsync fails.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), FsError> {
    fs::rename(from, to).map_err(|e| FsError::io("rename", from, e))?;
    sync_dir(parent_dir(to))?;
    if parent_dir(from) != parent_dir(to) {
        sync_dir(parent_dir(from))?;
    }
    Ok(())
}

/// Fsyncs a directory so renames and unlinks in it are durable.
///
/// # Errors
/// Fails if the directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::io("fsync directory", dir, e))
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn check_dest(dest: &Path, replace: Replace) -> Result<(), FsError> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => Err(FsError::Symlink(dest.to_path_buf())),
        Ok(_) if replace == Replace::Never => Err(FsError::Exists(dest.to_path_buf())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("inspect", dest, e)),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_0600_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.age");
        write_atomic(&p, b"one", WriteOptions::secret_new()).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(matches!(
            write_atomic(&p, b"two", WriteOptions::secret_new()),
            Err(FsError::Exists(_))
        ));
        write_atomic(&p, b"two", WriteOptions::secret_replace()).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left behind"
        );
    }

    #[test]
    fn like_existing_keeps_mode_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        fs::write(&p, b"a\n").unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        write_atomic(&p, b"b\n", WriteOptions::like_existing(&p).unwrap()).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(matches!(
            WriteOptions::like_existing(&l),
            Err(FsError::Symlink(_))
        ));
        assert!(matches!(
            write_atomic(&l, b"x", WriteOptions::secret_replace()),
            Err(FsError::Symlink(_))
        ));
    }

    #[test]
    fn dropped_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let mut f = AtomicFile::create(&p, WriteOptions::secret_new()).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
