//! Streaming age encryption to the vault recipient and decryption with the vault identity,
//! plus sealing and unsealing files in place (`<name>` ⇄ `<name>.age`).
//!
//! Sealing needs no secret: the file is encrypted to the vault recipient only, and the seal
//! keeps a copy of the file's random file key (in memory, for the duration of the call) with
//! which it decrypt-verifies the sealed copy — header MAC and every chunk — before the
//! plaintext is removed. The copy is zeroized afterwards, so only the vault identity can open
//! the file later. (Up to 0.1, seal added a second stanza for a throwaway recipient instead;
//! such files open the same way.)
//!
//! The payload is encrypted in place (module `stream`): each 64 KiB chunk is read from the
//! plaintext straight into the slot its ciphertext occupies, encrypted there, and runs of 16
//! chunks go to the temp file in one write — no per-chunk copy or allocation. The header and
//! payload nonce come from the age crate, and the age crate itself re-parses the header,
//! authenticates its MAC and decrypts the first chunk of every sealed file, an independent
//! check of the in-place encoder on each seal.
//!
//! Verification is pipelined: while one thread encrypts the plaintext into the temp file, a
//! second thread reads that temp file back (positioned reads, just behind what the writer has
//! handed to the kernel), decrypts and authenticates it chunk by chunk, and compares every byte
//! with the plaintext the writer read and encrypted (the writer hands its plaintext over in
//! buffers of 16 chunks, at most 8 at once, so the plaintext file is read only once; runs
//! beyond that, when the verifier lags, are read again from the file). On two cores the wall time is close to one encryption pass. The plaintext is removed
//! only when all of this holds:
//!
//! 1. the whole ciphertext, as re-read from the temp file, decrypted and authenticated (final
//!    chunk included) and equals the plaintext that was read and encrypted byte for byte, with
//!    the same length and nothing after the final chunk;
//! 2. the plaintext did not change while it was sealed (same size and mtime afterwards), so
//!    what was read and encrypted is the file's content;
//! 3. the sealed file's content is durable (its fsync; in a batch, fsyncs issued together or
//!    one `syncfs` of the filesystem after the last write), it is linked under its final
//!    name, and that directory is fsynced.
//!
//! If either side fails, the other stops at its next chunk, the temp file is removed and the
//! plaintext stays as it was. Large files ask the kernel to start writeback every 8 MiB while
//! they are written, so the final fsync has little left to do.
//!
//! [`seal_files_with`] seals many files in batches with one sync per batch instead of one
//! fsync per file; its documentation gives the durability argument.
//!
//! Unsealing a binary age file decrypts its payload on several threads (module `open`): the
//! age crate parses the header, authenticates its MAC and decrypts the first chunk; the other
//! chunks, independent in age's STREAM construction, are authenticated and decrypted in place
//! in runs and written at their offsets into the temp file, which takes its name only once
//! every chunk (the final-flagged one last, nothing after it) authenticated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::{DecryptFailure, Error, Result};
use crate::fsio::{self, AtomicFile, Replace, WriteOptions};
use crate::keys::Identity;

mod open;
mod stream;

/// The extended attribute in which a sealed file records its plaintext's permission bits
/// (octal text); `unseal` restores them, and uses 0600 when it is absent (a file sealed by
/// another tool, or copied without xattrs).
pub const MODE_XATTR: &str = "user.moltvault.mode";

fn recorded_mode(f: &File) -> Option<u32> {
    let mut buf = [0u8; 16];
    let n = rustix::fs::fgetxattr(f, MODE_XATTR, &mut buf).ok()?;
    let m = u32::from_str_radix(std::str::from_utf8(&buf[..n]).ok()?.trim(), 8).ok()?;
    (m <= 0o777).then_some(m)
}

/// The suffix of sealed files.
pub const SEALED_SUFFIX: &str = ".age";

/// An age writer: everything written is encrypted; call [`SealWriter::finish`] at the end.
pub struct SealWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write> std::fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealWriter")
    }
}

impl<W: Write> SealWriter<W> {
    /// Writes the final chunk and returns the underlying writer.
    ///
    /// # Errors
    /// Fails if the underlying writer fails; without `finish` the output is truncated and will
    /// not decrypt.
    pub fn finish(self) -> io::Result<W> {
        self.inner.finish()
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Starts an age v1 stream encrypted to `recipient` on `writer` (the header is written now).
///
/// # Errors
/// Fails if the header cannot be written.
pub fn encrypt_to<W: Write>(
    writer: W,
    recipient: &age::x25519::Recipient,
) -> io::Result<SealWriter<W>> {
    encrypt_to_many(writer, &[recipient as &dyn age::Recipient])
}

/// Starts an age v1 stream encrypted to every recipient in `recipients`.
///
/// # Errors
/// Fails if the recipients cannot be combined (mixing a passphrase with keys) or the header
/// cannot be written.
pub fn encrypt_to_many<W: Write>(
    writer: W,
    recipients: &[&dyn age::Recipient],
) -> io::Result<SealWriter<W>> {
    let enc = age::Encryptor::with_recipients(recipients.iter().copied())
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(SealWriter {
        inner: enc.wrap_output(writer)?,
    })
}

/// A reader of decrypted age content.
///
/// It yields each 64 KiB chunk once that chunk is authenticated, so a truncated or damaged
/// file fails only when the reader reaches the damage: callers that keep plaintext must read to
/// the end before trusting any of it.
pub struct OpenReader<R: Read> {
    inner: age::stream::StreamReader<age::armor::ArmoredReader<BufReader<R>>>,
}

impl<R: Read> std::fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenReader")
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// Opens an age v1 stream (binary or ASCII-armored) with the vault identity.
///
/// # Errors
/// Fails with the kind of damage if the header is invalid or not encrypted to the identity.
pub fn decrypt_reader<R: Read>(
    reader: R,
    identity: &Identity,
) -> Result<OpenReader<R>, DecryptFailure> {
    decrypt_reader_with(reader, &[identity.as_age() as &dyn age::Identity])
}

/// Opens an age v1 stream with any of `identities`.
///
/// # Errors
/// As [`decrypt_reader`].
pub fn decrypt_reader_with<R: Read>(
    reader: R,
    identities: &[&dyn age::Identity],
) -> Result<OpenReader<R>, DecryptFailure> {
    let armored = age::armor::ArmoredReader::new(reader);
    let dec = age::Decryptor::new(armored).map_err(|e| DecryptFailure::from_age(&e))?;
    let inner = dec
        .decrypt(identities.iter().copied())
        .map_err(|e| DecryptFailure::from_age(&e))?;
    Ok(OpenReader { inner })
}

/// The sealed name of a plaintext file (`x.jsonl` → `x.jsonl.age`).
pub fn sealed_path(plain: &Path) -> PathBuf {
    let mut s = plain.as_os_str().to_owned();
    s.push(SEALED_SUFFIX);
    PathBuf::from(s)
}

/// The plaintext name of a sealed file (`x.jsonl.age` → `x.jsonl`), if it ends in `.age`.
pub fn plain_path(sealed: &Path) -> Option<PathBuf> {
    let s = sealed.to_str()?;
    s.strip_suffix(SEALED_SUFFIX)
        .filter(|p| !p.is_empty() && !p.ends_with('/'))
        .map(PathBuf::from)
}

/// Whether a path names a sealed file.
pub fn is_sealed_path(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(SEALED_SUFFIX) && n.len() > SEALED_SUFFIX.len())
}

/// How [`seal_file`] decides a file is safe to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Refuse files modified more recently than this (the gateway may still write them).
    pub min_idle: Duration,
    /// Refuse files whose `<file>.lock` is held by a live process.
    pub respect_lock: bool,
    /// "Now", for the idle check (tests inject it).
    pub now: SystemTime,
    /// Fsync the directory after removing each plaintext. A batch may turn this off and call
    /// [`fsio::sync_dir`] once per directory at the end: the sealed copy is durable before the
    /// plaintext goes either way, so a crash can at worst bring the (identical) plaintext back
    /// beside it, which `unseal` resolves.
    pub sync_removal: bool,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            min_idle: Duration::from_secs(60),
            respect_lock: true,
            now: SystemTime::now(),
            sync_removal: true,
        }
    }
}

/// What sealing one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The plaintext file, now removed.
    pub plain: PathBuf,
    /// The sealed file.
    pub sealed: PathBuf,
    /// Plaintext size in bytes.
    pub bytes: u64,
}

/// Seals `plain` into `<plain>.age` next to it, then removes the plaintext durably.
///
/// The ciphertext goes to a temp file while a second thread decrypts it back from that file,
/// right behind the writer, and compares the result with the plaintext on disk (see
/// [the module docs](self)). Only when the whole file verified is it fsynced, linked into
/// place, the directory fsynced, and the plaintext removed. The sealed file is 0600 and
/// records the plaintext's permission bits in the [`MODE_XATTR`] extended attribute, so
/// [`unseal_file`] can restore them. [`seal_files`] seals many files with far fewer syncs.
///
/// # Errors
/// Refuses symlinks and non-regular files, files with a held `.lock`, files written within
/// `opts.min_idle` or while being sealed, and plaintext that already has a sealed copy
/// ([`Error::Conflict`]). A verification failure ([`Error::Decrypt`],
/// [`Error::VerifyMismatch`]) or any I/O failure (a full disk included) leaves the plaintext
/// untouched and no sealed file.
pub fn seal_file(
    plain: &Path,
    recipient: &age::x25519::Recipient,
    opts: &SealOptions,
) -> Result<Sealed> {
    let staged = stage_with(plain, recipient, opts, None, false)?;
    let dir = dir_of(&staged.new);
    if let Err(e) = fsio::sync_dir(dir) {
        staged.roll_back();
        return Err(e.into());
    }
    staged.remove_old(opts.sync_removal).map(sealed_of)
}

/// A step of a batch seal ([`seal_files_with`]), announced to [`BatchConfig::hook`] just
/// before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchStep {
    /// Every sealed copy of the batch is written and verified in its temp file; next they
    /// are made durable (one `syncfs`, or fsyncs).
    Sync,
    /// The temp files are durable; next they take their final names.
    Link,
    /// The final names are in place; next the directory is fsynced.
    SyncDir,
    /// The new copies and their names are durable; next the files they replace are removed
    /// (the plaintexts when sealing, the sealed files when unsealing).
    RemovePlain,
}

/// The hook of [`BatchConfig`]: called with each [`BatchStep`] and the batch's directory.
pub type BatchHook<'a> = &'a (dyn Fn(BatchStep, &Path) -> io::Result<()> + Sync);

/// How [`seal_files_with`] works through its batches.
#[derive(Clone, Copy)]
pub struct BatchConfig<'a> {
    /// Threads that encrypt and verify files in parallel (large files also use a verifier
    /// thread each).
    pub workers: usize,
    /// Files per batch (per directory): more means fewer syncs, more open temp files, and
    /// more work redone after a crash.
    pub batch: usize,
    /// How each batch's sealed copies are made durable.
    pub sync: fsio::BatchSync,
    /// Called before each step of every batch; an error aborts the batch at that step (every
    /// file of it keeps its plaintext, and no sealed copy remains). Tests inject failures and
    /// crashes with it.
    pub hook: Option<BatchHook<'a>>,
}

impl std::fmt::Debug for BatchConfig<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchConfig")
            .field("workers", &self.workers)
            .field("batch", &self.batch)
            .field("sync", &self.sync)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for BatchConfig<'_> {
    /// Two workers per CPU (at most 8; creating files often waits on the journal), batches of
    /// 256 files, made durable by one `syncfs` while at most 16 MiB of dirty data waits
    /// system-wide (so that a batch waits at most for that much of other processes' data),
    /// else by fsyncs from 8 threads at once ([`fsio::BatchSync::Adaptive`]).
    fn default() -> Self {
        BatchConfig {
            workers: std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).min(8)),
            batch: 256,
            sync: fsio::BatchSync::Adaptive {
                threads: 8,
                foreign: 16 << 20,
            },
            hook: None,
        }
    }
}

/// Seals every file of `plains` like [`seal_file`], on `workers` threads, in batches: see
/// [`seal_files_with`] (this is it with the default [`BatchConfig`] but `workers`).
pub fn seal_files(
    plains: &[PathBuf],
    recipient: &age::x25519::Recipient,
    opts: &SealOptions,
    workers: usize,
    on_done: &mut dyn FnMut(usize, Result<Sealed>),
) {
    let cfg = BatchConfig {
        workers,
        ..BatchConfig::default()
    };
    seal_files_with(plains, recipient, opts, &cfg, on_done);
}

/// Seals every file of `plains` like [`seal_file`], in batches of up to `cfg.batch` files
/// per directory, made durable together instead of one fsync (and journal commit) at a time.
///
/// For each batch:
/// 1. every file is encrypted to a temp file beside it and verified (decrypted back and
///    compared with the plaintext), on `cfg.workers` threads; nothing is synced yet;
/// 2. all the temp files are made durable at once ([`fsio::SyncAnchor::sync`], opened before
///    step 1): fsyncs from several threads ([`fsio::BatchSync::Fsync`]), or one `syncfs(2)`
///    of the filesystem ([`fsio::BatchSync::Syncfs`]; the anchor opened before the first
///    write makes it report any writeback error of the batch), or the one of the two that
///    the system's pending writeback favours ([`fsio::BatchSync::Adaptive`], the default);
/// 3. each temp file takes its final name (`renameat2(RENAME_NOREPLACE)`: never over an
///    existing file), then the directory is fsynced once;
/// 4. only then are the plaintexts unlinked (on helper threads, and for small files only
///    once the directory's last batch is durable: up to 64 MiB or 16,384 files are put off,
///    because freeing inodes while creating others is slow on ext4), and the directory
///    fsynced once more (when `opts.sync_removal`).
///
/// Durability argument: a plaintext is unlinked only after its sealed copy's content (step
/// 2) and name (step 3) are durable — the same guarantee as [`seal_file`]'s per-file fsync.
/// A crash or an error before step 4 leaves every plaintext in place; what may also remain is
/// a complete, verified sealed copy beside it (which `unseal` resolves) or a `.mvtmp-` temp
/// file (removed by [`sweep_stale_temps`]), never a partial file under a final name. A
/// failed step fails every file of the batch still in flight and removes their sealed copies.
///
/// `on_done` receives each file's index in `plains` and its result, once per file, from the
/// calling thread, as batches complete.
pub fn seal_files_with(
    plains: &[PathBuf],
    recipient: &age::x25519::Recipient,
    opts: &SealOptions,
    cfg: &BatchConfig<'_>,
    on_done: &mut dyn FnMut(usize, Result<Sealed>),
) {
    let stage = |p: &Path| stage_with(p, recipient, opts, None, true);
    run_batches(plains, cfg, opts.sync_removal, &stage, sealed_of, on_done);
}

/// Unseals every file of `sealed` like [`unseal_file`], in batches of up to `cfg.batch`
/// files per directory made durable together, like [`seal_files_with`] the other way round.
///
/// For each batch:
/// 1. every sealed file is decrypted into a temp file beside it (mode as recorded at
///    sealing, [`MODE_XATTR`]; 0600 when absent), on `cfg.workers` threads; a temp file is
///    kept only once the whole file authenticated; nothing is synced yet;
/// 2. all the plaintext temp files are made durable at once ([`BatchConfig::sync`]);
/// 3. each takes its final name (never over an existing file), then the directory is
///    fsynced once;
/// 4. only then are the sealed files unlinked (on helper threads; put off like
///    [`seal_files_with`]'s), and the directory fsynced once more.
///
/// So a sealed file is removed only after its plaintext's content and name are durable. A
/// crash or an error before step 4 leaves every sealed file in place; what may also remain
/// is a complete plaintext beside it (which the next `unseal` recognises: identical copies
/// are merged) or a `.mvtmp-` temp file (removed by [`sweep_stale_temps`]). A plaintext that
/// already exists with the same content (a crash left both) only has its sealed copy
/// removed, in step 4; one that differs fails that file ([`Error::Conflict`]).
///
/// `on_done` receives each file's index in `sealed` and its result, once per file, from the
/// calling thread, as batches complete.
pub fn unseal_files_with(
    sealed: &[PathBuf],
    identity: &Identity,
    cfg: &BatchConfig<'_>,
    on_done: &mut dyn FnMut(usize, Result<Unsealed>),
) {
    let threads = unseal_threads();
    let stage =
        |p: &Path| stage_unseal(p, &[identity.as_age() as &dyn age::Identity], true, threads);
    run_batches(sealed, cfg, true, &stage, unsealed_of, on_done);
}

/// Replaced files of a directory's batches whose removal is put off, in bytes: on ext4
/// without a journal, every new inode is allocated after a scan over the group's recently
/// (< 30 s) freed inodes, so removing batch k's files while batch k+1 creates its temp files
/// made sealing n small files cost O(n²) in the kernel (`recently_deleted`, half of the
/// CPU time of a 2,000-file seal). Deferring the removals until the directory's last batch is
/// durable (bounded by this and [`DEFER_FILES`], so large files still free their space batch
/// by batch) keeps the same guarantee: a file is removed only after its new copy and name
/// are durable.
const DEFER_BYTES: u64 = 64 << 20;

/// Replaced files whose removal is put off at most (see [`DEFER_BYTES`]).
const DEFER_FILES: usize = 16_384;

/// The stage function of a batch: writes (not syncs) the new file of one path.
type StageFn<'a> = dyn Fn(&Path) -> Result<Staged> + Sync + 'a;

/// Runs the batches of [`seal_files_with`] / [`unseal_files_with`]: groups `paths` by
/// directory, stages each batch ([`seal_batch`]), and removes the replaced files of the
/// batches staged so far (once [`DEFER_BYTES`] or [`DEFER_FILES`] is reached, and after the
/// directory's last batch) on a helper thread while the next one is staged.
fn run_batches<T>(
    paths: &[PathBuf],
    cfg: &BatchConfig<'_>,
    sync_removal: bool,
    stage: &StageFn<'_>,
    finish: fn(Staged) -> T,
    on_done: &mut dyn FnMut(usize, Result<T>),
) {
    let mut by_dir: std::collections::BTreeMap<&Path, Vec<usize>> = Default::default();
    for (i, p) in paths.iter().enumerate() {
        by_dir.entry(dir_of(p)).or_default().push(i);
    }
    // Step 4 of a batch (removing the replaced files, which often waits on the filesystem's
    // journal) runs on a helper thread while the next batch is staged.
    type Done = Vec<(usize, Result<Staged>)>;
    std::thread::scope(|sc| {
        let mut removing: Option<std::thread::ScopedJoinHandle<'_, Done>> = None;
        let mut report = |done: Done| {
            for (i, r) in done {
                on_done(i, r.map(finish));
            }
        };
        let join = |h: std::thread::ScopedJoinHandle<'_, Done>| {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        for (dir, idx) in by_dir {
            let mut pending: Done = Vec::new();
            let mut pending_bytes = 0u64;
            let batches: Vec<&[usize]> = idx.chunks(cfg.batch.max(1)).collect();
            for (b, batch) in batches.iter().enumerate() {
                let ready = seal_batch(dir, paths, batch, stage, cfg);
                pending_bytes += ready
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.bytes))
                    .sum::<u64>();
                pending.extend(ready);
                let last = b + 1 == batches.len();
                if !last && pending_bytes < DEFER_BYTES && pending.len() < DEFER_FILES {
                    continue;
                }
                let ready = std::mem::take(&mut pending);
                pending_bytes = 0;
                if let Some(h) = removing.take() {
                    report(join(h));
                }
                let ready = std::sync::Mutex::new(Some(ready));
                let take = move || {
                    ready
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take()
                        .unwrap_or_default()
                };
                // The closure is built so that a failed spawn leaves the batch with us.
                let take = std::sync::Arc::new(take);
                let t2 = std::sync::Arc::clone(&take);
                match std::thread::Builder::new()
                    .spawn_scoped(sc, move || remove_replaced(dir, t2(), sync_removal))
                {
                    Ok(h) => removing = Some(h),
                    Err(_) => report(remove_replaced(dir, take(), sync_removal)),
                }
            }
        }
        if let Some(h) = removing.take() {
            report(join(h));
        }
    });
}

/// An error of a batch step, for each file it fails.
fn step_error(op: &'static str, dir: &Path, e: &io::Error) -> Error {
    Error::Fs(fsio::FsError::io(
        op,
        dir,
        io::Error::new(e.kind(), e.to_string()),
    ))
}

/// Stages one batch of files of one directory: steps 1–3 of [`seal_files_with`] (or
/// [`unseal_files_with`]); what is `Ok` is durable under its final name, ready for
/// [`remove_replaced`].
fn seal_batch(
    dir: &Path,
    paths: &[PathBuf],
    batch: &[usize],
    stage: &StageFn<'_>,
    cfg: &BatchConfig<'_>,
) -> Vec<(usize, Result<Staged>)> {
    let hook = |step: BatchStep| cfg.hook.map_or(Ok(()), |h| h(step, dir));
    // Opened before the first temp file is written: its syncfs reports every later error.
    let anchor = match fsio::SyncAnchor::open(dir) {
        Ok(a) => a,
        Err(e) => {
            let e = io::Error::new(io_kind(&e), e.to_string());
            return batch
                .iter()
                .map(|&i| (i, Err(step_error("open", dir, &e))))
                .collect();
        }
    };
    let mut results = stage_parallel(paths, batch, stage, cfg.workers.max(1));
    // Fails every file still in flight (their temp files or sealed copies are removed).
    let fail_all = |results: &mut Vec<(usize, Result<Staged>)>, op, e: &io::Error| {
        for (_, r) in results.iter_mut() {
            if let Ok(s) = std::mem::replace(r, Err(step_error(op, dir, e))) {
                s.roll_back();
            }
        }
    };
    let in_flight = |results: &Vec<(usize, Result<Staged>)>| results.iter().any(|(_, r)| r.is_ok());

    // 2. Make every temp file durable at once.
    if in_flight(&results) {
        match hook(BatchStep::Sync) {
            Err(e) => fail_all(&mut results, "sync the sealed copies in", &e),
            Ok(()) => {
                let mut temps = Vec::new();
                for (_, r) in results.iter_mut() {
                    if let Ok(s) = r
                        && matches!(s.temp, Temp::Written(_))
                        && let Temp::Written(f) = std::mem::replace(&mut s.temp, Temp::Gone)
                    {
                        temps.push(f);
                    }
                }
                let mut synced = anchor.sync(temps, cfg.sync).into_iter();
                for (_, r) in results.iter_mut() {
                    // The files whose temp file went to the sync (not those that existed).
                    if let Ok(s) = r
                        && matches!(s.temp, Temp::Gone)
                    {
                        match synced.next() {
                            Some(Ok(f)) => s.temp = Temp::Synced(f),
                            Some(Err(e)) => *r = Err(e.into()),
                            None => unreachable!("one sync result per temp file"),
                        }
                    }
                }
            }
        }
    }
    // 3. Final names, then one directory fsync.
    if in_flight(&results) {
        match hook(BatchStep::Link) {
            Err(e) => fail_all(&mut results, "link the sealed copies in", &e),
            Ok(()) => {
                for (_, r) in results.iter_mut() {
                    if let Ok(s) = r
                        && matches!(s.temp, Temp::Synced(_))
                        && let Temp::Synced(f) = std::mem::replace(&mut s.temp, Temp::Gone)
                    {
                        match f.commit_without_dir_sync() {
                            Ok(()) => s.temp = Temp::Linked,
                            Err(e) => *r = Err(e.into()),
                        }
                    }
                }
            }
        }
    }
    if in_flight(&results) {
        let synced_dir = hook(BatchStep::SyncDir).and_then(|()| {
            fsio::sync_dir(dir).map_err(|e| io::Error::new(io_kind(&e), e.to_string()))
        });
        if let Err(e) = synced_dir {
            fail_all(&mut results, "fsync directory", &e);
        }
    }
    if in_flight(&results)
        && let Err(e) = hook(BatchStep::RemovePlain)
    {
        fail_all(&mut results, "remove the plaintexts in", &e);
    }
    results
}

/// Step 4 of [`seal_files_with`] / [`unseal_files_with`]: removes the replaced files of a
/// staged batch (the plaintexts, or the sealed files; on a few threads: each removal may wait
/// on the journal), then fsyncs `dir` once when `sync_removal`.
fn remove_replaced(
    dir: &Path,
    staged: Vec<(usize, Result<Staged>)>,
    sync_removal: bool,
) -> Vec<(usize, Result<Staged>)> {
    /// Removals in flight at once.
    const REMOVERS: usize = 8;
    let n = staged.len();
    let queue = std::sync::Mutex::new(staged.into_iter());
    let work = || {
        let mut out = Vec::new();
        loop {
            let next = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .next();
            let Some((i, r)) = next else { break };
            out.push((i, r.and_then(|s| s.remove_old(false))));
        }
        out
    };
    let mut done: Vec<(usize, Result<Staged>)> = std::thread::scope(|sc| {
        // Helpers that cannot be spawned are simply missing: this thread drains the queue.
        let helpers: Vec<_> = (1..REMOVERS.min(n))
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(sc, work).ok())
            .collect();
        let mut all = work();
        for h in helpers {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    done.sort_by_key(|(i, _)| *i);
    if sync_removal && done.iter().any(|(_, r)| r.is_ok()) {
        // The removals are not needed for safety (the new copies are durable); a failure
        // here only means a crash could bring identical old copies back.
        let _ = fsio::sync_dir(dir);
    }
    done
}

fn io_kind(e: &fsio::FsError) -> io::ErrorKind {
    match e {
        fsio::FsError::Io { source, .. } => source.kind(),
        _ => io::ErrorKind::Other,
    }
}

/// Stages the files `batch` (indexes into `plains`) on up to `workers` threads, deferring
/// their sync to the caller.
fn stage_parallel(
    paths: &[PathBuf],
    batch: &[usize],
    stage: &StageFn<'_>,
    workers: usize,
) -> Vec<(usize, Result<Staged>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = batch.get(k) else { break };
            out.push((i, stage(&paths[i])));
        }
        out
    };
    let mut all = std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers.min(batch.len()))
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mut all = work();
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        all
    });
    all.sort_by_key(|(i, _)| *i);
    all
}

/// Where a staged new file (sealed copy, or unsealed plaintext) is.
#[derive(Debug)]
enum Temp {
    /// Written and verified in its temp file, not synced.
    Written(AtomicFile),
    /// Durable in its temp file, not yet under its final name.
    Synced(fsio::SyncedFile),
    /// Durable and linked under its final name (its directory entry perhaps not yet durable).
    Linked,
    /// Nothing written: the new file already existed with the same content (an unseal after
    /// a crash left both copies); only the old one is to be removed.
    Existing,
    /// Moved out while a step runs.
    Gone,
}

/// A verified new copy of a file that is still in place: a sealed copy of a plaintext, or
/// the plaintext of a sealed file.
struct Staged {
    /// The file being replaced (seal: the plaintext; unseal: the sealed file).
    old: PathBuf,
    /// Its new copy (seal: the sealed file; unseal: the plaintext).
    new: PathBuf,
    bytes: u64,
    temp: Temp,
}

impl Staged {
    /// Removes the old file; call only once the new copy is linked (or existed) and the
    /// directory fsync after that succeeded.
    fn remove_old(self, durably: bool) -> Result<Staged> {
        debug_assert!(matches!(self.temp, Temp::Linked | Temp::Existing));
        if durably {
            fsio::remove_durably(&self.old)?;
        } else {
            fs::remove_file(&self.old).map_err(|e| fsio::FsError::io("remove", &self.old, e))?;
        }
        Ok(self)
    }

    /// Removes the new copy again (the old file stays the only copy); a temp file not yet
    /// linked just goes with its handle, and a copy that existed before is left alone.
    fn roll_back(self) {
        if matches!(self.temp, Temp::Linked) {
            let _ = fsio::remove_durably(&self.new);
        }
    }
}

/// What a seal reports of a staged file whose plaintext is gone.
fn sealed_of(s: Staged) -> Sealed {
    Sealed {
        plain: s.old,
        sealed: s.new,
        bytes: s.bytes,
    }
}

/// What an unseal reports of a staged file whose sealed copy is gone.
fn unsealed_of(s: Staged) -> Unsealed {
    Unsealed {
        already_plain: matches!(s.temp, Temp::Existing),
        sealed: s.old,
        plain: s.new,
        bytes: s.bytes,
    }
}

/// The directory holding `p` (`.` for a bare file name).
fn dir_of(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Plaintexts at least this large are verified on a second thread while they are encrypted;
/// smaller ones are verified after writing, on the same thread (a thread costs more than
/// decrypting a few chunks).
const PIPELINE_MIN: u64 = 256 * 1024;

/// Ciphertext written to a temp file between two early-writeback requests
/// ([`fsio::start_writeback`]): the final fsync then has little left to flush.
const WRITEBACK_STEP: u64 = 8 << 20;

/// A fault injected into the ciphertext stream by tests (it never happens otherwise).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Flip a bit of the ciphertext byte at this offset as it goes to disk.
    Flip(u64),
    /// Fail the write that reaches this offset (a full disk).
    FailWrite(u64),
}

/// Writes and verifies the sealed copy of `plain` in a temp file; unless `defer_sync`, also
/// fsyncs it and links it under its final name (everything but the directory fsync and the
/// removal of the plaintext). `fault` is a test's injected fault.
fn stage_with(
    plain: &Path,
    recipient: &age::x25519::Recipient,
    opts: &SealOptions,
    fault: Option<Fault>,
    defer_sync: bool,
) -> Result<Staged> {
    use age_core::secrecy::ExposeSecret;
    // One descriptor serves the writer and the verifier (positioned reads), so both see the
    // same file even if the path is replaced meanwhile.
    let file = open_regular(plain)?;
    let meta = file.metadata().map_err(|e| io_err("inspect", plain, e))?;
    if opts.respect_lock {
        check_lock(plain)?;
    }
    if let Ok(mtime) = meta.modified() {
        let age = opts.now.duration_since(mtime).unwrap_or(Duration::ZERO);
        if age < opts.min_idle {
            return Err(Error::RecentlyWritten {
                path: plain.to_path_buf(),
                secs: age.as_secs(),
            });
        }
    }
    let dest = sealed_path(plain);
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(Error::Conflict {
            plain: plain.to_path_buf(),
            sealed: dest,
        });
    }
    let mode = meta.mode() & 0o777;
    let len = meta.len();
    let changed = || Error::RecentlyWritten {
        path: plain.to_path_buf(),
        secs: 0,
    };
    // The header and payload nonce come from the age crate; it hands us the file key (kept in
    // memory only, zeroized on drop) so we can encrypt the payload in place and decrypt what
    // we wrote without the vault's secret.
    let file_key = std::sync::OnceLock::new();
    let capture = KeepFileKey {
        inner: recipient,
        key: &file_key,
    };
    let mut header = Vec::with_capacity(256);
    drop(
        encrypt_to_many(&mut header, &[&capture]).map_err(|e| Error::Encrypt {
            path: dest.clone(),
            source: e,
        })?,
    );
    let (Some(key), Some(nonce)) = (
        file_key.get(),
        header
            .len()
            .checked_sub(16)
            .and_then(|at| <[u8; 16]>::try_from(&header[at..]).ok()),
    ) else {
        return Err(Error::Encrypt {
            path: dest,
            source: io::Error::other("the age encryptor wrapped no file key"),
        });
    };
    let cipher = stream::payload_cipher(key.expose_secret(), &nonce);
    if len >= PIPELINE_MIN {
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
    }
    let mut out = AtomicFile::create(&dest, WriteOptions::secret_new())?;
    if len >= PIPELINE_MIN {
        // The sealed file's exact size: writes into reserved space cost the filesystem less.
        out.reserve(header.len() as u64 + stream::payload_len(len));
    }
    let ct = out.reopen_read()?;
    let pipelined = len >= PIPELINE_MIN;
    let handoff = Handoff {
        // A small file is verified after it is written: its one buffer must not wait.
        limit: if pipelined { PLAIN_AHEAD } else { 0 },
        ..Handoff::default()
    };
    // Set when the verifier cannot run beside the writer: it then re-reads the plaintext file
    // instead of waiting for buffers the writer could not hand over without bound.
    let reread = std::sync::atomic::AtomicBool::new(false);
    let write = |out: &mut AtomicFile| -> Result<u64> {
        let r = (|| {
            let mut sink = Published {
                inner: out,
                handoff: &handoff,
                written: 0,
                flushed: 0,
                fault,
            };
            let werr = |e| Error::Fs(fsio::FsError::io("write", &dest, e));
            sink.write_all(&header).map_err(werr)?;
            let mut tap = PlainTap {
                handoff: &handoff,
                cur: None,
                cap: (stream::RUN as usize * stream::CHUNK).min(len as usize),
                pos: 0,
            };
            let hand = !reread.load(std::sync::atomic::Ordering::Relaxed);
            let mut keep = |data: &[u8]| if hand { tap.keep(data) } else { Ok(()) };
            let encrypted = stream::encrypt_file(&file, len, &cipher, &mut sink, &mut keep);
            encrypted
                .and_then(|()| tap.finish().map_err(CopyError::Write))
                .map_err(|e| match e {
                    CopyError::Read(e) if e.kind() == io::ErrorKind::UnexpectedEof => changed(),
                    CopyError::Read(e) => io_err("read", plain, e),
                    CopyError::Write(e) => werr(e),
                })?;
            Ok(len)
        })();
        match &r {
            Ok(_) => handoff.end(),
            Err(_) => handoff.fail(Side::Writer),
        }
        r
    };
    let verify = || -> Result<u64> {
        let follow = Follow {
            file: &ct,
            pos: 0,
            handoff: &handoff,
        };
        let source = if reread.load(std::sync::atomic::Ordering::Relaxed) {
            PlainSource::File {
                file: &file,
                pos: 0,
                buf: Vec::new(),
            }
        } else {
            PlainSource::handed(&handoff, &file)
        };
        let r = verify_copy(follow, source, &file_key, &cipher, &dest, header.len(), len);
        if r.is_err() {
            handoff.fail(Side::Verifier);
        }
        r
    };
    let (written, verified) = if pipelined {
        std::thread::scope(|s| {
            let v = std::thread::Builder::new().spawn_scoped(s, verify);
            if v.is_err() {
                reread.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let w = write(&mut out);
            let v = match v {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                // No thread to spare: verify what was written, behind the writer.
                Err(_) => verify(),
            };
            (w, v)
        })
    } else {
        let w = write(&mut out);
        let v = if w.is_ok() {
            verify()
        } else {
            Err(Error::VerifyMismatch { path: dest.clone() })
        };
        (w, v)
    };
    drop(cipher);
    drop(file_key);
    let bytes = match (written, verified) {
        (Ok(n), Ok(m)) if n == m => n,
        (Ok(_), Ok(_)) => return Err(Error::VerifyMismatch { path: dest }),
        // A writer stopped by the verifier reports the verifier's finding.
        (Err(_), Err(v)) if handoff.failed_first(Side::Verifier) => return Err(v),
        (Err(w), _) => return Err(w),
        (Ok(_), Err(v)) => return Err(v),
    };
    // Nothing may have been appended meanwhile: the sealed copy must hold the whole file.
    let now = file.metadata().map_err(|e| io_err("inspect", plain, e))?;
    if now.len() != bytes || now.modified().ok() != meta.modified().ok() {
        return Err(changed());
    }
    // The sealed file (0600) records the transcript's mode in an xattr and keeps its mtime, so
    // idle checks and `unseal` see the age of the conversation, not of the sealing.
    let _ = rustix::fs::fsetxattr(
        out.as_file(),
        MODE_XATTR,
        format!("{mode:o}").as_bytes(),
        rustix::fs::XattrFlags::empty(),
    );
    if let Ok(mtime) = meta.modified() {
        let _ = out.as_file().set_modified(mtime);
    }
    let temp = if defer_sync {
        Temp::Written(out)
    } else {
        out.commit_without_dir_sync()?;
        Temp::Linked
    };
    Ok(Staged {
        old: plain.to_path_buf(),
        new: dest,
        bytes,
        temp,
    })
}

/// Verifies a sealed copy being written: reads the age file `ct` (a header and nonce of
/// `hdr_len` bytes, then the payload)
/// and checks it decrypts, chunk by chunk, to the plaintext file read at the same offsets,
/// with exactly `len` bytes and nothing after the final chunk; returns `len`.
///
/// The age crate itself parses the header, authenticates its MAC with the file key and
/// decrypts the first chunk (the whole payload of a file up to 64 KiB): an independent check
/// of moltvault's in-place encryption on every file. The remaining chunks are authenticated
/// and decrypted in place ([`stream::PayloadCipher::open`]), with no allocation per chunk.
fn verify_copy(
    mut ct: impl Read,
    mut plain: PlainSource<'_>,
    file_key: &std::sync::OnceLock<age_core::format::FileKey>,
    cipher: &stream::PayloadCipher,
    dest: &Path,
    hdr_len: usize,
    len: u64,
) -> Result<u64> {
    use stream::{RUN, TAG};
    let decrypt_err = |e: age::DecryptError| Error::Decrypt {
        path: dest.to_path_buf(),
        kind: DecryptFailure::from_age(&e),
    };
    let damaged = |e: &io::Error| Error::Decrypt {
        path: dest.to_path_buf(),
        kind: DecryptFailure::from_io(e),
    };
    let mismatch = || Error::VerifyMismatch {
        path: dest.to_path_buf(),
    };
    let total = stream::chunks(len);
    // 1. Header, nonce and first chunk, by the age crate.
    let first = stream::chunk_len(len, 0);
    let mut prefix = vec![0u8; hdr_len + first + TAG];
    ct.read_exact(&mut prefix).map_err(|e| damaged(&e))?;
    let dec = age::Decryptor::new_buffered(&prefix[..]).map_err(decrypt_err)?;
    let mut r = dec
        .decrypt(std::iter::once(
            &KnownFileKey(file_key) as &dyn age::Identity
        ))
        .map_err(decrypt_err)?;
    let run = RUN.min(total) as usize;
    let mut got = vec![0u8; (run * stream::ENC_CHUNK).min(len as usize + TAG)];
    r.read_exact(&mut got[..first]).map_err(|e| damaged(&e))?;
    if total == 1 {
        // Reading on authenticates the final-chunk flag and finds the end.
        match r.read(&mut [0u8; 1]) {
            Ok(0) => {}
            Ok(_) => return Err(mismatch()),
            Err(e) => return Err(damaged(&e)),
        }
    }
    if !plain.matches(&got[..first]).map_err(|e| damaged(&e))? {
        return Err(mismatch());
    }
    // 2. The other chunks, in runs, authenticated and decrypted in place.
    let mut idx = 1;
    while idx < total {
        let end = (idx + RUN).min(total);
        let plain_len: usize = (idx..end).map(|i| stream::chunk_len(len, i)).sum();
        let ct_len = plain_len + (end - idx) as usize * TAG;
        ct.read_exact(&mut got[..ct_len]).map_err(|e| damaged(&e))?;
        let mut c = 0;
        for i in idx..end {
            let n = stream::chunk_len(len, i);
            let data = cipher
                .open(i, i + 1 == total, &mut got[c..c + n + TAG])
                .map_err(|e| damaged(&e))?;
            if !plain.matches(data).map_err(|e| damaged(&e))? {
                return Err(mismatch());
            }
            c += n + TAG;
        }
        idx = end;
    }
    // 3. Nothing after the final chunk.
    match ct.read(&mut [0u8; 1]) {
        Ok(0) => Ok(len),
        Ok(_) => Err(Error::Decrypt {
            path: dest.to_path_buf(),
            kind: DecryptFailure::Damaged,
        }),
        Err(e) => Err(damaged(&e)),
    }
}

/// The vault recipient, keeping a copy of the file key it wraps (for [`KnownFileKey`]).
struct KeepFileKey<'a> {
    inner: &'a age::x25519::Recipient,
    key: &'a std::sync::OnceLock<age_core::format::FileKey>,
}

impl age::Recipient for KeepFileKey<'_> {
    fn wrap_file_key(
        &self,
        file_key: &age_core::format::FileKey,
    ) -> std::result::Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        use age_core::secrecy::ExposeSecret;
        let wrapped = age::Recipient::wrap_file_key(self.inner, file_key)?;
        let _ = self.key.set(age_core::format::FileKey::init_with_mut(|k| {
            k.copy_from_slice(file_key.expose_secret())
        }));
        Ok(wrapped)
    }
}

/// An identity that knows the file key of the one file we just wrote: it authenticates the
/// header (HMAC under that key) and every payload chunk, without the vault's secret.
struct KnownFileKey<'a>(&'a std::sync::OnceLock<age_core::format::FileKey>);

impl age::Identity for KnownFileKey<'_> {
    fn unwrap_stanza(
        &self,
        _stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        use age_core::secrecy::ExposeSecret;
        let key = self.0.get()?;
        Some(Ok(age_core::format::FileKey::init_with_mut(|k| {
            k.copy_from_slice(key.expose_secret())
        })))
    }
}

/// Which side of a seal pipeline failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Writer,
    Verifier,
}

/// Plaintext buffers ([`stream::RUN`] chunks each, about 1 MiB) a pipelined writer may have
/// handed to its verifier and not had back yet. Beyond that the writer does not wait: it
/// tells the verifier to read those chunks from the plaintext file again
/// ([`Piece::Reread`]), which bounds the memory of a seal whatever the file size.
const PLAIN_AHEAD: usize = 8;

/// A run of plaintext the writer encrypted, as handed to the verifier.
enum Piece {
    /// The bytes themselves, exactly as read and encrypted.
    Bytes(Vec<u8>),
    /// `len` bytes at offset `at` of the plaintext file (no buffer was free): the verifier
    /// reads them again from the file.
    Reread { at: u64, len: usize },
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Bytes(b) => b.len(),
            Piece::Reread { len, .. } => *len,
        }
    }
}

/// The writer → verifier hand-off of one seal: how much ciphertext the temp file holds, and
/// the plaintext the writer encrypted (its own buffers, in order), for the verifier to compare
/// with what it decrypts back from the temp file.
#[derive(Default)]
struct Handoff {
    state: std::sync::Mutex<Flow>,
    cv: std::sync::Condvar,
    /// At most this many plaintext buffers exist at once (0: no limit).
    limit: usize,
}

#[derive(Default)]
struct Flow {
    /// Ciphertext bytes written to the temp file so far.
    written: u64,
    /// The writer finished: `written` is final and every plaintext buffer is queued.
    done: bool,
    /// The side that failed first, if any; the other stops at its next step.
    failed: Option<Side>,
    /// Plaintext the writer encrypted, in order, not yet taken by the verifier.
    plains: std::collections::VecDeque<Piece>,
    /// Buffers the verifier is done with, for the writer to refill.
    spare: Vec<Vec<u8>>,
    /// Plaintext buffers in existence (queued, being filled or being compared).
    buffers: usize,
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Flow> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes the written length; fails once the verifier gave up (the writer then stops).
    fn publish(&self, written: u64) -> io::Result<()> {
        let mut f = self.lock();
        if f.failed.is_some() {
            return Err(io::Error::other("the seal was abandoned"));
        }
        f.written = written;
        self.cv.notify_all();
        Ok(())
    }

    fn end(&self) {
        self.lock().done = true;
        self.cv.notify_all();
    }

    fn fail(&self, side: Side) {
        self.lock().failed.get_or_insert(side);
        self.cv.notify_all();
    }

    fn failed_first(&self, side: Side) -> bool {
        self.lock().failed == Some(side)
    }

    /// An empty plaintext buffer of capacity `cap` for the writer: a spare one, or a new one
    /// while fewer than `limit` exist; `None` when all are in use (the writer never waits).
    /// Fails once the verifier gave up.
    fn take_buffer(&self, cap: usize) -> io::Result<Option<Vec<u8>>> {
        let mut f = self.lock();
        if f.failed.is_some() {
            return Err(io::Error::other("the seal was abandoned"));
        }
        if let Some(b) = f.spare.pop() {
            return Ok(Some(b));
        }
        if self.limit == 0 || f.buffers < self.limit {
            f.buffers += 1;
            return Ok(Some(Vec::with_capacity(cap)));
        }
        Ok(None)
    }

    /// Queues plaintext the writer encrypted for the verifier.
    fn push_plain(&self, buf: Piece) -> io::Result<()> {
        let mut f = self.lock();
        if f.failed.is_some() {
            return Err(io::Error::other("the seal was abandoned"));
        }
        f.plains.push_back(buf);
        self.cv.notify_all();
        Ok(())
    }

    /// The next plaintext buffer the writer encrypted, once it is queued; `None` when the
    /// writer is done and nothing is left. Fails if the writer failed.
    fn take_plain(&self) -> io::Result<Option<Piece>> {
        let mut f = self.lock();
        loop {
            if f.failed.is_some() {
                return Err(io::Error::other("the seal was abandoned"));
            }
            if let Some(b) = f.plains.pop_front() {
                return Ok(Some(b));
            }
            if f.done {
                return Ok(None);
            }
            f = self
                .cv
                .wait(f)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Gives a compared plaintext buffer back to the writer.
    fn give_back(&self, piece: Piece) {
        if let Piece::Bytes(mut buf) = piece {
            buf.clear();
            self.lock().spare.push(buf);
        }
    }

    /// Waits until the file holds bytes past `pos` (returns how many) or the writer is done
    /// (returns 0); fails if the writer failed.
    fn wait_past(&self, pos: u64) -> io::Result<u64> {
        let mut f = self.lock();
        loop {
            if f.failed.is_some() {
                return Err(io::Error::other("the seal was abandoned"));
            }
            if f.written > pos {
                return Ok(f.written - pos);
            }
            if f.done {
                return Ok(0);
            }
            f = self
                .cv
                .wait(f)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The writer's end: counts what reaches the temp file and tells the verifier.
struct Published<'a> {
    inner: &'a mut AtomicFile,
    handoff: &'a Handoff,
    written: u64,
    /// How far early writeback was requested ([`WRITEBACK_STEP`]).
    flushed: u64,
    fault: Option<Fault>,
}

impl Write for Published<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let here = self.written..self.written + buf.len() as u64;
        let k = match self.fault {
            Some(Fault::Flip(at)) if here.contains(&at) => {
                let mut bad = buf.to_vec();
                bad[(at - here.start) as usize] ^= 0x10;
                self.inner.write(&bad)?
            }
            Some(Fault::FailWrite(at)) if here.contains(&at) => {
                return Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::NOSPC.raw_os_error(),
                ));
            }
            _ => self.inner.write(buf)?,
        };
        self.written += k as u64;
        if self.written - self.flushed >= WRITEBACK_STEP {
            fsio::start_writeback(
                self.inner.as_file(),
                self.flushed,
                self.written - self.flushed,
            );
            self.flushed = self.written;
        }
        self.handoff.publish(self.written)?;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The verifier's end: reads the temp file (positioned reads) up to what the writer published.
struct Follow<'a> {
    file: &'a File,
    pos: u64,
    handoff: &'a Handoff,
}

impl Read for Follow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if buf.is_empty() {
            return Ok(0);
        }
        let avail = self.handoff.wait_past(self.pos)?;
        if avail == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the sealed temp file is shorter than what was written",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The writer's side of the plaintext hand-off: collects each chunk's plaintext, just before
/// it is encrypted, into buffers of [`stream::RUN`] chunks and queues them for the verifier
/// (or, when no buffer is free, queues where to read those chunks again).
struct PlainTap<'a> {
    handoff: &'a Handoff,
    /// The piece being filled (at most `cap` bytes; none before the first chunk).
    cur: Option<Piece>,
    cap: usize,
    /// Plaintext offset of the next chunk.
    pos: u64,
}

impl PlainTap<'_> {
    fn keep(&mut self, data: &[u8]) -> io::Result<()> {
        if self
            .cur
            .as_ref()
            .is_some_and(|c| c.len() + data.len() > self.cap)
        {
            self.finish()?;
        }
        let cur = match &mut self.cur {
            Some(c) => c,
            None => {
                let piece = match self.handoff.take_buffer(self.cap)? {
                    Some(b) => Piece::Bytes(b),
                    None => Piece::Reread {
                        at: self.pos,
                        len: 0,
                    },
                };
                self.cur.insert(piece)
            }
        };
        match cur {
            Piece::Bytes(b) => b.extend_from_slice(data),
            Piece::Reread { len, .. } => *len += data.len(),
        }
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Queues the piece being filled.
    fn finish(&mut self) -> io::Result<()> {
        match self.cur.take() {
            Some(c) => self.handoff.push_plain(c),
            None => Ok(()),
        }
    }
}

/// Where the verifier finds the plaintext it compares each decrypted chunk with.
enum PlainSource<'a> {
    /// What the writer handed over ([`PlainTap`]): the bytes it read and encrypted, or where
    /// to read them again from `file` when no buffer was free.
    Handed {
        handoff: &'a Handoff,
        file: &'a File,
        cur: Piece,
        at: usize,
        buf: Vec<u8>,
    },
    /// The plaintext file, read again at the same offsets (when the verifier cannot run
    /// beside the writer).
    File {
        file: &'a File,
        pos: u64,
        buf: Vec<u8>,
    },
}

impl<'a> PlainSource<'a> {
    /// The plaintext `handoff`'s writer hands over (`file` is the plaintext file).
    fn handed(handoff: &'a Handoff, file: &'a File) -> Self {
        PlainSource::Handed {
            handoff,
            file,
            cur: Piece::Bytes(Vec::new()),
            at: 0,
            buf: Vec::new(),
        }
    }

    /// Whether the next `data.len()` plaintext bytes equal `data`.
    ///
    /// # Errors
    /// Fails when the writer failed (the hand-off was abandoned).
    fn matches(&mut self, data: &[u8]) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let same_in_file = |file: &File, buf: &mut Vec<u8>, data: &[u8], pos: u64| {
            buf.resize(data.len(), 0);
            file.read_exact_at(buf, pos).is_ok() && buf[..] == *data
        };
        match self {
            PlainSource::Handed {
                handoff,
                file,
                cur,
                at,
                buf,
            } => {
                let mut rest = data;
                while !rest.is_empty() {
                    if *at == cur.len() {
                        let Some(next) = handoff.take_plain()? else {
                            return Ok(false);
                        };
                        handoff.give_back(std::mem::replace(cur, next));
                        *at = 0;
                    }
                    let n = rest.len().min(cur.len() - *at);
                    let same = match cur {
                        Piece::Bytes(b) => rest[..n] == b[*at..*at + n],
                        Piece::Reread { at: off, .. } => {
                            same_in_file(file, buf, &rest[..n], *off + *at as u64)
                        }
                    };
                    if !same {
                        return Ok(false);
                    }
                    rest = &rest[n..];
                    *at += n;
                }
                Ok(true)
            }
            PlainSource::File { file, pos, buf } => {
                let same = same_in_file(file, buf, data, *pos);
                *pos += data.len() as u64;
                Ok(same)
            }
        }
    }
}

/// A writer to a temp file that asks the kernel to start writing back every
/// [`WRITEBACK_STEP`] bytes ([`fsio::start_writeback`]), so the final fsync finds little to do.
struct EarlyWriteback<'a> {
    out: &'a mut AtomicFile,
    written: u64,
    flushed: u64,
}

impl Write for EarlyWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.out.write(buf)?;
        self.written += k as u64;
        if self.written - self.flushed >= WRITEBACK_STEP {
            fsio::start_writeback(
                self.out.as_file(),
                self.flushed,
                self.written - self.flushed,
            );
            self.flushed = self.written;
        }
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What unsealing one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    /// The sealed file, now removed.
    pub sealed: PathBuf,
    /// The restored plaintext.
    pub plain: PathBuf,
    /// Plaintext size in bytes.
    pub bytes: u64,
    /// True when the plaintext already existed with the same content (a crash left both).
    pub already_plain: bool,
}

/// Unseals `sealed` (`x.age` → `x`): decrypts into a temp file beside it, keeps it only after
/// the whole file authenticated, renames it into place with the mode recorded at sealing
/// ([`MODE_XATTR`]; 0600 when absent) and the sealed file's mtime, then removes the sealed file.
///
/// The payload of a large file is authenticated and decrypted on several threads (the age
/// crate parses the header, authenticates its MAC and decrypts the first chunk; the other
/// chunks are independent and decrypted in place, in runs of 16, wherever a thread is free);
/// the plaintext takes its name only after every chunk, the final-flagged one last,
/// authenticated and nothing follows it. ASCII-armored files are decrypted by the age crate's
/// streaming reader.
///
/// If the plaintext already exists with the same content (a crash between the two steps), only
/// the sealed copy is removed. [`unseal_files_with`] unseals many files with far fewer syncs.
///
/// # Errors
/// Fails on a symlink or non-regular file, a file not for the identity, any damage (nothing is
/// written), a differing plaintext ([`Error::Conflict`]) or an I/O failure.
pub fn unseal_file(sealed: &Path, identity: &Identity) -> Result<Unsealed> {
    unseal_file_with(sealed, &[identity.as_age() as &dyn age::Identity])
}

/// Unseals `sealed` like [`unseal_file`] with any of `identities` (an age identity file, a
/// passphrase, or the test vectors' keys).
///
/// # Errors
/// As [`unseal_file`].
pub fn unseal_file_with(sealed: &Path, identities: &[&dyn age::Identity]) -> Result<Unsealed> {
    let staged = stage_unseal(sealed, identities, false, unseal_threads())?;
    if matches!(staged.temp, Temp::Linked)
        && let Err(e) = fsio::sync_dir(dir_of(&staged.new))
    {
        staged.roll_back();
        return Err(e.into());
    }
    staged.remove_old(true).map(unsealed_of)
}

/// Threads that decrypt one large sealed file: one per CPU, at most 4.
fn unseal_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

/// Sealed files at least this large are decrypted on several threads; smaller ones on the
/// calling thread (a thread costs more than decrypting a few chunks).
const PARALLEL_UNSEAL_MIN: u64 = 256 * 1024;

/// Decrypts `sealed` into a temp file beside it (kept only once the whole file
/// authenticated; the payload of a binary file on up to `threads` threads, [`open`]);
/// unless `defer_sync`, also fsyncs it and links it under its final name (everything but the
/// directory fsync and the removal of the sealed file). A plaintext that already exists with
/// the same content is staged as [`Temp::Existing`].
fn stage_unseal(
    sealed: &Path,
    identities: &[&dyn age::Identity],
    defer_sync: bool,
    threads: usize,
) -> Result<Staged> {
    let plain = plain_path(sealed).ok_or_else(|| Error::NotRegularFile {
        path: sealed.to_path_buf(),
        symlink: false,
    })?;
    let mut file = open_regular(sealed)?;
    check_magic(&mut file, sealed)?;
    let meta = file.metadata().map_err(|e| io_err("inspect", sealed, e))?;
    let mode = recorded_mode(&file).unwrap_or(fsio::SECRET_FILE_MODE);
    let existing = match fs::symlink_metadata(&plain) {
        Ok(m) if m.file_type().is_symlink() || !m.is_file() => {
            return Err(Error::NotRegularFile {
                symlink: m.file_type().is_symlink(),
                path: plain,
            });
        }
        Ok(_) => true,
        Err(_) => false,
    };
    let decrypt_err = |kind| Error::Decrypt {
        path: sealed.to_path_buf(),
        kind,
    };
    if existing {
        let mut r = decrypt_reader_with(file, identities).map_err(decrypt_err)?;
        let mut h = Sha256::new();
        let n = copy_hashing(&mut r, &mut io::sink(), Some(&mut h))
            .map_err(|e| decrypt_io(sealed, e))?;
        let mut h2 = Sha256::new();
        let mut pf = open_regular(&plain)?;
        copy_hashing(&mut pf, &mut io::sink(), Some(&mut h2))
            .map_err(|e| io_err("read", &plain, e.into_inner()))?;
        if h.finalize() != h2.finalize() {
            return Err(Error::Conflict {
                plain,
                sealed: sealed.to_path_buf(),
            });
        }
        return Ok(Staged {
            old: sealed.to_path_buf(),
            new: plain,
            bytes: n,
            temp: Temp::Existing,
        });
    }
    let mut out = AtomicFile::create(
        &plain,
        WriteOptions {
            mode,
            replace: Replace::Never,
            keep_owner: false,
        },
    )?;
    let write_err = |e| Error::Fs(fsio::FsError::io("write", &plain, e));
    let threads = if meta.len() >= PARALLEL_UNSEAL_MIN {
        // A little more than the plaintext's size (the commit gives back the rest): writes
        // into reserved space cost the filesystem less.
        out.reserve(meta.len());
        threads
    } else {
        1
    };
    let n = match open::decrypt_file(&file, meta.len(), identities, out.as_file(), threads) {
        Ok(Some(n)) => n,
        Err(open::OpenError::Decrypt(kind)) => return Err(decrypt_err(kind)),
        Err(open::OpenError::Write(e)) => return Err(write_err(e)),
        // Armored: the age crate's streaming reader.
        Ok(None) => {
            let mut r = decrypt_reader_with(file, identities).map_err(decrypt_err)?;
            let mut sink = EarlyWriteback {
                out: &mut out,
                written: 0,
                flushed: 0,
            };
            copy_sized(&mut r, &mut sink, None, meta.len() as usize).map_err(|e| match e {
                CopyError::Read(e) => decrypt_io(sealed, CopyError::Read(e)),
                CopyError::Write(e) => write_err(e),
            })?
        }
    };
    if let Ok(mtime) = meta.modified() {
        let _ = out.as_file().set_modified(mtime);
    }
    // Only now, after the final chunk authenticated, may the plaintext take its name.
    let temp = if defer_sync {
        Temp::Written(out)
    } else {
        out.commit_without_dir_sync()?;
        Temp::Linked
    };
    Ok(Staged {
        old: sealed.to_path_buf(),
        new: plain,
        bytes: n,
        temp,
    })
}

/// Opens a sealed file for streaming (no plaintext touches the disk).
///
/// # Errors
/// Fails on a symlink, a non-regular file, or a header that does not open with `identity`.
pub fn open_sealed(path: &Path, identity: &Identity) -> Result<OpenReader<File>> {
    let mut f = open_regular(path)?;
    check_magic(&mut f, path)?;
    decrypt_reader(f, identity).map_err(|kind| Error::Decrypt {
        path: path.to_path_buf(),
        kind,
    })
}

/// Decrypts a whole sealed file to memory-free verification, returning its plaintext size and
/// SHA-256.
///
/// # Errors
/// As [`open_sealed`], plus any damage in the payload.
pub fn verify_sealed(path: &Path, identity: &Identity) -> Result<(u64, [u8; 32])> {
    let mut r = open_sealed(path, identity)?;
    let mut h = Sha256::new();
    let n = copy_hashing(&mut r, &mut io::sink(), Some(&mut h)).map_err(|e| decrypt_io(path, e))?;
    Ok((n, h.finalize().into()))
}

/// Removes the temp files a killed `seal`/`unseal` left in `dir`, and returns how many:
/// `.<name>.age.mvtmp-*` (partial ciphertext) and `.<name>.mvtmp-*` whose `<name>.age` still
/// exists (partial plaintext of an interrupted unseal). Other temp files (another command's
/// write in progress) are left alone. Call it once per directory before a batch.
pub fn sweep_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((target, _)) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".mvtmp-"))
        else {
            continue;
        };
        let ours = target.ends_with(SEALED_SUFFIX)
            || fs::symlink_metadata(dir.join(format!("{target}{SEALED_SUFFIX}"))).is_ok();
        if ours && e.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Rejects files that do not start like an age file (binary or armored), then rewinds.
fn check_magic(f: &mut File, path: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    const BIN: &[u8] = b"age-encryption.org/";
    const ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
    let mut head = [0u8; 34];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", path, e)),
        }
    }
    let head = &head[..n];
    let trimmed = head.trim_ascii_start();
    let like = |magic: &[u8], h: &[u8]| {
        let k = magic.len().min(h.len());
        !h.is_empty() && h[..k] == magic[..k]
    };
    if !(like(BIN, head) || like(ARMOR, trimmed)) {
        return Err(Error::Decrypt {
            path: path.to_path_buf(),
            kind: DecryptFailure::BadHeader,
        });
    }
    f.seek(SeekFrom::Start(0))
        .map_err(|e| io_err("read", path, e))?;
    Ok(())
}

/// Opens a path for reading, refusing symlinks and anything but a regular file.
///
/// # Errors
/// [`Error::NotRegularFile`] or an I/O error naming the path.
pub fn open_regular(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                Error::NotRegularFile {
                    path: path.to_path_buf(),
                    symlink: true,
                }
            } else {
                io_err("open", path, e)
            }
        })?;
    let meta = f.metadata().map_err(|e| io_err("inspect", path, e))?;
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            symlink: false,
        });
    }
    Ok(f)
}

/// Whether `<file>.lock` is held: it exists and names a live pid (or cannot be parsed).
///
/// # Errors
/// [`Error::LockHeld`] when held.
pub fn check_lock(file: &Path) -> Result<()> {
    let mut lock = file.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let Ok(text) = fs::read_to_string(&lock) else {
        return if fs::symlink_metadata(&lock).is_ok() {
            Err(Error::LockHeld {
                path: file.to_path_buf(),
                lock,
            })
        } else {
            Ok(())
        };
    };
    let pid = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("pid").and_then(|p| p.as_i64()));
    let alive = match pid {
        Some(p) if p > 0 && p <= i32::MAX as i64 => {
            match rustix::process::Pid::from_raw(p as i32) {
                Some(pid) => match rustix::process::test_kill_process(pid) {
                    Ok(()) => true,
                    Err(e) => e != rustix::io::Errno::SRCH,
                },
                None => true,
            }
        }
        _ => true,
    };
    if alive {
        Err(Error::LockHeld {
            path: file.to_path_buf(),
            lock,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn decrypt_io(path: &Path, e: CopyError) -> Error {
    match e {
        CopyError::Read(e) => Error::Decrypt {
            path: path.to_path_buf(),
            kind: DecryptFailure::from_io(&e),
        },
        CopyError::Write(e) => io_err("write", path, e),
    }
}

pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    fn into_inner(self) -> io::Error {
        match self {
            CopyError::Read(e) | CopyError::Write(e) => e,
        }
    }
}

/// The copy buffer: 16 age chunks, few syscalls, small RSS.
const COPY_BUF: usize = 1 << 20;

/// Copies `r` to `w` in [`COPY_BUF`] steps, hashing what passes; returns the byte count.
pub(crate) fn copy_hashing(
    r: &mut impl Read,
    w: &mut impl Write,
    mut h: Option<&mut Sha256>,
) -> std::result::Result<u64, CopyError> {
    copy_sized(r, w, h.take(), COPY_BUF)
}

/// [`copy_hashing`] with a buffer sized for a file of about `size_hint` bytes (small files
/// then cost no 1 MiB allocation).
pub(crate) fn copy_sized(
    r: &mut impl Read,
    w: &mut impl Write,
    mut h: Option<&mut Sha256>,
    size_hint: usize,
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; size_hint.saturating_add(1).clamp(16 * 1024, COPY_BUF)];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        if let Some(h) = h.as_deref_mut() {
            h.update(&buf[..k]);
        }
        w.write_all(&buf[..k]).map_err(CopyError::Write)?;
        n += k as u64;
    }
    w.flush().map_err(CopyError::Write)?;
    Ok(n)
}

/// Sets a file's permission bits (used when restoring locked credentials).
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_err("set mode of", path, e))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn old_opts() -> SealOptions {
        SealOptions {
            now: SystemTime::now() + Duration::from_secs(3600),
            ..SealOptions::default()
        }
    }

    fn transcript(dir: &Path, name: &str, lines: usize) -> (PathBuf, Vec<u8>) {
        let p = dir.join(name);
        let mut body = Vec::new();
        for i in 0..lines {
            body.extend_from_slice(
                format!("{{\"type\":\"message\",\"id\":\"{i:08}\",\"text\":\"hello {i}\"}}\n")
                    .as_bytes(),
            );
        }
        fs::write(&p, &body).unwrap();
        (p, body)
    }

    #[test]
    fn seal_then_unseal_round_trips_bytes_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (p, body) = transcript(dir.path(), "s1.jsonl", 5000);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let sealed = seal_file(&p, &id.to_public(), &old_opts()).unwrap();
        assert!(!p.exists());
        assert_eq!(sealed.sealed, dir.path().join("s1.jsonl.age"));
        assert_eq!(sealed.bytes, body.len() as u64);
        let ct = fs::read(&sealed.sealed).unwrap();
        assert!(ct.starts_with(b"age-encryption.org/v1\n"));
        // A standard single-recipient file: the verification key is not in the header.
        assert_eq!(ct.windows(10).filter(|w| w == b"\n-> X25519").count(), 1);
        assert!(!ct.windows(5).any(|w| w == b"hello"));
        let un = unseal_file(&sealed.sealed, &id).unwrap();
        assert_eq!(fs::read(&p).unwrap(), body);
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        assert!(!un.already_plain);
        assert!(!sealed.sealed.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files"
        );
    }

    /// The sealed copy and the unsealed plaintext keep the transcript's mtime (idle checks
    /// see the conversation's age), for small files and for large ones, whose space is
    /// reserved ahead of the writes and trimmed at commit.
    #[test]
    fn seal_and_unseal_keep_the_transcripts_mtime_at_every_size() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let then = SystemTime::now() - Duration::from_secs(3 * 86_400);
        for lines in [100, 40_000] {
            let (p, body) = transcript(dir.path(), &format!("t{lines}.jsonl"), lines);
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(then)
                .unwrap();
            let sealed = seal_file(&p, &id.to_public(), &old_opts()).unwrap();
            let mtime = |q: &Path| fs::metadata(q).unwrap().modified().unwrap();
            assert_eq!(mtime(&sealed.sealed), then, "{lines} lines sealed");
            unseal_file(&sealed.sealed, &id).unwrap();
            assert_eq!(fs::read(&p).unwrap(), body);
            assert_eq!(mtime(&p), then, "{lines} lines unsealed");
            if lines > 100 {
                assert!(body.len() as u64 > 4 * PIPELINE_MIN.max(PARALLEL_UNSEAL_MIN));
            }
        }
    }

    #[test]
    fn refuses_recent_locked_symlinked_and_conflicting_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (p, _) = transcript(dir.path(), "live.jsonl", 3);
        assert!(matches!(
            seal_file(&p, &id.to_public(), &SealOptions::default()),
            Err(Error::RecentlyWritten { .. })
        ));
        let lock = dir.path().join("live.jsonl.lock");
        fs::write(
            &lock,
            format!("{{\"pid\":{},\"createdAt\":1}}", std::process::id()),
        )
        .unwrap();
        assert!(matches!(
            seal_file(&p, &id.to_public(), &old_opts()),
            Err(Error::LockHeld { .. })
        ));
        // A stale lock (dead pid) does not block.
        fs::write(&lock, "{\"pid\":2147483600,\"createdAt\":1}").unwrap();
        seal_file(&p, &id.to_public(), &old_opts()).unwrap();

        let (target, _) = transcript(dir.path(), "real.jsonl", 3);
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        match seal_file(&link, &id.to_public(), &old_opts()) {
            Err(Error::NotRegularFile {
                symlink: true,
                path,
            }) => assert_eq!(path, link),
            other => panic!("{other:?}"),
        }
        assert!(target.exists() && link.exists());

        let (c, _) = transcript(dir.path(), "c.jsonl", 3);
        fs::write(dir.path().join("c.jsonl.age"), b"x").unwrap();
        assert!(matches!(
            seal_file(&c, &id.to_public(), &old_opts()),
            Err(Error::Conflict { .. })
        ));
        assert!(c.exists());
    }

    #[test]
    fn damaged_sealed_files_fail_with_a_kind_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (p, _) = transcript(dir.path(), "d.jsonl", 6000); // > 3 chunks
        let s = seal_file(&p, &id.to_public(), &old_opts()).unwrap().sealed;
        let good = fs::read(&s).unwrap();
        let check = |bytes: &[u8], want: &[DecryptFailure]| {
            fs::write(&s, bytes).unwrap();
            match unseal_file(&s, &id) {
                Err(Error::Decrypt { path, kind }) => {
                    assert_eq!(path, s);
                    assert!(want.contains(&kind), "{kind:?} not in {want:?}");
                }
                other => panic!("{other:?}"),
            }
            assert!(!p.exists(), "no plaintext may appear");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
            assert_eq!(fs::read(&s).unwrap(), bytes, "sealed file unchanged");
        };
        // Truncations: mid final chunk, at a chunk boundary, inside the header.
        check(&good[..good.len() - 1], &[DecryptFailure::Damaged]);
        let header_end = good.windows(4).position(|w| w == b"--- ").unwrap();
        let payload_start =
            header_end + good[header_end..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let boundary = payload_start + 16 + 3 * (64 * 1024 + 16);
        check(&good[..boundary], &[DecryptFailure::Truncated]);
        check(
            &good[..40],
            &[DecryptFailure::BadHeader, DecryptFailure::Truncated],
        );
        // Bit flips across the file.
        for off in [
            30usize,
            header_end + 10,
            payload_start + 3,
            payload_start + 70_000,
            good.len() - 5,
        ] {
            let mut b = good.clone();
            b[off] ^= 0x04;
            check(
                &b,
                &[
                    DecryptFailure::BadHeader,
                    DecryptFailure::BadMac,
                    DecryptFailure::NotForUs,
                    DecryptFailure::Damaged,
                ],
            );
        }
        // Sealed to someone else.
        fs::write(&s, &good).unwrap();
        let other = Identity::generate();
        match unseal_file(&s, &other) {
            Err(Error::Decrypt { kind, .. }) => assert_eq!(kind, DecryptFailure::NotForUs),
            r => panic!("{r:?}"),
        }
        // Not an age file at all.
        check(b"{\"type\":\"message\"}\n", &[DecryptFailure::BadHeader]);
    }

    #[test]
    fn unseal_resolves_a_crash_that_left_both_copies_and_refuses_differing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (p, body) = transcript(dir.path(), "b.jsonl", 10);
        let s = seal_file(&p, &id.to_public(), &old_opts()).unwrap().sealed;
        fs::write(&p, &body).unwrap();
        let u = unseal_file(&s, &id).unwrap();
        assert!(u.already_plain);
        assert!(!s.exists());
        let s = seal_file(&p, &id.to_public(), &old_opts()).unwrap().sealed;
        fs::write(&p, b"different\n").unwrap();
        assert!(matches!(unseal_file(&s, &id), Err(Error::Conflict { .. })));
        assert!(s.exists());
        assert_eq!(fs::read(&p).unwrap(), b"different\n");
    }

    #[test]
    fn streaming_helpers_round_trip_and_open_armored_input() {
        let id = Identity::generate();
        let mut w = encrypt_to(Vec::new(), &id.to_public()).unwrap();
        w.write_all(b"abc").unwrap();
        let ct = w.finish().unwrap();
        let mut out = String::new();
        decrypt_reader(&ct[..], &id)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "abc");
        let armored = age::encrypt_and_armor(&id.to_public(), b"armored").unwrap();
        let mut out = String::new();
        decrypt_reader(armored.as_bytes(), &id)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "armored");
        assert!(!format!("{:?}", decrypt_reader(&ct[..], &id).unwrap()).contains("abc"));
    }

    /// Only the plaintext, byte for byte, and nothing else (no sealed copy, no temp file).
    fn assert_untouched(dir: &Path, p: &Path, body: &[u8]) {
        assert_eq!(fs::read(p).unwrap(), body, "plaintext intact");
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "only the plaintext is left: {names:?}");
    }

    #[test]
    fn pipelined_verifier_catches_a_corrupted_ciphertext_and_keeps_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        // Large enough for the two-thread pipeline (> PIPELINE_MIN, ~40 age chunks).
        let (p, body) = transcript(dir.path(), "big.jsonl", 60_000);
        assert!(body.len() as u64 > 4 * PIPELINE_MIN);
        // A flip in the header, early in the payload, in the middle, in the last chunk.
        for at in [60u64, 400, body.len() as u64 / 2, body.len() as u64 + 150] {
            match stage_with(
                &p,
                &id.to_public(),
                &old_opts(),
                Some(Fault::Flip(at)),
                false,
            ) {
                Err(Error::Decrypt { path, kind }) => {
                    assert_eq!(path, sealed_path(&p));
                    assert!(
                        matches!(
                            kind,
                            DecryptFailure::BadMac
                                | DecryptFailure::Damaged
                                | DecryptFailure::BadHeader
                                | DecryptFailure::NotForUs
                        ),
                        "{at}: {kind:?}"
                    );
                }
                other => panic!("flip at {at}: {:?}", other.map(|s| s.new)),
            }
            assert_untouched(dir.path(), &p, &body);
        }
        // The same through the sequential path of small files.
        let small_dir = tempfile::tempdir().unwrap();
        let (q, small) = transcript(small_dir.path(), "small.jsonl", 100);
        assert!((small.len() as u64) < PIPELINE_MIN);
        assert!(matches!(
            stage_with(
                &q,
                &id.to_public(),
                &old_opts(),
                Some(Fault::Flip(300)),
                false
            ),
            Err(Error::Decrypt { .. })
        ));
        assert_untouched(small_dir.path(), &q, &small);
        // Untampered, the same file seals and opens.
        let s = seal_file(&p, &id.to_public(), &old_opts()).unwrap();
        assert_eq!(verify_sealed(&s.sealed, &id).unwrap().0, body.len() as u64);
    }

    #[test]
    fn a_write_failure_mid_pipeline_reports_the_write_and_keeps_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (p, body) = transcript(dir.path(), "w.jsonl", 60_000);
        match stage_with(
            &p,
            &id.to_public(),
            &old_opts(),
            Some(Fault::FailWrite(body.len() as u64 / 3)),
            false,
        ) {
            Err(Error::Fs(fsio::FsError::Io { op, path, source })) => {
                assert_eq!(op, "write");
                assert_eq!(path, sealed_path(&p));
                assert_eq!(
                    source.raw_os_error(),
                    Some(rustix::io::Errno::NOSPC.raw_os_error())
                );
            }
            other => panic!("{:?}", other.map(|s| s.new)),
        }
        assert_untouched(dir.path(), &p, &body);
    }

    #[test]
    fn verifier_refuses_a_plaintext_that_differs_from_what_was_encrypted() {
        use age_core::secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let (p, body) = transcript(dir.path(), "v.jsonl", 20_000);
        let len = body.len() as u64;
        let key = std::sync::OnceLock::new();
        let capture = KeepFileKey {
            inner: &id.to_public(),
            key: &key,
        };
        let mut ct = Vec::new();
        drop(encrypt_to_many(&mut ct, &[&capture]).unwrap());
        let hdr_len = ct.len();
        let nonce: [u8; 16] = ct[hdr_len - 16..].try_into().unwrap();
        let cipher = stream::payload_cipher(key.get().unwrap().expose_secret(), &nonce);
        stream::encrypt_file(&File::open(&p).unwrap(), len, &cipher, &mut ct, &mut |_| {
            Ok(())
        })
        .map_err(|_| ())
        .unwrap();
        let dest = dir.path().join("v.jsonl.age");
        let verify = |ct: &[u8]| {
            let f = File::open(&p).unwrap();
            let source = PlainSource::File {
                file: &f,
                pos: 0,
                buf: Vec::new(),
            };
            verify_copy(ct, source, &key, &cipher, &dest, hdr_len, len)
        };
        assert_eq!(verify(&ct).unwrap(), len);
        // The stock age reader agrees.
        let mut back = Vec::new();
        decrypt_reader_with(&ct[..], &[&id as &dyn age::Identity])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == body);
        // Trailing bytes, a cut at the end, a flipped tag: damage.
        let mut longer = ct.clone();
        longer.push(0);
        assert!(matches!(verify(&longer), Err(Error::Decrypt { .. })));
        assert!(matches!(
            verify(&ct[..ct.len() - 1]),
            Err(Error::Decrypt { .. })
        ));
        let mut flipped = ct.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(matches!(
            verify(&flipped),
            Err(Error::Decrypt {
                kind: DecryptFailure::Damaged,
                ..
            })
        ));
        // The plaintext changed in the first chunk, in a later one, then was cut short.
        for at in [100, body.len() / 2] {
            let mut changed = body.clone();
            changed[at] ^= 1;
            fs::write(&p, &changed).unwrap();
            assert!(
                matches!(verify(&ct), Err(Error::VerifyMismatch { .. })),
                "{at}"
            );
        }
        fs::write(&p, &body[..body.len() - 10]).unwrap();
        assert!(matches!(verify(&ct), Err(Error::VerifyMismatch { .. })));

        // The same against the plaintext a writer handed over (what seal does): buffers of
        // any size, not aligned with the chunks, every other one (with `reread`) to be read
        // again from the file instead.
        fs::write(&p, &body).unwrap();
        let handed = |plain: &[u8], piece: usize, reread: bool| {
            let h = Handoff::default();
            for (k, part) in plain.chunks(piece).enumerate() {
                let piece = if reread && k % 2 == 1 {
                    Piece::Reread {
                        at: (k * piece) as u64,
                        len: part.len(),
                    }
                } else {
                    Piece::Bytes(part.to_vec())
                };
                h.push_plain(piece).unwrap();
            }
            h.end();
            let f = File::open(&p).unwrap();
            let source = PlainSource::handed(&h, &f);
            verify_copy(&ct[..], source, &key, &cipher, &dest, hdr_len, len)
        };
        for piece in [stream::RUN as usize * stream::CHUNK, 100_000, 7] {
            for reread in [false, true] {
                assert_eq!(handed(&body, piece, reread).unwrap(), len, "{piece}");
                for at in [0, 100, body.len() / 2, body.len() - 1] {
                    // The writer read (and handed over, or left in the file) other bytes
                    // than those the ciphertext holds.
                    let mut changed = body.clone();
                    changed[at] ^= 1;
                    fs::write(&p, &changed).unwrap();
                    assert!(
                        matches!(
                            handed(&changed, piece, reread),
                            Err(Error::VerifyMismatch { .. })
                        ),
                        "{piece} {at}"
                    );
                }
                fs::write(&p, &body).unwrap();
                assert!(matches!(
                    handed(&body[..body.len() - 10], piece, reread),
                    Err(Error::VerifyMismatch { .. })
                ));
            }
        }
        // A piece to read again that changed in the file since it was encrypted: mismatch.
        let mut changed = body.clone();
        changed[150_000] ^= 1;
        fs::write(&p, &changed).unwrap();
        assert!(matches!(
            handed(&body, 100_000, true),
            Err(Error::VerifyMismatch { .. })
        ));
        // A writer that failed stops the verifier.
        let h = Handoff::default();
        h.fail(Side::Writer);
        let f = File::open(&p).unwrap();
        let source = PlainSource::handed(&h, &f);
        assert!(verify_copy(&ct[..], source, &key, &cipher, &dest, hdr_len, len).is_err());
    }

    /// Builds `n` small transcripts in `dir`; returns their paths and bodies.
    fn many(dir: &Path, n: usize) -> (Vec<PathBuf>, Vec<Vec<u8>>) {
        (0..n)
            .map(|i| transcript(dir, &format!("m{i:03}.jsonl"), 1 + i % 9))
            .unzip()
    }

    /// Every file either sealed (and decrypting to its body, plaintext gone) or plain and
    /// unchanged with no sealed copy; no temp file anywhere.
    fn assert_whole(dir: &Path, plains: &[PathBuf], bodies: &[Vec<u8>], id: &Identity) {
        for (p, body) in plains.iter().zip(bodies) {
            let s = sealed_path(p);
            match (p.exists(), s.exists()) {
                (true, false) => assert_eq!(&fs::read(p).unwrap(), body),
                (false, true) => {
                    let mut out = Vec::new();
                    open_sealed(&s, id).unwrap().read_to_end(&mut out).unwrap();
                    assert_eq!(&out, body);
                }
                other => panic!("{}: plain/sealed = {other:?}", p.display()),
            }
        }
        let temps: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".mvtmp-"))
            .collect();
        assert!(temps.is_empty(), "temp files left: {temps:?}");
    }

    /// Every way a batch is made durable, the adaptive one both ways whatever the system's
    /// dirty data.
    fn sync_strategies() -> [fsio::BatchSync; 4] {
        [
            fsio::BatchSync::Syncfs,
            fsio::BatchSync::Fsync { threads: 3 },
            fsio::BatchSync::Adaptive {
                threads: 3,
                foreign: u64::MAX,
            },
            fsio::BatchSync::Adaptive {
                threads: 3,
                foreign: 0,
            },
        ]
    }

    #[test]
    fn an_error_at_any_batch_step_keeps_every_plaintext_and_leaves_no_sealed_copy() {
        let id = Identity::generate();
        for strategy in sync_strategies() {
            for fail_at in [
                BatchStep::Sync,
                BatchStep::Link,
                BatchStep::SyncDir,
                BatchStep::RemovePlain,
            ] {
                let dir = tempfile::tempdir().unwrap();
                let (plains, bodies) = many(dir.path(), 40);
                let seen = std::sync::Mutex::new(Vec::new());
                let hook = |step: BatchStep, d: &Path| {
                    assert_eq!(d, dir.path());
                    seen.lock().unwrap().push(step);
                    // At the failing step the temp files exist (written, verified), and no
                    // plaintext has gone.
                    assert!(plains.iter().all(|p| p.exists()));
                    if step == fail_at {
                        Err(io::Error::from_raw_os_error(
                            rustix::io::Errno::IO.raw_os_error(),
                        ))
                    } else {
                        Ok(())
                    }
                };
                let cfg = BatchConfig {
                    workers: 2,
                    batch: 16,
                    sync: strategy,
                    hook: Some(&hook),
                };
                let mut n = 0;
                seal_files_with(&plains, &id.to_public(), &old_opts(), &cfg, &mut |_, r| {
                    n += 1;
                    match r {
                        Err(Error::Fs(fsio::FsError::Io { path, source, .. })) => {
                            assert_eq!(path, dir.path());
                            assert_eq!(source.raw_os_error(), None); // re-rendered per file
                            assert_eq!(source.kind(), io::Error::from_raw_os_error(5).kind());
                        }
                        other => panic!("{fail_at:?}: {:?}", other.map(|s| s.sealed)),
                    }
                });
                assert_eq!(n, plains.len(), "every file reported");
                assert_eq!(seen.lock().unwrap().last(), Some(&fail_at));
                assert_whole(dir.path(), &plains, &bodies, &id);
                assert!(
                    plains
                        .iter()
                        .all(|p| p.exists() && !sealed_path(p).exists()),
                    "{fail_at:?}: all plain, nothing sealed"
                );
            }
        }
    }

    #[test]
    fn small_files_are_removed_only_after_the_last_batch_of_their_directory_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (plains, bodies) = many(dir.path(), 40);
        // Before each batch step, every plaintext is still there: the removals of earlier
        // batches are put off until the last batch is durable (small files).
        let steps = std::sync::Mutex::new(0);
        let hook = |_: BatchStep, _: &Path| {
            *steps.lock().unwrap() += 1;
            assert!(plains.iter().all(|p| p.exists()), "a plaintext went early");
            Ok(())
        };
        let cfg = BatchConfig {
            workers: 2,
            batch: 8,
            sync: fsio::BatchSync::Fsync { threads: 2 },
            hook: Some(&hook),
        };
        let mut n = 0;
        seal_files_with(&plains, &id.to_public(), &old_opts(), &cfg, &mut |_, r| {
            r.unwrap();
            n += 1;
        });
        assert_eq!(n, 40);
        assert_eq!(
            *steps.lock().unwrap(),
            5 * 4,
            "4 steps in each of 5 batches"
        );
        assert!(
            plains
                .iter()
                .all(|p| !p.exists() && sealed_path(p).exists())
        );
        assert_whole(dir.path(), &plains, &bodies, &id);
    }

    #[test]
    fn a_failed_link_fails_only_that_file_and_the_batch_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (plains, bodies) = many(dir.path(), 30);
        // A sealed copy appears for file 7 between staging and linking: it must not be
        // overwritten, that plaintext stays, and the others seal.
        let intruder = sealed_path(&plains[7]);
        let hook = |step: BatchStep, _: &Path| {
            if step == BatchStep::Link {
                fs::write(&intruder, b"someone else's").unwrap();
            }
            Ok(())
        };
        let cfg = BatchConfig {
            workers: 2,
            batch: 256,
            sync: fsio::BatchSync::Syncfs,
            hook: Some(&hook),
        };
        let mut failed = Vec::new();
        seal_files_with(&plains, &id.to_public(), &old_opts(), &cfg, &mut |i, r| {
            if r.is_err() {
                failed.push(i);
                assert!(
                    matches!(r, Err(Error::Fs(fsio::FsError::Exists(_)))),
                    "{r:?}"
                );
            }
        });
        assert_eq!(failed, vec![7]);
        assert_eq!(fs::read(&intruder).unwrap(), b"someone else's");
        assert_eq!(fs::read(&plains[7]).unwrap(), bodies[7]);
        fs::remove_file(&intruder).unwrap();
        assert_whole(dir.path(), &plains, &bodies, &id);
        assert_eq!(plains.iter().filter(|p| p.exists()).count(), 1);
    }

    #[test]
    fn seal_files_seals_a_batch_across_directories_and_reports_each_file() {
        let root = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let mut plains = Vec::new();
        let mut bodies = Vec::new();
        for d in ["a", "b"] {
            fs::create_dir(root.path().join(d)).unwrap();
            for i in 0..300 {
                let (p, body) = transcript(&root.path().join(d), &format!("s{i}.jsonl"), 1 + i % 7);
                plains.push(p);
                bodies.push(body);
            }
        }
        // An empty file, one that must fail (it already has a sealed copy) and a large one.
        let (empty, _) = transcript(&root.path().join("a"), "empty.jsonl", 0);
        plains.push(empty);
        bodies.push(Vec::new());
        fs::write(sealed_path(&plains[5]), b"x").unwrap();
        let (big, big_body) = transcript(&root.path().join("b"), "big.jsonl", 30_000);
        plains.push(big);
        bodies.push(big_body);
        let mut results: Vec<Option<Result<Sealed>>> = plains.iter().map(|_| None).collect();
        seal_files(&plains, &id.to_public(), &old_opts(), 4, &mut |i, r| {
            assert!(results[i].replace(r).is_none(), "one result per file");
        });
        for (i, (r, p)) in results.into_iter().zip(&plains).enumerate() {
            let r = r.expect("every file reported");
            if i == 5 {
                assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
                assert!(p.exists());
                continue;
            }
            let s = r.unwrap();
            assert_eq!(&s.plain, p);
            assert!(!p.exists());
            let mut out = Vec::new();
            open_sealed(&s.sealed, &id)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, bodies[i]);
        }
        for d in ["a", "b"] {
            assert!(
                fs::read_dir(root.path().join(d)).unwrap().all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".mvtmp-")),
                "no temp files"
            );
        }
    }

    /// Seals `plains` one by one (setup for the unseal batch tests); returns the sealed paths.
    fn seal_all(plains: &[PathBuf], id: &Identity) -> Vec<PathBuf> {
        plains
            .iter()
            .map(|p| seal_file(p, &id.to_public(), &old_opts()).unwrap().sealed)
            .collect()
    }

    #[test]
    fn an_error_at_any_unseal_batch_step_keeps_every_sealed_file_and_leaves_no_plaintext() {
        let id = Identity::generate();
        for strategy in sync_strategies() {
            for fail_at in [
                BatchStep::Sync,
                BatchStep::Link,
                BatchStep::SyncDir,
                BatchStep::RemovePlain,
            ] {
                let dir = tempfile::tempdir().unwrap();
                let (plains, bodies) = many(dir.path(), 40);
                let sealed = seal_all(&plains, &id);
                let hook = |step: BatchStep, _: &Path| {
                    // No sealed file has gone before the last step.
                    assert!(sealed.iter().all(|s| s.exists()));
                    if step == fail_at {
                        Err(io::Error::from_raw_os_error(
                            rustix::io::Errno::IO.raw_os_error(),
                        ))
                    } else {
                        Ok(())
                    }
                };
                let cfg = BatchConfig {
                    workers: 2,
                    batch: 16,
                    sync: strategy,
                    hook: Some(&hook),
                };
                let mut n = 0;
                unseal_files_with(&sealed, &id, &cfg, &mut |_, r| {
                    n += 1;
                    assert!(matches!(r, Err(Error::Fs(_))), "{fail_at:?}: {r:?}");
                });
                assert_eq!(n, sealed.len(), "every file reported");
                assert_whole(dir.path(), &plains, &bodies, &id);
                assert!(
                    plains
                        .iter()
                        .all(|p| !p.exists() && sealed_path(p).exists()),
                    "{fail_at:?}: all sealed, no plaintext"
                );
            }
        }
    }

    #[test]
    fn unseal_files_restores_a_batch_and_resolves_leftover_copies() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let (plains, bodies) = many(dir.path(), 70);
        for (k, p) in plains.iter().enumerate() {
            fs::set_permissions(p, fs::Permissions::from_mode(0o600 | (k as u32 % 2) << 5))
                .unwrap();
        }
        let (big, big_body) = transcript(dir.path(), "big.jsonl", 30_000);
        let (plains, bodies): (Vec<_>, Vec<_>) = plains
            .into_iter()
            .zip(bodies)
            .chain([(big, big_body)])
            .unzip();
        let sealed = seal_all(&plains, &id);
        // A crash left file 3 plain beside its sealed copy (identical); file 4 differs.
        fs::write(&plains[3], &bodies[3]).unwrap();
        fs::write(&plains[4], b"something else\n").unwrap();
        let cfg = BatchConfig {
            batch: 32,
            ..BatchConfig::default()
        };
        let mut results: Vec<Option<Result<Unsealed>>> = sealed.iter().map(|_| None).collect();
        unseal_files_with(&sealed, &id, &cfg, &mut |i, r| {
            assert!(results[i].replace(r).is_none(), "one result per file");
        });
        for (i, r) in results.into_iter().enumerate() {
            let r = r.expect("every file reported");
            if i == 4 {
                assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
                assert!(sealed[4].exists());
                assert_eq!(fs::read(&plains[4]).unwrap(), b"something else\n");
                continue;
            }
            let u = r.unwrap();
            assert_eq!(u.already_plain, i == 3, "{i}");
            assert_eq!(u.plain, plains[i]);
            assert_eq!(u.bytes, bodies[i].len() as u64);
            assert!(!sealed[i].exists());
            assert_eq!(fs::read(&plains[i]).unwrap(), bodies[i]);
            if i < 70 && i != 3 {
                let mode = fs::metadata(&plains[i]).unwrap().mode() & 0o777;
                assert_eq!(mode, 0o600 | (i as u32 % 2) << 5, "{i}: mode restored");
            }
        }
        let temps = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".mvtmp-")
            })
            .count();
        assert_eq!(temps, 0, "no temp files");
    }

    /// The age crate's own streaming reader on `bytes`: the plaintext, or how it fails.
    fn age_outcome(bytes: &[u8], id: &Identity) -> std::result::Result<Vec<u8>, DecryptFailure> {
        let mut out = Vec::new();
        decrypt_reader(bytes, id)?
            .read_to_end(&mut out)
            .map_err(|e| DecryptFailure::from_io(&e))?;
        Ok(out)
    }

    /// `unseal` of `bytes` as `x.jsonl.age` in `dir` on `threads` threads: the plaintext it
    /// restored, or how it failed — then with no plaintext, no temp file and the sealed file
    /// unchanged. Leaves `dir` empty.
    fn unseal_outcome(
        dir: &Path,
        bytes: &[u8],
        id: &Identity,
        threads: usize,
    ) -> std::result::Result<Vec<u8>, DecryptFailure> {
        let s = dir.join("x.jsonl.age");
        let p = dir.join("x.jsonl");
        fs::write(&s, bytes).unwrap();
        let r = stage_unseal(&s, &[id.as_age() as &dyn age::Identity], false, threads);
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let out = match r {
            Ok(st) => {
                assert!(matches!(st.temp, Temp::Linked));
                assert_eq!(names.len(), 2, "{names:?}");
                let body = fs::read(&p).unwrap();
                assert_eq!(st.bytes, body.len() as u64);
                fs::remove_file(&p).unwrap();
                Ok(body)
            }
            Err(Error::Decrypt { path, kind }) => {
                assert_eq!(path, s, "the error names the sealed file");
                assert_eq!(names, ["x.jsonl.age"], "nothing written");
                assert_eq!(fs::read(&s).unwrap(), bytes, "sealed file unchanged");
                Err(kind)
            }
            Err(e) => panic!("{e:?}"),
        };
        fs::remove_file(&s).unwrap();
        out
    }

    /// An age file to `id` whose payload is `chunks` as given (plaintext, index in the nonce,
    /// last-chunk flag), in that order: well-formed or not.
    fn crafted(id: &Identity, chunks: &[(Vec<u8>, u64, bool)]) -> Vec<u8> {
        use age_core::secrecy::ExposeSecret;
        use chacha20poly1305::KeyInit;
        use chacha20poly1305::aead::AeadInPlace;
        let key = std::sync::OnceLock::new();
        let capture = KeepFileKey {
            inner: &id.to_public(),
            key: &key,
        };
        let mut out = Vec::new();
        drop(encrypt_to_many(&mut out, &[&capture]).unwrap());
        let nonce: [u8; 16] = out[out.len() - 16..].try_into().unwrap();
        // The pure-Rust cipher the age crate uses, not seal's: an independent implementation.
        let payload_key =
            age_core::primitives::hkdf(&nonce, b"payload", key.get().unwrap().expose_secret());
        let cipher = chacha20poly1305::ChaCha20Poly1305::new(payload_key.as_ref().into());
        for (plain, idx, last) in chunks {
            let mut data = plain.clone();
            let nonce = stream::chunk_nonce_bytes(*idx, *last);
            let tag = cipher
                .encrypt_in_place_detached(&nonce.into(), b"", &mut data)
                .unwrap();
            out.extend_from_slice(&data);
            out.extend_from_slice(&tag);
        }
        out
    }

    /// The multi-threaded unseal agrees with the age crate's reader — same plaintext, or the
    /// same kind of failure with nothing written — on every payload layout and on truncated,
    /// extended, bit-flipped, reordered and crafted payloads, on 1 thread and on several.
    #[test]
    fn parallel_unseal_agrees_with_the_age_crate_on_every_layout_and_damage() {
        use stream::{CHUNK, ENC_CHUNK, RUN};
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate();
        let body_of = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect()
        };
        let run = RUN as usize;
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for len in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            (run + 1) * CHUNK,
            (run + 1) * CHUNK + 1,
            (2 * run + 1) * CHUNK,
            (run + 4) * CHUNK + 123,
        ] {
            // Written by the age crate's own encryptor, not by this module.
            let mut w = encrypt_to(Vec::new(), &id.to_public()).unwrap();
            w.write_all(&body_of(len)).unwrap();
            cases.push((format!("len {len}"), w.finish().unwrap()));
        }
        let good = cases.last().unwrap().1.clone();
        let total = run + 5;
        let start = good.len() - ((run + 4) * CHUNK + 123) - total * 16;
        let chunk_at = |k: usize| start + k * ENC_CHUNK;
        for k in [0, 1, 2, run, run + 1, total - 1, total] {
            for d in [0isize, -1, 1] {
                let cut = (chunk_at(k) as isize + d).clamp(0, good.len() as isize) as usize;
                cases.push((format!("cut at {cut}"), good[..cut].to_vec()));
            }
        }
        for k in [
            0,
            1,
            2,
            run,
            run + 1,
            run + 2,
            2 * run + 1,
            total - 2,
            total - 1,
        ] {
            for within in [5, ENC_CHUNK - 3] {
                let at = (chunk_at(k) + within).min(good.len() - 1);
                let mut b = good.clone();
                b[at] ^= 0x20;
                cases.push((format!("flip at {at}"), b));
            }
        }
        for (a, b) in [(0, 1), (2, 3), (run, run + 1), (total - 3, total - 2)] {
            let mut v = good.clone();
            let (x, y) = (chunk_at(a), chunk_at(b));
            let tmp = v[x..x + ENC_CHUNK].to_vec();
            v.copy_within(y..y + ENC_CHUNK, x);
            v[y..y + ENC_CHUNK].copy_from_slice(&tmp);
            cases.push((format!("swap {a} {b}"), v));
        }
        let mut dropped = good[..chunk_at(5)].to_vec();
        dropped.extend_from_slice(&good[chunk_at(6)..]);
        cases.push(("drop chunk 5".into(), dropped));
        let mut dup = good[..chunk_at(6)].to_vec();
        dup.extend_from_slice(&good[chunk_at(5)..]);
        cases.push(("duplicate chunk 5".into(), dup));
        for extra in [&b"x"[..], &[0u8; 16], &good[chunk_at(total - 1)..]] {
            let mut v = good.clone();
            v.extend_from_slice(extra);
            cases.push((format!("append {}", extra.len()), v));
        }
        // Crafted with the file key: a final flag too early, an empty final chunk after full
        // ones, a missing final flag, a short chunk in the middle.
        let full = || vec![7u8; CHUNK];
        let n = run + 3;
        let mut chunks: Vec<(Vec<u8>, u64, bool)> =
            (0..n as u64).map(|i| (full(), i, false)).collect();
        chunks.last_mut().unwrap().2 = true;
        cases.push(("crafted well-formed".into(), crafted(&id, &chunks)));
        for early in [0, 1, run, n - 2] {
            let mut c = chunks.clone();
            c[early].2 = true;
            cases.push((format!("final flag on {early}"), crafted(&id, &c)));
        }
        let mut c = chunks.clone();
        c.last_mut().unwrap().2 = false;
        c.push((Vec::new(), n as u64, true));
        cases.push(("empty final chunk".into(), crafted(&id, &c)));
        let mut c = chunks.clone();
        c.last_mut().unwrap().2 = false;
        cases.push(("no final flag".into(), crafted(&id, &c)));
        let mut c = chunks.clone();
        c[run + 1].0.truncate(100);
        cases.push(("short middle chunk".into(), crafted(&id, &c)));
        let mut c = chunks.clone();
        c[3].1 = 4;
        cases.push(("wrong index".into(), crafted(&id, &c)));

        let mut failures = 0;
        for (i, (name, bytes)) in cases.iter().enumerate() {
            let want = age_outcome(bytes, &id);
            failures += usize::from(want.is_err());
            for threads in [1, 3] {
                let got = unseal_outcome(dir.path(), bytes, &id, threads);
                assert!(
                    got == want,
                    "{name}, {threads} threads: {:?} vs age {:?}",
                    got.as_ref().map(Vec::len),
                    want.as_ref().map(Vec::len)
                );
            }
            // And the batch path (the default thread count), for every fourth case.
            if i % 4 != 0 {
                continue;
            }
            let s = dir.path().join("x.jsonl.age");
            fs::write(&s, bytes).unwrap();
            let mut seen = 0;
            unseal_files_with(
                std::slice::from_ref(&s),
                &id,
                &BatchConfig::default(),
                &mut |_, r| {
                    seen += 1;
                    match (&r, &want) {
                        (Ok(u), Ok(body)) => assert_eq!(fs::read(&u.plain).unwrap(), *body),
                        (Err(Error::Decrypt { kind, .. }), Err(k)) => assert_eq!(kind, k, "{name}"),
                        _ => panic!("{name}: {:?}", r.map(|u| u.bytes)),
                    }
                },
            );
            assert_eq!(seen, 1);
            for e in fs::read_dir(dir.path()).unwrap() {
                fs::remove_file(e.unwrap().path()).unwrap();
            }
        }
        assert!(failures > 30 && failures < cases.len() - 9, "{failures}");
    }

    #[test]
    fn names_map_both_ways() {
        let p = Path::new("/a/s.jsonl.deleted.2026.zst");
        assert_eq!(sealed_path(p), Path::new("/a/s.jsonl.deleted.2026.zst.age"));
        assert_eq!(plain_path(&sealed_path(p)).unwrap(), p);
        assert!(is_sealed_path(Path::new("x.jsonl.age")));
        assert!(!is_sealed_path(Path::new(".age")));
        assert!(plain_path(Path::new("x.jsonl")).is_none());
    }
}
