//! Rewrites that take plaintext credentials out of gateway files once they live elsewhere (the
//! vault): dotenv variables and auth-profile credentials. Config files are edited with
//! [`crate::config::edit`].
//!
//! Every write goes through the atomic write funnel and keeps the file's mode; nothing here
//! keeps a plaintext copy of what it removes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use moltvault_vault::fsio::{self, Replace, WriteOptions};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secrets::{Location, SHARED_AUTH_TABLE};

/// The suffix of the copy [`remove_env_vars`] keeps of a dotenv file.
pub const ENV_BACKUP_SUFFIX: &str = ".moltvault-bak";

/// What [`remove_env_vars`] changed in one dotenv file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRewrite {
    /// The variables whose lines were removed, in file order.
    pub removed: Vec<String>,
    /// The copy of the previous file (0600), each removed line replaced by a comment.
    pub backup: PathBuf,
}

/// The variable a dotenv line assigns (`KEY=…` or `export KEY=…`), if any.
fn dotenv_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let t = t.strip_prefix("export ").unwrap_or(t);
    let (k, _) = t.split_once('=')?;
    let k = k.trim();
    (!k.is_empty()).then_some(k)
}

fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Write(fsio::FsError::Symlink(path.to_path_buf())));
    }
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// Removes the lines assigning `vars` from the dotenv file at `file`, atomically and keeping its
/// mode; returns `None` when no line matched.
///
/// The previous file is kept as `<file>.moltvault-bak` (0600), but scrubbed: each removed line
/// is replaced there by the comment `note(var)` (so the backup shows what moved where and never
/// holds the value). Other lines, comments and blank lines are kept byte for byte.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, a write-funnel error (a symlink, a full disk),
/// [`Error::Changed`] when the file changed while it was being rewritten.
pub fn remove_env_vars(
    file: &Path,
    vars: &[&str],
    note: &dyn Fn(&str) -> String,
) -> Result<Option<EnvRewrite>> {
    let original = read_regular(file)?;
    let text = String::from_utf8_lossy(&original);
    let mut kept = String::with_capacity(text.len());
    let mut backup = String::with_capacity(text.len());
    let mut removed = Vec::new();
    for line in text.split_inclusive('\n') {
        match dotenv_key(line) {
            Some(k) if vars.contains(&k) => {
                removed.push(k.to_owned());
                backup.push_str("# ");
                backup.push_str(&note(k).replace('\n', " "));
                backup.push('\n');
            }
            _ => {
                kept.push_str(line);
                backup.push_str(line);
            }
        }
    }
    if removed.is_empty() {
        return Ok(None);
    }
    let backup_path = PathBuf::from(format!("{}{ENV_BACKUP_SUFFIX}", file.display()));
    fsio::write_atomic(
        &backup_path,
        backup.as_bytes(),
        WriteOptions::secret_replace(),
    )?;
    let now = fs::read(file).map_err(|e| Error::io(file, e))?;
    if now != original {
        return Err(Error::Changed {
            path: file.to_path_buf(),
        });
    }
    fsio::write_atomic(file, kept.as_bytes(), WriteOptions::like_existing(file)?)?;
    Ok(Some(EnvRewrite {
        removed,
        backup: backup_path,
    }))
}

/// The agent an auth-profile store belongs to (`…/agents/<agent>/agent/…`).
pub fn agent_of(path: &Path) -> Option<String> {
    let comps: Vec<&str> = path
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    comps
        .windows(3)
        .rev()
        .find(|w| w[0] == "agents" && w[2] == "agent")
        .map(|w| w[1].to_owned())
}

/// An auth-profile credential that can become a sibling SecretRef.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProfileSlot {
    /// The profile id (`openai:default`).
    pub profile: String,
    /// The plaintext field: `key` (`type: "api_key"`) or `token` (`type: "token"`).
    pub field: &'static str,
    /// The sibling ref field the gateway reads instead: `keyRef` or `tokenRef`.
    pub ref_field: &'static str,
}

/// Which auth-profile credential a location points at, when the gateway accepts a SecretRef
/// for it: `profiles.<id>.key` of an `api_key` profile or `profiles.<id>.token` of a `token`
/// profile. OAuth material (`access`, `refresh`) is never eligible (the gateway rejects refs
/// there).
pub fn auth_profile_slot(pointer: &str) -> Option<AuthProfileSlot> {
    let rest = pointer.strip_prefix("/profiles/")?;
    let (profile, field) = rest.rsplit_once('/')?;
    let profile = profile.replace("~1", "/").replace("~0", "~");
    let (field, ref_field) = match field {
        "key" => ("key", "keyRef"),
        "token" => ("token", "tokenRef"),
        _ => return None,
    };
    Some(AuthProfileSlot {
        profile,
        field,
        ref_field,
    })
}

/// Applies the sibling-ref rewrite to one store document; returns whether it changed. Refuses
/// (returns false) when the profile's `type` does not match the field.
fn rewrite_store_doc(doc: &mut Value, slot: &AuthProfileSlot, reference: &Value) -> bool {
    let Some(p) = doc
        .get_mut("profiles")
        .and_then(|p| p.get_mut(&slot.profile))
        .and_then(Value::as_object_mut)
    else {
        return false;
    };
    let want_type = if slot.field == "key" {
        "api_key"
    } else {
        "token"
    };
    if p.get("type").and_then(Value::as_str) != Some(want_type) {
        return false;
    }
    if !p.get(slot.field).is_some_and(Value::is_string) {
        return false;
    }
    p.remove(slot.field);
    p.insert(slot.ref_field.to_owned(), reference.clone());
    true
}

/// Replaces an auth profile's plaintext credential by a sibling SecretRef, as the gateway's own
/// `openclaw secrets apply` does: `key` → `keyRef` (`type: "api_key"`), `token` → `tokenRef`
/// (`type: "token"`), the plaintext field removed. `location` is where the inventory found the
/// credential: an `auth-profiles.json` file (rewritten atomically, mode kept, no backup: the
/// value is in the vault), a row of an agent database's `auth_profile_store` table or the
/// shared store row of `state/openclaw.sqlite` (`config_machine_state`, 2026.9), each updated
/// in one transaction with `secure_delete` on. Returns whether anything changed.
///
/// # Errors
/// Read, parse, SQLite and write-funnel errors, each naming the file.
pub fn set_auth_profile_ref(location: &Location, reference: &Value) -> Result<bool> {
    match location {
        Location::Json { file, pointer } => {
            let Some(slot) = auth_profile_slot(pointer) else {
                return Ok(false);
            };
            let original = read_regular(file)?;
            let mut doc: Value =
                serde_json::from_slice(&original).map_err(|e| Error::json(file, &e))?;
            if !rewrite_store_doc(&mut doc, &slot, reference) {
                return Ok(false);
            }
            let mut out = serde_json::to_vec_pretty(&doc).map_err(|e| Error::json(file, &e))?;
            out.push(b'\n');
            let meta = fs::symlink_metadata(file).map_err(|e| Error::io(file, e))?;
            let opts = WriteOptions {
                mode: meta.mode() & 0o7777,
                replace: Replace::Allow,
                keep_owner: true,
            };
            fsio::write_atomic(file, &out, opts)?;
            Ok(true)
        }
        Location::Sqlite {
            file,
            table,
            row_key,
            pointer,
        } if table == "auth_profile_store" || table == SHARED_AUTH_TABLE => {
            // The per-agent store (2026.6.5 – 2026.8) or the shared one (2026.9).
            let (select, update) = if table == "auth_profile_store" {
                (
                    "SELECT store_json FROM auth_profile_store WHERE store_key = ?1",
                    "UPDATE auth_profile_store SET store_json = ?1 WHERE store_key = ?2",
                )
            } else {
                (
                    "SELECT value_json FROM config_machine_state WHERE state_key = ?1",
                    "UPDATE config_machine_state SET value_json = ?1 WHERE state_key = ?2",
                )
            };
            let table_name: &'static str = if table == "auth_profile_store" {
                "auth_profile_store"
            } else {
                SHARED_AUTH_TABLE
            };
            let Some(slot) = auth_profile_slot(pointer) else {
                return Ok(false);
            };
            let op = "rewriting auth_profile_store";
            let sql = |e| Error::sqlite(file, op, e);
            let mut conn = rusqlite::Connection::open_with_flags(
                file,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(sql)?;
            // Freed pages holding the old JSON are zeroed rather than left in the file.
            conn.pragma_update(None, "secure_delete", "ON")
                .map_err(sql)?;
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
            let json: String = tx.query_row(select, [row_key], |r| r.get(0)).map_err(sql)?;
            let mut doc: Value = serde_json::from_str(&json).map_err(|_| Error::BadRow {
                path: file.clone(),
                table: table_name,
                what: format!("the JSON of row `{row_key}`"),
            })?;
            if !rewrite_store_doc(&mut doc, &slot, reference) {
                return Ok(false);
            }
            let out = serde_json::to_string(&doc).map_err(|e| Error::json(file, &e))?;
            tx.execute(update, rusqlite::params![out, row_key])
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
            // Best effort: fold the WAL back so the old page leaves the WAL file too (a reader
            // the gateway holds open can keep part of it until its next checkpoint).
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_lines_are_removed_and_the_backup_is_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env");
        let value = ["abc", "def", "123"].concat();
        fs::write(
            &f,
            format!("# mine\nOPENAI_API_KEY={value}\nexport  PORT=1\n\nexport SLACK_BOT_TOKEN=\"{value}\"\nLAST=x"),
        )
        .unwrap();
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let r = remove_env_vars(&f, &["OPENAI_API_KEY", "SLACK_BOT_TOKEN"], &|k| {
            format!("{k} moved")
        })
        .unwrap()
        .unwrap();
        assert_eq!(r.removed, ["OPENAI_API_KEY", "SLACK_BOT_TOKEN"]);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "# mine\nexport  PORT=1\n\nLAST=x"
        );
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o640);
        let bak = fs::read_to_string(&r.backup).unwrap();
        assert!(!bak.contains(&value), "{bak}");
        assert!(bak.contains("# OPENAI_API_KEY moved\n"));
        assert_eq!(fs::metadata(&r.backup).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            remove_env_vars(&f, &["OPENAI_API_KEY"], &|k| k.into()).unwrap(),
            None
        );
    }

    #[test]
    fn agent_and_slot_parse() {
        assert_eq!(
            agent_of(Path::new("/s/agents/main/agent/openclaw-agent.sqlite")).as_deref(),
            Some("main")
        );
        assert_eq!(agent_of(Path::new("/s/x.json")), None);
        let s = auth_profile_slot("/profiles/openai:default/key").unwrap();
        assert_eq!(
            (s.profile.as_str(), s.ref_field),
            ("openai:default", "keyRef")
        );
        assert!(auth_profile_slot("/profiles/openai:oauth/access").is_none());
        assert!(auth_profile_slot("/profiles/x/refresh").is_none());
    }

    #[test]
    fn auth_profiles_json_gets_a_sibling_ref() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth-profiles.json");
        let doc = json!({"version":1,"profiles":{
            "anthropic:manual":{"type":"token","provider":"anthropic","token":"t-1"},
            "openai:oauth":{"type":"oauth","provider":"openai","access":"a","refresh":"r"}}});
        fs::write(&f, serde_json::to_vec(&doc).unwrap()).unwrap();
        let r = json!({"source":"exec","provider":"moltvault","id":"x"});
        let loc = |p: &str| Location::Json {
            file: f.clone(),
            pointer: p.into(),
        };
        assert!(set_auth_profile_ref(&loc("/profiles/anthropic:manual/token"), &r).unwrap());
        assert!(!set_auth_profile_ref(&loc("/profiles/openai:oauth/access"), &r).unwrap());
        // A `key` pointer on a token profile is refused (type mismatch).
        assert!(!set_auth_profile_ref(&loc("/profiles/anthropic:manual/key"), &r).unwrap());
        let now: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        let p = &now["profiles"]["anthropic:manual"];
        assert_eq!(p["tokenRef"], r);
        assert!(p.get("token").is_none());
        assert_eq!(now["profiles"]["openai:oauth"]["access"], "a");
    }

    #[test]
    fn auth_profile_store_row_gets_a_sibling_ref() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("openclaw-agent.sqlite");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE auth_profile_store (store_key TEXT PRIMARY KEY, store_json TEXT NOT NULL, updated_at INTEGER);",
        )
        .unwrap();
        let doc = json!({"version":1,"profiles":{"openai:api-key":{"type":"api_key","provider":"openai","key":"k-1"}}});
        conn.execute(
            "INSERT INTO auth_profile_store VALUES ('primary', ?1, 0)",
            [doc.to_string()],
        )
        .unwrap();
        drop(conn);
        let r = json!({"source":"exec","provider":"moltvault","id":"y"});
        let loc = Location::Sqlite {
            file: db.clone(),
            table: "auth_profile_store".into(),
            row_key: "primary".into(),
            pointer: "/profiles/openai:api-key/key".into(),
        };
        assert!(set_auth_profile_ref(&loc, &r).unwrap());
        assert!(!set_auth_profile_ref(&loc, &r).unwrap(), "idempotent");
        let conn = rusqlite::Connection::open(&db).unwrap();
        let json: String = conn
            .query_row("SELECT store_json FROM auth_profile_store", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!json.contains("k-1"));
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["profiles"]["openai:api-key"]["keyRef"], r);
    }
}
