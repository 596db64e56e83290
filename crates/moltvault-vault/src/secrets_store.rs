//! The vault's secret store: one age file per secret, `<vault dir>/secrets/<name>.age`, encrypted
//! to the vault recipient (so storing needs no unlock), plus a plain index of metadata without
//! values (`secrets/index.json`: id, provider, origin, fp8, created, file).
//!
//! Ids follow the gateway's exec SecretRef grammar (`^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,255}$`, no
//! `.` or `..` segment), so an id can be handed to the gateway as is. File names are the first
//! 32 hex digits of SHA-256(id): ids may hold `/` and `:`, names never do.
//!
//! ```
//! use moltvault_vault::secrets_store::{NewSecret, SecretsStore};
//! use moltvault_vault::{FixedPassphrase, InitOptions, Vault};
//! use secrecy::{ExposeSecret, SecretString};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut opts = InitOptions::new(SecretString::from("correct horse"));
//! opts.work_factor = 10; // tests only
//! let (vault, _recovery) = Vault::init(dir.path(), opts)?;
//! let mut store = SecretsStore::open(dir.path())?;
//! let meta = NewSecret { provider: "openai".into(), origin: "manual".into(), fp8: "0badf00d".into() };
//! store.set("providers/openai/apiKey", &SecretString::from("sk-example"), vault.recipient(), meta)?;
//! let identity = vault.unlock(&FixedPassphrase(SecretString::from("correct horse")))?;
//! let value = store.reveal("providers/openai/apiKey", &identity)?.unwrap();
//! assert_eq!(value.expose_secret(), "sk-example");
//! # Ok(()) }
//! ```

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::fsio::{self, AtomicFile, WriteOptions};
use crate::seal::{decrypt_reader, encrypt_to, io_err, open_regular};
use crate::{Error, Identity, Result};

/// The store's directory inside the vault directory.
pub const SECRETS_DIR: &str = "secrets";
/// The metadata index inside [`SECRETS_DIR`].
pub const INDEX_FILE: &str = "index.json";
/// The largest value the store keeps (a secret, not a file store).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Metadata of one stored secret; it never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// The id (the exec SecretRef id the gateway asks for).
    pub id: String,
    /// What the secret is for (`openai`, `gateway`, `telegram`…).
    pub provider: String,
    /// Where it came from (`manual`, `config:models.providers.openai.apiKey`, `env:…`).
    pub origin: String,
    /// The first 8 hex digits of its keyed fingerprint (matches redaction placeholders).
    pub fp8: String,
    /// When it was stored (RFC 3339, UTC).
    pub created: String,
    /// The encrypted file's name inside [`SECRETS_DIR`].
    pub file: String,
}

/// Metadata given when storing a secret.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// What the secret is for.
    pub provider: String,
    /// Where it came from.
    pub origin: String,
    /// The first 8 hex digits of its keyed fingerprint.
    pub fp8: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    secrets: Vec<SecretMeta>,
}

/// The secret store of one vault directory.
#[derive(Debug)]
pub struct SecretsStore {
    dir: PathBuf,
    index: Index,
}

/// Whether `id` is a valid exec SecretRef id (FACTS §3.4): `^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,255}$`
/// with no `.` or `..` path segment.
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._:/#-".contains(c))
        && !id.split('/').any(|seg| seg == "." || seg == "..")
}

/// The file name of an id: 32 hex digits of SHA-256(id), then `.age`.
fn file_name(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    format!("{}.age", &hex::encode(digest)[..32])
}

fn invalid_id(path: &Path) -> Error {
    io_err(
        "store a secret in",
        path,
        io::Error::new(io::ErrorKind::InvalidInput, "invalid secret id"),
    )
}

impl SecretsStore {
    /// Opens the store of the vault in `vault_dir` (an empty store when none exists yet).
    ///
    /// # Errors
    /// Fails when the index exists but cannot be read or parsed.
    pub fn open(vault_dir: &Path) -> Result<SecretsStore> {
        let dir = vault_dir.join(SECRETS_DIR);
        let path = dir.join(INDEX_FILE);
        let index = match open_regular(&path) {
            Ok(mut f) => {
                let mut text = String::new();
                f.read_to_string(&mut text)
                    .map_err(|e| io_err("read", &path, e))?;
                serde_json::from_str(&text).map_err(|e| Error::Config {
                    path: path.clone(),
                    detail: format!("invalid index at line {}", e.line()),
                })?
            }
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Index::default()
            }
            Err(e) => return Err(e),
        };
        Ok(SecretsStore { dir, index })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every stored secret's metadata, sorted by id.
    pub fn list(&self) -> &[SecretMeta] {
        &self.index.secrets
    }

    /// The metadata of one id.
    pub fn get(&self, id: &str) -> Option<&SecretMeta> {
        self.index.secrets.iter().find(|m| m.id == id)
    }

    /// Stores (or replaces) a secret, encrypted to `recipient`; no unlock is needed.
    ///
    /// # Errors
    /// Fails on an invalid id, a value over [`MAX_VALUE_BYTES`], or a write failure (the store
    /// is then unchanged: the value file and the index are each replaced atomically, the index
    /// last).
    pub fn set(
        &mut self,
        id: &str,
        value: &SecretString,
        recipient: &age::x25519::Recipient,
        meta: NewSecret,
    ) -> Result<()> {
        let name = file_name(id);
        let path = self.dir.join(&name);
        if !valid_id(id) {
            return Err(invalid_id(&path));
        }
        if value.expose_secret().len() > MAX_VALUE_BYTES {
            return Err(io_err(
                "store a secret in",
                &path,
                io::Error::new(io::ErrorKind::InvalidInput, "the value is over 64 KiB"),
            ));
        }
        fsio::create_secret_dir_all(&self.dir)?;
        let file = AtomicFile::create(&path, WriteOptions::secret_replace())?;
        let mut w = encrypt_to(file, recipient).map_err(|source| Error::Encrypt {
            path: path.clone(),
            source,
        })?;
        w.write_all(value.expose_secret().as_bytes())
            .map_err(|source| Error::Encrypt {
                path: path.clone(),
                source,
            })?;
        let file = w.finish().map_err(|source| Error::Encrypt {
            path: path.clone(),
            source,
        })?;
        file.commit()?;
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let entry = SecretMeta {
            id: id.to_string(),
            provider: meta.provider,
            origin: meta.origin,
            fp8: meta.fp8,
            created,
            file: name,
        };
        match self.index.secrets.iter_mut().find(|m| m.id == id) {
            Some(m) => *m = entry,
            None => self.index.secrets.push(entry),
        }
        self.index.secrets.sort_by(|a, b| a.id.cmp(&b.id));
        self.write_index()
    }

    /// Decrypts one secret; `Ok(None)` when the id is not stored.
    ///
    /// # Errors
    /// Fails when the file is missing, not a regular file, damaged, or for another identity.
    pub fn reveal(&self, id: &str, identity: &Identity) -> Result<Option<SecretString>> {
        let Some(meta) = self.get(id) else {
            return Ok(None);
        };
        let path = self.dir.join(&meta.file);
        let file = open_regular(&path)?;
        let mut r = decrypt_reader(file, identity).map_err(|kind| Error::Decrypt {
            path: path.clone(),
            kind,
        })?;
        let mut buf = Zeroizing::new(Vec::new());
        (&mut r)
            .take(MAX_VALUE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Decrypt {
                path: path.clone(),
                kind: crate::DecryptFailure::from_io(&e),
            })?;
        let text = std::str::from_utf8(&buf).map_err(|_| Error::Decrypt {
            path: path.clone(),
            kind: crate::DecryptFailure::Damaged,
        })?;
        Ok(Some(SecretString::from(text.to_string())))
    }

    /// Removes a secret (its file, then its index entry); `Ok(false)` when it was not stored.
    ///
    /// # Errors
    /// Fails when the file or the index cannot be updated.
    pub fn remove(&mut self, id: &str) -> Result<bool> {
        let Some(pos) = self.index.secrets.iter().position(|m| m.id == id) else {
            return Ok(false);
        };
        let meta = self.index.secrets.remove(pos);
        self.write_index()?;
        let path = self.dir.join(&meta.file);
        match fsio::remove_durably(&path) {
            Ok(()) => Ok(true),
            Err(fsio::FsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn write_index(&self) -> Result<()> {
        let index = Index {
            version: 1,
            secrets: self.index.secrets.clone(),
        };
        let mut text = serde_json::to_vec_pretty(&index).map_err(|e| Error::Config {
            path: self.dir.join(INDEX_FILE),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        fsio::write_atomic(
            self.dir.join(INDEX_FILE),
            &text,
            WriteOptions::secret_replace(),
        )?;
        Ok(())
    }
}

/// The largest exec-provider request read from stdin (the gateway's default batch limit is
/// 256 KiB).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// The most ids answered in one request (the gateway's default `maxRefsPerProvider`).
pub const MAX_REQUEST_IDS: usize = 512;

/// An exec secrets-provider request: `{"protocolVersion":1,"provider":"…","ids":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRequest {
    /// The provider alias the gateway used.
    pub provider: String,
    /// The ids asked for, duplicates removed, in request order.
    pub ids: Vec<String>,
}

/// Why a whole request was refused (answered as a protocol-level error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The request is over [`MAX_REQUEST_BYTES`].
    #[error("the request is over {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// The request is not the expected JSON object.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The request uses a protocol version this provider does not speak.
    #[error("unsupported protocolVersion {0} (this provider speaks 1)")]
    Version(String),
    /// The request asks for more than [`MAX_REQUEST_IDS`] ids.
    #[error("the request asks for {0} ids (at most {MAX_REQUEST_IDS})")]
    TooManyIds(usize),
}

impl ProtocolError {
    /// The machine-readable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge => "REQUEST_TOO_LARGE",
            ProtocolError::Malformed(_) => "INVALID_REQUEST",
            ProtocolError::Version(_) => "UNSUPPORTED_PROTOCOL_VERSION",
            ProtocolError::TooManyIds(_) => "TOO_MANY_IDS",
        }
    }

    /// The protocol-level error document written on stdout.
    pub fn to_json(&self) -> Vec<u8> {
        let doc = serde_json::json!({
            "protocolVersion": 1,
            "values": {},
            "error": {"code": self.code(), "message": self.to_string()},
        });
        let mut out = doc.to_string().into_bytes();
        out.push(b'\n');
        out
    }
}

/// Parses a request read from stdin.
///
/// # Errors
/// A [`ProtocolError`] saying what is wrong; never echoes request content.
pub fn parse_request(bytes: &[u8]) -> std::result::Result<ProviderRequest, ProtocolError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(ProtocolError::TooLarge);
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ProtocolError::Malformed(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| ProtocolError::Malformed("not a JSON object".into()))?;
    match obj.get("protocolVersion") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => {}
        Some(other) => {
            let shown: String = other.to_string().chars().take(16).collect();
            return Err(ProtocolError::Version(shown));
        }
        None => return Err(ProtocolError::Malformed("no protocolVersion".into())),
    }
    let provider = match obj.get("provider") {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(ProtocolError::Malformed("provider is not a string".into())),
    };
    let ids = obj
        .get("ids")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| ProtocolError::Malformed("ids is not an array".into()))?;
    if ids.len() > MAX_REQUEST_IDS {
        return Err(ProtocolError::TooManyIds(ids.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id
            .as_str()
            .ok_or_else(|| ProtocolError::Malformed("an id is not a string".into()))?;
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    Ok(ProviderRequest { provider, ids: out })
}

/// The answer to a request: values for the ids found, a per-id error for the others. `Debug`
/// never shows a value.
pub struct ProviderResponse {
    values: Vec<(String, SecretString)>,
    errors: Vec<(String, &'static str, String)>,
}

impl std::fmt::Debug for ProviderResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderResponse")
            .field(
                "values",
                &self.values.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("errors", &self.errors)
            .finish()
    }
}

impl ProviderResponse {
    /// The ids answered with a value.
    pub fn value_ids(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(k, _)| k.as_str())
    }

    /// The per-id errors: (id, code, message).
    pub fn errors(&self) -> &[(String, &'static str, String)] {
        &self.errors
    }

    /// The response document `{"protocolVersion":1,"values":{…},"errors":{…}}`, in a buffer
    /// that is zeroed when dropped.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(256));
        out.extend_from_slice(b"{\"protocolVersion\":1,\"values\":{");
        for (i, (id, v)) in self.values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing JSON strings to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, id);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, v.expose_secret());
        }
        out.extend_from_slice(b"}");
        if !self.errors.is_empty() {
            out.extend_from_slice(b",\"errors\":{");
            for (i, (id, code, message)) in self.errors.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, id);
                out.push(b':');
                let _ = serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"code": code, "message": message}),
                );
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"}\n");
        out
    }
}

/// Answers a request from the store. `unlock` is called once, and only if some id is stored;
/// when it fails, every stored id gets a `LOCKED` error carrying its message.
pub fn answer(
    store: &SecretsStore,
    request: &ProviderRequest,
    unlock: impl FnOnce() -> std::result::Result<Identity, String>,
) -> ProviderResponse {
    let mut resp = ProviderResponse {
        values: Vec::new(),
        errors: Vec::new(),
    };
    let mut identity: Option<std::result::Result<Identity, String>> = None;
    let mut unlock = Some(unlock);
    for id in &request.ids {
        if !valid_id(id) {
            resp.errors.push((
                id.clone(),
                "INVALID_ID",
                "not a valid exec secret id".into(),
            ));
            continue;
        }
        if store.get(id).is_none() {
            resp.errors.push((
                id.clone(),
                "NOT_FOUND",
                "no such secret in the moltvault store".into(),
            ));
            continue;
        }
        let ident = identity.get_or_insert_with(|| match unlock.take() {
            Some(f) => f(),
            None => Err("the vault is locked".into()),
        });
        match ident {
            Err(why) => resp.errors.push((
                id.clone(),
                "LOCKED",
                format!("the moltvault vault is locked: {why}"),
            )),
            Ok(identity) => match store.reveal(id, identity) {
                Ok(Some(v)) => resp.values.push((id.clone(), v)),
                Ok(None) => resp.errors.push((
                    id.clone(),
                    "NOT_FOUND",
                    "no such secret in the moltvault store".into(),
                )),
                Err(e) => resp.errors.push((id.clone(), "UNREADABLE", e.to_string())),
            },
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FixedPassphrase, InitOptions, Vault};

    fn vault() -> (tempfile::TempDir, Vault, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = InitOptions::new(SecretString::from("pass phrase"));
        opts.work_factor = 10;
        let (vault, _) = Vault::init(dir.path(), opts).unwrap();
        let id = vault
            .unlock(&FixedPassphrase(SecretString::from("pass phrase")))
            .unwrap();
        (dir, vault, id)
    }

    fn meta() -> NewSecret {
        NewSecret {
            provider: "openai".into(),
            origin: "manual".into(),
            fp8: "0a1b2c3d".into(),
        }
    }

    #[test]
    fn set_reveal_replace_remove_round_trip_and_index_holds_no_value() {
        let (dir, vault, identity) = vault();
        let mut store = SecretsStore::open(dir.path()).unwrap();
        let value = format!("sk-{}", "value-one-0123456789");
        store
            .set(
                "providers/openai/apiKey",
                &SecretString::from(value.clone()),
                vault.recipient(),
                meta(),
            )
            .unwrap();
        let again = SecretsStore::open(dir.path()).unwrap();
        assert_eq!(again.list().len(), 1);
        let got = again
            .reveal("providers/openai/apiKey", &identity)
            .unwrap()
            .unwrap();
        assert_eq!(got.expose_secret(), value);
        let index = std::fs::read_to_string(dir.path().join("secrets/index.json")).unwrap();
        assert!(!index.contains(&value));
        assert!(index.contains("0a1b2c3d"));
        let file = dir.path().join("secrets").join(&again.list()[0].file);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("secrets"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // The stored file is standard age: the real `age` CLI reads it with the identity.
        let key_file = dir.path().join("identity.txt");
        #[allow(clippy::disallowed_methods)]
        std::fs::write(&key_file, identity.to_identity_file().expose_secret()).unwrap();
        let out = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key_file)
            .arg(&file)
            .output()
            .expect("the age CLI is installed by .ci/install-deps");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, value.as_bytes());

        store
            .set(
                "providers/openai/apiKey",
                &SecretString::from("second"),
                vault.recipient(),
                meta(),
            )
            .unwrap();
        assert_eq!(
            store
                .reveal("providers/openai/apiKey", &identity)
                .unwrap()
                .unwrap()
                .expose_secret(),
            "second"
        );
        assert_eq!(store.list().len(), 1);
        assert!(store.reveal("nope", &identity).unwrap().is_none());
        assert!(store.remove("providers/openai/apiKey").unwrap());
        assert!(!store.remove("providers/openai/apiKey").unwrap());
        assert!(!file.exists());
        assert!(SecretsStore::open(dir.path()).unwrap().list().is_empty());
    }

    #[test]
    fn ids_follow_the_exec_secretref_grammar() {
        for ok in ["a", "providers/openai/apiKey", "gateway:token#1", "A.b-c_d"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            ".hidden",
            "a/../b",
            "a/./b",
            "sp ace",
            "é",
            &"a".repeat(257),
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
        let (dir, vault, _) = vault();
        let mut store = SecretsStore::open(dir.path()).unwrap();
        assert!(
            store
                .set("../x", &SecretString::from("v"), vault.recipient(), meta())
                .is_err()
        );
        assert!(store.list().is_empty());
    }

    #[test]
    fn a_damaged_value_file_is_a_clear_error() {
        let (dir, vault, identity) = vault();
        let mut store = SecretsStore::open(dir.path()).unwrap();
        store
            .set("k", &SecretString::from("v"), vault.recipient(), meta())
            .unwrap();
        let file = dir.path().join("secrets").join(&store.list()[0].file);
        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        #[allow(clippy::disallowed_methods)]
        std::fs::write(&file, &bytes).unwrap();
        let err = store.reveal("k", &identity).unwrap_err();
        assert!(matches!(err, Error::Decrypt { .. }), "{err}");
        assert!(err.to_string().contains(&store.list()[0].file));
    }
    #[test]
    fn provider_answers_values_and_per_id_errors() {
        let (dir, vault, identity) = vault();
        let mut store = SecretsStore::open(dir.path()).unwrap();
        let secret = format!("{}-{}", "tok", "0123456789abcdef");
        store
            .set(
                "gateway/token",
                &SecretString::from(secret.clone()),
                vault.recipient(),
                meta(),
            )
            .unwrap();
        let req = parse_request(
            br#"{"protocolVersion":1,"provider":"moltvault","ids":["gateway/token","missing","gateway/token","../x"]}"#,
        )
        .unwrap();
        assert_eq!(req.ids.len(), 3, "duplicates removed");
        let mut unlocked = 0;
        let resp = answer(&store, &req, || {
            unlocked += 1;
            Ok(identity)
        });
        assert_eq!(unlocked, 1);
        let json: serde_json::Value = serde_json::from_slice(&resp.to_json()).unwrap();
        assert_eq!(json["protocolVersion"], 1);
        assert_eq!(json["values"]["gateway/token"], secret.as_str());
        assert_eq!(json["errors"]["missing"]["code"], "NOT_FOUND");
        assert_eq!(json["errors"]["../x"]["code"], "INVALID_ID");
        assert!(!format!("{resp:?}").contains(&secret));

        // Locked: a clear per-id error, no value; unknown ids need no unlock.
        let resp = answer(&store, &req, || Err("no unlock method available".into()));
        let json: serde_json::Value = serde_json::from_slice(&resp.to_json()).unwrap();
        assert_eq!(json["values"], serde_json::json!({}));
        assert_eq!(json["errors"]["gateway/token"]["code"], "LOCKED");
        let only_missing = parse_request(br#"{"protocolVersion":1,"ids":["missing"]}"#).unwrap();
        let resp = answer(&store, &only_missing, || panic!("must not unlock"));
        assert_eq!(resp.errors().len(), 1);
    }

    #[test]
    fn malformed_requests_are_protocol_errors_that_echo_nothing() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "INVALID_REQUEST"),
            (b"not json sk-secret-looking", "INVALID_REQUEST"),
            (b"[1,2]", "INVALID_REQUEST"),
            (
                br#"{"protocolVersion":2,"ids":[]}"#,
                "UNSUPPORTED_PROTOCOL_VERSION",
            ),
            (br#"{"ids":[]}"#, "INVALID_REQUEST"),
            (br#"{"protocolVersion":1,"ids":"a"}"#, "INVALID_REQUEST"),
            (br#"{"protocolVersion":1,"ids":[1]}"#, "INVALID_REQUEST"),
        ];
        for (input, code) in cases {
            let err = parse_request(input).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(input));
            let doc = String::from_utf8(err.to_json()).unwrap();
            assert!(!doc.contains("sk-secret"), "{doc}");
        }
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(parse_request(&huge).unwrap_err(), ProtocolError::TooLarge);
        let many: Vec<String> = (0..=MAX_REQUEST_IDS).map(|i| format!("id{i}")).collect();
        let req = serde_json::json!({"protocolVersion": 1, "ids": many}).to_string();
        assert!(matches!(
            parse_request(req.as_bytes()).unwrap_err(),
            ProtocolError::TooManyIds(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_request_bytes_parse_or_fail_with_a_clean_error_document(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)
        ) {
            match parse_request(&bytes) {
                Ok(r) => proptest::prop_assert!(r.ids.len() <= MAX_REQUEST_IDS),
                Err(e) => {
                    let doc: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
                    proptest::prop_assert_eq!(doc["error"]["code"].as_str(), Some(e.code()));
                }
            }
        }

        #[test]
        fn well_formed_requests_keep_every_id_once_in_order(
            ids in proptest::collection::vec("[A-Za-z0-9][A-Za-z0-9._:/#-]{0,20}", 0..40)
        ) {
            let req = serde_json::json!({"protocolVersion": 1, "provider": "p", "ids": ids});
            let parsed = parse_request(req.to_string().as_bytes()).unwrap();
            let mut want: Vec<String> = Vec::new();
            for id in &ids {
                if !want.contains(id) {
                    want.push(id.clone());
                }
            }
            proptest::prop_assert_eq!(parsed.ids, want);
        }
    }
}
