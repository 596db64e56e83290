//! The write-ahead journal of a rotation run: JSON lines, fingerprints only, each record
//! hash-chained to the one before it, every append written through the atomic funnel.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalogue::{Class, Origin};
use crate::error::{Error, Result, read_err};
use crate::fingerprint::Fingerprint;
use crate::inventory::Location;

/// The `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The state of one secret in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// In the plan; nothing done.
    Planned,
    /// The new value is generated or pasted, validated, and staged encrypted.
    NewStaged,
    /// Every location holds the new value.
    Applied,
    /// The gateway will read the new value (service reloaded, or it starts with it).
    Reloaded,
    /// Every location re-read holds the new value; online check passed if asked.
    Verified,
    /// The old value is revoked (locally, by re-issue, or attested by the user).
    OldRevoked,
    /// Finished; the staged copy is wiped.
    Done,
    /// Waiting for the user (a console step, a conflicting location, a rejected value).
    NeedsUser,
    /// Failed; see the note.
    Failed,
    /// Skipped by the user.
    Skipped,
}

impl State {
    /// Whether nothing more will happen to the item in this run.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Done | State::Skipped | State::Failed)
    }

    /// The journal spelling (`NEW_STAGED`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Planned => "PLANNED",
            State::NewStaged => "NEW_STAGED",
            State::Applied => "APPLIED",
            State::Reloaded => "RELOADED",
            State::Verified => "VERIFIED",
            State::OldRevoked => "OLD_REVOKED",
            State::Done => "DONE",
            State::NeedsUser => "NEEDS_USER",
            State::Failed => "FAILED",
            State::Skipped => "SKIPPED",
        }
    }
}

/// One secret in the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanItem {
    /// Item id.
    pub id: String,
    /// Catalogue provider id.
    pub provider: String,
    /// Rotation class.
    pub class: Class,
    /// Where the new value comes from.
    pub origin: Origin,
    /// Fingerprint of the value being replaced.
    pub old_fp: Fingerprint,
    /// Every place it is stored.
    pub locations: Vec<Location>,
}

/// What happened (the body of a record).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The run's plan; always the first record.
    Plan {
        /// `incident` or `scheduled`.
        mode: String,
        /// moltvault version.
        version: String,
        /// The catalogue version validators came from.
        catalogue: u32,
        /// The secrets to rotate, in order.
        items: Vec<PlanItem>,
    },
    /// An item changed state.
    State {
        /// Item id.
        item: String,
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Fingerprint of the new value (from NEW_STAGED on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_fp: Option<Fingerprint>,
        /// Why (checks passed, reason for NEEDS_USER), never a value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// One location of an item now holds the new value.
    Applied {
        /// Item id.
        item: String,
        /// Index into the item's locations.
        index: usize,
    },
    /// An online verification result.
    Verify {
        /// Item id.
        item: String,
        /// `new` or `old`.
        which: String,
        /// valid / restricted / rate-limited / invalid / unknown.
        outcome: String,
        /// The HTTP status, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The provider's error code, if any (never a body).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// A run-level step (contain, revoke devices, reload) and how it went.
    Task {
        /// Task name.
        name: String,
        /// done / needs-user / skipped / warned.
        status: String,
        /// Detail, never a value.
        note: String,
    },
    /// A file still holding an old value, found by the sweep.
    Residue {
        /// The file.
        path: PathBuf,
        /// The item whose old value it holds.
        item: String,
        /// How many copies.
        count: usize,
        /// Whether the sweep redacted them.
        redacted: bool,
    },
    /// The run ended.
    Finish {
        /// `done` or `aborted`.
        outcome: String,
    },
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// 1-based sequence number.
    pub seq: u64,
    /// UTC time, RFC 3339.
    pub ts: String,
    /// Run id.
    pub run: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// Hash of the previous record.
    pub prev: String,
    /// SHA-256 of `prev` and this record without `hash`.
    pub hash: String,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    run: String,
    records: Vec<Record>,
    bytes: Vec<u8>,
}

fn chain_hash(prev: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(
        serde_json::to_string(body)
            .expect("values serialise")
            .as_bytes(),
    );
    hex::encode(h.finalize())
}

impl Journal {
    /// Starts an empty journal at `path` (the file is created by the first append).
    pub fn create(path: &Path, run: &str) -> Self {
        Journal {
            path: path.to_path_buf(),
            run: run.to_string(),
            records: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// Opens and verifies a journal.
    ///
    /// # Errors
    /// [`Error::Journal`] when a record does not parse, is out of sequence or its hash chain
    /// does not verify (an edited, reordered or truncated-in-the-middle journal).
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
        let bad = |seq: u64, why: &str| Error::Journal {
            path: path.to_path_buf(),
            seq,
            why: why.to_string(),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad(1, "not UTF-8"))?;
        let mut records = Vec::new();
        let mut prev = GENESIS.to_string();
        for (i, line) in text.lines().enumerate() {
            let seq = i as u64 + 1;
            let mut v: Value =
                serde_json::from_str(line).map_err(|_| bad(seq, "not a JSON record"))?;
            let hash = v
                .as_object_mut()
                .and_then(|o| o.remove("hash"))
                .and_then(|h| h.as_str().map(str::to_string))
                .ok_or_else(|| bad(seq, "no hash"))?;
            if v.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
                return Err(bad(seq, "does not chain to the previous record"));
            }
            if chain_hash(&prev, &v) != hash {
                return Err(bad(seq, "hash mismatch (the record was changed)"));
            }
            let rec: Record =
                serde_json::from_str(line).map_err(|_| bad(seq, "unknown record shape"))?;
            if rec.seq != seq {
                return Err(bad(seq, "out of sequence"));
            }
            prev = hash;
            records.push(rec);
        }
        let run = records
            .first()
            .map(|r| r.run.clone())
            .ok_or_else(|| bad(1, "empty journal"))?;
        if !matches!(records[0].event, Event::Plan { .. }) {
            return Err(bad(1, "the first record is not the plan"));
        }
        Ok(Journal {
            path: path.to_path_buf(),
            run,
            records,
            bytes,
        })
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All records so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The hash of the last record (the chain head).
    pub fn head(&self) -> &str {
        self.records.last().map_or(GENESIS, |r| r.hash.as_str())
    }

    /// The plan (first record).
    pub fn plan(&self) -> Option<(&str, &[PlanItem])> {
        match &self.records.first()?.event {
            Event::Plan { mode, items, .. } => Some((mode.as_str(), items.as_slice())),
            _ => None,
        }
    }

    /// The current state of an item (its last state record, else PLANNED) and its new value's
    /// fingerprint if staged.
    pub fn item_state(&self, item: &str) -> (State, Option<Fingerprint>) {
        let mut st = State::Planned;
        let mut fp = None;
        for r in &self.records {
            if let Event::State {
                item: i,
                to,
                new_fp,
                ..
            } = &r.event
                && i == item
            {
                st = *to;
                if new_fp.is_some() {
                    fp = *new_fp;
                }
            }
        }
        (st, fp)
    }

    /// Whether the run has finished (done or aborted).
    pub fn finished(&self) -> Option<&str> {
        self.records.iter().rev().find_map(|r| match &r.event {
            Event::Finish { outcome } => Some(outcome.as_str()),
            _ => None,
        })
    }

    /// Appends a record and makes it durable (atomic rewrite of the file, fsync'd).
    ///
    /// # Errors
    /// Fails when the journal cannot be written; the caller must then stop, since no action
    /// may happen without its record.
    pub fn append(&mut self, event: Event) -> Result<&Record> {
        let seq = self.records.len() as u64 + 1;
        let prev = self.head().to_string();
        let ts = now();
        let mut body = serde_json::to_value(Record {
            seq,
            ts,
            run: self.run.clone(),
            event,
            prev: prev.clone(),
            hash: String::new(),
        })
        .expect("records serialise");
        body.as_object_mut().expect("object").remove("hash");
        let hash = chain_hash(&prev, &body);
        body.as_object_mut()
            .expect("object")
            .insert("hash".into(), Value::String(hash));
        let line = serde_json::to_string(&body).expect("values serialise");
        let mut bytes = self.bytes.clone();
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        moltvault_vault::fsio::write_atomic(
            &self.path,
            &bytes,
            moltvault_vault::fsio::WriteOptions::secret_replace(),
        )?;
        self.bytes = bytes;
        let rec: Record = serde_json::from_value(body).expect("round trip");
        self.records.push(rec);
        Ok(self.records.last().expect("just pushed"))
    }
}

/// The current UTC time in RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn plan() -> Event {
        Event::Plan {
            mode: "incident".into(),
            version: "0".into(),
            catalogue: 1,
            items: vec![],
        }
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.jsonl");
        let mut j = Journal::create(&p, "r1");
        j.append(plan()).unwrap();
        j.append(Event::Task {
            name: "contain".into(),
            status: "done".into(),
            note: "x".into(),
        })
        .unwrap();
        j.append(Event::Finish {
            outcome: "done".into(),
        })
        .unwrap();
        let j2 = Journal::open(&p).unwrap();
        assert_eq!(j2.records().len(), 3);
        assert_eq!(j2.head(), j.head());
        assert_eq!(j2.finished(), Some("done"));

        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            text.replace("\"done\",\"note\"", "\"skipped\",\"note\""),
        )
        .unwrap();
        assert!(matches!(
            Journal::open(&p),
            Err(Error::Journal { seq: 2, .. })
        ));
        // Dropping a record breaks the chain too.
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&p, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(
            Journal::open(&p),
            Err(Error::Journal { seq: 2, .. })
        ));
    }
}
