//! Decrypting a binary age file into a file, its payload chunks authenticated and decrypted
//! in place on several threads (`unseal`).
//!
//! The age crate parses the header, unwraps the file key with the caller's identities (a
//! capturing wrapper, [`CaptureFileKey`], keeps a copy of that key for this call only),
//! authenticates the header MAC and decrypts the first chunk from a prefix of the file that
//! this module cut at the end of the header. Its plaintext is compared with this module's own
//! decryption of the same chunk, so a wrong cut, nonce or key derivation cannot go unnoticed.
//! The other chunks — independent in age's STREAM construction: each one's nonce is its index
//! and a last-chunk flag — are read in runs of [`RUN`] chunks with positioned reads,
//! authenticated and decrypted in place, and written at their plaintext offsets with one
//! `pwritev` per run, by every thread at once. Memory is one run buffer per thread, whatever
//! the file size.
//!
//! Failures are classified exactly as the age crate's own reader classifies them reading the
//! file front to back: a run that fails stops the threads from taking later runs, the runs
//! before it are finished, and the failure of the earliest chunk is reported. The caller keeps
//! the output only when this returns `Ok`: every chunk authenticated, the final-flagged one
//! last, and nothing after it.

use std::fs::File;
use std::io::{self, IoSlice, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::stream::{self, CHUNK, ENC_CHUNK, RUN, TAG};
use crate::error::DecryptFailure;

/// Why [`decrypt_file`] failed.
#[derive(Debug)]
pub(super) enum OpenError {
    /// The input is not a valid age file for these identities, or reading it failed.
    Decrypt(DecryptFailure),
    /// Writing the plaintext failed.
    Write(io::Error),
}

/// The longest header [`decrypt_file`] looks for; a longer one (hundreds of recipients) is
/// left to the age crate's streaming reader.
const HEADER_MAX: usize = 16 * 1024;

/// Plaintext written between two early-writeback requests ([`crate::fsio::start_writeback`]).
const WRITEBACK_STEP: u64 = 8 << 20;

/// The length of a binary age header at the start of `head` (version line through the MAC
/// line): the end of the first line that starts with `---`, which only the MAC line can (every
/// other header line is the version line, a `-> ` stanza line or base64). `None` if `head`
/// does not start like a binary age file or holds no such line.
fn header_len(head: &[u8]) -> Option<usize> {
    if !head.starts_with(b"age-encryption.org/") {
        return None;
    }
    let mac = head.windows(4).position(|w| w == b"\n---")? + 1;
    let eol = head[mac..].iter().position(|&b| b == b'\n')?;
    Some(mac + eol + 1)
}

/// An identity that passes everything to `inner` and keeps a copy of the file key it unwraps
/// (the age crate then authenticates the header MAC with that key).
struct CaptureFileKey<'a> {
    inner: &'a dyn age::Identity,
    key: &'a std::sync::OnceLock<age_core::format::FileKey>,
}

impl CaptureFileKey<'_> {
    fn keep(
        &self,
        r: Option<Result<age_core::format::FileKey, age::DecryptError>>,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        use age_core::secrecy::ExposeSecret;
        if let Some(Ok(k)) = &r {
            let _ = self.key.set(age_core::format::FileKey::init_with_mut(|c| {
                c.copy_from_slice(k.expose_secret())
            }));
        }
        r
    }
}

impl age::Identity for CaptureFileKey<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        self.keep(self.inner.unwrap_stanza(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        self.keep(self.inner.unwrap_stanzas(stanzas))
    }
}

/// The payload layout of a file, from its size.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// File offset of chunk 0's ciphertext.
    start: u64,
    /// Chunks in the file (the last one possibly short).
    total: u64,
    /// Ciphertext bytes of the last chunk (1..=ENC_CHUNK).
    last_ct: usize,
}

impl Layout {
    fn ct_len(&self, idx: u64) -> usize {
        if idx + 1 == self.total {
            self.last_ct
        } else {
            ENC_CHUNK
        }
    }
}

/// Decrypts the binary age file `src` (`size` bytes) with any of `identities` into `out`
/// (written at offsets from 0), on up to `threads` threads; returns the plaintext length, or
/// `None` when `src` is not a binary age file with a header this module finds (armored): the
/// caller then uses the age crate's streaming reader. `out` holds plaintext only for an `Ok`
/// result; on any error it may hold part of it and must be discarded.
pub(super) fn decrypt_file(
    src: &File,
    size: u64,
    identities: &[&dyn age::Identity],
    out: &File,
    threads: usize,
) -> Result<Option<u64>, OpenError> {
    use age_core::secrecy::ExposeSecret;
    let read_err = |e: &io::Error| OpenError::Decrypt(DecryptFailure::from_io(e));
    // 1. The header: found here, parsed and authenticated by the age crate.
    let mut head = vec![0u8; size.min(HEADER_MAX as u64) as usize];
    src.read_exact_at(&mut head, 0).map_err(|e| read_err(&e))?;
    let Some(hdr) = header_len(&head) else {
        return Ok(None);
    };
    let start = hdr as u64 + 16;
    let payload = size.saturating_sub(start);
    let layout = Layout {
        start,
        total: payload.div_ceil(ENC_CHUNK as u64).max(1),
        last_ct: match payload % ENC_CHUNK as u64 {
            0 if payload > 0 => ENC_CHUNK,
            r => r as usize,
        },
    };
    // The prefix the age crate sees: the header, the nonce and chunk 0, exactly the bytes its
    // streaming reader would use for them (so every header and chunk-0 failure is its own).
    let first_ct = payload.min(ENC_CHUNK as u64) as usize;
    let mut prefix = head;
    prefix.resize((start.min(size) as usize) + first_ct, 0);
    if prefix.len() > HEADER_MAX {
        src.read_exact_at(&mut prefix[HEADER_MAX..], HEADER_MAX as u64)
            .map_err(|e| read_err(&e))?;
    }
    let file_key = std::sync::OnceLock::new();
    let captures: Vec<CaptureFileKey<'_>> = identities
        .iter()
        .map(|&inner| CaptureFileKey {
            inner,
            key: &file_key,
        })
        .collect();
    let age_err = |e: age::DecryptError| OpenError::Decrypt(DecryptFailure::from_age(&e));
    let dec = age::Decryptor::new_buffered(&prefix[..]).map_err(age_err)?;
    let mut r = dec
        .decrypt(captures.iter().map(|c| c as &dyn age::Identity))
        .map_err(age_err)?;
    let mut plain0 = Vec::with_capacity(first_ct.saturating_sub(TAG));
    if layout.total == 1 {
        // Chunk 0 is the last one: reading to the end authenticates its final flag.
        r.read_to_end(&mut plain0).map_err(|e| read_err(&e))?;
    } else {
        plain0.resize(CHUNK, 0);
        r.read_exact(&mut plain0).map_err(|e| read_err(&e))?;
    }
    drop(r);
    let (Some(key), Ok(nonce)) = (file_key.get(), <[u8; 16]>::try_from(&prefix[hdr..hdr + 16]))
    else {
        // The age crate decrypted without one of our identities unwrapping the key: cannot
        // happen; refuse rather than guess.
        return Err(OpenError::Decrypt(DecryptFailure::BadHeader));
    };
    let cipher = stream::payload_cipher(key.expose_secret(), &nonce);
    drop(captures);
    drop(file_key);
    // Our own decryption of chunk 0 must agree with the age crate's, as a non-final chunk
    // when more follow (the age crate also accepts a full final-flagged chunk there).
    {
        let ct = &mut prefix[hdr + 16..];
        if ct.len() < TAG {
            return Err(OpenError::Decrypt(DecryptFailure::Damaged));
        }
        let data = cipher
            .open(0, layout.total == 1, ct)
            .map_err(|e| read_err(&e))?;
        if *data != plain0[..] {
            return Err(OpenError::Decrypt(DecryptFailure::Damaged));
        }
    }
    out.write_all_at(&plain0, 0).map_err(OpenError::Write)?;
    let mut len = plain0.len() as u64;
    drop(prefix);
    drop(plain0);

    // 2. Chunks 1.. in runs, on every thread.
    if layout.total > 1 {
        len += decrypt_runs(src, out, &cipher, layout, threads)?;
    }
    // 3. Nothing after the final chunk (the file may have grown since it was measured).
    match src.read_at(&mut [0u8; 1], size) {
        Ok(0) => Ok(Some(len)),
        Ok(_) => Err(OpenError::Decrypt(DecryptFailure::Damaged)),
        Err(e) => Err(read_err(&e)),
    }
}

/// Decrypts chunks `1..layout.total` of `src` into `out` on up to `threads` threads (this one
/// included; helpers that cannot be spawned are simply missing); returns their plaintext
/// length.
fn decrypt_runs(
    src: &File,
    out: &File,
    cipher: &stream::PayloadCipher,
    layout: Layout,
    threads: usize,
) -> Result<u64, OpenError> {
    let runs = (layout.total - 1).div_ceil(RUN);
    let next = AtomicU64::new(0);
    // The earliest run that failed: later ones are not started.
    let stop = AtomicU64::new(u64::MAX);
    let failure: std::sync::Mutex<Option<(u64, OpenError)>> = std::sync::Mutex::new(None);
    let work = || {
        let mut buf = vec![0u8; (RUN as usize * ENC_CHUNK).min(layout.total as usize * ENC_CHUNK)];
        let mut plain = 0u64;
        loop {
            let run = next.fetch_add(1, Ordering::Relaxed);
            if run >= runs || run > stop.load(Ordering::Acquire) {
                break;
            }
            match decrypt_run(src, out, cipher, layout, run, &mut buf) {
                Ok(n) => plain += n,
                Err(e) => {
                    stop.fetch_min(run, Ordering::AcqRel);
                    let mut f = failure
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if f.as_ref().is_none_or(|(r, _)| run < *r) {
                        *f = Some((run, e));
                    }
                    break;
                }
            }
        }
        plain
    };
    let helpers = threads.clamp(1, runs.min(64) as usize) - 1;
    let plain: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mut n = work();
        for h in handles {
            n += h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
        n
    });
    match failure
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some((_, e)) => Err(e),
        None => Ok(plain),
    }
}

/// Reads run `run` (chunks `1 + run * RUN ..`) into `buf`, authenticates and decrypts each
/// chunk in place and writes their plaintext at its offset in `out`; returns its length.
fn decrypt_run(
    src: &File,
    out: &File,
    cipher: &stream::PayloadCipher,
    layout: Layout,
    run: u64,
    buf: &mut [u8],
) -> Result<u64, OpenError> {
    let read_err = |e: &io::Error| OpenError::Decrypt(DecryptFailure::from_io(e));
    let damaged = OpenError::Decrypt(DecryptFailure::Damaged);
    let first = 1 + run * RUN;
    let end = (first + RUN).min(layout.total);
    let ct_len: usize = (first..end).map(|i| layout.ct_len(i)).sum();
    let at = layout.start + first * ENC_CHUNK as u64;
    src.read_exact_at(&mut buf[..ct_len], at)
        .map_err(|e| read_err(&e))?;
    let mut slices: [&[u8]; RUN as usize] = [&[]; RUN as usize];
    let mut rest = &mut buf[..ct_len];
    let mut plain = 0usize;
    for (k, i) in (first..end).enumerate() {
        let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(layout.ct_len(i));
        rest = tail;
        if chunk.len() < TAG {
            return Err(damaged);
        }
        let last = i + 1 == layout.total;
        // A full last chunk that fails as the final one is tried again as a non-final one,
        // from a copy: a failed open leaves the chunk unspecified.
        let copy = (last && chunk.len() == ENC_CHUNK).then(|| chunk.to_vec());
        let data = match cipher.open(i, last, chunk) {
            Ok(data) => data,
            Err(e) if !last => return Err(read_err(&e)),
            Err(_) => {
                // As the age crate's reader: a full chunk that authenticates only as a
                // non-final one means the file ends before its final chunk.
                let truncated = copy.is_some_and(|mut c| cipher.open(i, false, &mut c).is_ok());
                return Err(if truncated {
                    read_err(&io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "age file is truncated",
                    ))
                } else {
                    damaged
                });
            }
        };
        // Only an empty file may end in an empty chunk.
        if last && data.is_empty() {
            return Err(damaged);
        }
        plain += data.len();
        slices[k] = data;
    }
    write_all_vectored_at(
        out,
        &mut slices[..(end - first) as usize],
        first * CHUNK as u64,
    )
    .map_err(OpenError::Write)?;
    let (from, to) = (first * CHUNK as u64, first * CHUNK as u64 + plain as u64);
    if to / WRITEBACK_STEP > from / WRITEBACK_STEP {
        // Crossed a step boundary: ask for the step before the one just finished (written by
        // now, whichever thread wrote it), so the final fsync has little left to do.
        let boundary = to / WRITEBACK_STEP * WRITEBACK_STEP;
        if let Some(begin) = boundary.checked_sub(2 * WRITEBACK_STEP) {
            crate::fsio::start_writeback(out, begin, WRITEBACK_STEP);
        }
    }
    Ok(plain as u64)
}

/// Writes every byte of `bufs`, in order, at offset `at` of `out` (`pwritev`, repeated after
/// a short write).
fn write_all_vectored_at(out: &File, bufs: &mut [&[u8]], mut at: u64) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match rustix::io::pwritev(out, slices, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                at += n as u64;
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_ends_after_the_first_line_starting_with_three_dashes() {
        let h = b"age-encryption.org/v1\n-> X25519 abc---\nQUJD\n--- bWFj\nNONCE";
        assert_eq!(header_len(h), Some(h.len() - 5));
        assert_eq!(header_len(b"age-encryption.org/v1\n-> X25519 a\n"), None);
        assert_eq!(header_len(b"-----BEGIN AGE ENCRYPTED FILE-----\n"), None);
        assert_eq!(header_len(b"age-encryption.org/v1\n--- mac"), None);
    }
}
