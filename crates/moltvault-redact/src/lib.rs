//! Finds and redacts secrets in gateway transcripts.
//!
//! This crate owns the rules (data files under `data/rules/`, embedded at build time, each with
//! `examples` and `negative_examples` checked by a test), the two-stage matcher (a raw-byte
//! literal gate, then per-rule regexes on *unescaped* JSON string values) and the JSON-aware
//! streaming redactor for JSONL transcripts. It is pure: it takes `Read`/`Write` and values,
//! never touches the file system by itself, prints nothing and reads no environment variable.
//!
//! A secret is replaced by `[REDACTED:<rule-id>:<fp8>]`, where `fp8` is the first 8 hex digits
//! of HMAC-SHA256(install key, secret): the same secret always gets the same tag, and the tag
//! never matches a rule, so redaction is idempotent.
//!
//! ```
//! use moltvault_redact::{FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
//!
//! let rules = RuleSet::builtin();
//! let key = FingerprintKey::from_bytes([7; 32]);
//! let redactor = Redactor::new(&rules, RedactorOptions::new(Mode::All, key)).unwrap();
//! let input = concat!(
//!     r#"{"type":"message","id":"a1","message":{"role":"toolResult","content":"#,
//!     r#"[{"type":"text","text":"export DB_PASSWORD=Tr0ub4dor-3xK9q"}]}}"#,
//!     "\n"
//! );
//! let mut out = Vec::new();
//! let mut findings = Vec::new();
//! redactor.redact_jsonl(input.as_bytes(), &mut out, &mut findings).unwrap();
//! let out = String::from_utf8(out).unwrap();
//! assert!(!out.contains("Tr0ub4dor"));
//! assert!(out.contains("[REDACTED:generic-assignment:"));
//! assert_eq!(findings[0].pointer, "/message/content/0/text");
//! ```

mod gate;
mod json;
mod keypath;
mod redactor;
mod rules;
mod teddy;
mod text;
mod validate;

pub use redactor::{Redacted, Redactor, Stats};
pub use rules::{Rule, RuleSet};

use std::fmt;

use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Errors of the redaction library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file could not be parsed.
    #[error("invalid rule file {file}: {message}")]
    RuleFile {
        /// The file (or `builtin:<name>`) that holds the bad rule.
        file: String,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// A rule is invalid (bad regex, bad id, failing example).
    #[error("invalid rule `{rule}` in {file} (line {line}): {message}")]
    Rule {
        /// The file that holds the rule.
        file: String,
        /// The rule id.
        rule: String,
        /// The 1-based line of the rule in the file, 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading the input or writing the output failed.
    #[error("i/o error while redacting")]
    Io(#[source] std::io::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which strings of a transcript entry are redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Tool results, tool-call arguments and `details.*` only.
    #[default]
    Tools,
    /// Every string value except structural fields.
    All,
}

/// The 32-byte key of the keyed fingerprints (HMAC-SHA256) in placeholders.
pub struct FingerprintKey(SecretBox<[u8; 32]>);

impl FingerprintKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FingerprintKey(SecretBox::new(Box::new(bytes)))
    }

    fn bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl Clone for FingerprintKey {
    fn clone(&self) -> Self {
        FingerprintKey::from_bytes(*self.bytes())
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([REDACTED])")
    }
}

/// A secret value the gateway itself is configured with, matched literally (the strongest rule).
pub struct LiteralSecret {
    /// The placeholder rule id, e.g. `gateway-token` (lowercased; other characters become `-`).
    pub id: String,
    /// The exact secret value.
    pub value: SecretString,
}

impl LiteralSecret {
    /// Builds a literal secret from an id and a value.
    pub fn new(id: impl Into<String>, value: SecretString) -> Self {
        LiteralSecret {
            id: id.into(),
            value,
        }
    }
}

impl fmt::Debug for LiteralSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiteralSecret")
            .field("id", &self.id)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

/// Options of a [`Redactor`].
#[derive(Debug)]
pub struct RedactorOptions {
    /// Which strings are redacted.
    pub mode: Mode,
    /// The fingerprint key (the install key).
    pub key: FingerprintKey,
    /// The gateway's own secrets, matched literally.
    pub literals: Vec<LiteralSecret>,
}

impl RedactorOptions {
    /// Options with a mode and a key and no literal secrets.
    pub fn new(mode: Mode, key: FingerprintKey) -> Self {
        RedactorOptions {
            mode,
            key,
            literals: Vec::new(),
        }
    }
}

/// One secret found; it never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The id of the rule that matched.
    pub rule_id: String,
    /// The 1-based line (record) number; 1 for single values and texts.
    pub line: u64,
    /// The RFC 6901 JSON pointer of the string holding the secret (empty for raw text).
    pub pointer: String,
    /// The first 8 hex digits of the keyed fingerprint of the secret.
    pub fingerprint: String,
}

/// Receives findings as they are made (a `Vec<Finding>` collects them).
pub trait FindingSink {
    /// Called once per secret found.
    fn finding(&mut self, finding: Finding);
}

impl FindingSink for Vec<Finding> {
    fn finding(&mut self, finding: Finding) {
        self.push(finding);
    }
}

/// A sink that only counts findings.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountSink(pub u64);

impl FindingSink for CountSink {
    fn finding(&mut self, _finding: Finding) {
        self.0 += 1;
    }
}

impl<F: FnMut(Finding)> FindingSink for F {
    fn finding(&mut self, finding: Finding) {
        self(finding);
    }
}

/// The prefix of every placeholder this crate writes.
pub const PLACEHOLDER_PREFIX: &str = "[REDACTED:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_key_and_literal_values() {
        let key = FingerprintKey::from_bytes([0x41; 32]);
        let s = format!("{key:?}");
        assert!(!s.contains("65") && !s.contains("AAAA"), "{s}");
        let lit = LiteralSecret::new("gateway-token", SecretString::from("hunter2-value-xyz"));
        let s = format!("{lit:?}");
        assert!(!s.contains("hunter2"), "{s}");
        let opts = RedactorOptions {
            mode: Mode::All,
            key,
            literals: vec![lit],
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
