//! The age v1 STREAM payload (C2SP `age.md`), encrypted and decrypted in place.
//!
//! The age crate's `StreamWriter` copies every 64 KiB chunk into a buffer of its own and
//! allocates a fresh one for each ciphertext chunk; seal instead reads the plaintext straight
//! into the slot its ciphertext will occupy, encrypts it there and writes a run of chunks with
//! one call. The header and the payload nonce still come from the age crate, and the age crate
//! itself authenticates the header and decrypts the first chunk of every sealed file (see
//! `verify_copy` in the parent module), so a divergence from the format cannot go unnoticed;
//! the tests check every chunk-boundary size against the age crate and the `age` CLI.
//!
//! Format: `payload_key = HKDF-SHA-256(ikm = file key, salt = 16-byte nonce, info =
//! "payload")`; the plaintext is cut in 64 KiB chunks (the last one may be full, and is empty
//! only for an empty payload), each sealed with ChaCha20-Poly1305 under the nonce
//! `11-byte big-endian counter || last-chunk flag`, its 16-byte tag appended.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use super::CopyError;

/// Plaintext bytes per chunk.
pub(super) const CHUNK: usize = 64 * 1024;
/// Bytes of the Poly1305 tag after each chunk.
pub(super) const TAG: usize = 16;
/// Ciphertext bytes of a full chunk.
pub(super) const ENC_CHUNK: usize = CHUNK + TAG;
/// Chunks handled per read/write call (about 1 MiB).
pub(super) const RUN: u64 = 16;

/// ChaCha20-Poly1305 under one file's payload key.
///
/// aws-lc's assembly runs the cipher and the MAC in one pass over each chunk (about 1.7x the
/// throughput of the pure-Rust `chacha20poly1305` crate on the development machine), and
/// wipes its copy of the key when dropped. The age crate, which uses the pure-Rust crate,
/// still decrypts the first chunk of every file sealed or opened here, so the two
/// implementations check each other on every file.
pub(super) struct PayloadCipher(LessSafeKey);

/// The payload cipher of a file with `file_key` and payload `nonce`.
pub(super) fn payload_cipher(file_key: &[u8], nonce: &[u8; 16]) -> PayloadCipher {
    let key = zeroize::Zeroizing::new(age_core::primitives::hkdf(nonce, b"payload", file_key));
    // A 32-byte key is always a valid ChaCha20-Poly1305 key.
    let key = UnboundKey::new(&CHACHA20_POLY1305, key.as_ref())
        .unwrap_or_else(|_| unreachable!("a 32-byte key is a ChaCha20-Poly1305 key"));
    PayloadCipher(LessSafeKey::new(key))
}

impl PayloadCipher {
    /// Encrypts chunk `idx` in place; returns its tag.
    fn seal(&self, idx: u64, last: bool, data: &mut [u8]) -> io::Result<[u8; TAG]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(chunk_nonce(idx, last), Aad::empty(), data)
            .map_err(|_| io::Error::other("chunk too large to encrypt"))?;
        let mut out = [0u8; TAG];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Authenticates and decrypts chunk `idx` in place: `chunk` is its ciphertext followed by
    /// its tag; returns the plaintext (the front of `chunk`).
    ///
    /// On failure the contents of `chunk` are unspecified.
    ///
    /// # Errors
    /// `InvalidData` if the chunk does not authenticate as chunk `idx` (with its last-chunk
    /// flag).
    pub(super) fn open<'c>(
        &self,
        idx: u64,
        last: bool,
        chunk: &'c mut [u8],
    ) -> io::Result<&'c mut [u8]> {
        self.0
            .open_in_place(chunk_nonce(idx, last), Aad::empty(), chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "decryption error"))
    }
}

/// How many chunks a payload of `len` plaintext bytes has (an empty one has one empty chunk).
pub(super) fn chunks(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64).max(1)
}

/// The plaintext length of chunk `idx` of a payload of `len` bytes.
pub(super) fn chunk_len(len: u64, idx: u64) -> usize {
    (len - idx * CHUNK as u64).min(CHUNK as u64) as usize
}

/// The payload's ciphertext length (after the header and nonce) for `len` plaintext bytes.
pub(super) fn payload_len(len: u64) -> u64 {
    len + chunks(len) * TAG as u64
}

/// The nonce of chunk `idx`: an 11-byte big-endian counter, then the last-chunk flag.
pub(super) fn chunk_nonce_bytes(idx: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    // The top 3 bytes of the counter stay 0 (2^64 chunks is unreachable).
    n[3..11].copy_from_slice(&idx.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn chunk_nonce(idx: u64, last: bool) -> Nonce {
    Nonce::assume_unique_for_key(chunk_nonce_bytes(idx, last))
}

/// Encrypts the first `len` bytes of `plain` into `out`: runs of [`RUN`] chunks, each read
/// from the file into place (positioned reads), encrypted in place and written with one call.
/// `tap` sees each chunk's plaintext, in order, just before it is encrypted (the seal hands
/// it to its verifier); an error from `tap` stops the encryption as a write error.
///
/// A file shorter than `len` fails with `UnexpectedEof` (it changed under us).
pub(super) fn encrypt_file(
    plain: &File,
    len: u64,
    cipher: &PayloadCipher,
    out: &mut impl Write,
    tap: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CopyError> {
    let total = chunks(len);
    let cap = if total == 1 {
        len as usize + TAG
    } else {
        RUN.min(total) as usize * ENC_CHUNK
    };
    let mut buf = vec![0u8; cap];
    let mut idx = 0;
    while idx < total {
        let end = (idx + RUN).min(total);
        let mut used = 0;
        for i in idx..end {
            let n = chunk_len(len, i);
            let (data, rest) = buf[used..].split_at_mut(n);
            plain
                .read_exact_at(data, i * CHUNK as u64)
                .map_err(CopyError::Read)?;
            tap(data).map_err(CopyError::Write)?;
            let tag = cipher
                .seal(i, i + 1 == total, data)
                .map_err(CopyError::Write)?;
            rest[..TAG].copy_from_slice(&tag);
            used += n + TAG;
        }
        out.write_all(&buf[..used]).map_err(CopyError::Write)?;
        idx = end;
    }
    out.flush().map_err(CopyError::Write)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Every size around the chunk boundaries, encrypted here, decrypts with the age crate's
    /// own reader (which knows nothing of this module) to the same bytes.
    #[test]
    fn payloads_of_every_boundary_size_decrypt_with_the_age_crate() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let key = std::sync::OnceLock::new();
        let capture = super::super::KeepFileKey {
            inner: &id.to_public(),
            key: &key,
        };
        for len in [
            0usize,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            2 * CHUNK + 7,
            RUN as usize * CHUNK,
            RUN as usize * CHUNK + 1,
            (RUN as usize + 1) * CHUNK,
            3 * RUN as usize * CHUNK - 5,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("p{len}"));
            std::fs::write(&p, &body).unwrap();
            let mut out = Vec::new();
            let key_slot = std::sync::OnceLock::new();
            let capture = super::super::KeepFileKey {
                inner: capture.inner,
                key: &key_slot,
            };
            drop(super::super::encrypt_to_many(&mut out, &[&capture]).unwrap());
            let nonce: [u8; 16] = out[out.len() - 16..].try_into().unwrap();
            use age_core::secrecy::ExposeSecret;
            let cipher = payload_cipher(key_slot.get().unwrap().expose_secret(), &nonce);
            let hdr = out.len();
            encrypt_file(
                &File::open(&p).unwrap(),
                len as u64,
                &cipher,
                &mut out,
                &mut |_| Ok(()),
            )
            .map_err(|_| ())
            .unwrap();
            assert_eq!((out.len() - hdr) as u64, payload_len(len as u64), "{len}");
            let mut back = Vec::new();
            age::Decryptor::new(&out[..])
                .unwrap()
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == body, "{len}: age decrypts to the plaintext");
            // And this module's decryption agrees on the last chunk's flag.
            let total = chunks(len as u64);
            let last = total - 1;
            let at = hdr + (last as usize) * ENC_CHUNK;
            let n = chunk_len(len as u64, last);
            let mut chunk = out[at..at + n + TAG].to_vec();
            assert!(*cipher.open(last, true, &mut chunk).unwrap() == body[body.len() - n..]);
            let mut again = out[at..at + n + TAG].to_vec();
            assert!(cipher.open(last, false, &mut again).is_err());
        }
        drop(key);
    }

    #[test]
    fn a_file_shorter_than_announced_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short");
        std::fs::write(&p, vec![7u8; 1000]).unwrap();
        let cipher = payload_cipher(&[1u8; 16], &[2u8; 16]);
        match encrypt_file(
            &File::open(&p).unwrap(),
            5000,
            &cipher,
            &mut Vec::new(),
            &mut |_| Ok(()),
        ) {
            Err(CopyError::Read(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            _ => panic!("expected a read error"),
        }
    }
}
