//! `moltvault.node`: the gateway plugin's redaction engine loaded into the gateway's own Node
//! process, so a synchronous persistence hook costs a function call instead of a round trip to a
//! `moltvault serve --stdio` child (docs/plugin.md, "The bridge").
//!
//! It owns no redaction logic. [`Engine::new`] builds the engine with
//! [`moltvault_gateway::engine::EngineSource`], as `moltvault serve --stdio` does, from the
//! gateway's literal secrets that `serve` read (its `inputs` reply), and
//! [`Engine::patch_edits`] answers with [`moltvault_gateway::engine::Engine::patch_edits`], the
//! protocol-2 `patch` request's answer with each new text given as edits of the string the
//! plugin sent. The JavaScript side (`plugins/openclaw/bridge.js`, `AddonEngine`) encodes
//! messages with the same codec as the stdio bridge and rebuilds the same new texts, so both
//! bridges redact byte for byte alike (the plugin's tests compare them).
//!
//! Every entry point runs under `catch_unwind`: a Rust panic becomes a JavaScript exception
//! (which the plugin's failure policy handles) and never unwinds into Node.
//!
//! ```js
//! const { Engine, version, protocol } = require("./moltvault.node");
//! // inputs: `moltvault serve --stdio`'s answer to {"op":"inputs"}
//! const engine = new Engine({ vaultDir: inputs.vaultDir, literals: inputs.literals, mode: "all" });
//! const reply = engine.patchEdits(payload, skeletonLen, stringLens); // null when clean
//! ```
// The FFI glue `#[napi]` expands to is unsafe code by nature (napi-rs checks it); this crate
// itself writes none.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use moltvault_gateway::engine::{self, Mode};
use napi::bindgen_prelude::{BufferSlice, Either, Latin1String};
use napi_derive::napi;
use secrecy::SecretString;

/// The addon's Rust allocations come from mimalloc, which keeps freed memory for reuse. With
/// glibc's defaults in the gateway process, every megabyte-sized allocation is a fresh `mmap`
/// and each megabyte message paid about 2 ms of page faults (measured: the 1 MB clean hook's p50
/// went from 6.3 ms to 2.6 ms with glibc tuned; `serve` gets the same effect from its
/// `MALLOC_*` environment, which cannot be set for a running gateway). Only this library's
/// allocations are affected; Node's and the gateway's keep their allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `f`, turning a panic into an error (a panic must not unwind into Node).
fn guard<T>(f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(napi::Error::from_reason(
            "the moltvault redaction engine panicked",
        )),
    }
}

/// An error for JavaScript: the error and its causes, which name files and sizes, never
/// message text or secrets.
fn js_error(e: &(dyn std::error::Error + 'static)) -> napi::Error {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    napi::Error::from_reason(msg)
}

/// The version of this addon; the plugin uses it only when it equals the installed moltvault's.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// The plugin protocol whose `patch` request [`Engine::patch_edits`] answers.
#[napi]
pub fn protocol() -> u32 {
    u32::try_from(engine::PROTOCOL).unwrap_or(0)
}

/// Raises a Rust panic inside the guard, so the plugin's tests can show that a panic reaches
/// JavaScript as an exception and the process keeps running.
#[napi]
pub fn panic_for_test() -> napi::Result<()> {
    guard(|| panic!("deliberate panic (panicForTest)"))
}

/// A literal secret of the gateway (its id and value), from `moltvault serve`'s `inputs` reply.
#[napi(object)]
pub struct Literal {
    /// The credential's stable id (it names the placeholder's rule).
    pub id: String,
    /// The value, matched literally.
    pub value: String,
}

/// What the engine is built from.
#[napi(object)]
pub struct EngineOptions {
    /// moltvault's own dir, which holds the fingerprint key (`inputs.vaultDir`).
    pub vault_dir: String,
    /// `tools` or `all`.
    pub mode: String,
    /// An extra rules file.
    pub rules_file: Option<String>,
    /// The gateway's configured secrets, as `moltvault serve` read them (`inputs.literals`).
    pub literals: Vec<Literal>,
}

/// What a message with secrets becomes: the reply header of the protocol's `changed` answer
/// (JSON: `findings`, `patch` entries, `len`) and, for each entry, a recipe that builds its new
/// text from the string the plugin holds.
///
/// A recipe is `[oldLength, keepStart, keepEnd, text, keepStart, keepEnd, text, …]`: the old
/// string's length in UTF-16 code units (the plugin checks it), then triples that keep
/// `old.slice(keepStart, keepEnd)` and append `texts[text]` ([`NO_TEXT`] for none). A megabyte
/// tool result with one secret comes back as two slices and a placeholder: the plugin's
/// `slice` and `+` make V8 views of the string it already has, where a whole new text cost a
/// megabyte string to create (a fifth of the call, `perf`) and to collect. Entries with the
/// same old string and the same new text (a tool result's `content` and
/// `details.aggregated`) share one recipe.
#[napi(object, object_from_js = false)]
pub struct PatchReply {
    /// The reply header as JSON, as `moltvault serve` would send it.
    pub head: String,
    /// The inserted texts (placeholders, and whole new texts of short strings), each once.
    pub texts: Vec<Either<Latin1String, String>>,
    /// The distinct recipes.
    pub recipes: Vec<Vec<u32>>,
    /// For each of the header's `patch` entries, in order, the index of its recipe.
    pub index: Vec<u32>,
}

/// The recipe's "no text" index.
pub const NO_TEXT: u32 = u32::MAX;

/// Texts up to this length are sent once per reply (a placeholder that recurs).
const DEDUPE_MAX: usize = 1024;

impl PatchReply {
    /// Builds the reply from the engine's splices, moving their texts.
    fn new(p: engine::PatchEdits) -> napi::Result<PatchReply> {
        let too_big = || napi::Error::from_reason("patch: a text is too long for the addon");
        let u32_of = |n: usize| u32::try_from(n).map_err(|_| too_big());
        let text_index =
            |n: usize| u32_of(n).and_then(|t| if t == NO_TEXT { Err(too_big()) } else { Ok(t) });
        let head = p.header(serde_json::Value::Null).to_string();
        let mut texts: Vec<String> = Vec::new();
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut recipes = Vec::with_capacity(p.splices.len());
        for sp in p.splices {
            let mut r = Vec::with_capacity(1 + 3 * sp.pieces.len());
            r.push(u32_of(sp.old_units)?);
            for piece in sp.pieces {
                r.push(u32_of(piece.keep.start)?);
                r.push(u32_of(piece.keep.end)?);
                let t = if piece.insert.is_empty() {
                    NO_TEXT
                } else if piece.insert.len() <= DEDUPE_MAX {
                    match seen.get(&piece.insert) {
                        Some(&t) => t,
                        None => {
                            let t = text_index(texts.len())?;
                            seen.insert(piece.insert.clone(), t);
                            texts.push(piece.insert);
                            t
                        }
                    }
                } else {
                    texts.push(piece.insert);
                    text_index(texts.len() - 1)?
                };
                r.push(t);
            }
            recipes.push(r);
        }
        let index = p
            .index
            .into_iter()
            .map(u32_of)
            .collect::<napi::Result<Vec<u32>>>()?;
        // ASCII texts are created as Latin-1 strings (a copy, where UTF-8 is a decode).
        let texts = texts
            .into_iter()
            .map(|t| {
                if t.is_ascii() {
                    Either::A(Latin1String::from(t))
                } else {
                    Either::B(t)
                }
            })
            .collect();
        Ok(PatchReply {
            head,
            texts,
            recipes,
            index,
        })
    }
}

/// One redaction engine (one per plugin instance).
#[napi]
pub struct Engine {
    inner: engine::Engine,
}

#[napi]
impl Engine {
    /// Builds the engine exactly as `moltvault serve --stdio` does
    /// ([`engine::EngineSource::with_literals`], then [`engine::EngineSource::engine`]), from the
    /// gateway's literal secrets that `moltvault serve` read: this process never opens the
    /// gateway's databases (a second SQLite in the gateway process would release the gateway's
    /// POSIX locks on them).
    ///
    /// # Errors
    /// Throws when the mode is unknown, a literal is too short, or the rules file or the
    /// fingerprint key cannot be read.
    #[napi(constructor)]
    pub fn new(opts: EngineOptions) -> napi::Result<Engine> {
        guard(|| {
            let mode = match opts.mode.as_str() {
                "all" => Mode::All,
                "tools" => Mode::Tools,
                other => {
                    return Err(napi::Error::from_reason(format!(
                        "unknown mode {other:?} (tools or all)"
                    )));
                }
            };
            let literals = opts
                .literals
                .into_iter()
                .map(|l| engine::LiteralSecret::new(l.id, SecretString::from(l.value)))
                .collect();
            let rules = opts.rules_file.as_deref().map(Path::new);
            let inner =
                engine::EngineSource::with_literals(Path::new(&opts.vault_dir), rules, literals)
                    .and_then(|s| s.engine(mode))
                    .map_err(|e| js_error(&e))?;
            Ok(Engine { inner })
        })
    }

    /// What `moltvault serve`'s hello reports, as JSON: mode, rule and gateway-secret counts,
    /// protocol and version.
    #[napi]
    pub fn info(&self) -> napi::Result<String> {
        guard(|| {
            let mut v = self.inner.info();
            if let serde_json::Value::Object(m) = &mut v {
                m.insert("ok".into(), true.into());
                m.insert("protocol".into(), engine::PROTOCOL.into());
                m.insert("version".into(), env!("CARGO_PKG_VERSION").into());
                m.insert("pid".into(), std::process::id().into());
            }
            Ok(v.to_string())
        })
    }

    /// Redacts one message given as the protocol-2 `patch` payload: the JSON skeleton
    /// (`skeleton_len` bytes) followed by its long strings (`lens`). Returns `null` when the
    /// message holds no secret, else the patch as recipes ([`PatchReply`]). The payload is read
    /// in place (no copy).
    ///
    /// # Errors
    /// Throws when the payload is malformed (the message names sizes, never text) or the engine
    /// panicked.
    #[napi]
    pub fn patch_edits(
        &self,
        payload: BufferSlice,
        skeleton_len: u32,
        lens: Vec<u32>,
    ) -> napi::Result<Option<PatchReply>> {
        guard(|| {
            let lens: Vec<usize> = lens.into_iter().map(|n| n as usize).collect();
            let skeleton_len = skeleton_len as usize;
            if skeleton_len > payload.len() {
                return Err(napi::Error::from_reason(
                    "patch: the skeleton is longer than the payload",
                ));
            }
            match self.inner.patch_edits(skeleton_len, &lens, &payload) {
                Ok(None) => Ok(None),
                Ok(Some(p)) => PatchReply::new(p).map(Some),
                Err(e) => Err(js_error(&e)),
            }
        })
    }
}
