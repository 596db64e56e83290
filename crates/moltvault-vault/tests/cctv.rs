//! The C2SP CCTV age test vectors (vendored in `tests/data/cctv/age`, see its README) run
//! against both of the vault's decrypt paths: the streaming reader `seal::decrypt_reader_with`
//! (`cat`, `grep`, restore) and `seal::unseal_file_with` (`unseal`: the age crate parses the
//! header and decrypts the first chunk, the other chunks are authenticated and decrypted in
//! place on several threads; armored files go through the streaming reader).
//!
//! Outcomes are mapped to the vectors' `expect` classes; `header failure` and `armor failure`
//! are aliased (the CCTV README allows aliasing indistinguishable classes: both are rejections
//! before any plaintext). Every deviation of the `age` crate is listed in
//! [`KNOWN_DEVIATIONS`] with the outcome it has; a new deviation, or a listed one that stops
//! deviating, fails the test.
#![allow(clippy::print_stderr, clippy::disallowed_methods)]

use std::io::Read;
use std::path::PathBuf;
use std::str::FromStr;

use moltvault_vault::seal::{decrypt_reader_with, unseal_file_with};
use moltvault_vault::{DecryptFailure, Error};
use sha2::{Digest, Sha256};

/// (vector, what the age crate does instead of `expect`, why).
const KNOWN_DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "armor_whitespace_outside",
        "header failure",
        "age's ArmoredReader does not accept whitespace before the armor BEGIN line: a false rejection, never a false acceptance",
    ),
    (
        "stanza_missing_body",
        "success",
        "deliberate leniency in the age crate for legacy files without the short final stanza line (rage's own testkit special-cases it)",
    ),
    (
        "stanza_missing_final_line",
        "success",
        "same leniency as stanza_missing_body",
    ),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/cctv/age")
}

struct Vector {
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    passphrases: Vec<String>,
    body: Vec<u8>,
}

fn parse(bytes: &[u8]) -> Option<Vector> {
    let mut v = Vector {
        expect: String::new(),
        payload: None,
        identities: Vec::new(),
        passphrases: Vec::new(),
        body: Vec::new(),
    };
    let mut rest = bytes;
    let mut compressed = false;
    loop {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&rest[..nl]).ok()?;
        rest = &rest[nl + 1..];
        if line.is_empty() {
            break;
        }
        let (k, val) = line.split_once(": ")?;
        match k {
            "expect" => v.expect = val.to_string(),
            "payload" => v.payload = Some(val.to_string()),
            "identity" => v.identities.push(val.to_string()),
            "passphrase" => v.passphrases.push(val.to_string()),
            "compressed" => compressed = val == "zlib",
            "armored" | "file key" | "comment" => {}
            // "Files with unknown keys should be ignored."
            _ => return None,
        }
    }
    v.body = if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(rest)
            .read_to_end(&mut out)
            .ok()?;
        out
    } else {
        rest.to_vec()
    };
    Some(v)
}

/// The identities a vector names (`Err` for post-quantum hybrid ones, which age 0.11 lacks).
struct Keys {
    x: Vec<age::x25519::Identity>,
    s: Vec<age::scrypt::Identity>,
}

impl Keys {
    fn of(v: &Vector) -> Result<Keys, String> {
        let mut k = Keys {
            x: Vec::new(),
            s: Vec::new(),
        };
        for i in &v.identities {
            // PQ hybrid identities (AGE-SECRET-KEY-PQ-…) have no implementation in age 0.11.
            k.x.push(age::x25519::Identity::from_str(i).map_err(|_| "unsupported identity")?);
        }
        for p in &v.passphrases {
            let mut id = age::scrypt::Identity::new(p.clone().into());
            id.set_max_work_factor(16);
            k.s.push(id);
        }
        Ok(k)
    }

    fn ids(&self) -> Vec<&dyn age::Identity> {
        self.x
            .iter()
            .map(|i| i as &dyn age::Identity)
            .chain(self.s.iter().map(|i| i as &dyn age::Identity))
            .collect()
    }
}

/// What running one vector gave: its outcome class and the SHA-256 of the plaintext it
/// released (`None`: nothing at all).
type Outcome = Result<(String, Option<String>), String>;

/// Runs one vector through the streaming reader: the outcome class and the SHA-256 of every
/// released plaintext byte.
fn run_stream(v: &Vector) -> Outcome {
    let keys = Keys::of(v)?;
    let mut released = Vec::new();
    let class = match decrypt_reader_with(&v.body[..], &keys.ids()) {
        Err(DecryptFailure::BadMac) => "HMAC failure",
        Err(DecryptFailure::NotForUs) => "no match",
        Err(_) => "header failure",
        Ok(mut r) => {
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break "success",
                    Ok(n) => released.extend_from_slice(&buf[..n]),
                    // The armor is decoded as the payload streams: its errors surface here.
                    Err(e)
                        if e.get_ref()
                            .is_some_and(|i| i.is::<age::armor::ArmoredReadError>()) =>
                    {
                        break "header failure";
                    }
                    Err(_) => break "payload failure",
                }
            }
        }
    };
    Ok((
        class.to_string(),
        Some(hex::encode(Sha256::digest(&released))),
    ))
}

/// Runs one vector through `unseal` (the vector's bytes as `v.age` in a fresh directory): the
/// outcome class and the SHA-256 of the plaintext file it left (none on failure: it checks
/// that no plaintext and no temp file remain, and the sealed file is unchanged). It also
/// checks that the outcome — plaintext, or kind of failure — is exactly the streaming
/// reader's on the same bytes.
///
/// A truncation is reported as [`DecryptFailure::Truncated`] whether it cuts the header or the
/// payload, so its class is `truncated`, accepted for `header failure` and `payload failure`.
fn run_unseal(v: &Vector) -> Outcome {
    let keys = Keys::of(v)?;
    let stream = decrypt_reader_with(&v.body[..], &keys.ids()).and_then(|mut r| {
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| DecryptFailure::from_io(&e))?;
        Ok(out)
    });
    let dir = tempfile::tempdir().unwrap();
    let sealed = dir.path().join("v.age");
    std::fs::write(&sealed, &v.body).unwrap();
    let mut released = None;
    let class = match unseal_file_with(&sealed, &keys.ids()) {
        Ok(u) => {
            let plain = std::fs::read(&u.plain).unwrap();
            assert!(stream.as_ref().is_ok_and(|s| *s == plain), "as streamed");
            released = Some(hex::encode(Sha256::digest(&plain)));
            assert!(!sealed.exists());
            "success"
        }
        Err(Error::Decrypt { path, kind }) => {
            assert_eq!(path, sealed, "the error names the file");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["v.age"], "nothing written beside it");
            assert_eq!(std::fs::read(&sealed).unwrap(), v.body, "left unchanged");
            // Except that `unseal` refuses a file that does not start like an age file before
            // decrypting: an empty one is "not an age file" there, "truncated" to the reader.
            if v.body.is_empty() {
                assert_eq!(
                    (stream.err(), kind),
                    (Some(DecryptFailure::Truncated), DecryptFailure::BadHeader)
                );
            } else {
                assert_eq!(stream.err(), Some(kind), "as streamed");
            }
            match kind {
                DecryptFailure::BadMac => "HMAC failure",
                DecryptFailure::NotForUs => "no match",
                DecryptFailure::Truncated => "truncated",
                DecryptFailure::Damaged => "payload failure",
                _ => "header failure",
            }
        }
        Err(e) => panic!("{e}"),
    };
    Ok((class.to_string(), released))
}

fn alias(expect: &str) -> &str {
    if expect == "armor failure" {
        "header failure"
    } else {
        expect
    }
}

#[test]
fn cctv_age_vectors_stream() {
    check_vectors(run_stream, &[]);
}

/// `unseal` releases no plaintext on any failure and reports kinds, not phases: an armored
/// file's armor is decoded as its payload streams, so armor damage past the header is
/// indistinguishable from payload damage, and a truncation is a truncation wherever it cuts
/// (aliasing that the CCTV README allows for indistinguishable classes). Every outcome is
/// also checked to be exactly the streaming reader's.
#[test]
fn cctv_age_vectors_unseal() {
    check_vectors(
        run_unseal,
        &[
            ("armor failure", "payload failure"),
            ("armor failure", "truncated"),
            ("header failure", "truncated"),
            ("payload failure", "truncated"),
        ],
    );
}

/// Runs every vector with `run`, checking outcomes against `expect` (or an alias in `also`:
/// expected class, class accepted as well) and [`KNOWN_DEVIATIONS`].
fn check_vectors(run: fn(&Vector) -> Outcome, also: &[(&str, &str)]) {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/data/cctv/age is vendored")
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "README.md")
        .collect();
    names.sort();
    assert!(names.len() >= 140, "vectors missing: {}", names.len());
    let (mut passed, mut ignored, mut deviated) = (0, Vec::new(), Vec::new());
    let mut failures = Vec::new();
    for path in &names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let Some(v) = parse(&bytes) else {
            ignored.push(name);
            continue;
        };
        let (class, sha) = match run(&v) {
            Ok(r) => r,
            Err(_) => {
                ignored.push(name);
                continue;
            }
        };
        let known = KNOWN_DEVIATIONS.iter().find(|d| d.0 == name);
        let want = alias(&v.expect);
        let ok_class = class == want || also.contains(&(v.expect.as_str(), class.as_str()));
        if let Some((_, got, _)) = known {
            if ok_class {
                failures.push(format!("{name}: listed deviation no longer deviates"));
            } else if class != *got {
                failures.push(format!("{name}: deviation changed: {class} (listed {got})"));
            } else {
                deviated.push(name);
            }
            continue;
        }
        if !ok_class {
            failures.push(format!("{name}: expected {}, got {class}", v.expect));
            continue;
        }
        // Never released plaintext that the vector does not vouch for.
        if matches!(class.as_str(), "success" | "payload failure")
            && let Some(sha) = sha
            && v.payload.as_ref().is_some_and(|p| *p != sha)
        {
            failures.push(format!("{name}: released plaintext hash differs"));
            continue;
        }
        passed += 1;
    }
    eprintln!(
        "cctv: {passed} passed, {} known deviations, {} ignored (PQ or unknown keys)",
        deviated.len(),
        ignored.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // Only the post-quantum hybrid vectors may be ignored.
    for n in &ignored {
        assert!(n.contains("hybrid"), "unexpectedly ignored: {n}");
    }
    assert!(passed >= 110, "{passed}");
}
