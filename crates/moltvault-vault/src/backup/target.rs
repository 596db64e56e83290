//! Where backups live: a local directory here; S3-compatible storage in `s3.rs` (feature `s3`).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::retention::{BackupInfo, parse_backup_name};
use super::{BACKUP_SUFFIX, BackupError};
use crate::fsio::{AtomicFile, Replace, WriteOptions};

/// A place that holds backups as write-once objects.
pub trait BackupTarget {
    /// A human description ("/srv/backups", "s3://bucket/prefix").
    fn describe(&self) -> String;
    /// Lists every object whose name ends in `.tar.zst.age`, with its size.
    ///
    /// # Errors
    /// Fails if the target cannot be listed.
    fn list_names(&self) -> Result<Vec<(String, u64)>, BackupError>;
    /// Opens a backup for reading.
    ///
    /// # Errors
    /// Fails with [`BackupError::NotFound`] if it does not exist.
    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, BackupError>;
    /// Starts writing a new backup; it becomes visible only on [`BackupUpload::commit`].
    ///
    /// # Errors
    /// Fails if a backup of that name exists or the target cannot be written.
    fn create(&self, name: &str) -> Result<Box<dyn BackupUpload + '_>, BackupError>;
    /// Deletes a backup.
    ///
    /// # Errors
    /// Fails if it cannot be deleted.
    fn delete(&self, name: &str) -> Result<(), BackupError>;
}

/// A backup being written; dropped without [`BackupUpload::commit`] it leaves nothing behind.
pub trait BackupUpload: Write {
    /// Makes the backup visible under its name, durably.
    ///
    /// # Errors
    /// Fails if the last write or the rename / multipart completion fails.
    fn commit(self: Box<Self>) -> Result<(), BackupError>;
}

/// Lists the backups on a target, oldest first; objects whose names do not parse are ignored.
///
/// # Errors
/// Fails if the target cannot be listed.
pub fn list_backups(target: &dyn BackupTarget) -> Result<Vec<BackupInfo>, BackupError> {
    let mut v: Vec<BackupInfo> = target
        .list_names()?
        .into_iter()
        .filter_map(|(n, size)| {
            parse_backup_name(&n).ok().map(|mut b| {
                b.size = size;
                b
            })
        })
        .collect();
    v.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name)));
    Ok(v)
}

/// Backups in a local directory, written through the atomic-write funnel (0600 files).
#[derive(Debug, Clone)]
pub struct LocalDir {
    dir: PathBuf,
}

impl LocalDir {
    /// A target for the directory `dir` (created 0700 on the first backup).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalDir { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, BackupError> {
        if name.contains('/') || !name.ends_with(BACKUP_SUFFIX) || name.starts_with('.') {
            return Err(BackupError::BadName(name.to_string()));
        }
        Ok(self.dir.join(name))
    }
}

impl BackupTarget for LocalDir {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn list_names(&self) -> Result<Vec<(String, u64)>, BackupError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(BackupError::io("list", &self.dir, e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| BackupError::io("list", &self.dir, e))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !name.ends_with(BACKUP_SUFFIX) {
                continue;
            }
            // symlink_metadata: a symlink is not a backup of ours.
            let meta = fs::symlink_metadata(e.path())
                .map_err(|err| BackupError::io("inspect", e.path(), err))?;
            if meta.is_file() {
                out.push((name, meta.len()));
            }
        }
        Ok(out)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, BackupError> {
        let p = self.path_of(name)?;
        match super::writer::open_nofollow(&p) {
            Ok(f) => Ok(Box::new(io::BufReader::with_capacity(1 << 20, f))),
            Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err(BackupError::NotFound(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    fn create(&self, name: &str) -> Result<Box<dyn BackupUpload + '_>, BackupError> {
        let p = self.path_of(name)?;
        crate::fsio::create_secret_dir_all(&self.dir)?;
        // Partial backups of killed runs (their lock died with them) go first.
        super::leftovers::clean_backup_temps(&self.dir);
        let f = AtomicFile::create(
            &p,
            WriteOptions {
                replace: Replace::Never,
                ..WriteOptions::secret_new()
            },
        )
        .map_err(|e| match e {
            crate::fsio::FsError::Exists(_) => BackupError::Exists(name.to_string()),
            e => e.into(),
        })?;
        // Held until commit or drop: marks the temp file as in use (see `leftovers`).
        super::leftovers::try_lock(f.as_file())
            .map_err(|e| BackupError::io("lock", self.dir.join(name), e))?;
        Ok(Box::new(LocalUpload {
            file: f,
            written: 0,
            flushed: 0,
        }))
    }

    fn delete(&self, name: &str) -> Result<(), BackupError> {
        let p = self.path_of(name)?;
        crate::fsio::remove_durably(&p)?;
        Ok(())
    }
}

struct LocalUpload {
    file: AtomicFile,
    /// Bytes written so far.
    written: u64,
    /// Bytes whose writeback was already started.
    flushed: u64,
}

/// Writeback of the backup file is started every this many bytes, so the disk writes while
/// the next part is compressed and the final fsync has little left to wait for.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed >= WRITEBACK_STEP {
            crate::fsio::start_writeback(
                self.file.as_file(),
                self.flushed,
                self.written - self.flushed,
            );
            self.flushed = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BackupUpload for LocalUpload {
    fn commit(self: Box<Self>) -> Result<(), BackupError> {
        self.file.commit()?;
        Ok(())
    }
}
