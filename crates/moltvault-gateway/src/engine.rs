//! The redaction engine of the gateway plugin, shared by both of its bridges: the
//! `moltvault serve --stdio` child and the in-process Node addon (`crates/moltvault-node`).
//!
//! [`plugin_engine`] builds it the one way both use: `moltvault-redact`'s built-in rules, plus an
//! optional rules file, plus the gateway's own configured secrets matched literally, keyed with
//! the fingerprint key of the moltvault dir (`<vault dir>/install.key`, created 0600 on first
//! use). [`Engine::patch`] answers the plugin's protocol-2 `patch` request (a JSON skeleton of the
//! message whose long strings follow it as raw UTF-8) with the pointers and new texts of the
//! strings it changed; both bridges call it, so they redact identically.
//!
//! ```no_run
//! use moltvault_gateway::engine::{plugin_engine, Mode};
//! # fn main() -> Result<(), moltvault_gateway::engine::EngineError> {
//! let gw = moltvault_gateway::discover(&moltvault_gateway::DiscoverOptions::new("/home/me"))?;
//! let engine = plugin_engine(Some(&gw), "/home/me/.moltvault".as_ref(), None, Mode::All)?;
//! let skeleton = br#"{"role":"toolResult","content":[{"type":"text","text":"no secret"}]}"#;
//! assert!(engine.patch(skeleton.len(), &[], skeleton)?.is_none());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use moltvault_redact::{Finding, LiteralSecret, Mode};
use moltvault_redact::{FingerprintKey, Redactor, RedactorOptions, RuleSet};
use serde_json::{Value, json};

use crate::Gateway;

/// The newest plugin protocol the engine speaks.
pub const PROTOCOL: u64 = 2;

/// The skeleton key of a string reference in a `patch` request: `{"$mv": <index>}`.
pub const REF_KEY: &str = "$mv";

/// Gateway secrets shorter than this are left to the rules: they would match ordinary text.
pub const MIN_LITERAL_BYTES: usize = 8;

/// Below this many bytes of strings on each side, a second thread costs more than it saves.
const PARALLEL_MIN_BYTES: usize = 64 << 10;

/// Errors of building or running the plugin engine. Messages never contain message text or a
/// secret: protocol errors name positions and sizes only.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading the gateway (its config, credential files, databases) failed.
    #[error(transparent)]
    Gateway(#[from] crate::Error),
    /// The extra rules file cannot be read.
    #[error("cannot read the rules file {path}")]
    RulesRead {
        /// The rules file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The rules file does not parse, or the redactor cannot be built from the rules.
    #[error(transparent)]
    Redact(#[from] moltvault_redact::Error),
    /// The fingerprint key of the moltvault dir cannot be read or created.
    #[error("cannot load the fingerprint key in {dir}")]
    Key {
        /// The moltvault dir.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: moltvault_vault::Error,
    },
    /// Writing the load record failed.
    #[error(transparent)]
    Write(#[from] moltvault_vault::fsio::FsError),
    /// A `patch` request is malformed (sizes, references, UTF-8, skeleton JSON).
    #[error("{0}")]
    Protocol(String),
    /// A redaction thread panicked; the message is not redacted.
    #[error("the redaction engine failed")]
    Panicked,
}

/// What an engine is built from: the rule set, the fingerprint key and the gateway's literal
/// secrets. Building several engines (one per mode) from one source loads each only once.
pub struct EngineSource {
    rules: RuleSet,
    key: FingerprintKey,
    literals: Vec<LiteralSecret>,
}

impl std::fmt::Debug for EngineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSource")
            .field("rules", &self.rules.rules().len())
            .field("literals", &self.literals.len())
            .finish_non_exhaustive()
    }
}

impl EngineSource {
    /// Loads the built-in rules plus `rules_file`, the fingerprint key of `vault_dir` (created
    /// 0600 in a 0700 dir on first use), and the configured secrets of `gateway` (none without
    /// one).
    ///
    /// # Errors
    /// Fails when the rules file cannot be read or parsed, the key cannot be loaded or created,
    /// or the gateway's credential inventory cannot be read.
    pub fn load(
        gateway: Option<&Gateway>,
        vault_dir: &Path,
        rules_file: Option<&Path>,
    ) -> Result<EngineSource, EngineError> {
        let literals = match gateway {
            Some(gw) => literal_secrets(gw)?,
            None => Vec::new(),
        };
        EngineSource::with_literals(vault_dir, rules_file, literals)
    }

    /// Like [`EngineSource::load`], with the gateway's literal secrets already read (by
    /// [`literal_secrets`], in another process).
    ///
    /// The Node addon runs inside the gateway process, whose own SQLite keeps the gateway's
    /// databases open with POSIX locks. A second SQLite copy in that process (this crate's)
    /// opening and closing those files would release the gateway's locks (a close drops every
    /// lock the process holds on the file), so the addon gets the inventory from
    /// `moltvault serve` instead of reading the databases itself.
    ///
    /// # Errors
    /// Fails when the rules file cannot be read or parsed, or the key cannot be loaded or
    /// created.
    pub fn with_literals(
        vault_dir: &Path,
        rules_file: Option<&Path>,
        literals: Vec<LiteralSecret>,
    ) -> Result<EngineSource, EngineError> {
        let key = moltvault_vault::install_key::load_or_create(vault_dir).map_err(|source| {
            EngineError::Key {
                dir: vault_dir.to_path_buf(),
                source,
            }
        })?;
        let key = FingerprintKey::from_bytes(*key.expose());
        let rules = load_rules(rules_file)?;
        Ok(EngineSource {
            rules,
            key,
            literals,
        })
    }

    /// The gateway's literal secrets this source holds (values stay [`secrecy`]-wrapped).
    pub fn literals(&self) -> &[LiteralSecret] {
        &self.literals
    }

    /// Builds an engine in `mode`.
    ///
    /// # Errors
    /// Fails when a literal secret is too short to match safely.
    pub fn engine(&self, mode: Mode) -> Result<Engine, EngineError> {
        let literals = self
            .literals
            .iter()
            .map(|x| LiteralSecret::new(x.id.clone(), x.value.clone()))
            .collect();
        Engine::new(&self.rules, mode, self.key.clone(), literals)
    }
}

/// Builds the plugin's engine: [`EngineSource::load`], then [`EngineSource::engine`].
///
/// # Errors
/// As [`EngineSource::load`] and [`EngineSource::engine`].
pub fn plugin_engine(
    gateway: Option<&Gateway>,
    vault_dir: &Path,
    rules_file: Option<&Path>,
    mode: Mode,
) -> Result<Engine, EngineError> {
    EngineSource::load(gateway, vault_dir, rules_file)?.engine(mode)
}

/// The gateway's own configured secrets (tokens, keys, current and in config backups), matched
/// literally; values shorter than [`MIN_LITERAL_BYTES`] are left out.
///
/// # Errors
/// Fails when the gateway's credential inventory cannot be read.
pub fn literal_secrets(gw: &Gateway) -> Result<Vec<LiteralSecret>, EngineError> {
    use secrecy::ExposeSecret;
    Ok(gw
        .configured_secrets()?
        .into_iter()
        .filter_map(|s| {
            let v = s.value?;
            (v.expose_secret().len() >= MIN_LITERAL_BYTES).then(|| LiteralSecret::new(s.id, v))
        })
        .collect())
}

fn load_rules(file: Option<&Path>) -> Result<RuleSet, EngineError> {
    match file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| EngineError::RulesRead {
                path: p.to_path_buf(),
                source,
            })?;
            Ok(RuleSet::with_user_file(p, &text)?)
        }
        None => Ok(RuleSet::builtin()),
    }
}

/// The redaction engine of the plugin and of its post-turn sweep: a `moltvault-redact`
/// [`Redactor`] plus the counts the hello reports.
#[derive(Debug)]
pub struct Engine {
    redactor: Redactor,
    mode: Mode,
    rules: usize,
    literals: usize,
}

impl Engine {
    /// Builds an engine from explicit parts (see [`plugin_engine`] for the plugin's).
    ///
    /// # Errors
    /// Fails when a literal secret is too short to match safely.
    pub fn new(
        rules: &RuleSet,
        mode: Mode,
        key: FingerprintKey,
        literals: Vec<LiteralSecret>,
    ) -> Result<Engine, EngineError> {
        let n_literals = literals.len();
        let opts = RedactorOptions {
            mode,
            key,
            literals,
        };
        Ok(Engine {
            redactor: Redactor::new(rules, opts)?,
            mode,
            rules: rules.rules().len(),
            literals: n_literals,
        })
    }

    /// The underlying redactor (for file and row rewrites).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// What the hello reports: `{"mode", "rules", "literals"}` (counts, never values).
    pub fn info(&self) -> Value {
        json!({
            "mode": if self.mode == Mode::All { "all" } else { "tools" },
            "rules": self.rules,
            "literals": self.literals,
        })
    }

    /// Redacts `value` in place; returns the findings as protocol objects (never the secret).
    pub fn redact(&self, value: &mut Value) -> Vec<Value> {
        self.redact_findings(value)
            .iter()
            .map(finding_json)
            .collect()
    }

    /// Redacts `value` in place; returns the findings (never the secret).
    pub fn redact_findings(&self, value: &mut Value) -> Vec<Finding> {
        let mut findings: Vec<Finding> = Vec::new();
        self.redactor.redact_value(value, &mut findings);
        findings
    }

    /// Redacts `value` in place like [`Engine::redact_findings`], the biggest top-level member of
    /// a big object on a second thread.
    ///
    /// A tool result holds its output twice (`content` and `details.aggregated`), so a
    /// megabyte result takes half the time on two cores. The split is exact: the engine decides
    /// what to redact from a string's path and from the `role` of the objects above it, and the
    /// part walked on the second thread keeps both (`{"role": …, "<member>": …}`).
    ///
    /// # Errors
    /// Fails when the second thread panicked (never silently: the message is then not redacted).
    pub fn redact_findings_parallel(&self, value: &mut Value) -> Result<Vec<Finding>, EngineError> {
        let Value::Object(map) = value else {
            return Ok(self.redact_findings(value));
        };
        let sizes: Vec<usize> = map.values().map(string_bytes).collect();
        let total: usize = sizes.iter().sum();
        let Some((big_i, &big)) = sizes.iter().enumerate().max_by_key(|(_, n)| **n) else {
            return Ok(Vec::new());
        };
        if big < PARALLEL_MIN_BYTES || total - big < PARALLEL_MIN_BYTES {
            return Ok(self.redact_findings(value));
        }
        let value_keys: Vec<String> = map.keys().cloned().collect();
        let Some(key) = value_keys.get(big_i).cloned() else {
            return Ok(self.redact_findings(value));
        };
        let mut part = serde_json::Map::new();
        if key != "role"
            && let Some(role) = map.get("role")
        {
            part.insert("role".into(), role.clone());
        }
        // Taking the member leaves `null` in its place (same position, nothing to redact).
        part.insert(
            key.clone(),
            map.get_mut(&key).map(Value::take).unwrap_or_default(),
        );
        let mut part = Value::Object(part);
        let (mut findings, theirs) = std::thread::scope(|s| {
            let helper = s.spawn(|| self.redact_findings(&mut part));
            let mine = self.redact_findings(value);
            (mine, helper.join())
        });
        let theirs = theirs.map_err(|_| EngineError::Panicked)?;
        if let (Value::Object(map), Value::Object(mut part)) = (value, part)
            && let (Some(slot), Some(v)) = (map.get_mut(&key), part.remove(&key))
        {
            *slot = v;
        }
        // Only the member's own findings (the copied `role` is the main thread's), in document
        // order: those of the members before it first.
        let prefix = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
        let mine = |f: &Finding| {
            f.pointer == prefix
                || f.pointer
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        };
        let before = findings
            .iter()
            .position(|f| top_member(&value_keys, &f.pointer) > Some(big_i))
            .unwrap_or(findings.len());
        findings.splice(before..before, theirs.into_iter().filter(mine));
        Ok(findings)
    }

    /// Redacts one JSON value given as bytes (one line, no newline): `None` when it holds no
    /// secret, else the redacted bytes and the findings. Unchanged bytes are kept as they are.
    ///
    /// # Errors
    /// Fails only when the engine's writer fails (it writes to memory).
    pub fn redact_raw(&self, json: &[u8]) -> Result<Option<RawRedaction>, EngineError> {
        let mut out = Vec::with_capacity(json.len() + 64);
        let mut findings: Vec<Finding> = Vec::new();
        self.redactor
            .redact_jsonl_bytes(json, &mut out, &mut findings)?;
        if findings.is_empty() {
            return Ok(None);
        }
        Ok(Some((out, findings.iter().map(finding_json).collect())))
    }

    /// Answers a protocol-2 `patch` request: `payload` is the message's JSON skeleton
    /// (`skeleton_len` bytes) followed by the strings its `{"$mv": i}` references name, `lens[i]`
    /// bytes of UTF-8 each. Returns `None` when the message holds no secret, else the [`Patch`].
    ///
    /// # Errors
    /// [`EngineError::Protocol`] when the sizes, the skeleton or a reference are malformed (the
    /// error names positions and sizes, never text); [`EngineError::Panicked`] when a redaction
    /// thread panicked.
    pub fn patch(
        &self,
        skeleton_len: usize,
        lens: &[usize],
        payload: &[u8],
    ) -> Result<Option<Patch>, EngineError> {
        let Some(t) = self.patch_texts(skeleton_len, lens, payload)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(t.texts.iter().map(String::len).sum());
        for s in &t.texts {
            bytes.extend_from_slice(s.as_bytes());
        }
        Ok(Some(Patch {
            findings: t.findings,
            entries: t.entries,
            bytes,
        }))
    }

    /// Answers a protocol-2 `patch` request like [`Engine::patch`], with the new texts as one
    /// owned string per entry (moved out of the redacted message, not copied) instead of
    /// concatenated bytes.
    ///
    /// # Errors
    /// As [`Engine::patch`].
    pub fn patch_texts(
        &self,
        skeleton_len: usize,
        lens: &[usize],
        payload: &[u8],
    ) -> Result<Option<PatchTexts>, EngineError> {
        let req = Request::decode(skeleton_len, lens, payload)?;
        let (mut value, shared) = req.resolve()?;
        let findings = self.redact_request(&mut value, shared)?;
        if findings.is_empty() {
            return Ok(None);
        }
        let mut patch = PatchTexts {
            findings: Vec::with_capacity(findings.len()),
            entries: Vec::new(),
            texts: Vec::new(),
        };
        for (f, first) in with_first_use(&findings) {
            if first {
                let s = take_string(&mut value, &f.pointer)?;
                patch.entries.push(json!([f.pointer, s.len()]));
                patch.texts.push(s);
            }
            patch.findings.push(finding_json(f));
        }
        Ok(Some(patch))
    }

    /// Answers a protocol-2 `patch` request like [`Engine::patch`], each new text given as a
    /// [`Splice`] of the text the request sent: the runs it keeps (in UTF-16 code units, for a
    /// JavaScript `slice`) and the placeholders between them. What the in-process addon hands
    /// to JavaScript, which then builds a megabyte result from two slices of the string it
    /// already holds instead of receiving a new megabyte string.
    ///
    /// Entries whose new texts are equal and come from the same sent string (a tool result's
    /// `content` and `details.aggregated`) share one splice: [`PatchEdits::index`].
    ///
    /// # Errors
    /// As [`Engine::patch`].
    pub fn patch_edits(
        &self,
        skeleton_len: usize,
        lens: &[usize],
        payload: &[u8],
    ) -> Result<Option<PatchEdits>, EngineError> {
        let req = Request::decode(skeleton_len, lens, payload)?;
        let (mut value, shared) = req.resolve()?;
        let findings = self.redact_request(&mut value, shared)?;
        if findings.is_empty() {
            return Ok(None);
        }
        let mut patch = PatchEdits {
            findings: Vec::with_capacity(findings.len()),
            entries: Vec::new(),
            splices: Vec::new(),
            index: Vec::new(),
        };
        // (the sent string it came from, its splice's index), for the dedupe.
        let mut made: Vec<(Option<usize>, usize)> = Vec::new();
        for (f, first) in with_first_use(&findings) {
            patch.findings.push(finding_json(f));
            if !first {
                continue;
            }
            let new = take_string(&mut value, &f.pointer)?;
            patch.entries.push(json!([f.pointer, new.len()]));
            let (origin, splice) = match req.skeleton.pointer(&f.pointer) {
                Some(Value::String(old)) => (None, Splice::whole(old, new)),
                Some(r) => {
                    let i = ref_index(r)
                        .and_then(|i| usize::try_from(i).ok())
                        .filter(|i| *i < req.strings.len())
                        .ok_or_else(bad_pointer)?;
                    (Some(i), Splice::between(req.strings[i], &new))
                }
                None => return Err(bad_pointer()),
            };
            // Against the first few splices only (a message with many findings stays linear).
            let same = made
                .iter()
                .take(16)
                .find(|(o, k)| origin.is_some() && *o == origin && patch.splices[*k] == splice);
            let k = match same {
                Some((_, k)) => *k,
                None => {
                    patch.splices.push(splice);
                    made.push((origin, patch.splices.len() - 1));
                    patch.splices.len() - 1
                }
            };
            patch.index.push(k);
        }
        Ok(Some(patch))
    }

    /// Redacts a resolved request; one thread when the request shares a long string between
    /// paths (the redactor then scans that text once and compares the other copy, so a second
    /// thread would only scan it again), else [`Engine::redact_findings_parallel`].
    fn redact_request(&self, value: &mut Value, shared: bool) -> Result<Vec<Finding>, EngineError> {
        if shared {
            Ok(self.redact_findings(value))
        } else {
            self.redact_findings_parallel(value)
        }
    }
}

/// A decoded protocol-2 `patch` request: the skeleton as sent and the long strings, borrowed
/// from the payload.
struct Request<'p> {
    skeleton: Value,
    strings: Vec<&'p str>,
}

impl<'p> Request<'p> {
    /// Checks the sizes and the UTF-8 of a `patch` payload and parses its skeleton.
    fn decode(
        skeleton_len: usize,
        lens: &[usize],
        payload: &'p [u8],
    ) -> Result<Request<'p>, EngineError> {
        let total = lens
            .iter()
            .try_fold(skeleton_len, |a, &n| a.checked_add(n))
            .ok_or_else(|| bad("patch: the lengths overflow".into()))?;
        if total != payload.len() {
            return Err(bad(format!(
                "patch: the lengths add up to {total} bytes, the payload has {}",
                payload.len()
            )));
        }
        let skeleton: Value = serde_json::from_slice(&payload[..skeleton_len]).map_err(|e| {
            bad(format!(
                "patch: the skeleton is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let mut strings = Vec::with_capacity(lens.len());
        let mut at = skeleton_len;
        for (i, n) in lens.iter().enumerate() {
            let s = std::str::from_utf8(&payload[at..at + n]).map_err(|e| {
                bad(format!(
                    "patch: string {i} is not UTF-8 (byte {})",
                    e.valid_up_to()
                ))
            })?;
            strings.push(s);
            at += n;
        }
        Ok(Request { skeleton, strings })
    }

    /// The message: the skeleton with its references replaced by their strings (only when the
    /// request has strings: otherwise `{"$mv": …}` is the message's own data), and whether a
    /// string is referenced more than once.
    fn resolve(&self) -> Result<(Value, bool), EngineError> {
        let mut value = self.skeleton.clone();
        if self.strings.is_empty() {
            return Ok((value, false));
        }
        let mut uses = vec![0usize; self.strings.len()];
        resolve_refs(&mut value, &self.strings, &mut uses).map_err(bad)?;
        Ok((value, uses.iter().any(|n| *n > 1)))
    }
}

fn bad(s: String) -> EngineError {
    EngineError::Protocol(s)
}

fn bad_pointer() -> EngineError {
    bad("patch: a finding does not point at a string".into())
}

/// The findings, each with whether it is the first one of its pointer (several secrets in one
/// string are one patch entry).
fn with_first_use(findings: &[Finding]) -> impl Iterator<Item = (&Finding, bool)> {
    let mut seen = BTreeSet::new();
    findings
        .iter()
        .map(move |f| (f, seen.insert(f.pointer.as_str())))
}

/// Takes the string at `pointer` out of `value`. Findings point at strings, never at a
/// container of another finding's string, so taking each one (once) leaves the others in
/// place.
fn take_string(value: &mut Value, pointer: &str) -> Result<String, EngineError> {
    match value.pointer_mut(pointer).map(Value::take) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(bad_pointer()),
    }
}

/// Longest runs compared at once by [`common_prefix`] and [`common_suffix`] (one `memcmp`).
const RUN: usize = 256;
/// At most this many pieces per splice; the rest of the text is then one piece.
const MAX_PIECES: usize = 4096;
/// How far after a changed place the next unchanged run is looked for in the old text (a
/// secret is shorter than this; a PEM key is a few KiB).
const RESYNC_WINDOW: usize = 64 << 10;
/// How far a placeholder's closing `]` is looked for.
const PLACEHOLDER_MAX: usize = 512;
/// Bytes of the new text that must recur in the old text to resume an unchanged run.
const ANCHOR: usize = 32;

/// A new text given as edits of the old one: the runs of the old text it keeps and the text
/// between them. Offsets are UTF-16 code units of the old text, what JavaScript's `slice`
/// takes (the old text as the plugin holds it, with an unpaired surrogate counted as the
/// U+FFFD it was sent as).
///
/// [`Splice::between`] is exact for any two texts, by construction: every kept run is
/// compared equal to the new text at its place, and everything else comes from the new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// The old text's length in UTF-16 code units (the plugin checks it against its string).
    pub old_units: usize,
    /// In order: keep `old[keep]`, then append `insert`.
    pub pieces: Vec<SplicePiece>,
}

/// One step of a [`Splice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplicePiece {
    /// A run of the old text, in UTF-16 code units (empty for none).
    pub keep: std::ops::Range<usize>,
    /// The text that follows it in the new text (empty for none).
    pub insert: String,
}

impl Splice {
    /// The new text as a whole: nothing of the old text kept.
    pub fn whole(old: &str, new: String) -> Splice {
        Splice {
            old_units: utf16_units(old.as_bytes()),
            pieces: vec![SplicePiece {
                keep: 0..0,
                insert: new,
            }],
        }
    }

    /// The edits that turn `old` into `new`: a common run, then the new text up to the end of a
    /// placeholder (`…]`), then the next common run (found by the 32 bytes that follow the
    /// placeholder), and so on. Where no run is found, the rest is the common suffix and one
    /// inserted piece before it. Linear in the texts (one `memcmp` over the common runs).
    pub fn between(old: &str, new: &str) -> Splice {
        let (o, n) = (old.as_bytes(), new.as_bytes());
        // Byte ranges first: (keep old[a..b], then new[c..d]).
        let mut raw: Vec<(usize, usize, usize, usize)> = Vec::new();
        let (mut i, mut j) = (0, 0);
        loop {
            let k = floor_boundary(o, i + common_prefix(&o[i..], &n[j..])) - i;
            let keep = (i, i + k);
            i += k;
            j += k;
            if j == n.len() {
                raw.push((keep.0, keep.1, j, j));
                break;
            }
            if i == o.len() || raw.len() + 1 >= MAX_PIECES {
                raw.push((keep.0, keep.1, j, j));
                tail(o, n, i, j, &mut raw);
                break;
            }
            let resync = resync(o, n, i, j);
            match resync {
                Some((i2, j2)) => {
                    raw.push((keep.0, keep.1, j, j2));
                    i = i2;
                    j = j2;
                    if j == n.len() {
                        break;
                    }
                }
                None => {
                    raw.push((keep.0, keep.1, j, j));
                    tail(o, n, i, j, &mut raw);
                    break;
                }
            }
        }
        let ascii = old.is_ascii();
        let mut units = Utf16Cursor::default();
        let pieces = raw
            .into_iter()
            .filter(|&(a, b, c, d)| a < b || c < d)
            .map(|(a, b, c, d)| {
                let keep = if ascii {
                    a..b
                } else {
                    units.at(o, a)..units.at(o, b)
                };
                SplicePiece {
                    keep,
                    // Both ends are character boundaries of `new` (after a common run, after a
                    // `]`, or at a boundary of the common suffix).
                    insert: String::from_utf8_lossy(&n[c..d]).into_owned(),
                }
            })
            .collect();
        let old_units = if ascii { o.len() } else { units.at(o, o.len()) };
        Splice { old_units, pieces }
    }

    /// Applies the splice to `old` (in UTF-16 code units, as the plugin does); `None` when it
    /// does not fit `old`. For tests and checks; the plugin applies it in JavaScript.
    pub fn apply(&self, old: &str) -> Option<String> {
        let units: Vec<u16> = old.encode_utf16().collect();
        if units.len() != self.old_units {
            return None;
        }
        let mut out: Vec<u16> = Vec::with_capacity(units.len());
        let mut prev = 0;
        for p in &self.pieces {
            if p.keep.start < prev || p.keep.end < p.keep.start {
                return None;
            }
            out.extend_from_slice(units.get(p.keep.clone())?);
            out.extend(p.insert.encode_utf16());
            prev = p.keep.end;
        }
        String::from_utf16(&out).ok()
    }
}

/// Where `o` and `n` agree again after they differ at `o[i]`, `n[j]`: `n` resumes after the
/// end of the placeholder (its `]`, or the last of several placeholders in a row), and `o`
/// where the bytes that follow it in `n` (up to 32, and not into the next placeholder) first
/// recur. `None` when no such place is near.
fn resync(o: &[u8], n: &[u8], i: usize, j: usize) -> Option<(usize, usize)> {
    let mut j2 = j;
    for _ in 0..8 {
        let close = n[j2..n.len().min(j2 + PLACEHOLDER_MAX)]
            .iter()
            .position(|&b| b == b']')?;
        j2 += close + 1;
        if j2 == n.len() {
            return Some((o.len(), j2));
        }
        let lim = n.len().min(j2 + ANCHOR);
        let end = n[j2..lim]
            .iter()
            .position(|&b| b == b'[')
            .map_or(lim, |p| j2 + p);
        if end > j2 {
            let window = &o[i..o.len().min(i + RESYNC_WINDOW)];
            return find(window, &n[j2..end]).map(|at| (i + at, j2));
        }
        // Another placeholder follows at once: it belongs to this change.
    }
    None
}

/// Ends a splice: the common suffix of `o[i..]` and `n[j..]` is kept, the new bytes before it
/// inserted.
fn tail(o: &[u8], n: &[u8], i: usize, j: usize, raw: &mut Vec<(usize, usize, usize, usize)>) {
    let mut s = common_suffix(&o[i..], &n[j..]);
    // The suffix must start on a character boundary (the same one in both texts: its bytes
    // are equal).
    while s > 0 && !is_boundary(o, o.len() - s) {
        s -= 1;
    }
    raw.push((o.len() - s, o.len() - s, j, n.len() - s));
    raw.push((o.len() - s, o.len(), n.len(), n.len()));
}

/// The length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + RUN <= n && a[i..i + RUN] == b[i..i + RUN] {
        i += RUN;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The length of the common suffix of `a` and `b`.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut s = 0;
    while s + RUN <= n && a[n - s - RUN..n - s] == b[n - s - RUN..n - s] {
        s += RUN;
    }
    while s < n && a[n - s - 1] == b[n - s - 1] {
        s += 1;
    }
    s
}

/// Whether `at` is a character boundary of the UTF-8 text `t`.
fn is_boundary(t: &[u8], at: usize) -> bool {
    at == 0 || at >= t.len() || (t[at] as i8) >= -0x40
}

/// The last character boundary at or before `at`.
fn floor_boundary(t: &[u8], mut at: usize) -> usize {
    while !is_boundary(t, at) {
        at -= 1;
    }
    at
}

/// The first position of `needle` in `hay` (a short needle, a bounded haystack).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut at = 0;
    while at + needle.len() <= hay.len() {
        let p = hay[at..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        if &hay[at + p + 1..at + p + needle.len()] == rest {
            return Some(at + p);
        }
        at += p + 1;
    }
    None
}

/// UTF-16 code units of UTF-8 bytes: one per character, two for a 4-byte one.
fn utf16_units(b: &[u8]) -> usize {
    b.iter()
        .map(|&x| usize::from((x as i8) >= -0x40) + usize::from(x >= 0xF0))
        .sum()
}

/// Converts increasing byte offsets of one text to UTF-16 offsets, counting each byte once.
#[derive(Default)]
struct Utf16Cursor {
    byte: usize,
    unit: usize,
}

impl Utf16Cursor {
    fn at(&mut self, t: &[u8], byte: usize) -> usize {
        if byte >= self.byte {
            self.unit += utf16_units(&t[self.byte..byte]);
        } else {
            self.unit -= utf16_units(&t[byte..self.byte]);
        }
        self.byte = byte;
        self.unit
    }
}

/// A value redacted by [`Engine::redact_raw`]: its new JSON bytes and the findings as protocol
/// objects.
pub type RawRedaction = (Vec<u8>, Vec<Value>);

/// What a `patch` request changed: the findings, one `[pointer, byte length]` entry per changed
/// string, and the new texts back to back in entry order.
#[derive(Debug)]
pub struct Patch {
    /// `{"rule", "pointer", "fp"}` per finding (never the secret).
    pub findings: Vec<Value>,
    /// `[RFC 6901 pointer, byte length of the new text]` per changed string.
    pub entries: Vec<Value>,
    /// The new texts, concatenated.
    pub bytes: Vec<u8>,
}

/// What a `patch` request changed, as [`Engine::patch_texts`] returns it: like [`Patch`], with
/// the new texts one per entry.
#[derive(Debug)]
pub struct PatchTexts {
    /// `{"rule", "pointer", "fp"}` per finding (never the secret).
    pub findings: Vec<Value>,
    /// `[RFC 6901 pointer, byte length of the new text]` per changed string.
    pub entries: Vec<Value>,
    /// The new text of each entry, in entry order.
    pub texts: Vec<String>,
}

impl PatchTexts {
    /// The reply header of a `changed` answer, as [`Patch::header`] (`len` is the texts' total
    /// byte count).
    pub fn header(&self, id: Value) -> Value {
        json!({
            "id": id, "ok": true, "changed": true,
            "findings": self.findings, "patch": self.entries,
            "len": self.texts.iter().map(String::len).sum::<usize>(),
        })
    }
}

/// What a `patch` request changed, as [`Engine::patch_edits`] returns it: like [`Patch`], with
/// each new text as a [`Splice`] of the text that was sent.
#[derive(Debug)]
pub struct PatchEdits {
    /// `{"rule", "pointer", "fp"}` per finding (never the secret).
    pub findings: Vec<Value>,
    /// `[RFC 6901 pointer, byte length of the new text]` per changed string, as in [`Patch`].
    pub entries: Vec<Value>,
    /// The distinct splices.
    pub splices: Vec<Splice>,
    /// For each entry, the index of its splice in [`PatchEdits::splices`].
    pub index: Vec<usize>,
}

impl PatchEdits {
    /// The reply header of a `changed` answer, as [`Patch::header`].
    pub fn header(&self, id: Value) -> Value {
        json!({
            "id": id, "ok": true, "changed": true,
            "findings": self.findings, "patch": self.entries,
            "len": self.entries.iter().filter_map(|e| e[1].as_u64()).sum::<u64>(),
        })
    }
}

impl Patch {
    /// The reply header of a `changed` answer (`len` is the byte count of [`Patch::bytes`],
    /// which follow the header).
    pub fn header(&self, id: Value) -> Value {
        json!({
            "id": id, "ok": true, "changed": true,
            "findings": self.findings, "patch": self.entries, "len": self.bytes.len(),
        })
    }
}

/// A finding as a protocol object: rule, pointer and fingerprint (never the secret).
pub fn finding_json(f: &Finding) -> Value {
    json!({"rule": f.rule_id, "pointer": f.pointer, "fp": f.fingerprint})
}

/// The position among `keys` of the top-level member a JSON pointer starts with.
fn top_member(keys: &[String], pointer: &str) -> Option<usize> {
    let seg = pointer.strip_prefix('/')?.split('/').next()?;
    let seg = seg.replace("~1", "/").replace("~0", "~");
    keys.iter().position(|k| *k == seg)
}

/// The bytes of all strings (and object keys) under `v`.
fn string_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(string_bytes).sum(),
        Value::Object(m) => m.iter().map(|(k, x)| k.len() + string_bytes(x)).sum(),
        _ => 0,
    }
}

/// The index of a skeleton string reference `{"$mv": i}`.
fn ref_index(v: &Value) -> Option<u64> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(REF_KEY).and_then(Value::as_u64),
        _ => None,
    }
}

/// Puts the strings in place of their references, counting the uses of each.
fn resolve_refs(v: &mut Value, strings: &[&str], uses: &mut [usize]) -> Result<(), String> {
    if let Some(i) = ref_index(v) {
        let at = usize::try_from(i)
            .ok()
            .filter(|i| *i < strings.len())
            .ok_or_else(|| format!("patch: reference {i} names no string"))?;
        uses[at] += 1;
        *v = Value::String(strings[at].to_owned());
        return Ok(());
    }
    match v {
        Value::Object(m) => m
            .values_mut()
            .try_for_each(|x| resolve_refs(x, strings, uses)),
        Value::Array(a) => a
            .iter_mut()
            .try_for_each(|x| resolve_refs(x, strings, uses)),
        _ => Ok(()),
    }
}

/// Where the plugin records the last gateway process that loaded it:
/// `<state dir>/moltvault/plugin-loaded.json`.
pub fn load_record_path(state_dir: &Path) -> PathBuf {
    state_dir.join("moltvault").join("plugin-loaded.json")
}

/// Records which gateway process loaded the plugin (for `moltvault plugin status`), from the
/// plugin's client description (`pid`, `process`, `plugin`, `hooks`, `bridge`; no argv, which
/// may hold message text). Written atomically, 0600 in a 0700 dir.
///
/// # Errors
/// Fails when the record cannot be written.
pub fn record_load(
    state_dir: &Path,
    client: &Value,
    engine_version: &str,
) -> Result<(), EngineError> {
    let path = load_record_path(state_dir);
    let rec = json!({
        "pid": client.get("pid").and_then(Value::as_i64),
        "process": client.get("process").and_then(Value::as_str),
        "plugin": client.get("plugin").and_then(Value::as_str),
        "hooks": client.get("hooks"),
        "bridge": client.get("bridge").and_then(Value::as_str),
        "engine": engine_version,
        "at": rfc3339_now(),
    });
    if let Some(dir) = path.parent() {
        moltvault_vault::fsio::create_secret_dir_all(dir)?;
    }
    let mut text = serde_json::to_vec_pretty(&rec).unwrap_or_default();
    text.push(b'\n');
    moltvault_vault::fsio::write_atomic(
        &path,
        &text,
        moltvault_vault::fsio::WriteOptions::secret_replace(),
    )?;
    Ok(())
}

/// The current UTC time as RFC 3339 (`2026-11-26T01:02:03Z`).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Formats Unix seconds as RFC 3339 UTC (the civil-from-days algorithm of H. Hinnant).
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(mode: Mode) -> Engine {
        let key = FingerprintKey::from_bytes([7u8; 32]);
        Engine::new(&RuleSet::builtin(), mode, key, Vec::new()).unwrap()
    }

    fn gh() -> String {
        // A provider-format token assembled from fragments (no literal secret in the repo).
        ["gh", "p_", "Zq8RfT2mWk9LxV4nBc7YhJ3sPd6Ga10mqmPb"].concat()
    }

    /// Encodes like the plugin's codec: long strings become references, sent once.
    fn encode(skeleton: &Value, strings: &[&str]) -> (usize, Vec<usize>, Vec<u8>) {
        let mut payload = serde_json::to_vec(skeleton).unwrap();
        let sk = payload.len();
        let lens = strings.iter().map(|s| s.len()).collect();
        for s in strings {
            payload.extend_from_slice(s.as_bytes());
        }
        (sk, lens, payload)
    }

    #[test]
    fn patch_resolves_references_and_answers_with_the_changed_strings_only() {
        let text = format!("{}\nGITHUB_TOKEN={}\n", "x".repeat(300), gh());
        let sk = json!({
            "role": "toolResult",
            "toolCallId": "call_1",
            "content": [{"type": "text", "text": {"$mv": 0}}],
            "details": {"aggregated": {"$mv": 0}, "cwd": "/home/u"},
        });
        let (n, lens, payload) = encode(&sk, &[&text]);
        let p = engine(Mode::All)
            .patch(n, &lens, &payload)
            .unwrap()
            .unwrap();
        let ptrs: Vec<&str> = p.entries.iter().map(|e| e[0].as_str().unwrap()).collect();
        assert_eq!(ptrs, ["/content/0/text", "/details/aggregated"]);
        let texts = String::from_utf8(p.bytes.clone()).unwrap();
        assert!(!texts.contains(&gh()));
        assert!(texts.contains("[REDACTED:"));
        let h = p.header(json!(3));
        assert_eq!(h["len"], p.bytes.len());
        assert!(
            !h.to_string().contains(&gh()),
            "the header leaks the secret"
        );
    }

    #[test]
    fn patch_texts_answers_what_patch_answers_one_text_per_entry() {
        let text = format!("{}\nGITHUB_TOKEN={} é\n", "x".repeat(300), gh());
        let sk = json!({
            "role": "toolResult",
            "content": [{"type": "text", "text": {"$mv": 0}}],
            "details": {"aggregated": {"$mv": 0}, "note": format!("token {}", gh())},
        });
        let (n, lens, payload) = encode(&sk, &[&text]);
        let e = engine(Mode::All);
        let p = e.patch(n, &lens, &payload).unwrap().unwrap();
        let t = e.patch_texts(n, &lens, &payload).unwrap().unwrap();
        assert_eq!(t.findings, p.findings);
        assert_eq!(t.entries, p.entries);
        assert_eq!(t.texts.len(), 3);
        assert_eq!(t.texts.concat().as_bytes(), p.bytes.as_slice());
        for (entry, text) in t.entries.iter().zip(&t.texts) {
            assert_eq!(entry[1].as_u64(), Some(text.len() as u64));
            assert!(!text.contains(&gh()));
        }
        assert_eq!(t.header(Value::Null), p.header(Value::Null));
        assert!(
            e.patch_texts(n, &lens, &encode(&json!({"a": "b"}), &[]).2)
                .is_err()
        );
    }

    #[test]
    fn patch_edits_splice_the_sent_strings_into_what_patch_texts_answers() {
        // Non-ASCII before the secret (2- and 4-byte characters: UTF-16 offsets differ from
        // byte offsets), a long string sent once and referenced twice, and an inline string.
        let text = format!(
            "é😀 {}\nGITHUB_TOKEN={} tail ü\n{}",
            "x".repeat(300),
            gh(),
            "y".repeat(300)
        );
        let note = format!("token {}", gh());
        let sk = json!({
            "role": "toolResult",
            "content": [{"type": "text", "text": {"$mv": 0}}],
            "details": {"aggregated": {"$mv": 0}, "note": note},
        });
        let (n, lens, payload) = encode(&sk, &[&text]);
        let e = engine(Mode::All);
        let t = e.patch_texts(n, &lens, &payload).unwrap().unwrap();
        let p = e.patch_edits(n, &lens, &payload).unwrap().unwrap();
        assert_eq!(p.findings, t.findings);
        assert_eq!(p.entries, t.entries);
        assert_eq!(p.header(json!(1)), t.header(json!(1)));
        assert_eq!(p.index.len(), 3);
        // content and details.aggregated share one splice.
        assert_eq!(p.index[0], p.index[1]);
        assert_eq!(p.splices.len(), 2);
        let olds = [text.as_str(), text.as_str(), note.as_str()];
        for ((old, i), new) in olds.iter().zip(&p.index).zip(&t.texts) {
            let sp = &p.splices[*i];
            assert_eq!(sp.apply(old).as_deref(), Some(new.as_str()));
            let inserted: String = sp.pieces.iter().map(|x| x.insert.as_str()).collect();
            assert!(!inserted.contains(&gh()));
        }
        // The long text: two kept runs around one placeholder, nothing else sent.
        let big = &p.splices[p.index[0]];
        assert_eq!(big.old_units, text.encode_utf16().count());
        let inserted: usize = big.pieces.iter().map(|x| x.insert.len()).sum();
        assert!(inserted < 64, "{big:?}");
        let kept: usize = big.pieces.iter().map(|x| x.keep.len()).sum();
        assert!(kept > 600, "{big:?}");
        // The inline string comes whole.
        let small = &p.splices[p.index[2]];
        assert_eq!(small.pieces.len(), 1);
        assert_eq!(small.pieces[0].keep, 0..0);
        assert!(e.patch_edits(n, &lens, &payload[..n]).is_err());
    }

    #[test]
    fn patch_edits_of_a_clean_message_is_none() {
        let text = "z".repeat(1000);
        let sk = json!({"role": "toolResult", "content": [{"type": "text", "text": {"$mv": 0}}]});
        let (n, lens, payload) = encode(&sk, &[&text]);
        assert!(
            engine(Mode::All)
                .patch_edits(n, &lens, &payload)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn splice_between_handles_edges() {
        for (old, new) in [
            ("", ""),
            ("", "abc"),
            ("abc", ""),
            ("abc", "abc"),
            ("ab", "abc"),
            ("abc", "ab"),
            ("a secret b", "a [REDACTED:x:1] b"),
            ("secret", "[REDACTED:x:1]"),
            ("a secret", "a [REDACTED:x:1]"),
            ("secret b", "[REDACTED:x:1] b"),
            ("é secret é", "é [REDACTED:x:1] é"),
            ("😀secret😀", "😀[REDACTED:x:1]😀"),
            ("é", "è"),
            ("[secret] b", "[REDACTED:x:1] b"),
            ("a ] b ] c", "a ] [R] ] c"),
        ] {
            let sp = Splice::between(old, new);
            assert_eq!(
                sp.apply(old).as_deref(),
                Some(new),
                "{old:?} -> {new:?}: {sp:?}"
            );
            assert_eq!(sp.old_units, old.encode_utf16().count());
        }
        // A splice does not fit another text.
        assert!(Splice::between("abc", "abd").apply("abcd").is_none());
    }

    proptest::proptest! {
        #[test]
        fn splice_between_rebuilds_any_new_text(old in "[a-c\\]é😀 ]{0,80}", new in "[a-c\\]é😀 ]{0,80}") {
            let sp = Splice::between(&old, &new);
            proptest::prop_assert_eq!(sp.apply(&old), Some(new));
        }

        #[test]
        fn splice_of_a_redaction_sends_only_the_placeholders(
            old in "[a-z0-9 é😀\n]{0,3000}",
            cuts in proptest::collection::vec((0usize..3000, 1usize..60), 0..6),
        ) {
            // Replace disjoint spans (at character boundaries) by placeholders, as the engine does.
            let chars: Vec<(usize, char)> = old.char_indices().collect();
            let mut spans: Vec<(usize, usize)> = Vec::new();
            for (at, len) in cuts {
                if chars.is_empty() { break; }
                let a = chars[at % chars.len()].0;
                let b = chars.get((at % chars.len()) + len).map_or(old.len(), |c| c.0);
                if spans.iter().all(|&(x, y)| b < x || a > y) { spans.push((a, b)); }
            }
            spans.sort_unstable();
            let (mut new, mut at, mut placeholders) = (String::new(), 0, 0);
            for (k, (a, b)) in spans.iter().enumerate() {
                new.push_str(&old[at..*a]);
                let ph = format!("[REDACTED:rule-{k}:0123abcd]");
                placeholders += ph.len();
                new.push_str(&ph);
                at = *b;
            }
            new.push_str(&old[at..]);
            let sp = Splice::between(&old, &new);
            proptest::prop_assert_eq!(sp.apply(&old), Some(new.clone()));
            let inserted: usize = sp.pieces.iter().map(|p| p.insert.len()).sum();
            proptest::prop_assert!(inserted <= placeholders, "{} > {}: {:?}", inserted, placeholders, sp);
        }
    }

    #[test]
    fn patch_of_a_clean_message_is_none() {
        let sk = json!({"role": "user", "content": "hello there"});
        let (n, lens, payload) = encode(&sk, &[]);
        assert!(
            engine(Mode::All)
                .patch(n, &lens, &payload)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn patch_honours_the_mode() {
        let sk = json!({"role": "user", "content": format!("my key {}", gh())});
        let (n, lens, payload) = encode(&sk, &[]);
        assert!(
            engine(Mode::Tools)
                .patch(n, &lens, &payload)
                .unwrap()
                .is_none()
        );
        assert!(
            engine(Mode::All)
                .patch(n, &lens, &payload)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn patch_rejects_bad_frames_without_echoing_them() {
        let e = engine(Mode::All);
        let secret = gh();
        let bad_json = format!("{{\"a\": \"{secret}\"");
        let err = e
            .patch(bad_json.len(), &[], bad_json.as_bytes())
            .unwrap_err();
        assert!(!err.to_string().contains(&secret), "{err}");
        assert!(matches!(
            e.patch(5, &[], b"{}"),
            Err(EngineError::Protocol(_))
        ));
        let sk = br#"{"a":{"$mv":1}}"#;
        let mut payload = sk.to_vec();
        payload.extend_from_slice(b"abc");
        let err = e.patch(sk.len(), &[3], &payload).unwrap_err();
        assert!(err.to_string().contains("reference 1"), "{err}");
        let err = e.patch(sk.len(), &[usize::MAX], &payload).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
    }

    #[test]
    fn the_two_thread_split_finds_what_one_thread_finds() {
        let big = format!("{}{} tail", "word ".repeat(20_000), gh());
        let msg = json!({
            "role": "toolResult",
            "content": [{"type": "text", "text": big}],
            "details": {"aggregated": big},
        });
        let e = engine(Mode::All);
        let (mut a, mut b) = (msg.clone(), msg);
        let one = e.redact_findings(&mut a);
        let two = e.redact_findings_parallel(&mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(one, two);
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn engine_source_builds_the_fingerprint_key_once_and_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        let a = plugin_engine(None, &vault, None, Mode::All).unwrap();
        let key = vault.join("install.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = plugin_engine(None, &vault, None, Mode::All).unwrap();
        // Same key: same placeholders.
        let mut x = json!({"role": "user", "content": gh()});
        let mut y = x.clone();
        a.redact(&mut x);
        b.redact(&mut y);
        assert_eq!(x, y);
        assert_eq!(a.info()["literals"], 0);
    }

    #[test]
    fn literals_from_another_process_are_matched_like_the_gateways_own() {
        let dir = tempfile::tempdir().unwrap();
        let token = ["0123456789abcdef", "fedcba9876543210"].concat();
        let lit = LiteralSecret::new(
            "gateway.auth.token",
            secrecy::SecretString::from(token.clone()),
        );
        let source = EngineSource::with_literals(dir.path(), None, vec![lit]).unwrap();
        assert_eq!(source.literals().len(), 1);
        assert!(
            !format!("{source:?}").contains(&token),
            "Debug leaks a literal"
        );
        let e = source.engine(Mode::All).unwrap();
        assert_eq!(e.info()["literals"], 1);
        let mut v = json!({"role": "user", "content": format!("token {token} here")});
        assert_eq!(e.redact(&mut v).len(), 1);
        assert!(!v.to_string().contains(&token));
    }

    #[test]
    fn engine_source_reports_a_missing_rules_file_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let err = plugin_engine(None, dir.path(), Some(&missing), Mode::All).unwrap_err();
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }

    #[test]
    fn load_records_are_written_0600_without_argv() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let client = json!({"pid": 42, "process": "openclaw-gateway", "bridge": "addon", "argv": ["secret"]});
        record_load(dir.path(), &client, "0.1.0").unwrap();
        let p = load_record_path(dir.path());
        let rec: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(rec["pid"], 42);
        assert_eq!(rec["bridge"], "addon");
        assert!(rec.get("argv").is_none());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_654_923), "2026-11-26T01:02:03Z");
    }
}
