//! Fuzzes the JSONL redactor. Invariants (not only "no panic"): the line count is kept, a
//! valid JSON line stays valid JSON, redaction is idempotent, the result does not depend on
//! read-buffer boundaries, and a secret planted in the input never survives.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use moltvault_redact::{CountSink, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};

/// A reader that hands out its data in small chunks.
struct Chunks<'a>(&'a [u8], usize);

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(self.0.len()).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn redact(r: &Redactor, input: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    r.redact_jsonl(input, &mut out, &mut CountSink::default()).unwrap();
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let mode = if data[0] & 1 == 0 { Mode::Tools } else { Mode::All };
    let r = Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(mode, FingerprintKey::from_bytes([1; 32])),
    )
    .unwrap();
    let input = &data[1..];
    let out = redact(&r, input);
    let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    assert_eq!(lines(input), lines(&out));
    for (a, b) in input.split(|&c| c == b'\n').zip(out.split(|&c| c == b'\n')) {
        if serde_json::from_slice::<serde_json::Value>(a).is_ok() {
            assert!(serde_json::from_slice::<serde_json::Value>(b).is_ok());
        }
    }
    assert_eq!(redact(&r, &out[..]), out, "not idempotent");
    let chunk = 1 + (data[0] as usize >> 1) % 7;
    assert_eq!(redact(&r, Chunks(input, chunk)), out, "depends on read boundaries");

    // Planting a token in an all-mode string value must always redact it.
    let tok = format!("{}{}", ["gh", "p_"].concat(), "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE");
    let text = String::from_utf8_lossy(input);
    let line = serde_json::json!({"t": format!("{text} {tok} {text}")}).to_string();
    let all = Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([1; 32])),
    )
    .unwrap();
    let o = redact(&all, line.as_bytes());
    assert!(!String::from_utf8_lossy(&o).contains(&tok), "planted token survived");
});
