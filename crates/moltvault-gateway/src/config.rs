//! The gateway config: JSON5 read with `$include` resolution, lookups by path, and atomic edits.
//!
//! The gateway itself writes its config back as plain JSON (comments dropped), and so does
//! [`edit`]: a JSON5 file with comments loses them on the first edit. [`edit`] therefore keeps a
//! byte-for-byte copy of the previous file in `<config>.moltvault-bak` (same mode) before
//! replacing it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use moltvault_vault::fsio::{self, Replace, WriteOptions};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The key the gateway uses for config includes.
pub const INCLUDE_KEY: &str = "$include";
/// The gateway's include depth limit (`MAX_INCLUDE_DEPTH`).
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Suffix of the copy [`edit`] keeps of the file it replaces.
pub const BACKUP_SUFFIX: &str = ".moltvault-bak";

/// One file that contributes to the config: the main file or an included one.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The file.
    pub path: PathBuf,
    /// Its parsed content, as written (its own `$include` key left in place).
    pub value: Value,
    /// The config path (segments) where this file's content is merged; empty for the main file
    /// and for top-level includes.
    pub mount: Vec<String>,
}

/// A parsed gateway config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main config file.
    pub path: PathBuf,
    /// The effective config: includes merged, `$include` keys removed, `${VAR}` left as written.
    pub merged: Value,
    /// Every file read: the main file first, then included files in the order met.
    pub sources: Vec<ConfigSource>,
}

impl Config {
    /// Reads and parses `path` and every file it includes.
    ///
    /// # Errors
    /// I/O and parse errors naming the file, [`Error::IncludeDepth`] for deep or looping includes.
    pub fn load(path: &Path) -> Result<Config> {
        let mut sources = Vec::new();
        let merged = load_file(path, Vec::new(), 0, &mut Vec::new(), &mut sources)?;
        Ok(Config {
            path: path.to_path_buf(),
            merged,
            sources,
        })
    }

    /// The included files (every source but the main file).
    pub fn includes(&self) -> Vec<&Path> {
        self.sources
            .iter()
            .skip(1)
            .map(|s| s.path.as_path())
            .collect()
    }

    /// Looks up a dotted path (`gateway.auth.token`) in the effective config.
    pub fn get(&self, dotted: &str) -> Option<&Value> {
        get_path(&self.merged, &split_path(dotted))
    }
}

/// Splits a dotted config path into segments (`a.b.c` → `["a","b","c"]`).
pub fn split_path(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_owned).collect()
}

/// Looks up `path` (object keys, or array indices) in `root`.
pub fn get_path<'a, S: AsRef<str>>(root: &'a Value, path: &[S]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, seg| match v {
        Value::Object(m) => m.get(seg.as_ref()),
        Value::Array(a) => a.get(seg.as_ref().parse::<usize>().ok()?),
        _ => None,
    })
}

/// Parses JSON5 text (the gateway's config syntax) into a JSON value.
///
/// # Errors
/// [`Error::Parse`] with the position only (never the offending text).
pub fn parse_json5(path: &Path, text: &str) -> Result<Value> {
    json5::from_str(text).map_err(|e| Error::json5(path, &e))
}

fn load_file(
    path: &Path,
    mount: Vec<String>,
    depth: usize,
    stack: &mut Vec<PathBuf>,
    sources: &mut Vec<ConfigSource>,
) -> Result<Value> {
    let canon = fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    if depth > MAX_INCLUDE_DEPTH || stack.contains(&canon) {
        return Err(Error::IncludeDepth {
            path: path.to_path_buf(),
            max: MAX_INCLUDE_DEPTH,
        });
    }
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value = parse_json5(path, &text)?;
    sources.push(ConfigSource {
        path: path.to_path_buf(),
        value: value.clone(),
        mount: mount.clone(),
    });
    stack.push(canon);
    let base = path.parent().unwrap_or(Path::new("."));
    let merged = resolve(value, base, &mount, depth, stack, sources)?;
    stack.pop();
    Ok(merged)
}

fn resolve(
    value: Value,
    base: &Path,
    mount: &[String],
    depth: usize,
    stack: &mut Vec<PathBuf>,
    sources: &mut Vec<ConfigSource>,
) -> Result<Value> {
    match value {
        Value::Object(mut map) => {
            let include = map.remove(INCLUDE_KEY);
            let mut out = Value::Object(Map::new());
            if let Some(inc) = include {
                let list: Vec<&str> = match &inc {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                for rel in list {
                    let p = base.join(rel);
                    let v = load_file(&p, mount.to_vec(), depth + 1, stack, sources)?;
                    deep_merge(&mut out, v);
                }
            }
            let mut own = Map::new();
            for (k, v) in map {
                let mut m = mount.to_vec();
                m.push(k.clone());
                own.insert(k, resolve(v, base, &m, depth, stack, sources)?);
            }
            deep_merge(&mut out, Value::Object(own));
            Ok(out)
        }
        Value::Array(a) => Ok(Value::Array(
            a.into_iter()
                .map(|v| resolve(v, base, mount, depth, stack, sources))
                .collect::<Result<_>>()?,
        )),
        other => Ok(other),
    }
}

/// Merges `top` into `base`: objects key by key (recursively), anything else replaced.
pub fn deep_merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

/// One change [`edit`] applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Sets the value at the path, creating missing objects on the way.
    Set(Vec<String>, Value),
    /// Removes the value at the path (a missing path is not an error).
    Remove(Vec<String>),
}

impl Edit {
    /// A [`Edit::Set`] at a dotted path.
    pub fn set(dotted: &str, value: Value) -> Edit {
        Edit::Set(split_path(dotted), value)
    }

    /// A [`Edit::Remove`] at a dotted path.
    pub fn remove(dotted: &str) -> Edit {
        Edit::Remove(split_path(dotted))
    }
}

/// What [`edit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOutcome {
    /// Whether the file was rewritten (false when the edits changed nothing).
    pub changed: bool,
    /// The copy of the previous content, when the file was rewritten.
    pub backup: Option<PathBuf>,
}

/// Applies `edits` to the config file at `path` and replaces it atomically.
///
/// The edits apply to the main file only; a key that lives in an included file is overridden by
/// setting it here (the main file's keys win when the gateway merges). The file is re-read just
/// before the swap, and nothing is written if it changed meanwhile. The previous content is kept
/// in `<path>.moltvault-bak` with the same mode; the new file keeps the original mode and owner.
/// The output is pretty-printed JSON: JSON5 comments are lost (as with the gateway's own writes).
///
/// # Errors
/// Read/parse errors, [`Error::ConfigPath`] when a path runs through a non-object or names a key
/// only an included file defines, [`Error::Changed`], and write-funnel errors.
pub fn edit(path: &Path, edits: &[Edit]) -> Result<EditOutcome> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(fsio_symlink(path));
    }
    let original = fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8_lossy(&original);
    let mut doc = parse_json5(path, &text)?;
    let before = doc.clone();
    for e in edits {
        match e {
            Edit::Set(p, v) => set_path(path, &mut doc, p, v.clone())?,
            Edit::Remove(p) => {
                if !remove_path(&mut doc, p) && path_defined_by_include(path, p)? {
                    return Err(Error::ConfigPath {
                        path: path.to_path_buf(),
                        key: p.join("."),
                        reason: "it is defined in an included file; edit that file".to_owned(),
                    });
                }
            }
        }
    }
    if doc == before {
        return Ok(EditOutcome {
            changed: false,
            backup: None,
        });
    }
    let mut out = serde_json::to_vec_pretty(&doc).map_err(|e| Error::json(path, &e))?;
    out.push(b'\n');
    let backup = PathBuf::from(format!("{}{BACKUP_SUFFIX}", path.display()));
    let mode = meta.mode() & 0o7777;
    fsio::write_atomic(
        &backup,
        &original,
        WriteOptions {
            mode,
            replace: Replace::Allow,
            keep_owner: true,
        },
    )?;
    let now = fs::read(path).map_err(|e| Error::io(path, e))?;
    if now != original {
        return Err(Error::Changed {
            path: path.to_path_buf(),
        });
    }
    fsio::write_atomic(path, &out, WriteOptions::like_existing(path)?)?;
    Ok(EditOutcome {
        changed: true,
        backup: Some(backup),
    })
}

fn fsio_symlink(path: &Path) -> Error {
    Error::Write(fsio::FsError::Symlink(path.to_path_buf()))
}

fn path_defined_by_include(path: &Path, p: &[String]) -> Result<bool> {
    Ok(get_path(&Config::load(path)?.merged, p).is_some())
}

fn set_path(file: &Path, doc: &mut Value, p: &[String], v: Value) -> Result<()> {
    let err = |i: usize, what: &str| Error::ConfigPath {
        path: file.to_path_buf(),
        key: p.join("."),
        reason: format!("`{}` is {what}", p[..i].join(".")),
    };
    let Some((last, parents)) = p.split_last() else {
        return Err(Error::ConfigPath {
            path: file.to_path_buf(),
            key: String::new(),
            reason: "the path is empty".to_owned(),
        });
    };
    let mut cur = doc;
    for (i, seg) in parents.iter().enumerate() {
        cur = match cur {
            Value::Object(m) => m
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(a) => {
                let idx = seg
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < a.len())
                    .ok_or_else(|| err(i + 1, "an array without that index"))?;
                &mut a[idx]
            }
            _ => return Err(err(i, "not an object")),
        };
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), v);
        }
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => a[i] = v,
            Ok(i) if i == a.len() => a.push(v),
            _ => return Err(err(parents.len(), "an array without that index")),
        },
        _ => return Err(err(parents.len(), "not an object")),
    }
    Ok(())
}

fn remove_path(doc: &mut Value, p: &[String]) -> bool {
    let Some((last, parents)) = p.split_last() else {
        return false;
    };
    let mut cur = doc;
    for seg in parents {
        cur = match cur {
            Value::Object(m) => match m.get_mut(seg) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(m) => m.shift_remove(last).is_some(),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
