//! Backup-v1 tar streams built from a description, well-formed or deliberately broken, for the
//! restore fuzzer and property tests (`docs/formats/backup-v1.md` is the format).
//!
//! [`Tree`] describes a backed-up tree; [`Tree::tar`] lays it out as the writer would
//! (`manifest.json` first, then `state/<path>` members in manifest order), after applying the
//! [`Damage`] list. Member names are written into the raw headers (GNU long-name records past
//! 100 bytes), so names the `tar` crate would refuse (`../x`, `/etc/x`) can be produced too.
//! The stream is plain tar: the caller compresses and encrypts it.

use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What one entry of a described tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file with this content.
    File(Vec<u8>),
    /// A symbolic link with this target.
    Symlink(String),
}

/// One entry of a described tree: a path relative to the backed-up directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `/`-separated relative path.
    pub path: String,
    /// What it is.
    pub node: Node,
    /// Permission bits.
    pub mode: u32,
}

/// A way to break an otherwise faithful archive; indexes are taken modulo the entry count.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Damage {
    /// The manifest keeps the entry but the archive has no member for it.
    DropMember(usize),
    /// The archive has the member but the manifest does not list it.
    DropFromManifest(usize),
    /// The manifest's SHA-256 of a file is for other content.
    WrongHash(usize),
    /// The manifest's size of a file is off by this much (wrapping).
    WrongSize(usize, u64),
    /// The member's name is replaced by these raw bytes (manifest unchanged).
    RawName(usize, Vec<u8>),
    /// A hard-link member named `state/<name>` pointing at `target` is appended.
    HardLink(String, String),
    /// Two members swap places (manifest order unchanged).
    Swap(usize, usize),
    /// A member of another type (FIFO) named `state/<name>` is appended.
    Fifo(String),
    /// The manifest is replaced by these bytes.
    Manifest(Vec<u8>),
    /// The archive is cut to this fraction (per mille) of its length.
    Truncate(u16),
    /// These bytes follow the end-of-archive blocks.
    Trailing(Vec<u8>),
}

/// A described backed-up tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries in archive order (a directory before what it holds, for a faithful archive).
    pub entries: Vec<Entry>,
}

/// One member to be written.
struct Member {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    link: Vec<u8>,
    data: Vec<u8>,
}

impl Tree {
    /// Returns the manifest a writer would make for this tree.
    pub fn manifest(&self) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let mode = format!("{:04o}", e.mode & 0o7777);
                match &e.node {
                    Node::Dir => json!({"path": e.path, "type": "dir", "mode": mode, "mtime": 1_700_000_000}),
                    Node::File(data) => json!({
                        "path": e.path, "type": "file", "mode": mode, "mtime": 1_700_000_000,
                        "size": data.len(), "sha256": hex::encode(Sha256::digest(data)),
                    }),
                    Node::Symlink(t) => json!({"path": e.path, "type": "symlink", "mode": "0777", "mtime": 1_700_000_000, "target": t}),
                }
            })
            .collect();
        json!({
            "format": "moltvault-backup",
            "version": 1,
            "created_by": "moltvault 0.1.0",
            "created": "2026-11-26T05:00:00Z",
            "host": "fuzz",
            "source_name": ".openclaw",
            "root_mode": "0700",
            "entries": entries,
            "skipped": [],
        })
    }

    /// Returns the tar stream of this tree with `damage` applied, in order.
    pub fn tar(&self, damage: &[Damage]) -> Vec<u8> {
        let mut manifest = self.manifest();
        let mut members: Vec<Member> = self.entries.iter().map(member).collect();
        let mut raw_manifest = None;
        let mut truncate = None;
        let mut trailing = Vec::new();
        let n = self.entries.len();
        let files: Vec<usize> = (0..n)
            .filter(|&i| matches!(self.entries[i].node, Node::File(_)))
            .collect();
        for d in damage {
            match d {
                Damage::DropMember(i) if !members.is_empty() => {
                    let i = i % members.len();
                    members.remove(i);
                }
                Damage::DropFromManifest(i) => {
                    if let Some(list) = manifest["entries"].as_array_mut().filter(|l| !l.is_empty())
                    {
                        let i = i % list.len();
                        list.remove(i);
                    }
                }
                Damage::WrongHash(i) if !files.is_empty() => {
                    let path = &self.entries[files[i % files.len()]].path;
                    set_field(&mut manifest, path, "sha256", json!(hex::encode([7u8; 32])));
                }
                Damage::WrongSize(i, by) if !files.is_empty() => {
                    let e = &self.entries[files[i % files.len()]];
                    if let Node::File(data) = &e.node {
                        let size = (data.len() as u64).wrapping_add(*by);
                        set_field(&mut manifest, &e.path, "size", json!(size));
                    }
                }
                Damage::RawName(i, name) if !members.is_empty() => {
                    let i = i % members.len();
                    members[i].name = name.clone();
                }
                Damage::HardLink(name, target) => members.push(Member {
                    name: format!("state/{name}").into_bytes(),
                    kind: tar::EntryType::Link,
                    mode: 0o644,
                    link: target.clone().into_bytes(),
                    data: Vec::new(),
                }),
                Damage::Swap(i, j) if !members.is_empty() => {
                    let len = members.len();
                    members.swap(i % len, j % len);
                }
                Damage::Fifo(name) => members.push(Member {
                    name: format!("state/{name}").into_bytes(),
                    kind: tar::EntryType::Fifo,
                    mode: 0o644,
                    link: Vec::new(),
                    data: Vec::new(),
                }),
                Damage::Manifest(bytes) => raw_manifest = Some(bytes.clone()),
                Damage::Truncate(per_mille) => truncate = Some(*per_mille),
                Damage::Trailing(bytes) => trailing.extend_from_slice(bytes),
                _ => {}
            }
        }
        let manifest = raw_manifest.unwrap_or_else(|| {
            serde_json::to_vec_pretty(&manifest).expect("a JSON value serializes")
        });
        let mut out = Vec::new();
        write_member(
            &mut out,
            &Member {
                name: b"manifest.json".to_vec(),
                kind: tar::EntryType::Regular,
                mode: 0o600,
                link: Vec::new(),
                data: manifest,
            },
        );
        for m in &members {
            write_member(&mut out, m);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out.extend_from_slice(&trailing);
        if let Some(per_mille) = truncate {
            let keep = out.len() * usize::from(per_mille.min(1000)) / 1000;
            out.truncate(keep);
        }
        out
    }
}

fn member(e: &Entry) -> Member {
    let name = format!("state/{}", e.path);
    match &e.node {
        Node::Dir => Member {
            name: format!("{name}/").into_bytes(),
            kind: tar::EntryType::Directory,
            mode: e.mode,
            link: Vec::new(),
            data: Vec::new(),
        },
        Node::File(data) => Member {
            name: name.into_bytes(),
            kind: tar::EntryType::Regular,
            mode: e.mode,
            link: Vec::new(),
            data: data.clone(),
        },
        Node::Symlink(t) => Member {
            name: name.into_bytes(),
            kind: tar::EntryType::Symlink,
            mode: 0o777,
            link: t.clone().into_bytes(),
            data: Vec::new(),
        },
    }
}

fn set_field(manifest: &mut Value, path: &str, field: &str, v: Value) {
    if let Some(list) = manifest["entries"].as_array_mut() {
        for e in list.iter_mut().filter(|e| e["path"] == path) {
            e[field] = v.clone();
        }
    }
}

/// Writes one member: a GNU long-name (and long-link) record first when a name does not fit
/// the 100-byte header field, then the header with the raw name bytes, then the padded data.
fn write_member(out: &mut Vec<u8>, m: &Member) {
    for (raw, kind) in [(&m.name, b'L'), (&m.link, b'K')] {
        if raw.len() > 100 {
            let mut data = raw.clone();
            data.push(0);
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(tar::EntryType::new(kind));
            finish(&mut h, 0o644, data.len() as u64);
            push(out, &h, &data);
        }
    }
    let mut h = tar::Header::new_gnu();
    let cut = m.name.len().min(100);
    h.as_old_mut().name[..cut].copy_from_slice(&m.name[..cut]);
    let cut = m.link.len().min(100);
    h.as_old_mut().linkname[..cut].copy_from_slice(&m.link[..cut]);
    h.set_entry_type(m.kind);
    finish(&mut h, m.mode, m.data.len() as u64);
    push(out, &h, &m.data);
}

fn finish(h: &mut tar::Header, mode: u32, size: u64) {
    h.set_mode(mode & 0o7777);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_cksum();
}

fn push(out: &mut Vec<u8>, h: &tar::Header, data: &[u8]) {
    out.write_all(h.as_bytes()).expect("a Vec takes every byte");
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        Tree {
            entries: vec![
                Entry {
                    path: "agents".into(),
                    node: Node::Dir,
                    mode: 0o700,
                },
                Entry {
                    path: format!("agents/{}", "n".repeat(120)),
                    node: Node::File(b"hello\n".to_vec()),
                    mode: 0o600,
                },
                Entry {
                    path: "agents/latest".into(),
                    node: Node::Symlink("n".into()),
                    mode: 0o777,
                },
            ],
        }
    }

    #[test]
    fn a_faithful_archive_reads_back_with_the_tar_crate() {
        let bytes = tree().tar(&[]);
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "manifest.json".to_string(),
                "state/agents/".into(),
                format!("state/agents/{}", "n".repeat(120)),
                "state/agents/latest".into(),
            ]
        );
    }

    #[test]
    fn raw_names_are_written_as_given() {
        let bytes = tree().tar(&[Damage::RawName(0, b"../../escape".to_vec())]);
        let mut ar = tar::Archive::new(&bytes[..]);
        let second = ar.entries().unwrap().nth(1).unwrap().unwrap();
        assert_eq!(&*second.path_bytes(), b"../../escape");
    }
}
