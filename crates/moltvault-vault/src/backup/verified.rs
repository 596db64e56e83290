//! The verified-backup marker: which backups have been verified end to end, and when.
//!
//! [`verify_and_record`] runs [`super::verify`] (decrypt, decompress, every hash) through a
//! target wrapper that hashes the backup file's bytes as they are read, then records the backup
//! in a small JSON file in moltvault's own directory (`<vault dir>/verified-backups.json`,
//! [`marker_path`]): name, target, size, SHA-256 of the whole encrypted file, files checked
//! and the time. The file is written atomically through the write funnel, 0600 in a 0700
//! directory, and keeps the newest [`MAX_RECORDS`] records. It holds no secret: only names,
//! sizes and digests of ciphertext.
//!
//! `moltvault audit` and `moltvault status` read it with [`read_verified`] and
//! [`find_verified`] to tell a verified backup from one that was only written.
//!
//! ```no_run
//! use moltvault_vault::backup::{self, LocalDir, NoProgress};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let id = age::x25519::Identity::generate();
//! let target = LocalDir::new("/home/me/.moltvault/backups");
//! let marker = backup::marker_path("/home/me/.moltvault".as_ref());
//! let name = "moltvault-myhost-20261126T020000Z.tar.zst.age";
//! let (report, record) = backup::verify_and_record(&target, name, &id, &NoProgress, &marker)?;
//! assert_eq!(record.files, Some(report.files));
//! let all = backup::read_verified(&marker)?;
//! assert!(backup::find_verified(&all, name, record.size).is_some());
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::reader::{VerifyReport, verify};
use super::target::{BackupTarget, BackupUpload};
use super::{BackupError, Progress};
use crate::fsio::{self, WriteOptions};

/// The marker's file name, in moltvault's own directory (beside, not inside, the default
/// backup directory, which holds only backups and may be a mount or a synced folder).
pub const VERIFIED_FILE: &str = "verified-backups.json";

/// How many records the marker keeps (the newest).
pub const MAX_RECORDS: usize = 256;

/// The marker's format version.
const MARKER_VERSION: u32 = 1;

/// One backup verified end to end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifiedBackup {
    /// The backup's name.
    pub name: String,
    /// Where it was read from ([`BackupTarget::describe`]).
    pub target: String,
    /// Its size in bytes (the encrypted file).
    pub size: u64,
    /// SHA-256 of the whole encrypted file as read, lowercase hex.
    pub sha256: String,
    /// Regular files whose content hashes were checked (`None` when recorded after a prune,
    /// which does not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
    /// When the verification ended (RFC 3339, UTC).
    pub verified_at: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MarkerFile {
    version: u32,
    verified: Vec<VerifiedBackup>,
}

/// Where the marker lives for a vault directory: `<vault dir>/verified-backups.json`.
pub fn marker_path(vault_dir: &Path) -> PathBuf {
    vault_dir.join(VERIFIED_FILE)
}

/// Reads the marker; a missing file means no backup was ever verified (an empty list).
///
/// # Errors
/// Fails with [`BackupError::Io`] if it cannot be read, or [`BackupError::Manifest`] if it is
/// not a marker file.
pub fn read_verified(path: &Path) -> Result<Vec<VerifiedBackup>, BackupError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io("read", path, e)),
    };
    let m: MarkerFile = serde_json::from_slice(&data).map_err(|e| BackupError::Manifest {
        reason: format!("{} is not a verified-backup marker: {e}", path.display()),
    })?;
    Ok(m.verified)
}

/// Adds (or replaces, for the same target and name) a record in the marker, keeping the
/// newest [`MAX_RECORDS`]; written atomically, 0600, its directory created 0700.
///
/// # Errors
/// Fails if the marker cannot be read or written.
pub fn record_verified(path: &Path, record: VerifiedBackup) -> Result<(), BackupError> {
    // An unreadable or foreign marker is replaced rather than blocking verification.
    let mut all = read_verified(path).unwrap_or_default();
    all.retain(|r| !(r.name == record.name && r.target == record.target));
    all.push(record);
    if all.len() > MAX_RECORDS {
        let excess = all.len() - MAX_RECORDS;
        all.drain(..excess);
    }
    if let Some(dir) = path.parent() {
        fsio::create_secret_dir_all(dir)?;
    }
    let doc = MarkerFile {
        version: MARKER_VERSION,
        verified: all,
    };
    let mut data = serde_json::to_vec_pretty(&doc).map_err(|e| BackupError::Manifest {
        reason: format!("cannot encode the verified-backup marker: {e}"),
    })?;
    data.push(b'\n');
    fsio::write_atomic(path, &data, WriteOptions::secret_replace())?;
    Ok(())
}

/// The newest record of a backup with this name and size, if it was verified. The name
/// carries host and time, and backups are write-once, so name and size identify one file
/// wherever it is stored.
pub fn find_verified<'a>(
    records: &'a [VerifiedBackup],
    name: &str,
    size: u64,
) -> Option<&'a VerifiedBackup> {
    records
        .iter()
        .rev()
        .find(|r| r.name == name && r.size == size)
}

/// Verifies a backup ([`super::verify`]: decrypt, decompress, every hash, nothing written)
/// and, when it verifies, records it in the marker at `marker` with the size and SHA-256 of
/// the encrypted bytes read.
///
/// # Errors
/// Every error of [`super::verify`] (nothing is recorded then), and marker write errors.
pub fn verify_and_record(
    target: &dyn BackupTarget,
    name: &str,
    identity: &dyn age::Identity,
    progress: &dyn Progress,
    marker: &Path,
) -> Result<(VerifyReport, VerifiedBackup), BackupError> {
    let hashing = HashingTarget::new(target);
    let report = verify(&hashing, name, identity, progress)?;
    let (size, sha) = match hashing.digest(name) {
        Some(d) => d,
        // The verifier stopped before the end of the file (it reads to the end of the age
        // stream, so this is not expected): hash the whole file in a second pass.
        None => hash_all(target, name)?,
    };
    let record = VerifiedBackup {
        name: name.to_owned(),
        target: target.describe(),
        size,
        sha256: hex::encode(sha),
        files: Some(report.files),
        verified_at: now_rfc3339(),
    };
    record_verified(marker, record.clone())?;
    Ok((report, record))
}

/// Records the backup a [`super::prune`] run verified, given the [`HashingTarget`] prune read
/// through; `None` when that backup was not read to its end through it.
///
/// # Errors
/// Marker write errors.
pub fn record_from(
    hashing: &HashingTarget<'_>,
    name: &str,
    files: Option<usize>,
    marker: &Path,
) -> Result<Option<VerifiedBackup>, BackupError> {
    let Some((size, sha)) = hashing.digest(name) else {
        return Ok(None);
    };
    let record = VerifiedBackup {
        name: name.to_owned(),
        target: hashing.describe(),
        size,
        sha256: hex::encode(sha),
        files,
        verified_at: now_rfc3339(),
    };
    record_verified(marker, record.clone())?;
    Ok(Some(record))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn hash_all(target: &dyn BackupTarget, name: &str) -> Result<(u64, [u8; 32]), BackupError> {
    let mut r = target.open(name)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r
            .read(&mut buf)
            .map_err(|e| BackupError::io("read", PathBuf::from(name), e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().into()))
}

/// A [`BackupTarget`] that hashes every backup read through it: once a reader reaches the end
/// of a backup, [`HashingTarget::digest`] gives its size and SHA-256.
pub struct HashingTarget<'a> {
    inner: &'a dyn BackupTarget,
    digests: RefCell<BTreeMap<String, (u64, [u8; 32])>>,
}

impl std::fmt::Debug for HashingTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingTarget")
            .field("target", &self.inner.describe())
            .finish_non_exhaustive()
    }
}

impl<'a> HashingTarget<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn BackupTarget) -> Self {
        HashingTarget {
            inner,
            digests: RefCell::new(BTreeMap::new()),
        }
    }

    /// Size and SHA-256 of the backup `name`, if a reader read it to its end.
    pub fn digest(&self, name: &str) -> Option<(u64, [u8; 32])> {
        self.digests.borrow().get(name).copied()
    }
}

struct HashingReader<'r> {
    inner: Box<dyn Read + 'r>,
    name: String,
    hash: Sha256,
    bytes: u64,
    done: bool,
    digests: &'r RefCell<BTreeMap<String, (u64, [u8; 32])>>,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let sha: [u8; 32] = self.hash.clone().finalize().into();
            self.digests
                .borrow_mut()
                .insert(self.name.clone(), (self.bytes, sha));
        } else {
            self.hash.update(&buf[..n]);
            self.bytes += n as u64;
        }
        Ok(n)
    }
}

impl BackupTarget for HashingTarget<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn list_names(&self) -> Result<Vec<(String, u64)>, BackupError> {
        self.inner.list_names()
    }
    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, BackupError> {
        Ok(Box::new(HashingReader {
            inner: self.inner.open(name)?,
            name: name.to_owned(),
            hash: Sha256::new(),
            bytes: 0,
            done: false,
            digests: &self.digests,
        }))
    }
    fn create(&self, name: &str) -> Result<Box<dyn BackupUpload + '_>, BackupError> {
        self.inner.create(name)
    }
    fn delete(&self, name: &str) -> Result<(), BackupError> {
        self.inner.delete(name)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::{BackupOptions, LocalDir, NoProgress, create};
    use super::*;

    fn made_backup(tmp: &Path) -> (LocalDir, String, age::x25519::Identity) {
        let state = tmp.join("state");
        std::fs::create_dir_all(state.join("agents/main/sessions")).unwrap();
        std::fs::write(state.join("openclaw.json"), "{}\n").unwrap();
        std::fs::write(
            state.join("agents/main/sessions/a.jsonl"),
            "{\"type\":\"session\"}\n".repeat(5000),
        )
        .unwrap();
        let id = age::x25519::Identity::generate();
        let target = LocalDir::new(tmp.join("backups"));
        let opts = BackupOptions::new(&state, "testhost", tmp.join("work"));
        let made = create(&opts, &id.to_public(), &target, &NoProgress).unwrap();
        (target, made.name, id)
    }

    #[test]
    fn a_verified_backup_is_recorded_with_the_digest_of_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, name, id) = made_backup(tmp.path());
        let marker = marker_path(&tmp.path().join("vault"));
        assert!(read_verified(&marker).unwrap().is_empty());

        let (report, rec) = verify_and_record(&target, &name, &id, &NoProgress, &marker).unwrap();
        let file = tmp.path().join("backups").join(&name);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(rec.size, bytes.len() as u64);
        assert_eq!(rec.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(rec.files, Some(report.files));
        assert_eq!(rec.target, target.describe());
        assert!(
            time::OffsetDateTime::parse(
                &rec.verified_at,
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );

        let all = read_verified(&marker).unwrap();
        assert_eq!(all, vec![rec.clone()]);
        assert_eq!(find_verified(&all, &name, rec.size), Some(&rec));
        // Another size (a different file under the same name) is not the verified one.
        assert_eq!(find_verified(&all, &name, rec.size + 1), None);
        let mode = std::fs::metadata(&marker).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(marker.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);

        // Verifying again replaces the record instead of adding one.
        verify_and_record(&target, &name, &id, &NoProgress, &marker).unwrap();
        assert_eq!(read_verified(&marker).unwrap().len(), 1);
    }

    #[test]
    fn a_backup_that_fails_verification_is_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, name, _id) = made_backup(tmp.path());
        let marker = marker_path(&tmp.path().join("vault"));
        let wrong = age::x25519::Identity::generate();
        assert!(verify_and_record(&target, &name, &wrong, &NoProgress, &marker).is_err());
        assert!(!marker.exists());

        // A flipped byte in the middle: the verification fails, nothing is recorded.
        let (target, name, id) = made_backup(&tmp.path().join("second"));
        let file = tmp.path().join("second/backups").join(&name);
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();
        assert!(verify_and_record(&target, &name, &id, &NoProgress, &marker).is_err());
        assert!(read_verified(&marker).unwrap().is_empty());
    }

    #[test]
    fn prune_through_a_hashing_target_records_the_backup_it_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, name, id) = made_backup(tmp.path());
        let marker = marker_path(&tmp.path().join("vault"));
        let hashing = HashingTarget::new(&target);
        let policy = super::super::KeepPolicy {
            last: 1,
            ..super::super::KeepPolicy::default()
        };
        // One backup, keep one: nothing to delete, so prune verifies nothing.
        let r = super::super::prune(&hashing, Some(&id), policy, false, &NoProgress).unwrap();
        assert_eq!(r.verified, None);
        assert_eq!(record_from(&hashing, &name, None, &marker).unwrap(), None);
        // A direct verify through the wrapper: the digest is there.
        let report = verify(&hashing, &name, &id, &NoProgress).unwrap();
        let rec = record_from(&hashing, &name, Some(report.files), &marker)
            .unwrap()
            .unwrap();
        let bytes = std::fs::read(tmp.path().join("backups").join(&name)).unwrap();
        assert_eq!(rec.sha256, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn the_marker_keeps_the_newest_records_and_rejects_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("b").join(VERIFIED_FILE);
        for i in 0..(MAX_RECORDS + 3) {
            record_verified(
                &marker,
                VerifiedBackup {
                    name: format!("n{i}"),
                    target: "t".into(),
                    size: i as u64,
                    sha256: String::new(),
                    files: None,
                    verified_at: String::new(),
                },
            )
            .unwrap();
        }
        let all = read_verified(&marker).unwrap();
        assert_eq!(all.len(), MAX_RECORDS);
        assert_eq!(all[0].name, "n3");
        std::fs::write(&marker, "not json").unwrap();
        assert!(read_verified(&marker).is_err());
    }
}
