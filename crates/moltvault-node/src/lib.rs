//! `moltvault.node`: the gateway plugin's redaction engine loaded into the gateway's own Node
//! process, so a synchronous persistence hook costs a function call instead of a round trip to a
//! `moltvault serve --stdio` child (docs/plugin.md, "The bridge").
//!
//! It owns no redaction logic. [`Engine::new`] builds the engine with
//! [`moltvault_gateway::engine::EngineSource`], as `moltvault serve --stdio` does, from the
//! gateway's literal secrets that `serve` read (its `inputs` reply), and
//! [`Engine::patch`] answers with [`moltvault_gateway::engine::Engine::patch`], the function
//! behind the protocol-2 `patch` request. The JavaScript side (`plugins/openclaw/bridge.js`,
//! `AddonEngine`) encodes messages with the same codec as the stdio bridge and applies the same
//! patch, so both bridges redact byte for byte alike.
//!
//! Every entry point runs under `catch_unwind`: a Rust panic becomes a JavaScript exception
//! (which the plugin's failure policy handles) and never unwinds into Node.
//!
//! ```js
//! const { Engine, version, protocol } = require("./moltvault.node");
//! // inputs: `moltvault serve --stdio`'s answer to {"op":"inputs"}
//! const engine = new Engine({ vaultDir: inputs.vaultDir, literals: inputs.literals, mode: "all" });
//! const reply = engine.patch(payload, skeletonLen, stringLens); // null when clean
//! ```
// The FFI glue `#[napi]` expands to is unsafe code by nature (napi-rs checks it); this crate
// itself writes none.
#![allow(unsafe_code)]

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

/// The plugin protocol whose `patch` request and reply [`Engine::patch`] implements.
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
/// (JSON: `findings`, `patch` entries, `len`) and the new texts it describes.
///
/// The texts come back as JavaScript strings, not as one `Buffer` of Rust memory: an external
/// buffer lives until V8 collects it, so each megabyte message kept its memory from being
/// reused, which doubled the time of a 1 MB message with a secret (measured). Identical texts
/// travel once (a tool result holds its output twice, `content` and `details.aggregated`, and
/// both usually redact alike), and ASCII texts are created as Latin-1 strings (a copy, where a
/// UTF-8 string is a decode): making the megabyte strings was a fifth of the 1 MB hook.
#[napi(object, object_from_js = false)]
pub struct PatchReply {
    /// The reply header as JSON, as `moltvault serve` would send it.
    pub head: String,
    /// The distinct new texts.
    pub texts: Vec<Either<Latin1String, String>>,
    /// For each of the header's `patch` entries, in order, the index of its new text in `texts`.
    pub index: Vec<u32>,
}

impl PatchReply {
    /// Builds the reply from the engine's patch, moving its texts.
    fn new(p: engine::PatchTexts) -> napi::Result<PatchReply> {
        let head = p.header(serde_json::Value::Null).to_string();
        let mut distinct: Vec<String> = Vec::new();
        let mut index = Vec::with_capacity(p.texts.len());
        for t in p.texts {
            // Against the first few distinct texts only (`==` compares lengths first), so a
            // message with many findings stays linear.
            let i = match distinct.iter().take(16).position(|d| *d == t) {
                Some(i) => i,
                None => {
                    distinct.push(t);
                    distinct.len() - 1
                }
            };
            index.push(
                u32::try_from(i).map_err(|_| napi::Error::from_reason("patch: too many texts"))?,
            );
        }
        let texts = distinct
            .into_iter()
            .map(|t| {
                if t.is_ascii() {
                    Either::A(Latin1String::from(t))
                } else {
                    Either::B(t)
                }
            })
            .collect();
        Ok(PatchReply { head, texts, index })
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
    /// message holds no secret, else the patch. The payload is read in place (no copy).
    ///
    /// # Errors
    /// Throws when the payload is malformed (the message names sizes, never text) or the engine
    /// panicked.
    #[napi]
    pub fn patch(
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
            match self.inner.patch_texts(skeleton_len, &lens, &payload) {
                Ok(None) => Ok(None),
                Ok(Some(p)) => PatchReply::new(p).map(Some),
                Err(e) => Err(js_error(&e)),
            }
        })
    }
}
